//! Exact over time (issue 12): sessions the API lists late are caught by the
//! next pass's check behind the watermark; sessions erased anywhere in
//! history are found by `verify`; both cost one count request per window
//! when nothing differs, whatever the server does with `dateTo`.

use crate::common::*;
use chrono::Duration;
use kore_sync::config;
use kore_sync::model::API_MAX_SPAN;
use kore_sync::sync::PassOptions;

/// Windows `verify` checks per stream: `[sync.start, watermark)` in spans
/// just under 7 days, counted here by arithmetic, apart from the planner.
fn verify_windows(h: &Harness, bot: &str, ct: &str) -> usize {
    let wm = watermark_ms(&h.warehouse, bot, ct).expect("a watermark");
    let span = wm - h.start.timestamp_millis();
    let step = (API_MAX_SPAN - Duration::milliseconds(1)).num_milliseconds();
    ((span + step - 1) / step) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_sessions_listed_hours_late_land_with_the_next_pass_by_default() {
    let h = harness(2, 10, 20, |_| {}).await;
    let config = config::from_toml(&h.toml("", "")).unwrap();
    assert!(pass(&config, PassOptions::manual()).await.all_succeeded());
    // Before each of two passes, 25 more sessions per bot that started 2–48
    // hours ago: behind the watermark and outside the 1 h lookback.
    let mut late = Vec::new();
    for round in 0..2u64 {
        for (i, b) in h.bots.iter().enumerate() {
            let seed = 100 * round + i as u64;
            late.extend(h.sim.arrive_late(
                &b.id,
                25,
                (Duration::hours(2), Duration::hours(48)),
                seed,
            ));
        }
        let report = pass(&config, PassOptions::manual()).await;
        assert!(report.all_succeeded(), "{report:#?}");
    }
    assert_eq!(late.len(), 100);
    let stored: std::collections::HashSet<String> = read_sessions(&h.warehouse)
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    let missing: Vec<&String> = late.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "late sessions missing: {missing:?}");
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    // The repairs are on record.
    let conn = db(&h.warehouse);
    let written: i64 = conn
        .query_row("SELECT sum(sessions_upserted) FROM sync_runs", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(written >= h.sim_records().len() as i64, "{written}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_an_idle_pass_makes_at_most_two_requests_per_stream() {
    let h = harness(2, 10, 20, |_| {}).await;
    let config = config::from_toml(&h.toml("", "")).unwrap();
    assert!(pass(&config, PassOptions::manual()).await.all_succeeded());
    h.sim.clear_requests();
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    for s in &report.streams {
        assert!(s.requests <= 2, "{s:#?}");
        assert_eq!(s.sessions_written, 0, "{s:#?}");
    }
    assert!(h.sim.requests().len() <= 2 * report.streams.len());
}

/// Runs `verify` on an equal warehouse: exactly one request per window per
/// stream, nothing written; for a server treating `dateTo` either way.
async fn verify_on_an_equal_warehouse(inclusive: bool) {
    let h = harness(1, 20, 30, |s| s.date_to_inclusive = inclusive).await;
    let path = h.write_config(&h.toml("", ""));
    run_ok(&path, &["sync"]).await;
    let before = read_sessions(&h.warehouse);
    h.sim.clear_requests();
    let out = run_ok(&path, &["verify"]).await;
    let windows: usize = ["selfService", "dropOff", "agent"]
        .iter()
        .map(|ct| verify_windows(&h, &h.bots[0].id, ct))
        .sum();
    assert_eq!(h.sim.requests().len(), windows, "{out}");
    assert!(h.sim.requests().iter().all(|r| r.limit == Some(1)));
    assert_eq!(read_sessions(&h.warehouse), before, "nothing written");
    let conn = db(&h.warehouse);
    let (runs, written): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(sessions_upserted) FROM sync_runs WHERE trigger = 'verify'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((runs, written), (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_verify_on_an_equal_warehouse_costs_one_request_per_window_date_to_inclusive() {
    verify_on_an_equal_warehouse(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_verify_on_an_equal_warehouse_costs_one_request_per_window_date_to_exclusive() {
    verify_on_an_equal_warehouse(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_verify_finds_sessions_erased_anywhere_in_60_days_and_a_dry_run_changes_nothing() {
    let h = harness(1, 60, 10, |_| {}).await;
    let path = h.write_config(&h.toml("", ""));
    run_ok(&path, &["sync"]).await;
    let erased = h.sim.erase_anywhere(8, 5);
    assert_eq!(erased.len(), 8);

    // A dry run reports the drift, exits 1 and changes nothing.
    let before = read_sessions(&h.warehouse);
    let out = kore_sync(&path)
        .args(["verify", "--dry-run"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("differs"), "{stdout}");
    assert_eq!(read_sessions(&h.warehouse), before);

    // verify repairs: the erased are gone.
    let out = run_ok(&path, &["verify"]).await;
    assert!(out.contains("repaired"), "{out}");
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    let conn = db(&h.warehouse);
    let deleted = count(
        &conn,
        "SELECT sum(sessions_deleted) FROM sync_runs WHERE trigger = 'verify'",
    );
    assert_eq!(deleted, 8);
    drop(conn);
    // And now it is equal: a dry run agrees.
    run_ok(&path, &["verify", "--dry-run"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_verify_adds_sessions_listed_weeks_late() {
    let h = harness(1, 60, 10, |_| {}).await;
    let path = h.write_config(&h.toml("", ""));
    run_ok(&path, &["sync"]).await;
    let late = h.sim.arrive_late(
        &h.bots[0].id,
        6,
        (Duration::days(10), Duration::days(50)),
        9,
    );
    run_ok(&path, &["verify"]).await;
    let stored: Vec<String> = read_sessions(&h.warehouse)
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    assert!(late.iter().all(|id| stored.contains(id)), "{late:?}");
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_with_deletes_keep_erased_sessions_are_marked_not_removed() {
    let h = harness(1, 30, 10, |_| {}).await;
    let path = h.write_config(&h.toml("deletes = \"keep\"", ""));
    run_ok(&path, &["sync"]).await;
    let n_before = read_sessions(&h.warehouse).len();
    let erased = h.sim.erase_anywhere(4, 7);
    let out = run_ok(&path, &["verify", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["equal"], serde_json::json!(true), "{out}");
    assert_eq!(read_sessions(&h.warehouse).len(), n_before, "rows stay");
    let conn = db(&h.warehouse);
    let marked: Vec<String> = conn
        .prepare("SELECT session_id FROM sessions WHERE deleted_at IS NOT NULL ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut want = erased.clone();
    want.sort();
    assert_eq!(marked, want);
    // The analyst views leave them out.
    let in_views: i64 = conn
        .query_row("SELECT sum(n_sessions) FROM daily_sessions", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(in_views as usize, n_before - 4);
    for view in ["tags_long", "tags_wide", "sessions_enriched"] {
        let n: i64 = conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM {view} WHERE session_id IN
                     (SELECT session_id FROM sessions WHERE deleted_at IS NOT NULL)"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "{view} leaves marked sessions out");
    }
    drop(conn);
    let status = run_ok(&path, &["status", "--json"]).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["n_gone"], serde_json::json!(4));
    let conn = db(&h.warehouse);
    let counted = count(
        &conn,
        "SELECT sum(sessions_marked_deleted) FROM sync_runs WHERE trigger = 'verify'",
    );
    assert_eq!(counted, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_verify_survives_faults_and_a_repeat_finishes_the_job() {
    let h = harness(1, 40, 10, |_| {}).await;
    let path = h.write_config(&h.toml("", ""));
    run_ok(&path, &["sync"]).await;
    // Erasures only: an erasure and an arrival in one window cancel out.
    h.sim.erase_anywhere(6, 3);
    let upstream: std::collections::HashSet<String> = h
        .sim_records()
        .iter()
        .map(|r| r["sessionId"].as_str().unwrap().to_owned())
        .collect();
    h.sim.configure(|s| {
        s.fault_rate = 0.2;
        s.seed = 77;
    });
    // 429s, 5xx, HTML pages, dropped and cut answers are retried; the run
    // may finish or stop, but nothing that exists upstream is lost.
    let _ = kore_sync(&path).arg("verify").output().await.unwrap();
    let faulty = h.sim.requests().iter().filter(|r| r.status != 200).count();
    assert!(faulty > 0, "the simulator injected faults");
    let after: std::collections::HashSet<String> = read_sessions(&h.warehouse)
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    assert!(upstream.is_subset(&after));
    h.sim.configure(|s| s.fault_rate = 0.0);
    run_ok(&path, &["verify"]).await;
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_verify_killed_midway_loses_nothing_and_a_repeat_finishes_the_job() {
    let h = harness(1, 60, 10, |s| {
        s.latency = std::time::Duration::from_millis(20);
    })
    .await;
    let path = h.write_config(&h.toml("", ""));
    run_ok(&path, &["sync"]).await;
    let stored_before: std::collections::HashSet<String> = read_sessions(&h.warehouse)
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    // Erasures only: an erasure and an arrival in one window cancel out in
    // a count (README, "What the counts cannot see").
    h.sim.erase_anywhere(12, 11);
    let upstream: std::collections::HashSet<String> = h
        .sim_records()
        .iter()
        .map(|r| r["sessionId"].as_str().unwrap().to_owned())
        .collect();
    // The simulator counts every answer since it started.
    let answered = h.sim.requests().len();
    let mut child = kore_sync(&path)
        .arg("verify")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    h.sim.wait_for_requests(answered + 12).await;
    signal(&child, "-KILL");
    assert!(!child.wait().await.unwrap().success());
    // Nothing that still exists upstream was lost, nothing doubled.
    let rows = read_sessions(&h.warehouse);
    let after: std::collections::HashSet<String> =
        rows.iter().map(|r| r.session_id.clone()).collect();
    assert_eq!(after.len(), rows.len(), "no duplicates");
    let lost: Vec<&String> = stored_before
        .intersection(&upstream)
        .filter(|id| !after.contains(*id))
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    // The killed run is on record as abandoned; a repeat finishes the job.
    run_ok(&path, &["verify"]).await;
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    let conn = db(&h.warehouse);
    let abandoned = count(
        &conn,
        "SELECT count(*) FROM sync_runs WHERE trigger = 'verify' AND outcome = 'abandoned'",
    );
    assert_eq!(abandoned, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_the_daemon_runs_verify_on_its_schedule_between_passes() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let h = harness(1, 20, 10, |_| {}).await;
    let path =
        h.write_config(&h.toml("interval = \"1h\"\nverify_schedule = \"*/2 * * * * *\"", ""));
    let mut child = kore_sync(&path)
        .arg("run")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    h.sim.erase_anywhere(3, 21);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // The first pass runs at start; a verify follows on the cron tick.
    while let Some(line) = lines.next_line().await.unwrap() {
        let done = line.contains("verify finished");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("pass succeeded")),
        "{seen:#?}"
    );
    signal(&child, "-TERM");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    assert!(child.wait().await.unwrap().success());
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    let conn = db(&h.warehouse);
    let verified = count(
        &conn,
        "SELECT count(*) FROM sync_runs WHERE trigger = 'verify'",
    );
    assert!(verified >= 3, "{verified}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_late_sessions_land_with_date_to_exclusive_too() {
    let h = harness(1, 10, 20, |s| s.date_to_inclusive = false).await;
    let config = config::from_toml(&h.toml("", "")).unwrap();
    assert!(pass(&config, PassOptions::manual()).await.all_succeeded());
    let late = h.sim.arrive_late(
        &h.bots[0].id,
        25,
        (Duration::hours(2), Duration::hours(48)),
        31,
    );
    assert!(pass(&config, PassOptions::manual()).await.all_succeeded());
    let stored: Vec<String> = read_sessions(&h.warehouse)
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    assert!(late.iter().all(|id| stored.contains(id)));
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}
