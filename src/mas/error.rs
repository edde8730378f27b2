//! Errors of the MAS client and the cleaning of MAS error text.
//!
//! Text that MAS sends back can reach status, Events and logs, so it is
//! cleaned here before any other code reads it. Control characters are
//! removed, whitespace collapses, the length is bounded and every credential
//! the request carried is replaced by `[redacted]`.

use std::fmt;
use std::time::Duration;

use crate::secret::SecretString;

/// Maximum length, in characters, of cleaned MAS error text.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// Replacement for a credential found in MAS error text.
pub const REDACTED: &str = "[redacted]";

/// Shortest run of base64url text starting with `eyJ` that is treated as a
/// JWT and redacted even when it is not one of the known credentials.
const MIN_JWT_LIKE_CHARS: usize = 16;

/// Error details from a MAS error body
/// `{"exception": {"id": ...}, "message": ...}`, already cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasError {
    /// Message id such as `AIUCO1022E`.
    pub id: Option<String>,
    /// Human-readable message.
    pub message: Option<String>,
}

impl MasError {
    /// Parses a MAS error body and cleans its text.
    ///
    /// Returns `None` when the body is not JSON or carries neither an id nor a
    /// message. Nothing else of the body is kept.
    pub fn from_body(body: &[u8], secrets: &[&SecretString]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;

        let id = value
            .get("exception")
            .and_then(|exception| exception.get("id"))
            .and_then(serde_json::Value::as_str)
            .map(|id| clean_message(id, secrets))
            .filter(|id| !id.is_empty());
        let message = value
            .get("message")
            .and_then(serde_json::Value::as_str)
            .map(|message| clean_message(message, secrets))
            .filter(|message| !message.is_empty());

        if id.is_none() && message.is_none() {
            return None;
        }
        Some(Self { id, message })
    }
}

impl fmt::Display for MasError {
    /// Prints `ID: message`, or the message alone when MAS already starts it
    /// with the id, as it usually does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.id, &self.message) {
            (Some(id), Some(message)) if message.starts_with(id.as_str()) => f.write_str(message),
            (Some(id), Some(message)) => write!(f, "{id}: {message}"),
            (Some(id), None) => f.write_str(id),
            (None, Some(message)) => f.write_str(message),
            (None, None) => f.write_str("no error details"),
        }
    }
}

/// Cleans text that MAS sent so it can be shown in status, Events and logs.
///
/// The steps, in order:
/// 1. Control and invisible formatting characters are removed, and runs of
///    whitespace collapse to one space.
/// 2. Every occurrence of a secret, as sent or as escaped inside a JSON
///    string, becomes `[redacted]`. Empty secrets are ignored.
/// 3. Every JWT-like word becomes `[redacted]`.
/// 4. The text is cut to [`MAX_MESSAGE_CHARS`] characters on a character
///    boundary and then ends in `…`.
pub fn clean_message(raw: &str, secrets: &[&SecretString]) -> String {
    let mut text = normalize_text(raw);

    for secret in secrets {
        for form in secret_forms(secret) {
            if !form.is_empty() {
                text = text.replace(&form, REDACTED);
            }
        }
    }
    let text = redact_jwt_like(&text);
    let text = redact_after_auth_scheme(&text);

    truncate_chars(&text, MAX_MESSAGE_CHARS)
}

/// Replaces the word after `Basic` or `Bearer` with `[redacted]`, because a
/// server that echoes an `Authorization` header would otherwise put the
/// base64 of `id:token` into the message.
fn redact_after_auth_scheme(text: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let mut redact_next = false;
    for word in text.split(' ') {
        if redact_next && !word.is_empty() {
            output.push(REDACTED);
        } else {
            output.push(word);
        }
        let scheme = word
            .trim_matches(|c: char| !c.is_ascii_alphabetic())
            .to_ascii_lowercase();
        redact_next = scheme == "basic" || scheme == "bearer";
    }
    output.join(" ")
}

/// Removes control and invisible formatting characters and collapses
/// whitespace.
fn normalize_text(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    let mut pending_space = false;

    for c in raw.chars() {
        if c.is_whitespace() {
            pending_space = true;
        } else if c.is_control() || is_invisible_format(c) {
            continue;
        } else {
            if pending_space && !text.is_empty() {
                text.push(' ');
            }
            pending_space = false;
            text.push(c);
        }
    }
    text
}

/// Returns whether `c` is a zero-width or bidirectional formatting
/// character, which could hide or reorder text in a terminal or web console.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Returns the spellings of a secret that may appear in cleaned MAS text:
/// normalized like the text, and escaped as inside a JSON string.
fn secret_forms(secret: &SecretString) -> [String; 2] {
    let plain = normalize_text(secret.expose());
    let json_escaped = serde_json::to_string(secret.expose())
        .map(|quoted| quoted[1..quoted.len() - 1].to_owned())
        .map(|escaped| normalize_text(&escaped))
        .unwrap_or_default();
    [plain, json_escaped]
}

/// Replaces words that look like a JWT (base64url text starting with `eyJ`,
/// the encoding of `{"`) with `[redacted]`, because MAS may echo a token
/// that is not one of the credentials this request sent.
fn redact_jwt_like(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut word_start: Option<usize> = None;

    for (index, c) in text.char_indices() {
        let in_word = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=');
        match (in_word, word_start) {
            (true, None) => word_start = Some(index),
            (false, Some(start)) => {
                push_word(&mut output, &text[start..index]);
                word_start = None;
                output.push(c);
            }
            (false, None) => output.push(c),
            (true, Some(_)) => {}
        }
    }
    if let Some(start) = word_start {
        push_word(&mut output, &text[start..]);
    }
    output
}

fn push_word(output: &mut String, word: &str) {
    if word.starts_with("eyJ") && word.len() >= MIN_JWT_LIKE_CHARS {
        output.push_str(REDACTED);
    } else {
        output.push_str(word);
    }
}

fn truncate_chars(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut truncated: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    truncated.push('…');
    truncated
}

/// Invalid [`ClientConfig`](super::ClientConfig).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL does not parse.
    #[error(
        "invalid MAS API URL: {reason}; set an absolute URL such as https://api.inst1.example.com"
    )]
    InvalidBaseUrl { reason: String },

    /// The base URL contains a user name or password. The message leaves the
    /// URL out, so that the password cannot reach logs.
    #[error(
        "the MAS API URL contains a user name or password; remove them from the URL and put the credentials in the credentials Secret"
    )]
    CredentialsInBaseUrl,

    /// The base URL has a query or fragment, which request paths cannot follow.
    #[error("the MAS API URL {url} has a query or fragment; use only scheme, host, port and path")]
    QueryInBaseUrl { url: String },

    /// The scheme is neither `https` nor an allowed `http`.
    #[error(
        "the MAS API URL {url} uses scheme {scheme:?}; use https:// (http:// only with allowInsecureHttp: true)"
    )]
    SchemeNotAllowed { url: String, scheme: String },

    /// The CA bundle could not be read as PEM certificates.
    #[error(
        "invalid CA bundle: {reason}; provide one or more PEM certificates (-----BEGIN CERTIFICATE-----)"
    )]
    InvalidCaBundle { reason: String },

    /// Neither the system trust store nor a CA bundle gave a trust anchor.
    #[error(
        "no trusted CA certificates: the system trust store is empty or unreadable ({errors} errors) and no CA bundle was given; provide the MAS CA bundle"
    )]
    NoTrustAnchors { errors: usize },

    /// The connect timeout would not fire before the request timeout.
    #[error(
        "connect timeout {connect:?} must be shorter than request timeout {request:?}, or a slow connection could not be told apart from a request that reached MAS"
    )]
    InvalidTimeouts {
        connect: Duration,
        request: Duration,
    },

    /// The TLS configuration could not be built.
    #[error("failed to build the TLS configuration: {detail}")]
    Tls { detail: String },

    /// The HTTP client could not be built.
    #[error("failed to build the HTTP client: {detail}")]
    Build { detail: String },
}

#[cfg(test)]
mod auth_scheme_tests {
    use super::*;

    #[test]
    fn clean_message_redacts_echoed_basic_credentials() {
        let cleaned = clean_message(
            "rejected header Authorization: Basic YWRtaW46c2VjcmV0 for user",
            &[],
        );

        assert!(!cleaned.contains("YWRtaW46c2VjcmV0"));
        assert!(cleaned.contains("Basic [redacted] for user"));
    }

    #[test]
    fn clean_message_redacts_bearer_token() {
        let cleaned = clean_message("got Bearer abc.def.ghi", &[]);

        assert_eq!(cleaned, "got Bearer [redacted]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: &str) -> SecretString {
        SecretString::new(value)
    }

    #[test]
    fn clean_removes_control_characters() {
        let cleaned = clean_message("bad\u{0}\u{7}\u{1b}[31mred\u{7f} text", &[]);

        assert_eq!(cleaned, "bad[31mred text");
    }

    #[test]
    fn clean_collapses_whitespace() {
        let cleaned = clean_message("  line one\r\n\tline\u{a0}two  \n", &[]);

        assert_eq!(cleaned, "line one line two");
    }

    #[test]
    fn clean_removes_bidi_and_zero_width() {
        let cleaned = clean_message("user\u{202e}nimda\u{200b}x\u{feff}", &[]);

        assert_eq!(cleaned, "usernimdax");
    }

    #[test]
    fn clean_limits_length_on_char_boundary() {
        let raw = "é".repeat(500);

        let cleaned = clean_message(&raw, &[]);

        assert_eq!(cleaned.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cleaned.ends_with('…'));
        assert!(cleaned.starts_with("éé"));
    }

    #[test]
    fn clean_keeps_text_at_limit() {
        let raw = "a".repeat(MAX_MESSAGE_CHARS);

        assert_eq!(clean_message(&raw, &[]), raw);
    }

    #[test]
    fn clean_redacts_secrets() {
        let token = secret("tok-123456");
        let password = secret("Pass word\"1");

        let cleaned = clean_message(
            r#"token tok-123456 rejected; password "Pass word\"1" or Pass   word"1 violates policy"#,
            &[&token, &password],
        );

        assert!(!cleaned.contains("tok-123456"), "{cleaned}");
        assert!(!cleaned.contains("Pass"), "{cleaned}");
        assert_eq!(
            cleaned,
            r#"token [redacted] rejected; password "[redacted]" or [redacted] violates policy"#
        );
    }

    #[test]
    fn clean_redacts_secret_split_by_control_characters() {
        let token = secret("abcdef123");

        let cleaned = clean_message("got abc\u{0}def\u{7}123 here", &[&token]);

        assert_eq!(cleaned, "got [redacted] here");
    }

    #[test]
    fn clean_redacts_secret_before_truncation() {
        let token = secret("SECRETSECRET");
        let raw = format!("{}{}", "x".repeat(195), token.expose());

        let cleaned = clean_message(&raw, &[&token]);

        assert!(!cleaned.contains("SECRET"), "{cleaned}");
    }

    #[test]
    fn clean_redacts_jwt_like_words() {
        let cleaned = clean_message(
            "invalid token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig for user eyJ",
            &[],
        );

        assert_eq!(cleaned, "invalid token [redacted] for user eyJ");
    }

    #[test]
    fn clean_ignores_empty_secret() {
        let empty = secret("");

        assert_eq!(clean_message("plain text", &[&empty]), "plain text");
    }

    #[test]
    fn mas_error_from_body() {
        let token = secret("tok-999");
        let body = br#"{"exception":{"id":"AIUCO1022E","properties":["/"]},"message":"AIUCO1022E: Not found tok-999\n","uuid":"u-1"}"#;

        let error = MasError::from_body(body, &[&token]).expect("MAS error shape");

        assert_eq!(error.id.as_deref(), Some("AIUCO1022E"));
        assert_eq!(
            error.message.as_deref(),
            Some("AIUCO1022E: Not found [redacted]")
        );
        assert_eq!(error.to_string(), "AIUCO1022E: Not found [redacted]");
    }

    #[test]
    fn mas_error_display_adds_id() {
        let error = MasError {
            id: Some("AIUCO1005E".to_owned()),
            message: Some("User not found".to_owned()),
        };

        assert_eq!(error.to_string(), "AIUCO1005E: User not found");
    }

    #[test]
    fn mas_error_from_other_bodies() {
        let bodies: [&[u8]; 6] = [
            b"",
            b"<html>502 Bad Gateway</html>",
            b"{}",
            br#"{"message":42}"#,
            br#"{"exception":"x"}"#,
            br#"{"token":"generated-password"}"#,
        ];

        for body in bodies {
            assert_eq!(
                MasError::from_body(body, &[]),
                None,
                "body {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
