//! What a pass needs: the sync settings, the scopes (bots, or the account)
//! each with its API view and request budget, the warehouse, and where to
//! publish. Built once from the configuration by the command that runs the
//! pass; `sync` never reads the configuration itself.

use super::plan::PlanSettings;
use super::resource::window_request;
use crate::api::{
    ApiError, CallStats, ClientSettings, Credentials, KoreApi, KoreClient, PageSize, RequestBudget,
};
use crate::model::{AnalyticsType, ContainmentType, Deletes, StreamFilter, Window};
use crate::privacy::PrivacyRules;
use crate::store::{SessionStore, WarehouseSettings};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How passes read (`[sync]` in the config).
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub plan: PlanSettings,
    /// When a stream's filter changes, read it again from `plan.start`
    /// (true) or keep the watermark (false).
    pub restart_on_filter_change: bool,
    /// A pass stops (committed windows kept) when it runs longer than this.
    pub pass_deadline: Duration,
    /// The session streams of every scope, one per containment type.
    /// Invariant: not empty, no duplicates.
    pub containment_types: Vec<ContainmentType>,
    /// How far behind the watermark each pass checks counts against the
    /// API (`sync.reconcile`); zero: not at all. Invariant: zero, or at
    /// least `plan.lookback`.
    pub reconcile: chrono::TimeDelta,
    /// What a session the API no longer has means (`sync.deletes`).
    pub deletes: Deletes,
    /// Conversation messages (`[messages]`).
    pub messages: MessagesSettings,
    /// NLU analytics (`[analytics]`).
    pub analytics: AnalyticsSettings,
    /// What every record passes through before it is stored (`[privacy]`
    /// and `messages.store_text`).
    pub privacy: PrivacyRules,
}

/// `[messages]`: whether and how conversation messages are synced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessagesSettings {
    /// For bots that do not say otherwise (`[[bots]] messages`).
    pub enabled: bool,
    /// Channels read besides those the bot's stored sessions use.
    pub channels: Vec<String>,
}

/// `[analytics]`: whether and which NLU analytics are synced.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsSettings {
    /// For bots that do not say otherwise (`[[bots]] analytics`).
    pub enabled: bool,
    /// One stream per bot and type. Invariant: not empty, no duplicates.
    pub types: Vec<AnalyticsType>,
    /// Also the GenAI and LLM usage logs (one stream per bot).
    pub llm_usage: bool,
}

impl Default for AnalyticsSettings {
    /// Off; every type once enabled.
    fn default() -> Self {
        AnalyticsSettings {
            enabled: false,
            types: AnalyticsType::ALL.to_vec(),
            llm_usage: true,
        }
    }
}

/// One bot, or the account scope (keyed [`crate::model::ACCOUNT_BOT_ID`]),
/// with the credentials to use for it and the filter its streams apply.
#[derive(Debug, Clone)]
pub struct Scope {
    pub bot_id: String,
    /// The name `[[bots]]` gives it, if any.
    pub name: Option<String>,
    /// Whether its messages are synced (None: `messages.enabled`; the
    /// account scope never, as getMessagesV2 is per bot).
    pub messages: Option<bool>,
    /// Whether its NLU analytics are synced (None: `analytics.enabled`;
    /// the account scope never, as getAnalytics is per bot).
    pub analytics: Option<bool>,
    pub credentials: Credentials,
    pub filter: StreamFilter,
}

/// A scope with its view of the API. Keep it for the life of the process:
/// the view's request budget remembers the last hour's requests.
#[derive(Debug, Clone)]
pub struct ScopeApi {
    pub scope: Scope,
    pub api: KoreApi,
    /// The page size of its message streams, learned apart from sessions'
    /// (getMessagesV2 answers up to 10,000 a page).
    pub message_pages: Arc<PageSize>,
    /// The page size of its analytics streams (getAnalytics documents no
    /// largest `limit`), learned apart from the others'.
    pub analytics_pages: Arc<PageSize>,
    /// The page size of its LLM usage stream: fixed at `api.max_page_size`
    /// (a short page tells nothing there, see `sync::llm`).
    pub llm_pages: Arc<PageSize>,
}

/// The most messages getMessagesV2 returns in one page (v2's documented
/// limit): asked for first, then whatever the server is seen to honour.
pub const MESSAGES_PAGE: u32 = 10_000;

impl ScopeApi {
    /// How many sessions of one containment type the scope has in `window`
    /// (its filter applied), by one request for a single record: the
    /// answer's `total`. None when the server does not say.
    pub async fn count_sessions(
        &self,
        containment: ContainmentType,
        window: Window,
        max_budget_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> (Result<Option<u64>, ApiError>, CallStats) {
        let body = window_request(window, 0, 1, &self.scope.filter);
        let (result, stats) = self
            .api
            .get_sessions(Some(containment), &body, max_budget_wait, cancel)
            .await;
        (result.map(|page| page.total), stats)
    }
}

/// What building a [`SyncContext`] takes, borrowed from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct SyncSetup<'a> {
    pub client: &'a ClientSettings,
    pub sync: &'a SyncSettings,
    pub scopes: &'a [Scope],
    pub warehouse: &'a WarehouseSettings,
}

/// Everything a pass needs, cheap to clone into tasks.
#[derive(Clone)]
pub struct SyncContext {
    pub settings: Arc<SyncSettings>,
    pub warehouse: Arc<WarehouseSettings>,
    pub store: SessionStore,
    /// One per configured scope, in config order. Shared, not copied: every
    /// scope's task holds a clone of the context, and a copy per task would
    /// cost memory in the square of the fleet's size.
    pub scopes: Arc<[ScopeApi]>,
}

impl SyncContext {
    /// A context with fresh API views (and so fresh request budgets).
    pub fn new(setup: SyncSetup<'_>, store: SessionStore) -> Result<Self, reqwest::Error> {
        let scopes = build_scopes(setup.client, setup.scopes)?;
        Ok(Self::with_scopes(setup, store, scopes))
    }

    /// A context reusing API views that live longer than one store (the
    /// daemon opens the warehouse per pass but keeps its budgets).
    pub fn with_scopes(setup: SyncSetup<'_>, store: SessionStore, scopes: Vec<ScopeApi>) -> Self {
        SyncContext {
            settings: Arc::new(setup.sync.clone()),
            warehouse: Arc::new(setup.warehouse.clone()),
            store,
            scopes: scopes.into(),
        }
    }

    /// The scopes a pass or `verify` visits: all, or only the one keyed
    /// `only_bot`.
    pub fn selected<'a>(&'a self, only_bot: Option<&'a str>) -> impl Iterator<Item = &'a ScopeApi> {
        self.scopes
            .iter()
            .filter(move |s| only_bot.is_none_or(|b| b == s.scope.bot_id))
    }

    /// The scope keyed `bot_id`, if configured.
    pub fn scope(&self, bot_id: &str) -> Option<&ScopeApi> {
        self.scopes.iter().find(|s| s.scope.bot_id == bot_id)
    }
}

/// Builds the API views for every scope, each with its own request budget
/// (Kore.ai limits per bot, and per account for the account scope) and page
/// size, sharing one HTTP client.
pub fn build_scopes(
    client: &ClientSettings,
    scopes: &[Scope],
) -> Result<Vec<ScopeApi>, reqwest::Error> {
    let http = KoreClient::new(client)?;
    Ok(scopes
        .iter()
        .map(|scope| {
            let budget = Arc::new(RequestBudget::new(
                client.requests_per_minute,
                client.requests_per_hour,
            ));
            let pages = Arc::new(PageSize::new(client.page_size, client.max_page_size));
            ScopeApi {
                api: http.scope_api(&scope.bot_id, scope.credentials.clone(), budget, pages),
                message_pages: Arc::new(PageSize::new(client.page_size, MESSAGES_PAGE)),
                analytics_pages: Arc::new(PageSize::new(client.page_size, client.max_page_size)),
                llm_pages: Arc::new(PageSize::new(client.max_page_size, client.max_page_size)),
                scope: scope.clone(),
            }
        })
        .collect())
}
