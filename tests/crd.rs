//! The BulkPasswordReset CRD: the committed file matches the Rust types, a
//! real kube-apiserver accepts it, and its CEL rules reject bad specs with
//! the messages users see.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt};
use mas_reset_operator::api::{
    BulkPasswordReset, BulkPasswordResetSpec, ConfigMapKeyRef, CredentialsRef, UserListSpec,
};
use serde_json::json;

const CRD_FILE: &str = "crds/bulkpasswordreset.yaml";

fn crd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")
}

#[test]
fn crd_file_matches_generated() {
    let generated = serde_yaml::to_string(&BulkPasswordReset::crd()).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CRD_FILE);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()));

    let committed_lines: Vec<&str> = committed.lines().collect();
    let generated_lines: Vec<&str> = generated.lines().collect();
    let first_difference = committed_lines
        .iter()
        .zip(&generated_lines)
        .position(|(committed_line, generated_line)| committed_line != generated_line)
        .unwrap_or(committed_lines.len().min(generated_lines.len()));
    assert!(
        committed == generated,
        "{CRD_FILE} differs from the CRD generated from src/api, first at line {}; \
         run `cargo run -- crd > {CRD_FILE}` and commit the result",
        first_difference + 1,
    );
}

/// Collects the property paths of a JSON schema whose name mentions a
/// namespace.
fn namespace_properties(schema: &serde_json::Value, path: &str, found: &mut Vec<String>) {
    if let Some(properties) = schema.get("properties").and_then(|value| value.as_object()) {
        for (name, property) in properties {
            let property_path = format!("{path}.{name}");
            if name.to_ascii_lowercase().contains("namespace") {
                found.push(property_path.clone());
            }
            namespace_properties(property, &property_path, found);
        }
    }
    if let Some(items) = schema.get("items") {
        namespace_properties(items, &format!("{path}[]"), found);
    }
}

#[test]
fn spec_references_have_no_namespace() {
    // Every Secret and ConfigMap a resource names is read from the
    // resource's own namespace, because no reference can name another.
    let crd = serde_json::to_value(BulkPasswordReset::crd()).unwrap();
    let versions = crd["spec"]["versions"].as_array().unwrap();
    assert!(!versions.is_empty());

    for version in versions {
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert!(spec.get("properties").is_some(), "no spec schema");
        let mut found = Vec::new();
        namespace_properties(spec, "spec", &mut found);
        assert!(
            found.is_empty(),
            "spec fields that name a namespace: {found:?}"
        );
    }
}

#[tokio::test]
async fn crd_becomes_established() {
    let plane = mas_reset_harness::shared().await;
    plane.install_crds(&crd_dir()).await.unwrap();

    let client = plane.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let crd = crds.get("bulkpasswordresets.masreset.dev").await.unwrap();
    let conditions = crd
        .status
        .and_then(|status| status.conditions)
        .unwrap_or_default();
    let established = conditions
        .iter()
        .find(|condition| condition.type_ == "Established")
        .expect("CRD has no Established condition");
    assert_eq!(established.status, "True");
}

/// Installs the CRD, creates `namespace` and returns an Api for it.
async fn resources_in(namespace: &str) -> Api<BulkPasswordReset> {
    let plane = mas_reset_harness::shared().await;
    plane.install_crds(&crd_dir()).await.unwrap();
    let client = plane.client().await.unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .patch(
            namespace,
            &PatchParams::apply("crd-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();

    Api::namespaced(client, namespace)
}

fn valid_spec() -> BulkPasswordResetSpec {
    BulkPasswordResetSpec {
        mas_api_url: "https://api.inst1.mas.example.com".to_owned(),
        credentials: CredentialsRef {
            secret_name: "mas-credentials".to_owned(),
            token_key: Some("token".to_owned()),
            api_key_id_key: None,
            api_key_token_key: None,
        },
        user_list: UserListSpec {
            sources: vec![ConfigMapKeyRef {
                config_map_name: "users".to_owned(),
                key: "users.csv".to_owned(),
            }],
            column: None,
            headerless: None,
        },
        password: None,
        email_password: None,
        concurrency: None,
        requests_per_second: None,
        max_attempts: None,
        max_failures: None,
        suspend: None,
        retry_unknown: None,
        dry_run: None,
        tls: None,
        allow_insecure_http: None,
        request_timeout_seconds: None,
    }
}

/// Asserts that `result` is a 422 Invalid whose message contains each of
/// `expected_messages`.
fn assert_invalid<T: std::fmt::Debug>(result: kube::Result<T>, expected_messages: &[&str]) {
    let status = match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected the API server to reject the object, got {other:?}"),
    };
    assert_eq!(status.code, 422, "unexpected status: {status:?}");
    assert_eq!(status.reason, "Invalid", "unexpected status: {status:?}");
    for expected in expected_messages {
        assert!(
            status.message.contains(expected),
            "message {:?} lacks {expected:?}",
            status.message
        );
    }
}

#[tokio::test]
async fn valid_spec_accepted() {
    let api = resources_in("crd-valid").await;
    let created = api
        .create(
            &PostParams::default(),
            &BulkPasswordReset::new("valid", valid_spec()),
        )
        .await
        .unwrap();
    assert_eq!(created.spec, valid_spec());
}

#[tokio::test]
async fn http_url_needs_allow_insecure_http() {
    let api = resources_in("crd-http").await;

    let mut spec = valid_spec();
    spec.mas_api_url = "http://mas-simulator.test.svc:8080".to_owned();
    let rejected = api
        .create(
            &PostParams::default(),
            &BulkPasswordReset::new("plain-http", spec.clone()),
        )
        .await;
    assert_invalid(
        rejected,
        &[
            r#""plain-http" is invalid"#,
            "masApiUrl must start with https:// (set allowInsecureHttp: true to allow http:// for a test endpoint)",
        ],
    );

    spec.allow_insecure_http = Some(true);
    let accepted = api
        .create(
            &PostParams::default(),
            &BulkPasswordReset::new("allowed-http", spec),
        )
        .await;
    assert!(
        accepted.is_ok(),
        "http:// with allowInsecureHttp was rejected: {accepted:?}"
    );
}

#[tokio::test]
async fn url_without_scheme_rejected() {
    let api = resources_in("crd-scheme").await;

    let mut spec = valid_spec();
    spec.mas_api_url = "ftp://mas.example.com".to_owned();
    spec.allow_insecure_http = Some(true);
    let rejected = api
        .create(&PostParams::default(), &BulkPasswordReset::new("ftp", spec))
        .await;
    assert_invalid(rejected, &["masApiUrl must start with https://"]);
}

#[tokio::test]
async fn concurrency_zero_rejected() {
    let api = resources_in("crd-concurrency").await;

    let mut spec = valid_spec();
    spec.concurrency = Some(0);
    let rejected = api
        .create(
            &PostParams::default(),
            &BulkPasswordReset::new("no-concurrency", spec),
        )
        .await;
    assert_invalid(
        rejected,
        &["spec.concurrency", "concurrency must be between 1 and 256"],
    );
}

#[tokio::test]
async fn credentials_need_token_or_api_key() {
    let api = resources_in("crd-credentials").await;

    let mut neither = valid_spec();
    neither.credentials.token_key = None;
    let rejected = api
        .create(
            &PostParams::default(),
            &BulkPasswordReset::new("no-keys", neither),
        )
        .await;
    assert_invalid(
        rejected,
        &[
            "spec.credentials",
            "set either tokenKey, or both apiKeyIdKey and apiKeyTokenKey",
        ],
    );

    let mut half_api_key = valid_spec();
    half_api_key.credentials.token_key = None;
    half_api_key.credentials.api_key_id_key = Some("apikey-id".to_owned());
    let rejected = api
        .create(
            &PostParams::default(),
            &BulkPasswordReset::new("half-api-key", half_api_key),
        )
        .await;
    assert_invalid(rejected, &["apiKeyIdKey and apiKeyTokenKey go together"]);

    let mut both = valid_spec();
    both.credentials.api_key_id_key = Some("apikey-id".to_owned());
    both.credentials.api_key_token_key = Some("apikey-token".to_owned());
    let rejected = api
        .create(
            &PostParams::default(),
            &BulkPasswordReset::new("token-and-api-key", both),
        )
        .await;
    assert_invalid(
        rejected,
        &["set either tokenKey, or both apiKeyIdKey and apiKeyTokenKey"],
    );

    let mut api_key = valid_spec();
    api_key.credentials.token_key = None;
    api_key.credentials.api_key_id_key = Some("apikey-id".to_owned());
    api_key.credentials.api_key_token_key = Some("apikey-token".to_owned());
    let accepted = api
        .create(
            &PostParams::default(),
            &BulkPasswordReset::new("api-key", api_key),
        )
        .await;
    assert!(
        accepted.is_ok(),
        "a complete API key was rejected: {accepted:?}"
    );
}

#[tokio::test]
async fn spec_immutable_after_create() {
    let api = resources_in("crd-immutable").await;
    api.create(
        &PostParams::default(),
        &BulkPasswordReset::new("run", valid_spec()),
    )
    .await
    .unwrap();
    let immutable_message = "spec is immutable except suspend, concurrency, requestsPerSecond and retryUnknown: create a BulkPasswordReset with a new name for a new run";

    let url_change = json!({ "spec": { "masApiUrl": "https://api.inst2.mas.example.com" } });
    let rejected = api
        .patch("run", &PatchParams::default(), &Patch::Merge(&url_change))
        .await;
    assert_invalid(rejected, &[immutable_message]);

    // An optional field that was absent at creation is immutable too.
    let dry_run_added = json!({ "spec": { "dryRun": true } });
    let rejected = api
        .patch(
            "run",
            &PatchParams::default(),
            &Patch::Merge(&dry_run_added),
        )
        .await;
    assert_invalid(rejected, &[immutable_message]);

    let tuning = json!({ "spec": { "suspend": true, "concurrency": 8, "requestsPerSecond": 20 } });
    let patched = api
        .patch("run", &PatchParams::default(), &Patch::Merge(&tuning))
        .await
        .unwrap();
    assert_eq!(patched.spec.suspend, Some(true));
    assert_eq!(patched.spec.concurrency, Some(8));
    assert_eq!(patched.spec.requests_per_second, Some(20));
    assert_eq!(patched.spec.mas_api_url, valid_spec().mas_api_url);
}

#[tokio::test]
async fn status_patch_skips_spec_rules() {
    let api = resources_in("crd-status").await;
    api.create(
        &PostParams::default(),
        &BulkPasswordReset::new("run", valid_spec()),
    )
    .await
    .unwrap();

    // The operator writes status often, and a spec rule (such as the
    // immutability rule with oldSelf) must not block it.
    let status = json!({ "status": { "phase": "Running", "observedGeneration": 1 } });
    let patched = api
        .patch_status("run", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let phase = patched.status.and_then(|status| status.phase);
    assert_eq!(phase, Some(mas_reset_operator::api::Phase::Running));
}

/// Collects the JSON paths of schema properties that have no description.
fn undescribed_properties(schema: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
    let Some(properties) = schema.get("properties").and_then(|value| value.as_object()) else {
        return;
    };
    for (name, property) in properties {
        let property_path = format!("{path}.{name}");
        // metadata and apiVersion/kind are standard and explained by kubectl.
        let standard =
            path.is_empty() && matches!(name.as_str(), "metadata" | "apiVersion" | "kind");
        if !standard && property.get("description").is_none() {
            missing.push(property_path.clone());
        }
        undescribed_properties(property, &property_path, missing);
        if let Some(items) = property.get("items") {
            undescribed_properties(items, &format!("{property_path}[]"), missing);
        }
    }
}

#[test]
fn every_spec_field_has_description() {
    let crd = serde_json::to_value(BulkPasswordReset::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();

    undescribed_properties(&schema["properties"]["spec"], "spec", &mut missing);

    assert!(
        missing.is_empty(),
        "fields without a description (kubectl explain shows none): {missing:?}"
    );
}
