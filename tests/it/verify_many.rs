//! `verify` over many bots (found while measuring issue 24's fleet): it
//! checks every bot at once, as a pass syncs them, so its time is its
//! busiest bot's rather than the sum of all; and a shutdown ends it at
//! once, leaving the streams it had not begun unchecked and unrecorded
//! rather than recording each as interrupted.

use crate::common::*;
use std::time::Duration;

/// How long the simulator holds each getSessions answer in these tests.
const LATENCY: Duration = Duration::from_millis(400);

/// Three bots with a month each, synced; then every getSessions answer
/// held for `LATENCY`, and the request log cleared. Also returns how many
/// requests the simulator had answered in all (see `wait_for_requests`).
async fn synced_then_slow() -> (Harness, std::path::PathBuf, usize) {
    let h = harness(3, 30, 5, |_| {}).await;
    let path = h.write_config(&h.toml("", ""));
    run_ok(&path, &["sync"]).await;
    h.sim.configure(|s| s.latency = LATENCY);
    let answered = h.sim.requests().len();
    h.sim.clear_requests();
    (h, path, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_verify_checks_every_bot_at_once() {
    let (h, path, _) = synced_then_slow().await;
    run_ok(&path, &["verify", "--dry-run"]).await;
    let requests: Vec<_> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.resource == "sessions")
        .collect();
    // One bot's requests follow each other: the next is sent only once the
    // last was answered, at least LATENCY later. Two requests of different
    // bots arriving closer together than that were in flight at once.
    let overlapping = requests.iter().any(|a| {
        requests.iter().any(|b| {
            a.scope != b.scope
                && a.received_at
                    .max(b.received_at)
                    .duration_since(a.received_at.min(b.received_at))
                    < LATENCY / 2
        })
    });
    assert!(
        overlapping,
        "every request waited for another bot's: {:#?}",
        requests
            .iter()
            .map(|r| (&r.scope, r.received_at))
            .collect::<Vec<_>>()
    );
    let scopes: std::collections::BTreeSet<&str> =
        requests.iter().map(|r| r.scope.as_str()).collect();
    assert_eq!(scopes.len(), 3, "every bot was checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_verify_stops_at_once_on_sigterm() {
    let (h, path, answered) = synced_then_slow().await;
    let conn = db(&h.warehouse);
    let runs_before = count(&conn, "SELECT count(*) FROM sync_runs");
    drop(conn);
    let child = kore_sync(&path)
        .arg("verify")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Each bot's first stream has five windows of a month to count, at
    // LATENCY each: all three are under way once three requests arrived.
    h.sim.wait_for_requests(answered + 3).await;
    signal(&child, "-TERM");
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "not all checked: {stdout}");
    assert!(
        stdout.contains("verify stopped before checking every stream (shutdown requested)"),
        "{stdout}"
    );
    // The three streams under way are on record as interrupted; none of
    // the other streams of these bots began.
    let conn = db(&h.warehouse);
    let outcomes: Vec<(String, i64)> = conn
        .prepare(
            "SELECT outcome, count(*) FROM sync_runs WHERE trigger = 'verify' \
             GROUP BY outcome ORDER BY outcome",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(outcomes, vec![("interrupted".to_owned(), 3)]);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM sync_runs"),
        runs_before + 3
    );
    drop(conn);
    // A verify that is let finish checks everything and finds it equal.
    h.sim.configure(|s| s.latency = Duration::ZERO);
    run_ok(&path, &["verify"]).await;
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}
