//! Bot names for views and `status`: from the `name` of each `[[bots]]`
//! table, and, when `[account]` credentials are configured, from the Admin
//! Console's bot list, which wins. The list costs one request per 50 bots
//! and is read at most once per [`BOT_LIST_EVERY`], after the pass's
//! streams, and only when the account's budget has room at once: names
//! never delay sessions.

use super::SyncContext;
use crate::model::{ACCOUNT_BOT_ID, Bot};
use crate::store::BotSource;
use chrono::{TimeDelta, Utc};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the Admin Console's bot list is read.
pub const BOT_LIST_EVERY: TimeDelta = TimeDelta::hours(6);

/// Stores the names the config gives, then (when due) the account's list.
/// Failures are warnings: names are a convenience, never worth a pass.
pub async fn refresh_bot_names(ctx: &SyncContext, cancel: &CancellationToken) {
    let named: Vec<Bot> = ctx
        .scopes
        .iter()
        .filter_map(|s| {
            Some(Bot {
                bot_id: s.scope.bot_id.clone(),
                name: Some(s.scope.name.clone()?),
                description: None,
                status: None,
                default_language: None,
                created_on: None,
                raw: None,
            })
        })
        .collect();
    if !named.is_empty()
        && let Err(e) = ctx.store.store_bots(named, BotSource::Config).await
    {
        warn!(error = %e, "could not store the bot names of the config");
    }
    let Some(account) = ctx.scope(ACCOUNT_BOT_ID) else {
        return;
    };
    match ctx.store.api_bots_synced_at().await {
        Ok(Some(at)) if Utc::now() - at < BOT_LIST_EVERY => return,
        Ok(_) => {}
        Err(e) => {
            warn!(error = %e, "could not read when bots were last listed");
            return;
        }
    }
    // No waiting for the budget: if sessions used it up, names wait for
    // the next pass.
    let (listed, stats) = account.api.list_bots(Some(Duration::ZERO), cancel).await;
    match listed {
        Ok(bots) => match ctx.store.store_bots(bots, BotSource::Api).await {
            Ok(n) => info!(
                n_bots = n,
                requests = stats.requests,
                "stored bot names from the Admin Console"
            ),
            Err(e) => warn!(error = %e, "could not store bot names"),
        },
        Err(e) => warn!(
            error = %e,
            "could not list the account's bots for their names; check that the [account] app of the \
             Admin Console may list bots (Profile Management > Role Management); sessions are unaffected"
        ),
    }
}
