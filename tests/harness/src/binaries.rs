//! Locating, and if needed building, the etcd, kube-apiserver and kubectl
//! binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use tokio::sync::OnceCell;

/// Environment variable with the directory of prebuilt binaries.
pub const BIN_DIR_ENV: &str = "CONTROL_PLANE_BIN";

/// Paths of the three binaries.
#[derive(Clone, Debug)]
pub(crate) struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kubectl: PathBuf,
}

impl Binaries {
    fn in_dir(dir: &Path) -> Binaries {
        Binaries {
            etcd: dir.join("etcd"),
            kube_apiserver: dir.join("kube-apiserver"),
            kubectl: dir.join("kubectl"),
        }
    }

    fn all_exist(&self) -> bool {
        [&self.etcd, &self.kube_apiserver, &self.kubectl]
            .iter()
            .all(|path| path.is_file())
    }

    /// Returns the binaries, building them with `tests/control-plane/build.sh`
    /// once per process.
    ///
    /// When `CONTROL_PLANE_BIN` is set and contains all three binaries, they are
    /// used as they are, so prebuilt binaries work without Go. Otherwise
    /// build.sh runs. It rebuilds only what changed since its last run, which
    /// takes well under a second when nothing did, and several minutes cold.
    pub async fn locate() -> anyhow::Result<Binaries> {
        static LOCATED: OnceCell<Binaries> = OnceCell::const_new();
        LOCATED
            .get_or_try_init(|| async {
                tokio::task::spawn_blocking(locate_or_build)
                    .await
                    .context("the control plane build task panicked")?
            })
            .await
            .cloned()
    }
}

fn locate_or_build() -> anyhow::Result<Binaries> {
    let configured_dir = std::env::var_os(BIN_DIR_ENV).map(PathBuf::from);
    if let Some(dir) = &configured_dir {
        let binaries = Binaries::in_dir(dir);
        if binaries.all_exist() {
            return Ok(binaries);
        }
    }

    let repo = repository_root();
    let dir = configured_dir.unwrap_or_else(|| repo.join("target/control-plane/bin"));
    let script = repo.join("tests/control-plane/build.sh");
    tracing::info!(script = %script.display(), dir = %dir.display(), "running the control plane build");

    // build.sh reads CONTROL_PLANE_BIN itself. It is passed explicitly so the
    // default directory does not depend on the script's own lookup. The
    // script prints the binary directory on stdout, which goes to stderr so
    // that a caller's stdout carries only its own output.
    let status = Command::new("bash")
        .arg(&script)
        .env(BIN_DIR_ENV, &dir)
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("failed to run {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); it needs Go to build etcd and kube-apiserver, or set {BIN_DIR_ENV} to a directory with etcd, kube-apiserver and kubectl",
            script.display()
        );
    }

    let binaries = Binaries::in_dir(&dir);
    if !binaries.all_exist() {
        bail!(
            "{} succeeded but {} lacks etcd, kube-apiserver or kubectl",
            script.display(),
            dir.display()
        );
    }
    Ok(binaries)
}

/// Root of the repository this crate was built from.
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/harness is two levels below the repository root")
        .to_path_buf()
}
