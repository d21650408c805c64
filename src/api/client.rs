//! `KoreClient`: one HTTP client for the whole process, and `KoreApi`,
//! the view of it for one bot (or the account scope) with that scope's
//! credentials and request budget.
//!
//! A call makes one logical request: it waits for the budget, signs a token,
//! POSTs, and classifies the answer into a page or an [`ApiError`]. Retryable
//! failures are retried with exponential backoff and full jitter (backon),
//! honouring Retry-After; every attempt passes through the budget again.

use super::answer::{Asked, classify, parse_retry_after, read_bounded};
use super::auth::Credentials;
use super::budget::RequestBudget;
use super::error::ApiError;
use super::page_size::PageSize;
use super::wire::{SessionsRequest, SessionsResponse};
use crate::model::{ACCOUNT_BOT_ID, ContainmentType};
use crate::ops::metrics::{CallEnded, RequestAnswered};
use backon::{ExponentialBuilder, Retryable};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use url::Url;

/// Longest Retry-After we honour as given; a larger value is capped so a
/// confused gateway cannot park a stream for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How failed requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// How the process talks to the API (`[api]` in the config, credentials
/// aside: those belong to each scope).
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub base_url: Url,
    /// Always asked for when the server refuses larger pages.
    pub page_size: u32,
    /// Asked for first; the server's clamp is learned ([`PageSize`]).
    /// Invariant: `max_page_size >= page_size`.
    pub max_page_size: u32,
    pub timeout: Duration,
    /// 0 = unlimited.
    pub requests_per_minute: u32,
    /// 0 = unlimited.
    pub requests_per_hour: u32,
    pub retry: RetryPolicy,
    /// The largest answer read (`api.max_response_size`); larger ones are
    /// refused unread.
    pub max_response_bytes: u64,
}

/// The shared HTTP client. TLS certificates are always verified: there is
/// deliberately no switch to turn that off.
#[derive(Debug, Clone)]
pub struct KoreClient {
    pub(super) http: reqwest::Client,
    base_url: Url,
    retry: RetryPolicy,
    /// Answers larger than this are refused unread.
    max_response_bytes: u64,
}

impl KoreClient {
    pub fn new(settings: &ClientSettings) -> Result<Self, reqwest::Error> {
        let timeout = settings.timeout;
        let http = reqwest::Client::builder()
            // The API never redirects; following one would hand the token
            // to another origin. A 3xx is refused as an error instead.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("kore-sync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(KoreClient {
            http,
            base_url: settings.base_url.clone(),
            retry: settings.retry.clone(),
            max_response_bytes: settings.max_response_bytes,
        })
    }

    /// `base_url` with `api/public/` and `path` appended.
    fn public_url(&self, path: &[&str]) -> Url {
        self.api_url(&["api", "public"], path)
    }

    /// `path` under `prefix` (`api/public`, or `api/1.1/public`).
    fn api_url(&self, prefix: &[&str], path: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        {
            let mut segs = url
                .path_segments_mut()
                .expect("validated base_url has a path");
            segs.pop_if_empty();
            segs.extend(prefix);
            segs.extend(path);
        }
        url
    }

    /// The view of the API for one scope (a bot, or the account): its
    /// getSessions URL, credentials, request budget and page size; it also
    /// reads the scope's messages and, for the account, the bot list.
    pub fn scope_api(
        &self,
        bot_id: &str,
        credentials: Credentials,
        budget: Arc<RequestBudget>,
        pages: Arc<PageSize>,
    ) -> KoreApi {
        let path: &[&str] = if bot_id == ACCOUNT_BOT_ID {
            &["getSessions"]
        } else {
            &["bot", bot_id, "getSessions"]
        };
        let url = self.public_url(path);
        KoreApi {
            client: self.clone(),
            bot_id: bot_id.to_owned(),
            url,
            credentials,
            budget,
            pages,
        }
    }
}

/// Counters for one logical call, read by the runner for `sync_runs`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallStats {
    pub requests: u32,
    pub retries: u32,
    /// Answers that were 429.
    pub rate_limited: u32,
    pub budget_wait: Duration,
}

impl std::ops::AddAssign for CallStats {
    fn add_assign(&mut self, o: Self) {
        self.requests += o.requests;
        self.retries += o.retries;
        self.rate_limited += o.rate_limited;
        self.budget_wait += o.budget_wait;
    }
}

/// Kore.ai's API as one scope (a bot, or the account) sees it: getSessions,
/// getMessagesV2 (`api::messages`) and the Admin Console's bot list
/// (`api::bots`), every call within the scope's request budget.
#[derive(Debug, Clone)]
pub struct KoreApi {
    pub(super) client: KoreClient,
    bot_id: String,
    pub(super) url: Url,
    credentials: Credentials,
    budget: Arc<RequestBudget>,
    /// The scope's page size, learned from its answers and shared by every
    /// clone of this view.
    pages: Arc<PageSize>,
}

impl KoreApi {
    pub fn bot_id(&self) -> &str {
        &self.bot_id
    }

    /// The scope's request budget, shared by every clone of this view.
    pub fn budget(&self) -> &RequestBudget {
        &self.budget
    }

    /// How many records to ask for per page (see [`PageSize`]).
    pub fn page_size(&self) -> &PageSize {
        &self.pages
    }

    /// A freshly signed token for the `auth` header.
    pub(super) fn token(&self) -> Result<crate::secret::Secret, ApiError> {
        self.credentials
            .header_value()
            .map_err(|source| ApiError::Token {
                credentials: self.credentials.describe(),
                source,
            })
    }

    /// One call with retries. Returns the page and what it cost.
    ///
    /// `max_budget_wait`: if the request budget would make any attempt wait
    /// longer than this (the hourly budget is spent), give up with
    /// [`ApiError::BudgetExhausted`] instead; `None` waits as long as needed.
    pub async fn get_sessions(
        &self,
        containment: Option<ContainmentType>,
        body: &SessionsRequest,
        max_budget_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> (Result<SessionsResponse, ApiError>, CallStats) {
        let query = body.query_pairs(containment);
        let request = || {
            let req = self.client.http.post(self.url.clone()).json(body);
            if query.is_empty() {
                req
            } else {
                req.query(&query)
            }
        };
        self.call(&self.url, request, max_budget_wait, cancel).await
    }

    /// One logical call to `url`: waits for the budget before each attempt,
    /// signs a token, sends what `request` builds, and retries what
    /// [`ApiError::is_retryable`] allows with backoff, honouring Retry-After.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        url: &Url,
        request: impl Fn() -> reqwest::RequestBuilder,
        max_budget_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> (Result<T, ApiError>, CallStats) {
        let attempts = AtomicU32::new(0);
        let rate_limited = AtomicU32::new(0);
        let waited_ms = AtomicU32::new(0);
        let policy = &self.client.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.base_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_retries as usize)
            .with_jitter();
        let attempt = || async {
            let waited = self
                .budget
                .acquire(max_budget_wait)
                .await
                .map_err(|e| ApiError::BudgetExhausted { wait: e.wait })?;
            waited_ms.fetch_add(
                u32::try_from(waited.as_millis()).unwrap_or(u32::MAX),
                Ordering::Relaxed,
            );
            attempts.fetch_add(1, Ordering::Relaxed);
            let result = self.attempt(url, request()).await;
            if matches!(result, Err(ApiError::RateLimited { .. })) {
                rate_limited.fetch_add(1, Ordering::Relaxed);
                // Someone else shares this budget: keep a lower pace for a while.
                self.budget.slow_down();
            }
            result
        };
        let retrying = attempt
            .retry(backoff)
            .when(ApiError::is_retryable)
            .adjust(|err: &ApiError, next: Option<Duration>| {
                // Retry-After wins over our own schedule, but only while the
                // retry budget lasts (`next` is None once it is spent).
                next.map(|d| err.retry_after().map_or(d, |ra| ra.min(MAX_RETRY_AFTER).max(d)))
            })
            .notify(|err: &ApiError, delay: Duration| {
                tracing::warn!(bot_id = %self.bot_id, error = %err, delay = ?delay, "request failed, retrying");
            });
        let result = tokio::select! {
            r = retrying => r,
            _ = cancel.cancelled() => Err(ApiError::Cancelled),
        };
        let requests = attempts.load(Ordering::Relaxed);
        let stats = CallStats {
            requests,
            retries: requests.saturating_sub(1),
            rate_limited: rate_limited.load(Ordering::Relaxed),
            budget_wait: Duration::from_millis(u64::from(waited_ms.load(Ordering::Relaxed))),
        };
        CallEnded {
            retries: stats.retries,
            rate_limited: stats.rate_limited,
            budget_wait: stats.budget_wait,
        }
        .emit();
        (result, stats)
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        url: &Url,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let token = self.token()?;
        let transport = |source| ApiError::Transport {
            url: url.to_string(),
            source,
        };
        let resp = match request.header("auth", token.expose()).send().await {
            Ok(r) => r,
            Err(e) => {
                RequestAnswered { status: None }.emit();
                return Err(transport(e));
            }
        };
        let status = resp.status();
        RequestAnswered {
            status: Some(status.as_u16()),
        }
        .emit();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        if status.is_redirection() {
            return Err(ApiError::Redirected {
                url: url.to_string(),
                status: status.as_u16(),
                location: header(reqwest::header::LOCATION)
                    .unwrap_or_else(|| "(no Location)".into()),
            });
        }
        let retry_after = header(reqwest::header::RETRY_AFTER)
            .as_deref()
            .and_then(parse_retry_after);
        // Reading the body can fail on its own (a connection dropped mid-answer).
        let bytes = read_bounded(url, resp, self.client.max_response_bytes).await?;
        let asked = Asked {
            url,
            credentials: &self.credentials,
            bot: &self.bot_id,
        };
        classify(&asked, (status.as_u16(), &bytes), retry_after)
    }

    /// The shared HTTP client, for a request of this scope's to build.
    pub(super) fn http(&self) -> &reqwest::Client {
        &self.client.http
    }

    /// The URL of `path` under the API's `api/public/` (e.g. `["bots"]`).
    pub(super) fn public_url(&self, path: &[&str]) -> Url {
        self.client.public_url(path)
    }

    /// A URL under `/api/1.1/public/` (getLLMUsageLogs).
    pub(super) fn public_url_v1_1(&self, path: &[&str]) -> Url {
        self.client.api_url(&["api", "1.1", "public"], path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_for_both_scopes() {
        let client = KoreClient::new(&ClientSettings {
            base_url: Url::parse("https://bots.kore.ai/").unwrap(),
            page_size: 100,
            max_page_size: 100,
            timeout: Duration::from_secs(1),
            requests_per_minute: 0,
            requests_per_hour: 0,
            retry: RetryPolicy::default(),
            max_response_bytes: 1 << 20,
        })
        .unwrap();
        let creds = Credentials::Token(crate::secret::Secret::new("t"));
        let budget = Arc::new(RequestBudget::unlimited());
        let bot = client.scope_api(
            "st-1",
            creds.clone(),
            budget.clone(),
            Arc::new(PageSize::new(100, 100)),
        );
        assert_eq!(
            bot.url.as_str(),
            "https://bots.kore.ai/api/public/bot/st-1/getSessions"
        );
        let account = client.scope_api(
            ACCOUNT_BOT_ID,
            creds,
            budget,
            Arc::new(PageSize::new(100, 100)),
        );
        assert_eq!(
            account.url.as_str(),
            "https://bots.kore.ai/api/public/getSessions"
        );
    }
}
