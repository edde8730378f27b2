//! Simulator settings: users, credentials, latency, TLS and every behaviour MAS leaves
//! undocumented.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use super::faults::FaultPlan;
use super::policy::{PasswordPolicy, PolicyError};
use crate::secret::SecretString;

/// Settings of a simulator instance. A JSON config file for the `mas-simulator` binary has
/// the same fields (snake_case); every field is optional there.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Address to bind; `None` binds 127.0.0.1 on a free port.
    pub listen: Option<SocketAddr>,
    /// Serve HTTPS with a certificate for `localhost`, `127.0.0.1` and `::1`, signed by a CA
    /// generated at start.
    pub tls: bool,
    pub users: Vec<SimUser>,
    /// Pre-issued tokens, accepted in `x-access-token` as they are.
    pub tokens: Vec<StaticToken>,
    /// API keys that `/v1/authenticate` exchanges for a JWT.
    pub api_keys: Vec<ApiKey>,
    /// JWT lifetime when the request has no `mas-jwt-expiry-duration` header, in seconds.
    /// MAS does not document its default.
    pub jwt_lifetime_secs: u64,
    /// Fixed delay before every MAS response, in milliseconds.
    pub latency_ms: u64,
    /// Extra random delay, uniform in `0..=latency_jitter_ms` milliseconds.
    pub latency_jitter_ms: u64,
    pub policy: PasswordPolicy,
    /// Whether a `{}` body with `emailPassword=false` returns the generated password as
    /// `{"token": "..."}`. Unverified in MAS: a sibling endpoint does, so it is on by default.
    pub return_generated_password: bool,
    /// Body of a successful password call that returns no password.
    pub success_body: SuccessBody,
    /// Whether the message of an error response to a password call repeats the request's
    /// `x-access-token` and requested password, as a careless gateway might. For tests that
    /// a client cleans MAS error text before it shows it.
    pub echo_credentials_in_errors: bool,
    /// Status for setting a password of a user without a local identity (SSO-only).
    /// Unverified in MAS. The default is 409 because the request is well formed but
    /// conflicts with the user's state; 400 is the other plausible status.
    pub sso_user_status: u16,
    /// Status for `emailPassword=true` on a user without an e-mail address, or `None` to
    /// accept the call and send no mail. Unverified in MAS; the default is 400.
    pub missing_email_status: Option<u16>,
    /// Status for setting the password of an inactive user, or `None` to allow it.
    /// Unverified in MAS; allowed by default.
    pub inactive_user_status: Option<u16>,
    /// Maximum number of MAS requests in progress at once; a request beyond it gets 429.
    /// MAS documents no limit, so by default there is none.
    pub max_concurrent_requests: Option<usize>,
    /// Raw `Retry-After` value on a 429 from `max_concurrent_requests`; `None` sends none.
    pub concurrency_retry_after: Option<String>,
    /// Whether connections stay open between requests. With `false` every response closes
    /// the connection, so each request opens a new one and connection faults hit in order.
    pub keep_alive: bool,
    /// Time in seconds a client has to send the request head, counted from the connection
    /// start or the end of the previous response, so an idle keep-alive connection is
    /// closed after it. Clients that reuse pooled connections must expect that close.
    pub idle_timeout_secs: u64,
    /// Faults active from the start; replace them later with `SimulatorHandle::set_faults`.
    pub faults: FaultPlan,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            listen: None,
            tls: false,
            users: Vec::new(),
            tokens: Vec::new(),
            api_keys: Vec::new(),
            jwt_lifetime_secs: 3_600,
            latency_ms: 0,
            latency_jitter_ms: 0,
            policy: PasswordPolicy::default(),
            return_generated_password: true,
            success_body: SuccessBody::EmptyObject,
            echo_credentials_in_errors: false,
            sso_user_status: 409,
            missing_email_status: Some(400),
            inactive_user_status: None,
            max_concurrent_requests: None,
            concurrency_retry_after: Some("1".to_owned()),
            keep_alive: true,
            idle_timeout_secs: 30,
            faults: FaultPlan::default(),
        }
    }
}

/// Body of a successful password call when no generated password is returned. MAS does
/// not document it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuccessBody {
    /// `{}` with `Content-Type: application/json`.
    EmptyObject,
    /// No body at all (`Content-Length: 0`).
    Empty,
}

/// A user in the simulated directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUser {
    pub id: String,
    /// Whether the user has a local password login (`_local` identity); `false` is an
    /// SSO-only user.
    #[serde(default = "default_true")]
    pub local: bool,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default = "default_true")]
    pub active: bool,
}

impl SimUser {
    /// Builds an active local user with an e-mail address at example.com.
    pub fn local(id: impl Into<String>) -> Self {
        let id = id.into();
        Self {
            email: Some(format!("{id}@example.com")),
            id,
            local: true,
            active: true,
        }
    }

    /// Builds an active SSO-only user with an e-mail address at example.com.
    pub fn sso_only(id: impl Into<String>) -> Self {
        Self {
            local: false,
            ..Self::local(id)
        }
    }
}

/// A pre-issued token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticToken {
    #[serde(deserialize_with = "deserialize_secret")]
    pub token: SecretString,
    /// Whether the token carries the `userAdmin` permission.
    #[serde(default = "default_true")]
    pub user_admin: bool,
}

impl StaticToken {
    pub fn new(token: impl Into<String>, user_admin: bool) -> Self {
        Self {
            token: SecretString::new(token),
            user_admin,
        }
    }
}

/// An API key for `/v1/authenticate` (HTTP Basic: id as user name, token as password).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub id: String,
    #[serde(deserialize_with = "deserialize_secret")]
    pub token: SecretString,
    /// Whether JWTs issued for this key carry the `userAdmin` permission.
    #[serde(default = "default_true")]
    pub user_admin: bool,
}

impl ApiKey {
    pub fn new(id: impl Into<String>, token: impl Into<String>, user_admin: bool) -> Self {
        Self {
            id: id.into(),
            token: SecretString::new(token),
            user_admin,
        }
    }
}

fn default_true() -> bool {
    true
}

fn deserialize_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SecretString, D::Error> {
    String::deserialize(deserializer).map(SecretString::new)
}

/// Settings that cannot work.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{knob} is {status}, which is not an HTTP status from {min} to {max}")]
    InvalidStatus {
        knob: &'static str,
        status: u16,
        min: u16,
        max: u16,
    },
    #[error("idle_timeout_secs is 0; set at least 1 second")]
    ZeroIdleTimeout,
    #[error("user number {index} has an empty id")]
    EmptyUserId { index: usize },
    #[error("user id {id:?} appears more than once; user ids must be unique")]
    DuplicateUser { id: String },
    #[error("static token number {index} is empty")]
    EmptyToken { index: usize },
    #[error("API key id {id:?} is empty or contains ':', which HTTP Basic auth cannot carry")]
    InvalidApiKeyId { id: String },
    #[error("API key {id:?} has an empty token")]
    EmptyApiKeyToken { id: String },
    #[error("cannot read users file {path}: {source}")]
    UsersFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("users file {path} is not a CSV file with header id[,local,email,active]: {source}")]
    UsersFileParse { path: PathBuf, source: csv::Error },
    #[error("cannot read config file {path}: {source}")]
    ConfigFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid simulator JSON: {source}")]
    ConfigFileParse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl SimulatorConfig {
    /// Reads a JSON config file; missing fields keep their defaults.
    pub fn from_json_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ConfigFileRead {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ConfigError::ConfigFileParse {
            path: path.to_owned(),
            source,
        })
    }

    /// Checks the settings that would make the simulator misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy.validate()?;
        check_status("sso_user_status", self.sso_user_status, 400, 499)?;
        if let Some(status) = self.missing_email_status {
            check_status("missing_email_status", status, 400, 599)?;
        }
        if let Some(status) = self.inactive_user_status {
            check_status("inactive_user_status", status, 400, 599)?;
        }
        if self.idle_timeout_secs == 0 {
            return Err(ConfigError::ZeroIdleTimeout);
        }
        validate_users(&self.users)?;

        for (index, token) in self.tokens.iter().enumerate() {
            if token.token.is_empty() {
                return Err(ConfigError::EmptyToken { index });
            }
        }
        for key in &self.api_keys {
            if key.id.is_empty() || key.id.contains(':') {
                return Err(ConfigError::InvalidApiKeyId { id: key.id.clone() });
            }
            if key.token.is_empty() {
                return Err(ConfigError::EmptyApiKeyToken { id: key.id.clone() });
            }
        }
        Ok(())
    }
}

fn check_status(knob: &'static str, status: u16, min: u16, max: u16) -> Result<(), ConfigError> {
    if (min..=max).contains(&status) {
        Ok(())
    } else {
        Err(ConfigError::InvalidStatus {
            knob,
            status,
            min,
            max,
        })
    }
}

/// Checks that user ids are non-empty and unique.
pub fn validate_users(users: &[SimUser]) -> Result<(), ConfigError> {
    let mut seen = HashSet::with_capacity(users.len());
    for (index, user) in users.iter().enumerate() {
        if user.id.is_empty() {
            return Err(ConfigError::EmptyUserId { index });
        }
        if !seen.insert(user.id.as_str()) {
            return Err(ConfigError::DuplicateUser {
                id: user.id.clone(),
            });
        }
    }
    Ok(())
}

/// Generates `count` active local users `<prefix>-00001`, `<prefix>-00002`, … with an
/// e-mail address each.
pub fn generate_users(prefix: &str, count: usize) -> Vec<SimUser> {
    (1..=count)
        .map(|number| SimUser::local(format!("{prefix}-{number:05}")))
        .collect()
}

/// Reads users from a CSV file with header `id` and the optional columns `local`, `email`
/// and `active` (`true`/`false`, empty means `true`). Ids are taken as they are, untrimmed.
pub fn load_users_csv(path: &Path) -> Result<Vec<SimUser>, ConfigError> {
    let file = std::fs::File::open(path).map_err(|source| ConfigError::UsersFileRead {
        path: path.to_owned(),
        source,
    })?;
    let parse_error = |source| ConfigError::UsersFileParse {
        path: path.to_owned(),
        source,
    };
    read_users_csv(file).map_err(parse_error)
}

#[derive(Deserialize)]
struct UserRow {
    id: String,
    #[serde(default)]
    local: Option<bool>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    active: Option<bool>,
}

fn read_users_csv(reader: impl std::io::Read) -> Result<Vec<SimUser>, csv::Error> {
    let mut csv_reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(reader);

    let mut users = Vec::new();
    for row in csv_reader.deserialize::<UserRow>() {
        let row = row?;
        users.push(SimUser {
            id: row.id,
            local: row.local.unwrap_or(true),
            email: row.email.filter(|email| !email.is_empty()),
            active: row.active.unwrap_or(true),
        });
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_users_are_numbered() {
        let users = generate_users("user", 3);
        let ids: Vec<&str> = users.iter().map(|user| user.id.as_str()).collect();
        assert_eq!(ids, ["user-00001", "user-00002", "user-00003"]);
        assert!(users[0].local);
        assert_eq!(users[0].email.as_deref(), Some("user-00001@example.com"));
    }

    #[test]
    fn users_csv_reads_optional_columns() {
        let csv = "id,local,email,active\nalice,,alice@example.com,\nsso bob,false,,false\n";
        let users = read_users_csv(csv.as_bytes()).unwrap();
        assert_eq!(
            users,
            [
                SimUser {
                    id: "alice".to_owned(),
                    local: true,
                    email: Some("alice@example.com".to_owned()),
                    active: true,
                },
                SimUser {
                    id: "sso bob".to_owned(),
                    local: false,
                    email: None,
                    active: false,
                },
            ]
        );
    }

    #[test]
    fn users_csv_with_id_column_only() {
        let users = read_users_csv("id\n007\nops/admin\n".as_bytes()).unwrap();
        assert_eq!(
            users[0],
            SimUser {
                id: "007".to_owned(),
                local: true,
                email: None,
                active: true,
            }
        );
        assert_eq!(users[1].id, "ops/admin");
    }

    #[test]
    fn validate_rejects_duplicates_and_bad_keys() {
        let mut config = SimulatorConfig {
            users: vec![SimUser::local("a"), SimUser::local("a")],
            ..SimulatorConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::DuplicateUser { id }) if id == "a"
        ));

        config.users.pop();
        config.api_keys = vec![ApiKey::new("bad:id", "t", true)];
        assert!(matches!(
            config.validate(),
            Err(ConfigError::InvalidApiKeyId { .. })
        ));

        config.api_keys.clear();
        config.sso_user_status = 200;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::InvalidStatus {
                knob: "sso_user_status",
                ..
            })
        ));
    }

    #[test]
    fn json_config_keeps_defaults_and_hides_secrets() {
        let json = r#"{"latency_ms": 20, "tokens": [{"token": "hunter2-token"}],
            "api_keys": [{"id": "k1", "token": "hunter2-key", "user_admin": false}]}"#;
        let config: SimulatorConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.latency_ms, 20);
        assert_eq!(config.jwt_lifetime_secs, 3_600);
        assert!(config.tokens[0].user_admin);
        assert!(!config.api_keys[0].user_admin);

        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn json_config_rejects_unknown_fields() {
        let result: Result<SimulatorConfig, _> = serde_json::from_str(r#"{"latency": 20}"#);
        assert!(result.is_err());
    }
}
