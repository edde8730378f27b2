//! No credential leaves the operator: runs with failures, a revoked token, a
//! fixed password, an API key and a URL with a password in it, against a
//! simulator that repeats the token and the password in its error messages.
//! The operator's whole log at debug level, every Event, every status, the
//! result ConfigMaps and /metrics must contain none of them, nor any
//! password that MAS generated and returned.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use mas_reset_operator::api::{BulkPasswordReset, Phase};
use mas_reset_operator::simulator::{
    ApiKey, PasswordPolicy, SimUser, Simulator, SimulatorConfig, StaticToken,
};

const FIXED_TOKEN: &str = "leak-check-fixed-token-0c4e9a";
const REVOKED_TOKEN: &str = "leak-check-revoked-token-7d12f3";
const API_KEY_ID: &str = "leak-check-key-id-55b0";
const API_KEY_TOKEN: &str = "leak-check-key-token-e81c6d";
/// Contains the user ID `carol`, which the simulator's policy forbids, so
/// carol's reset fails with 400 and its message repeats the password.
const FIXED_PASSWORD: &str = "Leak-Check-carol-Pw-93";
const URL_PASSWORD: &str = "leak-check-url-pw-4410";

fn existing_users() -> Vec<String> {
    (1..=6).map(|n| format!("member{n}")).collect()
}

fn list_with_failures() -> Vec<String> {
    let mut list = existing_users();
    list.push("carol".to_owned());
    list.push("ghost-1".to_owned());
    list.push("ghost-2".to_owned());
    list
}

fn echoing_simulator(
    tokens: Vec<StaticToken>,
    api_keys: Vec<ApiKey>,
    latency_ms: u64,
) -> SimulatorConfig {
    let mut users: Vec<SimUser> = existing_users().into_iter().map(SimUser::local).collect();
    users.push(SimUser::local("carol"));
    users.extend((1..=30).map(|n| SimUser::local(format!("slow{n:02}"))));
    SimulatorConfig {
        users,
        tokens,
        api_keys,
        latency_ms,
        echo_credentials_in_errors: true,
        policy: PasswordPolicy {
            allow_user_id: false,
            ..PasswordPolicy::default()
        },
        ..SimulatorConfig::default()
    }
}

#[tokio::test]
async fn no_credential_reaches_logs_events_status_or_metrics() {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let namespace = namespace(&client, "secrets").await;

    let fixed_mas = Simulator::start(echoing_simulator(
        vec![StaticToken::new(FIXED_TOKEN, true)],
        Vec::new(),
        0,
    ))
    .await
    .expect("simulator starts");
    let revoked_mas = Simulator::start(echoing_simulator(
        vec![StaticToken::new(REVOKED_TOKEN, true)],
        Vec::new(),
        100,
    ))
    .await
    .expect("simulator starts");
    let api_key_mas = Simulator::start(echoing_simulator(
        Vec::new(),
        vec![ApiKey::new(API_KEY_ID, API_KEY_TOKEN, true)],
        0,
    ))
    .await
    .expect("simulator starts");

    let slow_list: Vec<String> = (1..=30).map(|n| format!("slow{n:02}")).collect();
    user_list_config_map(
        &client,
        &namespace,
        "users",
        excel_csv(&list_with_failures()),
    )
    .await;
    user_list_config_map(&client, &namespace, "slow-users", excel_csv(&slow_list)).await;
    secret(
        &client,
        &namespace,
        "mas-credentials",
        &[("token", FIXED_TOKEN)],
    )
    .await;
    secret(
        &client,
        &namespace,
        "revoked-credentials",
        &[("token", REVOKED_TOKEN)],
    )
    .await;
    secret(
        &client,
        &namespace,
        "api-key",
        &[("id", API_KEY_ID), ("token", API_KEY_TOKEN)],
    )
    .await;
    secret(
        &client,
        &namespace,
        "fixed-password",
        &[("password", FIXED_PASSWORD)],
    )
    .await;

    let mut operator = Operator::start_with_log_filter(plane, &namespace, &[], "debug");

    // 1. Fixed password: 6 reset, carol 400 (policy), 2 ghosts 404.
    let fixed = manifest(
        "fixed",
        &fixed_mas.base_url(),
        serde_json::json!({
            "password": {
                "mode": "Fixed",
                "secretKeyRef": { "name": "fixed-password", "key": "password" },
            },
        }),
    );
    apply_manifest(&client, &namespace, &fixed).await;

    // 2. The token is revoked while the run goes on: 401, run paused.
    let revoked = manifest(
        "revoked",
        &revoked_mas.base_url(),
        serde_json::json!({
            "credentials": { "secretName": "revoked-credentials", "tokenKey": "token" },
            "userList": { "sources": [ { "configMapName": "slow-users", "key": "users.csv" } ] },
            "concurrency": 1,
        }),
    );
    apply_manifest(&client, &namespace, &revoked).await;

    // 3. API key, MAS-generated passwords returned in the response body.
    let api_key = manifest(
        "api-key",
        &api_key_mas.base_url(),
        serde_json::json!({
            "credentials": {
                "secretName": "api-key",
                "apiKeyIdKey": "id",
                "apiKeyTokenKey": "token",
            },
            "emailPassword": false,
        }),
    );
    apply_manifest(&client, &namespace, &api_key).await;

    // 4. A URL with a password in it.
    let url_with_password = manifest(
        "url-password",
        &format!("https://admin:{URL_PASSWORD}@127.0.0.1:9/"),
        serde_json::json!({}),
    );
    apply_manifest(&client, &namespace, &url_with_password).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while revoked_mas.ledger().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revoked run sent fewer than 3 requests; log:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    revoked_mas.revoke_tokens();

    let final_phases = [Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed];
    let fixed_done = wait_for_phase(
        &client,
        &namespace,
        "fixed",
        &final_phases,
        Duration::from_secs(60),
        &operator,
    )
    .await;
    let revoked_done = wait_for_phase(
        &client,
        &namespace,
        "revoked",
        &[Phase::Paused],
        Duration::from_secs(60),
        &operator,
    )
    .await;
    let api_key_done = wait_for_phase(
        &client,
        &namespace,
        "api-key",
        &final_phases,
        Duration::from_secs(60),
        &operator,
    )
    .await;
    let url_done = wait_for_phase(
        &client,
        &namespace,
        "url-password",
        &[Phase::Pending],
        Duration::from_secs(60),
        &operator,
    )
    .await;

    // The runs went the way the test intends.
    assert_eq!(
        fixed_done.status.as_ref().and_then(|status| status.phase),
        Some(Phase::PartiallyFailed)
    );
    let fixed_counts = fixed_done
        .status
        .as_ref()
        .and_then(|status| status.counts.clone())
        .expect("counts");
    assert_eq!(fixed_counts.succeeded, 6);
    assert_eq!(fixed_counts.failed, 3);
    let carol = fixed_done
        .status
        .as_ref()
        .expect("status")
        .users
        .iter()
        .find(|user| user.user_id == "carol")
        .expect("carol in status");
    assert_eq!(carol.http_status, Some(400));
    assert!(
        carol
            .message
            .as_deref()
            .is_some_and(|message| message.contains("[redacted]")),
        "the simulator repeated the password, so the message shows [redacted]: {carol:?}"
    );
    assert_eq!(
        condition(&revoked_done, "Stalled").map(|c| c.reason.as_str()),
        Some("AuthenticationFailed")
    );
    assert_eq!(
        api_key_done.status.as_ref().and_then(|status| status.phase),
        Some(Phase::PartiallyFailed)
    );
    assert!(!api_key_mas.authentications().is_empty());
    assert_eq!(
        condition(&url_done, "Stalled").map(|c| c.reason.as_str()),
        Some("InvalidMasApiUrl")
    );
    assert!(
        fixed_mas.ledger().iter().any(|entry| entry.status == 404),
        "no 404 was sent"
    );

    // Gather everything the operator wrote and published.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resources: Api<BulkPasswordReset> = Api::namespaced(client.clone(), &namespace);
    let statuses = serde_json::to_string(
        &resources
            .list(&Default::default())
            .await
            .expect("resources listable")
            .items
            .iter()
            .map(|resource| resource.status.clone())
            .collect::<Vec<_>>(),
    )
    .expect("status serializes");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let results = serde_json::to_string(
        &config_maps
            .list(&kube::api::ListParams::default().labels("masreset.dev/run"))
            .await
            .expect("ConfigMaps listable")
            .items,
    )
    .expect("ConfigMaps serialize");
    let events = serde_json::to_string(&events(&client, &namespace).await).expect("Events");
    let metrics = operator.metrics().await.expect("metrics served");
    operator.terminate().await;
    let log = operator.log();

    assert!(
        log.lines().count() > 100,
        "the debug log is unexpectedly short:\n{log}"
    );
    assert!(results.contains("ghost-1"), "result ConfigMaps missing");
    let places = [
        ("operator log", &log),
        ("Events", &events),
        ("status", &statuses),
        ("result ConfigMaps", &results),
        ("metrics", &metrics),
    ];
    let mut secrets: Vec<String> = [
        FIXED_TOKEN,
        REVOKED_TOKEN,
        API_KEY_ID,
        API_KEY_TOKEN,
        FIXED_PASSWORD,
        URL_PASSWORD,
    ]
    .map(str::to_owned)
    .to_vec();
    let generated = mas_generated_passwords(&client, &namespace).await;
    // Six members and carol: only the ghosts fail when MAS picks the password.
    assert_eq!(generated.len(), 7, "one per user MAS reset");
    secrets.extend(generated);
    for (place, text) in places {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{place} contains {secret:?}"
            );
        }
        assert_no_jwt(place, text);
    }

    fixed_mas.shutdown().await;
    revoked_mas.shutdown().await;
    api_key_mas.shutdown().await;
}

/// Passwords that MAS generated for the API key run, from its password
/// Secret.
async fn mas_generated_passwords(client: &kube::Client, namespace: &str) -> Vec<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get("api-key-passwords")
        .await
        .expect("password Secret of the API key run");
    let bytes = &secret.data.as_ref().expect("data")["passwords.jsonl"].0;
    String::from_utf8(bytes.clone())
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            entry["password"].as_str().expect("password").to_owned()
        })
        .collect()
}

/// Fails if `text` has a word that looks like a JWT: base64url starting
/// with `eyJ` (the encoding of `{"`), as the simulator's tokens do.
fn assert_no_jwt(place: &str, text: &str) {
    let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
    for word in words {
        assert!(
            !(word.starts_with("eyJ") && word.len() >= 16),
            "{place} contains a JWT-like word {word:?}"
        );
    }
}
