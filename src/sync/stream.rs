//! A stream's pass, as named steps: record the run's start, find where the
//! stream stands (its watermark, under its filter), plan the windows, read
//! and commit them oldest first, re-read sessions stored as active, record
//! the run's end.
//!
//! Architecture invariant: a window's watermark moves only after every one
//! of its pages was read, and windows commit oldest first, one at a time or
//! a few sparse ones together. The next window is read while the previous
//! ones commit (`StorePipe`), so a failure or shutdown loses at most the
//! windows being stored and held (fewer records than `HOLD_RECORDS`) and
//! the one being read, which the next pass reads again.

use super::analytics::Analytics;
use super::analytics_check::check_windows;
use super::context::{ScopeApi, SyncContext};
use super::fetch::{Fetch, FetchError, Fetched};
use super::llm::{LLM_MAX_DAYS, LlmUsageStream};
use super::messages::{Messages, reread_groups};
use super::options::PassOptions;
use super::plan::{self, WindowPlan};
use super::reconcile::{Differing, reconcile_behind};
use super::refresh::refresh_stale_active;
use super::report::{Observer, StreamReport};
use super::resource::{Resource, Sessions, StreamIo};
use super::stop::Stop;
use super::store_pipe::StorePipe;
use crate::api::CallStats;
use crate::model::{AnalyticsType, Batch, Partition, RunOutcome, StreamKey, Window};
use crate::store::{StoreError, StoredState};
use chrono::{DateTime, Utc};
use std::time::Instant;
use tracing::info;

/// One stream's part of a pass.
pub(super) struct StreamRun<'a> {
    pub ctx: &'a SyncContext,
    pub scope: &'a ScopeApi,
    pub key: StreamKey,
    pub opts: &'a PassOptions,
    pub stop: &'a Stop,
    /// How far the bot's session streams have read (the lowest of their
    /// watermarks; None while any has none). A message stream's windows end
    /// no later (`plan::ending_by`), so every message stored has had its
    /// session listed first (issue 21). Unused by session streams.
    pub sessions_read: Option<DateTime<Utc>>,
    /// Its stored watermark and filter as its turn began (read with its
    /// group's, `stream_states`).
    pub stored: StoredState,
    /// The channels an analytics stream's requests name (see
    /// `analytics_channels`); unused by the others.
    pub channels: &'a [String],
    /// When its group began: every stream of a group plans its windows
    /// up to the same instant, so a bot's analytics streams check the same
    /// windows behind their watermarks and the store counts them together
    /// (`store::analytics_counts`). What lands after it waits for the next
    /// pass, as it would for a stream planned a moment earlier.
    pub now: DateTime<Utc>,
}

/// Runs one stream's pass; the caller records its end in `sync_runs` (with
/// its group's, see `finish_runs`). `Err` only when the warehouse fails;
/// API failures end the stream in its report.
pub(super) async fn run_stream(run: StreamRun<'_>) -> Result<StreamReport, StoreError> {
    let (key, opts) = (&run.key, run.opts);
    let watermark = run.starting_watermark().await?;
    let plan = run.plan(watermark);
    let mut report = StreamReport::new(key.clone(), plan.windows.len(), watermark);
    let observer = opts.observer.as_ref();
    if let Some(o) = observer {
        o.0.started(&report);
    }
    match &key.partition {
        Partition::Containment(_) => run.read_sessions(&plan, &mut report).await?,
        Partition::Channel(channel) => run.read_messages(channel, &plan, &mut report).await?,
        Partition::Analytics(kind) => run.read_analytics(*kind, &plan, &mut report).await?,
        Partition::LlmUsage => {
            let llm = LlmUsageStream {
                io: run.io(),
                pages: &run.scope.llm_pages,
            };
            let observer = opts.observer.as_ref();
            read_windows(&llm, &plan.windows, &mut report, run.stop, observer).await?;
        }
    }
    if let Some(o) = observer {
        o.0.finished(&report);
    }
    report.log();
    Ok(report)
}

impl StreamRun<'_> {
    /// What this stream reads and stores with.
    fn io(&self) -> StreamIo<'_> {
        StreamIo::new(
            (self.ctx, self.scope),
            &self.key,
            self.opts.max_budget_wait,
            &self.stop.token,
        )
    }

    /// A sessions stream: its windows, then behind the watermark (sessions
    /// listed late or erased), then sessions stored as active.
    async fn read_sessions(
        &self,
        plan: &WindowPlan,
        report: &mut StreamReport,
    ) -> Result<(), StoreError> {
        let (ctx, opts) = (self.ctx, self.opts);
        let sessions = Sessions {
            io: self.io(),
            filter: &self.scope.scope.filter,
            deletes: ctx.settings.deletes,
        };
        let observer = opts.observer.as_ref();
        read_windows(&sessions, &plan.windows, report, self.stop, observer).await?;
        // Behind the watermark: sessions listed late, and sessions erased.
        if report.outcome == RunOutcome::Succeeded && opts.range.is_none() {
            reconcile_behind(&sessions, &ctx.settings, report, self.stop).await?;
        }
        // Sessions stored as active whose start is now before the span this
        // pass re-read: read them by id so their final state lands, and drop
        // those the API no longer has.
        if report.outcome == RunOutcome::Succeeded && opts.range.is_none() {
            refresh_stale_active(&sessions, plan.begin, report, self.stop).await?;
        }
        Ok(())
    }

    /// A messages stream: its windows, then the messages of sessions that
    /// closed after the lookback passed their start. (Those of sessions that
    /// closed sooner are caught by the lookback, which re-reads the latest
    /// span.)
    async fn read_messages(
        &self,
        channel: &str,
        plan: &WindowPlan,
        report: &mut StreamReport,
    ) -> Result<(), StoreError> {
        let opts = self.opts;
        let messages = Messages {
            io: self.io(),
            pages: &self.scope.message_pages,
            channel,
            sessions: None,
        };
        let observer = opts.observer.as_ref();
        read_windows(&messages, &plan.windows, report, self.stop, observer).await?;
        if report.outcome == RunOutcome::Succeeded && opts.range.is_none() {
            self.reread_closed(channel, report).await?;
        }
        Ok(())
    }

    /// An analytics stream: its windows, each request naming the bot's
    /// channels; then behind the watermark, events listed late or erased
    /// (`analytics_check`).
    async fn read_analytics(
        &self,
        kind: AnalyticsType,
        plan: &WindowPlan,
        report: &mut StreamReport,
    ) -> Result<(), StoreError> {
        let analytics = Analytics {
            io: self.io(),
            pages: &self.scope.analytics_pages,
            kind,
            channels: self.channels,
        };
        let (opts, settings) = (self.opts, &self.ctx.settings);
        let observer = opts.observer.as_ref();
        read_windows(&analytics, &plan.windows, report, self.stop, observer).await?;
        if report.outcome == RunOutcome::Succeeded && opts.range.is_none() {
            let behind = plan::plan_reconcile(report.watermark, &settings.plan, settings.reconcile);
            let during = (&mut *report, self.stop);
            check_windows(&analytics, &behind.windows, Differing::Repair, during).await?;
        }
        Ok(())
    }

    /// Reads again, by session id, the messages of the channel's sessions
    /// seen closing whose start lies before the watermark less the lookback:
    /// they gained messages dated where the date windows will not look
    /// again. Each group is a window behind the watermark, which it never
    /// moves; a group's sessions are forgotten once their messages are
    /// stored.
    async fn reread_closed(
        &self,
        channel: &str,
        report: &mut StreamReport,
    ) -> Result<(), StoreError> {
        let (store, plan) = (&self.ctx.store, &self.ctx.settings.plan);
        // Where this run's windows left the stream (its stored watermark:
        // each window's commit answered with it).
        let Some(watermark) = report.watermark else {
            return Ok(());
        };
        let closed = store
            .closed_sessions((&self.key.bot_id, channel), watermark - plan.lookback)
            .await?;
        let groups = reread_groups(&closed, plan.window, watermark);
        if !groups.is_empty() {
            info!(stream = %self.key, n_sessions = closed.len(), n_groups = groups.len(),
                "reading again the messages of sessions that closed after the lookback");
        }
        for (window, ids) in &groups {
            let messages = Messages {
                io: self.io(),
                pages: &self.scope.message_pages,
                channel,
                sessions: Some(ids),
            };
            report.windows_planned += 1;
            let observer = self.opts.observer.as_ref();
            read_windows(
                &messages,
                std::slice::from_ref(window),
                report,
                self.stop,
                observer,
            )
            .await?;
            if report.outcome != RunOutcome::Succeeded {
                break;
            }
            store.forget_closed(ids.clone()).await?;
        }
        Ok(())
    }

    /// The watermark this pass starts from. A watermark reached under another
    /// filter counts only when `sync.restart_on_filter_change` is false (it
    /// is then adopted under the new filter); otherwise the stream reads
    /// again from `sync.start`.
    async fn starting_watermark(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (store, key) = (&self.ctx.store, &self.key);
        let (stored, stored_filter) = self.stored.clone();
        match stored_filter {
            Some(f) if f != key.filter && self.ctx.settings.restart_on_filter_change => {
                info!(stream = %key, old_filter = %f, new_filter = %key.filter,
                      "the stream's filter changed: reading it again from sync.start");
                Ok(None)
            }
            Some(f) if f != key.filter => {
                info!(stream = %key, old_filter = %f, new_filter = %key.filter,
                      "the stream's filter changed: keeping its watermark (sync.restart_on_filter_change = false)");
                store.adopt_filter(key).await?;
                Ok(stored)
            }
            _ => Ok(stored),
        }
    }

    /// The windows to read: a backfill's range, or from the watermark.
    fn plan(&self, watermark: Option<DateTime<Utc>>) -> WindowPlan {
        let (now, settings) = (self.now, &self.ctx.settings.plan);
        let plan = match self.opts.range {
            Some((from, to)) => plan::plan_backfill(from, to, now, settings),
            None => plan::plan_pass(watermark, now, settings),
        };
        match self.key.partition {
            Partition::Containment(_) | Partition::Analytics(_) => plan,
            Partition::LlmUsage => plan::whole_days(plan, LLM_MAX_DAYS),
            Partition::Channel(_) => plan::ending_by(plan, self.sessions_read),
        }
    }
}

/// Consecutive windows completely read are held and committed together
/// (one transaction, the watermark moved to the last one's end) while they
/// hold fewer records than this: each commit costs DuckDB milliseconds
/// whatever its size, which a backfill of sparse windows paid per window
/// (issue 23). A window denser than this is stored in chunks anyway.
pub const HOLD_RECORDS: usize = 4_000;

/// Windows read and held for one commit (see [`HOLD_RECORDS`]).
struct Held<T> {
    /// From the first one's start to the last one's end.
    span: Window,
    batch: Batch<T>,
    n_windows: u32,
}

impl<T> Held<T> {
    /// `held` (if any) followed by `window`, completely read.
    fn join(held: Option<Held<T>>, window: Window, batch: Batch<T>) -> Held<T> {
        match held {
            None => Held {
                span: window,
                batch,
                n_windows: 1,
            },
            Some(h) => Held {
                span: Window {
                    start: h.span.start,
                    end: window.end,
                },
                batch: h.batch.followed_by(batch),
                n_windows: h.n_windows + 1,
            },
        }
    }

    fn commit<R: Resource<Record = T>>(self, resource: &R, pipe: &StorePipe) {
        let n_rejected = self.batch.rejected.len();
        pipe.start_windows(
            (self.n_windows, n_rejected),
            resource.commit_window(self.span, self.batch),
        );
    }
}

/// What the stream stored in `window` that its complete read, `fetched`,
/// no longer lists, removed where the resource does so (see
/// [`Resource::remove_unlisted`]) and counted in `report`.
async fn remove_unlisted<R: Resource>(
    resource: &R,
    window: Window,
    fetched: Fetched<R::Record>,
    report: &mut StreamReport,
) -> Result<Fetched<R::Record>, FetchError> {
    let mut stats = CallStats::default();
    let removed = resource
        .remove_unlisted(window, &fetched.ids, &mut stats)
        .await;
    report.add(&stats);
    report.sessions_deleted += removed?;
    Ok(fetched)
}

/// Reads and commits `windows` in order: window k commits while window k+1
/// is read (store jobs run one at a time and in order, see `StorePipe`),
/// sparse consecutive windows together ([`HOLD_RECORDS`]), so the
/// watermark moves oldest first, each time in the transaction that stored
/// the windows it passes. Ends at the first API failure or stop; windows
/// completely read before it are committed.
pub(super) async fn read_windows<R: Resource>(
    resource: &R,
    windows: &[Window],
    report: &mut StreamReport,
    stop: &Stop,
    observer: Option<&Observer>,
) -> Result<(), StoreError> {
    let fetch = Fetch::new(resource);
    let mut held = None;
    for (i, window) in windows.iter().enumerate() {
        if stop.token.is_cancelled() {
            report.stop(RunOutcome::Interrupted, stop.reason());
            break;
        }
        let mut stats = CallStats::default();
        let started = Instant::now();
        let fetched = fetch.window(*window, &mut stats).await;
        report.fetch_time += started.elapsed();
        report.add(&stats);
        // Before the next job starts, the one in flight (earlier chunks of
        // this window, or the previous windows) must have landed.
        fetch.pipe.settle().await?;
        fetch.pipe.count(report, observer);
        let fetched = match fetched {
            Ok(fetched) => remove_unlisted(resource, *window, fetched, report).await,
            Err(e) => Err(e),
        };
        let batch = match fetched {
            Ok(fetched) => fetched.batch,
            Err(FetchError::Api(e)) => {
                report.fail(&e, stop, Some(window));
                break;
            }
            Err(FetchError::Store(e)) => return Err(e),
        };
        let joined = Held::join(held.take(), *window, batch);
        if i + 1 < windows.len() && joined.batch.records.len() < HOLD_RECORDS {
            held = Some(joined);
        } else {
            joined.commit(resource, &fetch.pipe);
        }
    }
    if let Some(held) = held {
        fetch.pipe.settle().await?;
        fetch.pipe.count(report, observer);
        held.commit(resource, &fetch.pipe);
    }
    fetch.pipe.settle().await?;
    fetch.pipe.count(report, observer);
    Ok(())
}
