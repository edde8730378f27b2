//! Certificates and keys of one control plane, made with rcgen.
//!
//! Every key is ECDSA P-256 in PKCS#8 PEM, which kube-apiserver, kubectl and
//! kube-rs's rustls client all read.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Common name of the admin client certificate.
pub const ADMIN_USER: &str = "admin";

/// Group of the admin client certificate, which RBAC allows everything.
pub const ADMIN_GROUP: &str = "system:masters";

/// PEM text of every certificate and key.
pub(crate) struct Pki {
    pub ca_cert: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub admin_cert: String,
    pub admin_key: String,
    pub service_account_public_key: String,
    pub service_account_private_key: String,
}

/// Files that kube-apiserver reads.
pub(crate) struct PkiFiles {
    pub ca_cert: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub service_account_public_key: PathBuf,
    pub service_account_private_key: PathBuf,
}

impl Pki {
    /// Generates a CA, a serving certificate for 127.0.0.1 and localhost, an
    /// admin client certificate and a service account signing key pair.
    pub fn generate() -> anyhow::Result<Pki> {
        let ca_key = KeyPair::generate().context("failed to generate the CA key")?;
        let mut ca_params = CertificateParams::new(Vec::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mas-reset-harness CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("failed to sign the CA certificate")?;
        let issuer = Issuer::new(ca_params, ca_key);

        let (serving_cert, serving_key) = sign_leaf(
            &issuer,
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            &[(DnType::CommonName, "kube-apiserver")],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
        .context("failed to create the serving certificate")?;

        let (admin_cert, admin_key) = sign_leaf(
            &issuer,
            Vec::new(),
            &[
                (DnType::CommonName, ADMIN_USER),
                (DnType::OrganizationName, ADMIN_GROUP),
            ],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
        .context("failed to create the admin certificate")?;

        let service_account_key =
            KeyPair::generate().context("failed to generate the service account key")?;

        Ok(Pki {
            ca_cert: ca_cert.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            admin_cert: admin_cert.pem(),
            admin_key: admin_key.serialize_pem(),
            service_account_public_key: service_account_key.public_key_pem(),
            service_account_private_key: service_account_key.serialize_pem(),
        })
    }

    /// Writes the files kube-apiserver reads into `dir`, with mode 0600 for
    /// private keys.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PkiFiles> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;

        let files = PkiFiles {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            service_account_public_key: dir.join("service-account.pub"),
            service_account_private_key: dir.join("service-account.key"),
        };
        write_file(&files.ca_cert, &self.ca_cert, 0o644)?;
        write_file(&files.serving_cert, &self.serving_cert, 0o644)?;
        write_file(&files.serving_key, &self.serving_key, 0o600)?;
        write_file(
            &files.service_account_public_key,
            &self.service_account_public_key,
            0o644,
        )?;
        write_file(
            &files.service_account_private_key,
            &self.service_account_private_key,
            0o600,
        )?;
        Ok(files)
    }
}

/// Generates a key and a certificate for it signed by `issuer`, for one
/// extended key usage.
fn sign_leaf(
    issuer: &Issuer<'_, KeyPair>,
    subject_alt_names: Vec<String>,
    subject: &[(DnType, &str)],
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<(Certificate, KeyPair)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(subject_alt_names)?;
    for (name_type, value) in subject {
        params.distinguished_name.push(name_type.clone(), *value);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert, key))
}

/// Writes `contents` to a file created with `mode`.
pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))
}
