//! Starting a server process and polling it until it is ready.

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::bail;
use tokio::time::{Instant, sleep};

use crate::logs;
use crate::process::ChildGuard;

/// How to start one server process and wait until it is ready.
pub(crate) struct Startup<'a> {
    /// Name in messages and in the log headers, such as `etcd`.
    pub name: &'a str,
    pub log_file: &'a Path,
    /// Logs of other processes that a startup error includes, such as etcd's
    /// for kube-apiserver.
    pub related_logs: &'a [(&'a str, &'a Path)],
    pub timeout: Duration,
    pub poll_interval: Duration,
}

impl Startup<'_> {
    /// Starts `command` with its output in `log_file`, then calls `probe`
    /// until it succeeds. Fails with the log tails if the process exits or
    /// `timeout` passes first.
    pub async fn run<F, Fut>(
        &self,
        mut command: Command,
        mut probe: F,
    ) -> anyhow::Result<ChildGuard>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        logs::redirect_output(&mut command, self.log_file)?;
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = ChildGuard::spawn(command)
            .map_err(|error| anyhow::anyhow!("failed to start {program}: {error}"))?;
        tracing::debug!(process = self.name, pid = child.id(), "process started");

        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited during startup ({status})\n{}",
                    self.name,
                    self.log_tails()
                );
            }

            let last_error = match probe().await {
                Ok(()) => return Ok(child),
                Err(error) => error,
            };

            if Instant::now() >= deadline {
                bail!(
                    "{} was not ready within {}s; last check: {last_error:#}\n{}",
                    self.name,
                    self.timeout.as_secs(),
                    self.log_tails()
                );
            }
            sleep(self.poll_interval).await;
        }
    }

    fn log_tails(&self) -> String {
        let mut tails = vec![logs::tail(self.name, self.log_file)];
        for (name, path) in self.related_logs {
            tails.push(logs::tail(name, path));
        }
        tails.join("\n")
    }
}
