//! End-to-end sync behaviour against the simulated API on port 0 (issue 2):
//! full history equals the source field by field; re-runs are idempotent;
//! incremental passes pick up new and changed sessions; no request spans 7
//! days; the account scope works; backfills never move a watermark back;
//! progress is reported window by window. Trouble is in `recovery.rs`.

use crate::common::*;
use chrono::{DateTime, Duration, TimeDelta, Utc};
use kore_sync::config;
use kore_sync::model::ContainmentType;
use kore_sync::sim::data;
use kore_sync::sync::{PassOptions, PassTrigger};
use serde_json::json;

fn assert_no_request_spans_7_days(h: &Harness) {
    let reqs = h.sim.requests();
    assert!(!reqs.is_empty());
    for r in reqs {
        if let (Some(f), Some(t)) = (r.date_from, r.date_to) {
            assert!(
                t - f < TimeDelta::days(7),
                "request spans {:?}: {r:?}",
                t - f
            );
        }
        assert_ne!(r.status, 400, "the API refused a request: {r:?}");
    }
}

/// Puts sessions exactly on the window boundaries the planner will use, so
/// both `dateTo` conventions are exercised.
fn add_boundary_sessions(h: &Harness) {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(99);
    let users = vec!["u-boundary".to_owned()];
    for k in 0..4 {
        let at = h.start + Duration::days(6 * k);
        let mut rec = data::make_session(&mut rng, &h.bots[0].id, at, Utc::now(), &users);
        rec["sessionId"] = json!(format!("boundary{k:016}"));
        rec["containmentType"] = json!("selfService");
        h.sim.upsert(rec);
    }
}

async fn full_sync_equals_simulator(date_to_inclusive: bool) {
    let h = harness(2, 20, 40, |s| {
        s.date_to_inclusive = date_to_inclusive;
        s.max_page_size = 37; // fewer than asked for: pages by what came back
    })
    .await;
    add_boundary_sessions(&h);
    let report = pass(&h.config(), PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    assert_eq!(report.streams.len(), 6);
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    assert_no_request_spans_7_days(&h);
    for b in &h.bots {
        for ct in ContainmentType::ALL {
            let wm = watermark_ms(&h.warehouse, &b.id, ct.as_str()).expect("watermark set");
            assert!(wm <= Utc::now().timestamp_millis());
            assert!(wm > (Utc::now() - Duration::minutes(1)).timestamp_millis());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_equals_simulator_field_by_field_when_date_to_is_inclusive() {
    full_sync_equals_simulator(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_equals_simulator_field_by_field_when_date_to_is_exclusive() {
    full_sync_equals_simulator(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pass_changes_nothing_and_duplicates_nothing() {
    let h = harness(1, 10, 60, |_| {}).await;
    h.add_recent_sessions(3, Duration::minutes(30));
    let config = h.config();
    pass(&config, PassOptions::manual()).await;
    let snapshot = |path: &std::path::Path| {
        let conn = db(path);
        let s: String = conn
            .query_row(
                "SELECT string_agg(session_id || CAST(last_synced_at AS VARCHAR) || CAST(raw AS VARCHAR), '|' ORDER BY session_id) FROM sessions",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (s, read_tags(path))
    };
    let before = snapshot(&h.warehouse);
    let second = pass(&config, PassOptions::manual()).await;
    assert!(second.all_succeeded());
    assert!(
        second
            .streams
            .iter()
            .map(|s| s.sessions_received)
            .sum::<u64>()
            > 0,
        "the lookback re-reads"
    );
    assert_eq!(
        second
            .streams
            .iter()
            .map(|s| s.sessions_written)
            .sum::<u64>(),
        0
    );
    assert_eq!(snapshot(&h.warehouse), before);
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_pass_picks_up_new_and_changed_sessions() {
    let h = harness(1, 8, 50, |_| {}).await;
    h.add_recent_sessions(3, Duration::minutes(40));
    let config = h.config();
    pass(&config, PassOptions::manual()).await;
    let recs = h.sim_records();
    // A session inside the lookback (the last hour) changes containment type
    // and closes; an active one closes; a new one lands.
    let recent: Vec<_> = recs
        .iter()
        .filter(|r| {
            let t = DateTime::parse_from_rfc3339(r["start_time"].as_str().unwrap()).unwrap();
            Utc::now() - t.with_timezone(&Utc) < Duration::minutes(50)
        })
        .collect();
    assert!(
        recent.len() >= 2,
        "the generator puts sessions in the last hour"
    );
    let moved = recent[0]["sessionId"].as_str().unwrap().to_owned();
    let old_ct = recent[0]["containmentType"].as_str().unwrap().to_owned();
    let new_ct = if old_ct == "agent" {
        "selfService"
    } else {
        "agent"
    };
    assert!(h.sim.modify(&moved, |r| {
        r["containmentType"] = json!(new_ct);
        r["sessionStatus"] = json!("closed");
        r["noOfMessagesExchanged"] = json!(99);
        r["tags"]["sessionTags"] = json!([{"name": "handoff", "value": {"queue": "billing"}}]);
    }));
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
    let mut fresh = data::make_session(
        &mut rng,
        &h.bots[0].id,
        Utc::now() - Duration::seconds(5),
        Utc::now(),
        &["u-new".into()],
    );
    fresh["sessionId"] = json!("freshfreshfreshfresh0001");
    h.sim.upsert(fresh);

    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded());
    assert!(
        report
            .streams
            .iter()
            .map(|s| s.sessions_written)
            .sum::<u64>()
            >= 2
    );
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    let row = read_sessions(&h.warehouse)
        .into_iter()
        .find(|r| r.session_id == moved)
        .unwrap();
    assert_eq!(row.containment_type.as_deref(), Some(new_ct));
    assert_eq!(row.messages_exchanged, Some(99));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_scope_syncs_every_bot() {
    let h = harness(2, 5, 30, |_| {}).await;
    let app = account_app();
    let toml = format!(
        "[api]\nbase_url = {:?}\nrequests_per_minute = 0\nretry_base_delay = \"1ms\"\n[warehouse]\npath = {:?}\n\
         [sync]\nstart = {:?}\nlag = \"0s\"\n[account]\nclient_id = {:?}\nclient_secret = {:?}\n",
        h.sim.base_url(),
        h.warehouse.display().to_string(),
        h.start.to_rfc3339(),
        app.client_id,
        app.client_secret
    );
    let report = pass(&config::from_toml(&toml).unwrap(), PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    assert!(report.streams.iter().all(|s| s.key.bot_id == "*"));
    // Sessions through the account endpoint; after them, one request for
    // the bots' names (issue 13).
    let requests = h.sim.requests();
    let (names, sessions): (Vec<_>, Vec<_>) = requests.iter().partition(|r| r.scope == "bots");
    assert_eq!(names.len(), 1);
    assert!(sessions.iter().all(|r| r.scope == "*"));
    assert_eq!(requests.last().map(|r| r.scope.as_str()), Some("bots"));
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    assert!(watermark_ms(&h.warehouse, "*", "agent").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_rereads_a_range_and_never_moves_a_watermark_back() {
    let h = harness(1, 12, 30, |_| {}).await;
    let config = h.config();
    pass(&config, PassOptions::manual()).await;
    let wm_before = watermark_ms(&h.warehouse, &h.bots[0].id, "dropOff").unwrap();
    // Change an old session upstream: only a backfill over its day sees it.
    let old = h
        .sim_records()
        .into_iter()
        .find(|r| r["containmentType"] == json!("dropOff"))
        .unwrap();
    let id = old["sessionId"].as_str().unwrap().to_owned();
    h.sim
        .modify(&id, |r| r["channel"] = json!("korevg-changed"));
    let t = DateTime::parse_from_rfc3339(old["start_time"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let opts = PassOptions {
        trigger: PassTrigger::Backfill,
        range: Some((t - Duration::hours(1), t + Duration::hours(1))),
        only_bot: Some(h.bots[0].id.clone()),
        max_budget_wait: None,
        ..PassOptions::manual()
    };
    let report = pass(&config, opts).await;
    assert!(report.all_succeeded());
    assert_eq!(
        watermark_ms(&h.warehouse, &h.bots[0].id, "dropOff").unwrap(),
        wm_before
    );
    let row = read_sessions(&h.warehouse)
        .into_iter()
        .find(|r| r.session_id == id)
        .unwrap();
    assert_eq!(row.channel.as_deref(), Some("korevg-changed"));
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}

/// Issue 6: a window's commit compares only stored rows whose start falls in
/// the window's range. A session whose start moved upstream (from outside
/// that range into it) must still replace its stored row, not sit beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_6_a_session_whose_start_moved_is_replaced_not_duplicated() {
    let h = harness(1, 12, 30, |_| {}).await;
    let config = h.config();
    pass(&config, PassOptions::manual()).await;
    let recs = h.sim_records_of("agent");
    let (old, target) = (&recs[0], &recs[recs.len() / 2]);
    let id = old["sessionId"].as_str().unwrap().to_owned();
    let t = DateTime::parse_from_rfc3339(target["start_time"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    // Days later than its stored start, and keeping its tags.
    let moved_to = data::api_time(t + Duration::milliseconds(1));
    assert!(h.sim.modify(&id, |r| r["start_time"] = json!(moved_to)));
    let opts = PassOptions {
        trigger: PassTrigger::Backfill,
        range: Some((t - Duration::minutes(30), t + Duration::minutes(30))),
        only_bot: Some(h.bots[0].id.clone()),
        ..PassOptions::manual()
    };
    let report = pass(&config, opts).await;
    assert!(report.all_succeeded());
    let rows: Vec<_> = read_sessions(&h.warehouse)
        .into_iter()
        .filter(|r| r.session_id == id)
        .collect();
    assert_eq!(rows.len(), 1, "one row per session id");
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}

/// (event, containment type, windows done, windows planned, sessions).
type Event = (String, String, u32, u32, u64);

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<Event>>);

impl kore_sync::sync::PassObserver for Recorder {
    fn started(&self, r: &kore_sync::sync::StreamReport) {
        self.note("started", r);
    }
    fn advanced(&self, r: &kore_sync::sync::StreamReport) {
        self.note("advanced", r);
    }
    fn finished(&self, r: &kore_sync::sync::StreamReport) {
        self.note("finished", r);
    }
}

impl Recorder {
    fn note(&self, what: &str, r: &kore_sync::sync::StreamReport) {
        self.0.lock().unwrap().push((
            what.to_owned(),
            r.key.partition.name().to_owned(),
            r.windows_done,
            r.windows_planned,
            r.sessions_received,
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_reported_per_stream_as_its_windows_commit() {
    let h = harness(1, 13, 20, |_| {}).await;
    let recorder = std::sync::Arc::new(Recorder::default());
    let opts = PassOptions {
        observer: Some(kore_sync::sync::Observer(recorder.clone())),
        ..PassOptions::manual()
    };
    let config = config::from_toml(&h.toml("containment_types = [\"agent\"]", "")).unwrap();
    let report = pass(&config, opts).await;
    let events = recorder.0.lock().unwrap().clone();
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    // Three sparse windows are committed together (issue 23): one advance
    // that completes all three.
    assert_eq!(kinds, ["started", "advanced", "finished"], "{events:?}");
    let windows: Vec<u32> = events.iter().map(|e| e.2).collect();
    assert_eq!(windows, [0, 3, 3]);
    assert!(events.iter().all(|e| e.3 == 3));
    assert_eq!(
        events.last().unwrap().4,
        report.streams[0].sessions_received
    );
}
