//! LLM usage behind the watermark. getLLMUsageLogs gives no count to
//! compare a window with, so windows are compared record by record:
//!
//! - In a pass, each window read to its end (the lookback's whole days
//!   included) is compared with what the stream stores there; records it
//!   no longer lists are read for once more, and those the second complete
//!   reading does not list either are removed (paging by `skip` can miss a
//!   record when another vanishes meanwhile: one reading alone is not
//!   proof). A window with nothing missing costs no request.
//! - `verify` lists every window of the stream's history — ids, start and
//!   a fingerprint of each record — and compares them with the stored ones
//!   (id and SHA-256 of `raw`); a window that differs is read again,
//!   stored (new and changed records), and what neither reading listed is
//!   removed.

use super::context::{ScopeApi, SyncContext};
use super::fetch::{Fetch, FetchError, MAX_PAGES_PER_WINDOW};
use super::llm::{LLM_MAX_DAYS, LlmUsageStream, llm_usage_key, syncs_llm_usage};
use super::plan;
use super::reconcile::{Differing, WindowCheck};
use super::report::StreamReport;
use super::resource::{Resource, StreamIo};
use super::stop::Stop;
use super::verify::{VerifyOptions, VerifyReport, VerifyRow, span_to_verify, stopped};
use crate::api::{ApiError, CallStats};
use crate::model::ids::{IdMap, IdSet};
use crate::model::{ACCOUNT_BOT_ID, RunOutcome, Window};
use crate::store::StoreError;
use chrono::{DateTime, Utc};

/// One record as a listing saw it.
struct Listed {
    started_at: DateTime<Utc>,
    /// SHA-256 (hex) of the record as it would be stored (`raw`, after the
    /// privacy rules), as the store computes it of the stored one.
    fingerprint: String,
}

/// Pages `window` until a page comes back empty, keeping of each record
/// its id, start and fingerprint (records that cannot be stored are left
/// out: they are in `rejected_records`, not `llm_usage`).
async fn list_window(
    stream: &LlmUsageStream<'_>,
    window: Window,
    stats: &mut CallStats,
) -> Result<IdMap<String, Listed>, ApiError> {
    let mut listed = IdMap::default();
    let mut skip = 0;
    // A server that never sends the empty page is stopped, as paging is.
    for _ in 0..MAX_PAGES_PER_WINDOW {
        let (page, call) = stream.page(window, skip, stream.pages.ask()).await;
        *stats += call;
        let page = page?;
        if page.records.is_empty() {
            return Ok(listed);
        }
        skip += page.records.len() as u64;
        for raw in page.records {
            let Ok(usage) = stream.parse(raw) else {
                continue;
            };
            let digest =
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, usage.raw.as_bytes());
            let fingerprint = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            let started_at = usage.started_at;
            listed.insert(
                usage.usage_id,
                Listed {
                    started_at,
                    fingerprint,
                },
            );
        }
    }
    Err(ApiError::EndlessPaging {
        pages: MAX_PAGES_PER_WINDOW,
    })
}

/// See the module's note (passes): removes what the stream stores in
/// `window` that neither the pass's reading (`listed`) nor a second one
/// lists; returns how many.
pub(super) async fn remove_erased(
    stream: &LlmUsageStream<'_>,
    window: Window,
    listed: &IdSet<String>,
    stats: &mut CallStats,
) -> Result<u64, FetchError> {
    let (store, key) = (stream.io.store, stream.io.key);
    let stored = store.llm_usage_in_window(key, window, false).await?;
    let missing: Vec<String> = stored
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !listed.contains(id))
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let again = list_window(stream, window, stats).await?;
    let gone: Vec<String> = missing
        .into_iter()
        .filter(|id| !again.contains_key(id))
        .collect();
    if gone.is_empty() {
        return Ok(0);
    }
    tracing::info!(stream = %key, window_start = %window.start, window_end = %window.end,
                   n_gone = gone.len(), "LLM usage records no longer listed (read twice); removing them");
    Ok(store.remove_llm_usage(key, gone).await?)
}

/// `verify` for a bot's LLM usage: every window (whole days, at most
/// `LLM_MAX_DAYS`) over `[from, to)`, by default `sync.start` to the
/// stream's watermark.
pub(super) async fn verify_llm_usage(
    (ctx, scope): (&SyncContext, &ScopeApi),
    opts: &VerifyOptions,
    (pass_id, stop): (&str, &Stop),
    out: &mut VerifyReport,
) -> Result<(), StoreError> {
    if scope.scope.bot_id == ACCOUNT_BOT_ID || !syncs_llm_usage(ctx, scope) || stopped(stop, out) {
        return Ok(());
    }
    let key = llm_usage_key(&scope.scope.bot_id);
    let Some((watermark, windows)) = span_to_verify(ctx, &key, opts).await? else {
        return Ok(());
    };
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return Ok(());
    };
    let windows = plan::whole_days(plan::plan_verify(first.start, last.end), LLM_MAX_DAYS).windows;
    let differing = if opts.dry_run {
        Differing::Report
    } else {
        Differing::Repair
    };
    let run_id = ctx.store.begin_run(pass_id, &key, "verify").await?;
    let mut report = StreamReport::new(key.clone(), windows.len(), watermark);
    let stream = LlmUsageStream {
        io: StreamIo::new((ctx, scope), &key, opts.max_budget_wait, &stop.token),
        pages: &scope.llm_pages,
    };
    for window in windows {
        if stop.token.is_cancelled() {
            report.stop(RunOutcome::Interrupted, stop.reason());
            break;
        }
        let mut stats = CallStats::default();
        let result = check_window(&stream, window, differing, &mut stats).await;
        report.add(&stats);
        match result {
            Ok(check) => {
                report.sessions_written += check.added + check.updated;
                report.sessions_deleted += check.deleted;
                report.windows_done += 1;
                let key = key.clone();
                out.rows.push(VerifyRow { key, check });
            }
            Err(FetchError::Api(e)) => {
                report.fail(&e, stop, Some(&window));
                break;
            }
            Err(FetchError::Store(e)) => return Err(e),
        }
    }
    ctx.store.finish_run(run_id, report.run_record()).await?;
    report.log();
    out.streams.push(report);
    Ok(())
}

/// One window: listed and compared; repaired when it differs (and
/// repairing).
async fn check_window(
    stream: &LlmUsageStream<'_>,
    window: Window,
    differing: Differing,
    stats: &mut CallStats,
) -> Result<WindowCheck, FetchError> {
    let (store, key) = (stream.io.store, stream.io.key);
    // The request names the day after the window too: only what started
    // inside it is compared.
    let listed: IdMap<String, String> = list_window(stream, window, stats)
        .await?
        .into_iter()
        .filter(|(_, l)| window.start <= l.started_at && l.started_at < window.end)
        .map(|(id, l)| (id, l.fingerprint))
        .collect();
    let stored = store.llm_usage_in_window(key, window, true).await?;
    let same =
        stored.len() == listed.len() && stored.iter().all(|(id, fp)| listed.get(id) == fp.as_ref());
    let mut check = WindowCheck {
        window,
        api_count: Some(listed.len() as u64),
        stored_count: stored.len() as u64,
        added: 0,
        updated: 0,
        deleted: 0,
        equal: same,
    };
    if same || differing == Differing::Report {
        return Ok(check);
    }
    tracing::info!(stream = %key, window_start = %window.start, window_end = %window.end,
                   n_listed = listed.len(), n_stored = stored.len(),
                   "LLM usage differs from the API's; reading the window again");
    let (listed_again, n_written) = Fetch::new(stream).window_stored(window, stats).await?;
    let gone: Vec<String> = stored
        .iter()
        .map(|(id, _)| id)
        .filter(|id| !listed.contains_key(*id) && !listed_again.contains(*id))
        .cloned()
        .collect();
    check.deleted = store.remove_llm_usage(key, gone).await?;
    let after = store.llm_usage_in_window(key, window, false).await?.len() as u64;
    check.added = (after + check.deleted).saturating_sub(check.stored_count);
    check.updated = n_written.saturating_sub(check.added);
    check.equal = after == listed.len() as u64;
    Ok(check)
}
