//! GenAI and LLM usage logs (`getLLMUsageLogs`) as a resource of the
//! engine: one stream per bot, read by spans of whole UTC days (the API
//! takes plain dates, at most 90 days a request), committed oldest first
//! with the stream's watermark like the others.
//!
//! The answer is a bare array with no count and no `moreAvailable`, and
//! whether a short page always ends a span is not documented (a server may
//! clamp `limit`): a span is paged until a page comes back empty, one
//! request more than needed, never a record fewer. Whether `dateTo` is
//! inclusive is not documented either: a request names every day the window
//! touches and the day after its end, so either way nothing is missed (the
//! records of that extra day are stored early, and read again by the next
//! window: they keep their ids).

use super::context::{ScopeApi, SyncContext};
use super::fetch::FetchError;
use super::resource::{Page, Resource, StreamIo};
use crate::api::wire::{LlmUsageRequest, parse_llm_usage_or_reject};
use crate::api::{ApiError, CallStats, PageSize};
use crate::model::ids::IdSet;
use crate::model::{
    ACCOUNT_BOT_ID, LlmUsage, LlmUsageBatch, Partition, RejectedRecord, StreamKey, Window,
};
use crate::store::{Advance, StoreError, WindowCommit};
use chrono::{NaiveDate, TimeDelta};
use serde_json::value::RawValue;
use std::future::Future;

/// The longest window, in days: a request names its first day and the day
/// after its last, which must lie at most 90 days apart.
pub(super) const LLM_MAX_DAYS: i64 = 88;

/// Whether a scope's LLM usage logs are synced: a bot with analytics on
/// (by its table or `[analytics]`) and `analytics.llm_usage`.
pub(super) fn syncs_llm_usage(ctx: &SyncContext, scope: &ScopeApi) -> bool {
    super::analytics::syncs_analytics(ctx, scope) && ctx.settings.analytics.llm_usage
}

/// A bot's LLM usage stream.
pub(super) fn llm_usage_key(bot_id: &str) -> StreamKey {
    debug_assert_ne!(bot_id, ACCOUNT_BOT_ID);
    StreamKey {
        bot_id: bot_id.to_owned(),
        partition: Partition::LlmUsage,
        filter: String::new(),
    }
}

/// The days a request for `window` names: the first day it touches, and
/// the day after the last (see the module's note on `dateTo`).
pub(super) fn request_days(window: Window) -> (NaiveDate, NaiveDate) {
    let last = (window.end - TimeDelta::milliseconds(1)).max(window.start);
    (
        window.start.date_naive(),
        last.date_naive() + TimeDelta::days(1),
    )
}

/// The LLM usage logs of one bot.
pub(super) struct LlmUsageStream<'a> {
    pub io: StreamIo<'a>,
    /// Fixed (base and max equal): a short page says nothing here.
    pub pages: &'a PageSize,
}

impl Resource for LlmUsageStream<'_> {
    type Record = LlmUsage;

    fn key(&self) -> &StreamKey {
        self.io.key
    }

    fn page_size(&self) -> &PageSize {
        self.pages
    }

    async fn page(
        &self,
        span: Window,
        skip: u64,
        limit: u32,
    ) -> (Result<Page, ApiError>, CallStats) {
        let (from, to) = request_days(span);
        let body = LlmUsageRequest {
            date_from: from.to_string(),
            date_to: to.to_string(),
            limit: limit.to_string(),
            skip: skip.to_string(),
        };
        let (result, stats) = self
            .io
            .api
            .get_llm_usage(&body, self.io.max_budget_wait, self.io.cancel)
            .await;
        // Older servers have no such endpoint: say what to do about it.
        let result = result.map_err(|e| match e {
            ApiError::Rejected {
                status: 404,
                message,
            } => ApiError::Rejected {
                status: 404,
                message: format!(
                    "{message} — this server has no getLLMUsageLogs (/api/1.1/); \
                     set analytics.llm_usage = false if your Kore.ai version lacks it"
                ),
            },
            e => e,
        });
        let page = result.map(|records| Page {
            // Paged until empty (see the module's note).
            more_available: Some(!records.is_empty()),
            records,
            total: None,
        });
        (page, stats)
    }

    fn parse(&self, raw: Box<RawValue>) -> Result<LlmUsage, RejectedRecord> {
        parse_llm_usage_or_reject(raw, &self.io.key.bot_id, self.io.privacy)
    }

    fn commit_chunk(
        &self,
        batch: LlmUsageBatch,
    ) -> impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static {
        let (store, key) = (self.io.store.clone(), self.io.key.clone());
        async move { store.commit_llm_usage(&key, batch, None).await }
    }

    fn commit_window(
        &self,
        window: Window,
        batch: LlmUsageBatch,
    ) -> impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static {
        let (store, key) = (self.io.store.clone(), self.io.key.clone());
        let advance = Advance {
            window,
            history_start: self.io.history_start,
        };
        async move { store.commit_llm_usage(&key, batch, Some(advance)).await }
    }

    async fn remove_unlisted(
        &self,
        window: Window,
        listed: &IdSet<String>,
        stats: &mut CallStats,
    ) -> Result<u64, FetchError> {
        super::llm_check::remove_erased(self, window, listed, stats).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// `plan::whole_days`, as LLM streams plan: windows from midnight, at
    /// most `LLM_MAX_DAYS` long, whose requests stay within 90 days.
    #[test]
    fn windows_begin_at_midnight_and_their_requests_span_at_most_90_days() {
        let settings = super::super::plan::PlanSettings {
            start: at("2025-01-01T00:00:00Z"),
            window: TimeDelta::days(6),
            lag: TimeDelta::minutes(5),
            lookback: TimeDelta::hours(1),
        };
        let now = at("2025-07-01T12:00:00Z");
        for watermark in [
            None,
            Some(at("2025-03-10T15:30:00Z")),
            Some(at("2025-07-01T11:00:00Z")),
        ] {
            let plan = super::super::plan::plan_pass(watermark, now, &settings);
            let days = super::super::plan::whole_days(plan.clone(), LLM_MAX_DAYS);
            assert_eq!(days.end, plan.end);
            assert!(days.begin <= plan.begin && plan.begin - days.begin < TimeDelta::days(1));
            assert_eq!(days.windows.first().unwrap().start, days.begin);
            for pair in days.windows.windows(2) {
                assert_eq!(pair[0].end, pair[1].start, "contiguous");
            }
            for w in &days.windows {
                assert_eq!(w.start.time(), chrono::NaiveTime::MIN, "{w:?}");
                let (from, to) = request_days(*w);
                assert!(to - from <= TimeDelta::days(90), "{w:?}");
            }
        }
    }

    #[test]
    fn a_request_names_every_day_its_window_touches_and_the_next() {
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        let cases = [
            // (start, end, dateFrom, dateTo)
            (
                "2026-01-01T10:00:00Z",
                "2026-01-01T11:00:00Z",
                "2026-01-01",
                "2026-01-02",
            ),
            (
                "2026-01-01T00:00:00Z",
                "2026-01-03T00:00:00Z",
                "2026-01-01",
                "2026-01-03",
            ),
            (
                "2026-01-01T23:59:59Z",
                "2026-01-02T00:00:01Z",
                "2026-01-01",
                "2026-01-03",
            ),
        ];
        for (start, end, from, to) in cases {
            let w = Window {
                start: at(start),
                end: at(end),
            };
            assert_eq!(request_days(w), (day(from), day(to)), "{start} {end}");
        }
    }
}
