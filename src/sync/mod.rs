//! The sync: `plan` (pure window planning), `run` (the I/O runner that
//! pages windows from the API and commits them to the store), and `publish`
//! (the read copy and Parquet export after a successful pass).

pub mod plan;
pub mod publish;
pub mod run;

pub use run::{
    Observer, PassObserver, PassOptions, PassReport, PassTrigger, StreamReport, SyncContext,
    run_pass,
};

use crate::api::{KoreClient, PageSize, RequestBudget, SessionsApi};
use crate::config::Config;
use crate::store::SessionStore;
use std::sync::Arc;

impl SyncContext {
    pub fn new(config: Arc<Config>, store: SessionStore) -> Result<Self, reqwest::Error> {
        let apis = build_apis(&config)?;
        Ok(SyncContext {
            config,
            store,
            apis,
        })
    }
}

/// Builds the API views for every configured scope, each with its own
/// request budget (Kore.ai limits per bot, and per account for the account
/// scope). Keep them for the life of the process: the budgets remember the
/// last hour's requests.
pub fn build_apis(config: &Config) -> Result<Vec<SessionsApi>, reqwest::Error> {
    let client = KoreClient::new(
        config.api.base_url.clone(),
        config.api.timeout,
        config.api.retry.clone(),
    )?;
    Ok(config
        .scopes
        .iter()
        .map(|scope| {
            let budget = Arc::new(RequestBudget::new(
                config.api.requests_per_minute,
                config.api.requests_per_hour,
            ));
            let pages = Arc::new(PageSize::new(
                config.api.page_size,
                config.api.max_page_size,
            ));
            client.sessions_api(&scope.bot_id, scope.credentials.clone(), budget, pages)
        })
        .collect())
}
