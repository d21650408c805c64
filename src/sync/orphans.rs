//! Messages whose session is not in the warehouse (issue 21). Today's
//! engine stores none: a message stream never reads past its bot's session
//! streams (`plan::ending_by`), and a message is committed only with its
//! session (`store::messages`). Warehouses written by an earlier kore-sync
//! may hold some; `verify` confirms their sessions with the API by id, 50 at
//! a time: a session the API still has is stored, and the messages of one
//! it no longer has are removed — under `sync.deletes = "keep"` too, since
//! there is no session row to keep them with. A pass does not look: it
//! cannot make new ones, and the look costs a scan of the bot's messages.

use super::context::{ScopeApi, SyncContext};
use super::fetch::FetchError;
use super::refresh::{Refresh, Refreshed, id_lookups};
use super::resource::StreamIo;
use super::stop::Stop;
use crate::model::{ContainmentType, Deletes, StreamKey};
use crate::store::StoreError;
use std::time::Duration;
use tracing::info;

/// Sessions confirmed per round: one round is this many lookups at most.
const ROUND: usize = 50 * 20;

/// What confirming one bot's messages without a session found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrphanCheck {
    pub bot_id: String,
    /// Distinct sessions of stored messages that were not stored.
    pub n_sessions: usize,
    /// Of those, the API still had this many: now stored.
    pub n_found: usize,
    /// And no longer had this many: their messages removed (or kept).
    pub n_gone: usize,
    /// Sessions still missing afterwards (a dry run changes nothing; a
    /// failed request leaves some).
    pub n_left: usize,
    /// Why the check stopped early, if it did.
    pub error: Option<String>,
}

/// Confirms the sessions of the bot's messages that have none, unless
/// `dry_run` (then it only counts them).
pub(super) async fn confirm(
    (ctx, scope): (&SyncContext, &ScopeApi),
    dry_run: bool,
    max_budget_wait: Option<Duration>,
    stop: &Stop,
) -> Result<OrphanCheck, StoreError> {
    let bot_id = scope.scope.bot_id.clone();
    let mut check = OrphanCheck {
        bot_id: bot_id.clone(),
        ..OrphanCheck::default()
    };
    // The key only labels rejected records; each session's containment
    // type comes from its record.
    let key = StreamKey::sessions(&bot_id, ContainmentType::SelfService, "");
    let refresh = Refresh {
        io: StreamIo::new((ctx, scope), &key, max_budget_wait, &stop.token),
        containment: None,
        unknown: Some(Deletes::Delete),
    };
    let mut asked = std::collections::HashSet::new();
    loop {
        let ids = ctx
            .store
            .sessions_of_orphan_messages(&bot_id, ROUND)
            .await?;
        // Ids asked about already (a record the API sent back that could
        // not be stored) are not asked again.
        let new: Vec<String> = ids.into_iter().filter(|id| !asked.contains(id)).collect();
        if new.is_empty() || dry_run {
            break;
        }
        info!(bot_id = %bot_id, n_sessions = new.len(), "confirming the sessions of messages without one");
        check.n_sessions += new.len();
        let mut found = Refreshed::default();
        let result = refresh.run(&id_lookups(&new), &mut found).await;
        check.n_found += found.n_found;
        check.n_gone += found.unknown.len();
        asked.extend(new);
        match result {
            Ok(()) => {}
            Err(FetchError::Api(e)) => {
                check.error = Some(format!("{e:#}"));
                break;
            }
            Err(FetchError::Store(e)) => return Err(e),
        }
    }
    check.n_left = ctx
        .store
        .sessions_of_orphan_messages(&bot_id, usize::MAX)
        .await?
        .len();
    if dry_run {
        check.n_sessions = check.n_left;
    }
    Ok(check)
}
