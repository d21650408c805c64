//! Reading sessions by id rather than by window: the re-read of sessions
//! stored as still `active` once the windows no longer cover them, and
//! `kore-sync fetch` (ids, or an external call id). Sessions found are
//! upserted; ids the API reports in `invalidSessions` are deleted when the
//! caller says so. The watermark never moves here.

use super::accumulator::Accumulator;
use super::context::SyncContext;
use super::fetch::FetchError;
use super::report::StreamReport;
use super::resource::{Sessions, StreamIo};
use super::stop::Stop;
use crate::api::CallStats;
use crate::api::wire::{SessionsRequest, parse_or_reject};
use crate::model::{ContainmentType, Deletes, StreamKey};
use crate::store::{Gone, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The API accepts at most this many ids per sessionId lookup.
pub const MAX_IDS_PER_LOOKUP: usize = 50;

/// The requests that look `ids` up, at most [`MAX_IDS_PER_LOOKUP`] each,
/// duplicates dropped before sending (the API counts them against the 50).
pub fn id_lookups(ids: &[String]) -> Vec<SessionsRequest> {
    let mut seen = HashSet::new();
    let unique: Vec<String> = ids
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect();
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
    /// Gone upstream but kept, marked (`deletes = "keep"`).
    pub n_marked: usize,
    pub n_rejected: usize,
    /// Ids the API reported in `invalidSessions` (among those asked for).
    pub unknown: Vec<String>,
    pub stats: CallStats,
}

/// One refresh by id: where to read and store, and what to do with ids the
/// API no longer knows.
pub(super) struct Refresh<'a> {
    /// `io.key` labels rejected records; the sessions' own containment type
    /// decides where they belong.
    pub io: StreamIo<'a>,
    /// Fills `containment_type` for records that lack it (None: leave it).
    pub containment: Option<ContainmentType>,
    /// What to do with ids the API reports in `invalidSessions`: None lists
    /// them only; otherwise they are deleted or marked, as `sync.deletes` says.
    pub unknown: Option<Deletes>,
}

impl Refresh<'_> {
    /// Sends each lookup, stores the sessions that come back, and deletes
    /// unknown ids if told to, each lookup in its own transaction. Figures
    /// accumulate in `out` even when an error ends it.
    pub async fn run(
        &self,
        lookups: &[SessionsRequest],
        out: &mut Refreshed,
    ) -> Result<(), FetchError> {
        for body in lookups {
            let (result, call) = self
                .io
                .api
                .get_sessions(
                    self.containment,
                    body,
                    self.io.max_budget_wait,
                    self.io.cancel,
                )
                .await;
            out.stats += call;
            let page = result?;
            let mut acc = Accumulator::default();
            acc.take(
                page.sessions,
                |raw| parse_or_reject(raw, self.containment, self.io.privacy),
                self.io.key,
            );
            // Only ids we asked for can be reported unknown.
            let asked = body.session_id.as_deref().unwrap_or_default();
            let unknown: Vec<String> = page
                .invalid_sessions
                .into_iter()
                .filter(|id| asked.contains(id))
                .collect();
            if self.unknown.is_some() && !unknown.is_empty() {
                info!(stream = %self.io.key, n_gone = unknown.len(),
                      "sessions no longer exist upstream");
            }
            let batch = acc.into_batch();
            out.n_found += batch.records.len();
            out.n_rejected += batch.rejected.len();
            let gone = match self.unknown {
                Some(mode) => Gone {
                    ids: unknown.clone(),
                    mode,
                },
                None => Gone::none(),
            };
            let commit = self
                .io
                .store
                .commit_refresh(self.io.key, batch, gone)
                .await?;
            out.n_written += commit.n_written;
            out.n_deleted += commit.n_deleted;
            out.n_marked += commit.n_marked;
            out.unknown.extend(unknown);
        }
        Ok(())
    }
}

/// Re-reads by id the stream's sessions stored as `active` that started
/// before `before` (the windows of this pass no longer cover them), so
/// their final state lands and those the API no longer has are deleted.
pub(super) async fn refresh_stale_active(
    sessions: &Sessions<'_>,
    before: DateTime<Utc>,
    report: &mut StreamReport,
    stop: &Stop,
) -> Result<(), StoreError> {
    let ids = sessions
        .io
        .store
        .stale_active_sessions(sessions.io.key, before)
        .await?;
    if ids.is_empty() {
        return Ok(());
    }
    info!(stream = %sessions.io.key, n_sessions = ids.len(), "re-reading sessions stored as active by id");
    let refresh = Refresh {
        io: sessions.io,
        containment: sessions.io.key.containment_type(),
        unknown: Some(sessions.deletes),
    };
    let mut found = Refreshed::default();
    let result = refresh.run(&id_lookups(&ids), &mut found).await;
    report.add(&found.stats);
    report.records_rejected += found.n_rejected as u64;
    report.sessions_written += found.n_written as u64;
    report.sessions_deleted += found.n_deleted as u64;
    report.sessions_marked += found.n_marked as u64;
    match result {
        Ok(()) => Ok(()),
        Err(FetchError::Api(e)) => {
            report.fail(&e, stop, None);
            Ok(())
        }
        Err(FetchError::Store(e)) => Err(e),
    }
}

/// What `kore-sync fetch` asks for.
#[derive(Debug, Clone)]
pub struct FetchByIdRequest {
    /// The scope to ask (a configured bot id, or `*`).
    pub bot_id: String,
    pub session_ids: Vec<String>,
    /// An external call id (`?callId=`), looked up after the ids.
    pub call_id: Option<String>,
    /// Delete ids the API no longer knows.
    pub prune: bool,
}

/// Reads the given sessions (50 ids per request, duplicates dropped, and the
/// call id's sessions) and upserts them; waits out the budget if it must.
pub async fn fetch_by_id(
    ctx: &SyncContext,
    request: &FetchByIdRequest,
    cancel: &CancellationToken,
) -> Result<Refreshed, FetchError> {
    let scope = ctx
        .scope(&request.bot_id)
        .expect("the command checked the bot is configured");
    // The stream key only labels rejected records; containment comes from
    // each record.
    let key = StreamKey::sessions(&request.bot_id, ContainmentType::SelfService, "");
    let mut lookups = id_lookups(&request.session_ids);
    if let Some(call_id) = &request.call_id {
        lookups.push(SessionsRequest {
            call_id: Some(call_id.clone()),
            ..SessionsRequest::default()
        });
    }
    let refresh = Refresh {
        io: StreamIo::new((ctx, scope), &key, None, cancel),
        containment: None,
        unknown: request.prune.then_some(ctx.settings.deletes),
    };
    let mut found = Refreshed::default();
    refresh.run(&lookups, &mut found).await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_hold_at_most_50_distinct_ids_each() {
        let mut ids: Vec<String> = (0..120).map(|i| format!("id{i}")).collect();
        ids.extend(ids[..10].to_vec());
        let lookups = id_lookups(&ids);
        let sizes: Vec<usize> = lookups
            .iter()
            .map(|l| l.session_id.as_ref().unwrap().len())
            .collect();
        assert_eq!(sizes, [50, 50, 20]);
        let all: HashSet<&String> = lookups
            .iter()
            .flat_map(|l| l.session_id.as_ref().unwrap())
            .collect();
        assert_eq!(all.len(), 120);
    }
}
