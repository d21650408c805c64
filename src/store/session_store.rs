//! `SessionStore`: the async face of the warehouse's one connection. Each
//! method waits (as a task) for its turn, then moves its work onto tokio's
//! blocking pool and takes the connection's mutex, so callers never block
//! the runtime and DuckDB never sees two threads at once. Publishing (the
//! read copy, Parquet) is its other face, in `publishing.rs`; the
//! bookkeeping of runs, watermarks and requests is in `bookkeeping.rs`.

use super::analytics_counts::AnalyticsCounts;
use super::batched::{Batched, Call, Queues};
use super::bots::{self, BotSource};
use super::commit::{self, Advance, Gone};
use super::error::StoreError;
use super::message_ids::MessageIds;
use super::messages;
use super::noted_days::NotedDays;
use super::privacy::StoredPrivacy;
use super::window_group::{self, QueuedWindow, WindowRecords};
use super::{StatusReport, WarehouseSettings, WindowCommit, connection, privacy, status};
use crate::model::{Bot, MessageBatch, SessionBatch, StreamKey};
use crate::privacy::PrivacyRecord;
use chrono::{DateTime, Utc};
use duckdb::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// The warehouse, open for writing. Cheap to clone: clones share the one
/// connection.
#[derive(Clone)]
pub struct SessionStore {
    pub(super) path: PathBuf,
    /// The storage format publications are written in.
    pub(super) storage_version: String,
    /// Permissions of the read copy and Parquet files.
    pub(super) published_mode: u32,
    writer: Arc<Mutex<Writer>>,
    /// One permit: held by the call that has the connection or is next to
    /// take it. Waiting for it is async, so calls waiting for the writer
    /// wait as tasks, not as threads of tokio's blocking pool — a fleet's
    /// hundreds of concurrent calls otherwise held hundreds of threads,
    /// each with its stack and its allocator arena, blocked on `writer`.
    gate: Arc<Semaphore>,
    /// Days known noted for the Parquet export (see `noted_days`).
    pub(super) noted_days: NotedDays,
    /// Calls waiting to be answered together (see `batched`).
    pub(super) queues: Queues,
}

/// The warehouse's one connection and what it alone knows of what it
/// wrote. Store functions take it as a [`Connection`] (it dereferences to
/// one); the commits of messages also use what it knows.
pub(super) struct Writer {
    pub(super) conn: Connection,
    /// Message ids it may have stored (see `message_ids`): valid only for
    /// this connection, so it lives in the same struct.
    pub(super) message_ids: MessageIds,
    /// Analytics counts kept for the streams of a bot that follow (see
    /// `analytics_counts`): like `message_ids`, true only of this
    /// connection's writes.
    pub(super) analytics_counts: AnalyticsCounts,
}

impl Writer {
    pub(super) fn new(conn: Connection) -> Writer {
        Writer {
            conn,
            message_ids: MessageIds::default(),
            analytics_counts: AnalyticsCounts::default(),
        }
    }
}

impl std::ops::Deref for Writer {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
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
        let conn = connection::open(settings)?;
        Ok(SessionStore {
            path: settings.path.clone(),
            storage_version: settings.storage_version.clone(),
            published_mode: settings.modes.published,
            writer: Arc::new(Mutex::new(Writer::new(conn))),
            gate: Arc::new(Semaphore::new(1)),
            noted_days: NotedDays::default(),
            queues: Queues::default(),
        })
    }

    /// [`SessionStore::open`] on tokio's blocking pool, for async callers.
    pub async fn open_async(settings: &WarehouseSettings) -> Result<Self, StoreError> {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || SessionStore::open(&settings))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = self.writer.clone();
        // The permit goes with the work and is released when it ends, even
        // if this caller stops waiting meanwhile.
        let permit = self
            .gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut guard = writer
                .lock()
                .map_err(|e| StoreError::Worker(e.to_string()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Queues a call of a kind many scopes make at once; the caller who
    /// finds no taker waiting takes the connection and answers every
    /// waiting call of that kind with `answer` (see `batched`).
    pub(super) async fn batched<Req, Resp>(
        &self,
        queue: &Batched<Req, Resp>,
        req: Req,
        answer: fn(&mut Writer, &NotedDays, Vec<Call<Req, Resp>>),
    ) -> Result<Resp, StoreError>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let (answered, taker) = queue.push(req);
        if taker {
            let (noted, waiting) = (self.noted_days.clone(), queue.clone());
            let taken = self.with(move |c| {
                answer(c, &noted, waiting.take());
                Ok(())
            });
            if let Err(e) = taken.await {
                // The connection could not be had: every waiting call is
                // told, none waits for a taker that will not come.
                queue.fail_waiting(&e);
                return Err(e);
            }
        }
        answered
            .await
            .map_err(|_| StoreError::Worker("a batched call went unanswered".into()))?
    }

    /// Stores a window completely read and moves the watermark, in one
    /// transaction (see [`crate::model::next_watermark`] for where to)
    /// shared with the windows of other streams ready at the same time
    /// (see `window_group`).
    pub async fn commit_window(
        &self,
        key: &StreamKey,
        advance: Advance,
        batch: SessionBatch,
    ) -> Result<WindowCommit, StoreError> {
        self.commit_in_group(key, advance, WindowRecords::Sessions(batch))
            .await
    }

    /// Queues a window completely read to commit with the others waiting
    /// (see `window_group`).
    pub(super) async fn commit_in_group(
        &self,
        key: &StreamKey,
        advance: Advance,
        records: WindowRecords,
    ) -> Result<WindowCommit, StoreError> {
        let window = QueuedWindow {
            key: key.clone(),
            advance,
            records,
        };
        self.batched(&self.queues.windows, window, |c, noted, calls| {
            window_group::commit_waiting(c, noted, calls, Utc::now());
        })
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
        let noted = self.noted_days.clone();
        self.with(move |c| commit::commit_refresh((c, &noted), &key, &batch, &gone, Utc::now()))
            .await
    }

    /// Stores messages of a window still being read (`advance` None), or
    /// the rest of a window completely read with its watermark move.
    pub async fn commit_messages(
        &self,
        key: &StreamKey,
        batch: MessageBatch,
        advance: Option<Advance>,
    ) -> Result<WindowCommit, StoreError> {
        let Some(advance) = advance else {
            let (key, noted) = (key.clone(), self.noted_days.clone());
            return self
                .with(move |c| messages::commit_chunk((c, &noted), &key, &batch, Utc::now()))
                .await;
        };
        // A window completely read commits with the others waiting.
        self.commit_in_group(key, advance, WindowRecords::Messages(batch))
            .await
    }

    /// Forgets sessions seen closing whose messages were read again.
    pub async fn forget_closed(&self, ids: Vec<String>) -> Result<(), StoreError> {
        self.with(move |c| messages::forget_closed(c, &ids)).await
    }

    /// One transcript to show: (session id, containment type, text).
    pub async fn sample_transcript(&self) -> Result<Option<(String, String, String)>, StoreError> {
        self.with(|c| messages::sample_transcript(c)).await
    }

    /// Stores bot names; see [`BotSource`] for which wins.
    pub async fn store_bots(&self, bots: Vec<Bot>, source: BotSource) -> Result<usize, StoreError> {
        self.with(move |c| bots::store_bots(c, &bots, source, Utc::now()))
            .await
    }

    /// When the Admin Console's bot list was last stored (None: never).
    pub async fn api_bots_synced_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with(|c| bots::api_bots_synced_at(c)).await
    }

    /// The warehouse file's storage format, as DuckDB reports it (e.g.
    /// `v1.4.0+`).
    pub async fn storage_version(&self) -> Result<String, StoreError> {
        self.with(|c| status::storage_version(c)).await
    }

    /// Fails unless the stored rows were written with `wanted` (which is
    /// recorded if the warehouse has no record yet), saying what to do.
    pub async fn check_privacy(&self, wanted: &PrivacyRecord) -> Result<(), StoreError> {
        let (path, wanted) = (self.path.clone(), wanted.clone());
        self.with(move |c| privacy::check(c, &path, &wanted, Utc::now()))
            .await
    }

    /// The privacy settings the stored rows were written with (None: not
    /// recorded yet).
    pub async fn privacy_record(&self) -> Result<Option<StoredPrivacy>, StoreError> {
        self.with(|c| privacy::stored(c)).await
    }

    pub async fn status(&self) -> Result<StatusReport, StoreError> {
        self.with(|c| status::status(c)).await
    }
}
