//! Byte-level scanning that the `csv` crate does not offer: choosing the
//! delimiter before parsing, counting the blank lines that the crate skips,
//! and finding a double quote that is never closed.
//!
//! The quote rules follow the `csv` crate (version 1.4). A double quote opens
//! a quoted value only as the first byte of a field, and `""` inside it is one
//! literal quote. Bytes after the closing quote belong to the same field.

use std::fmt;

/// Delimiters that the parser recognises, in the order of precedence used
/// when two of them occur equally often in the header and the column name
/// does not settle it.
pub(super) const DELIMITER_CANDIDATES: [u8; 3] = [b'\t', b';', b','];

/// Field separator of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delimiter {
    /// Fields are separated by this byte.
    Byte(u8),
    /// The source has one column, so no byte separates fields.
    SingleColumn,
}

impl fmt::Display for Delimiter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Byte(b'\t') => formatter.write_str("delimiter tab"),
            Self::Byte(byte) => write!(formatter, "delimiter '{}'", char::from(*byte)),
            Self::SingleColumn => formatter.write_str("single column"),
        }
    }
}

/// Structure of one record found by [`scan_record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawRecord {
    /// Offset just after the record's line break, or the input length.
    pub end: usize,
    /// How often each delimiter passed to [`scan_record`] occurs outside quotes.
    pub delimiter_counts: Vec<usize>,
    /// Whether any field has a byte other than spaces, tabs, `,` and `;`.
    pub has_content: bool,
    /// Whether the input ends inside a quoted value.
    pub unclosed_quote: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// Returns whether a byte counts as empty when deciding if a row is blank.
pub(super) fn is_blank_byte(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b',' | b';')
}

/// Scans the record that starts at `start` and counts each of `delimiters`
/// outside quotes. `start` must be the first byte of a record, not a line break.
pub(super) fn scan_record(input: &[u8], start: usize, delimiters: &[u8]) -> RawRecord {
    let mut state = QuoteState::FieldStart;
    let mut delimiter_counts = vec![0; delimiters.len()];
    let mut has_content = false;
    let mut index = start;

    while index < input.len() {
        let byte = input[index];
        index += 1;

        if state == QuoteState::Quoted {
            if byte == b'"' {
                state = QuoteState::QuoteInQuoted;
            } else if !is_blank_byte(byte) {
                has_content = true;
            }
            continue;
        }

        if byte == b'\r' || byte == b'\n' {
            if byte == b'\r' && input.get(index) == Some(&b'\n') {
                index += 1;
            }
            return RawRecord {
                end: index,
                delimiter_counts,
                has_content,
                unclosed_quote: false,
            };
        }

        if let Some(position) = delimiters.iter().position(|&delimiter| delimiter == byte) {
            delimiter_counts[position] += 1;
            state = QuoteState::FieldStart;
        } else if byte == b'"' && state == QuoteState::FieldStart {
            state = QuoteState::Quoted;
        } else if byte == b'"' && state == QuoteState::QuoteInQuoted {
            // `""` inside a quoted value is one literal quote.
            has_content = true;
            state = QuoteState::Quoted;
        } else {
            has_content |= !is_blank_byte(byte);
            state = QuoteState::Unquoted;
        }
    }

    RawRecord {
        end: input.len(),
        delimiter_counts,
        has_content,
        unclosed_quote: state == QuoteState::Quoted,
    }
}

/// Finds the first record with content and returns its start offset and its
/// structure, with [`DELIMITER_CANDIDATES`] counted.
pub(super) fn find_first_content_record(input: &[u8]) -> Option<(usize, RawRecord)> {
    let mut position = 0;
    loop {
        position = skip_line_breaks(input, position);
        if position == input.len() {
            return None;
        }

        let record = scan_record(input, position, &DELIMITER_CANDIDATES);
        if record.has_content {
            return Some((position, record));
        }
        position = record.end;
    }
}

/// Returns the delimiter candidates that occur most often outside quotes in
/// the header, in the order of [`DELIMITER_CANDIDATES`]. The result is empty
/// when the header has none of them, and has several entries on a tie.
pub(super) fn most_frequent_delimiters(header: &RawRecord) -> Vec<u8> {
    let max_count = header.delimiter_counts.iter().copied().max().unwrap_or(0);
    if max_count == 0 {
        return Vec::new();
    }

    DELIMITER_CANDIDATES
        .iter()
        .zip(&header.delimiter_counts)
        .filter(|&(_, &count)| count == max_count)
        .map(|(&candidate, _)| candidate)
        .collect()
}

/// Returns a byte that does not occur in `input` and is never part of a
/// value that passes validation, for use as the `csv` delimiter of a
/// single-column source. Returns `None` when every such byte occurs.
pub(super) fn unused_byte(input: &[u8]) -> Option<u8> {
    let mut seen = [false; 256];
    for &byte in input {
        seen[usize::from(byte)] = true;
    }

    // Control bytes other than tab, LF and CR, then bytes that never occur in UTF-8.
    let controls = (0x00..=0x08)
        .chain(0x0B..=0x0C)
        .chain(0x0E..=0x1F)
        .chain([0x7F]);
    let never_utf8 = [0xC0, 0xC1].into_iter().chain(0xF5..=0xFE);
    controls
        .chain(never_utf8)
        .find(|&byte| !seen[usize::from(byte)])
}

/// Returns the first offset at or after `from` that is not CR or LF.
pub(super) fn skip_line_breaks(input: &[u8], from: usize) -> usize {
    input[from..]
        .iter()
        .position(|&byte| byte != b'\r' && byte != b'\n')
        .map_or(input.len(), |offset| from + offset)
}

/// Counts the line breaks in `input[from..to]`, which contains only CR and LF
/// bytes, as the number of blank lines there. CRLF counts once. An LF at
/// `from` right after a CR ends the previous line, so it is not counted.
pub(super) fn count_blank_lines(input: &[u8], from: usize, to: usize) -> u64 {
    let mut index = from;
    if index > 0 && index < to && input[index - 1] == b'\r' && input[index] == b'\n' {
        index += 1;
    }

    let mut lines = 0;
    while index < to {
        if index + 1 < to && input[index] == b'\r' && input[index + 1] == b'\n' {
            index += 1;
        }
        lines += 1;
        index += 1;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_delimiters_outside_quotes() {
        let record = scan_record(b"userid;\"a;b,c\";x,y\r\nnext", 0, &DELIMITER_CANDIDATES);
        assert_eq!(record.delimiter_counts, vec![0, 2, 1]);
        assert_eq!(record.end, 20);
        assert!(record.has_content);
        assert!(!record.unclosed_quote);
    }

    #[test]
    fn quoted_line_break_stays_in_record() {
        let record = scan_record(b"\"a\nb\",c\nd", 0, b",");
        assert_eq!(record.end, 8);
    }

    #[test]
    fn doubled_quote_does_not_close() {
        let record = scan_record(b"\"a\"\"b\nc", 0, b",");
        assert!(record.unclosed_quote);
        assert_eq!(record.end, 7);
    }

    #[test]
    fn separators_and_spaces_are_not_content() {
        let record = scan_record(b" ,;\t\"\",", 0, &DELIMITER_CANDIDATES);
        assert!(!record.has_content);
    }

    #[test]
    fn first_content_record_skips_blank_lines() {
        let (start, record) = find_first_content_record(b"\r\n,,,\r\nuserid;name\r\n").unwrap();
        assert_eq!(start, 7);
        assert_eq!(most_frequent_delimiters(&record), [b';']);
    }

    #[test]
    fn most_frequent_delimiter_wins() {
        let record = scan_record(b"a,b,c;d", 0, &DELIMITER_CANDIDATES);
        assert_eq!(most_frequent_delimiters(&record), [b',']);
    }

    #[test]
    fn tie_keeps_precedence_order() {
        let record = scan_record(b"a,b;c", 0, &DELIMITER_CANDIDATES);
        assert_eq!(most_frequent_delimiters(&record), [b';', b',']);

        let record = scan_record(b"a,b;c\td", 0, &DELIMITER_CANDIDATES);
        assert_eq!(most_frequent_delimiters(&record), [b'\t', b';', b',']);
    }

    #[test]
    fn no_delimiter_gives_none() {
        let record = scan_record(b"userid\n", 0, &DELIMITER_CANDIDATES);
        assert!(most_frequent_delimiters(&record).is_empty());
    }

    #[test]
    fn unused_byte_skips_present_bytes() {
        assert_eq!(unused_byte(b"abc"), Some(0x00));
        assert_eq!(unused_byte(b"a\x00\x01b"), Some(0x02));

        let every_byte: Vec<u8> = (0..=255).collect();
        assert_eq!(unused_byte(&every_byte), None);
    }

    #[test]
    fn counts_blank_lines_per_ending() {
        // After "a\r" the reader stops before the LF of the CRLF.
        let input = b"a\r\n\r\n\r\nb";
        assert_eq!(count_blank_lines(input, 2, 7), 2);
        assert_eq!(count_blank_lines(b"a\n\n\nb", 2, 4), 2);
        assert_eq!(count_blank_lines(b"a\r\r\rb", 2, 4), 2);
        assert_eq!(count_blank_lines(b"\n\r\n", 0, 3), 2);
    }
}
