//! Moving watermarks inside the transaction that stored their windows:
//! where each goes (the pure rule [`crate::model::next_watermark`], from
//! the state read in that transaction) and one statement for all of a
//! transaction's moves (two when some streams have no row yet).

use super::commit::Advance;
use super::error::{QueryContext, StoreError};
use super::run_rows::INLINE_ROWS;
use super::runs::StoredState;
use super::sql::{stage_rows, ts};
use crate::model::{StreamKey, next_watermark};
use chrono::{DateTime, Utc};
use duckdb::Transaction;

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

/// One statement for many rows: a few named inline, more staged with the
/// Appender (see `run_rows::INLINE_ROWS`). `now` is the first parameter.
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
    let rows: Vec<[String; 5]> = moves
        .iter()
        .map(|(key, next)| {
            [
                ts(*next),
                key.filter.clone(),
                key.partition.resource().to_owned(),
                key.bot_id.clone(),
                key.partition.name().to_owned(),
            ]
        })
        .collect();
    let inline = rows.len() <= INLINE_ROWS;
    let source = if inline {
        // Numbered: `now` is $1, then five a row.
        let values: Vec<String> = (0..rows.len())
            .map(|i| {
                let n = 2 + 5 * i;
                format!("(${n}, ${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4)
            })
            .collect();
        format!("(VALUES {}) AS v({COLUMNS})", values.join(", "))
    } else {
        stage_rows(tx, "stage_watermarks", DOING, |app| {
            rows.iter()
                .try_for_each(|row| app.append_row(duckdb::appender_params_from_iter(row.iter())))
        })?;
        "stage_watermarks v".to_owned()
    };
    let sql = match how {
        Write::Update => format!(
            "UPDATE sync_state SET watermark = CAST(CAST(v.watermark AS VARCHAR) AS TIMESTAMPTZ),
                 filter = CAST(v.filter AS VARCHAR),
                 updated_at = CAST(CAST($1 AS VARCHAR) AS TIMESTAMPTZ)
             FROM {source}
             WHERE sync_state.resource = CAST(v.resource AS VARCHAR)
               AND sync_state.bot_id = CAST(v.bot_id AS VARCHAR)
               AND sync_state.containment_type = CAST(v.containment_type AS VARCHAR)"
        ),
        Write::Insert => format!(
            "INSERT INTO sync_state (watermark, filter, resource, bot_id, containment_type, updated_at)
             SELECT CAST(CAST(v.watermark AS VARCHAR) AS TIMESTAMPTZ), v.filter, v.resource,
                    v.bot_id, v.containment_type, CAST(CAST($1 AS VARCHAR) AS TIMESTAMPTZ)
             FROM {source}"
        ),
    };
    let now = ts(now);
    let args = std::iter::once(&now).chain(rows.iter().filter(|_| inline).flatten());
    // Cached by its text, which differs only with the number of rows.
    tx.prepare_cached(&sql)
        .doing(DOING)?
        .execute(duckdb::params_from_iter(args))
        .doing(DOING)?;
    if inline {
        return Ok(());
    }
    tx.execute_batch("DELETE FROM stage_watermarks")
        .doing(DOING)
}

const COLUMNS: &str = "watermark, filter, resource, bot_id, containment_type";
