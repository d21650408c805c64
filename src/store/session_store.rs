//! `SessionStore`: the async face of the warehouse's one connection. Each
//! method moves its work onto tokio's blocking pool and takes the
//! connection's mutex, so callers never block the runtime and DuckDB never
//! sees two threads at once.

use super::commit::{self, Advance, Gone};
use super::error::StoreError;
use super::{
    RunRecord, StatusReport, WarehouseSettings, WindowCommit, connection, parquet, publish, runs,
    status,
};
use crate::model::{SessionBatch, StreamFilter, StreamKey, Window};
use chrono::{DateTime, Utc};
use duckdb::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The warehouse, open for writing. Cheap to clone: clones share the one
/// connection.
#[derive(Clone)]
pub struct SessionStore {
    path: PathBuf,
    /// The storage format publications are written in.
    storage_version: String,
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
    pub fn open(settings: &WarehouseSettings) -> Result<Self, StoreError> {
        let conn = connection::open(&settings.path, &settings.storage_version)?;
        Ok(SessionStore {
            path: settings.path.clone(),
            storage_version: settings.storage_version.clone(),
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
        self.with(move |c| runs::watermark_with_filter(c, &key))
            .await
    }

    /// Records the stored watermark under the stream's current filter.
    pub async fn adopt_filter(&self, key: &StreamKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.with(move |c| runs::adopt_filter(c, &key)).await
    }

    /// Stores a window completely read and moves the watermark, in one
    /// transaction (see [`crate::model::next_watermark`] for where to).
    pub async fn commit_window(
        &self,
        key: &StreamKey,
        advance: Advance,
        batch: SessionBatch,
    ) -> Result<WindowCommit, StoreError> {
        let key = key.clone();
        self.with(move |c| commit::commit_window(c, &key, advance, &batch, Utc::now()))
            .await
    }

    /// Stores sessions read outside a window's commit (by id, or a chunk of
    /// a dense window) and deletes or marks the ids the API no longer has,
    /// in one transaction; the watermark stays.
    pub async fn commit_refresh(
        &self,
        key: &StreamKey,
        batch: SessionBatch,
        gone: Gone,
    ) -> Result<WindowCommit, StoreError> {
        let key = key.clone();
        self.with(move |c| commit::commit_refresh(c, &key, &batch, &gone, Utc::now()))
            .await
    }

    /// How many live sessions the stream holds in `window`, with its end
    /// excluded and included.
    pub async fn count_stored(
        &self,
        key: &StreamKey,
        filter: &StreamFilter,
        window: Window,
    ) -> Result<(u64, u64), StoreError> {
        let (key, filter) = (key.clone(), filter.clone());
        self.with(move |c| runs::count_stored(c, &key, &filter, window))
            .await
    }

    /// The ids of the stream's live sessions starting within the window.
    pub async fn stored_ids(
        &self,
        key: &StreamKey,
        filter: &StreamFilter,
        window: Window,
    ) -> Result<Vec<String>, StoreError> {
        let (key, filter) = (key.clone(), filter.clone());
        self.with(move |c| runs::stored_ids(c, &key, &filter, window))
            .await
    }

    /// Sessions stored as active that started before `before`.
    pub async fn stale_active_sessions(
        &self,
        key: &StreamKey,
        before: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let key = key.clone();
        self.with(move |c| runs::stale_active_sessions(c, &key, before))
            .await
    }

    pub async fn begin_run(
        &self,
        pass_id: &str,
        key: &StreamKey,
        trigger: &str,
    ) -> Result<i64, StoreError> {
        let (pass_id, key, trigger) = (pass_id.to_owned(), key.clone(), trigger.to_owned());
        self.with(move |c| runs::begin_run(c, &pass_id, &key, &trigger, Utc::now()))
            .await
    }

    pub async fn finish_run(&self, run_id: i64, record: RunRecord) -> Result<(), StoreError> {
        self.with(move |c| runs::finish_run(c, run_id, &record, Utc::now()))
            .await
    }

    /// Requests sent for `scope` (a bot id or `*`) in the last hour, by any
    /// process on this warehouse.
    pub async fn request_history(&self, scope: &str) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let scope = scope.to_owned();
        self.with(move |c| runs::request_history(c, &scope, Utc::now()))
            .await
    }

    /// Logs requests sent for `scope`; prunes the log to the last hour.
    pub async fn record_requests(
        &self,
        scope: &str,
        times: Vec<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let scope = scope.to_owned();
        self.with(move |c| runs::record_requests(c, &scope, &times, Utc::now()))
            .await
    }

    /// Rewrites `tags_wide` for the most common tag names.
    pub async fn refresh_tags_wide(&self) -> Result<(), StoreError> {
        self.with(|c| publish::refresh_tags_wide(c)).await
    }

    /// Publishes the read copy at `dest`; returns the sessions it holds.
    pub async fn publish_copy(&self, dest: &Path) -> Result<i64, StoreError> {
        let (dest, version) = (dest.to_owned(), self.storage_version.clone());
        self.with(move |c| publish::publish_copy(c, &dest, &version, Utc::now()))
            .await
    }

    /// Exports changed days (or, with `full`, every day) as Parquet under
    /// `dir`; returns the number of days written.
    pub async fn export_parquet(&self, dir: &Path, full: bool) -> Result<usize, StoreError> {
        let dir = dir.to_owned();
        self.with(move |c| parquet::export_parquet(c, &dir, full, Utc::now()))
            .await
    }

    /// The warehouse file's storage format, as DuckDB reports it (e.g.
    /// `v1.4.0+`).
    pub async fn storage_version(&self) -> Result<String, StoreError> {
        self.with(|c| status::storage_version(c)).await
    }

    pub async fn status(&self) -> Result<StatusReport, StoreError> {
        self.with(|c| status::status(c)).await
    }
}
