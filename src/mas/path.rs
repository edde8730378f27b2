//! Request paths of the MAS user endpoints.
//!
//! NOTE: stand-in so the client compiles on its own branch; the path module
//! written for this purpose replaces it at merge.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Bytes left as they are in a path segment: the RFC 3986 unreserved set.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A user ID that cannot be placed in a request path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The ID is empty, `.` or `..`, which a URL parser would drop or resolve.
    #[error("user ID {user_id:?} cannot be used as a path segment; fix the user list")]
    InvalidUserId { user_id: String },
}

/// Returns the path and query of the set-password call for one user.
pub fn password_path(user_id: &str, email_password: bool) -> Result<String, PathError> {
    let segment = encode_segment(user_id)?;
    Ok(format!(
        "/v3/users/{segment}/password?emailPassword={email_password}"
    ))
}

/// Returns the path of the read-user call for one user.
pub fn user_path(user_id: &str) -> Result<String, PathError> {
    let segment = encode_segment(user_id)?;
    Ok(format!("/v3/users/{segment}"))
}

fn encode_segment(user_id: &str) -> Result<String, PathError> {
    if matches!(user_id, "" | "." | "..") {
        return Err(PathError::InvalidUserId {
            user_id: user_id.to_owned(),
        });
    }
    Ok(utf8_percent_encode(user_id, SEGMENT).to_string())
}
