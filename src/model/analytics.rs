//! NLU analytics (`getAnalytics`) as kore-sync stores them: the six types a
//! request asks for, each one stream per bot, and one parsed event.

use super::{Keyed, Tag};
use chrono::{DateTime, Utc};
use std::fmt;

/// What a getAnalytics request lists (its `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnalyticsType {
    /// Utterances whose intent was found.
    SuccessIntent,
    /// Utterances whose intent was not found.
    FailIntent,
    SuccessTask,
    FailTask,
    /// Node-level logs (response times, status codes).
    Performance,
    UnhandledUtterance,
}

impl AnalyticsType {
    pub const ALL: [AnalyticsType; 6] = [
        Self::SuccessIntent,
        Self::FailIntent,
        Self::SuccessTask,
        Self::FailTask,
        Self::Performance,
        Self::UnhandledUtterance,
    ];

    /// The spelling of the request's `type`, and of `analytics_events.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuccessIntent => "successintent",
            Self::FailIntent => "failintent",
            Self::SuccessTask => "successtask",
            Self::FailTask => "failtask",
            Self::Performance => "performance",
            Self::UnhandledUtterance => "unhandledutterance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for AnalyticsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One analytics record. Every optional field is None when the record
/// lacks it (or sends null).
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsEvent {
    /// The type it was listed under; with `event_id`, the key.
    pub kind: AnalyticsType,
    /// The record's `_id`.
    pub event_id: String,
    pub bot_id: Option<String>,
    pub session_id: Option<String>,
    pub message_id: Option<String>,
    pub event_time: DateTime<Utc>,
    pub channel: Option<String>,
    pub language: Option<String>,
    pub user_id: Option<String>,
    pub channel_uid: Option<String>,
    /// What the user wrote (None when content is not kept).
    pub utterance: Option<String>,
    pub intent: Option<String>,
    pub task_id: Option<String>,
    pub task_name: Option<String>,
    pub is_ambiguous: Option<bool>,
    pub node_name: Option<String>,
    pub node_type: Option<String>,
    pub status: Option<String>,
    /// As text: the API sends numbers and strings alike.
    pub status_code: Option<String>,
    pub response_time_ms: Option<i64>,
    /// The record as received (content removed when not kept).
    pub raw: String,
    /// Its `customTags`.
    pub tags: Vec<Tag>,
}

impl Keyed for AnalyticsEvent {
    /// Unique within a stream, which reads one type.
    fn id(&self) -> &str {
        &self.event_id
    }
}
