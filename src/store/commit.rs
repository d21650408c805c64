//! Writing sessions: the batches of one transaction (a group of windows,
//! `window_group.rs`, or a refresh), and a refresh's own transaction
//! (sessions re-read by id, and deletions; the watermark stays).

use super::error::{QueryContext, StoreError};
use super::noted_days::{DayNoting, NotedDays};
use super::runs::watermark_with_filter;
use super::sql::ts;
use super::{WindowCommit, unchanged, upsert};
use crate::model::ids::IdMap;
use crate::model::{Deletes, Keyed, RejectedRecord, Session, SessionBatch, StreamKey, Window};
use chrono::{DateTime, Utc};
use duckdb::{Connection, Transaction, params};
use std::collections::{HashMap, HashSet};

/// The window a commit completes, and where the stream's history begins
/// (`sync.start`): together they decide whether the watermark moves.
#[derive(Debug, Clone, Copy)]
pub struct Advance {
    pub window: Window,
    pub history_start: DateTime<Utc>,
}

/// Sessions the API reported gone, and what that means for the warehouse.
#[derive(Debug, Clone, Default)]
pub struct Gone {
    pub ids: Vec<String>,
    pub mode: Deletes,
}

impl Gone {
    /// Nothing is gone.
    pub fn none() -> Self {
        Gone::default()
    }
}

/// Stores sessions read outside a window's commit (re-read by id, or a
/// chunk of a dense window) and deletes `deleted` ids with their tags, in
/// one transaction. The watermark stays.
pub(super) fn commit_refresh(
    (conn, noted): (&mut Connection, &NotedDays),
    key: &StreamKey,
    batch: &SessionBatch,
    gone: &Gone,
    now: DateTime<Utc>,
) -> Result<WindowCommit, StoreError> {
    let tx = conn
        .transaction()
        .doing("beginning the refresh transaction")?;
    // A refresh never moves the watermark: read once, it serves both the
    // notes of sessions listed late and the answer.
    let (stored, stored_filter) = watermark_with_filter(&tx, key)?;
    let mut days = noted.noting();
    let one = StreamBatch {
        key,
        batch,
        watermark: stored,
    };
    let [(n_received, n_written)] = store_batches(&tx, &[one], (now, &mut days))?[..] else {
        unreachable!("one count per batch")
    };
    let (n_deleted, n_marked) = match gone.mode {
        Deletes::Delete => (delete_sessions(&tx, &gone.ids)?, 0),
        Deletes::Keep => (0, mark_sessions_gone(&tx, &gone.ids, now)?),
    };
    let filter_changed = stored_filter.as_ref().is_some_and(|f| *f != key.filter);
    tx.commit().doing("committing the refresh")?;
    noted.committed(days);
    Ok(WindowCommit {
        n_received,
        n_written,
        n_deleted,
        n_marked,
        watermark: if filter_changed { None } else { stored },
    })
}

/// One stream's sessions to store in a transaction, and its watermark
/// before it.
pub(super) struct StreamBatch<'a> {
    pub key: &'a StreamKey,
    pub batch: &'a SessionBatch,
    pub watermark: Option<DateTime<Utc>>,
}

/// Stores the batches' sessions (only new or changed ones are written) and
/// their rejected records, in one pass over the group: one read of stored
/// versions, one upsert. Returns, per batch, (distinct sessions, sessions
/// written). A session in two batches (it changed containment type between
/// two listings) is stored as the later batch gives it, and counted there.
pub(super) fn store_batches(
    tx: &Transaction<'_>,
    batches: &[StreamBatch<'_>],
    (now, days): (DateTime<Utc>, &mut DayNoting<'_>),
) -> Result<Vec<(usize, usize)>, StoreError> {
    let each: Vec<Vec<&Session>> = batches
        .iter()
        .map(|b| last_version_of_each(&b.batch.records))
        .collect();
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, sessions) in each.iter().enumerate() {
        owner.extend(sessions.iter().map(|s| (s.session_id.as_str(), i)));
    }
    let owned = |i: usize| {
        let owner = &owner;
        each[i]
            .iter()
            .copied()
            .filter(move |s| owner[s.session_id.as_str()] == i)
    };
    // One read tells which are stored as given (most of a re-read span):
    // only the others go through the upsert's staging (see `unchanged`).
    // A forward window's sessions all start at or after the watermark, and
    // are new but for a rare few the upsert finds: no read for them.
    let rereads: Vec<&Session> = (0..batches.len())
        .filter(|&i| {
            let w = batches[i].watermark;
            each[i].iter().any(|s| w.is_some_and(|w| s.start_time < w))
        })
        .flat_map(owned)
        .collect();
    let stored = if rereads.is_empty() {
        unchanged::Stored::default()
    } else {
        unchanged::stored_versions(tx, &rereads)?
    };
    for (i, b) in batches.iter().enumerate() {
        if let Some(watermark) = b.watermark {
            note_listed_late(tx, &each[i], watermark, now, &stored)?;
        }
    }
    let changed: Vec<&Session> = (0..batches.len())
        .flat_map(owned)
        .filter(|s| !stored.is_unchanged(s))
        .collect();
    // In parts of bounded bytes: see `parts`.
    let mut written: HashSet<&str> = HashSet::new();
    for part in super::parts::parts(&changed) {
        let answer = upsert::upsert(tx, part, now, days)?;
        let ids = part.iter().map(|s| s.session_id.as_str());
        written.extend(ids.filter(|id| answer.contains(id)));
    }
    let mut counts = Vec::with_capacity(batches.len());
    for (i, b) in batches.iter().enumerate() {
        keep_rejected(tx, b.key, &b.batch.rejected, now)?;
        let n_written = owned(i)
            .filter(|s| written.contains(s.session_id.as_str()))
            .count();
        counts.push((each[i].len(), n_written));
    }
    Ok(counts)
}

/// Notes, before they are stored, the batch's new sessions that start
/// before the stream's watermark: the API listed them late, and their
/// messages may lie where the message streams' date windows will not look
/// again, so they are read by id (`message_rereads`). Sessions of a
/// forward window start at or after the watermark and cost nothing here;
/// the lookback's few are looked up by id within their start times.
fn note_listed_late(
    tx: &Transaction<'_>,
    sessions: &[&Session],
    watermark: DateTime<Utc>,
    now: DateTime<Utc>,
    stored: &unchanged::Stored,
) -> Result<(), StoreError> {
    const DOING: &str = "noting sessions listed late";
    let late: Vec<&&Session> = sessions
        .iter()
        .filter(|s| s.start_time < watermark)
        .collect();
    let (Some(lo), Some(hi)) = (
        late.iter().map(|s| s.start_time).min(),
        late.iter().map(|s| s.start_time).max(),
    ) else {
        return Ok(());
    };
    // Those stored within the late ones' starts are not new (the query
    // below asks the same); when that leaves none, no statement is needed.
    let late: Vec<&&Session> = late
        .into_iter()
        .filter(|s| !stored.starts_within(s, lo, hi))
        .collect();
    if late.is_empty() {
        return Ok(());
    }
    tx.execute_batch("DELETE FROM stage_late").doing(DOING)?;
    let mut rows = tx.appender("stage_late").doing(DOING)?;
    for s in &late {
        rows.append_row(params![
            s.session_id,
            s.bot_id,
            s.channel,
            ts(s.start_time),
            s.end_time.map(ts)
        ])
        .doing(DOING)?;
    }
    rows.flush().doing(DOING)?;
    drop(rows);
    tx.execute(
        "INSERT OR IGNORE INTO message_rereads
         SELECT l.session_id, l.bot_id, l.channel, CAST(l.start_time AS TIMESTAMPTZ),
                CAST(l.end_time AS TIMESTAMPTZ), CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)
         FROM stage_late l
         WHERE l.session_id NOT IN (
             SELECT session_id FROM sessions
             WHERE start_time BETWEEN CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ) AND CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ))",
        params![ts(now), ts(lo), ts(hi)],
    )
    .doing(DOING)?;
    Ok(())
}

/// Keeps records that could not be parsed (once each).
pub(super) fn keep_rejected(
    tx: &Transaction<'_>,
    key: &StreamKey,
    rejected: &[RejectedRecord],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for r in rejected {
        tx.execute(
            "INSERT INTO rejected_records
             SELECT ?, ?, ?, ?, ?, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)
             WHERE NOT EXISTS (SELECT 1 FROM rejected_records WHERE raw = ?)",
            params![
                key.bot_id,
                key.partition.name(),
                r.session_id,
                r.reason,
                r.raw,
                ts(now),
                r.raw
            ],
        )
        .doing("keeping a rejected record")?;
    }
    Ok(())
}

/// One record per id, the last version given, in the order given: the
/// replace keeps ids unique whatever the caller passed (sessions and
/// messages alike).
pub(super) fn last_version_of_each<R: Keyed>(records: &[R]) -> Vec<&R> {
    let mut last: IdMap<&str, usize> =
        IdMap::with_capacity_and_hasher(records.len(), Default::default());
    for (i, r) in records.iter().enumerate() {
        last.insert(r.id(), i);
    }
    records
        .iter()
        .enumerate()
        .filter(|(i, r)| last.get(r.id()) == Some(i))
        .map(|(_, r)| r)
        .collect()
}

/// Notes the UTC day a stored session starts on as a Parquet partition to
/// rewrite.
fn note_day_of(tx: &Transaction<'_>, session_id: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR IGNORE INTO parquet_dirty_days
         SELECT CAST(make_timestamp(epoch_us(start_time)) AS DATE) FROM sessions WHERE session_id = ?",
        params![session_id],
    )
    .doing("noting changed days")?;
    Ok(())
}

/// Deletes sessions (with their tags and messages) the API reported as gone; their days
/// become Parquet partitions to rewrite. Returns how many were stored.
fn delete_sessions(tx: &Transaction<'_>, ids: &[String]) -> Result<usize, StoreError> {
    let mut n_deleted = 0;
    for id in ids {
        note_day_of(tx, id)?;
        tx.execute("DELETE FROM session_tags WHERE session_id = ?", params![id])
            .doing("deleting tags of a session deleted upstream")?;
        // Its messages go with it (their days are partitions to rewrite).
        tx.execute(
            "INSERT OR IGNORE INTO parquet_dirty_days
             SELECT DISTINCT CAST(make_timestamp(epoch_us(created_on)) AS DATE) FROM messages WHERE session_id = ?",
            params![id],
        )
        .doing("noting changed days")?;
        tx.execute(
            "DELETE FROM message_tags WHERE message_id IN
                 (SELECT message_id FROM messages WHERE session_id = ?)",
            params![id],
        )
        .doing("deleting message tags of a session deleted upstream")?;
        tx.execute("DELETE FROM messages WHERE session_id = ?", params![id])
            .doing("deleting messages of a session deleted upstream")?;
        n_deleted += tx
            .execute("DELETE FROM sessions WHERE session_id = ?", params![id])
            .doing("deleting a session deleted upstream")?;
    }
    Ok(n_deleted)
}

/// Marks sessions the API reported gone (`deletes = "keep"`): the rows
/// stay, with `deleted_at` set once. Their days become Parquet partitions
/// to rewrite. Returns how many were newly marked.
fn mark_sessions_gone(
    tx: &Transaction<'_>,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut n_marked = 0;
    for id in ids {
        note_day_of(tx, id)?;
        n_marked += tx
            .execute(
                "UPDATE sessions SET deleted_at = CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)
                 WHERE session_id = ? AND deleted_at IS NULL",
                params![ts(now), id],
            )
            .doing("marking a session deleted upstream")?;
    }
    Ok(n_marked)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::Session;

    /// A session with only an id and a raw record (start at the epoch).
    pub(in crate::store) fn session(id: &str, raw: &str) -> Session {
        Session {
            session_id: id.into(),
            bot_id: None,
            channel: None,
            user_id: None,
            start_time: DateTime::from_timestamp_millis(0).unwrap(),
            end_time: None,
            session_lang: None,
            session_type: None,
            containment_type: None,
            is_developer: None,
            session_status: None,
            messages_exchanged: None,
            tasks_executed: None,
            raw: raw.into(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn the_last_version_of_each_id_is_kept_in_order() {
        let given = [session("a", "1"), session("b", "1"), session("a", "2")];
        let kept: Vec<(&str, &str)> = last_version_of_each(&given)
            .iter()
            .map(|s| (s.session_id.as_str(), s.raw.as_str()))
            .collect();
        assert_eq!(kept, [("b", "1"), ("a", "2")]);
    }
}
