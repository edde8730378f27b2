//! Passwords the operator generates or keeps per user: the generator for
//! mode `Random` and the vault that hands each user's password from the
//! journal, which stores it, to the executor, which sends it.

mod generator;
mod vault;

pub use generator::{
    ClassMinimums, DEFAULT_LENGTH, DEFAULT_SPECIAL_CHARACTERS, DIGITS, LOWERCASE, MAX_LENGTH,
    MIN_LENGTH, PasswordRules, RandomSourceError, RulesError, UPPERCASE,
};
pub use vault::PasswordVault;
