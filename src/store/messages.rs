//! Conversation messages: a window's (or a chunk's) messages with their
//! tags, in one transaction with the stream's watermark, as sessions are.
//! A message does not change once written, so a re-read writes nothing; a
//! changed record (e.g. content purged upstream) replaces the old row and
//! its tags.

use super::WindowCommit;
use super::error::{QueryContext, StoreError};
use super::message_write::store_batches;
use super::noted_days::NotedDays;
use super::session_store::Writer;
use super::sql::{from_micros, lit, ts};
use crate::model::{ClosedSession, MessageBatch, StreamKey, Window};
use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt, params};

/// Stores a chunk of a window still being read, in one transaction; the
/// watermark stays (a window completely read commits with the others
/// waiting, `window_group`).
pub(super) fn commit_chunk(
    (writer, noted): (&mut Writer, &NotedDays),
    key: &StreamKey,
    batch: &MessageBatch,
    now: DateTime<Utc>,
) -> Result<WindowCommit, StoreError> {
    let Writer {
        conn, message_ids, ..
    } = writer;
    super::chunk::commit_chunk((conn, noted), key, |tx, days| {
        let counts = store_batches((tx, message_ids), &[(key, batch)], (now, days))?;
        Ok(counts[0])
    })
}

/// The messages of stream `key` (a bot and a channel) created within
/// `window`, counted with its end excluded and included.
pub(super) fn count_stored(
    conn: &Connection,
    key: &StreamKey,
    window: Window,
) -> Result<(u64, u64), StoreError> {
    super::runs::count_in_window(conn, ("messages", "created_on", "channel"), key, window)
}

/// The sessions of `bot_id`'s stored messages that are not in the
/// warehouse (issue 21), at most `limit`: left by an earlier kore-sync,
/// they are to be confirmed with the API.
pub(super) fn sessions_of_orphans(
    conn: &Connection,
    bot_id: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    const DOING: &str = "finding messages without a session";
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT m.session_id FROM messages m
             WHERE m.bot_id = ? AND m.session_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = m.session_id)
             ORDER BY 1 LIMIT ?",
        )
        .doing(DOING)?;
    let ids = stmt
        .query_map(
            params![bot_id, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )
        .doing(DOING)?
        .collect::<Result<_, _>>()
        .doing(DOING)?;
    Ok(ids)
}

/// One transcript to show (the demo): of a dropped-off or agent-handled
/// session with the most messages, as (session id, containment type, text).
pub(super) fn sample_transcript(
    conn: &Connection,
) -> Result<Option<(String, String, String)>, StoreError> {
    conn.query_row(
        "SELECT session_id, containment_type, transcript FROM transcripts
         WHERE containment_type IN ('dropOff', 'agent')
         ORDER BY n_messages DESC, session_id LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
    .doing("reading a transcript")
}

/// The sessions of `bot_id` and `channel` noted as closed whose start lies
/// before `before` (the stream's watermark less its lookback), oldest
/// first. Noted sessions starting later are dropped from the list: the
/// stream's date windows will read their messages.
pub(super) fn closed_sessions(
    conn: &mut Connection,
    (bot_id, channel): (&str, &str),
    before: DateTime<Utc>,
) -> Result<Vec<ClosedSession>, StoreError> {
    const DOING: &str = "reading sessions that closed";
    let tx = conn.transaction().doing(DOING)?;
    tx.execute(
        "DELETE FROM message_rereads WHERE bot_id = ? AND channel = ? AND start_time >= CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)",
        params![bot_id, channel, ts(before)],
    )
    .doing(DOING)?;
    let found = {
        let mut stmt = tx
            .prepare(
                "SELECT session_id, epoch_us(start_time), epoch_us(end_time) FROM message_rereads
                 WHERE bot_id = ? AND channel = ? ORDER BY start_time, session_id",
            )
            .doing(DOING)?;
        stmt.query_map(params![bot_id, channel], |r| {
            Ok(ClosedSession {
                session_id: r.get(0)?,
                start_time: from_micros(r.get(1)?),
                end_time: r.get::<_, Option<i64>>(2)?.map(from_micros),
            })
        })
        .doing(DOING)?
        .collect::<Result<Vec<_>, _>>()
        .doing(DOING)?
    };
    tx.commit().doing(DOING)?;
    Ok(found)
}

/// Forgets the noted sessions whose messages were read again.
pub(super) fn forget_closed(conn: &Connection, ids: &[String]) -> Result<(), StoreError> {
    const DOING: &str = "forgetting sessions that closed";
    let mut stmt = conn
        .prepare("DELETE FROM message_rereads WHERE session_id = ?")
        .doing(DOING)?;
    for id in ids {
        stmt.execute(params![id]).doing(DOING)?;
    }
    Ok(())
}

/// Forgets every noted session of `bots` (bots whose messages are not
/// synced: nothing would read them) and, when there are such bots, any
/// noted more than 30 days ago (of a bot only the account scope reads,
/// which has no message streams), in one statement.
pub(super) fn forget_bots(
    conn: &Connection,
    bots: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const DOING: &str = "forgetting sessions that closed";
    if bots.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = bots.iter().map(|b| lit(b)).collect();
    let of_bots = format!("bot_id IN ({})", listed.join(", "));
    conn.execute(
        &format!(
            "DELETE FROM message_rereads
             WHERE {of_bots} OR noted_at < CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)"
        ),
        params![ts(now - chrono::TimeDelta::days(30))],
    )
    .doing(DOING)?;
    Ok(())
}
