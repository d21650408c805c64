//! The Parquet export: sessions and tags as hive-partitioned files by UTC
//! day (`sessions/date=YYYY-MM-DD/data.parquet`, `session_tags/date=…/…`),
//! with `_kore_sync/manifest.json` listing every partition. Only days
//! changed since the last export are written (the commits note them in
//! `parquet_dirty_days`), unless a full export is asked for.
//!
//! This file holds the SQL; `lake` puts the files in place (a directory or
//! an object store) and `SessionStore::export_parquet` runs the loop. A day
//! leaves `parquet_dirty_days` only after every one of its files is in
//! place, so a failed upload is tried again after the next pass.

use super::error::{QueryContext, StoreError};
use super::sql::{from_micros, lit, ts};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use duckdb::{Connection, params};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Rows per Parquet row group. The writer holds a whole row group in the
/// buffer pool before flushing it; at DuckDB's default (122,880 rows) a day
/// of a busy bot did not fit in the pool and the export failed
/// (BENCHMARKS.md, "Memory").
const PARQUET_ROW_GROUP: u32 = 16_384;

/// The exported tables, in the order they are written.
pub(super) const TABLES: [&str; 7] = [
    "sessions",
    "session_tags",
    "messages",
    "message_tags",
    "analytics_events",
    "analytics_event_tags",
    "llm_usage",
];

/// One table's partition of one day, written to a local file (None: the day
/// has no rows of that table, and its partition is removed).
#[derive(Debug)]
pub(super) struct StagedPartition {
    pub table: &'static str,
    pub file: Option<PathBuf>,
    pub n_rows: i64,
}

/// The days to write, as `YYYY-MM-DD`, oldest first.
pub(super) fn days_to_export(conn: &Connection, full: bool) -> Result<Vec<String>, StoreError> {
    const DOING: &str = "finding days to export";
    let day_sql = if full {
        "SELECT CAST(d AS VARCHAR) FROM (
             SELECT DISTINCT CAST(make_timestamp(epoch_us(start_time)) AS DATE) AS d FROM sessions
             UNION SELECT DISTINCT CAST(make_timestamp(epoch_us(created_on)) AS DATE) FROM messages
             UNION SELECT DISTINCT CAST(make_timestamp(epoch_us(event_time)) AS DATE) FROM analytics_events
             UNION SELECT DISTINCT CAST(make_timestamp(epoch_us(started_at)) AS DATE) FROM llm_usage
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

/// Writes each table's rows of `day` to the local file `stage(table)`.
pub(super) fn stage_day(
    conn: &Connection,
    day: &str,
    stage: &[(&'static str, PathBuf)],
) -> Result<Vec<StagedPartition>, StoreError> {
    let queries = day_queries(day)?;
    let mut staged = Vec::with_capacity(stage.len());
    for (table, file) in stage {
        let select = &queries
            .iter()
            .find(|(t, _)| t == table)
            .expect("every exported table has a query")
            .1;
        let n_rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM ({select})"), [], |r| {
                r.get(0)
            })
            .doing("counting a partition")?;
        if n_rows > 0 {
            conn.execute_batch(&format!(
                "COPY ({select}) TO {} (FORMAT parquet, ROW_GROUP_SIZE {PARQUET_ROW_GROUP})",
                lit(&file.display().to_string())
            ))
            .doing("writing a Parquet partition")?;
        }
        staged.push(StagedPartition {
            table,
            file: (n_rows > 0).then(|| file.clone()),
            n_rows,
        });
    }
    Ok(staged)
}

/// Who wrote a day: the export's target, pass (None: `kore-sync export`)
/// and time.
pub(super) struct Writer<'a> {
    pub target: &'a str,
    pub pass_id: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Records a day as written to `writer.target`, and (for an export after a
/// pass) takes it off the days to write.
pub(super) fn finish_day(
    conn: &Connection,
    day: &str,
    staged: &[StagedPartition],
    writer: &Writer<'_>,
) -> Result<(), StoreError> {
    const DOING: &str = "recording an exported day";
    for part in staged {
        if part.n_rows == 0 {
            conn.execute(
                "DELETE FROM lake_partitions WHERE target = ? AND table_name = ? AND day = CAST(? AS DATE)",
                params![writer.target, part.table, day],
            )
            .doing(DOING)?;
        } else {
            conn.execute(
                "INSERT OR REPLACE INTO lake_partitions
                     (target, table_name, day, n_rows, pass_id, written_at)
                 VALUES (?, ?, CAST(? AS DATE), ?, ?, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ))",
                params![
                    writer.target,
                    part.table,
                    day,
                    part.n_rows,
                    writer.pass_id,
                    ts(writer.now)
                ],
            )
            .doing(DOING)?;
        }
    }
    // A full export to another place leaves the configured export's own
    // list of days to write alone.
    if writer.pass_id.is_some() {
        conn.execute(
            "DELETE FROM parquet_dirty_days WHERE day = CAST(? AS DATE)",
            params![day],
        )
        .doing(DOING)?;
    }
    Ok(())
}

/// `_kore_sync/manifest.json` for `writer.target`: every partition there,
/// its rows and the pass that wrote it.
pub(super) fn manifest(conn: &Connection, writer: &Writer<'_>) -> Result<Vec<u8>, StoreError> {
    const DOING: &str = "writing the export's manifest";
    let mut stmt = conn
        .prepare(
            "SELECT table_name, CAST(day AS VARCHAR), n_rows, pass_id,
                    epoch_us(written_at)
             FROM lake_partitions WHERE target = ? ORDER BY table_name, day",
        )
        .doing(DOING)?;
    let rows = stmt
        .query_map(params![writer.target], |r| {
            let (table, day): (String, String) = (r.get(0)?, r.get(1)?);
            Ok(json!({
                "table": table,
                "date": day,
                "path": format!("{table}/date={day}/data.parquet"),
                "rows": r.get::<_, i64>(2)?,
                "pass_id": r.get::<_, Option<String>>(3)?,
                "written_at": rfc3339(from_micros(r.get(4)?)),
            }))
        })
        .doing(DOING)?
        .collect::<Result<Vec<_>, _>>()
        .doing(DOING)?;
    let doc = json!({
        "format": "kore-sync parquet export",
        "version": 1,
        "layout": "<table>/date=YYYY-MM-DD/data.parquet (hive partitioning, UTC day of the session's start)",
        "tables": TABLES,
        "written_at": rfc3339(writer.now),
        "written_by_pass": writer.pass_id,
        "partitions": rows,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).map_err(|e| StoreError::Unexpected {
        doing: DOING,
        detail: e.to_string(),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Each table's query for one day. The day's UTC bounds are spelled as
/// constants beside the exact test, so zone maps skip other row groups:
/// without them each day scanned the whole history, twice per table.
fn day_queries(day: &str) -> Result<[(&'static str, String); 7], StoreError> {
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
        // Messages by the UTC day they were written.
        (
            "messages",
            format!(
                "SELECT * EXCLUDE (components, raw), CAST(components AS VARCHAR) AS components,
                        CAST(raw AS VARCHAR) AS raw
                 FROM messages WHERE {}",
                within("created_on")
            ),
        ),
        (
            "message_tags",
            format!(
                "SELECT t.* EXCLUDE (value_json), CAST(t.value_json AS VARCHAR) AS value_json
                 FROM message_tags t JOIN messages m USING (message_id) WHERE {}",
                within("m.created_on")
            ),
        ),
        // Analytics events by the UTC day they happened.
        (
            "analytics_events",
            format!(
                "SELECT * EXCLUDE (raw), CAST(raw AS VARCHAR) AS raw
                 FROM analytics_events WHERE {}",
                within("event_time")
            ),
        ),
        (
            "analytics_event_tags",
            format!(
                "SELECT t.* EXCLUDE (value_json), CAST(t.value_json AS VARCHAR) AS value_json
                 FROM analytics_event_tags t JOIN analytics_events e USING (type, event_id) WHERE {}",
                within("e.event_time")
            ),
        ),
        // LLM calls by the UTC day they started.
        (
            "llm_usage",
            format!(
                "SELECT * EXCLUDE (raw), CAST(raw AS VARCHAR) AS raw FROM llm_usage WHERE {}",
                within("started_at")
            ),
        ),
    ])
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where files bound for an object store wait: beside the warehouse.
pub(super) fn staging_dir(warehouse: &Path) -> PathBuf {
    let mut name = warehouse.file_name().unwrap_or_default().to_os_string();
    name.push(".upload");
    warehouse.with_file_name(name)
}
