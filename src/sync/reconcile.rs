//! Reconciling stored history with the API: sessions the API lists late
//! (behind a watermark that already passed them) and sessions it erased.
//!
//! The instrument is cheap: a date-window request with `limit: 1` answers
//! the window's `total`, which is compared with the sessions the stream
//! holds there. Only a window whose counts differ is paged again; the
//! sessions it lists are upserted, and ids the warehouse holds that it no
//! longer lists are confirmed with a sessionId lookup (`invalidSessions`)
//! before anything is deleted or marked. The server may treat `dateTo` as
//! inclusive or exclusive, so the stored count is taken both ways and either
//! matches.
//!
//! A stream filtered by `tags` cannot select its sessions in SQL (the filter
//! is the API's), so passes do not check it; `verify` counts every stored
//! session of its bot and containment type (README, `sync.reconcile`).

use super::context::SyncSettings;
use super::fetch::{Fetch, FetchError};
use super::plan;
use super::refresh::{Refresh, Refreshed, id_lookups};
use super::report::StreamReport;
use super::resource::Sessions;
use super::stop::Stop;
use crate::api::CallStats;
use crate::model::ids::IdSet;
use crate::model::{Deletes, RunOutcome, Window};
use crate::store::StoreError;
use serde::Serialize;

/// What checking (and, unless only counting, repairing) one window found.
#[derive(Debug, Clone, Serialize)]
pub struct WindowCheck {
    #[serde(skip)]
    pub window: Window,
    /// The API's `total` for the window (None: the server did not say).
    pub api_count: Option<u64>,
    /// Live sessions the stream held in the window before the check.
    pub stored_count: u64,
    /// Sessions the repair stored that the window did not hold before.
    pub added: u64,
    /// Sessions the repair rewrote because they changed.
    pub updated: u64,
    /// Sessions the API no longer has, deleted or marked.
    pub deleted: u64,
    /// The stored count matches the API's, after the repair if there was one.
    pub equal: bool,
}

impl WindowCheck {
    /// A check of `window` before any repair: the API's count and the
    /// stored one (end excluded, included), and whether they match.
    pub(super) fn counted(window: Window, api_count: Option<u64>, stored: (u64, u64)) -> Self {
        WindowCheck {
            window,
            api_count,
            stored_count: stored.0,
            added: 0,
            updated: 0,
            deleted: 0,
            equal: counts_match(api_count, stored),
        }
    }
}

/// Whether `api` (the API's total) matches a stored count taken with the
/// window's end excluded and included.
pub fn counts_match(api: Option<u64>, stored: (u64, u64)) -> bool {
    api.is_some_and(|t| t == stored.0 || t == stored.1)
}

/// Whether a window whose count differs is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Differing {
    /// Page the window again and store what it holds.
    Repair,
    /// Only report it (`verify --dry-run`).
    Report,
}

/// Checks windows of one stream, and repairs those that differ unless told
/// only to report them.
pub(super) struct Reconcile<'a> {
    pub sessions: &'a Sessions<'a>,
    pub differing: Differing,
}

impl Reconcile<'_> {
    /// Checks `windows` in order, tallying each into the stream's report;
    /// returns the checks made. An API failure ends the stream's run in its
    /// report; only the warehouse's failures are returned.
    pub(super) async fn windows(
        &self,
        windows: &[Window],
        report: &mut StreamReport,
        stop: &Stop,
    ) -> Result<Vec<WindowCheck>, StoreError> {
        let mut checks = Vec::with_capacity(windows.len());
        for window in windows {
            if stop.token.is_cancelled() {
                report.stop(RunOutcome::Interrupted, stop.reason());
                break;
            }
            let mut stats = CallStats::default();
            let result = self.window(*window, &mut stats).await;
            report.add(&stats);
            match result {
                Ok(check) => {
                    tally(report, &check, self.sessions.deletes);
                    checks.push(check);
                }
                Err(FetchError::Api(e)) => {
                    report.fail(&e, stop, Some(window));
                    break;
                }
                Err(FetchError::Store(e)) => return Err(e),
            }
        }
        Ok(checks)
    }

    /// One request for the window's count; when it differs from the stored
    /// one (and repairing), the window is paged again and repaired.
    pub(super) async fn window(
        &self,
        window: Window,
        stats: &mut CallStats,
    ) -> Result<WindowCheck, FetchError> {
        let s = self.sessions;
        let (count, call) = s.count(window).await;
        *stats += call;
        let api_count = count?;
        let stored = s.io.store.count_stored(s.io.key, s.filter, window).await?;
        let mut check = WindowCheck::counted(window, api_count, stored);
        if check.equal || self.differing == Differing::Report {
            return Ok(check);
        }
        tracing::info!(stream = %s.io.key, window_start = %window.start, window_end = %window.end,
                       api_count = ?api_count, stored_count = stored.0,
                       "counts differ; reading the window again");
        self.repair(&mut check, stats).await?;
        let after = s.io.store.count_stored(s.io.key, s.filter, window).await?;
        check.equal = counts_match(api_count, after);
        Ok(check)
    }

    /// Pages the window, stores what it lists, and confirms by id what the
    /// warehouse holds there that it no longer lists.
    async fn repair(
        &self,
        check: &mut WindowCheck,
        stats: &mut CallStats,
    ) -> Result<(), FetchError> {
        let s = self.sessions;
        let window = check.window;
        let held: IdSet<String> =
            s.io.store
                .stored_ids(s.io.key, s.filter, window)
                .await?
                .into_iter()
                .collect();
        let (listed, n_written) = Fetch::new(s).window_stored(window, stats).await?;
        let missing: Vec<String> = held.difference(&listed).cloned().collect();
        let refresh = Refresh {
            io: s.io,
            containment: s.io.key.containment_type(),
            unknown: Some(s.deletes),
        };
        let mut found = Refreshed::default();
        let result = refresh.run(&id_lookups(&missing), &mut found).await;
        *stats += std::mem::take(&mut found.stats);
        let added = listed.difference(&held).count() as u64;
        let written = n_written + found.n_written as u64;
        check.added = added;
        check.updated = written.saturating_sub(added);
        check.deleted = (found.n_deleted + found.n_marked) as u64;
        result
    }
}

/// The check each pass makes behind the stream's watermark (see
/// `plan::plan_reconcile`), repairing windows whose counts differ. API
/// failures end the stream's pass in its report; only the warehouse's are
/// returned.
pub(super) async fn reconcile_behind(
    sessions: &Sessions<'_>,
    settings: &SyncSettings,
    report: &mut StreamReport,
    stop: &Stop,
) -> Result<(), StoreError> {
    if sessions.filter.tags.is_some() {
        return Ok(());
    }
    let plan = plan::plan_reconcile(report.watermark, &settings.plan, settings.reconcile);
    let job = Reconcile {
        sessions,
        differing: Differing::Repair,
    };
    job.windows(&plan.windows, report, stop).await?;
    Ok(())
}

/// Tallies a window check into the stream's report.
fn tally(report: &mut StreamReport, check: &WindowCheck, deletes: Deletes) {
    report.sessions_written += check.added + check.updated;
    match deletes {
        Deletes::Delete => report.sessions_deleted += check.deleted,
        Deletes::Keep => report.sessions_marked += check.deleted,
    }
}

#[cfg(test)]
mod tests {
    use super::counts_match;

    #[test]
    fn counts_match_whether_date_to_is_inclusive_or_not() {
        // (API total, stored without and with the window's end, match?)
        let cases = [
            (Some(5), (5, 5), true),
            (Some(5), (5, 6), true), // exclusive server, a session on the end
            (Some(6), (5, 6), true), // inclusive server, the same session
            (Some(7), (5, 6), false), // a late arrival
            (Some(4), (5, 5), false), // an erased session
            (None, (0, 0), false),   // no total: cannot tell, so page
        ];
        for (api, stored, want) in cases {
            assert_eq!(counts_match(api, stored), want, "{api:?} {stored:?}");
        }
    }
}
