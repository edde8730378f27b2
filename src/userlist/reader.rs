//! Reads the rows of one source with the `csv` crate and sorts each row into
//! skipped, rejected or accepted.

use csv::{ByteRecord, Reader, ReaderBuilder};

use super::decode::{DecodedSource, INVALID_UTF16_MARKER, SourceEncoding, decode_source};
use super::error::ListError;
use super::list::ListBuilder;
use super::scan::{
    Delimiter, count_blank_lines, find_first_content_record, is_blank_byte,
    most_frequent_delimiters, scan_record, skip_line_breaks, unused_byte,
};
use super::validate::{RejectReason, preview, validate_user_id};
use super::{ParseOptions, Source};

/// The user ID column as found in the header row.
#[derive(Debug)]
struct HeaderColumn {
    index: usize,
    column_count: usize,
    /// Header cell text, trimmed.
    name: String,
    /// `name` in lowercase, to recognise a repeated header row.
    name_lowercase: String,
}

/// Parses source `index` and adds its rows to `list`.
pub(super) fn read_source(
    index: usize,
    source: &Source<'_>,
    options: &ParseOptions,
    list: &mut ListBuilder,
) -> Result<(), ListError> {
    let decoded = decode_source(&source.name, source.bytes)?;
    note_encoding(index, &decoded, list);
    let text: &[u8] = &decoded.text;

    let (delimiter, separator_line) = if options.headerless {
        list.add_note(index, "no header row, one user ID per line");
        (Delimiter::SingleColumn, false)
    } else {
        detect_delimiter(index, source, text, &options.column, list)?
    };
    let delimiter_byte = match delimiter {
        Delimiter::Byte(byte) => byte,
        Delimiter::SingleColumn => unused_byte(text).ok_or_else(|| ListError::NotText {
            source_name: source.name.clone(),
        })?,
    };

    let mut rows = RowReader {
        index,
        source_name: &source.name,
        options,
        utf16: decoded.encoding.is_utf16(),
        separator_line,
        column: None,
        value_rows: 0,
        multiline_rows: 0,
        first_multiline_row: 0,
        list,
    };
    let last_record = rows.read_all(text, delimiter_byte)?;

    if let Some((start, row)) = last_record {
        let delimiters: &[u8] = match delimiter {
            Delimiter::Byte(byte) => &[byte],
            Delimiter::SingleColumn => &[],
        };
        if scan_record(text, start, delimiters).unclosed_quote {
            return Err(ListError::UnclosedQuote {
                source_name: source.name.clone(),
                row,
            });
        }
    }

    rows.finish(delimiter)
}

fn note_encoding(index: usize, decoded: &DecodedSource<'_>, list: &mut ListBuilder) {
    match decoded.encoding {
        SourceEncoding::Utf16Le => list.add_note(index, "transcoded from UTF-16LE"),
        SourceEncoding::Utf16Be => list.add_note(index, "transcoded from UTF-16BE"),
        SourceEncoding::Utf8 | SourceEncoding::Utf8WithBom => {
            if std::str::from_utf8(&decoded.text).is_err() {
                list.add_note(
                    index,
                    "the file is not valid UTF-8, so rows with invalid bytes are rejected; \
                     save it as \"CSV UTF-8\" to keep IDs with non-ASCII letters",
                );
            }
        }
    }
}

/// Chooses the delimiter from the first row with content, which is the header.
/// Returns the delimiter and whether the first row is an Excel `sep=` line.
///
/// A first line `sep=X` names the delimiter X, and the header follows it.
/// Otherwise the most frequent candidate in the header wins. On a tie, the
/// first candidate under which the header has the configured column wins, so
/// a stray tab or comma in a header cell does not split it.
fn detect_delimiter(
    index: usize,
    source: &Source<'_>,
    text: &[u8],
    column: &str,
    list: &mut ListBuilder,
) -> Result<(Delimiter, bool), ListError> {
    let Some((start, header)) = find_first_content_record(text) else {
        return Err(ListError::NoRows {
            source_name: source.name.clone(),
        });
    };

    if let Some(byte) = separator_directive(&text[start..header.end]) {
        let delimiter = Delimiter::Byte(byte);
        list.add_note(index, format_args!("{delimiter} set by the \"sep=\" line"));
        return Ok((delimiter, true));
    }

    let candidates = most_frequent_delimiters(&header);
    let delimiter = match candidates.as_slice() {
        [] => Delimiter::SingleColumn,
        [only] => Delimiter::Byte(*only),
        tied => {
            let header_line = &text[start..header.end];
            let chosen = tied
                .iter()
                .copied()
                .find(|&candidate| header_has_column(header_line, candidate, column))
                .unwrap_or(tied[0]);
            let delimiter = Delimiter::Byte(chosen);
            list.add_note(
                index,
                format_args!(
                    "the header contains several delimiters equally often; {delimiter} was chosen"
                ),
            );
            delimiter
        }
    };
    Ok((delimiter, false))
}

/// Returns the delimiter named by an Excel `sep=X` line, if `line` is one.
fn separator_directive(line: &[u8]) -> Option<u8> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line {
        [keyword @ .., b'=', byte]
            if keyword.eq_ignore_ascii_case(b"sep") && !matches!(byte, b'"' | b' ') =>
        {
            Some(*byte)
        }
        _ => None,
    }
}

/// Returns whether splitting `header_line` at `delimiter` gives a cell that
/// matches `column`.
fn header_has_column(header_line: &[u8], delimiter: u8, column: &str) -> bool {
    let mut reader = csv_reader(header_line, delimiter);
    let mut record = ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => !matching_columns(&header_cells(&record), column).is_empty(),
        Ok(false) | Err(_) => false,
    }
}

/// Creates the CSV reader for all parsing: RFC 4180 quoting, CR, LF or CRLF
/// line endings, and rows of any length, which [`RowReader`] checks itself.
fn csv_reader(text: &[u8], delimiter: u8) -> Reader<&[u8]> {
    ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text)
}

/// Returns the header cells as text, trimmed of surrounding spaces and tabs.
fn header_cells(record: &ByteRecord) -> Vec<String> {
    record
        .iter()
        .map(|cell| trim_header(&String::from_utf8_lossy(cell)).to_owned())
        .collect()
}

/// Returns the positions of the header cells that match `column` without
/// regard to case or surrounding spaces.
fn matching_columns(headers: &[String], column: &str) -> Vec<usize> {
    let expected = trim_header(column).to_lowercase();
    headers
        .iter()
        .enumerate()
        .filter(|(_, header)| header.to_lowercase() == expected)
        .map(|(position, _)| position)
        .collect()
}

/// State while reading the rows of one source.
struct RowReader<'a> {
    index: usize,
    source_name: &'a str,
    options: &'a ParseOptions,
    utf16: bool,
    /// Whether the first non-blank row is an Excel `sep=` line to skip.
    separator_line: bool,
    /// The user ID column, once the header row is read.
    column: Option<HeaderColumn>,
    /// Non-blank rows below the header, or all non-blank rows when headerless.
    value_rows: u64,
    multiline_rows: u64,
    first_multiline_row: u64,
    list: &'a mut ListBuilder,
}

impl RowReader<'_> {
    /// Reads every record of `text`. Returns the start offset and row of the
    /// last record, for the unclosed-quote check.
    fn read_all(&mut self, text: &[u8], delimiter: u8) -> Result<Option<(usize, u64)>, ListError> {
        let mut reader = csv_reader(text, delimiter);
        let mut record = ByteRecord::new();
        let mut row: u64 = 0;
        let mut last_record = None;

        loop {
            // The csv crate skips empty lines without reporting them, so count
            // them from the bytes between the previous record and this one.
            let before = usize::try_from(reader.position().byte()).unwrap_or(text.len());
            let more = reader
                .read_byte_record(&mut record)
                .map_err(|error| ListError::Csv {
                    source_name: self.source_name.to_owned(),
                    row,
                    message: error.to_string(),
                })?;
            let content_start = skip_line_breaks(text, before);
            let blank_lines = count_blank_lines(text, before, content_start);
            row += blank_lines;
            self.list.skip_rows(blank_lines);

            if !more {
                return Ok(last_record);
            }
            row += 1;
            last_record = Some((content_start, row));

            self.read_record(&record, row)?;
        }
    }

    fn read_record(&mut self, record: &ByteRecord, row: u64) -> Result<(), ListError> {
        if record
            .iter()
            .all(|field| field.iter().all(|&byte| is_blank_byte(byte)))
        {
            self.list.skip_rows(1);
            return Ok(());
        }

        if record
            .iter()
            .any(|field| field.contains(&b'\n') || field.contains(&b'\r'))
        {
            self.multiline_rows += 1;
            if self.first_multiline_row == 0 {
                self.first_multiline_row = row;
            }
        }

        if self.separator_line {
            self.separator_line = false;
        } else if self.options.headerless {
            self.value_rows += 1;
            self.read_value(record.get(0).unwrap_or_default(), row, None);
        } else if let Some(column) = self.column.take() {
            self.value_rows += 1;
            self.read_header_row(record, row, &column);
            self.column = Some(column);
        } else {
            self.column = Some(self.find_column(record, row)?);
        }
        Ok(())
    }

    /// Finds the configured column in the header row.
    fn find_column(&self, record: &ByteRecord, row: u64) -> Result<HeaderColumn, ListError> {
        let headers = header_cells(record);
        let matches = matching_columns(&headers, &self.options.column);

        match matches.as_slice() {
            [] => Err(ListError::MissingColumn {
                source_name: self.source_name.to_owned(),
                column: preview(&self.options.column),
                header_row: row,
                headers: headers.iter().map(|header| preview(header)).collect(),
            }),
            [index] => Ok(HeaderColumn {
                index: *index,
                column_count: headers.len(),
                name: headers[*index].clone(),
                name_lowercase: headers[*index].to_lowercase(),
            }),
            _ => Err(ListError::DuplicateColumn {
                source_name: self.source_name.to_owned(),
                column: preview(&self.options.column),
                count: matches.len(),
                columns: matches.iter().map(|position| position + 1).collect(),
            }),
        }
    }

    /// Checks the field count of a row below the header, then reads its value.
    ///
    /// Fewer fields than the header are accepted while the user ID column is
    /// present, because Excel leaves out trailing empty cells on some rows.
    /// More non-empty fields than the header mean a value contains the
    /// delimiter without quotes, so the columns may be shifted and the row is
    /// rejected instead of guessing.
    fn read_header_row(&mut self, record: &ByteRecord, row: u64, column: &HeaderColumn) {
        let value = record.get(column.index);
        let extra_content = record
            .iter()
            .skip(column.column_count)
            .any(|field| !field.iter().all(|&byte| is_blank_byte(byte)));

        match value {
            Some(value) if !extra_content => {
                self.read_value(value, row, Some(&column.name_lowercase));
            }
            _ => {
                let reason = RejectReason::FieldCount {
                    found: record.len(),
                    expected: column.column_count,
                };
                let value_text = String::from_utf8_lossy(value.unwrap_or_default());
                self.list.reject(self.index, row, reason, &value_text);
            }
        }
    }

    /// Trims, decodes and validates one user ID value.
    ///
    /// `header_lowercase` is the header cell of the column in lowercase, or
    /// `None` for a headerless list.
    fn read_value(&mut self, raw: &[u8], row: u64, header_lowercase: Option<&str>) {
        let trimmed = trim_spaces(raw);
        if trimmed.len() != raw.len() {
            self.list.count_trimmed_value();
        }

        let id = match std::str::from_utf8(trimmed) {
            Ok(id) => id,
            Err(error) => {
                let reason = if self.utf16 && trimmed.contains(&INVALID_UTF16_MARKER) {
                    RejectReason::InvalidUtf16
                } else {
                    RejectReason::InvalidUtf8 {
                        byte_offset: error.valid_up_to(),
                    }
                };
                let lossy = String::from_utf8_lossy(trimmed);
                self.list.reject(self.index, row, reason, &lossy);
                return;
            }
        };

        if let Some(header_lowercase) = header_lowercase
            && id.to_lowercase() == header_lowercase
        {
            self.list
                .reject(self.index, row, RejectReason::RepeatedHeader, id);
            return;
        }

        match validate_user_id(id) {
            Ok(()) => self.list.accept(self.index, row, id),
            Err(reason) => self.list.reject(self.index, row, reason, id),
        }
    }

    fn finish(self, delimiter: Delimiter) -> Result<(), ListError> {
        if !self.options.headerless {
            let Some(column) = &self.column else {
                return Err(ListError::NoRows {
                    source_name: self.source_name.to_owned(),
                });
            };
            self.list.add_note(
                self.index,
                format_args!(
                    "{delimiter}, user IDs in column {} \"{}\"",
                    column.index + 1,
                    preview(&column.name)
                ),
            );
            if self.value_rows == 0 {
                self.list
                    .add_note(self.index, "the list has a header row but no user rows");
            }
        } else if self.value_rows == 0 {
            return Err(ListError::NoRows {
                source_name: self.source_name.to_owned(),
            });
        }

        // NOTE: an open quote is detected only when it runs to the end of the
        // source. One closed by a later quote is visible only through this note.
        if self.multiline_rows > 0 {
            self.list.add_note(
                self.index,
                format_args!(
                    "{} rows have a quoted value that spans lines, the first at row {}; if a \
                     quote was left open there, the rows after it were read as part of that value",
                    self.multiline_rows, self.first_multiline_row
                ),
            );
        }
        Ok(())
    }
}

/// Removes surrounding ASCII spaces, and only those: a tab is a control
/// character and is rejected, not trimmed.
fn trim_spaces(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&byte| byte != b' ');
    let end = value.iter().rposition(|&byte| byte != b' ');
    match (start, end) {
        (Some(start), Some(end)) => &value[start..=end],
        _ => &[],
    }
}

/// Removes surrounding spaces and tabs from a header cell.
fn trim_header(cell: &str) -> &str {
    cell.trim_matches([' ', '\t'])
}
