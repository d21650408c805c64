//! Stage two for the scopes: each `[[bots]]` table, then `[account]` (keyed
//! `*`), with its credentials (its own, or `[api]`'s: see `credentials`) and
//! its API filters.

use super::collector::Collector;
use super::credentials::credentials;
use super::raw::{RawConfig, RawScope, UnknownKeys};
use crate::model::{ACCOUNT_BOT_ID, StreamFilter};
use crate::sync::Scope;

/// Every scope to sync, in config order: the bots, then the account.
pub(super) fn scopes(raw: &RawConfig, p: &mut Collector, warnings: &mut Vec<String>) -> Vec<Scope> {
    let fallback = &raw.api.credentials;
    let mut scopes: Vec<Scope> = Vec::new();
    if raw.bots.is_empty() && raw.account.is_none() {
        p.push::<()>(
            "bots",
            "no [[bots]] and no [account]: add a [[bots]] table with id = \"st-…\" for each bot to sync, or an [account] table".into(),
        );
    }
    refuse_unknown("api", &raw.api.unknown, p);
    for (i, bot) in raw.bots.iter().enumerate() {
        let key = format!("bots[{i}]");
        refuse_unknown(&key, &bot.unknown, p);
        let Some(id) = bot_id(&key, bot, &scopes, p) else {
            continue;
        };
        let filter = filter_of(&key, bot, p);
        if let Some(credentials) = credentials(&key, &bot.credentials, fallback, p, warnings) {
            scopes.push(Scope {
                bot_id: id,
                name: bot.name.clone().filter(|n| !n.trim().is_empty()),
                messages: bot.messages,
                analytics: bot.analytics,
                credentials,
                filter,
            });
        }
    }
    if let Some(account) = &raw.account {
        refuse_unknown("account", &account.unknown, p);
        if account.messages.is_some() {
            p.push::<()>(
                "account.messages",
                "the account scope has no conversation history call (getMessagesV2 is per bot); \
                 set messages in each [[bots]] table"
                    .into(),
            );
        }
        if account.analytics.is_some() {
            p.push::<()>(
                "account.analytics",
                "the account scope has no analytics call (getAnalytics is per bot); \
                 set analytics in each [[bots]] table"
                    .into(),
            );
        }
        if account.name.is_some() {
            p.push::<()>(
                "account.name",
                "the account scope takes no name (bot names come from the Admin Console's bot list); \
                 name bots in their [[bots]] tables"
                    .into(),
            );
        }
        if account.id.is_some() {
            p.push::<()>(
                "account.id",
                "the account scope takes no id (it covers every bot of the account); remove it"
                    .into(),
            );
        } else if let Some(credentials) =
            credentials("account", &account.credentials, fallback, p, warnings)
        {
            let filter = filter_of("account", account, p);
            scopes.push(Scope {
                bot_id: ACCOUNT_BOT_ID.to_owned(),
                name: None,
                messages: None,
                analytics: None,
                credentials,
                filter,
            });
        }
    }
    scopes
}

/// Refuses keys a table holds that kore-sync does not know, by name, so a
/// typo never silently falls back to a default.
fn refuse_unknown(table: &str, unknown: &UnknownKeys, p: &mut Collector) {
    for key in unknown.keys() {
        p.push::<()>(
            &format!("{table}.{key}"),
            "is not a key kore-sync knows; remove or correct it (deploy/kore-sync.example.toml lists them all)"
                .into(),
        );
    }
}

/// A `[[bots]]` table's id: present, not `*`, not listed before.
fn bot_id(key: &str, bot: &RawScope, seen: &[Scope], p: &mut Collector) -> Option<String> {
    match bot.id.as_deref().map(str::trim) {
        None | Some("") => p.push(
            &format!("{key}.id"),
            "is missing; set it to the bot's id (\"st-…\", Bot Settings > Config)".into(),
        ),
        Some(ACCOUNT_BOT_ID) => p.push(
            &format!("{key}.id"),
            "\"*\" is reserved for the [account] scope; use the bot's \"st-…\" id".into(),
        ),
        Some(id) if seen.iter().any(|s| s.bot_id == id) => p.push(
            &format!("{key}.id"),
            format!("bot {id:?} is listed twice; keep one [[bots]] table per bot"),
        ),
        Some(id) => Some(id.to_owned()),
    }
}

/// A scope's API filters, checked.
fn filter_of(key: &str, raw: &RawScope, p: &mut Collector) -> StreamFilter {
    let session_type = match raw.session_type.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t @ ("interactive" | "non-interactive")) => Some(t.to_owned()),
        Some(t) => p.push(
            &format!("{key}.session_type"),
            format!("{t:?} is not a session type; use \"interactive\" or \"non-interactive\""),
        ),
    };
    StreamFilter {
        session_type,
        user_id: raw
            .user_id
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
        tags: raw
            .tags
            .as_ref()
            .map(|t| serde_json::to_string(t).expect("JSON values serialize")),
    }
}
