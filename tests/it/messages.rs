//! Issue 14: conversation messages, synced beside sessions by the same
//! engine — one stream per bot and channel, by date window, committed with
//! the stream's watermark.

use crate::common::*;
use chrono::DateTime;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// What a stored message row should hold for a simulator record.
fn expected(m: &Value) -> (String, String, String, i64, String, Option<String>, usize) {
    let text: Vec<&str> = m["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cT"] == "text")
        .filter_map(|c| c["data"]["text"].as_str())
        .collect();
    let tags = m["tags"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    (
        m["_id"].as_str().unwrap().to_owned(),
        m["sessionId"].as_str().unwrap().to_owned(),
        m["type"].as_str().unwrap().to_owned(),
        DateTime::parse_from_rfc3339(m["createdOn"].as_str().unwrap())
            .unwrap()
            .timestamp_millis(),
        m["chnl"].as_str().unwrap().to_owned(),
        (!text.is_empty()).then(|| text.join("\n")),
        tags,
    )
}

type Row = (String, String, String, i64, String, Option<String>, usize);

fn stored(warehouse: &Path) -> Vec<Row> {
    let conn = db(warehouse);
    let mut stmt = conn
        .prepare(
            "SELECT m.message_id, m.session_id, m.direction, epoch_ms(m.created_on), m.channel, m.text,
                    (SELECT count(*) FROM message_tags t WHERE t.message_id = m.message_id)
             FROM messages m ORDER BY 1",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get::<_, i64>(6)? as usize,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn want(h: &Harness) -> Vec<Row> {
    let mut rows: Vec<Row> = h.sim.messages().iter().map(expected).collect();
    rows.sort();
    rows
}

fn messages_on(h: &Harness, extra: &str) -> std::path::PathBuf {
    h.write_config(&h.toml("", &format!("[messages]\nenabled = true\n{extra}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_a_backfill_stores_every_channels_messages_as_the_api_has_them() {
    let h = harness(2, 9, 15, |_| {}).await;
    let toml = h
        .toml("", "[messages]\nenabled = true\n")
        .replace("[sync]", "parquet_dir = \"parquet\"\n[sync]");
    let config = h.write_config(&toml);
    run_ok(&config, &["sync"]).await;
    assert_eq!(stored(&h.warehouse), want(&h));

    // Raw records are kept exactly, and the tags flattened.
    let conn = db(&h.warehouse);
    let raw: String = conn
        .query_row(
            "SELECT CAST(raw AS VARCHAR) FROM messages ORDER BY message_id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let raw: Value = serde_json::from_str(&raw).unwrap();
    let sim = h.sim.messages();
    let original = sim.iter().find(|m| m["_id"] == raw["_id"]).unwrap();
    assert_eq!(&raw, original);
    let kinds: i64 = conn
        .query_row(
            "SELECT count(*) FROM message_tags WHERE kind = 'message' AND name = 'intent'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(kinds > 0);
    // The Parquet export and the read copy hold them too.
    let exported: i64 = conn
        .query_row(
            &format!(
                "SELECT count(*) FROM read_parquet('{}/messages/*/data.parquet')",
                h.dir.path().join("parquet").display()
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(exported as usize, h.sim.messages().len());
    let copied: i64 = db(&h.dir.path().join("kore-read.duckdb"))
        .query_row("SELECT count(*) FROM transcripts", [], |r| r.get(0))
        .unwrap();
    assert!(copied > 0);

    // Every channel the sessions use was read, each by name (never the
    // rtm default), and no request spanned 7 days.
    let requests = h.sim.requests();
    let message_requests: Vec<_> = requests
        .iter()
        .filter(|r| r.resource == "messages")
        .collect();
    assert!(message_requests.iter().all(|r| r.channel_type.is_some()));
    let asked: std::collections::BTreeSet<_> = message_requests
        .iter()
        .filter_map(|r| r.channel_type.clone())
        .collect();
    let used: std::collections::BTreeSet<String> = h
        .sim_records()
        .iter()
        .map(|r| r["channel"].as_str().unwrap().to_owned())
        .collect();
    assert!(used.len() >= 3, "{used:?}");
    assert_eq!(asked, used);
    for r in &message_requests {
        let (from, to) = (r.date_from.unwrap(), r.date_to.unwrap());
        assert!(to - from < chrono::Duration::days(7), "{r:?}");
    }

    // The views: a transcript per session, and first user messages.
    let (n_transcripts, n_sessions_with_messages): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM transcripts), (SELECT count(DISTINCT session_id) FROM messages)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(n_transcripts, n_sessions_with_messages);
    let transcript: String = conn
        .query_row("SELECT transcript FROM transcripts LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(transcript.starts_with("USER: "), "{transcript}");
    assert!(transcript.contains("\nBOT: "), "{transcript}");
    let firsts: i64 = conn
        .query_row(
            "SELECT count(*) FROM first_user_messages f JOIN sessions s USING (session_id)
             WHERE s.containment_type NOT IN ('dropOff', 'agent')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(firsts, 0);
    drop(conn);

    // Reading it all again writes nothing (every message is unchanged) and
    // keeps them equal.
    run_ok(&config, &["backfill", "--from", &h.start.to_rfc3339()]).await;
    assert_eq!(stored(&h.warehouse), want(&h));
    let rewritten: i64 = db(&h.warehouse)
        .query_row(
            "SELECT count(*) FROM messages WHERE last_synced_at > first_synced_at",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rewritten, 0, "unchanged messages were written again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_an_incremental_pass_picks_up_the_messages_of_sessions_that_closed() {
    let h = harness(1, 2, 10, |_| {}).await;
    h.add_recent_sessions(3, chrono::Duration::minutes(15));
    let config = messages_on(&h, "");
    run_ok(&config, &["sync"]).await;
    assert_eq!(stored(&h.warehouse), want(&h));
    let active: Vec<String> = h
        .sim_records()
        .iter()
        .filter(|r| r["sessionStatus"] == "active")
        .map(|r| r["sessionId"].as_str().unwrap().to_owned())
        .collect();
    assert!(!active.is_empty());
    let before = stored(&h.warehouse).len();
    let now = chrono::Utc::now();
    for id in &active {
        h.sim.modify(id, |r| {
            r["sessionStatus"] = "closed".into();
            r["end_time"] = (now - chrono::Duration::seconds(30))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into();
        });
    }
    run_ok(&config, &["sync"]).await;
    let after = stored(&h.warehouse);
    assert_eq!(after, want(&h));
    assert!(after.len() > before, "closing added messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_without_store_text_no_message_content_is_stored() {
    let h = harness(1, 3, 10, |_| {}).await;
    let config = messages_on(&h, "store_text = false\n");
    run_ok(&config, &["sync"]).await;
    let n: i64 = db(&h.warehouse)
        .query_row(
            "SELECT count(*) FROM messages WHERE text IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n as usize, h.sim.messages().len());
    // Scan the files: none of the simulator's message texts is anywhere.
    for file in [h.warehouse.clone(), h.dir.path().join("kore-read.duckdb")] {
        let bytes = std::fs::read(&file).unwrap();
        for needle in [
            "ünïcødé",
            "line one",
            "Price &amp; plan",
            "cdn.example.com",
            "[data_purged]",
        ] {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "{needle:?} in {}", file.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_a_403_on_messages_fails_only_the_message_streams() {
    let h = harness(1, 2, 10, |s| s.deny_chat_history = vec!["st-test-1".into()]).await;
    let config = messages_on(&h, "");
    let out = kore_sync(&config).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Chat History"), "{stderr}");
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    let conn = db(&h.warehouse);
    let outcomes: BTreeMap<String, String> = {
        let mut stmt = conn
            .prepare("SELECT resource || ':' || containment_type, outcome FROM sync_runs")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for (stream, outcome) in &outcomes {
        let want = if stream.starts_with("messages:") {
            "failed"
        } else {
            "succeeded"
        };
        assert_eq!(outcome, want, "{stream}: {outcomes:?}");
    }
}

/// Messages share the bot's budget with sessions (assumed, as the API does
/// not say): at the documented limits, a pass of both is never answered 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_sessions_and_messages_share_the_budget_without_a_429() {
    let h = harness(1, 6, 5, |s| s.rate_limit = Some((60, 1800))).await;
    let toml = h
        .toml("window = \"1d\"", "[messages]\nenabled = true\n")
        .replace("requests_per_minute = 0\nrequests_per_hour = 0\n", "");
    let config = h.write_config(&toml);
    run_ok(&config, &["sync"]).await;
    let requests = h.sim.requests();
    let messages = requests.iter().filter(|r| r.resource == "messages").count();
    assert!(messages > 20, "{messages} message requests");
    assert!(
        requests.len() > 61,
        "more than a minute's worth: {}",
        requests.len()
    );
    assert!(
        requests.iter().all(|r| r.status != 429),
        "the simulator answered 429"
    );
    assert_eq!(stored(&h.warehouse), want(&h));
}

/// SIGKILL at random moments of a backfill of sessions and messages: no
/// message is doubled, no messages stream's watermark runs ahead of its
/// data, and one clean pass completes everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_a_kill_mid_backfill_loses_no_message() {
    use rand::{Rng, SeedableRng};
    let h = harness(1, 24, 20, |s| {
        s.latency = std::time::Duration::from_millis(15)
    })
    .await;
    let toml = h
        .toml("window = \"2d\"", "[messages]\nenabled = true\n")
        .replace("[api]\n", "[api]\npage_size = 20\nmax_page_size = 40\n");
    let config = h.write_config(&toml);
    let all = h.sim.messages();
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let mut answered = 0;
    for round in 0..4 {
        let mut child = kore_sync(&config)
            .args(["backfill", "--from", &h.start.to_rfc3339()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        answered += rng.random_range(10..80);
        h.sim.wait_for_requests(answered).await;
        signal(&child, "-KILL");
        assert!(
            !child.wait().await.unwrap().success(),
            "round {round}: killed"
        );
        let conn = db(&h.warehouse);
        let (n, distinct): (i64, i64) = conn
            .query_row(
                "SELECT count(*), count(DISTINCT message_id) FROM messages",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(n, distinct, "round {round}: no message twice");
        let mut stmt = conn
            .prepare(
                "SELECT containment_type, epoch_ms(watermark) FROM sync_state WHERE resource = 'messages'",
            )
            .unwrap();
        let marks: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let stored: std::collections::HashSet<String> =
            stored(&h.warehouse).into_iter().map(|r| r.0).collect();
        for (channel, wm) in marks {
            for m in all
                .iter()
                .map(expected)
                .filter(|m| m.4 == channel && m.3 < wm)
            {
                assert!(
                    stored.contains(&m.0),
                    "round {round}: {} before {channel}'s watermark is missing",
                    m.0
                );
            }
        }
        answered = h.sim.requests().len();
    }
    run_ok(&config, &["sync"]).await;
    assert_eq!(stored(&h.warehouse), want(&h));
}

/// A closed session of the first bot that started three hours ago, with
/// `id` (its other fields drawn from `seed`), not yet in the simulator.
fn session_started_3h_ago(h: &Harness, id: &str, seed: u64) -> Value {
    let now = chrono::Utc::now();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut rec = kore_sync::sim::data::make_session(
        &mut rng,
        &h.bots[0].id,
        now - chrono::Duration::hours(3),
        now,
        &[format!("u-{id}")],
    );
    rec["sessionId"] = id.into();
    rec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_a_session_active_past_the_lookback_has_all_its_messages_once_it_closes() {
    let h = harness(1, 2, 10, |_| {}).await;
    // Active for three hours: when it closes, its messages are dated across
    // those hours, mostly before the message stream's lookback (1 h).
    let now = chrono::Utc::now();
    let id = "long0000000000000000000001";
    let mut rec = session_started_3h_ago(&h, id, 5);
    rec["sessionType"] = "interactive".into();
    rec["sessionStatus"] = "active".into();
    rec.as_object_mut().unwrap().remove("end_time");
    h.sim.upsert(rec);
    let config = messages_on(&h, "");
    run_ok(&config, &["sync"]).await;
    assert_eq!(stored(&h.warehouse), want(&h));
    let of_long = |rows: &[Row]| rows.iter().filter(|r| r.1 == id).count();
    assert_eq!(
        of_long(&stored(&h.warehouse)),
        2,
        "an active session shows two"
    );

    h.sim.modify(id, |r| {
        r["sessionStatus"] = "closed".into();
        r["end_time"] = (now - chrono::Duration::minutes(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into();
    });
    run_ok(&config, &["sync"]).await;
    let after = stored(&h.warehouse);
    assert_eq!(after, want(&h));
    assert!(of_long(&after) > 2, "its later messages landed");
    // Its messages were read by id, so its note is gone.
    let notes: i64 = db(&h.warehouse)
        .query_row("SELECT count(*) FROM message_rereads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(notes, 0);
}

/// Every message of the rtm channel over the last `days`, paging `version`
/// of the simulated history; returns the ids and the largest page.
async fn page_all(h: &Harness, version: &str, days: i64) -> (BTreeMap<String, usize>, usize) {
    let auth = kore_sync::api::Credentials::ClientSecret {
        client_id: h.bots[0].app.client_id.clone(),
        client_secret: kore_sync::secret::Secret::new(h.bots[0].app.client_secret.clone()),
    }
    .header_value()
    .unwrap();
    let url = format!(
        "{}/api/public/bot/{}/{version}",
        h.sim.base_url(),
        h.bots[0].id
    );
    let now = chrono::Utc::now();
    let (mut ids, mut largest, mut skip) = (BTreeMap::new(), 0, 0);
    loop {
        let body = serde_json::json!({
            "dateFrom": (now - chrono::Duration::days(days)).to_rfc3339(),
            "dateTo": now.to_rfc3339(),
            "skip": skip, "limit": 10_000, "channelType": "rtm",
        });
        let page: Value = reqwest::Client::new()
            .post(&url)
            .header("auth", auth.expose())
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let messages = page["messages"].as_array().unwrap();
        largest = largest.max(messages.len());
        for m in messages {
            *ids.entry(m["_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        skip += messages.len();
        if page["moreAvailable"] != true || messages.is_empty() {
            return (ids, largest);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_the_simulated_v1_history_pages_by_100_and_holds_what_v2_does() {
    let h = harness(1, 6, 60, |_| {}).await;
    let (v2, v2_page) = page_all(&h, "getMessagesV2", 6).await;
    let (v1, v1_page) = page_all(&h, "getMessages", 6).await;
    assert!(v2_page > 100, "v2 pages beyond 100 ({v2_page})");
    assert_eq!(v1_page, 100);
    assert_eq!(v1, v2, "the same messages, each once");
    assert!(v1.values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_a_session_listed_late_has_its_messages_read_too() {
    let h = harness(1, 2, 10, |_| {}).await;
    let config = messages_on(&h, "");
    run_ok(&config, &["sync"]).await;
    // Upstream lists a closed session of three hours ago only now: the
    // sessions' reconcile finds it, and its messages lie before the message
    // streams' lookback.
    let id = "late00000000000000000001";
    h.sim.upsert(session_started_3h_ago(&h, id, 9));
    run_ok(&config, &["sync"]).await;
    let after = stored(&h.warehouse);
    assert_eq!(after, want(&h));
    assert!(after.iter().any(|r| r.1 == id), "its messages landed");
}
