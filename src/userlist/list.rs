//! The parsed user list and the bookkeeping that builds it row by row.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use sha2::{Digest, Sha256};

use super::validate::{RejectReason, preview};

/// Prefix hashed before the IDs so that a digest of this list cannot equal a
/// digest of other data. Change the version when the framing changes.
const DIGEST_DOMAIN: &[u8] = b"mas-reset-operator user list v1\n";

/// Result of parsing all sources of a user list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserList {
    /// Distinct valid IDs in list order, sources in the order given.
    pub users: Vec<UserEntry>,
    /// Blank and separator-only rows, such as `,,,`, `;;` or only spaces.
    pub skipped_rows: u64,
    /// Every rejected row; the caller decides how many to show.
    pub rejected: Vec<Rejection>,
    /// Rows that repeat an earlier ID. The ID is sent only once.
    pub duplicates: Vec<Duplicate>,
    /// User ID values that had surrounding ASCII spaces removed.
    pub trimmed_values: u64,
    /// Facts about how the sources were read, each starting with the source name.
    pub notes: Vec<String>,
    /// Source names (`configmap/key`) in order, for the `source` indexes.
    pub source_names: Vec<String>,
}

impl UserList {
    /// Computes the SHA-256 digest of the ordered user IDs as lowercase hex.
    ///
    /// Each ID is hashed after its length as a big-endian `u64`, so two
    /// different lists never produce the same byte stream. Skipped, rejected
    /// and duplicate rows do not change the digest.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(DIGEST_DOMAIN);
        for user in &self.users {
            hasher.update((user.id.len() as u64).to_be_bytes());
            hasher.update(user.id.as_bytes());
        }

        hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Returns the name of source `index`, or `"?"` for an unknown index.
    pub fn source_name(&self, index: usize) -> &str {
        self.source_names.get(index).map_or("?", String::as_str)
    }
}

/// One user ID to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// The ID exactly as sent, trimmed of surrounding ASCII spaces.
    pub id: String,
    /// Index into the sources.
    pub source: usize,
    /// Spreadsheet row, counting blank rows; the first line is row 1.
    pub row: u64,
}

/// A row that is not sent, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Index into the sources.
    pub source: usize,
    /// Spreadsheet row, counting blank rows; the first line is row 1.
    pub row: u64,
    /// Reason the row is rejected.
    pub reason: RejectReason,
    /// Escaped, shortened excerpt of the value, safe to show.
    pub preview: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.preview.is_empty() {
            write!(formatter, "row {}: {}", self.row, self.reason)
        } else {
            write!(
                formatter,
                "row {} (\"{}\"): {}",
                self.row, self.preview, self.reason
            )
        }
    }
}

/// A row whose ID appeared earlier in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// Index into the sources of the repeating row.
    pub source: usize,
    /// Spreadsheet row of the repeating row.
    pub row: u64,
    /// The repeated ID.
    pub id: String,
    /// Index into the sources of the first occurrence.
    pub first_source: usize,
    /// Spreadsheet row of the first occurrence.
    pub first_row: u64,
}

/// Position of an accepted ID, for duplicate reports.
#[derive(Debug, Clone, Copy)]
struct FirstSeen {
    source: usize,
    row: u64,
}

/// IDs that differ from an earlier ID only in letter case.
#[derive(Debug, Default)]
struct CaseVariants {
    by_lowercase: HashMap<String, usize>,
    count: u64,
    example: Option<(usize, usize)>,
}

/// Collects rows from all sources into a [`UserList`].
#[derive(Debug, Default)]
pub(super) struct ListBuilder {
    list: UserList,
    first_seen: HashMap<String, FirstSeen>,
    case_variants: CaseVariants,
}

impl ListBuilder {
    pub(super) fn new(source_names: Vec<String>) -> Self {
        Self {
            list: UserList {
                source_names,
                ..UserList::default()
            },
            ..Self::default()
        }
    }

    pub(super) fn add_note(&mut self, source: usize, note: impl fmt::Display) {
        let name = self.list.source_name(source).to_owned();
        self.list.notes.push(format!("{name}: {note}"));
    }

    pub(super) fn skip_rows(&mut self, count: u64) {
        self.list.skipped_rows += count;
    }

    pub(super) fn count_trimmed_value(&mut self) {
        self.list.trimmed_values += 1;
    }

    pub(super) fn reject(&mut self, source: usize, row: u64, reason: RejectReason, value: &str) {
        self.list.rejected.push(Rejection {
            source,
            row,
            reason,
            preview: preview(value),
        });
    }

    /// Adds a valid ID, or records a duplicate when it was seen before.
    pub(super) fn accept(&mut self, source: usize, row: u64, id: &str) {
        match self.first_seen.entry(id.to_owned()) {
            Entry::Occupied(first) => {
                let first = *first.get();
                self.list.duplicates.push(Duplicate {
                    source,
                    row,
                    id: id.to_owned(),
                    first_source: first.source,
                    first_row: first.row,
                });
            }
            Entry::Vacant(slot) => {
                slot.insert(FirstSeen { source, row });
                self.track_case_variant(id);
                self.list.users.push(UserEntry {
                    id: id.to_owned(),
                    source,
                    row,
                });
            }
        }
    }

    /// Remembers an ID that matches an earlier one except for letter case.
    /// Both are sent because IDs are compared exactly.
    fn track_case_variant(&mut self, id: &str) {
        let new_index = self.list.users.len();
        match self.case_variants.by_lowercase.entry(id.to_lowercase()) {
            Entry::Occupied(earlier) => {
                self.case_variants.count += 1;
                self.case_variants
                    .example
                    .get_or_insert((*earlier.get(), new_index));
            }
            Entry::Vacant(slot) => {
                slot.insert(new_index);
            }
        }
    }

    pub(super) fn finish(mut self) -> UserList {
        if let Some((earlier, later)) = self.case_variants.example {
            let earlier = &self.list.users[earlier];
            let later = &self.list.users[later];
            let note = format!(
                "{count} user IDs differ from an earlier ID only in letter case, for example \
                 \"{later_id}\" ({later_source} row {later_row}) and \"{earlier_id}\" \
                 ({earlier_source} row {earlier_row}); both are sent because IDs are compared \
                 exactly, so check the list if MAS treats them as one user",
                count = self.case_variants.count,
                later_id = preview(&later.id),
                later_source = self.list.source_name(later.source),
                later_row = later.row,
                earlier_id = preview(&earlier.id),
                earlier_source = self.list.source_name(earlier.source),
                earlier_row = earlier.row,
            );
            self.list.notes.push(note);
        }
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_of(ids: &[&str]) -> UserList {
        let mut builder = ListBuilder::new(vec!["users/users.csv".to_owned()]);
        for (row, id) in (2..).zip(ids) {
            builder.accept(0, row, id);
        }
        builder.finish()
    }

    #[test]
    fn accept_reports_duplicates() {
        let list = list_of(&["alice", "bob", "alice"]);
        let ids: Vec<&str> = list.users.iter().map(|user| user.id.as_str()).collect();
        assert_eq!(ids, ["alice", "bob"]);
        assert_eq!(
            list.duplicates,
            [Duplicate {
                source: 0,
                row: 4,
                id: "alice".to_owned(),
                first_source: 0,
                first_row: 2,
            }]
        );
    }

    #[test]
    fn case_variants_are_kept_and_noted() {
        let list = list_of(&["Alice", "alice"]);
        assert_eq!(list.users.len(), 2);
        assert!(list.duplicates.is_empty());
        assert_eq!(list.notes.len(), 1);
        assert!(
            list.notes[0].starts_with("1 user IDs differ"),
            "{:?}",
            list.notes
        );
        assert!(
            list.notes[0].contains("users/users.csv row 3"),
            "{:?}",
            list.notes
        );
    }

    #[test]
    fn digest_depends_on_order_and_framing() {
        let digest = list_of(&["ab", "c"]).digest();
        assert_eq!(digest.len(), 64);
        assert!(digest.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_eq!(digest, list_of(&["ab", "c"]).digest());
        assert_ne!(digest, list_of(&["a", "bc"]).digest());
        assert_ne!(digest, list_of(&["c", "ab"]).digest());
        assert_ne!(list_of(&[]).digest(), list_of(&[""]).digest());
    }

    #[test]
    fn digest_ignores_duplicates() {
        assert_eq!(
            list_of(&["a", "b", "a"]).digest(),
            list_of(&["a", "b"]).digest()
        );
    }

    #[test]
    fn rejection_display_shows_preview() {
        let rejection = Rejection {
            source: 0,
            row: 7,
            reason: RejectReason::DotSegment,
            preview: "..".to_owned(),
        };
        assert!(
            rejection
                .to_string()
                .starts_with("row 7 (\"..\"): the user ID is")
        );
    }
}
