//! etcd: a single member on loopback, plain HTTP, data in the work directory.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::process::ChildGuard;
use crate::startup::Startup;

/// Maximum time from starting etcd until `/health` reports healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);

const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Maximum time for one `/health` request.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of one etcd member.
pub(crate) struct EtcdConfig {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
}

impl EtcdConfig {
    /// URL that kube-apiserver's `--etcd-servers` points at.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn command(&self) -> Command {
        let client_url = self.client_url();
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);

        let mut command = Command::new(&self.binary);
        command
            .arg("--name=local")
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=local={peer_url}"))
            // Test data need not survive a power cut, and skipping fsync makes
            // every write, and so every API request, much faster.
            .arg("--unsafe-no-fsync=true")
            .arg("--log-level=warn");
        command
    }

    /// Starts etcd and waits until `/health` reports healthy.
    pub async fn start(&self) -> anyhow::Result<ChildGuard> {
        let startup = Startup {
            name: "etcd",
            log_file: &self.log_file,
            related_logs: &[],
            timeout: START_TIMEOUT,
            poll_interval: POLL_INTERVAL,
        };
        let url = self.client_url();
        startup
            .run(self.command(), || check_health(&url, self.client_port))
            .await
    }
}

/// Sends `GET /health` over plain HTTP/1.0 and checks for `"health":"true"`.
async fn check_health(url: &str, port: u16) -> anyhow::Result<()> {
    let request = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };

    let response = timeout(HEALTH_TIMEOUT, request)
        .await
        .with_context(|| format!("{url}/health timed out"))?
        .with_context(|| format!("{url}/health failed"))?;
    if !response.contains(r#""health":"true""#) {
        bail!("{url}/health returned {response:?}");
    }
    Ok(())
}
