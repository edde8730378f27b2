//! Prometheus metrics of the operator, served on `/metrics`.
//!
//! Labels never carry a user ID, a token or any other value from the user
//! list, so the number of series stays fixed and nothing secret is exported.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::mas::Attempt;
use crate::run::UserResult;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    /// HTTP status, or `not_sent` / `indeterminate` when no response arrived.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// Every metric the operator exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<CodeLabel, Counter>,
    in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
    users: Family<ResultLabel, Counter>,
    run_duration: Histogram,
    reconcile_errors: Family<ReasonLabel, Counter>,
    reconciliations: Counter<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the prefix `mas_reset`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mas_reset");
        let requests = Family::<CodeLabel, Counter>::default();
        let in_flight = Gauge::default();
        let users = Family::<ResultLabel, Counter>::default();
        let run_duration = Histogram::new(exponential_buckets(1.0, 2.0, 16));
        let reconcile_errors = Family::<ReasonLabel, Counter>::default();
        let reconciliations = Counter::default();

        registry.register(
            "mas_requests",
            "Requests sent to the MAS API, by HTTP status of the answer",
            requests.clone(),
        );
        registry.register(
            "mas_requests_in_flight",
            "Requests to the MAS API waiting for an answer",
            in_flight.clone(),
        );
        registry.register(
            "users",
            "Users with a final result, by result",
            users.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Time from a run's first request to its final phase",
            run_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconciliations",
            "Reconciles started",
            reconciliations.clone(),
        );

        Self {
            registry,
            requests,
            in_flight,
            users,
            run_duration,
            reconcile_errors,
            reconciliations,
        }
    }

    /// Encodes every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    pub(crate) fn request_started(&self) {
        self.in_flight.inc();
    }

    pub(crate) fn request_finished(&self, attempt: &Attempt) {
        self.in_flight.dec();
        let code = match attempt {
            Attempt::Answered { status, .. } => status.to_string(),
            Attempt::NotSent { .. } => "not_sent".to_owned(),
            Attempt::Indeterminate { .. } => "indeterminate".to_owned(),
        };
        self.requests.get_or_create(&CodeLabel { code }).inc();
    }

    pub(crate) fn user_finished(&self, result: UserResult) {
        let result = format!("{result:?}");
        self.users.get_or_create(&ResultLabel { result }).inc();
    }

    /// Records the duration of a run that reached a final phase.
    pub fn run_finished(&self, seconds: f64) {
        self.run_duration.observe(seconds);
    }

    /// Counts a reconcile.
    pub fn reconcile_started(&self) {
        self.reconciliations.inc();
    }

    /// Counts a failed reconcile by its error reason.
    pub fn reconcile_failed(&self, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }
}
