//! End to end on a real API server and the MAS simulator: a run stops
//! sending when `maxFailures` users failed, while `suspend` is true, and when
//! its resource is deleted.

mod common;
mod support;

use std::time::Duration;

use common::*;
use kube::Api;
use kube::api::DeleteParams;
use mas_reset_operator::api::{BulkPasswordReset, Phase};
use mas_reset_operator::controller::FINALIZER;
use mas_reset_operator::simulator::{Simulator, SimulatorConfig};
use support::*;

const TOKEN: &str = "e2e-stopping-token-7a0c";

/// How long the ledger must stay flat to count as "no request sent".
const QUIET: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_failures_stops_sending() {
    let test = TestNamespace::create("max-failures").await;
    let (client, namespace) = (test.client.clone(), test.name.clone());

    // Every third user is unknown to MAS and fails with 404.
    let known = numbered("user", 140);
    let mut list = Vec::new();
    for (n, user) in known.iter().enumerate() {
        list.push(user.clone());
        if n % 2 == 1 {
            list.push(format!("ghost{n:04}"));
        }
    }
    let simulator = Simulator::start(SimulatorConfig {
        latency_ms: 20,
        ..simulator_config(&known, TOKEN)
    })
    .await
    .expect("simulator starts");
    let mut operator = test
        .start_run(
            "max-failures",
            &simulator.base_url(),
            &list,
            &[("token", TOKEN)],
            serde_json::json!({ "concurrency": 4, "maxFailures": 5 }),
        )
        .await;

    let resource = test
        .wait_for_end("max-failures", Duration::from_secs(120), &operator)
        .await;
    let calls_at_stop = simulator.ledger().len();
    let status = resource.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(status.conditions[0].reason, "MaxFailuresReached");
    let counts = status.counts.expect("counts");
    assert!(counts.failed >= 5, "{counts:?}");
    // Requests already in flight finish; no new one starts.
    assert!(counts.failed < 5 + 4, "{counts:?}");
    assert!(counts.not_sent > 0, "{counts:?}");
    assert_eq!(counts.done + counts.not_sent, counts.total, "{counts:?}");
    assert_eq!(calls_at_stop as i64, counts.done, "one call per user done");
    eprintln!(
        "maxFailures: stopped after {calls_at_stop} calls, {} failed, {} not sent",
        counts.failed, counts.not_sent
    );

    assert_no_calls_for(&simulator, QUIET, "stopped run sent").await;
    let events =
        events_with_reason(&client, &namespace, "max-failures", "MaxFailuresReached").await;
    assert_eq!(events.len(), 1, "{events:?}");

    // The users not sent have no call, and come after every user sent.
    let table = result_table(&client, &namespace, "max-failures").await;
    let sent: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, user)| !simulator.ledger_for(user).is_empty())
        .map(|(index, _)| index)
        .collect();
    assert_eq!(sent.len(), calls_at_stop);
    assert_eq!(
        sent,
        (0..sent.len()).collect::<Vec<_>>(),
        "users sent out of order"
    );
    for (index, user) in list.iter().enumerate() {
        assert_eq!(table.contains_key(user), index < sent.len(), "{user}");
    }

    operator.terminate().await;
    simulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_pauses_and_resume_finishes_once() {
    let test = TestNamespace::create("suspend").await;
    let (client, namespace) = (test.client.clone(), test.name.clone());

    let users = numbered("user", 150);
    let simulator = Simulator::start(SimulatorConfig {
        latency_ms: 20,
        ..simulator_config(&users, TOKEN)
    })
    .await
    .expect("simulator starts");
    let spec = |suspend: bool| serde_json::json!({ "concurrency": 4, "requestsPerSecond": 15, "suspend": suspend });
    let url = simulator.base_url();
    let mut operator = test
        .start_run("suspend", &url, &users, &[("token", TOKEN)], spec(false))
        .await;
    wait_for_calls(&simulator, 30, Duration::from_secs(60), &operator).await;

    // Suspended: Paused, and nothing is sent.
    test.apply("suspend", &url, spec(true)).await;
    let paused = wait_for_phase(
        &client,
        &namespace,
        "suspend",
        &[Phase::Paused],
        Duration::from_secs(60),
        &operator,
    )
    .await;
    let status = paused.status.expect("status");
    assert_eq!(status.conditions[0].reason, "Suspended");
    let counts = status.counts.expect("counts");
    assert!(counts.done < counts.total, "{counts:?}");
    let calls_while_suspended = assert_no_calls_for(&simulator, QUIET, "suspended run sent").await;
    assert_eq!(calls_while_suspended as i64, counts.done, "{counts:?}");

    // Resumed: finishes, every user reset once.
    test.apply("suspend", &url, spec(false)).await;
    let resource = test
        .wait_for_end("suspend", Duration::from_secs(120), &operator)
        .await;
    let status = resource.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Succeeded));
    assert_eq!(status.counts.expect("counts").succeeded, 150);
    let ledger = simulator.ledger();
    assert_eq!(ledger.len(), users.len(), "calls");
    let applied = simulator.ledger_applied_counts();
    assert_eq!(applied.len(), users.len());
    assert!(
        applied.values().all(|count| *count == 1),
        "a user was reset twice"
    );
    let resumed = events_with_reason(&client, &namespace, "suspend", "Resumed").await;
    assert_eq!(resumed.len(), 1, "{resumed:?}");

    operator.terminate().await;
    simulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_stops_sending_and_cleans_up() {
    let test = TestNamespace::create("delete").await;
    let (client, namespace) = (test.client.clone(), test.name.clone());

    let users = numbered("user", 200);
    let simulator = Simulator::start(SimulatorConfig {
        latency_ms: 20,
        ..simulator_config(&users, TOKEN)
    })
    .await
    .expect("simulator starts");
    let mut operator = test
        .start_run(
            "delete",
            &simulator.base_url(),
            &users,
            &[("token", TOKEN)],
            serde_json::json!({ "concurrency": 4, "requestsPerSecond": 10 }),
        )
        .await;

    // Wait until results are recorded, so there is something to clean up.
    let api: Api<BulkPasswordReset> = Api::namespaced(client.clone(), &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while result_config_maps(&client, &namespace, "delete")
        .await
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no result ConfigMap appeared\noperator log:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live = api.get("delete").await.expect("readable");
    assert!(
        live.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&FINALIZER.to_owned())
    );

    api.delete("delete", &DeleteParams::default())
        .await
        .expect("delete accepted");

    // The finalizer goes once the run stopped, and the object with it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while api.get_opt("delete").await.expect("readable").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resource is still there\noperator log:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = assert_no_calls_for(&simulator, QUIET, "deleted run sent").await;
    assert!(calls < users.len(), "the run finished before the deletion");
    assert!(
        result_config_maps(&client, &namespace, "delete")
            .await
            .is_empty(),
        "result ConfigMaps left behind"
    );
    let suspended = events_with_reason(&client, &namespace, "delete", "Suspended").await;
    assert!(
        suspended.is_empty(),
        "deletion reported as suspend: {suspended:?}"
    );

    operator.terminate().await;
    simulator.shutdown().await;
}
