//! The per-user result table, stored in ConfigMaps owned by the resource.
//!
//! Users are split by list position into chunks of [`ROWS_PER_CHUNK`]; chunk
//! `k` is ConfigMap `<run>-results-<k>` with one JSON line per user under key
//! `results.jsonl`. A row can reach about 2,400 bytes (a 256-byte ID that
//! JSON escapes, a long source name, a 200-character message of 3-byte
//! characters and the fields), so 400 rows stay below the 1 MiB ConfigMap
//! limit.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::api::FIELD_MANAGER;
use crate::run::Outcome;

/// Users per result ConfigMap.
pub const ROWS_PER_CHUNK: usize = 400;

/// Key of the JSON lines in each result ConfigMap.
pub const RESULTS_KEY: &str = "results.jsonl";

/// Label with the name of the run on every result ConfigMap.
pub const RUN_LABEL: &str = "masreset.dev/run";

/// One row of the result table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultRecord {
    /// Position in the run's user list, from 0.
    pub index: usize,
    /// User ID as given in the list.
    pub user_id: String,
    /// Source as `<configmap>/<key>`.
    pub source: String,
    /// Row in its source (the header is row 1).
    pub row: u64,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Returns the chunk that contains the user at `index`.
pub fn chunk_of(index: usize) -> usize {
    index / ROWS_PER_CHUNK
}

/// Name of chunk `chunk` of run `run`.
pub fn chunk_name(run: &str, chunk: usize) -> String {
    format!("{run}-results-{chunk:05}")
}

/// Label selector that lists every result ConfigMap of run `run`.
pub fn run_selector(run: &str) -> String {
    format!("{RUN_LABEL}={run}")
}

/// Encodes records as JSON lines.
pub fn encode<'a>(records: impl IntoIterator<Item = &'a ResultRecord>) -> String {
    let mut text = String::new();
    for record in records {
        // Serializing these plain types cannot fail.
        text.push_str(&serde_json::to_string(record).unwrap_or_default());
        text.push('\n');
    }
    text
}

/// Decodes JSON lines; a line that does not parse is returned as an error
/// with its line number.
pub fn decode(text: &str) -> Result<Vec<ResultRecord>, (usize, serde_json::Error)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| serde_json::from_str(line).map_err(|error| (number + 1, error)))
        .collect()
}

/// Metadata of an object a run writes: its name, the run label, the
/// managed-by label and the owner reference to the resource.
pub fn output_metadata(name: &str, run: &str, owner: &OwnerReference) -> kube::api::ObjectMeta {
    kube::api::ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(BTreeMap::from([
            (RUN_LABEL.to_owned(), run.to_owned()),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "mas-reset-operator".to_owned(),
            ),
        ])),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

/// Creates or replaces one chunk with server-side apply.
pub async fn apply_chunk(
    api: &Api<ConfigMap>,
    run: &str,
    chunk: usize,
    owner: &OwnerReference,
    text: String,
) -> kube::Result<()> {
    let name = chunk_name(run, chunk);
    let config_map = ConfigMap {
        metadata: output_metadata(&name, run, owner),
        data: Some(BTreeMap::from([(RESULTS_KEY.to_owned(), text)])),
        ..Default::default()
    };
    apply_config_map(api, &name, &config_map).await
}

/// Creates or replaces a ConfigMap with server-side apply under the
/// operator's field manager.
pub async fn apply_config_map(
    api: &Api<ConfigMap>,
    name: &str,
    config_map: &ConfigMap,
) -> kube::Result<()> {
    apply_object(api, name, config_map).await
}

/// Creates or replaces a core object (a ConfigMap or Secret the operator
/// writes) with server-side apply under the operator's field manager.
pub async fn apply_object<K>(api: &Api<K>, name: &str, object: &K) -> kube::Result<()>
where
    K: k8s_openapi::Resource
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let mut value = serde_json::to_value(object).map_err(kube::Error::SerdeError)?;
    value["apiVersion"] = K::API_VERSION.into();
    value["kind"] = K::KIND.into();

    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(value),
    )
    .await?;
    Ok(())
}

/// Reads every chunk of a run owned by the resource with `owner_uid`, in
/// list order. Chunks of an older resource with the same name are ignored.
pub async fn read_all(
    api: &Api<ConfigMap>,
    run: &str,
    owner_uid: &str,
) -> kube::Result<Vec<ResultRecord>> {
    let list = api
        .list(&ListParams::default().labels(&run_selector(run)))
        .await?;

    let mut chunks: Vec<ConfigMap> = list
        .items
        .into_iter()
        .filter(|config_map| is_owned_by(config_map, owner_uid))
        .collect();
    chunks.sort_by_key(|config_map| config_map.name_any());

    let mut records: Vec<ResultRecord> = chunks.iter().flat_map(rows_of).collect();
    records.sort_by_key(|record| record.index);
    Ok(records)
}

/// Reads chunk `chunk` of a run owned by the resource with `owner_uid`.
/// A missing chunk, or one of another owner, has no rows.
pub async fn read_chunk(
    api: &Api<ConfigMap>,
    run: &str,
    chunk: usize,
    owner_uid: &str,
) -> kube::Result<Vec<ResultRecord>> {
    let config_map = api.get_opt(&chunk_name(run, chunk)).await?;
    Ok(config_map
        .filter(|config_map| is_owned_by(config_map, owner_uid))
        .map(|config_map| rows_of(&config_map))
        .unwrap_or_default())
}

fn is_owned_by(config_map: &ConfigMap, owner_uid: &str) -> bool {
    config_map
        .owner_references()
        .iter()
        .any(|owner| owner.uid == owner_uid)
}

/// Decodes the rows of one chunk. A damaged chunk loses only its own rows;
/// those users are then treated as claimed without a record, so Unknown.
fn rows_of(config_map: &ConfigMap) -> Vec<ResultRecord> {
    let text = config_map
        .data
        .as_ref()
        .and_then(|data| data.get(RESULTS_KEY))
        .map(String::as_str)
        .unwrap_or_default();
    match decode(text) {
        Ok(rows) => rows,
        Err((line, error)) => {
            tracing::warn!(config_map = %config_map.name_any(), line, error = %error, "result ConfigMap has an unreadable line; its users count as Unknown");
            Vec::new()
        }
    }
}

/// Deletes every chunk of a run.
pub async fn delete_all(api: &Api<ConfigMap>, run: &str) -> kube::Result<()> {
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&run_selector(run)),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::UserResult;

    #[test]
    fn encode_decode_round_trip() {
        let record = ResultRecord {
            index: 7,
            user_id: "o\"neil".to_owned(),
            source: "users/users.csv".to_owned(),
            row: 9,
            outcome: Outcome {
                result: UserResult::Failed,
                http_status: Some(404),
                error_id: Some("AIUCO1005E".to_owned()),
                message: Some("user not found".to_owned()),
                attempts: 1,
            },
        };

        let text = encode([&record]);

        assert_eq!(decode(&text).expect("decodes"), vec![record]);
    }

    #[test]
    fn chunk_names_sort_in_list_order() {
        assert!(chunk_name("run", 9) < chunk_name("run", 10));
        assert_eq!(chunk_of(ROWS_PER_CHUNK - 1), 0);
        assert_eq!(chunk_of(ROWS_PER_CHUNK), 1);
    }
}
