//! kube-apiserver: secure port on 127.0.0.1, client certificate auth, RBAC.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::timeout;

use crate::pki::PkiFiles;
use crate::process::ChildGuard;
use crate::startup::Startup;

/// Maximum time from starting kube-apiserver until `/readyz` returns `ok`.
/// A start usually takes a few seconds, and the margin is for a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(90);

const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Maximum time for one `/readyz` request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Service IP range. It is configuration only, because nothing routes to it.
const SERVICE_CLUSTER_IP_RANGE: &str = "10.0.0.0/24";

/// Settings of one kube-apiserver.
pub(crate) struct ApiServerConfig {
    pub binary: PathBuf,
    pub log_file: PathBuf,
    pub etcd_log_file: PathBuf,
    pub cert_dir: PathBuf,
    pub port: u16,
    pub etcd_url: String,
    pub pki: PkiFiles,
}

impl ApiServerConfig {
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn command(&self) -> Command {
        let url = self.url();
        let mut command = Command::new(&self.binary);
        command
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={}", self.port))
            .arg(format!("--cert-dir={}", self.cert_dir.display()))
            .arg(format!("--etcd-servers={}", self.etcd_url))
            .arg(format!("--client-ca-file={}", self.pki.ca_cert.display()))
            .arg(format!(
                "--tls-cert-file={}",
                self.pki.serving_cert.display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                self.pki.serving_key.display()
            ))
            .arg(format!("--service-account-issuer={url}"))
            .arg(format!(
                "--service-account-key-file={}",
                self.pki.service_account_public_key.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                self.pki.service_account_private_key.display()
            ))
            .arg(format!(
                "--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"
            ))
            .arg("--authorization-mode=RBAC")
            // No controller-manager runs, so no namespace gets its `default`
            // ServiceAccount, and this plugin would reject every Pod.
            .arg("--disable-admission-plugins=ServiceAccount")
            // Both of the following write every 10 s while idle, which would
            // make write counts in tests drift. The endpoint reconciler also
            // fails each time (422), because Endpoints reject a loopback
            // address. The identity Lease only matters with several API
            // servers.
            .arg("--endpoint-reconciler-type=none")
            .arg("--feature-gates=APIServerIdentity=false");
        command
    }

    /// Starts kube-apiserver and waits until `/readyz` returns `ok`.
    ///
    /// `client` must authenticate as a user allowed to read `/readyz`.
    pub async fn start(&self, client: &kube::Client) -> anyhow::Result<ChildGuard> {
        let startup = Startup {
            name: "kube-apiserver",
            log_file: &self.log_file,
            related_logs: &[("etcd", &self.etcd_log_file)],
            timeout: START_TIMEOUT,
            poll_interval: POLL_INTERVAL,
        };
        startup.run(self.command(), || probe_readyz(client)).await
    }
}

/// Sends `GET /readyz` and succeeds only on status 200 with body `ok`.
async fn probe_readyz(client: &kube::Client) -> anyhow::Result<()> {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .context("failed to build the /readyz request")?;
    let body = timeout(PROBE_TIMEOUT, client.request_text(request))
        .await
        .context("/readyz timed out")?
        .context("/readyz failed")?;
    if body.trim() != "ok" {
        bail!("/readyz returned {body:?}");
    }
    Ok(())
}
