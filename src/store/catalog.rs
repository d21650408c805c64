//! The read copy as a catalog (`warehouse.publish_as = "views"`): a small
//! DuckDB file whose `sessions` and `session_tags` are views over the
//! Parquet export, beside copies of the small tables and the analyst views.
//! Rewriting it costs kilobytes; the days a pass changed were already
//! written by the export. So publishing costs what changed, at any size.
//!
//! A reader opens the catalog like the full copy. What it sees: the small
//! tables switch whole with the catalog's rename; the sessions are the
//! export's day files, each replaced whole, so while an export runs a reader
//! may see some of that pass's days new and others not yet (never half a
//! day). The catalog is written only after the export succeeded.

use super::error::{QueryContext, StoreError, io_err};
use super::sql::{ident, lit};
use duckdb::Connection;
use std::path::Path;

/// Tables copied whole: small, and bounded by the number of bots, streams
/// and passes rather than by sessions.
const SMALL_TABLES: [&str; 6] = [
    "sync_state",
    "sync_runs",
    "bots",
    "publications",
    "rejected_records",
    "schema_migrations",
];

/// The exported tables, with their JSON columns (stored as text in Parquet).
const EXPORTED: [(&str, &[&str]); 7] = [
    ("sessions", &["raw"]),
    ("session_tags", &["value_json"]),
    ("messages", &["components", "raw"]),
    ("message_tags", &["value_json"]),
    ("analytics_events", &["raw"]),
    ("analytics_event_tags", &["value_json"]),
    ("llm_usage", &["raw"]),
];

/// Fills `kore_publish` (attached) from the warehouse `db` and the Parquet
/// export in `parquet_dir`.
pub(super) fn fill_catalog(
    conn: &Connection,
    db: &str,
    parquet_dir: &Path,
) -> Result<(), StoreError> {
    const DOING: &str = "writing the read catalog";
    for table in SMALL_TABLES {
        conn.execute_batch(&format!(
            "CREATE TABLE kore_publish.{t} AS SELECT * FROM {d}.{t}",
            t = ident(table),
            d = ident(db)
        ))
        .doing(DOING)?;
    }
    // Absolute, so readers in any directory find the files.
    let dir = std::fs::canonicalize(parquet_dir)
        .map_err(|e| io_err("finding the Parquet export", parquet_dir, e))?;
    for (table, json_columns) in EXPORTED {
        let sql = match exported_view(conn, (db, table, json_columns), &dir)? {
            Some(view) => view,
            // Nothing exported yet: an empty table of the same shape, since
            // a view over no files cannot be created.
            None => format!(
                "CREATE TABLE kore_publish.{t} AS SELECT * FROM {d}.{t} LIMIT 0",
                t = ident(table),
                d = ident(db)
            ),
        };
        conn.execute_batch(&sql).doing(DOING)?;
    }
    copy_views(conn, db)
}

/// `CREATE VIEW` for one exported table over its day files, its columns in
/// the warehouse's order and types (the JSON column cast back), or None
/// when no day file exists.
fn exported_view(
    conn: &Connection,
    (db, table, json_columns): (&str, &str, &[&str]),
    dir: &Path,
) -> Result<Option<String>, StoreError> {
    const DOING: &str = "reading the exported tables' columns";
    let has_files = std::fs::read_dir(dir.join(table))
        .map(|days| {
            days.flatten()
                .any(|d| d.path().join("data.parquet").exists())
        })
        .unwrap_or(false);
    if !has_files {
        return Ok(None);
    }
    let mut stmt = conn
        .prepare(
            "SELECT column_name FROM duckdb_columns()
             WHERE database_name = ? AND schema_name = 'main' AND table_name = ?
             ORDER BY column_index",
        )
        .doing(DOING)?;
    let columns: Vec<String> = stmt
        .query_map([db, table], |r| r.get(0))
        .doing(DOING)?
        .collect::<Result<_, _>>()
        .doing(DOING)?;
    let select: Vec<String> = columns
        .iter()
        .map(|c| {
            if json_columns.contains(&c.as_str()) {
                format!("CAST({} AS JSON) AS {}", ident(c), ident(c))
            } else {
                ident(c)
            }
        })
        .collect();
    let files = dir.join(table).join("*").join("data.parquet");
    Ok(Some(format!(
        "CREATE VIEW kore_publish.{} AS SELECT {} FROM read_parquet({}, hive_partitioning = false)",
        ident(table),
        select.join(", "),
        lit(&files.display().to_string())
    )))
}

/// The warehouse's views, created again in the catalog (in an order that
/// lets each find the views it reads).
fn copy_views(conn: &Connection, db: &str) -> Result<(), StoreError> {
    const DOING: &str = "copying the analyst views";
    let mut stmt = conn
        .prepare(
            "SELECT sql FROM duckdb_views()
             WHERE database_name = ? AND schema_name = 'main' AND NOT internal
             ORDER BY view_name",
        )
        .doing(DOING)?;
    let mut pending: Vec<String> = stmt
        .query_map([db], |r| r.get(0))
        .doing(DOING)?
        .collect::<Result<_, _>>()
        .doing(DOING)?;
    conn.execute_batch("USE kore_publish").doing(DOING)?;
    let mut last_err = None;
    // A view that reads another waits for it: retry until no progress.
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|sql| match conn.execute_batch(sql) {
            Ok(()) => false,
            Err(e) => {
                last_err = Some(e);
                true
            }
        });
        if pending.len() == before {
            break;
        }
    }
    conn.execute_batch(&format!("USE {}", ident(db)))
        .doing(DOING)?;
    match (pending.is_empty(), last_err) {
        (false, Some(e)) => Err(e).doing(DOING),
        _ => Ok(()),
    }
}
