//! Log files of the child processes.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;

/// Lines of each log that a startup error includes.
const TAIL_LINES: usize = 25;

/// Sends the command's stdout and stderr to `path`, appending, so a restarted
/// process keeps the lines of its earlier run.
pub(crate) fn redirect_output(command: &mut Command, path: &Path) -> anyhow::Result<()> {
    let file = open_for_append(path)?;
    let stderr = file
        .try_clone()
        .with_context(|| format!("failed to duplicate the handle of {}", path.display()))?;
    command.stdin(Stdio::null()).stdout(file).stderr(stderr);
    Ok(())
}

fn open_for_append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open log file {}", path.display()))
}

/// Returns the last lines of a log, headed by its path, for an error message.
pub(crate) fn tail(name: &str, path: &Path) -> String {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            return format!(
                "--- {name} log {} could not be read: {error}",
                path.display()
            );
        }
    };

    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    format!(
        "--- last {} lines of the {name} log {}:\n{}",
        lines.len() - start,
        path.display(),
        lines[start..].join("\n")
    )
}

/// Checks whether the log shows that the process could not bind its port.
pub(crate) fn shows_port_conflict(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|text| text.contains("address already in use"))
        .unwrap_or(false)
}
