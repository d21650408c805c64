//! What a pass tells its caller: each stream's figures and outcome
//! ([`StreamReport`]), the pass as a whole ([`PassReport`]), and the
//! observer hooks the terminal progress bars listen on. The decision of
//! which outcome an API error means lives here too, as a pure function.

use super::stop::Stop;
use crate::api::{ApiError, CallStats};
use crate::model::{RunOutcome, StreamKey, Window};
use crate::ops::metrics::StreamPassEnded;
use crate::store::RunRecord;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// One stream's figures for one pass.
#[derive(Debug, Clone)]
pub struct StreamReport {
    pub key: StreamKey,
    pub outcome: RunOutcome,
    pub windows_planned: u32,
    pub windows_done: u32,
    pub requests: u32,
    pub retries: u32,
    pub rate_limited: u32,
    /// Time spent waiting for the request budget.
    pub budget_wait: Duration,
    /// Time spent fetching and parsing windows (budget waits included).
    pub fetch_time: Duration,
    /// Time spent committing windows to the warehouse.
    pub store_time: Duration,
    pub sessions_received: u64,
    pub sessions_written: u64,
    pub records_rejected: u64,
    /// Sessions removed because the API reported them deleted upstream.
    pub sessions_deleted: u64,
    /// Sessions the API reported deleted, kept and marked (`deletes = "keep"`).
    pub sessions_marked: u64,
    pub watermark: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// Every stream's report of one pass, in stream order.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// The pass's id, as `sync_runs.pass_id` has it (empty: not a pass).
    pub pass_id: String,
    pub streams: Vec<StreamReport>,
}

impl PassReport {
    /// True when every stream succeeded or stopped only because its request
    /// budget was spent (rate limits never fail a pass).
    pub fn all_succeeded(&self) -> bool {
        self.streams.iter().all(|s| s.outcome.is_good())
    }

    /// Streams that failed.
    pub fn n_failed(&self) -> usize {
        self.streams
            .iter()
            .filter(|s| s.outcome == RunOutcome::Failed)
            .count()
    }

    /// Streams that failed or were interrupted.
    pub fn n_not_good(&self) -> usize {
        self.streams.iter().filter(|s| !s.outcome.is_good()).count()
    }
}

/// Hears how each stream of a pass advances. Called from the pass's tasks.
pub trait PassObserver: Send + Sync {
    /// The stream planned its windows.
    fn started(&self, report: &StreamReport);
    /// A window was committed, or the budget made the stream wait; the report
    /// holds the figures so far.
    fn advanced(&self, report: &StreamReport);
    /// The stream's pass ended.
    fn finished(&self, report: &StreamReport);
}

/// A shareable [`PassObserver`].
#[derive(Clone)]
pub struct Observer(pub Arc<dyn PassObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// The outcome an API error ends a stream's pass with: a spent budget and a
/// shutdown are not failures; everything else is.
pub fn outcome_of(e: &ApiError) -> RunOutcome {
    match e {
        ApiError::BudgetExhausted { .. } => RunOutcome::BudgetSpent,
        ApiError::Cancelled => RunOutcome::Interrupted,
        _ => RunOutcome::Failed,
    }
}

impl StreamReport {
    /// A stream about to read `windows_planned` windows from `watermark`.
    pub fn new(key: StreamKey, windows_planned: usize, watermark: Option<DateTime<Utc>>) -> Self {
        StreamReport {
            key,
            outcome: RunOutcome::Succeeded,
            windows_planned: u32::try_from(windows_planned).unwrap_or(u32::MAX),
            windows_done: 0,
            requests: 0,
            retries: 0,
            rate_limited: 0,
            budget_wait: Duration::ZERO,
            fetch_time: Duration::ZERO,
            store_time: Duration::ZERO,
            sessions_received: 0,
            sessions_written: 0,
            records_rejected: 0,
            sessions_deleted: 0,
            sessions_marked: 0,
            watermark,
            error: None,
        }
    }

    /// Adds what some API calls cost.
    pub fn add(&mut self, stats: &CallStats) {
        self.requests += stats.requests;
        self.retries += stats.retries;
        self.rate_limited += stats.rate_limited;
        self.budget_wait += stats.budget_wait;
    }

    pub(super) fn stop(&mut self, outcome: RunOutcome, why: String) {
        self.outcome = outcome;
        self.error = Some(why);
    }

    /// Ends the stream's pass on an API error, with the outcome
    /// [`outcome_of`] gives; `window` is the one being read, if any.
    pub(super) fn fail(&mut self, e: &ApiError, stop: &Stop, window: Option<&Window>) {
        let outcome = outcome_of(e);
        let why = match outcome {
            RunOutcome::BudgetSpent => {
                info!(stream = %self.key, error = %e, windows_done = self.windows_done,
                      "request budget spent: committed what was read, ending this stream's pass");
                e.to_string()
            }
            RunOutcome::Interrupted => {
                format!("{}; the window being read was not committed", stop.reason())
            }
            _ => {
                warn!(stream = %self.key, window_start = ?window.map(|w| w.start),
                      window_end = ?window.map(|w| w.end), error = %e,
                      "the stream stops at its last committed window");
                e.to_string()
            }
        };
        self.stop(outcome, why);
    }

    /// The row `sync_runs` keeps for this stream's run.
    pub(super) fn run_record(&self) -> RunRecord {
        RunRecord {
            outcome: self.outcome,
            windows_planned: self.windows_planned,
            windows_done: self.windows_done,
            requests: self.requests,
            retries: self.retries,
            rate_limited: self.rate_limited,
            sessions_upserted: self.sessions_written,
            sessions_deleted: self.sessions_deleted,
            sessions_marked_deleted: self.sessions_marked,
            records_rejected: self.records_rejected,
            watermark_after: self.watermark,
            error: self.error.clone(),
        }
    }

    /// The metrics event for this stream's pass.
    pub(super) fn ended(&self) -> StreamPassEnded<'_> {
        StreamPassEnded {
            key: &self.key,
            outcome: self.outcome,
            n_written: self.sessions_written,
            n_deleted: self.sessions_deleted,
            n_rejected: self.records_rejected,
            watermark: self.watermark,
        }
    }

    /// The stream's one INFO line per pass.
    pub(super) fn log(&self) {
        info!(
            stream = %self.key,
            outcome = self.outcome.as_str(),
            windows = self.windows_done,
            windows_planned = self.windows_planned,
            requests = self.requests,
            retries = self.retries,
            rate_limited = self.rate_limited,
            n_sessions = self.sessions_received,
            n_written = self.sessions_written,
            n_deleted = self.sessions_deleted,
            n_marked = self.sessions_marked,
            n_rejected = self.records_rejected,
            watermark = ?self.watermark.map(|w| w.to_rfc3339()),
            "stream pass finished"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContainmentType;

    fn report(outcome: RunOutcome) -> StreamReport {
        let key = StreamKey::sessions("st-1", ContainmentType::Agent, "");
        StreamReport {
            outcome,
            ..StreamReport::new(key, 1, None)
        }
    }

    #[test]
    fn a_spent_budget_and_a_shutdown_are_not_failures() {
        let cases = [
            (
                ApiError::BudgetExhausted {
                    wait: Duration::from_secs(60),
                },
                RunOutcome::BudgetSpent,
            ),
            (ApiError::Cancelled, RunOutcome::Interrupted),
            (
                ApiError::Server {
                    status: 503,
                    message: "down".into(),
                },
                RunOutcome::Failed,
            ),
            (
                ApiError::Rejected {
                    status: 400,
                    message: "bad".into(),
                },
                RunOutcome::Failed,
            ),
            (ApiError::EndlessPaging { pages: 9 }, RunOutcome::Failed),
        ];
        for (e, want) in cases {
            assert_eq!(outcome_of(&e), want, "{e}");
        }
    }

    #[test]
    fn a_pass_succeeds_when_every_stream_is_good() {
        let pass = |outcomes: &[RunOutcome]| PassReport {
            pass_id: "p".into(),
            streams: outcomes.iter().map(|&o| report(o)).collect(),
        };
        let good = pass(&[RunOutcome::Succeeded, RunOutcome::BudgetSpent]);
        assert!(good.all_succeeded());
        assert_eq!(good.n_failed(), 0);
        let bad = pass(&[
            RunOutcome::Succeeded,
            RunOutcome::Interrupted,
            RunOutcome::Failed,
        ]);
        assert!(!bad.all_succeeded());
        assert_eq!(bad.n_failed(), 1);
        assert_eq!(bad.n_not_good(), 2);
        assert!(PassReport::default().all_succeeded());
    }
}
