//! Access tokens for the MAS API: a fixed token, or one obtained from an API
//! key and renewed before it expires.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;

use super::client::MasClient;
use super::error::MasError;
use super::jwt::JwtTimes;
use crate::secret::SecretString;

/// Shortest time before expiry at which a token is renewed, unless that is
/// more than half its lifetime.
pub const MIN_RENEWAL_MARGIN: Duration = Duration::from_secs(60);

/// Wait after a failed authentication before the next one. Meanwhile callers
/// get the cached token while it is valid, else the error of that failure.
pub const RENEWAL_RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// Credentials from the credentials Secret.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A pre-issued access token, used until MAS rejects it.
    Token(SecretString),
    /// An API key exchanged for access tokens with `GET /v1/authenticate`.
    ApiKey {
        id: SecretString,
        token: SecretString,
    },
}

/// Access token issued by MAS for an API key.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT sent as `x-access-token`.
    pub token: SecretString,
    /// `exp` claim of the JWT, when it has one.
    pub expires_at: Option<SystemTime>,
}

/// Result of [`TokenProvider::on_unauthorized`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewOutcome {
    /// This call obtained a new token.
    Renewed,
    /// Another caller had already replaced the rejected token.
    AlreadyRenewed,
}

/// Failure to get an access token. Every message names the fix.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The fixed access token got HTTP 401.
    #[error(
        "MAS rejected the access token (HTTP 401); put a valid token in the credentials Secret; the run resumes when the Secret changes"
    )]
    TokenRejected,

    /// `GET /v1/authenticate` returned 401 or 403.
    #[error(
        "MAS rejected the API key (HTTP {status}{}); check the API key id and token in the credentials Secret and that the key has the userAdmin permission; the run resumes when the Secret changes",
        mas_error_suffix(.error)
    )]
    KeyRejected {
        status: u16,
        error: Option<MasError>,
    },

    /// The API key cannot be sent at all.
    #[error("the API key in the credentials Secret is invalid: {reason}; fix the Secret")]
    InvalidApiKey { reason: &'static str },

    /// The authenticate request got no response.
    #[error(
        "failed to reach MAS to exchange the API key for an access token: {detail}; check the MAS API URL, the network path and the CA bundle; the operator tries again"
    )]
    Unreachable { detail: String },

    /// `GET /v1/authenticate` returned a status other than 200, 401 or 403.
    #[error(
        "MAS returned HTTP {status} to the API key authentication{}; the operator tries again; if this persists, check the health of the MAS API",
        mas_error_suffix(.error)
    )]
    UnexpectedStatus {
        status: u16,
        error: Option<MasError>,
    },

    /// A 200 response without a usable token.
    #[error(
        "MAS returned no usable access token for the API key: {detail}; check that the MAS API URL points to the MAS API host (api.<instance>.<domain>)"
    )]
    InvalidResponse { detail: String },
}

impl AuthError {
    /// Returns whether a later try may succeed without a change of the
    /// credentials.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::UnexpectedStatus { status, .. } => *status == 429 || *status >= 500,
            Self::TokenRejected
            | Self::KeyRejected { .. }
            | Self::InvalidApiKey { .. }
            | Self::InvalidResponse { .. } => false,
        }
    }
}

fn mas_error_suffix(error: &Option<MasError>) -> String {
    error
        .as_ref()
        .map(|error| format!(": {error}"))
        .unwrap_or_default()
}

/// Source of access tokens shared by all workers of a run.
///
/// With an API key, the first [`token`](Self::token) call authenticates,
/// the token is cached and renewed when less than 10 % of its lifetime or
/// [`MIN_RENEWAL_MARGIN`] remains (at most half the lifetime). A mutex held
/// across the authenticate call makes renewal single-flight: concurrent
/// callers wait for the one call in progress and share its token.
#[derive(Clone)]
pub struct TokenProvider {
    source: Arc<TokenSource>,
}

enum TokenSource {
    Fixed(SecretString),
    ApiKey(Box<ApiKeySource>),
}

struct ApiKeySource {
    client: MasClient,
    key_id: SecretString,
    key_token: SecretString,
    lifetime: Option<Duration>,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    current: Option<CachedToken>,
    /// Last failed authentication, cleared by a successful one.
    last_failure: Option<AuthFailure>,
}

struct AuthFailure {
    at: Instant,
    error: AuthError,
}

struct CachedToken {
    token: SecretString,
    /// Local instant at which renewal is due; `None` when the lifetime is
    /// unknown, so only a 401 triggers renewal.
    renew_at: Option<Instant>,
    /// Local instant at which the token expires, when known.
    expires_at: Option<Instant>,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &*self.source {
            TokenSource::Fixed(_) => "fixed token",
            TokenSource::ApiKey(_) => "API key",
        };
        f.debug_struct("TokenProvider")
            .field("credentials", &kind)
            .finish_non_exhaustive()
    }
}

impl TokenProvider {
    /// Creates a provider; nothing is sent until the first `token()` call.
    pub fn new(client: MasClient, credentials: Credentials) -> Self {
        let source = match credentials {
            Credentials::Token(token) => TokenSource::Fixed(token),
            Credentials::ApiKey { id, token } => TokenSource::ApiKey(Box::new(ApiKeySource {
                client,
                key_id: id,
                key_token: token,
                lifetime: None,
                state: Mutex::new(CacheState::default()),
            })),
        };
        Self {
            source: Arc::new(source),
        }
    }

    /// Asks MAS for tokens of this lifetime (API key only; MAS picks the
    /// lifetime otherwise). Call before the provider is cloned.
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        if let Some(TokenSource::ApiKey(source)) = Arc::get_mut(&mut self.source) {
            source.lifetime = Some(lifetime);
        }
        self
    }

    /// Returns a token for the next request.
    ///
    /// When a due renewal fails but the cached token has not expired, the
    /// cached token is returned and renewal is tried again after
    /// [`RENEWAL_RETRY_INTERVAL`].
    pub async fn token(&self) -> Result<SecretString, AuthError> {
        let source = match &*self.source {
            TokenSource::Fixed(token) => return Ok(token.clone()),
            TokenSource::ApiKey(source) => source,
        };
        let mut state = source.state.lock().await;
        let now = Instant::now();

        let Some(cached) = &state.current else {
            return source.renew(&mut state, now).await;
        };
        let current_token = cached.token.clone();
        let renewal_due = cached.renew_at.is_some_and(|at| now >= at);
        let still_valid = cached.expires_at.is_none_or(|at| now < at);

        if !renewal_due {
            return Ok(current_token);
        }
        if still_valid {
            // A failed renewal is logged in `renew`; the current token
            // serves until it expires.
            return Ok(source.renew(&mut state, now).await.unwrap_or(current_token));
        }
        state.current = None;
        source.renew(&mut state, now).await
    }

    /// Handles an HTTP 401 response to a request sent with `rejected`.
    ///
    /// With an API key, the token is renewed only if `rejected` is still the
    /// cached token. So many workers that hit 401 together cause a single
    /// renewal, and the others get [`RenewOutcome::AlreadyRenewed`].
    ///
    /// Either way the caller fetches the new token with
    /// [`token`](Self::token) and repeats its request once. A second 401 for
    /// the same request means the new token is rejected too, so the caller
    /// should stop rather than call this again.
    ///
    /// A fixed token cannot be renewed, so the result is
    /// [`AuthError::TokenRejected`] and the caller pauses the run.
    pub async fn on_unauthorized(
        &self,
        rejected: &SecretString,
    ) -> Result<RenewOutcome, AuthError> {
        let source = match &*self.source {
            TokenSource::Fixed(_) => return Err(AuthError::TokenRejected),
            TokenSource::ApiKey(source) => source,
        };
        let mut state = source.state.lock().await;

        if state
            .current
            .as_ref()
            .is_some_and(|cached| cached.token != *rejected)
        {
            return Ok(RenewOutcome::AlreadyRenewed);
        }

        tracing::info!("MAS rejected the access token with HTTP 401; renewing it");
        state.current = None;
        source.renew(&mut state, Instant::now()).await?;
        Ok(RenewOutcome::Renewed)
    }
}

impl ApiKeySource {
    /// Authenticates and caches the new token.
    ///
    /// Within [`RENEWAL_RETRY_INTERVAL`] of a failed authentication it
    /// returns that failure's error without a call, so workers waiting on
    /// the mutex do not each repeat a failing call.
    async fn renew(&self, state: &mut CacheState, now: Instant) -> Result<SecretString, AuthError> {
        if let Some(failure) = &state.last_failure
            && now < failure.at + RENEWAL_RETRY_INTERVAL
        {
            return Err(failure.error.clone());
        }

        match self.issue().await {
            Ok(issued) => {
                let token = issued.token.clone();
                state.current = Some(issued);
                state.last_failure = None;
                Ok(token)
            }
            Err(error) => {
                tracing::warn!(
                    error = %error,
                    retry_in_seconds = RENEWAL_RETRY_INTERVAL.as_secs(),
                    token_still_cached = state.current.is_some(),
                    "obtaining a MAS access token with the API key failed"
                );
                state.last_failure = Some(AuthFailure {
                    at: Instant::now(),
                    error: error.clone(),
                });
                Err(error)
            }
        }
    }

    /// Authenticates and plans the renewal of the new token.
    async fn issue(&self) -> Result<CachedToken, AuthError> {
        let requested_at = Instant::now();
        let issued = self
            .client
            .authenticate(&self.key_id, &self.key_token, self.lifetime)
            .await?;

        let lifetime = token_lifetime(&issued, SystemTime::now());
        tracing::info!(
            lifetime_seconds = lifetime.map(|lifetime| lifetime.as_secs()),
            "obtained a MAS access token with the API key"
        );

        Ok(CachedToken {
            renew_at: lifetime.map(|lifetime| requested_at + lifetime - renewal_margin(lifetime)),
            expires_at: lifetime.map(|lifetime| requested_at + lifetime),
            token: issued.token,
        })
    }
}

/// Lifetime of a new token: `exp - iat` when the JWT has both (immune to
/// clock skew between MAS and this host), else `exp` minus the local time.
///
/// Returns `None` when the token has no `exp`. It also returns `None` when
/// the token has already expired by the local clock, because the clocks then
/// disagree and a renewal before every request would not help. Renewal then
/// waits for a 401.
fn token_lifetime(issued: &IssuedToken, now: SystemTime) -> Option<Duration> {
    if let Some(lifetime) = JwtTimes::from_token(issued.token.expose()).lifetime() {
        return Some(lifetime);
    }

    let expires_at = issued.expires_at?;
    match expires_at.duration_since(now) {
        Ok(remaining) if !remaining.is_zero() => Some(remaining),
        _ => {
            tracing::warn!(
                "the MAS access token has expired by the local clock as soon as it was issued; check the clocks; the token is renewed only when MAS rejects it"
            );
            None
        }
    }
}

/// Time before expiry at which renewal is due: 10 % of the lifetime, at least
/// [`MIN_RENEWAL_MARGIN`], but at most half the lifetime so that a short-lived
/// token is not renewed before every request.
fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).max(MIN_RENEWAL_MARGIN).min(lifetime / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_margin_by_lifetime() {
        let cases = [
            (Duration::from_secs(36_000), Duration::from_secs(3_600)),
            (Duration::from_secs(3_600), Duration::from_secs(360)),
            (Duration::from_secs(300), Duration::from_secs(60)),
            (Duration::from_secs(100), Duration::from_secs(50)),
            (Duration::from_secs(2), Duration::from_secs(1)),
            (Duration::ZERO, Duration::ZERO),
        ];

        for (lifetime, expected) in cases {
            assert_eq!(renewal_margin(lifetime), expected, "lifetime {lifetime:?}");
        }
    }

    #[test]
    fn lifetime_from_claims_ignores_local_clock() {
        use base64::Engine as _;
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"iat":1000,"exp":4600}"#);
        let issued = IssuedToken {
            token: SecretString::new(format!("h.{payload}.s")),
            expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(4600)),
        };

        let lifetime = token_lifetime(&issued, SystemTime::now());

        assert_eq!(lifetime, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn lifetime_from_exp_and_local_clock() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let issued = IssuedToken {
            token: SecretString::new("opaque"),
            expires_at: Some(now + Duration::from_secs(600)),
        };

        assert_eq!(token_lifetime(&issued, now), Some(Duration::from_secs(600)));
    }

    #[test]
    fn lifetime_absent_when_expired_by_local_clock() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let issued = IssuedToken {
            token: SecretString::new("opaque"),
            expires_at: Some(now - Duration::from_secs(1)),
        };

        assert_eq!(token_lifetime(&issued, now), None);
    }

    #[test]
    fn errors_name_the_fix_and_hide_secrets() {
        let errors = [
            AuthError::TokenRejected,
            AuthError::KeyRejected {
                status: 403,
                error: None,
            },
            AuthError::InvalidApiKey {
                reason: "the API key id is empty",
            },
            AuthError::Unreachable {
                detail: "tcp connect error".to_owned(),
            },
            AuthError::UnexpectedStatus {
                status: 503,
                error: None,
            },
            AuthError::InvalidResponse {
                detail: "no token".to_owned(),
            },
        ];

        for error in errors {
            let message = error.to_string();
            assert!(
                message.contains("check")
                    || message.contains("put")
                    || message.contains("fix")
                    || message.contains("tries again"),
                "no action in {message:?}"
            );
        }
    }

    #[test]
    fn retryable_errors() {
        let unexpected = |status| AuthError::UnexpectedStatus {
            status,
            error: None,
        };

        assert!(unexpected(503).is_retryable());
        assert!(unexpected(429).is_retryable());
        assert!(!unexpected(404).is_retryable());
        assert!(!AuthError::TokenRejected.is_retryable());
        assert!(
            AuthError::Unreachable {
                detail: String::new()
            }
            .is_retryable()
        );
    }
}
