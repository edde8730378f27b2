//! Shared pieces of the end-to-end tests: the operator as a child process,
//! test namespaces, sample inputs and waiting for a phase.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use mas_reset_harness::{ChildGuard, ControlPlane, free_port};
use mas_reset_operator::api::{BulkPasswordReset, Phase};

/// Field manager the tests apply resources with, as a GitOps tool would.
pub const TEST_MANAGER: &str = "e2e-gitops";

/// Installs the CRD into the control plane once per test binary.
pub async fn install_crds(plane: &ControlPlane) {
    mas_reset_operator::install_crypto_provider();
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    plane
        .install_crds(&crds)
        .await
        .expect("CRDs install and become Established");
}

/// Creates a namespace with a unique name that starts with `prefix`.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
    name
}

/// An operator process watching one namespace, with its log in a file.
pub struct Operator {
    child: Option<ChildGuard>,
    kubeconfig: PathBuf,
    namespace: String,
    extra_args: Vec<String>,
    log_filter: String,
    /// Port of its /metrics endpoint.
    pub metrics_port: u16,
    /// File with everything the process wrote to stdout and stderr.
    pub log_path: PathBuf,
}

impl Operator {
    /// Starts `mas-reset-operator run --namespace NAMESPACE`.
    pub fn start(plane: &ControlPlane, namespace: &str, extra_args: &[&str]) -> Operator {
        Self::start_with_log_filter(
            plane,
            namespace,
            extra_args,
            "info,mas_reset_operator=debug",
        )
    }

    /// Starts the operator with `RUST_LOG` set to `log_filter`, for example
    /// `debug` to also log what its libraries log.
    pub fn start_with_log_filter(
        plane: &ControlPlane,
        namespace: &str,
        extra_args: &[&str],
        log_filter: &str,
    ) -> Operator {
        let log_path = std::env::temp_dir().join(format!(
            "mas-reset-operator-{namespace}-{}.log",
            rand::random::<u32>()
        ));
        let mut operator = Operator {
            child: None,
            kubeconfig: plane.kubeconfig_path().to_path_buf(),
            namespace: namespace.to_owned(),
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            log_filter: log_filter.to_owned(),
            metrics_port: 0,
            log_path,
        };
        operator.spawn();
        operator
    }

    fn spawn(&mut self) {
        self.metrics_port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("operator log file opens");
        let mut command = Command::new(env!("CARGO_BIN_EXE_mas-reset-operator"));
        command
            .arg("run")
            .arg("--namespace")
            .arg(&self.namespace)
            .arg("--metrics-address")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .args(&self.extra_args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log);
        self.child = Some(ChildGuard::spawn(command).expect("operator starts"));
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.terminate(Duration::from_secs(60)).await;
        }
    }

    /// Starts the process again with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Reads the operator's /metrics text, or `None` while it is not up.
    pub async fn metrics(&self) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let response = reqwest::get(url).await.ok()?;
        response.text().await.ok()
    }

    /// Waits until the operator has started at least `count` reconciles.
    pub async fn wait_for_reconciles(&self, count: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.metrics().await;
            if let Some(text) = &text
                && metric_value(text, "mas_reset_reconciliations_total") >= count as f64
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "operator did not reconcile {count} times; metrics: {text:?}\nlog: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Process id of the running operator, `None` after `kill` or `terminate`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::id)
    }

    /// Peak resident set size of the running operator in KiB (`VmHWM` in
    /// `/proc/<pid>/status`), `None` when it is not running.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Everything the operator logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// Sum of every sample of `name` in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter(|line| line[name.len()..].starts_with([' ', '{']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A user list as Excel writes "CSV UTF-8": byte-order mark, header
/// `userid`, CRLF line ends.
pub fn excel_csv(user_ids: &[String]) -> Vec<u8> {
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(b"userid\r\n");
    for id in user_ids {
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

/// Creates a ConfigMap with the list under `users.csv` in `binaryData`, as
/// kubectl does for a file with a byte-order mark it cannot keep as text.
pub async fn user_list_config_map(client: &Client, namespace: &str, name: &str, bytes: Vec<u8>) {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        binary_data: Some(BTreeMap::from([(
            "users.csv".to_owned(),
            ByteString(bytes),
        )])),
        ..Default::default()
    };
    config_maps
        .create(&PostParams::default(), &config_map)
        .await
        .expect("user list ConfigMap created");
}

/// Creates a ConfigMap with one key holding `bytes`, as
/// `kubectl create configmap NAME --from-file=KEY=FILE` does: valid UTF-8
/// goes to `data` (a byte-order mark included), anything else to
/// `binaryData`.
pub async fn config_map_from_file(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
    bytes: &[u8],
) {
    let mut config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            config_map.data = Some(BTreeMap::from([(key.to_owned(), text.to_owned())]));
        }
        Err(_) => {
            config_map.binary_data = Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(bytes.to_vec()),
            )]));
        }
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    config_maps
        .create(&PostParams::default(), &config_map)
        .await
        .expect("ConfigMap created");
}

/// Creates a Secret with the given keys.
pub async fn secret(client: &Client, namespace: &str, name: &str, entries: &[(&str, &str)]) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some(
            entries
                .iter()
                .map(|(key, value)| ((*key).to_owned(), ByteString(value.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("Secret created");
}

/// Applies a BulkPasswordReset manifest with server-side apply, as Argo CD
/// or Flux would.
pub async fn apply_manifest(
    client: &Client,
    namespace: &str,
    manifest: &serde_json::Value,
) -> BulkPasswordReset {
    let api: Api<BulkPasswordReset> = Api::namespaced(client.clone(), namespace);
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("manifest has a name");
    api.patch(
        name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(manifest),
    )
    .await
    .expect("BulkPasswordReset applied")
}

/// A minimal BulkPasswordReset manifest pointing at `mas_url` with a token.
pub fn manifest(name: &str, mas_url: &str, extra_spec: serde_json::Value) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "masApiUrl": mas_url,
        "allowInsecureHttp": mas_url.starts_with("http://"),
        "credentials": { "secretName": "mas-credentials", "tokenKey": "token" },
        "userList": { "sources": [ { "configMapName": "users", "key": "users.csv" } ] },
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (key, value) in extra {
            spec.insert(key.clone(), value.clone());
        }
    }
    serde_json::json!({
        "apiVersion": "masreset.dev/v1alpha1",
        "kind": "BulkPasswordReset",
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// Waits until the resource reaches one of `phases`, and returns it.
pub async fn wait_for_phase(
    client: &Client,
    namespace: &str,
    name: &str,
    phases: &[Phase],
    timeout: Duration,
    operator: &Operator,
) -> BulkPasswordReset {
    let api: Api<BulkPasswordReset> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let resource = api.get(name).await.expect("BulkPasswordReset readable");
        let phase = resource.status.as_ref().and_then(|status| status.phase);
        if phase.is_some_and(|phase| phases.contains(&phase)) {
            return resource;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{namespace}/{name} did not reach {phases:?}; status: {}\noperator log:\n{}",
            serde_json::to_string_pretty(&resource.status).unwrap_or_default(),
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every Event (`events.k8s.io/v1`) in `namespace`.
pub async fn events(client: &Client, namespace: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    api.list(&Default::default())
        .await
        .expect("Events listable")
        .items
}

/// The condition of `type_` in the resource's status.
pub fn condition<'a>(
    resource: &'a BulkPasswordReset,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    resource
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|condition| condition.type_ == type_)
}
