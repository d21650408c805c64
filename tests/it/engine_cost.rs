//! Engine cost (issue 23): the bookkeeping a pass now writes per group of
//! streams or per pass, rather than per stream, keeps the rules it served.

use crate::common::*;
use kore_sync::config;
use kore_sync::model::RunOutcome;
use kore_sync::sync::PassOptions;

/// A pass logs every bot's requests in one write once its bots are done;
/// each bot's hourly budget must still hold for the next process, bot by
/// bot, neither lost nor lent to another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_23_each_bot_s_budget_holds_across_processes_when_a_pass_logs_them_together() {
    let h = harness(2, 20, 10, |_| {}).await;
    let toml = h
        .toml("containment_types = [\"agent\"]\nreconcile = \"0\"", "")
        .replace("requests_per_hour = 0", "requests_per_hour = 5");
    let config = config::from_toml(&toml).unwrap();
    let requests = |r: &kore_sync::sync::PassReport| -> Vec<(String, u32, RunOutcome)> {
        let mut v: Vec<_> = r
            .streams
            .iter()
            .map(|s| (s.key.bot_id.clone(), s.requests, s.outcome))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (a, b) = (h.bots[0].id.clone(), h.bots[1].id.clone());
    // Each `pass` builds fresh API clients, as a new process would.
    let first = pass(&config, PassOptions::manual()).await;
    assert_eq!(
        requests(&first),
        [
            (a.clone(), 4, RunOutcome::Succeeded),
            (b.clone(), 4, RunOutcome::Succeeded)
        ]
    );
    let second = pass(&config, PassOptions::manual()).await;
    assert_eq!(
        requests(&second),
        [
            (a.clone(), 1, RunOutcome::Succeeded),
            (b.clone(), 1, RunOutcome::Succeeded)
        ]
    );
    // Five requests each in the last hour: a third process may send none.
    let third = pass(&config, PassOptions::manual()).await;
    assert_eq!(
        requests(&third),
        [
            (a.clone(), 0, RunOutcome::BudgetSpent),
            (b.clone(), 0, RunOutcome::BudgetSpent)
        ]
    );
    assert_eq!(h.sim.requests().len(), 10);
    // The log holds each bot's five, under its own name.
    let logged: Vec<(String, i64)> = db(&h.warehouse)
        .prepare("SELECT scope, count(*) FROM api_requests GROUP BY scope ORDER BY scope")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(logged, [(a, 5), (b, 5)]);
}

/// Issue 23: consecutive sparse windows completely read are committed in
/// one transaction (their sessions share one `first_synced_at`), with the
/// watermark moved to where the last of them ends; windows of at least
/// `HOLD_RECORDS` records are each committed alone. Either way every
/// session is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_23_sparse_windows_commit_together_and_dense_ones_alone() {
    for (per_day, together) in [(30, true), (1460, false)] {
        let h = harness(1, 13, per_day, |_| {}).await;
        let toml = h.toml(
            "containment_types = [\"selfService\"]\nreconcile = \"0\"",
            "",
        );
        let report = pass(&config::from_toml(&toml).unwrap(), PassOptions::manual()).await;
        let s = &report.streams[0];
        assert!(report.all_succeeded(), "{report:#?}");
        assert_eq!((s.windows_planned, s.windows_done), (3, 3));
        let conn = db(&h.warehouse);
        let commits = count(
            &conn,
            "SELECT count(DISTINCT first_synced_at) FROM sessions",
        );
        if together {
            assert_eq!(commits, 1, "three sparse windows, one transaction");
        } else {
            // The first two windows (six days each) hold more than
            // HOLD_RECORDS and fewer than a chunk: each is its own commit,
            // as is the last.
            let in_window = |k: i64| {
                let from = h.start + chrono::Duration::days(6 * k);
                h.sim_records_of("selfService")
                    .iter()
                    .filter(|r| {
                        let t = expected_row(r).start_ms;
                        t >= from.timestamp_millis()
                            && t < (from + chrono::Duration::days(6)).timestamp_millis()
                    })
                    .count()
            };
            let dense = [in_window(0), in_window(1)];
            let (hold, chunk) = (
                kore_sync::sync::HOLD_RECORDS,
                kore_sync::sync::CHUNK_SESSIONS,
            );
            assert!(dense.iter().all(|n| (hold..chunk).contains(n)), "{dense:?}");
            assert_eq!(commits, 3, "each dense window alone");
        }
        let wm = watermark_ms(&h.warehouse, &h.bots[0].id, "selfService");
        assert_eq!(wm, s.watermark.map(|w| w.timestamp_millis()));
        assert_warehouse_equals(&h.warehouse, &h.sim_records_of("selfService"));
    }
}

/// Calls waiting for the warehouse's one connection wait as tasks: a
/// fleet's hundreds of concurrent calls once held a thread of tokio's
/// blocking pool each (272 threads in a 300-bot pass, each with its stack
/// and allocator arena), blocked until the connection was free.
#[test]
fn issue_23_calls_waiting_for_the_warehouse_hold_no_thread_each() {
    const NAME: &str = "ks-wait-test";
    const CALLS: usize = 64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(NAME)
        // Idle blocking threads stay, so counting them afterwards counts
        // every one the calls needed.
        .thread_keep_alive(std::time::Duration::from_secs(600))
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = config::warehouse_at(&dir.path().join("w.duckdb"));
    runtime.block_on(async {
        let store = kore_sync::store::SessionStore::open_async(&settings)
            .await
            .unwrap();
        let key = kore_sync::model::StreamKey::sessions(
            "st-1",
            kore_sync::model::ContainmentType::Agent,
            "",
        );
        let calls = (0..CALLS).map(|_| store.watermark_with_filter(&key));
        let answers = futures_util::future::join_all(calls).await;
        assert!(answers.iter().all(|a| matches!(a, Ok((None, None)))));
    });
    let threads = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|comm| comm.trim() == NAME)
        .count();
    // One worker and the few blocking threads that took turns with the
    // connection; a thread per waiting call would be CALLS more.
    assert!(threads <= 5, "{threads} threads for {CALLS} calls");
    drop(runtime);
}
