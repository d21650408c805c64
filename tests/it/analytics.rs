//! Issue 24: NLU analytics (getAnalytics), synced by the same engine as
//! sessions and messages — one stream per bot and type, by date window,
//! each request naming the bot's channels — and stored field by field.

use crate::common::*;
use chrono::DateTime;
use serde_json::Value;
use std::collections::BTreeSet;

/// A stored event, as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Row {
    pub(crate) kind: String,
    pub(crate) event_id: String,
    pub(crate) session_id: String,
    pub(crate) message_id: String,
    pub(crate) at_ms: i64,
    pub(crate) channel: String,
    pub(crate) utterance: Option<String>,
    pub(crate) intent: Option<String>,
    pub(crate) task_name: Option<String>,
    pub(crate) is_ambiguous: Option<bool>,
    pub(crate) node_name: Option<String>,
    pub(crate) node_type: Option<String>,
    pub(crate) status_code: Option<String>,
    pub(crate) response_time_ms: Option<i64>,
    pub(crate) n_tags: usize,
}

/// What a stored row should hold for a simulator event.
fn expected(e: &Value) -> Row {
    let text = |k: &str| e[k].as_str().map(str::to_owned);
    let status_code = match &e["statusCode"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let response_time_ms = match &e["responseTime"] {
        Value::Null => None,
        Value::String(s) => Some(s.parse().unwrap()),
        other => other.as_i64(),
    };
    let n_tags = e["customTags"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    Row {
        kind: text("__type").unwrap(),
        event_id: text("_id").unwrap(),
        session_id: text("sessionId").unwrap(),
        message_id: text("messageId").unwrap(),
        at_ms: DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp_millis(),
        channel: text("channel").unwrap(),
        utterance: text("utterance"),
        intent: text("intent"),
        task_name: text("taskName"),
        is_ambiguous: e["isAmbiguous"].as_bool(),
        node_name: text("nodeName"),
        node_type: text("type"),
        status_code,
        response_time_ms,
        n_tags,
    }
}

pub(crate) fn want(h: &Harness) -> Vec<Row> {
    let mut rows: Vec<Row> = h.sim.analytics_events().iter().map(expected).collect();
    rows.sort();
    rows
}

pub(crate) fn stored(h: &Harness) -> Vec<Row> {
    let conn = db(&h.warehouse);
    let mut stmt = conn
        .prepare(
            "SELECT e.type, e.event_id, e.session_id, e.message_id, epoch_ms(e.event_time),
                    e.channel, e.utterance, e.intent, e.task_name, e.is_ambiguous, e.node_name,
                    e.node_type, e.status_code, e.response_time_ms,
                    (SELECT count(*) FROM analytics_event_tags t
                      WHERE t.type = e.type AND t.event_id = e.event_id)
             FROM analytics_events e ORDER BY ALL",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            kind: r.get(0)?,
            event_id: r.get(1)?,
            session_id: r.get(2)?,
            message_id: r.get(3)?,
            at_ms: r.get(4)?,
            channel: r.get(5)?,
            utterance: r.get(6)?,
            intent: r.get(7)?,
            task_name: r.get(8)?,
            is_ambiguous: r.get(9)?,
            node_name: r.get(10)?,
            node_type: r.get(11)?,
            status_code: r.get(12)?,
            response_time_ms: r.get(13)?,
            n_tags: r.get::<_, i64>(14)? as usize,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Asserts the stored events equal the API's, naming only those that
/// differ (the lists are long).
pub(crate) fn assert_same(stored: &[Row], want: &[Row], context: &str) {
    let extra: Vec<&Row> = stored.iter().filter(|r| !want.contains(r)).collect();
    let missing: Vec<&Row> = want.iter().filter(|r| !stored.contains(r)).collect();
    assert!(
        extra.is_empty() && missing.is_empty() && stored.len() == want.len(),
        "{} stored, {} at the API; stored only: {extra:#?}\nat the API only: {missing:#?}\n{context}",
        stored.len(),
        want.len()
    );
}

pub(crate) fn analytics_on(h: &Harness, extra: &str) -> std::path::PathBuf {
    h.write_config(&h.toml("", &format!("[analytics]\nenabled = true\n{extra}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_a_backfill_stores_every_event_as_the_api_has_it_and_a_reread_writes_nothing() {
    let h = harness(2, 9, 12, |_| {}).await;
    let config = analytics_on(&h, "");
    let out = run_ok(&config, &["sync"]).await;
    assert!(out.contains("analytics:failintent"), "{out}");
    let want = want(&h);
    let types: BTreeSet<&str> = want.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(types.len(), 6, "the simulator lists every type: {types:?}");
    assert_eq!(stored(&h), want);

    // The record is kept as received (the simulator's `__type` aside).
    let conn = db(&h.warehouse);
    let (id, raw): (String, String) = conn
        .query_row(
            "SELECT event_id, CAST(raw AS VARCHAR) FROM analytics_events
             WHERE type = 'failintent' ORDER BY event_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mut original = h
        .sim
        .analytics_events()
        .into_iter()
        .find(|e| e["_id"] == id.as_str() && e["__type"] == "failintent")
        .unwrap();
    original.as_object_mut().unwrap().remove("__type");
    assert_eq!(serde_json::from_str::<Value>(&raw).unwrap(), original);

    // Every request named the bot's channels (never the rtm default alone),
    // its type, and paging; no window spanned 7 days.
    let requests = h.sim.requests();
    let asked: Vec<_> = requests
        .iter()
        .filter(|r| r.resource == "analytics")
        .collect();
    assert!(!asked.is_empty());
    let used: BTreeSet<String> = h
        .sim_records()
        .iter()
        .map(|r| r["channel"].as_str().unwrap().to_owned())
        .collect();
    assert!(used.len() >= 3, "{used:?}");
    for r in &asked {
        let named: BTreeSet<String> = r
            .channel_type
            .as_deref()
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect();
        assert_eq!(named, used, "{r:?}");
        assert!(r.limit.is_some() && r.analytics_type.is_some(), "{r:?}");
        assert!(r.date_to.unwrap() - r.date_from.unwrap() < chrono::Duration::days(7));
    }

    // The views answer from the stored events.
    let (utterances, found, rate): (i64, i64, f64) = conn
        .query_row(
            "SELECT sum(utterances), sum(intents_found), min(match_rate) FROM daily_nlu",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let nlu = |t: &str| want.iter().filter(|r| r.kind == t).count() as i64;
    assert_eq!(
        utterances,
        nlu("successintent") + nlu("failintent") + nlu("unhandledutterance")
    );
    assert_eq!(found, nlu("successintent"));
    assert!((0.0..=1.0).contains(&rate));
    for view in ["top_unhandled_utterances", "failing_tasks", "slow_nodes"] {
        assert!(
            count(&conn, &format!("SELECT count(*) FROM {view}")) > 0,
            "{view}"
        );
    }
    let p95_over_p50 = count(
        &conn,
        "SELECT count(*) FROM slow_nodes WHERE p95_ms < p50_ms",
    );
    assert_eq!(p95_over_p50, 0);
    drop(conn);

    // Reading it all again writes nothing and keeps them equal.
    run_ok(&config, &["backfill", "--from", &h.start.to_rfc3339()]).await;
    assert_eq!(stored(&h), want);
    let rewritten = count(
        &db(&h.warehouse),
        "SELECT count(*) FROM analytics_events WHERE last_synced_at > first_synced_at",
    );
    assert_eq!(rewritten, 0, "unchanged events were written again");
    let status = run_ok(&config, &["status"]).await;
    assert!(
        status.contains(&format!("{} analytics events", want.len())),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_the_events_of_sessions_that_close_arrive_with_the_next_pass() {
    let h = harness(1, 2, 10, |_| {}).await;
    h.add_recent_sessions(3, chrono::Duration::minutes(15));
    let config = analytics_on(&h, "");
    run_ok(&config, &["sync"]).await;
    assert_eq!(stored(&h), want(&h));
    let before = stored(&h).len();
    let now = chrono::Utc::now();
    let active: Vec<String> = h
        .sim_records()
        .iter()
        .filter(|r| r["sessionStatus"] == "active")
        .map(|r| r["sessionId"].as_str().unwrap().to_owned())
        .collect();
    assert!(!active.is_empty());
    for id in &active {
        h.sim.modify(id, |r| {
            r["sessionStatus"] = "closed".into();
            r["end_time"] = (now - chrono::Duration::seconds(30))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into();
        });
    }
    run_ok(&config, &["sync"]).await;
    let after = stored(&h);
    assert_eq!(after, want(&h));
    assert!(after.len() > before, "closing added events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_without_the_metrics_scope_only_the_analytics_streams_fail() {
    let h = harness(1, 2, 10, |s| s.deny_metrics = vec!["st-test-1".into()]).await;
    let config = analytics_on(&h, "");
    let out = kore_sync(&config).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("\"Metrics\" API scope"), "{stderr}");
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    let outcomes = run_outcomes(&h.warehouse);
    // Three sessions streams, six analytics types and the LLM usage logs
    // (another scope: they still run).
    assert_eq!(outcomes.len(), 3 + 6 + 1, "{outcomes:?}");
    for (stream, outcome) in &outcomes {
        let want = if stream.starts_with("analytics:") {
            "failed"
        } else {
            "succeeded"
        };
        assert_eq!(outcome, want, "{stream}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_events_listed_late_or_erased_are_caught_behind_the_watermark() {
    let h = harness(1, 6, 12, |_| {}).await;
    let config = analytics_on(&h, "");
    run_ok(&config, &["sync"]).await;
    assert_eq!(stored(&h), want(&h));
    let bot = h.bots[0].id.clone();
    // Days behind every watermark: sessions the API lists late (with their
    // events)...
    let late = h.sim.arrive_late(
        &bot,
        4,
        (chrono::Duration::days(3), chrono::Duration::days(2)),
        5,
    );
    assert_eq!(late.len(), 4);
    let out = run_ok(&config, &["sync"]).await;
    assert_same(&stored(&h), &want(&h), &out);
    assert!(stored(&h).iter().any(|r| r.session_id == late[0]));
    // ...and one it erased. (Checked apart: a late event and an erased one
    // in the same window leave its count as it was, and a count is what a
    // pass compares; see README.)
    let old = h
        .sim_records()
        .into_iter()
        .find(|r| {
            let start = DateTime::parse_from_rfc3339(r["start_time"].as_str().unwrap()).unwrap();
            chrono::Utc::now() - start.with_timezone(&chrono::Utc) > chrono::Duration::days(4)
        })
        .unwrap();
    let erased = old["sessionId"].as_str().unwrap().to_owned();
    let n_erased = stored(&h).iter().filter(|r| r.session_id == erased).count();
    assert!(n_erased > 0);
    assert!(h.sim.remove(&erased));
    let out = run_ok(&config, &["sync"]).await;
    assert_same(&stored(&h), &want(&h), &out);
    assert!(!stored(&h).iter().any(|r| r.session_id == erased));

    // `verify` finds and repairs a window that differs (rows lost here).
    db(&h.warehouse)
        .execute_batch("DELETE FROM analytics_events WHERE type = 'performance' AND epoch_us(event_time) < epoch_us(now()) - 4 * 86400000000")
        .unwrap();
    assert_ne!(stored(&h), want(&h));
    let said = run_ok(&config, &["verify"]).await;
    assert!(said.contains("analytics:performance"), "{said}");
    assert_same(&stored(&h), &want(&h), &said);
}

/// Each bot's analytics types, in the order its streams finished.
fn analytics_order(warehouse: &std::path::Path, bot_id: &str) -> Vec<String> {
    let conn = db(warehouse);
    let mut stmt = conn
        .prepare(
            "SELECT containment_type FROM sync_runs
             WHERE resource = 'analytics' AND bot_id = ? ORDER BY finished_at, run_id",
        )
        .unwrap();
    stmt.query_map([bot_id], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_the_bots_of_a_fleet_begin_with_different_analytics_types() {
    let h = harness(3, 2, 6, |_| {}).await;
    let config = analytics_on(&h, "");
    run_ok(&config, &["sync"]).await;
    let orders: Vec<Vec<String>> = h
        .bots
        .iter()
        .map(|b| analytics_order(&h.warehouse, &b.id))
        .collect();
    assert_eq!(orders[0].len(), 6, "{orders:?}");
    // The k-th bot of the config runs the same types turned by k, so the
    // fleet never reads its largest type all at once.
    for (k, order) in orders.iter().enumerate() {
        let mut want = orders[0].clone();
        want.rotate_left(k);
        assert_eq!(order, &want, "bot {k}: {orders:?}");
    }
    assert_ne!(orders[0][0], orders[1][0]);
    assert_eq!(
        stored(&h),
        want(&h),
        "every event stored whatever the order"
    );
}
