//! Starts the MAS simulator in-process and talks to it over real HTTP and TLS connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mas_reset_operator::simulator::{
    ApiKey, BodyKind, Fault, FaultPlan, SimUser, Simulator, SimulatorConfig, SimulatorHandle,
    StaticToken, generate_users, unrelated_ca_pem,
};
use reqwest::StatusCode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const ADMIN_KEY_ID: &str = "admin-key";
const ADMIN_KEY_TOKEN: &str = "admin-key-secret";
const READER_KEY_ID: &str = "reader-key";
const READER_KEY_TOKEN: &str = "reader-key-secret";
const STATIC_ADMIN_TOKEN: &str = "static-admin-token";
const STATIC_READER_TOKEN: &str = "static-reader-token";

fn test_users() -> Vec<SimUser> {
    let mut users: Vec<SimUser> = [
        "alice",
        "bob",
        "carol",
        "ops/admin",
        "50%off",
        "jörg",
        "a+b",
    ]
    .into_iter()
    .map(SimUser::local)
    .collect();
    users.push(SimUser::sso_only("sso-dave"));
    users.push(SimUser {
        id: "no-mail".to_owned(),
        local: true,
        email: None,
        active: true,
    });
    users
}

fn test_config() -> SimulatorConfig {
    SimulatorConfig {
        users: test_users(),
        tokens: vec![
            StaticToken::new(STATIC_ADMIN_TOKEN, true),
            StaticToken::new(STATIC_READER_TOKEN, false),
        ],
        api_keys: vec![
            ApiKey::new(ADMIN_KEY_ID, ADMIN_KEY_TOKEN, true),
            ApiKey::new(READER_KEY_ID, READER_KEY_TOKEN, false),
        ],
        ..SimulatorConfig::default()
    }
}

async fn start(config: SimulatorConfig) -> SimulatorHandle {
    Simulator::start(config).await.expect("simulator starts")
}

/// Builds a rustls client configuration with the ring provider that trusts only `ca_pem`.
fn tls_config(ca_pem: Option<&str>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_pem {
        for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(certificate.unwrap()).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// HTTP client for one simulator, with the request shapes the tests send.
#[derive(Clone)]
struct MasClient {
    http: reqwest::Client,
    base_url: String,
}

impl MasClient {
    fn new(base_url: String, ca_pem: Option<&str>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(ca_pem))
            .no_proxy()
            .timeout(timeout)
            .build()
            .unwrap();
        Self { http, base_url }
    }

    /// Builds a client for the simulator's own URL and CA, with a 10 s timeout.
    fn of(simulator: &SimulatorHandle) -> Self {
        let ca_pem = simulator.ca_pem();
        Self::new(
            simulator.base_url(),
            ca_pem.as_deref(),
            Duration::from_secs(10),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn authenticate(
        &self,
        key_id: &str,
        key_token: &str,
        expiry: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .get(self.url("/v1/authenticate"))
            .basic_auth(key_id, Some(key_token));
        if let Some(expiry) = expiry {
            request = request.header("mas-jwt-expiry-duration", expiry);
        }
        request.send().await.unwrap()
    }

    /// Authenticates and returns the JWT.
    async fn jwt(&self, key_id: &str, key_token: &str, expiry: Option<&str>) -> String {
        let response = self.authenticate(key_id, key_token, expiry).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Starts a password call; `encoded_user` goes into the path as it is.
    fn password_request(
        &self,
        token: &str,
        encoded_user: &str,
        email_password: &str,
    ) -> reqwest::RequestBuilder {
        let path = format!("/v3/users/{encoded_user}/password?emailPassword={email_password}");
        self.http
            .post(self.url(&path))
            .header("x-access-token", token)
    }

    async fn try_reset(
        &self,
        token: &str,
        encoded_user: &str,
        body: &Value,
    ) -> reqwest::Result<reqwest::Response> {
        self.password_request(token, encoded_user, "false")
            .json(body)
            .send()
            .await
    }

    /// Sends a password call with `emailPassword=false` and the admin token.
    async fn reset(&self, encoded_user: &str, body: &Value) -> reqwest::Response {
        self.try_reset(STATIC_ADMIN_TOKEN, encoded_user, body)
            .await
            .unwrap()
    }

    async fn lookup(&self, encoded_user: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/v3/users/{encoded_user}")))
            .header("x-access-token", STATIC_ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        response.json().await.unwrap()
    }

    async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// Checks the MAS error shape and returns the message id.
async fn error_id(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    let id = body["exception"]["id"]
        .as_str()
        .expect("exception.id")
        .to_owned();
    assert!(body["exception"]["properties"].is_array(), "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(message.starts_with(&format!("{id}: ")), "{body}");
    assert_eq!(body["uuid"].as_str().expect("uuid").len(), 36, "{body}");
    id
}

fn jwt_claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT has three parts");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

fn jwt_lifetime_secs(token: &str) -> u64 {
    let claims = jwt_claims(token);
    claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap()
}

#[tokio::test]
async fn authenticate_then_reset_is_recorded() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);

    let token = client.jwt(ADMIN_KEY_ID, ADMIN_KEY_TOKEN, None).await;
    assert_eq!(jwt_claims(&token)["sub"], ADMIN_KEY_ID);
    assert_eq!(jwt_lifetime_secs(&token), 3_600);

    let generated = client.try_reset(&token, "alice", &json!({})).await.unwrap();
    assert_eq!(generated.status(), StatusCode::OK);
    let generated: Value = generated.json().await.unwrap();
    let generated_password = generated["token"].as_str().unwrap();
    assert!(simulator.password_matches("alice", generated_password));

    let chosen = json!({ "token": "Chosen-Secret-1" });
    let set = client.try_reset(&token, "bob", &chosen).await.unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(set.json::<Value>().await.unwrap(), json!({}));
    assert!(simulator.password_matches("bob", "Chosen-Secret-1"));

    let ledger = simulator.ledger();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].seq, 1);
    assert_eq!(ledger[0].user_id, "alice");
    assert_eq!(ledger[0].body_kind, BodyKind::Empty);
    assert_eq!(ledger[0].status, 200);
    assert!(ledger[0].applied);
    assert_eq!(ledger[1].user_id, "bob");
    assert_eq!(ledger[1].body_kind, BodyKind::Password);
    assert_eq!(
        ledger[1].raw_path,
        "/v3/users/bob/password?emailPassword=false"
    );
    assert!(ledger[0].at_ms <= ledger[1].at_ms);

    let counts = simulator.ledger_applied_counts();
    assert_eq!(counts.get("alice"), Some(&1));
    assert_eq!(counts.get("bob"), Some(&1));
    assert_eq!(simulator.authentications().len(), 1);
    simulator.shutdown().await;
}

#[tokio::test]
async fn expiry_header_sets_jwt_lifetime() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);

    let token = client
        .jwt(ADMIN_KEY_ID, ADMIN_KEY_TOKEN, Some("PT30S"))
        .await;
    assert_eq!(jwt_lifetime_secs(&token), 30);
    assert_eq!(simulator.authentications()[0].lifetime_secs, Some(30));
    simulator.shutdown().await;
}

#[tokio::test]
async fn wrong_api_key_gets_401() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);

    let response = client
        .authenticate(ADMIN_KEY_ID, "wrong-secret", None)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_id(response).await, "AIUCO1004E");
    simulator.shutdown().await;
}

#[tokio::test]
async fn missing_and_expired_tokens_get_401() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);

    let missing = client
        .http
        .post(client.url("/v3/users/alice/password?emailPassword=false"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_id(missing).await, "AIUCO1001E");

    let expired_token = client
        .jwt(ADMIN_KEY_ID, ADMIN_KEY_TOKEN, Some("PT0S"))
        .await;
    let expired = client
        .try_reset(&expired_token, "alice", &json!({}))
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_id(expired).await, "AIUCO1003E");

    let ledger = simulator.ledger();
    assert_eq!(ledger.len(), 2);
    assert!(ledger.iter().all(|entry| entry.status == 401));
    assert!(ledger.iter().all(|entry| !entry.applied));
    assert!(simulator.ledger_applied_counts().is_empty());
    simulator.shutdown().await;
}

#[tokio::test]
async fn revoked_tokens_get_401() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);
    let token = client.jwt(ADMIN_KEY_ID, ADMIN_KEY_TOKEN, None).await;

    simulator.revoke_tokens();
    for old_token in [token.as_str(), STATIC_ADMIN_TOKEN] {
        let response = client
            .try_reset(old_token, "alice", &json!({}))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_id(response).await, "AIUCO1002E");
    }

    let fresh = client.jwt(ADMIN_KEY_ID, ADMIN_KEY_TOKEN, None).await;
    let response = client.try_reset(&fresh, "alice", &json!({})).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    simulator.shutdown().await;
}

#[tokio::test]
async fn token_without_user_admin_gets_403() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);
    let reader_jwt = client.jwt(READER_KEY_ID, READER_KEY_TOKEN, None).await;

    for token in [reader_jwt.as_str(), STATIC_READER_TOKEN] {
        let response = client.try_reset(token, "alice", &json!({})).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(error_id(response).await, "AIUCO1005E");
    }
    assert!(simulator.ledger_applied_counts().is_empty());
    simulator.shutdown().await;
}

#[tokio::test]
async fn unknown_user_gets_404_mas_shape() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);

    let response = client.reset("nobody", &json!({})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["exception"]["id"], "AIUCO1010E");
    assert_eq!(body["exception"]["properties"], json!(["nobody"]));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("AIUCO1010E: ")
    );
    assert!(body["uuid"].is_string());

    let lookup = client.lookup("nobody").await;
    assert_eq!(lookup.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_id(lookup).await, "AIUCO1010E");

    let ledger = simulator.ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].status, 404);
    assert!(!ledger[0].applied);
    simulator.shutdown().await;
}

#[tokio::test]
async fn user_id_segment_is_decoded_once() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);

    let cases = [
        ("ops%2Fadmin", "ops/admin"),
        ("50%25off", "50%off"),
        ("j%C3%B6rg", "jörg"),
        ("a%2Bb", "a+b"),
    ];
    for (encoded, decoded) in cases {
        let response = client.reset(encoded, &json!({})).await;
        assert_eq!(response.status(), StatusCode::OK, "{encoded}");

        let entries = simulator.ledger_for(decoded);
        assert_eq!(entries.len(), 1, "{decoded}");
        assert_eq!(
            entries[0].raw_path,
            format!("/v3/users/{encoded}/password?emailPassword=false")
        );
        assert!(entries[0].applied, "{decoded}");
    }

    let double_encoded = client.reset("ops%252Fadmin", &json!({})).await;
    assert_eq!(double_encoded.status(), StatusCode::NOT_FOUND);
    assert_eq!(simulator.ledger().last().unwrap().user_id, "ops%2Fadmin");

    let profile: Value = client.lookup("ops%2Fadmin").await.json().await.unwrap();
    assert_eq!(profile["id"], "ops/admin");
    assert!(profile["identities"].get("_local").is_some());
    simulator.shutdown().await;
}

/// Sends one request over a plain TCP connection, so the path reaches the server without
/// the dot-segment removal that URL parsers apply, and returns the status and body.
async fn raw_request(address: std::net::SocketAddr, request_line: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{request_line}\r\nHost: {address}\r\nx-access-token: {STATIC_ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();

    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test]
async fn dot_segments_are_unknown_paths() {
    let simulator = start(test_config()).await;
    let address = simulator.local_addr();

    let request_lines = [
        "POST /v3/users/../password?emailPassword=false HTTP/1.1",
        "POST /v3/users/./password?emailPassword=false HTTP/1.1",
        "POST /v3/users/%2E%2E/password?emailPassword=false HTTP/1.1",
        "POST /v3/users/ops/admin/password?emailPassword=false HTTP/1.1",
    ];
    for request_line in request_lines {
        let (status, body) = raw_request(address, request_line).await;
        assert_eq!(status, 404, "{request_line}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["exception"]["id"], "AIUCO1022E", "{request_line}");
    }
    assert!(simulator.ledger().is_empty());
    simulator.shutdown().await;
}

/// Body of a password call in a table of cases.
enum CallBody {
    Json(Value),
    /// Raw text, with a `Content-Type: application/json` header when `json_type` is set.
    Raw {
        text: &'static str,
        json_type: bool,
    },
}

#[tokio::test]
async fn request_checks_reject_bad_calls() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);

    let cases = [
        (
            "sso-dave",
            "false",
            CallBody::Json(json!({})),
            409,
            "AIUCO1031E",
        ),
        (
            "alice",
            "false",
            CallBody::Json(json!({ "token": "abc" })),
            400,
            "AIUCO1030E",
        ),
        (
            "alice",
            "false",
            CallBody::Raw {
                text: "{token:",
                json_type: true,
            },
            400,
            "AIUCO1011E",
        ),
        (
            "alice",
            "false",
            CallBody::Raw {
                text: "{}",
                json_type: false,
            },
            415,
            "AIUCO1014E",
        ),
        ("alice", "yes", CallBody::Json(json!({})), 400, "AIUCO1012E"),
        (
            "no-mail",
            "true",
            CallBody::Json(json!({})),
            400,
            "AIUCO1032E",
        ),
    ];
    for (user, email_password, body, expected_status, expected_id) in cases {
        let request = client.password_request(STATIC_ADMIN_TOKEN, user, email_password);
        let request = match body {
            CallBody::Json(value) => request.json(&value),
            CallBody::Raw {
                text,
                json_type: true,
            } => request
                .header("content-type", "application/json")
                .body(text),
            CallBody::Raw {
                text,
                json_type: false,
            } => request.body(text),
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected_status, "{expected_id}");
        assert_eq!(error_id(response).await, expected_id);
    }

    let emailed = client
        .password_request(STATIC_ADMIN_TOKEN, "alice", "true")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(emailed.status(), StatusCode::OK);
    assert_eq!(emailed.json::<Value>().await.unwrap(), json!({}));

    let kinds: Vec<BodyKind> = simulator
        .ledger()
        .iter()
        .map(|entry| entry.body_kind)
        .collect();
    assert_eq!(
        kinds,
        [
            BodyKind::Empty,
            BodyKind::Password,
            BodyKind::Invalid,
            BodyKind::Empty,
            BodyKind::Empty,
            BodyKind::Empty,
            BodyKind::Empty,
        ]
    );
    assert_eq!(simulator.ledger_applied_counts().get("alice"), Some(&1));
    assert!(simulator.ledger().last().unwrap().email_password);
    simulator.shutdown().await;
}

#[tokio::test]
async fn lookups_are_recorded_apart() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);

    let response = client.lookup("alice").await;
    assert_eq!(response.status(), StatusCode::OK);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile["status"]["active"], true);
    assert_eq!(profile["emails"][0]["value"], "alice@example.com");

    let lookups = simulator.lookups();
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].user_id, "alice");
    assert_eq!(lookups[0].status, 200);
    assert!(simulator.ledger().is_empty());
    simulator.shutdown().await;
}

#[tokio::test]
async fn scripted_statuses_send_retry_after() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);

    let http_date =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
    let status = |status: u16, retry_after: Option<&str>| Fault::Status {
        status,
        retry_after: retry_after.map(str::to_owned),
    };
    let script = vec![
        status(429, Some("2")),
        status(503, Some(&http_date)),
        status(429, Some("1.5")),
        status(429, Some("soon")),
        status(500, None),
    ];
    simulator.set_faults(FaultPlan {
        per_user: [("alice".to_owned(), script)].into(),
        ..FaultPlan::default()
    });

    let expected = [
        (429, Some("2")),
        (503, Some(http_date.as_str())),
        (429, Some("1.5")),
        (429, Some("soon")),
        (500, None),
        (200, None),
    ];
    for (expected_status, expected_retry_after) in expected {
        let response = client.reset("alice", &json!({})).await;
        assert_eq!(response.status().as_u16(), expected_status);
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        assert_eq!(retry_after.as_deref(), expected_retry_after);
    }

    let ledger = simulator.ledger_for("alice");
    assert_eq!(ledger.len(), 6);
    assert_eq!(ledger[0].fault.as_deref(), Some("status_429"));
    assert!(ledger[0].earliest_retry_ms.unwrap() >= ledger[0].at_ms + 2_000);
    assert!(ledger[1].earliest_retry_ms.unwrap() >= ledger[1].at_ms + 118_000);
    assert!(ledger[2].earliest_retry_ms.unwrap() >= ledger[2].at_ms + 1_500);
    assert_eq!(ledger[3].earliest_retry_ms, None);
    assert_eq!(ledger[3].retry_after.as_deref(), Some("soon"));
    assert_eq!(ledger[4].retry_after, None);
    assert!(ledger[..5].iter().all(|entry| !entry.applied));
    assert!(ledger[5].applied);
    assert_eq!(simulator.ledger_applied_counts().get("alice"), Some(&1));
    simulator.shutdown().await;
}

#[tokio::test]
async fn resets_close_without_response() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);
    simulator.set_faults(FaultPlan {
        per_user: [
            ("alice".to_owned(), vec![Fault::ResetBeforeRequest]),
            ("bob".to_owned(), vec![Fault::ResetAfterApply]),
        ]
        .into(),
        ..FaultPlan::default()
    });

    for user in ["alice", "bob"] {
        let result = client.try_reset(STATIC_ADMIN_TOKEN, user, &json!({})).await;
        assert!(result.is_err(), "{user} got a response");
    }

    let alice = simulator.ledger_for("alice");
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].status, 0);
    assert_eq!(alice[0].body_kind, BodyKind::NotRead);
    assert!(!alice[0].applied);

    let bob = simulator.ledger_for("bob");
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].status, 0);
    assert!(bob[0].applied);
    assert_eq!(bob[0].fault.as_deref(), Some("reset_after_apply"));
    simulator.shutdown().await;
}

#[tokio::test]
async fn delayed_call_applies_after_client_timeout() {
    let simulator = start(test_config()).await;
    simulator.set_faults(FaultPlan {
        per_user: [("alice".to_owned(), vec![Fault::Delay { ms: 1_000 }])].into(),
        ..FaultPlan::default()
    });

    let impatient = MasClient::new(simulator.base_url(), None, Duration::from_millis(200));
    let error = impatient
        .try_reset(STATIC_ADMIN_TOKEN, "alice", &json!({}))
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    let alice = simulator.ledger_for("alice");
    assert_eq!(alice.len(), 1);
    assert!(alice[0].applied);
    assert_eq!(alice[0].fault.as_deref(), Some("delay_1000ms"));
    simulator.shutdown().await;
}

#[tokio::test]
async fn tls_works_with_returned_ca_only() {
    let simulator = start(SimulatorConfig {
        tls: true,
        ..test_config()
    })
    .await;
    assert!(simulator.base_url().starts_with("https://localhost:"));

    let trusting = MasClient::of(&simulator);
    let response = trusting.reset("alice", &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);

    let other_ca = unrelated_ca_pem().unwrap();
    let untrusting = MasClient::new(
        simulator.base_url(),
        Some(&other_ca),
        Duration::from_secs(10),
    );
    let error = untrusting
        .try_reset(STATIC_ADMIN_TOKEN, "bob", &json!({}))
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error}");
    assert!(simulator.ledger_for("bob").is_empty());
    simulator.shutdown().await;
}

#[tokio::test]
async fn aborted_tls_connection_is_connect_error() {
    let simulator = start(SimulatorConfig {
        tls: true,
        ..test_config()
    })
    .await;
    let client = MasClient::of(&simulator);
    simulator.set_faults(FaultPlan {
        abort_connections: 1,
        ..FaultPlan::default()
    });

    let error = client
        .try_reset(STATIC_ADMIN_TOKEN, "alice", &json!({}))
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error}");
    assert!(simulator.ledger().is_empty());

    let retried = client.reset("alice", &json!({})).await;
    assert_eq!(retried.status(), StatusCode::OK);
    assert_eq!(simulator.ledger_applied_counts().get("alice"), Some(&1));
    simulator.shutdown().await;
}

#[tokio::test]
async fn concurrency_limit_sends_429() {
    let simulator = start(SimulatorConfig {
        max_concurrent_requests: Some(2),
        faults: FaultPlan {
            per_user: [
                ("alice".to_owned(), vec![Fault::Delay { ms: 1_500 }]),
                ("bob".to_owned(), vec![Fault::Delay { ms: 1_500 }]),
            ]
            .into(),
            ..FaultPlan::default()
        },
        ..test_config()
    })
    .await;
    let client = MasClient::of(&simulator);

    let slow_calls: Vec<_> = ["alice", "bob"]
        .into_iter()
        .map(|user| {
            let client = client.clone();
            tokio::spawn(async move { client.reset(user, &json!({})).await.status() })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while simulator.peak_concurrent_requests() < 2 {
        assert!(Instant::now() < deadline, "slow calls never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let rejected = client.reset("carol", &json!({})).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rejected.headers()["retry-after"], "1");
    assert_eq!(error_id(rejected).await, "AIUCO1050E");

    for call in slow_calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    let carol = simulator.ledger_for("carol");
    assert_eq!(carol[0].fault.as_deref(), Some("concurrency_limit"));
    assert!(!carol[0].applied);
    simulator.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_drive_simulator() {
    let simulator = start(test_config()).await;
    let client = MasClient::of(&simulator);

    let plan = json!({ "per_user": { "ops/admin": [{ "kind": "status", "status": 503, "retry_after": "3" }] } });
    let set = client.post_json("/_sim/faults", &plan).await;
    assert_eq!(set.status(), StatusCode::NO_CONTENT);

    let first = client.reset("ops%2Fadmin", &json!({})).await;
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    let second = client.reset("ops%2Fadmin", &json!({})).await;
    assert_eq!(second.status(), StatusCode::OK);
    client.reset("bob", &json!({})).await;

    let ledger = client.get_json("/_sim/ledger?user=ops%2Fadmin").await;
    let entries = ledger.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["status"], 503);
    assert_eq!(entries[0]["retry_after"], "3");
    assert_eq!(entries[1]["applied"], true);

    let applied = client.get_json("/_sim/applied").await;
    assert_eq!(applied, json!({ "ops/admin": 1, "bob": 1 }));

    let invalid_plan = json!({ "per_user": { "x": [{ "kind": "status", "status": 200 }] } });
    let invalid = client.post_json("/_sim/faults", &invalid_plan).await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);

    let users = client
        .post_json("/_sim/users", &json!([{ "id": "zed" }]))
        .await;
    assert_eq!(users.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        client.reset("zed", &json!({})).await.status(),
        StatusCode::OK
    );
    let removed_user = client.reset("bob", &json!({})).await;
    assert_eq!(removed_user.status(), StatusCode::NOT_FOUND);
    simulator.shutdown().await;
}

#[tokio::test]
async fn binary_prints_url_and_serves() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mas-simulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--generate-users",
            "3",
            "--prefix",
            "demo",
            "--api-key",
            "demo-key:demo-secret",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mas-simulator binary starts");

    let stdout = child.stdout.take().unwrap();
    let mut first_line = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).read_line(&mut first_line),
    )
    .await
    .expect("binary prints its URL within 30 s")
    .unwrap();
    let base_url = first_line
        .trim()
        .strip_prefix("listening on ")
        .expect("first line is 'listening on <url>'")
        .to_owned();

    let client = MasClient::new(base_url, None, Duration::from_secs(10));
    let token = client.jwt("demo-key", "demo-secret", None).await;
    let response = client
        .try_reset(&token, "demo-00002", &json!({}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let ledger = client.get_json("/_sim/ledger").await;
    assert_eq!(ledger[0]["user_id"], "demo-00002");

    child.kill().await.unwrap();
}

/// Sends `requests` password calls for distinct users from `concurrency` workers and
/// returns the rate in requests per second. Each user must be reset exactly once.
async fn measure_password_calls(latency_ms: u64, requests: usize, concurrency: usize) -> f64 {
    let simulator = start(SimulatorConfig {
        users: generate_users("load", requests),
        latency_ms,
        ..test_config()
    })
    .await;
    let client = MasClient::of(&simulator);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1));

    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let number = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if number > requests {
                        break;
                    }
                    let user = format!("load-{number:05}");
                    let response = client.reset(&user, &json!({})).await;
                    assert_eq!(response.status(), StatusCode::OK);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();

    let counts = simulator.ledger_applied_counts();
    assert_eq!(counts.len(), requests);
    assert!(counts.values().all(|count| *count == 1));
    simulator.shutdown().await;

    let rate = requests as f64 / elapsed.as_secs_f64();
    println!(
        "{requests} password calls, {concurrency} concurrent, {latency_ms} ms latency: \
         {:.2} s, {rate:.0} requests/s",
        elapsed.as_secs_f64()
    );
    rate
}

/// Measures throughput with the client in the same process; run with
/// `cargo test --test simulator -- --ignored --nocapture capacity`. It checks correctness
/// only, never timing.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, run by hand"]
async fn capacity_of_password_calls() {
    measure_password_calls(0, 20_000, 64).await;
    measure_password_calls(20, 10_000, 64).await;
}
