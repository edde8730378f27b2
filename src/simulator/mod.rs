//! Stand-in for the IBM Maximo Application Suite (MAS) admin API, for tests, benchmarks and
//! demos.
//!
//! It serves the three calls the operator makes, as IBM documents them for MAS 9.0:
//!
//! - `GET /v1/authenticate`: HTTP Basic with an API key id and token, returns
//!   `{"token": "<JWT>"}`. The request header `mas-jwt-expiry-duration` (ISO-8601, such as
//!   `PT1H`) sets the JWT lifetime.
//! - `GET /v3/users/{userid}`: the user profile, or 404.
//! - `POST /v3/users/{userid}/password?emailPassword=true|false` with body `{}` (MAS
//!   generates the password) or `{"token": "<password>"}`.
//!
//! Every call except `/v1/authenticate` needs the `x-access-token` header. Error bodies have
//! the MAS shape; [`mas_error`] lists the message ids. Behaviour that MAS does not document
//! is a field of [`SimulatorConfig`]. Routing works on the raw path, so `ops%2Fadmin` is the
//! one user `ops/admin` (see [`routes`]).
//!
//! A ledger records every password call, so a test can prove that each user was reset at
//! most once and that no retry came sooner than `Retry-After` requested. [`FaultPlan`]
//! injects error statuses, slow responses, resets and aborted connections. Scripts that run the
//! `mas-simulator` binary reach the same controls through the endpoints in [`admin`].

pub mod admin;
mod config;
mod credentials;
mod directory;
mod dispatch;
mod duration;
mod endpoints;
mod faults;
mod jwt;
mod ledger;
pub mod mas_error;
mod password;
mod policy;
pub mod routes;
mod server;
mod state;
mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{
    ApiKey, ConfigError, SimUser, SimulatorConfig, StaticToken, SuccessBody, generate_users,
    load_users_csv,
};
pub use duration::{DurationError, parse_iso8601_duration};
pub use faults::{
    Fault, FaultPlan, FaultPlanError, RandomFaults, RetryAfterForm, requested_wait_ms,
};
pub use ledger::{AuthenticationEntry, BodyKind, LedgerEntry, LookupEntry};
pub use policy::{PasswordPolicy, PolicyError, PolicyViolation};
pub use tls::unrelated_ca_pem;

use state::State;

/// Starts simulator instances.
pub struct Simulator;

impl Simulator {
    /// Validates the config, binds the listener (127.0.0.1 on a free port unless
    /// `config.listen` sets an address) and serves in the background until
    /// [`SimulatorHandle::shutdown`] or until the handle is dropped.
    pub async fn start(config: SimulatorConfig) -> anyhow::Result<SimulatorHandle> {
        config.validate()?;
        config.faults.validate()?;

        let tls = if config.tls {
            Some(tls::build_server_tls()?)
        } else {
            None
        };
        let listen = config
            .listen
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the simulator listener to {listen} failed"))?;
        let local_addr = listener
            .local_addr()
            .context("reading the simulator listener address failed")?;
        let base_url = base_url(local_addr, tls.is_some());

        let state = Arc::new(State::new(config));
        let (shutdown_sender, shutdown_receiver) = watch::channel(false);
        let ca_pem = tls.as_ref().map(|tls| tls.ca_pem.clone());
        let acceptor = tls.map(|tls| tls.acceptor);
        let accept_task = tokio::spawn(server::accept_loop(
            listener,
            acceptor,
            state.clone(),
            shutdown_receiver,
        ));
        tracing::info!(%base_url, "MAS simulator listening");

        Ok(SimulatorHandle {
            state,
            base_url,
            local_addr,
            ca_pem,
            shutdown_sender,
            accept_task,
        })
    }
}

/// URL clients use: `https://localhost:PORT` with TLS on loopback, so the name matches the
/// certificate, otherwise the bound address.
fn base_url(address: SocketAddr, tls: bool) -> String {
    match (tls, address.ip().is_loopback()) {
        (true, true) => format!("https://localhost:{}", address.port()),
        (true, false) => format!("https://{address}"),
        (false, _) => format!("http://{address}"),
    }
}

/// A running simulator. Dropping the handle stops the listener as well.
pub struct SimulatorHandle {
    state: Arc<State>,
    base_url: String,
    local_addr: SocketAddr,
    ca_pem: Option<String>,
    shutdown_sender: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
}

impl SimulatorHandle {
    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` with TLS.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// PEM of the CA that signed the serving certificate, when TLS is on.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Returns every password call so far, in arrival order.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.state.ledger.password_calls()
    }

    /// Returns the password calls for one decoded user ID, in arrival order.
    pub fn ledger_for(&self, user_id: &str) -> Vec<LedgerEntry> {
        let mut entries = self.ledger();
        entries.retain(|entry| entry.user_id == user_id);
        entries
    }

    /// Number of applied password changes per user ID; users never changed are absent.
    pub fn ledger_applied_counts(&self) -> HashMap<String, u32> {
        self.state.ledger.applied_counts()
    }

    /// Returns every `GET /v3/users/{userid}` call so far.
    pub fn lookups(&self) -> Vec<LookupEntry> {
        self.state.ledger.lookups()
    }

    /// Returns every `GET /v1/authenticate` call so far.
    pub fn authentications(&self) -> Vec<AuthenticationEntry> {
        self.state.ledger.authentications()
    }

    /// Returns whether `password` is the current password of `user_id`.
    pub fn password_matches(&self, user_id: &str, password: &str) -> bool {
        self.state.directory.password_matches(user_id, password)
    }

    /// Highest number of MAS requests in progress at once so far.
    pub fn peak_concurrent_requests(&self) -> usize {
        self.state.peak_in_flight()
    }

    /// Replaces the fault plan.
    ///
    /// # Panics
    /// When the plan is invalid (a status outside 400..=599 or a rate outside 0.0..=1.0),
    /// because that is a mistake in the test; use [`FaultPlan::validate`] to check first.
    pub fn set_faults(&self, faults: FaultPlan) {
        if let Err(error) = faults.validate() {
            panic!("invalid fault plan: {error}");
        }
        self.state.set_faults(faults);
    }

    /// Replaces every user; passwords set before are forgotten, the ledger is kept.
    ///
    /// # Panics
    /// When a user id is empty or appears twice.
    pub fn set_users(&self, users: Vec<SimUser>) {
        if let Err(error) = config::validate_users(&users) {
            panic!("invalid users: {error}");
        }
        self.state.directory.replace(users);
    }

    /// Makes every JWT issued so far and every static token fail with 401. API keys keep
    /// working, so a client can authenticate again.
    pub fn revoke_tokens(&self) {
        self.state.credentials.revoke_all();
    }

    /// Stops accepting connections, lets open ones finish for up to 5 seconds, then closes
    /// them.
    pub async fn shutdown(self) {
        let _ = self.shutdown_sender.send(true);
        if let Err(error) = self.accept_task.await {
            tracing::warn!(%error, "the simulator accept task failed");
        }
        tracing::info!(base_url = self.base_url, "MAS simulator stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_uses_localhost_for_tls_on_loopback() {
        let loopback: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        assert_eq!(base_url(loopback, true), "https://localhost:8443");
        assert_eq!(base_url(loopback, false), "http://127.0.0.1:8443");

        let any: SocketAddr = "[::1]:9000".parse().unwrap();
        assert_eq!(base_url(any, false), "http://[::1]:9000");
    }
}
