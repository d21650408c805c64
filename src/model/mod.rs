//! The domain types that flow from the API layer to the store: one parsed
//! session with its flattened tags, the stream key a pass works on, how a
//! stream's run ended, and (in `window`) the time windows and the watermark
//! rule.
//!
//! These types know nothing about JSON field names (that is `api::wire`) nor
//! about SQL (that is `store`), so either side can change without the other.
//! This is the bottom layer: it imports nothing else from the crate.

pub mod analytics;
pub mod ids;
pub mod llm;
pub mod window;

pub use analytics::{AnalyticsEvent, AnalyticsType};
pub use llm::LlmUsage;
pub use window::{API_MAX_SPAN, Window, next_watermark};

use chrono::{DateTime, Utc};
use std::fmt;

/// A bot, for its name: from the Admin Console's bot list, or from the
/// `name` of its `[[bots]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Bot {
    pub bot_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub default_language: Option<String>,
    /// As the API sent it (an ISO date in the documented examples).
    pub created_on: Option<String>,
    /// The API's record without `jwtApps` (None: named in the config).
    pub raw: Option<serde_json::Value>,
}

/// The bot id under which the account-wide (Admin Console) scope is keyed.
pub const ACCOUNT_BOT_ID: &str = "*";

/// The three outcomes the API can filter sessions by (since v9.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainmentType {
    SelfService,
    DropOff,
    Agent,
}

impl ContainmentType {
    pub const ALL: [ContainmentType; 3] = [Self::SelfService, Self::DropOff, Self::Agent];

    /// The spelling the API uses in `?containmentType=` and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfService => "selfService",
            Self::DropOff => "dropOff",
            Self::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ContainmentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The API filters a scope's streams run with (`session_type`, `user_id`,
/// `tags` in the config). A stream's watermark belongs to its filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamFilter {
    pub session_type: Option<String>,
    pub user_id: Option<String>,
    /// The API's tags filter object, as canonical JSON text.
    pub tags: Option<String>,
}

impl StreamFilter {
    /// A stable text for the filter; empty when there is none.
    pub fn fingerprint(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.session_type {
            parts.push(format!("sessionType={t}"));
        }
        if let Some(u) = &self.user_id {
            parts.push(format!("userId={u}"));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags={t}"));
        }
        parts.join(" ")
    }
}

/// What a stream reads of its scope: the sessions of one containment type,
/// the conversation messages of one channel, or the NLU analytics of one
/// type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Partition {
    Containment(ContainmentType),
    Channel(String),
    Analytics(AnalyticsType),
    /// A bot's GenAI and LLM usage logs (one stream, no partition).
    LlmUsage,
}

impl Partition {
    /// The resource, as `sync_state.resource` and `sync_runs.resource` have it.
    pub fn resource(&self) -> &'static str {
        match self {
            Partition::Containment(_) => "sessions",
            Partition::Channel(_) => "messages",
            Partition::Analytics(_) => "analytics",
            Partition::LlmUsage => "llm_usage",
        }
    }

    /// The partition's name, as the `containment_type` column of
    /// `sync_state` and `sync_runs` has it (for messages: the channel; for
    /// analytics: the type).
    pub fn name(&self) -> &str {
        match self {
            Partition::Containment(c) => c.as_str(),
            Partition::Channel(c) => c,
            Partition::Analytics(t) => t.as_str(),
            Partition::LlmUsage => "all",
        }
    }
}

/// One unit of incremental sync: a bot (or the account scope, keyed
/// [`ACCOUNT_BOT_ID`]) and one partition of one resource — sessions of a
/// containment type, or messages of a channel. Each stream has its own
/// watermark.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub bot_id: String,
    pub partition: Partition,
    /// The filter's fingerprint (empty: none). A watermark stored under
    /// another filter does not count for this stream.
    pub filter: String,
}

impl StreamKey {
    /// The sessions stream of one containment type.
    pub fn sessions(bot_id: &str, containment_type: ContainmentType, filter: &str) -> Self {
        StreamKey {
            bot_id: bot_id.to_owned(),
            partition: Partition::Containment(containment_type),
            filter: filter.to_owned(),
        }
    }

    /// The containment type of a sessions stream (None for messages).
    pub fn containment_type(&self) -> Option<ContainmentType> {
        match self.partition {
            Partition::Containment(c) => Some(c),
            Partition::Channel(_) | Partition::Analytics(_) | Partition::LlmUsage => None,
        }
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.partition {
            Partition::Containment(c) => write!(f, "{}/{c}", self.bot_id),
            Partition::Channel(c) => write!(f, "{}/messages:{c}", self.bot_id),
            Partition::Analytics(t) => write!(f, "{}/analytics:{t}", self.bot_id),
            Partition::LlmUsage => write!(f, "{}/llm_usage", self.bot_id),
        }
    }
}

/// A session as kore-sync stores it. Every optional field is `None` when the
/// API record lacks it (or sends null): a missing value is never replaced by
/// a default.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub session_id: String,
    pub bot_id: Option<String>,
    pub channel: Option<String>,
    pub user_id: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub session_lang: Option<Vec<String>>,
    pub session_type: Option<String>,
    /// From the record; when the record lacks it, the containment type of
    /// the stream that fetched it.
    pub containment_type: Option<String>,
    pub is_developer: Option<bool>,
    pub session_status: Option<String>,
    pub messages_exchanged: Option<i32>,
    pub tasks_executed: Option<i32>,
    /// The record exactly as received, byte for byte, so no field the API
    /// adds later is lost.
    pub raw: String,
    pub tags: Vec<Tag>,
}

/// One message of a session's conversation, as kore-sync stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub message_id: String,
    pub session_id: Option<String>,
    pub bot_id: Option<String>,
    /// `incoming` (from the user) or `outgoing` (from the bot or an agent).
    pub direction: Option<String>,
    pub created_on: DateTime<Utc>,
    pub channel: Option<String>,
    pub lang: Option<String>,
    /// The text of its text components, one per line (None: none, or
    /// content not kept).
    pub text: Option<String>,
    /// The components as JSON text (content removed when not kept).
    pub components: Option<String>,
    /// The record as received (content removed when not kept).
    pub raw: String,
    pub tags: Vec<Tag>,
}

impl Keyed for Message {
    fn id(&self) -> &str {
        &self.message_id
    }
}

/// A batch of messages.
pub type MessageBatch = Batch<Message>;

/// A batch of analytics events.
pub type AnalyticsBatch = Batch<AnalyticsEvent>;

/// A batch of LLM usage records.
pub type LlmUsageBatch = Batch<LlmUsage>;

/// A session seen closing after it was stored as active, whose messages are
/// to be read again by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSession {
    pub session_id: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
}

/// One element of one array under a session's `tags` object.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    /// `user` for `userTags`, `session` for `sessionTags`, otherwise the key
    /// itself (e.g. `altText`). The three documented kinds are static
    /// strings, not one allocation per tag.
    pub kind: std::borrow::Cow<'static, str>,
    /// Position in its array; with `kind` and the session id, the key.
    pub ordinal: i32,
    pub name: Option<String>,
    /// A string value as is; anything else as its JSON text; JSON null as None.
    pub value: Option<String>,
    /// The value's JSON text exactly as received (`null` when absent).
    pub value_json: String,
}

/// A record with an id: what the sync engine keeps one version of per id.
pub trait Keyed {
    fn id(&self) -> &str;
}

impl Keyed for Session {
    fn id(&self) -> &str {
        &self.session_id
    }
}

/// What one commit stores: parsed records (several versions of one id may
/// be given; the last wins) and the records that could not be parsed.
#[derive(Debug)]
pub struct Batch<R> {
    pub records: Vec<R>,
    pub rejected: Vec<RejectedRecord>,
}

impl<R> Default for Batch<R> {
    fn default() -> Self {
        Batch {
            records: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

impl<R> Batch<R> {
    /// This batch followed by `later`'s records (a later window's).
    pub fn followed_by(mut self, later: Batch<R>) -> Batch<R> {
        self.records.extend(later.records);
        self.rejected.extend(later.rejected);
        self
    }
}

/// A batch of sessions.
pub type SessionBatch = Batch<Session>;

/// A record the parser refused, kept verbatim with the reason.
#[derive(Clone, PartialEq)]
pub struct RejectedRecord {
    /// The sessionId, if the record had a readable one.
    pub session_id: Option<String>,
    pub reason: String,
    pub raw: String,
    /// The record as the page listed it, when the privacy rules changed it
    /// (None: as `raw`). It tells apart, while a window is paged, records
    /// the rules made alike; never stored or logged, as it may hold what
    /// the rules remove.
    pub listed_as: Option<String>,
}

impl fmt::Debug for RejectedRecord {
    /// Without `listed_as`, which may hold what the privacy rules remove.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectedRecord")
            .field("session_id", &self.session_id)
            .field("reason", &self.reason)
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

/// What a session the API no longer has means for the warehouse
/// (`sync.deletes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deletes {
    /// The warehouse mirrors the API: the session and its tags go.
    #[default]
    Delete,
    /// The rows stay, with `sessions.deleted_at` set; the analyst views
    /// leave them out.
    Keep,
}

/// How a stream's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed,
    Interrupted,
    /// The scope's request budget ran out; what was read is committed and
    /// the next pass continues. Not a failure.
    BudgetSpent,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::BudgetSpent => "budget_spent",
        }
    }

    /// True for the outcomes that count as a good pass: success, or a stop
    /// only because the request budget was spent (rate limits never fail a
    /// pass).
    pub fn is_good(self) -> bool {
        matches!(self, RunOutcome::Succeeded | RunOutcome::BudgetSpent)
    }
}
