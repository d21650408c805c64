//! The real binary under hostile conditions (issue 3): SIGKILL at random
//! moments of a long backfill, SIGTERM during a pass, a second instance on the
//! same warehouse, and secrets kept out of every line it prints.

use crate::common::*;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

fn cmd(config: &Path) -> Command {
    let mut c = kore_sync(config);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Every session of the source that started before a stream's watermark is
/// in the warehouse: the watermark is never ahead of the data.
fn assert_watermarks_not_ahead(path: &Path, records: &[Value]) {
    let conn = db(path);
    let mut stmt = conn
        .prepare("SELECT bot_id, containment_type, epoch_ms(watermark) FROM sync_state")
        .unwrap();
    let marks: Vec<(String, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(stmt);
    drop(conn);
    let stored: std::collections::HashSet<String> = read_sessions(path)
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    for (bot, ct, wm) in marks {
        for r in records {
            let row = expected_row(r);
            if row.bot_id.as_deref() == Some(bot.as_str())
                && row.containment_type.as_deref() == Some(ct.as_str())
                && row.start_ms < wm
            {
                assert!(
                    stored.contains(&row.session_id),
                    "{bot}/{ct}: {} before the watermark is missing",
                    row.session_id
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_and_doubles_nothing() {
    let h = harness(2, 60, 25, |s| s.latency = Duration::from_millis(15)).await;
    let path = h.dir.path().join("kore-sync.toml");
    std::fs::write(
        &path,
        h.toml("window = \"2d\"", "")
            .replace("[api]\n", "[api]\npage_size = 20\n"),
    )
    .unwrap();
    let records = h.sim_records();
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let mut answered = 0;
    for round in 0..4 {
        let mut child = cmd(&path)
            .args(["backfill", "--from", &h.start.to_rfc3339()])
            .spawn()
            .unwrap();
        // Kill after a random number of further answers: somewhere inside a
        // window, between windows, or during a commit.
        answered += rng.random_range(5..40);
        h.sim.wait_for_requests(answered).await;
        signal(&child, "-KILL");
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "round {round}: killed");
        assert_watermarks_not_ahead(&h.warehouse, &records);
        let rows = read_sessions(&h.warehouse);
        let distinct: std::collections::HashSet<_> = rows.iter().map(|r| &r.session_id).collect();
        assert_eq!(distinct.len(), rows.len(), "no duplicates");
        answered = h.sim.requests().len();
    }
    // One clean pass completes the history.
    run_ok(&path, &["sync"]).await;
    assert_warehouse_equals(&h.warehouse, &records);
    let conn = db(&h.warehouse);
    let abandoned = count(
        &conn,
        "SELECT count(*) FROM sync_runs WHERE outcome = 'abandoned'",
    );
    assert!(
        abandoned >= 4,
        "killed runs are recorded as abandoned: {abandoned}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_pass_records_it_interrupted_and_exits_0_within_10_seconds() {
    let h = harness(1, 40, 25, |s| s.latency = Duration::from_millis(50)).await;
    let path = h.dir.path().join("kore-sync.toml");
    std::fs::write(&path, h.toml("window = \"1d\"", "")).unwrap();
    let mut child = cmd(&path).arg("run").spawn().unwrap();
    h.sim.wait_for_requests(5).await;
    let sent = std::time::Instant::now();
    signal(&child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 seconds")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(sent.elapsed() < Duration::from_secs(10));
    let conn = db(&h.warehouse);
    let interrupted = count(
        &conn,
        "SELECT count(*) FROM sync_runs WHERE outcome = 'interrupted'",
    );
    assert!(interrupted >= 1);
    drop(conn);
    assert_watermarks_not_ahead(&h.warehouse, &h.sim_records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_exits_at_once_naming_the_lock_and_the_first_is_unaffected() {
    let h = harness(1, 20, 25, |s| s.latency = Duration::from_millis(30)).await;
    let path = h.dir.path().join("kore-sync.toml");
    std::fs::write(&path, h.toml("window = \"1d\"", "")).unwrap();
    let mut first = cmd(&path).arg("sync").spawn().unwrap();
    h.sim.wait_for_requests(2).await;
    let second = cmd(&path).arg("sync").output().await.unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    assert!(
        stderr.contains("PID") || stderr.contains("lock"),
        "names the lock: {stderr}"
    );
    let status = first.wait().await.unwrap();
    assert!(status.success());
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_never_appear_in_output() {
    let h = harness(2, 2, 10, |_| {}).await;
    let path = h.dir.path().join("kore-sync.toml");
    // Bot 2's secret is wrong: its error path is exercised too.
    std::fs::write(
        &path,
        h.toml("", "")
            .replace("\"secret-2\"", "\"wrong-but-secret-2\""),
    )
    .unwrap();
    for args in [
        vec!["-vv", "sync"],
        vec!["--log-format", "json", "-vv", "sync"],
        vec!["status", "--json"],
        vec!["status"],
    ] {
        let out = cmd(&path).args(&args).output().await.unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for secret in ["secret-1", "wrong-but-secret-2", "eyJ"] {
            assert!(!all.contains(secret), "{args:?} printed {secret:?}:\n{all}");
        }
    }
}
