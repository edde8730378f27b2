//! End to end on a real API server and the MAS simulator: an API key whose
//! short-lived JWT the operator renews before it expires and after MAS
//! revokes it, and a pre-issued token whose revocation pauses the run until
//! the credentials Secret contains a new one.

mod common;
mod support;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use mas_reset_operator::api::Phase;
use mas_reset_operator::simulator::{
    ApiKey, AuthenticationEntry, LedgerEntry, SimUser, Simulator, SimulatorConfig,
};
use support::*;

const KEY_ID: &str = "e2e-key";
const KEY_TOKEN: &str = "e2e-key-token-a41f";
const TOKEN: &str = "e2e-credentials-token-93b2";

/// Lifetime of the JWTs the simulator issues for the API key, in seconds.
const JWT_LIFETIME_SECS: u64 = 5;

const CONCURRENCY: usize = 4;

/// Checks that every user was reset exactly once.
fn assert_each_applied_once(applied: &HashMap<String, u32>, users: &[String]) {
    assert_eq!(applied.len(), users.len(), "users reset");
    for user in users {
        assert_eq!(applied.get(user), Some(&1), "{user}: applied calls");
    }
}

fn unauthorized(ledger: &[LedgerEntry]) -> Vec<&LedgerEntry> {
    ledger.iter().filter(|entry| entry.status == 401).collect()
}

fn sorted_authentications(mut entries: Vec<AuthenticationEntry>) -> Vec<AuthenticationEntry> {
    entries.sort_by_key(|entry| entry.at_ms);
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_token_renewed_before_expiry_and_after_revocation() {
    let test = TestNamespace::create("api-key").await;

    // 150 users at 15 per second take more than 10 s, two JWT lifetimes.
    let users = numbered("user", 150);
    let simulator = Simulator::start(SimulatorConfig {
        users: users.iter().map(SimUser::local).collect(),
        api_keys: vec![ApiKey::new(KEY_ID, KEY_TOKEN, true)],
        jwt_lifetime_secs: JWT_LIFETIME_SECS,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    let mut operator = test
        .start_run(
            "api-key",
            &simulator.base_url(),
            &users,
            &[("apiKeyId", KEY_ID), ("apiKeyToken", KEY_TOKEN)],
            serde_json::json!({
                "concurrency": CONCURRENCY,
                "requestsPerSecond": 15,
                "credentials": {
                    "secretName": "mas-credentials",
                    "apiKeyIdKey": "apiKeyId",
                    "apiKeyTokenKey": "apiKeyToken",
                },
            }),
        )
        .await;

    // Revoke every JWT right after the first scheduled renewal.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while simulator.authentications().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the JWT was never renewed; authentications: {:?}\noperator log:\n{}",
            simulator.authentications(),
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls_before_revocation = simulator.ledger().len() as u64;
    simulator.revoke_tokens();

    let resource = test
        .wait_for_end("api-key", Duration::from_secs(120), &operator)
        .await;
    assert_eq!(
        resource.status.expect("status").phase,
        Some(Phase::Succeeded)
    );
    let ledger = simulator.ledger();
    assert_each_applied_once(&simulator.ledger_applied_counts(), &users);

    // Every authentication succeeded and got the simulator's lifetime.
    let authentications = sorted_authentications(simulator.authentications());
    for entry in &authentications {
        assert_eq!(entry.status, 200, "{entry:?}");
        assert_eq!(entry.api_key_id, KEY_ID);
        assert_eq!(entry.lifetime_secs, Some(JWT_LIFETIME_SECS));
    }
    assert!(
        authentications.len() >= 3,
        "a run of over 10 s with {JWT_LIFETIME_SECS} s JWTs authenticated {} times",
        authentications.len()
    );

    // 401s come only from the revocation: one per worker at most, none
    // applied, and none from an expired token before or after it.
    let rejected = unauthorized(&ledger);
    assert!(!rejected.is_empty(), "the revocation caused no 401");
    assert!(
        rejected.len() <= CONCURRENCY,
        "{} calls got 401",
        rejected.len()
    );
    for entry in &rejected {
        assert!(
            entry.seq > calls_before_revocation,
            "401 before revocation: {entry:?}"
        );
        assert!(!entry.applied, "{entry:?}");
    }
    let first_rejected_ms = rejected[0].at_ms;
    let last_rejected_ms = rejected[rejected.len() - 1].at_ms;
    assert!(
        last_rejected_ms < first_rejected_ms + 1_500,
        "401s spread from {first_rejected_ms} to {last_rejected_ms} ms"
    );

    // The revocation caused exactly one authentication. The next scheduled
    // renewal comes half a lifetime (2.5 s) after it.
    let after_revocation: Vec<_> = authentications
        .iter()
        .filter(|entry| entry.at_ms >= first_rejected_ms && entry.at_ms < first_rejected_ms + 1_500)
        .collect();
    assert_eq!(
        after_revocation.len(),
        1,
        "authentications after the first 401: {after_revocation:?}"
    );

    // Renewal is scheduled, not per request: the authentications before
    // the revocation are at least a second apart.
    let before: Vec<u64> = authentications
        .iter()
        .map(|entry| entry.at_ms)
        .filter(|at_ms| *at_ms < first_rejected_ms)
        .collect();
    for pair in before.windows(2) {
        assert!(
            pair[1] >= pair[0] + 1_000,
            "authentications at {} and {} ms",
            pair[0],
            pair[1]
        );
    }

    eprintln!(
        "api key: {} authentications, {} calls got 401 after the revocation",
        authentications.len(),
        rejected.len()
    );

    operator.terminate().await;
    simulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_pauses_until_secret_changes() {
    let test = TestNamespace::create("token").await;
    let (client, namespace) = (test.client.clone(), test.name.clone());

    // The API key stands for the administrator who issues the new token.
    let users = numbered("user", 120);
    let simulator = Simulator::start(SimulatorConfig {
        api_keys: vec![ApiKey::new(KEY_ID, KEY_TOKEN, true)],
        ..simulator_config(&users, TOKEN)
    })
    .await
    .expect("simulator starts");
    let mut operator = test
        .start_run(
            "token",
            &simulator.base_url(),
            &users,
            &[("token", TOKEN)],
            serde_json::json!({ "concurrency": CONCURRENCY, "requestsPerSecond": 15 }),
        )
        .await;

    wait_for_calls(&simulator, 40, Duration::from_secs(60), &operator).await;
    let calls_before_revocation = simulator.ledger().len() as u64;
    simulator.revoke_tokens();

    // Paused, stalled on the credentials, with a Warning Event.
    let paused = wait_for_phase(
        &client,
        &namespace,
        "token",
        &[Phase::Paused],
        Duration::from_secs(60),
        &operator,
    )
    .await;
    let status = paused.status.expect("status");
    let ready = &status.conditions[0];
    assert_eq!(ready.reason, "AuthenticationFailed");
    assert!(
        ready.message.contains("put a valid token"),
        "{}",
        ready.message
    );
    let counts = status.counts.expect("counts");
    assert!(counts.done < counts.total, "{counts:?}");
    let events = events_with_reason(&client, &namespace, "token", "AuthenticationFailed").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));

    // Nothing is sent while paused.
    let calls_while_paused =
        assert_no_calls_for(&simulator, Duration::from_secs(3), "paused run sent").await;

    // An administrator issues a new token and puts it in the Secret.
    let new_token = issue_token(&simulator.base_url()).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let patch = serde_json::json!({
        "data": { "token": ByteString(new_token.into_bytes()) }
    });
    secrets
        .patch(
            "mas-credentials",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("Secret updated");

    // The run resumes by itself and finishes.
    let resource = test
        .wait_for_end("token", Duration::from_secs(120), &operator)
        .await;
    assert_eq!(
        resource.status.expect("status").phase,
        Some(Phase::Succeeded)
    );
    let resumed = events_with_reason(&client, &namespace, "token", "Resumed").await;
    assert_eq!(resumed.len(), 1, "{resumed:?}");

    // Users done before the pause were not sent again, and every user that
    // got a 401 was sent once more, after the pause.
    let ledger = simulator.ledger();
    assert!(ledger.len() > calls_while_paused);
    assert_each_applied_once(&simulator.ledger_applied_counts(), &users);
    let by_user = ledger_by_user(&ledger);
    let rejected = unauthorized(&ledger);
    assert!(!rejected.is_empty(), "the revocation caused no 401");
    assert!(
        rejected.len() <= CONCURRENCY,
        "{} calls got 401",
        rejected.len()
    );
    for entry in &rejected {
        assert!(entry.seq > calls_before_revocation, "{entry:?}");
        assert!(!entry.applied, "{entry:?}");
        let calls = &by_user[&entry.user_id];
        assert_eq!(calls.len(), 2, "{}: {calls:?}", entry.user_id);
        assert_eq!(calls[1].status, 200, "{}: {calls:?}", entry.user_id);
        assert!(
            calls[1].seq as usize > calls_while_paused,
            "{}: resent before the pause ended",
            entry.user_id
        );
    }
    for (user, calls) in &by_user {
        if calls[0].status == 200 {
            assert_eq!(calls.len(), 1, "{user} was sent again: {calls:?}");
        }
    }
    eprintln!(
        "static token: paused after {calls_while_paused} calls, {} got 401, {} calls in all",
        rejected.len(),
        ledger.len()
    );

    operator.terminate().await;
    simulator.shutdown().await;
}

/// Issues a JWT for the API key through the simulator, as an administrator
/// would by hand.
async fn issue_token(base_url: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{base_url}/v1/authenticate"))
        .basic_auth(KEY_ID, Some(KEY_TOKEN))
        .header("mas-jwt-expiry-duration", "PT1H")
        .send()
        .await
        .expect("authenticate answers");
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.expect("JSON body");
    body["token"].as_str().expect("token field").to_owned()
}
