//! TLS configuration of the MAS client: rustls with the `ring` provider.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::error::ClientError;

/// Builds the rustls configuration for MAS connections.
///
/// Trust anchors are the system store (`rustls-native-certs`, which honours
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`) plus the PEM certificates of
/// `ca_bundle_pem`, such as the MAS internal CA. With
/// `insecure_skip_tls_verify` any server certificate is accepted. Only
/// HTTP/1.1 is offered in ALPN, see [`super::client`] for why. Session
/// resumption keeps the rustls default (an in-memory cache).
pub(crate) fn client_tls_config(
    ca_bundle_pem: Option<&[u8]>,
    insecure_skip_tls_verify: bool,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientError::Tls {
            detail: error.to_string(),
        })?;

    let mut config = if insecure_skip_tls_verify {
        let verifier = AcceptAnyServerCertificate {
            algorithms: provider.signature_verification_algorithms,
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(trust_anchors(ca_bundle_pem)?)
            .with_no_client_auth()
    };

    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Collects the system trust anchors and the certificates of the CA bundle.
fn trust_anchors(ca_bundle_pem: Option<&[u8]>) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();

    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::warn!(
            errors = native.errors.len(),
            loaded = native.certs.len(),
            "some system CA certificates could not be loaded"
        );
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::debug!(added, ignored, "ignored unparsable system CA certificates");
    }

    if let Some(pem) = ca_bundle_pem {
        add_ca_bundle(&mut roots, pem)?;
    }

    if roots.is_empty() {
        return Err(ClientError::NoTrustAnchors {
            errors: native.errors.len(),
        });
    }
    Ok(roots)
}

/// Adds every certificate of a PEM bundle; an empty or broken bundle is an
/// error rather than silently trusting only the system store.
fn add_ca_bundle(roots: &mut RootCertStore, pem: &[u8]) -> Result<(), ClientError> {
    let mut count = 0usize;

    for (index, certificate) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let certificate = certificate.map_err(|error| ClientError::InvalidCaBundle {
            reason: format!("PEM block {} is invalid: {error}", index + 1),
        })?;
        roots
            .add(certificate)
            .map_err(|error| ClientError::InvalidCaBundle {
                reason: format!("certificate {} is not usable: {error}", index + 1),
            })?;
        count += 1;
    }

    if count == 0 {
        return Err(ClientError::InvalidCaBundle {
            reason: "it contains no CERTIFICATE block".to_owned(),
        });
    }
    Ok(())
}

/// DANGEROUS: accepts any server certificate for any host name.
///
/// Used only when the user sets `insecure_skip_tls_verify`. The handshake
/// signatures are still checked, so the peer must hold the key of the
/// certificate it shows, but nothing ties that certificate to MAS: anyone on
/// the network path can read the tokens and passwords.
#[derive(Debug)]
struct AcceptAnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
