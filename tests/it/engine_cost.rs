//! Engine cost (issue 23): the bookkeeping a pass now writes per group of
//! streams or per pass, rather than per stream, keeps the rules it served.

use crate::common::*;
use kore_sync::config;
use kore_sync::model::RunOutcome;
use kore_sync::sync::PassOptions;

/// A pass logs every bot's requests in one write once its bots are done;
/// each bot's hourly budget must still hold for the next process, bot by
/// bot, neither lost nor lent to another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_23_each_bot_s_budget_holds_across_processes_when_a_pass_logs_them_together() {
    let h = harness(2, 20, 10, |_| {}).await;
    let toml = h
        .toml("containment_types = [\"agent\"]\nreconcile = \"0\"", "")
        .replace("requests_per_hour = 0", "requests_per_hour = 5");
    let config = config::from_toml(&toml).unwrap();
    let requests = |r: &kore_sync::sync::PassReport| -> Vec<(String, u32, RunOutcome)> {
        let mut v: Vec<_> = r
            .streams
            .iter()
            .map(|s| (s.key.bot_id.clone(), s.requests, s.outcome))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (a, b) = (h.bots[0].id.clone(), h.bots[1].id.clone());
    // Each `pass` builds fresh API clients, as a new process would.
    let first = pass(&config, PassOptions::manual()).await;
    assert_eq!(
        requests(&first),
        [
            (a.clone(), 4, RunOutcome::Succeeded),
            (b.clone(), 4, RunOutcome::Succeeded)
        ]
    );
    let second = pass(&config, PassOptions::manual()).await;
    assert_eq!(
        requests(&second),
        [
            (a.clone(), 1, RunOutcome::Succeeded),
            (b.clone(), 1, RunOutcome::Succeeded)
        ]
    );
    // Five requests each in the last hour: a third process may send none.
    let third = pass(&config, PassOptions::manual()).await;
    assert_eq!(
        requests(&third),
        [
            (a.clone(), 0, RunOutcome::BudgetSpent),
            (b.clone(), 0, RunOutcome::BudgetSpent)
        ]
    );
    assert_eq!(h.sim.requests().len(), 10);
    // The log holds each bot's five, under its own name.
    let logged: Vec<(String, i64)> = db(&h.warehouse)
        .prepare("SELECT scope, count(*) FROM api_requests GROUP BY scope ORDER BY scope")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(logged, [(a, 5), (b, 5)]);
}
