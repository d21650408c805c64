//! What a pass is asked to do: why it runs, what range (a backfill) or
//! which bot, how long a request may wait for budget, and who hears of its
//! progress.

use super::report::Observer;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// Why a pass runs; recorded in `sync_runs.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PassTrigger {
    Schedule,
    Manual,
    Backfill,
}

impl PassTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            PassTrigger::Schedule => "schedule",
            PassTrigger::Manual => "manual",
            PassTrigger::Backfill => "backfill",
        }
    }
}

/// Scheduled and manual passes wait at most this long for budget; longer
/// waits mean the hourly budget is spent.
pub const PASS_BUDGET_PATIENCE: Duration = Duration::from_secs(120);

/// What to read in a pass.
#[derive(Debug, Clone)]
pub struct PassOptions {
    pub trigger: PassTrigger,
    /// For a backfill: re-read exactly this range instead of planning from
    /// the watermark.
    pub range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Only this bot id (or `*`); None = every configured scope.
    pub only_bot: Option<String>,
    /// How long a request may wait for the scope's request budget before the
    /// stream ends its pass cleanly (the next pass continues). None: wait as
    /// long as it takes (backfills).
    pub max_budget_wait: Option<Duration>,
    /// Told about each stream's progress (the terminal progress bars).
    pub observer: Option<Observer>,
}

impl PassOptions {
    pub fn scheduled() -> Self {
        PassOptions {
            trigger: PassTrigger::Schedule,
            range: None,
            only_bot: None,
            max_budget_wait: Some(PASS_BUDGET_PATIENCE),
            observer: None,
        }
    }

    pub fn manual() -> Self {
        PassOptions {
            trigger: PassTrigger::Manual,
            ..Self::scheduled()
        }
    }

    /// A backfill of `range`: it was asked for explicitly, so it waits out
    /// the hourly budget.
    pub fn backfill(range: (DateTime<Utc>, DateTime<Utc>), only_bot: Option<String>) -> Self {
        PassOptions {
            trigger: PassTrigger::Backfill,
            range: Some(range),
            only_bot,
            max_budget_wait: None,
            observer: None,
        }
    }
}
