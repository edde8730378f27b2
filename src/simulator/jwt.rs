//! HS256 JSON Web Tokens (RFC 7519) that `/v1/authenticate` issues.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Permission a token needs to set passwords.
pub const USER_ADMIN_PERMISSION: &str = "userAdmin";

const ISSUER: &str = "mas-simulator";

/// Claims of a simulator JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// API key id the token was issued for.
    pub sub: String,
    /// Issue time, seconds since the Unix epoch.
    pub iat: u64,
    /// Expiry time, seconds since the Unix epoch; the token is rejected from this second on.
    pub exp: u64,
    pub permissions: Vec<String>,
    /// Simulator revocation generation: a token from an earlier generation is rejected.
    pub generation: u64,
}

impl Claims {
    pub fn new(subject: &str, issued_at: u64, lifetime_secs: u64, user_admin: bool) -> Self {
        let permissions = if user_admin {
            vec![USER_ADMIN_PERMISSION.to_owned()]
        } else {
            Vec::new()
        };
        Self {
            iss: ISSUER.to_owned(),
            sub: subject.to_owned(),
            iat: issued_at,
            exp: issued_at.saturating_add(lifetime_secs),
            permissions,
            generation: 0,
        }
    }

    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|granted| granted == permission)
    }
}

/// Reasons a JWT is rejected before its claims are looked at.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("token is not three base64url parts separated by dots")]
    Malformed,
    #[error("token header does not name algorithm HS256")]
    UnsupportedAlgorithm,
    #[error("token signature does not match")]
    BadSignature,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
}

/// Signs and verifies tokens with an HMAC-SHA256 key made at start.
pub struct JwtSigner {
    key: hmac::Key,
}

impl JwtSigner {
    pub fn generate() -> Self {
        let secret: [u8; 32] = rand::random();
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        }
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "HS256".to_owned(),
            typ: "JWT".to_owned(),
        };
        let header_json = serde_json::to_vec(&header).expect("header serializes");
        let claims_json = serde_json::to_vec(claims).expect("claims serialize");

        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let signature = hmac::sign(&self.key, signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// Checks the header and signature and returns the claims; expiry is the caller's check.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };

        let header: Header = decode_json(header_b64)?;
        if header.alg != "HS256" {
            return Err(JwtError::UnsupportedAlgorithm);
        }

        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| JwtError::Malformed)?;
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        hmac::verify(&self.key, signing_input.as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;

        decode_json(claims_b64)
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_token_verifies() {
        let signer = JwtSigner::generate();
        let claims = Claims::new("key-1", 1_000, 3_600, true);
        let token = signer.issue(&claims);

        assert_eq!(token.split('.').count(), 3);
        let verified = signer.verify(&token).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified.exp, 4_600);
        assert!(verified.has_permission(USER_ADMIN_PERMISSION));
    }

    #[test]
    fn other_key_is_rejected() {
        let token = JwtSigner::generate().issue(&Claims::new("key-1", 0, 60, false));
        assert_eq!(
            JwtSigner::generate().verify(&token),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tampered_claims_are_rejected() {
        let signer = JwtSigner::generate();
        let token = signer.issue(&Claims::new("key-1", 0, 60, false));
        let forged_claims =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Claims::new("key-1", 0, 60, true)).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(signer.verify(&forged), Err(JwtError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        let signer = JwtSigner::generate();
        for token in ["", "abc", "a.b", "a.b.c.d", "!!.??.**"] {
            assert_eq!(signer.verify(token), Err(JwtError::Malformed), "{token}");
        }
    }
}
