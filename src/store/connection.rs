//! Opening warehouse files: the writer's connection (attached with our row
//! group size, bounded memory, migrated, staging tables ready) and the
//! read-only connection behind `kore-sync query`.

use super::WarehouseSettings;
use super::error::{QueryContext, StorageProblem, StoreError};
use super::sql::lit;
use duckdb::Connection;
use std::path::{Path, PathBuf};

/// Staging tables live in the connection's temp catalog: they are never
/// persisted and each commit empties them first.
pub(super) const STAGING: &str = "
    CREATE TEMP TABLE stage_sessions (
        session_id VARCHAR, bot_id VARCHAR, channel VARCHAR, user_id VARCHAR,
        start_time TIMESTAMPTZ, end_time TIMESTAMPTZ, session_lang VARCHAR, session_type VARCHAR,
        containment_type VARCHAR, is_developer BOOLEAN, session_status VARCHAR,
        messages_exchanged INTEGER, tasks_executed INTEGER, raw VARCHAR);
    CREATE TEMP TABLE stage_tags (
        session_id VARCHAR, kind VARCHAR, ordinal INTEGER, name VARCHAR, value VARCHAR, value_json VARCHAR);
    CREATE TEMP TABLE stage_changed (session_id VARCHAR);
    CREATE TEMP TABLE stage_messages (
        message_id VARCHAR, session_id VARCHAR, bot_id VARCHAR, direction VARCHAR,
        created_on TIMESTAMPTZ, channel VARCHAR, lang VARCHAR, text VARCHAR,
        components VARCHAR, raw VARCHAR);
    CREATE TEMP TABLE stage_message_tags (
        message_id VARCHAR, kind VARCHAR, ordinal INTEGER, name VARCHAR, value VARCHAR,
        value_json VARCHAR);
    CREATE TEMP TABLE stage_message_keys (message_id VARCHAR, session_id VARCHAR);
    CREATE TEMP TABLE stage_analytics (
        type VARCHAR, event_id VARCHAR, bot_id VARCHAR, session_id VARCHAR, message_id VARCHAR,
        event_time VARCHAR, channel VARCHAR, language VARCHAR, user_id VARCHAR,
        channel_uid VARCHAR, utterance VARCHAR, intent VARCHAR, task_id VARCHAR,
        task_name VARCHAR, is_ambiguous BOOLEAN, node_name VARCHAR, node_type VARCHAR,
        status VARCHAR, status_code VARCHAR, response_time_ms BIGINT, raw VARCHAR);
    CREATE TEMP TABLE stage_analytics_tags (
        type VARCHAR, event_id VARCHAR, kind VARCHAR, ordinal INTEGER, name VARCHAR,
        value VARCHAR, value_json VARCHAR);
    CREATE TEMP TABLE stage_analytics_changed (
        type VARCHAR, event_id VARCHAR, first_synced_at TIMESTAMPTZ);
    CREATE TEMP TABLE stage_llm_usage (
        usage_id VARCHAR, bot_id VARCHAR, user_id VARCHAR, started_at VARCHAR, ended_at VARCHAR,
        time_taken_ms BIGINT, status_code INTEGER, status VARCHAR, feature VARCHAR, model VARCHAR,
        integration VARCHAR, prompt_name VARCHAR, channel VARCHAR, task_id VARCHAR,
        description VARCHAR, request_tokens BIGINT, response_tokens BIGINT, raw VARCHAR);
    CREATE TEMP TABLE stage_llm_changed (usage_id VARCHAR, first_synced_at TIMESTAMPTZ);
    CREATE TEMP TABLE stage_late (
        session_id VARCHAR, bot_id VARCHAR, channel VARCHAR,
        start_time VARCHAR, end_time VARCHAR);
    CREATE TEMP TABLE stage_run_starts (
        pass_id VARCHAR, resource VARCHAR, bot_id VARCHAR, containment_type VARCHAR,
        trigger VARCHAR, started_at VARCHAR, filter VARCHAR);
    CREATE TEMP TABLE stage_run_ends (
        run_id BIGINT, finished_at VARCHAR, outcome VARCHAR, windows_planned INTEGER,
        windows_done INTEGER, requests INTEGER, retries INTEGER, rate_limited INTEGER,
        sessions_upserted BIGINT, sessions_deleted BIGINT, sessions_marked_deleted BIGINT,
        records_rejected BIGINT, watermark_after VARCHAR, error VARCHAR);
    CREATE TEMP TABLE stage_counts (
        i BIGINT, bot_id VARCHAR, containment_type VARCHAR, lo VARCHAR, hi VARCHAR,
        session_type VARCHAR, user_id VARCHAR);
    CREATE TEMP TABLE stage_stale (
        i BIGINT, bot_id VARCHAR, containment_type VARCHAR, before VARCHAR);
    CREATE TEMP TABLE stage_watermarks (
        watermark VARCHAR, filter VARCHAR, resource VARCHAR, bot_id VARCHAR,
        containment_type VARCHAR);
";

/// Rows per DuckDB row group in the warehouse (DuckDB's default: 122,880).
/// Each checkpoint rewrites the last, partly filled row group, so a smaller
/// one makes checkpoints cheaper, and zone maps prune at a finer grain
/// (measured in BENCHMARKS.md).
const ROW_GROUP_SIZE: u32 = 8_192;

/// Prepared statements kept per connection: the fixed bookkeeping ones,
/// and one per filter shape of the count a reconcile makes.
const STATEMENT_CACHE: usize = 64;

/// Classifies a failure to open `path`: another process holding DuckDB's
/// file lock is [`StoreError::Locked`] (the operator stops that process);
/// anything else is [`StoreError::Open`].
fn open_error(path: &Path, source: duckdb::Error) -> StoreError {
    let detail = source.to_string();
    if detail.contains("lock") {
        StoreError::Locked {
            path: path.to_owned(),
            detail,
        }
    } else if let Some(problem) = StorageProblem::in_text(&detail) {
        StoreError::Storage {
            doing: "opening the warehouse",
            problem,
            path: Some(path.to_owned()),
        }
    } else {
        StoreError::Open {
            path: path.to_owned(),
            source,
        }
    }
}

/// Opens (creating if needed) the warehouse of `settings` for writing,
/// brings its schema up to date, and closes runs a crash left open.
pub(super) fn open(settings: &WarehouseSettings) -> Result<Connection, StoreError> {
    let (path, storage_version) = (settings.path.as_path(), &settings.storage_version);
    // The warehouse is attached to an in-memory connection because the row
    // group size is an ATTACH option; `USE` makes it the default catalog, so
    // every statement in this module names its tables unqualified.
    // A new file is written in the configured storage format, so older
    // readers can open it; an existing one keeps the format it has.
    let conn = Connection::open_in_memory().map_err(|e| open_error(path, e))?;
    let format = if path.exists() {
        String::new()
    } else {
        format!(", STORAGE_VERSION {}", lit(storage_version))
    };
    conn.execute_batch(&format!(
        "ATTACH {} AS warehouse (ROW_GROUP_SIZE {ROW_GROUP_SIZE}{format}); USE warehouse;",
        lit(&path.to_string_lossy())
    ))
    .map_err(|e| open_error(path, e))?;
    restrict(path, settings.modes.warehouse)?;
    // Never reach for the network: kore-sync's SQL needs no extension beyond
    // those compiled in. One thread and a small buffer pool: a window is a
    // few thousand rows, so more threads bought no speed and cost memory.
    // Uncheckpointed appends, staging and larger queries live in the
    // buffer pool (`warehouse.memory_limit`); beyond it DuckDB spills next to
    // the warehouse rather than grow the process (an in-memory connection's
    // default would be the working directory, which a service may not be
    // allowed to write), up to `warehouse.max_temp_size`.
    conn.execute_batch(&format!(
        "SET autoinstall_known_extensions = false; SET autoload_known_extensions = false;
         SET threads = 1; SET memory_limit = '{}B'; SET temp_directory = {};
         SET max_temp_directory_size = '{}B';",
        settings.memory_limit,
        lit(&spill_dir(path).to_string_lossy()),
        settings.max_temp_size
    ))
    .doing("configuring the connection")?;
    // Bookkeeping statements run for every stream and window; prepared once
    // each (`prepare_cached`), they skip DuckDB's parser and planner, which
    // cost more than these statements' work (issue 23).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    super::migrations::apply(&conn, path)?;
    conn.execute_batch(STAGING)
        .doing("creating staging tables")?;
    // A run still marked running was cut short by a crash or kill: only one
    // process can hold the file, so it is not running now.
    conn.execute(
        "UPDATE sync_runs SET outcome = 'abandoned', finished_at = coalesce(finished_at, CAST(now() AS TIMESTAMPTZ)),
             error = coalesce(error, 'the process ended before the run finished')
         WHERE outcome = 'running'",
        [],
    )
    .doing("closing abandoned runs")?;
    Ok(conn)
}

/// Where DuckDB spills: `<warehouse>.tmp/`.
/// Makes the warehouse (and its WAL, if any) `mode`, and creates its spill
/// directory owner-only before DuckDB would create it with the umask.
fn restrict(path: &Path, mode: u32) -> Result<(), StoreError> {
    let io = |doing, p: &Path, e| super::error::io_err(doing, p, e);
    if path.exists() {
        super::set_mode(path, mode)
            .map_err(|e| io("restricting the warehouse's permissions", path, e))?;
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push(".wal");
    let wal = PathBuf::from(wal);
    if wal.exists() {
        super::set_mode(&wal, mode)
            .map_err(|e| io("restricting the WAL's permissions", &wal, e))?;
    }
    let spill = spill_dir(path);
    if !spill.exists() {
        std::fs::create_dir_all(&spill)
            .map_err(|e| io("creating the spill directory", &spill, e))?;
    }
    super::set_mode(&spill, 0o700).map_err(|e| io("restricting the spill directory", &spill, e))
}

/// Removes the warehouse's spill directory if nothing is in it, for
/// commands that leave no trace in the user's directory (`demo`). Call it
/// once the store is closed.
pub fn remove_empty_spill_dir(warehouse: &Path) {
    // Fails, harmlessly, when the directory holds files or is gone.
    let _ = std::fs::remove_dir(spill_dir(warehouse));
}

fn spill_dir(path: &Path) -> PathBuf {
    let mut spill = path.as_os_str().to_owned();
    spill.push(".tmp");
    PathBuf::from(spill)
}

/// A read-only connection to a warehouse file (or its read copy), for
/// `kore-sync query`: SQL with the DuckDB version kore-sync bundles, so the
/// file format always matches.
pub struct ReadOnly {
    conn: Connection,
}

impl ReadOnly {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let config = duckdb::Config::default()
            .access_mode(duckdb::AccessMode::ReadOnly)
            .map_err(|e| open_error(path, e))?;
        let conn = Connection::open_with_flags(path, config).map_err(|e| open_error(path, e))?;
        Ok(ReadOnly { conn })
    }

    /// Runs one query and writes its rows as tab-separated text with a header.
    pub fn print(&self, sql: &str, out: &mut impl std::io::Write) -> Result<(), StoreError> {
        const DOING: &str = "running the query";
        let sql = sql.trim().trim_end_matches(';');
        // Every column as text, whatever its type.
        let wrapped = format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})");
        let mut stmt = self.conn.prepare(&wrapped).doing(DOING)?;
        let mut rows = stmt.query([]).doing(DOING)?;
        let names: Vec<String> = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
        writeln!(out, "{}", names.join("\t")).map_err(StoreError::Output)?;
        while let Some(row) = rows.next().doing(DOING)? {
            let cells: Vec<String> = (0..names.len())
                .map(|i| {
                    row.get::<_, Option<String>>(i)
                        .map(|v| v.unwrap_or_else(|| "NULL".into()))
                })
                .collect::<Result<_, _>>()
                .doing(DOING)?;
            writeln!(out, "{}", cells.join("\t")).map_err(StoreError::Output)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use duckdb::Connection;

    /// A warehouse with the schema and the staging tables, in a directory
    /// that lives as long as the first value.
    pub(in crate::store) fn warehouse() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        let conn = Connection::open(&path).unwrap();
        super::super::migrations::apply(&conn, &path).unwrap();
        conn.execute_batch(super::STAGING).unwrap();
        (dir, conn)
    }

    /// Issue 23: a pass's temporary disk is bounded by
    /// `warehouse.max_temp_size`; reaching it is told in kore-sync's words
    /// (its setting, not DuckDB's), and the transaction's writes are
    /// rolled back, so nothing stored is lost.
    #[test]
    fn issue_23_the_temporary_disk_is_bounded_and_reaching_it_is_told_plainly() {
        use crate::store::StoreError;
        use crate::store::error::QueryContext;
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::store::WarehouseSettings {
            path: dir.path().join("w.duckdb"),
            publish: None,
            parquet: None,
            storage_version: crate::store::DEFAULT_STORAGE_VERSION.into(),
            read_copy_form: crate::store::ReadCopyForm::Copy,
            modes: crate::store::FileModes::default(),
            publish_interval: std::time::Duration::ZERO,
            memory_limit: crate::store::MIN_MEMORY_LIMIT,
            max_temp_size: crate::store::MIN_MAX_TEMP_SIZE,
        };
        let mut conn = super::open(&settings).unwrap();
        conn.execute_batch("CREATE TABLE kept AS SELECT 1 AS n")
            .unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch("INSERT INTO kept VALUES (2)").unwrap();
        // A sort of about 100 MB cannot stay within 32 MiB of memory and
        // 1 MiB of spill files.
        let failed = tx
            .execute_batch(
                "CREATE TABLE big AS SELECT i, repeat('x', 200) || i AS s
                 FROM range(500000) r(i) ORDER BY s DESC",
            )
            .doing("sorting");
        let e = failed.expect_err("the spill limit was not reached");
        assert!(matches!(e, StoreError::TempFull { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("Raise warehouse.max_temp_size"), "{text}");
        assert!(!text.contains("PRAGMA"), "{text}");
        drop(tx);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM kept", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "the failed transaction's rows were kept");
    }
}
