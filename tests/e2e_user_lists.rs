//! Each file of `tests/data/user-lists/` end to end: stored in a ConfigMap as
//! `kubectl create configmap --from-file` stores it, read by the operator,
//! and sent to the MAS simulator. Each test checks the users reset, the
//! exact request line on the wire, the row counts and the rejected rows in
//! status. Lists that cannot be read at all must stop the resource before
//! any request.

mod common;

use std::time::Duration;

use common::*;
use mas_reset_operator::api::{BulkPasswordReset, BulkPasswordResetStatus, Phase, RejectedRow};
use mas_reset_operator::simulator::{
    LedgerEntry, SimUser, Simulator, SimulatorConfig, SimulatorHandle, StaticToken,
};

const TOKEN: &str = "e2e-user-lists-token-7c21";

/// Source name of the list in status and messages: `<configmap>/<key>`.
const SOURCE: &str = "users/users.csv";

/// What a run over one list file left behind.
struct CaseRun {
    resource: BulkPasswordReset,
    ledger: Vec<LedgerEntry>,
    events: Vec<k8s_openapi::api::events::v1::Event>,
    operator: Operator,
    simulator: SimulatorHandle,
}

impl CaseRun {
    fn status(&self) -> &BulkPasswordResetStatus {
        self.resource.status.as_ref().expect("status")
    }

    fn reset_user_ids(&self) -> Vec<&str> {
        self.ledger
            .iter()
            .map(|entry| entry.user_id.as_str())
            .collect()
    }

    /// Note of the Event with `reason`.
    fn event_note(&self, reason: &str) -> String {
        self.events
            .iter()
            .find(|event| event.reason.as_deref() == Some(reason))
            .and_then(|event| event.note.clone())
            .unwrap_or_else(|| panic!("no {reason} Event in {:?}", self.events))
    }

    fn raw_paths(&self) -> Vec<&str> {
        self.ledger
            .iter()
            .map(|entry| entry.raw_path.as_str())
            .collect()
    }

    /// Skipped, duplicate and rejected rows from `status.counts`.
    fn row_counts(&self) -> (i64, i64, i64) {
        let counts = self.status().counts.clone().expect("counts");
        (counts.skipped, counts.duplicates, counts.rejected)
    }

    async fn stop(mut self) {
        self.operator.terminate().await;
        self.simulator.shutdown().await;
    }
}

/// Runs the operator over `file` with the simulator having `mas_users`, one
/// request at a time so that the ledger is in list order.
async fn run_case(prefix: &str, file: &[u8], mas_users: &[&str]) -> CaseRun {
    run_list(
        prefix,
        file,
        mas_users,
        serde_json::json!({ "concurrency": 1 }),
        &[Phase::Succeeded, Phase::PartiallyFailed, Phase::Failed],
    )
    .await
}

/// Applies a resource over `file` with `extra_spec` and waits for one of
/// `phases` and for its first Event.
async fn run_list(
    prefix: &str,
    file: &[u8],
    mas_users: &[&str],
    extra_spec: serde_json::Value,
    phases: &[Phase],
) -> CaseRun {
    let plane = mas_reset_harness::shared().await;
    install_crds(plane).await;
    let client = plane.client().await.expect("client");
    let namespace = namespace(&client, prefix).await;

    let simulator = Simulator::start(SimulatorConfig {
        users: mas_users.iter().map(|id| SimUser::local(*id)).collect(),
        tokens: vec![StaticToken::new(TOKEN, true)],
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    config_map_from_file(&client, &namespace, "users", "users.csv", file).await;
    secret(&client, &namespace, "mas-credentials", &[("token", TOKEN)]).await;

    let operator = Operator::start(plane, &namespace, &[]);
    let manifest = manifest("list", &simulator.base_url(), extra_spec);
    apply_manifest(&client, &namespace, &manifest).await;
    let resource = wait_for_phase(
        &client,
        &namespace,
        "list",
        phases,
        Duration::from_secs(60),
        &operator,
    )
    .await;

    // An Event follows every phase write closely.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let events = loop {
        let events = events(&client, &namespace).await;
        if !events.is_empty() || tokio::time::Instant::now() >= deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    CaseRun {
        resource,
        ledger: simulator.ledger(),
        events,
        operator,
        simulator,
    }
}

fn path(segment: &str) -> String {
    format!("/v3/users/{segment}/password?emailPassword=true")
}

#[tokio::test]
async fn case_01_excel_utf8_bom() {
    let file = include_bytes!("data/user-lists/01-excel-utf8-bom.csv");
    let run = run_case("list-01", file, &["alice", "bob"]).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["alice", "bob"]);
    assert_eq!(run.raw_paths(), [path("alice"), path("bob")]);
    assert_eq!(run.row_counts(), (0, 0, 0));
    assert!(run.status().rejected_rows.is_empty());
    run.stop().await;
}

#[tokio::test]
async fn case_02_semicolon_excel_de() {
    let file = include_bytes!("data/user-lists/02-semicolon-excel-de.csv");
    let run = run_case("list-02", file, &["alice", "bob"]).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["alice", "bob"]);
    assert_eq!(run.raw_paths(), [path("alice"), path("bob")]);
    assert_eq!(run.row_counts(), (0, 0, 0));
    run.stop().await;
}

#[tokio::test]
async fn case_03_crlf_no_final_newline() {
    let file = include_bytes!("data/user-lists/03-crlf-no-final-newline.csv");
    let run = run_case("list-03", file, &["alice", "bob"]).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["alice", "bob"]);
    assert_eq!(run.raw_paths(), [path("alice"), path("bob")]);
    for raw_path in run.raw_paths() {
        assert!(!raw_path.contains("%0D"), "{raw_path}");
    }
    assert_eq!(run.row_counts(), (0, 0, 0));
    run.stop().await;
}

#[tokio::test]
async fn case_04_deleted_rows_commas() {
    let file = include_bytes!("data/user-lists/04-deleted-rows-commas.csv");
    let run = run_case("list-04", file, &["alice"]).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["alice"]);
    assert_eq!(run.raw_paths(), [path("alice")]);
    assert_eq!(run.row_counts(), (4, 0, 0));
    assert!(run.status().rejected_rows.is_empty());
    run.stop().await;
}

#[tokio::test]
async fn case_05_quoted_values() {
    let file = include_bytes!("data/user-lists/05-quoted-values.csv");
    let run = run_case("list-05", file, &["alice", "o\"neil", "carol, jr"]).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["alice", "o\"neil", "carol, jr"]);
    assert_eq!(
        run.raw_paths(),
        [path("alice"), path("o%22neil"), path("carol%2C%20jr")]
    );
    assert_eq!(run.row_counts(), (0, 0, 0));
    run.stop().await;
}

#[tokio::test]
async fn case_06_leading_zeros_long_digits() {
    let file = include_bytes!("data/user-lists/06-leading-zeros-long-digits.csv");
    let ids = ["0987456", "007", "9223372036854775807"];
    let run = run_case("list-06", file, &ids).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ids);
    assert_eq!(
        run.raw_paths(),
        [path("0987456"), path("007"), path("9223372036854775807")]
    );
    assert_eq!(run.row_counts(), (0, 0, 0));
    run.stop().await;
}

#[tokio::test]
async fn case_07_header_case_and_spaces() {
    let file = include_bytes!("data/user-lists/07-header-case-and-spaces.csv");
    let run = run_case("list-07", file, &["alice", "bob"]).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["alice", "bob"]);
    assert_eq!(run.raw_paths(), [path("alice"), path("bob")]);
    assert_eq!(run.row_counts(), (0, 0, 0));
    let started = run.event_note("Started");
    assert!(
        started.contains("2 user IDs had surrounding spaces removed"),
        "{started}"
    );
    assert!(
        started.contains("user IDs in column 1 \"UserID\""),
        "{started}"
    );
    run.stop().await;
}

#[tokio::test]
async fn case_08_utf16le_unicode_text() {
    // UTF-16 is not valid UTF-8, so it goes to binaryData.
    let file = include_bytes!("data/user-lists/08-utf16le-unicode-text.csv");
    let run = run_case("list-08", file, &["alice", "bob"]).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["alice", "bob"]);
    assert_eq!(run.raw_paths(), [path("alice"), path("bob")]);
    for raw_path in run.raw_paths() {
        assert!(!raw_path.contains("%00"), "{raw_path}");
    }
    assert_eq!(run.row_counts(), (0, 0, 0));
    run.stop().await;
}

#[tokio::test]
async fn case_09_reserved_characters() {
    let file = include_bytes!("data/user-lists/09-reserved-characters.csv");
    let ids = ["jo#1", "qa?x", "ops/admin", "50%off"];
    let run = run_case("list-09", file, &ids).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ids);
    assert_eq!(
        run.raw_paths(),
        [
            "/v3/users/jo%231/password?emailPassword=true",
            "/v3/users/qa%3Fx/password?emailPassword=true",
            "/v3/users/ops%2Fadmin/password?emailPassword=true",
            "/v3/users/50%25off/password?emailPassword=true",
        ]
    );
    assert_eq!(run.row_counts(), (0, 0, 0));
    run.stop().await;
}

#[tokio::test]
async fn case_10_email_and_plus() {
    let file = include_bytes!("data/user-lists/10-email-and-plus.csv");
    let ids = ["ana.silva@example.org", "qa+test@example.org"];
    let run = run_case("list-10", file, &ids).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ids);
    assert_eq!(
        run.raw_paths(),
        [
            path("ana.silva%40example.org"),
            path("qa%2Btest%40example.org")
        ]
    );
    assert_eq!(run.row_counts(), (0, 0, 0));
    run.stop().await;
}

#[tokio::test]
async fn case_11_non_ascii() {
    let file = include_bytes!("data/user-lists/11-non-ascii.csv");
    let run = run_case("list-11", file, &["jörg", "דוד"]).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["jörg", "דוד"]);
    assert_eq!(
        run.raw_paths(),
        [path("j%C3%B6rg"), path("%D7%93%D7%95%D7%93")]
    );
    assert_eq!(run.row_counts(), (0, 0, 0));
    run.stop().await;
}

#[tokio::test]
async fn case_12_dot_segments() {
    let file = include_bytes!("data/user-lists/12-dot-segments.csv");
    // The simulator has users "." and ".." too, so a request that reached it for
    // them would show up in the ledger.
    let run = run_case("list-12", file, &["alice", ".", ".."]).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["alice"]);
    assert_eq!(run.raw_paths(), [path("alice")]);
    assert!(run.simulator.lookups().is_empty());
    assert_eq!(run.row_counts(), (0, 0, 2));

    let rejected = &run.status().rejected_rows;
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let dot_reason = "the user ID is \".\" or \"..\", which a URL path resolves as a directory step, so the request would reach another endpoint; such an ID cannot be reset through the API";
    assert_eq!(
        rejected[0],
        RejectedRow {
            source: SOURCE.to_owned(),
            row: 2,
            reason: dot_reason.to_owned(),
        }
    );
    assert_eq!(
        rejected[1],
        RejectedRow {
            source: SOURCE.to_owned(),
            row: 3,
            reason: dot_reason.to_owned(),
        }
    );
    let counts = run.status().counts.clone().expect("counts");
    assert_eq!(counts.total, 1);
    run.stop().await;
}

#[tokio::test]
async fn case_13_duplicates() {
    let file = include_bytes!("data/user-lists/13-duplicates.csv");
    let run = run_case("list-13", file, &["alice", "bob"]).await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["alice", "bob"]);
    assert_eq!(run.raw_paths(), [path("alice"), path("bob")]);
    assert_eq!(run.row_counts(), (0, 1, 0));
    assert_eq!(
        run.status().rejected_rows,
        [RejectedRow {
            source: SOURCE.to_owned(),
            row: 4,
            reason: "duplicate of row 2 in users/users.csv; the user is sent once".to_owned(),
        }]
    );
    run.stop().await;
}

#[tokio::test]
async fn case_14_extra_columns() {
    let file = include_bytes!("data/user-lists/14-extra-columns.csv");
    // The e-mail column comes first; only the userid column may be sent.
    let run = run_case(
        "list-14",
        file,
        &["ana", "bo", "ana@example.org", "bo@example.org"],
    )
    .await;

    assert_eq!(run.status().phase, Some(Phase::Succeeded));
    assert_eq!(run.reset_user_ids(), ["ana", "bo"]);
    assert_eq!(run.raw_paths(), [path("ana"), path("bo")]);
    assert_eq!(run.row_counts(), (0, 0, 0));
    run.stop().await;
}

/// Applies a resource over a list that cannot be read and returns it once
/// it has left the initial phase.
async fn run_unreadable(prefix: &str, file: &[u8], extra_spec: serde_json::Value) -> CaseRun {
    run_list(
        prefix,
        file,
        &["alice"],
        extra_spec,
        &[Phase::Pending, Phase::Running, Phase::Failed],
    )
    .await
}

/// Checks phase, conditions and Event of a list that cannot be read, and
/// returns the condition message.
fn assert_stalled_without_requests(run: &CaseRun) -> String {
    let (resource, events, simulator) = (&run.resource, &run.events, &run.simulator);
    let status = resource.status.as_ref().expect("status");
    assert_eq!(status.phase, Some(Phase::Pending));

    let stalled = condition(resource, "Stalled").expect("Stalled condition");
    assert_eq!(stalled.status, "True");
    assert_eq!(stalled.reason, "InvalidUserList");
    let ready = condition(resource, "Ready").expect("Ready condition");
    assert_eq!(ready.status, "False");

    let warning = events
        .iter()
        .find(|event| event.reason.as_deref() == Some("InvalidUserList"))
        .unwrap_or_else(|| panic!("no InvalidUserList Event in {events:?}"));
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert_eq!(warning.note.as_deref(), Some(stalled.message.as_str()));

    assert!(simulator.ledger().is_empty(), "a password call was sent");
    assert!(simulator.lookups().is_empty(), "a lookup was sent");
    assert!(
        simulator.authentications().is_empty(),
        "an authentication was sent"
    );
    stalled.message.clone()
}

#[tokio::test]
async fn excel_workbook_stalls_before_any_request() {
    // The first bytes of an .xlsx file: a ZIP archive.
    let mut workbook = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00".to_vec();
    workbook.extend_from_slice(b"[Content_Types].xml");
    workbook.extend_from_slice(&[0x9d, 0xff, 0x00, 0x81]);
    let run = run_unreadable("list-xlsx", &workbook, serde_json::json!({})).await;

    let message = assert_stalled_without_requests(&run);
    assert_eq!(
        message,
        "the user list cannot be read: users/users.csv: the user list is a ZIP archive such as an Excel workbook (.xlsx) or an OpenDocument spreadsheet (.ods), not CSV; in Excel use File > Save As > \"CSV UTF-8 (Comma delimited)\" and put that file in the ConfigMap"
    );
    run.stop().await;
}

#[tokio::test]
async fn missing_column_stalls_before_any_request() {
    let file = include_bytes!("data/user-lists/14-extra-columns.csv");
    let run = run_unreadable(
        "list-column",
        file,
        serde_json::json!({
            "userList": {
                "sources": [ { "configMapName": "users", "key": "users.csv" } ],
                "column": "login",
            }
        }),
    )
    .await;

    let message = assert_stalled_without_requests(&run);
    assert_eq!(
        message,
        "the user list cannot be read: users/users.csv: no column \"login\" in the header row (row 1); the header has the columns \"email\", \"userid\", \"displayName\"; set userList.column to the header of the user ID column, or set userList.headerless: true if the file has no header row"
    );
    run.stop().await;
}
