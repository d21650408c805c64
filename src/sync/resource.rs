//! A resource is a kind of record the engine syncs by date window: how to
//! ask for one page of a span, how to parse a record, and how to store a
//! chunk or a completed window. The engine (`stream`, `fetch`,
//! `accumulator`, `store_pipe`) knows nothing else about what it moves, so a
//! second resource — conversation messages, partitioned by channel — plugs
//! in beside sessions (partitioned by containment type) by implementing this
//! trait, without a copy of the paging, chunking or commit logic.

use super::context::{ScopeApi, SyncContext};
use super::fetch::FetchError;
use crate::api::wire::{SessionsRequest, format_api_time, parse_or_reject};
use crate::api::{ApiError, CallStats, KoreApi, PageSize};
use crate::model::ids::IdSet;
use crate::model::{
    Batch, Deletes, Keyed, RejectedRecord, Session, StreamFilter, StreamKey, Window,
};
use crate::privacy::PrivacyRules;
use crate::store::{Advance, Gone, SessionStore, StoreError, WindowCommit};
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One page of a span, as the engine needs it: the raw records, and what
/// the server said about the rest.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<Box<RawValue>>,
    /// Records matching the span, if the server said.
    pub total: Option<u64>,
    pub more_available: Option<bool>,
}

/// What the engine needs of a kind of record. One value serves one stream.
pub trait Resource: Sync {
    type Record: Keyed + Send + 'static;

    /// The stream this value reads, for logs and reports.
    fn key(&self) -> &StreamKey;

    /// The scope's adaptive page size (shared by its streams).
    fn page_size(&self) -> &PageSize;

    /// Asks for one page: `limit` records of `span`, skipping `skip`.
    fn page(
        &self,
        span: Window,
        skip: u64,
        limit: u32,
    ) -> impl Future<Output = (Result<Page, ApiError>, CallStats)> + Send;

    /// Parses one record, or keeps it as rejected with the reason. The
    /// record's text becomes the parsed record's `raw` (no copy).
    fn parse(&self, raw: Box<RawValue>) -> Result<Self::Record, RejectedRecord>;

    /// Stores records of a window still being read (the watermark stays).
    fn commit_chunk(
        &self,
        batch: Batch<Self::Record>,
    ) -> impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static;

    /// Stores the rest of a window completely read and moves the watermark.
    fn commit_window(
        &self,
        window: Window,
        batch: Batch<Self::Record>,
    ) -> impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static;

    /// After a complete read of `window` that listed the records `listed`:
    /// removes what the stream stores in the window that the API no longer
    /// lists, and returns how many. Only a resource whose windows no count
    /// checks does anything here (LLM usage); the others are compared with
    /// the API's counts behind the watermark instead (`reconcile`).
    fn remove_unlisted(
        &self,
        window: Window,
        listed: &IdSet<String>,
        stats: &mut CallStats,
    ) -> impl Future<Output = Result<u64, FetchError>> + Send {
        let _ = (window, listed, stats);
        std::future::ready(Ok(0))
    }
}

/// The getSessions body for `limit` sessions of `span`, skipping `skip`,
/// with the stream's filter.
pub(super) fn window_request(
    span: Window,
    skip: u64,
    limit: u32,
    filter: &StreamFilter,
) -> SessionsRequest {
    SessionsRequest {
        date_from: Some(format_api_time(span.start)),
        date_to: Some(format_api_time(span.end)),
        skip: Some(skip),
        limit: Some(u64::from(limit)),
        ..SessionsRequest::default()
    }
    .with_filter(filter)
}

/// What a stream of any resource reads and stores with: the scope's API
/// view, the warehouse, the stream, and the pass's limits and rules.
#[derive(Clone, Copy)]
pub(super) struct StreamIo<'a> {
    pub api: &'a KoreApi,
    pub store: &'a SessionStore,
    pub key: &'a StreamKey,
    /// Where the stream's history begins (`sync.start`).
    pub history_start: DateTime<Utc>,
    pub max_budget_wait: Option<Duration>,
    pub cancel: &'a CancellationToken,
    /// Applied to every record before it is parsed (`[privacy]`,
    /// `messages.store_text`).
    pub privacy: &'a PrivacyRules,
}

impl<'a> StreamIo<'a> {
    /// What stream `key` of `scope` reads and stores with under `ctx`'s
    /// settings, waiting at most `max_budget_wait` for the budget (None:
    /// as long as it takes) and stopping on `cancel`.
    pub(super) fn new(
        (ctx, scope): (&'a SyncContext, &'a ScopeApi),
        key: &'a StreamKey,
        max_budget_wait: Option<Duration>,
        cancel: &'a CancellationToken,
    ) -> Self {
        StreamIo {
            api: &scope.api,
            store: &ctx.store,
            key,
            history_start: ctx.settings.plan.start,
            max_budget_wait,
            cancel,
            privacy: &ctx.settings.privacy,
        }
    }
}

/// Sessions of one scope and one containment type (`getSessions`).
pub(super) struct Sessions<'a> {
    pub io: StreamIo<'a>,
    pub filter: &'a StreamFilter,
    /// What a session the API no longer has means (`sync.deletes`).
    pub deletes: Deletes,
}

impl Sessions<'_> {
    /// The API's `total` for `window` (the stream's filter applied), by one
    /// request for a single record; None when the server does not say.
    pub(super) async fn count(&self, window: Window) -> (Result<Option<u64>, ApiError>, CallStats) {
        let (page, stats) = self.page(window, 0, 1).await;
        (page.map(|p| p.total), stats)
    }
}

impl Resource for Sessions<'_> {
    type Record = Session;

    fn key(&self) -> &StreamKey {
        self.io.key
    }

    fn page_size(&self) -> &PageSize {
        self.io.api.page_size()
    }

    async fn page(
        &self,
        span: Window,
        skip: u64,
        limit: u32,
    ) -> (Result<Page, ApiError>, CallStats) {
        let body = window_request(span, skip, limit, self.filter);
        let (result, stats) = self
            .io
            .api
            .get_sessions(
                self.io.key.containment_type(),
                &body,
                self.io.max_budget_wait,
                self.io.cancel,
            )
            .await;
        let page = result.map(|r| Page {
            records: r.sessions,
            total: r.total,
            more_available: r.more_available,
        });
        (page, stats)
    }

    fn parse(&self, raw: Box<RawValue>) -> Result<Session, RejectedRecord> {
        parse_or_reject(raw, self.io.key.containment_type(), self.io.privacy)
    }

    fn commit_chunk(
        &self,
        batch: Batch<Session>,
    ) -> impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static {
        let (store, key) = (self.io.store.clone(), self.io.key.clone());
        async move { store.commit_refresh(&key, batch, Gone::none()).await }
    }

    fn commit_window(
        &self,
        window: Window,
        batch: Batch<Session>,
    ) -> impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static {
        let (store, key) = (self.io.store.clone(), self.io.key.clone());
        let advance = Advance {
            window,
            history_start: self.io.history_start,
        };
        async move { store.commit_window(&key, advance, batch).await }
    }
}
