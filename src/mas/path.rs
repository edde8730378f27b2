//! Request paths of the MAS user endpoints, with the user ID as one
//! percent-encoded path segment.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use thiserror::Error;

use crate::userlist::{RejectReason, preview, validate_user_id};

/// Bytes that stay literal in a user ID segment: the RFC 3986 unreserved
/// characters (ASCII letters, digits, `-`, `.`, `_`, `~`). Everything else is
/// percent-encoded from its UTF-8 bytes, including `/ ? # % + ; = @` and
/// space.
///
/// RFC 3986 allows `@`, `+`, `;` and `=` literally in a path segment, but
/// servers and proxies differ in how they treat them (`+` as a space, `;` as
/// a parameter separator), so this set encodes them too. A server that
/// follows RFC 3986 decodes `%40` to the same `@`.
const USER_ID_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A user ID that cannot be put into a request path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    /// The ID fails [`validate_user_id`].
    #[error("user ID \"{preview}\" cannot be used in a request path: {reason}")]
    InvalidUserId {
        /// Escaped, shortened excerpt of the ID.
        preview: String,
        /// Reason the ID is invalid.
        reason: RejectReason,
    },
}

/// Percent-encodes `user_id` as one path segment, exactly once.
///
/// NOTE: whether MAS accepts `%2F` inside a segment is unverified. Some
/// servers and proxies reject encoded slashes, so such an ID may fail with 4xx.
///
/// Does not validate the ID. `.` and `..` come back unchanged and would change
/// the path, so build paths with [`user_path`] or [`password_path`], which
/// reject them first.
pub fn encode_segment(user_id: &str) -> String {
    utf8_percent_encode(user_id, USER_ID_SEGMENT).to_string()
}

/// Builds `/v3/users/<id>`, the path that reads a user profile.
pub fn user_path(user_id: &str) -> Result<String, PathError> {
    let segment = validated_segment(user_id)?;
    Ok(format!("/v3/users/{segment}"))
}

/// Builds `/v3/users/<id>/password?emailPassword=<bool>`, the path that sets
/// or resets a user's password.
pub fn password_path(user_id: &str, email_password: bool) -> Result<String, PathError> {
    let segment = validated_segment(user_id)?;
    Ok(format!(
        "/v3/users/{segment}/password?emailPassword={email_password}"
    ))
}

fn validated_segment(user_id: &str) -> Result<String, PathError> {
    validate_user_id(user_id).map_err(|reason| PathError::InvalidUserId {
        preview: preview(user_id),
        reason,
    })?;
    Ok(encode_segment(user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_characters() {
        for (id, expected) in [
            ("jo#1", "jo%231"),
            ("qa?x", "qa%3Fx"),
            ("ops/admin", "ops%2Fadmin"),
            ("50%off", "50%25off"),
            ("a+b@x.com", "a%2Bb%40x.com"),
            ("a;b=c", "a%3Bb%3Dc"),
            ("john smith", "john%20smith"),
            ("o\"neil", "o%22neil"),
            ("A-z_0.9~", "A-z_0.9~"),
        ] {
            assert_eq!(encode_segment(id), expected, "{id:?}");
        }
    }

    #[test]
    fn encodes_non_ascii_as_utf8() {
        assert_eq!(encode_segment("jörg"), "j%C3%B6rg");
        assert_eq!(encode_segment("דוד"), "%D7%93%D7%95%D7%93");
    }

    #[test]
    fn encodes_percent_once() {
        assert_eq!(encode_segment("%25"), "%2525");
    }

    #[test]
    fn password_path_with_email_flag() {
        assert_eq!(
            password_path("jo#1", true).unwrap(),
            "/v3/users/jo%231/password?emailPassword=true"
        );
        assert_eq!(
            password_path("alice", false).unwrap(),
            "/v3/users/alice/password?emailPassword=false"
        );
    }

    #[test]
    fn user_path_encodes_id() {
        assert_eq!(user_path("ops/admin").unwrap(), "/v3/users/ops%2Fadmin");
    }

    #[test]
    fn rejects_dot_segments_and_empty() {
        for id in [".", "..", ""] {
            assert!(
                matches!(
                    password_path(id, true),
                    Err(PathError::InvalidUserId { .. })
                ),
                "{id:?}"
            );
            assert!(user_path(id).is_err(), "{id:?}");
        }
    }

    #[test]
    fn rejects_control_characters() {
        let error = password_path("alice\r\nHost: evil", true).unwrap_err();
        let message = error.to_string();
        assert!(!message.contains('\r'), "{message}");
        assert!(!message.contains('\n'), "{message}");
        assert!(message.contains("U+000D"), "{message}");
    }
}
