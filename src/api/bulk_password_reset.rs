//! `BulkPasswordReset`: one run of password resets for a list of MAS users.
//!
//! Optional spec fields stay `None` when the user leaves them out: the
//! operator applies defaults in code and never writes them back into spec, so
//! a GitOps tool sees no drift between its manifest and the live object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of one bulk password reset run.
///
/// Everything except `suspend`, `concurrency`, `requestsPerSecond` and
/// `retryUnknown` is immutable after creation, because a run that changed its list or target
/// half way could not promise that every user is reset at most once. To reset
/// the same users again, create a resource with a new name.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "masreset.dev",
    version = "v1alpha1",
    kind = "BulkPasswordReset",
    doc = "One run of MAS password resets for the users of a list; each user is reset at most once",
    plural = "bulkpasswordresets",
    shortname = "bpr",
    namespaced,
    status = "BulkPasswordResetStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Done","type":"integer","jsonPath":".status.counts.done"}"#,
    printcolumn = r#"{"name":"Total","type":"integer","jsonPath":".status.counts.total"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.counts.failed"}"#,
    printcolumn = r#"{"name":"Unknown","type":"integer","priority":1,"jsonPath":".status.counts.unknown"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("self.masApiUrl == oldSelf.masApiUrl && self.credentials == oldSelf.credentials && self.userList == oldSelf.userList && (has(self.password) ? (has(oldSelf.password) && self.password == oldSelf.password) : !has(oldSelf.password)) && (has(self.emailPassword) ? (has(oldSelf.emailPassword) && self.emailPassword == oldSelf.emailPassword) : !has(oldSelf.emailPassword)) && (has(self.tls) ? (has(oldSelf.tls) && self.tls == oldSelf.tls) : !has(oldSelf.tls)) && (has(self.dryRun) ? (has(oldSelf.dryRun) && self.dryRun == oldSelf.dryRun) : !has(oldSelf.dryRun)) && (has(self.maxAttempts) ? (has(oldSelf.maxAttempts) && self.maxAttempts == oldSelf.maxAttempts) : !has(oldSelf.maxAttempts)) && (has(self.maxFailures) ? (has(oldSelf.maxFailures) && self.maxFailures == oldSelf.maxFailures) : !has(oldSelf.maxFailures)) && (has(self.allowInsecureHttp) ? (has(oldSelf.allowInsecureHttp) && self.allowInsecureHttp == oldSelf.allowInsecureHttp) : !has(oldSelf.allowInsecureHttp)) && (has(self.requestTimeoutSeconds) ? (has(oldSelf.requestTimeoutSeconds) && self.requestTimeoutSeconds == oldSelf.requestTimeoutSeconds) : !has(oldSelf.requestTimeoutSeconds))")
        .message("spec is immutable except suspend, concurrency, requestsPerSecond and retryUnknown: create a BulkPasswordReset with a new name for a new run"),
    validation = Rule::new("self.masApiUrl.startsWith('https://') || (has(self.allowInsecureHttp) && self.allowInsecureHttp && self.masApiUrl.startsWith('http://'))")
        .message("masApiUrl must start with https:// (set allowInsecureHttp: true to allow http:// for a test endpoint)")
)]
#[serde(rename_all = "camelCase")]
pub struct BulkPasswordResetSpec {
    /// Base URL of the MAS API, for example `https://api.inst1.mas.example.com`
    /// or, inside the cluster, `https://coreapi.mas-inst1-core.svc.cluster.local`.
    #[x_kube(validation = Rule::new("self.size() <= 2048").message("masApiUrl must be at most 2048 characters"))]
    pub mas_api_url: String,

    /// Secret in this namespace with the MAS credentials.
    pub credentials: CredentialsRef,

    /// ConfigMaps in this namespace with the list of user IDs.
    pub user_list: UserListSpec,

    /// How the new password is chosen. Default: MAS generates one per user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSpec>,

    /// Whether MAS e-mails the new password to the user (`emailPassword` query
    /// parameter). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_password: Option<bool>,

    /// Password requests in flight at once. Default: 4. May change during a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 256").message("concurrency must be between 1 and 256"))]
    pub concurrency: Option<i32>,

    /// Upper limit of password requests per second for the whole run.
    /// Default: no limit. May change during a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10000").message("requestsPerSecond must be between 1 and 10000"))]
    pub requests_per_second: Option<i32>,

    /// Maximum attempts per user for failures that are safe to retry
    /// (connection refused, TLS handshake, 429, 503). Default: 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 20").message("maxAttempts must be between 1 and 20"))]
    pub max_attempts: Option<i32>,

    /// Stop the run after this many users failed, like newman's `--bail`.
    /// Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("maxFailures must be at least 1"))]
    pub max_failures: Option<i32>,

    /// Pause the run (true) or let it go on (false). Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// Send again to users whose earlier request may have reached MAS without
    /// a recorded response (result `Unknown`). Default: false, because a second
    /// request sends the user a second e-mail and a second new password.
    /// Setting it to true on a finished run sends its Unknown users again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_unknown: Option<bool>,

    /// Check that every user exists (`GET /v3/users/{id}`) and report who
    /// would be reset, without sending any password request. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,

    /// TLS settings for the MAS API connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Allow an `http://` masApiUrl. Only for test endpoints: the token then
    /// crosses the network in clear text. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure_http: Option<bool>,

    /// Seconds to wait for one MAS response before its outcome is `Unknown`.
    /// Default: 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 600").message("requestTimeoutSeconds must be between 1 and 600"))]
    pub request_timeout_seconds: Option<i32>,
}

/// Reference to the Secret with the MAS credentials: either a pre-issued
/// token (`tokenKey`) or an API key (`apiKeyIdKey` and `apiKeyTokenKey`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.tokenKey) != (has(self.apiKeyIdKey) && has(self.apiKeyTokenKey))")
        .message("set either tokenKey, or both apiKeyIdKey and apiKeyTokenKey"),
    validation = Rule::new("has(self.apiKeyIdKey) == has(self.apiKeyTokenKey)")
        .message("apiKeyIdKey and apiKeyTokenKey go together")
)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRef {
    /// Name of a Secret in the resource's namespace.
    pub secret_name: String,

    /// Key whose value is an `x-access-token` issued by MAS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key: Option<String>,

    /// Key whose value is the API key id (Basic auth user name of
    /// `GET /v1/authenticate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id_key: Option<String>,

    /// Key whose value is the API key token (Basic auth password of
    /// `GET /v1/authenticate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_token_key: Option<String>,
}

/// Where the user list comes from and how to read it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserListSpec {
    /// ConfigMap keys with the list, read in this order. A list larger than
    /// one ConfigMap (1 MiB) is split over several keys or ConfigMaps, each
    /// part with its own header row. Both `data` and `binaryData` are read.
    #[x_kube(validation = Rule::new("self.size() >= 1 && self.size() <= 256").message("userList.sources must have between 1 and 256 entries"))]
    pub sources: Vec<ConfigMapKeyRef>,

    /// Header of the column with the user IDs, matched without regard to case
    /// or surrounding spaces. Default: `userid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,

    /// The list has no header row: every non-blank line is one user ID.
    /// Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headerless: Option<bool>,
}

/// One key of a ConfigMap in the resource's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// ConfigMap name.
    pub config_map_name: String,
    /// Key in `data` or `binaryData`.
    pub key: String,
}

/// One key of a Secret or ConfigMap in the resource's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.secretName) != has(self.configMapName)").message("set exactly one of secretName and configMapName"))]
#[serde(rename_all = "camelCase")]
pub struct ObjectKeyRef {
    /// Secret name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// ConfigMap name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,
    /// Key in the object's data.
    pub key: String,
}

/// How the new password of each user is chosen.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.mode != 'Fixed' || has(self.secretKeyRef)").message("mode Fixed needs secretKeyRef"),
    validation = Rule::new("self.mode == 'Fixed' || !has(self.secretKeyRef)").message("secretKeyRef is only used with mode Fixed"),
    validation = Rule::new("self.mode == 'Random' || !has(self.random)").message("random is only used with mode Random")
)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSpec {
    /// `MasGenerated` (body `{}`: MAS picks a password), `Fixed` (one
    /// password from a Secret for every user) or `Random` (the operator
    /// generates one per user and stores it in output Secrets before it
    /// sends it). With `MasGenerated` and `emailPassword: false`, the
    /// passwords MAS returns are stored in the same output Secrets.
    pub mode: PasswordMode,

    /// Secret key with the password for mode `Fixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,

    /// Settings for mode `Random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<RandomPasswordSpec>,
}

/// Password mode.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PasswordMode {
    /// MAS generates the password (request body `{}`).
    #[default]
    MasGenerated,
    /// One password from a Secret for every user.
    Fixed,
    /// A random password per user, generated by the operator.
    Random,
}

/// One key of a Secret in the resource's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key in the Secret's data.
    pub key: String,
}

/// Policy of generated passwords; match it to the MAS password policy.
///
/// Each password is drawn from the operating system's random number
/// generator: the minimum of each class first, the rest from all allowed
/// characters, then shuffled. A password that contains the user ID (in any
/// letter case) is drawn again.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RandomPasswordSpec {
    /// Password length. Default: 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 8 && self <= 128").message("random.length must be between 8 and 128"))]
    pub length: Option<i32>,
    /// Minimum upper-case letters (A-Z). Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 128").message("random.minUpper must be between 0 and 128"))]
    pub min_upper: Option<i32>,
    /// Minimum lower-case letters (a-z). Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 128").message("random.minLower must be between 0 and 128"))]
    pub min_lower: Option<i32>,
    /// Minimum digits (0-9). Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 128").message("random.minDigits must be between 0 and 128"))]
    pub min_digits: Option<i32>,
    /// Minimum special characters. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 128").message("random.minSpecial must be between 0 and 128"))]
    pub min_special: Option<i32>,
    /// Special characters to draw from: printable ASCII characters other
    /// than letters and digits. Empty allows none. Default: `!#$%&*+-.:=?@_~`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_characters: Option<String>,
    /// Base name of the Secrets, owned by this resource, that store the
    /// passwords. A list of up to 1000 users has one Secret of this name;
    /// a longer list has `<name>-00000`, `<name>-00001`, and so on, 1000
    /// users each. Default: `<resource name>-passwords`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() <= 240 && self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("random.outputSecretName must be a lowercase DNS subdomain name of at most 240 characters"))]
    pub output_secret_name: Option<String>,
}

/// TLS settings for the MAS API connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// PEM bundle of the CA that signed the MAS API certificate, for example
    /// `ca.crt` of Secret `<instance>-coreapi-cert-internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<ObjectKeyRef>,

    /// Skip certificate verification. Unsafe: anyone on the path can read the
    /// token. The operator raises a Warning Event when it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
}

/// Observed state of a run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BulkPasswordResetStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Summary of the run: Pending, Running, Paused, Succeeded,
    /// PartiallyFailed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Conditions `Ready`, `Reconciling` and `Stalled`, following the
    /// Kubernetes API conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// When the first request of the run was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the run reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Users by result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,

    /// Durable progress marks that make the run resumable without sending
    /// twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,

    /// Users that did not succeed, and every user when the list is small;
    /// capped so that status stays small. The complete table is in the
    /// ConfigMaps named by `results`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserOutcome>,

    /// Users left out of `users` because of its cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_omitted: Option<i64>,

    /// Rows of the user list that were not sent, with the reason; capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_rows: Vec<RejectedRow>,

    /// Where the complete per-user result table is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<ResultsRef>,
}

/// Phase of a run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Inputs are being read or checked.
    Pending,
    /// Requests are being sent.
    Running,
    /// Suspended by `spec.suspend`, or waiting for valid credentials or for
    /// a TLS handshake with MAS that succeeds.
    Paused,
    /// Every user was reset.
    Succeeded,
    /// The run ended and some users failed or have an unknown outcome.
    PartiallyFailed,
    /// The run could not run, or stopped at `maxFailures`.
    Failed,
}

/// Users by result.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Distinct valid user IDs in the list.
    pub total: i64,
    /// Users with a final result (succeeded, failed or unknown).
    pub done: i64,
    /// Users reset (or found, in a dry run).
    pub succeeded: i64,
    /// Users whose reset failed with a known response.
    pub failed: i64,
    /// Users whose request may have reached MAS without a recorded answer.
    pub unknown: i64,
    /// Users not sent because the run stopped first.
    pub not_sent: i64,
    /// Blank or separator-only rows skipped.
    pub skipped: i64,
    /// Rows rejected because the value cannot be a user ID.
    pub rejected: i64,
    /// Rows that repeat an earlier user ID; each user is sent once.
    pub duplicates: i64,
}

/// Durable progress marks.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// SHA-256 of the parsed user list; a run refuses to resume on a list
    /// that changed.
    pub list_digest: String,
    /// Users before this position in the list may have been sent. Written
    /// before they are sent.
    pub claimed: i64,
    /// Users whose outcome is stored in the result ConfigMaps.
    pub recorded: i64,
    /// Operator instance that runs the sends; a write from another instance
    /// makes this one stop, so two instances never send for the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Users whose outcome was recovered as `Unknown` after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_unknown: Option<i64>,
}

/// Final outcome of one user.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserOutcome {
    /// User ID as given in the list.
    pub user_id: String,
    /// Row in its source (the header is row 1, as a spreadsheet counts).
    pub row: i64,
    /// Result of the user.
    pub result: UserResult,
    /// HTTP status of the last answer, if one arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// MAS error id of the last answer, for example `AIUCO1022E`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
    /// Cleaned and shortened error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Requests sent for this user.
    pub attempts: i32,
}

/// Result of one user.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserResult {
    /// Password reset (or, in a dry run, the user exists).
    Succeeded,
    /// MAS answered with an error, or the request provably never reached it.
    Failed,
    /// The request may have reached MAS but no answer was recorded.
    Unknown,
    /// Not sent because the run stopped before this user.
    NotSent,
}

/// A row that was not sent.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RejectedRow {
    /// Source as `<configmap>/<key>`.
    pub source: String,
    /// Row in its source (the header is row 1).
    pub row: i64,
    /// Why the row was not sent and what to do.
    pub reason: String,
}

/// Location of the per-user result table. It names no ConfigMap one by one,
/// so its size does not grow with the list.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResultsRef {
    /// Number of result ConfigMaps, owned by this resource and named
    /// `<name>-results-00000`, `<name>-results-00001` and so on in list
    /// order. Each stores the results of 400 consecutive users as JSON
    /// lines under key `results.jsonl`.
    pub config_map_count: i64,
    /// Label selector of the result ConfigMaps, for
    /// `kubectl get configmaps -l`.
    pub label_selector: String,
    /// Secrets, owned by this resource, in list order, with the new
    /// passwords: generated by the operator in mode `Random`, or returned
    /// by MAS when it generates them and `emailPassword` is false. Each
    /// stores JSON lines `{"index", "userId", "password"}` under key
    /// `passwords.jsonl`. When the run ends, only users with result
    /// `Succeeded` or `Unknown` are left in them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub password_secrets: Vec<String>,
}
