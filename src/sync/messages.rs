//! Conversation messages as a second resource of the engine: one stream per
//! bot and channel, read by date window on `createdOn` with getMessagesV2
//! (up to 10,000 messages a page), parsed, and committed oldest first
//! with the stream's watermark, exactly as sessions are (`stream`, `fetch`,
//! `store_pipe` serve both).
//!
//! Channels: the API's `channelType` defaults to `rtm`, so every request
//! names its channel, and a bot's message streams are the channels its
//! stored sessions use plus `messages.channels`.

use super::context::{ScopeApi, SyncContext};
use super::resource::{Page, Resource, StreamIo};
use crate::api::wire::{
    MESSAGE_SESSION_IDS, MessagesRequest, format_api_time, parse_message_or_reject,
};
use crate::api::{ApiError, CallStats, PageSize};
use crate::model::{
    ACCOUNT_BOT_ID, Batch, ClosedSession, Message, Partition, RejectedRecord, StreamKey, Window,
};
use crate::store::{Advance, StoreError, WindowCommit};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::value::RawValue;
use std::future::Future;
use std::time::Duration;

/// Whether a message request may take one more of the hour's `per_hour`
/// requests when `used` are taken: a quarter stays for sessions.
fn messages_may_use(used: u32, per_hour: u32) -> bool {
    used < per_hour - per_hour / 4
}

/// The requests that read again the messages of `sessions` (oldest first):
/// at most [`MESSAGE_SESSION_IDS`] ids each, over a window from the first
/// one's start to just after the last end, no longer than `max_span` (a
/// session lasting longer has its later messages cut: the API's 7-day rule)
/// and ending at the stream's `watermark` at the latest — later messages
/// are the date windows' to read, and a window ending there never moves
/// the watermark.
pub(super) fn reread_groups(
    sessions: &[ClosedSession],
    max_span: TimeDelta,
    watermark: DateTime<Utc>,
) -> Vec<(Window, Vec<String>)> {
    let mut groups: Vec<(Window, Vec<String>)> = Vec::new();
    for s in sessions.iter().filter(|s| s.start_time < watermark) {
        let end = s
            .end_time
            .map_or(watermark, |e| e + TimeDelta::milliseconds(1))
            .max(s.start_time + TimeDelta::milliseconds(1));
        match groups.last_mut() {
            Some((w, ids))
                if ids.len() < MESSAGE_SESSION_IDS && s.start_time < w.start + max_span =>
            {
                w.end = w.end.max(end).min(w.start + max_span).min(watermark);
                ids.push(s.session_id.clone());
            }
            _ => {
                let start = s.start_time;
                let end = end.min(start + max_span).min(watermark);
                groups.push((Window { start, end }, vec![s.session_id.clone()]));
            }
        }
    }
    groups
}

/// Whether a scope's messages are synced: a bot (getMessagesV2 has no
/// account-wide form) with messages on, by its table or `[messages]`.
pub(super) fn syncs_messages(ctx: &SyncContext, scope: &ScopeApi) -> bool {
    let scope = &scope.scope;
    scope.bot_id != ACCOUNT_BOT_ID && scope.messages.unwrap_or(ctx.settings.messages.enabled)
}

/// A bot's message streams, one per channel: those its stored sessions use
/// (the API reads `rtm` alone unless told a channel) and `messages.channels`.
pub(super) async fn message_keys(
    ctx: &SyncContext,
    bot_id: &str,
) -> Result<Vec<StreamKey>, StoreError> {
    let mut channels = ctx.store.session_channels(bot_id).await?;
    channels.extend(ctx.settings.messages.channels.iter().cloned());
    channels.sort();
    channels.dedup();
    Ok(channels
        .into_iter()
        .map(|channel| StreamKey {
            bot_id: bot_id.to_owned(),
            partition: Partition::Channel(channel),
            filter: String::new(),
        })
        .collect())
}

/// The messages of one bot and one channel.
pub(super) struct Messages<'a> {
    pub io: StreamIo<'a>,
    /// The scope's page size for messages (learned apart from sessions').
    pub pages: &'a PageSize,
    pub channel: &'a str,
    /// Only these sessions' messages (re-reading sessions that closed after
    /// the stream's lookback passed their start); None: all of the channel.
    pub sessions: Option<&'a [String]>,
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
            session_id: self.sessions.map(<[String]>::to_vec),
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

    fn parse(&self, raw: Box<RawValue>) -> Result<Message, RejectedRecord> {
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
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::minutes(minutes)
    }

    fn closed(id: usize, start: i64, end: Option<i64>) -> ClosedSession {
        ClosedSession {
            session_id: format!("s{id}"),
            start_time: at(start),
            end_time: end.map(at),
        }
    }

    #[test]
    fn rereads_name_at_most_50_sessions_within_one_span_ending_by_the_watermark() {
        let day = 24 * 60;
        let mut sessions: Vec<ClosedSession> = (0..120)
            .map(|i| closed(i, i as i64, Some(i as i64 + 30)))
            .collect();
        sessions.push(closed(200, 8 * day, Some(8 * day + 10)));
        sessions.push(closed(201, 15 * day, Some(26 * day)));
        sessions.push(closed(202, 30 * day, None));
        let watermark = at(30 * day);
        let groups = reread_groups(&sessions, TimeDelta::days(6), watermark);
        let sizes: Vec<usize> = groups.iter().map(|(_, ids)| ids.len()).collect();
        assert_eq!(sizes, [50, 50, 20, 1, 1], "{groups:?}");
        assert_eq!(
            groups[0].0,
            Window {
                start: at(0),
                end: at(49 + 30) + TimeDelta::milliseconds(1)
            }
        );
        for (w, _) in &groups {
            assert!(w.start < w.end && w.end <= watermark, "{w:?}");
            assert!(w.span() <= TimeDelta::days(6), "{w:?}");
        }
        // A session lasting 11 days is read for the span's length only; one
        // starting at the watermark is the windows' to read.
        assert_eq!(groups[4].0.end, at(15 * day) + TimeDelta::days(6));
        assert!(
            !groups
                .iter()
                .any(|(_, ids)| ids.contains(&"s202".to_owned()))
        );
    }

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
