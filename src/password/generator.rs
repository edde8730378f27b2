//! Random passwords that meet a MAS password policy: a length and minimum
//! counts of upper-case letters, lower-case letters, digits and special
//! characters.
//!
//! Characters are drawn from the operating system's CSPRNG. Each draw is a
//! rejection sample from 32 random bits, so every character of an alphabet
//! is equally likely (no modulo bias), and the mandatory characters are
//! mixed into random positions with a Fisher-Yates shuffle built on the same
//! draws.

use rand::rngs::OsRng;
use rand::{TryCryptoRng, TryRngCore};
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// Upper-case letters.
pub const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Lower-case letters.
pub const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
/// Decimal digits.
pub const DIGITS: &str = "0123456789";
/// Special characters used when none are configured. They need no quoting
/// in JSON, YAML, shells or CSV.
pub const DEFAULT_SPECIAL_CHARACTERS: &str = "!#$%&*+-.:=?@_~";

/// Password length when none is configured.
pub const DEFAULT_LENGTH: usize = 16;
/// Minimum password length, as in the CRD.
pub const MIN_LENGTH: usize = 8;
/// Maximum password length, as in the CRD.
pub const MAX_LENGTH: usize = 128;

/// How often a password that contains the user ID is drawn again before the
/// last one is kept. Only IDs of one or two characters need a second draw
/// with any real chance.
const USER_ID_REDRAWS: usize = 100;

/// Minimum count of each character class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassMinimums {
    /// Upper-case letters.
    pub upper: usize,
    /// Lower-case letters.
    pub lower: usize,
    /// Digits.
    pub digits: usize,
    /// Special characters.
    pub special: usize,
}

impl Default for ClassMinimums {
    /// Returns a minimum of one for each class.
    fn default() -> Self {
        Self {
            upper: 1,
            lower: 1,
            digits: 1,
            special: 1,
        }
    }
}

/// Rules that no password can meet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// The length is outside the accepted range.
    #[error("random.length is {length}; set it between {MIN_LENGTH} and {MAX_LENGTH}")]
    LengthOutOfRange {
        /// Configured length.
        length: usize,
    },
    /// The minimum counts need more characters than the length.
    #[error(
        "the random.min* counts add up to {required} characters, more than random.length {length}; lower the counts or raise the length"
    )]
    MinimumsExceedLength {
        /// Sum of the minimum counts.
        required: usize,
        /// Configured length.
        length: usize,
    },
    /// A special character is not printable ASCII punctuation.
    #[error(
        "random.specialCharacters contains {character:?}, which is not a printable ASCII character other than a letter or digit; remove it"
    )]
    InvalidSpecialCharacter {
        /// The offending character.
        character: char,
    },
    /// Special characters are required but none are allowed.
    #[error(
        "random.minSpecial is {min_special} but random.specialCharacters is empty; add special characters or set minSpecial to 0"
    )]
    NoSpecialCharacters {
        /// Configured minimum.
        min_special: usize,
    },
}

/// The operating system's random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed ({0}); no password was generated")]
pub struct RandomSourceError(rand::rand_core::OsError);

/// Length and character classes of generated passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordRules {
    length: usize,
    minimums: ClassMinimums,
    special: Vec<u8>,
    /// Every allowed character, each once.
    alphabet: Vec<u8>,
}

impl std::fmt::Debug for PasswordRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordRules")
            .field("length", &self.length)
            .field("minimums", &self.minimums)
            .field("special", &String::from_utf8_lossy(&self.special))
            .finish()
    }
}

impl Default for PasswordRules {
    /// Returns rules for 16 characters with at least one of each class and
    /// the default special characters.
    fn default() -> Self {
        Self::new(
            DEFAULT_LENGTH,
            ClassMinimums::default(),
            DEFAULT_SPECIAL_CHARACTERS,
        )
        .expect("the default rules are valid")
    }
}

impl PasswordRules {
    /// Checks the rules. Repeated special characters count once, so that no
    /// character is more likely than another.
    pub fn new(
        length: usize,
        minimums: ClassMinimums,
        special_characters: &str,
    ) -> Result<Self, RulesError> {
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
            return Err(RulesError::LengthOutOfRange { length });
        }
        let required = minimums.upper + minimums.lower + minimums.digits + minimums.special;
        if required > length {
            return Err(RulesError::MinimumsExceedLength { required, length });
        }

        let mut special = Vec::new();
        for character in special_characters.chars() {
            let allowed = character.is_ascii_graphic() && !character.is_ascii_alphanumeric();
            if !allowed {
                return Err(RulesError::InvalidSpecialCharacter { character });
            }
            if !special.contains(&(character as u8)) {
                special.push(character as u8);
            }
        }
        if special.is_empty() && minimums.special > 0 {
            return Err(RulesError::NoSpecialCharacters {
                min_special: minimums.special,
            });
        }

        let mut alphabet = Vec::new();
        alphabet.extend_from_slice(UPPERCASE.as_bytes());
        alphabet.extend_from_slice(LOWERCASE.as_bytes());
        alphabet.extend_from_slice(DIGITS.as_bytes());
        alphabet.extend_from_slice(&special);
        Ok(Self {
            length,
            minimums,
            special,
            alphabet,
        })
    }

    /// Password length in characters.
    pub fn length(&self) -> usize {
        self.length
    }

    /// Generates a password for `user_id` from the operating system's CSPRNG.
    pub fn generate(&self, user_id: &str) -> Result<SecretString, RandomSourceError> {
        self.generate_with(&mut OsRng, user_id)
            .map_err(RandomSourceError)
    }

    /// Generates a password from `rng`.
    ///
    /// MAS can forbid passwords that contain the user ID (compared without
    /// regard to case), so a password that does is drawn again, up to
    /// [`USER_ID_REDRAWS`] times.
    pub fn generate_with<R: TryCryptoRng>(
        &self,
        rng: &mut R,
        user_id: &str,
    ) -> Result<SecretString, R::Error> {
        let user_id = user_id.to_ascii_lowercase();
        let mut password = self.draw(rng)?;
        for _ in 0..USER_ID_REDRAWS {
            if user_id.is_empty() || !password.to_ascii_lowercase().contains(&user_id) {
                break;
            }
            password = self.draw(rng)?;
        }
        Ok(SecretString::new(password.as_str()))
    }

    /// Draws the minimum of each class, fills up from the whole alphabet and
    /// shuffles.
    fn draw<R: TryCryptoRng>(&self, rng: &mut R) -> Result<Zeroizing<String>, R::Error> {
        let mut characters = Zeroizing::new(Vec::with_capacity(self.length));
        let classes: [(&[u8], usize); 4] = [
            (UPPERCASE.as_bytes(), self.minimums.upper),
            (LOWERCASE.as_bytes(), self.minimums.lower),
            (DIGITS.as_bytes(), self.minimums.digits),
            (&self.special, self.minimums.special),
        ];
        for (alphabet, count) in classes {
            for _ in 0..count {
                characters.push(alphabet[uniform_index(rng, alphabet.len())?]);
            }
        }
        while characters.len() < self.length {
            characters.push(self.alphabet[uniform_index(rng, self.alphabet.len())?]);
        }

        for last in (1..characters.len()).rev() {
            let other = uniform_index(rng, last + 1)?;
            characters.swap(last, other);
        }

        let text = characters.iter().map(|&byte| byte as char).collect();
        Ok(Zeroizing::new(text))
    }
}

/// Returns an index below `bound` (at most 2^32), each equally likely.
///
/// A 32-bit draw is accepted only below the largest multiple of `bound`
/// that fits in 2^32, so taking it modulo `bound` favours no index.
fn uniform_index<R: TryRngCore + ?Sized>(rng: &mut R, bound: usize) -> Result<usize, R::Error> {
    const RANGE: u64 = 1 << 32;
    let bound = bound as u64;
    let accepted = RANGE - RANGE % bound;
    loop {
        let draw = u64::from(rng.try_next_u32()?);
        if draw < accepted {
            return Ok((draw % bound) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn count_in(password: &str, alphabet: &str) -> usize {
        password.chars().filter(|c| alphabet.contains(*c)).count()
    }

    #[test]
    fn default_rules_meet_every_class() {
        let rules = PasswordRules::default();

        for _ in 0..200 {
            let password = rules.generate("alice").expect("OS random source");
            let text = password.expose();
            assert_eq!(text.chars().count(), DEFAULT_LENGTH);
            assert!(count_in(text, UPPERCASE) >= 1, "{text}");
            assert!(count_in(text, LOWERCASE) >= 1, "{text}");
            assert!(count_in(text, DIGITS) >= 1, "{text}");
            assert!(count_in(text, DEFAULT_SPECIAL_CHARACTERS) >= 1, "{text}");
        }
    }

    #[test]
    fn minimums_and_length_are_met() {
        let minimums = ClassMinimums {
            upper: 3,
            lower: 2,
            digits: 4,
            special: 5,
        };
        let rules = PasswordRules::new(14, minimums, "!@").unwrap();
        let mut rng = StdRng::seed_from_u64(7);

        for _ in 0..200 {
            let password = rules.generate_with(&mut rng, "").unwrap();
            let text = password.expose();
            assert_eq!(text.len(), 14);
            assert_eq!(count_in(text, UPPERCASE), 3, "{text}");
            assert_eq!(count_in(text, LOWERCASE), 2, "{text}");
            assert_eq!(count_in(text, DIGITS), 4, "{text}");
            assert_eq!(count_in(text, "!@"), 5, "{text}");
        }
    }

    #[test]
    fn characters_come_from_the_alphabet() {
        let rules = PasswordRules::new(128, ClassMinimums::default(), "#-").unwrap();
        let allowed = format!("{UPPERCASE}{LOWERCASE}{DIGITS}#-");
        let mut rng = StdRng::seed_from_u64(11);

        for _ in 0..50 {
            let password = rules.generate_with(&mut rng, "").unwrap();
            for character in password.expose().chars() {
                assert!(allowed.contains(character), "{character:?}");
            }
        }
    }

    #[test]
    fn every_character_is_used_evenly() {
        // 79 characters and 2,000 passwords of 128 make about 3,240 draws
        // per character, with a standard deviation of about 57. A bound of
        // 15 % of the mean is over 8 deviations, so the check only catches
        // gross bias, such as characters that are never drawn. The
        // rejection sampling itself is checked in uniform_index's test.
        let special = "!#$%&*+-.:=?@_~^/";
        let rules = PasswordRules::new(
            128,
            ClassMinimums {
                upper: 0,
                lower: 0,
                digits: 0,
                special: 0,
            },
            special,
        )
        .unwrap();
        let alphabet = format!("{UPPERCASE}{LOWERCASE}{DIGITS}{special}");
        assert_eq!(alphabet.len(), 79);
        let mut counts = std::collections::HashMap::new();
        let mut rng = StdRng::seed_from_u64(3);

        for _ in 0..2_000 {
            let password = rules.generate_with(&mut rng, "").unwrap();
            for character in password.expose().chars() {
                *counts.entry(character).or_insert(0u32) += 1;
            }
        }

        let mean = 2_000.0 * 128.0 / alphabet.len() as f64;
        for character in alphabet.chars() {
            let count = f64::from(*counts.get(&character).unwrap_or(&0));
            assert!(
                (count - mean).abs() < mean * 0.15,
                "{character:?} drawn {count} times, mean {mean}"
            );
        }
    }

    #[test]
    fn mandatory_characters_are_shuffled() {
        // With 15 minimum digits in 16 characters, an unshuffled password
        // would end in the one free character every time.
        let minimums = ClassMinimums {
            upper: 0,
            lower: 0,
            digits: 15,
            special: 0,
        };
        let rules = PasswordRules::new(16, minimums, "").unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let mut positions = std::collections::HashSet::new();

        for _ in 0..200 {
            let password = rules.generate_with(&mut rng, "").unwrap();
            let free = password
                .expose()
                .char_indices()
                .filter(|(_, c)| !c.is_ascii_digit())
                .map(|(index, _)| index)
                .next();
            positions.extend(free);
        }

        assert!(positions.len() > 8, "{positions:?}");
    }

    #[test]
    fn password_avoids_user_id() {
        let rules = PasswordRules::default();
        let mut rng = StdRng::seed_from_u64(9);

        for _ in 0..500 {
            let password = rules.generate_with(&mut rng, "A").unwrap();
            assert!(!password.expose().to_ascii_lowercase().contains('a'));
        }
    }

    #[test]
    fn uniform_index_rejects_the_biased_tail() {
        // Draws at or above the largest multiple of 3 below 2^32 are
        // rejected: u32::MAX is 4294967295 = 3 * 1431655765, so it is the
        // first value rejected.
        struct Sequence(Vec<u32>);
        impl rand::RngCore for Sequence {
            fn next_u32(&mut self) -> u32 {
                self.0.remove(0)
            }
            fn next_u64(&mut self) -> u64 {
                u64::from(self.next_u32())
            }
            fn fill_bytes(&mut self, _: &mut [u8]) {
                unreachable!()
            }
        }
        let mut rng = Sequence(vec![u32::MAX, 5]);

        assert_eq!(uniform_index(&mut rng, 3), Ok(2));
        assert!(rng.0.is_empty());
    }

    #[test]
    fn invalid_rules_are_rejected() {
        let one_each = ClassMinimums::default();
        let cases = [
            (
                PasswordRules::new(7, one_each, "!"),
                RulesError::LengthOutOfRange { length: 7 },
            ),
            (
                PasswordRules::new(129, one_each, "!"),
                RulesError::LengthOutOfRange { length: 129 },
            ),
            (
                PasswordRules::new(
                    8,
                    ClassMinimums {
                        upper: 3,
                        lower: 3,
                        digits: 3,
                        special: 0,
                    },
                    "!",
                ),
                RulesError::MinimumsExceedLength {
                    required: 9,
                    length: 8,
                },
            ),
            (
                PasswordRules::new(8, one_each, "! "),
                RulesError::InvalidSpecialCharacter { character: ' ' },
            ),
            (
                PasswordRules::new(8, one_each, "!a"),
                RulesError::InvalidSpecialCharacter { character: 'a' },
            ),
            (
                PasswordRules::new(8, one_each, "é"),
                RulesError::InvalidSpecialCharacter { character: 'é' },
            ),
            (
                PasswordRules::new(8, one_each, ""),
                RulesError::NoSpecialCharacters { min_special: 1 },
            ),
        ];

        for (result, expected) in cases {
            assert_eq!(result.unwrap_err(), expected);
        }
    }

    #[test]
    fn repeated_special_characters_count_once() {
        let rules = PasswordRules::new(8, ClassMinimums::default(), "!!!#").unwrap();

        assert_eq!(rules.special, b"!#");
        assert_eq!(rules.alphabet.len(), 26 + 26 + 10 + 2);
    }

    #[test]
    fn debug_hides_nothing_secret() {
        let printed = format!("{:?}", PasswordRules::default());

        assert!(printed.contains("length: 16"), "{printed}");
    }
}
