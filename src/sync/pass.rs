//! A pass: every selected scope concurrently, and within a scope its
//! streams one after another (they share the scope's request budget). Also
//! the pass's options and its stop signal (shutdown or deadline).

use super::context::{ScopeApi, SyncContext};
use super::report::{Observer, PassReport, StreamReport};
use super::stream::{StreamRun, run_stream};
use crate::model::StreamKey;
use crate::ops::metrics::PassEnded;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, instrument};

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

/// Runs one pass over every selected stream. Stream failures are reported in
/// the result, never returned as `Err`: one failing stream does not stop the
/// others from committing. `Err` means the warehouse itself failed.
#[instrument(skip_all, fields(trigger = opts.trigger.as_str()))]
pub async fn run_pass(
    ctx: &SyncContext,
    opts: &PassOptions,
    cancel: &CancellationToken,
) -> Result<PassReport, StoreError> {
    let started = Instant::now();
    let pass_id = uuid::Uuid::new_v4().to_string();
    let stop = Stop::new(cancel, ctx.settings.pass_deadline);
    // The deadline cancels only this pass's token, never the process's.
    let _deadline = stop.arm_deadline();
    let mut tasks = JoinSet::new();
    for scope in &ctx.scopes {
        if opts
            .only_bot
            .as_deref()
            .is_some_and(|b| b != scope.scope.bot_id)
        {
            continue;
        }
        let span = tracing::info_span!("scope", bot_id = %scope.scope.bot_id);
        let task = ScopeTask {
            ctx: ctx.clone(),
            scope: scope.clone(),
            opts: opts.clone(),
            stop: stop.clone(),
            pass_id: pass_id.clone(),
        };
        tasks.spawn(task.run().instrument(span));
    }
    let mut report = PassReport::default();
    let mut first_err = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(streams)) => report.streams.extend(streams),
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(e) => first_err = first_err.or(Some(StoreError::Worker(e.to_string()))),
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    PassEnded {
        took: started.elapsed(),
    }
    .emit();
    for s in &report.streams {
        s.ended().emit();
    }
    report.streams.sort_by(|a, b| {
        let order = |s: &StreamReport| (s.key.bot_id.clone(), s.key.containment_type.as_str());
        order(a).cmp(&order(b))
    });
    Ok(report)
}

/// One scope's part of a pass, owned so it can run as its own task.
struct ScopeTask {
    ctx: SyncContext,
    scope: ScopeApi,
    opts: PassOptions,
    stop: Stop,
    pass_id: String,
}

impl ScopeTask {
    /// Runs the scope's streams in turn. The budget starts from every
    /// request any process sent for this scope in the last hour, and leaves
    /// its own behind for the next.
    async fn run(self) -> Result<Vec<StreamReport>, StoreError> {
        let (store, api) = (&self.ctx.store, &self.scope.api);
        let history = store.request_history(api.bot_id()).await?;
        api.budget().load_history(&history);
        let mut reports = Vec::new();
        let mut result = Ok(());
        for &containment_type in &self.ctx.settings.containment_types {
            let key = StreamKey {
                bot_id: api.bot_id().to_owned(),
                containment_type,
                filter: self.scope.scope.filter.fingerprint(),
            };
            let run = StreamRun {
                ctx: &self.ctx,
                scope: &self.scope,
                key,
                opts: &self.opts,
                pass_id: &self.pass_id,
                stop: &self.stop,
            };
            match run_stream(run).await {
                Ok(r) => reports.push(r),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        store
            .record_requests(api.bot_id(), api.budget().take_unsaved())
            .await?;
        result.map(|()| reports)
    }
}

/// The pass's stop signal: shutdown (the process-wide token) or the pass
/// deadline, whichever comes first.
#[derive(Clone)]
pub(super) struct Stop {
    /// Cancelled on shutdown or at the deadline: what the pass's work watches.
    pub(super) token: CancellationToken,
    shutdown: CancellationToken,
    deadline: Duration,
}

impl Stop {
    fn new(shutdown: &CancellationToken, deadline: Duration) -> Self {
        Stop {
            token: shutdown.child_token(),
            shutdown: shutdown.clone(),
            deadline,
        }
    }

    /// Cancels this pass's token when the deadline passes, unless the
    /// returned guard is dropped first (the pass ended).
    fn arm_deadline(&self) -> AbortOnDrop {
        let (token, deadline) = (self.token.clone(), self.deadline);
        AbortOnDrop(
            tokio::spawn(async move {
                tokio::time::sleep(deadline).await;
                token.cancel();
            })
            .abort_handle(),
        )
    }

    /// Why the pass stopped, for the stream's report.
    pub(super) fn reason(&self) -> String {
        if self.shutdown.is_cancelled() {
            "shutdown requested; the next pass continues from the watermark".to_owned()
        } else {
            format!(
                "the pass deadline ({}) was reached; the next pass continues from the watermark",
                humantime::format_duration(self.deadline)
            )
        }
    }
}

/// Aborts a helper task when the pass that spawned it ends, however it ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
