//! Password policy: the checks MAS applies to a password a client sets, and the generator
//! for the passwords MAS makes up when the request body is `{}`.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};
use thiserror::Error;

const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
const SPECIAL: &[u8] = b"!#$%*+-=?@_";

/// Length a generated password has when the policy allows it.
const GENERATED_LENGTH: usize = 16;

/// Password rules of a MAS instance. MAS documents each of them as configurable; the
/// defaults are the documented length range with no character-class minimums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Minimum length in characters (Unicode scalar values).
    pub min_length: usize,
    /// Maximum length in characters.
    pub max_length: usize,
    /// Minimum count of upper-case letters.
    pub min_upper: usize,
    /// Minimum count of lower-case letters.
    pub min_lower: usize,
    /// Minimum count of decimal digits.
    pub min_digits: usize,
    /// Minimum count of characters that are neither letters nor digits.
    pub min_special: usize,
    /// Whether the password may contain the user ID (compared case-insensitively).
    pub allow_user_id: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 6,
            max_length: 35,
            min_upper: 0,
            min_lower: 0,
            min_digits: 0,
            min_special: 0,
            allow_user_id: true,
        }
    }
}

/// A rule of [`PasswordPolicy`] that a password breaks. The messages never contain the
/// password.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyViolation {
    #[error("the password must have at least {min} characters")]
    TooShort { min: usize },
    #[error("the password must have at most {max} characters")]
    TooLong { max: usize },
    #[error("the password must contain at least {min} upper-case letters")]
    TooFewUpper { min: usize },
    #[error("the password must contain at least {min} lower-case letters")]
    TooFewLower { min: usize },
    #[error("the password must contain at least {min} digits")]
    TooFewDigits { min: usize },
    #[error("the password must contain at least {min} special characters")]
    TooFewSpecial { min: usize },
    #[error("the password must not contain the user ID")]
    ContainsUserId,
}

impl PolicyViolation {
    /// Name of the broken rule, as it appears in the error body's `properties`.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "minLength",
            Self::TooLong { .. } => "maxLength",
            Self::TooFewUpper { .. } => "minUpperCase",
            Self::TooFewLower { .. } => "minLowerCase",
            Self::TooFewDigits { .. } => "minDigits",
            Self::TooFewSpecial { .. } => "minSpecialCharacters",
            Self::ContainsUserId => "userIdNotAllowed",
        }
    }

    /// The rule's limit, when it has one.
    pub fn limit(&self) -> Option<usize> {
        match self {
            Self::TooShort { min }
            | Self::TooFewUpper { min }
            | Self::TooFewLower { min }
            | Self::TooFewDigits { min }
            | Self::TooFewSpecial { min } => Some(*min),
            Self::TooLong { max } => Some(*max),
            Self::ContainsUserId => None,
        }
    }
}

/// A policy whose limits contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error("password policy min_length {min} is greater than max_length {max}")]
    LengthRange { min: usize, max: usize },
    #[error(
        "password policy requires {required} characters from the minimum counts but max_length is {max}; lower the counts or raise max_length"
    )]
    CountsExceedMaxLength { required: usize, max: usize },
    #[error("password policy max_length must be at least 1")]
    ZeroMaxLength,
}

impl PasswordPolicy {
    /// Checks that some password can satisfy every rule at once.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_length == 0 {
            return Err(PolicyError::ZeroMaxLength);
        }
        if self.min_length > self.max_length {
            return Err(PolicyError::LengthRange {
                min: self.min_length,
                max: self.max_length,
            });
        }
        let required = self.required_class_characters();
        if required > self.max_length {
            return Err(PolicyError::CountsExceedMaxLength {
                required,
                max: self.max_length,
            });
        }
        Ok(())
    }

    /// Checks a password a client wants to set, rule by rule in a fixed order, and returns
    /// the first rule it breaks.
    pub fn check(&self, password: &str, user_id: &str) -> Result<(), PolicyViolation> {
        let length = password.chars().count();
        if length < self.min_length {
            return Err(PolicyViolation::TooShort {
                min: self.min_length,
            });
        }
        if length > self.max_length {
            return Err(PolicyViolation::TooLong {
                max: self.max_length,
            });
        }

        let counts = ClassCounts::of(password);
        if counts.upper < self.min_upper {
            return Err(PolicyViolation::TooFewUpper {
                min: self.min_upper,
            });
        }
        if counts.lower < self.min_lower {
            return Err(PolicyViolation::TooFewLower {
                min: self.min_lower,
            });
        }
        if counts.digits < self.min_digits {
            return Err(PolicyViolation::TooFewDigits {
                min: self.min_digits,
            });
        }
        if counts.special < self.min_special {
            return Err(PolicyViolation::TooFewSpecial {
                min: self.min_special,
            });
        }

        let contains_user_id =
            !user_id.is_empty() && password.to_lowercase().contains(&user_id.to_lowercase());
        if !self.allow_user_id && contains_user_id {
            return Err(PolicyViolation::ContainsUserId);
        }
        Ok(())
    }

    /// Generates a random password that satisfies this policy; [`Self::validate`] must
    /// have passed.
    pub fn generate(&self, rng: &mut impl Rng) -> String {
        let length = GENERATED_LENGTH
            .clamp(self.min_length, self.max_length)
            .max(self.required_class_characters());

        let mut characters = Vec::with_capacity(length);
        let required = [
            (UPPER, self.min_upper),
            (LOWER, self.min_lower),
            (DIGITS, self.min_digits),
            (SPECIAL, self.min_special),
        ];
        for (alphabet, count) in required {
            for _ in 0..count {
                characters.push(*alphabet.choose(rng).expect("alphabet is not empty"));
            }
        }

        // One character of each common class where room is left, so a generated password
        // mixes classes even under a policy without minimums.
        for alphabet in [UPPER, LOWER, DIGITS] {
            if characters.len() < length {
                characters.push(*alphabet.choose(rng).expect("alphabet is not empty"));
            }
        }

        let filler: Vec<u8> = [UPPER, LOWER, DIGITS].concat();
        while characters.len() < length {
            characters.push(*filler.choose(rng).expect("filler is not empty"));
        }
        characters.shuffle(rng);
        String::from_utf8(characters).expect("alphabets are ASCII")
    }

    fn required_class_characters(&self) -> usize {
        self.min_upper + self.min_lower + self.min_digits + self.min_special
    }
}

/// How many characters of each class a password has.
struct ClassCounts {
    upper: usize,
    lower: usize,
    digits: usize,
    special: usize,
}

impl ClassCounts {
    fn of(password: &str) -> Self {
        let mut counts = Self {
            upper: 0,
            lower: 0,
            digits: 0,
            special: 0,
        };
        for character in password.chars() {
            if character.is_uppercase() {
                counts.upper += 1;
            } else if character.is_lowercase() {
                counts.lower += 1;
            } else if character.is_numeric() {
                counts.digits += 1;
            } else if !character.is_alphabetic() {
                counts.special += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn strict_policy() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 8,
            max_length: 12,
            min_upper: 1,
            min_lower: 1,
            min_digits: 2,
            min_special: 1,
            allow_user_id: false,
        }
    }

    #[test]
    fn default_policy_checks_length_only() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.check("abcdef", "u"), Ok(()));
        assert_eq!(
            policy.check("abcde", "u"),
            Err(PolicyViolation::TooShort { min: 6 })
        );
        assert_eq!(
            policy.check(&"a".repeat(36), "u"),
            Err(PolicyViolation::TooLong { max: 35 })
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.check("jörgjö", "u"), Ok(()));
    }

    #[test]
    fn strict_policy_reports_each_rule() {
        let policy = strict_policy();
        let cases = [
            ("abcdefg1!", PolicyViolation::TooFewUpper { min: 1 }),
            ("ABCDEFG1!", PolicyViolation::TooFewLower { min: 1 }),
            ("Abcdefg1!", PolicyViolation::TooFewDigits { min: 2 }),
            ("Abcdefg12", PolicyViolation::TooFewSpecial { min: 1 }),
            ("Alice12!x", PolicyViolation::ContainsUserId),
        ];
        for (password, expected) in cases {
            assert_eq!(policy.check(password, "alice"), Err(expected), "{password}");
        }
        assert_eq!(policy.check("Xyzzy12!q", "alice"), Ok(()));
    }

    #[test]
    fn generated_passwords_pass_policy() {
        let mut rng = StdRng::seed_from_u64(7);
        let tight = PasswordPolicy {
            min_length: 3,
            max_length: 3,
            min_special: 1,
            ..PasswordPolicy::default()
        };
        for policy in [PasswordPolicy::default(), strict_policy(), tight] {
            for _ in 0..200 {
                let password = policy.generate(&mut rng);
                assert_eq!(policy.check(&password, "alice"), Ok(()), "{password}");
            }
        }
    }

    #[test]
    fn validate_rejects_contradictions() {
        let inverted = PasswordPolicy {
            min_length: 10,
            max_length: 8,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            inverted.validate(),
            Err(PolicyError::LengthRange { min: 10, max: 8 })
        );

        let crowded = PasswordPolicy {
            max_length: 3,
            min_length: 1,
            min_upper: 2,
            min_digits: 2,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            crowded.validate(),
            Err(PolicyError::CountsExceedMaxLength {
                required: 4,
                max: 3
            })
        );
    }
}
