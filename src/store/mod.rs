//! The warehouse: `SessionStore`, the async face of one DuckDB connection.
//!
//! Architecture invariant: only this module (and its children) touches
//! DuckDB. Every call runs on tokio's blocking pool behind a mutex, so DuckDB
//! work never stalls the async runtime and the single connection is never used
//! by two threads at once.

mod duckdb;
pub mod error;
pub mod migrations;

pub use error::StoreError;

use crate::model::{RejectedRecord, Session, StreamKey};
use crate::sync::plan::Window;
use ::duckdb::Connection;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What committing one window did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCommit {
    /// Distinct sessions the window returned.
    pub n_received: usize,
    /// Of those, how many were new or changed and so were written.
    pub n_written: usize,
    /// Sessions deleted because the API no longer has them.
    pub n_deleted: usize,
    /// The stream's watermark after the commit.
    pub watermark: Option<DateTime<Utc>>,
}

/// How a stream's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed,
    Interrupted,
    /// The scope's request budget ran out; what was read is committed and
    /// the next pass continues. Not a failure.
    BudgetSpent,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::BudgetSpent => "budget_spent",
        }
    }
}

/// The figures `sync_runs` keeps for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub outcome: RunOutcome,
    pub windows_planned: u32,
    pub windows_done: u32,
    pub requests: u32,
    pub retries: u32,
    pub rate_limited: u32,
    pub sessions_upserted: u64,
    pub sessions_deleted: u64,
    pub records_rejected: u64,
    pub watermark_after: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    pub bot_id: String,
    pub containment_type: String,
    pub watermark: Option<DateTime<Utc>>,
    pub last_run_started: Option<DateTime<Utc>>,
    pub last_run_finished: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub last_trigger: Option<String>,
    /// The API filters the stream last ran with (empty: none).
    pub filter: String,
    pub n_sessions: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Publication {
    /// `read_copy` or `parquet`.
    pub kind: String,
    pub target: String,
    pub published_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// When the read copy and the Parquet export were last published.
    pub publications: Vec<Publication>,
    /// The bundled DuckDB's version: readers need this version or newer.
    pub duckdb_version: String,
    pub n_sessions: i64,
    pub n_tags: i64,
    pub n_rejected: i64,
    pub streams: Vec<StreamStatus>,
}

#[derive(Clone)]
pub struct SessionStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SessionStore {
    /// Opens (creating if needed) the warehouse and brings its schema up to
    /// date. Fails at once if another process holds the file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = duckdb::open(path)?;
        Ok(SessionStore {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|e| StoreError::Worker(e.to_string()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// The stored watermark and the filter it was reached with (None: no
    /// watermark yet).
    pub async fn watermark_with_filter(
        &self,
        key: &StreamKey,
    ) -> Result<(Option<DateTime<Utc>>, Option<String>), StoreError> {
        let key = key.clone();
        self.with(move |c| duckdb::watermark_with_filter(c, &key))
            .await
    }

    /// Records the stored watermark under the stream's current filter.
    pub async fn adopt_filter(&self, key: &StreamKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.with(move |c| duckdb::adopt_filter(c, &key)).await
    }

    /// Stores a window's sessions and moves the watermark, in one
    /// transaction. See [`duckdb::commit_window`] for the watermark rule.
    pub async fn commit_window(
        &self,
        key: &StreamKey,
        window: Window,
        history_start: DateTime<Utc>,
        sessions: Vec<Session>,
        rejected: Vec<RejectedRecord>,
    ) -> Result<WindowCommit, StoreError> {
        let key = key.clone();
        self.with(move |c| {
            duckdb::commit_window(
                c,
                &key,
                Some((window, history_start)),
                &sessions,
                &rejected,
                &[],
                Utc::now(),
            )
        })
        .await
    }

    /// Stores sessions re-read by id and deletes those the API no longer
    /// has, in one transaction; the watermark stays.
    pub async fn commit_refresh(
        &self,
        key: &StreamKey,
        sessions: Vec<Session>,
        rejected: Vec<RejectedRecord>,
        deleted: Vec<String>,
    ) -> Result<WindowCommit, StoreError> {
        let key = key.clone();
        self.with(move |c| {
            duckdb::commit_window(c, &key, None, &sessions, &rejected, &deleted, Utc::now())
        })
        .await
    }

    /// Sessions stored as active that started before `before`.
    pub async fn stale_active_sessions(
        &self,
        key: &StreamKey,
        before: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let key = key.clone();
        self.with(move |c| duckdb::stale_active_sessions(c, &key, before))
            .await
    }

    pub async fn begin_run(
        &self,
        pass_id: &str,
        key: &StreamKey,
        trigger: &str,
    ) -> Result<i64, StoreError> {
        let (pass_id, key, trigger) = (pass_id.to_owned(), key.clone(), trigger.to_owned());
        self.with(move |c| duckdb::begin_run(c, &pass_id, &key, &trigger, Utc::now()))
            .await
    }

    pub async fn finish_run(&self, run_id: i64, record: RunRecord) -> Result<(), StoreError> {
        self.with(move |c| duckdb::finish_run(c, run_id, &record, Utc::now()))
            .await
    }

    /// Requests sent for `scope` (a bot id or `*`) in the last hour, by any
    /// process on this warehouse.
    pub async fn request_history(&self, scope: &str) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let scope = scope.to_owned();
        self.with(move |c| duckdb::request_history(c, &scope, Utc::now()))
            .await
    }

    /// Logs requests sent for `scope`; prunes the log to the last hour.
    pub async fn record_requests(
        &self,
        scope: &str,
        times: Vec<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let scope = scope.to_owned();
        self.with(move |c| duckdb::record_requests(c, &scope, &times, Utc::now()))
            .await
    }

    /// Rewrites `tags_wide` for the most common tag names.
    pub async fn refresh_tags_wide(&self) -> Result<(), StoreError> {
        self.with(|c| duckdb::refresh_tags_wide(c)).await
    }

    /// Publishes the read copy at `dest`; returns the sessions it holds.
    pub async fn publish_copy(&self, dest: &Path) -> Result<i64, StoreError> {
        let dest = dest.to_owned();
        self.with(move |c| duckdb::publish_copy(c, &dest, Utc::now()))
            .await
    }

    /// Exports changed days (or, with `full`, every day) as Parquet under
    /// `dir`; returns the number of days written.
    pub async fn export_parquet(&self, dir: &Path, full: bool) -> Result<usize, StoreError> {
        let dir = dir.to_owned();
        self.with(move |c| duckdb::export_parquet(c, &dir, full, Utc::now()))
            .await
    }

    pub async fn status(&self) -> Result<StatusReport, StoreError> {
        self.with(|c| duckdb::status(c)).await
    }
}

/// A read-only connection to a warehouse file (or its read copy), for
/// `kore-sync query`: SQL with the DuckDB version kore-sync bundles, so the
/// file format always matches.
pub struct ReadOnly {
    conn: Connection,
}

impl ReadOnly {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let config = ::duckdb::Config::default()
            .access_mode(::duckdb::AccessMode::ReadOnly)
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        let conn = Connection::open_with_flags(path, config).map_err(|source| {
            if source.to_string().contains("lock") {
                StoreError::Locked {
                    path: path.to_owned(),
                    detail: source.to_string(),
                }
            } else {
                StoreError::Open {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Ok(ReadOnly { conn })
    }

    /// Runs one query and writes its rows as tab-separated text with a header.
    pub fn print(&self, sql: &str, out: &mut impl std::io::Write) -> anyhow::Result<()> {
        let sql = sql.trim().trim_end_matches(';');
        // Every column as text, whatever its type.
        let wrapped = format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})");
        let mut stmt = self.conn.prepare(&wrapped)?;
        let mut rows = stmt.query([])?;
        let names: Vec<String> = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
        writeln!(out, "{}", names.join("\t"))?;
        while let Some(row) = rows.next()? {
            let cells: Vec<String> = (0..names.len())
                .map(|i| {
                    row.get::<_, Option<String>>(i)
                        .map(|v| v.unwrap_or_else(|| "NULL".into()))
                })
                .collect::<Result<_, _>>()?;
            writeln!(out, "{}", cells.join("\t"))?;
        }
        Ok(())
    }
}
