//! Issue 14: the messages of sessions that change after the lookback has
//! passed them — active past it, or listed late — are read again by
//! session id; and the simulated v1 history pages by 100 and holds what v2
//! holds.

use crate::common::*;
use crate::messages::{Row, messages_on, stored, want};
use serde_json::Value;
use std::collections::BTreeMap;

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
    let notes = count(&db(&h.warehouse), "SELECT count(*) FROM message_rereads");
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
