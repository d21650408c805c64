//! `kore-sync fetch` (issue 7): sessions by id, 50 per request with
//! duplicates dropped; unknown ids listed and, with --prune, removed; and the
//! external call id variant.

use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_by_id_batches_50_drops_duplicates_and_prunes_unknown_ids() {
    let h = harness(1, 4, 40, |_| {}).await;
    let config = h.write_config(&h.toml("", ""));
    run_ok(&config, &["sync"]).await;

    // 60 sessions change upstream; one stored session is erased upstream.
    let records = h.sim_records();
    let ids: Vec<String> = records[..60]
        .iter()
        .map(|r| r["sessionId"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        h.sim
            .modify(id, |r| r["noOfMessagesExchanged"] = json!(777));
    }
    let erased = records[100]["sessionId"].as_str().unwrap().to_owned();
    assert!(h.sim.remove(&erased));
    h.sim.clear_requests();

    let mut cmd = kore_sync(&config);
    cmd.arg("fetch");
    for id in ids.iter().chain(ids[..5].iter()) {
        cmd.args(["--session", id]);
    }
    cmd.args([
        "--session",
        &erased,
        "--session",
        "nosuchsession000000000000",
    ]);
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unknown ids without --prune: {stdout}"
    );
    assert!(
        stdout.contains(&format!("unknown to the API: {erased}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("unknown to the API: nosuchsession000000000000"),
        "{stdout}"
    );
    let lookups: Vec<usize> = h
        .sim
        .requests()
        .iter()
        .filter_map(|r| r.session_ids)
        .collect();
    assert_eq!(
        lookups,
        [50, 12],
        "62 distinct ids in batches of at most 50"
    );
    let rows = read_sessions(&h.warehouse);
    assert_eq!(
        rows.iter()
            .filter(|r| r.messages_exchanged == Some(777))
            .count(),
        60
    );
    assert!(
        rows.iter().any(|r| r.session_id == erased),
        "kept without --prune"
    );

    run_ok(&config, &["fetch", "--prune", "--session", &erased]).await;
    assert!(
        read_sessions(&h.warehouse)
            .iter()
            .all(|r| r.session_id != erased)
    );
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_by_call_id_refreshes_that_calls_sessions() {
    let h = harness(1, 4, 60, |_| {}).await;
    let config = h.write_config(&h.toml("", ""));
    run_ok(&config, &["sync"]).await;
    let call = h
        .sim_records()
        .into_iter()
        .find(|r| r.get("callId").is_some())
        .expect("voice sessions carry a call id");
    let (id, call_id) = (
        call["sessionId"].as_str().unwrap().to_owned(),
        call["callId"].as_str().unwrap().to_owned(),
    );
    h.sim
        .modify(&id, |r| r["sessionStatus"] = json!("reviewed"));
    h.sim.clear_requests();
    run_ok(&config, &["fetch", "--call-id", &call_id]).await;
    assert_eq!(h.sim.requests().len(), 1);
    let row = read_sessions(&h.warehouse)
        .into_iter()
        .find(|r| r.session_id == id)
        .unwrap();
    assert_eq!(row.session_status.as_deref(), Some("reviewed"));
}
