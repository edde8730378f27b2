//! End to end on a real API server and the MAS simulator: a run of 200
//! users, 3 unknown to MAS, and proof that nothing is sent twice afterwards.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use kube::Api;
use kube::api::{Patch, PatchParams};
use mas_reset_operator::api::{BulkPasswordReset, Phase, UserResult};
use mas_reset_operator::simulator::{SimUser, Simulator, SimulatorConfig, StaticToken};

const TOKEN: &str = "e2e-first-run-token-4f9d";

#[tokio::test]
async fn run_reaches_partially_failed_and_sends_once() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let namespace = namespace(&client, "first-run").await;

    // 197 users exist in MAS; the list has 3 more that do not.
    let existing: Vec<String> = (1..=197).map(|n| format!("user{n:04}")).collect();
    let unknown = [
        "ghost-1".to_owned(),
        "ghost-2".to_owned(),
        "ghost-3".to_owned(),
    ];
    let simulator = Simulator::start(SimulatorConfig {
        users: existing.iter().map(SimUser::local).collect(),
        tokens: vec![StaticToken::new(TOKEN, true)],
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");

    let mut list = existing.clone();
    list.insert(50, unknown[0].clone());
    list.insert(120, unknown[1].clone());
    list.push(unknown[2].clone());
    user_list_config_map(&client, &namespace, "users", excel_csv(&list)).await;
    secret(&client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;

    let mut operator = Operator::start(plane, &namespace, &[]);
    let manifest = manifest(
        "reset-200",
        &simulator.base_url(),
        serde_json::json!({ "concurrency": 8 }),
    );
    apply_manifest(&client, &namespace, &manifest).await;

    let resource = wait_for_phase(
        &client,
        &namespace,
        "reset-200",
        &[Phase::PartiallyFailed, Phase::Succeeded, Phase::Failed],
        Duration::from_secs(120),
        &operator,
    )
    .await;
    let status = resource.status.clone().expect("status");

    // Phase and counts.
    assert_eq!(status.phase, Some(Phase::PartiallyFailed));
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.total, 200);
    assert_eq!(counts.succeeded, 197);
    assert_eq!(counts.failed, 3);
    assert_eq!(counts.unknown, 0);
    assert_eq!(status.observed_generation, resource.metadata.generation);

    // Each failure carries HTTP 404 and the MAS error id.
    let failures: Vec<_> = status
        .users
        .iter()
        .filter(|user| user.result == UserResult::Failed)
        .collect();
    assert_eq!(failures.len(), 3);
    for failure in &failures {
        assert!(
            unknown.contains(&failure.user_id),
            "unexpected failure {failure:?}"
        );
        assert_eq!(failure.http_status, Some(404));
        assert!(
            failure
                .error_id
                .as_deref()
                .is_some_and(|id| id.starts_with("AIU")),
            "error id missing: {failure:?}"
        );
    }

    // Exactly one password call per existing user, none applied for the rest.
    let applied = applied_counts(&simulator);
    assert_eq!(applied.len(), 197);
    assert!(
        applied.values().all(|count| *count == 1),
        "a user was reset twice: {applied:?}"
    );
    let calls_after_run = simulator.ledger().len();
    assert_eq!(calls_after_run, 200);

    // A forced reconcile (an annotation change) sends nothing.
    let api: Api<BulkPasswordReset> = Api::namespaced(client.clone(), &namespace);
    let annotate =
        serde_json::json!({ "metadata": { "annotations": { "e2e/force-reconcile": "1" } } });
    api.patch(
        "reset-200",
        &PatchParams::default(),
        &Patch::Merge(&annotate),
    )
    .await
    .expect("annotated");
    operator.wait_for_reconciles(2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        simulator.ledger().len(),
        calls_after_run,
        "forced reconcile sent requests"
    );

    // An operator restart sends nothing.
    operator.restart();
    operator.wait_for_reconciles(1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        simulator.ledger().len(),
        calls_after_run,
        "restart sent requests"
    );

    // Re-applying the same manifest sends nothing and writes no default
    // back into spec. An identical apply changes nothing on the server, so
    // it may not even cause a reconcile.
    let reapplied = apply_manifest(&client, &namespace, &manifest).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        simulator.ledger().len(),
        calls_after_run,
        "re-apply sent requests"
    );
    assert_eq!(reapplied.spec.email_password, None);
    assert_eq!(reapplied.spec.max_attempts, None);

    let final_status = api
        .get("reset-200")
        .await
        .expect("readable")
        .status
        .expect("status");
    assert_eq!(final_status.phase, Some(Phase::PartiallyFailed));

    operator.terminate().await;
    simulator.shutdown().await;
}

fn applied_counts(
    simulator: &mas_reset_operator::simulator::SimulatorHandle,
) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for entry in simulator.ledger() {
        if entry.applied {
            *counts.entry(entry.user_id.clone()).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test]
async fn retry_unknown_on_finished_run_resends_unknown() {
    use mas_reset_operator::simulator::{Fault, FaultPlan};

    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let namespace = namespace(&client, "retry-unknown").await;

    // Two users answer after the request timeout, so their outcome is Unknown.
    let users: Vec<String> = (1..=20).map(|n| format!("member{n:02}")).collect();
    let simulator = Simulator::start(SimulatorConfig {
        users: users.iter().map(SimUser::local).collect(),
        tokens: vec![StaticToken::new(TOKEN, true)],
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    simulator.set_faults(FaultPlan {
        per_user: HashMap::from([
            ("member03".to_owned(), vec![Fault::Delay { ms: 3000 }]),
            ("member17".to_owned(), vec![Fault::Delay { ms: 3000 }]),
        ]),
        ..FaultPlan::default()
    });
    user_list_config_map(&client, &namespace, "users", excel_csv(&users)).await;
    secret(&client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;
    let operator = Operator::start(plane, &namespace, &[]);
    let run = manifest(
        "retry-later",
        &simulator.base_url(),
        serde_json::json!({ "requestTimeoutSeconds": 1 }),
    );
    apply_manifest(&client, &namespace, &run).await;

    let finished = wait_for_phase(
        &client,
        &namespace,
        "retry-later",
        &[Phase::PartiallyFailed, Phase::Succeeded, Phase::Failed],
        Duration::from_secs(60),
        &operator,
    )
    .await;
    let counts = finished
        .status
        .and_then(|status| status.counts)
        .expect("counts");
    assert_eq!(counts.unknown, 2);
    assert_eq!(counts.succeeded, 18);

    // Only an explicit spec edit sends the Unknown users again.
    let mut retry = run.clone();
    retry["spec"]["retryUnknown"] = serde_json::json!(true);
    apply_manifest(&client, &namespace, &retry).await;
    let api: Api<BulkPasswordReset> = Api::namespaced(client.clone(), &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let resent = loop {
        let resource = api.get("retry-later").await.expect("readable");
        let status = resource.status.clone().unwrap_or_default();
        if status.phase == Some(Phase::Succeeded) {
            break resource;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Unknown users were not sent again: {:?}\n{}",
            status.counts,
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let counts = resent
        .status
        .and_then(|status| status.counts)
        .expect("counts");
    assert_eq!(counts.succeeded, 20);
    assert_eq!(counts.unknown, 0);
    let calls = simulator.ledger();
    assert_eq!(
        calls
            .iter()
            .filter(|entry| entry.user_id == "member03")
            .count(),
        2
    );
    assert_eq!(
        calls
            .iter()
            .filter(|entry| entry.user_id == "member01")
            .count(),
        1
    );
    simulator.shutdown().await;
}
