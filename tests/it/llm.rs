//! Issue 24: GenAI and LLM usage logs (getLLMUsageLogs), synced by the same
//! engine — one stream per bot, by spans of whole days — with ids derived
//! from the records, which have none.

use crate::common::*;
use chrono::DateTime;
use serde_json::Value;
use std::collections::BTreeSet;

/// A stored call, as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    started_ms: i64,
    ended_ms: Option<i64>,
    user_id: Option<String>,
    feature: Option<String>,
    model: Option<String>,
    status_code: Option<i32>,
    time_taken_ms: Option<i64>,
    request_tokens: Option<i64>,
    response_tokens: Option<i64>,
    channel: Option<String>,
}

fn ms(v: &Value) -> Option<i64> {
    v.as_str()
        .map(|s| DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis())
}

fn num(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        other => other.as_i64(),
    }
}

fn expected(c: &Value) -> Row {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Row {
        started_ms: ms(&c["start Date"]).unwrap(),
        ended_ms: ms(&c["End Date"]),
        user_id: text(&c["User ID"]),
        feature: text(&c["Feature Name "]),
        model: text(&c["Model Name"]),
        status_code: c["statusCode"].as_i64().map(|n| n as i32),
        time_taken_ms: num(&c["Time Taken"]),
        request_tokens: num(&c["Payload Details"]["Request Tokens"]),
        response_tokens: num(&c["Payload Details"]["Response Tokens"]),
        channel: text(&c["Channel Name"]),
    }
}

fn want(h: &Harness) -> Vec<Row> {
    let mut rows: Vec<Row> = h.sim.llm_calls().iter().map(expected).collect();
    rows.sort();
    rows
}

fn stored(h: &Harness) -> Vec<Row> {
    let conn = db(&h.warehouse);
    let mut stmt = conn
        .prepare(
            "SELECT epoch_ms(started_at), epoch_ms(ended_at), user_id, feature, model, status_code,
                    time_taken_ms, request_tokens, response_tokens, channel
             FROM llm_usage ORDER BY ALL",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            started_ms: r.get(0)?,
            ended_ms: r.get(1)?,
            user_id: r.get(2)?,
            feature: r.get(3)?,
            model: r.get(4)?,
            status_code: r.get(5)?,
            time_taken_ms: r.get(6)?,
            request_tokens: r.get(7)?,
            response_tokens: r.get(8)?,
            channel: r.get(9)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn ids(h: &Harness) -> Vec<String> {
    let conn = db(&h.warehouse);
    let mut stmt = conn
        .prepare("SELECT usage_id FROM llm_usage ORDER BY 1")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_llm_usage_is_stored_as_the_api_has_it_and_keeps_its_ids() {
    let h = harness(2, 100, 6, |_| {}).await;
    let config = h.write_config(&h.toml("", "[analytics]\nenabled = true\n"));
    let out = run_ok(&config, &["sync"]).await;
    assert!(out.contains("/llm_usage"), "{out}");
    let want = want(&h);
    assert!(want.len() > 50, "{}", want.len());
    assert_eq!(stored(&h), want);
    let first_ids = ids(&h);
    assert_eq!(
        first_ids.iter().collect::<BTreeSet<_>>().len(),
        want.len(),
        "one id per call"
    );

    // The requests: under /api/1.1/, plain dates at most 90 days apart,
    // `limit` and `skip` as the API's example sends them.
    let asked: Vec<_> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.resource == "llm_usage")
        .collect();
    assert!(!asked.is_empty());
    for r in &asked {
        assert_eq!(r.status, 200, "{r:?}");
        let span = r.date_to.unwrap() - r.date_from.unwrap();
        assert!(span <= chrono::Duration::days(91), "{r:?}");
    }
    // 100 days of one bot: two spans, each paged until a page is empty.
    let per_bot = asked.iter().filter(|r| r.scope == h.bots[0].id).count();
    assert!(per_bot < 20, "{per_bot} requests");

    // The view: calls, failures and tokens add up.
    let conn = db(&h.warehouse);
    let (calls, failures, tokens): (i64, i64, i64) = conn
        .query_row(
            "SELECT sum(calls), sum(failures), sum(request_tokens) FROM daily_llm_usage",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(calls as usize, want.len());
    let want_failures = want.iter().filter(|r| r.status_code != Some(200)).count();
    assert!(want_failures > 0);
    assert_eq!(failures as usize, want_failures);
    let want_tokens: i64 = want.iter().filter_map(|r| r.request_tokens).sum();
    assert_eq!(tokens, want_tokens);
    drop(conn);

    // Read again: the same ids, nothing written.
    run_ok(&config, &["backfill", "--from", &h.start.to_rfc3339()]).await;
    assert_eq!(ids(&h), first_ids);
    assert_eq!(
        count(
            &db(&h.warehouse),
            "SELECT count(*) FROM llm_usage WHERE last_synced_at > first_synced_at"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_llm_payloads_and_user_ids_follow_the_privacy_settings() {
    let h = harness(1, 20, 10, |_| {}).await;
    run_ok(
        &h.write_config(&h.toml("", "[analytics]\nenabled = true\n")),
        &["sync"],
    )
    .await;
    let plain_ids = ids(&h);
    std::fs::remove_file(&h.warehouse).unwrap();
    let key = crate::privacy::key_file(&h);
    let strict = format!(
        "[analytics]\nenabled = true\n[messages]\nstore_text = false\n\
         [privacy]\npseudonymize = [\"user_id\"]\nkey_file = {:?}\n",
        key.display().to_string()
    );
    run_ok(&h.write_config(&h.toml("", &strict)), &["sync"]).await;
    // The same calls under the same ids, whatever the settings.
    assert_eq!(ids(&h), plain_ids);
    let conn = db(&h.warehouse);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM llm_usage
             WHERE user_id NOT LIKE 'pz-%' OR json_extract_string(raw, '$.\"User ID\"') NOT LIKE 'pz-%'
                OR json_extract(raw, '$.\"Payload Details\".\"Request Payload\"') IS NOT NULL
                OR json_extract(raw, '$.\"Payload Details\".\"Response Payload\".choices') IS NOT NULL"
        ),
        0
    );
    // The counts stay: tokens are not content.
    assert!(
        count(
            &conn,
            "SELECT count(*) FROM llm_usage WHERE request_tokens IS NOT NULL"
        ) > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_without_the_llm_logs_scope_only_that_stream_fails() {
    let h = harness(1, 2, 10, |s| s.deny_llm_logs = vec!["st-test-1".into()]).await;
    let config = h.write_config(&h.toml("", "[analytics]\nenabled = true\n"));
    let out = kore_sync(&config).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("\"Fetch Gen AI and LLM Usage Logs\" API scope"),
        "{stderr}"
    );
    let outcomes = run_outcomes(&h.warehouse);
    assert_eq!(outcomes.len(), 3 + 6 + 1, "{outcomes:?}");
    for (stream, outcome) in &outcomes {
        let want = if stream.starts_with("llm_usage:") {
            "failed"
        } else {
            "succeeded"
        };
        assert_eq!(outcome, want, "{stream}");
    }
}

/// How many times the LLM usage stream began reading a span (a request
/// at `skip` 0) since the simulator last forgot its requests. Readings,
/// not requests: a span read twice costs as many requests as a span of
/// one page read once when the erasure leaves the first span empty (early
/// in the UTC day, today's only calls may be the erased ones).
fn llm_readings(h: &Harness) -> usize {
    let n = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.resource == "llm_usage" && r.skip == 0)
        .count();
    h.sim.clear_requests();
    n
}

/// getLLMUsageLogs has no count: records erased upstream in the span a
/// pass reads again go with that pass (once a second reading confirms it);
/// older ones, calls listed late and a record stored differently are
/// found and repaired by `verify`, which lists the windows record by
/// record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_llm_records_erased_or_listed_late_are_caught() {
    let h = harness(1, 10, 8, |_| {}).await;
    h.add_recent_sessions(8, chrono::Duration::minutes(30));
    let config = h.write_config(&h.toml("", "[analytics]\nenabled = true\n"));
    run_ok(&config, &["sync"]).await;
    assert_eq!(stored(&h), want(&h));
    llm_readings(&h);
    run_ok(&config, &["sync"]).await;
    let idle = llm_readings(&h);

    // Erased within the span every pass reads again (the day so far).
    let n_before = want(&h).len();
    for i in 0..8 {
        assert!(h.sim.remove(&format!("recent{i:018}")));
    }
    let want_now = want(&h);
    assert!(want_now.len() < n_before, "the recent sessions made calls");
    let out = run_ok(&config, &["sync"]).await;
    assert_eq!(stored(&h), want_now, "{out}");
    assert!(llm_readings(&h) > idle, "the erasure was read for twice");
    run_ok(&config, &["sync"]).await;
    assert_eq!(llm_readings(&h), idle, "nothing missing: no reading more");

    // Behind that span: a session erased days ago, sessions listed late,
    // and a record whose stored `raw` differs from the API's.
    let old_ids: Vec<String> = h
        .sim_records()
        .iter()
        .filter(|r| {
            let start = DateTime::parse_from_rfc3339(r["start_time"].as_str().unwrap()).unwrap();
            chrono::Utc::now() - start.with_timezone(&chrono::Utc) > chrono::Duration::days(4)
        })
        .map(|r| r["sessionId"].as_str().unwrap().to_owned())
        .collect();
    let n_before = want(&h).len();
    for id in &old_ids {
        assert!(h.sim.remove(id));
        if want(&h).len() < n_before {
            break;
        }
    }
    assert!(
        want(&h).len() < n_before,
        "an old session with calls erased"
    );
    let late = h.sim.arrive_late(
        &h.bots[0].id,
        6,
        (chrono::Duration::days(3), chrono::Duration::days(2)),
        7,
    );
    assert_eq!(late.len(), 6);
    run_ok(&config, &["sync"]).await;
    db(&h.warehouse)
        .execute_batch(
            "UPDATE llm_usage SET raw = '{}', request_tokens = -1
             WHERE usage_id = (SELECT min(usage_id) FROM llm_usage)",
        )
        .unwrap();
    let before = stored(&h);
    assert_ne!(before, want(&h));
    let kept_ids = ids(&h);

    // A dry run reports the windows that differ and changes nothing.
    let out = kore_sync(&config)
        .args(["verify", "--dry-run"])
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("llm_usage") && said.contains("differs"),
        "{said}"
    );
    assert_eq!(stored(&h), before);
    assert_eq!(ids(&h), kept_ids);

    let said = run_ok(&config, &["verify"]).await;
    assert!(said.contains("repaired"), "{said}");
    assert_eq!(stored(&h), want(&h), "{said}");
    assert_eq!(
        count(
            &db(&h.warehouse),
            "SELECT count(*) FROM llm_usage WHERE CAST(raw AS VARCHAR) = '{}'"
        ),
        0
    );
    // Now equal: a dry run agrees.
    run_ok(&config, &["verify", "--dry-run"]).await;
}
