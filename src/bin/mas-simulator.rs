//! `mas-simulator`: runs the MAS admin API simulator as a process for scripts and demos.
//!
//! Prints `listening on <url>` on standard output once it accepts connections, and runs
//! until SIGINT or SIGTERM. Logs go to standard error; set `RUST_LOG` to change the level.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use mas_reset_operator::simulator::{
    ApiKey, Simulator, SimulatorConfig, StaticToken, generate_users, load_users_csv,
};
use tracing_subscriber::EnvFilter;

/// Address used when neither --listen nor the config file sets one.
const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// Stand-in for the IBM Maximo Application Suite admin API (authenticate, user lookup,
/// password reset) with a ledger of password calls and injectable faults.
///
/// Control endpoints: GET /_sim/ledger[?user=ID], GET /_sim/lookups, GET /_sim/applied,
/// POST /_sim/faults (fault plan JSON), POST /_sim/users (user list JSON),
/// POST /_sim/revoke-tokens. They need no token, so listen on loopback only.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address and port to listen on [default: 127.0.0.1:8443].
    #[arg(long)]
    listen: Option<SocketAddr>,

    /// Serve HTTPS with a certificate for localhost, 127.0.0.1 and ::1 from a CA generated
    /// at start.
    #[arg(long)]
    tls: bool,

    /// File to write the PEM certificate of the generated CA to (requires --tls).
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca_out: Option<PathBuf>,

    /// CSV file of users with header id[,local,email,active]; local and active are
    /// true/false and default to true.
    #[arg(long, value_name = "FILE", conflicts_with = "generate_users")]
    users_file: Option<PathBuf>,

    /// Generate N active local users named PREFIX-00001 to PREFIX-N, each with an e-mail.
    #[arg(long, value_name = "N")]
    generate_users: Option<usize>,

    /// Name prefix for --generate-users.
    #[arg(long, default_value = "user", requires = "generate_users")]
    prefix: String,

    /// Pre-issued access token with the userAdmin permission; repeat for more. Tokens
    /// without the permission can be set in --config.
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,

    /// API key for /v1/authenticate as ID:TOKEN, with the userAdmin permission; repeat for
    /// more.
    #[arg(long = "api-key", value_name = "ID:TOKEN")]
    api_keys: Vec<String>,

    /// Fixed delay before every MAS response, in milliseconds.
    #[arg(long, value_name = "MS")]
    latency_ms: Option<u64>,

    /// JSON file with simulator settings (the fields of SimulatorConfig in snake_case);
    /// the other flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let args = Args::parse();
    let config = build_config(&args)?;
    if config.tokens.is_empty() && config.api_keys.is_empty() {
        tracing::warn!("no --token and no --api-key given, so every MAS call will get 401");
    }

    let simulator = Simulator::start(config).await?;
    if let (Some(path), Some(ca_pem)) = (&args.ca_out, simulator.ca_pem()) {
        std::fs::write(path, ca_pem)
            .with_context(|| format!("writing the CA certificate to {} failed", path.display()))?;
    }
    println!("listening on {}", simulator.base_url());

    wait_for_stop_signal().await?;
    tracing::info!("stop signal received; shutting down");
    simulator.shutdown().await;
    Ok(())
}

fn build_config(args: &Args) -> anyhow::Result<SimulatorConfig> {
    let mut config = match &args.config {
        Some(path) => SimulatorConfig::from_json_file(path)?,
        None => SimulatorConfig::default(),
    };

    let default_listen: SocketAddr = DEFAULT_LISTEN.parse().expect("default address is valid");
    config.listen = args.listen.or(config.listen).or(Some(default_listen));
    config.tls |= args.tls;
    if let Some(latency_ms) = args.latency_ms {
        config.latency_ms = latency_ms;
    }

    if let Some(path) = &args.users_file {
        config.users = load_users_csv(path)?;
    }
    if let Some(count) = args.generate_users {
        config.users = generate_users(&args.prefix, count);
    }

    for token in &args.tokens {
        config.tokens.push(StaticToken::new(token.as_str(), true));
    }
    for key in &args.api_keys {
        let Some((id, token)) = key.split_once(':') else {
            anyhow::bail!("--api-key must be ID:TOKEN, but the value has no ':'");
        };
        config.api_keys.push(ApiKey::new(id, token, true));
    }
    Ok(config)
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler failed")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT failed")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
