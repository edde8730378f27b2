//! State shared by every reconcile: clients, settings and the runs that are
//! in progress in this process.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::inputs::AllowedHosts;
use crate::api::BulkPasswordReset;
use crate::metrics::Metrics;
use crate::run::Settings;

/// Operator settings from the command line.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Hosts runs may call; empty allows any.
    pub allowed_hosts: AllowedHosts,
    /// Users claimed per journal write.
    pub claim_size: usize,
    /// Maximum time an outcome waits before it is written.
    pub flush_interval: Duration,
    /// Name of this operator instance, for `status.progress.holder`.
    pub identity: String,
}

/// A run in progress in this process.
pub struct RunHandle {
    /// Cancels the run: no new request is sent, requests in flight finish.
    pub cancel: CancellationToken,
    /// Settings the run picks up while it goes on.
    pub settings: watch::Sender<Settings>,
    /// Becomes true when the run task has written its final status.
    pub finished: watch::Receiver<bool>,
    /// Set before `cancel` when the resource is being deleted, so the task
    /// writes no final phase.
    pub deleting: Arc<AtomicBool>,
}

/// Wait of a resource before its next run attempt.
#[derive(Clone, Debug)]
pub struct Parked {
    /// No new attempt before this instant...
    pub until: Instant,
    /// ...unless the credentials Secret's `resourceVersion` differs from
    /// this one (set when MAS rejected the credentials).
    pub credentials_version: Option<String>,
}

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Event recorder.
    pub events: Recorder,
    /// Operator settings.
    pub config: OperatorConfig,
    /// Runs in progress, by resource UID.
    pub runs: Mutex<HashMap<String, RunHandle>>,
    /// Resources waiting before their next attempt, by resource UID.
    pub parked: Mutex<HashMap<String, Parked>>,
    /// Asks the controller to reconcile a resource now.
    pub trigger: mpsc::UnboundedSender<ObjectRef<BulkPasswordReset>>,
    /// Cancelled when the process shuts down or loses leadership.
    pub shutdown: CancellationToken,
}

impl Context {
    /// Publishes an Event on `resource`; a failure is logged, not returned,
    /// because an Event is never worth failing a reconcile.
    pub async fn publish(
        &self,
        resource: &BulkPasswordReset,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        let reference = resource.object_ref(&());
        if let Err(error) = self.events.publish(&event, &reference).await {
            warn!(reason, error = %error, "failed to publish Event");
        }
    }

    /// Cancels every run and waits until each wrote its final checkpoint,
    /// or until `grace` passed.
    pub async fn stop_all_runs(&self, grace: Duration) {
        let mut waiting = Vec::new();
        {
            let runs = self
                .runs
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for handle in runs.values() {
                handle.cancel.cancel();
                waiting.push(handle.finished.clone());
            }
        }
        let all = futures::future::join_all(waiting.into_iter().map(|mut finished| async move {
            let _ = finished.wait_for(|done| *done).await;
        }));
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!(
                grace_seconds = grace.as_secs(),
                "runs did not stop in time; their claimed users become Unknown on the next start"
            );
        }
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
