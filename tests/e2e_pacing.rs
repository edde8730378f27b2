//! End to end on a real API server and the MAS simulator: `requestsPerSecond`
//! bounds the password calls that MAS receives in any one second,
//! `concurrency` bounds the calls in flight, and both can change while the
//! run goes on.

mod common;
mod support;

use std::time::Duration;

use mas_reset_operator::api::Phase;
use mas_reset_operator::simulator::{
    FaultPlan, LedgerEntry, RandomFaults, RetryAfterForm, Simulator, SimulatorConfig,
    SimulatorHandle,
};
use support::*;

const TOKEN: &str = "e2e-pacing-token-51d7";

fn arrivals(entries: &[LedgerEntry]) -> Vec<u64> {
    entries.iter().map(|entry| entry.at_ms).collect()
}

async fn start_simulator(users: &[String], latency_ms: u64, faults: FaultPlan) -> SimulatorHandle {
    Simulator::start(SimulatorConfig {
        latency_ms,
        faults,
        ..simulator_config(users, TOKEN)
    })
    .await
    .expect("simulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_second_bounds_every_window() {
    const RATE: usize = 20;
    let test = TestNamespace::create("rate").await;

    // Retries after a 429 take a slot of the same pacer as first calls. The
    // operator spaces calls 2 % wider than 1/R, so the bound is kept at the
    // simulator unless arrival delays differ by 20 ms or more.
    let users = numbered("user", 150);
    let simulator = start_simulator(
        &users,
        20,
        FaultPlan {
            random: Some(RandomFaults {
                seed: 3,
                rate_429: 0.1,
                retry_after_forms: vec![RetryAfterForm::Missing],
                ..RandomFaults::default()
            }),
            ..FaultPlan::default()
        },
    )
    .await;
    let mut operator = test
        .start_run(
            "rate",
            &simulator.base_url(),
            &users,
            &[("token", TOKEN)],
            serde_json::json!({ "concurrency": 16, "requestsPerSecond": RATE }),
        )
        .await;
    let resource = test
        .wait_for_end("rate", Duration::from_secs(120), &operator)
        .await;

    let status = resource.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Succeeded));
    let ledger = simulator.ledger();
    assert!(ledger.len() > users.len(), "no call was retried");
    assert_at_most_per_second(&arrivals(&ledger), RATE, "requestsPerSecond 20");
    let (most, _) = max_in_window(&arrivals(&ledger), 1_000);
    eprintln!("rate: {} calls, at most {most} in one second", ledger.len());

    operator.terminate().await;
    simulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bounds_calls_in_flight() {
    const CONCURRENCY: usize = 6;
    let test = TestNamespace::create("in-flight").await;

    let users = numbered("user", 120);
    let simulator = start_simulator(&users, 100, FaultPlan::default()).await;
    let mut operator = test
        .start_run(
            "in-flight",
            &simulator.base_url(),
            &users,
            &[("token", TOKEN)],
            serde_json::json!({ "concurrency": CONCURRENCY }),
        )
        .await;
    let resource = test
        .wait_for_end("in-flight", Duration::from_secs(120), &operator)
        .await;

    assert_eq!(
        resource.status.expect("status").phase,
        Some(Phase::Succeeded)
    );
    assert_eq!(simulator.ledger().len(), users.len());
    let peak = simulator.peak_concurrent_requests();
    assert!(peak <= CONCURRENCY, "{peak} requests in flight at once");
    assert!(peak > 1, "requests never overlapped");
    eprintln!("in flight: peak {peak} at concurrency {CONCURRENCY}");

    operator.terminate().await;
    simulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_changes_apply_without_restart() {
    let test = TestNamespace::create("live").await;
    let (client, namespace) = (test.client.clone(), test.name.clone());

    let users = numbered("user", 200);
    let simulator = start_simulator(&users, 100, FaultPlan::default()).await;
    let settings = |concurrency: usize, rate: usize| serde_json::json!({ "concurrency": concurrency, "requestsPerSecond": rate });
    // Slow start: 2 in flight, 4 per second.
    let mut operator = test
        .start_run(
            "live",
            &simulator.base_url(),
            &users,
            &[("token", TOKEN)],
            settings(2, 4),
        )
        .await;
    wait_for_calls(&simulator, 8, Duration::from_secs(60), &operator).await;
    let slow_peak = simulator.peak_concurrent_requests();
    assert!(slow_peak <= 2, "{slow_peak} in flight at concurrency 2");
    assert_at_most_per_second(&arrivals(&simulator.ledger()), 4, "requestsPerSecond 4");

    // Faster: 10 in flight, 40 per second.
    test.apply("live", &simulator.base_url(), settings(10, 40))
        .await;
    wait_for_calls(&simulator, 150, Duration::from_secs(60), &operator).await;
    let fast_peak = simulator.peak_concurrent_requests();
    let fast_arrivals = arrivals(&simulator.ledger());
    assert!(fast_peak <= 10, "{fast_peak} in flight at concurrency 10");
    assert!(fast_peak > 2, "concurrency 10 never used more than 2");
    assert_at_most_per_second(&fast_arrivals, 40, "requestsPerSecond 40");
    let (fast_most, _) = max_in_window(&fast_arrivals, 1_000);
    assert!(fast_most > 4, "the rate never rose above 4 per second");

    // Slower again: 5 per second for the last 50 users or so. The last 20
    // calls come seconds after the change.
    test.apply("live", &simulator.base_url(), settings(10, 5))
        .await;
    let resource = test
        .wait_for_end("live", Duration::from_secs(120), &operator)
        .await;
    assert_eq!(
        resource.status.expect("status").phase,
        Some(Phase::Succeeded)
    );
    let ledger = simulator.ledger();
    let tail = arrivals(&ledger[ledger.len() - 20..]);
    assert_at_most_per_second(&tail, 5, "requestsPerSecond 5, last 20 calls");
    eprintln!(
        "live: peak {slow_peak} then {fast_peak}; at most {fast_most} calls in one second at 40, {} at 5",
        max_in_window(&tail, 1_000).0
    );

    // One run from start to end: every user once, no restart.
    let applied = simulator.ledger_applied_counts();
    assert_eq!(applied.len(), users.len());
    assert!(
        applied.values().all(|count| *count == 1),
        "a user was reset twice"
    );
    assert_eq!(ledger.len(), users.len());
    assert_eq!(
        events_with_reason(&client, &namespace, "live", "Started")
            .await
            .len(),
        1
    );
    assert!(
        events_with_reason(&client, &namespace, "live", "Resumed")
            .await
            .is_empty()
    );

    operator.terminate().await;
    simulator.shutdown().await;
}
