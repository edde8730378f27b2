//! The task that carries out one run: reads the inputs, resumes from the
//! recorded progress, sends, and writes the final phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use super::context::{Context, Parked, RunHandle};
use super::error::InputError;
use super::inputs::{self, LoadError, NewPasswords, RunInputs};
use super::passwords::{self, ReadError};
use super::recorder::{RunRecorder, SharedJournal};
use super::run_record;
use super::status::{self, PhaseReason, REJECTED_ROWS_CAP};
use crate::api::{BulkPasswordReset, Phase, RejectedRow};
use crate::mas::{AuthError, MasClient, RetryPolicy, TokenProvider};
use crate::password::PasswordVault;
use crate::run::{
    self, Action, Checkpoint, ExecutorConfig, Journal, RunState, Settings, StopReason,
};

/// Wait before retrying a run whose inputs are missing or invalid.
const INPUT_RETRY: Duration = Duration::from_secs(30);

/// Wait before retrying after MAS was unreachable or a write failed.
const TRANSIENT_RETRY: Duration = Duration::from_secs(15);

/// Wait before retrying rejected credentials that did not change.
const CREDENTIALS_RETRY: Duration = Duration::from_secs(3600);

/// Default requests in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Settings of a run that may change while it goes on.
pub fn settings_of(resource: &BulkPasswordReset) -> Settings {
    Settings {
        concurrency: resource
            .spec
            .concurrency
            .map_or(DEFAULT_CONCURRENCY, |value| value.max(1) as usize),
        requests_per_second: resource
            .spec
            .requests_per_second
            .map(|value| value.max(1) as u32),
    }
}

/// Starts the run task of `resource` and registers it in the context.
pub fn spawn(ctx: Arc<Context>, resource: Arc<BulkPasswordReset>) {
    let uid = resource.uid().unwrap_or_default();
    let cancel = ctx.shutdown.child_token();
    let (settings_tx, settings_rx) = watch::channel(settings_of(&resource));
    let (finished_tx, finished_rx) = watch::channel(false);
    let deleting = Arc::new(AtomicBool::new(false));

    ctx.runs
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(
            uid.clone(),
            RunHandle {
                cancel: cancel.clone(),
                settings: settings_tx,
                finished: finished_rx,
                deleting: deleting.clone(),
            },
        );

    let span = info_span!("run", namespace = %resource.namespace().unwrap_or_default(), name = %resource.name_any());
    tokio::spawn(
        async move {
            let parked = run(&ctx, &resource, cancel, settings_rx, &deleting).await;

            // Park before leaving `runs`: a reconcile in between would find
            // neither and start the run again at once.
            if let Some(parked) = parked {
                ctx.parked
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(uid.clone(), parked);
            }
            {
                let mut runs = ctx
                    .runs
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                runs.remove(&uid);
            }
            let _ = finished_tx.send(true);
            // Reconcile again now that no task runs: a final phase does
            // nothing, a parked run requeues itself. A deleted resource is
            // gone from the controller's cache, so it is not triggered.
            if !deleting.load(Ordering::Relaxed) {
                let _ = ctx.trigger.send(ObjectRef::from_obj(&*resource));
            }
        }
        .instrument(span),
    );
}

/// Carries out the run; returns how long to wait before the next attempt
/// when the run stopped without a final phase.
async fn run(
    ctx: &Context,
    resource: &BulkPasswordReset,
    cancel: CancellationToken,
    settings: watch::Receiver<Settings>,
    deleting: &AtomicBool,
) -> Option<Parked> {
    let previous = resource.status.clone().unwrap_or_default();
    let holder = format!("{}/{:08x}", ctx.config.identity, rand::random::<u32>());

    // 1. Inputs.
    let inputs = match inputs::load(&ctx.client, resource, &ctx.config.allowed_hosts).await {
        Ok(inputs) => inputs,
        Err(LoadError::Input(problem)) => {
            report_input_problem(ctx, resource, &holder, &problem).await;
            return Some(parked_for(INPUT_RETRY, None));
        }
        Err(LoadError::Kube(error)) => {
            warn!(error = %error, "reading inputs failed; retrying");
            return Some(parked_for(TRANSIENT_RETRY, None));
        }
    };
    let RunInputs {
        users,
        source_names,
        credentials,
        credentials_version,
        password,
        client_config,
    } = inputs;

    if client_config.insecure_skip_tls_verify {
        ctx.publish(
            resource,
            EventType::Warning,
            "InsecureTls",
            "ReadInputs",
            "spec.tls.insecureSkipTlsVerify is true: the MAS certificate is not verified, so anyone on the network path can read the access token".to_owned(),
        )
        .await;
    }

    // 2. A run that already sent must keep the list it started with.
    let digest = users.digest();
    if let Some(progress) = &previous.progress
        && progress.list_digest != digest
    {
        let message = "the user list changed after the run started sending; restore the original list to resume, or create a new BulkPasswordReset for the new list".to_owned();
        warn!(%message);
        let why = PhaseReason::new(Phase::Paused, "UserListChanged", message.clone());
        write_phase_only(ctx, resource, &holder, &why).await;
        ctx.publish(
            resource,
            EventType::Warning,
            "UserListChanged",
            "ReadInputs",
            message,
        )
        .await;
        return Some(parked_for(INPUT_RETRY, None));
    }

    // A new resource with the name and list of a finished earlier run waits
    // for an explicit approval instead of resetting everyone again.
    if previous.progress.is_none() {
        let config_maps: Api<ConfigMap> = Api::namespaced(
            ctx.client.clone(),
            &resource.namespace().unwrap_or_default(),
        );
        match run_record::earlier_run(&config_maps, resource, &digest).await {
            Ok(Some((completed_at, summary))) => {
                let message = format!(
                    "a BulkPasswordReset with this name and the same user list already finished at {completed_at} ({summary}); nothing is sent. To reset these users again, use a new name, or set annotation {}=true on this resource",
                    run_record::ALLOW_RERUN_ANNOTATION
                );
                warn!("earlier run with the same list found; waiting for approval");
                let why = PhaseReason::new(Phase::Paused, "AlreadyRun", message.clone());
                write_phase_only(ctx, resource, &holder, &why).await;
                ctx.publish(
                    resource,
                    EventType::Warning,
                    "AlreadyRun",
                    "ReadInputs",
                    message,
                )
                .await;
                return Some(parked_for(INPUT_RETRY, None));
            }
            Ok(None) => {}
            Err(error) => {
                warn!(error = %error, "reading the run record failed; retrying");
                return Some(parked_for(TRANSIENT_RETRY, None));
            }
        }
    }

    // 3. Resume: outcomes on record, and the claim.
    let users = Arc::new(users);
    let source_names = Arc::new(source_names);
    let mut recorder = RunRecorder::new(&ctx.client, resource, users.clone(), source_names, holder);
    let records = match recorder.load_records().await {
        Ok(records) => records,
        Err(error) => {
            warn!(error = %error, "reading result ConfigMaps failed; retrying");
            return Some(parked_for(TRANSIENT_RETRY, None));
        }
    };
    // Results without progress marks: the claim is lost, so nobody can
    // tell which users above the recorded ones were sent. Wait for a person.
    if previous.progress.is_none() && !records.is_empty() {
        let message = "status.progress is missing but result ConfigMaps exist, so the operator cannot tell which users were already sent; nothing more is sent. Check the results, then create a new BulkPasswordReset for the users without a result".to_owned();
        warn!(
            recorded = records.len(),
            "progress marks lost; not resuming"
        );
        let why = PhaseReason::new(Phase::Paused, "ProgressLost", message.clone());
        write_phase_only(ctx, resource, recorder_holder(&recorder), &why).await;
        ctx.publish(
            resource,
            EventType::Warning,
            "ProgressLost",
            "Resume",
            message,
        )
        .await;
        return Some(parked_for(CREDENTIALS_RETRY, None));
    }
    let claimed = previous
        .progress
        .as_ref()
        .map_or(0, |progress| progress.claimed.max(0) as usize);
    let total = users.users.len();
    let (mut state, recovered) = RunState::restore(total, claimed, records);
    let resumed = previous.start_time.is_some();

    // Per-user passwords: those stored by an earlier attempt are kept.
    let vault = passwords::stores_passwords(resource).then(|| {
        Arc::new(match &password {
            NewPasswords::Random(rules) => PasswordVault::assigning(rules.clone()),
            NewPasswords::SameBody(_) => PasswordVault::collecting(),
        })
    });
    if let Some(vault) = &vault {
        match recorder
            .load_passwords(&ctx.client, resource, vault.clone())
            .await
        {
            Ok(()) => {}
            Err(ReadError::NotOwned { name }) => {
                let problem = InputError::PasswordSecretNotOwned {
                    namespace: resource.namespace().unwrap_or_default(),
                    name,
                };
                report_input_problem(ctx, resource, recorder.holder(), &problem).await;
                return Some(parked_for(INPUT_RETRY, None));
            }
            Err(error @ ReadError::Kube { .. }) => {
                warn!(error = %error, "reading password Secrets failed; retrying");
                return Some(parked_for(TRANSIENT_RETRY, None));
            }
        }
    }

    // 4. The MAS client.
    let client = match MasClient::new(client_config) {
        Ok(client) => client,
        Err(problem) => {
            let message = format!("the MAS client could not be set up: {problem}; check spec.tls");
            let why = PhaseReason::new(Phase::Failed, "InvalidTlsSettings", message.clone());
            write_phase_only(ctx, resource, recorder_holder(&recorder), &why).await;
            ctx.publish(
                resource,
                EventType::Warning,
                "InvalidTlsSettings",
                "ReadInputs",
                message,
            )
            .await;
            return None;
        }
    };
    let tokens = TokenProvider::new(client.clone(), credentials);

    // 5. Running. Recovered Unknown users are recorded with this write.
    {
        let status = recorder.status_mut();
        status.start_time.get_or_insert_with(status::now);
        status.completion_time = None;
        status.rejected_rows = rejected_rows(&users, &recorder_sources(resource));
        if !recovered.is_empty() {
            let progress = status.progress.get_or_insert_with(Default::default);
            progress.recovered_unknown =
                Some(progress.recovered_unknown.unwrap_or(0) + recovered.len() as i64);
        }
    }
    let recovered_outcomes: Vec<_> = recovered
        .iter()
        .filter_map(|index| {
            state
                .outcome(*index)
                .map(|outcome| (*index, outcome.clone()))
        })
        .collect();
    let recorder = Arc::new(Mutex::new(recorder));
    let mut journal = SharedJournal::new(recorder.clone(), vault);
    let checkpoint = Checkpoint {
        claimed: state.claimed(),
        outcomes: recovered_outcomes,
        counts: state.counts(),
    };
    {
        let mut recorder = recorder.lock().await;
        status::set_phase(
            recorder.status_mut(),
            &PhaseReason::new(
                Phase::Running,
                "Running",
                if resource.spec.dry_run.unwrap_or(false) {
                    format!(
                        "dry run: checking that {total} users exist with GET /v3/users/{{id}}; no password is changed"
                    )
                } else {
                    format!("sending password requests for {total} users")
                },
            ),
            resource.metadata.generation,
        );
    }
    if let Err(error) = journal.persist(checkpoint).await {
        warn!(error = %error, "could not record the start of the run");
        return Some(parked_for(TRANSIENT_RETRY, None));
    }

    let list = &users;
    let (reason, note) = if resumed {
        (
            "Resumed",
            format!("resumed: {} of {total} users done", state.counts().done()),
        )
    } else {
        (
            "Started",
            format!(
                "started: {total} users, {} rejected rows, {} duplicate rows, {} blank rows{}",
                list.rejected.len(),
                list.duplicates.len(),
                list.skipped_rows,
                list_details(list)
            ),
        )
    };
    info!(
        total,
        done = state.counts().done(),
        "run {}",
        reason.to_lowercase()
    );
    ctx.publish(resource, EventType::Normal, reason, "Run", note)
        .await;
    if !recovered.is_empty() {
        ctx.publish(
            resource,
            EventType::Warning,
            "UsersUnknown",
            "Run",
            format!(
                "{} users may have been sent just before the operator stopped and have no recorded answer; they are reported as Unknown and not sent again (set retryUnknown: true to send them again)",
                recovered.len()
            ),
        )
        .await;
    }

    // 6. Send.
    let spec = &resource.spec;
    let email_password = spec.email_password.unwrap_or(true);
    let action = match password {
        _ if spec.dry_run.unwrap_or(false) => Action::Lookup,
        NewPasswords::SameBody(body) => Action::Reset {
            body,
            email_password,
        },
        NewPasswords::Random(_) => Action::ResetWithStoredPassword { email_password },
    };
    let mut retry = RetryPolicy::default();
    if let Some(max_attempts) = spec.max_attempts {
        retry.max_attempts = max_attempts.max(1) as u32;
    }
    retry.retry_indeterminate = spec.retry_unknown.unwrap_or(false);
    let config = ExecutorConfig {
        action,
        retry,
        max_failures: spec.max_failures.map(|value| value.max(1) as u64),
        claim_size: ctx.config.claim_size,
        flush_interval: ctx.config.flush_interval,
    };
    let started = Instant::now();
    let user_ids = Arc::new(
        users
            .users
            .iter()
            .map(|user| user.id.clone())
            .collect::<Vec<_>>(),
    );
    let pending = state.pending(spec.retry_unknown.unwrap_or(false));
    let stop = run::execute(
        user_ids,
        &mut state,
        pending,
        client,
        tokens,
        config,
        settings,
        cancel,
        Box::new(journal),
        ctx.metrics.clone(),
    )
    .await;

    // 7. Final phase.
    if matches!(stop, StopReason::Cancelled) && deleting.load(Ordering::Relaxed) {
        info!("run stopped: the resource is being deleted");
        return None;
    }
    finish(
        ctx,
        resource,
        &recorder,
        &state,
        stop,
        started,
        &credentials_version,
    )
    .await
}

/// Writes the phase that follows `stop` and returns when to try again.
async fn finish(
    ctx: &Context,
    resource: &BulkPasswordReset,
    recorder: &Mutex<RunRecorder>,
    state: &RunState,
    stop: StopReason,
    started: Instant,
    credentials_version: &str,
) -> Option<Parked> {
    let counts = state.counts();
    let dry_run = resource.spec.dry_run.unwrap_or(false);
    let mut summary = if dry_run {
        format!(
            "dry run: {} users exist and would be reset, {} not found or failed, {} unknown, {} not checked of {} users",
            counts.succeeded,
            counts.failed,
            counts.unknown,
            counts.remaining(),
            counts.total
        )
    } else {
        format!(
            "{} succeeded, {} failed, {} unknown, {} not sent of {} users",
            counts.succeeded,
            counts.failed,
            counts.unknown,
            counts.remaining(),
            counts.total
        )
    };
    let skipped_rows = recorder.lock().await.rows_not_sent();
    if skipped_rows > 0 {
        summary.push_str(&format!(
            "; {skipped_rows} rows rejected or duplicate, see status.rejectedRows"
        ));
    }

    let (why, event_type, parked, final_phase) = match stop {
        StopReason::Completed => {
            let why = if counts.failed + counts.unknown == 0 {
                let reason = if dry_run {
                    "DryRunCompleted"
                } else {
                    "Completed"
                };
                PhaseReason::new(Phase::Succeeded, reason, summary.clone())
            } else if counts.succeeded == 0 {
                PhaseReason::new(
                    Phase::Failed,
                    "AllUsersFailed",
                    format!("{summary}; see status.users and the result ConfigMaps"),
                )
            } else {
                PhaseReason::new(
                    Phase::PartiallyFailed,
                    "SomeUsersFailed",
                    format!("{summary}; see status.users and the result ConfigMaps"),
                )
            };
            let event_type = if why.phase == Phase::Succeeded {
                EventType::Normal
            } else {
                EventType::Warning
            };
            (why, event_type, None, true)
        }
        StopReason::MaxFailuresReached => (
            PhaseReason::new(
                Phase::Failed,
                "MaxFailuresReached",
                format!(
                    "stopped after spec.maxFailures users failed: {summary}; fix the cause and create a new BulkPasswordReset for the users not sent"
                ),
            ),
            EventType::Warning,
            None,
            true,
        ),
        StopReason::Cancelled if ctx.shutdown.is_cancelled() => {
            info!(%summary, "run stopped for operator shutdown; it resumes on the next start");
            return None;
        }
        // The finalizer cancelled the run and deletes its results next; a
        // Paused phase and a Suspended Event would be false.
        StopReason::Cancelled if is_being_deleted(ctx, resource).await => {
            info!(%summary, "run stopped because its resource is being deleted");
            return None;
        }
        StopReason::Cancelled => (
            PhaseReason::new(
                Phase::Paused,
                "Suspended",
                format!("suspended by spec.suspend: {summary}; set suspend: false to resume"),
            ),
            EventType::Normal,
            None,
            false,
        ),
        StopReason::AuthenticationFailed(problem) => {
            let retry = match problem {
                AuthError::Unreachable { .. } => parked_for(TRANSIENT_RETRY, None),
                _ => parked_for(CREDENTIALS_RETRY, Some(credentials_version.to_owned())),
            };
            (
                PhaseReason::new(
                    Phase::Paused,
                    "AuthenticationFailed",
                    format!("{problem} ({summary})"),
                ),
                EventType::Warning,
                Some(retry),
                false,
            )
        }
        StopReason::TlsHandshakeFailed { detail } => (
            PhaseReason::new(
                Phase::Paused,
                "TlsHandshakeFailed",
                format!(
                    "{detail}; {}; the operator tries again every {} seconds ({summary})",
                    tls_fix(resource),
                    INPUT_RETRY.as_secs()
                ),
            ),
            EventType::Warning,
            Some(parked_for(INPUT_RETRY, None)),
            false,
        ),
        StopReason::Journal(problem) => {
            error!(error = %problem, "run stopped: progress could not be recorded");
            return Some(parked_for(TRANSIENT_RETRY, None));
        }
    };

    let mut recorder = recorder.lock().await;
    if final_phase && let Err(problem) = recorder.drop_unset_passwords(state).await {
        warn!(error = %problem, "removing passwords of users not reset failed; the password Secrets also list them");
    }
    recorder.update_from(state, state.claimed(), final_phase);
    if final_phase {
        recorder.status_mut().completion_time = Some(status::now());
        ctx.metrics.run_finished(started.elapsed().as_secs_f64());
        if !dry_run {
            let config_maps: Api<ConfigMap> = Api::namespaced(
                ctx.client.clone(),
                &resource.namespace().unwrap_or_default(),
            );
            let completed_at = status::now().0.to_string();
            if let Err(error) = run_record::write(
                &config_maps,
                resource,
                &recorder.list_digest(),
                &completed_at,
                &summary,
            )
            .await
            {
                warn!(error = %error, "writing the run record failed; a re-created resource could send again");
            }
        }
    }
    if let Err(problem) = recorder.write_phase(&why).await {
        warn!(error = %problem, "writing the final phase failed; retrying");
        return Some(parked_for(TRANSIENT_RETRY, None));
    }
    info!(phase = ?why.phase, reason = %why.reason, %summary, "run stopped");
    ctx.publish(
        resource,
        event_type,
        &why.reason,
        "Run",
        why.message.clone(),
    )
    .await;
    parked
}

/// Says where the CA certificate of MAS goes, depending on whether the
/// resource names a CA bundle. `spec.tls` cannot change after creation, so
/// without a bundle the fix is a new resource.
fn tls_fix(resource: &BulkPasswordReset) -> String {
    let tls = resource.spec.tls.as_ref();
    match tls.and_then(|tls| tls.ca_bundle.as_ref()) {
        Some(bundle) => {
            let object = match (&bundle.secret_name, &bundle.config_map_name) {
                (Some(name), _) => format!("Secret {name}"),
                (None, Some(name)) => format!("ConfigMap {name}"),
                (None, None) => "the object".to_owned(),
            };
            format!(
                "put the PEM certificate of the CA that signed the MAS API certificate into {object} key {:?}, which spec.tls.caBundle names",
                bundle.key
            )
        }
        None => "spec.tls.caBundle is not set, so only the system trust store is used; create a new BulkPasswordReset whose spec.tls.caBundle names the MAS CA certificate (for example key ca.crt of Secret <instance>-coreapi-cert-internal in namespace mas-<instance>-core, copied into this namespace)".to_owned(),
    }
}

/// Sets phase Pending with the problem as reason and message, and publishes
/// it as a Warning Event.
async fn report_input_problem(
    ctx: &Context,
    resource: &BulkPasswordReset,
    holder: &str,
    problem: &InputError,
) {
    warn!(reason = problem.reason(), error = %problem, "run cannot start");
    let why = PhaseReason::new(Phase::Pending, problem.reason(), problem.to_string());
    write_phase_only(ctx, resource, holder, &why).await;
    ctx.publish(
        resource,
        EventType::Warning,
        problem.reason(),
        "ReadInputs",
        problem.to_string(),
    )
    .await;
}

/// Returns whether the resource is gone, replaced by one of the same name,
/// or has a deletion timestamp. When it cannot be read, it counts as not
/// deleted.
async fn is_being_deleted(ctx: &Context, resource: &BulkPasswordReset) -> bool {
    let api: Api<BulkPasswordReset> = Api::namespaced(
        ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    match api.get_opt(&resource.name_any()).await {
        Ok(Some(live)) => {
            live.metadata.deletion_timestamp.is_some() || live.uid() != resource.uid()
        }
        Ok(None) => true,
        Err(error) => {
            warn!(error = %error, "reading the resource failed; reporting the stop as a suspend");
            false
        }
    }
}

/// Writes a phase for a run that has not started sending.
async fn write_phase_only(
    ctx: &Context,
    resource: &BulkPasswordReset,
    holder: &str,
    why: &PhaseReason,
) {
    let users = Arc::new(crate::userlist::UserList::default());
    let mut recorder = RunRecorder::new(
        &ctx.client,
        resource,
        users,
        Arc::default(),
        holder.to_owned(),
    );
    if let Err(error) = recorder.write_phase(why).await {
        warn!(error = %error, "writing status failed");
    }
}

fn recorder_holder(recorder: &RunRecorder) -> &str {
    recorder.holder()
}

fn recorder_sources(resource: &BulkPasswordReset) -> Vec<String> {
    resource
        .spec
        .user_list
        .sources
        .iter()
        .map(|source| format!("{}/{}", source.config_map_name, source.key))
        .collect()
}

fn rejected_rows(users: &crate::userlist::UserList, sources: &[String]) -> Vec<RejectedRow> {
    let rejected = users.rejected.iter().map(|rejection| RejectedRow {
        source: sources.get(rejection.source).cloned().unwrap_or_default(),
        row: rejection.row as i64,
        reason: rejection.reason.to_string(),
    });
    let duplicates = users.duplicates.iter().map(|duplicate| RejectedRow {
        source: sources.get(duplicate.source).cloned().unwrap_or_default(),
        row: duplicate.row as i64,
        reason: format!(
            "duplicate of row {} in {}; the user is sent once",
            duplicate.first_row,
            sources
                .get(duplicate.first_source)
                .cloned()
                .unwrap_or_default()
        ),
    });
    rejected.chain(duplicates).take(REJECTED_ROWS_CAP).collect()
}

/// Describes how the list was read, for the Started Event: trimmed values and the
/// parser's notes (delimiter, column, encoding).
fn list_details(list: &crate::userlist::UserList) -> String {
    let mut details = String::new();
    if list.trimmed_values > 0 {
        details.push_str(&format!(
            "; {} user IDs had surrounding spaces removed",
            list.trimmed_values
        ));
    }
    for note in &list.notes {
        details.push_str("; ");
        details.push_str(note);
    }
    details
}

fn parked_for(wait: Duration, credentials_version: Option<String>) -> Parked {
    Parked {
        until: Instant::now() + wait,
        credentials_version,
    }
}
