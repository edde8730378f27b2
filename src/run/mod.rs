//! The run: sending one password request per user, at most once, and
//! recording every outcome so that a restarted operator resumes where the
//! last one stopped.
//!
//! This module is free of Kubernetes types. The controller supplies a
//! [`Journal`] that makes progress durable (result ConfigMaps and status).

mod executor;
mod journal;
mod outcome;
mod pacer;
mod state;

pub use executor::{Action, ExecutorConfig, Settings, StopReason, execute};
pub use journal::{Checkpoint, Journal, JournalError};
pub use outcome::{Counts, Outcome, UserResult};
pub use state::RunState;
