//! Property tests of the user list parser and the request path builder.

use csv::{QuoteStyle, Terminator, WriterBuilder};
use mas_reset_operator::mas::path::{encode_segment, password_path};
use mas_reset_operator::userlist::{
    ParseOptions, Source, UserList, parse_sources, validate_user_id,
};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;

/// Bytes that matter to CSV, encodings and validation, so that random input
/// reaches the interesting branches more often than uniform bytes would.
const CSV_BYTES: &[u8] = &[
    b'a', b'B', b'0', b'.', b' ', b',', b';', b'\t', b'"', b'\r', b'\n', 0x00, 0xC3, 0xB6, 0xFE,
    0xFF, 0xEF, 0xBB, 0xBF,
];

/// Case counts that keep the whole file to a few seconds in a debug build.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn parse(bytes: &[u8], options: &ParseOptions) -> Option<UserList> {
    let sources = [Source {
        name: "users/users.csv".to_owned(),
        bytes,
    }];
    parse_sources(&sources, options).ok()
}

fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let header = prop::sample::select(vec![
        &b""[..],
        b"userid\n",
        b"name,userid\r\n",
        b"userid;x\r",
    ]);
    let body = prop::collection::vec(prop::sample::select(CSV_BYTES), 0..200);
    (header, body).prop_map(|(header, body)| [header, &body].concat())
}

/// User IDs that pass validation, are not all separators, and are not the
/// header name: every such ID must survive writing and parsing unchanged.
fn valid_id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 #?/%+;=@.,\"'~\u{e9}\u{5d3}\u{1F600}-]{1,16}"
        .prop_map(|id| id.trim_matches(' ').to_owned())
        .prop_filter("valid, not blank, not the header", |id| {
            validate_user_id(id).is_ok()
                && !id
                    .bytes()
                    .all(|byte| byte == b',' || byte == b';' || byte == b' ')
                && !id.eq_ignore_ascii_case("userid")
        })
}

fn distinct_in_order(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

fn to_utf16le_with_bom(bytes: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(bytes).expect("the writer output is UTF-8");
    let mut encoded = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        encoded.extend_from_slice(&unit.to_le_bytes());
    }
    encoded
}

/// IDs of any characters, with reserved and non-ASCII ones made common.
fn any_id() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z#?/%+;=@. \u{e9}\u{5d3}-]{0,10}"]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), headerless: bool) {
        let options = ParseOptions { headerless, ..ParseOptions::default() };
        let _ = parse(&bytes, &options);
    }

    #[test]
    fn accepted_ids_are_valid(bytes in csv_bytes(), headerless: bool) {
        let options = ParseOptions { headerless, ..ParseOptions::default() };
        if let Some(list) = parse(&bytes, &options) {
            let mut seen = std::collections::HashSet::new();
            for user in &list.users {
                prop_assert_eq!(validate_user_id(&user.id), Ok(()));
                prop_assert!(seen.insert(user.id.as_str()), "{:?} listed twice", user.id);
                prop_assert!(!user.id.contains('\0') && !user.id.contains('\r'));
            }
            for window in list.users.windows(2) {
                prop_assert!(window[0].row < window[1].row);
            }
        }
    }

    #[test]
    fn password_path_has_one_segment(id in any_id(), email_password: bool) {
        let Ok(path) = password_path(&id, email_password) else {
            prop_assert!(validate_user_id(&id).is_err());
            return Ok(());
        };

        let suffix = format!("/password?emailPassword={email_password}");
        let segment = path
            .strip_prefix("/v3/users/")
            .and_then(|rest| rest.strip_suffix(&suffix))
            .expect("the path has the fixed prefix and suffix");
        prop_assert!(!segment.is_empty());
        prop_assert!(!segment.contains(['/', '?', '#']), "{}", segment);
        prop_assert!(!segment.contains("%0D") && !segment.contains("%0A"), "{}", segment);
        prop_assert!(
            segment.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-._~%".contains(&byte)),
            "{}",
            segment
        );
        prop_assert_eq!(percent_decode_str(segment).decode_utf8().unwrap(), id.as_str());
    }

    #[test]
    fn encode_segment_round_trips(id in any_id()) {
        let encoded = encode_segment(&id);

        prop_assert!(!encoded.contains('/'));
        prop_assert_eq!(percent_decode_str(&encoded).decode_utf8().unwrap(), id.as_str());
    }
}

// Generating the ID lists from a regular expression is the slow part, so the
// round trips run fewer cases.
proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn ids_survive_csv_round_trip(
        ids in prop::collection::vec(valid_id(), 1..12),
        names in prop::collection::vec("[A-Za-z ]{0,8}", 12),
        delimiter in prop::sample::select(vec![b',', b';', b'\t']),
        quote_all: bool,
        crlf: bool,
        utf16: bool,
        second_column: bool,
    ) {
        let mut writer = WriterBuilder::new()
            .delimiter(delimiter)
            .quote_style(if quote_all { QuoteStyle::Always } else { QuoteStyle::Necessary })
            .terminator(if crlf { Terminator::CRLF } else { Terminator::Any(b'\n') })
            .from_writer(Vec::new());
        if second_column {
            writer.write_record(["name", "userid"]).unwrap();
            for (id, name) in ids.iter().zip(&names) {
                writer.write_record([name.as_str(), id.as_str()]).unwrap();
            }
        } else {
            writer.write_record(["userid"]).unwrap();
            for id in &ids {
                writer.write_record([id.as_str()]).unwrap();
            }
        }
        let mut bytes = writer.into_inner().unwrap();
        if utf16 {
            bytes = to_utf16le_with_bom(&bytes);
        }

        let list = parse(&bytes, &ParseOptions::default()).expect("a written list parses");

        let parsed: Vec<String> = list.users.iter().map(|user| user.id.clone()).collect();
        prop_assert_eq!(parsed, distinct_in_order(&ids));
        prop_assert!(list.rejected.is_empty(), "{:?}", list.rejected);
        prop_assert_eq!(list.duplicates.len(), ids.len() - list.users.len());
        prop_assert_eq!(list.skipped_rows, 0);
    }

    #[test]
    fn ids_survive_headerless_round_trip(ids in prop::collection::vec(valid_id(), 1..12)) {
        let mut writer = WriterBuilder::new().from_writer(Vec::new());
        for id in &ids {
            writer.write_record([id.as_str()]).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let options = ParseOptions { headerless: true, ..ParseOptions::default() };

        let list = parse(&bytes, &options).expect("a written list parses");

        let parsed: Vec<String> = list.users.iter().map(|user| user.id.clone()).collect();
        prop_assert_eq!(parsed, distinct_in_order(&ids));
        prop_assert!(list.rejected.is_empty(), "{:?}", list.rejected);
    }
}
