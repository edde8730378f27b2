//! Certificates for the TLS listener: a CA generated at start and a serving certificate it
//! signs for `localhost`, `127.0.0.1` and `::1`.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

/// Names the serving certificate is valid for.
const SERVING_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, Error)]
pub enum TlsSetupError {
    #[error("generating the {certificate} failed: {source}")]
    Certificate {
        certificate: &'static str,
        source: rcgen::Error,
    },
    #[error("building the rustls server configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Server side of TLS: the acceptor and the PEM of the CA that clients must trust.
pub struct ServerTls {
    pub acceptor: TlsAcceptor,
    pub ca_pem: String,
}

/// A CA with its signing key.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    fn generate(common_name: &str) -> Result<Self, TlsSetupError> {
        let certificate_error = |source| TlsSetupError::Certificate {
            certificate: "CA certificate",
            source,
        };
        let mut params = CertificateParams::new(Vec::new()).map_err(certificate_error)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = distinguished_name(common_name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];

        let key = KeyPair::generate().map_err(certificate_error)?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(certificate_error)?;
        Ok(Self { issuer })
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "mas-reset-operator test");
    name
}

/// Generates a CA and a serving certificate and builds the acceptor. The rustls `ring`
/// provider is passed explicitly, so no process-wide default provider is needed.
pub fn build_server_tls() -> Result<ServerTls, TlsSetupError> {
    let authority = Authority::generate("mas-simulator CA")?;

    let certificate_error = |source| TlsSetupError::Certificate {
        certificate: "serving certificate",
        source,
    };
    let names: Vec<String> = SERVING_NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let mut params = CertificateParams::new(names).map_err(certificate_error)?;
    params.distinguished_name = distinguished_name("localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().map_err(certificate_error)?;
    let certificate = params
        .signed_by(&key, &authority.issuer)
        .map_err(certificate_error)?;

    let chain = vec![CertificateDer::from(certificate.der().to_vec())];
    let private_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    Ok(ServerTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_pem: authority.issuer.pem(),
    })
}

/// Generates the PEM certificate of a CA that signed nothing the simulator serves, for tests
/// that a client rejects a server certificate from another CA.
pub fn unrelated_ca_pem() -> anyhow::Result<String> {
    Ok(Authority::generate("unrelated test CA")?.issuer.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_tls_builds_with_pem_ca() {
        let tls = build_server_tls().unwrap();
        assert!(tls.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn unrelated_ca_differs() {
        let tls = build_server_tls().unwrap();
        assert_ne!(unrelated_ca_pem().unwrap(), tls.ca_pem);
    }
}
