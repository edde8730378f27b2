//! Records of the calls the simulator served, so a test can prove that every user was reset
//! at most once and that no retry came sooner than its `Retry-After` requested.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Kind of body a password call had. The password itself is never recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    /// `{}` (or `"token": null`): MAS generates the password.
    Empty,
    /// `{"token": "..."}`: the client sets the password.
    Password,
    /// The body was not valid JSON of the expected shape.
    Invalid,
    /// The body was not read, because the call got a response or was dropped before that.
    NotRead,
}

/// One password call (`POST /v3/users/{userid}/password`) that reached the handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Arrival order among password calls, from 1.
    pub seq: u64,
    /// Arrival time in milliseconds since the simulator started (monotonic clock).
    pub at_ms: u64,
    pub method: String,
    /// Path and query exactly as in the request line.
    pub raw_path: String,
    /// The user ID segment decoded once; empty when it could not be decoded.
    pub user_id: String,
    pub body_kind: BodyKind,
    pub email_password: bool,
    /// Response status, or 0 when the connection was closed without a response.
    pub status: u16,
    /// Whether the password was changed.
    pub applied: bool,
    /// Injected fault, such as `status_429`, `random_reset_after_apply` or
    /// `concurrency_limit`.
    pub fault: Option<String>,
    /// Raw `Retry-After` header value sent.
    pub retry_after: Option<String>,
    /// Earliest time, in ms since start, at which a retry honours `retry_after`: the planned
    /// response time plus the wait the header requests. `None` when the header is missing or
    /// unreadable.
    pub earliest_retry_ms: Option<u64>,
}

/// One `GET /v3/users/{userid}` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupEntry {
    pub at_ms: u64,
    pub raw_path: String,
    pub user_id: String,
    pub status: u16,
}

/// One `GET /v1/authenticate` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticationEntry {
    pub at_ms: u64,
    /// API key id from the Basic credentials; empty when there were none.
    pub api_key_id: String,
    pub status: u16,
    /// Lifetime of the issued JWT in seconds.
    pub lifetime_secs: Option<u64>,
}

/// Append-only records. Each append holds a mutex only for a `Vec::push`.
#[derive(Default)]
pub struct Ledger {
    next_seq: AtomicU64,
    password_calls: Mutex<Vec<LedgerEntry>>,
    lookups: Mutex<Vec<LookupEntry>>,
    authentications: Mutex<Vec<AuthenticationEntry>>,
}

impl Ledger {
    /// Takes the sequence number for a password call that just arrived.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn record_password_call(&self, entry: LedgerEntry) {
        lock(&self.password_calls).push(entry);
    }

    pub fn record_lookup(&self, entry: LookupEntry) {
        lock(&self.lookups).push(entry);
    }

    pub fn record_authentication(&self, entry: AuthenticationEntry) {
        lock(&self.authentications).push(entry);
    }

    /// Password calls in arrival order.
    pub fn password_calls(&self) -> Vec<LedgerEntry> {
        let mut entries = lock(&self.password_calls).clone();
        entries.sort_by_key(|entry| entry.seq);
        entries
    }

    pub fn lookups(&self) -> Vec<LookupEntry> {
        lock(&self.lookups).clone()
    }

    pub fn authentications(&self) -> Vec<AuthenticationEntry> {
        lock(&self.authentications).clone()
    }

    /// Number of applied password changes per user ID.
    pub fn applied_counts(&self) -> HashMap<String, u32> {
        let mut counts = HashMap::new();
        for entry in lock(&self.password_calls)
            .iter()
            .filter(|entry| entry.applied)
        {
            *counts.entry(entry.user_id.clone()).or_insert(0) += 1;
        }
        counts
    }
}

/// Locks a mutex, also after a panic elsewhere: every critical section here is a single
/// push or clone, which leaves the data consistent.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, user_id: &str, applied: bool) -> LedgerEntry {
        LedgerEntry {
            seq,
            at_ms: seq * 10,
            method: "POST".to_owned(),
            raw_path: format!("/v3/users/{user_id}/password?emailPassword=false"),
            user_id: user_id.to_owned(),
            body_kind: BodyKind::Empty,
            email_password: false,
            status: if applied { 200 } else { 429 },
            applied,
            fault: None,
            retry_after: None,
            earliest_retry_ms: None,
        }
    }

    #[test]
    fn entries_come_back_in_arrival_order() {
        let ledger = Ledger::default();
        let first = ledger.next_seq();
        let second = ledger.next_seq();
        ledger.record_password_call(entry(second, "bob", true));
        ledger.record_password_call(entry(first, "alice", false));

        let seqs: Vec<u64> = ledger.password_calls().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn applied_counts_skip_failed_calls() {
        let ledger = Ledger::default();
        ledger.record_password_call(entry(1, "alice", false));
        ledger.record_password_call(entry(2, "alice", true));
        ledger.record_password_call(entry(3, "bob", true));
        ledger.record_password_call(entry(4, "bob", true));

        let counts = ledger.applied_counts();
        assert_eq!(counts.get("alice"), Some(&1));
        assert_eq!(counts.get("bob"), Some(&2));
        assert_eq!(counts.len(), 2);
    }
}
