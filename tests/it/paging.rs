//! Adaptive page size (issue 6): kore-sync asks for `api.max_page_size`,
//! learns the server's clamp or its refusal, and pages exactly either way.

use crate::common::*;
use kore_sync::config;
use kore_sync::sync::PassOptions;

/// Issue 6: with the default config kore-sync asks for `api.max_page_size`,
/// learns the server's clamp from the first short page, and from then on asks
/// for exactly that: Σ ceil(n / clamp) requests per window, nothing missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_6_the_page_size_adapts_to_the_servers_clamp() {
    let h = harness(1, 4, 1000, |s| s.max_page_size = 250).await;
    let config = config::from_toml(&h.toml(
        "containment_types = [\"selfService\"]\nwindow = \"1d\"\nreconcile = \"0\"",
        "",
    ))
    .unwrap();
    assert_eq!(
        (config.api.page_size, config.api.max_page_size),
        (100, 1000)
    );
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    assert_warehouse_equals(&h.warehouse, &h.sim_records_of("selfService"));
    let requests = h.sim.requests();
    assert_eq!(requests[0].limit, Some(1000));
    assert_eq!(requests[0].returned, 250);
    assert!(
        requests[1..].iter().all(|r| r.limit == Some(250)),
        "{requests:#?}"
    );
    // Each window needs ceil(n / 250) requests (one if empty), no more.
    let mut per_window: std::collections::BTreeMap<_, (usize, usize)> = Default::default();
    for r in &requests {
        let e = per_window.entry(r.date_from).or_default();
        e.0 += 1;
        e.1 += r.returned;
    }
    for (from, (n_requests, n_sessions)) in per_window {
        assert_eq!(
            n_requests,
            n_sessions.div_ceil(250).max(1),
            "window from {from:?}"
        );
    }
}

/// Issue 6: a server that refuses large pages outright (400 naming `limit`)
/// costs one refused request; the page is repeated at `api.page_size` and
/// every later request asks for that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_6_a_refused_large_page_falls_back_to_page_size() {
    let h = harness(1, 3, 300, |s| s.refuse_limit_above = Some(100)).await;
    let config =
        config::from_toml(&h.toml("containment_types = [\"agent\"]\nreconcile = \"0\"", ""))
            .unwrap();
    let report = pass(&config, PassOptions::manual()).await;
    assert!(report.all_succeeded(), "{report:#?}");
    assert_warehouse_equals(&h.warehouse, &h.sim_records_of("agent"));
    let requests = h.sim.requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.status == 400).collect();
    assert_eq!(refused.len(), 1, "{requests:#?}");
    assert_eq!(refused[0].limit, Some(1000));
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.limit == Some(100) && r.status == 200)
    );
}
