//! Errors of the API layer. Each says what went wrong in the operator's terms
//! and, where there is one, what to do about it; `is_retryable` decides
//! whether the client tries again.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401/403: the credentials or the app's scope are wrong. Not retried.
    #[error(
        "{url} refused {credentials} with HTTP {status}: {message}. Check the client_id and \
         client_secret (or token) for this bot, that the JWT app is linked to bot {bot}, and that \
         the app has the \"{scope}\" API scope (App Settings > Dev Tools > API Scopes, or \
         Admin Console > API Scopes > Bot Analytics > {scope} for the account scope)"
    )]
    Unauthorized {
        url: String,
        status: u16,
        message: String,
        credentials: String,
        bot: String,
        /// The API scope the endpoint needs (e.g. "Bot Sessions", "Chat History").
        scope: &'static str,
    },
    /// A 3xx: the API never redirects, and following one would send the
    /// token to another host. Not retried.
    #[error(
        "{url} answered HTTP {status}, redirecting to {location}; kore-sync never follows redirects \
         (the token would go to another host). Set api.base_url to the API's own address, e.g. \
         \"https://bots.kore.ai\" or your regional host"
    )]
    Redirected {
        url: String,
        status: u16,
        location: String,
    },
    /// The answer is larger than `api.max_response_size`: refused before it
    /// is read into memory. Not retried.
    #[error(
        "{url} sent an answer larger than {limit} bytes (api.max_response_size); refused unread. \
         Lower api.max_page_size, or raise api.max_response_size if the server is trusted"
    )]
    TooLarge { url: String, limit: u64 },
    /// 429: over the rate budget. Retried after `retry_after` if the server said.
    #[error("rate limited by the API (HTTP 429): {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 5xx: the server or a gateway failed. Retried.
    #[error("the API answered HTTP {status}: {message}")]
    Server { status: u16, message: String },
    /// Any other 4xx: the request itself is wrong. Not retried; the API's own
    /// message is passed on.
    #[error("the API rejected the request with HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    /// Timeouts, refused or dropped connections, bodies cut short. Retried.
    #[error("could not reach the API at {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// A 200 whose body is not the expected JSON (truncated, HTML). Retried,
    /// because gateways and dropped connections produce exactly this.
    #[error(
        "the API's answer could not be read as getSessions JSON ({detail}); body starts: {excerpt}"
    )]
    Unparseable { detail: String, excerpt: String },
    /// The server refused to page as deep as a window needs, and the window
    /// is already too short to split further. Not retried.
    #[error(
        "{message} — even a {}-long window from {from} holds more sessions than the API lets \
         kore-sync page past (skip {skip}); lowering api.page_size will not help, please report this",
        humantime::format_duration(*.span)
    )]
    CannotSplit {
        message: String,
        skip: u64,
        span: Duration,
        from: String,
    },
    /// The server kept saying `moreAvailable` for more pages than any window
    /// can hold. Not retried: the next pass tries the window again.
    #[error("the server kept answering moreAvailable after {pages} pages; it may be misbehaving")]
    EndlessPaging { pages: u32 },
    /// The token could not be signed (a malformed secret).
    #[error("could not sign a JWT for {credentials}: {source}")]
    Token {
        credentials: String,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// The scope's request budget (the hourly limit) is spent for longer than
    /// the caller will wait. Not a failure: the next pass continues.
    #[error("the request budget is spent for the next {}; stopping here, the next pass continues", humantime::format_duration(std::time::Duration::from_secs(wait.as_secs())))]
    BudgetExhausted { wait: Duration },
    /// The pass was cancelled (shutdown) while waiting for the API.
    #[error("cancelled by shutdown")]
    Cancelled,
}

impl ApiError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. }
                | ApiError::Server { .. }
                | ApiError::Transport { .. }
                | ApiError::Unparseable { .. }
        )
    }

    /// The delay the server asked for, if any (Retry-After on 429 or 503).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unauthorized { status, .. }
            | ApiError::Server { status, .. }
            | ApiError::Rejected { status, .. } => Some(*status),
            ApiError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }
}
