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
    let n: i64 = conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
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
    let durations: i64 = conn
        .query_row(
            "SELECT count(*) FROM sessions_enriched WHERE duration_s >= 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(durations > 0);
    // tags_wide has a column per common tag name, with the first value.
    let plan_col: i64 = conn
        .query_row(
            "SELECT count(*) FROM tags_wide w JOIN tags_long l USING (session_id)
             WHERE l.name = 'plan' AND w.plan = l.value",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let plans: i64 = conn
        .query_row(
            "SELECT count(*) FROM session_tags WHERE name = 'plan'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(plans > 0);
    assert_eq!(plan_col, plans);
}
