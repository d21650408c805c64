//! Bare downloads of getSessions pages for the benchmark: each bot's pages
//! fetched in the order given, the bots at once, over their scopes' clients,
//! every body read and thrown away (no budget, no retries, no parsing). A
//! sync's wall time is set against this floor (issue 23).

use super::context::SyncContext;
use crate::api::ApiError;
use crate::api::wire::{SessionsRequest, format_api_time};
use crate::model::ContainmentType;
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

/// One page to fetch: what a getSessions request of a backfill asked.
#[derive(Debug, Clone)]
pub struct BarePage {
    pub bot_id: String,
    /// As the API names it (`selfService`, …); None: not sent.
    pub containment_type: Option<String>,
    pub date_from: Option<DateTime<Utc>>,
    pub date_to: Option<DateTime<Utc>>,
    pub skip: u64,
    pub limit: Option<u64>,
}

/// What fetching the pages took.
#[derive(Debug, Clone, Copy)]
pub struct BareDownload {
    pub elapsed: Duration,
    pub n_pages: usize,
    pub n_bytes: usize,
}

/// Fetches `pages` through the clients of `ctx`'s scopes; the first page
/// that fails ends it.
pub async fn download_pages(
    ctx: &SyncContext,
    pages: &[BarePage],
) -> Result<BareDownload, ApiError> {
    let started = Instant::now();
    let per_bot = ctx.selected(None).map(|scope| {
        let mine: Vec<&BarePage> = pages
            .iter()
            .filter(|p| p.bot_id == scope.scope.bot_id)
            .collect();
        async move {
            let mut n_bytes = 0;
            for p in &mine {
                let body = SessionsRequest {
                    date_from: p.date_from.map(format_api_time),
                    date_to: p.date_to.map(format_api_time),
                    skip: Some(p.skip),
                    limit: p.limit,
                    ..SessionsRequest::default()
                };
                let containment = p
                    .containment_type
                    .as_deref()
                    .and_then(ContainmentType::parse);
                n_bytes += scope.api.download_sessions(containment, &body).await?;
            }
            Ok::<_, ApiError>((mine.len(), n_bytes))
        }
    });
    let mut done = BareDownload {
        elapsed: Duration::ZERO,
        n_pages: 0,
        n_bytes: 0,
    };
    for bot in futures_util::future::join_all(per_bot).await {
        let (n_pages, n_bytes) = bot?;
        done.n_pages += n_pages;
        done.n_bytes += n_bytes;
    }
    done.elapsed = started.elapsed();
    Ok(done)
}
