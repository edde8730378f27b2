//! The outcome of one request to MAS, as seen by the client.

use std::fmt;

use super::error::MasError;
use crate::secret::SecretString;

/// Body of a set-password request.
#[derive(Debug, Clone)]
pub enum PasswordBody {
    /// Body `{}`: MAS generates a random password.
    MasGenerated,
    /// Body `{"token": "<password>"}`: MAS sets this password.
    Password(SecretString),
}

/// Outcome of one request.
///
/// The three variants separate what a caller may safely repeat: a request
/// that was `NotSent` never reached MAS, while an `Indeterminate` one may
/// have been applied, which matters because a password reset is not
/// idempotent.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// MAS, or a proxy in front of it, sent a response.
    Answered {
        /// HTTP status code.
        status: u16,
        /// Cleaned error details when the body had the MAS error shape.
        error: Option<MasError>,
        /// Raw `Retry-After` header, parsed by the retry policy.
        retry_after: Option<String>,
        /// Password that MAS generated. Set only for a 200 response with
        /// body `{"token": ...}` to a request with body `{}` and
        /// `emailPassword=false`.
        generated_password: Option<SecretString>,
    },
    /// The request provably never reached MAS, so it is safe to send again.
    NotSent {
        /// Step that failed.
        kind: NotSentKind,
        /// Cause, without URL, headers or body.
        detail: String,
    },
    /// The request may have reached MAS but no response came back.
    Indeterminate {
        /// Failure that ended the exchange.
        kind: IndeterminateKind,
        /// Cause, without URL, headers or body.
        detail: String,
    },
}

impl Attempt {
    /// Returns the HTTP status, if a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for Attempt {
    /// Prints a one-line summary that is safe for status, Events and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answered {
                status,
                error: Some(error),
                ..
            } => write!(f, "HTTP {status}: {error}"),
            Self::Answered { status, .. } => write!(f, "HTTP {status}"),
            Self::NotSent { kind, detail } => write!(f, "not sent ({kind}): {detail}"),
            Self::Indeterminate { kind, detail } => {
                write!(f, "outcome unknown ({kind}): {detail}")
            }
        }
    }
}

/// Reason a request never reached MAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSentKind {
    /// TCP connect failed or timed out (refused, unreachable, no route).
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed, for example an untrusted certificate.
    TlsHandshake,
    /// The request could not be built (user ID or token unusable in HTTP).
    InvalidRequest,
}

impl fmt::Display for NotSentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::Dns => "DNS",
            Self::TlsHandshake => "TLS handshake",
            Self::InvalidRequest => "invalid request",
        })
    }
}

/// Failure that ended a request that may have reached MAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndeterminateKind {
    /// The request timeout elapsed after the connection was made.
    Timeout,
    /// The connection was closed or reset before the response arrived.
    ConnectionLost,
}

impl fmt::Display for IndeterminateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timeout",
            Self::ConnectionLost => "connection lost",
        })
    }
}
