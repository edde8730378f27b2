//! Crash safety end to end: the operator process is killed with SIGKILL or
//! stopped with SIGTERM in the middle of a run, on a real API server and the
//! MAS simulator. A reset mails the user, so a user reset twice is a visible
//! fault, and a user neither reset nor reported is data loss.

mod common;
mod fault_support;

use std::collections::BTreeSet;

use common::*;
use fault_support::*;
use mas_reset_operator::api::Phase;
use mas_reset_operator::run::UserResult;

/// Users in the crash runs.
const USERS: usize = 3000;

/// MAS latency per request. With `CONCURRENCY` requests in flight a run of
/// `USERS` takes several seconds, long enough for three kills.
const LATENCY_MS: u64 = 20;

/// `counts.done` at which the operator is killed, one value per kill.
const KILL_AT: [i64; 3] = [500, 1300, 2100];

/// Requests in flight at once in the crash runs.
const CONCURRENCY: i64 = 8;

/// Most users one crash can turn Unknown with the default claim size of
/// 200: the claim reaches at most 1.5 claims past the next user to send,
/// and the requests in flight are claimed too.
const MAX_UNKNOWN_PER_KILL: i64 = 300 + CONCURRENCY;

/// What one kill left behind.
struct Kill {
    /// `counts.done` in status when the process was killed.
    done_at_kill: i64,
    /// Users the restarted process recovered as Unknown.
    recovered_unknown: i64,
}

/// Kills the operator at each `KILL_AT` mark and restarts it. With
/// `settle_unknown`, waits before each kill until no user is Unknown, so
/// that a user re-sent by `retryUnknown` is never in flight at a kill.
async fn kill_three_times(
    scenario: &Scenario,
    name: &str,
    operator: &mut Operator,
    settle_unknown: bool,
) -> Vec<Kill> {
    let mut kills = Vec::new();
    let mut recovered_before = 0;
    for mark in KILL_AT {
        let status = scenario
            .wait_for_status(
                name,
                &format!("counts.done >= {mark}"),
                std::time::Duration::from_secs(120),
                &[operator],
                |status| {
                    let unknown = status.counts.as_ref().map_or(0, |counts| counts.unknown);
                    done(status) >= mark && (!settle_unknown || unknown == 0)
                },
            )
            .await;
        let holder_before = holder(&status);
        operator.kill();

        let at_kill = scenario.resource(name).await.status.unwrap_or_default();
        assert!(
            done(&at_kill) < USERS as i64,
            "the run finished before kill at {mark}; slow the simulator down"
        );

        operator.restart();
        let resumed = scenario
            .wait_for_status(
                name,
                "the restarted operator to take the run",
                std::time::Duration::from_secs(120),
                &[operator],
                |status| holder(status) != holder_before,
            )
            .await;
        let recovered = recovered_unknown(&resumed);
        assert!(
            recovered - recovered_before <= MAX_UNKNOWN_PER_KILL,
            "the kill at counts.done = {} made {} users Unknown",
            done(&at_kill),
            recovered - recovered_before
        );
        kills.push(Kill {
            done_at_kill: done(&at_kill),
            recovered_unknown: recovered - recovered_before,
        });
        recovered_before = recovered;
    }
    kills
}

/// Prints the Unknown users of each kill, for the test output.
fn report_kills(test: &str, kills: &[Kill]) {
    for (number, kill) in kills.iter().enumerate() {
        eprintln!(
            "{test}: kill {} at counts.done = {}: {} users recovered as Unknown",
            number + 1,
            kill.done_at_kill,
            kill.recovered_unknown
        );
    }
}

#[tokio::test]
async fn sigkill_three_times_sends_nobody_twice() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let scenario = Scenario::start(&client, "crash-kill", USERS, LATENCY_MS).await;

    let mut operator = Operator::start(plane, &scenario.namespace, &[]);
    scenario
        .apply("crash", serde_json::json!({ "concurrency": CONCURRENCY }))
        .await;

    let kills = kill_three_times(&scenario, "crash", &mut operator, false).await;
    let status = scenario.wait_for_final_phase("crash", &[&operator]).await;
    report_kills("sigkill_three_times_sends_nobody_twice", &kills);

    // Every user is final, and the phase shows whether some are unconfirmed.
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.total, USERS as i64);
    assert_eq!(counts.done, USERS as i64);
    assert_eq!(counts.not_sent, 0);
    assert_eq!(counts.failed, 0);
    let recovered: i64 = kills.iter().map(|kill| kill.recovered_unknown).sum();
    let expected_phase = if recovered > 0 {
        Phase::PartiallyFailed
    } else {
        Phase::Succeeded
    };
    assert_eq!(status.phase, Some(expected_phase));

    // The result table, the counts and the recovery marks agree.
    let table = scenario.results("crash").await;
    assert_eq!(table.len(), USERS);
    let unknown = users_with(&table, UserResult::Unknown);
    assert_eq!(counts.unknown, unknown.len() as i64);
    assert_eq!(recovered_unknown(&status), unknown.len() as i64);
    assert_eq!(recovered, unknown.len() as i64);
    assert_eq!(counts.succeeded, (USERS - unknown.len()) as i64);

    // Nobody was reset twice, and everybody not reset is reported Unknown.
    let applied = scenario.applied();
    assert_ledger_matches_results(&scenario.user_ids, &table, &applied);
    let never_applied: BTreeSet<String> = scenario
        .user_ids
        .iter()
        .filter(|user| !applied.contains_key(*user))
        .cloned()
        .collect();
    assert!(never_applied.is_subset(&unknown));

    assert!(
        !operator.log().contains(TOKEN),
        "the operator log contains the MAS token"
    );
    operator.terminate().await;
    scenario.simulator.shutdown().await;
}

#[tokio::test]
async fn retry_unknown_resends_after_sigkill() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let scenario = Scenario::start(&client, "crash-retry", USERS, LATENCY_MS).await;

    let mut operator = Operator::start(plane, &scenario.namespace, &[]);
    scenario
        .apply(
            "crash-retry",
            serde_json::json!({ "concurrency": CONCURRENCY, "retryUnknown": true }),
        )
        .await;

    let kills = kill_three_times(&scenario, "crash-retry", &mut operator, true).await;
    let status = scenario
        .wait_for_final_phase("crash-retry", &[&operator])
        .await;
    report_kills("retry_unknown_resends_after_sigkill", &kills);

    assert_eq!(status.phase, Some(Phase::Succeeded));
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.done, USERS as i64);
    assert_eq!(counts.succeeded, USERS as i64);
    assert_eq!(counts.unknown, 0);

    let table = scenario.results("crash-retry").await;
    assert_eq!(table.len(), USERS);
    assert_eq!(users_with(&table, UserResult::Succeeded).len(), USERS);

    // Each Unknown user was sent again once: at most two resets per user,
    // and no more users reset twice than were recovered as Unknown.
    let recovered: i64 = kills.iter().map(|kill| kill.recovered_unknown).sum();
    assert_eq!(recovered_unknown(&status), recovered);
    let applied = scenario.applied();
    for user in &scenario.user_ids {
        let count = applied.get(user).copied().unwrap_or(0);
        assert!(
            (1..=2).contains(&count),
            "user {user} applied {count} times"
        );
    }
    let twice = applied_twice_or_more(&applied);
    assert!(
        twice.len() as i64 <= recovered,
        "{} users applied twice, but only {recovered} were recovered as Unknown",
        twice.len()
    );
    eprintln!(
        "retry_unknown_resends_after_sigkill: {} users applied twice of {recovered} recovered",
        twice.len()
    );

    operator.terminate().await;
    scenario.simulator.shutdown().await;
}

#[tokio::test]
async fn sigterm_records_requests_in_flight() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let users = 1500;
    let scenario = Scenario::start(&client, "crash-term", users, LATENCY_MS).await;

    let mut operator = Operator::start(plane, &scenario.namespace, &[]);
    scenario
        .apply(
            "graceful",
            serde_json::json!({ "concurrency": CONCURRENCY }),
        )
        .await;

    scenario.wait_for_done("graceful", 500, &[&operator]).await;
    operator.terminate().await;

    // The final checkpoint lowered the claim to the first user without an
    // outcome, so every claimed user has a recorded outcome.
    let stopped = scenario.resource("graceful").await.status.expect("status");
    let progress = stopped.progress.clone().expect("progress");
    assert!(
        done(&stopped) < users as i64,
        "the run finished before SIGTERM"
    );
    assert_eq!(progress.claimed, done(&stopped));
    assert_eq!(progress.recorded, done(&stopped));
    assert!(
        operator
            .log()
            .contains("run stopped for operator shutdown; it resumes on the next start"),
        "no shutdown line in the log:\n{}",
        operator.log()
    );

    operator.restart();
    let status = scenario
        .wait_for_final_phase("graceful", &[&operator])
        .await;

    scenario
        .assert_every_user_reset_once("graceful", &status)
        .await;

    operator.terminate().await;
    scenario.simulator.shutdown().await;
}

#[tokio::test]
async fn suspend_mid_run_resumes_without_unknown() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let users = 1500;
    let scenario = Scenario::start(&client, "crash-suspend", users, LATENCY_MS).await;
    let operator = Operator::start(plane, &scenario.namespace, &[]);
    let spec =
        |suspend: bool| serde_json::json!({ "concurrency": CONCURRENCY, "suspend": suspend });
    let is_suspended = |status: &mas_reset_operator::api::BulkPasswordResetStatus| {
        status.phase == Some(Phase::Paused)
            && status
                .conditions
                .iter()
                .any(|condition| condition.reason == "Suspended")
    };

    // Created suspended: the reconcile itself writes the phase.
    scenario.apply("suspended", spec(true)).await;
    scenario
        .wait_for_status(
            "suspended",
            "phase Paused before the start",
            std::time::Duration::from_secs(60),
            &[&operator],
            is_suspended,
        )
        .await;
    assert!(scenario.applied().is_empty());

    // Suspended mid-run: the run task records what was in flight.
    scenario.apply("suspended", spec(false)).await;
    scenario.wait_for_done("suspended", 300, &[&operator]).await;
    let suspended = scenario.apply("suspended", spec(true)).await;
    let generation = suspended.metadata.generation;
    let paused = scenario
        .wait_for_status(
            "suspended",
            "phase Paused mid-run",
            std::time::Duration::from_secs(60),
            &[&operator],
            |status| is_suspended(status) && status.observed_generation == generation,
        )
        .await;
    let progress = paused.progress.clone().expect("progress");
    assert!(
        done(&paused) < users as i64,
        "the run finished before suspend"
    );
    assert_eq!(progress.claimed, done(&paused));

    scenario.apply("suspended", spec(false)).await;
    let status = scenario
        .wait_for_final_phase("suspended", &[&operator])
        .await;
    scenario
        .assert_every_user_reset_once("suspended", &status)
        .await;

    let mut operator = operator;
    operator.terminate().await;
    scenario.simulator.shutdown().await;
}
