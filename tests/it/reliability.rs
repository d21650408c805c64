//! Reliability (issue 3): faults at random, refused deep paging, records that
//! change while a window is paged, active sessions re-read by id, sessions
//! deleted upstream, the request budget running out, and secrets in logs.

use crate::common::*;
use chrono::{Duration, Utc};
use kore_sync::config;
use kore_sync::model::RunOutcome;
use kore_sync::sim::{Fault, data};
use kore_sync::sync::PassOptions;
use serde_json::{Value, json};

fn session_at(
    h: &Harness,
    id: &str,
    at: chrono::DateTime<Utc>,
    containment: &str,
    active: bool,
) -> Value {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let mut rec = data::make_session(&mut rng, &h.bots[0].id, at, Utc::now(), &["u-x".to_owned()]);
    rec["sessionId"] = json!(id);
    rec["containmentType"] = json!(containment);
    if active {
        rec["sessionStatus"] = json!("active");
        rec.as_object_mut().unwrap().remove("end_time");
    }
    rec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_10_percent_faults_backfill_and_incremental_pass_end_equal_to_the_source() {
    let h = harness(2, 20, 40, |s| {
        s.fault_rate = 0.10;
        s.seed = 2026;
    })
    .await;
    let toml = h
        .toml("", "")
        .replace("max_retries = 10", "max_retries = 12");
    let config = config::from_toml(&toml).unwrap();
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    let retries: u32 = report.streams.iter().map(|s| s.retries).sum();
    assert!(retries > 0, "the fault rate produced faults");
    assert_warehouse_equals(&h.warehouse, &h.sim_records());

    h.add_recent_sessions(4, Duration::minutes(30));
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_deep_skip_splits_the_window_in_halves() {
    let h = harness(1, 10, 80, |s| {
        s.max_skip = Some(60);
        s.max_page_size = 20;
    })
    .await;
    let config = config::from_toml(
        &h.toml("containment_types = [\"selfService\"]", "")
            .replace("[api]\n", "[api]\npage_size = 20\n"),
    )
    .unwrap();
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    let want: Vec<_> = h.sim_records_of("selfService");
    assert!(
        want.len() > 200,
        "enough records to need splitting: {}",
        want.len()
    );
    assert_warehouse_equals(&h.warehouse, &want);
    let refused = h.sim.requests().iter().filter(|r| r.status == 400).count();
    assert!(refused > 0, "the server did refuse deep paging");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_landing_at_the_head_while_paging_is_not_missed() {
    let h = harness(1, 3, 30, |s| s.max_page_size = 10).await;
    let config = config::from_toml(
        &h.toml(
            "containment_types = [\"selfService\"]\nlookback = \"0s\"",
            "",
        )
        .replace("[api]\n", "[api]\npage_size = 10\n"),
    )
    .unwrap();
    // Just before the second page, a session lands near the window's end,
    // i.e. at the head of the newest-first list: every later page shifts.
    let newcomer = session_at(
        &h,
        "newcomer0000000000000001",
        Utc::now() - Duration::seconds(30),
        "selfService",
        false,
    );
    h.sim.inject([
        Fault::Slow(std::time::Duration::ZERO),
        Fault::UpsertFirst(newcomer),
    ]);
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded());
    let want: Vec<_> = h.sim_records_of("selfService");
    assert_warehouse_equals(&h.warehouse, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_vanishing_while_paging_does_not_hide_its_neighbours() {
    let h = harness(1, 3, 30, |s| s.max_page_size = 10).await;
    let config = config::from_toml(
        &h.toml("containment_types = [\"selfService\"]", "")
            .replace("[api]\n", "[api]\npage_size = 10\n"),
    )
    .unwrap();
    // The newest selfService session is deleted upstream right after the
    // first page was read: later pages shift up by one.
    let newest = h
        .sim_records()
        .into_iter()
        .rev()
        .find(|r| r["containmentType"] == json!("selfService"))
        .unwrap();
    let id = newest["sessionId"].as_str().unwrap().to_owned();
    h.sim.inject([
        Fault::Slow(std::time::Duration::ZERO),
        Fault::RemoveFirst(id.clone()),
    ]);
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded());
    let stored: Vec<String> = read_sessions(&h.warehouse)
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    for r in h
        .sim_records()
        .iter()
        .filter(|r| r["containmentType"] == json!("selfService"))
    {
        assert!(
            stored.contains(&r["sessionId"].as_str().unwrap().to_owned()),
            "missing {}",
            r["sessionId"]
        );
    }
    assert!(
        !stored.contains(&id),
        "the second reading, without the deleted session, was kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_sessions_are_reread_by_id_and_deleted_ones_removed() {
    let h = harness(1, 2, 20, |_| {}).await;
    // 60 sessions still active three hours ago (more than one lookup of 50).
    let three_hours_ago = Utc::now() - Duration::hours(3);
    for i in 0..60 {
        let at = three_hours_ago + Duration::seconds(i);
        h.sim.upsert(session_at(
            &h,
            &format!("active{i:018}"),
            at,
            "selfService",
            true,
        ));
    }
    // Reconciling off: this is the by-id re-read of active sessions alone.
    let config = config::from_toml(&h.toml(
        "containment_types = [\"selfService\"]\nreconcile = \"0\"",
        "",
    ))
    .unwrap();
    pass(&config, PassOptions::manual()).await;
    let stored_active = read_sessions(&h.warehouse)
        .into_iter()
        .filter(|r| {
            r.session_id.starts_with("active") && r.session_status.as_deref() == Some("active")
        })
        .count();
    assert_eq!(stored_active, 60);
    // Upstream, they close (one moves to agent); one is erased on request.
    for i in 0..60 {
        h.sim.modify(&format!("active{i:018}"), |r| {
            r["sessionStatus"] = json!("closed");
            r["end_time"] = json!(data::api_time(three_hours_ago + Duration::minutes(5)));
            if i == 0 {
                r["containmentType"] = json!("agent");
            }
        });
    }
    assert!(h.sim.remove(&format!("active{:018}", 59)));
    h.sim.clear_requests();

    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    assert_eq!(report.streams[0].sessions_deleted, 1);
    let lookups: Vec<usize> = h
        .sim
        .requests()
        .iter()
        .filter_map(|r| r.session_ids)
        .collect();
    assert_eq!(lookups, [50, 10], "batches of at most 50 ids");
    let rows = read_sessions(&h.warehouse);
    let first = rows
        .iter()
        .find(|r| r.session_id == format!("active{:018}", 0))
        .unwrap();
    assert_eq!(first.containment_type.as_deref(), Some("agent"));
    assert_eq!(first.session_status.as_deref(), Some("closed"));
    assert!(
        rows.iter()
            .all(|r| r.session_id != format!("active{:018}", 59))
    );
    let conn = db(&h.warehouse);
    let deleted: i64 = conn
        .query_row("SELECT sum(sessions_deleted) FROM sync_runs", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(deleted, 1);
    // Everything the stream is responsible for matches the source.
    let want: Vec<_> = h
        .sim_records()
        .into_iter()
        .filter(|r| {
            r["containmentType"] == json!("selfService")
                || r["sessionId"] == json!(format!("active{:018}", 0))
        })
        .collect();
    assert_warehouse_equals(&h.warehouse, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_hourly_budget_ends_the_stream_cleanly_and_the_next_pass_continues() {
    let h = harness(1, 20, 10, |_| {}).await;
    let toml = h
        .toml("containment_types = [\"agent\"]", "")
        .replace("requests_per_hour = 0", "requests_per_hour = 3");
    let config = config::from_toml(&toml).unwrap();
    let report = pass(&config, PassOptions::manual()).await;
    let s = &report.streams[0];
    assert_eq!(s.outcome, RunOutcome::BudgetSpent, "{s:?}");
    assert!(report.all_succeeded(), "a spent budget is not a failure");
    assert_eq!(s.windows_done, 3);
    assert_eq!(s.requests, 3);
    let conn = db(&h.warehouse);
    let outcome: String = conn
        .query_row(
            "SELECT outcome FROM sync_runs ORDER BY run_id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(outcome, "budget_spent");
    drop(conn);
    // With the budget back (a new process, or an hour later), it completes.
    let config = config::from_toml(&h.toml("containment_types = [\"agent\"]", "")).unwrap();
    let report = pass(&config, PassOptions::manual()).await;
    assert_eq!(report.streams[0].outcome, RunOutcome::Succeeded);
    let want: Vec<_> = h.sim_records_of("agent");
    assert_warehouse_equals(&h.warehouse, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_budget_holds_across_processes_on_one_warehouse() {
    let h = harness(1, 20, 10, |_| {}).await;
    let toml = h
        .toml("containment_types = [\"agent\"]\nreconcile = \"0\"", "")
        .replace("requests_per_hour = 0", "requests_per_hour = 5");
    let config = config::from_toml(&toml).unwrap();
    // Each `pass` builds fresh API clients, as a new process would.
    let first = pass(&config, PassOptions::manual()).await;
    assert_eq!(first.streams[0].requests, 4, "{first:#?}");
    assert_eq!(first.streams[0].outcome, RunOutcome::Succeeded);
    let second = pass(&config, PassOptions::manual()).await;
    assert_eq!(second.streams[0].requests, 1, "{second:#?}");
    assert_eq!(second.streams[0].outcome, RunOutcome::Succeeded);
    // Five requests in the last hour: a third process may send none.
    let third = pass(&config, PassOptions::manual()).await;
    assert_eq!(third.streams[0].requests, 0, "{third:#?}");
    assert_eq!(third.streams[0].outcome, RunOutcome::BudgetSpent);
    assert_eq!(h.sim.requests().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_past_its_deadline_stops_at_the_last_committed_window() {
    let h = harness(1, 30, 10, |s| {
        s.latency = std::time::Duration::from_millis(100)
    })
    .await;
    let config = config::from_toml(&h.toml(
        "containment_types = [\"dropOff\"]\nwindow = \"1d\"\npass_deadline = \"1s\"",
        "",
    ))
    .unwrap();
    let report = pass(&config, PassOptions::manual()).await;
    let s = &report.streams[0];
    assert_eq!(s.outcome, RunOutcome::Interrupted, "{s:?}");
    assert!(
        s.error.as_deref().unwrap().contains("pass deadline"),
        "{s:?}"
    );
    assert!(
        s.windows_done > 0 && s.windows_done < s.windows_planned,
        "{s:?}"
    );
    // What was committed is whole: everything before the watermark is stored.
    let wm = watermark_ms(&h.warehouse, &h.bots[0].id, "dropOff").unwrap();
    let before: Vec<_> = h
        .sim_records_of("dropOff")
        .into_iter()
        .filter(|r| expected_row(r).start_ms < wm)
        .collect();
    assert_eq!(
        read_sessions(&h.warehouse)
            .iter()
            .filter(|r| r.start_ms < wm)
            .count(),
        before.len()
    );
}

/// Takes about 70 seconds: the point is to run past a full rolling minute at
/// the documented limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_default_settings_the_documented_rate_limit_is_never_hit() {
    let h = harness(1, 22, 5, |s| s.rate_limit = Some((60, 1800))).await;
    let toml = h
        .toml("window = \"1d\"", "")
        .replace("requests_per_minute = 0\nrequests_per_hour = 0\n", "");
    let config = config::from_toml(&toml).unwrap();
    assert_eq!(
        (config.api.requests_per_minute, config.api.requests_per_hour),
        (60, 1800)
    );
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    let requests = h.sim.requests();
    assert!(
        requests.len() > 61,
        "more than a minute's worth: {}",
        requests.len()
    );
    assert!(
        requests.iter().all(|r| r.status != 429),
        "the simulator answered 429"
    );
    assert_eq!(
        report.streams.iter().map(|s| s.rate_limited).sum::<u32>(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_the_retry_budget_is_per_request() {
    let h = harness(1, 2, 10, |_| {}).await;
    // Retry-After: 2 seconds, then success.
    h.sim.inject([Fault::RateLimited {
        retry_after: Some(2),
    }]);
    let config = config::from_toml(&h.toml("containment_types = [\"agent\"]", "")).unwrap();
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded());
    let reqs = h.sim.requests();
    let gap = reqs[1].received_at - reqs[0].received_at;
    assert!(
        gap >= std::time::Duration::from_secs(2),
        "retried after {gap:?}, before Retry-After"
    );

    // With max_retries = 3, four 5xx in a row fail the window after 4 requests.
    let _ = std::fs::remove_file(&h.warehouse);
    h.sim.clear_requests();
    h.sim.inject(std::iter::repeat_n(Fault::Status(503), 4));
    let toml = h
        .toml("containment_types = [\"agent\"]", "")
        .replace("max_retries = 10", "max_retries = 3");
    let report = pass(&config::from_toml(&toml).unwrap(), PassOptions::manual()).await;
    let s = &report.streams[0];
    assert_eq!(s.outcome, RunOutcome::Failed, "{s:?}");
    assert_eq!((s.requests, s.retries), (4, 3));
    assert!(s.error.as_deref().unwrap().contains("503"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dense_window_is_stored_in_chunks_and_its_watermark_waits_for_the_whole_window() {
    // One day of a busy bot: well over CHUNK_SESSIONS selfService sessions in one window.
    let h = harness(1, 1, 24_000, |s| s.max_page_size = 500).await;
    let config = config::from_toml(
        &h.toml("containment_types = [\"selfService\"]", "")
            .replace("[api]\n", "[api]\npage_size = 500\n"),
    )
    .unwrap();
    let want = h.sim_records_of("selfService");
    assert!(
        want.len() > kore_sync::sync::CHUNK_SESSIONS + 2_000,
        "{}",
        want.len()
    );
    // The window fails after its first chunk was stored: 21 pages pass, then 400.
    h.sim.inject(
        std::iter::repeat_n(Fault::Slow(std::time::Duration::ZERO), 21).chain([Fault::Status(400)]),
    );
    let report = pass(&config, PassOptions::manual()).await;
    assert_eq!(report.streams[0].outcome, RunOutcome::Failed);
    let stored = read_sessions(&h.warehouse).len();
    assert!(
        stored >= kore_sync::sync::CHUNK_SESSIONS && stored < want.len(),
        "{stored}"
    );
    assert_eq!(
        watermark_ms(&h.warehouse, &h.bots[0].id, "selfService"),
        None,
        "the window did not finish"
    );
    // The next pass reads the window again and completes it, nothing doubled.
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    assert_eq!(report.streams[0].sessions_received as usize, want.len());
    assert_warehouse_equals(&h.warehouse, &want);
    assert!(watermark_ms(&h.warehouse, &h.bots[0].id, "selfService").is_some());
}
