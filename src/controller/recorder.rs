//! The recorder: the one writer of a run's status and result ConfigMaps.
//!
//! Status writes carry the `resourceVersion` of the last write as a
//! precondition. When the API server returns 409 Conflict, the recorder
//! reads the object again: if the progress marks are still the ones it last
//! wrote (only the spec or metadata changed), or carry its own holder (a
//! write of its own whose response was lost), it writes again; otherwise
//! another instance took the run over, and this one stops.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::outcome_table::OutcomeTable;
use super::passwords::{self, ReadError};
use super::results::{self, ResultRecord};
use super::status::{self, INLINE_ALL_USERS_MAX, INLINE_USERS_CAP, PhaseReason};
use crate::api::{BulkPasswordReset, BulkPasswordResetStatus, FIELD_MANAGER, Progress, ResultsRef};
use crate::password::PasswordVault;
use crate::run::{Checkpoint, Journal, JournalError, Outcome, RunState, UserResult};
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
    /// Progress marks on the server after the last write of this recorder
    /// (at first: as read).
    written_progress: Option<Progress>,
    /// Output Secrets with per-user passwords, when the run has them.
    passwords: Option<PasswordStore>,
}

/// The password Secrets of a run and the vault they are written from.
struct PasswordStore {
    api: Api<Secret>,
    base_name: String,
    vault: Arc<PasswordVault>,
    /// Chunks that exist on the server.
    stored_chunks: BTreeSet<usize>,
    /// Users below this position have had a password assigned when they
    /// needed one.
    assigned_up_to: usize,
}

impl PasswordStore {
    /// Writes password Secret `chunk` with the vault's passwords of its
    /// users, or deletes it when it has none.
    async fn write_chunk(
        &mut self,
        chunk: usize,
        users: &UserList,
        run: &str,
        owner: &OwnerReference,
    ) -> Result<(), JournalError> {
        let start = chunk * passwords::PASSWORDS_PER_SECRET;
        let entries = self
            .vault
            .passwords_in(start..start + passwords::PASSWORDS_PER_SECRET);
        let name = passwords::secret_name(&self.base_name, users.users.len(), chunk);
        let api = &self.api;

        if entries.is_empty() {
            retry_transient("delete password Secret", || {
                passwords::delete_chunk(api, &name)
            })
            .await?;
            self.stored_chunks.remove(&chunk);
            return Ok(());
        }

        let text = passwords::encode(
            entries
                .iter()
                .map(|(index, password)| (*index, users.users[*index].id.as_str(), password)),
        );
        retry_transient("write password Secret", || {
            passwords::apply_chunk(api, &name, run, owner, &text)
        })
        .await?;
        self.stored_chunks.insert(chunk);
        Ok(())
    }
}

impl RunRecorder {
    /// Creates a recorder for `resource` that writes as `holder`.
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
            passwords: None,
        }
    }

    /// Rows of the list that are not sent: rejected values and duplicates.
    pub fn rows_not_sent(&self) -> usize {
        self.users.rejected.len() + self.users.duplicates.len()
    }

    /// Makes this recorder store per-user passwords from `vault` in the
    /// resource's password Secrets, and reads the passwords already stored
    /// there into the vault. Call after [`load_records`](Self::load_records).
    pub async fn load_passwords(
        &mut self,
        client: &Client,
        resource: &BulkPasswordReset,
        vault: Arc<PasswordVault>,
    ) -> Result<(), ReadError> {
        let api: Api<Secret> =
            Api::namespaced(client.clone(), &resource.namespace().unwrap_or_default());
        let base_name = passwords::base_name(resource);
        let total = self.users.users.len();

        let mut stored_chunks = BTreeSet::new();
        for chunk in 0..passwords::chunk_count(total) {
            let name = passwords::secret_name(&base_name, total, chunk);
            let Some(stored) = passwords::read_chunk(&api, &name, &self.owner.uid).await? else {
                continue;
            };
            stored_chunks.insert(chunk);
            let matching = stored.into_iter().filter(|entry| {
                let matches = self
                    .users
                    .users
                    .get(entry.index)
                    .is_some_and(|user| user.id == entry.user_id);
                if !matches {
                    warn!(run = %self.name, secret = %name, index = entry.index, "stored password does not match the user list; ignoring it");
                }
                matches
            });
            vault.restore(matching.map(|entry| (entry.index, entry.password)));
        }

        self.passwords = Some(PasswordStore {
            api,
            base_name,
            vault,
            stored_chunks,
            assigned_up_to: 0,
        });
        Ok(())
    }

    /// Digest of the run's user list.
    pub fn list_digest(&self) -> String {
        self.users.digest()
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
            password_secrets: self.password_secret_names(),
        });
        self.update_inline_users();
    }

    fn password_secret_names(&self) -> Vec<String> {
        let Some(store) = &self.passwords else {
            return Vec::new();
        };
        let total = self.users.users.len();
        store
            .stored_chunks
            .iter()
            .map(|chunk| passwords::secret_name(&store.base_name, total, *chunk))
            .collect()
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

    /// Moves `observedGeneration` to the generation last read, so that a
    /// spec edit during the run (suspend, pacing) shows as observed.
    fn follow_generation(&mut self) {
        if self.status.observed_generation == self.generation {
            return;
        }
        self.status.observed_generation = self.generation;
        for condition in &mut self.status.conditions {
            condition.observed_generation = self.generation;
        }
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

        self.store_passwords(checkpoint.claimed).await?;

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
        self.follow_generation();
        self.write_status().await
    }

    /// Assigns passwords to the users below `claimed` that may be sent and
    /// have none, then writes every password Secret with unsaved passwords.
    /// Runs before the status write that records `claimed`, so no user is
    /// sent before its password is stored.
    async fn store_passwords(&mut self, claimed: usize) -> Result<(), JournalError> {
        let Some(store) = &mut self.passwords else {
            return Ok(());
        };

        if store.vault.assigns_passwords() && claimed > store.assigned_up_to {
            let outcomes = &self.outcomes;
            let sendable = (store.assigned_up_to..claimed)
                .filter(|index| {
                    outcomes
                        .result(*index)
                        .is_none_or(|result| result == UserResult::Unknown)
                })
                .map(|index| (index, self.users.users[index].id.as_str()));
            store
                .vault
                .assign(sendable)
                .map_err(|error| JournalError::Storage {
                    detail: error.to_string(),
                })?;
            store.assigned_up_to = claimed;
        }

        let unsaved = store.vault.take_unsaved();
        let chunks: BTreeSet<usize> = unsaved
            .iter()
            .map(|index| passwords::chunk_of(*index))
            .collect();
        for chunk in chunks {
            let written = store
                .write_chunk(chunk, &self.users, &self.name, &self.owner)
                .await;
            if let Err(error) = written {
                store.vault.mark_unsaved(unsaved);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Removes from the password Secrets every user that a finished run
    /// did not send, or whose reset MAS rejected, so that they list only
    /// passwords MAS has or may have set (results Succeeded and Unknown).
    /// A Secret left without users is deleted.
    pub async fn drop_unset_passwords(&mut self, state: &RunState) -> Result<(), JournalError> {
        let Some(store) = &mut self.passwords else {
            return Ok(());
        };
        let removed = store.vault.retain(|index| {
            state.outcome(index).is_some_and(|outcome| {
                matches!(outcome.result, UserResult::Succeeded | UserResult::Unknown)
            })
        });

        let chunks: BTreeSet<usize> = removed
            .iter()
            .map(|index| passwords::chunk_of(*index))
            .collect();
        for chunk in chunks {
            store
                .write_chunk(chunk, &self.users, &self.name, &self.owner)
                .await?;
        }
        Ok(())
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
                self.follow_generation();
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
    /// the progress marks on the server are still the ones last written or
    /// name this recorder's holder. The holder is unique per run task, so
    /// only this recorder writes it: a server copy with it means that a
    /// write whose response was lost (a timeout, an API server restart)
    /// was applied, not that another instance took over.
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
        let own_write =
            server.is_some_and(|server| server.holder.as_deref() == Some(self.holder.as_str()));
        // Progress removed from the server (by hand, or a status reset) was
        // not written by another instance, which would have left its holder:
        // this recorder still has the claim, so it writes it back.
        let removed = server.is_none() && ours.is_some();
        if removed {
            warn!(run = %self.name, "status.progress was removed; writing it back");
        }
        if !unchanged && !own_write && !removed {
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
pub struct SharedJournal {
    recorder: Arc<Mutex<RunRecorder>>,
    passwords: Option<Arc<PasswordVault>>,
}

impl SharedJournal {
    /// Creates a journal that writes through `recorder` and hands
    /// `passwords`, when set, to the executor.
    pub fn new(recorder: Arc<Mutex<RunRecorder>>, passwords: Option<Arc<PasswordVault>>) -> Self {
        Self {
            recorder,
            passwords,
        }
    }
}

#[async_trait]
impl Journal for SharedJournal {
    async fn persist(&mut self, checkpoint: Checkpoint) -> Result<(), JournalError> {
        self.recorder
            .lock()
            .await
            .persist_checkpoint(checkpoint)
            .await
    }

    fn passwords(&self) -> Option<Arc<PasswordVault>> {
        self.passwords.clone()
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex as StdMutex;

    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::{Method, Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    /// A BulkPasswordReset on a fake API server that applies status with the
    /// `resourceVersion` precondition, as kube-apiserver does.
    struct FakeServer {
        object: Value,
        version: u64,
        /// Apply the next status write, then answer 503 as if the response
        /// were lost.
        lose_next_response: bool,
    }

    impl FakeServer {
        fn progress(&self) -> Progress {
            serde_json::from_value(self.object["status"]["progress"].clone())
                .expect("server has progress")
        }

        /// Changes the object as another client would: the version moves.
        fn touch(&mut self, change: impl FnOnce(&mut Value)) {
            change(&mut self.object);
            self.version += 1;
            self.object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        }

        fn handle(&mut self, method: &Method, path: &str, body: &[u8]) -> (u16, Value) {
            if *method == Method::GET {
                return (200, self.object.clone());
            }
            if *method != Method::PATCH || !path.ends_with("/status") {
                return (404, status_body(404, "NotFound"));
            }

            let patch: Value = serde_json::from_slice(body).expect("patch is JSON");
            let expected = patch["metadata"]["resourceVersion"].as_str();
            if expected.is_some_and(|version| version != self.version.to_string()) {
                return (409, status_body(409, "Conflict"));
            }
            let status = patch["status"].clone();
            self.touch(|object| object["status"] = status);
            if std::mem::take(&mut self.lose_next_response) {
                return (503, status_body(503, "ServiceUnavailable"));
            }
            (200, self.object.clone())
        }
    }

    fn status_body(code: u16, reason: &str) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": reason, "reason": reason, "code": code,
        })
    }

    fn fake_client(server: Arc<StdMutex<FakeServer>>) -> Client {
        let service = tower::service_fn(move |request: Request<Body>| {
            let server = server.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.expect("request body").to_bytes();
                let (code, value) = server.lock().expect("fake server lock").handle(
                    &parts.method,
                    parts.uri.path(),
                    &body,
                );
                let response = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(value.to_string())))
                    .expect("response");
                Ok::<_, Infallible>(response)
            }
        });
        Client::new(service, "default")
    }

    /// A fake server with a run that has no status yet, and a recorder for
    /// it writing as `holder`.
    fn recorder_on_fake_server(holder: &str) -> (RunRecorder, Arc<StdMutex<FakeServer>>) {
        let object = json!({
            "apiVersion": "masreset.dev/v1alpha1",
            "kind": "BulkPasswordReset",
            "metadata": {
                "name": "run", "namespace": "default", "uid": "uid-1",
                "resourceVersion": "1", "generation": 1,
            },
            "spec": {
                "masApiUrl": "https://mas.example.com",
                "credentials": { "secretName": "mas-credentials" },
                "userList": { "sources": [ { "configMapName": "users", "key": "users.csv" } ] },
            },
        });
        let resource: BulkPasswordReset =
            serde_json::from_value(object.clone()).expect("valid resource");
        let server = Arc::new(StdMutex::new(FakeServer {
            object,
            version: 1,
            lose_next_response: false,
        }));
        let recorder = RunRecorder::new(
            &fake_client(server.clone()),
            &resource,
            Arc::new(UserList::default()),
            Arc::default(),
            holder.to_owned(),
        );
        (recorder, server)
    }

    #[tokio::test]
    async fn foreign_holder_fences_next_write() {
        let (mut recorder, server) = recorder_on_fake_server("a/00000001");
        recorder.update_progress(10);
        recorder.write_status().await.expect("first write");

        server.lock().unwrap().touch(|object| {
            object["status"]["progress"]["holder"] = json!("b/00000002");
        });
        recorder.update_progress(20);
        let result = recorder.write_status().await;

        assert!(
            matches!(result, Err(JournalError::Fenced { .. })),
            "{result:?}"
        );
        let progress = server.lock().unwrap().progress();
        assert_eq!(progress.holder.as_deref(), Some("b/00000002"));
        assert_eq!(progress.claimed, 10);
    }

    #[tokio::test]
    async fn metadata_change_does_not_fence() {
        let (mut recorder, server) = recorder_on_fake_server("a/00000001");
        recorder.update_progress(10);
        recorder.write_status().await.expect("first write");

        server.lock().unwrap().touch(|object| {
            object["metadata"]["annotations"] = json!({ "touched": "1" });
        });
        recorder.update_progress(20);
        recorder
            .write_status()
            .await
            .expect("write after a metadata change");

        assert_eq!(server.lock().unwrap().progress().claimed, 20);
    }

    #[tokio::test]
    async fn lost_response_of_own_write_does_not_fence() {
        let (mut recorder, server) = recorder_on_fake_server("a/00000001");
        server.lock().unwrap().lose_next_response = true;

        recorder.update_progress(10);
        recorder
            .write_status()
            .await
            .expect("write whose first response was lost");

        let progress = server.lock().unwrap().progress();
        assert_eq!(progress.holder.as_deref(), Some("a/00000001"));
        assert_eq!(progress.claimed, 10);
    }
}
