//! Reads what a run needs from the cluster: credentials, the user list, the
//! password and the TLS settings. Only objects in the resource's own
//! namespace are read.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::error::InputError;
use crate::api::{BulkPasswordReset, ObjectKeyRef, PasswordMode, RandomPasswordSpec};
use crate::mas::{ClientConfig, Credentials, PasswordBody};
use crate::password::{self, ClassMinimums, PasswordRules};
use crate::secret::SecretString;
use crate::userlist::{self, ParseOptions, Source, UserList};

/// Default seconds to wait for one MAS response.
const DEFAULT_REQUEST_TIMEOUT_SECONDS: i32 = 30;

/// Maximum time for the TCP connect plus TLS handshake of one request.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a run reads from the cluster before it sends anything.
pub struct RunInputs {
    /// The parsed user list.
    pub users: UserList,
    /// Source names as `<configmap>/<key>`, in spec order.
    pub source_names: Vec<String>,
    /// MAS credentials.
    pub credentials: Credentials,
    /// `resourceVersion` of the credentials Secret, to notice a replaced token.
    pub credentials_version: String,
    /// Source of each user's new password.
    pub password: NewPasswords,
    /// Settings of the MAS client.
    pub client_config: ClientConfig,
}

/// Source of each user's new password.
#[derive(Debug)]
pub enum NewPasswords {
    /// The same request body for every user: `{}` (mode `MasGenerated`) or
    /// one password from a Secret (mode `Fixed`).
    SameBody(PasswordBody),
    /// A password per user that the operator generates (mode `Random`).
    Random(PasswordRules),
}

/// Error from reading the inputs.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The user must fix an input.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The API server failed; retry later.
    #[error("reading inputs from the API server failed: {0}")]
    Kube(#[from] kube::Error),
}

/// Hosts the operator may call, from `--allowed-hosts`. Empty allows any.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// Parses a comma separated list of host names; `*.example.com` allows
    /// every subdomain of example.com.
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(|host| host.trim().to_ascii_lowercase())
                .filter(|host| !host.is_empty())
                .collect(),
        )
    }

    /// Returns whether `host` may be called.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|allowed| match allowed.strip_prefix("*.") {
                    Some(suffix) => host.ends_with(&format!(".{suffix}")),
                    None => *allowed == host,
                })
    }

    fn describe(&self) -> String {
        self.0.join(",")
    }
}

/// Reads the credentials Secret and returns the credentials and the
/// Secret's `resourceVersion`.
pub async fn load_credentials(
    client: &Client,
    resource: &BulkPasswordReset,
) -> Result<(Credentials, String), LoadError> {
    let namespace = namespace_of(resource);
    let reference = &resource.spec.credentials;
    let secret = get_secret(
        client,
        &namespace,
        &reference.secret_name,
        "MAS credentials",
    )
    .await?;
    let version = secret.metadata.resource_version.clone().unwrap_or_default();

    let credentials = match (
        &reference.token_key,
        &reference.api_key_id_key,
        &reference.api_key_token_key,
    ) {
        (Some(token_key), _, _) => Credentials::Token(secret_value(
            &secret,
            &namespace,
            token_key,
            "x-access-token",
        )?),
        (None, Some(id_key), Some(token_key)) => Credentials::ApiKey {
            id: secret_value(&secret, &namespace, id_key, "API key id")?,
            token: secret_value(&secret, &namespace, token_key, "API key token")?,
        },
        // The CRD's validation rules reject every other combination.
        _ => {
            return Err(InputError::KeyNotFound {
                object: format!("Secret {namespace}/{}", reference.secret_name),
                key: "tokenKey".to_owned(),
                purpose: "spec.credentials needs tokenKey or apiKeyIdKey and apiKeyTokenKey",
                found: String::new(),
            }
            .into());
        }
    };
    Ok((credentials, version))
}

/// Reads every input of a run.
pub async fn load(
    client: &Client,
    resource: &BulkPasswordReset,
    allowed_hosts: &AllowedHosts,
) -> Result<RunInputs, LoadError> {
    let namespace = namespace_of(resource);
    let spec = &resource.spec;

    let client_config = client_config(client, resource, allowed_hosts).await?;
    let (credentials, credentials_version) = load_credentials(client, resource).await?;

    let mode = spec
        .password
        .as_ref()
        .map(|password| password.mode)
        .unwrap_or_default();
    let password = match (
        mode,
        spec.password
            .as_ref()
            .and_then(|p| p.secret_key_ref.as_ref()),
    ) {
        (PasswordMode::Fixed, Some(reference)) => {
            let secret = get_secret(client, &namespace, &reference.name, "password").await?;
            NewPasswords::SameBody(PasswordBody::Password(secret_value(
                &secret,
                &namespace,
                &reference.key,
                "password",
            )?))
        }
        (PasswordMode::Random, _) => {
            let random = spec.password.as_ref().and_then(|p| p.random.as_ref());
            NewPasswords::Random(password_rules(random)?)
        }
        // The CRD's validation rules reject mode Fixed without secretKeyRef.
        _ => NewPasswords::SameBody(PasswordBody::MasGenerated),
    };

    let (users, source_names) = load_user_list(client, resource).await?;
    if users.users.is_empty() {
        return Err(InputError::NoUsers {
            rejected: users.rejected.len(),
            skipped: users.skipped_rows,
        }
        .into());
    }

    Ok(RunInputs {
        users,
        source_names,
        credentials,
        credentials_version,
        password,
        client_config,
    })
}

/// Builds the generator rules of mode `Random`, with the documented
/// defaults for fields left out.
fn password_rules(random: Option<&RandomPasswordSpec>) -> Result<PasswordRules, InputError> {
    let count = |field: &'static str, value: Option<i32>, default: usize| match value {
        None => Ok(default),
        Some(value) => usize::try_from(value).map_err(|_| InputError::InvalidPasswordSettings {
            detail: format!("spec.password.random.{field} is {value}; set it to 0 or more"),
        }),
    };
    let length = count(
        "length",
        random.and_then(|r| r.length),
        password::DEFAULT_LENGTH,
    )?;
    let minimums = ClassMinimums {
        upper: count("minUpper", random.and_then(|r| r.min_upper), 1)?,
        lower: count("minLower", random.and_then(|r| r.min_lower), 1)?,
        digits: count("minDigits", random.and_then(|r| r.min_digits), 1)?,
        special: count("minSpecial", random.and_then(|r| r.min_special), 1)?,
    };
    let special = random
        .and_then(|r| r.special_characters.as_deref())
        .unwrap_or(password::DEFAULT_SPECIAL_CHARACTERS);

    PasswordRules::new(length, minimums, special).map_err(|error| {
        InputError::InvalidPasswordSettings {
            detail: format!("spec.password.{error}"),
        }
    })
}

/// Reads and parses every user-list source, in spec order.
async fn load_user_list(
    client: &Client,
    resource: &BulkPasswordReset,
) -> Result<(UserList, Vec<String>), LoadError> {
    let namespace = namespace_of(resource);
    let spec = &resource.spec.user_list;

    let mut contents = Vec::with_capacity(spec.sources.len());
    let mut names = Vec::with_capacity(spec.sources.len());
    for source in &spec.sources {
        let config_map =
            get_config_map(client, &namespace, &source.config_map_name, "user list").await?;
        let bytes = config_map_value(&config_map, &namespace, &source.key, "user list")?;
        names.push(format!("{}/{}", source.config_map_name, source.key));
        contents.push(bytes);
    }

    let sources: Vec<Source<'_>> = names
        .iter()
        .zip(&contents)
        .map(|(name, bytes)| Source {
            name: name.clone(),
            bytes,
        })
        .collect();
    let mut options = ParseOptions::default();
    if let Some(column) = &spec.column {
        options.column = column.clone();
    }
    options.headerless = spec.headerless.unwrap_or(false);

    let users = userlist::parse_sources(&sources, &options)
        .map_err(|error| InputError::UserList(Box::new(error)))?;
    Ok((users, names))
}

/// Builds the MAS client settings: URL checks, allowlist and TLS trust.
async fn client_config(
    client: &Client,
    resource: &BulkPasswordReset,
    allowed_hosts: &AllowedHosts,
) -> Result<ClientConfig, LoadError> {
    let namespace = namespace_of(resource);
    let spec = &resource.spec;
    let allow_http = spec.allow_insecure_http.unwrap_or(false);

    let shown_url = redact_url(&spec.mas_api_url);
    let url = reqwest::Url::parse(&spec.mas_api_url).map_err(|error| InputError::InvalidUrl {
        url: shown_url.clone(),
        detail: error.to_string(),
    })?;
    let scheme_ok = url.scheme() == "https" || (allow_http && url.scheme() == "http");
    if !scheme_ok {
        return Err(InputError::InvalidUrl {
            url: shown_url,
            detail: "the scheme must be https (or http with allowInsecureHttp: true)".to_owned(),
        }
        .into());
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(InputError::InvalidUrl {
            url: shown_url,
            detail: "the URL must not contain credentials, a query or a fragment; put credentials in the credentials Secret".to_owned(),
        }
        .into());
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    if !allowed_hosts.allows(&host) {
        return Err(InputError::HostNotAllowed {
            host,
            allowed: allowed_hosts.describe(),
        }
        .into());
    }

    let tls = spec.tls.as_ref();
    let ca_bundle_pem = match tls.and_then(|tls| tls.ca_bundle.as_ref()) {
        Some(reference) => Some(read_object_key(client, &namespace, reference).await?),
        None => None,
    };

    let timeout_seconds = spec
        .request_timeout_seconds
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECONDS);
    let request_timeout = Duration::from_secs(timeout_seconds.max(1) as u64);
    Ok(ClientConfig {
        base_url: spec.mas_api_url.trim_end_matches('/').to_owned(),
        ca_bundle_pem,
        insecure_skip_tls_verify: tls
            .and_then(|tls| tls.insecure_skip_tls_verify)
            .unwrap_or(false),
        allow_http,
        request_timeout,
        connect_timeout: connect_timeout(request_timeout),
        max_idle_per_host: spec.concurrency.unwrap_or(4).max(1) as usize,
    })
}

/// Returns `url` for messages, with user information (`user:password@`),
/// query and fragment replaced by `[redacted]`, because a URL written with
/// credentials in it must not carry them into status, Events and logs. Works
/// on text that does not parse as a URL, too.
fn redact_url(url: &str) -> String {
    const REDACTED: &str = "[redacted]";

    let (before_fragment, fragment) = match url.split_once('#') {
        Some((head, _)) => (head, Some(REDACTED)),
        None => (url, None),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((head, _)) => (head, Some(REDACTED)),
        None => (before_fragment, None),
    };

    let authority_start = before_query.find("://").map_or(0, |index| index + 3);
    let (scheme, rest) = before_query.split_at(authority_start);
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let mut shown = scheme.to_owned();
    match authority.rfind('@') {
        Some(at) => {
            shown.push_str(REDACTED);
            shown.push_str(&authority[at..]);
        }
        None => shown.push_str(authority),
    }
    shown.push_str(path);

    if let Some(query) = query {
        shown.push('?');
        shown.push_str(query);
    }
    if let Some(fragment) = fragment {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

/// Returns the connect timeout for `request_timeout`: at most
/// [`MAX_CONNECT_TIMEOUT`] and half of it. The MAS client requires it to be
/// shorter than the request timeout, so that a request timeout always means
/// the connection was made and the request may have reached MAS.
fn connect_timeout(request_timeout: Duration) -> Duration {
    MAX_CONNECT_TIMEOUT.min(request_timeout / 2)
}

async fn read_object_key(
    client: &Client,
    namespace: &str,
    reference: &ObjectKeyRef,
) -> Result<Vec<u8>, LoadError> {
    const PURPOSE: &str = "TLS CA bundle";
    if let Some(name) = &reference.secret_name {
        // A PEM bundle spans several lines, so it is read as raw bytes and
        // not through the single-line check of credentials.
        let secret = get_secret(client, namespace, name, PURPOSE).await?;
        let data = secret.data.as_ref();
        return match data.and_then(|data| data.get(&reference.key)) {
            Some(bytes) if !bytes.0.is_empty() => Ok(bytes.0.clone()),
            _ => Err(InputError::KeyNotFound {
                object: format!("Secret {namespace}/{name}"),
                key: reference.key.clone(),
                purpose: PURPOSE,
                found: keys_of(data),
            }
            .into()),
        };
    }
    let name = reference.config_map_name.clone().unwrap_or_default();
    let config_map = get_config_map(client, namespace, &name, PURPOSE).await?;
    Ok(config_map_value(
        &config_map,
        namespace,
        &reference.key,
        PURPOSE,
    )?)
}

async fn get_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    purpose: &'static str,
) -> Result<Secret, LoadError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await? {
        Some(secret) => Ok(secret),
        None => Err(InputError::SecretNotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            purpose,
        }
        .into()),
    }
}

async fn get_config_map(
    client: &Client,
    namespace: &str,
    name: &str,
    purpose: &'static str,
) -> Result<ConfigMap, LoadError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await? {
        Some(config_map) => Ok(config_map),
        None => Err(InputError::ConfigMapNotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            purpose,
        }
        .into()),
    }
}

/// Reads one Secret key as text, trimmed of a trailing newline that
/// `kubectl create secret --from-file` keeps.
fn secret_value(
    secret: &Secret,
    namespace: &str,
    key: &str,
    purpose: &'static str,
) -> Result<SecretString, InputError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let data = secret.data.as_ref();
    let Some(bytes) = data.and_then(|data| data.get(key)) else {
        return Err(InputError::KeyNotFound {
            object: format!("Secret {namespace}/{name}"),
            key: key.to_owned(),
            purpose,
            found: keys_of(data),
        });
    };
    let invalid = || InputError::InvalidValue {
        object: format!("Secret {namespace}/{name}"),
        key: key.to_owned(),
        purpose,
    };
    let text = std::str::from_utf8(&bytes.0).map_err(|_| invalid())?;
    let text = text.trim_end_matches(['\r', '\n']);
    // A credential travels in an HTTP header or body, where a line break or
    // other control character would break the request for every user.
    if text.is_empty() || text.chars().any(char::is_control) {
        return Err(invalid());
    }
    Ok(SecretString::new(text))
}

/// Reads one ConfigMap key from `data` or `binaryData`.
fn config_map_value(
    config_map: &ConfigMap,
    namespace: &str,
    key: &str,
    purpose: &'static str,
) -> Result<Vec<u8>, InputError> {
    if let Some(text) = config_map.data.as_ref().and_then(|data| data.get(key)) {
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(bytes) = config_map
        .binary_data
        .as_ref()
        .and_then(|data| data.get(key))
    {
        return Ok(bytes.0.clone());
    }

    let mut found: Vec<&String> = Vec::new();
    found.extend(config_map.data.iter().flat_map(BTreeMap::keys));
    found.extend(config_map.binary_data.iter().flat_map(BTreeMap::keys));
    Err(InputError::KeyNotFound {
        object: format!(
            "ConfigMap {namespace}/{}",
            config_map.metadata.name.clone().unwrap_or_default()
        ),
        key: key.to_owned(),
        purpose,
        found: found
            .iter()
            .map(|key| key.as_str())
            .collect::<Vec<_>>()
            .join(","),
    })
}

fn keys_of<V>(data: Option<&BTreeMap<String, V>>) -> String {
    data.map(|data| data.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

fn namespace_of(resource: &BulkPasswordReset) -> String {
    resource.metadata.namespace.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_user_information_and_query() {
        let cases = [
            (
                "https://api.example.com/base",
                "https://api.example.com/base",
            ),
            (
                "https://admin:S3cret@api.example.com/",
                "https://[redacted]@api.example.com/",
            ),
            (
                "https://api.example.com/?token=abc#frag",
                "https://api.example.com/?[redacted]#[redacted]",
            ),
            ("https://a:b@c@host", "https://[redacted]@host"),
            ("admin:S3cret@host:99", "[redacted]@host:99"),
        ];

        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }

    #[test]
    fn connect_timeout_shorter_than_every_request_timeout() {
        for seconds in [1, 2, 3, 10, 20, 21, 30, 600] {
            let request = Duration::from_secs(seconds);

            let connect = connect_timeout(request);

            assert!(connect < request, "request timeout {seconds}s");
            assert!(connect <= MAX_CONNECT_TIMEOUT, "request timeout {seconds}s");
        }
        assert_eq!(
            connect_timeout(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(
            connect_timeout(Duration::from_secs(30)),
            MAX_CONNECT_TIMEOUT
        );
    }

    #[test]
    fn allowed_hosts_empty_allows_any() {
        assert!(AllowedHosts::parse("").allows("api.example.com"));
    }

    #[test]
    fn allowed_hosts_matches_exact_and_wildcard() {
        let allowed = AllowedHosts::parse("api.inst1.example.com, *.svc.cluster.local");

        assert!(allowed.allows("API.inst1.example.com"));
        assert!(allowed.allows("coreapi.mas-inst1-core.svc.cluster.local"));
        assert!(!allowed.allows("svc.cluster.local"));
        assert!(!allowed.allows("169.254.169.254"));
        assert!(!allowed.allows("api.inst1.example.com.evil.test"));
    }
}
