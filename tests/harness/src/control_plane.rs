//! `ControlPlane`: one etcd and one kube-apiserver on 127.0.0.1.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::apiserver::ApiServerConfig;
use crate::binaries::Binaries;
use crate::etcd::EtcdConfig;
use crate::pki::Pki;
use crate::process::{ChildGuard, free_port};
use crate::workdir::{self, Layout};
use crate::{crds, kubeconfig, logs, metrics};

/// Start attempts with new ports when another process took a chosen port
/// between `free_port` and the bind.
const PORT_ATTEMPTS: u32 = 3;

/// Time kube-apiserver gets to exit after `SIGTERM` before `SIGKILL`.
const APISERVER_STOP_GRACE: Duration = Duration::from_secs(15);

/// etcd and kube-apiserver with an admin kubeconfig, all on 127.0.0.1.
///
/// Dropping it, or calling [`ControlPlane::stop`], kills both processes and
/// removes the temporary directory. If the test process dies first, the
/// kernel kills both processes (see [`ChildGuard`]).
pub struct ControlPlane {
    // Fields drop in declaration order: kube-apiserver before etcd, and both
    // before the directory they write to.
    apiserver: ChildGuard,
    etcd: ChildGuard,
    apiserver_config: ApiServerConfig,
    binaries: Binaries,
    kubeconfig_text: String,
    layout: Layout,
    temporary_dir: Option<TempDir>,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver in a new temporary directory and waits
    /// until `/readyz` returns `ok`.
    ///
    /// Builds the binaries with `tests/control-plane/build.sh` first if needed
    /// (see `CONTROL_PLANE_BIN`). On failure the error includes the last log
    /// lines, and the directory with the full logs is kept.
    pub async fn start() -> anyhow::Result<ControlPlane> {
        let (temporary_dir, layout) = workdir::create_temporary()?;
        match Self::start_with_layout(layout).await {
            Ok(mut plane) => {
                plane.temporary_dir = Some(temporary_dir);
                Ok(plane)
            }
            Err(error) => {
                let kept_dir = temporary_dir.keep();
                Err(error.context(format!(
                    "the control plane failed to start; its logs are kept in {}",
                    kept_dir.join("logs").display()
                )))
            }
        }
    }

    /// Starts a control plane in `dir`, which stays after [`ControlPlane::stop`].
    ///
    /// `dir` must be missing, empty, or the directory of an earlier control
    /// plane whose process has exited. The earlier files are then replaced.
    /// `dir/kubeconfig` is written once kube-apiserver is ready, so a script
    /// may wait for that file to appear.
    pub async fn start_in(dir: &Path) -> anyhow::Result<ControlPlane> {
        let layout = workdir::prepare(dir)?;
        Self::start_with_layout(layout).await.with_context(|| {
            format!(
                "the control plane failed to start; its logs are in {}",
                dir.join("logs").display()
            )
        })
    }

    async fn start_with_layout(layout: Layout) -> anyhow::Result<ControlPlane> {
        let started = Instant::now();
        let binaries = Binaries::locate().await?;
        let pki = Pki::generate()?;
        let pki_files = pki.write(&layout.pki)?;

        let mut apiserver_config = ApiServerConfig {
            binary: binaries.kube_apiserver.clone(),
            log_file: layout.apiserver_log.clone(),
            etcd_log_file: layout.etcd_log.clone(),
            cert_dir: layout.pki.clone(),
            port: 0,
            etcd_url: String::new(),
            pki: pki_files,
        };

        for attempt in 1..=PORT_ATTEMPTS {
            layout.reset_etcd_and_logs()?;
            let etcd_config = EtcdConfig {
                binary: binaries.etcd.clone(),
                data_dir: layout.etcd_data.clone(),
                log_file: layout.etcd_log.clone(),
                client_port: free_port(),
                peer_port: free_port(),
            };
            let etcd = match etcd_config.start().await {
                Ok(etcd) => etcd,
                Err(error)
                    if attempt < PORT_ATTEMPTS && logs::shows_port_conflict(&layout.etcd_log) =>
                {
                    tracing::warn!(attempt, error = %format!("{error:#}"), "etcd port was taken; retrying with new ports");
                    continue;
                }
                Err(error) => return Err(error),
            };

            apiserver_config.port = free_port();
            apiserver_config.etcd_url = etcd_config.client_url();
            let kubeconfig_text = kubeconfig::render(&apiserver_config.url(), &pki);
            let client = kubeconfig::client(&kubeconfig_text).await?;
            let apiserver = match apiserver_config.start(&client).await {
                Ok(apiserver) => apiserver,
                Err(error)
                    if attempt < PORT_ATTEMPTS
                        && logs::shows_port_conflict(&layout.apiserver_log) =>
                {
                    tracing::warn!(attempt, error = %format!("{error:#}"), "kube-apiserver port was taken; retrying with new ports");
                    continue;
                }
                Err(error) => return Err(error),
            };

            kubeconfig::write(&layout.kubeconfig, &kubeconfig_text)?;
            tracing::info!(
                url = %apiserver_config.url(),
                dir = %layout.root.display(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "control plane ready"
            );
            return Ok(ControlPlane {
                apiserver,
                etcd,
                apiserver_config,
                binaries,
                kubeconfig_text,
                layout,
                temporary_dir: None,
            });
        }
        bail!("every port choice in {PORT_ATTEMPTS} attempts was already taken")
    }

    /// Admin kubeconfig: a client certificate with CN `admin` in group
    /// `system:masters`, and the CA inline.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.layout.kubeconfig
    }

    /// Builds a new client as admin. Build one per Tokio runtime: a client's
    /// connections belong to the runtime it was built on.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        kubeconfig::client(&self.kubeconfig_text).await
    }

    /// URL of kube-apiserver, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        self.apiserver_config.url()
    }

    /// Directory with the certificates, etcd data, logs and kubeconfig.
    pub fn dir(&self) -> &Path {
        &self.layout.root
    }

    /// Directory with `etcd.log` and `kube-apiserver.log`.
    pub fn log_dir(&self) -> &Path {
        &self.layout.logs
    }

    /// Process id of kube-apiserver, which changes on restart.
    pub fn apiserver_pid(&self) -> u32 {
        self.apiserver.id()
    }

    /// Process id of etcd.
    pub fn etcd_pid(&self) -> u32 {
        self.etcd.id()
    }

    /// Returns kube-apiserver's `/metrics` in the Prometheus text format.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let client = self.client().await?;
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .context("failed to build the /metrics request")?;
        client
            .request_text(request)
            .await
            .context("failed to read kube-apiserver /metrics")
    }

    /// Counts the requests kube-apiserver served with a verb that writes:
    /// POST, PUT, PATCH, APPLY (server-side apply), DELETE and
    /// DELETECOLLECTION.
    ///
    /// The count includes kube-apiserver's own writes at startup (RBAC
    /// defaults, priority and fairness objects, system namespaces), about 200
    /// with v1.34.4. The two flags in `apiserver.rs` that stop its periodic
    /// writes kept the count unchanged over 25 s of idling in a manual check.
    /// To count one resource only, use [`crate::metrics::sum_requests`] on
    /// [`ControlPlane::metrics`].
    pub async fn write_requests(&self) -> anyhow::Result<u64> {
        Ok(metrics::count_write_requests(&self.metrics().await?))
    }

    /// Stops kube-apiserver (`SIGTERM`, then `SIGKILL`), starts it again with
    /// the same port, certificates and etcd, and waits for `/readyz`. etcd
    /// keeps running, so every stored object survives.
    pub async fn restart_apiserver(&mut self) -> anyhow::Result<()> {
        let pid = self.apiserver.id();
        let status = self
            .apiserver
            .terminate(APISERVER_STOP_GRACE)
            .await
            .with_context(|| format!("failed to stop kube-apiserver (pid {pid})"))?;
        tracing::info!(pid, %status, "kube-apiserver stopped");

        let client = self.client().await?;
        self.apiserver = self.apiserver_config.start(&client).await?;
        tracing::info!(pid = self.apiserver.id(), url = %self.server_url(), "kube-apiserver restarted");
        Ok(())
    }

    /// Returns an error with the log tail if etcd or kube-apiserver has
    /// exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.etcd.try_wait()? {
            bail!(
                "etcd exited ({status})\n{}",
                logs::tail("etcd", &self.layout.etcd_log)
            );
        }
        if let Some(status) = self.apiserver.try_wait()? {
            bail!(
                "kube-apiserver exited ({status})\n{}",
                logs::tail("kube-apiserver", &self.layout.apiserver_log)
            );
        }
        Ok(())
    }

    /// Kills kube-apiserver and etcd, waits for both, and removes the
    /// temporary directory (a directory given to `start_in` stays).
    pub async fn stop(mut self) {
        for (name, child) in [
            ("kube-apiserver", &mut self.apiserver),
            ("etcd", &mut self.etcd),
        ] {
            if let Err(error) = child.kill() {
                tracing::warn!(process = name, pid = child.id(), %error, "failed to kill");
            }
        }
        tracing::info!(dir = %self.layout.root.display(), "control plane stopped");
        if let Some(dir) = self.temporary_dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(error) = dir.close() {
                tracing::warn!(dir = %path.display(), %error, "failed to remove the control plane directory");
            }
        }
    }

    /// Command for the built kubectl with `--kubeconfig` set to the admin
    /// kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(&self.binaries.kubectl);
        command.arg(format!("--kubeconfig={}", self.layout.kubeconfig.display()));
        command
    }

    /// Server-side applies every CRD in the `*.yaml` files of `dir` and waits
    /// until each is `Established`.
    pub async fn install_crds(&self, dir: &Path) -> anyhow::Result<()> {
        let client = self.client().await?;
        crds::install(&client, dir).await
    }
}
