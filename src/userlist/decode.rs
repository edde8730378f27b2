//! Turns the raw bytes of a source into UTF-8 text for the CSV reader.
//!
//! A UTF-8 byte-order mark is removed. UTF-16 with a byte-order mark, which
//! Excel writes for "Unicode Text", is transcoded to UTF-8. Anything else is
//! passed on unchanged, and invalid UTF-8 is rejected later per row. A file in
//! a legacy encoding such as Windows-1252 therefore still sends its ASCII IDs,
//! which read the same in every such encoding, and reports only the other rows.

use std::borrow::Cow;

use encoding_rs::{DecoderResult, Encoding, UTF_8, UTF_16BE, UTF_16LE};

use super::error::ListError;

/// Maximum size of one source in bytes.
///
/// Kubernetes rejects a ConfigMap larger than 1 MiB, so every ConfigMap key
/// fits with room to spare, and so does a list of several hundred thousand
/// short IDs from another caller. The limit bounds the memory that one bad
/// input can take. Parsing keeps the input in memory, with a UTF-8 copy of a
/// UTF-16 source (at most 1.5 times its size) and two copies of the accepted IDs.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024 * 1024;

/// Byte that the UTF-16 transcoder writes in place of an unpaired surrogate.
/// It never occurs in UTF-8, so the row that contains it fails UTF-8
/// validation and is rejected with [`super::RejectReason::InvalidUtf16`].
pub(super) const INVALID_UTF16_MARKER: u8 = 0xFF;

/// Text encoding that a source was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceEncoding {
    Utf8,
    Utf8WithBom,
    Utf16Le,
    Utf16Be,
}

impl SourceEncoding {
    pub(super) fn is_utf16(self) -> bool {
        matches!(self, Self::Utf16Le | Self::Utf16Be)
    }
}

/// Source bytes ready for the CSV reader, UTF-8 except where a row has
/// invalid bytes.
#[derive(Debug)]
pub(super) struct DecodedSource<'a> {
    pub text: Cow<'a, [u8]>,
    pub encoding: SourceEncoding,
}

/// Detects the encoding of `bytes` and returns them as UTF-8, or the reason
/// why the source cannot be text.
pub(super) fn decode_source<'a>(
    source_name: &str,
    bytes: &'a [u8],
) -> Result<DecodedSource<'a>, ListError> {
    if bytes.len() > MAX_SOURCE_BYTES {
        return Err(ListError::TooLarge {
            source_name: source_name.to_owned(),
            bytes: bytes.len(),
            max: MAX_SOURCE_BYTES,
        });
    }

    if let Some(format) = detect_workbook(bytes) {
        return Err(ListError::Workbook {
            source_name: source_name.to_owned(),
            format,
        });
    }

    // The UTF-32LE byte-order mark starts with the UTF-16LE one, so check it first.
    if bytes.starts_with(b"\xFF\xFE\x00\x00") || bytes.starts_with(b"\x00\x00\xFE\xFF") {
        return Err(unsupported(source_name, "UTF-32"));
    }

    let decoded = match Encoding::for_bom(bytes) {
        Some((encoding, bom_length)) if encoding == UTF_8 => DecodedSource {
            text: Cow::Borrowed(&bytes[bom_length..]),
            encoding: SourceEncoding::Utf8WithBom,
        },
        Some((encoding, bom_length)) if encoding == UTF_16LE => DecodedSource {
            text: Cow::Owned(transcode_utf16(encoding, &bytes[bom_length..])),
            encoding: SourceEncoding::Utf16Le,
        },
        Some((encoding, bom_length)) if encoding == UTF_16BE => DecodedSource {
            text: Cow::Owned(transcode_utf16(encoding, &bytes[bom_length..])),
            encoding: SourceEncoding::Utf16Be,
        },
        _ => {
            if looks_like_utf16_without_bom(bytes) {
                return Err(unsupported(source_name, "UTF-16 without a byte-order mark"));
            }
            DecodedSource {
                text: Cow::Borrowed(bytes),
                encoding: SourceEncoding::Utf8,
            }
        }
    };

    if decoded.text.is_empty() {
        return Err(ListError::Empty {
            source_name: source_name.to_owned(),
        });
    }
    Ok(decoded)
}

fn unsupported(source_name: &str, encoding: &'static str) -> ListError {
    ListError::UnsupportedEncoding {
        source_name: source_name.to_owned(),
        encoding,
    }
}

/// Recognises the file signatures of spreadsheet workbooks that
/// administrators put in a ConfigMap instead of a CSV export.
fn detect_workbook(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"PK\x03\x04") {
        Some(
            "a ZIP archive such as an Excel workbook (.xlsx) or an OpenDocument spreadsheet (.ods)",
        )
    } else if bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        Some("a legacy Excel workbook (.xls)")
    } else {
        None
    }
}

/// Returns whether the start of `bytes` has the pattern of UTF-16 text
/// without a byte-order mark: in at least half of the 2-byte units one byte
/// is zero and the other is not. Text in any 8-bit encoding has no NUL bytes,
/// so a stray NUL in one row does not reach that share.
fn looks_like_utf16_without_bom(bytes: &[u8]) -> bool {
    const SAMPLE_BYTES: usize = 1024;

    let sample = &bytes[..bytes.len().min(SAMPLE_BYTES)];
    let units = sample.chunks_exact(2);
    let unit_count = units.len();
    if unit_count == 0 {
        return false;
    }

    let half_zero = units
        .filter(|unit| (unit[0] == 0) != (unit[1] == 0))
        .count();
    half_zero * 2 >= unit_count
}

/// Transcodes UTF-16 to UTF-8, writing [`INVALID_UTF16_MARKER`] for each
/// malformed sequence so that only the row containing it is rejected.
fn transcode_utf16(encoding: &'static Encoding, mut input: &[u8]) -> Vec<u8> {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let capacity = decoder
        .max_utf8_buffer_length_without_replacement(input.len())
        .unwrap_or(input.len());
    let mut output = Vec::with_capacity(capacity);
    let mut chunk = [0u8; 4096];

    loop {
        let (result, read, written) =
            decoder.decode_to_utf8_without_replacement(input, &mut chunk, true);
        output.extend_from_slice(&chunk[..written]);
        input = &input[read..];

        match result {
            DecoderResult::InputEmpty => break,
            DecoderResult::OutputFull => {}
            DecoderResult::Malformed(_, _) => output.push(INVALID_UTF16_MARKER),
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le_with_bom(text: &str) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn strips_utf8_bom() {
        let decoded = decode_source("s", b"\xEF\xBB\xBFuserid\n").unwrap();
        assert_eq!(&*decoded.text, b"userid\n");
        assert_eq!(decoded.encoding, SourceEncoding::Utf8WithBom);
    }

    #[test]
    fn transcodes_utf16le() {
        let bytes = utf16le_with_bom("userid\r\njörg\r\n");
        let decoded = decode_source("s", &bytes).unwrap();
        assert_eq!(&*decoded.text, "userid\r\njörg\r\n".as_bytes());
        assert_eq!(decoded.encoding, SourceEncoding::Utf16Le);
    }

    #[test]
    fn transcodes_utf16be() {
        let mut bytes = vec![0xFE, 0xFF];
        for unit in "userid\nbob".encode_utf16() {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        let decoded = decode_source("s", &bytes).unwrap();
        assert_eq!(&*decoded.text, b"userid\nbob");
        assert_eq!(decoded.encoding, SourceEncoding::Utf16Be);
    }

    #[test]
    fn marks_unpaired_surrogate() {
        let mut bytes = utf16le_with_bom("a\n");
        bytes.extend_from_slice(&0xD800u16.to_le_bytes());
        bytes.extend_from_slice(&u16::from(b'b').to_le_bytes());
        let decoded = decode_source("s", &bytes).unwrap();
        assert_eq!(&*decoded.text, &[b'a', b'\n', INVALID_UTF16_MARKER, b'b']);
    }

    #[test]
    fn keeps_invalid_utf8_for_row_checks() {
        let decoded = decode_source("s", b"userid\nj\xF6rg\n").unwrap();
        assert_eq!(&*decoded.text, b"userid\nj\xF6rg\n");
        assert_eq!(decoded.encoding, SourceEncoding::Utf8);
    }

    #[test]
    fn rejects_empty_and_bom_only() {
        for bytes in [&b""[..], b"\xEF\xBB\xBF", b"\xFF\xFE"] {
            assert!(matches!(
                decode_source("s", bytes),
                Err(ListError::Empty { .. })
            ));
        }
    }

    #[test]
    fn rejects_utf16_without_bom() {
        let bytes: Vec<u8> = "userid\r\nalice\r\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(matches!(
            decode_source("s", &bytes),
            Err(ListError::UnsupportedEncoding { .. })
        ));
    }

    #[test]
    fn stray_nul_is_not_utf16() {
        let decoded = decode_source("s", b"userid\nalice\nb\0b\ncarol\n").unwrap();
        assert_eq!(decoded.encoding, SourceEncoding::Utf8);
    }

    #[test]
    fn rejects_utf32() {
        assert!(matches!(
            decode_source("s", b"\xFF\xFE\x00\x00u\x00\x00\x00"),
            Err(ListError::UnsupportedEncoding {
                encoding: "UTF-32",
                ..
            })
        ));
    }

    #[test]
    fn rejects_workbooks() {
        for bytes in [
            &b"PK\x03\x04\x14\x00\x06\x00"[..],
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\x00",
        ] {
            let error = decode_source("users/users.xlsx", bytes).unwrap_err();
            assert!(matches!(error, ListError::Workbook { .. }));
            assert!(error.to_string().contains("CSV UTF-8"));
        }
    }

    #[test]
    fn rejects_oversized_source() {
        let bytes = vec![b'a'; MAX_SOURCE_BYTES + 1];
        assert!(matches!(
            decode_source("s", &bytes),
            Err(ListError::TooLarge { .. })
        ));
    }
}
