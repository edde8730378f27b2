//! Per-user passwords end to end. In mode `Random` the operator generates
//! each password, stores it in an output Secret before it sends it, and
//! writes it nowhere else. With MAS-generated passwords and no e-mail, the
//! passwords MAS returns go to the same kind of Secret. A crash in the
//! middle of a run loses no password of a user MAS has reset.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use mas_reset_operator::api::{BulkPasswordReset, Phase};
use mas_reset_operator::simulator::{
    BodyKind, PasswordPolicy, SimUser, Simulator, SimulatorConfig, SimulatorHandle, StaticToken,
};

const TOKEN: &str = "e2e-passwords-token-a4c8";

/// The MAS policy the generated passwords must meet, and the matching
/// `spec.password.random`.
fn strict_policy() -> PasswordPolicy {
    PasswordPolicy {
        min_length: 14,
        max_length: 20,
        min_upper: 2,
        min_lower: 2,
        min_digits: 2,
        min_special: 1,
        allow_user_id: false,
    }
}

fn random_spec(extra: serde_json::Value) -> serde_json::Value {
    let mut random = serde_json::json!({
        "length": 14,
        "minUpper": 2,
        "minLower": 2,
        "minDigits": 2,
        "minSpecial": 1,
    });
    if let (Some(random), Some(extra)) = (random.as_object_mut(), extra.as_object()) {
        random.extend(extra.clone());
    }
    serde_json::json!({ "mode": "Random", "random": random })
}

fn simulator_config(users: &[String], latency_ms: u64) -> SimulatorConfig {
    SimulatorConfig {
        users: users.iter().map(SimUser::local).collect(),
        tokens: vec![StaticToken::new(TOKEN, true)],
        policy: strict_policy(),
        latency_ms,
        ..SimulatorConfig::default()
    }
}

/// A namespace with `list` in the user list and the token Secret, and a
/// simulator that has `mas_users`.
struct Setup {
    plane: &'static mas_reset_harness::ControlPlane,
    client: Client,
    namespace: String,
    simulator: SimulatorHandle,
}

async fn setup(prefix: &str, list: &[String], mas_users: &[String], latency_ms: u64) -> Setup {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let namespace = namespace(&client, prefix).await;

    let simulator = Simulator::start(simulator_config(mas_users, latency_ms))
        .await
        .expect("simulator starts");
    user_list_config_map(&client, &namespace, "users", excel_csv(list)).await;
    secret(&client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;
    Setup {
        plane,
        client,
        namespace,
        simulator,
    }
}

/// Reads the password Secrets named in the resource's status, checks that
/// the resource owns each, and returns the passwords by user ID.
async fn stored_passwords(
    client: &Client,
    namespace: &str,
    resource: &BulkPasswordReset,
) -> BTreeMap<String, String> {
    let names = resource
        .status
        .as_ref()
        .and_then(|status| status.results.as_ref())
        .map(|results| results.password_secrets.clone())
        .unwrap_or_default();
    assert!(!names.is_empty(), "status names no password Secret");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut passwords = BTreeMap::new();
    for name in names {
        let secret = secrets.get(&name).await.expect("password Secret exists");
        let owned = secret
            .owner_references()
            .iter()
            .any(|owner| Some(owner.uid.clone()) == resource.uid());
        assert!(owned, "{name} is not owned by the resource");
        let bytes = &secret.data.as_ref().expect("data")["passwords.jsonl"].0;
        for line in String::from_utf8(bytes.clone()).expect("UTF-8").lines() {
            let entry: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            let user_id = entry["userId"].as_str().expect("userId").to_owned();
            let password = entry["password"].as_str().expect("password").to_owned();
            assert!(
                passwords.insert(user_id.clone(), password).is_none(),
                "{user_id} stored twice"
            );
        }
    }
    passwords
}

/// Fails if any of `passwords` appears in what the operator wrote outside
/// the password Secrets.
async fn assert_passwords_nowhere_else(
    client: &Client,
    namespace: &str,
    operator: &Operator,
    passwords: &BTreeMap<String, String>,
) {
    // Let the last Events and log lines arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (place, text) in everything_but_password_secrets(client, namespace, operator).await {
        for (user, password) in passwords {
            assert!(
                !text.contains(password.as_str()),
                "{place} contains the password of {user}"
            );
        }
    }
}

/// Everything the operator wrote outside the password Secrets, in one text
/// per place.
async fn everything_but_password_secrets(
    client: &Client,
    namespace: &str,
    operator: &Operator,
) -> Vec<(&'static str, String)> {
    let resources: Api<BulkPasswordReset> = Api::namespaced(client.clone(), namespace);
    let statuses: Vec<_> = resources
        .list(&ListParams::default())
        .await
        .expect("resources listable")
        .items
        .into_iter()
        .map(|resource| resource.status)
        .collect();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let results = config_maps
        .list(&ListParams::default().labels("masreset.dev/run"))
        .await
        .expect("ConfigMaps listable")
        .items;
    assert!(!results.is_empty(), "no result ConfigMaps");

    vec![
        ("operator log", operator.log()),
        (
            "Events",
            serde_json::to_string(&events(client, namespace).await).expect("Events"),
        ),
        ("status", serde_json::to_string(&statuses).expect("status")),
        (
            "result ConfigMaps",
            serde_json::to_string(&results).expect("ConfigMaps"),
        ),
        ("metrics", operator.metrics().await.expect("metrics served")),
    ]
}

fn assert_meets_policy(user_id: &str, password: &str) {
    let count = |predicate: fn(&char) -> bool| password.chars().filter(predicate).count();
    assert_eq!(password.chars().count(), 14, "{user_id}");
    assert!(count(char::is_ascii_uppercase) >= 2, "{user_id}");
    assert!(count(char::is_ascii_lowercase) >= 2, "{user_id}");
    assert!(count(char::is_ascii_digit) >= 2, "{user_id}");
    assert!(count(|c| !c.is_ascii_alphanumeric()) >= 1, "{user_id}");
}

#[tokio::test]
async fn random_passwords_stored_only_in_secret() {
    // Two users of the list are unknown to MAS, so their resets fail.
    let users: Vec<String> = (1..=50).map(|n| format!("rnd{n:02}")).collect();
    let mut list = users.clone();
    list.insert(20, "ghost-a".to_owned());
    list.push("ghost-b".to_owned());
    let Setup {
        plane,
        client,
        namespace,
        simulator,
    } = setup("random", &list, &users, 0).await;

    // Small claims, so that passwords are stored in several steps.
    let mut operator = Operator::start(plane, &namespace, &["--claim-size", "10"]);
    let manifest = manifest(
        "random",
        &simulator.base_url(),
        serde_json::json!({ "password": random_spec(serde_json::json!({})) }),
    );
    apply_manifest(&client, &namespace, &manifest).await;
    let resource = wait_for_phase(
        &client,
        &namespace,
        "random",
        &[Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed],
        Duration::from_secs(90),
        &operator,
    )
    .await;
    let status = resource.status.clone().expect("status");
    assert_eq!(status.phase, Some(Phase::PartiallyFailed), "{status:?}");
    assert_eq!(status.counts.as_ref().map(|c| c.failed), Some(2));
    assert_eq!(
        status.results.as_ref().map(|r| r.password_secrets.clone()),
        Some(vec!["random-passwords".to_owned()])
    );

    // Every user MAS knows got the password stored for it, sent once as a
    // password body, and the passwords meet the policy and differ. The
    // passwords of the failed users were removed at the end of the run.
    let passwords = stored_passwords(&client, &namespace, &resource).await;
    assert_eq!(passwords.len(), users.len());
    assert!(!passwords.contains_key("ghost-a"));
    assert!(!passwords.contains_key("ghost-b"));
    assert_eq!(simulator.ledger_for("ghost-a").len(), 1);
    for user in &users {
        let password = &passwords[user];
        assert_meets_policy(user, password);
        assert!(
            simulator.password_matches(user, password),
            "{user}: MAS has another password"
        );
        let calls = simulator.ledger_for(user);
        assert_eq!(calls.len(), 1, "{user}: {calls:?}");
        assert_eq!(calls[0].body_kind, BodyKind::Password);
        assert!(calls[0].applied);
    }
    let distinct: HashSet<&String> = passwords.values().collect();
    assert_eq!(distinct.len(), users.len());

    // No password appears anywhere else.
    assert_passwords_nowhere_else(&client, &namespace, &operator, &passwords).await;

    // Deleting the resource deletes its password Secret.
    let resources: Api<BulkPasswordReset> = Api::namespaced(client.clone(), &namespace);
    resources
        .delete("random", &Default::default())
        .await
        .expect("resource deleted");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while secrets
        .get_opt("random-passwords")
        .await
        .expect("Secret readable")
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "password Secret still there after the resource was deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    operator.terminate().await;
    simulator.shutdown().await;
}

#[tokio::test]
async fn mas_generated_passwords_are_kept() {
    let users: Vec<String> = (1..=12).map(|n| format!("gen{n:02}")).collect();
    let Setup {
        plane,
        client,
        namespace,
        simulator,
    } = setup("generated", &users, &users, 0).await;

    let mut operator = Operator::start(plane, &namespace, &[]);
    let manifest = manifest(
        "generated",
        &simulator.base_url(),
        serde_json::json!({ "emailPassword": false }),
    );
    apply_manifest(&client, &namespace, &manifest).await;
    let resource = wait_for_phase(
        &client,
        &namespace,
        "generated",
        &[Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed],
        Duration::from_secs(60),
        &operator,
    )
    .await;
    assert_eq!(
        resource.status.as_ref().and_then(|status| status.phase),
        Some(Phase::Succeeded)
    );

    let passwords = stored_passwords(&client, &namespace, &resource).await;
    assert_eq!(passwords.len(), users.len());
    for user in &users {
        assert!(
            simulator.password_matches(user, &passwords[user]),
            "{user}: the stored password is not the one MAS generated"
        );
        assert_eq!(simulator.ledger_for(user)[0].body_kind, BodyKind::Empty);
    }

    assert_passwords_nowhere_else(&client, &namespace, &operator, &passwords).await;
    operator.terminate().await;
    simulator.shutdown().await;
}

/// Waits until the simulator has applied at least `count` password calls.
async fn wait_for_applied(simulator: &SimulatorHandle, count: usize, operator: &Operator) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while simulator.ledger_applied_counts().len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {count} users reset; log:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn crash_loses_no_applied_password() {
    let users: Vec<String> = (1..=40).map(|n| format!("crash{n:02}")).collect();
    let Setup {
        plane,
        client,
        namespace,
        simulator,
    } = setup("random-crash", &users, &users, 150).await;

    let mut operator = Operator::start(
        plane,
        &namespace,
        &["--claim-size", "8", "--flush-interval-ms", "5000"],
    );
    let manifest = manifest(
        "crash",
        &simulator.base_url(),
        serde_json::json!({
            "password": random_spec(serde_json::json!({})),
            "concurrency": 4,
        }),
    );
    apply_manifest(&client, &namespace, &manifest).await;

    // Kill the operator while requests are in flight and outcomes are not
    // yet recorded, then let a new process finish the run.
    wait_for_applied(&simulator, 10, &operator).await;
    operator.kill();
    operator.restart();
    let resource = wait_for_phase(
        &client,
        &namespace,
        "crash",
        &[Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed],
        Duration::from_secs(120),
        &operator,
    )
    .await;

    // Each user MAS reset can log in with the password in the Secret, and
    // none was reset twice.
    let passwords = stored_passwords(&client, &namespace, &resource).await;
    let applied = simulator.ledger_applied_counts();
    assert!(applied.len() >= 10, "{applied:?}");
    for (user, count) in &applied {
        assert_eq!(*count, 1, "{user} was reset {count} times");
        let password = passwords
            .get(user)
            .unwrap_or_else(|| panic!("{user} was reset but its password is not stored"));
        assert!(simulator.password_matches(user, password), "{user}");
    }
    let counts = resource
        .status
        .as_ref()
        .and_then(|status| status.counts.clone())
        .expect("counts");
    assert_eq!(counts.done, users.len() as i64, "{counts:?}");
    assert_eq!(counts.failed, 0, "{counts:?}");

    operator.terminate().await;
    simulator.shutdown().await;
}

#[tokio::test]
async fn foreign_output_secret_stops_run() {
    let users: Vec<String> = (1..=3).map(|n| format!("fgn{n}")).collect();
    let Setup {
        plane,
        client,
        namespace,
        simulator,
    } = setup("random-foreign", &users, &users, 0).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let foreign = Secret {
        metadata: ObjectMeta {
            name: Some("team-passwords".to_owned()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(
            "note".to_owned(),
            "not the operator's".to_owned(),
        )])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &foreign)
        .await
        .expect("foreign Secret created");

    let mut operator = Operator::start(plane, &namespace, &[]);
    let manifest = manifest(
        "foreign",
        &simulator.base_url(),
        serde_json::json!({
            "password": random_spec(serde_json::json!({ "outputSecretName": "team-passwords" })),
        }),
    );
    apply_manifest(&client, &namespace, &manifest).await;
    let resource = wait_for_phase(
        &client,
        &namespace,
        "foreign",
        &[Phase::Pending, Phase::Running, Phase::Failed],
        Duration::from_secs(60),
        &operator,
    )
    .await;

    let stalled = condition(&resource, "Stalled").expect("Stalled condition");
    assert_eq!(stalled.reason, "PasswordSecretConflict");
    assert!(
        stalled.message.contains("team-passwords"),
        "{}",
        stalled.message
    );
    assert!(simulator.ledger().is_empty(), "a password call was sent");
    let untouched = secrets.get("team-passwords").await.expect("still there");
    assert!(untouched.owner_references().is_empty());
    assert_eq!(
        untouched.data.expect("data").keys().collect::<Vec<_>>(),
        ["note"]
    );

    operator.terminate().await;
    simulator.shutdown().await;
}

#[tokio::test]
async fn long_list_uses_chunked_secrets() {
    let users: Vec<String> = (1..=1005).map(|n| format!("bulk{n:04}")).collect();
    let Setup {
        plane,
        client,
        namespace,
        simulator,
    } = setup("random-chunks", &users, &users, 0).await;

    let mut operator = Operator::start(plane, &namespace, &[]);
    let manifest = manifest(
        "chunks",
        &simulator.base_url(),
        serde_json::json!({
            "password": random_spec(serde_json::json!({})),
            "concurrency": 16,
        }),
    );
    apply_manifest(&client, &namespace, &manifest).await;
    let resource = wait_for_phase(
        &client,
        &namespace,
        "chunks",
        &[Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed],
        Duration::from_secs(180),
        &operator,
    )
    .await;
    let status = resource.status.clone().expect("status");
    assert_eq!(status.phase, Some(Phase::Succeeded));
    assert_eq!(
        status.results.map(|results| results.password_secrets),
        Some(vec![
            "chunks-passwords-00000".to_owned(),
            "chunks-passwords-00001".to_owned(),
        ])
    );

    let passwords = stored_passwords(&client, &namespace, &resource).await;
    assert_eq!(passwords.len(), users.len());
    for user in [&users[0], &users[999], &users[1000], &users[1004]] {
        assert!(simulator.password_matches(user, &passwords[user]), "{user}");
    }

    operator.terminate().await;
    simulator.shutdown().await;
}
