//! Every selected scope at once, each its own task: how a pass and `verify`
//! run. A scope's requests count against its budget across processes, so
//! every scope's request history is loaded before any task starts (one
//! read) and what the tasks sent is logged once all have ended, whatever
//! happened to them (one write, `PassLog`).

use super::context::{ScopeApi, SyncContext};
use crate::store::{PassLog, StoreError};
use chrono::{DateTime, Utc};
use std::future::Future;
use tokio::task::JoinSet;
use tracing::Instrument;

/// What one scope's task did: its outcome (or the warehouse's failure),
/// and what the pass logs for it.
pub(super) struct ScopeDone<T> {
    pub bot_id: String,
    pub outcome: Result<T, StoreError>,
    /// Requests it sent (wall-clock times), for the request log.
    pub requests: Vec<DateTime<Utc>>,
    /// Whether its noted closed sessions are to be forgotten.
    pub forget_closed: bool,
}

/// Runs `task` for each scope `only_bot` selects (all if None), each as its
/// own task, its budget loaded with the last hour's requests of any
/// process. The outcomes in the configuration's order, or the first
/// warehouse failure once every task has ended and the requests are logged.
pub(super) async fn run_scopes<T, Fut>(
    ctx: &SyncContext,
    only_bot: Option<&str>,
    task: impl Fn(ScopeApi) -> Fut,
) -> Result<Vec<T>, StoreError>
where
    T: Send + 'static,
    Fut: Future<Output = ScopeDone<T>> + Send + 'static,
{
    let scopes: Vec<&ScopeApi> = ctx.selected(only_bot).collect();
    let ids = scopes.iter().map(|s| s.scope.bot_id.clone()).collect();
    let mut histories = ctx.store.request_histories(ids).await?;
    let mut tasks = JoinSet::new();
    for (n, scope) in scopes.into_iter().enumerate() {
        let span = tracing::info_span!("scope", bot_id = %scope.scope.bot_id);
        let history = histories.remove(&scope.scope.bot_id).unwrap_or_default();
        scope.api.budget().load_history(&history);
        let run = task(scope.clone());
        tasks.spawn(async move { (n, run.await) }.instrument(span));
    }
    let mut done = Vec::new();
    let mut log = PassLog::default();
    let mut first_err = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((n, scope)) => {
                log.requests.push((scope.bot_id.clone(), scope.requests));
                if scope.forget_closed {
                    log.forget_bots.push(scope.bot_id);
                }
                match scope.outcome {
                    Ok(outcome) => done.push((n, outcome)),
                    Err(e) => first_err = first_err.or(Some(e)),
                }
            }
            Err(e) => first_err = first_err.or(Some(StoreError::Worker(e.to_string()))),
        }
    }
    // Written whatever happened to the scopes: the next process must count
    // every request this one sent.
    let recorded = ctx.store.record_pass(log).await;
    if let Some(e) = first_err.or(recorded.err()) {
        return Err(e);
    }
    done.sort_by_key(|(n, _)| *n);
    Ok(done.into_iter().map(|(_, outcome)| outcome).collect())
}
