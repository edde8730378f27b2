//! Failures that make a whole source unreadable.

use thiserror::Error;

/// A source that cannot be read at all. Each message names the source, what is
/// wrong and how to fix it; no user is sent when any source fails.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ListError {
    /// The configured column name is empty or only spaces.
    #[error(
        "userList.column is empty; set it to the header of the column with the user IDs, or \
         leave it unset for \"userid\""
    )]
    EmptyColumnName,

    /// The source has no bytes, or only a byte-order mark.
    #[error("{source_name}: the user list is empty; put the user IDs in it, one per row")]
    Empty {
        /// Source name, `configmap/key`.
        source_name: String,
    },

    /// The source has no rows other than blank or separator-only rows.
    #[error(
        "{source_name}: the user list has only blank rows; put the user IDs in it, one per row"
    )]
    NoRows {
        /// Source name, `configmap/key`.
        source_name: String,
    },

    /// The source is larger than the parser accepts.
    #[error(
        "{source_name}: the user list is {bytes} bytes, more than the maximum of {max}; split it \
         over several ConfigMap keys"
    )]
    TooLarge {
        /// Source name, `configmap/key`.
        source_name: String,
        /// Size of the source in bytes.
        bytes: usize,
        /// Maximum size in bytes.
        max: usize,
    },

    /// The source is a spreadsheet workbook, not text.
    #[error(
        "{source_name}: the user list is {format}, not CSV; in Excel use File > Save As > \
         \"CSV UTF-8 (Comma delimited)\" and put that file in the ConfigMap"
    )]
    Workbook {
        /// Source name, `configmap/key`.
        source_name: String,
        /// Description of the detected file format.
        format: &'static str,
    },

    /// The source is in a text encoding the parser does not read.
    #[error(
        "{source_name}: the user list is encoded as {encoding}, which is not supported; save it \
         as \"CSV UTF-8\" in Excel, or convert it to UTF-8"
    )]
    UnsupportedEncoding {
        /// Source name, `configmap/key`.
        source_name: String,
        /// Name of the detected encoding.
        encoding: &'static str,
    },

    /// The source contains every byte value, so it cannot be text.
    #[error(
        "{source_name}: the user list is binary data, not text; save it as \"CSV UTF-8\" and \
         put that file in the ConfigMap"
    )]
    NotText {
        /// Source name, `configmap/key`.
        source_name: String,
    },

    /// The header row has no column with the configured name.
    #[error(
        "{source_name}: no column \"{column}\" in the header row (row {header_row}); the header \
         has {}; set userList.column to the header of the user ID column, or set \
         userList.headerless: true if the file has no header row",
        format_headers(headers)
    )]
    MissingColumn {
        /// Source name, `configmap/key`.
        source_name: String,
        /// Configured column name.
        column: String,
        /// Spreadsheet row of the header.
        header_row: u64,
        /// Previews of the header cells found.
        headers: Vec<String>,
    },

    /// More than one header cell matches the configured column name.
    #[error(
        "{source_name}: the header row has {count} columns named \"{column}\" (columns {}); \
         rename all but the one with the user IDs",
        format_columns(columns)
    )]
    DuplicateColumn {
        /// Source name, `configmap/key`.
        source_name: String,
        /// Configured column name.
        column: String,
        /// Number of matching columns.
        count: usize,
        /// Matching column numbers, counted from 1.
        columns: Vec<usize>,
    },

    /// A quoted value is still open at the end of the source, so every row
    /// after its start was read as part of it.
    #[error(
        "{source_name}: row {row} opens a double-quoted value that is never closed, so the rows \
         after it cannot be read; add the closing quote or remove the opening one"
    )]
    UnclosedQuote {
        /// Source name, `configmap/key`.
        source_name: String,
        /// Spreadsheet row where the open value starts.
        row: u64,
    },

    /// The CSV reader failed.
    #[error("{source_name}: the CSV reader failed after row {row}: {message}")]
    Csv {
        /// Source name, `configmap/key`.
        source_name: String,
        /// Last spreadsheet row read before the failure.
        row: u64,
        /// Message of the CSV reader.
        message: String,
    },
}

/// Maximum number of header cells that a message lists.
const MAX_LISTED_HEADERS: usize = 10;

fn format_headers(headers: &[String]) -> String {
    if headers.iter().all(|header| header.is_empty()) {
        return "only empty cells".to_owned();
    }

    let mut listed: Vec<String> = headers
        .iter()
        .take(MAX_LISTED_HEADERS)
        .map(|header| format!("\"{header}\""))
        .collect();
    if headers.len() > MAX_LISTED_HEADERS {
        listed.push(format!("{} more", headers.len() - MAX_LISTED_HEADERS));
    }
    format!("the columns {}", listed.join(", "))
}

fn format_columns(columns: &[usize]) -> String {
    let numbers: Vec<String> = columns.iter().map(usize::to_string).collect();
    numbers.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_column_lists_headers_and_fix() {
        let error = ListError::MissingColumn {
            source_name: "users/users.csv".to_owned(),
            column: "userid".to_owned(),
            header_row: 1,
            headers: vec!["email".to_owned(), "name".to_owned()],
        };
        let message = error.to_string();
        assert!(message.starts_with("users/users.csv: "), "{message}");
        assert!(message.contains("\"email\", \"name\""), "{message}");
        assert!(message.contains("userList.column"), "{message}");
        assert!(message.contains("userList.headerless"), "{message}");
    }

    #[test]
    fn missing_column_caps_header_list() {
        let headers = (1..=25).map(|n| format!("h{n}")).collect();
        let error = ListError::MissingColumn {
            source_name: "users/users.csv".to_owned(),
            column: "userid".to_owned(),
            header_row: 1,
            headers,
        };
        let message = error.to_string();
        assert!(message.contains("\"h10\", 15 more"), "{message}");
        assert!(!message.contains("h11"), "{message}");
    }
}
