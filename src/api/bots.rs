//! The Admin Console's bot list, for names: `GET /api/public/bots`, paged by
//! `offset` and `limit` (at most 50) until `availableMore` is false. It is
//! an account-level call, made with the account scope's credentials and
//! request budget.

use super::client::{CallStats, KoreApi};
use super::error::ApiError;
use super::wire::{BOTS_PAGE, BotsResponse, bot_records};
use crate::model::Bot;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A guard against a server that always says `availableMore`: no account
/// has this many pages of bots.
const MAX_BOT_PAGES: u32 = 1_000;

impl KoreApi {
    /// Every bot of the account, without their `jwtApps`. Only the account
    /// scope's (Admin Console app's) credentials may call it.
    pub async fn list_bots(
        &self,
        max_budget_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> (Result<Vec<Bot>, ApiError>, CallStats) {
        let url = self.public_url(&["bots"]);
        let mut bots = Vec::new();
        let mut stats = CallStats::default();
        for page in 0..MAX_BOT_PAGES {
            let offset = page * BOTS_PAGE;
            let request = || {
                self.http()
                    .get(url.clone())
                    .query(&[("offset", offset), ("limit", BOTS_PAGE)])
            };
            let (answer, cost) = self
                .call::<BotsResponse>(&url, request, max_budget_wait, cancel)
                .await;
            stats += cost;
            let answer = match answer {
                Ok(a) => a,
                Err(e) => return (Err(e), stats),
            };
            let (more, n) = (answer.available_more, answer.bots.len());
            bots.extend(bot_records(answer));
            if !more || n == 0 {
                return (Ok(bots), stats);
            }
        }
        (
            Err(ApiError::EndlessPaging {
                pages: MAX_BOT_PAGES,
            }),
            stats,
        )
    }
}
