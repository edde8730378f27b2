//! mas-reset-operator: resets IBM Maximo Application Suite passwords in bulk
//! from a `BulkPasswordReset` custom resource.
//!
//! The domain core (`userlist`, `mas`, `password`, `run`) has no Kubernetes
//! types and is tested on its own; `api` holds the Kubernetes types and `controller`
//! joins the two. `simulator` is the MAS API stand-in for tests and demos.

pub mod api;
pub mod cli;
pub mod controller;
pub mod http;
pub mod mas;
pub mod metrics;
pub mod password;
pub mod run;
pub mod secret;
pub mod simulator;
pub mod telemetry;
pub mod userlist;

/// Selects ring as the process-wide rustls provider, so that every TLS
/// client (kube, reqwest and the MAS client) uses the same one.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
