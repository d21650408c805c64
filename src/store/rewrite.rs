//! `rewrite-privacy`'s work in the store: every stored session, message,
//! analytics event and rejected record read back and written again under stricter settings, in
//! chunks of bounded bytes, each its own transaction with the progress
//! (`privacy_rewrite`), so it works within DuckDB's memory limit at any
//! size and a stopped rewrite resumes where it was; then the whole
//! warehouse written to a new file, since a database file keeps freed pages
//! (and the old values in them) until they are reused.
//!
//! Architecture invariant: a row is rewritten exactly once — a chunk's rows
//! and the progress past them commit together, and rows are rewritten by
//! key order — and no pass writes while a rewrite is unfinished (see
//! `privacy::mixing_error`).

use super::error::{QueryContext, StoreError};
use super::parts::PART_BYTES;
use super::privacy::{FileState, read_record, record};
use super::rewrite_rows::{
    ANALYTICS_KEY, rewrite_analytics, rewrite_llm_usage, rewrite_messages, rewrite_rejected,
    rewrite_sessions,
};
use super::{WarehouseSettings, connection, publish};
use crate::model::{AnalyticsEvent, AnalyticsType, LlmUsage, Message, Session};
use crate::privacy::PrivacyRecord;
use chrono::Utc;
use duckdb::{Connection, Transaction, params};

/// The most rows a chunk reads; fewer when they are large (see
/// [`Chunking`]).
const MAX_CHUNK_ROWS: usize = 20_000;

/// How stored records are read again under new rules (implemented above
/// the store, where the API's record shapes are known). Each takes a stored
/// `raw` and returns the record as it is now to be stored.
pub trait RecordRewrite: Sync {
    fn session(&self, raw: &str) -> Result<Session, String>;
    fn message(&self, raw: &str) -> Result<Message, String>;
    /// An analytics event of `kind` (its `bot_id` is kept as stored).
    fn analytics(&self, kind: AnalyticsType, raw: &str) -> Result<AnalyticsEvent, String>;
    /// An LLM usage record (its `usage_id` and `bot_id` are kept as stored).
    fn llm_usage(&self, raw: &str) -> Result<LlmUsage, String>;
    /// A rejected record's `raw` as it may now be kept; `partition` is the
    /// name of the partition of the stream that rejected it (as
    /// `rejected_records.containment_type` has it), which tells what kind
    /// of record it is.
    fn rejected(&self, partition: &str, raw: &str) -> String;
}

/// What `rewrite-privacy` rewrote (in this run, when it resumed one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewritten {
    pub n_sessions: usize,
    pub n_messages: usize,
    pub n_analytics: usize,
    pub n_llm_calls: usize,
    pub n_rejected: usize,
}

/// How far a rewrite is, after each chunk: for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteProgress {
    /// `sessions`, `messages`, `analytics_events` or `llm_usage`.
    pub table: &'static str,
    /// Rows of `table` rewritten so far, by any run of this rewrite.
    pub done: u64,
    pub total: u64,
}

/// The tables rewritten chunk by chunk, in order, with their keys (an
/// expression for analytics events, keyed by type and id).
const TABLES: [(&str, &str); 4] = [
    ("sessions", "session_id"),
    ("messages", "message_id"),
    ("analytics_events", ANALYTICS_KEY),
    ("llm_usage", "usage_id"),
];

/// A rewrite stopped halfway: its target settings and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unfinished {
    pub target: PrivacyRecord,
    /// The table being rewritten, and the greatest key rewritten in it.
    table: String,
    done_through: String,
}

/// The rewrite recorded as unfinished, if any.
pub(super) fn unfinished(conn: &Connection) -> Result<Option<Unfinished>, StoreError> {
    let row = read_record(
        conn,
        "privacy_rewrite",
        "rewriting, done_through",
        |r, i| Ok((r.get(i)?, r.get(i + 1)?)),
    )?;
    Ok(row.map(|(target, (table, done_through))| Unfinished {
        target,
        table,
        done_through,
    }))
}

/// Applies `rw` to every stored session, message and rejected record —
/// resuming a rewrite to `wanted` that was stopped — and records `wanted`;
/// then writes the warehouse to a new file and moves it over the old one.
/// Every Parquet day is marked to be written again; the read copy follows
/// from its fingerprint. `progress` is told after every chunk.
pub fn rewrite_privacy(
    settings: &WarehouseSettings,
    rw: &dyn RecordRewrite,
    wanted: &PrivacyRecord,
    progress: &dyn Fn(RewriteProgress),
) -> Result<Rewritten, StoreError> {
    let mut conn = connection::open(settings)?;
    let from = begin(&conn, wanted)?;
    let mut done = Rewritten::default();
    // Past the last table (its rejected records are left): none.
    let start = TABLES
        .iter()
        .position(|(t, _)| *t == from.table)
        .unwrap_or(TABLES.len());
    for (i, &(table, key)) in TABLES.iter().enumerate().skip(start) {
        let after = if i == start {
            from.done_through.clone()
        } else {
            String::new()
        };
        let n = rewrite_table(&mut conn, (table, key), after, rw, progress)?;
        match table {
            "sessions" => done.n_sessions = n,
            "messages" => done.n_messages = n,
            "analytics_events" => done.n_analytics = n,
            _ => done.n_llm_calls = n,
        }
    }
    done.n_rejected = finish_rows(&mut conn, rw, wanted)?;
    publish::refresh_tags_wide(&conn)?;
    write_file_anew(conn, settings)?;
    Ok(done)
}

/// Records that a rewrite to `wanted` has begun (unless one has: it is
/// resumed), and returns where it stands.
fn begin(conn: &Connection, wanted: &PrivacyRecord) -> Result<Unfinished, StoreError> {
    if let Some(unfinished) = unfinished(conn)? {
        if unfinished.target != *wanted {
            return Err(StoreError::RewriteTargetChanged {
                was: unfinished.target.describe(),
                now: wanted.describe(),
            });
        }
        return Ok(unfinished);
    }
    let json = |v: &Vec<String>| serde_json::to_string(v).expect("strings serialize");
    conn.execute(
        "INSERT INTO privacy_rewrite VALUES (1, from_json(?, '[\"VARCHAR\"]'), from_json(?, '[\"VARCHAR\"]'),
             ?, ?, 'sessions', '', CAST(now() AS TIMESTAMPTZ))",
        params![
            json(&wanted.pseudonymize),
            json(&wanted.drop_tags),
            wanted.store_text,
            wanted.key_check
        ],
    )
    .doing("recording the start of a privacy rewrite")?;
    Ok(Unfinished {
        target: wanted.clone(),
        table: "sessions".to_owned(),
        done_through: String::new(),
    })
}

/// Rewrites the rows of `table` whose key is above `after`, chunk by chunk,
/// each chunk committed with the progress. Returns how many rows it rewrote.
fn rewrite_table(
    conn: &mut Connection,
    (table, key): (&'static str, &str),
    mut after: String,
    rw: &dyn RecordRewrite,
    progress: &dyn Fn(RewriteProgress),
) -> Result<usize, StoreError> {
    let total =
        super::sql::count_rows(conn, &format!("SELECT count(*) FROM {table}"))?.max(0) as u64;
    let mut done = count_through(conn, (table, key), &after)?;
    let (mut chunking, mut n) = (Chunking::default(), 0);
    while let Some(last) = next_keys(conn, (table, key), &after, chunking.rows)? {
        let tx = conn
            .transaction()
            .doing("beginning a chunk of the rewrite")?;
        let mut rows = read_range(&tx, (table, key), (&after, &last))?;
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // Within the bytes a part may hold; the rest is read again next.
        let kept = chunking.fit(&rows);
        rows.truncate(kept);
        let through = rows.last().map_or(last, |(id, _)| id.clone());
        match table {
            "sessions" => rewrite_sessions(&tx, &rows, rw, (&after, &through))?,
            "messages" => rewrite_messages(&tx, &rows, rw, (&after, &through))?,
            "analytics_events" => rewrite_analytics(&tx, &rows, rw, (&after, &through))?,
            _ => rewrite_llm_usage(&tx, &rows, rw, (&after, &through))?,
        }
        tx.execute(
            "UPDATE privacy_rewrite SET rewriting = ?, done_through = ?",
            params![table, through],
        )
        .doing("recording the rewrite's progress")?;
        tx.commit().doing("committing a chunk of the rewrite")?;
        (n, done, after) = (n + rows.len(), done + rows.len() as u64, through);
        progress(RewriteProgress { table, done, total });
    }
    // The next table starts from its first key.
    let next = TABLES
        .iter()
        .skip_while(|(t, _)| *t != table)
        .nth(1)
        .map_or("rejected_records", |(t, _)| t);
    conn.execute(
        "UPDATE privacy_rewrite SET rewriting = ?, done_through = ''",
        params![next],
    )
    .doing("recording the rewrite's progress")?;
    Ok(n)
}

/// How many rows a chunk reads: at most [`MAX_CHUNK_ROWS`], and about as
/// many as fitted [`PART_BYTES`] last time, so large records are not read
/// many times over.
struct Chunking {
    rows: usize,
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking { rows: 1_000 }
    }
}

impl Chunking {
    /// How many of `rows` (in key order) fit one part; adapts the next
    /// chunk's size to that.
    fn fit(&mut self, rows: &[(String, String)]) -> usize {
        let mut bytes = 0;
        let kept = rows
            .iter()
            .take_while(|(_, raw)| {
                bytes += raw.len();
                bytes <= PART_BYTES
            })
            .count()
            .max(1)
            .min(rows.len());
        self.rows = if kept == rows.len() {
            (self.rows * 2).min(MAX_CHUNK_ROWS)
        } else {
            kept.max(1)
        };
        kept
    }
}

/// The greatest of the next `limit` keys above `after`, if any. Only the
/// key column is read: ordering rows with their records would hold them
/// all in memory (issue 22).
fn next_keys(
    conn: &Connection,
    (table, key): (&str, &str),
    after: &str,
    limit: usize,
) -> Result<Option<String>, StoreError> {
    conn.query_row(
        &format!(
            "SELECT max(k) FROM (SELECT {key} AS k FROM {table} WHERE {key} > ? ORDER BY k LIMIT {limit})"
        ),
        params![after],
        |r| r.get(0),
    )
    .doing("finding the next rows to rewrite")
}

/// Rows of `table` with a key at or below `after` (already rewritten).
fn count_through(
    conn: &Connection,
    (table, key): (&str, &str),
    after: &str,
) -> Result<u64, StoreError> {
    let n: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {table} WHERE {key} <= ?"),
            params![after],
            |r| r.get(0),
        )
        .doing("counting rows already rewritten")?;
    Ok(n.max(0) as u64)
}

/// `(key, raw)` of the rows with a key in `(after, last]`, in no order.
fn read_range(
    tx: &Transaction<'_>,
    (table, key): (&str, &str),
    (after, last): (&str, &str),
) -> Result<Vec<(String, String)>, StoreError> {
    const DOING: &str = "reading stored records";
    let mut stmt = tx
        .prepare(&format!(
            "SELECT {key}, CAST(raw AS VARCHAR) FROM {table} WHERE {key} > ? AND {key} <= ?"
        ))
        .doing(DOING)?;
    stmt.query_map(params![after, last], |r| Ok((r.get(0)?, r.get(1)?)))
        .doing(DOING)?
        .collect::<Result<_, _>>()
        .doing(DOING)
}

/// The last transaction of a rewrite: the rejected records (few: kept
/// only for inspection), every day marked for the Parquet export, `wanted`
/// recorded with the file still to be written anew, and the progress
/// cleared. Returns how many distinct rejected records it rewrote.
fn finish_rows(
    conn: &mut Connection,
    rw: &dyn RecordRewrite,
    wanted: &PrivacyRecord,
) -> Result<usize, StoreError> {
    let tx = conn
        .transaction()
        .doing("beginning the rewrite's last step")?;
    let n_rejected = rewrite_rejected(&tx, rw)?;
    tx.execute_batch(
        "INSERT OR IGNORE INTO parquet_dirty_days
             SELECT DISTINCT CAST(make_timestamp(epoch_us(start_time)) AS DATE) FROM sessions;
         INSERT OR IGNORE INTO parquet_dirty_days
             SELECT DISTINCT CAST(make_timestamp(epoch_us(created_on)) AS DATE) FROM messages;
         DELETE FROM privacy_rewrite;",
    )
    .doing("marking every day for the Parquet export")?;
    record(&tx, (wanted, FileState::ToWriteAnew), Utc::now())?;
    tx.commit().doing("committing the rewrite")?;
    Ok(n_rejected)
}

/// Finishes a `rewrite-privacy` that was stopped after it committed the
/// rows: writes the file anew.
pub fn finish_rewrite(settings: &WarehouseSettings) -> Result<(), StoreError> {
    let conn = connection::open(settings)?;
    write_file_anew(conn, settings)
}

/// Copies the whole warehouse into a new file (clearing `file_pending`
/// there), closes the old one and moves the new one over it: a database
/// file keeps freed pages, and the old values in them, until they are
/// reused.
fn write_file_anew(conn: Connection, settings: &WarehouseSettings) -> Result<(), StoreError> {
    let path = &settings.path;
    conn.execute_batch("CHECKPOINT")
        .doing("checkpointing the warehouse")?;
    let tmp = publish::write_beside(&conn, path, &settings.storage_version, |c, db| {
        publish::copy_everything(c, db)?;
        c.execute_batch("UPDATE kore_publish.privacy_settings SET file_pending = false")
            .doing("marking the new file written")
    })?;
    drop(conn);
    // The copy holds everything committed; a log left beside the old file
    // must not be replayed onto the new one.
    let wal = path.with_file_name(format!(
        "{}.wal",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    match std::fs::remove_file(&wal) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(super::error::io_err(
                "removing the old write-ahead log",
                &wal,
                e,
            ));
        }
    }
    publish::move_into_place(&tmp, path, settings.modes.warehouse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(sizes: &[usize]) -> Vec<(String, String)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("{i:04}"), "x".repeat(n)))
            .collect()
    }

    #[test]
    fn issue_22_a_chunk_keeps_what_fits_a_part_and_adapts_its_size() {
        let mut c = Chunking::default();
        // Small rows: all kept, and the next chunk reads twice as many.
        assert_eq!(c.fit(&rows(&[100; 1_000])), 1_000);
        assert_eq!(c.rows, 2_000);
        // Large rows: as many as fit, and the next chunk reads that many.
        let big = rows(&[1 << 20; 10]);
        assert_eq!(c.fit(&big), 4);
        assert_eq!(c.rows, 4);
        // A row beyond a part is a chunk of its own, never skipped.
        assert_eq!(c.fit(&rows(&[PART_BYTES * 2, 1])), 1);
        assert_eq!(c.rows, 1);
        for _ in 0..20 {
            c.fit(&rows(&[1]));
        }
        assert_eq!(c.rows, MAX_CHUNK_ROWS);
    }
}
