//! HTTP client for the MAS admin API calls this operator makes.
//!
//! Only HTTP/1.1 is used, so that one connection carries one request at a
//! time: a lost connection then makes exactly one password request
//! indeterminate, where a lost HTTP/2 connection would do that to every
//! stream on it. Redirects are not followed, because a redirected POST could
//! be sent twice, and reqwest would forward `x-access-token` to whatever
//! host the redirect names.
//!
//! reqwest 0.13's built-in retry stays at its default, which repeats a
//! request only after an HTTP/2 refusal that proves it was not processed, so
//! it never fires on HTTP/1.1. hyper-util repeats a request only when hyper
//! returns it unwritten from a closed pooled connection. Neither repeats a
//! request that MAS may have received.
//!
//! Proxies come from the usual `HTTPS_PROXY`/`NO_PROXY` environment
//! variables.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use zeroize::Zeroizing;

use super::attempt::{Attempt, NotSentKind, PasswordBody};
use super::auth::{AuthError, IssuedToken};
use super::error::{ClientError, MasError};
use super::jwt::JwtTimes;
use super::path;
use super::transport::classify_send_error;
use crate::secret::SecretString;

/// Largest response body the client reads; longer bodies are dropped unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Header that carries the access token on every MAS call.
pub const ACCESS_TOKEN_HEADER: &str = "x-access-token";

/// Header that requests a token lifetime from `GET /v1/authenticate`, as an
/// ISO-8601 duration.
pub const TOKEN_LIFETIME_HEADER: &str = "mas-jwt-expiry-duration";

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("mas-reset-operator/", env!("CARGO_PKG_VERSION"));

/// Settings of a [`MasClient`].
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL of the MAS API, such as `https://api.inst1.example.com`; a
    /// trailing slash is optional and a path prefix is kept.
    pub base_url: String,
    /// PEM certificates trusted in addition to the system store, such as the
    /// MAS internal CA.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Accept any server certificate. Dangerous: for test installations only.
    pub insecure_skip_tls_verify: bool,
    /// Allow an `http://` base URL.
    pub allow_http: bool,
    /// Time limit of one request, from sending until the whole body is read.
    pub request_timeout: Duration,
    /// Time limit of the TCP connect plus TLS handshake; must be shorter
    /// than `request_timeout`.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per host; size it to the run's
    /// concurrency so that connections are reused instead of reopened.
    pub max_idle_per_host: usize,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field(
                "ca_bundle_pem_bytes",
                &self.ca_bundle_pem.as_ref().map(Vec::len),
            )
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("allow_http", &self.allow_http)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_idle_per_host", &self.max_idle_per_host)
            .finish()
    }
}

/// Client of the MAS admin API. Cloning is cheap and clones share the
/// connection pool.
#[derive(Clone)]
pub struct MasClient {
    http: reqwest::Client,
    /// Base URL without a trailing slash.
    base_url: Arc<str>,
}

impl fmt::Debug for MasClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl MasClient {
    /// Checks the configuration and builds the client with its TLS settings.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let base_url = checked_base_url(&config.base_url, config.allow_http)?;

        if config.connect_timeout >= config.request_timeout {
            return Err(ClientError::InvalidTimeouts {
                connect: config.connect_timeout,
                request: config.request_timeout,
            });
        }

        let tls = super::tls::client_tls_config(
            config.ca_bundle_pem.as_deref(),
            config.insecure_skip_tls_verify,
        )?;
        if config.insecure_skip_tls_verify {
            tracing::warn!(
                base_url = %base_url,
                "TLS certificate verification of the MAS API is disabled"
            );
        }

        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .https_only(!config.allow_http)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.max_idle_per_host)
            .build()
            .map_err(|error| ClientError::Build {
                detail: error.to_string(),
            })?;

        Ok(Self {
            http,
            base_url: base_url.into(),
        })
    }

    /// Sends `POST /v3/users/{user_id}/password?emailPassword=...` once.
    ///
    /// Never retries: the call is not idempotent, so the caller decides with
    /// [`super::retry::decide`]. Errors from MAS are cleaned of the token and
    /// the password sent.
    pub async fn reset_password(
        &self,
        user_id: &str,
        body: &PasswordBody,
        email_password: bool,
        token: &SecretString,
    ) -> Attempt {
        let path = match path::password_path(user_id, email_password) {
            Ok(path) => path,
            Err(error) => return invalid_request(error.to_string()),
        };
        let headers = match request_headers(token) {
            Ok(headers) => headers,
            Err(attempt) => return attempt,
        };

        let (payload, password) = match body {
            PasswordBody::MasGenerated => (b"{}".to_vec(), None),
            PasswordBody::Password(password) => (password_payload(password), Some(password)),
        };
        let expects_generated_password =
            matches!(body, PasswordBody::MasGenerated) && !email_password;

        let request = self
            .http
            .post(self.url(&path))
            .headers(headers)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(payload);

        let mut secrets = vec![token];
        secrets.extend(password);
        self.exchange(request, &secrets, expects_generated_password)
            .await
    }

    /// Sends `GET /v3/users/{user_id}` once; the profile itself is not kept.
    pub async fn get_user(&self, user_id: &str, token: &SecretString) -> Attempt {
        let path = match path::user_path(user_id) {
            Ok(path) => path,
            Err(error) => return invalid_request(error.to_string()),
        };
        let headers = match request_headers(token) {
            Ok(headers) => headers,
            Err(attempt) => return attempt,
        };

        let request = self.http.get(self.url(&path)).headers(headers);
        self.exchange(request, &[token], false).await
    }

    /// Exchanges an API key for an access token with `GET /v1/authenticate`
    /// (HTTP Basic auth with the key id and key token).
    ///
    /// `lifetime` requests a token lifetime through the
    /// `mas-jwt-expiry-duration` header, rounded up to whole seconds.
    pub async fn authenticate(
        &self,
        key_id: &SecretString,
        key_token: &SecretString,
        lifetime: Option<Duration>,
    ) -> Result<IssuedToken, AuthError> {
        check_api_key(key_id, key_token)?;

        let mut request = self
            .http
            .get(self.url("/v1/authenticate"))
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .basic_auth(key_id.expose(), Some(key_token.expose()));
        if let Some(lifetime) = lifetime {
            request = request.header(TOKEN_LIFETIME_HEADER, iso8601_seconds(lifetime));
        }

        // The body's `token` field arrives in `generated_password`, the
        // field `exchange` fills from a 200 `{"token": ...}` body.
        let attempt = self.exchange(request, &[key_id, key_token], true).await;
        match attempt {
            Attempt::Answered {
                status: 200,
                generated_password: Some(token),
                ..
            } => Ok(IssuedToken {
                expires_at: JwtTimes::from_token(token.expose()).expires_at,
                token,
            }),
            Attempt::Answered { status: 200, .. } => Err(AuthError::InvalidResponse {
                detail: "HTTP 200 without a non-empty \"token\" field in a JSON body".to_owned(),
            }),
            Attempt::Answered {
                status: status @ (401 | 403),
                error,
                ..
            } => Err(AuthError::KeyRejected { status, error }),
            Attempt::Answered { status, error, .. } => {
                Err(AuthError::UnexpectedStatus { status, error })
            }
            unanswered => Err(AuthError::Unreachable {
                detail: unanswered.to_string(),
            }),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends one request and reads the response.
    ///
    /// With `expects_token`, the `token` field of a 200 body goes into
    /// `generated_password`. Otherwise a body is only parsed for the MAS
    /// error shape, and only on a non-2xx status.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        secrets: &[&SecretString],
        expects_token: bool,
    ) -> Attempt {
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return classify_send_error(&error),
        };

        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);

        let body = read_body(response).await;

        let error = if (200..300).contains(&status) {
            non_json_success(status, body.as_ref().map(|body| body.as_slice()))
        } else {
            body.as_ref()
                .and_then(|body| MasError::from_body(body, secrets))
        };
        let generated_password = if status == 200 && expects_token {
            body.as_ref().and_then(|body| token_field(body))
        } else {
            None
        };

        Attempt::Answered {
            status,
            error,
            retry_after,
            generated_password,
        }
    }
}

/// Describes a 2xx response whose body is not JSON, such as the HTML login
/// page of a console host: the MAS API answers with JSON or nothing, so such
/// a response does not show that a password was reset.
fn non_json_success(status: u16, body: Option<&[u8]>) -> Option<MasError> {
    let body = body?;
    if body.iter().all(u8::is_ascii_whitespace)
        || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
    {
        return None;
    }
    Some(MasError {
        id: None,
        message: Some(format!(
            "HTTP {status} with a body that is not JSON, such as a login page; check that masApiUrl is the MAS API host (api.<instance>.<domain> or coreapi.mas-<instance>-core.svc)"
        )),
    })
}

/// Parses, checks and normalizes the base URL.
fn checked_base_url(raw: &str, allow_http: bool) -> Result<String, ClientError> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|error| ClientError::InvalidBaseUrl {
        reason: error.to_string(),
    })?;

    if !url.username().is_empty() || url.password().is_some() {
        return Err(ClientError::CredentialsInBaseUrl);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::QueryInBaseUrl {
            url: url.to_string(),
        });
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        scheme => {
            return Err(ClientError::SchemeNotAllowed {
                url: url.to_string(),
                scheme: scheme.to_owned(),
            });
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ClientError::InvalidBaseUrl {
            reason: "the URL has no host".to_owned(),
        });
    }

    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Builds the headers shared by the calls that carry an access token.
fn request_headers(token: &SecretString) -> Result<HeaderMap, Attempt> {
    let mut token_value = HeaderValue::from_str(token.expose()).map_err(|_| {
        invalid_request(
            "the access token contains characters that are not allowed in an HTTP header; check the credentials Secret"
                .to_owned(),
        )
    })?;
    token_value.set_sensitive(true);

    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(ACCESS_TOKEN_HEADER, token_value);
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    Ok(headers)
}

/// Serializes `{"token": password}`.
///
/// NOTE: reqwest owns the buffer once sent and does not zero it on drop.
fn password_payload(password: &SecretString) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct PasswordRequest<'a> {
        token: &'a str,
    }

    serde_json::to_vec(&PasswordRequest {
        token: password.expose(),
    })
    .expect("a struct of one string field serializes to JSON")
}

fn check_api_key(key_id: &SecretString, key_token: &SecretString) -> Result<(), AuthError> {
    if key_id.is_empty() {
        return Err(AuthError::InvalidApiKey {
            reason: "the API key id is empty",
        });
    }
    if key_id.expose().contains(':') {
        return Err(AuthError::InvalidApiKey {
            reason: "the API key id contains ':', which HTTP Basic auth cannot carry",
        });
    }
    if key_token.is_empty() {
        return Err(AuthError::InvalidApiKey {
            reason: "the API key token is empty",
        });
    }
    Ok(())
}

fn invalid_request(detail: String) -> Attempt {
    Attempt::NotSent {
        kind: NotSentKind::InvalidRequest,
        detail,
    }
}

/// Formats a duration as ISO-8601 seconds (`PT3600S`), at least one second.
fn iso8601_seconds(duration: Duration) -> String {
    let mut seconds = duration.as_secs();
    if duration.subsec_nanos() > 0 || seconds == 0 {
        seconds += 1;
    }
    format!("PT{seconds}S")
}

/// Reads at most [`MAX_BODY_BYTES`] of a body into a buffer zeroed on drop.
///
/// Returns `None` when the body is longer or reading fails; the status is
/// still valid then, so the caller keeps it. The capacity is fixed up front
/// so that no partial copy of the body is left behind by a reallocation.
async fn read_body(mut response: reqwest::Response) -> Option<Zeroizing<Vec<u8>>> {
    let status = response.status().as_u16();
    let declared = response.content_length();
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        tracing::debug!(status, declared, "MAS response body too long; not read");
        return None;
    }

    let capacity = declared.map_or(MAX_BODY_BYTES, |length| length as usize);
    let mut body = Zeroizing::new(Vec::with_capacity(capacity));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= capacity => {
                body.extend_from_slice(&chunk);
            }
            Ok(Some(_)) => {
                tracing::debug!(status, "MAS response body too long; not read");
                return None;
            }
            Ok(None) => return Some(body),
            Err(error) => {
                tracing::debug!(
                    status,
                    timeout = error.is_timeout(),
                    "reading the MAS response body failed"
                );
                return None;
            }
        }
    }
}

/// Extracts a non-empty `token` string field from a JSON body.
fn token_field(body: &[u8]) -> Option<SecretString> {
    #[derive(serde::Deserialize)]
    struct TokenBody {
        token: String,
    }

    let parsed: TokenBody = serde_json::from_slice(body).ok()?;
    let token = SecretString::from(parsed.token);
    (!token.is_empty()).then_some(token)
}
