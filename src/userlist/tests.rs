//! Tests of the parsing rules through `parse_sources`.

use super::*;

fn source(bytes: &[u8]) -> Source<'_> {
    Source {
        name: "users/users.csv".to_owned(),
        bytes,
    }
}

fn parse(bytes: &[u8]) -> UserList {
    parse_sources(&[source(bytes)], &ParseOptions::default()).expect("the list parses")
}

fn parse_error(bytes: &[u8]) -> ListError {
    parse_sources(&[source(bytes)], &ParseOptions::default()).expect_err("the list fails")
}

fn parse_headerless(bytes: &[u8]) -> UserList {
    let options = ParseOptions {
        headerless: true,
        ..ParseOptions::default()
    };
    parse_sources(&[source(bytes)], &options).expect("the list parses")
}

fn ids(list: &UserList) -> Vec<&str> {
    list.users.iter().map(|user| user.id.as_str()).collect()
}

fn rows(list: &UserList) -> Vec<u64> {
    list.users.iter().map(|user| user.row).collect()
}

fn reasons(list: &UserList) -> Vec<(u64, RejectReason)> {
    list.rejected
        .iter()
        .map(|rejection| (rejection.row, rejection.reason.clone()))
        .collect()
}

fn utf16le(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

#[test]
fn delimiter_detected_per_source() {
    let comma = parse(b"name,userid\nAna,ana\n");
    let semicolon = parse(b"name;userid\nAna;ana\n");
    let tab = parse(b"name\tuserid\nAna\tana\n");

    assert_eq!(ids(&comma), ["ana"]);
    assert_eq!(ids(&semicolon), ["ana"]);
    assert_eq!(ids(&tab), ["ana"]);
    assert!(
        tab.notes.iter().any(|note| note.contains("delimiter tab")),
        "{:?}",
        tab.notes
    );
}

#[test]
fn delimiter_inside_quoted_header_ignored() {
    let list = parse(b"\"last, first\";userid\n\"Doe, Jo\";jdoe\n");

    assert_eq!(ids(&list), ["jdoe"]);
    assert!(
        list.notes.iter().any(|note| note.contains("delimiter ';'")),
        "{:?}",
        list.notes
    );
}

#[test]
fn delimiter_tie_settled_by_column() {
    let semicolon = parse(b"userid;name,first\nalice;x\n");
    let comma = parse(b"userid,name;first\nbob,y\n");
    let tab_in_cell = parse(b" \tUSERID  ,x\ncarol,z\n");

    assert_eq!(ids(&semicolon), ["alice"]);
    assert_eq!(ids(&comma), ["bob"]);
    assert_eq!(ids(&tab_in_cell), ["carol"]);
    assert!(
        semicolon
            .notes
            .iter()
            .any(|note| note.contains("equally often; delimiter ';' was chosen")),
        "{:?}",
        semicolon.notes
    );
    assert!(
        comma
            .notes
            .iter()
            .any(|note| note.contains("equally often; delimiter ',' was chosen")),
        "{:?}",
        comma.notes
    );
}

#[test]
fn single_column_keeps_commas() {
    let list = parse(b"userid\nsmith, john\n\"carol, jr\"\n");

    assert_eq!(ids(&list), ["smith, john", "carol, jr"]);
    assert!(
        list.notes.iter().any(|note| note.contains("single column")),
        "{:?}",
        list.notes
    );
}

#[test]
fn line_endings_all_read() {
    for input in [
        &b"userid\r\nalice\r\nbob\r\n"[..],
        b"userid\nalice\nbob\n",
        b"userid\ralice\rbob\r",
        b"userid\nalice\r\nbob",
    ] {
        let list = parse(input);
        assert_eq!(ids(&list), ["alice", "bob"], "{input:?}");
        assert_eq!(rows(&list), [2, 3], "{input:?}");
        assert_eq!(list.skipped_rows, 0, "{input:?}");
    }
}

#[test]
fn blank_rows_counted_in_row_numbers() {
    let list = parse(b"userid\r\n\r\nalice\r\n   \r\n,,\r\n;;\r\n\t\r\nbob\r\n\r\n");

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_eq!(rows(&list), [3, 8]);
    assert_eq!(list.skipped_rows, 6);
}

#[test]
fn blank_rows_with_cr_endings() {
    let list = parse(b"userid\r\ralice\r\r\rbob");

    assert_eq!(rows(&list), [3, 6]);
    assert_eq!(list.skipped_rows, 3);
}

#[test]
fn blank_rows_before_header() {
    let list = parse(b"\n,,\nuserid,name\nalice,A\n");

    assert_eq!(ids(&list), ["alice"]);
    assert_eq!(rows(&list), [4]);
    assert_eq!(list.skipped_rows, 2);
}

#[test]
fn quoted_empty_row_is_blank() {
    let list = parse(b"userid,name\n\"\",\"\"\nalice,A\n");

    assert_eq!(ids(&list), ["alice"]);
    assert_eq!(list.skipped_rows, 1);
}

#[test]
fn header_matched_case_insensitively() {
    let list = parse(b"  USERID  ,x\nalice,1\n");

    assert_eq!(ids(&list), ["alice"]);
}

#[test]
fn configured_column_used() {
    let options = ParseOptions {
        column: " Benutzerkennung ".to_owned(),
        headerless: false,
    };
    let sources = [source("userid;benutzerkennung\nwrong;ÄRGER\n".as_bytes())];
    let list = parse_sources(&sources, &options).unwrap();

    assert_eq!(ids(&list), ["ÄRGER"]);
}

#[test]
fn values_are_opaque() {
    let list = parse(b"userid\n007\nAlice\n1e5\n 0x1F \n");

    assert_eq!(ids(&list), ["007", "Alice", "1e5", "0x1F"]);
    assert_eq!(list.trimmed_values, 1);
}

#[test]
fn quoted_spaces_trimmed_and_counted() {
    let list = parse(b"userid\n\" alice \"\nbob\n");

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_eq!(list.trimmed_values, 1);
}

#[test]
fn missing_column_is_error_with_fix() {
    let error = parse_error(b"email,name\na@x.org,A\n");

    assert_eq!(
        error,
        ListError::MissingColumn {
            source_name: "users/users.csv".to_owned(),
            column: "userid".to_owned(),
            header_row: 1,
            headers: vec!["email".to_owned(), "name".to_owned()],
        }
    );
    let message = error.to_string();
    assert!(message.contains("userList.column"), "{message}");
    assert!(message.contains("userList.headerless"), "{message}");
}

#[test]
fn list_without_header_fails_by_default() {
    let error = parse_error(b"alice\nbob\n");

    assert!(
        matches!(&error, ListError::MissingColumn { headers, .. } if headers == &["alice"]),
        "{error:?}"
    );
}

#[test]
fn duplicate_column_is_error() {
    let error = parse_error(b"userid,UserID\na,b\n");

    assert_eq!(
        error,
        ListError::DuplicateColumn {
            source_name: "users/users.csv".to_owned(),
            column: "userid".to_owned(),
            count: 2,
            columns: vec![1, 2],
        }
    );
}

#[test]
fn empty_column_option_is_error() {
    let options = ParseOptions {
        column: "  ".to_owned(),
        headerless: false,
    };
    let result = parse_sources(&[source(b"userid\na\n")], &options);

    assert_eq!(result, Err(ListError::EmptyColumnName));
}

#[test]
fn header_only_gives_empty_list() {
    let list = parse(b"userid,name\r\n,\r\n");

    assert!(list.users.is_empty());
    assert_eq!(list.skipped_rows, 1);
    assert!(
        list.notes
            .iter()
            .any(|note| note.contains("header row but no user rows")),
        "{:?}",
        list.notes
    );
}

#[test]
fn empty_and_blank_sources_fail() {
    assert!(matches!(parse_error(b""), ListError::Empty { .. }));
    assert!(matches!(
        parse_error(b"\xEF\xBB\xBF"),
        ListError::Empty { .. }
    ));
    assert!(matches!(
        parse_error(b"\r\n,,,\r\n  \r\n"),
        ListError::NoRows { .. }
    ));
}

#[test]
fn headerless_first_line_is_an_id() {
    let list = parse_headerless(b"userid\r\nalice\r\n\r\n\"carol, jr\"\r\n");

    assert_eq!(ids(&list), ["userid", "alice", "carol, jr"]);
    assert_eq!(rows(&list), [1, 2, 4]);
    assert_eq!(list.skipped_rows, 1);
}

#[test]
fn headerless_blank_source_fails() {
    let options = ParseOptions {
        headerless: true,
        ..ParseOptions::default()
    };
    let result = parse_sources(&[source(b"\n\n  \n")], &options);

    assert!(
        matches!(result, Err(ListError::NoRows { .. })),
        "{result:?}"
    );
}

#[test]
fn rejects_empty_value_in_non_blank_row() {
    let list = parse(b"name,userid\nAna,\nBo,bo\n");

    assert_eq!(ids(&list), ["bo"]);
    assert_eq!(reasons(&list), [(2, RejectReason::Empty)]);
}

#[test]
fn rejects_control_characters() {
    let list = parse(b"userid\na\0b\n\"c\nd\"\n\"e\rf\"\ng\th\nok\n");

    assert_eq!(ids(&list), ["ok"]);
    assert_eq!(
        reasons(&list),
        [
            (
                2,
                RejectReason::ControlCharacter {
                    character: '\0',
                    index: 2
                }
            ),
            (
                3,
                RejectReason::ControlCharacter {
                    character: '\n',
                    index: 2
                }
            ),
            (
                4,
                RejectReason::ControlCharacter {
                    character: '\r',
                    index: 2
                }
            ),
            (
                5,
                RejectReason::ControlCharacter {
                    character: '\t',
                    index: 2
                }
            ),
        ]
    );
    assert!(
        list.notes
            .iter()
            .any(|note| note.contains("2 rows have a quoted value that spans lines")),
        "{:?}",
        list.notes
    );
}

#[test]
fn rejects_invalid_utf8_per_row() {
    // Windows-1252: "jörg" with ö as 0xF6.
    let list = parse(b"userid\r\nalice\r\nj\xF6rg\r\nbob\r\n");

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_eq!(
        reasons(&list),
        [(3, RejectReason::InvalidUtf8 { byte_offset: 1 })]
    );
    assert_eq!(list.rejected[0].preview, "j\\u{FFFD}rg");
    assert!(
        list.notes
            .iter()
            .any(|note| note.contains("not valid UTF-8")),
        "{:?}",
        list.notes
    );
}

#[test]
fn rejects_unpaired_surrogate_per_row() {
    let mut bytes = utf16le("userid\r\nalice\r\n");
    bytes.extend_from_slice(&0xDC00u16.to_le_bytes());
    bytes.extend_from_slice(&utf16le("x\r\nbob\r\n")[2..]);
    let list = parse(&bytes);

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_eq!(reasons(&list), [(3, RejectReason::InvalidUtf16)]);
}

#[test]
fn utf16_unicode_text_with_columns() {
    let list = parse(&utf16le("name\tuserid\r\nJörg\tjörg\r\nDavid\tדוד\r\n"));

    assert_eq!(ids(&list), ["jörg", "דוד"]);
}

#[test]
fn utf16be_transcoded() {
    let mut bytes = vec![0xFE, 0xFF];
    for unit in "userid\nalice\n".encode_utf16() {
        bytes.extend_from_slice(&unit.to_be_bytes());
    }
    let list = parse(&bytes);

    assert_eq!(ids(&list), ["alice"]);
    assert!(
        list.notes.iter().any(|note| note.contains("UTF-16BE")),
        "{:?}",
        list.notes
    );
}

#[test]
fn rejects_too_long_value() {
    let mut input = b"userid\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', MAX_USER_ID_BYTES + 1));
    input.extend_from_slice(b"\nok\n");
    let list = parse(&input);

    assert_eq!(ids(&list), ["ok"]);
    assert_eq!(
        reasons(&list),
        [(
            2,
            RejectReason::TooLong {
                len: MAX_USER_ID_BYTES + 1,
                max: MAX_USER_ID_BYTES
            }
        )]
    );
    assert!(list.rejected[0].preview.len() < 50);
    assert!(!list.rejected[0].to_string().contains(&"x".repeat(50)));
}

#[test]
fn rejects_dot_segments() {
    let list = parse(b"userid\n.\n..\n...\n");

    assert_eq!(ids(&list), ["..."]);
    assert_eq!(
        reasons(&list),
        [(2, RejectReason::DotSegment), (3, RejectReason::DotSegment)]
    );
}

#[test]
fn rejects_invisible_and_whitespace() {
    let list = parse("userid\nal\u{200B}ice\nbob\u{A0}\nj\u{FFFD}rg\n".as_bytes());

    assert!(list.users.is_empty());
    assert_eq!(
        reasons(&list),
        [
            (
                2,
                RejectReason::InvisibleCharacter {
                    character: '\u{200B}',
                    index: 3
                }
            ),
            (
                3,
                RejectReason::SurroundingWhitespace {
                    character: '\u{A0}'
                }
            ),
            (4, RejectReason::ReplacementCharacter { index: 2 }),
        ]
    );
}

#[test]
fn rejects_rows_with_extra_fields() {
    let list = parse(b"userid,name\nalice,A\ncarol, jr,Carol\ndan,D,,\n");

    assert_eq!(ids(&list), ["alice", "dan"]);
    assert_eq!(
        reasons(&list),
        [(
            3,
            RejectReason::FieldCount {
                found: 3,
                expected: 2
            }
        )]
    );
    assert_eq!(list.rejected[0].preview, "carol");
}

#[test]
fn short_row_accepted_with_column() {
    let list = parse(b"userid,name,note\nalice\nbob,B\n");

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert!(list.rejected.is_empty());
}

#[test]
fn rejects_short_row_without_column() {
    let list = parse(b"name,userid\nAna\nBo,bo\n");

    assert_eq!(ids(&list), ["bo"]);
    assert_eq!(
        reasons(&list),
        [(
            2,
            RejectReason::FieldCount {
                found: 1,
                expected: 2
            }
        )]
    );
}

#[test]
fn rejects_repeated_header() {
    let list = parse(b"UserID\nalice\nuserid\nbob\n");

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_eq!(reasons(&list), [(3, RejectReason::RepeatedHeader)]);
}

#[test]
fn unclosed_quote_is_error() {
    let error = parse_error(b"userid,name\nalice,\"Smith\nbob,B\ncarol,C\n");

    assert_eq!(
        error,
        ListError::UnclosedQuote {
            source_name: "users/users.csv".to_owned(),
            row: 2,
        }
    );
}

#[test]
fn workbook_is_error() {
    let error = parse_error(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00");

    assert!(matches!(error, ListError::Workbook { .. }), "{error:?}");
}

#[test]
fn duplicates_across_sources() {
    let sources = [
        Source {
            name: "part1/users.csv".to_owned(),
            bytes: b"userid\nalice\nbob\n",
        },
        Source {
            name: "part2/users.csv".to_owned(),
            bytes: b"name;userid\nB;bob\nC;carol\n",
        },
    ];
    let list = parse_sources(&sources, &ParseOptions::default()).unwrap();

    assert_eq!(ids(&list), ["alice", "bob", "carol"]);
    assert_eq!(list.users[2].source, 1);
    assert_eq!(list.users[2].row, 3);
    assert_eq!(
        list.duplicates,
        [Duplicate {
            source: 1,
            row: 2,
            id: "bob".to_owned(),
            first_source: 0,
            first_row: 3,
        }]
    );
    assert_eq!(list.source_names, ["part1/users.csv", "part2/users.csv"]);
    assert!(
        list.notes
            .iter()
            .any(|note| note.starts_with("part2/users.csv: delimiter ';'"))
    );
}

#[test]
fn failing_source_fails_list() {
    let sources = [
        Source {
            name: "part1/users.csv".to_owned(),
            bytes: b"userid\nalice\n",
        },
        Source {
            name: "part2/users.csv".to_owned(),
            bytes: b"",
        },
    ];
    let result = parse_sources(&sources, &ParseOptions::default());

    assert_eq!(
        result,
        Err(ListError::Empty {
            source_name: "part2/users.csv".to_owned()
        })
    );
}

#[test]
fn digest_ignores_skipped_and_rejected_rows() {
    let plain = parse(b"userid\nalice\nbob\n");
    let noisy = parse(b"userid\r\n\r\nalice\r\n..\r\n alice\r\nbob\r\n");

    assert_eq!(plain.digest(), noisy.digest());
    assert_ne!(plain.digest(), parse(b"userid\nbob\nalice\n").digest());
}

#[test]
fn parses_100k_rows() {
    const USERS: usize = 100_000;
    let mut input = String::from("userid,name\r\n");
    for number in 0..USERS {
        input.push_str(&format!("user{number:06},Name {number}\r\n"));
        if number % 1000 == 0 {
            input.push_str(",\r\n");
        }
    }
    input.push_str("user000042,again\r\n");

    let list = parse(input.as_bytes());

    assert_eq!(list.users.len(), USERS);
    assert_eq!(list.skipped_rows, 100);
    assert_eq!(list.duplicates.len(), 1);
    assert!(list.rejected.is_empty());
    assert_eq!(list.users[USERS - 1].id, "user099999");
}

#[test]
fn excel_sep_line_sets_delimiter() {
    let list = parse(b"sep=;\r\nuserid;name, first\r\nalice;A, a\r\n");

    assert_eq!(ids(&list), ["alice"]);
    assert_eq!(rows(&list), [3]);
    assert_eq!(list.skipped_rows, 0);
    assert!(
        list.notes
            .iter()
            .any(|note| note.contains("delimiter ';' set by the \"sep=\" line")),
        "{:?}",
        list.notes
    );
}
