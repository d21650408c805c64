//! Conversation messages: a window's (or a chunk's) messages with their
//! tags, in one transaction with the stream's watermark, as sessions are.
//! A message does not change once written, so a re-read writes nothing; a
//! changed record (e.g. content purged upstream) replaces the old row and
//! its tags.

use super::WindowCommit;
use super::commit::{keep_rejected, last_version_of_each};
use super::error::{QueryContext, StoreError};
use super::sql::{from_micros, lit, ts};
use crate::model::{ClosedSession, Message, MessageBatch, StreamKey, Window};
use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt, Transaction, params};
use std::collections::{HashMap, HashSet};

/// Stores a chunk of a window still being read, in one transaction; the
/// watermark stays (a window completely read commits with the others
/// waiting, `window_group`).
pub(super) fn commit_chunk(
    conn: &mut Connection,
    key: &StreamKey,
    batch: &MessageBatch,
    now: DateTime<Utc>,
) -> Result<WindowCommit, StoreError> {
    let tx = conn
        .transaction()
        .doing("beginning the messages transaction")?;
    let [(n_received, n_written)] = store_batches(&tx, &[(key, batch)], now)?[..] else {
        unreachable!("one count per batch")
    };
    let watermark = super::runs::watermark_with_filter(&tx, key)?.0;
    tx.commit().doing("committing messages")?;
    Ok(WindowCommit {
        n_received,
        n_written,
        n_deleted: 0,
        n_marked: 0,
        watermark,
    })
}

/// Stores the batches' messages (only new or changed ones are written) and
/// their rejected records in the caller's transaction, all batches' messages
/// staged and written together. Returns, per batch, (distinct messages,
/// messages written). A message in two batches is stored as the later one
/// gives it, and counted there.
pub(super) fn store_batches(
    tx: &Transaction<'_>,
    batches: &[(&StreamKey, &MessageBatch)],
    now: DateTime<Utc>,
) -> Result<Vec<(usize, usize)>, StoreError> {
    let each: Vec<Vec<&Message>> = batches
        .iter()
        .map(|(_, b)| last_version_of_each(&b.records))
        .collect();
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, messages) in each.iter().enumerate() {
        owner.extend(messages.iter().map(|m| (m.message_id.as_str(), i)));
    }
    let owned = &owner;
    let all: Vec<&Message> = each
        .iter()
        .enumerate()
        .flat_map(|(i, ms)| {
            ms.iter()
                .copied()
                .filter(move |m| owned[m.message_id.as_str()] == i)
        })
        .collect();
    // Staged and written in parts of bounded bytes, in this transaction:
    // a batch of large records would not fit DuckDB's memory at once.
    let mut written: HashSet<String> = HashSet::new();
    for part in super::parts::parts(&all) {
        stage(tx, part)?;
        skip_without_session(tx, part)?;
        written.extend(write_staged(tx, &id_bounds(part), now)?);
    }
    let mut counts = Vec::with_capacity(batches.len());
    for (i, (key, batch)) in batches.iter().enumerate() {
        keep_rejected(tx, key, &batch.rejected, now)?;
        let n_written = each[i]
            .iter()
            .filter(|m| owner[m.message_id.as_str()] == i && written.contains(&m.message_id))
            .count();
        counts.push((each[i].len(), n_written));
    }
    Ok(counts)
}

/// Appends the batch to temporary staging tables (text columns; times as
/// text the final insert casts).
pub(super) fn stage(tx: &Transaction<'_>, messages: &[&Message]) -> Result<(), StoreError> {
    const DOING: &str = "staging messages";
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS stage_messages (
             message_id VARCHAR, session_id VARCHAR, bot_id VARCHAR, direction VARCHAR,
             created_on VARCHAR, created_us BIGINT, channel VARCHAR, lang VARCHAR, text VARCHAR,
             components VARCHAR, raw VARCHAR);
         CREATE TEMP TABLE IF NOT EXISTS stage_message_tags (
             message_id VARCHAR, kind VARCHAR, ordinal INTEGER, name VARCHAR, value VARCHAR,
             value_json VARCHAR);
         DELETE FROM stage_messages; DELETE FROM stage_message_tags;",
    )
    .doing(DOING)?;
    let mut rows = tx.appender("stage_messages").doing(DOING)?;
    for m in messages {
        rows.append_row(params![
            m.message_id,
            m.session_id,
            m.bot_id,
            m.direction,
            ts(m.created_on),
            m.created_on.timestamp_micros(),
            m.channel,
            m.lang,
            m.text,
            m.components,
            m.raw
        ])
        .doing(DOING)?;
    }
    rows.flush().doing(DOING)?;
    let mut tags = tx.appender("stage_message_tags").doing(DOING)?;
    for m in messages {
        for t in &m.tags {
            tags.append_row(params![
                m.message_id,
                t.kind,
                t.ordinal,
                t.name,
                t.value,
                t.value_json
            ])
            .doing(DOING)?;
        }
    }
    tags.flush().doing(DOING)
}

/// Drops from the staged batch the messages whose session is not stored
/// (issue 21): a message is stored only with its session. Its session is
/// either filtered out by the bot's session filters (the filter means what
/// it says for messages too), or not listed yet — listed late, its
/// messages are read again by session id once it is stored (see
/// `commit::note_listed_late`). Messages without a session id are kept.
/// The session ids looked up are bounded like the message ids (see
/// [`id_bounds`]). Returns how many were dropped.
fn skip_without_session(tx: &Transaction<'_>, messages: &[&Message]) -> Result<usize, StoreError> {
    let ids = || messages.iter().filter_map(|m| m.session_id.as_deref());
    let (Some(lo), Some(hi)) = (ids().min(), ids().max()) else {
        return Ok(0);
    };
    let n = tx
        .execute(
            &format!(
                "DELETE FROM stage_messages WHERE session_id IS NOT NULL AND session_id NOT IN (
                     SELECT session_id FROM sessions WHERE session_id BETWEEN {} AND {}
                     AND session_id IN (SELECT session_id FROM stage_messages))",
                lit(lo),
                lit(hi)
            ),
            [],
        )
        .doing("leaving out messages whose session is not stored")?;
    if n > 0 {
        tracing::debug!(
            n_messages = n,
            "left out messages whose session is not stored"
        );
    }
    Ok(n)
}

/// The least and greatest id of a non-empty batch, as a SQL condition on
/// `message_id`. Kore.ai's message ids are `ms-` and a MongoDB ObjectId,
/// which begins with its creation time: a window's ids are narrow, and
/// stored in about that order, so DuckDB's zone maps skip the row groups of
/// the rest of the history. The bound is exact whatever the ids are (every
/// id of the batch lies within it), only its pruning depends on them.
fn id_bounds(messages: &[&Message]) -> String {
    let lo = messages
        .iter()
        .map(|m| m.message_id.as_str())
        .min()
        .unwrap_or_default();
    let hi = messages
        .iter()
        .map(|m| m.message_id.as_str())
        .max()
        .unwrap_or_default();
    format!("message_id BETWEEN {} AND {}", lit(lo), lit(hi))
}

/// Writes the staged messages that are new or changed (a changed one keeps
/// its `first_synced_at`) with their tags, and notes their days for the
/// Parquet export. `in_batch` bounds the ids looked up among the stored
/// ones (see [`id_bounds`]), so a commit costs its window, not the history.
/// Returns the ids written.
fn write_staged(
    tx: &Transaction<'_>,
    in_batch: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    const DOING: &str = "storing messages";
    tx.execute_batch(&format!(
        "DELETE FROM stage_messages WHERE (message_id, raw) IN (
             SELECT message_id, CAST(raw AS VARCHAR) FROM messages
             WHERE {in_batch} AND message_id IN (SELECT message_id FROM stage_messages));
         CREATE OR REPLACE TEMP TABLE stage_first AS
             SELECT message_id, first_synced_at FROM messages
             WHERE {in_batch} AND message_id IN (SELECT message_id FROM stage_messages);
         DELETE FROM message_tags
             WHERE {in_batch} AND message_id IN (SELECT message_id FROM stage_first);
         DELETE FROM messages
             WHERE {in_batch} AND message_id IN (SELECT message_id FROM stage_first);"
    ))
    .doing(DOING)?;
    let written: Vec<String> = tx
        .prepare_cached(
            "INSERT INTO messages
             SELECT s.message_id, s.session_id, s.bot_id, s.direction, CAST(s.created_on AS TIMESTAMPTZ),
                    s.channel, s.lang, s.text, CAST(s.components AS JSON), CAST(s.raw AS JSON),
                    coalesce(f.first_synced_at, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)), CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)
             FROM stage_messages s LEFT JOIN stage_first f USING (message_id)
             RETURNING message_id",
        )
        .doing(DOING)?
        .query_map(params![ts(now), ts(now)], |r| r.get(0))
        .doing(DOING)?
        .collect::<Result<_, _>>()
        .doing(DOING)?;
    tx.execute_batch(
        "INSERT INTO message_tags
             SELECT message_id, kind, ordinal, name, value, CAST(value_json AS JSON)
             FROM stage_message_tags WHERE message_id IN (SELECT message_id FROM stage_messages);
         INSERT OR IGNORE INTO parquet_dirty_days
             SELECT DISTINCT CAST(make_timestamp(created_us) AS DATE) FROM stage_messages;",
    )
    .doing(DOING)?;
    Ok(written)
}

/// The messages of stream `key` (a bot and a channel) created within
/// `window`, counted with its end excluded and included.
pub(super) fn count_stored(
    conn: &Connection,
    key: &StreamKey,
    window: Window,
) -> Result<(u64, u64), StoreError> {
    let (excluded, included): (i64, i64) = conn
        .query_row(
            "SELECT count(*) FILTER (WHERE created_on < CAST(CAST(?3 AS VARCHAR) AS TIMESTAMPTZ)), count(*)
             FROM messages WHERE bot_id = ?1 AND channel = ?2
               AND created_on >= CAST(CAST(?4 AS VARCHAR) AS TIMESTAMPTZ) AND created_on <= CAST(CAST(?3 AS VARCHAR) AS TIMESTAMPTZ)",
            params![
                key.bot_id,
                key.partition.name(),
                ts(window.end),
                ts(window.start)
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .doing("counting stored messages")?;
    Ok((excluded.max(0) as u64, included.max(0) as u64))
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
