//! Issue 15: `[privacy]` — end-user ids pseudonymised and tags dropped
//! before anything is stored, so no original value is in the warehouse
//! file, the read copy or the Parquet export (searched byte by byte, with a
//! control run proving the search finds them when they are there), while
//! sessions, tags and messages still join; and a changed setting is never
//! mixed with old rows.

use crate::common::*;
use kore_sync::privacy::{PrivacyRules, PseudonymKey};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const KEY: &str = "6b6f72652d73796e632d746573742d6b65792d6e6f742d7573656420656c7365";

/// Writes the key to a file only its owner may read; returns its path.
pub(crate) fn key_file(h: &Harness) -> PathBuf {
    let f = h.dir.path().join("privacy_key");
    std::fs::write(&f, format!("{KEY}\n")).unwrap();
    kore_sync::store::set_mode(&f, 0o600).unwrap();
    f
}

pub(crate) fn privacy_section(h: &Harness, store_text: bool) -> String {
    format!(
        "[messages]\nenabled = true\nstore_text = {store_text}\n\
         [privacy]\npseudonymize = [\"user_id\"]\ndrop_tags = [\"callerNumber\"]\nkey_file = {:?}\n",
        key_file(h).display().to_string()
    )
}

fn rules() -> PrivacyRules {
    PrivacyRules::new(
        &["user_id".into()],
        &["callerNumber".into()],
        true,
        Some(PseudonymKey::new(KEY)),
    )
    .unwrap()
}

/// The simulator's user ids and caller numbers: what must not be stored.
pub(crate) fn personal_values(h: &Harness) -> Vec<String> {
    let mut values = BTreeSet::new();
    for r in h.sim_records() {
        values.insert(r["userId"].as_str().unwrap().to_owned());
        for tag in r["tags"]["sessionTags"].as_array().unwrap() {
            if tag["name"] == "callerNumber" {
                values.insert(tag["value"].as_str().unwrap().to_owned());
            }
        }
    }
    assert!(
        values.iter().any(|v| v.starts_with("+1 555")),
        "the simulator's voice sessions carry caller numbers"
    );
    values.into_iter().collect()
}

/// The values of `needles` found in `bytes`, in their order (one pass over
/// `bytes`, however many needles).
pub(crate) fn found_in<'a>(bytes: &[u8], needles: &'a [String]) -> Vec<&'a str> {
    kore_sync::bench::scan::found(bytes, needles)
        .into_iter()
        .map(|i| needles[i].as_str())
        .collect()
}

/// The warehouse, the read copy and every Parquet file of a run.
fn written_files(warehouse: &Path, read_copy: &Path, parquet: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = vec![
        (warehouse.to_owned(), std::fs::read(warehouse).unwrap()),
        (read_copy.to_owned(), std::fs::read(read_copy).unwrap()),
    ];
    files.extend(files_under(parquet));
    assert!(files.len() > 4, "Parquet files were written");
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_no_user_id_or_caller_number_is_stored_anywhere_and_joins_hold() {
    let h = harness(2, 6, 40, |_| {}).await;
    let dir = h.dir.path();
    let with_parquet = |toml: String, name: &str| {
        toml.replace("[sync]", &format!("parquet_dir = {name:?}\n[sync]"))
    };
    let config = h.write_config(&with_parquet(
        h.toml("", &privacy_section(&h, true)),
        "parquet",
    ));
    run_ok(&config, &["sync"]).await;
    let needles = personal_values(&h);
    let status = run_ok(&config, &["status"]).await;
    assert!(
        status.contains(
            r#"rows written with pseudonymize = ["user_id"], drop_tags = ["callernumber"]"#
        ),
        "{status}"
    );
    let json: Value = serde_json::from_str(&run_ok(&config, &["status", "--json"]).await).unwrap();
    assert_eq!(
        json["privacy"]["pseudonymize"],
        serde_json::json!(["user_id"])
    );

    for (path, bytes) in written_files(
        &h.warehouse,
        &dir.join("kore-read.duckdb"),
        &dir.join("parquet"),
    ) {
        let found = found_in(&bytes, &needles);
        assert!(found.is_empty(), "{} holds {found:?}", path.display());
    }

    // Control: the same search finds the values in a run without [privacy],
    // in every kind of file, so its silence above means something.
    let control = h
        .toml("", "[messages]\nenabled = true\n")
        .replace("kore.duckdb", "control.duckdb")
        .replace(
            "[sync]",
            "publish = \"control-read.duckdb\"\nparquet_dir = \"control-parquet\"\n[sync]",
        );
    run_ok(&h.write_config(&control), &["sync"]).await;
    let control_files = written_files(
        &dir.join("control.duckdb"),
        &dir.join("control-read.duckdb"),
        &dir.join("control-parquet"),
    );
    for kind in [
        "control.duckdb",
        "control-read.duckdb",
        "sessions",
        "session_tags",
    ] {
        let hit = control_files
            .iter()
            .filter(|(p, _)| p.to_string_lossy().contains(kind))
            .any(|(_, bytes)| !found_in(bytes, &needles).is_empty());
        assert!(
            hit,
            "the search finds the plain values in the control's {kind} files"
        );
    }

    // Joins hold: every id is the keyed pseudonym of the simulator's id, the
    // same in sessions, their channelUId tags and their users' messages.
    let conn = db(&h.warehouse);
    let want: BTreeMap<String, String> = h
        .sim_records()
        .iter()
        .map(|r| {
            let id = r["sessionId"].as_str().unwrap().to_owned();
            (id, rules().pseudonym(r["userId"].as_str().unwrap()))
        })
        .collect();
    let stored: BTreeMap<String, String> = {
        let mut stmt = conn
            .prepare("SELECT session_id, user_id FROM sessions")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(stored, want);
    let distinct_users: BTreeSet<&String> = want.values().collect();
    assert_eq!(
        count(&conn, "SELECT count(DISTINCT user_id) FROM sessions") as usize,
        distinct_users.len()
    );
    let joined = |what: &str, sql: &str| {
        assert!(
            count(&conn, &format!("SELECT count(*) FROM ({sql})")) > 0,
            "{what}: none"
        );
        let differ = format!("SELECT count(*) FROM ({sql}) WHERE a IS DISTINCT FROM b");
        assert_eq!(
            count(&conn, &differ),
            0,
            "{what} differ from the session's user"
        );
    };
    joined(
        "channelUId tags",
        "SELECT t.value AS a, s.user_id AS b FROM session_tags t JOIN sessions s USING (session_id)
         WHERE t.name = 'channelUId'",
    );
    joined(
        "messages' createdBy",
        "SELECT m.raw->>'$.createdBy' AS a, s.user_id AS b FROM messages m JOIN sessions s USING (session_id)
         WHERE m.direction = 'incoming'",
    );
    joined(
        "messages' channelUId",
        "SELECT m.raw->>'$.channels[0].channelUId' AS a, s.user_id AS b
         FROM messages m JOIN sessions s USING (session_id)",
    );
    // Dropped tags keep their rows (counts by name still work), valueless.
    let callers = h
        .sim_records()
        .iter()
        .flat_map(|r| r["tags"]["sessionTags"].as_array().unwrap().clone())
        .filter(|t| t["name"] == "callerNumber")
        .count() as i64;
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM session_tags WHERE name = 'callerNumber'"
        ),
        callers
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM session_tags WHERE name = 'callerNumber'
             AND (value IS NOT NULL OR CAST(value_json AS VARCHAR) <> 'null')"
        ),
        0
    );
    // The read copy and the Parquet export carry the same pseudonyms.
    let read = duckdb::Connection::open(dir.join("kore-read.duckdb")).unwrap();
    assert_eq!(
        count(
            &read,
            "SELECT count(*) FROM sessions WHERE user_id LIKE 'pz-%'"
        ),
        want.len() as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_a_changed_privacy_setting_is_applied_by_rewrite_privacy_never_mixed() {
    let h = harness(1, 4, 30, |_| {}).await;
    let dir = h.dir.path();
    // (Each config is written to the same file, kore-sync.toml.)
    run_ok(
        &h.write_config(&h.toml("", "[messages]\nenabled = true\n")),
        &["sync"],
    )
    .await;
    let before = read_sessions(&h.warehouse);

    // Stricter settings: no pass runs until the stored rows follow them.
    let strict = h.write_config(&h.toml("", &privacy_section(&h, false)));
    let out = kore_sync(&strict).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("kore-sync rewrite-privacy"), "{stderr}");
    assert_eq!(read_sessions(&h.warehouse), before, "nothing changed");
    let out = kore_sync(&strict).arg("check").output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("privacy settings"))
        .unwrap_or_default();
    assert!(line.contains("kore-sync rewrite-privacy"), "{stdout}");

    let mut needles = personal_values(&h);
    needles.extend(["ünïcødé", "line one", "cdn.example.com"].map(String::from));
    let held = found_in(&std::fs::read(&h.warehouse).unwrap(), &needles).len();
    assert!(
        held > 0,
        "before the rewrite the search finds the plain values"
    );

    let said = run_ok(&strict, &["rewrite-privacy"]).await;
    assert!(said.contains("rewrote the warehouse"), "{said}");
    for file in [h.warehouse.clone(), dir.join("kore-read.duckdb")] {
        let found = found_in(&std::fs::read(&file).unwrap(), &needles);
        assert!(found.is_empty(), "{} holds {found:?}", file.display());
    }
    // The rows are those a pass under the new settings writes: a pass now
    // runs, and finds nothing to change.
    let again = run_ok(&strict, &["rewrite-privacy"]).await;
    assert!(again.contains("nothing to rewrite"), "{again}");
    run_ok(&strict, &["sync"]).await;
    let conn = db(&h.warehouse);
    let rules = rules();
    for rec in h.sim_records() {
        let id = rec["sessionId"].as_str().unwrap();
        let user: String = conn
            .query_row(
                "SELECT user_id FROM sessions WHERE session_id = ?",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            user,
            rules.pseudonym(rec["userId"].as_str().unwrap()),
            "{id}"
        );
    }
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE text IS NOT NULL"
        ),
        0
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages") as usize,
        h.sim.messages().len()
    );
    drop(conn);

    // Looser settings cannot be applied to stored rows: both refuse.
    let plain = h.write_config(&h.toml("", "[messages]\nenabled = true\n"));
    for args in [&["sync"][..], &["rewrite-privacy"][..]] {
        let out = kore_sync(&plain).args(args).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("fresh warehouse"), "{args:?}: {stderr}");
    }
    let raw: Value = serde_json::from_str(
        &db(&h.warehouse)
            .query_row(
                "SELECT CAST(raw AS VARCHAR) FROM sessions LIMIT 1",
                [],
                |r| r.get::<_, String>(0),
            )
            .unwrap(),
    )
    .unwrap();
    assert!(raw["userId"].as_str().unwrap().starts_with("pz-"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_a_rewrite_stopped_before_the_new_file_is_finished_by_running_it_again() {
    let h = harness(1, 2, 20, |_| {}).await;
    let config = h.write_config(&h.toml("", &privacy_section(&h, true)));
    run_ok(&config, &["sync"]).await;
    // As a rewrite killed after committing its rows leaves it: the rows are
    // rewritten, the file not yet written anew.
    db(&h.warehouse)
        .execute_batch("UPDATE privacy_settings SET file_pending = true")
        .unwrap();
    let out = kore_sync(&config).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stopped before it finished") && stderr.contains("rewrite-privacy"),
        "{stderr}"
    );
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&h.warehouse);
    let said = run_ok(&config, &["rewrite-privacy"]).await;
    assert!(said.contains("finished an interrupted rewrite"), "{said}");
    assert_ne!(inode(&h.warehouse), before, "the file was written anew");
    let pending: bool = db(&h.warehouse)
        .query_row("SELECT file_pending FROM privacy_settings", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!pending);
    run_ok(&config, &["sync"]).await;
}
