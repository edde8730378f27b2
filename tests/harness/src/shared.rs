//! One control plane per test process, started by the first call of [`shared`].

use std::path::PathBuf;
use std::sync::OnceLock;

use tokio::sync::OnceCell;

use crate::control_plane::ControlPlane;

/// What the exit handler kills and removes.
struct ExitCleanup {
    pids: [u32; 2],
    dir: PathBuf,
}

static SHARED: OnceCell<Result<ControlPlane, String>> = OnceCell::const_new();
static EXIT_CLEANUP: OnceLock<ExitCleanup> = OnceLock::new();

/// Returns the control plane shared by every test in this process, starting
/// it on the first call.
///
/// A static is never dropped, so an `atexit` handler kills the processes and
/// removes the directory when the test process exits normally. If the process
/// dies by a signal or `abort()`, the kernel still kills the processes (see
/// [`crate::ChildGuard`]), and the next start removes the directory. Tests may
/// run on different Tokio runtimes: build clients with
/// [`ControlPlane::client`] in each test.
///
/// # Panics
///
/// Panics with the startup error, on this and every later call, if the
/// control plane cannot start.
pub async fn shared() -> &'static ControlPlane {
    let started = SHARED
        .get_or_init(|| async {
            match ControlPlane::start().await {
                Ok(plane) => {
                    register_exit_cleanup(&plane);
                    Ok(plane)
                }
                Err(error) => Err(format!("{error:#}")),
            }
        })
        .await;

    match started {
        Ok(plane) => plane,
        Err(message) => panic!("the shared control plane failed to start: {message}"),
    }
}

fn register_exit_cleanup(plane: &ControlPlane) {
    let cleanup = ExitCleanup {
        pids: [plane.apiserver_pid(), plane.etcd_pid()],
        dir: plane.dir().to_path_buf(),
    };
    if EXIT_CLEANUP.set(cleanup).is_ok() {
        // SAFETY: `clean_up_at_exit` is a plain function that never unwinds.
        if unsafe { libc::atexit(clean_up_at_exit) } != 0 {
            tracing::warn!("failed to register the control plane cleanup at exit");
        }
    }
}

/// Kills and reaps the shared control plane's processes and removes its
/// directory. Runs from `exit()`, so it must not panic.
extern "C" fn clean_up_at_exit() {
    let Some(cleanup) = EXIT_CLEANUP.get() else {
        return;
    };
    for pid in cleanup.pids {
        let pid = pid as libc::pid_t;
        // SAFETY: kill(2) and waitpid(2) have no memory effects beyond the
        // null status pointer, which waitpid accepts. The shared plane never
        // reaps its children itself, so each pid still names our child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    let _ = std::fs::remove_dir_all(&cleanup.dir);
}
