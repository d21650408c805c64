//! Writing messages only when they are new or changed, like sessions
//! (`upsert`): one look-up says which of a part's messages are stored and
//! which sessions are not; new messages are appended straight into
//! `messages` and `message_tags` as Arrow batches; only stored ones are
//! staged, compared with the stored `raw` and replaced where they differ.
//! Runs inside the caller's transaction. A message does not change once
//! written, so a backfill takes the first way and a re-read the second.

use super::arrow::{
    append_batch, message_batch, message_key_batch, message_tag_batch, new_message_rows,
};
use super::commit::{keep_rejected, last_version_of_each};
use super::error::{QueryContext, StoreError};
use super::message_ids::MessageIds;
use super::noted_days::DayNoting;
use super::sql::{lit, ts};
use crate::model::ids::{IdMap, IdSet};
use crate::model::{Message, MessageBatch, StreamKey};
use chrono::{DateTime, Utc};
use duckdb::{Transaction, params};
use std::collections::BTreeSet;

/// Stores the batches' messages (only new or changed ones are written) and
/// their rejected records in the caller's transaction, all batches'
/// messages looked up and written together. Returns, per batch, (distinct
/// messages, messages written). A message in two batches is stored as the
/// later one gives it, and counted there.
pub(super) fn store_batches(
    (tx, ids): (&Transaction<'_>, &mut MessageIds),
    batches: &[(&StreamKey, &MessageBatch)],
    (now, days): (DateTime<Utc>, &mut DayNoting<'_>),
) -> Result<Vec<(usize, usize)>, StoreError> {
    let each: Vec<Vec<&Message>> = batches
        .iter()
        .map(|(_, b)| last_version_of_each(&b.records))
        .collect();
    // A message in several batches belongs to the last; one batch (a bot's
    // stream alone) owns all its messages, and needs no map of them.
    let owner: Option<IdMap<&str, usize>> = (batches.len() > 1).then(|| {
        let mut owner = IdMap::default();
        for (i, messages) in each.iter().enumerate() {
            owner.extend(messages.iter().map(|m| (m.message_id.as_str(), i)));
        }
        owner
    });
    let owns = |i: usize, m: &Message| owner.as_ref().is_none_or(|o| o[m.message_id.as_str()] == i);
    let all: Vec<&Message> = each
        .iter()
        .enumerate()
        .flat_map(|(i, ms)| ms.iter().copied().filter(move |m| owns(i, m)))
        .collect();
    // Written in parts of bounded bytes, in this transaction: a batch of
    // large records would not fit DuckDB's memory at once.
    let mut written: Vec<&str> = Vec::new();
    for part in super::parts::parts(&all) {
        written.extend(write_part((tx, &mut *ids), part, (now, &mut *days))?);
    }
    // Every id is written at most once: `all` holds each once.
    let n_written = written.len();
    let written: Option<IdSet<&str>> = owner.is_some().then(|| written.into_iter().collect());
    let mut counts = Vec::with_capacity(batches.len());
    for (i, (key, batch)) in batches.iter().enumerate() {
        keep_rejected(tx, key, &batch.rejected, now)?;
        let n_written = match &written {
            None => n_written,
            Some(set) => each[i]
                .iter()
                .filter(|m| owns(i, m) && set.contains(m.message_id.as_str()))
                .count(),
        };
        counts.push((each[i].len(), n_written));
    }
    Ok(counts)
}

/// Writes one part (distinct ids): new messages appended, stored ones
/// replaced if changed, those whose session is not stored left out.
/// Returns the ids written.
fn write_part<'m>(
    (tx, ids): (&Transaction<'_>, &mut MessageIds),
    part: &[&'m Message],
    (now, days): (DateTime<Utc>, &mut DayNoting<'_>),
) -> Result<Vec<&'m str>, StoreError> {
    let found = Found::look_up(tx, part, ids)?;
    let (mut new, mut stored) = (Vec::new(), Vec::new());
    let mut n_left_out = 0;
    for m in part {
        if m.session_id
            .as_ref()
            .is_some_and(|s| found.no_session.contains(s))
        {
            n_left_out += 1;
        } else if found.messages.contains(&m.message_id) {
            stored.push(*m);
        } else {
            new.push(*m);
        }
    }
    if n_left_out > 0 {
        tracing::debug!(
            n_messages = n_left_out,
            "left out messages whose session is not stored"
        );
    }
    // Known before the transaction commits (see `message_ids`).
    ids.add(new.iter().map(|m| m.message_id.as_str()));
    append_new(tx, &new, (now, days))?;
    let mut written: Vec<&str> = new.iter().map(|m| m.message_id.as_str()).collect();
    if !stored.is_empty() {
        stage(tx, &stored)?;
        let changed = replace_changed(tx, &id_bounds(&stored), now)?;
        written.extend(
            stored
                .iter()
                .map(|m| m.message_id.as_str())
                .filter(|id| changed.contains(*id)),
        );
    }
    Ok(written)
}

/// What one look-up learns of a part: which of its messages are stored,
/// and which of its sessions are not. A message is stored only with its
/// session (issue 21): its session is either filtered out by the bot's
/// session filters (the filter means what it says for messages too), or
/// not listed yet — listed late, its messages are read again by session id
/// once it is stored (see `commit::note_listed_late`). Messages without a
/// session id are kept.
struct Found {
    messages: IdSet<String>,
    no_session: IdSet<String>,
}

impl Found {
    /// One statement over both tables, each bounded by the least and
    /// greatest id looked up (see [`id_bounds`]), so its cost follows the
    /// part, not the history. Messages the filter of stored ids rules out
    /// are not looked up.
    fn look_up(
        tx: &Transaction<'_>,
        part: &[&Message],
        ids: &mut MessageIds,
    ) -> Result<Found, StoreError> {
        const DOING: &str = "finding which messages are stored";
        let mut found = Found {
            messages: IdSet::default(),
            no_session: IdSet::default(),
        };
        let maybe: Vec<&Message> = part
            .iter()
            .copied()
            .filter(|m| ids.may_be_stored(&m.message_id))
            .collect();
        let sessions = || part.iter().filter_map(|m| m.session_id.as_deref());
        let of_sessions = match (sessions().min(), sessions().max()) {
            (Some(lo), Some(hi)) => Some(format!(
                "SELECT DISTINCT false, session_id FROM stage_message_keys
                 WHERE session_id IS NOT NULL AND session_id NOT IN (
                     SELECT session_id FROM sessions WHERE session_id BETWEEN {} AND {}
                     AND session_id IN (SELECT session_id FROM stage_message_keys))",
                lit(lo),
                lit(hi)
            )),
            _ => None,
        };
        let of_messages = (!maybe.is_empty()).then(|| {
            format!(
                "SELECT true, message_id FROM messages
                 WHERE {} AND message_id IN (SELECT message_id FROM stage_message_keys)",
                id_bounds(&maybe)
            )
        });
        let statements: Vec<String> = of_messages.into_iter().chain(of_sessions).collect();
        if statements.is_empty() {
            return Ok(found);
        }
        tx.execute_batch("DELETE FROM stage_message_keys;")
            .doing(DOING)?;
        append_batch(
            tx,
            "stage_message_keys",
            message_key_batch(part)?,
            "staging message ids",
        )?;
        let mut stmt = tx.prepare(&statements.join(" UNION ALL ")).doing(DOING)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, bool>(0)?, r.get::<_, String>(1)?)))
            .doing(DOING)?;
        for row in rows {
            let (is_message, id) = row.doing(DOING)?;
            if is_message {
                found.messages.insert(id);
            } else {
                found.no_session.insert(id);
            }
        }
        if !ids.is_built() {
            ids.after_look_up(tx, (part.len(), found.messages.len()))?;
        }
        Ok(found)
    }
}

/// Appends messages none of which is stored straight into `messages` and
/// `message_tags`, skipping the staging tables and the compare, and notes
/// their days for the Parquet export (those not noted already).
fn append_new(
    tx: &Transaction<'_>,
    messages: &[&Message],
    (now, days): (DateTime<Utc>, &mut DayNoting<'_>),
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let rows = new_message_rows(message_batch(messages)?, now)?;
    append_batch(tx, "messages", rows, "appending new messages")?;
    append_batch(
        tx,
        "message_tags",
        message_tag_batch(messages)?,
        "appending new message tags",
    )?;
    let days = days.take_unnoted(
        messages
            .iter()
            .map(|m| m.created_on.date_naive())
            .collect::<BTreeSet<_>>(),
    );
    super::upsert::note_days(tx, &days)
}

/// Puts the messages into the temporary staging tables (emptied first).
pub(super) fn stage(tx: &Transaction<'_>, messages: &[&Message]) -> Result<(), StoreError> {
    const DOING: &str = "staging messages";
    tx.execute_batch("DELETE FROM stage_messages; DELETE FROM stage_message_tags;")
        .doing(DOING)?;
    append_batch(tx, "stage_messages", message_batch(messages)?, DOING)?;
    append_batch(
        tx,
        "stage_message_tags",
        message_tag_batch(messages)?,
        DOING,
    )
}

/// The least and greatest id of a non-empty batch, as a SQL condition on
/// `message_id`. Kore.ai's message ids are `ms-` and a MongoDB ObjectId,
/// which begins with its creation time: a window's ids are narrow, and
/// stored in about that order, so DuckDB's zone maps skip the row groups of
/// the rest of the history. The bound is exact whatever the ids are (every
/// id of the batch lies within it), only its pruning depends on them.
pub(super) fn id_bounds(messages: &[&Message]) -> String {
    let ids = || messages.iter().map(|m| m.message_id.as_str());
    let (lo, hi) = (
        ids().min().unwrap_or_default(),
        ids().max().unwrap_or_default(),
    );
    format!("message_id BETWEEN {} AND {}", lit(lo), lit(hi))
}

/// Replaces the staged messages (all of them stored) that changed — a
/// changed one keeps its `first_synced_at` — with their tags, and notes
/// their days for the Parquet export. `in_batch` bounds the ids looked up
/// among the stored ones (see [`id_bounds`]). Returns the ids written.
fn replace_changed(
    tx: &Transaction<'_>,
    in_batch: &str,
    now: DateTime<Utc>,
) -> Result<IdSet<String>, StoreError> {
    const DOING: &str = "storing messages";
    tx.execute_batch(&format!(
        "DELETE FROM stage_messages WHERE (message_id, raw) IN (
             SELECT message_id, CAST(raw AS VARCHAR) FROM messages
             WHERE {in_batch} AND message_id IN (SELECT message_id FROM stage_messages));"
    ))
    .doing(DOING)?;
    let n_changed: i64 = tx
        .query_row("SELECT count(*) FROM stage_messages", [], |r| r.get(0))
        .doing(DOING)?;
    if n_changed == 0 {
        return Ok(IdSet::default());
    }
    tx.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE stage_first AS
             SELECT message_id, first_synced_at FROM messages
             WHERE {in_batch} AND message_id IN (SELECT message_id FROM stage_messages);
         DELETE FROM message_tags
             WHERE {in_batch} AND message_id IN (SELECT message_id FROM stage_first);
         DELETE FROM messages
             WHERE {in_batch} AND message_id IN (SELECT message_id FROM stage_first);"
    ))
    .doing(DOING)?;
    let written: IdSet<String> = tx
        .prepare_cached(
            "INSERT INTO messages
             SELECT s.message_id, s.session_id, s.bot_id, s.direction, s.created_on,
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
             SELECT DISTINCT CAST(make_timestamp(epoch_us(created_on)) AS DATE) FROM stage_messages;",
    )
    .doing(DOING)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, Partition};
    use crate::store::connection::tests::warehouse;
    use crate::store::noted_days::NotedDays;
    use duckdb::Connection;

    fn message(i: usize, raw: &str) -> Message {
        Message {
            message_id: format!("ms-{i:06}"),
            session_id: None,
            bot_id: Some("st-1".into()),
            direction: Some("incoming".into()),
            created_on: DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
            channel: Some("rtm".into()),
            lang: None,
            text: None,
            components: None,
            raw: raw.into(),
            tags: Vec::new(),
        }
    }

    fn messages(ids: std::ops::Range<usize>) -> Vec<Message> {
        ids.map(|i| message(i, &format!("{{\"n\":{i}}}"))).collect()
    }

    /// Stores `records` in a transaction of their own; (received, written).
    fn store(conn: &mut Connection, ids: &mut MessageIds, records: Vec<Message>) -> (usize, usize) {
        let key = StreamKey {
            bot_id: "st-1".into(),
            partition: Partition::Channel("rtm".into()),
            filter: String::new(),
        };
        let batch = Batch {
            records,
            rejected: Vec::new(),
        };
        let noted = NotedDays::default();
        let mut days = noted.noting();
        let tx = conn.transaction().unwrap();
        let counts = store_batches((&tx, ids), &[(&key, &batch)], (Utc::now(), &mut days));
        tx.commit().unwrap();
        counts.unwrap()[0]
    }

    /// Issue 23: once a backfill has built the filter of stored ids, new
    /// messages skip the look-up, and messages read again are still
    /// recognised as stored: unchanged ones are not written, a changed one
    /// replaces its row, none is stored twice.
    #[test]
    fn issue_23_messages_read_again_after_the_filter_is_built_are_stored_once() {
        let (_dir, mut conn) = warehouse();
        let mut ids = MessageIds::default();
        assert_eq!(store(&mut conn, &mut ids, messages(0..300)), (300, 300));
        assert!(ids.is_built(), "a part of 300 new messages builds it");
        assert_eq!(store(&mut conn, &mut ids, messages(300..400)), (100, 100));
        let mut again = messages(0..400);
        again[7].raw = r#"{"n":7,"purged":true}"#.into();
        assert_eq!(store(&mut conn, &mut ids, again), (400, 1));
        let (n, n_ids, raw): (i64, i64, String) = conn
            .query_row(
                "SELECT count(*), count(DISTINCT message_id),
                        max(CAST(raw AS VARCHAR)) FILTER (WHERE message_id = 'ms-000007')
                 FROM messages",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((n, n_ids), (400, 400));
        assert!(raw.contains("purged"), "{raw}");
    }

    /// The filter is not built for a part mostly stored already (a pass
    /// that re-reads), which would pay for reading every id and gain
    /// nothing.
    #[test]
    fn issue_23_re_reading_stored_messages_does_not_build_the_filter() {
        let (_dir, mut conn) = warehouse();
        let mut small = MessageIds::default();
        assert_eq!(store(&mut conn, &mut small, messages(0..300)), (300, 300));
        let mut fresh = MessageIds::default();
        assert_eq!(store(&mut conn, &mut fresh, messages(0..300)), (300, 0));
        assert!(!fresh.is_built());
    }
}
