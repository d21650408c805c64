//! The simulator's switches (`SimSettings`), the bots and apps it accepts,
//! and the faults a test can queue for the next answers.

use super::Synthetic;
use serde_json::Value;
use std::time::Duration;

/// One JWT app the simulator accepts.
#[derive(Debug, Clone)]
pub struct SimApp {
    pub client_id: String,
    pub client_secret: String,
}

/// One simulated bot and the app allowed to read it.
#[derive(Debug, Clone)]
pub struct SimBot {
    pub id: String,
    pub app: SimApp,
}

/// A fault to inject into one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// An error status with a JSON error body.
    Status(u16),
    /// A 502 with an HTML page, as gateways send.
    HtmlBadGateway,
    /// 429, with or without Retry-After (seconds).
    RateLimited { retry_after: Option<u64> },
    /// The connection drops halfway through the body.
    DropConnection,
    /// A 200 whose JSON body is cut short.
    TruncatedBody,
    /// The answer comes after this delay.
    Slow(Duration),
    /// Not a fault: this record is added (or replaced) just before the
    /// request is answered, as if it landed while a window was being paged.
    UpsertFirst(Value),
    /// Not a fault: this session is deleted just before the request is answered.
    RemoveFirst(String),
}

/// The simulator's switches.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub bots: Vec<SimBot>,
    /// The Admin Console app for the account-wide endpoint, if any.
    pub account_app: Option<SimApp>,
    /// Largest page the server returns, whatever `limit` asks for.
    pub max_page_size: usize,
    /// Largest page of messages getMessagesV2 returns (the API: 10,000).
    pub max_messages_page: usize,
    /// Bots whose apps lack the Chat History scope: getMessagesV2 answers 403.
    pub deny_chat_history: Vec<String>,
    /// Bots whose apps lack the Metrics scope: getAnalytics answers 403.
    pub deny_metrics: Vec<String>,
    /// Bots whose apps lack the LLM usage logs scope: getLLMUsageLogs
    /// answers 403.
    pub deny_llm_logs: Vec<String>,
    /// Answer 400 to a `limit` above this, instead of clamping.
    pub refuse_limit_above: Option<usize>,
    /// `limit` when the request has none.
    pub default_page_size: usize,
    /// Refuse `skip` beyond this with a 400.
    pub max_skip: Option<u64>,
    /// Whether a session starting exactly at `dateTo` is included.
    pub date_to_inclusive: bool,
    /// Refuse tokens without a `jti`, and replayed ones.
    pub enforce_jti: bool,
    /// Per-bot (and per-account) limits as (per minute, per hour); None = off.
    pub rate_limit: Option<(u32, u32)>,
    /// Share of requests, 0.0–1.0, that get a random fault.
    pub fault_rate: f64,
    /// How long a random `Fault::Slow` takes (set it above the client's timeout).
    pub slow_fault: Duration,
    /// Added to every answer, to make passes long enough to interrupt.
    pub latency: Duration,
    /// Generate each bot's sessions on demand instead of storing them, for
    /// benchmarks with millions of sessions (bot scope only).
    pub synthetic: Option<Synthetic>,
    /// Bytes of rich template (a carousel's payload) each outgoing message
    /// carries beside its text; 0 = none. Real bots answer with such
    /// templates, and their size, not their number, is what a commit's
    /// memory follows (issue 22).
    pub template_bytes: usize,
    /// Keep the analytics events and LLM calls derived for a window for
    /// the next pages' requests. Only for a simulator whose records never
    /// change after it starts (`demo`, `simulate`): tests change them.
    pub memoize_windows: bool,
    pub seed: u64,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            bots: Vec::new(),
            account_app: None,
            max_page_size: 100,
            max_messages_page: 10_000,
            deny_chat_history: Vec::new(),
            deny_metrics: Vec::new(),
            deny_llm_logs: Vec::new(),
            default_page_size: 100,
            refuse_limit_above: None,
            max_skip: None,
            date_to_inclusive: true,
            enforce_jti: false,
            rate_limit: None,
            fault_rate: 0.0,
            slow_fault: Duration::from_secs(3),
            latency: Duration::ZERO,
            synthetic: None,
            template_bytes: 0,
            memoize_windows: false,
            seed: 1,
        }
    }
}
