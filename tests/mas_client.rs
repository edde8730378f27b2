//! Tests of the MAS client against small HTTP servers on 127.0.0.1 that
//! each test starts itself: what goes over the wire, how each kind of
//! failure is classified, TLS trust, and token handling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mas_reset_operator::mas::{
    Attempt, AuthError, ClientConfig, ClientError, Credentials, IndeterminateKind, MasClient,
    NotSentKind, PasswordBody, RenewOutcome, TokenProvider,
};
use mas_reset_operator::secret::SecretString;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

const TOKEN: &str = "tok-SECRET-4711";
const PASSWORD: &str = "N3w-Pa$$word!";
const KEY_ID: &str = "key-id-SECRET";
const KEY_TOKEN: &str = "key-token-SECRET";

/// One request as the test server read it.
#[derive(Debug, Clone)]
struct Recorded {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn path(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or("")
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> String + Send + Sync>;

/// What the test server does with each connection.
#[derive(Clone)]
enum Behaviour {
    /// Reads a request, waits, then writes the response the handler builds.
    /// The connection stays open for the next request unless the response
    /// has `Connection: close`.
    Respond { delay: Duration, handler: Handler },
    /// Accepts and never reads or writes.
    Silent,
    /// Reads the request, then closes the connection.
    CloseAfterRequest,
    /// Reads the request, then resets the connection (RST).
    ResetAfterRequest,
}

struct TestServer {
    base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
}

impl TestServer {
    async fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().await.clone()
    }

    async fn count_path(&self, path: &str) -> usize {
        self.requests
            .lock()
            .await
            .iter()
            .filter(|request| request.path() == path)
            .count()
    }
}

async fn start_server(behaviour: Behaviour) -> TestServer {
    start_server_with_tls(behaviour, None).await
}

async fn start_server_with_tls(
    behaviour: Behaviour,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let requests = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));

    let server = TestServer {
        base_url: format!("{scheme}://{address}"),
        requests: requests.clone(),
        connections: connections.clone(),
    };

    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            connections.fetch_add(1, Ordering::SeqCst);
            let behaviour = behaviour.clone();
            let requests = requests.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve_connection(stream, behaviour, requests).await;
                        }
                    }
                    None => serve_plain(stream, behaviour, requests).await,
                }
            });
        }
    });
    server
}

async fn serve_plain(
    mut stream: TcpStream,
    behaviour: Behaviour,
    requests: Arc<Mutex<Vec<Recorded>>>,
) {
    if let Behaviour::ResetAfterRequest = behaviour {
        if let Some(request) = read_request(&mut stream).await {
            requests.lock().await.push(request);
        }
        // SO_LINGER 0 makes close send RST. It is deprecated in tokio
        // because a non-zero linger blocks on drop, which zero does not.
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO)).expect("set linger");
        drop(stream);
        return;
    }
    serve_connection(stream, behaviour, requests).await;
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    behaviour: Behaviour,
    requests: Arc<Mutex<Vec<Recorded>>>,
) {
    if let Behaviour::Silent = behaviour {
        tokio::time::sleep(Duration::from_secs(30)).await;
        return;
    }

    loop {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        requests.lock().await.push(request.clone());

        let Behaviour::Respond { delay, handler } = &behaviour else {
            return;
        };
        tokio::time::sleep(*delay).await;
        let response = handler(&request);
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        if response.contains("Connection: close") {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Reads one HTTP/1.1 request with a Content-Length body.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Recorded> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };

    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();

    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }

    Some(Recorded {
        request_line,
        headers,
        body,
    })
}

fn http_response(status: &str, extra_headers: &[(&str, &str)], body: &str) -> String {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra_headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(body);
    response
}

fn respond(handler: impl Fn(&Recorded) -> String + Send + Sync + 'static) -> Behaviour {
    Behaviour::Respond {
        delay: Duration::ZERO,
        handler: Arc::new(handler),
    }
}

fn respond_always(status: &'static str, body: &'static str) -> Behaviour {
    respond(move |_| http_response(status, &[], body))
}

fn config(base_url: &str) -> ClientConfig {
    ClientConfig {
        base_url: base_url.to_owned(),
        ca_bundle_pem: None,
        insecure_skip_tls_verify: false,
        allow_http: true,
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_idle_per_host: 8,
    }
}

fn client(base_url: &str) -> MasClient {
    MasClient::new(config(base_url)).expect("client")
}

fn token() -> SecretString {
    SecretString::new(TOKEN)
}

/// Asserts that text shown to users contains none of the test credentials.
fn assert_no_secret(text: &str) {
    for secret in [TOKEN, PASSWORD, KEY_ID, KEY_TOKEN, "SECRET"] {
        assert!(!text.contains(secret), "{secret:?} leaked in {text:?}");
    }
}

/// Sends a reset of user `jo` with a MAS-generated, e-mailed password.
async fn reset_jo(base_url: &str) -> Attempt {
    reset_jo_with(config(base_url)).await
}

async fn reset_jo_with(config: ClientConfig) -> Attempt {
    MasClient::new(config)
        .expect("client")
        .reset_password("jo", &PasswordBody::MasGenerated, true, &token())
        .await
}

fn expect_not_sent(attempt: &Attempt) -> (NotSentKind, &str) {
    match attempt {
        Attempt::NotSent { kind, detail } => (*kind, detail),
        other => panic!("expected NotSent, got {other:?}"),
    }
}

fn expect_indeterminate(attempt: &Attempt) -> (IndeterminateKind, &str) {
    match attempt {
        Attempt::Indeterminate { kind, detail } => (*kind, detail),
        other => panic!("expected Indeterminate, got {other:?}"),
    }
}

/// Returns whether MAS responded with `status` and no parsed error body.
fn answered_without_error(attempt: &Attempt, expected_status: u16) -> bool {
    matches!(attempt, Attempt::Answered { status, error: None, .. } if *status == expected_status)
}

fn jwt(claims: &serde_json::Value) -> String {
    format!(
        "eyJhbGciOiJub25lIn0.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

// ---- what goes over the wire ----

#[tokio::test]
async fn password_request_line_encodes_id() {
    let server = start_server(respond_always("200 OK", "{}")).await;
    let client = client(&server.base_url);
    let cases = [
        (
            "jo#1",
            true,
            "POST /v3/users/jo%231/password?emailPassword=true HTTP/1.1",
        ),
        (
            "a b/c?d",
            false,
            "POST /v3/users/a%20b%2Fc%3Fd/password?emailPassword=false HTTP/1.1",
        ),
        (
            "jöe%2e",
            true,
            "POST /v3/users/j%C3%B6e%252e/password?emailPassword=true HTTP/1.1",
        ),
        (
            "..x",
            true,
            "POST /v3/users/..x/password?emailPassword=true HTTP/1.1",
        ),
    ];

    for (user_id, email, _) in cases {
        let attempt = client
            .reset_password(user_id, &PasswordBody::MasGenerated, email, &token())
            .await;
        assert_eq!(attempt.status(), Some(200), "user {user_id:?}: {attempt}");
    }

    let requests = server.requests().await;
    for (index, (user_id, _, expected)) in cases.iter().enumerate() {
        assert_eq!(requests[index].request_line, *expected, "user {user_id:?}");
    }
}

#[tokio::test]
async fn password_request_headers() {
    let server = start_server(respond_always("200 OK", "{}")).await;

    client(&server.base_url)
        .reset_password("jo", &PasswordBody::MasGenerated, true, &token())
        .await;

    let request = &server.requests().await[0];
    assert_eq!(request.header("x-access-token"), Some(TOKEN));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("mas-reset-operator/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(request.header("authorization"), None);
}

#[tokio::test]
async fn password_body_generated_or_set() {
    let server = start_server(respond_always("200 OK", "{}")).await;
    let client = client(&server.base_url);

    client
        .reset_password("jo", &PasswordBody::MasGenerated, true, &token())
        .await;
    let password = PasswordBody::Password(SecretString::new(PASSWORD));
    client.reset_password("jo", &password, true, &token()).await;

    let requests = server.requests().await;
    assert_eq!(requests[0].body, b"{}");
    let sent: serde_json::Value = serde_json::from_slice(&requests[1].body).expect("JSON body");
    assert_eq!(sent, serde_json::json!({ "token": PASSWORD }));
}

#[tokio::test]
async fn generated_password_only_when_expected() {
    let server = start_server(respond_always("200 OK", r#"{"token":"gen-Pw-1"}"#)).await;
    let client = client(&server.base_url);
    let set = PasswordBody::Password(SecretString::new(PASSWORD));

    let generated = client
        .reset_password("jo", &PasswordBody::MasGenerated, false, &token())
        .await;
    let emailed = client
        .reset_password("jo", &PasswordBody::MasGenerated, true, &token())
        .await;
    let chosen = client.reset_password("jo", &set, false, &token()).await;

    let Attempt::Answered {
        generated_password: Some(password),
        ..
    } = &generated
    else {
        panic!("no generated password in {generated:?}");
    };
    assert_eq!(password.expose(), "gen-Pw-1");
    assert!(!format!("{generated:?}").contains("gen-Pw-1"));
    assert!(matches!(
        emailed,
        Attempt::Answered {
            generated_password: None,
            ..
        }
    ));
    assert!(matches!(
        chosen,
        Attempt::Answered {
            generated_password: None,
            ..
        }
    ));
}

#[tokio::test]
async fn not_found_error_parsed_and_cleaned() {
    let body = format!(
        r#"{{"exception":{{"id":"AIUCO1005E","properties":["jo"]}},"message":"AIUCO1005E: User jo not found\n(token {TOKEN}, password {PASSWORD})","uuid":"1"}}"#
    );
    let server = start_server(respond(move |_| http_response("404 Not Found", &[], &body))).await;
    let password = PasswordBody::Password(SecretString::new(PASSWORD));

    let attempt = client(&server.base_url)
        .reset_password("jo", &password, true, &token())
        .await;

    let Attempt::Answered {
        status,
        error: Some(error),
        ..
    } = &attempt
    else {
        panic!("no MAS error in {attempt:?}");
    };
    assert_eq!(*status, 404);
    assert_eq!(error.id.as_deref(), Some("AIUCO1005E"));
    assert_eq!(
        error.message.as_deref(),
        Some("AIUCO1005E: User jo not found (token [redacted], password [redacted])")
    );
    assert_no_secret(&format!("{attempt:?}"));
    assert_no_secret(&attempt.to_string());
}

#[tokio::test]
async fn retry_after_header_kept_raw() {
    let server = start_server(respond(|_| {
        http_response("429 Too Many Requests", &[("Retry-After", "1.5")], "")
    }))
    .await;

    let attempt = reset_jo(&server.base_url).await;

    let Attempt::Answered {
        status,
        retry_after,
        error,
        ..
    } = attempt
    else {
        panic!("not answered");
    };
    assert_eq!(status, 429);
    assert_eq!(retry_after.as_deref(), Some("1.5"));
    assert_eq!(error, None);
}

#[tokio::test]
async fn body_over_limit_not_parsed() {
    let padding = "x".repeat(100 * 1024);
    let body = format!(r#"{{"exception":{{"id":"AIUCO1005E"}},"message":"{padding}"}}"#);
    let server = start_server(respond(move |_| http_response("404 Not Found", &[], &body))).await;

    let attempt = reset_jo(&server.base_url).await;

    assert!(answered_without_error(&attempt, 404), "{attempt:?}");
}

#[tokio::test]
async fn chunked_body_over_limit_not_parsed() {
    let server = start_server(respond(|_| {
        let chunk = "x".repeat(8 * 1024);
        let mut response = String::from(
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        );
        let head = r#"{"exception":{"id":"A"},"x":""#;
        response.push_str(&format!("{:x}\r\n{head}\r\n", head.len()));
        for _ in 0..10 {
            response.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
        }
        response.push_str("2\r\n\"}\r\n0\r\n\r\n");
        response
    }))
    .await;

    let attempt = reset_jo(&server.base_url).await;

    assert!(answered_without_error(&attempt, 404), "{attempt:?}");
}

#[tokio::test]
async fn keep_alive_reuses_connection() {
    let server = start_server(respond(|_| {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_owned()
    }))
    .await;
    let client = client(&server.base_url);

    for _ in 0..20 {
        let attempt = client
            .reset_password("jo", &PasswordBody::MasGenerated, true, &token())
            .await;
        assert_eq!(attempt.status(), Some(200), "{attempt:?}");
    }

    assert_eq!(server.requests().await.len(), 20);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn truncated_body_keeps_status() {
    let server = start_server(respond(|_| {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"exc"
            .to_owned()
    }))
    .await;

    let attempt = reset_jo(&server.base_url).await;

    assert!(answered_without_error(&attempt, 404), "{attempt:?}");
}

#[tokio::test]
async fn stalled_body_keeps_status() {
    // Without `Connection: close` the server waits for another request, so
    // the body never completes and the request timeout fires while reading.
    let server = start_server(respond(|_| {
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"tok".to_owned()
    }))
    .await;
    let mut config = config(&server.base_url);
    config.request_timeout = Duration::from_millis(300);
    config.connect_timeout = Duration::from_millis(200);

    let attempt = MasClient::new(config)
        .expect("client")
        .reset_password("jo", &PasswordBody::MasGenerated, false, &token())
        .await;

    assert!(
        matches!(
            attempt,
            Attempt::Answered {
                status: 200,
                generated_password: None,
                ..
            }
        ),
        "{attempt:?}"
    );
}

#[tokio::test]
async fn redirect_not_followed() {
    let server = start_server(respond(|_| {
        http_response("307 Temporary Redirect", &[("Location", "/elsewhere")], "")
    }))
    .await;

    let attempt = reset_jo(&server.base_url).await;

    assert_eq!(attempt.status(), Some(307));
    assert_eq!(server.requests().await.len(), 1);
}

#[tokio::test]
async fn get_user_request_line() {
    let server = start_server(respond_always("200 OK", r#"{"id":"jo#1"}"#)).await;

    let attempt = client(&server.base_url).get_user("jo#1", &token()).await;

    assert_eq!(attempt.status(), Some(200));
    let request = &server.requests().await[0];
    assert_eq!(request.request_line, "GET /v3/users/jo%231 HTTP/1.1");
    assert_eq!(request.header("x-access-token"), Some(TOKEN));
}

#[tokio::test]
async fn base_url_path_prefix_kept() {
    let server = start_server(respond_always("200 OK", "{}")).await;

    client(&format!("{}/mas/", server.base_url))
        .reset_password("jo", &PasswordBody::MasGenerated, true, &token())
        .await;

    assert_eq!(
        server.requests().await[0].request_line,
        "POST /mas/v3/users/jo/password?emailPassword=true HTTP/1.1"
    );
}

// ---- requests that cannot be built ----

#[tokio::test]
async fn invalid_user_id_not_sent() {
    let server = start_server(respond_always("200 OK", "{}")).await;
    let client = client(&server.base_url);

    for user_id in ["", ".", ".."] {
        let attempt = client
            .reset_password(user_id, &PasswordBody::MasGenerated, true, &token())
            .await;
        let (kind, _) = expect_not_sent(&attempt);
        assert_eq!(kind, NotSentKind::InvalidRequest, "user {user_id:?}");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn token_with_newline_not_sent() {
    let server = start_server(respond_always("200 OK", "{}")).await;
    let bad_token = SecretString::new(format!("{TOKEN}\r\nx-evil: 1"));

    let attempt = client(&server.base_url)
        .reset_password("jo", &PasswordBody::MasGenerated, true, &bad_token)
        .await;

    let (kind, _) = expect_not_sent(&attempt);
    assert_eq!(kind, NotSentKind::InvalidRequest);
    assert_no_secret(&format!("{attempt:?} {attempt}"));
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

// ---- failures and their classification ----

#[tokio::test]
async fn connection_refused_not_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);

    let attempt = reset_jo(&format!("http://{address}")).await;

    let (kind, detail) = expect_not_sent(&attempt);
    assert_eq!(kind, NotSentKind::Connect);
    assert!(detail.contains("refused"), "{detail}");
    assert!(!detail.contains("127.0.0.1"), "URL in {detail}");
}

#[tokio::test]
async fn silent_server_times_out() {
    let server = start_server(Behaviour::Silent).await;
    let mut config = config(&server.base_url);
    config.request_timeout = Duration::from_millis(300);
    config.connect_timeout = Duration::from_millis(200);

    let attempt = reset_jo_with(config).await;

    let (kind, detail) = expect_indeterminate(&attempt);
    assert_eq!(kind, IndeterminateKind::Timeout);
    assert!(detail.contains("timed out"), "{detail}");
}

#[tokio::test]
async fn close_after_request_indeterminate() {
    let server = start_server(Behaviour::CloseAfterRequest).await;

    let attempt = reset_jo(&server.base_url).await;

    let (kind, detail) = expect_indeterminate(&attempt);
    assert_eq!(kind, IndeterminateKind::ConnectionLost);
    assert!(detail.contains("closed"), "{detail}");
    assert_eq!(server.requests().await.len(), 1);
}

#[tokio::test]
async fn reset_after_request_indeterminate() {
    let server = start_server(Behaviour::ResetAfterRequest).await;

    let attempt = reset_jo(&server.base_url).await;

    let (kind, detail) = expect_indeterminate(&attempt);
    assert_eq!(kind, IndeterminateKind::ConnectionLost);
    assert!(detail.contains("reset"), "{detail}");
    assert_eq!(server.requests().await.len(), 1);
}

// ---- TLS ----

struct TestPki {
    ca_pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn ca_params(name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params
}

/// Creates a CA and a server certificate for 127.0.0.1 signed by it.
fn test_pki(ca_name: &str) -> TestPki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params(ca_name), ca_key).expect("CA");

    let server_key = rcgen::KeyPair::generate().expect("server key");
    let server_certificate = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &ca)
        .expect("server certificate");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![server_certificate.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .expect("server TLS config");

    TestPki {
        ca_pem: ca.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server_config)),
    }
}

#[tokio::test]
async fn tls_with_ca_bundle_succeeds() {
    let pki = test_pki("MAS test CA");
    let server =
        start_server_with_tls(respond_always("200 OK", "{}"), Some(pki.acceptor.clone())).await;
    let mut config = config(&server.base_url);
    config.allow_http = false;
    config.ca_bundle_pem = Some(pki.ca_pem.clone().into_bytes());

    let attempt = MasClient::new(config)
        .expect("client")
        .reset_password("jo#1", &PasswordBody::MasGenerated, true, &token())
        .await;

    assert_eq!(attempt.status(), Some(200), "{attempt:?}");
    assert_eq!(
        server.requests().await[0].request_line,
        "POST /v3/users/jo%231/password?emailPassword=true HTTP/1.1"
    );
}

#[tokio::test]
async fn tls_with_wrong_ca_not_sent() {
    let pki = test_pki("MAS test CA");
    let other = test_pki("Some other CA");
    let server =
        start_server_with_tls(respond_always("200 OK", "{}"), Some(pki.acceptor.clone())).await;
    let mut config = config(&server.base_url);
    config.ca_bundle_pem = Some(other.ca_pem.into_bytes());

    let attempt = reset_jo_with(config).await;

    let (kind, detail) = expect_not_sent(&attempt);
    assert_eq!(kind, NotSentKind::TlsHandshake);
    assert!(detail.contains("UnknownIssuer"), "{detail}");
    assert!(detail.contains("CA bundle"), "{detail}");
    assert!(server.requests().await.is_empty());
}

#[tokio::test]
async fn tls_insecure_skip_verify_accepts() {
    let pki = test_pki("MAS test CA");
    let server =
        start_server_with_tls(respond_always("200 OK", "{}"), Some(pki.acceptor.clone())).await;
    let mut config = config(&server.base_url);
    config.insecure_skip_tls_verify = true;

    let attempt = reset_jo_with(config).await;

    assert_eq!(attempt.status(), Some(200), "{attempt:?}");
}

#[tokio::test]
async fn plain_http_on_tls_port_not_sent() {
    // A plain HTTP server responds to the ClientHello with an HTTP error.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let https_url = format!("https://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer).await;
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            .await;
    });
    let pki = test_pki("MAS test CA");
    let mut config = config(&https_url);
    config.ca_bundle_pem = Some(pki.ca_pem.into_bytes());

    let attempt = reset_jo_with(config).await;

    let (kind, detail) = expect_not_sent(&attempt);
    assert_eq!(kind, NotSentKind::TlsHandshake);
    assert!(detail.contains("did not speak TLS"), "{detail}");
}

// ---- configuration checks ----

#[test]
fn config_rejects_bad_values() {
    let base = config("https://api.inst1.example.com");
    let cases: Vec<(ClientConfig, &str)> = vec![
        (
            ClientConfig {
                base_url: "http://api.inst1.example.com".to_owned(),
                allow_http: false,
                ..base.clone()
            },
            "SchemeNotAllowed",
        ),
        (
            ClientConfig {
                base_url: "ftp://api.inst1.example.com".to_owned(),
                ..base.clone()
            },
            "SchemeNotAllowed",
        ),
        (
            ClientConfig {
                base_url: "not a url".to_owned(),
                ..base.clone()
            },
            "InvalidBaseUrl",
        ),
        (
            ClientConfig {
                base_url: format!("https://admin:{PASSWORD}@api.inst1.example.com"),
                ..base.clone()
            },
            "CredentialsInBaseUrl",
        ),
        (
            ClientConfig {
                base_url: "https://api.inst1.example.com/?x=1".to_owned(),
                ..base.clone()
            },
            "QueryInBaseUrl",
        ),
        (
            ClientConfig {
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(5),
                ..base.clone()
            },
            "InvalidTimeouts",
        ),
        (
            ClientConfig {
                ca_bundle_pem: Some(b"not pem".to_vec()),
                ..base.clone()
            },
            "InvalidCaBundle",
        ),
        (
            ClientConfig {
                ca_bundle_pem: Some(
                    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
                ),
                ..base.clone()
            },
            "InvalidCaBundle",
        ),
    ];

    for (config, expected) in cases {
        let url = config.base_url.clone();
        let error: ClientError = MasClient::new(config).expect_err(&url);
        let printed = format!("{error:?}");
        assert!(printed.starts_with(expected), "{url}: {printed}");
        assert_no_secret(&error.to_string());
        assert_no_secret(&printed);
    }
}

// ---- authentication ----

/// Responds to `/v1/authenticate` with a fresh JWT (lifetime in seconds, `jti`
/// counting the tokens) and everything else with 200.
fn auth_server(lifetime: f64, delay: Duration) -> Behaviour {
    auth_server_with_outage(lifetime, delay, Arc::new(AtomicBool::new(false)))
}

/// Like [`auth_server`], but `/v1/authenticate` returns 503 while `outage`
/// is set.
fn auth_server_with_outage(lifetime: f64, delay: Duration, outage: Arc<AtomicBool>) -> Behaviour {
    let issued = Arc::new(AtomicUsize::new(0));
    Behaviour::Respond {
        delay,
        handler: Arc::new(move |request| {
            if request.path() != "/v1/authenticate" {
                return http_response("200 OK", &[], "{}");
            }
            if outage.load(Ordering::SeqCst) {
                return http_response("503 Service Unavailable", &[], "");
            }
            let expected = format!("Basic {}", STANDARD.encode(format!("{KEY_ID}:{KEY_TOKEN}")));
            let sent = request.header("authorization").unwrap_or_default();
            if sent != expected {
                // Echo the credentials sent, as a careless server might.
                let decoded = STANDARD
                    .decode(sent.trim_start_matches("Basic "))
                    .unwrap_or_default();
                let message = format!(
                    r#"{{"exception":{{"id":"AIUCO1001E"}},"message":"bad key {}"}}"#,
                    String::from_utf8_lossy(&decoded)
                );
                return http_response("401 Unauthorized", &[], &message);
            }
            let number = issued.fetch_add(1, Ordering::SeqCst) + 1;
            let now = unix_now();
            let token =
                jwt(&serde_json::json!({ "jti": number, "iat": now, "exp": now + lifetime }));
            http_response("200 OK", &[], &format!(r#"{{"token":"{token}"}}"#))
        }),
    }
}

fn api_key() -> Credentials {
    Credentials::ApiKey {
        id: SecretString::new(KEY_ID),
        token: SecretString::new(KEY_TOKEN),
    }
}

#[tokio::test]
async fn authenticate_sends_basic_auth_and_lifetime() {
    let server = start_server(auth_server(3600.0, Duration::ZERO)).await;

    let issued = client(&server.base_url)
        .authenticate(
            &SecretString::new(KEY_ID),
            &SecretString::new(KEY_TOKEN),
            Some(Duration::from_secs(3600)),
        )
        .await
        .expect("token");

    let request = &server.requests().await[0];
    assert_eq!(request.request_line, "GET /v1/authenticate HTTP/1.1");
    assert_eq!(request.header("mas-jwt-expiry-duration"), Some("PT3600S"));
    assert_eq!(request.header("x-access-token"), None);
    let expires_at = issued.expires_at.expect("exp claim");
    assert!(expires_at > SystemTime::now() + Duration::from_secs(3000));
    assert_no_secret(&format!("{issued:?}"));
}

#[tokio::test]
async fn authenticate_rejected_key() {
    let server = start_server(auth_server(3600.0, Duration::ZERO)).await;

    let error = client(&server.base_url)
        .authenticate(
            &SecretString::new(KEY_ID),
            &SecretString::new("wrong-SECRET"),
            None,
        )
        .await
        .expect_err("wrong key");

    assert!(
        matches!(error, AuthError::KeyRejected { status: 401, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("AIUCO1001E"), "{message}");
    assert!(message.contains("credentials Secret"), "{message}");
    assert_no_secret(&message);
    assert_no_secret(&format!("{error:?}"));
}

#[tokio::test]
async fn authenticate_without_token_invalid() {
    let server = start_server(respond_always("200 OK", r#"{"status":"ok"}"#)).await;

    let error = client(&server.base_url)
        .authenticate(
            &SecretString::new(KEY_ID),
            &SecretString::new(KEY_TOKEN),
            None,
        )
        .await
        .expect_err("no token");

    assert!(
        matches!(error, AuthError::InvalidResponse { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn authenticate_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);

    let error = client(&format!("http://{address}"))
        .authenticate(
            &SecretString::new(KEY_ID),
            &SecretString::new(KEY_TOKEN),
            None,
        )
        .await
        .expect_err("refused");

    assert!(matches!(error, AuthError::Unreachable { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert_no_secret(&error.to_string());
}

#[tokio::test]
async fn authenticate_rejects_colon_in_key_id() {
    let server = start_server(auth_server(3600.0, Duration::ZERO)).await;

    let error = client(&server.base_url)
        .authenticate(
            &SecretString::new("id:SECRET"),
            &SecretString::new(KEY_TOKEN),
            None,
        )
        .await
        .expect_err("colon");

    assert!(
        matches!(error, AuthError::InvalidApiKey { .. }),
        "{error:?}"
    );
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn fixed_token_rejected_on_401() {
    let provider = TokenProvider::new(client("http://127.0.0.1:9"), Credentials::Token(token()));

    let current = provider.token().await.expect("fixed token");
    let error = provider
        .on_unauthorized(&current)
        .await
        .expect_err("cannot renew");

    assert_eq!(current.expose(), TOKEN);
    assert!(matches!(error, AuthError::TokenRejected));
    assert!(error.to_string().contains("credentials Secret"));
    assert_no_secret(&format!("{provider:?} {error:?} {error}"));
}

#[tokio::test]
async fn token_single_flight() {
    let server = start_server(auth_server(3600.0, Duration::from_millis(200))).await;
    let provider = TokenProvider::new(client(&server.base_url), api_key());

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.expect("task").expect("token"));
    }

    assert_eq!(server.count_path("/v1/authenticate").await, 1);
    assert!(tokens.iter().all(|token| *token == tokens[0]));
    assert_no_secret(&format!("{provider:?} {tokens:?}"));
}

#[tokio::test]
async fn unauthorized_renews_once() {
    let server = start_server(auth_server(3600.0, Duration::from_millis(100))).await;
    let provider = TokenProvider::new(client(&server.base_url), api_key());
    let first = provider.token().await.expect("first token");

    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let provider = provider.clone();
            let rejected = first.clone();
            tokio::spawn(async move { provider.on_unauthorized(&rejected).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("renewal"));
    }
    let second = provider.token().await.expect("second token");

    assert_eq!(server.count_path("/v1/authenticate").await, 2);
    let renewed = outcomes
        .iter()
        .filter(|outcome| **outcome == RenewOutcome::Renewed)
        .count();
    assert_eq!(renewed, 1);
    assert_ne!(first, second);
}

#[tokio::test]
async fn token_renewed_before_expiry() {
    // Lifetime 4 s: renewal is due 2 s before expiry (half the lifetime).
    let server = start_server(auth_server(4.0, Duration::ZERO)).await;
    let provider = TokenProvider::new(client(&server.base_url), api_key());

    let first = provider.token().await.expect("first token");
    let first_expiry = provider_expiry(&first);
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let second = provider.token().await.expect("second token");
    let renewed_at = SystemTime::now();

    assert_ne!(first, second);
    assert_eq!(server.count_path("/v1/authenticate").await, 2);
    assert!(renewed_at < first_expiry, "renewed only after expiry");
}

#[tokio::test]
async fn failed_renewal_keeps_valid_token() {
    // Lifetime 4 s: renewal is due after 2 s, the token expires after 4 s.
    let outage = Arc::new(AtomicBool::new(false));
    let server = start_server(auth_server_with_outage(4.0, Duration::ZERO, outage.clone())).await;
    let provider = TokenProvider::new(client(&server.base_url), api_key());

    let first = provider.token().await.expect("first token");
    outage.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let during_outage = provider.token().await.expect("cached token");
    let again = provider.token().await.expect("cached token");

    assert_eq!(during_outage, first);
    assert_eq!(again, first);
    // One successful call, then one failed renewal; the second call waits
    // for the retry interval instead of calling again.
    assert_eq!(server.count_path("/v1/authenticate").await, 2);
}

fn provider_expiry(token: &SecretString) -> SystemTime {
    let payload = token.expose().split('.').nth(1).expect("JWT payload");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("JSON");
    UNIX_EPOCH + Duration::from_secs_f64(claims["exp"].as_f64().expect("exp"))
}

#[tokio::test]
async fn rejected_key_not_retried_at_once() {
    let server = start_server(auth_server(3600.0, Duration::from_millis(50))).await;
    let provider = TokenProvider::new(
        client(&server.base_url),
        Credentials::ApiKey {
            id: SecretString::new(KEY_ID),
            token: SecretString::new("wrong-SECRET"),
        },
    );

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.token().await })
        })
        .collect();
    let mut errors = Vec::new();
    for task in tasks {
        errors.push(task.await.expect("task").expect_err("rejected key"));
    }

    assert_eq!(server.count_path("/v1/authenticate").await, 1);
    for error in &errors {
        assert!(
            matches!(error, AuthError::KeyRejected { status: 401, .. }),
            "{error:?}"
        );
        assert_no_secret(&format!("{error:?} {error}"));
    }
}
