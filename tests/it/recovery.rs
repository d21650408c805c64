//! A pass meeting trouble (issue 2): an app the API refuses fails only its
//! bot's streams, with a clear message; rate limits and server errors are
//! retried; an aborted or cancelled pass loses nothing and the next one
//! completes it; a bad record is kept apart while its page commits; apps
//! that enforce JTI accept kore-sync's tokens.

use crate::common::*;
use chrono::{Duration, Utc};
use kore_sync::config;
use kore_sync::model::RunOutcome;
use kore_sync::sim::Fault;
use kore_sync::sync::{PassOptions, PassTrigger};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_fails_with_a_clear_message_while_other_bots_still_sync() {
    let h = harness(2, 5, 30, |_| {}).await;
    let toml = h
        .toml("", "")
        .replace("client_secret = \"secret-2\"", "client_secret = \"wrong\"");
    let config = config::from_toml(&toml).unwrap();
    let report = pass(&config, PassOptions::manual()).await;
    assert!(!report.all_succeeded());
    for s in &report.streams {
        if s.key.bot_id == h.bots[1].id {
            assert_eq!(s.outcome, RunOutcome::Failed);
            let e = s.error.as_deref().unwrap();
            assert!(e.contains("HTTP 401"), "{e}");
            assert!(e.contains("cs-app-2"), "names the client id: {e}");
            assert!(e.contains("Bot Sessions"), "names the scope: {e}");
            assert!(!e.contains("wrong"), "never shows the secret: {e}");
            assert_eq!(s.requests, 1, "401 is not retried");
        } else {
            assert_eq!(s.outcome, RunOutcome::Succeeded, "{s:?}");
        }
    }
    let bot1: Vec<_> = h
        .sim_records()
        .into_iter()
        .filter(|r| r["botId"] == json!(h.bots[0].id))
        .collect();
    assert_warehouse_equals(&h.warehouse, &bot1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_recover() {
    let h = harness(1, 6, 40, |_| {}).await;
    let faults = vec![
        Fault::RateLimited {
            retry_after: Some(0),
        },
        Fault::Status(500),
        Fault::Status(503),
        Fault::HtmlBadGateway,
        Fault::RateLimited { retry_after: None },
        Fault::TruncatedBody,
        Fault::DropConnection,
        Fault::Slow(std::time::Duration::from_secs(3)),
    ];
    let n_faults = faults.len() as u32;
    h.sim.inject(faults);
    let report = pass(&h.config(), PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    assert_eq!(
        report.streams.iter().map(|s| s.retries).sum::<u32>(),
        n_faults
    );
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_aborted_between_windows_loses_nothing_and_the_next_completes_it() {
    let h = harness(1, 20, 15, |_| {}).await;
    let toml = h.toml("containment_types = [\"selfService\"]", "");
    let config = config::from_toml(&toml).unwrap();
    // Window 1 and 2 succeed (one page each); the third request is refused.
    h.sim.inject([
        Fault::Slow(std::time::Duration::ZERO),
        Fault::Slow(std::time::Duration::ZERO),
        Fault::Status(400),
    ]);
    let first = pass(&config, PassOptions::manual()).await;
    let s = &first.streams[0];
    assert_eq!(s.outcome, RunOutcome::Failed);
    assert_eq!(s.windows_done, 2);
    assert!(s.windows_planned >= 4);
    let wm = watermark_ms(&h.warehouse, &h.bots[0].id, "selfService").unwrap();
    let expected_wm = (h.start + Duration::days(12)).timestamp_millis();
    assert!(
        (wm - expected_wm).abs() <= 1,
        "watermark at the end of window 2"
    );
    // Everything before the watermark is stored; nothing after it yet.
    let stored = read_sessions(&h.warehouse);
    let want: Vec<_> = h
        .sim_records()
        .into_iter()
        .filter(|r| r["containmentType"] == json!("selfService"))
        .filter(|r| expected_row(r).start_ms < wm)
        .collect();
    assert!(stored.iter().all(|r| r.start_ms <= wm));
    assert_eq!(stored.len(), want.len());

    let second = pass(&config, PassOptions::manual()).await;
    assert!(second.all_succeeded());
    let all_self: Vec<_> = h.sim_records_of("selfService");
    assert_warehouse_equals(&h.warehouse, &all_self);
    let conn = db(&h.warehouse);
    let outcomes: Vec<String> = conn
        .prepare("SELECT outcome FROM sync_runs ORDER BY run_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(outcomes, ["failed", "succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_pass_is_recorded_as_interrupted_and_commits_nothing_half_done() {
    let h = harness(1, 10, 30, |_| {}).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    cancel.cancel();
    let report = pass_with(&h.config(), PassOptions::manual(), &cancel).await;
    assert!(
        report
            .streams
            .iter()
            .all(|s| s.outcome == RunOutcome::Interrupted)
    );
    assert!(read_sessions(&h.warehouse).is_empty());
    assert!(h.sim.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_is_kept_in_rejected_records_and_the_rest_of_the_page_commits() {
    let h = harness(1, 3, 30, |_| {}).await;
    let victim = h
        .sim_records()
        .into_iter()
        .find(|r| r["containmentType"] == json!("agent"))
        .unwrap();
    let id = victim["sessionId"].as_str().unwrap().to_owned();
    h.sim
        .modify(&id, |r| r["noOfMessagesExchanged"] = json!("many"));
    let config = h.config();
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded());
    assert_eq!(n_rejected(&report), 1);
    let good: Vec<_> = h
        .sim_records()
        .into_iter()
        .filter(|r| r["sessionId"] != json!(id))
        .collect();
    assert_warehouse_equals(&h.warehouse, &good);
    // A backfill over everything reads the bad record again.
    let again = PassOptions {
        trigger: PassTrigger::Backfill,
        range: Some((h.start, Utc::now())),
        only_bot: None,
        max_budget_wait: None,
        ..PassOptions::manual()
    };
    let report = pass(&config, again).await;
    assert_eq!(n_rejected(&report), 1);
    let conn = db(&h.warehouse);
    let (n, sid, reason): (i64, String, String) = conn
        .query_row(
            "SELECT count(*), any_value(session_id), any_value(reason) FROM rejected_records",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (n, sid.as_str()),
        (1, id.as_str()),
        "kept once, even when read again"
    );
    assert!(reason.contains("noOfMessagesExchanged"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_that_enforce_jti_accept_kore_syncs_tokens() {
    let h = harness(1, 8, 30, |s| s.enforce_jti = true).await;
    let report = pass(&h.config(), PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    assert!(
        h.sim.requests().len() > 3,
        "several requests, each with a fresh jti"
    );
    assert_warehouse_equals(&h.warehouse, &h.sim_records());
    // A replayed token is refused: the switch is real.
    let toml = h.toml("", "").replace(
        "client_id = \"cs-app-1\"\nclient_secret = \"secret-1\"",
        &format!(
            "token = {:?}",
            kore_sync::api::auth::mint("cs-app-1", &kore_sync::secret::Secret::new("secret-1"))
                .unwrap()
        ),
    );
    let report = pass(&config::from_toml(&toml).unwrap(), PassOptions::manual()).await;
    let e = report.streams[0]
        .error
        .as_deref()
        .unwrap_or_default()
        .to_owned();
    assert!(!report.all_succeeded() && e.contains("jti"), "{report:#?}");
}
