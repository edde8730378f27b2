//! The operator's `--allowed-hosts` allowlist: a resource aimed at another
//! host stops before it reads its credentials or sends anything, while a
//! resource aimed at an allowed host runs.

mod common;

use std::time::Duration;

use common::*;
use mas_reset_operator::api::Phase;
use mas_reset_operator::simulator::{SimUser, Simulator, SimulatorConfig, StaticToken};

const TOKEN: &str = "e2e-tenancy-token-2b6c";

#[tokio::test]
async fn host_outside_allowlist_sends_nothing() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let namespace = namespace(&client, "tenancy").await;

    let users: Vec<String> = (1..=3).map(|n| format!("tenant-user{n}")).collect();
    let simulator = Simulator::start(SimulatorConfig {
        users: users.iter().map(SimUser::local).collect(),
        tokens: vec![StaticToken::new(TOKEN, true)],
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    let port = simulator.local_addr().port();
    user_list_config_map(&client, &namespace, "users", excel_csv(&users)).await;
    secret(&client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;

    // Both URLs reach the same simulator; only the host name differs.
    let mut operator = Operator::start(
        plane,
        &namespace,
        &["--allowed-hosts", "localhost,*.svc.cluster.local"],
    );
    let outside = manifest(
        "outside",
        &format!("http://127.0.0.1:{port}"),
        serde_json::json!({}),
    );
    apply_manifest(&client, &namespace, &outside).await;

    let blocked = wait_for_phase(
        &client,
        &namespace,
        "outside",
        &[Phase::Pending, Phase::Running, Phase::Failed],
        Duration::from_secs(60),
        &operator,
    )
    .await;
    assert_eq!(
        blocked.status.as_ref().and_then(|status| status.phase),
        Some(Phase::Pending)
    );
    let stalled = condition(&blocked, "Stalled").expect("Stalled condition");
    assert_eq!(stalled.status, "True");
    assert_eq!(stalled.reason, "HostNotAllowed");
    assert_eq!(
        stalled.message,
        "MAS host \"127.0.0.1\" is not in the operator's allowed hosts (localhost,*.svc.cluster.local); ask the operator's administrators to add it to --allowed-hosts"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = events(&client, &namespace).await;
    assert!(
        events.iter().any(|event| {
            event.reason.as_deref() == Some("HostNotAllowed")
                && event.type_.as_deref() == Some("Warning")
        }),
        "no HostNotAllowed Warning Event in {events:?}"
    );
    assert!(simulator.ledger().is_empty(), "a password call was sent");
    assert!(simulator.lookups().is_empty(), "a lookup was sent");
    assert!(simulator.authentications().is_empty());

    // The same simulator under an allowed name runs.
    let inside = manifest(
        "inside",
        &format!("http://localhost:{port}"),
        serde_json::json!({}),
    );
    apply_manifest(&client, &namespace, &inside).await;
    let finished = wait_for_phase(
        &client,
        &namespace,
        "inside",
        &[Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed],
        Duration::from_secs(60),
        &operator,
    )
    .await;
    assert_eq!(
        finished.status.as_ref().and_then(|status| status.phase),
        Some(Phase::Succeeded)
    );
    assert_eq!(simulator.ledger().len(), users.len());

    operator.terminate().await;
    simulator.shutdown().await;
}
