//! `verify` for messages (issue 21): per bot and channel, one getMessagesV2
//! request with `limit: 1` per window answers the window's `total`, which
//! is compared with the messages stored there (the window's end excluded
//! and included, as for sessions). A window that differs is paged again and
//! its messages upserted, unless `verify` only counts. A message is stored
//! only with its session, so a window holding messages of a session not
//! stored (not listed yet) still differs afterwards, and says so. A bot
//! whose sessions are not all stored — a session filter, or
//! `sync.containment_types` leaving a type out — is not counted: the API's
//! total includes the messages of the sessions left out.

use super::context::{ScopeApi, SyncContext};
use super::messages::{Messages, message_keys, syncs_messages};
use super::reconcile::{WindowCheck, counts_match};
use super::report::StreamReport;
use super::resource::{Resource, StreamIo};
use super::stop::Stop;
use super::stream::read_windows;
use super::verify::{VerifyOptions, VerifyReport, VerifyRow, span_to_verify, stopped};
use crate::model::{ContainmentType, RunOutcome, Window};
use crate::store::StoreError;

/// Checks (and unless `dry_run`, repairs) every message stream of `scope`
/// that has a watermark, over `[from, to)` (default: `sync.start` to the
/// stream's watermark).
pub(super) async fn verify_messages(
    (ctx, scope): (&SyncContext, &ScopeApi),
    opts: &VerifyOptions,
    (pass_id, stop): (&str, &Stop),
    out: &mut VerifyReport,
) -> Result<(), StoreError> {
    let every_type = ContainmentType::ALL
        .iter()
        .all(|t| ctx.settings.containment_types.contains(t));
    let filtered = !scope.scope.filter.fingerprint().is_empty();
    if !syncs_messages(ctx, scope) || !every_type || filtered {
        return Ok(());
    }
    for key in message_keys(ctx, &scope.scope.bot_id).await? {
        if stopped(stop, out) {
            break;
        }
        let Some((watermark, windows)) = span_to_verify(ctx, &key, opts).await? else {
            continue;
        };
        let run_id = ctx.store.begin_run(pass_id, &key, "verify").await?;
        let mut report = StreamReport::new(key.clone(), windows.len(), watermark);
        let messages = Messages {
            io: StreamIo::new((ctx, scope), &key, opts.max_budget_wait, &stop.token),
            pages: &scope.message_pages,
            channel: key.partition.name(),
            sessions: None,
        };
        for window in windows {
            if stop.token.is_cancelled() {
                report.stop(RunOutcome::Interrupted, stop.reason());
                break;
            }
            let check =
                match check_window(&messages, window, opts.dry_run, (&mut report, stop)).await {
                    Ok(Some(check)) => check,
                    Ok(None) => break,
                    Err(e) => return Err(e),
                };
            report.windows_done += 1;
            out.rows.push(VerifyRow {
                key: key.clone(),
                check,
            });
        }
        ctx.store.finish_run(run_id, report.run_record()).await?;
        report.log();
        out.streams.push(report);
    }
    Ok(())
}

/// One window: its count, and unless `dry_run`, a repair when it differs.
/// None when the stream stopped (its report says why).
async fn check_window(
    messages: &Messages<'_>,
    window: Window,
    dry_run: bool,
    (report, stop): (&mut StreamReport, &Stop),
) -> Result<Option<WindowCheck>, StoreError> {
    let (store, key) = (messages.io.store, messages.io.key);
    let (page, stats) = messages.page(window, 0, 1).await;
    report.add(&stats);
    let api_count = match page {
        Ok(page) => page.total,
        Err(e) => {
            report.fail(&e, stop, Some(&window));
            return Ok(None);
        }
    };
    let before = store.count_stored_messages(key, window).await?;
    let mut check = WindowCheck::counted(window, api_count, before);
    if check.equal || dry_run {
        return Ok(Some(check));
    }
    tracing::info!(stream = %key, window_start = %window.start, window_end = %window.end,
                   api_count = ?api_count, stored_count = before.0,
                   "message counts differ; reading the window again");
    let written_before = report.sessions_written;
    read_windows(messages, &[window], report, stop, None).await?;
    if report.outcome != RunOutcome::Succeeded {
        return Ok(None);
    }
    let after = store.count_stored_messages(key, window).await?;
    check.added = after.0.saturating_sub(before.0);
    check.updated = (report.sessions_written - written_before).saturating_sub(check.added);
    check.equal = counts_match(api_count, after);
    Ok(Some(check))
}
