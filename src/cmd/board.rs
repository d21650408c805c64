//! The daemon's status board: what it reads from the warehouse for the
//! status page after each pass (`store::History` turned into
//! `ops::board::BoardSnapshot`), and the live request budgets of its
//! scopes. The page itself is drawn in `ops::page`.

use crate::ops::board::{
    Board, BoardRun, BoardSnapshot, BoardStream, BudgetSource, BudgetUse, DaySessions, PassPoint,
};
use crate::store::{History, SessionStore, StreamStatus};
use crate::sync::ScopeApi;
use chrono::{Duration, Utc};
use std::sync::Arc;
use tracing::warn;

/// Passes the page charts, and days of sessions.
const PASS_HOURS: i64 = 24;
const SESSION_DAYS: i64 = 30;

/// A board whose budgets are read from `scopes` when the page is asked for.
pub fn new_board(scopes: &[ScopeApi]) -> Board {
    let apis: Vec<(String, crate::api::KoreApi)> = scopes
        .iter()
        .map(|s| (s.scope.bot_id.clone(), s.api.clone()))
        .collect();
    let source: BudgetSource = Arc::new(move || {
        apis.iter()
            .map(|(bot_id, api)| {
                let u = api.budget().usage();
                BudgetUse {
                    bot_id: bot_id.clone(),
                    last_minute: u.last_minute,
                    per_minute: u.per_minute,
                    last_hour: u.last_hour,
                    per_hour: u.per_hour,
                }
            })
            .collect()
    });
    Board::new(source)
}

/// Reads what the page shows from `store` into `board`; a failure is
/// logged and leaves the page as it was (the page is not worth a pass).
pub async fn refresh(board: &Board, store: &SessionStore) {
    let now = Utc::now();
    let since_day = (now - Duration::days(SESSION_DAYS - 1)).date_naive();
    match store
        .history(now - Duration::hours(PASS_HOURS), since_day)
        .await
    {
        Ok(history) => board.set(snapshot(history, now)),
        Err(e) => warn!(error = %e, "could not read the warehouse for the status page"),
    }
}

fn snapshot(history: History, now: chrono::DateTime<Utc>) -> BoardSnapshot {
    BoardSnapshot {
        read_at: now,
        streams: history.status.streams.into_iter().map(stream).collect(),
        passes: history
            .passes
            .into_iter()
            .map(|p| PassPoint {
                started_at: p.started_at,
                duration_seconds: p.duration_seconds,
                requests: p.requests,
                n_written: p.n_written,
                n_failed: p.n_failed,
            })
            .collect(),
        sessions_per_day: history
            .sessions_per_day
            .into_iter()
            .map(|d| DaySessions {
                day: d.day,
                containment_type: d.containment_type,
                n_sessions: d.n_sessions,
            })
            .collect(),
    }
}

fn stream(s: StreamStatus) -> BoardStream {
    let last_run = match (s.last_run_started, s.last_outcome) {
        (Some(started_at), Some(outcome)) => Some(BoardRun {
            trigger: s.last_trigger.unwrap_or_default(),
            outcome,
            started_at,
            finished_at: s.last_run_finished,
            requests: s.last_run_requests.unwrap_or(0),
            n_written: s.last_run_written.unwrap_or(0),
            error: s.last_error,
        }),
        _ => None,
    };
    BoardStream {
        bot_id: s.bot_id,
        bot_name: s.bot_name,
        resource: s.resource,
        partition: s.containment_type,
        watermark: s.watermark,
        n_records: s.n_sessions,
        last_run,
    }
}
