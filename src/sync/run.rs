//! The runner: executes a pass. Per scope (bot or account) concurrently, per
//! containment type in turn (they share the scope's request budget); per
//! stream, window by window, oldest first: page the window, then commit it
//! with the watermark in one transaction.
//!
//! Architecture invariant: a window's watermark moves only after every one of
//! its pages was read, and windows commit one at a time, oldest first. The
//! next window is read while the previous one commits (`StorePipe`), so a
//! failure or shutdown loses at most the window being stored and the one
//! being read, which the next pass reads again. (A dense window stores its
//! sessions in chunks as pages arrive, without moving the watermark, to
//! bound memory.)

use super::plan::{self, Window, WindowPlan};
use crate::api::wire::{self, SessionsRequest, format_api_time, parse_session};
use crate::api::{ApiError, CallStats, SessionsApi};
use crate::config::Config;
use crate::model::{ContainmentType, RejectedRecord, Session, StreamFilter, StreamKey};
use crate::store::{RunOutcome, RunRecord, SessionStore, StoreError, WindowCommit};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, instrument, warn};

/// A safety net against a server that never stops saying `moreAvailable`.
const MAX_PAGES_PER_WINDOW: u32 = 100_000;

/// Everything a pass needs, cheap to clone into tasks.
#[derive(Clone)]
pub struct SyncContext {
    pub config: Arc<Config>,
    pub store: SessionStore,
    /// One per configured scope, in config order.
    pub apis: Vec<SessionsApi>,
}

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

/// What to read in a pass.
#[derive(Debug, Clone)]
pub struct PassOptions {
    pub trigger: PassTrigger,
    /// For a backfill: re-read exactly `[from, to)` instead of planning from
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

/// Scheduled and manual passes wait at most this long for budget; longer
/// waits mean the hourly budget is spent.
pub const PASS_BUDGET_PATIENCE: Duration = Duration::from_secs(120);

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
}

/// One stream's figures for one pass.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub bot_id: String,
    pub containment_type: String,
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
    pub watermark: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PassReport {
    pub streams: Vec<StreamReport>,
}

impl PassReport {
    /// True when every stream succeeded or stopped only because its request
    /// budget was spent (rate limits never fail a pass).
    pub fn all_succeeded(&self) -> bool {
        self.streams
            .iter()
            .all(|s| matches!(s.outcome, RunOutcome::Succeeded | RunOutcome::BudgetSpent))
    }

    pub fn n_failed(&self) -> usize {
        self.streams
            .iter()
            .filter(|s| s.outcome == RunOutcome::Failed)
            .count()
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
    let started = std::time::Instant::now();
    let pass_id = uuid::Uuid::new_v4().to_string();
    let deadline = ctx.config.sync.pass_deadline;
    let stop = Stop {
        token: cancel.child_token(),
        shutdown: cancel.clone(),
        deadline,
    };
    // The deadline cancels only this pass's token, never the process's.
    let _deadline_guard = {
        let token = stop.token.clone();
        AbortOnDrop(
            tokio::spawn(async move {
                tokio::time::sleep(deadline).await;
                token.cancel();
            })
            .abort_handle(),
        )
    };
    let mut tasks = JoinSet::new();
    for api in &ctx.apis {
        if opts.only_bot.as_deref().is_some_and(|b| b != api.bot_id()) {
            continue;
        }
        let (ctx, api, opts, stop, pass_id) = (
            ctx.clone(),
            api.clone(),
            opts.clone(),
            stop.clone(),
            pass_id.clone(),
        );
        let span = tracing::info_span!("scope", bot_id = %api.bot_id());
        tasks.spawn(
            async move {
                // The budget starts from every request any process sent for
                // this scope in the last hour, and leaves its own behind.
                let filter = ctx
                    .config
                    .scopes
                    .iter()
                    .find(|s| s.bot_id == api.bot_id())
                    .map(|s| s.filter.clone())
                    .unwrap_or_default();
                let history = ctx.store.request_history(api.bot_id()).await?;
                api.budget().load_history(&history);
                let mut reports = Vec::new();
                let mut result = Ok(());
                for &ct in &ctx.config.sync.containment_types {
                    let key = StreamKey {
                        bot_id: api.bot_id().to_owned(),
                        containment_type: ct,
                        filter: filter.fingerprint(),
                    };
                    match run_stream(&ctx, &api, &key, &filter, &opts, &pass_id, &stop).await {
                        Ok(r) => reports.push(r),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                ctx.store
                    .record_requests(api.bot_id(), api.budget().take_unsaved())
                    .await?;
                result.map(|()| reports)
            }
            .instrument(span),
        );
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
    let m = crate::ops::metrics::metrics();
    m.pass_duration.observe(started.elapsed().as_secs_f64());
    for s in &report.streams {
        m.record_stream(s);
    }
    report
        .streams
        .sort_by(|a, b| (&a.bot_id, &a.containment_type).cmp(&(&b.bot_id, &b.containment_type)));
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn run_stream(
    ctx: &SyncContext,
    api: &SessionsApi,
    key: &StreamKey,
    filter: &StreamFilter,
    opts: &PassOptions,
    pass_id: &str,
    stop: &Stop,
) -> Result<StreamReport, StoreError> {
    let cfg = &ctx.config;
    let run_id = ctx
        .store
        .begin_run(pass_id, key, opts.trigger.as_str())
        .await?;
    let (stored, stored_filter) = ctx.store.watermark_with_filter(key).await?;
    let watermark = match stored_filter {
        Some(f) if f != key.filter && cfg.sync.restart_on_filter_change => {
            info!(stream = %key, old_filter = %f, new_filter = %key.filter,
                  "the stream's filter changed: reading it again from sync.start");
            None
        }
        Some(f) if f != key.filter => {
            info!(stream = %key, old_filter = %f, new_filter = %key.filter,
                  "the stream's filter changed: keeping its watermark (sync.restart_on_filter_change = false)");
            ctx.store.adopt_filter(key).await?;
            stored
        }
        _ => stored,
    };
    let now = Utc::now();
    let plan: WindowPlan = match opts.range {
        Some((from, to)) => {
            plan::plan_range(from, to.min(now - cfg.sync.plan.lag), cfg.sync.plan.window)
        }
        None => plan::plan_pass(watermark, now, &cfg.sync.plan),
    };
    let mut report = StreamReport {
        bot_id: key.bot_id.clone(),
        containment_type: key.containment_type.as_str().to_owned(),
        outcome: RunOutcome::Succeeded,
        windows_planned: plan.windows.len() as u32,
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
        watermark,
        error: None,
    };
    if let Some(o) = &opts.observer {
        o.0.started(&report);
    }
    let fetch = Fetch {
        api,
        filter,
        store: &ctx.store,
        key,
        pipe: StorePipe::default(),
        ct: key.containment_type,
        max_budget_wait: opts.max_budget_wait,
        cancel: &stop.token,
    };
    // Window k commits while window k+1 is read: store jobs run one at a
    // time and in order (see `StorePipe`), so the watermark still moves
    // window by window, oldest first, each in the transaction that stored it.
    for window in &plan.windows {
        if stop.token.is_cancelled() {
            report.stop(RunOutcome::Interrupted, stop.reason());
            break;
        }
        let mut stats = CallStats::default();
        let fetch_started = std::time::Instant::now();
        let fetched = fetch.window(*window, &mut stats).await;
        report.fetch_time += fetch_started.elapsed();
        report.add(&stats);
        // Before the next job starts, the one in flight (earlier chunks of
        // this window, or the previous window) must have landed.
        fetch.pipe.settle().await?;
        fetch.pipe.count(&mut report, opts);
        let fetched = match fetched {
            Ok(f) => f,
            Err(FetchError::Api(e)) => {
                report.fail(key, &e, stop, Some(window));
                break;
            }
            Err(FetchError::Store(e)) => return Err(e),
        };
        let n_rejected = fetched.rejected.len() as u64;
        let (store, key, window, start) =
            (ctx.store.clone(), key.clone(), *window, cfg.sync.plan.start);
        fetch.pipe.start(true, n_rejected, async move {
            store
                .commit_window(&key, window, start, fetched.sessions, fetched.rejected)
                .await
        });
    }
    fetch.pipe.settle().await?;
    fetch.pipe.count(&mut report, opts);
    // Sessions stored as active whose start is now before the span this pass
    // re-read: read them by id so their final state lands, and drop those the
    // API no longer has.
    if report.outcome == RunOutcome::Succeeded && opts.range.is_none() {
        refresh_stale_active(ctx, &fetch, key, plan.begin, &mut report, stop).await?;
    }
    ctx.store
        .finish_run(
            run_id,
            RunRecord {
                outcome: report.outcome,
                windows_planned: report.windows_planned,
                windows_done: report.windows_done,
                requests: report.requests,
                retries: report.retries,
                rate_limited: report.rate_limited,
                sessions_upserted: report.sessions_written,
                sessions_deleted: report.sessions_deleted,
                records_rejected: report.records_rejected,
                watermark_after: report.watermark,
                error: report.error.clone(),
            },
        )
        .await?;
    if let Some(o) = &opts.observer {
        o.0.finished(&report);
    }
    info!(
        stream = %key,
        outcome = report.outcome.as_str(),
        windows = report.windows_done,
        windows_planned = report.windows_planned,
        requests = report.requests,
        retries = report.retries,
        rate_limited = report.rate_limited,
        n_sessions = report.sessions_received,
        n_written = report.sessions_written,
        n_deleted = report.sessions_deleted,
        n_rejected = report.records_rejected,
        watermark = ?report.watermark.map(|w| w.to_rfc3339()),
        "stream pass finished"
    );
    Ok(report)
}

/// The API accepts at most this many ids per sessionId lookup.
pub const MAX_IDS_PER_LOOKUP: usize = 50;

async fn refresh_stale_active(
    ctx: &SyncContext,
    fetch: &Fetch<'_>,
    key: &StreamKey,
    before: DateTime<Utc>,
    report: &mut StreamReport,
    stop: &Stop,
) -> Result<(), StoreError> {
    let ids = ctx.store.stale_active_sessions(key, before).await?;
    if ids.is_empty() {
        return Ok(());
    }
    info!(stream = %key, n_sessions = ids.len(), "re-reading sessions stored as active by id");
    let mut found = Refreshed::default();
    let result = refresh_by_id(
        &ctx.store,
        fetch.api,
        key,
        Some(fetch.ct),
        id_lookups(&ids),
        true,
        fetch.max_budget_wait,
        fetch.cancel,
        &mut found,
    )
    .await;
    report.add(&found.stats);
    report.records_rejected += found.n_rejected as u64;
    report.sessions_written += found.n_written as u64;
    report.sessions_deleted += found.n_deleted as u64;
    match result {
        Ok(()) => Ok(()),
        Err(FetchError::Api(e)) => {
            report.fail(key, &e, stop, None);
            Ok(())
        }
        Err(FetchError::Store(e)) => Err(e),
    }
}

/// The requests that look `ids` up, at most [`MAX_IDS_PER_LOOKUP`] each,
/// duplicates dropped before sending.
pub fn id_lookups(ids: &[String]) -> Vec<SessionsRequest> {
    let mut unique: Vec<String> = Vec::with_capacity(ids.len());
    let mut seen = HashSet::new();
    for id in ids {
        if seen.insert(id.as_str()) {
            unique.push(id.clone());
        }
    }
    unique
        .chunks(MAX_IDS_PER_LOOKUP)
        .map(|batch| SessionsRequest {
            session_id: Some(batch.to_vec()),
            ..SessionsRequest::default()
        })
        .collect()
}

/// What re-reading sessions by id (or call id) found and did.
#[derive(Debug, Default)]
pub struct Refreshed {
    pub n_found: usize,
    pub n_written: usize,
    pub n_deleted: usize,
    pub n_rejected: usize,
    /// Ids the API reported in `invalidSessions` (among those asked for).
    pub unknown: Vec<String>,
    pub stats: CallStats,
}

/// Sends each lookup (`sessionId` batches, or a `callId`), stores the
/// sessions that come back, and — with `delete_unknown` — deletes the ids
/// the API no longer knows, each lookup in its own transaction; the
/// watermark stays. Figures accumulate in `out` even when an error ends it.
#[allow(clippy::too_many_arguments)]
pub async fn refresh_by_id(
    store: &SessionStore,
    api: &SessionsApi,
    key: &StreamKey,
    ct: Option<ContainmentType>,
    lookups: Vec<SessionsRequest>,
    delete_unknown: bool,
    max_budget_wait: Option<Duration>,
    cancel: &CancellationToken,
    out: &mut Refreshed,
) -> Result<(), FetchError> {
    for body in &lookups {
        let (result, call) = api.get_sessions(ct, body, max_budget_wait, cancel).await;
        out.stats += call;
        let page = result?;
        let mut acc = Accumulator::default();
        acc.take(api.bot_id(), ct, &page.sessions);
        // Only ids we asked for can be reported unknown.
        let asked = body.session_id.as_deref().unwrap_or_default();
        let unknown: Vec<String> = page
            .invalid_sessions
            .into_iter()
            .filter(|id| asked.contains(id))
            .collect();
        if delete_unknown && !unknown.is_empty() {
            info!(stream = %key, n_deleted = unknown.len(), "sessions no longer exist upstream; deleting them");
        }
        out.n_found += acc.sessions.len();
        out.n_rejected += acc.rejected.len();
        let deleted = if delete_unknown {
            unknown.clone()
        } else {
            Vec::new()
        };
        let commit = store
            .commit_refresh(key, acc.sessions, acc.rejected, deleted)
            .await?;
        out.n_written += commit.n_written;
        out.n_deleted += commit.n_deleted;
        out.unknown.extend(unknown);
    }
    Ok(())
}

impl StreamReport {
    fn add(&mut self, stats: &CallStats) {
        self.requests += stats.requests;
        self.retries += stats.retries;
        self.rate_limited += stats.rate_limited;
        self.budget_wait += stats.budget_wait;
    }

    fn stop(&mut self, outcome: RunOutcome, why: String) {
        self.outcome = outcome;
        self.error = Some(why);
    }

    /// Ends the stream's pass on an API error, choosing the outcome: a spent
    /// budget and a shutdown are not failures.
    fn fail(&mut self, key: &StreamKey, e: &ApiError, stop: &Stop, window: Option<&Window>) {
        match e {
            ApiError::BudgetExhausted { .. } => {
                info!(stream = %key, error = %e, windows_done = self.windows_done,
                      "request budget spent: committed what was read, ending this stream's pass");
                self.stop(RunOutcome::BudgetSpent, e.to_string());
            }
            ApiError::Cancelled => {
                self.stop(
                    RunOutcome::Interrupted,
                    format!("{}; the window being read was not committed", stop.reason()),
                );
            }
            _ => {
                warn!(stream = %key, window_start = ?window.map(|w| w.start), window_end = ?window.map(|w| w.end),
                      error = %e, "the stream stops at its last committed window");
                self.stop(RunOutcome::Failed, e.to_string());
            }
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

/// The pass's stop signal: shutdown (the process-wide token) or the pass
/// deadline, whichever comes first.
#[derive(Clone)]
struct Stop {
    token: CancellationToken,
    shutdown: CancellationToken,
    deadline: Duration,
}

impl Stop {
    fn reason(&self) -> String {
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

/// How one stream fetches.
struct Fetch<'a> {
    api: &'a SessionsApi,
    filter: &'a StreamFilter,
    /// Where a large window's sessions go in chunks, before the window ends.
    store: &'a SessionStore,
    key: &'a StreamKey,
    /// The store job in flight (a chunk or a window commit) and those that
    /// finished, not yet counted in the stream's report.
    pipe: StorePipe,
    ct: ContainmentType,
    max_budget_wait: Option<Duration>,
    cancel: &'a CancellationToken,
}

/// One window's distinct sessions and the records that could not be parsed.
#[derive(Default)]
struct Accumulator {
    by_id: HashMap<String, usize>,
    sessions: Vec<Session>,
    rejected: Vec<RejectedRecord>,
}

impl Accumulator {
    /// Parses a page into the accumulator. Records seen twice (pages shift
    /// while new sessions land at the head) are kept once, latest version.
    /// Returns the ids (or raw text, for records without one) on the page.
    fn take(
        &mut self,
        bot_id: &str,
        ct: Option<ContainmentType>,
        page: &[Box<RawValue>],
    ) -> Vec<String> {
        let mut keys = Vec::with_capacity(page.len());
        for raw in page {
            match parse_session(raw, ct) {
                Ok(s) => {
                    keys.push(s.session_id.clone());
                    self.insert(s);
                }
                Err(e) => {
                    warn!(bot_id, containment_type = ct.map(ContainmentType::as_str), error = %e,
                          "record rejected; kept in rejected_records");
                    let session_id = wire::session_id_of(raw);
                    keys.push(session_id.clone().unwrap_or_else(|| raw.get().to_owned()));
                    self.rejected.push(RejectedRecord {
                        session_id,
                        reason: e.0,
                        raw: raw.get().to_owned(),
                    });
                }
            }
        }
        keys
    }

    /// Keeps one version per session id: the latest one inserted.
    fn insert(&mut self, s: Session) {
        match self.by_id.get(&s.session_id) {
            Some(&i) => self.sessions[i] = s,
            None => {
                self.by_id.insert(s.session_id.clone(), self.sessions.len());
                self.sessions.push(s);
            }
        }
    }

    fn merge(&mut self, other: Accumulator) {
        for s in other.sessions {
            self.insert(s);
        }
        self.rejected.extend(other.rejected);
    }
}

/// The shortest span a window is split down to when the server refuses to
/// page deep enough.
pub const MIN_SPLIT_SPAN: TimeDelta = TimeDelta::minutes(1);

/// What paging one span found.
enum SpanResult {
    Done {
        acc: Accumulator,
        /// `total` as the first and as the last page reported it.
        totals: (Option<u64>, Option<u64>),
        keys: HashSet<String>,
    },
    /// The server refused a deep `skip` (or `offset`).
    SkipRefused { skip: u64, message: String },
}

impl Fetch<'_> {
    /// Reads one window completely. If the server refuses to page as deep as
    /// the window needs, the window is split in halves, recursively, down to
    /// [`MIN_SPLIT_SPAN`]. If the records change while a span is paged (the
    /// number of distinct ids differs from `total`), the span is paged once
    /// more.
    async fn window(
        &self,
        window: Window,
        stats: &mut CallStats,
    ) -> Result<Accumulator, FetchError> {
        let mut acc = Accumulator::default();
        let mut todo = vec![window];
        while let Some(span) = todo.pop() {
            match self.span_consistent(span, stats).await? {
                Ok(found) => acc.merge(found),
                Err((skip, message)) => {
                    if span.span() < MIN_SPLIT_SPAN * 2 {
                        return Err(FetchError::Api(ApiError::Rejected {
                            status: 400,
                            message: format!(
                                "{message} — even a {}-long window from {} holds more sessions than the API \
                                 lets kore-sync page past (skip {skip}); lower api.page_size will not help, \
                                 please report this",
                                humantime::format_duration(
                                    span.span().to_std().unwrap_or_default()
                                ),
                                format_api_time(span.start)
                            ),
                        }));
                    }
                    let mid = span.start + (span.end - span.start) / 2;
                    let mid = mid
                        - TimeDelta::nanoseconds(i64::from(
                            mid.timestamp_subsec_nanos() % 1_000_000,
                        ));
                    info!(bot_id = self.api.bot_id(), containment_type = self.ct.as_str(), skip, message = %message,
                          "the API refused to page deeper; splitting the window in halves");
                    // Oldest half first: `pop` takes the last pushed.
                    todo.push(Window {
                        start: mid,
                        end: span.end,
                    });
                    todo.push(Window {
                        start: span.start,
                        end: mid,
                    });
                }
            }
        }
        Ok(acc)
    }

    /// Pages a span; if its distinct ids disagree with `total`, pages it once
    /// more and keeps the second reading if that one agrees (else both).
    async fn span_consistent(
        &self,
        span: Window,
        stats: &mut CallStats,
    ) -> Result<Result<Accumulator, (u64, String)>, FetchError> {
        let (acc, totals, keys) = match self.span(span, stats).await? {
            SpanResult::Done { acc, totals, keys } => (acc, totals, keys),
            SpanResult::SkipRefused { skip, message } => return Ok(Err((skip, message))),
        };
        // Records that appear at the head of a newest-first list shift later
        // pages (the last total grows); records that vanish shift them the
        // other way (the first total is too large). Either way some record may
        // have been skipped, so the counts must agree with both totals.
        if consistent(totals, keys.len()) {
            return Ok(Ok(acc));
        }
        let (again, totals2, keys2) = match self.span(span, stats).await? {
            SpanResult::Done { acc, totals, keys } => (acc, totals, keys),
            SpanResult::SkipRefused { skip, message } => return Ok(Err((skip, message))),
        };
        let appeared: Vec<&String> = keys2.difference(&keys).collect();
        let vanished: Vec<&String> = keys.difference(&keys2).collect();
        warn!(
            bot_id = self.api.bot_id(), containment_type = self.ct.as_str(),
            window_start = %span.start, window_end = %span.end,
            first_total = ?totals.0, last_total = ?totals.1, first_distinct = keys.len(),
            n_appeared = appeared.len(), n_vanished = vanished.len(),
            appeared = ?appeared.iter().take(10).collect::<Vec<_>>(),
            vanished = ?vanished.iter().take(10).collect::<Vec<_>>(),
            "records changed while the window was paged; paged it again"
        );
        if consistent(totals2, keys2.len()) {
            Ok(Ok(again))
        } else {
            let mut both = acc;
            both.merge(again);
            Ok(Ok(both))
        }
    }

    /// Pages a span with `skip`, advancing by the number of records each page
    /// actually holds, until `moreAvailable` is false or a page is empty.
    async fn span(&self, span: Window, stats: &mut CallStats) -> Result<SpanResult, FetchError> {
        let mut acc = Accumulator::default();
        let mut keys = HashSet::new();
        let mut first_total = None;
        let mut last_total = None;
        let mut skip: u64 = 0;
        let pages = self.api.page_size();
        for _ in 0..MAX_PAGES_PER_WINDOW {
            let asked = pages.ask();
            let body = SessionsRequest {
                date_from: Some(format_api_time(span.start)),
                date_to: Some(format_api_time(span.end)),
                skip: Some(skip),
                limit: Some(u64::from(asked)),
                ..SessionsRequest::default()
            }
            .with_filter(self.filter);
            let (result, call) = self
                .api
                .get_sessions(Some(self.ct), &body, self.max_budget_wait, self.cancel)
                .await;
            *stats += call;
            let page = match result {
                Ok(p) => p,
                Err(ApiError::Rejected {
                    status: 400,
                    message,
                }) if skip > 0 && mentions_skip(&message) => {
                    return Ok(SpanResult::SkipRefused { skip, message });
                }
                // Too large a page: the same page again, at api.page_size.
                Err(ApiError::Rejected {
                    status: 400,
                    message,
                }) if pages.refused(self.api.bot_id(), asked, &message) => continue,
                Err(e) => return Err(e.into()),
            };
            pages.observe(
                self.api.bot_id(),
                asked,
                page.sessions.len(),
                page.more_available,
            );
            if skip == 0 {
                first_total = page.total;
            }
            last_total = page.total.or(last_total);
            let n = page.sessions.len();
            keys.extend(acc.take(self.api.bot_id(), Some(self.ct), &page.sessions));
            if acc.sessions.len() >= CHUNK_SESSIONS {
                self.flush(&mut acc).await?;
            }
            skip += n as u64;
            if n == 0 || page.more_available != Some(true) {
                return Ok(SpanResult::Done {
                    acc,
                    totals: (first_total, last_total),
                    keys,
                });
            }
        }
        Err(FetchError::Api(ApiError::Rejected {
            status: 200,
            message: format!(
                "the server kept answering moreAvailable after {MAX_PAGES_PER_WINDOW} pages"
            ),
        }))
    }

    /// Stores what a large window has read so far, without moving the
    /// watermark (that waits for the window's end), so memory stays bounded
    /// by [`CHUNK_SESSIONS`] however dense the window.
    async fn flush(&self, acc: &mut Accumulator) -> Result<(), StoreError> {
        let chunk = std::mem::take(acc);
        let n_rejected = chunk.rejected.len() as u64;
        self.pipe.settle().await?;
        let (store, key) = (self.store.clone(), self.key.clone());
        self.pipe.start(false, n_rejected, async move {
            store
                .commit_refresh(&key, chunk.sessions, chunk.rejected, Vec::new())
                .await
        });
        Ok(())
    }
}

/// What one store job did: a whole window's commit (`ends_window`), or a
/// chunk of a dense window (the watermark stays).
struct StoreJob {
    ends_window: bool,
    commit: WindowCommit,
    n_rejected: u64,
    took: Duration,
}

/// Lets a stream read its next pages while the previous chunk or window is
/// being stored, so parsing and DuckDB use both cores.
///
/// Invariant: at most one job is in flight, and a job starts only after the
/// previous one finished (`settle` before `start`). So a window's chunks
/// land before its commit, windows commit oldest first, and the watermark
/// rule of `commit_window` holds as if the jobs ran inline. A failed job
/// surfaces at the next `settle` and ends the stream.
#[derive(Default)]
struct StorePipe {
    in_flight: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<StoreJob, StoreError>>>>,
    done: std::sync::Mutex<Vec<StoreJob>>,
}

impl StorePipe {
    /// Starts storing: `commit` is a window's commit (`ends_window`) or a
    /// chunk's; `n_rejected` records it keeps in `rejected_records`.
    fn start(
        &self,
        ends_window: bool,
        n_rejected: u64,
        commit: impl std::future::Future<Output = Result<WindowCommit, StoreError>> + Send + 'static,
    ) {
        let mut slot = self.in_flight.lock().expect("store pipe lock");
        debug_assert!(
            slot.is_none(),
            "a store job started before the previous one settled"
        );
        *slot = Some(tokio::spawn(async move {
            let started = std::time::Instant::now();
            Ok(StoreJob {
                ends_window,
                commit: commit.await?,
                n_rejected,
                took: started.elapsed(),
            })
        }));
    }

    /// Waits for the job in flight, if any.
    async fn settle(&self) -> Result<(), StoreError> {
        let handle = self.in_flight.lock().expect("store pipe lock").take();
        if let Some(handle) = handle {
            let job = handle
                .await
                .map_err(|e| StoreError::Worker(e.to_string()))??;
            self.done.lock().expect("store pipe lock").push(job);
        }
        Ok(())
    }

    /// Adds the finished jobs to the stream's report.
    fn count(&self, report: &mut StreamReport, opts: &PassOptions) {
        let done = std::mem::take(&mut *self.done.lock().expect("store pipe lock"));
        for job in done {
            report.store_time += job.took;
            report.sessions_received += job.commit.n_received as u64;
            report.sessions_written += job.commit.n_written as u64;
            report.records_rejected += job.n_rejected;
            if job.ends_window {
                report.windows_done += 1;
                report.watermark = job.commit.watermark;
                if let Some(o) = &opts.observer {
                    o.0.advanced(report);
                }
            }
        }
    }
}

/// A window holding more sessions than this is stored in chunks as its pages
/// arrive; its watermark still moves only when the whole window is read.
pub const CHUNK_SESSIONS: usize = 5_000;

/// Why fetching stopped: the API (the stream stops, the pass goes on) or the
/// warehouse (the pass fails).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Api(ApiError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<ApiError> for FetchError {
    fn from(e: ApiError) -> Self {
        FetchError::Api(e)
    }
}

impl From<StoreError> for FetchError {
    fn from(e: StoreError) -> Self {
        FetchError::Store(e)
    }
}

/// True when the distinct records read match every `total` the pages gave.
fn consistent(totals: (Option<u64>, Option<u64>), n_distinct: usize) -> bool {
    let n = n_distinct as u64;
    totals.0.is_none_or(|t| t == n) && totals.1.is_none_or(|t| t == n)
}

fn mentions_skip(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("skip") || m.contains("offset")
}
