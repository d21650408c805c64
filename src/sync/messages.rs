//! Conversation messages as a second resource of the engine: one stream per
//! bot and channel, read by date window on `createdOn` with getMessagesV2
//! (up to 10,000 messages a page), parsed, and committed window by window
//! with the stream's watermark, exactly as sessions are (`stream`, `fetch`,
//! `store_pipe` serve both).
//!
//! Channels: the API's `channelType` defaults to `rtm`, so every request
//! names its channel, and a bot's message streams are the channels its
//! stored sessions use plus `messages.channels`.

use super::resource::{Page, Resource, StreamIo};
use crate::api::wire::{MessagesRequest, format_api_time, parse_message_or_reject};
use crate::api::{ApiError, CallStats, PageSize};
use crate::model::{Batch, Message, RejectedRecord, StreamKey, Window};
use crate::store::{Advance, StoreError, WindowCommit};
use serde_json::value::RawValue;
use std::future::Future;
use std::time::Duration;

/// Whether a message request may take one more of the hour's `per_hour`
/// requests when `used` are taken: a quarter stays for sessions.
fn messages_may_use(used: u32, per_hour: u32) -> bool {
    used < per_hour - per_hour / 4
}

/// The messages of one bot and one channel.
pub(super) struct Messages<'a> {
    pub io: StreamIo<'a>,
    /// The scope's page size for messages (learned apart from sessions').
    pub pages: &'a PageSize,
    pub channel: &'a str,
}

impl Resource for Messages<'_> {
    type Record = Message;

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
        // Sessions come first: messages leave the bot's last quarter of the
        // hourly budget to them, so a long history of messages never starves
        // the sessions' next passes. The stream stops as `budget_spent` and
        // the next pass goes on.
        if let Some((used, per_hour)) = self.io.api.budget().used_in_last_hour()
            && !messages_may_use(used, per_hour)
        {
            let wait = Duration::from_secs(60);
            return (
                Err(ApiError::BudgetExhausted { wait }),
                CallStats::default(),
            );
        }
        let body = MessagesRequest {
            date_from: format_api_time(span.start),
            date_to: format_api_time(span.end),
            skip,
            limit: u64::from(limit),
            channel_type: self.channel.to_owned(),
        };
        let (result, stats) = self
            .io
            .api
            .get_messages(&body, self.io.max_budget_wait, self.io.cancel)
            .await;
        let page = result.map(|r| Page {
            records: r.messages,
            total: r.total,
            more_available: r.more_available,
        });
        (page, stats)
    }

    fn parse(&self, raw: &RawValue) -> Result<Message, RejectedRecord> {
        parse_message_or_reject(raw, self.io.privacy)
    }

    fn commit_chunk(
        &self,
        batch: Batch<Message>,
    ) -> impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static {
        let (store, key) = (self.io.store.clone(), self.io.key.clone());
        async move { store.commit_messages(&key, batch, None).await }
    }

    fn commit_window(
        &self,
        window: Window,
        batch: Batch<Message>,
    ) -> impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static {
        let (store, key) = (self.io.store.clone(), self.io.key.clone());
        let advance = Advance {
            window,
            history_start: self.io.history_start,
        };
        async move { store.commit_messages(&key, batch, Some(advance)).await }
    }
}

#[cfg(test)]
mod tests {
    use super::messages_may_use;

    #[test]
    fn messages_leave_a_quarter_of_the_hour_to_sessions() {
        assert!(messages_may_use(0, 1800));
        assert!(messages_may_use(1349, 1800));
        assert!(!messages_may_use(1350, 1800));
        assert!(!messages_may_use(1800, 1800));
        assert!(messages_may_use(2, 4));
        assert!(
            !messages_may_use(3, 4),
            "a quarter of 4 is 1: three may be used"
        );
    }
}
