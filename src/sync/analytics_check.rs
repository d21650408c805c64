//! Checking analytics against the API's counts, as sessions are (see
//! `reconcile`): each pass behind a stream's watermark (`sync.reconcile`),
//! and `verify` over its whole history. One request with `limit: 1` answers
//! a window's `totalCount`, compared with the events the stream holds there
//! (the window's end excluded and included). A window that differs is
//! paged again: what it lists is stored (late events), and the events the
//! stream holds strictly inside it that it no longer lists are removed
//! (erased ones). getAnalytics has no look-up by id to confirm an erasure
//! with, so only a window paged to its end removes anything; should paging
//! have missed an event that shifted between pages, the next check finds
//! the counts differ and reads the window again.

use super::analytics::{Analytics, analytics_channels, analytics_keys, syncs_analytics};
use super::context::{ScopeApi, SyncContext};
use super::fetch::{Fetch, FetchError};
use super::reconcile::{Differing, WindowCheck, counts_match};
use super::report::StreamReport;
use super::resource::{Resource, StreamIo};
use super::stop::Stop;
use super::verify::{VerifyOptions, VerifyReport, VerifyRow, span_to_verify, stopped};
use crate::api::CallStats;
use crate::model::{Partition, RunOutcome, Window};
use crate::store::StoreError;

/// Checks `windows` of one stream in order (repairing those that differ
/// unless only reporting), tallying into its report; returns the checks.
/// An API failure ends the stream's run in its report; only the
/// warehouse's failures are returned.
pub(super) async fn check_windows(
    analytics: &Analytics<'_>,
    windows: &[Window],
    differing: Differing,
    (report, stop): (&mut StreamReport, &Stop),
) -> Result<Vec<WindowCheck>, StoreError> {
    let mut checks = Vec::with_capacity(windows.len());
    // A stream that wrote no events this run is most likely followed by
    // its bot's other types with the same windows and nothing written
    // either (an idle pass, `verify`): counted together, once. One that
    // wrote is counted alone, as the next will write too.
    let of_bot = report.sessions_written == 0;
    for &window in windows {
        if stop.token.is_cancelled() {
            report.stop(RunOutcome::Interrupted, stop.reason());
            break;
        }
        let mut stats = CallStats::default();
        let result = check_window(analytics, (window, of_bot), differing, &mut stats).await;
        report.add(&stats);
        match result {
            Ok(check) => {
                report.sessions_written += check.added + check.updated;
                report.sessions_deleted += check.deleted;
                checks.push(check);
            }
            Err(FetchError::Api(e)) => {
                report.fail(&e, stop, Some(&window));
                break;
            }
            Err(FetchError::Store(e)) => return Err(e),
        }
    }
    Ok(checks)
}

/// One window's count, and a repair when it differs (and repairing).
async fn check_window(
    analytics: &Analytics<'_>,
    (window, of_bot): (Window, bool),
    differing: Differing,
    stats: &mut CallStats,
) -> Result<WindowCheck, FetchError> {
    let (store, key) = (analytics.io.store, analytics.io.key);
    let (page, call) = analytics.page(window, 0, 1).await;
    *stats += call;
    let api_count = page?.total;
    let before = store.count_stored_analytics(key, window, of_bot).await?;
    let mut check = WindowCheck::counted(window, api_count, before);
    if check.equal || differing == Differing::Report {
        return Ok(check);
    }
    tracing::info!(stream = %key, window_start = %window.start, window_end = %window.end,
                   api_count = ?api_count, stored_count = before.0,
                   "analytics counts differ; reading the window again");
    let (listed, n_written) = Fetch::new(analytics).window_stored(window, stats).await?;
    let listed: Vec<String> = listed.into_iter().collect();
    check.deleted = store.remove_unlisted_analytics(key, window, listed).await?;
    let after = store.count_stored_analytics(key, window, false).await?;
    check.added = (after.0 + check.deleted).saturating_sub(before.0);
    check.updated = n_written.saturating_sub(check.added);
    check.equal = counts_match(api_count, after);
    Ok(check)
}

/// `verify` for analytics: every analytics stream of `scope` that has a
/// watermark, over `[from, to)` (default: `sync.start` to the watermark).
pub(super) async fn verify_analytics(
    (ctx, scope): (&SyncContext, &ScopeApi),
    opts: &VerifyOptions,
    (pass_id, stop): (&str, &Stop),
    out: &mut VerifyReport,
) -> Result<(), StoreError> {
    if !syncs_analytics(ctx, scope) {
        return Ok(());
    }
    let channels = analytics_channels(ctx, &scope.scope.bot_id).await?;
    let differing = if opts.dry_run {
        Differing::Report
    } else {
        Differing::Repair
    };
    for key in analytics_keys(ctx, &scope.scope.bot_id) {
        if stopped(stop, out) {
            break;
        }
        let Partition::Analytics(kind) = key.partition else {
            continue;
        };
        let Some((watermark, windows)) = span_to_verify(ctx, &key, opts).await? else {
            continue;
        };
        let run_id = ctx.store.begin_run(pass_id, &key, "verify").await?;
        let mut report = StreamReport::new(key.clone(), windows.len(), watermark);
        let analytics = Analytics {
            io: StreamIo::new((ctx, scope), &key, opts.max_budget_wait, &stop.token),
            pages: &scope.analytics_pages,
            kind,
            channels: &channels,
        };
        let checks = check_windows(&analytics, &windows, differing, (&mut report, stop)).await?;
        report.windows_done += checks.len() as u32;
        out.rows.extend(checks.into_iter().map(|check| VerifyRow {
            key: key.clone(),
            check,
        }));
        ctx.store.finish_run(run_id, report.run_record()).await?;
        report.log();
        out.streams.push(report);
    }
    Ok(())
}
