//! `mas-reset-operator run`: the operator process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::controller::{self, OperatorConfig, inputs::AllowedHosts, leader};
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::telemetry::{self, LogFormat};

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Watch only this namespace; all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    pub metrics_address: SocketAddr,

    /// Comma separated MAS API hosts that runs may call (`*.example.com`
    /// allows subdomains). Empty allows any host.
    #[arg(long, env = "ALLOWED_HOSTS", default_value = "")]
    pub allowed_hosts: String,

    /// Elect a leader through a Lease, so that only one replica sends.
    #[arg(long, env = "LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,

    /// Namespace of the leader election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_election_namespace: String,

    /// Name of the leader election Lease.
    #[arg(long, default_value = "mas-reset-operator")]
    pub leader_election_name: String,

    /// Name of this instance; defaults to the pod or host name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Users claimed per progress write. A crash makes at most 1.5 times
    /// this many users, plus the requests in flight, Unknown; larger values
    /// mean fewer API server writes.
    #[arg(long, default_value_t = 200)]
    pub claim_size: usize,

    /// Maximum time, in milliseconds, an outcome waits before it is written.
    #[arg(long, default_value_t = 2000)]
    pub flush_interval_ms: u64,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    crate::install_crypto_provider();

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());

    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let http_state = HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let http_task = tokio::spawn(http::serve(
        args.metrics_address,
        http_state,
        shutdown.clone(),
    ));

    let client = kube::Client::try_default().await?;
    ready.store(true, Ordering::Relaxed);

    // Leadership: stop everything when it is lost. The Lease is released
    // only after the controller stopped, so the next leader finds every
    // request in flight recorded.
    let stop = shutdown.child_token();
    let release = CancellationToken::new();
    let mut lease_task = None;
    if args.leader_elect {
        let config = leader::LeaseConfig {
            namespace: args.leader_election_namespace.clone(),
            name: args.leader_election_name.clone(),
            identity: identity.clone(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        };
        if !leader::acquire(&client, &config, &shutdown).await? {
            return Ok(());
        }
        lease_task = Some(tokio::spawn(leader::keep(
            client.clone(),
            config,
            stop.clone(),
            release.clone(),
        )));
    }

    let config = OperatorConfig {
        allowed_hosts: AllowedHosts::parse(&args.allowed_hosts),
        claim_size: args.claim_size.max(1),
        flush_interval: Duration::from_millis(args.flush_interval_ms.max(50)),
        identity,
    };
    let result = controller::run(
        client,
        args.namespace.clone(),
        config,
        metrics,
        stop.clone(),
    )
    .await;

    release.cancel();
    shutdown.cancel();
    if let Some(task) = lease_task {
        let _ = task.await;
    }
    let _ = http_task.await;
    if let Err(error) = &result {
        error!(error = %error, "operator stopped with an error");
    }
    info!("operator stopped");
    result
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
        info!("shutdown signal received; recording runs in flight");
        shutdown.cancel();
    });
}

fn default_identity() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("mas-reset-operator-{}", std::process::id()))
}
