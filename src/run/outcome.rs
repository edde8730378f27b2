//! Per-user outcomes and the counts derived from them.

use serde::{Deserialize, Serialize};

/// Final result of one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserResult {
    /// Password reset (in a dry run: the user exists).
    Succeeded,
    /// MAS returned an error, or the request provably never reached it.
    Failed,
    /// The request may have reached MAS but no response was recorded.
    Unknown,
}

/// Outcome of one user, as stored in the result table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Result of the user.
    pub result: UserResult,
    /// HTTP status of the last response, if one arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// MAS error id of the last answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
    /// Cleaned error message, free of secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Requests sent for this user, or 0 when the count was lost: recovered
    /// as Unknown after a crash, or its worker task failed.
    pub attempts: u32,
}

impl Outcome {
    /// Outcome of a user whose request was claimed before a crash and has no
    /// recorded answer.
    pub fn recovered_unknown() -> Self {
        Self {
            result: UserResult::Unknown,
            http_status: None,
            error_id: None,
            message: Some(
                "the operator stopped after this request may have been sent and before its answer was recorded; check the user in MAS, or set retryUnknown: true to send again".to_owned(),
            ),
            attempts: 0,
        }
    }

    /// Outcome of a user whose worker task failed (panicked) after its
    /// request may have been sent.
    pub fn worker_failed() -> Self {
        Self {
            result: UserResult::Unknown,
            http_status: None,
            error_id: None,
            message: Some(
                "the task sending this request failed after the request may have been sent; check the user in MAS, or set retryUnknown: true to send again".to_owned(),
            ),
            attempts: 0,
        }
    }
}

/// Users by result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Users in the run.
    pub total: u64,
    /// Users reset.
    pub succeeded: u64,
    /// Users that failed with a known answer.
    pub failed: u64,
    /// Users with an unknown outcome.
    pub unknown: u64,
}

impl Counts {
    /// Users with a final result.
    pub fn done(&self) -> u64 {
        self.succeeded + self.failed + self.unknown
    }

    /// Users without a result yet.
    pub fn remaining(&self) -> u64 {
        self.total - self.done()
    }

    pub(crate) fn add(&mut self, result: UserResult) {
        match result {
            UserResult::Succeeded => self.succeeded += 1,
            UserResult::Failed => self.failed += 1,
            UserResult::Unknown => self.unknown += 1,
        }
    }

    pub(crate) fn remove(&mut self, result: UserResult) {
        match result {
            UserResult::Succeeded => self.succeeded -= 1,
            UserResult::Failed => self.failed -= 1,
            UserResult::Unknown => self.unknown -= 1,
        }
    }
}
