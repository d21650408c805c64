//! What `kore-sync status` reads: counts, each stream's watermark and last
//! run, and when the read copy and the Parquet export were last published.

use super::error::{QueryContext, StoreError};
use super::sql::{count_rows, from_micros};
use super::{Publication, StatusReport, StreamStatus};
use duckdb::Connection;

/// Messages whose session is not in the warehouse (issue 21): 0 unless
/// something went wrong, since a message is stored only with its session
/// and removed with it.
pub(super) const MESSAGES_WITHOUT_SESSION: &str = "SELECT count(*) FROM messages m
     WHERE m.session_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = m.session_id)";

pub(super) fn status(conn: &Connection) -> Result<StatusReport, StoreError> {
    let count = |sql: &str| count_rows(conn, sql);
    let n_sessions = count("SELECT count(*) FROM sessions")?;
    let n_tags = count("SELECT count(*) FROM session_tags")?;
    let n_messages = count("SELECT count(*) FROM messages")?;
    let n_analytics_events = count("SELECT count(*) FROM analytics_events")?;
    let n_llm_calls = count("SELECT count(*) FROM llm_usage")?;
    let n_rejected = count("SELECT count(*) FROM rejected_records")?;
    let n_gone = count("SELECT count(*) FROM sessions WHERE deleted_at IS NOT NULL")?;
    let n_messages_without_session = count(MESSAGES_WITHOUT_SESSION)?;
    let streams = stream_rows(conn)?;
    let publications = publications(conn)?;
    let storage_version = storage_version(conn)?;
    let duckdb_version: String = conn
        .query_row("SELECT version()", [], |r| r.get(0))
        .doing("reading the DuckDB version")?;
    Ok(StatusReport {
        privacy: super::privacy::stored(conn)?,
        publications,
        duckdb_version,
        storage_version,
        n_sessions,
        n_tags,
        n_messages,
        n_analytics_events,
        n_llm_calls,
        n_rejected,
        n_gone,
        n_messages_without_session,
        streams,
    })
}

/// Every stream's row: its watermark, its last run, and the rows it holds.
fn stream_rows(conn: &Connection) -> Result<Vec<StreamStatus>, StoreError> {
    let mut stmt = conn
        .prepare(
            "WITH last_run AS (
                 SELECT * FROM sync_runs QUALIFY row_number() OVER (
                     PARTITION BY resource, bot_id, containment_type ORDER BY run_id DESC) = 1),
             streams AS (
                 SELECT resource, bot_id, containment_type FROM sync_state
                 UNION SELECT resource, bot_id, containment_type FROM sync_runs)
             SELECT s.bot_id, s.containment_type, epoch_us(st.watermark),
                    epoch_us(r.started_at), epoch_us(r.finished_at), r.outcome, r.error, r.trigger,
                    coalesce(r.filter, st.filter, ''),
                    CASE WHEN s.resource = 'sessions' THEN
                        (SELECT count(*) FROM sessions x
                          WHERE (s.bot_id = '*' OR x.bot_id = s.bot_id)
                            AND x.containment_type = s.containment_type AND x.deleted_at IS NULL)
                    WHEN s.resource = 'llm_usage' THEN
                        (SELECT count(*) FROM llm_usage u WHERE u.bot_id = s.bot_id)
                    WHEN s.resource = 'analytics' THEN
                        (SELECT count(*) FROM analytics_events e
                          WHERE e.bot_id = s.bot_id AND e.type = s.containment_type)
                    ELSE (SELECT count(*) FROM messages m
                           WHERE m.bot_id = s.bot_id AND m.channel = s.containment_type) END,
                    b.name, s.resource, r.requests, r.sessions_upserted
             FROM streams s
             LEFT JOIN bots b USING (bot_id)
             LEFT JOIN sync_state st USING (resource, bot_id, containment_type)
             LEFT JOIN last_run r USING (resource, bot_id, containment_type)
             ORDER BY s.bot_id,
                      CASE s.resource WHEN 'sessions' THEN 0 WHEN 'messages' THEN 1
                                      WHEN 'analytics' THEN 2 ELSE 3 END,
                      s.containment_type",
        )
        .doing("reading stream status")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(StreamStatus {
                bot_id: r.get(0)?,
                containment_type: r.get(1)?,
                watermark: r.get::<_, Option<i64>>(2)?.map(from_micros),
                last_run_started: r.get::<_, Option<i64>>(3)?.map(from_micros),
                last_run_finished: r.get::<_, Option<i64>>(4)?.map(from_micros),
                last_outcome: r.get(5)?,
                last_error: r.get(6)?,
                last_trigger: r.get(7)?,
                filter: r.get(8)?,
                n_sessions: r.get(9)?,
                bot_name: r.get(10)?,
                resource: r.get(11)?,
                last_run_requests: r.get(12)?,
                last_run_written: r.get(13)?,
            })
        })
        .doing("reading stream status")?
        .collect::<Result<Vec<_>, _>>()
        .doing("reading stream status")?;
    Ok(rows)
}

/// When each kind of publication last happened: (kind, target, time).
fn publications(conn: &Connection) -> Result<Vec<Publication>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT kind, target, epoch_us(published_at), storage_version
             FROM publications ORDER BY kind",
        )
        .doing("reading publications")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Publication {
                kind: r.get(0)?,
                target: r.get(1)?,
                published_at: from_micros(r.get(2)?),
                storage_version: r.get(3)?,
            })
        })
        .doing("reading publications")?
        .collect::<Result<_, _>>()
        .doing("reading publications")?;
    Ok(rows)
}

/// The storage format of the open warehouse file, as DuckDB reports it
/// (e.g. `v1.4.0+`: readable by DuckDB v1.4.0 and newer).
pub(super) fn storage_version(conn: &Connection) -> Result<String, StoreError> {
    conn.query_row(
        "SELECT coalesce(tags['storage_version'], 'unknown') FROM duckdb_databases()
         WHERE database_name = current_database()",
        [],
        |r| r.get(0),
    )
    .doing("reading the storage version")
}
