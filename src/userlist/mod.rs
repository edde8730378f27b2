//! Parsing of the user lists that administrators export from Excel,
//! LibreOffice, Google Sheets or scripts.
//!
//! Each source is CSV text with a header row (or, with
//! [`ParseOptions::headerless`], one ID per line). The reader accepts:
//! - UTF-8 with or without a byte-order mark, and UTF-16LE/BE with a
//!   byte-order mark, which is transcoded. Excel "Unicode Text" is
//!   tab-delimited UTF-16LE.
//! - `,`, `;` or tab as delimiter, detected from the header row. A header
//!   without any of them makes a single-column list.
//! - CRLF, LF or CR line endings, with or without a final line break.
//! - RFC 4180 quoting, read by the `csv` crate.
//!
//! A user ID is opaque: it is never parsed as a number, never case-folded and
//! only trimmed of surrounding ASCII spaces. Blank and separator-only rows are
//! skipped and counted. A row whose value cannot be an ID is rejected with a
//! [`RejectReason`] and the other rows still count. A source that cannot be
//! read at all is a [`ListError`], and then no list is returned.
//!
//! A file that is not valid UTF-8 and has no UTF-16 byte-order mark, such as
//! a Windows-1252 export, is checked row by row. Rows with invalid bytes are
//! rejected and the others are kept, because ASCII IDs read the same in every
//! such encoding.

mod decode;
mod error;
mod list;
mod reader;
mod scan;
mod validate;

pub use decode::MAX_SOURCE_BYTES;
pub use error::ListError;
pub use list::{Duplicate, Rejection, UserEntry, UserList};
pub use validate::{MAX_USER_ID_BYTES, RejectReason, preview, validate_user_id};

use list::ListBuilder;

/// Header of the user ID column when none is configured.
pub const DEFAULT_COLUMN: &str = "userid";

/// How to find the user IDs in each source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Header of the user ID column, matched without regard to case or
    /// surrounding spaces. Ignored when `headerless` is set.
    pub column: String,
    /// The sources have no header row: every non-blank line is one ID, and a
    /// first line that looks like a header is an ID too.
    pub headerless: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            column: DEFAULT_COLUMN.to_owned(),
            headerless: false,
        }
    }
}

/// The bytes of one part of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source<'a> {
    /// Name shown in notes and errors, `configmap/key` for a ConfigMap key.
    pub name: String,
    /// Raw content, from `data` or `binaryData`.
    pub bytes: &'a [u8],
}

/// Parses all sources, in order, into one list of distinct user IDs.
///
/// Each source has its own header row. An ID that appears again, in the same
/// or a later source, is reported as a duplicate and listed once. Fails with
/// the first source that cannot be read.
pub fn parse_sources(
    sources: &[Source<'_>],
    options: &ParseOptions,
) -> Result<UserList, ListError> {
    if !options.headerless && options.column.trim_matches([' ', '\t']).is_empty() {
        return Err(ListError::EmptyColumnName);
    }

    let names = sources.iter().map(|source| source.name.clone()).collect();
    let mut list = ListBuilder::new(names);
    for (index, source) in sources.iter().enumerate() {
        reader::read_source(index, source, options, &mut list)?;
    }
    Ok(list.finish())
}

#[cfg(test)]
mod tests;
