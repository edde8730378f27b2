//! The admin kubeconfig and clients built from it.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::pki::{ADMIN_USER, Pki};

/// Name of the cluster, user and context in the kubeconfig.
const CONTEXT: &str = "local-control-plane";

/// Renders a kubeconfig for `server` with the CA and admin credentials
/// inline, so the file still works when copied elsewhere.
pub(crate) fn render(server: &str, pki: &Pki) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {ADMIN_USER}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {ADMIN_USER}
    namespace: default
current-context: {CONTEXT}
",
        ca = STANDARD.encode(&pki.ca_cert),
        cert = STANDARD.encode(&pki.admin_cert),
        key = STANDARD.encode(&pki.admin_key),
    )
}

/// Writes a rendered kubeconfig with mode 0600, because it contains the admin
/// private key.
pub(crate) fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::pki::write_file(path, text, 0o600)
}

/// Builds a client from rendered kubeconfig text.
pub(crate) async fn client(text: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::from_yaml(text).context("the rendered kubeconfig is invalid")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("the rendered kubeconfig is incomplete")?;
    kube::Client::try_from(config).context("failed to build a client from the kubeconfig")
}
