//! Writing sessions only when they changed: new sessions are appended
//! straight into `sessions` and `session_tags`; a batch some of whose
//! sessions are stored is staged, compared with the stored `raw` JSON, and
//! only new or changed sessions are replaced. Runs inside the caller's
//! transaction.
//!
//! Architecture invariant: whether a session is stored is decided by its
//! id, never by its start time, so a session whose start moved upstream is
//! replaced, never duplicated. Only the comparison of records with their
//! stored versions is limited to stored rows whose start lies within the
//! staged starts — exact, since an identical record has the same start.

use super::arrow::{append_batch, id_batch, new_session_rows, session_batch, tag_batch};
use super::error::{QueryContext, StoreError};
use super::noted_days::DayNoting;
use super::sql::{lit, ts};
use crate::model::Session;
use chrono::{DateTime, NaiveDate, Utc};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Transaction, params};
use std::collections::HashSet;

/// Which of the sessions given to [`upsert`] it wrote.
#[derive(Debug)]
pub(super) enum Written {
    /// Every one (none was stored).
    All,
    /// These ids (new or changed); the others were stored as given.
    Only(HashSet<String>),
}

impl Written {
    pub(super) fn contains(&self, session_id: &str) -> bool {
        match self {
            Written::All => true,
            Written::Only(ids) => ids.contains(session_id),
        }
    }
}

/// Stores `sessions` (one version per id), writing only new or changed
/// ones, and says which it wrote.
pub(super) fn upsert(
    tx: &Transaction<'_>,
    sessions: &[&Session],
    now: DateTime<Utc>,
    days: &mut DayNoting<'_>,
) -> Result<Written, StoreError> {
    if sessions.is_empty() {
        return Ok(Written::Only(HashSet::new()));
    }
    // Each staging table is cleared where it is used: new sessions touch
    // none, or only the id check's.
    let staged = Staged {
        sessions: session_batch(sessions)?,
        tags: tag_batch(sessions)?,
    };
    if none_stored(tx, &staged.sessions, sessions)? {
        append_new(tx, sessions, staged, (now, days))?;
        Ok(Written::All)
    } else {
        replace_changed(tx, sessions, staged, now)
    }
}

/// A batch's rows, encoded for DuckDB's Appender.
struct Staged {
    /// In `stage_sessions`' column order.
    sessions: RecordBatch,
    /// In `session_tags`' (and `stage_tags`') column order.
    tags: RecordBatch,
}

/// The smallest and largest of some ids or instants, as SQL constants
/// DuckDB can prune row groups by (zone maps). Kore.ai's session ids are
/// MongoDB ObjectIds, which begin with their creation time, so a window's
/// ids are narrow and stored roughly in order.
fn bounds<T: Ord + Copy>(values: impl Iterator<Item = T>) -> Option<(T, T)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Whether none of these sessions is stored yet — the common case of a
/// backfill or of new sessions at the head. A small batch names its ids in
/// the statement (one statement: DuckDB spends about half a millisecond on
/// each, issue 23); a large one stages them first.
fn none_stored(
    tx: &Transaction<'_>,
    staged: &RecordBatch,
    sessions: &[&Session],
) -> Result<bool, StoreError> {
    const DOING: &str = "checking which sessions are stored";
    let (lo, hi) = bounds(sessions.iter().map(|s| s.session_id.as_str())).unwrap_or_default();
    let in_range = format!("session_id BETWEEN {} AND {}", lit(lo), lit(hi));
    if sessions.len() <= LISTED_IDS {
        let ids: Vec<String> = sessions.iter().map(|s| lit(&s.session_id)).collect();
        let n_stored: i64 = tx
            .query_row(
                &format!(
                    "SELECT count(*) FROM sessions WHERE {in_range} AND session_id IN ({})",
                    ids.join(", ")
                ),
                [],
                |r| r.get(0),
            )
            .doing(DOING)?;
        return Ok(n_stored == 0);
    }
    tx.execute_batch("DELETE FROM stage_changed;")
        .doing(DOING)?;
    append_batch(tx, "stage_changed", id_batch(staged)?, "staging ids")?;
    let n_stored: i64 = tx
        .query_row(
            &format!(
                "SELECT count(*) FROM sessions WHERE {in_range}
                   AND session_id IN (SELECT session_id FROM stage_changed)"
            ),
            [],
            |r| r.get(0),
        )
        .doing(DOING)?;
    tx.execute("DELETE FROM stage_changed", []).doing(DOING)?;
    Ok(n_stored == 0)
}

/// Up to this many ids, `none_stored` names them in its statement rather
/// than staging them.
const LISTED_IDS: usize = 500;

/// Stores sessions none of which is stored yet: appended straight into
/// `sessions` and `session_tags`, skipping the staging tables and the
/// compare (BENCHMARKS.md gives its share of a backfill).
fn append_new(
    tx: &Transaction<'_>,
    sessions: &[&Session],
    staged: Staged,
    (now, days): (DateTime<Utc>, &mut DayNoting<'_>),
) -> Result<(), StoreError> {
    let rows = new_session_rows(sessions, staged.sessions, now)?;
    append_batch(tx, "sessions", rows, "appending new sessions")?;
    append_batch(tx, "session_tags", staged.tags, "appending new tags")?;
    // Their days are Parquet partitions to write: those not noted already,
    // in one statement.
    let days = days.take_unnoted(sessions.iter().map(|s| s.start_time.date_naive()).collect());
    note_days(tx, &days)
}

/// Notes days as Parquet partitions to write, in one statement (none for
/// no days).
pub(super) fn note_days(tx: &Transaction<'_>, days: &[NaiveDate]) -> Result<(), StoreError> {
    if days.is_empty() {
        return Ok(());
    }
    let days: Vec<String> = days
        .iter()
        .map(|d| format!("(DATE {})", lit(&d.to_string())))
        .collect();
    tx.execute(
        &format!(
            "INSERT OR IGNORE INTO parquet_dirty_days VALUES {}",
            days.join(", ")
        ),
        [],
    )
    .doing("noting changed days")?;
    Ok(())
}

/// Stores a batch some of whose sessions are stored already: staged in
/// full, compared with the stored rows, and only new or changed ones
/// replaced. Returns the ids written.
fn replace_changed(
    tx: &Transaction<'_>,
    sessions: &[&Session],
    staged: Staged,
    now: DateTime<Utc>,
) -> Result<Written, StoreError> {
    tx.execute_batch(
        "DELETE FROM stage_sessions; DELETE FROM stage_tags; DELETE FROM stage_changed;",
    )
    .doing("clearing staging tables")?;
    append_batch(tx, "stage_sessions", staged.sessions, "staging sessions")?;
    append_batch(tx, "stage_tags", staged.tags, "staging tags")?;
    let changed = find_changed(tx, sessions)?;
    if !changed.is_empty() {
        find_stored_versions(tx)?;
        replace(tx, now)?;
    }
    Ok(Written::Only(changed))
}

/// Fills `stage_changed` with the staged sessions that are new, whose
/// record differs from the stored one, or that are stored as gone (the API
/// lists them again). An unchanged re-read (lookback,
/// overlap) costs a comparison, not a write. The comparison reads only
/// stored rows whose start falls within the staged starts, so its cost
/// follows the window, not the history; that is exact, because a stored row
/// with the same `raw` has the same `start_time`, and a session whose start
/// moved counts as changed. Returns their ids.
fn find_changed(
    tx: &Transaction<'_>,
    sessions: &[&Session],
) -> Result<HashSet<String>, StoreError> {
    const DOING: &str = "finding changed sessions";
    let Some((lo, hi)) = bounds(sessions.iter().map(|s| s.start_time)) else {
        return Ok(HashSet::new());
    };
    let mut stmt = tx
        .prepare(&format!(
            "INSERT INTO stage_changed
             SELECT DISTINCT s.session_id FROM stage_sessions s LEFT JOIN (
                 SELECT session_id, raw, containment_type, deleted_at FROM sessions
                 WHERE start_time BETWEEN CAST({} AS TIMESTAMPTZ) AND CAST({} AS TIMESTAMPTZ)
             ) t USING (session_id)
             WHERE t.session_id IS NULL
                OR CAST(t.raw AS VARCHAR) IS DISTINCT FROM s.raw
                OR t.containment_type IS DISTINCT FROM s.containment_type
                OR t.deleted_at IS NOT NULL
             RETURNING session_id",
            lit(&ts(lo)),
            lit(&ts(hi))
        ))
        .doing(DOING)?;
    let ids = stmt.query_map([], |r| r.get::<_, String>(0)).doing(DOING)?;
    ids.collect::<Result<_, _>>().doing(DOING)
}

/// Fills `stage_old` with the stored versions of the changed sessions,
/// wherever they start (by id, bounded by the changed ids' range so zone
/// maps skip other row groups). Sessions that are merely new are not stored
/// yet and have none.
fn find_stored_versions(tx: &Transaction<'_>) -> Result<(), StoreError> {
    const DOING: &str = "finding the stored versions of changed sessions";
    let (min_id, max_id): (String, String) = tx
        .query_row(
            "SELECT min(session_id), max(session_id) FROM stage_changed",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .doing(DOING)?;
    tx.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE stage_old AS
         SELECT session_id, first_synced_at, start_time, session_status FROM sessions
         WHERE session_id BETWEEN {} AND {}
           AND session_id IN (SELECT session_id FROM stage_changed);",
        lit(&min_id),
        lit(&max_id)
    ))
    .doing(DOING)
}

/// Replaces the changed sessions: notes their days (before and after the
/// change) for the Parquet export, deletes the old versions and their tags,
/// and inserts the new ones, keeping when each session was first stored.
///
/// There is no PRIMARY KEY index (DuckDB holds such indexes in memory, and
/// they grew with history until a million-session backfill ran out of it);
/// `session_id` stays unique because staged rows are distinct and the old
/// row is deleted first, in the caller's transaction. Tags exist only for
/// stored sessions, so `stage_old` names every tag row to drop.
fn replace(tx: &Transaction<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR IGNORE INTO parquet_dirty_days
         SELECT CAST(make_timestamp(epoch_us(start_time)) AS DATE)
         FROM stage_sessions WHERE session_id IN (SELECT session_id FROM stage_changed)
         UNION
         SELECT CAST(make_timestamp(epoch_us(start_time)) AS DATE) FROM stage_old",
        [],
    )
    .doing("noting changed days")?;
    // A session seen closing may have gained messages dated before its
    // message stream's lookback: note it to be read again by id.
    tx.execute(
        "INSERT OR IGNORE INTO message_rereads
         SELECT s.session_id, s.bot_id, s.channel, s.start_time, s.end_time, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)
         FROM stage_sessions s JOIN stage_old o USING (session_id)
         WHERE o.session_status = 'active' AND s.session_status IS DISTINCT FROM 'active'
           AND s.session_id IN (SELECT session_id FROM stage_changed)",
        params![ts(now)],
    )
    .doing("noting sessions that closed")?;
    tx.execute_batch(
        "DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM stage_old);
         DELETE FROM session_tags WHERE session_id IN (SELECT session_id FROM stage_old);",
    )
    .doing("replacing changed sessions")?;
    tx.execute(
        "INSERT INTO sessions
         SELECT s.session_id, bot_id, channel, user_id, s.start_time, end_time,
                from_json(session_lang, '[\"VARCHAR\"]'),
                session_type, containment_type, is_developer, session_status,
                messages_exchanged, tasks_executed, CAST(raw AS JSON),
                coalesce(f.first_synced_at, CAST(CAST($1 AS VARCHAR) AS TIMESTAMPTZ)), CAST(CAST($1 AS VARCHAR) AS TIMESTAMPTZ), NULL
         FROM stage_sessions s
         LEFT JOIN (SELECT session_id, min(first_synced_at) AS first_synced_at
                    FROM stage_old GROUP BY session_id) f USING (session_id)
         WHERE s.session_id IN (SELECT session_id FROM stage_changed)",
        params![ts(now)],
    )
    .doing("upserting sessions")?;
    tx.execute(
        "INSERT INTO session_tags
         SELECT session_id, kind, ordinal, name, value, CAST(value_json AS JSON)
         FROM stage_tags WHERE session_id IN (SELECT session_id FROM stage_changed)",
        [],
    )
    .doing("inserting tags")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bounds;

    #[test]
    fn bounds_are_the_least_and_greatest() {
        assert_eq!(bounds(["m", "a", "z", "k"].into_iter()), Some(("a", "z")));
        assert_eq!(bounds(std::iter::empty::<i32>()), None);
    }
}
