//! `dryRun: true` end to end: the operator only reads each user with
//! `GET /v3/users/{id}`, changes no password, and reports who would be
//! reset and who was not found.

mod common;

use std::time::Duration;

use common::*;
use mas_reset_operator::api::{Phase, UserResult};
use mas_reset_operator::simulator::{SimUser, Simulator, SimulatorConfig, StaticToken};

const TOKEN: &str = "e2e-dry-run-token-6e3d";

#[tokio::test]
async fn dry_run_only_reads_users() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let namespace = namespace(&client, "dry-run").await;

    let existing: Vec<String> = (1..=8).map(|n| format!("dry{n}")).collect();
    let simulator = Simulator::start(SimulatorConfig {
        users: existing.iter().map(SimUser::local).collect(),
        tokens: vec![StaticToken::new(TOKEN, true)],
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    let mut list = existing.clone();
    list.insert(3, "ghost/one".to_owned());
    list.push("ghost-two".to_owned());
    user_list_config_map(&client, &namespace, "users", excel_csv(&list)).await;
    secret(&client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;

    let mut operator = Operator::start(plane, &namespace, &[]);
    let manifest = manifest(
        "dry",
        &simulator.base_url(),
        serde_json::json!({ "dryRun": true, "emailPassword": false }),
    );
    apply_manifest(&client, &namespace, &manifest).await;
    let resource = wait_for_phase(
        &client,
        &namespace,
        "dry",
        &[Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed],
        Duration::from_secs(60),
        &operator,
    )
    .await;
    let status = resource.status.clone().expect("status");

    // Only lookups reached MAS, one per user, each path encoded once.
    assert!(simulator.ledger().is_empty(), "a password call was sent");
    let mut looked_up: Vec<String> = simulator
        .lookups()
        .iter()
        .map(|lookup| lookup.raw_path.clone())
        .collect();
    looked_up.sort();
    let mut expected: Vec<String> = existing
        .iter()
        .map(|id| format!("/v3/users/{id}"))
        .collect();
    expected.push("/v3/users/ghost%2Fone".to_owned());
    expected.push("/v3/users/ghost-two".to_owned());
    expected.sort();
    assert_eq!(looked_up, expected);

    // Status: who would be reset and who not.
    assert_eq!(status.phase, Some(Phase::PartiallyFailed));
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.total, 10);
    assert_eq!(counts.succeeded, 8);
    assert_eq!(counts.failed, 2);
    assert_eq!(status.users.len(), 10, "a short list shows every user");
    for user in &status.users {
        if user.user_id.starts_with("ghost") {
            assert_eq!(user.result, UserResult::Failed, "{user:?}");
            assert_eq!(user.http_status, Some(404), "{user:?}");
        } else {
            assert_eq!(user.result, UserResult::Succeeded, "{user:?}");
            assert_eq!(user.http_status, Some(200), "{user:?}");
        }
    }
    let ready = condition(&resource, "Ready").expect("Ready condition");
    assert!(
        ready
            .message
            .starts_with("dry run: 8 users exist and would be reset, 2 not found or failed"),
        "{}",
        ready.message
    );

    operator.terminate().await;
    simulator.shutdown().await;
}
