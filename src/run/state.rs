//! In-memory state of a run: which users have an outcome and how far the
//! durable claim reaches.
//!
//! The claim is the at-most-once guard. Before a user at list position `i`
//! is sent, the journal durably records a claim `c > i`. After a crash, every
//! user below the claim without a recorded outcome may have been sent, so it
//! becomes [`UserResult::Unknown`] instead of being sent again; users at or
//! above the claim were never sent.

use super::outcome::{Counts, Outcome, UserResult};

/// Outcomes of every user in the run, by list position.
#[derive(Debug)]
pub struct RunState {
    outcomes: Vec<Option<Outcome>>,
    claimed: usize,
    counts: Counts,
}

impl RunState {
    /// State of a run that has sent nothing yet.
    pub fn new(total: usize) -> Self {
        Self {
            outcomes: vec![None; total],
            claimed: 0,
            counts: Counts {
                total: total as u64,
                ..Counts::default()
            },
        }
    }

    /// Rebuilds the state from durable records and marks every claimed user
    /// without a record as unknown. Returns the state and the positions that
    /// were marked, so the caller can record them.
    pub fn restore(
        total: usize,
        claimed: usize,
        recorded: impl IntoIterator<Item = (usize, Outcome)>,
    ) -> (Self, Vec<usize>) {
        let mut state = Self::new(total);
        for (index, outcome) in recorded {
            if index < total {
                state.record(index, outcome);
            }
        }

        let claimed = claimed.min(total);
        let mut recovered = Vec::new();
        for index in 0..claimed {
            if state.outcomes[index].is_none() {
                state.record(index, Outcome::recovered_unknown());
                recovered.push(index);
            }
        }
        state.claimed = claimed;
        (state, recovered)
    }

    /// Positions to send, in list order: users without an outcome, and users
    /// with an unknown outcome when `retry_unknown` is set.
    pub fn pending(&self, retry_unknown: bool) -> Vec<usize> {
        self.outcomes
            .iter()
            .enumerate()
            .filter(|(_, outcome)| match outcome {
                None => true,
                Some(outcome) => retry_unknown && outcome.result == UserResult::Unknown,
            })
            .map(|(index, _)| index)
            .collect()
    }

    /// Stores the outcome of the user at `index`, replacing an earlier one.
    pub fn record(&mut self, index: usize, outcome: Outcome) {
        if let Some(previous) = &self.outcomes[index] {
            self.counts.remove(previous.result);
        }
        self.counts.add(outcome.result);
        self.outcomes[index] = Some(outcome);
    }

    /// Outcome of the user at `index`, if recorded.
    pub fn outcome(&self, index: usize) -> Option<&Outcome> {
        self.outcomes[index].as_ref()
    }

    /// Users in the run.
    pub fn total(&self) -> usize {
        self.outcomes.len()
    }

    /// Current counts.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The durable claim: users below it may have been sent.
    pub fn claimed(&self) -> usize {
        self.claimed
    }

    /// Moves the claim, after the journal made it durable.
    pub fn set_claimed(&mut self, claimed: usize) {
        self.claimed = claimed.min(self.total());
    }

    /// Lowest position without an outcome, or the total when every user has
    /// one. After a clean stop, with nothing in flight, this is the claim to
    /// record: no user at or above it without an outcome was sent.
    pub fn first_without_outcome(&self) -> usize {
        self.outcomes
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.outcomes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn succeeded() -> Outcome {
        Outcome {
            result: UserResult::Succeeded,
            http_status: Some(200),
            error_id: None,
            message: None,
            attempts: 1,
        }
    }

    #[test]
    fn restore_marks_claimed_unrecorded_unknown() {
        let (state, recovered) = RunState::restore(10, 5, [(0, succeeded()), (2, succeeded())]);

        assert_eq!(recovered, vec![1, 3, 4]);
        assert_eq!(state.counts().succeeded, 2);
        assert_eq!(state.counts().unknown, 3);
        assert_eq!(state.pending(false), vec![5, 6, 7, 8, 9]);
    }

    #[test]
    fn pending_includes_unknown_on_request() {
        let (state, _) = RunState::restore(4, 2, [(0, succeeded())]);

        assert_eq!(state.pending(false), vec![2, 3]);
        assert_eq!(state.pending(true), vec![1, 2, 3]);
    }

    #[test]
    fn record_replaces_previous_outcome() {
        let (mut state, _) = RunState::restore(2, 1, []);
        assert_eq!(state.counts().unknown, 1);

        state.record(0, succeeded());

        assert_eq!(state.counts().unknown, 0);
        assert_eq!(state.counts().succeeded, 1);
        assert_eq!(state.counts().done(), 1);
    }

    #[test]
    fn first_without_outcome_skips_recorded() {
        let mut state = RunState::new(3);
        assert_eq!(state.first_without_outcome(), 0);

        state.record(0, succeeded());
        state.record(2, succeeded());

        assert_eq!(state.first_without_outcome(), 1);
    }
}
