//! MAS error responses: status, message id and the JSON body shape MAS uses.
//!
//! Every error body has the shape MAS sends:
//! `{"exception":{"id":"AIUCO1022E","properties":["/x"]},"message":"AIUCO1022E: …","uuid":"…"}`.
//!
//! Only `AIUCO1022E` (unknown path) has been seen in real MAS output. The other ids are made
//! up for the simulator in the same format, one per cause, so a client test can tell the
//! causes apart. A client must not depend on them.
//!
//! | id | status | cause |
//! |---|---|---|
//! | AIUCO1001E | 401 | `x-access-token` header missing or empty |
//! | AIUCO1002E | 401 | token unknown, badly signed or revoked |
//! | AIUCO1003E | 401 | token expired |
//! | AIUCO1004E | 401 | API key id or token rejected by `/v1/authenticate` |
//! | AIUCO1005E | 403 | token lacks the `userAdmin` permission |
//! | AIUCO1010E | 404 | user not found |
//! | AIUCO1011E | 400 | request body is not a valid JSON object of the expected shape |
//! | AIUCO1012E | 400 | query parameter value is invalid |
//! | AIUCO1013E | 400 | `mas-jwt-expiry-duration` is not an ISO-8601 duration |
//! | AIUCO1014E | 415 | `Content-Type` is not `application/json` |
//! | AIUCO1015E | 400 | user ID path segment has invalid percent-encoding or is not UTF-8 |
//! | AIUCO1022E | 404 | unknown path or method |
//! | AIUCO1030E | 400 | password breaks the password policy |
//! | AIUCO1031E | 409 (knob) | user has no local identity (SSO-only) |
//! | AIUCO1032E | 400 (knob) | e-mail requested for a user without an e-mail address |
//! | AIUCO1033E | knob | user is inactive |
//! | AIUCO1050E | 429 | too many requests (concurrency limit or injected fault) |
//! | AIUCO1060E | 500 | internal error (injected fault) |
//! | AIUCO1061E | 503 | service unavailable (injected fault) |
//! | AIUCO1062E | any other | other injected status |

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::policy::PolicyViolation;

/// Error response in the MAS shape.
#[derive(Debug, Clone)]
pub struct MasError {
    pub status: StatusCode,
    pub id: &'static str,
    pub text: String,
    pub properties: Vec<String>,
    /// Raw `Retry-After` header value, sent as it is.
    pub retry_after: Option<String>,
}

impl MasError {
    fn new(status: StatusCode, id: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            id,
            text: text.into(),
            properties: Vec::new(),
            retry_after: None,
        }
    }

    fn with_property(mut self, property: impl Into<String>) -> Self {
        self.properties.push(property.into());
        self
    }

    pub fn token_missing() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AIUCO1001E",
            "The request has no x-access-token header.",
        )
    }

    pub fn token_invalid() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AIUCO1002E",
            "The access token is not valid.",
        )
    }

    pub fn token_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AIUCO1003E",
            "The access token has expired.",
        )
    }

    pub fn api_key_rejected() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AIUCO1004E",
            "The API key id or API key token is not valid.",
        )
    }

    pub fn permission_denied(permission: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "AIUCO1005E",
            format!("The access token does not grant the {permission} permission."),
        )
        .with_property(permission)
    }

    pub fn user_not_found(user_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "AIUCO1010E",
            format!("The user {user_id} was not found."),
        )
        .with_property(user_id)
    }

    pub fn invalid_body(reason: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "AIUCO1011E",
            format!("The request body is not valid: {reason}."),
        )
        .with_property(reason)
    }

    pub fn invalid_query(name: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "AIUCO1012E",
            format!("The value {value} of query parameter {name} is not valid; use true or false."),
        )
        .with_property(name)
        .with_property(value)
    }

    pub fn invalid_expiry_duration(reason: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "AIUCO1013E",
            format!("The mas-jwt-expiry-duration header is not valid: {reason}."),
        )
        .with_property("mas-jwt-expiry-duration")
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "AIUCO1014E",
            format!("The content type {content_type} is not supported; use application/json."),
        )
        .with_property(content_type)
    }

    pub fn invalid_user_segment(raw_segment: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "AIUCO1015E",
            format!("The user ID path segment {raw_segment} is not valid percent-encoded UTF-8."),
        )
        .with_property(raw_segment)
    }

    pub fn unknown_path(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "AIUCO1022E",
            format!("The path {path} was not found."),
        )
        .with_property(path)
    }

    pub fn policy_violation(violation: &PolicyViolation) -> Self {
        let mut error = Self::new(
            StatusCode::BAD_REQUEST,
            "AIUCO1030E",
            format!("The password does not satisfy the password policy: {violation}."),
        )
        .with_property(violation.rule());
        if let Some(limit) = violation.limit() {
            error = error.with_property(limit.to_string());
        }
        error
    }

    pub fn no_local_identity(user_id: &str, status: StatusCode) -> Self {
        Self::new(
            status,
            "AIUCO1031E",
            format!("The user {user_id} has no local identity, so no password can be set."),
        )
        .with_property(user_id)
    }

    pub fn no_email_address(user_id: &str, status: StatusCode) -> Self {
        Self::new(
            status,
            "AIUCO1032E",
            format!("The user {user_id} has no e-mail address to send the password to."),
        )
        .with_property(user_id)
    }

    pub fn user_inactive(user_id: &str, status: StatusCode) -> Self {
        Self::new(
            status,
            "AIUCO1033E",
            format!("The user {user_id} is inactive."),
        )
        .with_property(user_id)
    }

    pub fn too_many_requests(retry_after: Option<String>) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "AIUCO1050E",
            "Too many requests; retry later.",
        );
        error.retry_after = retry_after;
        error
    }

    /// Error for a status that a fault plan injects.
    pub fn injected(status: StatusCode, retry_after: Option<String>) -> Self {
        let mut error = match status {
            StatusCode::TOO_MANY_REQUESTS => Self::too_many_requests(None),
            StatusCode::INTERNAL_SERVER_ERROR => {
                Self::new(status, "AIUCO1060E", "An internal error occurred.")
            }
            StatusCode::SERVICE_UNAVAILABLE => Self::new(
                status,
                "AIUCO1061E",
                "The service is unavailable; retry later.",
            ),
            _ => Self::new(
                status,
                "AIUCO1062E",
                format!("The request failed with status {}.", status.as_u16()),
            )
            .with_property(status.as_u16().to_string()),
        };
        error.retry_after = retry_after;
        error
    }

    /// Builds the HTTP response. A `Retry-After` value that is not a valid header value is
    /// left out.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = json!({
            "exception": { "id": self.id, "properties": self.properties },
            "message": format!("{}: {}", self.id, self.text),
            "uuid": random_uuid(),
        });
        let mut response = json_response(self.status, &body);

        let retry_after = self
            .retry_after
            .as_deref()
            .and_then(|value| HeaderValue::from_str(value).ok());
        if let Some(value) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    }
}

/// Builds a JSON response with the given status.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).expect("a JSON value always serializes");
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Formats a random version-4 UUID (RFC 9562) for the `uuid` field.
fn random_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn unknown_path_has_mas_shape() {
        let response = MasError::unknown_path("/v3/nothing").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);

        let body = body_json(response).await;
        assert_eq!(body["exception"]["id"], "AIUCO1022E");
        assert_eq!(body["exception"]["properties"][0], "/v3/nothing");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("AIUCO1022E: ")
        );
        assert_eq!(body["uuid"].as_str().unwrap().len(), 36);
    }

    #[tokio::test]
    async fn retry_after_is_sent_raw() {
        let response = MasError::injected(StatusCode::SERVICE_UNAVAILABLE, Some("1.5".to_owned()))
            .into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "1.5");
        assert_eq!(body_json(response).await["exception"]["id"], "AIUCO1061E");
    }

    #[test]
    fn uuid_has_version_and_variant() {
        let uuid = random_uuid();
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"));
    }
}
