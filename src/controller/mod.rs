//! The Kubernetes side of the operator: reconcile `BulkPasswordReset`
//! resources, run their sends in background tasks and record progress.

mod context;
mod error;
pub mod inputs;
pub mod leader;
mod outcome_table;
pub mod passwords;
mod reconcile;
mod recorder;
pub mod results;
pub mod run_record;
mod run_task;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::ListParams;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use context::OperatorConfig;
pub use error::{Error, InputError};
pub use reconcile::FINALIZER;

use crate::api::BulkPasswordReset;
use crate::metrics::Metrics;

/// Maximum wait at shutdown for runs to record what was in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(40);

/// Runs the controller until `shutdown` is cancelled, then stops every run
/// and waits for their final checkpoints.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let resources: Api<BulkPasswordReset> = match &namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    if let Err(error) = resources.list(&ListParams::default().limit(1)).await {
        anyhow::bail!(
            "cannot list BulkPasswordResets ({error}); install the CRD (kubectl apply -f crds/) and check the operator's RBAC"
        );
    }

    let (trigger, triggered) = mpsc::unbounded_channel();
    let reporter = Reporter {
        controller: "mas-reset-operator".to_owned(),
        instance: Some(config.identity.clone()),
    };
    let ctx = Arc::new(context::Context {
        client: client.clone(),
        metrics,
        events: Recorder::new(client, reporter),
        config,
        runs: Default::default(),
        parked: Default::default(),
        trigger,
        shutdown: shutdown.clone(),
    });

    let triggers = futures::stream::unfold(triggered, |mut receiver| async move {
        receiver.recv().await.map(|object| (object, receiver))
    });
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "controller starting"
    );
    Controller::new(resources, watcher::Config::default().any_semantic())
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(error = %error, "controller stream error");
            }
        })
        .await;

    info!("controller stopped; waiting for runs to record their progress");
    ctx.stop_all_runs(SHUTDOWN_GRACE).await;
    Ok(())
}
