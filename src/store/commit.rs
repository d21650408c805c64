//! The two write transactions of a sync: a window's commit (sessions, tags,
//! rejected records and the watermark) and a refresh's (sessions re-read by
//! id, and deletions; the watermark stays).
//!
//! Architecture invariant: a window's sessions, their tags and the stream's
//! watermark change in one transaction (`commit_window`), so the watermark
//! never runs ahead of the data, whatever kills the process. Where it moves
//! to is decided by the pure rule [`crate::model::next_watermark`].

use super::error::{QueryContext, StoreError};
use super::noted_days::{DayNoting, NotedDays};
use super::runs::{StoredState, watermark_with_filter};
use super::sql::ts;
use super::{WindowCommit, unchanged, upsert};
use crate::model::{
    Deletes, Keyed, RejectedRecord, Session, SessionBatch, StreamKey, Window, next_watermark,
};
use chrono::{DateTime, Utc};
use duckdb::{Connection, Transaction, params};
use std::collections::HashMap;

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

/// Stores a window completely read: upserts its changed sessions, replaces
/// their tags, keeps its rejected records, and moves the watermark as
/// [`next_watermark`] says — all in one transaction.
pub(super) fn commit_window(
    (conn, noted): (&mut Connection, &NotedDays),
    key: &StreamKey,
    advance: Advance,
    batch: &SessionBatch,
    now: DateTime<Utc>,
) -> Result<WindowCommit, StoreError> {
    let tx = conn
        .transaction()
        .doing("beginning the window transaction")?;
    let state = watermark_with_filter(&tx, key)?;
    let mut days = noted.noting();
    let (n_received, n_written) = store_batch(&tx, key, batch, (state.0, now, &mut days))?;
    let next = move_watermark(&tx, key, (advance, state), now)?;
    tx.commit().doing("committing the window")?;
    noted.committed(days);
    Ok(WindowCommit {
        n_received,
        n_written,
        n_deleted: 0,
        n_marked: 0,
        watermark: next,
    })
}

/// Moves the stream's watermark as [`next_watermark`] says for a window
/// completely read, inside the caller's transaction (that stored the
/// window), from `stored`, the state the caller read in that transaction.
/// Returns the watermark after.
pub(super) fn move_watermark(
    tx: &Transaction<'_>,
    key: &StreamKey,
    (advance, (stored, stored_filter)): (Advance, StoredState),
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    const DOING: &str = "moving the watermark";
    // A watermark reached under another filter does not count: the stream
    // starts again from `history_start` (the runner adopts the old watermark
    // first when told to keep it).
    let filter_changed = stored_filter.as_ref().is_some_and(|f| *f != key.filter);
    let current = if filter_changed { None } else { stored };
    let next = next_watermark(current, advance.window, advance.history_start);
    let Some(next) = next.filter(|n| Some(*n) != current || filter_changed) else {
        return Ok(next);
    };
    let args = params![
        ts(next),
        ts(now),
        key.filter,
        key.partition.resource(),
        key.bot_id,
        key.partition.name()
    ];
    // An UPDATE when the row exists: DuckDB's `ON CONFLICT` costs about
    // twice as much (issue 23), and the caller has just read the row.
    let sql = if stored_filter.is_some() {
        "UPDATE sync_state SET watermark = CAST(CAST(?1 AS VARCHAR) AS TIMESTAMPTZ),
             updated_at = CAST(CAST(?2 AS VARCHAR) AS TIMESTAMPTZ), filter = ?3
         WHERE resource = ?4 AND bot_id = ?5 AND containment_type = ?6"
    } else {
        "INSERT INTO sync_state (watermark, updated_at, filter, resource, bot_id, containment_type)
         VALUES (CAST(CAST(?1 AS VARCHAR) AS TIMESTAMPTZ), CAST(CAST(?2 AS VARCHAR) AS TIMESTAMPTZ), ?3, ?4, ?5, ?6)"
    };
    tx.prepare_cached(sql)
        .doing(DOING)?
        .execute(args)
        .doing(DOING)?;
    Ok(Some(next))
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
    let (n_received, n_written) = store_batch(&tx, key, batch, (stored, now, &mut days))?;
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

/// Stores a batch's sessions (only new or changed ones are written) and its
/// rejected records; `watermark` is the stream's before the commit. Returns
/// (distinct sessions, sessions written).
fn store_batch(
    tx: &Transaction<'_>,
    key: &StreamKey,
    batch: &SessionBatch,
    (watermark, now, days): (Option<DateTime<Utc>>, DateTime<Utc>, &mut DayNoting<'_>),
) -> Result<(usize, usize), StoreError> {
    let sessions = last_version_of_each(&batch.records);
    // One read tells which are stored as given (most of a re-read span):
    // only the others go through the upsert's staging (see `unchanged`).
    // A forward window's sessions all start at or after the watermark, and
    // are new but for a rare few the upsert finds: no read for them.
    let rereads = |s: &&Session| watermark.is_some_and(|w| s.start_time < w);
    let stored = if sessions.iter().any(rereads) {
        unchanged::stored_versions(tx, &sessions)?
    } else {
        unchanged::Stored::default()
    };
    if let Some(watermark) = watermark {
        note_listed_late(tx, &sessions, watermark, now, &stored)?;
    }
    let changed: Vec<&Session> = sessions
        .iter()
        .filter(|s| !stored.is_unchanged(s))
        .copied()
        .collect();
    // In parts of bounded bytes: see `parts`.
    let mut n_written = 0;
    for part in super::parts::parts(&changed) {
        n_written += upsert::upsert(tx, part, now, days)?;
    }
    keep_rejected(tx, key, &batch.rejected, now)?;
    Ok((sessions.len(), n_written))
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
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(records.len());
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
