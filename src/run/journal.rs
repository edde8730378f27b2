//! The journal: where a run makes its progress durable.

use std::sync::Arc;

use async_trait::async_trait;

use super::outcome::{Counts, Outcome};
use crate::password::PasswordVault;

/// Progress to make durable in one write.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// New claim: users below it may be sent once this checkpoint is durable.
    pub claimed: usize,
    /// Outcomes recorded since the previous checkpoint, by list position.
    pub outcomes: Vec<(usize, Outcome)>,
    /// Counts after these outcomes.
    pub counts: Counts,
}

/// Durable storage of a run's progress.
///
/// `persist` stores the outcomes first and the claim second, so that a crash
/// between the two leaves outcomes that the next claim covers, never a claim
/// that hides missing outcomes.
#[async_trait]
pub trait Journal: Send {
    /// Makes the checkpoint durable, or fails without a partial claim.
    async fn persist(&mut self, checkpoint: Checkpoint) -> Result<(), JournalError>;

    /// Per-user passwords this journal stores, if the run has any.
    ///
    /// A journal whose vault assigns passwords stores the password of every
    /// user below a claim before the claim itself, so a user is never sent
    /// a password that could be lost. Passwords the executor adds to the
    /// vault are stored no later than the outcomes that follow them.
    fn passwords(&self) -> Option<Arc<PasswordVault>> {
        None
    }
}

/// A journal write that failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another writer changed the run's progress: this process is no longer
    /// the one running it and must stop sending.
    #[error(
        "another operator instance took over this run ({detail}); this instance stopped sending"
    )]
    Fenced {
        /// What changed.
        detail: String,
    },
    /// Storage failed; the run stops and a later reconcile resumes it.
    #[error("failed to record progress: {detail}; the run resumes on the next reconcile")]
    Storage {
        /// The storage error, free of secrets.
        detail: String,
    },
}
