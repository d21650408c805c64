//! The synchronous DuckDB side of the store: opening the file, committing a
//! window, run bookkeeping, status queries. Called only from `SessionStore`,
//! which runs it off the async runtime.
//!
//! Architecture invariant: a window's sessions, their tags and the stream's
//! watermark change in one transaction (`commit_window`), so the watermark
//! never runs ahead of the data, whatever kills the process.

use super::error::{QueryContext, StoreError};
use super::{RunRecord, StatusReport, StreamStatus, WindowCommit};
use crate::model::{RejectedRecord, Session, StreamKey};
use crate::sync::plan::Window;
use chrono::{DateTime, Utc};
use duckdb::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, ListBuilder, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Connection, OptionalExt, params};
use std::path::Path;
use std::sync::Arc;

/// Staging tables live in the connection's temp catalog: they are never
/// persisted and each window empties them first.
const STAGING: &str = "
    CREATE TEMP TABLE stage_sessions (
        session_id VARCHAR, bot_id VARCHAR, channel VARCHAR, user_id VARCHAR,
        start_time TIMESTAMPTZ, end_time TIMESTAMPTZ, session_lang VARCHAR, session_type VARCHAR,
        containment_type VARCHAR, is_developer BOOLEAN, session_status VARCHAR,
        messages_exchanged INTEGER, tasks_executed INTEGER, raw VARCHAR);
    CREATE TEMP TABLE stage_tags (
        session_id VARCHAR, kind VARCHAR, ordinal INTEGER, name VARCHAR, value VARCHAR, value_json VARCHAR);
    CREATE TEMP TABLE stage_changed (session_id VARCHAR);
";

/// Rows per DuckDB row group in the warehouse (DuckDB's default: 122,880).
/// Each checkpoint rewrites the last, partly filled row group; a smaller one
/// made a backfill's checkpoints ~40 % cheaper and its peak memory lower
/// (BENCHMARKS.md), and zone maps prune at a finer grain.
const ROW_GROUP_SIZE: u32 = 32_768;

/// Rows per Parquet row group. The writer holds a whole row group in the
/// buffer pool before flushing it; at DuckDB's default (122,880 rows of ~1 KB
/// records) a day of a busy bot did not fit in [`MEMORY_LIMIT`] and the
/// export failed (BENCHMARKS.md, "Memory").
const PARQUET_ROW_GROUP: u32 = 16_384;

/// DuckDB's buffer pool. Uncheckpointed appends, staging and larger queries
/// live here; beyond it DuckDB spills to `<warehouse>.tmp/` rather than grow
/// the process. Measured (BENCHMARKS.md, "Memory"): 64 MB backfills as fast
/// as 96 or 256 MB; 32 MB too, but leaves the read copy and Parquet export
/// little room.
const MEMORY_LIMIT: &str = "64MB";

pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source: duckdb::Error| {
        let text = source.to_string();
        if text.contains("lock") {
            StoreError::Locked {
                path: path.to_owned(),
                detail: text,
            }
        } else {
            StoreError::Open {
                path: path.to_owned(),
                source,
            }
        }
    };
    // The warehouse is attached to an in-memory connection because the row
    // group size is an ATTACH option; `USE` makes it the default catalog, so
    // every statement below and elsewhere names its tables unqualified.
    let conn = Connection::open_in_memory().map_err(open_err)?;
    conn.execute_batch(&format!(
        "ATTACH {} AS warehouse (ROW_GROUP_SIZE {ROW_GROUP_SIZE}); USE warehouse;",
        lit(&path.to_string_lossy())
    ))
    .map_err(open_err)?;
    // Never reach for the network: kore-sync's SQL needs no extension beyond
    // those compiled in, and a silent download attempt would only slow things.
    // One thread and a small buffer pool: a window is a few thousand rows, so
    // more threads bought no speed (measured, BENCHMARKS.md) and cost memory;
    // larger operations spill next to the warehouse (an in-memory
    // connection's default would be the working directory, which a service
    // may not be allowed to write).
    let mut spill = path.as_os_str().to_owned();
    spill.push(".tmp");
    conn.execute_batch(&format!(
        "SET autoinstall_known_extensions = false; SET autoload_known_extensions = false;
         SET threads = 1; SET memory_limit = '{MEMORY_LIMIT}'; SET temp_directory = {};",
        lit(&std::path::PathBuf::from(spill).to_string_lossy())
    ))
    .doing("configuring the connection")?;
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

/// Formats an instant for a `CAST(? AS TIMESTAMPTZ)` that reads the same
/// with or without DuckDB's ICU extension.
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("DuckDB timestamps are in chrono's range")
}

/// The stream's stored watermark and the filter it was reached with.
pub fn watermark_with_filter(
    conn: &Connection,
    key: &StreamKey,
) -> Result<(Option<DateTime<Utc>>, Option<String>), StoreError> {
    conn.query_row(
        "SELECT epoch_us(watermark), coalesce(filter, '') FROM sync_state WHERE bot_id = ? AND containment_type = ?",
        params![key.bot_id, key.containment_type.as_str()],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
    )
    .optional()
    .doing("reading a watermark")
    .map(|o| match o {
        Some((w, f)) => (Some(from_micros(w)), Some(f)),
        None => (None, None),
    })
}

/// Stores one window: upserts changed sessions, replaces their tags, and
/// moves the watermark, all in one transaction.
///
/// The watermark moves to `window.end` only if the window starts at or before
/// the current watermark (or, for a stream without one, at or before
/// `history_start`): the windows read so far must be contiguous for "every
/// session before the watermark has been read" to hold. It never moves back.
///
/// With `advance: None` (a refresh of sessions by id) the watermark stays.
/// `deleted` ids (reported by the API as no longer existing) are removed with
/// their tags in the same transaction.
#[allow(clippy::too_many_arguments)]
pub fn commit_window(
    conn: &mut Connection,
    key: &StreamKey,
    advance: Option<(Window, DateTime<Utc>)>,
    sessions: &[Session],
    rejected: &[RejectedRecord],
    deleted: &[String],
    now: DateTime<Utc>,
) -> Result<WindowCommit, StoreError> {
    conn.execute_batch(
        "DELETE FROM stage_sessions; DELETE FROM stage_tags; DELETE FROM stage_changed;",
    )
    .doing("clearing staging tables")?;
    // One row per session id (the last version wins), so the replace below
    // keeps `session_id` unique whatever the caller passed.
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, s) in sessions.iter().enumerate() {
        last.insert(s.session_id.as_str(), i);
    }
    let sessions: Vec<&Session> = sessions
        .iter()
        .enumerate()
        .filter(|(i, s)| last.get(s.session_id.as_str()) == Some(i))
        .map(|(_, s)| s)
        .collect();
    let (session_batch, tag_batch) = stage_batches(&sessions).map_err(arrow_error)?;
    let tx = conn
        .transaction()
        .doing("beginning the window transaction")?;
    let n_changed = if sessions.is_empty() {
        0
    } else if none_stored(&tx, &session_batch, &sessions)? {
        append_new(&tx, &sessions, session_batch, tag_batch, now)?;
        sessions.len()
    } else {
        replace_changed(&tx, &sessions, session_batch, tag_batch, now)?
    };

    for r in rejected {
        tx.execute(
            "INSERT INTO rejected_records
             SELECT ?, ?, ?, ?, ?, CAST(? AS TIMESTAMPTZ)
             WHERE NOT EXISTS (SELECT 1 FROM rejected_records WHERE raw = ?)",
            params![
                key.bot_id,
                key.containment_type.as_str(),
                r.session_id,
                r.reason,
                r.raw,
                ts(now),
                r.raw
            ],
        )
        .doing("keeping a rejected record")?;
    }

    let mut n_deleted = 0;
    for id in deleted {
        tx.execute(
            "INSERT OR IGNORE INTO parquet_dirty_days
             SELECT CAST(make_timestamp(epoch_us(start_time)) AS DATE) FROM sessions WHERE session_id = ?",
            params![id],
        )
        .doing("noting changed days")?;
        tx.execute("DELETE FROM session_tags WHERE session_id = ?", params![id])
            .doing("deleting tags of a session deleted upstream")?;
        n_deleted += tx
            .execute("DELETE FROM sessions WHERE session_id = ?", params![id])
            .doing("deleting a session deleted upstream")?;
    }

    // A watermark reached under another filter does not count: the stream
    // starts again from `history_start` (the runner adopts the old watermark
    // first when told to keep it).
    let (stored, stored_filter) = watermark_with_filter(&tx, key)?;
    let filter_changed = stored_filter.as_ref().is_some_and(|f| *f != key.filter);
    let current = if filter_changed { None } else { stored };
    let next = match advance {
        None => current,
        Some((window, history_start)) => {
            let contiguous = match current {
                Some(w) => window.start <= w,
                None => window.start <= history_start,
            };
            match current {
                Some(w) if contiguous => Some(w.max(window.end)),
                None if contiguous => Some(window.end),
                other => other,
            }
        }
    };
    if (next != current || filter_changed)
        && advance.is_some()
        && let Some(next) = next
    {
        {
            tx.execute(
                "INSERT INTO sync_state (bot_id, containment_type, watermark, updated_at, filter)
                 VALUES (?, ?, CAST(? AS TIMESTAMPTZ), CAST(? AS TIMESTAMPTZ), ?)
                 ON CONFLICT (bot_id, containment_type) DO UPDATE SET
                     watermark = excluded.watermark, updated_at = excluded.updated_at, filter = excluded.filter",
                params![key.bot_id, key.containment_type.as_str(), ts(next), ts(now), key.filter],
            )
            .doing("moving the watermark")?;
        }
    }
    tx.commit().doing("committing the window")?;
    Ok(WindowCommit {
        n_received: sessions.len(),
        n_written: n_changed,
        n_deleted,
        watermark: next,
    })
}

/// Appends a record batch to `table` (columns in table order): one call per
/// table instead of one per row.
fn append_batch(
    tx: &duckdb::Transaction<'_>,
    table: &str,
    batch: RecordBatch,
    doing: &'static str,
) -> Result<(), StoreError> {
    let mut app = tx.appender(table).doing(doing)?;
    app.append_record_batch(batch).doing(doing)?;
    app.flush().doing(doing)
}

fn arrow_error(e: duckdb::arrow::error::ArrowError) -> StoreError {
    StoreError::Query {
        doing: "building staging batches",
        source: duckdb::Error::ArrowTypeToDuckdbType(
            e.to_string(),
            duckdb::arrow::datatypes::DataType::Null,
        ),
    }
}

/// Whether none of these sessions is stored yet — the common case of a
/// backfill or of new sessions at the head. Only their ids are staged for
/// this check; the id range, spelled as constants, lets zone maps skip row
/// groups (Kore.ai's session ids are MongoDB ObjectIds, which begin with
/// their creation time, so a window's ids are narrow and stored in order).
fn none_stored(
    tx: &duckdb::Transaction<'_>,
    staged: &RecordBatch,
    sessions: &[&Session],
) -> Result<bool, StoreError> {
    let ids = RecordBatch::try_from_iter([("session_id", staged.column(0).clone())])
        .map_err(arrow_error)?;
    append_batch(tx, "stage_changed", ids, "staging ids")?;
    let ids = sessions.iter().map(|s| s.session_id.as_str());
    let (lo, hi) = (
        ids.clone().min().unwrap_or_default(),
        ids.max().unwrap_or_default(),
    );
    let n_stored: i64 = tx
        .query_row(
            &format!(
                "SELECT count(*) FROM sessions WHERE session_id BETWEEN {} AND {}
                   AND session_id IN (SELECT session_id FROM stage_changed)",
                lit(lo),
                lit(hi)
            ),
            [],
            |r| r.get(0),
        )
        .doing("checking which sessions are stored")?;
    tx.execute("DELETE FROM stage_changed", [])
        .doing("checking which sessions are stored")?;
    Ok(n_stored == 0)
}

/// Stores sessions none of which is stored yet: appended straight into
/// `sessions` and `session_tags`, skipping the staging tables and the compare
/// (about 40 % of a backfill's store time, BENCHMARKS.md).
fn append_new(
    tx: &duckdb::Transaction<'_>,
    sessions: &[&Session],
    staged: RecordBatch,
    tags: RecordBatch,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // The staged columns in table order, but `session_lang` as a list, and
    // both sync times `now`.
    let mut langs = ListBuilder::new(StringBuilder::new());
    for s in sessions {
        match &s.session_lang {
            Some(list) => {
                for lang in list {
                    langs.values().append_value(lang);
                }
                langs.append(true);
            }
            None => langs.append(false),
        }
    }
    let mut columns: Vec<(String, ArrayRef)> = staged
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .zip(staged.columns().iter().cloned())
        .collect();
    let lang = columns
        .iter_mut()
        .find(|(name, _)| name == "session_lang")
        .expect("the staged batch has a session_lang column");
    lang.1 = Arc::new(langs.finish());
    let synced = utc_micros(sessions.iter().map(|_| Some(now.timestamp_micros())));
    columns.push(("first_synced_at".into(), synced.clone()));
    columns.push(("last_synced_at".into(), synced));
    let rows = RecordBatch::try_from_iter(columns).map_err(arrow_error)?;
    append_batch(tx, "sessions", rows, "appending new sessions")?;
    append_batch(tx, "session_tags", tags, "appending new tags")?;
    // Their days are Parquet partitions to write.
    let days: std::collections::BTreeSet<_> =
        sessions.iter().map(|s| s.start_time.date_naive()).collect();
    for day in days {
        tx.execute(
            "INSERT OR IGNORE INTO parquet_dirty_days VALUES (CAST(? AS DATE))",
            params![day.to_string()],
        )
        .doing("noting changed days")?;
    }
    Ok(())
}

/// Stores a window some of whose sessions are stored already: staged in
/// full, compared with the stored rows, and only new or changed ones
/// replaced. Returns how many were written.
fn replace_changed(
    tx: &duckdb::Transaction<'_>,
    sessions: &[&Session],
    session_batch: RecordBatch,
    tag_batch: RecordBatch,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    append_batch(tx, "stage_sessions", session_batch, "staging sessions")?;
    append_batch(tx, "stage_tags", tag_batch, "staging tags")?;
    // Only sessions that are new or whose record changed are written: an
    // unchanged re-read (lookback, overlap) costs a comparison, not a write.
    // The comparison reads stored rows whose start falls within the staged
    // sessions' starts only, so its cost follows the window, not the history
    // (zone maps skip other row groups). That is exact: a stored row with
    // the same `raw` has the same `start_time`, so it lies in that range; a
    // session whose start moved counts as changed and is replaced below.
    // The range is spelled as constants so DuckDB prunes row groups by it
    // when it plans the scan.
    let starts = sessions.iter().map(|s| s.start_time);
    let n_changed = match (starts.clone().min(), starts.max()) {
        (Some(lo), Some(hi)) => tx
            .execute(
                &format!(
                    "INSERT INTO stage_changed
                     SELECT DISTINCT s.session_id FROM stage_sessions s LEFT JOIN (
                         SELECT session_id, raw, containment_type FROM sessions
                         WHERE start_time BETWEEN CAST({} AS TIMESTAMPTZ) AND CAST({} AS TIMESTAMPTZ)
                     ) t USING (session_id)
                     WHERE t.session_id IS NULL
                        OR CAST(t.raw AS VARCHAR) IS DISTINCT FROM s.raw
                        OR t.containment_type IS DISTINCT FROM s.containment_type",
                    lit(&ts(lo)),
                    lit(&ts(hi))
                ),
                [],
            )
            .doing("finding changed sessions")?,
        _ => 0,
    };
    if n_changed > 0 {
        // The stored versions of the changed sessions, wherever they start.
        // The id range, spelled as constants, lets zone maps skip row groups:
        // Kore.ai's session ids are MongoDB ObjectIds, which begin with their
        // creation time, so a window's ids are narrow and stored roughly in
        // order (without it this lookup scanned every stored id, and a
        // commit's cost grew with history: 4.7 s of a 1M backfill, 1.1 s
        // with it). Sessions that are merely new are not stored yet, and the
        // deletes below skip them.
        let (min_id, max_id): (String, String) = tx
            .query_row(
                "SELECT min(session_id), max(session_id) FROM stage_changed",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .doing("finding the stored versions of changed sessions")?;
        tx.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE stage_old AS
             SELECT session_id, first_synced_at, start_time FROM sessions
             WHERE session_id BETWEEN {} AND {}
               AND session_id IN (SELECT session_id FROM stage_changed);",
            lit(&min_id),
            lit(&max_id)
        ))
        .doing("finding the stored versions of changed sessions")?;
        // The days these sessions fall on, before and after the change, are
        // Parquet partitions to rewrite.
        tx.execute(
            "INSERT OR IGNORE INTO parquet_dirty_days
             SELECT CAST(make_timestamp(epoch_us(start_time)) AS DATE)
             FROM stage_sessions WHERE session_id IN (SELECT session_id FROM stage_changed)
             UNION
             SELECT CAST(make_timestamp(epoch_us(start_time)) AS DATE) FROM stage_old",
            [],
        )
        .doing("noting changed days")?;
        let now_ts = ts(now);
        // Replace changed rows: keep when each session was first stored,
        // delete the old version and its tags, insert the new ones. (No
        // PRIMARY KEY index: DuckDB holds such indexes in memory, which grew
        // with history and ran a million-session backfill out of memory;
        // `session_id` stays unique because stage rows are distinct and the
        // old row is deleted first, in this one transaction. Tags exist only
        // for stored sessions, so `stage_old` names every tag row to drop.)
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
                    coalesce(f.first_synced_at, CAST($1 AS TIMESTAMPTZ)), CAST($1 AS TIMESTAMPTZ)
             FROM stage_sessions s
             LEFT JOIN (SELECT session_id, min(first_synced_at) AS first_synced_at
                        FROM stage_old GROUP BY session_id) f USING (session_id)
             WHERE s.session_id IN (SELECT session_id FROM stage_changed)",
            params![now_ts],
        )
        .doing("upserting sessions")?;
        tx.execute(
            "INSERT INTO session_tags
             SELECT session_id, kind, ordinal, name, value, CAST(value_json AS JSON)
             FROM stage_tags WHERE session_id IN (SELECT session_id FROM stage_changed)",
            [],
        )
        .doing("inserting tags")?;
    }

    Ok(n_changed)
}

/// Ids of sessions stored as `active` for this stream that started before
/// `before`: a pass's windows no longer cover them, so they are re-read by id.
pub fn stale_active_sessions(
    conn: &Connection,
    key: &StreamKey,
    before: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT session_id FROM sessions
             WHERE session_status = 'active' AND containment_type = ?
               AND (? = '*' OR bot_id = ?) AND start_time < CAST(? AS TIMESTAMPTZ)
             ORDER BY start_time",
        )
        .doing("finding stale active sessions")?;
    let ids = stmt
        .query_map(
            params![
                key.containment_type.as_str(),
                key.bot_id,
                key.bot_id,
                ts(before)
            ],
            |r| r.get(0),
        )
        .doing("finding stale active sessions")?
        .collect::<Result<Vec<String>, _>>()
        .doing("finding stale active sessions")?;
    Ok(ids)
}

/// Requests sent for `scope` within the hour before `now`.
pub fn request_history(
    conn: &Connection,
    scope: &str,
    now: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT epoch_us(requested_at) FROM api_requests
             WHERE scope = ? AND epoch_us(requested_at) > ? ORDER BY requested_at",
        )
        .doing("reading the request log")?;
    let since = now.timestamp_micros() - 3_600_000_000;
    let times = stmt
        .query_map(params![scope, since], |r| r.get::<_, i64>(0))
        .doing("reading the request log")?
        .map(|r| r.map(from_micros))
        .collect::<Result<Vec<_>, _>>()
        .doing("reading the request log")?;
    Ok(times)
}

/// Appends requests to the log and drops entries older than an hour.
pub fn record_requests(
    conn: &mut Connection,
    scope: &str,
    times: &[DateTime<Utc>],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let tx = conn.transaction().doing("recording requests")?;
    for t in times {
        tx.execute(
            "INSERT INTO api_requests VALUES (?, CAST(? AS TIMESTAMPTZ))",
            params![scope, ts(*t)],
        )
        .doing("recording requests")?;
    }
    tx.execute(
        "DELETE FROM api_requests WHERE epoch_us(requested_at) <= ?",
        params![now.timestamp_micros() - 3_600_000_000],
    )
    .doing("pruning the request log")?;
    tx.commit().doing("recording requests")
}

/// A TIMESTAMPTZ column: UTC instants in microseconds, handed over as
/// numbers (no text to format here and parse again in DuckDB).
fn utc_micros(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(
        values
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    )
}

/// The staging tables' rows as Arrow record batches, columns in table order.
fn stage_batches(
    sessions: &[&Session],
) -> Result<(RecordBatch, RecordBatch), duckdb::arrow::error::ArrowError> {
    // Borrowed: the Arrow array copies each string once, straight from the session.
    let text = |f: &dyn Fn(&Session) -> Option<&str>| -> ArrayRef {
        Arc::new(sessions.iter().map(|s| f(s)).collect::<StringArray>())
    };
    let session_cols: Vec<ArrayRef> = vec![
        text(&|s| Some(s.session_id.as_str())),
        text(&|s| s.bot_id.as_deref()),
        text(&|s| s.channel.as_deref()),
        text(&|s| s.user_id.as_deref()),
        utc_micros(
            sessions
                .iter()
                .map(|s| Some(s.start_time.timestamp_micros())),
        ),
        utc_micros(
            sessions
                .iter()
                .map(|s| s.end_time.map(|t| t.timestamp_micros())),
        ),
        Arc::new(
            sessions
                .iter()
                .map(|s| {
                    s.session_lang
                        .as_ref()
                        .map(|l| serde_json::to_string(l).expect("strings serialize"))
                })
                .collect::<StringArray>(),
        ),
        text(&|s| s.session_type.as_deref()),
        text(&|s| s.containment_type.as_deref()),
        Arc::new(
            sessions
                .iter()
                .map(|s| s.is_developer)
                .collect::<BooleanArray>(),
        ),
        text(&|s| s.session_status.as_deref()),
        Arc::new(
            sessions
                .iter()
                .map(|s| s.messages_exchanged)
                .collect::<Int32Array>(),
        ),
        Arc::new(
            sessions
                .iter()
                .map(|s| s.tasks_executed)
                .collect::<Int32Array>(),
        ),
        text(&|s| Some(s.raw.as_str())),
    ];
    let names = [
        "session_id",
        "bot_id",
        "channel",
        "user_id",
        "start_time",
        "end_time",
        "session_lang",
        "session_type",
        "containment_type",
        "is_developer",
        "session_status",
        "messages_exchanged",
        "tasks_executed",
        "raw",
    ];
    let sessions_batch = RecordBatch::try_from_iter(names.into_iter().zip(session_cols))?;
    let tags: Vec<(&Session, &crate::model::Tag)> = sessions
        .iter()
        .flat_map(|s| s.tags.iter().map(move |t| (*s, t)))
        .collect();
    let tag_cols: Vec<(&str, ArrayRef)> = vec![
        (
            "session_id",
            Arc::new(
                tags.iter()
                    .map(|(s, _)| Some(s.session_id.as_str()))
                    .collect::<StringArray>(),
            ),
        ),
        (
            "kind",
            Arc::new(
                tags.iter()
                    .map(|(_, t)| Some(t.kind.as_str()))
                    .collect::<StringArray>(),
            ),
        ),
        (
            "ordinal",
            Arc::new(
                tags.iter()
                    .map(|(_, t)| Some(t.ordinal))
                    .collect::<Int32Array>(),
            ),
        ),
        (
            "name",
            Arc::new(
                tags.iter()
                    .map(|(_, t)| t.name.as_deref())
                    .collect::<StringArray>(),
            ),
        ),
        (
            "value",
            Arc::new(
                tags.iter()
                    .map(|(_, t)| t.value.as_deref())
                    .collect::<StringArray>(),
            ),
        ),
        (
            "value_json",
            Arc::new(
                tags.iter()
                    .map(|(_, t)| Some(t.value_json.as_str()))
                    .collect::<StringArray>(),
            ),
        ),
    ];
    let tags_batch = RecordBatch::try_from_iter(tag_cols)?;
    Ok((sessions_batch, tags_batch))
}

/// Keeps the stored watermark but records it under the stream's new filter
/// (`sync.restart_on_filter_change = false`).
pub fn adopt_filter(conn: &Connection, key: &StreamKey) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE sync_state SET filter = ? WHERE bot_id = ? AND containment_type = ?",
        params![key.filter, key.bot_id, key.containment_type.as_str()],
    )
    .doing("keeping a watermark under a new filter")?;
    Ok(())
}

pub fn begin_run(
    conn: &Connection,
    pass_id: &str,
    key: &StreamKey,
    trigger: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    conn.query_row(
        "INSERT INTO sync_runs (pass_id, bot_id, containment_type, trigger, started_at, outcome, filter)
         VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMPTZ), 'running', ?) RETURNING run_id",
        params![
            pass_id,
            key.bot_id,
            key.containment_type.as_str(),
            trigger,
            ts(now),
            key.filter
        ],
        |r| r.get(0),
    )
    .doing("recording the start of a run")
}

pub fn finish_run(
    conn: &Connection,
    run_id: i64,
    r: &RunRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE sync_runs SET finished_at = CAST(? AS TIMESTAMPTZ), outcome = ?, windows_planned = ?,
             windows_done = ?, requests = ?, retries = ?, rate_limited = ?, sessions_upserted = ?,
             sessions_deleted = ?, records_rejected = ?, watermark_after = CAST(? AS TIMESTAMPTZ), error = ?
         WHERE run_id = ?",
        params![
            ts(now),
            r.outcome.as_str(),
            r.windows_planned,
            r.windows_done,
            r.requests,
            r.retries,
            r.rate_limited,
            r.sessions_upserted,
            r.sessions_deleted,
            r.records_rejected,
            r.watermark_after.map(ts),
            r.error,
            run_id
        ],
    )
    .doing("recording the end of a run")?;
    Ok(())
}

pub fn status(conn: &Connection) -> Result<StatusReport, StoreError> {
    let count = |sql: &str| {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .doing("counting rows")
    };
    let n_sessions = count("SELECT count(*) FROM sessions")?;
    let n_tags = count("SELECT count(*) FROM session_tags")?;
    let n_rejected = count("SELECT count(*) FROM rejected_records")?;
    let mut stmt = conn
        .prepare(
            "WITH last_run AS (
                 SELECT * FROM sync_runs QUALIFY row_number() OVER (
                     PARTITION BY bot_id, containment_type ORDER BY run_id DESC) = 1),
             streams AS (
                 SELECT bot_id, containment_type FROM sync_state
                 UNION SELECT bot_id, containment_type FROM sync_runs)
             SELECT s.bot_id, s.containment_type, epoch_us(st.watermark),
                    epoch_us(r.started_at), epoch_us(r.finished_at), r.outcome, r.error, r.trigger,
                    coalesce(r.filter, st.filter, ''),
                    (SELECT count(*) FROM sessions x
                       WHERE (s.bot_id = '*' OR x.bot_id = s.bot_id) AND x.containment_type = s.containment_type)
             FROM streams s
             LEFT JOIN sync_state st USING (bot_id, containment_type)
             LEFT JOIN last_run r USING (bot_id, containment_type)
             ORDER BY s.bot_id, s.containment_type",
        )
        .doing("reading stream status")?;
    let streams = stmt
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
            })
        })
        .doing("reading stream status")?
        .collect::<Result<Vec<_>, _>>()
        .doing("reading stream status")?;
    let publications = publications(conn)?
        .into_iter()
        .map(|(kind, target, at)| super::Publication {
            kind,
            target,
            published_at: at,
        })
        .collect();
    let duckdb_version: String = conn
        .query_row("SELECT version()", [], |r| r.get(0))
        .doing("reading the DuckDB version")?;
    Ok(StatusReport {
        publications,
        duckdb_version,
        n_sessions,
        n_tags,
        n_rejected,
        streams,
    })
}

/// Quotes a string as an SQL literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Quotes a string as an SQL identifier.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// How many tag names `tags_wide` gets a column for.
pub const TAGS_WIDE_COLUMNS: usize = 20;

/// Rewrites `tags_wide` with one column per most common tag name.
pub fn refresh_tags_wide(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT name FROM session_tags WHERE name IS NOT NULL
             GROUP BY name ORDER BY count(*) DESC, name LIMIT ?",
        )
        .doing("finding common tag names")?;
    let names: Vec<String> = stmt
        .query_map(params![TAGS_WIDE_COLUMNS as i64], |r| r.get(0))
        .doing("finding common tag names")?
        .collect::<Result<_, _>>()
        .doing("finding common tag names")?;
    let mut sql = String::from("CREATE OR REPLACE VIEW tags_wide AS SELECT session_id");
    for name in &names {
        sql.push_str(&format!(
            ", first(value ORDER BY kind, ordinal) FILTER (WHERE name = {}) AS {}",
            lit(name),
            ident(name)
        ));
    }
    sql.push_str(" FROM session_tags GROUP BY session_id");
    conn.execute_batch(&sql).doing("rewriting tags_wide")
}

fn record_publication(
    conn: &Connection,
    kind: &str,
    target: &Path,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let n: i64 = conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .doing("counting sessions")?;
    conn.execute(
        "INSERT INTO publications VALUES (?, ?, CAST(? AS TIMESTAMPTZ), ?)
         ON CONFLICT (kind) DO UPDATE SET target = excluded.target,
             published_at = excluded.published_at, n_sessions = excluded.n_sessions",
        params![kind, target.display().to_string(), ts(now), n],
    )
    .doing("recording a publication")?;
    Ok(n)
}

fn io_err(doing: &'static str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Publish {
        doing,
        path: path.to_owned(),
        source: e,
    }
}

/// Writes a consistent, checkpointed copy of the warehouse to a temporary
/// file beside `dest`, syncs it, and renames it over `dest`. Readers that
/// opened the old copy keep their view; new connections see the new one.
pub fn publish_copy(conn: &Connection, dest: &Path, now: DateTime<Utc>) -> Result<i64, StoreError> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| io_err("creating the read copy's directory", dir, e))?;
    let name = dest.file_name().map_or("kore-read.duckdb".into(), |n| {
        n.to_string_lossy().into_owned()
    });
    let tmp = dir.join(format!(".{name}.tmp"));
    for stale in [tmp.clone(), dir.join(format!(".{name}.tmp.wal"))] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing a stale temporary copy", &stale, e)),
        }
    }
    let n = record_publication(conn, "read_copy", dest, now)?;
    let db: String = conn
        .query_row("SELECT current_database()", [], |r| r.get(0))
        .doing("naming the warehouse")?;
    conn.execute_batch(&format!(
        "ATTACH {} AS kore_publish",
        lit(&tmp.display().to_string())
    ))
    .doing("creating the read copy")?;
    let copied = conn.execute_batch(&format!(
        "COPY FROM DATABASE {} TO kore_publish; CHECKPOINT kore_publish;",
        ident(&db)
    ));
    let detached = conn.execute_batch("DETACH kore_publish");
    copied.doing("copying into the read copy")?;
    detached.doing("closing the read copy")?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("syncing the read copy", &tmp, e))?;
    std::fs::rename(&tmp, dest).map_err(|e| io_err("moving the read copy into place", dest, e))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(n)
}

/// Exports sessions and tags as hive-partitioned Parquet under `dir`
/// (`sessions/date=YYYY-MM-DD/data.parquet`, `session_tags/date=…/data.parquet`).
/// `full` rewrites every day; otherwise only days changed since the last
/// export. Each partition file is written beside its target and renamed over
/// it, so readers see the old or the new file, never half of one. Returns the
/// number of partitions (days) written.
pub fn export_parquet(
    conn: &Connection,
    dir: &Path,
    full: bool,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let day_sql = if full {
        "SELECT CAST(d AS VARCHAR) FROM (
             SELECT DISTINCT CAST(make_timestamp(epoch_us(start_time)) AS DATE) AS d FROM sessions
             UNION SELECT day FROM parquet_dirty_days) ORDER BY 1"
    } else {
        "SELECT CAST(day AS VARCHAR) FROM parquet_dirty_days ORDER BY 1"
    };
    let mut stmt = conn.prepare(day_sql).doing("finding days to export")?;
    let days: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .doing("finding days to export")?
        .collect::<Result<_, _>>()
        .doing("finding days to export")?;
    drop(stmt);
    for day in &days {
        // The day's UTC bounds as constants, beside the exact test, so zone
        // maps skip other row groups: without them each day scanned the whole
        // history, twice per table.
        let start = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
            .map_err(|e| StoreError::Worker(format!("unreadable day {day:?}: {e}")))?;
        let within = |column: &str| {
            format!(
                "{column} >= CAST({} AS TIMESTAMPTZ) AND {column} < CAST({} AS TIMESTAMPTZ)",
                lit(&ts(start)),
                lit(&ts(start + chrono::Duration::days(1)))
            )
        };
        for (table, select) in [
            (
                "sessions",
                format!(
                    "SELECT * EXCLUDE (raw), CAST(raw AS VARCHAR) AS raw FROM sessions
                     WHERE {} AND CAST(make_timestamp(epoch_us(start_time)) AS DATE) = CAST(? AS DATE)",
                    within("start_time")
                ),
            ),
            (
                "session_tags",
                format!(
                    "SELECT t.* EXCLUDE (value_json), CAST(t.value_json AS VARCHAR) AS value_json
                     FROM session_tags t JOIN sessions s USING (session_id)
                     WHERE {} AND CAST(make_timestamp(epoch_us(s.start_time)) AS DATE) = CAST(? AS DATE)",
                    within("s.start_time")
                ),
            ),
        ] {
            let part = dir.join(table).join(format!("date={day}"));
            let target = part.join("data.parquet");
            let n: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM ({select})"),
                    params![day],
                    |r| r.get(0),
                )
                .doing("counting a partition")?;
            if n == 0 {
                // Every session of that day is gone: so is its partition.
                match std::fs::remove_dir_all(&part) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("removing an emptied partition", &part, e)),
                }
                continue;
            }
            std::fs::create_dir_all(&part).map_err(|e| io_err("creating a partition", &part, e))?;
            let tmp = part.join(".data.parquet.tmp");
            let select_day = select.replace('?', &lit(day));
            conn.execute_batch(&format!(
                "COPY ({select_day}) TO {} (FORMAT parquet, ROW_GROUP_SIZE {PARQUET_ROW_GROUP})",
                lit(&tmp.display().to_string())
            ))
            .doing("writing a Parquet partition")?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err("syncing a Parquet partition", &tmp, e))?;
            std::fs::rename(&tmp, &target)
                .map_err(|e| io_err("moving a Parquet partition into place", &target, e))?;
        }
        conn.execute(
            "DELETE FROM parquet_dirty_days WHERE day = CAST(? AS DATE)",
            params![day],
        )
        .doing("clearing an exported day")?;
    }
    record_publication(conn, "parquet", dir, now)?;
    Ok(days.len())
}

/// When each kind of publication last happened: (kind, target, time).
pub fn publications(conn: &Connection) -> Result<Vec<(String, String, DateTime<Utc>)>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT kind, target, epoch_us(published_at) FROM publications ORDER BY kind")
        .doing("reading publications")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, from_micros(r.get(2)?))))
        .doing("reading publications")?
        .collect::<Result<_, _>>()
        .doing("reading publications")?;
    Ok(rows)
}
