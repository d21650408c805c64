//! The warehouse: `SessionStore`, the async face of one DuckDB connection,
//! and the types its callers see. The SQL lives in one file per role:
//! `connection` (opening files), `commit` (the window and refresh
//! transactions) with `upsert` and `arrow` beneath it, `runs` (watermarks,
//! run records, the request log), `status`, `publish` (the read copy,
//! `tags_wide`), `parquet`, `privacy` (the settings rows were written with,
//! and rewriting them), and `migrations` (the numbered files in `sql/`).
//!
//! Architecture invariant: only this module (and its children) touches
//! DuckDB. Every call runs on tokio's blocking pool behind a mutex, so DuckDB
//! work never stalls the async runtime and the single connection is never used
//! by two threads at once.

mod analytics;
mod analytics_counts;
mod arrow;
mod batched;
mod bookkeeping;
mod bots;
mod catalog;
mod chunk;
mod commit;
mod connection;
pub mod error;
mod history;
mod lake;
mod llm;
mod message_ids;
mod message_write;
mod messages;
pub mod migrations;
mod noted_days;
mod parquet;
mod parts;
mod privacy;
mod publish;
mod publishing;
mod rewrite;
mod rewrite_rows;
mod run_rows;
mod runs;
mod session_store;
mod sql;
mod staged;
mod status;
mod stream_checks;
mod stream_reads;
mod unchanged;
mod upsert;
mod watermarks;
mod window_group;

pub use bots::BotSource;
pub use commit::{Advance, Gone};
pub use connection::{ReadOnly, remove_empty_spill_dir};
pub use error::{StorageProblem, StoreError};
pub use history::{DayCount, History, PassSummary};
pub use lake::{ObjectTarget, ParquetTarget, UploadRetry, is_object_url};
pub use privacy::{StoredPrivacy, looser_fix, mixing_error};
pub use publish::{ReadCopy, ReadCopyForm};
pub use rewrite::{RecordRewrite, RewriteProgress, Rewritten, finish_rewrite, rewrite_privacy};
pub use run_rows::FinishedRun;
pub use runs::{PassLog, StoredState};
pub use session_store::SessionStore;

use crate::model::RunOutcome;
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// Where the warehouse and its publications live (`[warehouse]`).
#[derive(Debug, Clone)]
pub struct WarehouseSettings {
    pub path: PathBuf,
    /// Where the read copy is published after each successful pass; None = off.
    pub publish: Option<PathBuf>,
    /// Where changed sessions and tags are exported as hive-partitioned
    /// Parquet after each successful pass (a directory or an object store);
    /// None = off.
    pub parquet: Option<ParquetTarget>,
    /// The DuckDB storage format the read copy and a newly created
    /// warehouse are written in (e.g. `v1.4.0`), so the DuckDB drivers of BI
    /// tools, which lag a release or two, can open them.
    pub storage_version: String,
    /// What the read copy holds: a full copy, or a catalog of views over
    /// the Parquet export (`warehouse.publish_as`).
    pub read_copy_form: ReadCopyForm,
    /// Unix permissions of what kore-sync writes (`warehouse.file_mode`,
    /// `warehouse.publish_mode`).
    pub modes: FileModes,
    /// The least time between two read copies (`0s`: after every pass that
    /// changed the data). A pass that changed nothing never writes one.
    pub publish_interval: std::time::Duration,
    /// The most memory DuckDB may use, in bytes (`warehouse.memory_limit`);
    /// beyond it DuckDB spills to `<warehouse>.tmp/`. Every command works
    /// within the default (measured in BENCHMARKS.md, "Every command at
    /// size"); more helps only the user's own large queries.
    pub memory_limit: u64,
    /// The most disk DuckDB's spill files may take, in bytes
    /// (`warehouse.max_temp_size`): what a pass or command can need beyond
    /// the warehouse and its copies.
    pub max_temp_size: u64,
}

/// Unix permissions: the warehouse (and its spill and upload directories)
/// owner-only; the read copy and Parquet files readable by the group too,
/// since BI tools often run as another user of the same group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileModes {
    /// Default 0o600.
    pub warehouse: u32,
    /// Default 0o640.
    pub published: u32,
}

impl Default for FileModes {
    fn default() -> Self {
        FileModes {
            warehouse: 0o600,
            published: 0o640,
        }
    }
}

/// Sets `path`'s permissions to `mode` (Unix only; elsewhere nothing).
pub fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// The oldest storage format that keeps every type and feature the
/// warehouse uses (JSON, TIMESTAMPTZ, lists), and that DuckDB 1.4 and 1.5
/// readers open (tested in `tests/it/readers.rs`).
pub const DEFAULT_STORAGE_VERSION: &str = "v1.4.0";

/// `warehouse.memory_limit`'s default: DuckDB's buffer pool, kept small so
/// the daemon stays small. How it was sized is in BENCHMARKS.md ("Memory").
pub const DEFAULT_MEMORY_LIMIT: &str = "64MiB";

/// The least `warehouse.memory_limit` accepted: below it DuckDB cannot
/// hold the vectors of one scan of the message table.
pub const MIN_MEMORY_LIMIT: u64 = 32 << 20;

/// `warehouse.max_temp_size`'s default. Commits stage their records in
/// parts of at most 4 MiB and rewrites go in chunks, so spills stay small
/// (a pass that met 467,000 new messages peaked at 96 MiB; BENCHMARKS.md);
/// DuckDB's own default is nine tenths of the free disk.
pub const DEFAULT_MAX_TEMP_SIZE: &str = "2GiB";

/// The least `warehouse.max_temp_size` accepted.
pub const MIN_MAX_TEMP_SIZE: u64 = 1 << 20;

/// What committing one window did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCommit {
    /// Distinct sessions the window returned.
    pub n_received: usize,
    /// Of those, how many were new or changed and so were written.
    pub n_written: usize,
    /// Sessions deleted because the API no longer has them.
    pub n_deleted: usize,
    /// Sessions marked gone instead (`deletes = "keep"`).
    pub n_marked: usize,
    /// The stream's watermark after the commit.
    pub watermark: Option<DateTime<Utc>>,
}

/// The figures `sync_runs` keeps for one run (one stream's pass).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub outcome: RunOutcome,
    /// Why the run did not succeed, if it did not.
    pub error: Option<String>,
    /// The stream's watermark when the run ended.
    pub watermark_after: Option<DateTime<Utc>>,
    /// Windows planned, and of those committed.
    pub windows_planned: u32,
    pub windows_done: u32,
    /// Requests sent (retries included), of those retries, and 429 answers.
    pub requests: u32,
    pub retries: u32,
    pub rate_limited: u32,
    /// Sessions written (new or changed), deleted, marked gone, and
    /// records rejected.
    pub sessions_upserted: u64,
    pub sessions_deleted: u64,
    pub sessions_marked_deleted: u64,
    pub records_rejected: u64,
}

/// One stream as `status` reads it: its watermark and its last run.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    pub bot_id: String,
    /// `sessions`, `messages`, `analytics` or `llm_usage`.
    pub resource: String,
    /// The partition: a containment type, a channel (messages), an
    /// analytics type, or `all`.
    pub containment_type: String,
    pub watermark: Option<DateTime<Utc>>,
    pub last_run_started: Option<DateTime<Utc>>,
    pub last_run_finished: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub last_trigger: Option<String>,
    /// The API filters the stream last ran with (empty: none).
    pub filter: String,
    /// Live sessions (not marked gone) of the stream; for a messages
    /// stream, its messages.
    pub n_sessions: i64,
    /// The bot's name, if the `bots` table has one.
    pub bot_name: Option<String>,
    /// The last run's requests and records written (None: no run yet).
    pub last_run_requests: Option<i64>,
    pub last_run_written: Option<i64>,
}

/// When a publication (the read copy, or the Parquet export) last happened.
#[derive(Debug, Clone)]
pub struct Publication {
    /// `read_copy` or `parquet`.
    pub kind: String,
    pub target: String,
    pub published_at: DateTime<Utc>,
    /// The storage format it was written in (None: Parquet, or not recorded).
    pub storage_version: Option<String>,
}

/// What `status` reads from the warehouse.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// When the read copy and the Parquet export were last published.
    pub publications: Vec<Publication>,
    /// The bundled DuckDB's version.
    pub duckdb_version: String,
    /// The warehouse file's storage format (e.g. `v1.4.0+`): readers need
    /// that DuckDB version or newer.
    pub storage_version: String,
    pub n_sessions: i64,
    pub n_tags: i64,
    /// Conversation messages (`[messages]`).
    pub n_messages: i64,
    /// NLU analytics events (`[analytics]`).
    pub n_analytics_events: i64,
    /// Logged LLM calls (`analytics.llm_usage`).
    pub n_llm_calls: i64,
    pub n_rejected: i64,
    /// Sessions the API no longer has, kept and marked (`deletes = "keep"`).
    pub n_gone: i64,
    /// Messages whose session is not in the warehouse: stays 0 (issue 21).
    pub n_messages_without_session: i64,
    pub streams: Vec<StreamStatus>,
    /// The privacy settings the rows were written with (None: nothing
    /// stored yet).
    pub privacy: Option<StoredPrivacy>,
}
