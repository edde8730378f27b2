//! `reconcile` and `error_policy`: decide what a resource needs and start,
//! steer or stop its run task. Sending happens in the run task, never here,
//! so a reconcile returns in milliseconds.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Resource, ResourceExt};
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use super::context::Context;
use super::error::Error;
use super::passwords;
use super::results;
use super::run_task::{self, settings_of};
use super::status::{self, PhaseReason};
use crate::api::{BulkPasswordReset, FIELD_MANAGER, Phase};

/// Finalizer that lets the operator stop a run before its resource is gone.
pub const FINALIZER: &str = "masreset.dev/stop-run";

/// How often a resource with a run in progress is looked at without an event.
const RUNNING_RESYNC: Duration = Duration::from_secs(300);

/// How often a paused run checks whether its credentials Secret changed.
const CREDENTIALS_POLL: Duration = Duration::from_secs(15);

/// Maximum wait for a run task to stop when its resource is deleted.
const DELETE_GRACE: Duration = Duration::from_secs(10);

/// Reconciles one `BulkPasswordReset`.
#[instrument(skip_all, fields(namespace = %resource.namespace().unwrap_or_default(), name = %resource.name_any()))]
pub async fn reconcile(
    resource: Arc<BulkPasswordReset>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    ctx.metrics.reconcile_started();
    let namespace = resource.namespace().ok_or(Error::MissingObjectKey)?;
    let api: Api<BulkPasswordReset> = Api::namespaced(ctx.client.clone(), &namespace);

    finalizer(&api, FINALIZER, resource, |event| async {
        match event {
            FinalizerEvent::Apply(resource) => apply(resource, ctx.clone()).await,
            FinalizerEvent::Cleanup(resource) => cleanup(resource, &ctx).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)))
}

/// Requeues a failed reconcile after a short wait.
pub fn error_policy(resource: Arc<BulkPasswordReset>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(namespace = %resource.namespace().unwrap_or_default(), name = %resource.name_any(), error = %error, "reconcile failed");
    ctx.metrics.reconcile_failed(error.metric_reason());
    Action::requeue(Duration::from_secs(15))
}

async fn apply(resource: Arc<BulkPasswordReset>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = resource.uid().unwrap_or_default();
    let status = resource.status.clone().unwrap_or_default();
    let phase = status.phase;
    let generation = resource.metadata.generation;

    // A finished run stays finished; only observedGeneration follows spec
    // edits. The one exception is an explicit request: retryUnknown set to
    // true by a spec edit after the run ended with Unknown users.
    if matches!(
        phase,
        Some(Phase::Succeeded | Phase::PartiallyFailed | Phase::Failed)
    ) {
        let edited = status.observed_generation != generation;
        let unknown = status.counts.as_ref().map_or(0, |counts| counts.unknown);
        let running = ctx
            .runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(&uid);
        if edited && unknown > 0 && resource.spec.retry_unknown == Some(true) && !running {
            info!(
                unknown,
                "retryUnknown set on a finished run; sending its Unknown users again"
            );
            run_task::spawn(ctx, resource);
            return Ok(Action::requeue(RUNNING_RESYNC));
        }
        if edited {
            write_observed_generation(&resource, &ctx).await?;
        }
        return Ok(Action::await_change());
    }

    // A run in progress in this process picks up suspend and pacing changes.
    let steered = {
        let runs = ctx
            .runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        runs.get(&uid).map(|handle| {
            if resource.spec.suspend.unwrap_or(false) {
                handle.cancel.cancel();
            } else {
                handle.settings.send_if_modified(|settings| {
                    let wanted = settings_of(&resource);
                    let changed = *settings != wanted;
                    *settings = wanted;
                    changed
                });
            }
        })
    };
    if steered.is_some() {
        debug!("run in progress");
        return Ok(Action::requeue(RUNNING_RESYNC));
    }

    if resource.spec.suspend.unwrap_or(false) {
        let reason = status
            .conditions
            .first()
            .map(|condition| condition.reason.as_str());
        if phase != Some(Phase::Paused)
            || reason != Some("Suspended")
            || status.observed_generation != generation
        {
            let why = PhaseReason::new(
                Phase::Paused,
                "Suspended",
                "suspended by spec.suspend; set suspend: false to start or resume",
            );
            write_phase(&resource, &ctx, &why).await?;
        }
        return Ok(Action::await_change());
    }

    if let Some(wait) = parked_wait(&resource, &ctx).await? {
        return Ok(Action::requeue(wait));
    }

    info!("starting run task");
    run_task::spawn(ctx, resource);
    Ok(Action::requeue(RUNNING_RESYNC))
}

/// Returns how long a parked resource still waits, or `None` to start now.
async fn parked_wait(
    resource: &BulkPasswordReset,
    ctx: &Context,
) -> Result<Option<Duration>, Error> {
    let uid = resource.uid().unwrap_or_default();
    let parked = {
        let parked = ctx
            .parked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        parked.get(&uid).cloned()
    };
    let Some(parked) = parked else {
        return Ok(None);
    };

    let now = Instant::now();
    if let Some(version) = &parked.credentials_version {
        let secrets: Api<Secret> = Api::namespaced(
            ctx.client.clone(),
            &resource.namespace().unwrap_or_default(),
        );
        let current = secrets
            .get_opt(&resource.spec.credentials.secret_name)
            .await
            .map_err(|source| kube_error("read credentials Secret", resource, source))?
            .and_then(|secret| secret.metadata.resource_version);
        if current.as_deref() != Some(version.as_str()) {
            info!("credentials Secret changed; resuming");
            ctx.parked
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&uid);
            return Ok(None);
        }
        if now < parked.until {
            return Ok(Some(CREDENTIALS_POLL.min(parked.until - now)));
        }
    } else if now < parked.until {
        return Ok(Some(parked.until - now));
    }

    ctx.parked
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&uid);
    Ok(None)
}

/// Stops the run of a deleted resource and removes its result ConfigMaps.
async fn cleanup(resource: Arc<BulkPasswordReset>, ctx: &Context) -> Result<Action, Error> {
    let uid = resource.uid().unwrap_or_default();
    let finished = {
        let runs = ctx
            .runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        runs.get(&uid).map(|handle| {
            handle.deleting.store(true, Ordering::Relaxed);
            handle.cancel.cancel();
            handle.finished.clone()
        })
    };
    if let Some(mut finished) = finished {
        info!("resource deleted; stopping its run");
        let stopped = tokio::time::timeout(DELETE_GRACE, finished.wait_for(|done| *done)).await;
        if stopped.is_err() {
            warn!("run did not stop within the grace period; deleting anyway");
        }
    }
    ctx.parked
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&uid);

    // Owner references let the garbage collector do this too; deleting here
    // also works where no garbage collector runs.
    let config_maps: Api<ConfigMap> = Api::namespaced(
        ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    if let Err(error) = results::delete_all(&config_maps, &resource.name_any()).await {
        warn!(error = %error, "deleting result ConfigMaps failed; the garbage collector removes them");
    }
    let secrets: Api<Secret> = Api::namespaced(
        ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    let stored = passwords::stores_passwords(&resource);
    if stored && let Err(error) = passwords::delete_all(&secrets, &resource).await {
        warn!(error = %error, "deleting password Secrets failed; the garbage collector removes them");
    }
    Ok(Action::await_change())
}

async fn write_phase(
    resource: &BulkPasswordReset,
    ctx: &Context,
    why: &PhaseReason,
) -> Result<(), Error> {
    let mut status = resource.status.clone().unwrap_or_default();
    status::set_phase(&mut status, why, resource.metadata.generation);
    apply_status(resource, ctx, &status, "write status").await
}

async fn write_observed_generation(
    resource: &BulkPasswordReset,
    ctx: &Context,
) -> Result<(), Error> {
    let mut status = resource.status.clone().unwrap_or_default();
    status.observed_generation = resource.metadata.generation;
    for condition in &mut status.conditions {
        condition.observed_generation = resource.metadata.generation;
    }
    apply_status(resource, ctx, &status, "write observedGeneration").await
}

/// Applies `status`, which was built from the cached `resource`, with the
/// cached `resourceVersion` as a precondition. Without it a stale cache
/// could write back an older `status.progress` over a run's last
/// checkpoint. A conflict means a newer version exists, and its watch
/// event reconciles again, so the write is skipped.
async fn apply_status(
    resource: &BulkPasswordReset,
    ctx: &Context,
    status: &crate::api::BulkPasswordResetStatus,
    step: &'static str,
) -> Result<(), Error> {
    let api: Api<BulkPasswordReset> = Api::namespaced(
        ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    let patch = serde_json::json!({
        "apiVersion": BulkPasswordReset::api_version(&()),
        "kind": BulkPasswordReset::kind(&()),
        "metadata": {
            "name": resource.name_any(),
            "resourceVersion": resource.metadata.resource_version,
        },
        "status": status,
    });
    let result = api
        .patch_status(
            &resource.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(problem)) if problem.code == 409 => {
            debug!(
                step,
                "resource changed since it was cached; skipping the status write"
            );
            Ok(())
        }
        Err(source) => Err(kube_error(step, resource, source)),
    }
}

fn kube_error(step: &'static str, resource: &BulkPasswordReset, source: kube::Error) -> Error {
    Error::Kube {
        step,
        namespace: resource.namespace().unwrap_or_default(),
        name: resource.name_any(),
        source,
    }
}
