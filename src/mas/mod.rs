//! TEMPORARY stub so the run engine compiles before the client lands.
pub mod path;
use crate::secret::SecretString;
use std::time::{Duration, SystemTime};
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub base_url: String,
    pub ca_bundle_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    pub allow_http: bool,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_idle_per_host: usize,
}
#[derive(Clone)]
pub struct MasClient;
#[derive(Debug, thiserror::Error)]
#[error("client")]
pub struct ClientError;
impl MasClient {
    pub fn new(_c: ClientConfig) -> Result<Self, ClientError> {
        todo!()
    }
    pub async fn reset_password(
        &self,
        _u: &str,
        _b: &PasswordBody,
        _e: bool,
        _t: &SecretString,
    ) -> Attempt {
        todo!()
    }
    pub async fn get_user(&self, _u: &str, _t: &SecretString) -> Attempt {
        todo!()
    }
}
pub enum PasswordBody {
    MasGenerated,
    Password(SecretString),
}
#[derive(Debug)]
pub enum Attempt {
    Answered {
        status: u16,
        error: Option<MasError>,
        retry_after: Option<String>,
        generated_password: Option<SecretString>,
    },
    NotSent {
        kind: u8,
        detail: String,
    },
    Indeterminate {
        kind: u8,
        detail: String,
    },
}
#[derive(Debug, Clone)]
pub struct MasError {
    pub id: Option<String>,
    pub message: Option<String>,
}
pub enum Credentials {
    Token(SecretString),
    ApiKey {
        id: SecretString,
        token: SecretString,
    },
}
#[derive(Clone)]
pub struct TokenProvider;
pub enum RenewOutcome {
    Renewed,
}
#[derive(Debug, thiserror::Error, Clone)]
pub enum AuthError {
    #[error("rejected")]
    TokenRejected,
    #[error("x")]
    Unreachable { detail: String },
}
impl TokenProvider {
    pub fn new(_c: MasClient, _cr: Credentials) -> Self {
        todo!()
    }
    pub async fn token(&self) -> Result<SecretString, AuthError> {
        todo!()
    }
    pub async fn on_unauthorized(&self, _r: &SecretString) -> Result<RenewOutcome, AuthError> {
        todo!()
    }
}
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub retry_indeterminate: bool,
}
impl Default for RetryPolicy {
    fn default() -> Self {
        todo!()
    }
}
pub enum Decision {
    Succeeded,
    Failed,
    Unknown,
    RetryAfter(Duration),
    Unauthorized,
}
pub fn decide(_p: &RetryPolicy, _n: u32, _a: &Attempt, _now: SystemTime, _j: f64) -> Decision {
    todo!()
}
