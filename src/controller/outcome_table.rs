//! The outcomes a recorder keeps in memory, sized by the open result chunks
//! and the users that did not succeed instead of by the whole list.
//!
//! Every outcome is written to its result ConfigMap. Once a chunk has an
//! outcome for each of its users, is written, and has no `Unknown` outcome
//! (the only kind a run may send again, with `retryUnknown`), its outcomes
//! are dropped from memory. What status needs of them stays: one result per
//! user for the counts, and the outcomes of users that did not succeed for
//! the inline list. At 100,000 users that keeps about 100 KB instead of
//! every outcome.

use std::collections::{BTreeMap, BTreeSet};

use super::results::{ROWS_PER_CHUNK, chunk_of};
use crate::run::{Outcome, UserResult};

/// Outcomes recorded for a run of `total` users.
#[derive(Debug)]
pub struct OutcomeTable {
    /// Result of each user, by list position; `None` until recorded.
    results: Vec<Option<UserResult>>,
    recorded: usize,
    /// Outcomes by position of the chunks still in memory.
    open_chunks: BTreeMap<usize, BTreeMap<usize, Outcome>>,
    /// Chunks that have at least one outcome, in memory or not.
    chunks: BTreeSet<usize>,
    /// Outcomes that status may show inline: users that did not succeed,
    /// and every user when `show_all` is set.
    inline_candidates: BTreeMap<usize, Outcome>,
    show_all: bool,
}

impl OutcomeTable {
    /// Creates an empty table for `total` users. With `show_all`, succeeded
    /// users are kept for the inline list too, which suits small lists.
    pub fn new(total: usize, show_all: bool) -> Self {
        Self {
            results: vec![None; total],
            recorded: 0,
            open_chunks: BTreeMap::new(),
            chunks: BTreeSet::new(),
            inline_candidates: BTreeMap::new(),
            show_all,
        }
    }

    /// Stores the outcome of the user at `index`, replacing an earlier one.
    /// The chunk of `index` must be in memory (see [`Self::is_loaded`]).
    pub fn insert(&mut self, index: usize, outcome: Outcome) {
        let chunk = chunk_of(index);
        if self.results[index].is_none() {
            self.recorded += 1;
        }
        self.results[index] = Some(outcome.result);
        self.chunks.insert(chunk);

        if self.show_all || outcome.result != UserResult::Succeeded {
            self.inline_candidates.insert(index, outcome.clone());
        } else {
            self.inline_candidates.remove(&index);
        }
        self.open_chunks
            .entry(chunk)
            .or_default()
            .insert(index, outcome);
    }

    /// Result of the user at `index`, if recorded.
    pub fn result(&self, index: usize) -> Option<UserResult> {
        self.results.get(index).copied().flatten()
    }

    /// Returns whether the outcomes of `chunk` are in memory, or the chunk
    /// has none yet. A chunk dropped by [`Self::mark_written`] must be loaded
    /// again with [`Self::load_chunk`] before it is changed.
    pub fn is_loaded(&self, chunk: usize) -> bool {
        self.open_chunks.contains_key(&chunk) || !self.chunks.contains(&chunk)
    }

    /// Puts the stored outcomes of a dropped chunk back into memory. Rows of
    /// other chunks are ignored.
    pub fn load_chunk(&mut self, chunk: usize, rows: impl IntoIterator<Item = (usize, Outcome)>) {
        let outcomes = self.open_chunks.entry(chunk).or_default();
        for (index, outcome) in rows {
            if chunk_of(index) == chunk && index < self.results.len() {
                outcomes.entry(index).or_insert(outcome);
            }
        }
    }

    /// Outcomes of `chunk` by position, or `None` when it is not in memory.
    pub fn chunk(&self, chunk: usize) -> Option<&BTreeMap<usize, Outcome>> {
        self.open_chunks.get(&chunk)
    }

    /// Notes that `chunk` is stored as it is in memory, and drops it from
    /// memory when it is complete and has no `Unknown` outcome.
    pub fn mark_written(&mut self, chunk: usize) {
        let Some(outcomes) = self.open_chunks.get(&chunk) else {
            return;
        };
        let start = chunk * ROWS_PER_CHUNK;
        let end = (start + ROWS_PER_CHUNK).min(self.results.len());
        let complete = outcomes.len() == end.saturating_sub(start);
        let has_unknown = outcomes
            .values()
            .any(|outcome| outcome.result == UserResult::Unknown);
        if complete && !has_unknown {
            self.open_chunks.remove(&chunk);
        }
    }

    /// Users with an outcome.
    pub fn recorded(&self) -> usize {
        self.recorded
    }

    /// Chunks with at least one outcome, in list order.
    pub fn chunks(&self) -> impl Iterator<Item = usize> + '_ {
        self.chunks.iter().copied()
    }

    /// Chunks in memory.
    #[cfg(test)]
    pub fn chunks_in_memory(&self) -> usize {
        self.open_chunks.len()
    }

    /// Returns the first `cap` outcomes to show inline, by position, and
    /// how many more there are.
    pub fn inline(&self, cap: usize) -> (Vec<(usize, &Outcome)>, usize) {
        let listed: Vec<(usize, &Outcome)> = self
            .inline_candidates
            .iter()
            .take(cap)
            .map(|(index, outcome)| (*index, outcome))
            .collect();
        let omitted = self.inline_candidates.len() - listed.len();
        (listed, omitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(result: UserResult) -> Outcome {
        Outcome {
            result,
            http_status: Some(200),
            error_id: None,
            message: None,
            attempts: 1,
        }
    }

    fn fill_chunk(table: &mut OutcomeTable, chunk: usize, result: UserResult) {
        let start = chunk * ROWS_PER_CHUNK;
        for index in start..start + ROWS_PER_CHUNK {
            table.insert(index, outcome(result));
        }
    }

    #[test]
    fn complete_chunk_dropped_after_write() {
        let mut table = OutcomeTable::new(2 * ROWS_PER_CHUNK, false);
        fill_chunk(&mut table, 0, UserResult::Succeeded);
        table.insert(ROWS_PER_CHUNK, outcome(UserResult::Succeeded));

        table.mark_written(0);
        table.mark_written(1);

        assert!(table.chunk(0).is_none());
        assert!(!table.is_loaded(0));
        assert_eq!(table.chunk(1).map(BTreeMap::len), Some(1));
        assert_eq!(table.recorded(), ROWS_PER_CHUNK + 1);
        assert_eq!(table.chunks().collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn last_partial_chunk_dropped_when_complete() {
        let mut table = OutcomeTable::new(ROWS_PER_CHUNK + 3, false);
        for index in ROWS_PER_CHUNK..ROWS_PER_CHUNK + 3 {
            table.insert(index, outcome(UserResult::Succeeded));
        }

        table.mark_written(1);

        assert_eq!(table.chunks_in_memory(), 0);
    }

    #[test]
    fn chunk_with_unknown_kept() {
        let mut table = OutcomeTable::new(ROWS_PER_CHUNK, false);
        fill_chunk(&mut table, 0, UserResult::Succeeded);
        table.insert(7, outcome(UserResult::Unknown));

        table.mark_written(0);

        assert!(table.is_loaded(0));
        assert_eq!(table.recorded(), ROWS_PER_CHUNK);
    }

    #[test]
    fn inline_lists_not_succeeded_capped() {
        let mut table = OutcomeTable::new(ROWS_PER_CHUNK, false);
        for index in 0..300 {
            let result = if index % 2 == 0 {
                UserResult::Failed
            } else {
                UserResult::Succeeded
            };
            table.insert(index, outcome(result));
        }

        let (shown, omitted) = table.inline(100);

        assert_eq!(shown.len(), 100);
        assert_eq!(shown[0].0, 0);
        assert_eq!(shown[99].0, 198);
        assert_eq!(omitted, 50);
    }

    #[test]
    fn replaced_outcome_leaves_inline_list() {
        let mut table = OutcomeTable::new(10, false);
        table.insert(3, outcome(UserResult::Unknown));

        table.insert(3, outcome(UserResult::Succeeded));

        assert!(table.inline(100).0.is_empty());
        assert_eq!(table.recorded(), 1);
    }

    #[test]
    fn show_all_keeps_succeeded() {
        let mut table = OutcomeTable::new(10, true);
        table.insert(0, outcome(UserResult::Succeeded));

        assert_eq!(table.inline(100).0.len(), 1);
    }

    #[test]
    fn loaded_chunk_keeps_newer_outcomes() {
        let mut table = OutcomeTable::new(ROWS_PER_CHUNK, false);
        fill_chunk(&mut table, 0, UserResult::Succeeded);
        table.mark_written(0);
        assert!(!table.is_loaded(0));

        table.load_chunk(
            0,
            (0..ROWS_PER_CHUNK).map(|index| (index, outcome(UserResult::Succeeded))),
        );
        table.insert(5, outcome(UserResult::Failed));

        let chunk = table.chunk(0).expect("loaded");
        assert_eq!(chunk.len(), ROWS_PER_CHUNK);
        assert_eq!(chunk[&5].result, UserResult::Failed);
    }
}
