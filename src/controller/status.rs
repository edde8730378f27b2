//! Builds status from the state of a run: phase, conditions and the capped
//! list of users shown inline. Writing it is the recorder's job.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{BulkPasswordResetStatus, Counts, Phase, UserOutcome, UserResult as ApiResult};
use crate::run::{self, Outcome, UserResult};

/// Lists with at most this many users show every user inline in status.
pub const INLINE_ALL_USERS_MAX: usize = 50;

/// At most this many users that did not succeed are shown inline; the rest
/// are only in the result ConfigMaps. About 400 bytes each, so status stays
/// well below the 1.5 MiB object limit of etcd whatever the list size.
pub const INLINE_USERS_CAP: usize = 100;

/// At most this many rejected rows are shown inline.
pub const REJECTED_ROWS_CAP: usize = 50;

/// Why a run is in its phase: the `reason` and `message` of its conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseReason {
    /// Phase of the run.
    pub phase: Phase,
    /// `PascalCase` reason.
    pub reason: String,
    /// Human-readable message with what to do, free of secrets.
    pub message: String,
}

impl PhaseReason {
    /// Creates a phase with its reason and message.
    pub fn new(phase: Phase, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            phase,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Sets phase, `observedGeneration` and the `Ready`, `Reconciling` and
/// `Stalled` conditions. A condition keeps its `lastTransitionTime` while its
/// status does not change.
pub fn set_phase(status: &mut BulkPasswordResetStatus, why: &PhaseReason, generation: Option<i64>) {
    let phase = why.phase;
    let ready = phase == Phase::Succeeded;
    let reconciling = matches!(phase, Phase::Pending | Phase::Running);
    let stalled = match phase {
        Phase::Failed | Phase::PartiallyFailed => true,
        Phase::Paused => why.reason != "Suspended",
        Phase::Pending => why.reason != "ReadingInputs",
        Phase::Running | Phase::Succeeded => false,
    };

    let now = Time(Timestamp::now());
    let previous = std::mem::take(&mut status.conditions);
    let condition = |type_: &str, value: bool| {
        let value = if value { "True" } else { "False" };
        let last_transition_time = previous
            .iter()
            .find(|condition| condition.type_ == type_ && condition.status == value)
            .map_or_else(
                || now.clone(),
                |condition| condition.last_transition_time.clone(),
            );
        Condition {
            type_: type_.to_owned(),
            status: value.to_owned(),
            reason: why.reason.clone(),
            message: why.message.clone(),
            observed_generation: generation,
            last_transition_time,
        }
    };

    status.conditions = vec![
        condition("Ready", ready),
        condition("Reconciling", reconciling),
        condition("Stalled", stalled),
    ];
    status.phase = Some(phase);
    status.observed_generation = generation;
}

/// Converts domain counts and list counts into status counts.
pub fn counts(
    run: run::Counts,
    skipped: u64,
    rejected: usize,
    duplicates: usize,
    stopped: bool,
) -> Counts {
    let not_sent = if stopped { run.remaining() } else { 0 };
    Counts {
        total: run.total as i64,
        done: run.done() as i64,
        succeeded: run.succeeded as i64,
        failed: run.failed as i64,
        unknown: run.unknown as i64,
        not_sent: not_sent as i64,
        skipped: skipped as i64,
        rejected: rejected as i64,
        duplicates: duplicates as i64,
    }
}

/// Maps a domain result to the API result.
pub fn api_result(result: UserResult) -> ApiResult {
    match result {
        UserResult::Succeeded => ApiResult::Succeeded,
        UserResult::Failed => ApiResult::Failed,
        UserResult::Unknown => ApiResult::Unknown,
    }
}

/// Builds one inline user entry.
pub fn user_outcome(user_id: &str, row: u64, outcome: &Outcome) -> UserOutcome {
    UserOutcome {
        user_id: user_id.to_owned(),
        row: row as i64,
        result: api_result(outcome.result),
        http_status: outcome.http_status.map(i32::from),
        error_id: outcome.error_id.clone(),
        message: outcome.message.clone(),
        attempts: outcome.attempts as i32,
    }
}

/// Current time as an API timestamp.
pub fn now() -> Time {
    Time(Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition<'a>(status: &'a BulkPasswordResetStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == type_)
            .expect("condition present")
    }

    #[test]
    fn succeeded_is_ready_and_not_stalled() {
        let mut status = BulkPasswordResetStatus::default();

        set_phase(
            &mut status,
            &PhaseReason::new(Phase::Succeeded, "Completed", "done"),
            Some(3),
        );

        assert_eq!(condition(&status, "Ready").status, "True");
        assert_eq!(condition(&status, "Reconciling").status, "False");
        assert_eq!(condition(&status, "Stalled").status, "False");
        assert_eq!(condition(&status, "Ready").observed_generation, Some(3));
        assert_eq!(status.observed_generation, Some(3));
    }

    #[test]
    fn suspended_is_not_stalled() {
        let mut status = BulkPasswordResetStatus::default();

        set_phase(
            &mut status,
            &PhaseReason::new(Phase::Paused, "Suspended", "paused"),
            Some(1),
        );

        assert_eq!(condition(&status, "Stalled").status, "False");
        assert_eq!(condition(&status, "Ready").status, "False");
    }

    #[test]
    fn authentication_pause_is_stalled() {
        let mut status = BulkPasswordResetStatus::default();

        set_phase(
            &mut status,
            &PhaseReason::new(Phase::Paused, "AuthenticationFailed", "401"),
            Some(1),
        );

        assert_eq!(condition(&status, "Stalled").status, "True");
    }

    #[test]
    fn transition_time_kept_while_unchanged() {
        let mut status = BulkPasswordResetStatus::default();
        set_phase(
            &mut status,
            &PhaseReason::new(Phase::Running, "Running", "a"),
            Some(1),
        );
        let first = condition(&status, "Reconciling")
            .last_transition_time
            .clone();

        set_phase(
            &mut status,
            &PhaseReason::new(Phase::Running, "Running", "b"),
            Some(1),
        );

        assert_eq!(
            condition(&status, "Reconciling").last_transition_time,
            first
        );
    }
}
