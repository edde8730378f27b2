//! Installing CustomResourceDefinitions from YAML files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde::Deserialize;

/// Field manager of the server-side applies sent here.
const FIELD_MANAGER: &str = "mas-reset-harness";

/// Maximum time for one CRD to become `Established`.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies every CRD in the `*.yaml` files of `dir`, in file name order, and
/// waits until each is `Established`. A file may hold several documents.
pub(crate) async fn install(client: &kube::Client, dir: &Path) -> anyhow::Result<()> {
    let files = yaml_files(dir)?;
    if files.is_empty() {
        bail!("{} contains no *.yaml file", dir.display());
    }

    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for file in &files {
        for crd in read_crds(file)? {
            let name = crd
                .metadata
                .name
                .clone()
                .with_context(|| format!("a CRD in {} has no metadata.name", file.display()))?;
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .with_context(|| format!("failed to apply CRD {name} from {}", file.display()))?;
            names.push(name);
        }
    }

    for name in &names {
        let established = await_condition(api.clone(), name, conditions::is_crd_established());
        tokio::time::timeout(ESTABLISHED_TIMEOUT, established)
            .await
            .with_context(|| {
                format!(
                    "CRD {name} was not Established within {}s",
                    ESTABLISHED_TIMEOUT.as_secs()
                )
            })?
            .with_context(|| format!("failed to watch CRD {name}"))?;
    }
    tracing::info!(count = names.len(), dir = %dir.display(), "CRDs established");
    Ok(())
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("failed to read {}", dir.display()))?
            .path();
        if path
            .extension()
            .is_some_and(|extension| extension == "yaml")
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_crds(file: &Path) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("failed to read {}", file.display()))?;

    let mut crds = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(document)
            .with_context(|| format!("invalid YAML in {}", file.display()))?;
        if value.is_null() {
            continue;
        }
        let crd = serde_yaml::from_value(value).with_context(|| {
            format!(
                "{} holds a document that is not a CustomResourceDefinition",
                file.display()
            )
        })?;
        crds.push(crd);
    }
    Ok(crds)
}
