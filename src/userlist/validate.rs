//! Checks that decide whether a string can be sent as a MAS user ID.

use std::fmt::Write as _;

use thiserror::Error;

/// Maximum length of a user ID in UTF-8 bytes.
///
/// MAS does not document a limit. RFC 5321 (section 4.5.3.1.3) caps an SMTP
/// path at 256 octets including the angle brackets, so every ID derived from a
/// deliverable e-mail address fits. A pasted paragraph or a wrong column still
/// cannot end up in a request URL or in the resource status.
pub const MAX_USER_ID_BYTES: usize = 256;

/// Maximum number of characters that [`preview`] keeps from a value.
const PREVIEW_CHARS: usize = 40;

/// Reason why one row of a user list, or one ID given to the path builder,
/// cannot be sent.
///
/// `Display` states what is wrong and what to do. It never repeats the value
/// itself, so use [`preview`] for a safe excerpt where one is needed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RejectReason {
    /// The user ID cell is empty although the row has other values.
    #[error("the user ID is empty; fill it in or delete the row")]
    Empty,

    /// The value contains a control character (Unicode category Cc), for
    /// example NUL, tab, CR or LF.
    #[error(
        "the user ID contains the control character {} at character {index}; remove it{}",
        describe_char(*character),
        line_break_hint(*character)
    )]
    ControlCharacter {
        /// The offending character.
        character: char,
        /// Position of the character in the value, counted in characters from 1.
        index: usize,
    },

    /// The value is not valid UTF-8, usually because the file was saved in a
    /// legacy encoding such as Windows-1252.
    #[error(
        "the user ID is not valid UTF-8 (invalid byte at offset {byte_offset}); save the file \
         as \"CSV UTF-8\" in Excel, or convert it to UTF-8"
    )]
    InvalidUtf8 {
        /// Offset in the value of the first byte that is not valid UTF-8.
        byte_offset: usize,
    },

    /// The value came from a UTF-16 file and contains an unpaired surrogate.
    #[error(
        "the user ID contains a broken UTF-16 character (an unpaired surrogate); save the file \
         as \"CSV UTF-8\" in Excel, or fix the character"
    )]
    InvalidUtf16,

    /// The value is longer than [`MAX_USER_ID_BYTES`].
    #[error(
        "the user ID is {len} bytes long, more than the maximum of {max}; check that the right \
         column is selected and that the cell contains only the ID"
    )]
    TooLong {
        /// Length of the value in UTF-8 bytes.
        len: usize,
        /// Maximum length in UTF-8 bytes.
        max: usize,
    },

    /// The value is `.` or `..`, which HTTP clients and servers resolve as a
    /// path step, so the request would go to another URL.
    #[error(
        "the user ID is \".\" or \"..\", which a URL path resolves as a directory step, so the \
         request would reach another endpoint; such an ID cannot be reset through the API"
    )]
    DotSegment,

    /// The value contains U+FFFD, the character that converters write in place
    /// of one they could not read.
    #[error(
        "the user ID contains U+FFFD REPLACEMENT CHARACTER at character {index}, which means an \
         earlier conversion lost the original character; correct the ID in the source file"
    )]
    ReplacementCharacter {
        /// Position of the character in the value, counted in characters from 1.
        index: usize,
    },

    /// The value contains a zero-width or bidirectional formatting character.
    /// Such characters are invisible, so the ID shown in status would differ
    /// from the ID sent. They usually come from text copied out of a web page.
    #[error(
        "the user ID contains the invisible character {} at character {index}; retype the ID \
         instead of pasting it",
        describe_char(*character)
    )]
    InvisibleCharacter {
        /// The offending character.
        character: char,
        /// Position of the character in the value, counted in characters from 1.
        index: usize,
    },

    /// The value starts or ends with a whitespace character other than the
    /// ASCII space, for example U+00A0 NO-BREAK SPACE.
    #[error(
        "the user ID starts or ends with the whitespace character {}; remove it",
        describe_char(*character)
    )]
    SurroundingWhitespace {
        /// The offending character.
        character: char,
    },

    /// The row has too few fields to contain the user ID column, or more
    /// non-empty fields than the header has columns.
    #[error(
        "the row has {found} fields but the header has {expected}{}",
        field_count_hint(*found, *expected)
    )]
    FieldCount {
        /// Number of fields in the row.
        found: usize,
        /// Number of columns in the header row.
        expected: usize,
    },

    /// The value equals the column header, which happens when several files
    /// with their own header rows were joined into one.
    #[error("the row repeats the header row; delete it (files joined together keep each header)")]
    RepeatedHeader,
}

/// Checks that `id` can be sent as a MAS user ID, exactly as given.
///
/// The ID is otherwise opaque: no case folding, no trimming, no number
/// parsing. The parser trims ASCII spaces before it calls this, so an ID with
/// surrounding spaces is rejected here.
pub fn validate_user_id(id: &str) -> Result<(), RejectReason> {
    if id.is_empty() {
        return Err(RejectReason::Empty);
    }

    if id.len() > MAX_USER_ID_BYTES {
        return Err(RejectReason::TooLong {
            len: id.len(),
            max: MAX_USER_ID_BYTES,
        });
    }

    for (position, character) in id.chars().enumerate() {
        let index = position + 1;
        if character.is_control() {
            return Err(RejectReason::ControlCharacter { character, index });
        }
        if character == char::REPLACEMENT_CHARACTER {
            return Err(RejectReason::ReplacementCharacter { index });
        }
        if is_invisible(character) {
            return Err(RejectReason::InvisibleCharacter { character, index });
        }
    }

    let first = id.chars().next();
    let last = id.chars().next_back();
    for character in [first, last].into_iter().flatten() {
        if character.is_whitespace() {
            return Err(RejectReason::SurroundingWhitespace { character });
        }
    }

    if id == "." || id == ".." {
        return Err(RejectReason::DotSegment);
    }

    Ok(())
}

/// Returns a short excerpt of `value` that is safe to show in status, events
/// and logs.
///
/// Control, invisible and replacement characters become `\u{…}` escapes, and
/// values longer than 40 characters are cut and end in `…`.
pub fn preview(value: &str) -> String {
    let mut excerpt = String::new();
    for (count, character) in value.chars().enumerate() {
        if count == PREVIEW_CHARS {
            excerpt.push('…');
            break;
        }
        if needs_escape(character) {
            // Writing to a String cannot fail.
            let _ = write!(excerpt, "\\u{{{:04X}}}", u32::from(character));
        } else {
            excerpt.push(character);
        }
    }
    excerpt
}

/// Zero-width and bidirectional formatting characters that make text look
/// different from its content.
///
/// U+200C ZERO WIDTH NON-JOINER and U+200D ZERO WIDTH JOINER are not in the
/// list because Persian, Indic scripts and emoji sequences use them in
/// ordinary text.
fn is_invisible(character: char) -> bool {
    matches!(
        character,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

fn needs_escape(character: char) -> bool {
    character.is_control()
        || is_invisible(character)
        || character == char::REPLACEMENT_CHARACTER
        || (character.is_whitespace() && character != ' ')
}

/// Formats a character as `U+000A (line feed)` where it has a well-known
/// name, otherwise as `U+00A0`.
fn describe_char(character: char) -> String {
    let name = match character {
        '\0' => Some("NUL"),
        '\t' => Some("tab"),
        '\n' => Some("line feed"),
        '\r' => Some("carriage return"),
        '\u{00A0}' => Some("no-break space"),
        '\u{200B}' => Some("zero width space"),
        '\u{FEFF}' => Some("byte order mark"),
        _ => None,
    };
    let code = format!("U+{:04X}", u32::from(character));
    match name {
        Some(name) => format!("{code} ({name})"),
        None => code,
    }
}

fn line_break_hint(character: char) -> &'static str {
    if character == '\n' || character == '\r' {
        " (a quote left open makes the following lines part of this value)"
    } else {
        ""
    }
}

fn field_count_hint(found: usize, expected: usize) -> &'static str {
    if found > expected {
        "; a value probably contains the delimiter without quotes, so the columns may be \
         shifted; put that value in double quotes"
    } else {
        ", so the user ID column is missing from it; complete or delete the row"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_opaque_ids() {
        for id in [
            "alice",
            "0987456",
            "9223372036854775807",
            "o\"neil",
            "carol, jr",
            "jo#1",
            "ops/admin",
            "50%off",
            "qa+test@example.org",
            "jörg",
            "דוד",
            "john smith",
            "...",
            ".alice",
            "a\u{200D}b",
        ] {
            assert_eq!(validate_user_id(id), Ok(()), "{id:?}");
        }
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(validate_user_id(""), Err(RejectReason::Empty));
    }

    #[test]
    fn rejects_dot_segments() {
        assert_eq!(validate_user_id("."), Err(RejectReason::DotSegment));
        assert_eq!(validate_user_id(".."), Err(RejectReason::DotSegment));
    }

    #[test]
    fn rejects_over_max_length() {
        let longest = "a".repeat(MAX_USER_ID_BYTES);
        assert_eq!(validate_user_id(&longest), Ok(()));

        let too_long = "a".repeat(MAX_USER_ID_BYTES + 1);
        assert_eq!(
            validate_user_id(&too_long),
            Err(RejectReason::TooLong {
                len: MAX_USER_ID_BYTES + 1,
                max: MAX_USER_ID_BYTES
            })
        );
    }

    #[test]
    fn max_length_counts_bytes() {
        // "ö" is two bytes in UTF-8.
        let id = "ö".repeat(MAX_USER_ID_BYTES / 2 + 1);
        assert!(matches!(
            validate_user_id(&id),
            Err(RejectReason::TooLong { .. })
        ));
    }

    #[test]
    fn rejects_control_characters() {
        for (id, character, index) in [
            ("a\0b", '\0', 2),
            ("a\tb", '\t', 2),
            ("alice\r", '\r', 6),
            ("\nalice", '\n', 1),
            ("a\u{7F}", '\u{7F}', 2),
            ("a\u{85}", '\u{85}', 2),
        ] {
            assert_eq!(
                validate_user_id(id),
                Err(RejectReason::ControlCharacter { character, index }),
                "{id:?}"
            );
        }
    }

    #[test]
    fn rejects_replacement_character() {
        assert_eq!(
            validate_user_id("j\u{FFFD}rg"),
            Err(RejectReason::ReplacementCharacter { index: 2 })
        );
    }

    #[test]
    fn rejects_invisible_characters() {
        for character in ['\u{200B}', '\u{202E}', '\u{2066}', '\u{FEFF}', '\u{00AD}'] {
            let id = format!("al{character}ice");
            assert_eq!(
                validate_user_id(&id),
                Err(RejectReason::InvisibleCharacter {
                    character,
                    index: 3
                })
            );
        }
    }

    #[test]
    fn rejects_surrounding_whitespace() {
        assert_eq!(
            validate_user_id("alice\u{A0}"),
            Err(RejectReason::SurroundingWhitespace {
                character: '\u{A0}'
            })
        );
        assert_eq!(
            validate_user_id(" alice"),
            Err(RejectReason::SurroundingWhitespace { character: ' ' })
        );
    }

    #[test]
    fn preview_escapes_and_shortens() {
        assert_eq!(preview("a\nb\0c"), "a\\u{000A}b\\u{0000}c");
        assert_eq!(preview("x\u{202E}y"), "x\\u{202E}y");

        let long = "b".repeat(1000);
        let shortened = preview(&long);
        assert_eq!(shortened.chars().count(), PREVIEW_CHARS + 1);
        assert!(shortened.ends_with('…'));
    }

    #[test]
    fn reason_messages_omit_value() {
        let reason = validate_user_id(&"secret-looking-value".repeat(20)).unwrap_err();
        let message = reason.to_string();
        assert!(!message.contains("secret-looking-value"), "{message}");
        assert!(message.contains("400 bytes"), "{message}");
    }

    #[test]
    fn control_message_names_character() {
        let message = validate_user_id("a\nb").unwrap_err().to_string();
        assert!(message.contains("U+000A (line feed)"), "{message}");
        assert!(message.contains("quote left open"), "{message}");
    }
}
