//! Leader election through a `coordination.k8s.io/v1` Lease, so that of
//! several replicas only one runs the controller.
//!
//! Leadership alone cannot rule out two senders (a paused process may still
//! believe it leads), so the recorder also fences every progress write; see
//! `recorder`.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Settings of the election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This instance's identity, written as the holder.
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews, and a follower retries.
    pub retry_period: Duration,
}

/// Blocks until this instance holds the Lease.
pub async fn acquire(
    client: &Client,
    config: &LeaseConfig,
    shutdown: &CancellationToken,
) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let mut logged = false;
    loop {
        match try_acquire_or_renew(&api, config).await {
            Ok(true) => {
                info!(lease = %config.name, identity = %config.identity, "acquired leadership");
                return Ok(true);
            }
            Ok(false) if !logged => {
                info!(lease = %config.name, "another instance leads; waiting");
                logged = true;
            }
            Ok(false) => {}
            Err(error) => {
                warn!(lease = %config.name, error = %error, "leader election request failed")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(config.retry_period) => {}
            () = shutdown.cancelled() => return Ok(false),
        }
    }
}

/// Renews the Lease until `release` is cancelled, then releases it. Cancels
/// `lost` when another instance took the Lease, or when no renewal has
/// succeeded for longer than the lease duration minus one retry period.
///
/// Cancel `release` only after the controller has stopped and its runs have
/// recorded their requests in flight: a follower that took the Lease sooner
/// would find those users claimed without an outcome and report them Unknown.
pub async fn keep(
    client: Client,
    config: LeaseConfig,
    lost: CancellationToken,
    release: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let deadline = config.lease_duration.saturating_sub(config.retry_period);
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(config.retry_period) => {}
            () = release.cancelled() => {
                release_lease(&api, &config).await;
                return;
            }
        }
        // A renewal that hangs must not outlast the Lease, so each one
        // gets one retry period.
        let renewal =
            tokio::time::timeout(config.retry_period, try_acquire_or_renew(&api, &config)).await;
        match renewal {
            Ok(Ok(true)) => last_renewed = tokio::time::Instant::now(),
            Ok(Ok(false)) => {
                warn!(lease = %config.name, "another instance took the Lease; stopping");
                lost.cancel();
                return;
            }
            Ok(Err(error)) => {
                warn!(lease = %config.name, error = %error, "renewing the Lease failed")
            }
            Err(_) => warn!(
                lease = %config.name,
                timeout_ms = config.retry_period.as_millis() as u64,
                "renewing the Lease timed out"
            ),
        }
        if last_renewed.elapsed() > deadline {
            warn!(lease = %config.name, "could not renew the Lease in time; stopping");
            lost.cancel();
            return;
        }
    }
}

/// Takes the Lease if it is free, expired or ours. Writes use the Lease's
/// `resourceVersion`, so two instances cannot both succeed.
async fn try_acquire_or_renew(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                ..Default::default()
            },
            spec: Some(spec_for(config, now, now, 0)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        };
    };

    let spec = lease.spec.clone().unwrap_or_default();
    let ours = spec.holder_identity.as_deref() == Some(config.identity.as_str());
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(seconds)) => {
            let expiry = renewed.0 + jiff_seconds(seconds);
            expiry < now
        }
        _ => true,
    };
    if !ours && !expired {
        return Ok(false);
    }

    let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
    let acquired = if ours {
        spec.acquire_time.map_or(now, |time| time.0)
    } else {
        now
    };
    lease.spec = Some(spec_for(config, acquired, now, transitions));
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

async fn release_lease(api: &Api<Lease>, config: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    if let Err(error) = api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        warn!(error = %error, "releasing the Lease failed; it expires by itself");
    } else {
        info!(lease = %config.name, "released leadership");
    }
}

fn spec_for(
    config: &LeaseConfig,
    acquired: Timestamp,
    renewed: Timestamp,
    transitions: i32,
) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.lease_duration.as_secs() as i32),
        acquire_time: Some(MicroTime(acquired)),
        renew_time: Some(MicroTime(renewed)),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

fn jiff_seconds(seconds: i32) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::from_secs(i64::from(seconds))
}
