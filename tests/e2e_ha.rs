//! High availability on a real API server: leader election between two
//! operator processes, takeover after the leader dies, and the fencing of
//! status writes that keeps a deposed instance from sending.

mod common;
mod fault_support;

use std::time::Duration;

use common::*;
use fault_support::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use mas_reset_operator::api::{BulkPasswordReset, FIELD_MANAGER};
use mas_reset_operator::run::UserResult;

/// Name of the Lease the operator elects its leader with by default.
const LEASE_NAME: &str = "mas-reset-operator";

/// Log line of an instance that waits for the Lease.
const WAITING_LINE: &str = "another instance leads; waiting";

/// Log line of an instance that took the Lease.
const ACQUIRED_LINE: &str = "acquired leadership";

/// Starts operator `identity` with leader election in `namespace`.
fn start_elected(
    plane: &mas_reset_harness::ControlPlane,
    namespace: &str,
    identity: &str,
) -> Operator {
    let args = leader_args(namespace, identity);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Operator::start(plane, namespace, &args)
}

/// Starts instance `a`, waits until it leads, then starts instance `b`
/// and waits until it reports that it waits.
async fn start_pair(
    plane: &mas_reset_harness::ControlPlane,
    namespace: &str,
) -> (Operator, Operator) {
    let leader = start_elected(plane, namespace, "a");
    wait_for_log(&leader, ACQUIRED_LINE, Duration::from_secs(60)).await;
    let follower = start_elected(plane, namespace, "b");
    wait_for_log(&follower, WAITING_LINE, Duration::from_secs(60)).await;
    (leader, follower)
}

/// Password requests the operator sent, from its metrics.
async fn requests_sent(operator: &Operator) -> f64 {
    let text = operator.metrics().await.expect("metrics readable");
    metric_value(&text, "mas_reset_mas_requests_total")
}

/// Applies `progress` to the status of `name` as the operator does: server-side
/// apply under the operator's field manager with `resource_version` as the
/// precondition.
async fn apply_progress(
    api: &Api<BulkPasswordReset>,
    name: &str,
    resource_version: &str,
    holder: &str,
) -> Result<BulkPasswordReset, kube::Error> {
    let patch = serde_json::json!({
        "apiVersion": "masreset.dev/v1alpha1",
        "kind": "BulkPasswordReset",
        "metadata": { "name": name, "resourceVersion": resource_version },
        "status": {
            "progress": { "listDigest": "digest", "claimed": 10, "recorded": 0, "holder": holder },
        },
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
}

/// The recorder's fencing relies on the API server rejecting a server-side
/// apply of status whose `metadata.resourceVersion` is no longer current.
#[tokio::test]
async fn status_apply_with_stale_version_conflicts() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let namespace = namespace(&client, "ha-precondition").await;
    let api: Api<BulkPasswordReset> = Api::namespaced(client.clone(), &namespace);

    let created = apply_manifest(
        &client,
        &namespace,
        &manifest("fenced", "http://127.0.0.1:9", serde_json::json!({})),
    )
    .await;
    let first_version = created.metadata.resource_version.expect("resourceVersion");

    let written = apply_progress(&api, "fenced", &first_version, "instance-a")
        .await
        .expect("apply with the current resourceVersion succeeds");
    let second_version = written.metadata.resource_version.expect("resourceVersion");
    assert_ne!(first_version, second_version);

    let stale = apply_progress(&api, "fenced", &first_version, "instance-b").await;
    match stale {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("apply with a stale resourceVersion was not rejected: {other:?}"),
    }

    // A metadata change moves the resourceVersion too, so the recorder must
    // re-read and compare the progress marks instead of giving up.
    let annotate = serde_json::json!({ "metadata": { "annotations": { "e2e/touch": "1" } } });
    api.patch("fenced", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .expect("annotated");
    let after_annotation = apply_progress(&api, "fenced", &second_version, "instance-a").await;
    match after_annotation {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("apply after a metadata change was not rejected: {other:?}"),
    }

    let current = api.get("fenced").await.expect("readable");
    let progress = current.status.and_then(|status| status.progress);
    assert_eq!(
        progress.and_then(|progress| progress.holder).as_deref(),
        Some("instance-a"),
        "a rejected apply changed status"
    );
}

#[tokio::test]
async fn leader_killed_follower_finishes_run() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let users = 3000;
    let scenario = Scenario::start(&client, "ha-kill", users, 20).await;
    let namespace = scenario.namespace.clone();

    let (mut leader, mut follower) = start_pair(plane, &namespace).await;
    scenario
        .apply("ha", serde_json::json!({ "concurrency": 8 }))
        .await;

    // Only the leader sends.
    let before_kill = scenario.wait_for_done("ha", 1000, &[&leader]).await;
    assert!(holder(&before_kill).starts_with("a/"), "{before_kill:?}");
    assert_eq!(requests_sent(&follower).await, 0.0);
    assert!(!follower.log().contains("starting run task"));

    // Kill the leader; the follower takes the Lease once it expires.
    leader.kill();
    let killed_at = tokio::time::Instant::now();
    wait_for_log(&follower, ACQUIRED_LINE, Duration::from_secs(60)).await;
    let takeover = killed_at.elapsed();
    eprintln!("leader_killed_follower_finishes_run: takeover after {takeover:?}");

    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let lease = leases.get(LEASE_NAME).await.expect("Lease readable");
    let spec = lease.spec.expect("Lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));

    let status = scenario.wait_for_final_phase("ha", &[&follower]).await;
    assert!(holder(&status).starts_with("b/"), "{status:?}");
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.done, users as i64);
    assert_eq!(counts.failed, 0);

    let table = scenario.results("ha").await;
    assert_eq!(table.len(), users);
    let unknown = users_with(&table, UserResult::Unknown);
    assert_eq!(counts.unknown, unknown.len() as i64);
    assert_eq!(recovered_unknown(&status), unknown.len() as i64);
    assert_ledger_matches_results(&scenario.user_ids, &table, &scenario.applied());
    eprintln!(
        "leader_killed_follower_finishes_run: {} users Unknown after the takeover",
        unknown.len()
    );

    follower.terminate().await;
    leader.kill();
    scenario.simulator.shutdown().await;
}

/// On SIGTERM the leader records the requests in flight before it releases
/// the Lease, so the follower resumes without Unknown users.
#[tokio::test]
async fn leader_sigterm_hands_over_cleanly() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    // Slow responses keep requests in flight for a long time at SIGTERM,
    // longer than the follower's retry period.
    let users = 80;
    let scenario = Scenario::start(&client, "ha-term", users, 3000).await;
    let namespace = scenario.namespace.clone();

    let (mut leader, mut follower) = start_pair(plane, &namespace).await;
    scenario
        .apply("handover", serde_json::json!({ "concurrency": 20 }))
        .await;

    scenario.wait_for_done("handover", 20, &[&leader]).await;
    leader.terminate().await;
    assert!(
        leader.log().contains("released leadership"),
        "the leader did not release the Lease:\n{}",
        leader.log()
    );
    wait_for_log(&follower, ACQUIRED_LINE, Duration::from_secs(60)).await;

    let status = scenario
        .wait_for_final_phase("handover", &[&follower])
        .await;
    assert!(holder(&status).starts_with("b/"), "{status:?}");
    scenario
        .assert_every_user_reset_once("handover", &status)
        .await;

    follower.terminate().await;
    scenario.simulator.shutdown().await;
}

/// A second instance that takes a run over writes `status.progress` with
/// its own holder. The running instance must then stop before its next
/// claim and send nothing beyond the claim it held. The run resumes later
/// without sending anybody twice.
#[tokio::test]
async fn foreign_holder_fences_running_instance() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let users = 1500;
    let scenario = Scenario::start(&client, "ha-fence", users, 20).await;
    let api: Api<BulkPasswordReset> = Api::namespaced(client.clone(), &scenario.namespace);

    let operator = Operator::start(plane, &scenario.namespace, &[]);
    scenario
        .apply("fenced", serde_json::json!({ "concurrency": 8 }))
        .await;
    scenario.wait_for_done("fenced", 300, &[&operator]).await;

    let takeover = serde_json::json!({
        "status": { "progress": { "holder": "intruder/00000000" } }
    });
    let patched = api
        .patch_status("fenced", &PatchParams::default(), &Patch::Merge(&takeover))
        .await
        .expect("status patched");
    let claimed_at_takeover = patched
        .status
        .and_then(|status| status.progress)
        .expect("progress")
        .claimed;

    wait_for_log(
        &operator,
        "another operator instance took over this run",
        Duration::from_secs(60),
    )
    .await;
    wait_for_log(
        &operator,
        "run stopped: progress could not be recorded",
        Duration::from_secs(60),
    )
    .await;

    // The fenced run task has ended. Every call it made was for a user
    // below the claim it held when the other holder wrote.
    let position: std::collections::HashMap<&str, usize> = scenario
        .user_ids
        .iter()
        .enumerate()
        .map(|(index, user)| (user.as_str(), index))
        .collect();
    let calls = scenario.simulator.ledger();
    for call in &calls {
        let index = position[call.user_id.as_str()];
        assert!(
            (index as i64) < claimed_at_takeover,
            "user {} at position {index} was sent beyond the claim {claimed_at_takeover}",
            call.user_id
        );
    }

    // The operator retries the run later as a new holder and finishes it.
    let status = scenario.wait_for_final_phase("fenced", &[&operator]).await;
    let final_holder = holder(&status);
    assert_ne!(final_holder, "intruder/00000000");
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.done, users as i64);

    let table = scenario.results("fenced").await;
    let unknown = users_with(&table, UserResult::Unknown);
    assert_eq!(counts.unknown, unknown.len() as i64);
    assert_eq!(recovered_unknown(&status), unknown.len() as i64);
    assert_ledger_matches_results(&scenario.user_ids, &table, &scenario.applied());
    eprintln!(
        "foreign_holder_fences_running_instance: {} calls before the fence, {} users Unknown",
        calls.len(),
        unknown.len()
    );

    let mut operator = operator;
    operator.terminate().await;
    scenario.simulator.shutdown().await;
}
