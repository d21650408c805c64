//! NLU analytics: `POST /api/public/bot/{bot}/getAnalytics`, one page of one
//! type over a date window (the app needs the Metrics scope). The bot's
//! request budget is shared with getSessions (assumed, as the API does not
//! say otherwise). Bot scopes only.

use super::client::{CallStats, KoreApi};
use super::error::ApiError;
use super::wire::{AnalyticsRequest, AnalyticsResponse};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl KoreApi {
    /// One page of analytics records.
    pub async fn get_analytics(
        &self,
        body: &AnalyticsRequest,
        max_budget_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> (Result<AnalyticsResponse, ApiError>, CallStats) {
        let url = self.public_url(&["bot", self.bot_id(), "getAnalytics"]);
        let request = || self.http().post(url.clone()).json(body);
        self.call(&url, request, max_budget_wait, cancel).await
    }
}
