//! `SessionStore`: the async face of the warehouse's one connection. Each
//! method moves its work onto tokio's blocking pool and takes the
//! connection's mutex, so callers never block the runtime and DuckDB never
//! sees two threads at once. Publishing (the read copy, Parquet) is its
//! other face, in `publishing.rs`.

use super::analytics_counts::AnalyticsCounts;
use super::batched::{self, Batched, BeginRuns, Call, Queues};
use super::bots::{self, BotSource};
use super::commit::{self, Advance, Gone};
use super::error::StoreError;
use super::message_ids::MessageIds;
use super::messages;
use super::noted_days::NotedDays;
use super::privacy::StoredPrivacy;
use super::run_rows::FinishedRun;
use super::runs::{PassLog, StoredState};
use super::window_group::{self, QueuedWindow, WindowRecords};
use super::{
    RunRecord, StatusReport, WarehouseSettings, WindowCommit, connection, privacy, runs, status,
};
use crate::model::{Bot, MessageBatch, SessionBatch, StreamKey};
use crate::privacy::PrivacyRecord;
use chrono::{DateTime, Utc};
use duckdb::Connection;
use std::collections::HashMap;
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

    /// The stored watermark and the filter it was reached with (None: no
    /// watermark yet). Read with the other scopes' reads waiting at the
    /// same moment (`verify` asks for each stream's as it reaches it).
    pub async fn watermark_with_filter(
        &self,
        key: &StreamKey,
    ) -> Result<(Option<DateTime<Utc>>, Option<String>), StoreError> {
        let mut states = self.stream_states(vec![key.clone()]).await?;
        states.pop().ok_or(StoreError::Unexpected {
            doing: "reading a watermark",
            detail: "no state returned".into(),
        })
    }

    /// The stored watermark and filter of each of `keys`, in their order,
    /// in one read (see `runs::stream_states`).
    pub async fn stream_states(
        &self,
        keys: Vec<StreamKey>,
    ) -> Result<Vec<StoredState>, StoreError> {
        self.batched(&self.queues.states, keys, |c, _, calls| {
            batched::stream_states(c, calls);
        })
        .await
    }

    /// Records the stored watermark under the stream's current filter.
    pub async fn adopt_filter(&self, key: &StreamKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.with(move |c| runs::adopt_filter(c, &key)).await
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

    pub async fn begin_run(
        &self,
        pass_id: &str,
        key: &StreamKey,
        trigger: &str,
    ) -> Result<i64, StoreError> {
        // With the other scopes' beginnings waiting at the same moment.
        let ids = self
            .begin_runs(pass_id, std::slice::from_ref(key), trigger)
            .await?;
        ids.into_iter().next().ok_or(StoreError::Unexpected {
            doing: "recording a run's start",
            detail: "no run id returned".into(),
        })
    }

    /// Records the start of `keys`' runs at once; their ids in that order.
    pub async fn begin_runs(
        &self,
        pass_id: &str,
        keys: &[StreamKey],
        trigger: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let req = BeginRuns {
            pass_id: pass_id.to_owned(),
            keys: keys.to_vec(),
            trigger: trigger.to_owned(),
        };
        self.batched(&self.queues.begins, req, |c, _, calls| {
            batched::begin_runs(c, calls, Utc::now());
        })
        .await
    }

    /// Records the end of one run, now.
    pub async fn finish_run(&self, run_id: i64, record: RunRecord) -> Result<(), StoreError> {
        let run = FinishedRun {
            run_id,
            record,
            finished_at: Utc::now(),
        };
        self.finish_runs(vec![run]).await
    }

    /// Records the end of several runs at once, each with its own time.
    pub async fn finish_runs(&self, runs: Vec<FinishedRun>) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        self.batched(&self.queues.finishes, runs, |c, _, calls| {
            batched::finish_runs(c, calls);
        })
        .await
    }

    /// Requests sent for `scope` (a bot id or `*`) in the last hour, by any
    /// process on this warehouse.
    pub async fn request_history(&self, scope: &str) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let scope = scope.to_owned();
        let mut found = self.request_histories(vec![scope.clone()]).await?;
        Ok(found.remove(&scope).unwrap_or_default())
    }

    /// [`SessionStore::request_history`] of several scopes in one read.
    pub async fn request_histories(
        &self,
        scopes: Vec<String>,
    ) -> Result<HashMap<String, Vec<DateTime<Utc>>>, StoreError> {
        self.with(move |c| runs::request_histories(c, &scopes, Utc::now()))
            .await
    }

    /// Logs requests sent for `scope`; prunes the log to the last hour.
    pub async fn record_requests(
        &self,
        scope: &str,
        times: Vec<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let log = PassLog {
            requests: vec![(scope.to_owned(), times)],
            forget_bots: Vec::new(),
        };
        self.record_pass(log).await
    }

    /// Writes what a pass leaves in the bookkeeping (see [`PassLog`]) in
    /// one transaction.
    pub async fn record_pass(&self, log: PassLog) -> Result<(), StoreError> {
        self.with(move |c| runs::record_pass(c, &log, Utc::now()))
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
