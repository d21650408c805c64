//! GenAI and LLM usage logs: `POST /api/1.1/public/bot/{bot}/getLLMUsageLogs`
//! (note `/api/1.1/`), one page of a span of days (at most 90 a request;
//! the app needs the "Fetch Gen AI and LLM Usage Logs" scope). The answer
//! is a bare array. The bot's request budget is shared with getSessions
//! (assumed). Bot scopes only.

use super::client::{CallStats, KoreApi};
use super::error::ApiError;
use super::wire::LlmUsageRequest;
use serde_json::value::RawValue;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl KoreApi {
    /// One page of LLM usage records.
    pub async fn get_llm_usage(
        &self,
        body: &LlmUsageRequest,
        max_budget_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> (Result<Vec<Box<RawValue>>, ApiError>, CallStats) {
        let url = self.public_url_v1_1(&["bot", self.bot_id(), "getLLMUsageLogs"]);
        let request = || self.http().post(url.clone()).json(body);
        self.call(&url, request, max_budget_wait, cancel).await
    }
}
