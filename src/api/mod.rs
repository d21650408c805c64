//! The API layer: everything that talks HTTP to Kore.ai: `getSessions`,
//! `getMessagesV2`, `getAnalytics` and the Admin Console's bot list.
//!
//! - `answer`: reading an answer (bounded) and what its status means.
//! - `client`: the HTTP client, one call with retries and the request budget.
//! - `wire`: the JSON shapes and the record parser (the only place that knows
//!   the API's field names).
//! - `bots`: the Admin Console's bot list, for names.
//! - `messages`: conversation history (`getMessagesV2`).
//! - `analytics`: NLU analytics (`getAnalytics`).
//! - `llm`: GenAI and LLM usage logs (`getLLMUsageLogs`).
//! - `download`: one page fetched and thrown away, for the benchmark's
//!   byte floor.
//! - `auth`: HS256 JWT minting for the `auth` header.
//! - `budget`: the per-bot rolling minute/hour request budget.
//! - `page_size`: the adaptive page size (ask big, learn the server's clamp).
//! - `error`: [`ApiError`], with `is_retryable`.

mod analytics;
mod answer;
pub mod auth;
mod bots;
pub mod budget;
pub mod client;
mod download;
pub mod error;
mod llm;
mod messages;
pub mod page_size;
pub mod wire;

pub use auth::Credentials;
pub use budget::{BudgetUsage, RequestBudget};
pub use client::{CallStats, ClientSettings, KoreApi, KoreClient, RetryPolicy};
pub use error::ApiError;
pub use page_size::PageSize;
