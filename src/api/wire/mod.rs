//! The JSON wire shapes of `getSessions`: the request body, the response
//! envelope and the error envelope here; the parser that turns one raw
//! session record into a [`Session`](crate::model::Session) in `session`.
//!
//! Architecture invariant: this module is the only one that knows the API's
//! field names.

mod analytics;
mod bots;
mod components;
mod fields;
mod llm;
mod message;
mod privacy;
mod session;
mod tags;

pub use analytics::{AnalyticsFilters, AnalyticsRequest, AnalyticsResponse};
pub use bots::{BOTS_PAGE, BotsResponse, bot_records};
pub use llm::{LlmUsageRequest, usage_id};
pub use message::parse_message;
pub use privacy::{
    WITHHELD, parse_analytics_or_reject, parse_llm_usage_or_reject, parse_message_or_reject,
    parse_or_reject, protect, protect_analytics, protect_llm_usage,
};
pub use session::{RecordError, parse_session, session_id_of};

use crate::model::ContainmentType;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The request body of `getSessions`. Every field is optional upstream; we
/// always send the ones we rely on so server defaults never matter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionsRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<serde_json::Value>,
    /// The external call id variant: sent as `?callId=` in the query string,
    /// not in the body.
    #[serde(skip)]
    pub call_id: Option<String>,
}

impl SessionsRequest {
    /// The query string of a `getSessions` request: the containment type
    /// asked for, and the external call id variant.
    pub fn query_pairs(&self, containment: Option<ContainmentType>) -> Vec<(&'static str, &str)> {
        let mut pairs = Vec::new();
        if let Some(c) = containment {
            pairs.push(("containmentType", c.as_str()));
        }
        if let Some(call_id) = &self.call_id {
            pairs.push(("callId", call_id.as_str()));
        }
        pairs
    }

    /// Adds a stream's filters to a date-window request.
    pub fn with_filter(mut self, f: &crate::model::StreamFilter) -> Self {
        self.user_id = f.user_id.clone();
        self.session_type = f.session_type.clone();
        self.tags = f.tags.as_deref().and_then(|t| serde_json::from_str(t).ok());
        self
    }
}

/// Formats a timestamp the way the API documents: `yyyy-mm-ddThh:mm:ss.mmmZ`.
pub fn format_api_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The response envelope. Sessions stay raw here so that one bad record can
/// be reported on its own without losing the page.
#[derive(Debug, Deserialize)]
pub struct SessionsResponse {
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(rename = "moreAvailable", default)]
    pub more_available: Option<bool>,
    #[serde(default)]
    pub sessions: Vec<Box<RawValue>>,
    #[serde(rename = "invalidSessions", default)]
    pub invalid_sessions: Vec<String>,
}

/// The response envelope of `getMessagesV2`.
#[derive(Debug, Deserialize)]
pub struct MessagesResponse {
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(rename = "moreAvailable", default)]
    pub more_available: Option<bool>,
    #[serde(default)]
    pub messages: Vec<Box<RawValue>>,
}

/// The request body of `getMessagesV2` for a date window of one channel
/// (and, re-reading the messages of sessions that closed late, only theirs).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessagesRequest {
    pub date_from: String,
    pub date_to: String,
    pub skip: u64,
    pub limit: u64,
    /// Always sent: without it the API documents `rtm` only.
    pub channel_type: String,
    /// Only these sessions' messages (at most [`MESSAGE_SESSION_IDS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Vec<String>>,
}

/// Session ids named in one getMessagesV2 request. The API does not say how
/// many it takes; getSessions takes 50, so 50.
pub const MESSAGE_SESSION_IDS: usize = 50;

/// The error envelope the API usually sends: `{"errors":[{"msg": …}]}`.
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    msg: Option<String>,
    message: Option<String>,
}

/// Extracts the API's own error message from a body, if it has the usual
/// JSON shape; otherwise a short, single-line excerpt of the body (gateways
/// answer with HTML).
pub fn error_message(body: &str) -> String {
    if let Ok(env) = serde_json::from_str::<ErrorEnvelope>(body) {
        let msgs: Vec<String> = env
            .errors
            .into_iter()
            .filter_map(|e| e.msg.or(e.message))
            .collect();
        if !msgs.is_empty() {
            return msgs.join("; ");
        }
    }
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut excerpt: String = flat.chars().take(200).collect();
    if flat.chars().count() > 200 {
        excerpt.push('…');
    }
    if excerpt.is_empty() {
        "(empty body)".to_owned()
    } else {
        excerpt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_prefers_the_api_text() {
        assert_eq!(
            error_message(r#"{"errors":[{"msg":"bad dates","code":400}]}"#),
            "bad dates"
        );
        assert_eq!(
            error_message("<html>\n<body>502 Bad   Gateway</body></html>"),
            "<html> <body>502 Bad Gateway</body></html>"
        );
        assert_eq!(error_message(""), "(empty body)");
    }
}
