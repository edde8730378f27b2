//! Renders every kustomize overlay and the Helm chart and applies the output
//! to a real kube-apiserver with a server-side dry run, so that schema,
//! RBAC, Pod Security and CRD validation all run. Also checks that the Helm
//! chart renders the same objects as the kustomize overlays.
//!
//! Needs kubectl and the control plane from `mas_reset_harness`, and helm
//! from `tests/tools/build.sh`. The test runs that script once when TOOLS_BIN
//! does not name a directory that contains helm.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use mas_reset_harness::ControlPlane;
use serde_json::Value;

/// Field manager of the real applies and dry runs sent here.
const FIELD_MANAGER: &str = "mas-reset-operator-manifests-test";

/// Release name and namespace of the Helm renders. With these, the chart's
/// object names equal the kustomize base's.
const RELEASE: &str = "mas-reset-operator";

/// Namespace that the namespaced overlay watches by default.
const WATCHED_NAMESPACE: &str = "mas-inst1-core";

const KUSTOMIZE_OVERLAYS: [&str; 4] = [
    "cluster-wide",
    "namespaced",
    "openshift",
    "openshift-cluster-monitoring",
];

/// Helm renders and the kustomize overlay each must equal.
const HELM_VARIANTS: [(&str, &[&str]); 3] = [
    ("cluster-wide", &["namespace.create=true"]),
    (
        "namespaced",
        &["namespace.create=true", "watchNamespace=mas-inst1-core"],
    ),
    (
        "openshift",
        &["namespace.create=true", "serviceMonitor.enabled=true"],
    ),
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn control_plane() -> &'static ControlPlane {
    mas_reset_harness::shared().await
}

/// Runs `command`, feeding `input` on stdin, and returns its output.
fn run_unchecked(mut command: Command, input: Option<&str>, description: &str) -> Output {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("{description}: failed to start {command:?}: {error}"));

    let mut stdin = child.stdin.take().expect("stdin is piped");
    if let Some(input) = input {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|error| panic!("{description}: failed to write stdin: {error}"));
    }
    drop(stdin);

    child
        .wait_with_output()
        .unwrap_or_else(|error| panic!("{description}: failed to wait: {error}"))
}

/// Runs `command` like [`run_unchecked`] and panics with its output when it
/// fails.
fn run(command: Command, input: Option<&str>, description: &str) -> Output {
    let output = run_unchecked(command, input, description);
    assert!(
        output.status.success(),
        "{description} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Path of helm, built by tests/tools/build.sh once per process if needed.
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(dir) = std::env::var_os("TOOLS_BIN") {
            let helm = PathBuf::from(dir).join("helm");
            if helm.is_file() {
                return helm;
            }
        }

        let mut build = Command::new("bash");
        build.arg(repo_root().join("tests/tools/build.sh"));
        let output = run(build, None, "tests/tools/build.sh");
        let dir = String::from_utf8(output.stdout).expect("build.sh prints a UTF-8 path");
        PathBuf::from(dir.trim()).join("helm")
    })
}

async fn render_kustomize(overlay: &str) -> String {
    let mut kubectl = control_plane().await.kubectl();
    kubectl
        .arg("kustomize")
        .arg(repo_root().join("deploy/overlays").join(overlay));
    let output = run(kubectl, None, &format!("kubectl kustomize {overlay}"));
    String::from_utf8(output.stdout).expect("kustomize output is UTF-8")
}

fn render_helm(sets: &[&str]) -> String {
    let mut command = Command::new(helm());
    command
        .args(["template", RELEASE])
        .arg(repo_root().join("deploy/helm/mas-reset-operator"))
        .args(["--namespace", RELEASE, "--include-crds"]);
    for set in sets {
        command.args(["--set", set]);
    }
    let output = run(command, None, &format!("helm template --set {sets:?}"));
    String::from_utf8(output.stdout).expect("helm output is UTF-8")
}

/// Parses a multi-document YAML stream into JSON values, without empty
/// documents.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| {
            let value: Value = serde::Deserialize::deserialize(document).expect("valid YAML");
            value
        })
        .filter(|value| !value.is_null())
        .collect()
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn find<'a>(objects: &'a [Value], kind_name: &str, object_name: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| kind(object) == kind_name && name(object) == object_name)
        .unwrap_or_else(|| panic!("no {kind_name} {object_name} in the render"))
}

/// Creates, for real, every namespace the objects live in. A namespace gets
/// the labels of the render's Namespace object where it has one, so that
/// Pod Security admission sees them during the dry run.
async fn create_namespaces(objects: &[Value]) {
    let mut namespaces: BTreeMap<String, Value> = BTreeMap::new();
    for object in objects {
        if let Some(namespace) = object["metadata"]["namespace"].as_str() {
            namespaces
                .entry(namespace.to_owned())
                .or_insert_with(|| serde_json::json!({}));
        }
    }
    for object in objects.iter().filter(|object| kind(object) == "Namespace") {
        namespaces.insert(
            name(object).to_owned(),
            object["metadata"]["labels"].clone(),
        );
    }

    for (namespace, labels) in namespaces {
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": namespace, "labels": labels },
        });
        let mut kubectl = control_plane().await.kubectl();
        kubectl.args(["apply", "--server-side", "--force-conflicts", "-f", "-"]);
        kubectl.arg(format!("--field-manager={FIELD_MANAGER}"));
        run(
            kubectl,
            Some(&manifest.to_string()),
            &format!("create namespace {namespace}"),
        );
    }
}

/// Applies `yaml` with a server-side dry run and returns kubectl's stderr.
async fn apply_dry_run(yaml: &str, namespace: Option<&str>, description: &str) -> String {
    let mut kubectl = control_plane().await.kubectl();
    kubectl.args([
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        "-f",
        "-",
    ]);
    kubectl.arg(format!("--field-manager={FIELD_MANAGER}"));
    if let Some(namespace) = namespace {
        kubectl.args(["--namespace", namespace]);
    }
    let output = run(kubectl, Some(yaml), description);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn install_servicemonitor_crd() {
    control_plane()
        .await
        .install_crds(&repo_root().join("tests/testdata/prometheus-operator"))
        .await
        .expect("ServiceMonitor stand-in CRD installs");
}

/// Renders every overlay and Helm variant, named for messages.
async fn all_renders() -> Vec<(String, String)> {
    let mut renders = Vec::new();
    for overlay in KUSTOMIZE_OVERLAYS {
        renders.push((
            format!("kustomize overlay {overlay}"),
            render_kustomize(overlay).await,
        ));
    }
    for (overlay, sets) in HELM_VARIANTS {
        renders.push((
            format!("helm chart as {overlay} ({sets:?})"),
            render_helm(sets),
        ));
    }
    renders
}

#[tokio::test]
async fn renders_apply_to_apiserver() {
    install_servicemonitor_crd().await;

    for (render, yaml) in all_renders().await {
        let objects = documents(&yaml);
        assert!(
            objects.len() >= 8,
            "{render} rendered {} objects",
            objects.len()
        );
        create_namespaces(&objects).await;

        let stderr = apply_dry_run(&yaml, None, &render).await;

        // A warning here is a deprecated API or a Pod Security violation.
        assert!(
            !stderr.contains("Warning:"),
            "{render} drew warnings:\n{stderr}"
        );
    }
}

/// Builds a Pod from the Deployment's pod template, as its ReplicaSet would.
fn operator_pod(objects: &[Value], pod_name: &str) -> Value {
    let deployment = find(objects, "Deployment", RELEASE);
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": deployment["metadata"]["namespace"],
        },
        "spec": deployment["spec"]["template"]["spec"],
    })
}

#[tokio::test]
async fn operator_pod_passes_restricted_admission() {
    for (render, yaml) in all_renders().await {
        let objects = documents(&yaml);
        create_namespaces(&objects).await;
        let namespace = find(&objects, "Namespace", RELEASE);
        assert_eq!(
            namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
            "{render}: the operator namespace does not enforce the restricted profile"
        );

        let pod = operator_pod(&objects, "mas-reset-operator-restricted-check");
        let stderr =
            apply_dry_run(&pod.to_string(), None, &format!("{render}: operator Pod")).await;

        assert!(
            !stderr.contains("Warning:"),
            "{render}: the Pod drew warnings:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn privileged_pod_rejected_by_namespace() {
    // Control for the test above: Pod Security admission is active and
    // rejects a Pod that allows privilege escalation.
    let objects = documents(&render_kustomize("cluster-wide").await);
    create_namespaces(&objects).await;
    let mut pod = operator_pod(&objects, "mas-reset-operator-escalation-check");
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = true.into();

    let mut kubectl = control_plane().await.kubectl();
    kubectl.args(["apply", "--server-side", "--dry-run=server", "-f", "-"]);
    kubectl.arg(format!("--field-manager={FIELD_MANAGER}"));
    let output = run_unchecked(kubectl, Some(&pod.to_string()), "escalating Pod");
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(!output.status.success(), "the escalating Pod was accepted");
    assert!(
        stderr.contains("violates PodSecurity"),
        "unexpected error: {stderr}"
    );
}

#[tokio::test]
async fn samples_apply_to_apiserver() {
    let plane = control_plane().await;
    plane
        .install_crds(&repo_root().join("crds"))
        .await
        .expect("the BulkPasswordReset CRD installs");
    let namespace = "manifests-test-samples";
    let marker = serde_json::json!({
        "metadata": { "namespace": namespace },
    });
    create_namespaces(&[marker]).await;

    let mut yaml = String::new();
    for sample in [
        "users-configmap.yaml",
        "credentials-secret.yaml",
        "bulkpasswordreset.yaml",
    ] {
        let path = repo_root().join("deploy/samples").join(sample);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()));
        yaml.push_str("---\n");
        yaml.push_str(&text);
    }
    // A dry run, so no operator that another test runs picks up the sample
    // and calls its MAS URL.
    let stderr = apply_dry_run(&yaml, Some(namespace), "samples").await;

    assert!(
        !stderr.contains("Warning:"),
        "samples drew warnings:\n{stderr}"
    );
    let sample = documents(&yaml);
    let run = find(&sample, "BulkPasswordReset", "sample-reset");
    assert_eq!(
        run["spec"]["dryRun"], true,
        "the sample run must stay a dry run"
    );
}

/// Whether a label key is bookkeeping that differs between kustomize and
/// Helm (release, chart and version labels) rather than behaviour.
fn is_bookkeeping_label(key: &str) -> bool {
    key.starts_with("app.kubernetes.io/") || key.starts_with("helm.sh/")
}

/// Removes what legitimately differs between a kustomize and a Helm render:
/// bookkeeping labels in label maps and selectors, annotations, the image
/// reference and pull policy, and the order of `env` entries. Kustomize's
/// patch puts WATCH_NAMESPACE first, and no value refers to another.
fn normalise(value: &mut Value) {
    let Value::Object(fields) = value else {
        if let Value::Array(items) = value {
            items.iter_mut().for_each(normalise);
        }
        return;
    };

    if let Some(Value::Array(env)) = fields.get_mut("env") {
        env.sort_by(|left, right| left["name"].as_str().cmp(&right["name"].as_str()));
    }
    fields.remove("annotations");
    fields.remove("image");
    fields.remove("imagePullPolicy");
    for key in ["labels", "matchLabels", "selector"] {
        if let Some(Value::Object(labels)) = fields.get_mut(key) {
            let is_label_map = labels.values().all(Value::is_string);
            if is_label_map {
                labels.retain(|label, _| !is_bookkeeping_label(label));
                if labels.is_empty() {
                    fields.remove(key);
                }
            }
        }
    }
    fields.values_mut().for_each(normalise);
    fields.retain(|_, field| !matches!(field, Value::Object(inner) if inner.is_empty()));
}

/// Objects keyed by `kind namespace/name`, normalised.
fn normalised_objects(yaml: &str) -> BTreeMap<String, Value> {
    documents(yaml)
        .into_iter()
        .map(|mut object| {
            let key = format!(
                "{} {}/{}",
                kind(&object),
                object["metadata"]["namespace"].as_str().unwrap_or(""),
                name(&object)
            );
            normalise(&mut object);
            (key, object)
        })
        .collect()
}

#[tokio::test]
async fn helm_matches_kustomize() {
    for (overlay, sets) in HELM_VARIANTS {
        let kustomize = normalised_objects(&render_kustomize(overlay).await);
        let helm = normalised_objects(&render_helm(sets));

        let kustomize_keys: BTreeSet<&String> = kustomize.keys().collect();
        let helm_keys: BTreeSet<&String> = helm.keys().collect();
        assert_eq!(
            kustomize_keys, helm_keys,
            "overlay {overlay} and helm {sets:?} render different objects"
        );

        for (key, object) in &kustomize {
            let pretty = |value: &Value| serde_json::to_string_pretty(value).expect("JSON");
            assert_eq!(
                pretty(object),
                pretty(&helm[key]),
                "{key} differs between overlay {overlay} and helm {sets:?}"
            );
        }
    }
}

#[tokio::test]
async fn namespaced_role_matches_cluster_role() {
    let cluster_wide = documents(&render_kustomize("cluster-wide").await);
    let namespaced = documents(&render_kustomize("namespaced").await);

    let cluster_role = find(&cluster_wide, "ClusterRole", RELEASE);
    let role = find(&namespaced, "Role", RELEASE);

    assert_eq!(role["rules"], cluster_role["rules"]);
    assert_eq!(role["metadata"]["namespace"], WATCHED_NAMESPACE);
    assert!(
        namespaced
            .iter()
            .all(|object| !matches!(kind(object), "ClusterRole" | "ClusterRoleBinding")),
        "the namespaced overlay still grants cluster-wide access"
    );

    let deployment = find(&namespaced, "Deployment", RELEASE);
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env list");
    let watch_namespace = env
        .iter()
        .find(|variable| variable["name"] == "WATCH_NAMESPACE")
        .expect("WATCH_NAMESPACE is set");
    assert_eq!(watch_namespace["value"], WATCHED_NAMESPACE);
}

#[tokio::test]
async fn leader_election_role_names_lease() {
    for (render, yaml) in all_renders().await {
        let objects = documents(&yaml);
        let deployment = find(&objects, "Deployment", RELEASE);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .expect("args list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let lease = args
            .iter()
            .find_map(|arg| arg.strip_prefix("--leader-election-name="))
            .unwrap_or_else(|| panic!("{render}: no --leader-election-name in {args:?}"));
        let role = find(&objects, "Role", &format!("{RELEASE}-leader-election"));

        assert!(args.contains(&"--leader-elect"), "{render}: {args:?}");
        assert_eq!(
            role["rules"][1]["resourceNames"],
            serde_json::json!([lease]),
            "{render}: the leader election Role does not name the Lease"
        );
        assert_eq!(
            role["metadata"]["namespace"], deployment["metadata"]["namespace"],
            "{render}: the Lease Role is not in the operator namespace"
        );
    }
}

#[test]
fn chart_crd_matches_crds_dir() {
    let root = repo_root();
    let committed = std::fs::read_to_string(root.join("crds/bulkpasswordreset.yaml"))
        .expect("crds/bulkpasswordreset.yaml exists");
    let chart = std::fs::read_to_string(
        root.join("deploy/helm/mas-reset-operator/crds/bulkpasswordreset.yaml"),
    )
    .expect("the chart has a CRD copy");

    assert!(
        chart == committed,
        "the chart's CRD differs from crds/bulkpasswordreset.yaml: copy it again"
    );
}
