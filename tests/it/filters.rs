//! Stream filters (issue 7): `session_type`, `user_id` and `tags` per bot;
//! only matching sessions land; a filtered stream keeps its own watermark and
//! starts again from `sync.start` when its filter changes.

use crate::common::*;
use kore_sync::config;
use kore_sync::sync::PassOptions;
use serde_json::json;

fn with_bot_keys(h: &Harness, keys: &str) -> String {
    h.toml("", "").replace(
        &format!("id = {:?}\n", h.bots[0].id),
        &format!("id = {:?}\n{keys}\n", h.bots[0].id),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_lets_only_matching_sessions_land() {
    let h = harness(1, 6, 40, |_| {}).await;
    let all = h.sim_records();
    let user = all[7]["userId"].as_str().unwrap().to_owned();
    type Keep = Box<dyn Fn(&serde_json::Value) -> bool>;
    let cases: Vec<(String, Keep)> = vec![
        (
            "session_type = \"non-interactive\"".into(),
            Box::new(|r| r["sessionType"] == json!("non-interactive")),
        ),
        (
            format!("user_id = {user:?}"),
            Box::new(move |r| r["userId"] == json!(user.clone())),
        ),
        (
            "tags = { userTags = [ { name = \"plan\", value = \"pro\" } ] }".into(),
            Box::new(|r| {
                r["tags"]["userTags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t["name"] == "plan" && t["value"] == "pro"))
            }),
        ),
    ];
    for (keys, keep) in cases {
        let _ = std::fs::remove_file(&h.warehouse);
        let config = config::from_toml(&with_bot_keys(&h, &keys)).unwrap();
        let report = pass(&config, PassOptions::manual()).await;
        assert!(report.all_succeeded(), "{keys}: {report:#?}");
        let want: Vec<_> = all.iter().filter(|r| keep(r)).cloned().collect();
        assert!(
            !want.is_empty() && want.len() < all.len(),
            "{keys}: a real subset"
        );
        assert_warehouse_equals(&h.warehouse, &want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_filter_reads_the_stream_again_from_the_start() {
    let h = harness(1, 10, 30, |_| {}).await;
    let interactive =
        config::from_toml(&with_bot_keys(&h, "session_type = \"interactive\"")).unwrap();
    pass(&interactive, PassOptions::manual()).await;
    let wm = watermark_ms(&h.warehouse, &h.bots[0].id, "agent").unwrap();
    let conn = db(&h.warehouse);
    let filter: String = conn
        .query_row("SELECT any_value(filter) FROM sync_state", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    assert_eq!(filter, "sessionType=interactive");

    // Now everything: the stream's watermark was reached under another
    // filter, so it reads from sync.start again, and the rest lands.
    h.sim.clear_requests();
    let all = config::from_toml(&h.toml("", "")).unwrap();
    let report = pass(&all, PassOptions::manual()).await;
    assert!(report.all_succeeded());
    let earliest = h
        .sim
        .requests()
        .iter()
        .filter_map(|r| r.date_from)
        .min()
        .unwrap();
    assert!(
        (earliest - h.start).num_milliseconds().abs() <= 1,
        "read again from sync.start"
    );
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    assert!(watermark_ms(&h.warehouse, &h.bots[0].id, "agent").unwrap() >= wm);

    // status names the filter each stream ran with.
    let path = h.dir.path().join("f.toml");
    std::fs::write(&path, with_bot_keys(&h, "session_type = \"interactive\"")).unwrap();
    run_ok(&path, &["sync"]).await;
    let out = kore_sync(&path).arg("status").output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[filter sessionType=interactive]"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn told_to_keep_it_a_changed_filter_keeps_the_watermark() {
    let h = harness(1, 10, 30, |_| {}).await;
    let interactive =
        config::from_toml(&with_bot_keys(&h, "session_type = \"interactive\"")).unwrap();
    pass(&interactive, PassOptions::manual()).await;
    h.sim.clear_requests();
    let keep =
        config::from_toml(&h.toml("restart_on_filter_change = false\nreconcile = \"0\"", ""))
            .unwrap();
    assert!(pass(&keep, PassOptions::manual()).await.all_succeeded());
    let earliest = h
        .sim
        .requests()
        .iter()
        .filter_map(|r| r.date_from)
        .min()
        .unwrap();
    assert!(
        earliest > h.start + chrono::Duration::days(9),
        "continued from the watermark: {earliest}"
    );
    let conn = db(&h.warehouse);
    let filters: Vec<String> = conn
        .prepare("SELECT DISTINCT filter FROM sync_state")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        filters,
        [""],
        "the watermark now belongs to the new (empty) filter"
    );
}
