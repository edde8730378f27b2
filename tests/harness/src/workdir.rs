//! The directory with one control plane's certificates, etcd data,
//! logs and kubeconfig.
//!
//! Each contains an `owner.pid` file with the id of the process that started the
//! control plane. A directory whose owner is gone is left over from a test
//! process that was killed before it could clean up, and may be reused or
//! removed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::process::process_is_running;

/// Prefix of the temporary directories under `std::env::temp_dir()`.
const TEMP_PREFIX: &str = "mas-reset-control-plane-";

const OWNER_FILE: &str = "owner.pid";

/// Entries that a control plane creates in its directory.
const MANAGED_ENTRIES: [&str; 5] = [OWNER_FILE, "pki", "etcd", "logs", "kubeconfig"];

/// Paths inside one work directory.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub root: PathBuf,
    pub pki: PathBuf,
    pub etcd_data: PathBuf,
    pub logs: PathBuf,
    pub etcd_log: PathBuf,
    pub apiserver_log: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Layout {
        let logs = root.join("logs");
        Layout {
            root: root.to_path_buf(),
            pki: root.join("pki"),
            etcd_data: root.join("etcd"),
            etcd_log: logs.join("etcd.log"),
            apiserver_log: logs.join("kube-apiserver.log"),
            logs,
            kubeconfig: root.join("kubeconfig"),
        }
    }

    /// Removes the etcd data and logs of a failed start attempt.
    pub fn reset_etcd_and_logs(&self) -> anyhow::Result<()> {
        remove_if_present(&self.etcd_data)?;
        remove_if_present(&self.logs)?;
        std::fs::create_dir_all(&self.logs)
            .with_context(|| format!("failed to create {}", self.logs.display()))
    }
}

/// Creates a temporary work directory owned by this process, after removing
/// the ones whose owner process is gone.
pub(crate) fn create_temporary() -> anyhow::Result<(TempDir, Layout)> {
    remove_abandoned_temporaries();

    let dir = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempdir()
        .context("failed to create a temporary directory for the control plane")?;
    let layout = Layout::new(dir.path());
    claim(&layout)?;
    Ok((dir, layout))
}

/// Prepares `root` as a work directory: it may be missing, empty, or left by
/// an earlier control plane whose process has exited, in which case that
/// control plane's files are removed first.
pub(crate) fn prepare(root: &Path) -> anyhow::Result<Layout> {
    std::fs::create_dir_all(root)
        .with_context(|| format!("failed to create {}", root.display()))?;
    let layout = Layout::new(root);

    let owner_file = root.join(OWNER_FILE);
    if owner_file.exists() {
        let other_owner = read_owner(&owner_file).filter(|pid| *pid != std::process::id());
        if let Some(pid) = other_owner.filter(|pid| process_is_running(*pid)) {
            bail!(
                "{} is in use by the control plane of process {pid}; stop it or choose another directory",
                root.display()
            );
        }
        for entry in MANAGED_ENTRIES {
            remove_if_present(&root.join(entry))?;
        }
    } else if is_non_empty(root)? {
        bail!(
            "{} is not empty and was not created by a control plane; choose a new or empty directory",
            root.display()
        );
    }

    claim(&layout)?;
    Ok(layout)
}

fn claim(layout: &Layout) -> anyhow::Result<()> {
    let owner_file = layout.root.join(OWNER_FILE);
    std::fs::write(&owner_file, format!("{}\n", std::process::id()))
        .with_context(|| format!("failed to write {}", owner_file.display()))?;
    std::fs::create_dir_all(&layout.logs)
        .with_context(|| format!("failed to create {}", layout.logs.display()))
}

/// Removes temporary work directories whose owner process has exited. Errors
/// are ignored: another test process may be removing the same directory.
fn remove_abandoned_temporaries() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(TEMP_PREFIX));
        if !is_ours {
            continue;
        }

        let path = entry.path();
        let Some(pid) = read_owner(&path.join(OWNER_FILE)) else {
            continue;
        };
        if !process_is_running(pid) {
            tracing::info!(dir = %path.display(), owner_pid = pid, "removing abandoned control plane directory");
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn read_owner(owner_file: &Path) -> Option<u32> {
    std::fs::read_to_string(owner_file)
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn is_non_empty(dir: &Path) -> anyhow::Result<bool> {
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))?;
    Ok(entries.next().is_some())
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("failed to remove {}", path.display()))
        }
        _ => Ok(()),
    }
}
