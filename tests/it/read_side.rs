//! Readers beside the writer (issue 4): the published read copy stays
//! readable and consistent for a reader in another process across passes;
//! passes succeed while a reader holds it; the analyst views work.

use crate::common::*;
use chrono::Duration;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

/// Sends one query to a `kore-sync query` process and reads its answer
/// (header, rows, then an empty line).
async fn ask(
    stdin: &mut ChildStdin,
    lines: &mut Lines<BufReader<ChildStdout>>,
    sql: &str,
) -> Vec<String> {
    stdin
        .write_all(format!("{sql}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let mut answer = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.is_empty() {
            break;
        }
        answer.push(line);
    }
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_in_another_process_keeps_a_consistent_view_across_passes() {
    let h = harness(1, 5, 40, |_| {}).await;
    let config = h.write_config(&h.toml("", ""));
    run_ok(&config, &["sync"]).await;
    let copy = h.dir.path().join("kore-read.duckdb");
    assert!(
        copy.exists(),
        "the read copy is published beside the warehouse by default"
    );

    let mut reader = bare()
        .args(["query", "--db"])
        .arg(&copy)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = reader.stdin.take().unwrap();
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    let count = "SELECT count(*) AS n FROM sessions";
    let first = ask(&mut stdin, &mut lines, count).await;
    let n1: usize = first[1].parse().unwrap();
    assert_eq!(n1, h.sim_records().len());

    // New sessions upstream; a pass runs and publishes while the reader holds
    // the old copy open.
    h.add_recent_sessions(5, Duration::minutes(20));
    run_ok(&config, &["sync"]).await;

    let again = ask(&mut stdin, &mut lines, count).await;
    assert_eq!(again, first, "the open reader keeps its consistent view");
    let tables = ask(&mut stdin, &mut lines, "SELECT count(*) FROM sync_state").await;
    assert_eq!(tables[1], "3", "and can still read everything: {tables:?}");

    let copy_text = copy.display().to_string();
    let text = ok_stdout(
        bare().args(["query", "--db", &copy_text, count]),
        &["query"],
    )
    .await;
    let n2: usize = text.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(n2, n1 + 5, "a new connection sees the new sessions");
    drop(stdin);
    assert!(
        reader.wait().await.unwrap().success(),
        "the reader never errored"
    );

    // status says when the copy was published.
    let out = kore_sync(&config).arg("status").output().await.unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains("read copy") && status.contains("kore-read.duckdb"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analyst_views_answer_without_knowing_the_raw_tables() {
    let h = harness(2, 5, 40, |_| {}).await;
    let config = h.write_config(&h.toml("", ""));
    run_ok(&config, &["sync"]).await;
    let conn = db(&h.dir.path().join("kore-read.duckdb"));
    let n = count(&conn, "SELECT count(*) FROM sessions");
    let overview: i64 = conn
        .query_row("SELECT sum(n_sessions) FROM daily_overview", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(overview, n);
    let rate_ok: bool = conn
        .query_row(
            "SELECT bool_and(containment_rate BETWEEN 0 AND 1) AND count(median_messages) > 0 FROM daily_overview",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(rate_ok);
    let durations = count(
        &conn,
        "SELECT count(*) FROM sessions_enriched WHERE duration_s >= 0",
    );
    assert!(durations > 0);
    // tags_wide has a column per common tag name, with the first value.
    let plan_col = count(
        &conn,
        "SELECT count(*) FROM tags_wide w JOIN tags_long l USING (session_id)
             WHERE l.name = 'plan' AND w.plan = l.value",
    );
    let plans = count(
        &conn,
        "SELECT count(*) FROM session_tags WHERE name = 'plan'",
    );
    assert!(plans > 0);
    assert_eq!(plan_col, plans);
}

/// The read copy's inode: a new copy is a new file renamed into place.
fn copy_inode(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("the read copy exists").ino()
}

/// Issue 13: publishing costs what changed. A pass that changed nothing
/// leaves the read copy as it is; a change writes a new one, at most once
/// per `warehouse.publish_interval`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_a_pass_that_changes_nothing_leaves_the_read_copy_alone() {
    let h = harness(1, 2, 10, |_| {}).await;
    let copy = h.dir.path().join("kore-read.duckdb");
    let config = h.write_config(&h.toml("", ""));
    run_ok(&config, &["sync"]).await;
    let first = copy_inode(&copy);
    run_ok(&config, &["sync"]).await;
    assert_eq!(copy_inode(&copy), first, "an idle pass rewrote the copy");

    let victim = h.sim_records()[2]["sessionId"].as_str().unwrap().to_owned();
    h.sim
        .modify(&victim, |r| r["channel"] = serde_json::json!("moved"));
    run_ok(&config, &["backfill", "--from", &h.start.to_rfc3339()]).await;
    let second = copy_inode(&copy);
    assert_ne!(second, first, "a change must reach the copy");
    let channel: String = db(&copy)
        .query_row(
            "SELECT channel FROM sessions WHERE session_id = ?",
            [&victim],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(channel, "moved");

    // With an interval, a change waits until it has passed.
    let toml = h
        .toml("", "")
        .replace("[sync]", "publish_interval = \"1h\"\n[sync]");
    let config = h.write_config(&toml);
    h.sim
        .modify(&victim, |r| r["channel"] = serde_json::json!("moved again"));
    run_ok(&config, &["backfill", "--from", &h.start.to_rfc3339()]).await;
    assert_eq!(copy_inode(&copy), second, "the interval has not passed");
}

/// Issue 13: `status`, `export` and `query` read a warehouse with a config
/// holding only `[warehouse]`, or with `--db` and no config at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_read_only_commands_need_no_api_settings() {
    let h = harness(1, 2, 10, |_| {}).await;
    run_ok(&h.write_config(&h.toml("", "")), &["sync"]).await;
    let n = count(&db(&h.warehouse), "SELECT count(*) FROM sessions");
    let only = h.dir.path().join("only-warehouse.toml");
    std::fs::write(
        &only,
        format!(
            "[warehouse]\npath = {:?}\n",
            h.warehouse.display().to_string()
        ),
    )
    .unwrap();
    let status = run_ok(&only, &["status"]).await;
    assert!(status.contains(&format!("{n} sessions")), "{status}");
    let exported = h.dir.path().join("exported");
    let text = exported.display().to_string();
    run_ok(&only, &["export", "--parquet", &text]).await;
    assert!(exported.join("_kore_sync/manifest.json").exists());
    assert!(exported.join("sessions").is_dir());

    let empty = tempfile::tempdir().unwrap();
    let wh = h.warehouse.display().to_string();
    let args = ["status", "--json", "--db", &wh];
    let json = ok_stdout(bare().current_dir(empty.path()).args(args), &args).await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["n_sessions"], n);
    let args = ["query", "--db", &wh, "SELECT count(*) AS n FROM sessions"];
    let answer = ok_stdout(bare().current_dir(empty.path()).args(args), &args).await;
    assert!(answer.contains(&n.to_string()), "{answer}");
}

/// Issue 13: `publish_as = "views"` publishes a catalog over the Parquet
/// export, which reads as the warehouse; a pass that changes one day
/// rewrites that day's files and the small catalog, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_the_views_read_copy_reads_as_the_warehouse_and_costs_what_changed() {
    let h = harness(1, 4, 10, |_| {}).await;
    let toml = h.toml("", "").replace(
        "[sync]",
        "publish_as = \"views\"\nparquet_dir = \"parquet\"\n[sync]",
    );
    let config = h.write_config(&toml);
    run_ok(&config, &["sync"]).await;
    let catalog = h.dir.path().join("kore-read.duckdb");
    assert!(
        std::fs::metadata(&catalog).unwrap().len() < 4 * 1024 * 1024,
        "a catalog, not a copy"
    );
    assert_reads_as_warehouse(&catalog, &h.warehouse);

    let parquet = h.dir.path().join("parquet/sessions");
    let inodes = || -> std::collections::BTreeMap<String, u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir(&parquet)
            .unwrap()
            .flatten()
            .map(|d| {
                let file = d.path().join("data.parquet");
                (
                    d.file_name().to_string_lossy().into_owned(),
                    std::fs::metadata(file).unwrap().ino(),
                )
            })
            .collect()
    };
    let before = inodes();
    let victim = h.sim_records()[4].clone();
    let id = victim["sessionId"].as_str().unwrap().to_owned();
    h.sim
        .modify(&id, |r| r["channel"] = serde_json::json!("moved"));
    run_ok(&config, &["backfill", "--from", &h.start.to_rfc3339()]).await;
    let day: String = db(&h.warehouse)
        .query_row(
            "SELECT 'date=' || CAST(CAST(make_timestamp(epoch_us(start_time)) AS DATE) AS VARCHAR) FROM sessions WHERE session_id = ?",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    let after = inodes();
    for (partition, inode) in &after {
        let rewritten = before.get(partition) != Some(inode);
        assert_eq!(
            rewritten,
            *partition == day,
            "{partition}: {before:?} -> {after:?}"
        );
    }
    assert_reads_as_warehouse(&catalog, &h.warehouse);
    let channel: String = db(&catalog)
        .query_row(
            "SELECT channel FROM sessions WHERE session_id = ?",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(channel, "moved");
}

/// Every table and view the read file shares with the warehouse has the
/// same rows (JSON compared as text).
fn assert_reads_as_warehouse(read: &std::path::Path, warehouse: &std::path::Path) {
    let conn = db(warehouse);
    conn.execute_batch(&format!("ATTACH '{}' AS r (READ_ONLY)", read.display()))
        .unwrap();
    for name in [
        "sessions",
        "session_tags",
        "sync_state",
        "bots",
        "daily_sessions",
        "daily_containment",
        "sessions_enriched",
        "tags_long",
        "daily_overview",
        "tags_wide",
    ] {
        let diff = |a: &str, b: &str| -> i64 {
            conn.query_row(
                &format!(
                    "SELECT count(*) FROM (SELECT COLUMNS(*)::VARCHAR FROM {a}.main.{name} EXCEPT ALL SELECT COLUMNS(*)::VARCHAR FROM {b}.main.{name})"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let db_name: String = conn
            .query_row("SELECT current_database()", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            diff(&db_name, "r"),
            0,
            "{name}: warehouse rows missing in the read file"
        );
        assert_eq!(
            diff("r", &db_name),
            0,
            "{name}: read file rows not in the warehouse"
        );
    }
}
