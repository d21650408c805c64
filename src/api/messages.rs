//! Conversation history: `POST /api/public/bot/{bot}/getMessagesV2`, one
//! page of a date window of one channel (up to 10,000 messages a page). The
//! bot's request budget is shared with getSessions (assumed, as the API does
//! not say otherwise). Bot scopes only: the account scope has no such call.

use super::client::{CallStats, KoreApi};
use super::error::ApiError;
use super::wire::{MessagesRequest, MessagesResponse};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl KoreApi {
    /// One page of messages.
    pub async fn get_messages(
        &self,
        body: &MessagesRequest,
        max_budget_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> (Result<MessagesResponse, ApiError>, CallStats) {
        let url = self.public_url(&["bot", self.bot_id(), "getMessagesV2"]);
        let request = || self.http().post(url.clone()).json(body);
        self.call(&url, request, max_budget_wait, cancel).await
    }
}
