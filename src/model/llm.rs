//! GenAI and LLM usage logs (`getLLMUsageLogs`) as kore-sync stores them:
//! one logged call to a model.

use super::Keyed;
use chrono::{DateTime, Utc};

/// One logged LLM call. Every optional field is None when the record lacks
/// it (or sends null).
#[derive(Debug, Clone, PartialEq)]
pub struct LlmUsage {
    /// Derived from what identifies the call (the API gives none).
    pub usage_id: String,
    pub bot_id: Option<String>,
    pub user_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub time_taken_ms: Option<i64>,
    pub status_code: Option<i32>,
    pub status: Option<String>,
    pub feature: Option<String>,
    pub model: Option<String>,
    pub integration: Option<String>,
    pub prompt_name: Option<String>,
    pub channel: Option<String>,
    pub task_id: Option<String>,
    pub description: Option<String>,
    pub request_tokens: Option<i64>,
    pub response_tokens: Option<i64>,
    /// The record as received (payloads removed when content is not kept).
    pub raw: String,
}

impl Keyed for LlmUsage {
    fn id(&self) -> &str {
        &self.usage_id
    }
}
