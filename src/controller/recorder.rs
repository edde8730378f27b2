//! The recorder: the one writer of a run's status and result ConfigMaps.
//!
//! Status writes carry the `resourceVersion` of the last write as a
//! precondition. When the API server answers 409 Conflict, the recorder
//! reads the object again: if the progress marks are still the ones it last
//! wrote (only the spec or metadata changed), it writes again; otherwise
//! another instance took the run over, and this one stops.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::outcome_table::OutcomeTable;
use super::results::{self, ResultRecord};
use super::status::{self, INLINE_ALL_USERS_MAX, INLINE_USERS_CAP, PhaseReason};
use crate::api::{BulkPasswordReset, BulkPasswordResetStatus, FIELD_MANAGER, Progress, ResultsRef};
use crate::run::{Checkpoint, Journal, JournalError, Outcome, RunState};
use crate::userlist::UserList;

/// How long a write is retried while the API server is unreachable or
/// answers 5xx, for example during an API server restart.
const WRITE_RETRY_DEADLINE: Duration = Duration::from_secs(120);

/// Writes a run's progress: result ConfigMaps first, then status.
pub struct RunRecorder {
    resources: Api<BulkPasswordReset>,
    config_maps: Api<ConfigMap>,
    name: String,
    owner: OwnerReference,
    generation: Option<i64>,
    users: Arc<UserList>,
    source_names: Arc<Vec<String>>,
    status: BulkPasswordResetStatus,
    resource_version: Option<String>,
    holder: String,
    outcomes: OutcomeTable,
    /// Progress marks the server holds after the last write of this
    /// recorder (at first: as read).
    written_progress: Option<Progress>,
}

impl RunRecorder {
    /// A recorder for `resource`, writing as `holder`.
    pub fn new(
        client: &Client,
        resource: &BulkPasswordReset,
        users: Arc<UserList>,
        source_names: Arc<Vec<String>>,
        holder: String,
    ) -> Self {
        let namespace = resource.namespace().unwrap_or_default();
        let total = users.users.len();
        Self {
            resources: Api::namespaced(client.clone(), &namespace),
            config_maps: Api::namespaced(client.clone(), &namespace),
            name: resource.name_any(),
            owner: resource.controller_owner_ref(&()).unwrap_or_default(),
            generation: resource.metadata.generation,
            users,
            source_names,
            status: resource.status.clone().unwrap_or_default(),
            resource_version: resource.metadata.resource_version.clone(),
            holder,
            outcomes: OutcomeTable::new(total, total <= INLINE_ALL_USERS_MAX),
            written_progress: resource
                .status
                .as_ref()
                .and_then(|status| status.progress.clone()),
        }
    }

    /// Name of the operator instance this recorder writes as.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Mutable status, for the run task's own fields (times, rejected rows).
    pub fn status_mut(&mut self) -> &mut BulkPasswordResetStatus {
        &mut self.status
    }

    /// Reads the result ConfigMaps of this run. Rows whose user ID does not
    /// match the list at their position are ignored, so a damaged or foreign
    /// row can only make a user Unknown, never skip it silently.
    pub async fn load_records(&mut self) -> kube::Result<Vec<(usize, Outcome)>> {
        let records = results::read_all(&self.config_maps, &self.name, &self.owner.uid).await?;

        let mut loaded = Vec::with_capacity(records.len());
        for record in records {
            let matches = self
                .users
                .users
                .get(record.index)
                .is_some_and(|user| user.id == record.user_id);
            if !matches {
                warn!(run = %self.name, index = record.index, "result row does not match the user list; ignoring it");
                continue;
            }
            self.outcomes.insert(record.index, record.outcome.clone());
            loaded.push((record.index, record.outcome));
        }

        // Everything loaded is stored already: complete chunks leave memory.
        let chunks: BTreeSet<usize> = loaded
            .iter()
            .map(|(index, _)| results::chunk_of(*index))
            .collect();
        for chunk in chunks {
            self.outcomes.mark_written(chunk);
        }
        Ok(loaded)
    }

    /// Sets the phase and writes status.
    pub async fn write_phase(&mut self, why: &PhaseReason) -> Result<(), JournalError> {
        status::set_phase(&mut self.status, why, self.generation);
        self.write_status().await
    }

    /// Updates counts, progress and inline users from `state` without
    /// writing; `stopped` counts users without an outcome as not sent.
    pub fn update_from(&mut self, state: &RunState, claimed: usize, stopped: bool) {
        let users = &self.users;
        self.status.counts = Some(status::counts(
            state.counts(),
            users.skipped_rows,
            users.rejected.len(),
            users.duplicates.len(),
            stopped,
        ));
        self.update_progress(claimed);
    }

    fn update_progress(&mut self, claimed: usize) {
        let previous = self.status.progress.take().unwrap_or_default();
        self.status.progress = Some(Progress {
            list_digest: self.users.digest(),
            claimed: claimed as i64,
            recorded: self.outcomes.recorded() as i64,
            holder: Some(self.holder.clone()),
            recovered_unknown: previous.recovered_unknown,
        });
        self.status.results = Some(ResultsRef {
            config_map_count: self.outcomes.chunks().count() as i64,
            label_selector: results::run_selector(&self.name),
            password_secret: None,
        });
        self.update_inline_users();
    }

    fn update_inline_users(&mut self) {
        let (shown, omitted) = self.outcomes.inline(INLINE_USERS_CAP);
        self.status.users = shown
            .into_iter()
            .map(|(index, outcome)| {
                let user = &self.users.users[index];
                status::user_outcome(&user.id, user.row, outcome)
            })
            .collect();
        self.status.users_omitted = (omitted > 0).then_some(omitted as i64);
    }

    /// Writes the chunks that `checkpoint` touches, then status.
    async fn persist_checkpoint(&mut self, checkpoint: Checkpoint) -> Result<(), JournalError> {
        let touched: BTreeSet<usize> = checkpoint
            .outcomes
            .iter()
            .map(|(index, _)| results::chunk_of(*index))
            .collect();
        for chunk in &touched {
            self.load_chunk_if_dropped(*chunk).await?;
        }
        for (index, outcome) in checkpoint.outcomes {
            self.outcomes.insert(index, outcome);
        }

        for chunk in touched {
            // `insert` above put every touched chunk into memory.
            let Some(text) = self.encode_chunk(chunk) else {
                continue;
            };
            let (config_maps, name, owner) = (&self.config_maps, &self.name, &self.owner);
            retry_transient("write result ConfigMap", || {
                results::apply_chunk(config_maps, name, chunk, owner, text.clone())
            })
            .await?;
            self.outcomes.mark_written(chunk);
        }

        let users = &self.users;
        let mut counts = status::counts(
            checkpoint.counts,
            users.skipped_rows,
            users.rejected.len(),
            users.duplicates.len(),
            false,
        );
        counts.not_sent = 0;
        self.status.counts = Some(counts);
        self.update_progress(checkpoint.claimed);
        self.write_status().await
    }

    /// Reads a chunk that left memory back from its ConfigMap, so that a
    /// new outcome in it is written next to the stored ones. A run records
    /// a user twice only when it sends an `Unknown` user again, and chunks
    /// with `Unknown` outcomes stay in memory, so this is a fallback.
    async fn load_chunk_if_dropped(&mut self, chunk: usize) -> Result<(), JournalError> {
        if self.outcomes.is_loaded(chunk) {
            return Ok(());
        }
        let (config_maps, name, uid) = (&self.config_maps, &self.name, &self.owner.uid);
        let records = retry_transient("read result ConfigMap", || {
            results::read_chunk(config_maps, name, chunk, uid)
        })
        .await?;
        debug!(run = %self.name, chunk, rows = records.len(), "result ConfigMap read back into memory");

        let users = &self.users.users;
        let rows = records
            .into_iter()
            .filter(|record| {
                users
                    .get(record.index)
                    .is_some_and(|user| user.id == record.user_id)
            })
            .map(|record| (record.index, record.outcome));
        self.outcomes.load_chunk(chunk, rows);
        Ok(())
    }

    /// Encodes the rows of `chunk`, or returns `None` when it is not in
    /// memory.
    fn encode_chunk(&self, chunk: usize) -> Option<String> {
        let outcomes = self.outcomes.chunk(chunk)?;
        let records: Vec<ResultRecord> = outcomes
            .iter()
            .map(|(index, outcome)| {
                let user = &self.users.users[*index];
                ResultRecord {
                    index: *index,
                    user_id: user.id.clone(),
                    source: self
                        .source_names
                        .get(user.source)
                        .cloned()
                        .unwrap_or_default(),
                    row: user.row,
                    outcome: outcome.clone(),
                }
            })
            .collect();
        Some(results::encode(&records))
    }

    /// Writes status with server-side apply, fenced by `resourceVersion`.
    pub async fn write_status(&mut self) -> Result<(), JournalError> {
        let deadline = tokio::time::Instant::now() + WRITE_RETRY_DEADLINE;
        let mut delay = Duration::from_millis(200);

        loop {
            let patch = serde_json::json!({
                "apiVersion": BulkPasswordReset::api_version(&()),
                "kind": BulkPasswordReset::kind(&()),
                "metadata": { "name": self.name, "resourceVersion": self.resource_version },
                "status": self.status,
            });
            let result = self
                .resources
                .patch_status(
                    &self.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(patch),
                )
                .await;

            let error = match result {
                Ok(written) => {
                    self.resource_version = written.metadata.resource_version;
                    self.written_progress = self.status.progress.clone();
                    return Ok(());
                }
                Err(error) => error,
            };

            if is_conflict(&error) {
                self.check_still_holder().await?;
                continue;
            }
            if is_not_found(&error) {
                return Err(JournalError::Storage {
                    detail: format!("BulkPasswordReset {} was deleted", self.name),
                });
            }
            if !is_transient(&error) || tokio::time::Instant::now() >= deadline {
                return Err(JournalError::Storage {
                    detail: format!("status write failed: {error}"),
                });
            }
            debug!(run = %self.name, error = %error, "status write failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// After a 409: reads the object again and fails with `Fenced` unless
    /// the progress marks on the server are still the ones last written.
    async fn check_still_holder(&mut self) -> Result<(), JournalError> {
        let current =
            retry_transient("read BulkPasswordReset", || self.resources.get(&self.name)).await?;
        let server = current
            .status
            .as_ref()
            .and_then(|status| status.progress.as_ref());
        let ours = self.written_progress.as_ref();

        let unchanged = match (server, ours) {
            (None, None) => true,
            (Some(server), Some(ours)) => {
                server.holder == ours.holder
                    && server.claimed == ours.claimed
                    && server.recorded == ours.recorded
            }
            _ => false,
        };
        if !unchanged {
            return Err(JournalError::Fenced {
                detail: format!(
                    "status.progress.holder is now {:?}",
                    server
                        .and_then(|progress| progress.holder.clone())
                        .unwrap_or_default()
                ),
            });
        }
        self.resource_version = current.metadata.resource_version;
        self.generation = current.metadata.generation;
        Ok(())
    }
}

/// Adapter that lets the executor write through a shared recorder.
pub struct SharedJournal(pub Arc<Mutex<RunRecorder>>);

#[async_trait]
impl Journal for SharedJournal {
    async fn persist(&mut self, checkpoint: Checkpoint) -> Result<(), JournalError> {
        self.0.lock().await.persist_checkpoint(checkpoint).await
    }
}

/// Retries `operation` on transient API errors until the write deadline.
async fn retry_transient<T, F, Fut>(step: &'static str, mut operation: F) -> Result<T, JournalError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + WRITE_RETRY_DEADLINE;
    let mut delay = Duration::from_millis(200);
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) if is_transient(&error) && tokio::time::Instant::now() < deadline => {
                debug!(step, error = %error, "API call failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                return Err(JournalError::Storage {
                    detail: format!("{step} failed: {error}"),
                });
            }
        }
    }
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Errors worth retrying: the API server restarting, overloaded or
/// unreachable.
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}
