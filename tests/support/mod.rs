//! Helpers of the fault end-to-end tests: the result table, reading the
//! simulator's ledger, Events, and waiting for calls to arrive or stop.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use mas_reset_harness::ControlPlane;
use mas_reset_operator::api::{BulkPasswordReset, Phase};
use mas_reset_operator::controller::results::{self, ResultRecord};
use mas_reset_operator::simulator::{
    LedgerEntry, SimUser, SimulatorConfig, SimulatorHandle, StaticToken,
};

use crate::common::{
    Operator, apply_manifest, excel_csv, install_crds, manifest, namespace, secret,
    user_list_config_map, wait_for_phase,
};

/// A namespace of its own on the shared control plane, with the CRD
/// installed.
pub struct TestNamespace {
    pub plane: &'static ControlPlane,
    pub client: Client,
    pub name: String,
}

impl TestNamespace {
    /// Creates a namespace whose name starts with `prefix`.
    pub async fn create(prefix: &str) -> Self {
        let plane = mas_reset_harness::shared().await;
        install_crds(plane).await;
        let client = plane.client().await.expect("client");
        let name = namespace(&client, prefix).await;
        Self {
            plane,
            client,
            name,
        }
    }

    /// Creates the user list ConfigMap `users` and the Secret
    /// `mas-credentials` with `credentials`, starts an operator for this
    /// namespace and applies BulkPasswordReset `name` with `extra_spec`.
    pub async fn start_run(
        &self,
        name: &str,
        mas_url: &str,
        users: &[String],
        credentials: &[(&str, &str)],
        extra_spec: serde_json::Value,
    ) -> Operator {
        user_list_config_map(&self.client, &self.name, "users", excel_csv(users)).await;
        secret(&self.client, &self.name, "mas-credentials", credentials).await;
        let operator = Operator::start(self.plane, &self.name, &[]);
        self.apply(name, mas_url, extra_spec).await;
        operator
    }

    /// Applies BulkPasswordReset `name` with `extra_spec`, as a GitOps tool
    /// would after a change in Git.
    pub async fn apply(&self, name: &str, mas_url: &str, extra_spec: serde_json::Value) {
        let manifest = manifest(name, mas_url, extra_spec);
        apply_manifest(&self.client, &self.name, &manifest).await;
    }

    /// Waits until run `name` reaches a final phase, and returns it.
    pub async fn wait_for_end(
        &self,
        name: &str,
        timeout: Duration,
        operator: &Operator,
    ) -> BulkPasswordReset {
        wait_for_end(&self.client, &self.name, name, timeout, operator).await
    }
}

/// Simulator settings with these local users and one static token with the
/// userAdmin permission.
pub fn simulator_config(users: &[String], token: &str) -> SimulatorConfig {
    SimulatorConfig {
        users: users.iter().map(SimUser::local).collect(),
        tokens: vec![StaticToken::new(token, true)],
        ..SimulatorConfig::default()
    }
}

/// Phases a run ends in.
pub const FINAL_PHASES: [Phase; 3] = [Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed];

/// Waits until run `name` reaches a final phase, and returns it.
pub async fn wait_for_end(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    operator: &Operator,
) -> BulkPasswordReset {
    wait_for_phase(client, namespace, name, &FINAL_PHASES, timeout, operator).await
}

/// Reads the complete per-user result table of a run, keyed by user ID.
pub async fn result_table(
    client: &Client,
    namespace: &str,
    name: &str,
) -> BTreeMap<String, ResultRecord> {
    let resources: Api<BulkPasswordReset> = Api::namespaced(client.clone(), namespace);
    let uid = resources
        .get(name)
        .await
        .expect("BulkPasswordReset readable")
        .uid()
        .expect("resource has a uid");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let records = results::read_all(&config_maps, name, &uid)
        .await
        .expect("result ConfigMaps readable");
    records
        .into_iter()
        .map(|record| (record.user_id.clone(), record))
        .collect()
}

/// Names of the result ConfigMaps of run `name` that still exist.
pub async fn result_config_maps(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{}={name}", results::RUN_LABEL);
    config_maps
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("ConfigMaps listable")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect()
}

/// Groups ledger entries by user ID, each group in arrival order.
pub fn ledger_by_user(ledger: &[LedgerEntry]) -> HashMap<String, Vec<LedgerEntry>> {
    let mut by_user: HashMap<String, Vec<LedgerEntry>> = HashMap::new();
    for entry in ledger {
        by_user
            .entry(entry.user_id.clone())
            .or_default()
            .push(entry.clone());
    }
    by_user
}

/// Returns the largest number of arrival times in any window `[t, t + window_ms)`, and
/// the start of the first such window.
pub fn max_in_window(arrivals_ms: &[u64], window_ms: u64) -> (usize, u64) {
    let mut sorted = arrivals_ms.to_vec();
    sorted.sort_unstable();

    let mut best = (0, 0);
    let mut first = 0;
    for (last, at_ms) in sorted.iter().enumerate() {
        while sorted[first] + window_ms <= *at_ms {
            first += 1;
        }
        let count = last - first + 1;
        if count > best.0 {
            best = (count, sorted[first]);
        }
    }
    best
}

/// Checks that no window `[t, t + 1 s)` contains more than `limit` of the
/// arrival times; a failure lists the arrivals around the fullest window.
pub fn assert_at_most_per_second(arrivals_ms: &[u64], limit: usize, label: &str) {
    let (most, start_ms) = max_in_window(arrivals_ms, 1_000);
    let nearby: Vec<u64> = arrivals_ms
        .iter()
        .copied()
        .filter(|at_ms| *at_ms + 200 >= start_ms && *at_ms < start_ms + 1_200)
        .collect();
    assert!(
        most <= limit,
        "{label}: {most} calls in the second from {start_ms} ms, limit {limit}; arrivals nearby (ms): {nearby:?}"
    );
}

/// Waits until the ledger contains at least `count` password calls.
pub async fn wait_for_calls(
    simulator: &SimulatorHandle,
    count: usize,
    timeout: Duration,
    operator: &Operator,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let calls = simulator.ledger().len();
        if calls >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {calls} of {count} password calls arrived\noperator log:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks that no password call arrives for `quiet`, and returns the number
/// of calls so far.
pub async fn assert_no_calls_for(
    simulator: &SimulatorHandle,
    quiet: Duration,
    label: &str,
) -> usize {
    let before = simulator.ledger().len();
    tokio::time::sleep(quiet).await;
    let after = simulator.ledger().len();
    assert_eq!(after, before, "{label}: {} calls arrived", after - before);
    after
}

/// Events about the resource `name` with the given reason, oldest first.
pub async fn events_with_reason(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut found: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .expect("Events listable")
        .items
        .into_iter()
        .filter(|event| {
            event.reason.as_deref() == Some(reason)
                && event
                    .regarding
                    .as_ref()
                    .is_some_and(|regarding| regarding.name.as_deref() == Some(name))
        })
        .collect();
    found.sort_by_key(|event| event.metadata.creation_timestamp.clone());
    found
}

/// Creates a ConfigMap with `text` under `key`, such as a CA bundle.
pub async fn text_config_map(client: &Client, namespace: &str, name: &str, key: &str, text: &str) {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(key.to_owned(), text.to_owned())])),
        ..Default::default()
    };
    config_maps
        .create(&PostParams::default(), &config_map)
        .await
        .expect("ConfigMap created");
}

/// Returns user IDs `<prefix>0001`, `<prefix>0002`, …
pub fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|n| format!("{prefix}{n:04}")).collect()
}
