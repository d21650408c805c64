//! `verify`: the per-pass reconcile check over a whole range of history —
//! by default from `sync.start` to each stream's watermark — one count
//! request per window (just under 7 days) per stream, then a repair of the
//! windows that differ unless it only looks (`dry_run`); LLM usage, which
//! has no count, is listed window by window instead (`llm_check`). Recorded in
//! `sync_runs` with trigger `verify`; it shares each scope's request budget
//! with passes (the daemon never runs both at once).

use super::analytics_check::verify_analytics;
use super::context::{ScopeApi, SyncContext};
use super::llm_check::verify_llm_usage;
use super::orphans::{self, OrphanCheck};
use super::plan;
use super::reconcile::{Differing, Reconcile, WindowCheck};
use super::report::{Observer, StreamReport};
use super::resource::{Sessions, StreamIo};
use super::stop::Stop;
use super::verify_messages::verify_messages;
use crate::model::{ACCOUNT_BOT_ID, RunOutcome, StreamKey, Window};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

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

    /// Every window checked matches the API (after repairs), no stream
    /// stopped early, and no message lacks its session.
    pub fn all_equal(&self) -> bool {
        self.orphans
            .iter()
            .all(|o| o.n_left == 0 && o.error.is_none())
            && self.rows.iter().all(|r| r.check.equal)
            && self
                .streams
                .iter()
                .all(|s| s.outcome == RunOutcome::Succeeded)
    }
}

/// Checks (and unless `dry_run`, repairs) every selected stream.
pub async fn verify(
    ctx: &SyncContext,
    opts: &VerifyOptions,
    cancel: &CancellationToken,
) -> Result<VerifyReport, StoreError> {
    let stop = Stop::new(cancel, opts.deadline.unwrap_or(ctx.settings.pass_deadline));
    let _deadline = opts.deadline.map(|_| stop.arm_deadline());
    let pass_id = uuid::Uuid::new_v4().to_string();
    let mut report = VerifyReport::default();
    for scope in ctx.selected(opts.only_bot.as_deref()) {
        let api = &scope.api;
        api.budget()
            .load_history(&ctx.store.request_history(api.bot_id()).await?);
        let mut result = verify_scope(ctx, scope, opts, (&pass_id, &stop), &mut report).await;
        // After the sessions are repaired, the messages: counted per
        // channel, and those left without a session (getMessagesV2 has no
        // account-wide form).
        if result.is_ok() && scope.scope.bot_id != ACCOUNT_BOT_ID {
            let during = (pass_id.as_str(), &stop);
            result = verify_messages((ctx, scope), opts, during, &mut report).await;
        }
        if result.is_ok() {
            let during = (pass_id.as_str(), &stop);
            result = verify_analytics((ctx, scope), opts, during, &mut report).await;
        }
        if result.is_ok() {
            let during = (pass_id.as_str(), &stop);
            result = verify_llm_usage((ctx, scope), opts, during, &mut report).await;
        }
        if result.is_ok() && scope.scope.bot_id != ACCOUNT_BOT_ID {
            let wait = opts.max_budget_wait;
            match orphans::confirm((ctx, scope), opts.dry_run, wait, &stop).await {
                Ok(check) => report.orphans.push(check),
                Err(e) => result = Err(e),
            }
        }
        ctx.store
            .record_requests(api.bot_id(), api.budget().take_unsaved())
            .await?;
        result?;
    }
    Ok(report)
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
