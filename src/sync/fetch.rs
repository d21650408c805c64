//! Paging a window of any [`Resource`]: `skip` advances by the records each
//! page actually holds; a span whose pages do not add up is paged once
//! more; a window the server will not page deep enough is split in halves;
//! a dense window is stored in chunks as its pages arrive.
//!
//! Architecture invariant: a window is done only when a page says
//! `moreAvailable = false` or comes back empty; only then may its commit
//! move the watermark. Chunks stored before that leave the watermark where
//! it is, so a window that fails half-read is read again by the next pass.

use super::accumulator::{Accumulator, consistent};
use super::report::StreamReport;
use super::resource::Resource;
use super::store_pipe::StorePipe;
use crate::api::wire::format_api_time;
use crate::api::{ApiError, CallStats};
use crate::model::ids::IdSet;
use crate::model::{Batch, Window};
use crate::store::StoreError;
use chrono::TimeDelta;
use tracing::{info, warn};

/// A safety net against a server that never stops saying `moreAvailable`.
pub(super) const MAX_PAGES_PER_WINDOW: u32 = 100_000;

/// The shortest span a window is split down to when the server refuses to
/// page deep enough.
pub const MIN_SPLIT_SPAN: TimeDelta = TimeDelta::minutes(1);

/// A window holding more records than this is stored in chunks as its pages
/// arrive; its watermark still moves only when the whole window is read.
pub const CHUNK_SESSIONS: usize = 5_000;

/// Why fetching stopped: the API (the stream stops, the pass goes on) or the
/// warehouse (the pass fails).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Api(ApiError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<ApiError> for FetchError {
    fn from(e: ApiError) -> Self {
        FetchError::Api(e)
    }
}

impl From<StoreError> for FetchError {
    fn from(e: StoreError) -> Self {
        FetchError::Store(e)
    }
}

/// What reading a window found: what is left to store with its commit (a
/// dense window's earlier chunks are stored already), and the id of every
/// record the window listed (or the raw text of a record without one).
pub(super) struct Fetched<R> {
    pub batch: Batch<R>,
    pub ids: IdSet<String>,
}

/// What paging one span found.
enum SpanResult<R> {
    Done {
        acc: Accumulator<R>,
        /// `total` as the first and as the last page reported it.
        totals: (Option<u64>, Option<u64>),
        keys: IdSet<String>,
    },
    /// The server refused a deep `skip` (or `offset`).
    SkipRefused { skip: u64, message: String },
}

/// How one stream fetches, and the store jobs it has in flight.
pub(super) struct Fetch<'a, R> {
    resource: &'a R,
    /// The store job in flight (a chunk or a window commit) and those that
    /// finished, not yet counted in the stream's report.
    pub(super) pipe: StorePipe,
}

impl<'a, R: Resource> Fetch<'a, R> {
    pub(super) fn new(resource: &'a R) -> Self {
        Fetch {
            resource,
            pipe: StorePipe::default(),
        }
    }

    /// Reads one window completely. If the server refuses to page as deep as
    /// the window needs, the window is split in halves, recursively, down to
    /// [`MIN_SPLIT_SPAN`].
    pub(super) async fn window(
        &self,
        window: Window,
        stats: &mut CallStats,
    ) -> Result<Fetched<R::Record>, FetchError> {
        let mut acc = Accumulator::default();
        let mut ids = IdSet::default();
        let mut todo = vec![window];
        while let Some(span) = todo.pop() {
            match self.span_consistent(span, stats).await? {
                Ok((found, keys)) => {
                    acc.merge(found);
                    // Most windows are one span: take its set as it is.
                    if ids.is_empty() {
                        ids = keys;
                    } else {
                        ids.extend(keys);
                    }
                }
                Err((skip, message)) => {
                    let (older, newer) = self.split(span, skip, message)?;
                    // Oldest half first: `pop` takes the last pushed.
                    todo.push(newer);
                    todo.push(older);
                }
            }
        }
        Ok(Fetched {
            batch: acc.into_batch(),
            ids,
        })
    }

    /// A repair behind the watermark: reads `window` completely and stores
    /// what it lists (the watermark never moves back, see
    /// `model::next_watermark`). Returns the ids listed and how many
    /// records were written (new or changed).
    pub(super) async fn window_stored(
        &self,
        window: Window,
        stats: &mut CallStats,
    ) -> Result<(IdSet<String>, u64), FetchError> {
        let fetched = self.window(window, stats).await;
        self.pipe.settle().await?;
        let fetched = fetched?;
        let n_rejected = fetched.batch.rejected.len();
        let commit = self.resource.commit_window(window, fetched.batch);
        self.pipe.start_windows((1, n_rejected), commit);
        self.pipe.settle().await?;
        let mut tally = StreamReport::new(self.resource.key().clone(), 0, None);
        self.pipe.count(&mut tally, None);
        Ok((fetched.ids, tally.sessions_written))
    }

    /// Halves a span the server would not page past `skip` in, on a whole
    /// millisecond; fails when the span is already too short to split.
    fn split(
        &self,
        span: Window,
        skip: u64,
        message: String,
    ) -> Result<(Window, Window), ApiError> {
        if span.span() < MIN_SPLIT_SPAN * 2 {
            return Err(ApiError::CannotSplit {
                message,
                skip,
                span: span.span().to_std().unwrap_or_default(),
                from: format_api_time(span.start),
            });
        }
        let mid = span.start + (span.end - span.start) / 2;
        let mid = mid - TimeDelta::nanoseconds(i64::from(mid.timestamp_subsec_nanos() % 1_000_000));
        info!(stream = %self.resource.key(), skip, message = %message,
              "the API refused to page deeper; splitting the window in halves");
        Ok((
            Window {
                start: span.start,
                end: mid,
            },
            Window {
                start: mid,
                end: span.end,
            },
        ))
    }

    /// Pages a span; if its distinct ids disagree with `total`, pages it once
    /// more and keeps the second reading if that one agrees (else both).
    async fn span_consistent(
        &self,
        span: Window,
        stats: &mut CallStats,
    ) -> Result<Result<(Accumulator<R::Record>, IdSet<String>), (u64, String)>, FetchError> {
        let (acc, totals, keys) = match self.span(span, stats).await? {
            SpanResult::Done { acc, totals, keys } => (acc, totals, keys),
            SpanResult::SkipRefused { skip, message } => return Ok(Err((skip, message))),
        };
        if consistent(totals, keys.len()) {
            return Ok(Ok((acc, keys)));
        }
        let (again, totals2, keys2) = match self.span(span, stats).await? {
            SpanResult::Done { acc, totals, keys } => (acc, totals, keys),
            SpanResult::SkipRefused { skip, message } => return Ok(Err((skip, message))),
        };
        let appeared: Vec<&String> = keys2.difference(&keys).collect();
        let vanished: Vec<&String> = keys.difference(&keys2).collect();
        warn!(
            stream = %self.resource.key(),
            window_start = %span.start, window_end = %span.end,
            first_total = ?totals.0, last_total = ?totals.1, first_distinct = keys.len(),
            n_appeared = appeared.len(), n_vanished = vanished.len(),
            appeared = ?appeared.iter().take(10).collect::<Vec<_>>(),
            vanished = ?vanished.iter().take(10).collect::<Vec<_>>(),
            "records changed while the window was paged; paged it again"
        );
        if consistent(totals2, keys2.len()) {
            Ok(Ok((again, keys2)))
        } else {
            let mut both = acc;
            both.merge(again);
            let all = keys.union(&keys2).cloned().collect();
            Ok(Ok((both, all)))
        }
    }

    /// Pages a span with `skip`, advancing by the number of records each page
    /// actually holds, until `moreAvailable` is false or a page is empty.
    async fn span(
        &self,
        span: Window,
        stats: &mut CallStats,
    ) -> Result<SpanResult<R::Record>, FetchError> {
        let (res, bot_id) = (self.resource, self.resource.key().bot_id.as_str());
        let mut acc = Accumulator::default();
        let mut keys = IdSet::default();
        let mut first_total = None;
        let mut last_total = None;
        let mut skip: u64 = 0;
        let pages = res.page_size();
        for _ in 0..MAX_PAGES_PER_WINDOW {
            let asked = pages.ask();
            let (result, call) = res.page(span, skip, asked).await;
            *stats += call;
            let page = match result {
                Ok(p) => p,
                Err(ApiError::Rejected {
                    status: 400,
                    message,
                }) if skip > 0 && mentions_skip(&message) => {
                    return Ok(SpanResult::SkipRefused { skip, message });
                }
                // Too large a page: the same page again, at api.page_size.
                Err(ApiError::Rejected {
                    status: 400,
                    message,
                }) if pages.refused(bot_id, asked, &message) => continue,
                Err(e) => return Err(e.into()),
            };
            pages.observe(bot_id, asked, page.records.len(), page.more_available);
            if skip == 0 {
                first_total = page.total;
            }
            last_total = page.total.or(last_total);
            let n = page.records.len();
            keys.extend(acc.take(page.records, |raw| res.parse(raw), res.key()));
            if acc.len() >= CHUNK_SESSIONS {
                self.flush(&mut acc).await?;
            }
            skip += n as u64;
            if n == 0 || page.more_available != Some(true) {
                return Ok(SpanResult::Done {
                    acc,
                    totals: (first_total, last_total),
                    keys,
                });
            }
        }
        Err(FetchError::Api(ApiError::EndlessPaging {
            pages: MAX_PAGES_PER_WINDOW,
        }))
    }

    /// Stores what a large window has read so far, without moving the
    /// watermark (that waits for the window's end), so memory stays bounded
    /// by [`CHUNK_SESSIONS`] however dense the window: the chunk is stored
    /// before the next page is asked for, so a stream never holds a chunk
    /// being stored and a page being read at once (a page of messages is
    /// up to 10,000 of them; issue 23). At the API's pace of a request a
    /// second the store keeps up anyway.
    async fn flush(&self, acc: &mut Accumulator<R::Record>) -> Result<(), StoreError> {
        let chunk = std::mem::take(acc).into_batch();
        self.pipe.settle().await?;
        self.pipe
            .start_chunk(chunk.rejected.len(), self.resource.commit_chunk(chunk));
        self.pipe.settle().await
    }
}

/// Whether a 400's message is about `skip`/`offset` (a server refusing to
/// page deeper) rather than something else.
fn mentions_skip(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("skip") || m.contains("offset")
}

#[cfg(test)]
mod tests {
    use super::mentions_skip;

    #[test]
    fn a_refused_skip_is_recognised_by_its_message() {
        assert!(mentions_skip("skip must be below 10000"));
        assert!(mentions_skip("Invalid OFFSET"));
        assert!(!mentions_skip("limit too large"));
    }
}
