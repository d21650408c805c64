//! The Parquet export: sessions and tags as hive-partitioned files by UTC
//! day (`sessions/date=YYYY-MM-DD/data.parquet`, `session_tags/date=…/…`).
//! Only days changed since the last export are written (the commits note
//! them in `parquet_dirty_days`), unless a full export is asked for.
//!
//! Each partition file is written beside its target and renamed over it, so
//! readers see the old or the new file, never half of one.

use super::error::{QueryContext, StoreError};
use super::publish::{io_err, record_publication};
use super::sql::{lit, ts};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use duckdb::{Connection, params};
use std::path::Path;

/// Rows per Parquet row group. The writer holds a whole row group in the
/// buffer pool before flushing it; at DuckDB's default (122,880 rows) a day
/// of a busy bot did not fit in the pool and the export failed
/// (BENCHMARKS.md, "Memory").
const PARQUET_ROW_GROUP: u32 = 16_384;

/// Exports changed days (or, with `full`, every day) under `dir`. Returns
/// the number of days written.
pub(super) fn export_parquet(
    conn: &Connection,
    dir: &Path,
    full: bool,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let days = days_to_export(conn, full)?;
    for day in &days {
        for (table, select) in day_queries(day)? {
            write_partition(conn, &dir.join(table).join(format!("date={day}")), &select)?;
        }
        conn.execute(
            "DELETE FROM parquet_dirty_days WHERE day = CAST(? AS DATE)",
            params![day],
        )
        .doing("clearing an exported day")?;
    }
    record_publication(conn, ("parquet", None), dir, now)?;
    Ok(days.len())
}

/// The days to write, as `YYYY-MM-DD`, oldest first.
fn days_to_export(conn: &Connection, full: bool) -> Result<Vec<String>, StoreError> {
    const DOING: &str = "finding days to export";
    let day_sql = if full {
        "SELECT CAST(d AS VARCHAR) FROM (
             SELECT DISTINCT CAST(make_timestamp(epoch_us(start_time)) AS DATE) AS d FROM sessions
             UNION SELECT day FROM parquet_dirty_days) ORDER BY 1"
    } else {
        "SELECT CAST(day AS VARCHAR) FROM parquet_dirty_days ORDER BY 1"
    };
    let mut stmt = conn.prepare(day_sql).doing(DOING)?;
    let days = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .doing(DOING)?
        .collect::<Result<_, _>>()
        .doing(DOING)?;
    Ok(days)
}

/// Each table's query for one day. The day's UTC bounds are spelled as
/// constants beside the exact test, so zone maps skip other row groups:
/// without them each day scanned the whole history, twice per table.
fn day_queries(day: &str) -> Result<[(&'static str, String); 2], StoreError> {
    let start = NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        .map_err(|e| StoreError::Unexpected {
            doing: "finding days to export",
            detail: format!("{day:?} is not a day ({e})"),
        })?;
    let within = |column: &str| {
        format!(
            "{column} >= CAST({} AS TIMESTAMPTZ) AND {column} < CAST({} AS TIMESTAMPTZ)
             AND CAST(make_timestamp(epoch_us({column})) AS DATE) = CAST({} AS DATE)",
            lit(&ts(start)),
            lit(&ts(start + TimeDelta::days(1))),
            lit(day)
        )
    };
    Ok([
        (
            "sessions",
            format!(
                "SELECT * EXCLUDE (raw), CAST(raw AS VARCHAR) AS raw FROM sessions WHERE {}",
                within("start_time")
            ),
        ),
        (
            "session_tags",
            format!(
                "SELECT t.* EXCLUDE (value_json), CAST(t.value_json AS VARCHAR) AS value_json
                 FROM session_tags t JOIN sessions s USING (session_id) WHERE {}",
                within("s.start_time")
            ),
        ),
    ])
}

/// Writes one partition (`part/data.parquet`) from `select`, or removes the
/// partition when the day has no rows left.
fn write_partition(conn: &Connection, part: &Path, select: &str) -> Result<(), StoreError> {
    let n: i64 = conn
        .query_row(&format!("SELECT count(*) FROM ({select})"), [], |r| {
            r.get(0)
        })
        .doing("counting a partition")?;
    if n == 0 {
        // Every session of that day is gone: so is its partition.
        return match std::fs::remove_dir_all(part) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing an emptied partition", part, e)),
        };
    }
    std::fs::create_dir_all(part).map_err(|e| io_err("creating a partition", part, e))?;
    let tmp = part.join(".data.parquet.tmp");
    let target = part.join("data.parquet");
    conn.execute_batch(&format!(
        "COPY ({select}) TO {} (FORMAT parquet, ROW_GROUP_SIZE {PARQUET_ROW_GROUP})",
        lit(&tmp.display().to_string())
    ))
    .doing("writing a Parquet partition")?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("syncing a Parquet partition", &tmp, e))?;
    std::fs::rename(&tmp, &target)
        .map_err(|e| io_err("moving a Parquet partition into place", &target, e))
}
