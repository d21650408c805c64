//! `SessionStore`'s reads for checking streams: what a pass compares with
//! the API (counts behind the watermark, stored ids), the sessions to read
//! again (stale active ones, those seen closing), and what plans and checks
//! message streams (bots' channels, messages without a session). Those a
//! fleet's streams ask at once are answered together (see `batched`).

use super::batched;
use super::error::StoreError;
use super::stream_checks::{self, ClosedBefore, CountStored, StaleActive};
use super::{SessionStore, messages, runs};
use crate::model::{ClosedSession, StreamFilter, StreamKey, Window};
use chrono::{DateTime, Utc};

impl SessionStore {
    /// How many live sessions the stream holds in `window`, with its end
    /// excluded and included.
    pub async fn count_stored(
        &self,
        key: &StreamKey,
        filter: &StreamFilter,
        window: Window,
    ) -> Result<(u64, u64), StoreError> {
        let req = CountStored {
            key: key.clone(),
            filter: filter.clone(),
            window,
        };
        self.batched(&self.queues.counts, req, |c, _, calls| {
            batched::answer_together(calls, |reqs| stream_checks::count_stored(c, reqs));
        })
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
        let req = StaleActive {
            key: key.clone(),
            before,
        };
        self.batched(&self.queues.stale, req, |c, _, calls| {
            batched::answer_together(calls, |reqs| stream_checks::stale_active(c, reqs));
        })
        .await
    }

    /// Sessions of `bot_id` and `channel` seen closing whose start lies
    /// before `before`: their messages are to be read again by id.
    pub async fn closed_sessions(
        &self,
        (bot_id, channel): (&str, &str),
        before: DateTime<Utc>,
    ) -> Result<Vec<ClosedSession>, StoreError> {
        let req = ClosedBefore {
            bot_id: bot_id.to_owned(),
            channel: channel.to_owned(),
            before,
        };
        self.batched(&self.queues.closed, req, |c, _, calls| {
            batched::answer_together(calls, |reqs| stream_checks::closed_sessions(c, reqs));
        })
        .await
    }

    /// How many stored messages have no session in the warehouse (issue 21;
    /// should be 0).
    pub async fn messages_without_session(&self) -> Result<i64, StoreError> {
        self.with(|c| super::sql::count_rows(c, super::status::MESSAGES_WITHOUT_SESSION))
            .await
    }

    /// The messages stream `key` (a bot and a channel) holds in `window`,
    /// counted with the window's end excluded and included.
    pub async fn count_stored_messages(
        &self,
        key: &StreamKey,
        window: Window,
    ) -> Result<(u64, u64), StoreError> {
        let key = key.clone();
        self.with(move |c| messages::count_stored(c, &key, window))
            .await
    }

    /// Sessions of `bot_id`'s stored messages that are not stored
    /// themselves, at most `limit` (issue 21).
    pub async fn sessions_of_orphan_messages(
        &self,
        bot_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let bot_id = bot_id.to_owned();
        self.with(move |c| messages::sessions_of_orphans(c, &bot_id, limit))
            .await
    }

    /// The channels the bot's stored sessions use.
    pub async fn session_channels(&self, bot_id: &str) -> Result<Vec<String>, StoreError> {
        self.batched(&self.queues.channels, bot_id.to_owned(), |c, _, calls| {
            batched::answer_together(calls, |bots| stream_checks::session_channels(c, bots));
        })
        .await
    }
}
