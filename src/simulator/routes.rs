//! Routing on the raw request path, before any percent-decoding.
//!
//! Routers such as axum's (matchit) decode path parameters, and some decode the whole path
//! first, which would turn `ops%2Fadmin` into two segments. The simulator splits the path
//! as it came on the wire and decodes the user ID segment exactly once, so `%2F` stays
//! inside the segment and `%252F` becomes the literal `%2F`.

use hyper::{Method, Uri};
use percent_encoding::percent_decode_str;

/// Endpoint a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Authenticate,
    GetUser { raw_user_id: &'a str },
    SetPassword { raw_user_id: &'a str },
    Admin(AdminRoute),
    Unknown,
}

/// Simulator control endpoints under `/_sim/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRoute {
    Ledger,
    Lookups,
    AppliedCounts,
    Faults,
    Users,
    RevokeTokens,
}

/// Matches a method and raw path (no query) to a route.
///
/// A `.` or `..` segment, an empty segment and an extra segment make the path unknown, as
/// does a user ID segment that decodes to `.` or `..` (servers commonly treat `%2E%2E` as a
/// dot segment).
pub fn route<'a>(method: &Method, raw_path: &'a str) -> Route<'a> {
    let Some(relative) = raw_path.strip_prefix('/') else {
        return Route::Unknown;
    };
    let segments: Vec<&str> = relative.split('/').collect();
    if segments
        .iter()
        .any(|segment| segment.is_empty() || is_dot_segment(segment))
    {
        return Route::Unknown;
    }

    match (method, segments.as_slice()) {
        (&Method::GET, ["v1", "authenticate"]) => Route::Authenticate,
        (&Method::GET, ["v3", "users", user]) if !decodes_to_dot_segment(user) => {
            Route::GetUser { raw_user_id: user }
        }
        (&Method::POST, ["v3", "users", user, "password"]) if !decodes_to_dot_segment(user) => {
            Route::SetPassword { raw_user_id: user }
        }
        (_, ["_sim", name]) => admin_route(method, name).map_or(Route::Unknown, Route::Admin),
        _ => Route::Unknown,
    }
}

fn admin_route(method: &Method, name: &str) -> Option<AdminRoute> {
    let route = match (method, name) {
        (&Method::GET, "ledger") => AdminRoute::Ledger,
        (&Method::GET, "lookups") => AdminRoute::Lookups,
        (&Method::GET, "applied") => AdminRoute::AppliedCounts,
        (&Method::POST, "faults") => AdminRoute::Faults,
        (&Method::POST, "users") => AdminRoute::Users,
        (&Method::POST, "revoke-tokens") => AdminRoute::RevokeTokens,
        _ => return None,
    };
    Some(route)
}

fn is_dot_segment(segment: &str) -> bool {
    segment == "." || segment == ".."
}

fn decodes_to_dot_segment(raw_segment: &str) -> bool {
    matches!(decode_segment(raw_segment).as_deref(), Ok(".") | Ok(".."))
}

/// Returns the request target (path and query) as it was in the request line.
pub fn raw_target(uri: &Uri) -> String {
    uri.path_and_query().map_or_else(
        || uri.path().to_owned(),
        |target| target.as_str().to_owned(),
    )
}

/// A path segment that is not valid percent-encoded UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("'%' at byte {position} is not followed by two hex digits")]
    BadEscape { position: usize },
    #[error("decoded bytes are not UTF-8")]
    NotUtf8,
}

/// Decodes one path segment exactly once. `+` stays `+`, because only query strings use it
/// for a space.
pub fn decode_segment(raw: &str) -> Result<String, SegmentError> {
    let bytes = raw.as_bytes();
    for (position, byte) in bytes.iter().enumerate() {
        if *byte != b'%' {
            continue;
        }
        let escape = bytes.get(position + 1..position + 3);
        let valid = escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
        if !valid {
            return Err(SegmentError::BadEscape { position });
        }
    }

    percent_decode_str(raw)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| SegmentError::NotUtf8)
}

/// Returns the value of the first query parameter named `name`, decoded as
/// `application/x-www-form-urlencoded` (`+` is a space).
pub fn query_parameter(query: Option<&str>, name: &str) -> Option<String> {
    let decode = |text: &str| {
        let spaced = text.replace('+', " ");
        percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
    };

    query?
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| decode(key) == name)
        .map(|(_, value)| decode(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_mas_endpoints() {
        assert_eq!(route(&Method::GET, "/v1/authenticate"), Route::Authenticate);
        assert_eq!(
            route(&Method::GET, "/v3/users/alice"),
            Route::GetUser {
                raw_user_id: "alice"
            }
        );
        assert_eq!(
            route(&Method::POST, "/v3/users/ops%2Fadmin/password"),
            Route::SetPassword {
                raw_user_id: "ops%2Fadmin"
            }
        );
    }

    #[test]
    fn odd_paths_are_unknown() {
        let cases = [
            (Method::POST, "/v3/users/../password"),
            (Method::POST, "/v3/users/./password"),
            (Method::POST, "/v3/users/%2E%2E/password"),
            (Method::POST, "/v3/users/%2e/password"),
            (Method::POST, "/v3/users//password"),
            (Method::POST, "/v3/users/ops/admin/password"),
            (Method::POST, "/v3/users/alice/password/"),
            (Method::GET, "/v3/users/alice/password"),
            (Method::POST, "/v3/users/alice"),
            (Method::GET, "/v3/users/"),
            (Method::GET, "/"),
            (Method::GET, "/v1/authenticate/"),
            (Method::GET, "/_sim/unknown"),
            (Method::GET, "*"),
        ];
        for (method, path) in cases {
            assert_eq!(route(&method, path), Route::Unknown, "{method} {path}");
        }
    }

    #[test]
    fn segment_decodes_once() {
        let cases = [
            ("ops%2Fadmin", "ops/admin"),
            ("50%25off", "50%off"),
            ("j%C3%B6rg", "jörg"),
            ("a%2Bb", "a+b"),
            ("a+b", "a+b"),
            ("jo%231", "jo#1"),
            ("qa%3Fx", "qa?x"),
            ("%252F", "%2F"),
            ("0987456", "0987456"),
        ];
        for (raw, decoded) in cases {
            assert_eq!(decode_segment(raw).unwrap(), decoded, "{raw}");
        }
    }

    #[test]
    fn bad_segments_are_rejected() {
        assert_eq!(
            decode_segment("50%off"),
            Err(SegmentError::BadEscape { position: 2 })
        );
        assert_eq!(
            decode_segment("abc%4"),
            Err(SegmentError::BadEscape { position: 3 })
        );
        assert_eq!(decode_segment("%FF%FE"), Err(SegmentError::NotUtf8));
    }

    #[test]
    fn query_parameter_is_found_and_decoded() {
        let query = Some("a=1&emailPassword=true&emailPassword=false");
        assert_eq!(
            query_parameter(query, "emailPassword").as_deref(),
            Some("true")
        );
        assert_eq!(
            query_parameter(Some("user=ops%2Fadmin"), "user").as_deref(),
            Some("ops/admin")
        );
        assert_eq!(query_parameter(Some("flag"), "flag").as_deref(), Some(""));
        assert_eq!(query_parameter(None, "emailPassword"), None);
    }
}
