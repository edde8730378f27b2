//! The passwords of one run, by list position, shared by the journal that
//! stores them and the executor that sends them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

use super::generator::{PasswordRules, RandomSourceError};
use crate::secret::SecretString;

/// Per-user passwords of a run.
///
/// In mode `Random` the journal assigns each user a password before the
/// claim that covers the user is written, and the executor sends that
/// password. With MAS-generated passwords and no e-mail, the executor keeps
/// each password MAS returns. Either way a new password is "unsaved" until
/// the journal has written it.
pub struct PasswordVault {
    /// Set when the operator assigns the passwords.
    rules: Option<PasswordRules>,
    state: Mutex<VaultState>,
}

#[derive(Default)]
struct VaultState {
    passwords: BTreeMap<usize, SecretString>,
    unsaved: BTreeSet<usize>,
}

impl fmt::Debug for PasswordVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("PasswordVault")
            .field("rules", &self.rules)
            .field("passwords", &state.passwords.len())
            .field("unsaved", &state.unsaved.len())
            .finish()
    }
}

impl PasswordVault {
    /// Creates a vault whose passwords the operator generates with `rules`.
    pub fn assigning(rules: PasswordRules) -> Self {
        Self {
            rules: Some(rules),
            state: Mutex::default(),
        }
    }

    /// Creates a vault that keeps the passwords MAS returns.
    pub fn collecting() -> Self {
        Self {
            rules: None,
            state: Mutex::default(),
        }
    }

    /// Whether the operator generates the passwords, so that each user must
    /// have one before it is sent.
    pub fn assigns_passwords(&self) -> bool {
        self.rules.is_some()
    }

    /// Adds passwords read back from storage; they count as saved.
    pub fn restore(&self, stored: impl IntoIterator<Item = (usize, SecretString)>) {
        let mut state = self.lock();
        for (index, password) in stored {
            state.passwords.insert(index, password);
        }
    }

    /// Returns the password of the user at `index`.
    pub fn password(&self, index: usize) -> Option<SecretString> {
        self.lock().passwords.get(&index).cloned()
    }

    /// Generates a password for each `(index, user ID)` that has none yet
    /// and returns how many were generated. Does nothing for a collecting
    /// vault.
    pub fn assign<'a>(
        &self,
        users: impl IntoIterator<Item = (usize, &'a str)>,
    ) -> Result<usize, RandomSourceError> {
        let Some(rules) = &self.rules else {
            return Ok(0);
        };
        let mut state = self.lock();
        let mut generated = 0;
        for (index, user_id) in users {
            if state.passwords.contains_key(&index) {
                continue;
            }
            let password = rules.generate(user_id)?;
            state.passwords.insert(index, password);
            state.unsaved.insert(index);
            generated += 1;
        }
        Ok(generated)
    }

    /// Keeps a password that MAS returned for the user at `index`.
    pub fn keep_returned(&self, index: usize, password: SecretString) {
        let mut state = self.lock();
        state.passwords.insert(index, password);
        state.unsaved.insert(index);
    }

    /// Removes and returns the positions whose passwords are not written
    /// yet. After a failed write, give them back with
    /// [`mark_unsaved`](Self::mark_unsaved).
    pub fn take_unsaved(&self) -> BTreeSet<usize> {
        std::mem::take(&mut self.lock().unsaved)
    }

    /// Marks positions as not written yet.
    pub fn mark_unsaved(&self, indices: impl IntoIterator<Item = usize>) {
        self.lock().unsaved.extend(indices);
    }

    /// Returns the passwords of the positions in `range`, in order.
    pub fn passwords_in(&self, range: Range<usize>) -> Vec<(usize, SecretString)> {
        self.lock()
            .passwords
            .range(range)
            .map(|(index, password)| (*index, password.clone()))
            .collect()
    }

    /// Removes the passwords whose position fails `keep` and returns those
    /// positions.
    pub fn retain(&self, mut keep: impl FnMut(usize) -> bool) -> BTreeSet<usize> {
        let mut state = self.lock();
        let removed: BTreeSet<usize> = state
            .passwords
            .keys()
            .copied()
            .filter(|index| !keep(*index))
            .collect();
        for index in &removed {
            state.passwords.remove(index);
            state.unsaved.remove(index);
        }
        removed
    }

    /// Returns whether any password is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().passwords.is_empty()
    }

    /// Locks the state. Every critical section is a map operation that
    /// leaves the state consistent, so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, VaultState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_generates_only_missing() {
        let vault = PasswordVault::assigning(PasswordRules::default());
        vault.restore([(1, SecretString::new("Kept-Password-1"))]);

        let generated = vault.assign([(0, "alice"), (1, "bob"), (2, "carol")]);

        assert_eq!(generated.unwrap(), 2);
        assert_eq!(
            vault.password(1).map(|p| p.expose().to_owned()).as_deref(),
            Some("Kept-Password-1")
        );
        assert!(vault.password(0).is_some());
        assert!(vault.password(2).is_some());
        assert_eq!(vault.take_unsaved(), BTreeSet::from([0, 2]));
        assert!(vault.take_unsaved().is_empty());
    }

    #[test]
    fn assign_keeps_earlier_passwords() {
        let vault = PasswordVault::assigning(PasswordRules::default());
        vault.assign([(0, "alice")]).unwrap();
        let first = vault.password(0).unwrap();

        vault.assign([(0, "alice")]).unwrap();

        assert_eq!(vault.password(0).unwrap(), first);
    }

    #[test]
    fn collecting_vault_generates_nothing() {
        let vault = PasswordVault::collecting();

        assert_eq!(vault.assign([(0, "alice")]).unwrap(), 0);
        assert!(vault.is_empty());
        assert!(!vault.assigns_passwords());

        vault.keep_returned(4, SecretString::new("from-mas"));
        assert_eq!(vault.take_unsaved(), BTreeSet::from([4]));
        assert_eq!(vault.passwords_in(0..10).len(), 1);
    }

    #[test]
    fn mark_unsaved_returns_positions() {
        let vault = PasswordVault::collecting();
        vault.keep_returned(1, SecretString::new("a"));
        let taken = vault.take_unsaved();

        vault.mark_unsaved(taken);

        assert_eq!(vault.take_unsaved(), BTreeSet::from([1]));
    }

    #[test]
    fn retain_removes_and_reports() {
        let vault = PasswordVault::collecting();
        for index in 0..4 {
            vault.keep_returned(index, SecretString::new(format!("pw-{index}")));
        }

        let removed = vault.retain(|index| index % 2 == 0);

        assert_eq!(removed, BTreeSet::from([1, 3]));
        assert_eq!(vault.passwords_in(0..4).len(), 2);
        assert_eq!(vault.take_unsaved(), BTreeSet::from([0, 2]));
    }

    #[test]
    fn debug_shows_no_password() {
        let vault = PasswordVault::collecting();
        vault.keep_returned(0, SecretString::new("visible-if-leaked"));

        let printed = format!("{vault:?}");

        assert!(!printed.contains("visible-if-leaked"), "{printed}");
        assert!(printed.contains("passwords: 1"), "{printed}");
    }
}
