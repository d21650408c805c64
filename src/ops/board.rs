//! The status board: what the status page (`GET /`) and `/status.json`
//! show, kept in memory by the daemon and read by the server.
//!
//! The daemon reads a [`BoardSnapshot`] from the warehouse after each pass,
//! while it still holds the warehouse it wrote (and once at start), and
//! hands it to the [`Board`]; the server never opens the warehouse, so a
//! page request can neither wait on a pass nor hold one up. What changes
//! between passes is computed when the page is asked for: each stream's lag
//! from its watermark and the clock, and the request budget from the
//! scopes' live budgets (a closure the daemon gives, since `ops` sits below
//! `api`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// One stream as the warehouse last showed it.
#[derive(Debug, Clone, Serialize)]
pub struct BoardStream {
    pub bot_id: String,
    /// The bot's name, as the API gave it (unescaped: the page escapes it).
    pub bot_name: Option<String>,
    /// `sessions`, `messages`, `analytics` or `llm_usage`.
    pub resource: String,
    /// A containment type, a channel, an analytics type, or `all`.
    pub partition: String,
    pub watermark: Option<DateTime<Utc>>,
    /// Rows the stream holds (live sessions, messages, events, calls).
    pub n_records: i64,
    pub last_run: Option<BoardRun>,
}

/// A stream's last run.
#[derive(Debug, Clone, Serialize)]
pub struct BoardRun {
    /// `schedule`, `manual` or `backfill`.
    pub trigger: String,
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub requests: i64,
    /// Records written (new or changed).
    pub n_written: i64,
    pub error: Option<String>,
}

/// One pass of the last 24 hours (its stream runs summed).
#[derive(Debug, Clone, Serialize)]
pub struct PassPoint {
    pub started_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub requests: i64,
    pub n_written: i64,
    /// Streams that failed or were interrupted.
    pub n_failed: i64,
}

/// Live sessions that started on one UTC day, of one containment type.
#[derive(Debug, Clone, Serialize)]
pub struct DaySessions {
    pub day: NaiveDate,
    pub containment_type: String,
    pub n_sessions: i64,
}

/// What the warehouse showed after a pass.
#[derive(Debug, Clone, Serialize)]
pub struct BoardSnapshot {
    pub read_at: DateTime<Utc>,
    pub streams: Vec<BoardStream>,
    /// Oldest first.
    pub passes: Vec<PassPoint>,
    /// By day, then containment type; days without sessions are absent.
    pub sessions_per_day: Vec<DaySessions>,
}

/// One bot's request budget, as used now.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetUse {
    pub bot_id: String,
    pub last_minute: u32,
    /// None: unlimited.
    pub per_minute: Option<u32>,
    pub last_hour: u32,
    pub per_hour: Option<u32>,
}

/// Reads every scope's budget now.
pub type BudgetSource = Arc<dyn Fn() -> Vec<BudgetUse> + Send + Sync>;

/// Shared by the daemon (which sets the snapshot) and the server.
#[derive(Clone)]
pub struct Board {
    snapshot: Arc<Mutex<Option<Arc<BoardSnapshot>>>>,
    budgets: BudgetSource,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board").finish_non_exhaustive()
    }
}

/// A stream with what the page computes when asked.
#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    #[serde(flatten)]
    pub stream: BoardStream,
    /// Seconds between the watermark and now.
    pub lag_seconds: Option<i64>,
}

/// Everything the page shows: `/status.json`'s body.
#[derive(Debug, Clone, Serialize)]
pub struct BoardView {
    pub generated_at: DateTime<Utc>,
    /// When the warehouse was last read (None: not yet).
    pub read_at: Option<DateTime<Utc>>,
    pub streams: Vec<StreamView>,
    pub budgets: Vec<BudgetUse>,
    pub passes: Vec<PassPoint>,
    pub sessions_per_day: Vec<DaySessions>,
}

impl Board {
    pub fn new(budgets: BudgetSource) -> Self {
        Board {
            snapshot: Arc::new(Mutex::new(None)),
            budgets,
        }
    }

    /// Where the live budgets are read.
    pub fn budgets(&self) -> &BudgetSource {
        &self.budgets
    }

    /// Replaces what the page shows of the warehouse.
    pub fn set(&self, snapshot: BoardSnapshot) {
        *self.snapshot.lock().expect("board lock") = Some(Arc::new(snapshot));
    }

    /// The page's data as of `now`.
    pub fn view(&self, now: DateTime<Utc>) -> BoardView {
        let snapshot = self.snapshot.lock().expect("board lock").clone();
        let streams = snapshot
            .as_ref()
            .map(|s| {
                s.streams
                    .iter()
                    .map(|st| StreamView {
                        lag_seconds: st.watermark.map(|w| (now - w).num_seconds()),
                        stream: st.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        BoardView {
            generated_at: now,
            read_at: snapshot.as_ref().map(|s| s.read_at),
            streams,
            budgets: (self.budgets)(),
            passes: snapshot
                .as_ref()
                .map(|s| s.passes.clone())
                .unwrap_or_default(),
            sessions_per_day: snapshot
                .as_ref()
                .map(|s| s.sessions_per_day.clone())
                .unwrap_or_default(),
        }
    }
}
