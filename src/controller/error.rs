//! Errors of the controller. Each names the object, the failed step and the
//! fix, because its text reaches status conditions, Events and the log.

/// Problems with the resource's inputs: the user must change something.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A referenced Secret does not exist.
    #[error(
        "Secret {namespace}/{name} ({purpose}) was not found; create it in the namespace of the BulkPasswordReset"
    )]
    SecretNotFound {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// Purpose of the Secret, in words.
        purpose: &'static str,
    },
    /// A referenced ConfigMap does not exist.
    #[error(
        "ConfigMap {namespace}/{name} ({purpose}) was not found; create it in the namespace of the BulkPasswordReset"
    )]
    ConfigMapNotFound {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
        /// Purpose of the ConfigMap, in words.
        purpose: &'static str,
    },
    /// A referenced key is missing from its object.
    #[error("{object} has no key {key:?} ({purpose}); keys found: {found}")]
    KeyNotFound {
        /// The object, as `Secret <namespace>/<name>` or `ConfigMap ...`.
        object: String,
        /// The missing key.
        key: String,
        /// Purpose of the key, in words.
        purpose: &'static str,
        /// Keys that the object has, comma separated.
        found: String,
    },
    /// A value that must be text is not valid UTF-8 or is empty.
    #[error(
        "{object} key {key:?} ({purpose}) is empty, not UTF-8 text, or contains a line break or control character; store the value as plain text on one line"
    )]
    InvalidValue {
        /// The object, as `Secret <namespace>/<name>`.
        object: String,
        /// The key.
        key: String,
        /// Purpose of the key, in words.
        purpose: &'static str,
    },
    /// The user list cannot be read at all.
    #[error("the user list cannot be read: {0}")]
    UserList(Box<crate::userlist::ListError>),
    /// The list has no user to send.
    #[error(
        "the user list has no valid user ID ({rejected} rows rejected, {skipped} blank rows); check the column name and the rows listed in status.rejectedRows"
    )]
    NoUsers {
        /// Rows rejected.
        rejected: usize,
        /// Blank rows skipped.
        skipped: u64,
    },
    /// `masApiUrl` is not a usable URL.
    #[error(
        "spec.masApiUrl {url:?} is invalid: {detail}; use a URL such as https://api.inst1.mas.example.com"
    )]
    InvalidUrl {
        /// The URL as written.
        url: String,
        /// Description of the problem.
        detail: String,
    },
    /// The operator's allowlist does not contain the host.
    #[error(
        "MAS host {host:?} is not in the operator's allowed hosts ({allowed}); ask the operator's administrators to add it to --allowed-hosts"
    )]
    HostNotAllowed {
        /// Host of masApiUrl.
        host: String,
        /// The allowlist, comma separated.
        allowed: String,
    },
    /// The MAS client could not be built (for example an unreadable CA bundle).
    #[error("the MAS client could not be set up: {0}")]
    Client(String),
    /// The settings of mode `Random` allow no password.
    #[error("{detail}")]
    InvalidPasswordSettings {
        /// The field, its value and the fix.
        detail: String,
    },
    /// A password Secret of the run exists but belongs to someone else.
    #[error(
        "Secret {namespace}/{name} exists and is not owned by this BulkPasswordReset, so the operator does not store passwords in it; delete or rename that Secret, or create the BulkPasswordReset with another spec.password.random.outputSecretName"
    )]
    PasswordSecretNotOwned {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
    },
}

impl InputError {
    /// Short `PascalCase` reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretNotFound { .. } => "SecretNotFound",
            Self::ConfigMapNotFound { .. } => "ConfigMapNotFound",
            Self::KeyNotFound { .. } => "KeyNotFound",
            Self::InvalidValue { .. } => "InvalidValue",
            Self::UserList(_) => "InvalidUserList",
            Self::NoUsers { .. } => "NoUsers",
            Self::InvalidUrl { .. } => "InvalidMasApiUrl",
            Self::HostNotAllowed { .. } => "HostNotAllowed",
            Self::Client(_) => "InvalidTlsSettings",
            Self::InvalidPasswordSettings { .. } => "InvalidPasswordSettings",
            Self::PasswordSecretNotOwned { .. } => "PasswordSecretConflict",
        }
    }
}

/// Errors a reconcile returns to the controller runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{step} failed for BulkPasswordReset {namespace}/{name}: {source}")]
    Kube {
        /// Step that failed.
        step: &'static str,
        /// Namespace of the resource.
        namespace: String,
        /// Name of the resource.
        name: String,
        /// The client error.
        source: kube::Error,
    },
    /// The finalizer helper failed.
    #[error("finalizer step failed: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The object has no namespace or name; the API server never sends one.
    #[error("BulkPasswordReset without namespace or name")]
    MissingObjectKey,
}

impl Error {
    /// Short reason, for the `reconcile_errors` metric.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Self::Kube { step, .. } => step,
            Self::Finalizer(_) => "finalizer",
            Self::MissingObjectKey => "missing_object_key",
        }
    }
}
