//! TLS to MAS end to end. The simulator serves HTTPS with a certificate
//! from a CA it generates at start. The cases: the CA bundle from a
//! ConfigMap key and from a Secret key, no CA bundle, a CA bundle with the
//! wrong CA (then fixed in place), and `insecureSkipTlsVerify`.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use mas_reset_operator::api::{BulkPasswordReset, Phase};
use mas_reset_operator::simulator::{
    ApiKey, SimUser, Simulator, SimulatorConfig, SimulatorHandle, StaticToken, unrelated_ca_pem,
};

const TOKEN: &str = "e2e-tls-token-91b7";
const API_KEY_ID: &str = "e2e-tls-key";
const API_KEY_TOKEN: &str = "e2e-tls-key-token-3f0a";

fn user_ids() -> Vec<String> {
    (1..=5).map(|n| format!("tls-user{n}")).collect()
}

/// A namespace with the user list and the token, an operator watching it,
/// and a simulator serving HTTPS.
struct TlsSetup {
    client: kube::Client,
    namespace: String,
    operator: Operator,
    simulator: SimulatorHandle,
}

impl TlsSetup {
    async fn start(prefix: &str) -> TlsSetup {
        let plane = mas_reset_harness::shared().await;
        install_crds(plane).await;
        let client = plane.client().await.expect("client");
        let namespace = namespace(&client, prefix).await;

        let simulator = Simulator::start(SimulatorConfig {
            tls: true,
            users: user_ids().into_iter().map(SimUser::local).collect(),
            tokens: vec![StaticToken::new(TOKEN, true)],
            api_keys: vec![ApiKey::new(API_KEY_ID, API_KEY_TOKEN, true)],
            ..SimulatorConfig::default()
        })
        .await
        .expect("simulator starts");
        assert!(simulator.base_url().starts_with("https://"));

        user_list_config_map(&client, &namespace, "users", excel_csv(&user_ids())).await;
        secret(
            &client,
            &namespace,
            "mas-credentials",
            &[("token", TOKEN), ("id", API_KEY_ID), ("key", API_KEY_TOKEN)],
        )
        .await;
        let operator = Operator::start(plane, &namespace, &[]);
        TlsSetup {
            client,
            namespace,
            operator,
            simulator,
        }
    }

    fn ca_pem(&self) -> String {
        self.simulator.ca_pem().expect("the simulator serves TLS")
    }

    async fn apply(&self, tls: serde_json::Value) {
        self.apply_spec(serde_json::json!({ "tls": tls })).await;
    }

    async fn apply_spec(&self, extra_spec: serde_json::Value) {
        let manifest = manifest("tls", &self.simulator.base_url(), extra_spec);
        apply_manifest(&self.client, &self.namespace, &manifest).await;
    }

    async fn wait_for(&self, phases: &[Phase], timeout: Duration) -> BulkPasswordReset {
        wait_for_phase(
            &self.client,
            &self.namespace,
            "tls",
            phases,
            timeout,
            &self.operator,
        )
        .await
    }

    /// Waits for a final phase and checks that every user was reset once.
    async fn assert_all_reset_once(&self) {
        let resource = self
            .wait_for(
                &[Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed],
                Duration::from_secs(90),
            )
            .await;
        let status = resource.status.as_ref().expect("status");
        assert_eq!(status.phase, Some(Phase::Succeeded), "{status:?}");

        let applied = self.simulator.ledger_applied_counts();
        assert_eq!(applied.len(), user_ids().len(), "{applied:?}");
        assert!(applied.values().all(|count| *count == 1), "{applied:?}");
    }

    async fn events(&self) -> Vec<k8s_openapi::api::events::v1::Event> {
        events(&self.client, &self.namespace).await
    }

    async fn stop(mut self) {
        self.operator.terminate().await;
        self.simulator.shutdown().await;
    }
}

/// Checks that the run is paused for a failed TLS handshake, without a
/// single request on the wire and without a user marked as failed.
fn assert_paused_for_tls(resource: &BulkPasswordReset, simulator: &SimulatorHandle) -> String {
    let status = resource.status.as_ref().expect("status");
    assert_eq!(status.phase, Some(Phase::Paused));

    let stalled = condition(resource, "Stalled").expect("Stalled condition");
    assert_eq!(stalled.status, "True");
    assert_eq!(stalled.reason, "TlsHandshakeFailed");

    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.done, 0, "{counts:?}");
    assert!(simulator.ledger().is_empty(), "a password call got through");
    stalled.message.clone()
}

#[tokio::test]
async fn ca_bundle_from_config_map() {
    let setup = TlsSetup::start("tls-cm").await;
    config_map_from_file(
        &setup.client,
        &setup.namespace,
        "mas-ca",
        "ca.crt",
        setup.ca_pem().as_bytes(),
    )
    .await;

    setup
        .apply(serde_json::json!({
            "caBundle": { "configMapName": "mas-ca", "key": "ca.crt" },
        }))
        .await;

    setup.assert_all_reset_once().await;
    setup.stop().await;
}

#[tokio::test]
async fn ca_bundle_from_secret() {
    let setup = TlsSetup::start("tls-secret").await;
    secret(
        &setup.client,
        &setup.namespace,
        "coreapi-cert-internal",
        &[("ca.crt", &setup.ca_pem())],
    )
    .await;

    setup
        .apply(serde_json::json!({
            "caBundle": { "secretName": "coreapi-cert-internal", "key": "ca.crt" },
        }))
        .await;

    setup.assert_all_reset_once().await;
    setup.stop().await;
}

#[tokio::test]
async fn missing_ca_pauses_with_fix() {
    let setup = TlsSetup::start("tls-none").await;

    setup.apply(serde_json::json!({})).await;
    let resource = setup
        .wait_for(&[Phase::Paused, Phase::Failed], Duration::from_secs(60))
        .await;

    let message = assert_paused_for_tls(&resource, &setup.simulator);
    assert!(
        message.starts_with("TLS handshake failed: invalid peer certificate: UnknownIssuer;"),
        "{message}"
    );
    assert!(
        message.contains(
            "create a new BulkPasswordReset whose spec.tls.caBundle names the MAS CA certificate"
        ),
        "{message}"
    );
    let events = setup.events().await;
    let warning = events
        .iter()
        .find(|event| event.reason.as_deref() == Some("TlsHandshakeFailed"))
        .unwrap_or_else(|| panic!("no TlsHandshakeFailed Event in {events:?}"));
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    setup.stop().await;
}

#[tokio::test]
async fn wrong_ca_pauses_then_resumes_when_fixed() {
    let setup = TlsSetup::start("tls-wrong").await;
    let wrong_ca = unrelated_ca_pem().expect("CA generated");
    config_map_from_file(
        &setup.client,
        &setup.namespace,
        "mas-ca",
        "ca.crt",
        wrong_ca.as_bytes(),
    )
    .await;

    setup
        .apply(serde_json::json!({
            "caBundle": { "configMapName": "mas-ca", "key": "ca.crt" },
        }))
        .await;
    let resource = setup
        .wait_for(&[Phase::Paused, Phase::Failed], Duration::from_secs(60))
        .await;

    let message = assert_paused_for_tls(&resource, &setup.simulator);
    assert!(message.contains("not signed by a trusted CA"), "{message}");
    assert!(
        message.contains("into ConfigMap mas-ca key \"ca.crt\""),
        "{message}"
    );

    // Fixing the ConfigMap in place is enough: the next attempt reads it.
    let config_maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let fixed = serde_json::json!({ "data": { "ca.crt": setup.ca_pem() } });
    config_maps
        .patch("mas-ca", &PatchParams::default(), &Patch::Merge(&fixed))
        .await
        .expect("CA ConfigMap patched");

    setup.assert_all_reset_once().await;
    setup.stop().await;
}

#[tokio::test]
async fn insecure_skip_verify_warns() {
    let setup = TlsSetup::start("tls-insecure").await;

    setup
        .apply(serde_json::json!({ "insecureSkipTlsVerify": true }))
        .await;

    setup.assert_all_reset_once().await;
    let events = setup.events().await;
    let warning = events
        .iter()
        .find(|event| event.reason.as_deref() == Some("InsecureTls"))
        .unwrap_or_else(|| panic!("no InsecureTls Event in {events:?}"));
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(
        warning
            .note
            .as_deref()
            .is_some_and(|note| note.contains("insecureSkipTlsVerify")),
        "{warning:?}"
    );
    setup.stop().await;
}

#[tokio::test]
async fn missing_ca_with_api_key_pauses() {
    let setup = TlsSetup::start("tls-key").await;

    setup
        .apply_spec(serde_json::json!({
            "credentials": {
                "secretName": "mas-credentials",
                "apiKeyIdKey": "id",
                "apiKeyTokenKey": "key",
            },
        }))
        .await;
    let resource = setup
        .wait_for(&[Phase::Paused, Phase::Failed], Duration::from_secs(60))
        .await;

    assert_eq!(
        resource.status.as_ref().and_then(|status| status.phase),
        Some(Phase::Paused)
    );
    let stalled = condition(&resource, "Stalled").expect("Stalled condition");
    assert_eq!(stalled.reason, "AuthenticationFailed");
    assert!(
        stalled
            .message
            .contains("TLS handshake failed: invalid peer certificate: UnknownIssuer"),
        "{}",
        stalled.message
    );
    assert!(setup.simulator.authentications().is_empty());
    assert!(setup.simulator.ledger().is_empty());
    setup.stop().await;
}
