//! The executor: sends the requests of a run with bounded concurrency and
//! pacing, retries what is safe to retry, and checkpoints progress through
//! the [`Journal`].
//!
//! One coordinator loop owns the [`RunState`]. Workers send the requests of
//! one user each and report a [`WorkerOutcome`]; the coordinator records it,
//! dispatches the next user, and keeps one journal write in flight at a time.
//! A user is dispatched only when its position is below the durable claim.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::{BoxFuture, Fuse, FusedFuture, FutureExt};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::journal::{Checkpoint, Journal, JournalError};
use super::outcome::{Outcome, UserResult};
use super::pacer::Pacer;
use super::state::RunState;
use crate::mas::{
    Attempt, AuthError, Decision, MasClient, NotSentKind, PasswordBody, RetryPolicy, TokenProvider,
    decide,
};
use crate::metrics::Metrics;
use crate::password::PasswordVault;

/// Request the run sends for each user.
pub enum Action {
    /// `POST /v3/users/{id}/password`.
    Reset {
        /// Request body.
        body: PasswordBody,
        /// Value of the `emailPassword` query parameter.
        email_password: bool,
    },
    /// `POST /v3/users/{id}/password` with body `{"token": ...}` carrying
    /// the password the journal's vault stored for the user before its claim.
    ResetWithStoredPassword {
        /// Value of the `emailPassword` query parameter.
        email_password: bool,
    },
    /// `GET /v3/users/{id}` only: a dry run.
    Lookup,
}

/// Settings that may change while the run goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Upper limit of requests per second, shared by all workers.
    pub requests_per_second: Option<u32>,
}

/// Fixed settings of one run.
pub struct ExecutorConfig {
    /// Request to send.
    pub action: Action,
    /// Retry policy per user.
    pub retry: RetryPolicy,
    /// Stop after this many failed users.
    pub max_failures: Option<u64>,
    /// Users claimed per journal write; a run of N users needs about
    /// N / claim_size claim writes. The claim grows by this many users once
    /// half of it is used, so a crash turns at most 1.5 × claim_size users
    /// plus the requests in flight into `Unknown`.
    pub claim_size: usize,
    /// Maximum time a recorded outcome waits before it is written.
    pub flush_interval: Duration,
}

/// Reason the executor returned.
#[derive(Debug)]
pub enum StopReason {
    /// Every user has an outcome.
    Completed,
    /// Cancelled (suspend, deletion or shutdown); pending users stay pending.
    Cancelled,
    /// MAS rejected the credentials; pending users stay pending.
    AuthenticationFailed(AuthError),
    /// The TLS handshake with MAS failed, for example because its
    /// certificate is not trusted. A handshake fails for every user alike,
    /// so the run stops at the first failure and pending users stay pending.
    TlsHandshakeFailed {
        /// The handshake error and its usual fix.
        detail: String,
    },
    /// `maxFailures` users failed; the rest were not sent.
    MaxFailuresReached,
    /// Progress could not be recorded; the run must not go on.
    Journal(JournalError),
}

/// Result of one worker.
enum WorkerOutcome {
    /// The user has a final outcome.
    Final(Outcome),
    /// Nothing was applied for this user; it stays pending.
    Released,
    /// MAS rejected the credentials; nothing was applied for this user.
    AuthenticationFailed(AuthError),
    /// The TLS handshake failed; nothing was applied for this user.
    TlsHandshakeFailed(String),
}

/// The request of one user, with the password body resolved.
enum UserRequest {
    Reset {
        body: PasswordBody,
        email_password: bool,
    },
    Lookup,
}

/// State every worker of a run shares.
struct WorkerShared {
    client: MasClient,
    /// Passwords stored per user, when the journal has any.
    passwords: Option<Arc<PasswordVault>>,
    tokens: TokenProvider,
    action: Action,
    retry: RetryPolicy,
    pacer: Pacer,
    settings: watch::Receiver<Settings>,
    cancel: CancellationToken,
    metrics: Arc<Metrics>,
}

type PersistFuture = BoxFuture<'static, (Box<dyn Journal>, usize, Result<(), JournalError>)>;

/// Sends the pending users of a run and returns when all have an outcome or
/// the run must stop. Every outcome recorded in `state` has been handed to
/// the journal when this returns, except after a journal error.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    user_ids: Arc<Vec<String>>,
    state: &mut RunState,
    pending: Vec<usize>,
    client: MasClient,
    tokens: TokenProvider,
    config: ExecutorConfig,
    mut settings: watch::Receiver<Settings>,
    cancel: CancellationToken,
    journal: Box<dyn Journal>,
    metrics: Arc<Metrics>,
) -> StopReason {
    let total = state.total();
    let claim_size = config.claim_size.max(1);
    let low_water = claim_size / 2;

    // Workers stop before their next attempt once the run stops for any reason.
    let worker_cancel = cancel.child_token();
    let shared = Arc::new(WorkerShared {
        client,
        passwords: journal.passwords(),
        tokens,
        action: config.action,
        retry: config.retry,
        pacer: Pacer::new(),
        settings: settings.clone(),
        cancel: worker_cancel.clone(),
        metrics: metrics.clone(),
    });

    let mut queue: VecDeque<usize> = pending.into();
    let mut workers: JoinSet<(usize, WorkerOutcome)> = JoinSet::new();
    // List position of each worker's user, to find the user of a worker
    // that panicked.
    let mut worker_users: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut unsaved: Vec<(usize, Outcome)> = Vec::new();
    let mut journal_slot: Option<Box<dyn Journal>> = Some(journal);
    let mut persisting: Fuse<PersistFuture> = Fuse::terminated();
    let mut stop: Option<StopReason> = None;
    let mut last_flush = Instant::now();
    let mut flush_tick = tokio::time::interval(config.flush_interval);

    loop {
        // Dispatch users below the durable claim while there is room.
        if stop.is_none() {
            let concurrency = settings.borrow().concurrency.max(1);
            while workers.len() < concurrency {
                let Some(&index) = queue.front() else { break };
                if index >= state.claimed() {
                    break;
                }
                queue.pop_front();
                let user_id = user_ids[index].clone();
                let worker = workers.spawn(send_user(index, user_id, shared.clone()));
                worker_users.insert(worker.id(), index);
            }
        }

        // Keep one journal write in flight: extend the claim before the
        // dispatcher runs out of claimed users, and flush outcomes regularly.
        if persisting.is_terminated()
            && let Some(journal) = journal_slot.take()
        {
            let next = queue.front().copied();
            let needs_claim = stop.is_none()
                && next.is_some_and(|index| index + low_water >= state.claimed())
                && state.claimed() < total;
            let flush_due = !unsaved.is_empty() && last_flush.elapsed() >= config.flush_interval;

            if needs_claim || flush_due {
                let claimed = match next {
                    Some(index) if needs_claim => {
                        (index.max(state.claimed()) + claim_size).min(total)
                    }
                    _ => state.claimed(),
                };
                let checkpoint = Checkpoint {
                    claimed,
                    outcomes: std::mem::take(&mut unsaved),
                    counts: state.counts(),
                };
                persisting = persist(journal, checkpoint).fuse();
                last_flush = Instant::now();
            } else {
                journal_slot = Some(journal);
            }
        }

        let nothing_to_dispatch = stop.is_some() || queue.is_empty();
        if workers.is_empty() && persisting.is_terminated() && nothing_to_dispatch {
            break;
        }

        tokio::select! {
            Some(joined) = workers.join_next_with_id(), if !workers.is_empty() => {
                let (index, outcome) = match joined {
                    Ok((worker, pair)) => {
                        worker_users.remove(&worker);
                        pair
                    }
                    Err(error) => {
                        // A worker panicked and its user may have been sent.
                        // Left without an outcome, the user would fall below
                        // the final claim and be sent again on resume.
                        let Some(index) = worker_users.remove(&error.id()) else {
                            continue;
                        };
                        warn!(error = %error, index, "worker task failed; its user is recorded as Unknown");
                        (index, WorkerOutcome::Final(Outcome::worker_failed()))
                    }
                };
                match outcome {
                    WorkerOutcome::Final(outcome) => {
                        metrics.user_finished(outcome.result);
                        state.record(index, outcome.clone());
                        unsaved.push((index, outcome));
                        let failed = state.counts().failed;
                        if stop.is_none() && config.max_failures.is_some_and(|max| failed >= max) {
                            info!(failed, "maxFailures reached; sending no more users");
                            stop = Some(StopReason::MaxFailuresReached);
                            worker_cancel.cancel();
                        }
                    }
                    WorkerOutcome::Released => queue.push_front(index),
                    WorkerOutcome::AuthenticationFailed(error) => {
                        queue.push_front(index);
                        if stop.is_none() {
                            warn!(error = %error, "MAS rejected the credentials; pausing the run");
                            stop = Some(StopReason::AuthenticationFailed(error));
                            worker_cancel.cancel();
                        }
                    }
                    WorkerOutcome::TlsHandshakeFailed(detail) => {
                        queue.push_front(index);
                        if stop.is_none() {
                            warn!(error = %detail, "TLS handshake with MAS failed; pausing the run");
                            stop = Some(StopReason::TlsHandshakeFailed { detail });
                            worker_cancel.cancel();
                        }
                    }
                }
            }
            (journal, claimed, result) = &mut persisting, if !persisting.is_terminated() => {
                match result {
                    Ok(()) => {
                        state.set_claimed(claimed);
                        journal_slot = Some(journal);
                    }
                    Err(error) => {
                        warn!(error = %error, "journal write failed; stopping the run");
                        stop = Some(StopReason::Journal(error));
                        worker_cancel.cancel();
                        // The journal stays out of the slot: nothing more is written.
                    }
                }
            }
            _ = cancel.cancelled(), if stop.is_none() => {
                debug!("run cancelled; waiting for requests in flight");
                stop = Some(StopReason::Cancelled);
            }
            Ok(()) = settings.changed() => {}
            _ = flush_tick.tick() => {}
        }
    }

    // Final checkpoint. Nothing is in flight now, so every user without an
    // outcome was never sent and the claim can drop to the first of them.
    // NOTE: users above the lowered claim are then protected only by their
    // rows in the result ConfigMaps. Deleting those by hand while the run is
    // paused lets a resumed run send them again.
    if let Some(journal) = journal_slot.take() {
        let checkpoint = Checkpoint {
            claimed: state.first_without_outcome(),
            outcomes: std::mem::take(&mut unsaved),
            counts: state.counts(),
        };
        let (_, claimed, result) = persist(journal, checkpoint).await;
        match result {
            Ok(()) => state.set_claimed(claimed),
            Err(error) => {
                warn!(error = %error, "final journal write failed");
                if !matches!(stop, Some(StopReason::Journal(_))) {
                    stop = Some(StopReason::Journal(error));
                }
            }
        }
    }

    match stop {
        Some(reason) => reason,
        None if state.counts().remaining() == 0 => StopReason::Completed,
        // The queue emptied with users left: only users released by workers
        // of a stopped run can be left, so this is unreachable in practice.
        None => StopReason::Cancelled,
    }
}

fn persist(mut journal: Box<dyn Journal>, checkpoint: Checkpoint) -> PersistFuture {
    Box::pin(async move {
        let claimed = checkpoint.claimed;
        let result = journal.persist(checkpoint).await;
        (journal, claimed, result)
    })
}

/// Sends the requests for one user until its outcome is final.
async fn send_user(
    index: usize,
    user_id: String,
    shared: Arc<WorkerShared>,
) -> (usize, WorkerOutcome) {
    let outcome = send_user_attempts(index, &user_id, &shared).await;
    (index, outcome)
}

async fn send_user_attempts(index: usize, user_id: &str, shared: &WorkerShared) -> WorkerOutcome {
    let request = match &shared.action {
        Action::Reset {
            body,
            email_password,
        } => UserRequest::Reset {
            body: body.clone(),
            email_password: *email_password,
        },
        Action::ResetWithStoredPassword { email_password } => {
            let stored = shared
                .passwords
                .as_ref()
                .and_then(|passwords| passwords.password(index));
            let Some(password) = stored else {
                return WorkerOutcome::Final(missing_password_outcome());
            };
            UserRequest::Reset {
                body: PasswordBody::Password(password),
                email_password: *email_password,
            }
        }
        Action::Lookup => UserRequest::Lookup,
    };
    let mut attempts = 0u32;
    // Set once an attempt may have reached MAS: from then on, stopping
    // early makes the user Unknown instead of pending.
    let mut maybe_applied: Option<Attempt> = None;
    let mut renewals = 0u32;

    loop {
        let stopped = |maybe_applied: Option<Attempt>, attempts| match maybe_applied {
            Some(attempt) => {
                WorkerOutcome::Final(outcome_of(UserResult::Unknown, &attempt, attempts))
            }
            None => WorkerOutcome::Released,
        };
        if shared.cancel.is_cancelled() {
            return stopped(maybe_applied, attempts);
        }

        let settings = &shared.settings;
        tokio::select! {
            () = shared.pacer.wait(|| settings.borrow().requests_per_second) => {}
            () = shared.cancel.cancelled() => return stopped(maybe_applied, attempts),
        }

        let token = match shared.tokens.token().await {
            Ok(token) => token,
            Err(error) => return authentication_failed(error, maybe_applied, attempts),
        };

        attempts += 1;
        shared.metrics.request_started();
        let attempt = match &request {
            UserRequest::Reset {
                body,
                email_password,
            } => {
                shared
                    .client
                    .reset_password(user_id, body, *email_password, &token)
                    .await
            }
            UserRequest::Lookup => shared.client.get_user(user_id, &token).await,
        };
        shared.metrics.request_finished(&attempt);

        // A failed handshake is a fault of the connection, not of this
        // user, so the run stops instead of retrying user by user.
        if let Attempt::NotSent {
            kind: NotSentKind::TlsHandshake,
            detail,
        } = &attempt
        {
            return match maybe_applied {
                Some(earlier) => {
                    WorkerOutcome::Final(outcome_of(UserResult::Unknown, &earlier, attempts))
                }
                None => WorkerOutcome::TlsHandshakeFailed(detail.clone()),
            };
        }

        let jitter: f64 = rand::random();
        match decide(&shared.retry, attempts, &attempt, SystemTime::now(), jitter) {
            Decision::Succeeded => {
                if let (
                    Some(passwords),
                    Attempt::Answered {
                        generated_password: Some(password),
                        ..
                    },
                ) = (&shared.passwords, &attempt)
                {
                    passwords.keep_returned(index, password.clone());
                }
                return WorkerOutcome::Final(outcome_of(UserResult::Succeeded, &attempt, attempts));
            }
            Decision::Failed => {
                // A later failure does not undo an earlier attempt that may
                // have reached MAS, so such a user stays Unknown.
                let result = if maybe_applied.is_some() {
                    UserResult::Unknown
                } else {
                    UserResult::Failed
                };
                return WorkerOutcome::Final(outcome_of(result, &attempt, attempts));
            }
            Decision::Unknown => {
                return WorkerOutcome::Final(outcome_of(UserResult::Unknown, &attempt, attempts));
            }
            Decision::RetryAfter(delay) => {
                if matches!(attempt, Attempt::Indeterminate { .. }) {
                    maybe_applied = Some(attempt);
                }
                debug!(
                    attempt = attempts,
                    delay_ms = delay.as_millis() as u64,
                    "retrying user"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shared.cancel.cancelled() => return stopped(maybe_applied, attempts),
                }
            }
            Decision::Unauthorized => {
                // A 401 applied nothing. Renew the token at most twice per
                // user, so a key that keeps failing cannot loop.
                if renewals >= 2 {
                    return authentication_failed(
                        AuthError::TokenRejected,
                        maybe_applied,
                        attempts,
                    );
                }
                renewals += 1;
                if let Err(error) = shared.tokens.on_unauthorized(&token).await {
                    return authentication_failed(error, maybe_applied, attempts);
                }
            }
        }
    }
}

/// Outcome of a user whose credentials were rejected. A 401 applied nothing,
/// but an earlier attempt without a response may have, and then the user is
/// Unknown instead of going back to the queue.
fn authentication_failed(
    error: AuthError,
    maybe_applied: Option<Attempt>,
    attempts: u32,
) -> WorkerOutcome {
    match maybe_applied {
        Some(attempt) => WorkerOutcome::Final(outcome_of(UserResult::Unknown, &attempt, attempts)),
        None => WorkerOutcome::AuthenticationFailed(error),
    }
}

/// Outcome of a user whose stored password is missing: nothing is sent,
/// because a password that was never stored would lock the user out.
fn missing_password_outcome() -> Outcome {
    Outcome {
        result: UserResult::Failed,
        http_status: None,
        error_id: None,
        message: Some(
            "no stored password for this user, so nothing was sent; create a new BulkPasswordReset for this user".to_owned(),
        ),
        attempts: 0,
    }
}

/// Builds the stored outcome from the last attempt.
fn outcome_of(result: UserResult, attempt: &Attempt, attempts: u32) -> Outcome {
    let (http_status, error_id, message) = match attempt {
        Attempt::Answered { status, error, .. } => (
            Some(*status),
            error.as_ref().and_then(|error| error.id.clone()),
            error.as_ref().and_then(|error| error.message.clone()),
        ),
        // The summary names the failed step ("not sent (connect)", "outcome
        // unknown (timeout)") before the cause, so the result table shows
        // whether MAS may have received the request.
        Attempt::NotSent { .. } | Attempt::Indeterminate { .. } => {
            (None, None, Some(attempt.to_string()))
        }
    };
    Outcome {
        result,
        http_status,
        error_id,
        message,
        attempts,
    }
}
