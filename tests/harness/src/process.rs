//! Child processes that cannot outlive the process that started them.
//!
//! Linux delivers `PR_SET_PDEATHSIG` when the *thread* that forked the child
//! exits, not when the process exits. A `#[tokio::test]` runs on a thread that
//! ends with the test, so every child here is forked by one spawner thread
//! that lives until the process exits. A child is then killed when it is
//! dropped, when its `ControlPlane` stops, or at the latest when the process
//! ends, even by `abort()` or `SIGKILL`.

use std::collections::BTreeSet;
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use tokio::time::{Instant, sleep};

/// How often [`ChildGuard::terminate`] checks whether the child has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A command for the spawner thread and the channel for its result.
struct SpawnRequest {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Child process that is killed with `SIGKILL` and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Starts `command` from the process-wide spawner thread, with
    /// `PR_SET_PDEATHSIG` set to `SIGKILL` in the child.
    pub fn spawn(command: Command) -> io::Result<ChildGuard> {
        let (reply, result) = mpsc::channel();
        spawner()
            .send(SpawnRequest { command, reply })
            .map_err(|_| io::Error::other("the child spawner thread has stopped"))?;

        let child = result
            .recv()
            .map_err(|_| io::Error::other("the child spawner thread dropped the request"))??;
        Ok(ChildGuard { child })
    }

    /// Process id of the child.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Returns the exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Sends `SIGTERM`, waits up to `grace` for the child to exit, then sends
    /// `SIGKILL`, and reaps it.
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }

        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) has no memory effects. The child is not reaped yet,
        // so `pid` still names it and cannot have been reused.
        if unsafe { libc::kill(pid, libc::SIGTERM) } == -1 {
            return Err(io::Error::last_os_error());
        }

        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            sleep(EXIT_POLL_INTERVAL).await;
        }

        tracing::warn!(
            pid,
            grace_ms = grace.as_millis() as u64,
            "child ignored SIGTERM; sending SIGKILL"
        );
        self.kill()
    }

    /// Sends `SIGKILL` and reaps the child. Returns at once if it has exited.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.child.kill()?;
        self.child.wait()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(error) = self.kill() {
            tracing::warn!(pid = self.child.id(), %error, "failed to kill child process");
        }
    }
}

/// Returns the sender of the spawner thread, starting the thread on first use.
///
/// The receiver loop never ends because the sender lives in a static, so the
/// thread, which is the "parent" that `PR_SET_PDEATHSIG` watches, lives until
/// the process exits.
fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (sender, requests) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("child-spawner".to_owned())
            .spawn(move || {
                for mut request in requests {
                    let result = spawn_with_parent_death_signal(&mut request.command);
                    // If the requester has given up, no `ChildGuard` is built
                    // and the child lives until the process exits.
                    let _ = request.reply.send(result);
                }
            })
            .expect("failed to start the child spawner thread");
        sender
    })
}

fn spawn_with_parent_death_signal(command: &mut Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;

    // SAFETY: the closure runs between fork and exec, where only
    // async-signal-safe calls are allowed. prctl(2) and getppid(2) are, and
    // `from_raw_os_error` does not allocate.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(io::Error::last_os_error());
            }
            // If the parent exited before prctl, no signal will ever come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    };
    command.spawn()
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is released before it is returned, so another process may take it
/// before the caller binds it. `ControlPlane::start` retries on such a
/// conflict. Within this process the same port is never returned twice.
///
/// # Panics
///
/// Panics if no socket can be bound on 127.0.0.1.
pub fn free_port() -> u16 {
    static RETURNED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

    loop {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).expect("failed to bind a TCP socket on 127.0.0.1");
        let port = listener
            .local_addr()
            .expect("bound socket has no local address")
            .port();
        let mut returned = RETURNED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if returned.insert(port) {
            return port;
        }
    }
}

/// Checks whether a process with this id exists and is not a zombie.
///
/// A zombie counts as gone because it runs no code and has no open port. In a
/// container whose init does not reap orphans it may stay listed for good.
pub fn process_is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };

    // The state follows the command name, which is in parentheses and may
    // itself contain spaces or parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}
