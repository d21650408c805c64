//! The `bots` table: names for bot ids. The Admin Console's list replaces
//! every row it names; names from the config fill in only bots the list has
//! not named.

use super::error::{QueryContext, StoreError};
use super::sql::{from_micros, ts};
use crate::model::Bot;
use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt, params};

/// Where a bot's row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotSource {
    /// The Admin Console's bot list: authoritative.
    Api,
    /// The `name` in a `[[bots]]` table: used until the API names the bot.
    Config,
}

impl BotSource {
    fn as_str(self) -> &'static str {
        match self {
            BotSource::Api => "api",
            BotSource::Config => "config",
        }
    }
}

/// Stores `bots` in one transaction; returns how many rows were written.
pub(super) fn store_bots(
    conn: &mut Connection,
    bots: &[Bot],
    source: BotSource,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    const DOING: &str = "storing bot names";
    let tx = conn.transaction().doing(DOING)?;
    let mut n = 0;
    for bot in bots {
        let raw = bot.raw.as_ref().map(|r| r.to_string());
        let sql = match source {
            BotSource::Api => {
                "INSERT OR REPLACE INTO bots (bot_id, name, description, status, default_language,
                     created_on, raw, source, synced_at)
                 VALUES (?, ?, ?, ?, ?, ?, CAST(? AS JSON), ?, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ))"
            }
            // A name from the config never replaces one from the API.
            BotSource::Config => {
                "INSERT INTO bots (bot_id, name, description, status, default_language,
                     created_on, raw, source, synced_at)
                 VALUES (?, ?, ?, ?, ?, ?, CAST(? AS JSON), ?, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ))
                 ON CONFLICT (bot_id) DO UPDATE SET name = excluded.name, synced_at = excluded.synced_at
                 WHERE bots.source = 'config' AND bots.name IS DISTINCT FROM excluded.name"
            }
        };
        n += tx
            .execute(
                sql,
                params![
                    bot.bot_id,
                    bot.name,
                    bot.description,
                    bot.status,
                    bot.default_language,
                    bot.created_on,
                    raw,
                    source.as_str(),
                    ts(now)
                ],
            )
            .doing(DOING)?;
    }
    tx.commit().doing(DOING)?;
    Ok(n)
}

/// When the Admin Console's list was last stored (None: never).
pub(super) fn api_bots_synced_at(conn: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let us: Option<i64> = conn
        .query_row(
            "SELECT epoch_us(max(synced_at)) FROM bots WHERE source = 'api'",
            [],
            |r| r.get(0),
        )
        .optional()
        .doing("reading when bots were listed")?
        .flatten();
    Ok(us.map(from_micros))
}
