//! The `kore-sync` binary as users meet it (issue 2): the demo without
//! credentials, exit codes, clear configuration errors, `status`, and the
//! daemon's start and clean stop on SIGTERM.

use crate::common::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_needs_no_credentials_and_fills_the_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = ok_stdout(bare().arg("demo").current_dir(dir.path()), &["demo"]).await;
    assert!(
        stdout.contains("st-demo-support") && stdout.contains("st-demo-sales"),
        "{stdout}"
    );
    // Bots are shown by name too (issue 13), and messages with a
    // transcript (issue 14).
    assert!(stdout.contains("Support bot demo-support"), "{stdout}");
    assert!(stdout.contains("messages:rtm"), "{stdout}");
    assert!(
        stdout.contains("  USER: ") && stdout.contains("  BOT: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("duckdb kore-demo.duckdb"),
        "says how to open it: {stdout}"
    );
    // The demo cleans up after itself (issue 20): no spill directory is
    // left in the user's directory.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.contains(&"kore-demo.duckdb".to_owned()) && !left.iter().any(|f| f.ends_with(".tmp")),
        "{left:?}"
    );
    let path = dir.path().join("kore-demo.duckdb");
    let conn = db(&path);
    assert_eq!(
        count(&conn, "SELECT count(DISTINCT bot_id) FROM sessions"),
        2
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sync_state WHERE resource = 'sessions'"
        ),
        6
    );
    let message_streams = count(
        &conn,
        "SELECT count(*) FROM sync_state WHERE resource = 'messages'",
    );
    assert!(
        message_streams >= 2,
        "a messages stream per bot and channel: {message_streams}"
    );
    // Analytics are on in the demo (issue 24): a stream per bot and type.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sync_state WHERE resource = 'analytics'"
        ),
        12
    );
    assert!(count(&conn, "SELECT count(*) FROM analytics_events") > 0);
    assert!(stdout.contains("analytics events"), "{stdout}");
    // The analyst views work on the result.
    let rate: Option<f64> = conn
        .query_row(
            "SELECT avg(containment_rate) FROM daily_containment",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(rate.is_some_and(|r| r > 0.0 && r < 1.0), "{rate:?}");
    // Every example query in sql/examples runs and returns rows.
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples");
    let mut n_examples = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let sql = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let n_rows = conn
            .prepare(&sql)
            .unwrap()
            .query_map([], |_| Ok(()))
            .unwrap()
            .count();
        assert!(n_rows > 0, "no rows from:\n{sql}");
        n_examples += 1;
    }
    assert_eq!(n_examples, 7);
}

#[tokio::test]
async fn a_missing_config_file_exits_2_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare()
        .arg("sync")
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kore-sync.toml") && stderr.contains("kore-sync demo"),
        "{stderr}"
    );
}

#[tokio::test]
async fn config_problems_exit_2_naming_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[api]\nbase_url = \"ftp:/x\"\n[sync]\nwindow = \"7d\"\n[[bots]]\nid = \"st-1\"\n",
    )
    .unwrap();
    let out = kore_sync(&path).arg("sync").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in ["api.base_url", "sync.window", "bots[0]"] {
        assert!(stderr.contains(key), "names {key}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_exits_1_when_a_stream_fails_and_0_when_all_succeed() {
    let h = harness(2, 3, 20, |_| {}).await;
    let good = h.dir.path().join("good.toml");
    std::fs::write(&good, h.toml("", "")).unwrap();
    let bad = h.dir.path().join("bad.toml");
    std::fs::write(&bad, h.toml("", "").replace("\"secret-1\"", "\"nope\"")).unwrap();

    let out = kore_sync(&bad).arg("sync").output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Bot Sessions"), "{stdout}");
    assert!(!stdout.contains("nope") && !String::from_utf8_lossy(&out.stderr).contains("nope"));

    let out = kore_sync(&good).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains(" windows  "),
        "no progress bars when stderr is not a terminal: {stderr}"
    );

    let out = run_ok(&good, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["streams"].as_array().unwrap().len(), 6);
    assert_eq!(
        status["n_sessions"].as_i64().unwrap() as usize,
        h.sim_records().len()
    );
    let outcomes: Vec<&str> = status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["last_outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.iter().all(|o| *o == "succeeded"), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_passes_at_start_and_stops_cleanly_on_sigterm() {
    let h = harness(1, 3, 20, |_| {}).await;
    let path = h.dir.path().join("run.toml");
    std::fs::write(&path, h.toml("interval = \"1h\"", "")).unwrap();
    let mut child = kore_sync(&path)
        .arg("run")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The first pass runs at start; wait for its log line, not for a timer.
    let mut seen = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let done = line.contains("pass succeeded");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("pass succeeded")),
        "{seen:#?}"
    );
    // Between passes the daemon does not hold the warehouse: status can open it.
    run_ok(&path, &["status", "--json"]).await;
    signal(&child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 seconds of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_override_the_file() {
    let h = harness(1, 2, 10, |_| {}).await;
    let path = h.dir.path().join("kore-sync.toml");
    // The file's secret (in [api], used by the bot) is wrong; KORE_SYNC__…
    // carries the right one.
    let toml = h
        .toml("", "")
        .replace(
            "client_id = \"cs-app-1\"\nclient_secret = \"secret-1\"\n",
            "",
        )
        .replace(
            "[api]\n",
            "[api]\nclient_id = \"cs-app-1\"\nclient_secret = \"stale\"\n",
        );
    assert!(!toml.contains("secret-1"));
    std::fs::write(&path, toml).unwrap();
    let out = kore_sync(&path).arg("sync").output().await.unwrap();
    assert_eq!(out.status.code(), Some(1), "the file alone fails");
    ok_stdout(
        kore_sync(&path)
            .arg("sync")
            .env("KORE_SYNC__API__CLIENT_SECRET", "secret-1"),
        &["sync"],
    )
    .await;
    // An unknown key from the environment is refused like one in the file.
    let out = kore_sync(&path)
        .arg("sync")
        .env("KORE_SYNC__SYNC__WINDW", "6d")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("windw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_systemd_log_lines_carry_no_timestamp_of_their_own() {
    let h = harness(1, 2, 10, |_| {}).await;
    let path = h.dir.path().join("kore-sync.toml");
    std::fs::write(&path, h.toml("", "")).unwrap();
    let stamped = |stderr: &str| stderr.lines().filter(|l| l.starts_with("20")).count();
    let out = kore_sync(&path).arg("sync").output().await.unwrap();
    let plain = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stamped(&plain) > 0, "{plain}");
    let out = kore_sync(&path)
        .arg("sync")
        .env("JOURNAL_STREAM", "8:12345")
        .output()
        .await
        .unwrap();
    let journal = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        journal.lines().any(|l| l.contains("stream pass finished")),
        "{journal}"
    );
    assert_eq!(stamped(&journal), 0, "{journal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_piped_into_a_reader_that_quits_early_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("any.duckdb");
    drop(db(&file));
    // Far more than a pipe holds, so the writer meets the closed pipe.
    let script = format!(
        "{BIN} query --db {} 'SELECT * FROM range(200000)' | head -n 1",
        file.display()
    );
    let out = tokio::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}
