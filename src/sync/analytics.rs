//! NLU analytics (`getAnalytics`) as a third resource of the engine: one
//! stream per bot and type, read by date window on the record's
//! `timestamp`, paged by what came back, and committed oldest first with
//! the stream's watermark, exactly as sessions and messages are.
//!
//! Channels: the API reads `rtm` alone unless a request names its
//! channels, so every request names the channels of the bot's stored
//! sessions plus `messages.channels`, in one array (the same channels its
//! message streams read).

use super::context::{ScopeApi, SyncContext};
use super::resource::{Page, Resource, StreamIo};
use crate::api::wire::{
    AnalyticsFilters, AnalyticsRequest, format_api_time, parse_analytics_or_reject,
};
use crate::api::{ApiError, CallStats, PageSize};
use crate::model::{
    ACCOUNT_BOT_ID, AnalyticsBatch, AnalyticsEvent, AnalyticsType, Partition, RejectedRecord,
    StreamKey, Window,
};
use crate::store::{Advance, StoreError, WindowCommit};
use serde_json::value::RawValue;
use std::future::Future;

/// Whether a scope's analytics are synced: a bot (getAnalytics has no
/// account-wide form) with analytics on, by its table or `[analytics]`.
pub(super) fn syncs_analytics(ctx: &SyncContext, scope: &ScopeApi) -> bool {
    let scope = &scope.scope;
    scope.bot_id != ACCOUNT_BOT_ID && scope.analytics.unwrap_or(ctx.settings.analytics.enabled)
}

/// A bot's analytics streams, one per configured type, in the order they
/// run: the k-th bot of the config begins with the k-th type (wrapping
/// around). A fleet's bots are paced alike from the same instant, so each
/// finishes its windows when the others do and hands the writer its
/// records in the same moment; in one order, every bot would read its
/// largest type (`successintent`: 18 times `failtask`'s bytes in the
/// fleet simulator) at once, and the fleet's wave of it would wait in
/// memory together (issue 24, 300 bots: peak RSS 178,140–186,048 KB with
/// the order turned against 181,012–202,852 KB, for 0.6 s more CPU in a
/// 29 s pass; BENCHMARKS.md).
pub(super) fn analytics_keys(ctx: &SyncContext, bot_id: &str) -> Vec<StreamKey> {
    let mut keys: Vec<StreamKey> = ctx
        .settings
        .analytics
        .types
        .iter()
        .map(|&t| StreamKey {
            bot_id: bot_id.to_owned(),
            partition: Partition::Analytics(t),
            filter: String::new(),
        })
        .collect();
    if !keys.is_empty() {
        let turn = ctx.scopes.iter().position(|s| s.scope.bot_id == bot_id);
        let n = keys.len();
        keys.rotate_left(turn.unwrap_or(0) % n);
    }
    keys
}

/// The channels every analytics request of a bot names: those its stored
/// sessions use and `messages.channels`, sorted; `rtm` when there are none
/// yet (what the API reads by default).
pub(super) async fn analytics_channels(
    ctx: &SyncContext,
    bot_id: &str,
) -> Result<Vec<String>, StoreError> {
    let mut channels = ctx.store.session_channels(bot_id).await?;
    channels.extend(ctx.settings.messages.channels.iter().cloned());
    channels.sort();
    channels.dedup();
    if channels.is_empty() {
        channels.push("rtm".to_owned());
    }
    Ok(channels)
}

/// The analytics of one bot and one type.
pub(super) struct Analytics<'a> {
    pub io: StreamIo<'a>,
    pub pages: &'a PageSize,
    pub kind: AnalyticsType,
    /// Named in every request (see [`analytics_channels`]).
    pub channels: &'a [String],
}

impl Analytics<'_> {
    /// The request for `limit` records of `span`, skipping `skip`.
    pub(super) fn request(&self, span: Window, skip: u64, limit: u32) -> AnalyticsRequest {
        AnalyticsRequest {
            kind: self.kind.as_str().to_owned(),
            filters: AnalyticsFilters {
                from: format_api_time(span.start),
                to: format_api_time(span.end),
                channel: self.channels.to_vec(),
            },
            limit: u64::from(limit),
            skip,
        }
    }
}

impl Resource for Analytics<'_> {
    type Record = AnalyticsEvent;

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
        let body = self.request(span, skip, limit);
        let (result, stats) = self
            .io
            .api
            .get_analytics(&body, self.io.max_budget_wait, self.io.cancel)
            .await;
        let page = result.map(|r| Page {
            records: r.result,
            total: r.total_count,
            more_available: r.more_available,
        });
        (page, stats)
    }

    fn parse(&self, raw: Box<RawValue>) -> Result<AnalyticsEvent, RejectedRecord> {
        parse_analytics_or_reject(raw, (self.kind, &self.io.key.bot_id), self.io.privacy)
    }

    fn commit_chunk(
        &self,
        batch: AnalyticsBatch,
    ) -> impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static {
        let (store, key) = (self.io.store.clone(), self.io.key.clone());
        async move { store.commit_analytics(&key, batch, None).await }
    }

    fn commit_window(
        &self,
        window: Window,
        batch: AnalyticsBatch,
    ) -> impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static {
        let (store, key) = (self.io.store.clone(), self.io.key.clone());
        let advance = Advance {
            window,
            history_start: self.io.history_start,
        };
        async move { store.commit_analytics(&key, batch, Some(advance)).await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_its_type_channels_and_paging() {
        let body = AnalyticsRequest {
            kind: AnalyticsType::FailIntent.as_str().into(),
            filters: AnalyticsFilters {
                from: "2026-01-01T00:00:00.000Z".into(),
                to: "2026-01-02T00:00:00.000Z".into(),
                channel: vec!["msteams".into(), "rtm".into()],
            },
            limit: 100,
            skip: 200,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({
                "type": "failintent",
                "filters": {"from": "2026-01-01T00:00:00.000Z", "to": "2026-01-02T00:00:00.000Z",
                            "channel": ["msteams", "rtm"]},
                "limit": 100, "skip": 200
            })
        );
    }
}
