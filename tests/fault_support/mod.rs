//! Helpers of the fault tests (crashes, leader changes, API server
//! restarts): a large run against the simulator, polling its status, and
//! comparing the simulator's ledger with the result table.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, ResourceExt};
use mas_reset_operator::api::{BulkPasswordReset, BulkPasswordResetStatus, Phase};
use mas_reset_operator::controller::results;
use mas_reset_operator::run::UserResult;
use mas_reset_operator::simulator::{
    Simulator, SimulatorConfig, SimulatorHandle, StaticToken, generate_users,
};

use crate::common::{self, Operator};

/// Token the simulator accepts in every fault test.
pub const TOKEN: &str = "e2e-faults-token-7c31";

/// Phases after which a run sends nothing more.
pub const FINAL_PHASES: [Phase; 3] = [Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed];

/// A namespace with a user list, the credentials Secret and a simulator
/// whose directory contains every user of the list.
pub struct Scenario {
    pub client: Client,
    pub namespace: String,
    pub simulator: SimulatorHandle,
    pub user_ids: Vec<String>,
}

impl Scenario {
    /// Sets up `users` users in a new namespace named after `prefix`. Every
    /// MAS response takes `latency_ms`.
    pub async fn start(client: &Client, prefix: &str, users: usize, latency_ms: u64) -> Scenario {
        let namespace = common::namespace(client, prefix).await;
        let sim_users = generate_users("user", users);
        let user_ids: Vec<String> = sim_users.iter().map(|user| user.id.clone()).collect();
        let simulator = Simulator::start(SimulatorConfig {
            users: sim_users,
            tokens: vec![StaticToken::new(TOKEN, true)],
            latency_ms,
            ..SimulatorConfig::default()
        })
        .await
        .expect("simulator starts");

        common::user_list_config_map(client, &namespace, "users", common::excel_csv(&user_ids))
            .await;
        common::secret(client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;
        Scenario {
            client: client.clone(),
            namespace,
            simulator,
            user_ids,
        }
    }

    /// Applies a BulkPasswordReset named `name` for the list, with `spec`
    /// merged into the minimal spec.
    pub async fn apply(&self, name: &str, spec: serde_json::Value) -> BulkPasswordReset {
        let manifest = common::manifest(name, &self.simulator.base_url(), spec);
        common::apply_manifest(&self.client, &self.namespace, &manifest).await
    }

    /// Reads the resource.
    pub async fn resource(&self, name: &str) -> BulkPasswordReset {
        let api: Api<BulkPasswordReset> = Api::namespaced(self.client.clone(), &self.namespace);
        api.get(name).await.expect("BulkPasswordReset readable")
    }

    /// Polls status until `condition` is true and returns that status. Panics
    /// with the status and the operator logs after `timeout`.
    pub async fn wait_for_status(
        &self,
        name: &str,
        awaited: &str,
        timeout: Duration,
        operators: &[&Operator],
        condition: impl Fn(&BulkPasswordResetStatus) -> bool,
    ) -> BulkPasswordResetStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.resource(name).await.status.unwrap_or_default();
            if condition(&status) {
                return status;
            }
            if tokio::time::Instant::now() >= deadline {
                let logs: Vec<String> = operators.iter().map(|operator| operator.log()).collect();
                panic!(
                    "{}/{name}: timed out waiting for {awaited}; status: {}\noperator logs:\n{}",
                    self.namespace,
                    serde_json::to_string_pretty(&status).unwrap_or_default(),
                    logs.join("\n----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until at least `count` users have an outcome in status.
    pub async fn wait_for_done(
        &self,
        name: &str,
        count: i64,
        operators: &[&Operator],
    ) -> BulkPasswordResetStatus {
        self.wait_for_status(
            name,
            &format!("counts.done >= {count}"),
            Duration::from_secs(120),
            operators,
            |status| done(status) >= count,
        )
        .await
    }

    /// Waits until the run reaches a final phase.
    pub async fn wait_for_final_phase(
        &self,
        name: &str,
        operators: &[&Operator],
    ) -> BulkPasswordResetStatus {
        self.wait_for_status(
            name,
            "a final phase",
            Duration::from_secs(300),
            operators,
            |status| {
                status
                    .phase
                    .is_some_and(|phase| FINAL_PHASES.contains(&phase))
            },
        )
        .await
    }

    /// Result table of the run, by user ID.
    pub async fn results(&self, name: &str) -> BTreeMap<String, UserResult> {
        let resource = self.resource(name).await;
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let records = results::read_all(&config_maps, name, &resource.uid().unwrap_or_default())
            .await
            .expect("result ConfigMaps readable");
        let mut table = BTreeMap::new();
        for record in records {
            let previous = table.insert(record.user_id.clone(), record.outcome.result);
            assert!(
                previous.is_none(),
                "user {} has two rows in the result table",
                record.user_id
            );
        }
        table
    }

    /// Password calls that MAS applied, by user ID.
    pub fn applied(&self) -> HashMap<String, u32> {
        self.simulator.ledger_applied_counts()
    }
}

/// `status.counts.done`, or 0 before the first count.
pub fn done(status: &BulkPasswordResetStatus) -> i64 {
    status.counts.as_ref().map_or(0, |counts| counts.done)
}

/// `status.progress.recoveredUnknown`, or 0.
pub fn recovered_unknown(status: &BulkPasswordResetStatus) -> i64 {
    status
        .progress
        .as_ref()
        .and_then(|progress| progress.recovered_unknown)
        .unwrap_or(0)
}

/// `status.progress.holder`, or empty.
pub fn holder(status: &BulkPasswordResetStatus) -> String {
    status
        .progress
        .as_ref()
        .and_then(|progress| progress.holder.clone())
        .unwrap_or_default()
}

/// Users the result table marks with `result`.
pub fn users_with(table: &BTreeMap<String, UserResult>, result: UserResult) -> BTreeSet<String> {
    table
        .iter()
        .filter(|(_, value)| **value == result)
        .map(|(user, _)| user.clone())
        .collect()
}

/// Users that MAS applied more than once.
pub fn applied_twice_or_more(applied: &HashMap<String, u32>) -> BTreeSet<String> {
    applied
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(user, _)| user.clone())
        .collect()
}

/// Checks the result table against the ledger for a run without
/// `retryUnknown`: nobody applied twice, every Succeeded user applied once,
/// and every user MAS never applied is marked Unknown (claimed but not sent),
/// so no user was skipped silently.
pub fn assert_ledger_matches_results(
    user_ids: &[String],
    table: &BTreeMap<String, UserResult>,
    applied: &HashMap<String, u32>,
) {
    let twice = applied_twice_or_more(applied);
    assert!(
        twice.is_empty(),
        "{} users were applied more than once: {twice:?}",
        twice.len()
    );

    for user in user_ids {
        let result = table.get(user);
        let count = applied.get(user).copied().unwrap_or(0);
        match result {
            Some(UserResult::Succeeded) => {
                assert_eq!(
                    count, 1,
                    "user {user} is Succeeded but applied {count} times"
                )
            }
            Some(UserResult::Unknown) => {}
            Some(UserResult::Failed) => {
                panic!("user {user} failed, but the simulator has every user")
            }
            None => panic!("user {user} has no row in the result table"),
        }
    }
}

/// Waits until the operator's log contains `text`; panics with the log
/// after `timeout`.
pub async fn wait_for_log(operator: &Operator, text: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !operator.log().contains(text) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "operator log has no {text:?} after {timeout:?}:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Arguments that make an operator take part in leader election through a
/// Lease in `namespace`, as `identity`.
pub fn leader_args(namespace: &str, identity: &str) -> Vec<String> {
    [
        "--leader-elect",
        "--leader-election-namespace",
        namespace,
        "--identity",
        identity,
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

impl Scenario {
    /// Checks a run that must end with every user reset exactly once: phase
    /// Succeeded, no Unknown user in status or in the result table, and one
    /// applied password call per user in the ledger.
    pub async fn assert_every_user_reset_once(&self, name: &str, status: &BulkPasswordResetStatus) {
        let users = self.user_ids.len();
        assert_eq!(status.phase, Some(Phase::Succeeded));
        let counts = status.counts.clone().expect("counts");
        assert_eq!(counts.done, users as i64);
        assert_eq!(counts.succeeded, users as i64);
        assert_eq!(counts.unknown, 0);
        assert_eq!(recovered_unknown(status), 0);

        let table = self.results(name).await;
        assert_eq!(users_with(&table, UserResult::Succeeded).len(), users);
        let applied = self.applied();
        assert_ledger_matches_results(&self.user_ids, &table, &applied);
        assert_eq!(applied.len(), users);
    }
}
