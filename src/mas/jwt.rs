//! Time claims of a JWT, read without checking the signature.
//!
//! The operator only uses them to plan the renewal of a token MAS issued;
//! MAS itself still decides whether a token is valid.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Latest `exp` or `iat` accepted, in seconds since the Unix epoch (year
/// 5138); larger values are treated as absent rather than overflowing.
const MAX_CLAIM_SECONDS: f64 = 1e11;

/// The `exp` and `iat` claims of a JWT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct JwtTimes {
    /// `exp`: when the token stops being valid.
    pub expires_at: Option<SystemTime>,
    /// `iat`: when the token was issued.
    pub issued_at: Option<SystemTime>,
}

impl JwtTimes {
    /// Reads the claims from the payload, the second dot-separated part,
    /// which is base64url JSON (padding tolerated).
    ///
    /// Anything that is not a JWT gives claims that are all `None`.
    pub fn from_token(token: &str) -> Self {
        let Some(payload) = token.split('.').nth(1) else {
            return Self::default();
        };
        let Ok(decoded) = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')) else {
            return Self::default();
        };
        let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&decoded) else {
            return Self::default();
        };

        Self {
            expires_at: claim_time(&claims, "exp"),
            issued_at: claim_time(&claims, "iat"),
        }
    }

    /// Lifetime the issuer gave the token (`exp - iat`), when both are set
    /// and in order. It does not depend on the local clock.
    pub fn lifetime(&self) -> Option<Duration> {
        let (expires_at, issued_at) = (self.expires_at?, self.issued_at?);
        expires_at.duration_since(issued_at).ok()
    }
}

/// Reads a NumericDate claim (seconds since the epoch, possibly fractional).
fn claim_time(claims: &serde_json::Value, name: &str) -> Option<SystemTime> {
    let seconds = claims.get(name)?.as_f64()?;
    if !(0.0..=MAX_CLAIM_SECONDS).contains(&seconds) {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_exp_and_iat() {
        let times = JwtTimes::from_token(&jwt(r#"{"sub":"x","iat":1700000000,"exp":1700003600}"#));

        assert_eq!(
            times.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_003_600))
        );
        assert_eq!(
            times.issued_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(times.lifetime(), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn reads_fractional_exp() {
        let times = JwtTimes::from_token(&jwt(r#"{"exp":1700000000.5}"#));

        assert_eq!(
            times.expires_at,
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500))
        );
        assert_eq!(times.issued_at, None);
        assert_eq!(times.lifetime(), None);
    }

    #[test]
    fn tolerates_padding() {
        let padded = format!(
            "h.{}.s",
            base64::engine::general_purpose::URL_SAFE.encode(r#"{"exp":10}"#)
        );
        assert!(padded.contains('='));

        let times = JwtTimes::from_token(&padded);

        assert_eq!(times.expires_at, Some(UNIX_EPOCH + Duration::from_secs(10)));
    }

    #[test]
    fn ignores_non_jwt_and_bad_claims() {
        let cases = [
            "opaque-token".to_owned(),
            "a.!!!.c".to_owned(),
            jwt("not json"),
            jwt(r#"{"exp":"tomorrow"}"#),
            jwt(r#"{"exp":-5}"#),
            jwt(r#"{"exp":1e300}"#),
            jwt(r#"[1,2]"#),
        ];

        for token in cases {
            let times = JwtTimes::from_token(&token);
            assert_eq!(times.expires_at, None, "token {token:?}");
        }
    }

    #[test]
    fn lifetime_absent_when_exp_before_iat() {
        let times = JwtTimes::from_token(&jwt(r#"{"iat":200,"exp":100}"#));

        assert_eq!(times.lifetime(), None);
    }
}
