//! Conversation messages: a window's (or a chunk's) messages with their
//! tags, in one transaction with the stream's watermark, as sessions are.
//! A message does not change once written, so a re-read writes nothing; a
//! changed record (e.g. content purged upstream) replaces the old row and
//! its tags.

use super::WindowCommit;
use super::commit::{Advance, keep_rejected, move_watermark};
use super::error::{QueryContext, StoreError};
use super::sql::ts;
use crate::model::{Message, MessageBatch, StreamKey};
use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt, Transaction, params};
use std::collections::HashMap;

/// Stores `batch` and, for a window completely read (`advance`), moves the
/// watermark — in one transaction.
pub(super) fn commit_messages(
    conn: &mut Connection,
    key: &StreamKey,
    batch: &MessageBatch,
    advance: Option<Advance>,
    now: DateTime<Utc>,
) -> Result<WindowCommit, StoreError> {
    let tx = conn
        .transaction()
        .doing("beginning the messages transaction")?;
    let messages = last_version_of_each(&batch.records);
    let mut n_written = 0;
    for m in &messages {
        if upsert_message(&tx, m, now)? {
            n_written += 1;
            // Its day is a Parquet partition to rewrite.
            tx.execute(
                "INSERT OR IGNORE INTO parquet_dirty_days VALUES (CAST(make_timestamp(?) AS DATE))",
                params![m.created_on.timestamp_micros()],
            )
            .doing("noting changed days")?;
        }
    }
    keep_rejected(&tx, key, &batch.rejected, now)?;
    let watermark = match advance {
        Some(advance) => move_watermark(&tx, key, advance, now)?,
        None => super::runs::watermark_with_filter(&tx, key)?.0,
    };
    tx.commit().doing("committing messages")?;
    Ok(WindowCommit {
        n_received: messages.len(),
        n_written,
        n_deleted: 0,
        n_marked: 0,
        watermark,
    })
}

/// Writes one message unless the same record is stored; true if written.
fn upsert_message(
    tx: &Transaction<'_>,
    m: &Message,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    const DOING: &str = "storing a message";
    let stored: Option<(String, i64)> = tx
        .query_row(
            "SELECT CAST(raw AS VARCHAR), epoch_us(first_synced_at) FROM messages WHERE message_id = ?",
            params![m.message_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .doing(DOING)?;
    let first_synced = match &stored {
        Some((raw, _)) if same_json(raw, &m.raw) => return Ok(false),
        Some((_, first_us)) => {
            tx.execute(
                "DELETE FROM message_tags WHERE message_id = ?",
                params![m.message_id],
            )
            .doing(DOING)?;
            tx.execute(
                "DELETE FROM messages WHERE message_id = ?",
                params![m.message_id],
            )
            .doing(DOING)?;
            super::sql::from_micros(*first_us)
        }
        None => now,
    };
    tx.execute(
        "INSERT INTO messages VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMPTZ), ?, ?, ?, CAST(? AS JSON),
             CAST(? AS JSON), CAST(? AS TIMESTAMPTZ), CAST(? AS TIMESTAMPTZ))",
        params![
            m.message_id,
            m.session_id,
            m.bot_id,
            m.direction,
            ts(m.created_on),
            m.channel,
            m.lang,
            m.text,
            m.components,
            m.raw,
            ts(first_synced),
            ts(now)
        ],
    )
    .doing(DOING)?;
    for t in &m.tags {
        tx.execute(
            "INSERT INTO message_tags VALUES (?, ?, ?, ?, ?, CAST(? AS JSON))",
            params![
                m.message_id,
                t.kind,
                t.ordinal,
                t.name,
                t.value,
                t.value_json
            ],
        )
        .doing(DOING)?;
    }
    Ok(true)
}

/// Whether two JSON texts hold the same value (DuckDB's JSON column may
/// store a normalised text).
fn same_json(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// One message per id, the last version given.
fn last_version_of_each(messages: &[Message]) -> Vec<&Message> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        last.insert(m.message_id.as_str(), i);
    }
    messages
        .iter()
        .enumerate()
        .filter(|(i, m)| last[m.message_id.as_str()] == *i)
        .map(|(_, m)| m)
        .collect()
}

/// The channels the bot's stored sessions use, for its message streams.
pub(super) fn session_channels(conn: &Connection, bot_id: &str) -> Result<Vec<String>, StoreError> {
    const DOING: &str = "finding the channels of a bot's sessions";
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT channel FROM sessions
             WHERE bot_id = ? AND channel IS NOT NULL AND deleted_at IS NULL ORDER BY 1",
        )
        .doing(DOING)?;
    let channels = stmt
        .query_map(params![bot_id], |r| r.get(0))
        .doing(DOING)?
        .collect::<Result<_, _>>()
        .doing(DOING)?;
    Ok(channels)
}
