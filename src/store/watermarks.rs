//! Moving watermarks inside the transaction that stored their windows:
//! where each goes (the pure rule [`crate::model::next_watermark`], from
//! the state read in that transaction) and one statement for all of a
//! transaction's moves (two when some streams have no row yet).

use super::commit::Advance;
use super::error::{QueryContext, StoreError};
use super::runs::StoredState;
use super::sql::{stage_rows, ts};
use crate::model::{StreamKey, next_watermark};
use chrono::{DateTime, Utc};
use duckdb::{Transaction, params};

/// A window completely read: its stream, the window, and the stream's
/// state as read in the transaction storing it.
pub(super) struct WindowDone<'a> {
    pub key: &'a StreamKey,
    pub advance: Advance,
    pub stored: StoredState,
}

/// Moves each stream's watermark as [`next_watermark`] says, inside the
/// caller's transaction (that stored the windows). Returns the watermarks
/// after, in order. The streams must be distinct: each move starts from the
/// state read before any of them.
pub(super) fn move_watermarks(
    tx: &Transaction<'_>,
    done: &[WindowDone<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<Option<DateTime<Utc>>>, StoreError> {
    let mut after = Vec::with_capacity(done.len());
    let (mut updates, mut inserts) = (Vec::new(), Vec::new());
    for d in done {
        let (stored, stored_filter) = &d.stored;
        // A watermark reached under another filter does not count: the
        // stream starts again from `history_start` (the runner adopts the
        // old watermark first when told to keep it).
        let filter_changed = stored_filter.as_ref().is_some_and(|f| *f != d.key.filter);
        let current = if filter_changed { None } else { *stored };
        let next = next_watermark(current, d.advance.window, d.advance.history_start);
        after.push(next);
        let Some(next) = next.filter(|n| Some(*n) != current || filter_changed) else {
            continue;
        };
        // An UPDATE when the row exists: DuckDB's `ON CONFLICT` costs about
        // twice as much (issue 23), and the caller has just read the row.
        match stored_filter {
            Some(_) => updates.push((d.key, next)),
            None => inserts.push((d.key, next)),
        }
    }
    write(tx, &updates, now, Write::Update)?;
    write(tx, &inserts, now, Write::Insert)?;
    Ok(after)
}

#[derive(Clone, Copy)]
enum Write {
    Update,
    Insert,
}

/// One statement for many rows, staged with the Appender (a VALUES list
/// costs DuckDB about 15 µs a value to parse and bind).
fn write(
    tx: &Transaction<'_>,
    moves: &[(&StreamKey, DateTime<Utc>)],
    now: DateTime<Utc>,
    how: Write,
) -> Result<(), StoreError> {
    const DOING: &str = "moving watermarks";
    if moves.is_empty() {
        return Ok(());
    }
    stage_rows(tx, "stage_watermarks", DOING, |rows| {
        for (key, next) in moves {
            rows.append_row(params![
                ts(*next),
                key.filter,
                key.partition.resource(),
                key.bot_id,
                key.partition.name()
            ])?;
        }
        Ok(())
    })?;
    let sql = match how {
        Write::Update => {
            "UPDATE sync_state SET watermark = CAST(v.watermark AS TIMESTAMPTZ), filter = v.filter,
                 updated_at = CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)
             FROM stage_watermarks v
             WHERE sync_state.resource = v.resource AND sync_state.bot_id = v.bot_id
               AND sync_state.containment_type = v.containment_type"
        }
        Write::Insert => {
            "INSERT INTO sync_state (watermark, filter, resource, bot_id, containment_type, updated_at)
             SELECT CAST(v.watermark AS TIMESTAMPTZ), v.filter, v.resource, v.bot_id,
                    v.containment_type, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)
             FROM stage_watermarks v"
        }
    };
    tx.prepare_cached(sql)
        .doing(DOING)?
        .execute(params![ts(now)])
        .doing(DOING)?;
    tx.execute_batch("DELETE FROM stage_watermarks")
        .doing(DOING)
}
