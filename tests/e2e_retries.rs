//! End to end on a real API server and the MAS simulator: which responses the
//! operator retries, how long it waits, and when it gives up.
//!
//! The retry policy under test (`mas::retry::decide`, per user, at most
//! `maxAttempts` requests):
//! - 429 and 503 state that MAS did not process the request, so they are
//!   retried after `Retry-After` (delta-seconds, HTTP-date, or fractional
//!   seconds rounded up), or after the exponential backoff when the header is
//!   missing or malformed. A `Retry-After` above the maximum wait (60 s) fails
//!   the user at once instead of blocking a worker.
//! - A connection that fails before the request is written (here: a TLS
//!   handshake the simulator aborts) is retried after the backoff.
//! - 500 is final: MAS reached its handler and may have changed the password,
//!   and a reset is not idempotent. 400, 403, 404 and 409 are final too.
//! - A request that may have reached MAS without a response (timeout, lost
//!   connection) makes the user `Unknown` and is never sent again.

mod common;
mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use mas_reset_operator::api::Phase;
use mas_reset_operator::run::UserResult;
use mas_reset_operator::simulator::{
    Fault, FaultPlan, LedgerEntry, RandomFaults, RetryAfterForm, Simulator, SimulatorConfig,
    SimulatorHandle,
};
use support::*;

const TOKEN: &str = "e2e-retries-token-8c1e";

/// `spec.maxAttempts` of the fault run.
const MAX_ATTEMPTS: u32 = 4;

/// Shortest backoff of the default policy: half of the 500 ms base delay.
const MIN_BACKOFF_MS: u64 = 250;

/// Longest `Retry-After` the default policy honours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// MAS error id the simulator sends with each injected status.
fn injected_error_id(status: u16) -> &'static str {
    match status {
        429 => "AIUCO1050E",
        500 => "AIUCO1060E",
        503 => "AIUCO1061E",
        _ => "AIUCO1062E",
    }
}

fn status(status: u16, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        status,
        retry_after: retry_after.map(str::to_owned),
    }
}

/// Form of a `Retry-After` value, as the coverage check names it.
fn retry_after_form(value: Option<&str>) -> &'static str {
    match value {
        None => "missing",
        Some(value) if value.ends_with("GMT") => "HTTP-date",
        Some(value) if value.contains('.') => "fractional",
        Some(value) if value.bytes().all(|byte| byte.is_ascii_digit()) => "seconds",
        Some(_) => "malformed",
    }
}

/// Stores the CA of a TLS simulator in ConfigMap `mas-ca` and returns the
/// `spec.tls` that trusts it.
async fn trust_simulator_ca(
    test: &TestNamespace,
    simulator: &SimulatorHandle,
) -> serde_json::Value {
    let ca_pem = simulator.ca_pem().expect("TLS simulator has a CA");
    text_config_map(&test.client, &test.name, "mas-ca", "ca.crt", &ca_pem).await;
    serde_json::json!({ "caBundle": { "configMapName": "mas-ca", "key": "ca.crt" } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_retried_within_limits() {
    let test = TestNamespace::create("retries").await;
    let (client, namespace) = (test.client.clone(), test.name.clone());

    // Scripted users get their fault on the first call that reaches MAS;
    // every other call draws from the random plan.
    let final_statuses = [400u16, 403, 404, 409];
    let mut scripts: HashMap<String, Vec<Fault>> = HashMap::new();
    let mut final_users: HashMap<String, u16> = HashMap::new();
    for code in final_statuses {
        for n in 1..=3 {
            let user = format!("final-{code}-{n}");
            scripts.insert(user.clone(), vec![status(code, None)]);
            final_users.insert(user, code);
        }
    }
    let soon_date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(6));
    let late_date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
    let form_scripts = [
        ("form-seconds", status(429, Some("1"))),
        ("form-date", status(503, Some(&soon_date))),
        ("form-fractional", status(429, Some("0.5"))),
        ("form-malformed", status(503, Some("soon"))),
        ("form-missing", status(429, None)),
        ("too-long-seconds", status(429, Some("120"))),
        ("too-long-date", status(503, Some(&late_date))),
    ];
    for (user, fault) in &form_scripts {
        scripts.insert((*user).to_owned(), vec![fault.clone()]);
    }

    let mut list: Vec<String> = form_scripts
        .iter()
        .map(|(user, _)| (*user).to_owned())
        .collect();
    let mut final_sorted: Vec<String> = final_users.keys().cloned().collect();
    final_sorted.sort();
    let plain = numbered("user", 300 - list.len() - final_sorted.len());
    list.extend(plain);
    // Spread the final-4xx users over the list.
    for (n, user) in final_sorted.into_iter().enumerate() {
        list.insert(10 + n * 23, user);
    }
    assert_eq!(list.len(), 300);

    let simulator = Simulator::start(SimulatorConfig {
        tls: true,
        keep_alive: false,
        faults: FaultPlan {
            per_user: scripts,
            random: Some(RandomFaults {
                seed: 7,
                rate_429: 0.20,
                retry_after_forms: vec![
                    RetryAfterForm::Seconds(1),
                    RetryAfterForm::HttpDate(2),
                    RetryAfterForm::Fractional(0.5),
                    RetryAfterForm::Malformed,
                    RetryAfterForm::Missing,
                ],
                rate_500: 0.05,
                rate_503: 0.05,
                rate_abort_connection: 0.05,
                ..RandomFaults::default()
            }),
            ..FaultPlan::default()
        },
        ..simulator_config(&list, TOKEN)
    })
    .await
    .expect("simulator starts");
    let tls = trust_simulator_ca(&test, &simulator).await;
    let mut operator = test
        .start_run(
            "retries",
            &simulator.base_url(),
            &list,
            &[("token", TOKEN)],
            serde_json::json!({
                "concurrency": 16,
                "maxAttempts": MAX_ATTEMPTS,
                "tls": tls,
            }),
        )
        .await;

    let resource = test
        .wait_for_end("retries", Duration::from_secs(240), &operator)
        .await;
    let status = resource.status.clone().expect("status");
    let table = result_table(&client, &namespace, "retries").await;
    let ledger = simulator.ledger();
    let by_user = ledger_by_user(&ledger);
    let applied = simulator.ledger_applied_counts();

    // Every user has a final result; no user is Unknown, because no
    // request timed out.
    assert_eq!(
        status.phase,
        Some(Phase::PartiallyFailed),
        "{:?}",
        status.conditions.first()
    );
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.total, 300);
    assert_eq!(counts.done, 300);
    assert_eq!(counts.unknown, 0);
    assert_eq!(counts.not_sent, 0);
    assert_eq!(table.len(), 300, "result table incomplete");
    let succeeded = table
        .values()
        .filter(|record| record.outcome.result == UserResult::Succeeded)
        .count();
    assert_eq!(counts.succeeded as usize, succeeded);
    assert_eq!(counts.failed as usize, 300 - succeeded);

    let mut retried_forms: HashMap<&str, usize> = HashMap::new();
    let mut retried_after_abort = 0;
    let mut final_500 = 0;
    let mut exhausted = 0;
    let no_calls = Vec::new();
    for user in &list {
        let record = table
            .get(user)
            .unwrap_or_else(|| panic!("{user}: no result"));
        let outcome = &record.outcome;
        let calls: &Vec<LedgerEntry> = by_user.get(user).unwrap_or(&no_calls);

        // maxAttempts bounds the requests, and the ledger records only those
        // that passed the TLS handshake.
        assert!(
            outcome.attempts <= MAX_ATTEMPTS,
            "{user}: {} attempts",
            outcome.attempts
        );
        assert!(
            calls.len() <= outcome.attempts as usize,
            "{user}: {} calls but {} attempts recorded",
            calls.len(),
            outcome.attempts
        );
        if calls.len() < outcome.attempts as usize && outcome.result == UserResult::Succeeded {
            retried_after_abort += 1;
        }

        // Only 429 and 503 are followed by another call, never sooner than
        // Retry-After requested, or than the shortest backoff without one.
        for pair in calls.windows(2) {
            let (previous, next) = (&pair[0], &pair[1]);
            assert!(
                matches!(previous.status, 429 | 503),
                "{user}: sent again after HTTP {} (seq {})",
                previous.status,
                previous.seq
            );
            match previous.earliest_retry_ms {
                Some(earliest) => assert!(
                    next.at_ms >= earliest,
                    "{user}: retry at {} ms, Retry-After {:?} allowed {earliest} ms",
                    next.at_ms,
                    previous.retry_after
                ),
                None => assert!(
                    next.at_ms >= previous.at_ms + MIN_BACKOFF_MS,
                    "{user}: retry {} ms after a {} without a usable Retry-After",
                    next.at_ms - previous.at_ms,
                    previous.status
                ),
            }
            *retried_forms
                .entry(retry_after_form(previous.retry_after.as_deref()))
                .or_default() += 1;
        }

        // The result is the response to the last call, with its error id.
        match calls.last() {
            None => {
                assert_eq!(outcome.result, UserResult::Failed, "{user}");
                assert_eq!(outcome.http_status, None, "{user}");
                assert_eq!(outcome.attempts, MAX_ATTEMPTS, "{user}");
                let message = outcome.message.as_deref().unwrap_or_default();
                assert!(message.contains("not sent"), "{user}: {message}");
            }
            Some(last) if last.status == 200 => {
                assert_eq!(outcome.result, UserResult::Succeeded, "{user}");
                assert_eq!(outcome.http_status, Some(200), "{user}");
                assert!(last.applied, "{user}");
            }
            Some(last) => {
                assert_eq!(outcome.result, UserResult::Failed, "{user}: {outcome:?}");
                if matches!(last.status, 429 | 503) && outcome.http_status.is_none() {
                    // Attempts ran out on aborted connections after the response.
                    assert_eq!(outcome.attempts, MAX_ATTEMPTS, "{user}");
                    continue;
                }
                assert_eq!(outcome.http_status, Some(last.status), "{user}");
                assert_eq!(
                    outcome.error_id.as_deref(),
                    Some(injected_error_id(last.status)),
                    "{user}"
                );
                if matches!(last.status, 429 | 503) {
                    let too_long = last.earliest_retry_ms.is_some_and(|earliest| {
                        earliest > last.at_ms + MAX_RETRY_AFTER.as_millis() as u64
                    });
                    assert!(
                        too_long || outcome.attempts == MAX_ATTEMPTS,
                        "{user}: gave up after {} attempts on a {} with Retry-After {:?}",
                        outcome.attempts,
                        last.status,
                        last.retry_after
                    );
                    if !too_long {
                        exhausted += 1;
                    }
                }
                if last.status == 500 {
                    final_500 += 1;
                }
            }
        }

        // Exactly one applied call per succeeded user, none for the rest.
        let expected_applied = u32::from(outcome.result == UserResult::Succeeded);
        assert_eq!(
            applied.get(user).copied().unwrap_or(0),
            expected_applied,
            "{user}: applied calls"
        );
    }

    // Final 4xx answers are never retried.
    for (user, code) in &final_users {
        let calls = &by_user[user];
        assert_eq!(calls.len(), 1, "{user}: {calls:?}");
        let outcome = &table[user].outcome;
        assert_eq!(outcome.result, UserResult::Failed, "{user}");
        assert_eq!(outcome.http_status, Some(*code), "{user}");
        assert_eq!(outcome.error_id.as_deref(), Some("AIUCO1062E"), "{user}");
    }

    // A Retry-After above the maximum wait fails the user at once.
    for user in ["too-long-seconds", "too-long-date"] {
        let calls = &by_user[user];
        assert_eq!(calls.len(), 1, "{user}: {calls:?}");
        let outcome = &table[user].outcome;
        assert_eq!(outcome.result, UserResult::Failed, "{user}");
        assert_eq!(outcome.http_status, Some(calls[0].status), "{user}");
    }

    // Every path was taken at least once.
    for form in ["seconds", "HTTP-date", "fractional", "malformed", "missing"] {
        assert!(
            retried_forms.get(form).copied().unwrap_or(0) > 0,
            "no retry after a Retry-After of form {form}: {retried_forms:?}"
        );
    }
    assert!(retried_after_abort > 0, "no user succeeded after an abort");
    assert!(final_500 > 0, "no user ended on a 500");
    eprintln!(
        "retries: {} calls, {succeeded} succeeded, {final_500} final 500, {exhausted} out of attempts, {retried_after_abort} succeeded after an aborted connection, retries by Retry-After form {retried_forms:?}",
        ledger.len()
    );

    operator.terminate().await;
    simulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_are_unknown_and_not_resent() {
    let test = TestNamespace::create("unanswered").await;
    let (client, namespace) = (test.client.clone(), test.name.clone());

    let mut list = numbered("user", 7);
    list.extend([
        "slow".to_owned(),
        "lost".to_owned(),
        "lost-after".to_owned(),
    ]);
    let simulator = Simulator::start(SimulatorConfig {
        faults: FaultPlan {
            per_user: HashMap::from([
                // Applied, but the response comes after the 3 s request timeout.
                ("slow".to_owned(), vec![Fault::Delay { ms: 8_000 }]),
                // Closed after the request head: MAS may have received it.
                ("lost".to_owned(), vec![Fault::ResetBeforeRequest]),
                // Applied, then closed without a response.
                ("lost-after".to_owned(), vec![Fault::ResetAfterApply]),
            ]),
            ..FaultPlan::default()
        },
        ..simulator_config(&list, TOKEN)
    })
    .await
    .expect("simulator starts");
    let mut operator = test
        .start_run(
            "unanswered",
            &simulator.base_url(),
            &list,
            &[("token", TOKEN)],
            serde_json::json!({ "concurrency": 4, "requestTimeoutSeconds": 3 }),
        )
        .await;

    let resource = test
        .wait_for_end("unanswered", Duration::from_secs(120), &operator)
        .await;
    let status = resource.status.clone().expect("status");
    assert_eq!(
        status.phase,
        Some(Phase::PartiallyFailed),
        "{:?}",
        status.conditions.first()
    );
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.succeeded, 7);
    assert_eq!(counts.unknown, 3);
    assert_eq!(counts.failed, 0);

    // The delayed response arrives after the run; it must not cause a resend.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let table = result_table(&client, &namespace, "unanswered").await;
    for (user, applied, cause) in [
        ("slow", true, "timeout"),
        ("lost", false, "connection lost"),
        ("lost-after", true, "connection lost"),
    ] {
        let calls = simulator.ledger_for(user);
        assert_eq!(calls.len(), 1, "{user} was sent again: {calls:?}");
        assert_eq!(calls[0].applied, applied, "{user}");
        let outcome = &table[user].outcome;
        assert_eq!(outcome.result, UserResult::Unknown, "{user}");
        assert_eq!(outcome.http_status, None, "{user}");
        assert_eq!(outcome.attempts, 1, "{user}");
        let message = outcome.message.as_deref().unwrap_or_default();
        assert!(message.contains(cause), "{user}: {message}");
    }
    for user in numbered("user", 7) {
        assert_eq!(simulator.ledger_for(&user).len(), 1, "{user}");
        assert_eq!(table[&user].outcome.result, UserResult::Succeeded, "{user}");
    }

    operator.terminate().await;
    simulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_connections_use_up_max_attempts() {
    let test = TestNamespace::create("aborted").await;
    let (client, namespace) = (test.client.clone(), test.name.clone());

    // With one request at a time and a new connection per request, the
    // first three TLS handshakes, all for the first user, are aborted.
    let list = vec!["never-reached".to_owned(), "reached".to_owned()];
    let simulator = Simulator::start(SimulatorConfig {
        tls: true,
        keep_alive: false,
        faults: FaultPlan {
            abort_connections: 3,
            ..FaultPlan::default()
        },
        ..simulator_config(&list, TOKEN)
    })
    .await
    .expect("simulator starts");
    let tls = trust_simulator_ca(&test, &simulator).await;
    let mut operator = test
        .start_run(
            "aborted",
            &simulator.base_url(),
            &list,
            &[("token", TOKEN)],
            serde_json::json!({
                "concurrency": 1,
                "maxAttempts": 3,
                "tls": tls,
            }),
        )
        .await;

    let resource = test
        .wait_for_end("aborted", Duration::from_secs(120), &operator)
        .await;
    let status = resource.status.clone().expect("status");
    assert_eq!(status.phase, Some(Phase::PartiallyFailed));

    let table = result_table(&client, &namespace, "aborted").await;
    let never_reached = &table["never-reached"].outcome;
    assert_eq!(never_reached.result, UserResult::Failed);
    assert_eq!(never_reached.attempts, 3);
    assert_eq!(never_reached.http_status, None);
    let message = never_reached.message.as_deref().unwrap_or_default();
    assert!(message.contains("not sent (connect)"), "{message}");
    assert!(simulator.ledger_for("never-reached").is_empty());

    let reached = &table["reached"].outcome;
    assert_eq!(reached.result, UserResult::Succeeded);
    assert_eq!(reached.attempts, 1);
    assert_eq!(simulator.ledger_for("reached").len(), 1);

    operator.terminate().await;
    simulator.shutdown().await;
}
