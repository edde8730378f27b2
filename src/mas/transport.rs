//! Classification of transport errors: did the request reach MAS or not?
//!
//! What reqwest 0.13.5 (hyper 1.13, hyper-util 0.1.21, rustls 0.23) reports,
//! measured against local test servers (see the client tests), for a request
//! with both a connect timeout and a request timeout:
//!
//! | server behaviour                         | `is_connect` | `is_timeout` | innermost cause                          |
//! |------------------------------------------|--------------|--------------|------------------------------------------|
//! | port closed                              | true         | false        | io `ConnectionRefused`                   |
//! | name does not resolve                    | true (and `is_dns`) | false | resolver error                           |
//! | TLS certificate from an unknown CA       | true         | false        | io wrapping `rustls::Error::InvalidCertificate` |
//! | plain HTTP on a TLS port                 | true         | false        | io wrapping a rustls `InvalidContentType` |
//! | TLS handshake gets no response           | true         | true         | "operation timed out" (connect timeout)  |
//! | accepts, reads, never responds           | false        | true         | reqwest `TimedOut`                       |
//! | reads the request, then closes           | false        | false        | hyper `IncompleteMessage`                |
//! | reads the request, then resets (RST)     | false        | false        | io `ConnectionReset` inside hyper        |
//! | sends half a status line, then closes    | false        | false        | hyper `IncompleteMessage`                |
//! | request timeout fires during the connect | false        | true         | reqwest `TimedOut`                       |
//!
//! Everything `is_connect` happened before the request was written, so it is
//! [`Attempt::NotSent`]. The last row looks like a timeout after sending,
//! which is why [`ClientConfig`](super::ClientConfig) requires the connect
//! timeout to be shorter than the request timeout. Any other error is
//! [`Attempt::Indeterminate`]: the request may have been written.
//!
//! A pooled keep-alive connection that the server closed before the request
//! was written is retried on a new connection by hyper-util itself (only
//! when hyper hands the unsent request back), so that case never shows up
//! here as an error.

use std::error::Error as StdError;

use super::attempt::{Attempt, IndeterminateKind, NotSentKind};

/// Maps a reqwest error from sending a request to an [`Attempt`].
///
/// The detail is built from the error's causes, leaving out reqwest's own
/// message because it contains the URL.
pub(crate) fn classify_send_error(error: &reqwest::Error) -> Attempt {
    let causes = describe_causes(error);

    if error.is_builder() {
        return Attempt::NotSent {
            kind: NotSentKind::InvalidRequest,
            detail: causes,
        };
    }

    if error.is_connect() {
        if error.is_dns() {
            return Attempt::NotSent {
                kind: NotSentKind::Dns,
                detail: causes,
            };
        }
        if let Some(tls_error) = find_rustls_error(error) {
            return Attempt::NotSent {
                kind: NotSentKind::TlsHandshake,
                detail: describe_tls_error(tls_error),
            };
        }
        return Attempt::NotSent {
            kind: NotSentKind::Connect,
            detail: causes,
        };
    }

    let kind = if error.is_timeout() {
        IndeterminateKind::Timeout
    } else {
        IndeterminateKind::ConnectionLost
    };
    Attempt::Indeterminate {
        kind,
        detail: causes,
    }
}

/// Joins the messages of the causes of `error`, skipping hyper-util's
/// wrapper ("client error (Connect)") that adds nothing.
fn describe_causes(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = error.source();

    while let Some(current) = cause {
        if !current.is::<hyper_util::client::legacy::Error>() {
            let text = current.to_string();
            if parts.last() != Some(&text) {
                parts.push(text);
            }
        }
        cause = current.source();
    }

    if parts.is_empty() {
        return "no cause reported".to_owned();
    }
    parts.join(": ")
}

/// Finds a rustls error among the causes, also inside `io::Error` wrappers,
/// whose `source()` skips the error they wrap.
fn find_rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);

    while let Some(current) = cause {
        if let Some(tls_error) = current.downcast_ref::<rustls::Error>() {
            return Some(tls_error);
        }
        if let Some(io_error) = current.downcast_ref::<std::io::Error>()
            && let Some(inner) = io_error.get_ref()
            && let Some(tls_error) = find_rustls_error(inner)
        {
            return Some(tls_error);
        }
        cause = current.source();
    }
    None
}

/// Describes a TLS failure with the usual fix for certificate errors.
fn describe_tls_error(error: &rustls::Error) -> String {
    use rustls::CertificateError;

    let hint = match error {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => {
            "; the server certificate is not signed by a trusted CA: add the MAS CA certificate to the CA bundle"
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            "; the server certificate does not cover this host name: use the host name the certificate was issued for"
        }
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => {
            "; the server certificate is outside its validity period: renew it or check the clocks"
        }
        rustls::Error::InvalidMessage(_) => {
            "; the server did not speak TLS: check the scheme and port of the MAS API URL"
        }
        _ => "",
    };
    format!("TLS handshake failed: {error}{hint}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Resolver that fails every lookup, so no DNS query leaves the host.
    struct FailingResolver;

    impl reqwest::dns::Resolve for FailingResolver {
        fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
            Box::pin(async {
                let error = std::io::Error::new(std::io::ErrorKind::NotFound, "no such host");
                Err(Box::new(error) as Box<dyn StdError + Send + Sync>)
            })
        }
    }

    #[tokio::test]
    async fn dns_failure_not_sent() {
        let tls = crate::mas::tls::client_tls_config(None, true).expect("TLS config");
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .dns_resolver(Arc::new(FailingResolver))
            .build()
            .expect("client");

        let error = client
            .get("https://mas.example.invalid/v3/users/x")
            .send()
            .await
            .expect_err("lookup fails");
        let attempt = classify_send_error(&error);

        let Attempt::NotSent {
            kind: NotSentKind::Dns,
            detail,
        } = &attempt
        else {
            panic!("expected NotSent Dns, got {attempt:?}");
        };
        assert!(detail.contains("no such host"), "{detail}");
        assert!(!detail.contains("example.invalid"), "URL in {detail}");
    }

    #[test]
    fn tls_hint_for_unknown_issuer() {
        let error = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);

        let detail = describe_tls_error(&error);

        assert!(detail.starts_with("TLS handshake failed: "), "{detail}");
        assert!(detail.contains("CA bundle"), "{detail}");
    }
}
