//! Runs a local etcd and kube-apiserver in the foreground for people and
//! scripts, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mas_reset_harness::ControlPlane;
use tokio::signal::unix::{SignalKind, signal};

/// Log filter when `RUST_LOG` is unset. kube-client logs every non-2xx
/// response as an error, and `/readyz` returns 500 many times during startup.
const DEFAULT_LOG_FILTER: &str = "info,kube_client::client::builder=off";

/// How often the processes are checked while running.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Parser)]
#[command(about = "Local etcd and kube-apiserver on 127.0.0.1 for tests and demos")]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Start etcd and kube-apiserver, write DIR/kubeconfig once the API
    /// server is ready, and run until SIGINT or SIGTERM.
    Up {
        /// Directory for certificates, etcd data, logs and the kubeconfig.
        /// Must be missing, empty, or left by an earlier `up`.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .init();

    let Action::Up { dir } = Cli::parse().command;
    run(dir).await
}

async fn run(dir: PathBuf) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;

    let mut plane = ControlPlane::start_in(&dir).await?;
    println!("kubeconfig: {}", plane.kubeconfig_path().display());
    tracing::info!(
        server = %plane.server_url(),
        logs = %plane.log_dir().display(),
        "running until SIGINT or SIGTERM"
    );

    let mut health_check = tokio::time::interval(HEALTH_CHECK_INTERVAL);
    let outcome = loop {
        tokio::select! {
            _ = interrupt.recv() => break Ok("SIGINT"),
            _ = terminate.recv() => break Ok("SIGTERM"),
            _ = health_check.tick() => {
                if let Err(error) = plane.check_running() {
                    break Err(error);
                }
            }
        }
    };

    match outcome {
        Ok(signal_name) => {
            tracing::info!(signal = signal_name, "stopping the control plane");
            plane.stop().await;
            Ok(())
        }
        Err(error) => {
            plane.stop().await;
            Err(error.context("the control plane stopped unexpectedly"))
        }
    }
}
