//! Scale on a real API server with a MAS simulator that responds at once
//! (latency 0, concurrency 64): every user reset exactly once, status that
//! stays far below the etcd object limit, the per-user table in result
//! ConfigMaps of `ROWS_PER_CHUNK` users each, a list split over several ConfigMaps and
//! keys, and the API server writes of a 10,000-user run.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use mas_reset_harness::ControlPlane;
use mas_reset_harness::metrics::{WRITE_VERBS, label, sum_requests};
use mas_reset_operator::api::{BulkPasswordReset, Phase, UserResult};
use mas_reset_operator::controller::results::{self, RESULTS_KEY, ROWS_PER_CHUNK, RUN_LABEL};
use mas_reset_operator::simulator::{
    SimUser, SimulatorConfig, SimulatorHandle, StaticToken, generate_users,
};

const TOKEN: &str = "e2e-scale-token-7c1e";

/// etcd's default `--max-request-bytes` (1.5 MiB): no stored object can be
/// larger.
const ETCD_OBJECT_LIMIT: usize = 1536 * 1024;

/// "Far below the limit": the whole serialized object stays under a tenth of
/// it, whatever the list size.
const OBJECT_BUDGET: usize = ETCD_OBJECT_LIMIT / 10;

/// Kubernetes limit of the data of one ConfigMap (1 MiB).
const CONFIG_MAP_DATA_LIMIT: usize = 1024 * 1024;

/// Requests in flight at once in every run of this file.
const CONCURRENCY: i32 = 64;

/// API server writes a 10,000-user run may cost.
const WRITE_BUDGET_10K: u64 = 200;

/// Maximum wait for a run to finish. Bounded so that a stuck run fails the
/// test instead of hanging it.
const RUN_TIMEOUT: Duration = Duration::from_secs(1200);

/// The shared control plane with the CRD, a client and a new namespace.
async fn shared_namespace(prefix: &str) -> (&'static ControlPlane, Client, String) {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let namespace = namespace(&client, prefix).await;
    (plane, client, namespace)
}

/// IDs as the simulator's `generate_users("user", n)` names them.
fn user_ids(count: usize) -> Vec<String> {
    generate_users("user", count)
        .into_iter()
        .map(|user| user.id)
        .collect()
}

/// One part of a split list: ConfigMap, key and CSV bytes with a header row.
struct ListPart {
    config_map: String,
    key: String,
    bytes: Vec<u8>,
}

/// Splits `rows` into `config_maps * keys_per_config_map` parts of equal
/// size, each an Excel "CSV UTF-8" file with its own header row.
fn split_list(rows: &[String], config_maps: usize, keys_per_config_map: usize) -> Vec<ListPart> {
    let parts = config_maps * keys_per_config_map;
    let part_size = rows.len().div_ceil(parts);
    rows.chunks(part_size)
        .enumerate()
        .map(|(index, chunk)| ListPart {
            config_map: format!("users-{}", index / keys_per_config_map + 1),
            key: format!("part-{}.csv", index + 1),
            bytes: excel_csv(chunk),
        })
        .collect()
}

/// Creates the ConfigMaps of `parts` and returns `spec.userList.sources`.
async fn create_list(client: &Client, namespace: &str, parts: &[ListPart]) -> serde_json::Value {
    let mut by_config_map: BTreeMap<&str, BTreeMap<String, ByteString>> = BTreeMap::new();
    for part in parts {
        by_config_map
            .entry(&part.config_map)
            .or_default()
            .insert(part.key.clone(), ByteString(part.bytes.clone()));
    }

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for (name, binary_data) in by_config_map {
        let size: usize = binary_data.values().map(|bytes| bytes.0.len()).sum();
        assert!(
            size < CONFIG_MAP_DATA_LIMIT,
            "ConfigMap {name} would hold {size} bytes"
        );
        let config_map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            binary_data: Some(binary_data),
            ..Default::default()
        };
        api.create(&PostParams::default(), &config_map)
            .await
            .expect("user list ConfigMap created");
    }

    let sources: Vec<_> = parts
        .iter()
        .map(|part| serde_json::json!({ "configMapName": part.config_map, "key": part.key }))
        .collect();
    serde_json::Value::Array(sources)
}

async fn start_simulator(users: Vec<SimUser>) -> SimulatorHandle {
    mas_reset_operator::simulator::Simulator::start(SimulatorConfig {
        users,
        tokens: vec![StaticToken::new(TOKEN, true)],
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// Applies a run of `sources` with concurrency 64 and waits for its final
/// phase.
async fn run_to_final_phase(
    client: &Client,
    namespace: &str,
    name: &str,
    simulator: &SimulatorHandle,
    sources: serde_json::Value,
    operator: &Operator,
) -> BulkPasswordReset {
    let manifest = manifest(
        name,
        &simulator.base_url(),
        serde_json::json!({
            "concurrency": CONCURRENCY,
            "userList": { "sources": sources },
        }),
    );
    apply_manifest(client, namespace, &manifest).await;
    wait_for_phase(
        client,
        namespace,
        name,
        &[Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed],
        RUN_TIMEOUT,
        operator,
    )
    .await
}

/// Checks that the whole object, as JSON, stays within [`OBJECT_BUDGET`]
/// and returns its size in bytes.
fn assert_object_within_budget(resource: &BulkPasswordReset) -> usize {
    let bytes = serde_json::to_vec(resource).expect("serializes").len();
    assert!(
        bytes < OBJECT_BUDGET,
        "object is {bytes} bytes, budget {OBJECT_BUDGET}"
    );
    bytes
}

/// Checks that the result ConfigMaps hold one row per user of `ids`, in
/// list order, in chunks of [`ROWS_PER_CHUNK`], and returns the rows.
async fn assert_results_in_list_order(
    client: &Client,
    namespace: &str,
    resource: &BulkPasswordReset,
    ids: &[String],
) -> Vec<results::ResultRecord> {
    let (config_maps, records) = read_results(client, namespace, resource).await;
    assert_eq!(config_maps, ids.len().div_ceil(ROWS_PER_CHUNK));
    let reference = resource
        .status
        .as_ref()
        .and_then(|status| status.results.clone())
        .expect("status.results");
    assert_eq!(reference.config_map_count, config_maps as i64);
    assert_eq!(
        reference.label_selector,
        format!("{RUN_LABEL}={}", resource.name_any())
    );
    assert_eq!(records.len(), ids.len());
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.index, index);
        assert_eq!(record.user_id, ids[index]);
    }
    records
}

/// Reads the result ConfigMaps of `resource`, checks that each is owned by
/// it and below the ConfigMap limit, and returns their rows in list order.
async fn read_results(
    client: &Client,
    namespace: &str,
    resource: &BulkPasswordReset,
) -> (usize, Vec<results::ResultRecord>) {
    let name = resource.name_any();
    let uid = resource.uid().expect("uid");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("{RUN_LABEL}={name}")))
        .await
        .expect("result ConfigMaps listed");

    for config_map in &list.items {
        let owned = config_map
            .owner_references()
            .iter()
            .any(|owner| owner.uid == uid && owner.controller == Some(true));
        assert!(owned, "{} is not owned by the run", config_map.name_any());
        let data_bytes: usize = config_map
            .data
            .iter()
            .flat_map(|data| data.values())
            .map(String::len)
            .sum();
        assert!(
            data_bytes < CONFIG_MAP_DATA_LIMIT,
            "{} holds {data_bytes} bytes",
            config_map.name_any()
        );
        assert!(
            config_map
                .data
                .as_ref()
                .is_some_and(|data| data.contains_key(RESULTS_KEY)),
            "{} has no {RESULTS_KEY}",
            config_map.name_any()
        );
    }

    let records = results::read_all(&api, &name, &uid)
        .await
        .expect("results readable");
    (list.items.len(), records)
}

/// Checks that every user in `expected_ids` was sent exactly once.
fn assert_each_sent_once(simulator: &SimulatorHandle, expected_ids: &[String]) {
    let ledger = simulator.ledger();
    assert_eq!(
        ledger.len(),
        expected_ids.len(),
        "password calls differ from the list size"
    );
    let mut calls: BTreeMap<&str, u32> = BTreeMap::new();
    for entry in &ledger {
        *calls.entry(entry.user_id.as_str()).or_default() += 1;
    }
    let repeated: Vec<_> = calls.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        repeated.is_empty(),
        "users sent more than once: {repeated:?}"
    );
    for id in expected_ids {
        assert!(calls.contains_key(id.as_str()), "{id} was never sent");
    }
}

/// About two minutes in a debug build on 2 cores.
#[tokio::test]
async fn run_100k_users_bounded_status() {
    const USERS: usize = 100_000;
    let (plane, client, namespace) = shared_namespace("scale-100k").await;

    let ids = user_ids(USERS);
    let simulator = start_simulator(generate_users("user", USERS)).await;

    // 1.2 MB of IDs: more than one ConfigMap holds, so two ConfigMaps with
    // two keys each. The third part repeats the first user on its first row.
    let mut parts = split_list(&ids, 2, 2);
    let list_bytes: usize = parts.iter().map(|part| part.bytes.len()).sum();
    assert!(
        list_bytes > CONFIG_MAP_DATA_LIMIT,
        "list is {list_bytes} bytes"
    );
    parts[2].bytes = [
        b"\xEF\xBB\xBFuserid\r\n".as_slice(),
        format!("{}\r\n", ids[0]).as_bytes(),
        &parts[2].bytes[b"\xEF\xBB\xBFuserid\r\n".len()..],
    ]
    .concat();
    let sources = create_list(&client, &namespace, &parts).await;
    secret(&client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;

    let mut operator = Operator::start(plane, &namespace, &[]);
    let resource = run_to_final_phase(
        &client,
        &namespace,
        "scale-100k",
        &simulator,
        sources,
        &operator,
    )
    .await;
    let peak_rss_kib = operator.peak_rss_kib();
    operator.terminate().await;

    let status = resource.status.clone().expect("status");
    assert_eq!(status.phase, Some(Phase::Succeeded), "{status:?}");
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.total, USERS as i64);
    assert_eq!(counts.succeeded, USERS as i64);
    assert_eq!(counts.failed, 0);
    assert_eq!(counts.unknown, 0);
    assert_eq!(counts.duplicates, 1);

    // The repeated ID is reported once, at its own row, naming the first.
    assert_eq!(status.rejected_rows.len(), 1, "{:?}", status.rejected_rows);
    let duplicate = &status.rejected_rows[0];
    assert_eq!(duplicate.source, "users-2/part-3.csv");
    assert_eq!(duplicate.row, 2);
    assert!(
        duplicate.reason.contains("users-1/part-1.csv"),
        "{duplicate:?}"
    );

    // Status stays small: no user is inline when all succeeded.
    assert!(
        status.users.is_empty(),
        "{} users inline",
        status.users.len()
    );
    assert_eq!(status.users_omitted, None);
    let bytes = assert_object_within_budget(&resource);
    eprintln!("scale-100k: whole object {bytes} bytes, operator peak RSS {peak_rss_kib:?} KiB");

    // The full table: 100 ConfigMaps of 1,000 users, in list order.
    let records = assert_results_in_list_order(&client, &namespace, &resource, &ids).await;
    for record in &records {
        assert_eq!(
            record.outcome.result,
            mas_reset_operator::run::UserResult::Succeeded
        );
    }
    assert_eq!(records[0].source, "users-1/part-1.csv");
    assert_eq!(records[USERS - 1].source, "users-2/part-4.csv");

    assert_each_sent_once(&simulator, &ids);
    simulator.shutdown().await;
}

#[tokio::test]
async fn run_20k_users_caps_status() {
    const USERS: usize = 20_000;
    const GHOSTS: usize = 500;
    const INVALID_ROWS: usize = 120;
    let (plane, client, namespace) = shared_namespace("scale-20k").await;

    // Every 40th listed user is unknown to MAS (404, Failed), and invalid
    // rows are spread over the list, so that both inline lists hit their caps.
    let known = user_ids(USERS - GHOSTS);
    let mut ids = Vec::with_capacity(USERS);
    let mut known_iter = known.iter();
    for position in 0..USERS {
        if position % 40 == 39 {
            ids.push(format!("ghost-{position:05}"));
        } else {
            ids.push(known_iter.next().expect("enough known users").clone());
        }
    }
    let mut rows = ids.clone();
    for number in 0..INVALID_ROWS {
        rows.insert(number * 150, "..".to_owned());
    }
    let simulator = start_simulator(generate_users("user", USERS - GHOSTS)).await;

    let sources = create_list(&client, &namespace, &split_list(&rows, 2, 1)).await;
    secret(&client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;

    let mut operator = Operator::start(plane, &namespace, &[]);
    let resource = run_to_final_phase(
        &client,
        &namespace,
        "scale-20k",
        &simulator,
        sources,
        &operator,
    )
    .await;
    operator.terminate().await;

    let status = resource.status.clone().expect("status");
    assert_eq!(status.phase, Some(Phase::PartiallyFailed), "{status:?}");
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.total, USERS as i64);
    assert_eq!(counts.succeeded, (USERS - GHOSTS) as i64);
    assert_eq!(counts.failed, GHOSTS as i64);
    assert_eq!(counts.rejected, INVALID_ROWS as i64);

    // Inline lists are capped; the rest is counted, not listed.
    assert_eq!(status.users.len(), 100);
    assert!(
        status
            .users
            .iter()
            .all(|user| user.result == UserResult::Failed && user.http_status == Some(404)),
        "{:?}",
        status.users.first()
    );
    assert_eq!(status.users_omitted, Some((GHOSTS - 100) as i64));
    assert_eq!(status.rejected_rows.len(), 50);
    let bytes = assert_object_within_budget(&resource);
    eprintln!("scale-20k: whole object {bytes} bytes with every inline list at its cap");

    assert_results_in_list_order(&client, &namespace, &resource, &ids).await;

    assert_each_sent_once(&simulator, &ids);
    simulator.shutdown().await;
}

/// Counts the write requests of a 10,000-user run on a control plane of its
/// own, so that no other test's writes are counted.
#[tokio::test]
async fn run_10k_users_under_200_writes() {
    const USERS: usize = 10_000;
    let plane = ControlPlane::start().await.expect("control plane starts");
    install_crds(&plane).await;
    let client = plane.client().await.expect("client");
    let namespace = namespace(&client, "scale-writes").await;

    let ids = user_ids(USERS);
    let simulator = start_simulator(generate_users("user", USERS)).await;
    let sources = create_list(&client, &namespace, &split_list(&ids, 1, 1)).await;
    secret(&client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;
    let mut operator = Operator::start(&plane, &namespace, &[]);
    operator.wait_for_reconciles(0).await;

    let before = plane.metrics().await.expect("metrics");
    let resource = run_to_final_phase(
        &client,
        &namespace,
        "scale-10k",
        &simulator,
        sources,
        &operator,
    )
    .await;
    // The final Event is posted after the final status write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = plane.metrics().await.expect("metrics");
    operator.terminate().await;

    let status = resource.status.clone().expect("status");
    assert_eq!(status.phase, Some(Phase::Succeeded), "{status:?}");
    assert_each_sent_once(&simulator, &ids);

    // Writes by verb and resource; the test's own apply of the manifest is
    // one of them.
    let mut writes: BTreeMap<String, u64> = BTreeMap::new();
    for verb in WRITE_VERBS {
        for resource_name in ["bulkpasswordresets", "configmaps", "events", "leases"] {
            let count = |metrics: &str| {
                sum_requests(metrics, |labels| {
                    label(labels, "verb") == Some(verb)
                        && label(labels, "resource") == Some(resource_name)
                })
            };
            let delta = count(&after) - count(&before);
            if delta > 0 {
                writes.insert(format!("{verb} {resource_name}"), delta);
            }
        }
    }
    let total = mas_reset_harness::metrics::count_write_requests(&after)
        - mas_reset_harness::metrics::count_write_requests(&before);
    eprintln!("scale-10k: {total} API server writes: {writes:?}");
    assert!(
        total < WRITE_BUDGET_10K,
        "{total} writes for {USERS} users: {writes:?}"
    );

    simulator.shutdown().await;
    plane.stop().await;
}

/// A list of 1.5 MB, more than one ConfigMap holds, in six parts over three
/// ConfigMaps (`data` and `binaryData` keys, each part with its own header),
/// read through the operator's input loader from the real API server.
#[tokio::test]
async fn split_list_read_in_spec_order() {
    const USERS: usize = 120_000;
    let (_, client, namespace) = shared_namespace("split-list").await;
    secret(&client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;

    // Six parts of 20,000 users. The fourth part starts with a user of the
    // first part, so that user is a duplicate across ConfigMaps.
    let ids: Vec<String> = (0..USERS)
        .map(|number| format!("user-{number:06}"))
        .collect();
    let mut parts = split_list(&ids, 3, 2);
    let total_bytes: usize = parts.iter().map(|part| part.bytes.len()).sum();
    assert!(
        total_bytes > CONFIG_MAP_DATA_LIMIT,
        "list is {total_bytes} bytes"
    );
    let header = b"\xEF\xBB\xBFuserid\r\n".as_slice();
    parts[3].bytes = [
        header,
        format!("{}\r\n", ids[7]).as_bytes(),
        &parts[3].bytes[header.len()..],
    ]
    .concat();

    // ConfigMaps named so that alphabetical order differs from spec order;
    // the first part of each ConfigMap is plain text in `data`.
    let config_map_names = ["users-c", "users-a", "users-b"];
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    for (config_map_index, name) in config_map_names.iter().enumerate() {
        let text_part = &parts[config_map_index * 2];
        let binary_part = &parts[config_map_index * 2 + 1];
        let text = String::from_utf8(text_part.bytes[3..].to_vec()).expect("UTF-8 part");
        let config_map = ConfigMap {
            metadata: ObjectMeta {
                name: Some((*name).to_owned()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(text_part.key.clone(), text)])),
            binary_data: Some(BTreeMap::from([(
                binary_part.key.clone(),
                ByteString(binary_part.bytes.clone()),
            )])),
            ..Default::default()
        };
        api.create(&PostParams::default(), &config_map)
            .await
            .expect("user list ConfigMap created");
    }
    let sources: Vec<serde_json::Value> = parts
        .iter()
        .enumerate()
        .map(|(index, part)| {
            serde_json::json!({ "configMapName": config_map_names[index / 2], "key": part.key })
        })
        .collect();

    let load = |sources: Vec<serde_json::Value>| {
        let client = client.clone();
        let namespace = namespace.clone();
        async move {
            let mut resource: BulkPasswordReset = serde_json::from_value(manifest(
                "split",
                "https://mas.example.com",
                serde_json::json!({ "userList": { "sources": sources } }),
            ))
            .expect("manifest deserializes");
            resource.metadata.namespace = Some(namespace);
            let allowed = mas_reset_operator::controller::inputs::AllowedHosts::default();
            mas_reset_operator::controller::inputs::load(&client, &resource, &allowed)
                .await
                .map(|inputs| inputs.users)
                .expect("inputs load")
        }
    };
    let users = load(sources.clone()).await;

    // All parts, in spec order, each ID once.
    let loaded: Vec<&str> = users.users.iter().map(|user| user.id.as_str()).collect();
    assert_eq!(loaded.len(), USERS);
    assert!(loaded.iter().zip(&ids).all(|(got, want)| got == want));
    assert_eq!(users.users[20_000].source, 1);
    assert_eq!(users.users[20_000].row, 2);
    assert_eq!(users.users[60_000].source, 3);
    assert_eq!(users.users[60_000].row, 3, "the duplicate row comes first");
    assert_eq!(
        users.source_names,
        [
            "users-c/part-1.csv",
            "users-c/part-2.csv",
            "users-a/part-3.csv",
            "users-a/part-4.csv",
            "users-b/part-5.csv",
            "users-b/part-6.csv",
        ]
    );

    // The repeated ID is reported once, with both places.
    assert_eq!(users.duplicates.len(), 1, "{:?}", users.duplicates);
    let duplicate = &users.duplicates[0];
    assert_eq!(duplicate.id, ids[7]);
    assert_eq!((duplicate.source, duplicate.row), (3, 2));
    assert_eq!((duplicate.first_source, duplicate.first_row), (0, 9));

    // The digest is that of the IDs in order, whatever the split: the same
    // IDs as one source give the same digest, and so does a second load.
    let whole = mas_reset_operator::userlist::parse_sources(
        &[mas_reset_operator::userlist::Source {
            name: "whole/users.csv".to_owned(),
            bytes: &excel_csv(&ids),
        }],
        &mas_reset_operator::userlist::ParseOptions::default(),
    )
    .expect("whole list parses");
    assert_eq!(users.digest(), whole.digest());
    assert_eq!(load(sources.clone()).await.digest(), users.digest());

    // Another order of the same parts is another list.
    let mut reordered = sources;
    reordered.swap(0, 1);
    assert_ne!(load(reordered).await.digest(), users.digest());
}
