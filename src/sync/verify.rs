//! `verify`: the per-pass reconcile check over a whole range of history —
//! by default from `sync.start` to each stream's watermark — one count
//! request per window (just under 7 days) per stream, then a repair of the
//! windows that differ unless it only looks (`dry_run`); LLM usage, which
//! has no count, is listed window by window instead (`llm_check`). Recorded in
//! `sync_runs` with trigger `verify`; it shares each scope's request budget
//! with passes (the daemon never runs both at once). Scopes are checked
//! concurrently, as a pass syncs them: a fleet's `verify` takes about as
//! long as its busiest bot's requests, not the sum of every bot's.

use super::analytics_check::verify_analytics;
use super::context::{ScopeApi, SyncContext};
use super::llm_check::verify_llm_usage;
use super::orphans::{self, OrphanCheck};
use super::plan;
use super::reconcile::{Differing, Reconcile, WindowCheck};
use super::report::{Observer, StreamReport};
use super::resource::{Sessions, StreamIo};
use super::scopes::{ScopeDone, run_scopes};
use super::stop::Stop;
use super::verify_messages::verify_messages;
use crate::model::{ACCOUNT_BOT_ID, RunOutcome, StreamKey, Window};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::instrument;

/// What `verify` is asked to check.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Default: `sync.start`.
    pub from: Option<DateTime<Utc>>,
    /// Default: each stream's watermark (a stream without one is skipped).
    pub to: Option<DateTime<Utc>>,
    /// Only this bot (or `*`); None: every scope.
    pub only_bot: Option<String>,
    /// Count only: report the windows that differ, change nothing.
    pub dry_run: bool,
    /// How long a request may wait for the scope's budget before the stream
    /// stops (`budget_spent`); None: as long as it takes.
    pub max_budget_wait: Option<std::time::Duration>,
    /// Stop (`interrupted`) after this long; None: no deadline.
    pub deadline: Option<std::time::Duration>,
    /// Told about each stream's progress, window by window.
    pub observer: Option<Observer>,
}

/// One window of one stream, as `verify` found (and left) it.
#[derive(Debug, Clone)]
pub struct VerifyRow {
    pub key: StreamKey,
    pub check: WindowCheck,
}

/// What `verify` found, window by window, and each stream's run.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub rows: Vec<VerifyRow>,
    pub streams: Vec<StreamReport>,
    /// Per bot: messages whose session is not in the warehouse (issue 21).
    pub orphans: Vec<OrphanCheck>,
    /// Why `verify` stopped before checking every stream (shutdown, the
    /// deadline); None when it checked them all.
    pub stopped: Option<String>,
}

impl VerifyReport {
    /// Whether verify changed the warehouse (so there is something new to
    /// publish).
    pub fn changed(&self) -> bool {
        self.streams
            .iter()
            .any(|s| s.sessions_written + s.sessions_deleted + s.sessions_marked > 0)
            || self.orphans.iter().any(|o| o.n_found + o.n_gone > 0)
    }

    /// Every window checked matches the API (after repairs), every stream
    /// was checked to its end, and no message lacks its session.
    pub fn all_equal(&self) -> bool {
        self.stopped.is_none()
            && self
                .orphans
                .iter()
                .all(|o| o.n_left == 0 && o.error.is_none())
            && self.rows.iter().all(|r| r.check.equal)
            && self
                .streams
                .iter()
                .all(|s| s.outcome == RunOutcome::Succeeded)
    }
}

/// Checks (and unless `dry_run`, repairs) every selected stream: every
/// scope at once, as a pass runs them (each waits only for its own request
/// budget), and within a scope its streams one after another. On shutdown
/// or at the deadline the streams under way stop as `interrupted` and no
/// other begins; the report says so (`stopped`).
#[instrument(skip_all, fields(dry_run = opts.dry_run))]
pub async fn verify(
    ctx: &SyncContext,
    opts: &VerifyOptions,
    cancel: &CancellationToken,
) -> Result<VerifyReport, StoreError> {
    let stop = Stop::new(cancel, opts.deadline.unwrap_or(ctx.settings.pass_deadline));
    let _deadline = opts.deadline.map(|_| stop.arm_deadline());
    let pass_id = uuid::Uuid::new_v4().to_string();
    let run = |scope: ScopeApi| {
        let task = ScopeCheck {
            ctx: ctx.clone(),
            scope,
            opts: opts.clone(),
            stop: stop.clone(),
            pass_id: pass_id.clone(),
        };
        task.run()
    };
    let mut report = VerifyReport::default();
    for part in run_scopes(ctx, opts.only_bot.as_deref(), run).await? {
        report.rows.extend(part.rows);
        report.streams.extend(part.streams);
        report.orphans.extend(part.orphans);
        report.stopped = report.stopped.or(part.stopped);
    }
    // A stop that came once every stream had begun still left some
    // unfinished.
    let interrupted = report
        .streams
        .iter()
        .any(|s| s.outcome == RunOutcome::Interrupted);
    if report.stopped.is_none() && interrupted {
        report.stopped = Some(stop.cause());
    }
    Ok(report)
}

/// One scope's part of `verify`, owned so it can run as its own task.
struct ScopeCheck {
    ctx: SyncContext,
    scope: ScopeApi,
    opts: VerifyOptions,
    stop: Stop,
    pass_id: String,
}

impl ScopeCheck {
    /// The scope's sessions, then (after they are repaired) its messages —
    /// counted per channel, and those left without a session (getMessagesV2
    /// has no account-wide form) — then analytics and LLM usage.
    async fn run(self) -> ScopeDone<VerifyReport> {
        let (ctx, scope, opts) = (&self.ctx, &self.scope, &self.opts);
        let during = (self.pass_id.as_str(), &self.stop);
        let mut report = VerifyReport::default();
        let of_bot = scope.scope.bot_id != ACCOUNT_BOT_ID;
        let mut result = verify_scope(ctx, scope, opts, during, &mut report).await;
        if result.is_ok() && of_bot {
            result = verify_messages((ctx, scope), opts, during, &mut report).await;
        }
        if result.is_ok() {
            result = verify_analytics((ctx, scope), opts, during, &mut report).await;
        }
        if result.is_ok() {
            result = verify_llm_usage((ctx, scope), opts, during, &mut report).await;
        }
        if result.is_ok() && of_bot && !stopped(&self.stop, &mut report) {
            let wait = opts.max_budget_wait;
            match orphans::confirm((ctx, scope), opts.dry_run, wait, &self.stop).await {
                Ok(check) => report.orphans.push(check),
                Err(e) => result = Err(e),
            }
        }
        ScopeDone {
            bot_id: scope.scope.bot_id.clone(),
            outcome: result.map(|()| report),
            requests: scope.api.budget().take_unsaved(),
            forget_closed: false,
        }
    }
}

/// Whether `verify` has been told to stop; if so, notes why in `out`, for
/// the streams it will now leave unchecked. Asked before each stream
/// begins, so that a stop ends `verify` at once rather than recording every
/// stream left as interrupted.
pub(super) fn stopped(stop: &Stop, out: &mut VerifyReport) -> bool {
    let stopped = stop.token.is_cancelled();
    if stopped && out.stopped.is_none() {
        out.stopped = Some(stop.cause());
    }
    stopped
}

/// What verify checks of stream `key`: its watermark (a watermark reached
/// under another filter counts as absent) and the windows of `[from, to)`
/// — by default `sync.start` to the watermark; None without either.
pub(super) async fn span_to_verify(
    ctx: &SyncContext,
    key: &StreamKey,
    opts: &VerifyOptions,
) -> Result<Option<(Option<DateTime<Utc>>, Vec<Window>)>, StoreError> {
    let (watermark, filter) = ctx.store.watermark_with_filter(key).await?;
    let watermark = watermark.filter(|_| filter.as_deref() == Some(key.filter.as_str()));
    let from = opts.from.unwrap_or(ctx.settings.plan.start);
    let Some(to) = opts.to.or(watermark) else {
        return Ok(None);
    };
    Ok(Some((watermark, plan::plan_verify(from, to).windows)))
}

/// One scope's streams, in turn.
async fn verify_scope(
    ctx: &SyncContext,
    scope: &ScopeApi,
    opts: &VerifyOptions,
    (pass_id, stop): (&str, &Stop),
    out: &mut VerifyReport,
) -> Result<(), StoreError> {
    for &containment_type in &ctx.settings.containment_types {
        if stopped(stop, out) {
            break;
        }
        let key = StreamKey::sessions(
            &scope.scope.bot_id,
            containment_type,
            &scope.scope.filter.fingerprint(),
        );
        let Some((watermark, windows)) = span_to_verify(ctx, &key, opts).await? else {
            continue;
        };
        let run_id = ctx.store.begin_run(pass_id, &key, "verify").await?;
        let mut report = StreamReport::new(key.clone(), windows.len(), watermark);
        let sessions = Sessions {
            io: StreamIo::new((ctx, scope), &key, opts.max_budget_wait, &stop.token),
            filter: &scope.scope.filter,
            deletes: ctx.settings.deletes,
        };
        let job = Reconcile {
            sessions: &sessions,
            differing: if opts.dry_run {
                Differing::Report
            } else {
                Differing::Repair
            },
        };
        let observer = opts.observer.as_ref();
        if let Some(o) = observer {
            o.0.started(&report);
        }
        for window in &windows {
            // An empty answer means the stream stopped (failed, budget,
            // shutdown): its report says why.
            let checks = job
                .windows(std::slice::from_ref(window), &mut report, stop)
                .await?;
            let Some(check) = checks.into_iter().next() else {
                break;
            };
            report.windows_done += 1;
            if let Some(o) = observer {
                o.0.advanced(&report);
            }
            out.rows.push(VerifyRow {
                key: key.clone(),
                check,
            });
        }
        if let Some(o) = observer {
            o.0.finished(&report);
        }
        ctx.store.finish_run(run_id, report.run_record()).await?;
        report.log();
        out.streams.push(report);
    }
    Ok(())
}
