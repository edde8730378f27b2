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

/// Wait after the computed expiry of another holder's Lease, so that the
/// next check finds it expired.
const EXPIRY_MARGIN: Duration = Duration::from_millis(20);

/// Result of one attempt to take or renew the Lease.
enum LeaseAttempt {
    /// This instance holds the Lease.
    Acquired,
    /// Another instance holds the Lease. Unless renewed, it expires after
    /// `expires_in` by this host's clock.
    HeldByOther { expires_in: Duration },
}

/// Blocks until this instance holds the Lease. A follower checks again every
/// retry period, or as soon as the holder's Lease expires if that is sooner,
/// so it takes over a dead leader's Lease about one lease duration after
/// the last renewal.
pub async fn acquire(
    client: &Client,
    config: &LeaseConfig,
    shutdown: &CancellationToken,
) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let mut logged = false;
    loop {
        let mut wait = config.retry_period;
        match try_acquire_or_renew(&api, config).await {
            Ok(LeaseAttempt::Acquired) => {
                info!(lease = %config.name, identity = %config.identity, "acquired leadership");
                return Ok(true);
            }
            Ok(LeaseAttempt::HeldByOther { expires_in }) => {
                if !logged {
                    info!(lease = %config.name, "another instance leads; waiting");
                    logged = true;
                }
                wait = wait.min(expires_in + EXPIRY_MARGIN);
            }
            Err(error) => {
                warn!(lease = %config.name, error = %error, "leader election request failed")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
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
    // Stop one retry period before the Lease expires for the followers,
    // which count from the renewTime written at the start of a renewal.
    let deadline = config.lease_duration.saturating_sub(config.retry_period);
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        let remaining = deadline.saturating_sub(last_renewed.elapsed());
        tokio::select! {
            () = tokio::time::sleep(config.retry_period.min(remaining)) => {}
            () = release.cancelled() => {
                release_lease(&api, &config).await;
                return;
            }
        }

        // A renewal that hangs must not outlast the deadline.
        let remaining = deadline.saturating_sub(last_renewed.elapsed());
        let started = tokio::time::Instant::now();
        let timeout = config.retry_period.min(remaining);
        let renewal = tokio::time::timeout(timeout, try_acquire_or_renew(&api, &config)).await;
        match renewal {
            Ok(Ok(LeaseAttempt::Acquired)) => last_renewed = started,
            Ok(Ok(LeaseAttempt::HeldByOther { .. })) => {
                warn!(lease = %config.name, "another instance took the Lease; stopping");
                lost.cancel();
                return;
            }
            Ok(Err(error)) => {
                warn!(lease = %config.name, error = %error, "renewing the Lease failed")
            }
            Err(_) => warn!(
                lease = %config.name,
                timeout_ms = timeout.as_millis() as u64,
                "renewing the Lease timed out"
            ),
        }

        if last_renewed.elapsed() >= deadline {
            warn!(lease = %config.name, "could not renew the Lease in time; stopping");
            lost.cancel();
            return;
        }
    }
}

/// Takes the Lease if it is free, expired or ours. Writes use the Lease's
/// `resourceVersion`, so two instances cannot both succeed.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &LeaseConfig,
) -> Result<LeaseAttempt, kube::Error> {
    // After a lost race for a write, look again one retry period later.
    let lost_race = LeaseAttempt::HeldByOther {
        expires_in: config.retry_period,
    };
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
            Ok(_) => Ok(LeaseAttempt::Acquired),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(lost_race),
            Err(error) => Err(error),
        };
    };

    let spec = lease.spec.clone().unwrap_or_default();
    let ours = spec.holder_identity.as_deref() == Some(config.identity.as_str());
    let expiry = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(seconds)) => Some(renewed.0 + jiff_seconds(seconds)),
        _ => None,
    };
    if let Some(expiry) = expiry
        && !ours
        && expiry >= now
    {
        let expires_in = Duration::try_from(expiry.duration_since(now)).unwrap_or_default();
        return Ok(LeaseAttempt::HeldByOther { expires_in });
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
        Ok(_) => Ok(LeaseAttempt::Acquired),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(lost_race),
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Request, Response};
    use kube::client::Body;

    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig {
            namespace: "default".to_owned(),
            name: "mas-reset-operator".to_owned(),
            identity: "a".to_owned(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The clock is paused, so the elapsed times below are virtual and exact.
    #[tokio::test(start_paused = true)]
    async fn hanging_renewal_gives_up_before_expiry() {
        let service = tower::service_fn(|_: Request<Body>| {
            std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>()
        });
        let client = Client::new(service, "default");
        let lost = CancellationToken::new();
        let started = tokio::time::Instant::now();

        let task = tokio::spawn(keep(
            client,
            config(),
            lost.clone(),
            CancellationToken::new(),
        ));
        let stopped = tokio::time::timeout(Duration::from_secs(60), lost.cancelled()).await;

        assert!(stopped.is_ok(), "a hanging renewal kept the leader running");
        assert!(
            started.elapsed() <= Duration::from_secs(13),
            "gave up after {:?}, later than lease duration minus retry period",
            started.elapsed()
        );
        task.await.expect("keep returns after giving up");
    }
}
