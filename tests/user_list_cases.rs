//! One test per user list fixture in `tests/data/user-lists/`: files of the
//! kinds that Excel, LibreOffice, Google Sheets and scripts write, with the
//! users, counts and request paths a correct parse yields.

use mas_reset_operator::mas::path::password_path;
use mas_reset_operator::userlist::{
    Duplicate, ParseOptions, RejectReason, Source, UserList, parse_sources,
};

const SOURCE_NAME: &str = "users/users.csv";

fn parse(bytes: &[u8]) -> UserList {
    let sources = [Source {
        name: SOURCE_NAME.to_owned(),
        bytes,
    }];
    parse_sources(&sources, &ParseOptions::default()).expect("the fixture parses")
}

fn ids(list: &UserList) -> Vec<&str> {
    list.users.iter().map(|user| user.id.as_str()).collect()
}

fn rows(list: &UserList) -> Vec<u64> {
    list.users.iter().map(|user| user.row).collect()
}

fn paths(list: &UserList) -> Vec<String> {
    list.users
        .iter()
        .map(|user| password_path(&user.id, true).expect("accepted IDs make valid paths"))
        .collect()
}

fn assert_clean(list: &UserList) {
    assert_eq!(list.skipped_rows, 0, "skipped rows");
    assert!(list.rejected.is_empty(), "rejected: {:?}", list.rejected);
    assert!(
        list.duplicates.is_empty(),
        "duplicates: {:?}",
        list.duplicates
    );
}

#[test]
fn case_01_excel_utf8_bom() {
    let list = parse(include_bytes!("data/user-lists/01-excel-utf8-bom.csv"));

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_eq!(rows(&list), [2, 3]);
    assert_clean(&list);
    assert_eq!(list.trimmed_values, 0);
    assert_eq!(
        paths(&list),
        [
            "/v3/users/alice/password?emailPassword=true",
            "/v3/users/bob/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_02_semicolon_excel_de() {
    let list = parse(include_bytes!("data/user-lists/02-semicolon-excel-de.csv"));

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_clean(&list);
    assert!(
        list.notes.contains(
            &"users/users.csv: delimiter ';', user IDs in column 1 \"userid\"".to_owned()
        ),
        "{:?}",
        list.notes
    );
    assert_eq!(
        paths(&list),
        [
            "/v3/users/alice/password?emailPassword=true",
            "/v3/users/bob/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_03_crlf_no_final_newline() {
    let list = parse(include_bytes!(
        "data/user-lists/03-crlf-no-final-newline.csv"
    ));

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_eq!(rows(&list), [2, 3]);
    assert_clean(&list);

    let paths = paths(&list);
    assert_eq!(
        paths,
        [
            "/v3/users/alice/password?emailPassword=true",
            "/v3/users/bob/password?emailPassword=true",
        ]
    );
    for path in &paths {
        assert!(!path.contains("%0D"), "{path}");
    }
}

#[test]
fn case_04_deleted_rows_commas() {
    let list = parse(include_bytes!("data/user-lists/04-deleted-rows-commas.csv"));

    assert_eq!(ids(&list), ["alice"]);
    assert_eq!(rows(&list), [2]);
    assert_eq!(list.skipped_rows, 4);
    assert!(list.rejected.is_empty(), "{:?}", list.rejected);
    assert!(list.duplicates.is_empty());
    assert_eq!(
        paths(&list),
        ["/v3/users/alice/password?emailPassword=true"]
    );
}

#[test]
fn case_05_quoted_values() {
    let list = parse(include_bytes!("data/user-lists/05-quoted-values.csv"));

    assert_eq!(ids(&list), ["alice", "o\"neil", "carol, jr"]);
    assert_clean(&list);
    assert_eq!(
        paths(&list),
        [
            "/v3/users/alice/password?emailPassword=true",
            "/v3/users/o%22neil/password?emailPassword=true",
            "/v3/users/carol%2C%20jr/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_06_leading_zeros_long_digits() {
    let list = parse(include_bytes!(
        "data/user-lists/06-leading-zeros-long-digits.csv"
    ));

    assert_eq!(ids(&list), ["0987456", "007", "9223372036854775807"]);
    assert_clean(&list);
    assert_eq!(
        paths(&list),
        [
            "/v3/users/0987456/password?emailPassword=true",
            "/v3/users/007/password?emailPassword=true",
            "/v3/users/9223372036854775807/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_07_header_case_and_spaces() {
    let list = parse(include_bytes!(
        "data/user-lists/07-header-case-and-spaces.csv"
    ));

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_clean(&list);
    assert_eq!(list.trimmed_values, 2);
    assert_eq!(
        paths(&list),
        [
            "/v3/users/alice/password?emailPassword=true",
            "/v3/users/bob/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_08_utf16le_unicode_text() {
    let list = parse(include_bytes!(
        "data/user-lists/08-utf16le-unicode-text.csv"
    ));

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_eq!(rows(&list), [2, 3]);
    assert_clean(&list);
    assert!(
        list.notes
            .contains(&"users/users.csv: transcoded from UTF-16LE".to_owned()),
        "{:?}",
        list.notes
    );
    for user in &list.users {
        assert!(!user.id.contains('\0'), "{:?}", user.id);
    }
    assert_eq!(
        paths(&list),
        [
            "/v3/users/alice/password?emailPassword=true",
            "/v3/users/bob/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_09_reserved_characters() {
    let list = parse(include_bytes!("data/user-lists/09-reserved-characters.csv"));

    assert_eq!(ids(&list), ["jo#1", "qa?x", "ops/admin", "50%off"]);
    assert_clean(&list);
    assert_eq!(
        paths(&list),
        [
            "/v3/users/jo%231/password?emailPassword=true",
            "/v3/users/qa%3Fx/password?emailPassword=true",
            "/v3/users/ops%2Fadmin/password?emailPassword=true",
            "/v3/users/50%25off/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_10_email_and_plus() {
    let list = parse(include_bytes!("data/user-lists/10-email-and-plus.csv"));

    assert_eq!(ids(&list), ["ana.silva@example.org", "qa+test@example.org"]);
    assert_clean(&list);
    assert_eq!(
        paths(&list),
        [
            "/v3/users/ana.silva%40example.org/password?emailPassword=true",
            "/v3/users/qa%2Btest%40example.org/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_11_non_ascii() {
    let list = parse(include_bytes!("data/user-lists/11-non-ascii.csv"));

    assert_eq!(ids(&list), ["jörg", "דוד"]);
    assert_clean(&list);
    assert_eq!(
        paths(&list),
        [
            "/v3/users/j%C3%B6rg/password?emailPassword=true",
            "/v3/users/%D7%93%D7%95%D7%93/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_12_dot_segments() {
    let list = parse(include_bytes!("data/user-lists/12-dot-segments.csv"));

    assert_eq!(ids(&list), ["alice"]);
    assert_eq!(rows(&list), [4]);
    assert_eq!(list.skipped_rows, 0);
    assert!(list.duplicates.is_empty());

    let rejected: Vec<(u64, &RejectReason, &str)> = list
        .rejected
        .iter()
        .map(|rejection| (rejection.row, &rejection.reason, rejection.preview.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (2, &RejectReason::DotSegment, ".."),
            (3, &RejectReason::DotSegment, "."),
        ]
    );
    assert_eq!(
        paths(&list),
        ["/v3/users/alice/password?emailPassword=true"]
    );
}

#[test]
fn case_13_duplicates() {
    let list = parse(include_bytes!("data/user-lists/13-duplicates.csv"));

    assert_eq!(ids(&list), ["alice", "bob"]);
    assert_eq!(rows(&list), [2, 3]);
    assert_eq!(list.skipped_rows, 0);
    assert!(list.rejected.is_empty());
    assert_eq!(
        list.duplicates,
        [Duplicate {
            source: 0,
            row: 4,
            id: "alice".to_owned(),
            first_source: 0,
            first_row: 2,
        }]
    );
    assert_eq!(
        paths(&list),
        [
            "/v3/users/alice/password?emailPassword=true",
            "/v3/users/bob/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_14_extra_columns() {
    let list = parse(include_bytes!("data/user-lists/14-extra-columns.csv"));

    assert_eq!(ids(&list), ["ana", "bo"]);
    assert_clean(&list);
    assert!(
        list.notes.contains(
            &"users/users.csv: delimiter ',', user IDs in column 2 \"userid\"".to_owned()
        ),
        "{:?}",
        list.notes
    );
    assert_eq!(
        paths(&list),
        [
            "/v3/users/ana/password?emailPassword=true",
            "/v3/users/bo/password?emailPassword=true",
        ]
    );
}

#[test]
fn case_14_other_column_by_name() {
    let sources = [Source {
        name: SOURCE_NAME.to_owned(),
        bytes: include_bytes!("data/user-lists/14-extra-columns.csv"),
    }];
    let options = ParseOptions {
        column: "Email".to_owned(),
        ..ParseOptions::default()
    };
    let list = parse_sources(&sources, &options).unwrap();

    assert_eq!(ids(&list), ["ana@example.org", "bo@example.org"]);
}

#[test]
fn all_cases_as_one_list() {
    let fixtures: [(&str, &[u8]); 14] = [
        (
            "c/01",
            include_bytes!("data/user-lists/01-excel-utf8-bom.csv"),
        ),
        (
            "c/02",
            include_bytes!("data/user-lists/02-semicolon-excel-de.csv"),
        ),
        (
            "c/03",
            include_bytes!("data/user-lists/03-crlf-no-final-newline.csv"),
        ),
        (
            "c/04",
            include_bytes!("data/user-lists/04-deleted-rows-commas.csv"),
        ),
        (
            "c/05",
            include_bytes!("data/user-lists/05-quoted-values.csv"),
        ),
        (
            "c/06",
            include_bytes!("data/user-lists/06-leading-zeros-long-digits.csv"),
        ),
        (
            "c/07",
            include_bytes!("data/user-lists/07-header-case-and-spaces.csv"),
        ),
        (
            "c/08",
            include_bytes!("data/user-lists/08-utf16le-unicode-text.csv"),
        ),
        (
            "c/09",
            include_bytes!("data/user-lists/09-reserved-characters.csv"),
        ),
        (
            "c/10",
            include_bytes!("data/user-lists/10-email-and-plus.csv"),
        ),
        ("c/11", include_bytes!("data/user-lists/11-non-ascii.csv")),
        (
            "c/12",
            include_bytes!("data/user-lists/12-dot-segments.csv"),
        ),
        ("c/13", include_bytes!("data/user-lists/13-duplicates.csv")),
        (
            "c/14",
            include_bytes!("data/user-lists/14-extra-columns.csv"),
        ),
    ];
    let sources: Vec<Source<'_>> = fixtures
        .iter()
        .map(|(name, bytes)| Source {
            name: (*name).to_owned(),
            bytes,
        })
        .collect();
    let list = parse_sources(&sources, &ParseOptions::default()).unwrap();

    // alice and bob appear in many files: each is kept once, from file 01.
    assert_eq!(
        ids(&list),
        [
            "alice",
            "bob",
            "o\"neil",
            "carol, jr",
            "0987456",
            "007",
            "9223372036854775807",
            "jo#1",
            "qa?x",
            "ops/admin",
            "50%off",
            "ana.silva@example.org",
            "qa+test@example.org",
            "jörg",
            "דוד",
            "ana",
            "bo",
        ]
    );
    assert_eq!(list.users[1].source, 0);
    assert_eq!(list.rejected.len(), 2);
    assert_eq!(list.skipped_rows, 4);
    assert_eq!(list.duplicates.len(), 14);
    assert_eq!(list.source_name(7), "c/08");
    assert!(
        list.duplicates
            .iter()
            .all(|duplicate| duplicate.id == "alice" || duplicate.id == "bob"),
        "{:?}",
        list.duplicates
    );
}
