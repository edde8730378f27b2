//! The simulated user directory and each user's current password.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::config::SimUser;
use super::ledger::lock;

/// Name of the identity provider an SSO-only user's profile lists.
const SSO_IDENTITY_PROVIDER: &str = "saml";

struct UserRecord {
    user: SimUser,
    /// SHA-256 of the current password; the password itself is not kept.
    password_sha256: Option<[u8; 32]>,
}

/// Users by ID. Every method holds the lock only for a map access.
pub struct Directory {
    users: Mutex<HashMap<String, UserRecord>>,
}

impl Directory {
    pub fn new(users: Vec<SimUser>) -> Self {
        Self {
            users: Mutex::new(records(users)),
        }
    }

    /// Replaces every user; passwords set before are forgotten.
    pub fn replace(&self, users: Vec<SimUser>) {
        *lock(&self.users) = records(users);
    }

    pub fn get(&self, user_id: &str) -> Option<SimUser> {
        lock(&self.users)
            .get(user_id)
            .map(|record| record.user.clone())
    }

    /// Sets the password of a user; returns `false` when the user does not exist.
    pub fn set_password(&self, user_id: &str, password: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        match lock(&self.users).get_mut(user_id) {
            Some(record) => {
                record.password_sha256 = Some(digest);
                true
            }
            None => false,
        }
    }

    /// Whether `password` is the user's current password.
    pub fn password_matches(&self, user_id: &str, password: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        lock(&self.users)
            .get(user_id)
            .is_some_and(|record| record.password_sha256 == Some(digest))
    }
}

fn records(users: Vec<SimUser>) -> HashMap<String, UserRecord> {
    users
        .into_iter()
        .map(|user| {
            let record = UserRecord {
                user,
                password_sha256: None,
            };
            (record.user.id.clone(), record)
        })
        .collect()
}

/// Builds the `GET /v3/users/{userid}` profile: `identities` has the `_local` key only for
/// a user with a local login.
pub fn profile_json(user: &SimUser) -> Value {
    let emails: Vec<Value> = user
        .email
        .iter()
        .map(|address| json!({ "value": address, "type": "WORK", "primary": true }))
        .collect();
    let identity_provider = if user.local {
        "_local"
    } else {
        SSO_IDENTITY_PROVIDER
    };

    json!({
        "id": user.id,
        "username": user.id,
        "displayName": user.id,
        "status": { "active": user.active },
        "emails": emails,
        "identities": { identity_provider: { "userid": user.id } },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_checked_by_digest() {
        let directory = Directory::new(vec![SimUser::local("alice")]);
        assert!(!directory.password_matches("alice", "Secret123"));
        assert!(directory.set_password("alice", "Secret123"));
        assert!(directory.password_matches("alice", "Secret123"));
        assert!(!directory.password_matches("alice", "secret123"));
        assert!(!directory.set_password("nobody", "Secret123"));
    }

    #[test]
    fn profile_lists_local_identity_only_for_local_users() {
        let local = profile_json(&SimUser::local("alice"));
        assert!(local["identities"].get("_local").is_some());
        assert_eq!(local["emails"][0]["value"], "alice@example.com");
        assert_eq!(local["emails"][0]["primary"], true);
        assert_eq!(local["status"]["active"], true);

        let sso = profile_json(&SimUser::sso_only("bob"));
        assert!(sso["identities"].get("_local").is_none());
        assert!(sso["identities"].get("saml").is_some());
    }

    #[test]
    fn replace_forgets_passwords() {
        let directory = Directory::new(vec![SimUser::local("alice")]);
        directory.set_password("alice", "Secret123");
        directory.replace(vec![SimUser::local("alice")]);
        assert!(!directory.password_matches("alice", "Secret123"));
    }
}
