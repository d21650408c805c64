//! Schema migrations: the numbered files in `sql/`, compiled in, applied in
//! order on open, each in its own transaction and recorded in
//! `schema_migrations`.
//!
//! Architecture invariant: a migration, once released, never changes; a
//! change to the schema is a new numbered file.

use super::error::{StorageProblem, StoreError, is_out_of_memory, query_err};
use duckdb::Connection;
use std::path::Path;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Release order is version order.
pub const MIGRATIONS: &[Migration] = &[
    migration(1, "schema", include_str!("../../sql/001_schema.sql")),
    migration(2, "views", include_str!("../../sql/002_views.sql")),
    migration(
        3,
        "request_log",
        include_str!("../../sql/003_request_log.sql"),
    ),
    migration(4, "read_side", include_str!("../../sql/004_read_side.sql")),
    migration(
        5,
        "stream_filters",
        include_str!("../../sql/005_stream_filters.sql"),
    ),
    migration(6, "deletes", include_str!("../../sql/006_deletes.sql")),
    migration(
        7,
        "storage_versions",
        include_str!("../../sql/007_storage_versions.sql"),
    ),
    migration(
        8,
        "publishing",
        include_str!("../../sql/008_publishing.sql"),
    ),
    migration(9, "bots", include_str!("../../sql/009_bots.sql")),
    migration(10, "streams", include_str!("../../sql/010_streams.sql")),
    migration(11, "messages", include_str!("../../sql/011_messages.sql")),
    migration(12, "privacy", include_str!("../../sql/012_privacy.sql")),
    migration(
        13,
        "message_rereads",
        include_str!("../../sql/013_message_rereads.sql"),
    ),
    migration(
        14,
        "privacy_file",
        include_str!("../../sql/014_privacy_file.sql"),
    ),
    migration(
        15,
        "privacy_rewrite",
        include_str!("../../sql/015_privacy_rewrite.sql"),
    ),
    migration(
        16,
        "compressed_records",
        include_str!("../../sql/016_compressed_records.sql"),
    ),
    migration(17, "analytics", include_str!("../../sql/017_analytics.sql")),
    migration(18, "llm_usage", include_str!("../../sql/018_llm_usage.sql")),
];

const fn migration(version: i64, name: &'static str, sql: &'static str) -> Migration {
    Migration { version, name, sql }
}

/// Applies every migration newer than the warehouse's version.
pub fn apply(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |source| query_err("reading schema_migrations", source);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
    )
    .map_err(err)?;
    let current: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found: current,
            known,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let merr = |source: duckdb::Error| {
            let text = source.to_string();
            if StorageProblem::in_text(&text).is_some() || is_out_of_memory(&text) {
                return query_err("applying a migration", source);
            }
            StoreError::Migration {
                version: m.version,
                name: m.name,
                source,
            }
        };
        conn.execute_batch("BEGIN TRANSACTION").map_err(merr)?;
        let applied = conn.execute_batch(m.sql).and_then(|()| {
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, CAST(now() AS TIMESTAMPTZ))",
                duckdb::params![m.version, m.name],
            )
            .map(|_| ())
        });
        match applied {
            Ok(()) => conn.execute_batch("COMMIT").map_err(merr)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(merr(e));
            }
        }
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied schema migration"
        );
    }
    Ok(())
}

/// How to undo the latest migration, for `kore-sync bench --commands`,
/// which times migrations at size: it rewinds a copy of a large warehouse
/// to the version before, so that opening it applies the latest again.
const UNDO_LATEST: &str = "DROP VIEW daily_llm_usage; DROP TABLE llm_usage;";

/// Rewinds the warehouse at `path` (a copy: nothing else may hold it) to
/// the schema version before the latest; returns the latest's version.
pub fn rewind_latest(path: &Path) -> Result<i64, StoreError> {
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    let conn = Connection::open(path).map_err(|e| query_err("opening a copy to rewind", e))?;
    conn.execute_batch(&format!(
        "BEGIN TRANSACTION; {UNDO_LATEST}
         DELETE FROM schema_migrations WHERE version = {latest}; COMMIT;"
    ))
    .map_err(|e| query_err("rewinding the latest migration", e))?;
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema: every table and view with its columns, as text, and
    /// every table as DuckDB would create it (with its columns'
    /// compression).
    fn schema(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare(
                "SELECT table_name || '.' || column_name || ' ' || data_type
                 FROM information_schema.columns
                 UNION ALL SELECT sql FROM duckdb_tables() ORDER BY 1",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Issue 22: the benchmark's rewind undoes exactly the latest
    /// migration, so a migration added later fails here until
    /// `UNDO_LATEST` undoes it instead.
    #[test]
    fn issue_22_rewinding_the_latest_migration_and_applying_it_again_gives_the_same_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        let conn = Connection::open(&path).unwrap();
        apply(&conn, &path).unwrap();
        let before = schema(&conn);
        drop(conn);
        let latest = rewind_latest(&path).unwrap();
        assert_eq!(latest, MIGRATIONS.last().unwrap().version);
        let conn = Connection::open(&path).unwrap();
        let rewound = schema(&conn);
        assert_ne!(rewound, before, "the rewind changed something");
        apply(&conn, &path).unwrap();
        assert_eq!(schema(&conn), before);
    }

    /// Issue 14: a warehouse from before streams had resources keeps every
    /// stream's watermark and runs, now as sessions streams.
    #[test]
    fn issue_14_existing_streams_become_sessions_streams() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (
                 version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
        )
        .unwrap();
        for m in MIGRATIONS.iter().filter(|m| m.version < 10) {
            conn.execute_batch(m.sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, now())",
                duckdb::params![m.version, m.name],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO sync_state VALUES ('st-1', 'agent', TIMESTAMPTZ '2026-01-02 03:04:05+00', now(), 'f');
             INSERT INTO sync_runs (pass_id, bot_id, containment_type, trigger, started_at, outcome)
             VALUES ('p', 'st-1', 'agent', 'manual', now(), 'succeeded');",
        )
        .unwrap();
        apply(&conn, Path::new("test")).unwrap();
        let (resource, watermark, filter): (String, String, String) = conn
            .query_row(
                "SELECT resource, CAST(watermark AS VARCHAR), filter FROM sync_state
                 WHERE bot_id = 'st-1' AND containment_type = 'agent'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(resource, "sessions");
        assert!(watermark.starts_with("2026-01-02 03:04:05"), "{watermark}");
        assert_eq!(filter, "f");
        let run_resource: String = conn
            .query_row("SELECT resource FROM sync_runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(run_resource, "sessions");
    }
}
