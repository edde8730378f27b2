//! The run record: a small ConfigMap that outlives a finished run. A
//! resource deleted and created again from the same manifest (by hand, or by
//! a GitOps tool that prunes and syncs) then does not reset the same users
//! again.
//!
//! The record is not owned by the resource, so deleting the resource keeps
//! it. It holds the digest of the user list; a new resource with the same
//! name and the same list pauses until an administrator allows the repeat
//! with the annotation [`ALLOW_RERUN_ANNOTATION`] or deletes the record.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::{Api, ResourceExt};

use crate::api::BulkPasswordReset;

/// Annotation on a BulkPasswordReset that allows it to reset the users of
/// an earlier, finished run with the same name and list.
pub const ALLOW_RERUN_ANNOTATION: &str = "masreset.dev/allow-rerun";

/// Label on every run record, with the name of the run.
pub const RECORD_LABEL: &str = "masreset.dev/run-record";

const DIGEST_KEY: &str = "listDigest";
const UID_KEY: &str = "uid";
const COMPLETED_KEY: &str = "completedAt";
const SUMMARY_KEY: &str = "summary";

/// Name of the run record of run `run`.
pub fn record_name(run: &str) -> String {
    format!("{run}-run-record")
}

/// Looks up a finished earlier run with the same name and list that
/// `resource` has not been allowed to repeat, and returns when it finished
/// and its summary.
pub async fn earlier_run(
    api: &Api<ConfigMap>,
    resource: &BulkPasswordReset,
    list_digest: &str,
) -> kube::Result<Option<(String, String)>> {
    let allowed = resource
        .annotations()
        .get(ALLOW_RERUN_ANNOTATION)
        .is_some_and(|value| value == "true");
    if allowed {
        return Ok(None);
    }

    let Some(record) = api.get_opt(&record_name(&resource.name_any())).await? else {
        return Ok(None);
    };
    let data = record.data.unwrap_or_default();
    let same_list = data
        .get(DIGEST_KEY)
        .is_some_and(|digest| digest == list_digest);
    let same_resource = data
        .get(UID_KEY)
        .is_some_and(|uid| Some(uid) == resource.uid().as_ref());
    if !same_list || same_resource {
        return Ok(None);
    }
    Ok(Some((
        data.get(COMPLETED_KEY).cloned().unwrap_or_default(),
        data.get(SUMMARY_KEY).cloned().unwrap_or_default(),
    )))
}

/// Writes the record of a finished run.
pub async fn write(
    api: &Api<ConfigMap>,
    resource: &BulkPasswordReset,
    list_digest: &str,
    completed_at: &str,
    summary: &str,
) -> kube::Result<()> {
    let name = record_name(&resource.name_any());
    let record = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([
                (RECORD_LABEL.to_owned(), resource.name_any()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "mas-reset-operator".to_owned(),
                ),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            (DIGEST_KEY.to_owned(), list_digest.to_owned()),
            (UID_KEY.to_owned(), resource.uid().unwrap_or_default()),
            (COMPLETED_KEY.to_owned(), completed_at.to_owned()),
            (SUMMARY_KEY.to_owned(), summary.to_owned()),
        ])),
        ..Default::default()
    };
    super::results::apply_config_map(api, &name, &record).await
}
