//! API keys, pre-issued tokens and JWTs: exchanging an API key for a JWT, checking the
//! `x-access-token` header, and revoking every token.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;

use super::config::{ApiKey, StaticToken};
use super::duration::parse_iso8601_duration;
use super::jwt::{Claims, JwtSigner, USER_ADMIN_PERMISSION};
use super::mas_error::MasError;

/// Request header that carries the access token.
pub const ACCESS_TOKEN_HEADER: &str = "x-access-token";
/// Request header that sets the lifetime of the JWT from `/v1/authenticate` (ISO-8601 duration).
pub const EXPIRY_DURATION_HEADER: &str = "mas-jwt-expiry-duration";

/// A JWT issued by [`Credentials::exchange_api_key`].
pub struct IssuedToken {
    pub jwt: String,
    pub lifetime_secs: u64,
}

/// Accepted credentials and the JWT signing key.
pub struct Credentials {
    static_tokens: Vec<StaticToken>,
    api_keys: Vec<ApiKey>,
    default_lifetime_secs: u64,
    signer: JwtSigner,
    /// Incremented by [`Credentials::revoke_all`]; JWTs carry the value they were issued at.
    generation: AtomicU64,
    static_tokens_revoked: AtomicBool,
}

impl Credentials {
    pub fn new(
        static_tokens: Vec<StaticToken>,
        api_keys: Vec<ApiKey>,
        default_lifetime_secs: u64,
    ) -> Self {
        Self {
            static_tokens,
            api_keys,
            default_lifetime_secs,
            signer: JwtSigner::generate(),
            generation: AtomicU64::new(0),
            static_tokens_revoked: AtomicBool::new(false),
        }
    }

    /// Makes every JWT issued so far and every static token fail with 401. API keys keep
    /// working, so a client can authenticate again.
    pub fn revoke_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.static_tokens_revoked.store(true, Ordering::SeqCst);
    }

    /// Checks the `x-access-token` header and the `userAdmin` permission.
    pub fn authorize_user_admin(&self, headers: &HeaderMap) -> Result<(), MasError> {
        let Some(value) = headers.get(ACCESS_TOKEN_HEADER) else {
            return Err(MasError::token_missing());
        };
        let token = value
            .to_str()
            .map_err(|_| MasError::token_invalid())?
            .trim();
        if token.is_empty() {
            return Err(MasError::token_missing());
        }

        let user_admin = self.token_grants_user_admin(token)?;
        if user_admin {
            Ok(())
        } else {
            Err(MasError::permission_denied(USER_ADMIN_PERMISSION))
        }
    }

    fn token_grants_user_admin(&self, token: &str) -> Result<bool, MasError> {
        let static_token = self
            .static_tokens
            .iter()
            .find(|candidate| candidate.token.expose() == token);
        if let Some(static_token) = static_token {
            if self.static_tokens_revoked.load(Ordering::SeqCst) {
                return Err(MasError::token_invalid());
            }
            return Ok(static_token.user_admin);
        }

        let claims = self
            .signer
            .verify(token)
            .map_err(|_| MasError::token_invalid())?;
        if claims.generation != self.generation.load(Ordering::SeqCst) {
            return Err(MasError::token_invalid());
        }
        if unix_seconds(SystemTime::now()) >= claims.exp {
            return Err(MasError::token_expired());
        }
        Ok(claims.has_permission(USER_ADMIN_PERMISSION))
    }

    /// Returns the API key id from HTTP Basic credentials, for the record.
    pub fn basic_user_name(headers: &HeaderMap) -> Option<String> {
        basic_credentials(headers).map(|(id, _)| id)
    }

    /// Exchanges HTTP Basic API key credentials for a JWT. The lifetime comes from the
    /// `mas-jwt-expiry-duration` header, or the configured default without it.
    pub fn exchange_api_key(&self, headers: &HeaderMap) -> Result<IssuedToken, MasError> {
        let (key_id, key_token) =
            basic_credentials(headers).ok_or_else(MasError::api_key_rejected)?;
        let api_key = self
            .api_keys
            .iter()
            .find(|key| key.id == key_id && key.token.expose() == key_token)
            .ok_or_else(MasError::api_key_rejected)?;

        let lifetime = match headers.get(EXPIRY_DURATION_HEADER) {
            None => Duration::from_secs(self.default_lifetime_secs),
            Some(value) => {
                let text = value
                    .to_str()
                    .map_err(|_| MasError::invalid_expiry_duration("not visible ASCII"))?;
                parse_iso8601_duration(text.trim())
                    .map_err(|error| MasError::invalid_expiry_duration(&error.to_string()))?
            }
        };
        let lifetime_secs = lifetime.as_secs();

        let now = unix_seconds(SystemTime::now());
        let mut claims = Claims::new(&api_key.id, now, lifetime_secs, api_key.user_admin);
        claims.generation = self.generation.load(Ordering::SeqCst);
        Ok(IssuedToken {
            jwt: self.signer.issue(&claims),
            lifetime_secs,
        })
    }
}

/// Decodes `Authorization: Basic base64(id:token)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, token) = text.split_once(':')?;
    Some((id.to_owned(), token.to_owned()))
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn credentials() -> Credentials {
        Credentials::new(
            vec![
                StaticToken::new("admin-token", true),
                StaticToken::new("reader-token", false),
            ],
            vec![
                ApiKey::new("key-admin", "secret-a", true),
                ApiKey::new("key-reader", "secret-r", false),
            ],
            3_600,
        )
    }

    fn basic(id: &str, token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode(format!("{id}:{token}"));
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        headers
    }

    fn with_token(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCESS_TOKEN_HEADER, HeaderValue::from_str(token).unwrap());
        headers
    }

    fn error_id(result: Result<(), MasError>) -> &'static str {
        result.unwrap_err().id
    }

    #[test]
    fn static_tokens_follow_permission() {
        let credentials = credentials();
        assert!(
            credentials
                .authorize_user_admin(&with_token("admin-token"))
                .is_ok()
        );
        assert_eq!(
            error_id(credentials.authorize_user_admin(&with_token("reader-token"))),
            "AIUCO1005E"
        );
        assert_eq!(
            error_id(credentials.authorize_user_admin(&with_token("nope"))),
            "AIUCO1002E"
        );
        assert_eq!(
            error_id(credentials.authorize_user_admin(&HeaderMap::new())),
            "AIUCO1001E"
        );
    }

    #[test]
    fn api_key_exchange_issues_usable_jwt() {
        let credentials = credentials();
        let issued = credentials
            .exchange_api_key(&basic("key-admin", "secret-a"))
            .unwrap();
        assert_eq!(issued.lifetime_secs, 3_600);
        assert!(
            credentials
                .authorize_user_admin(&with_token(&issued.jwt))
                .is_ok()
        );

        let reader = credentials
            .exchange_api_key(&basic("key-reader", "secret-r"))
            .unwrap();
        assert_eq!(
            error_id(credentials.authorize_user_admin(&with_token(&reader.jwt))),
            "AIUCO1005E"
        );
    }

    #[test]
    fn wrong_api_key_is_rejected() {
        let credentials = credentials();
        for headers in [
            basic("key-admin", "wrong"),
            basic("unknown", "secret-a"),
            HeaderMap::new(),
        ] {
            let error = credentials.exchange_api_key(&headers).err().unwrap();
            assert_eq!(error.id, "AIUCO1004E");
        }
    }

    #[test]
    fn expiry_header_sets_lifetime() {
        let credentials = credentials();
        let mut headers = basic("key-admin", "secret-a");
        headers.insert(EXPIRY_DURATION_HEADER, HeaderValue::from_static("PT30S"));
        assert_eq!(
            credentials
                .exchange_api_key(&headers)
                .unwrap()
                .lifetime_secs,
            30
        );

        headers.insert(EXPIRY_DURATION_HEADER, HeaderValue::from_static("PT0S"));
        let expired = credentials.exchange_api_key(&headers).unwrap();
        assert_eq!(
            error_id(credentials.authorize_user_admin(&with_token(&expired.jwt))),
            "AIUCO1003E"
        );

        headers.insert(EXPIRY_DURATION_HEADER, HeaderValue::from_static("1 hour"));
        let error = credentials.exchange_api_key(&headers).err().unwrap();
        assert_eq!(error.id, "AIUCO1013E");
    }

    #[test]
    fn revoke_rejects_old_tokens_only() {
        let credentials = credentials();
        let old = credentials
            .exchange_api_key(&basic("key-admin", "secret-a"))
            .unwrap();
        credentials.revoke_all();

        assert_eq!(
            error_id(credentials.authorize_user_admin(&with_token(&old.jwt))),
            "AIUCO1002E"
        );
        assert_eq!(
            error_id(credentials.authorize_user_admin(&with_token("admin-token"))),
            "AIUCO1002E"
        );
        let fresh = credentials
            .exchange_api_key(&basic("key-admin", "secret-a"))
            .unwrap();
        assert!(
            credentials
                .authorize_user_admin(&with_token(&fresh.jwt))
                .is_ok()
        );
    }
}
