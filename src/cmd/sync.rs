//! `kore-sync sync` (one pass, then exit) and `kore-sync backfill` (re-read
//! a range, upserting; watermarks never move back).

use super::{open_context, progress, render, require_configured};
use crate::config::Config;
use crate::sync::{PassOptions, publish, run_pass};
use anyhow::bail;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// `kore-sync sync`: one pass, then exit. True if every stream succeeded.
pub async fn sync_once(config: Config, cancel: CancellationToken) -> anyhow::Result<bool> {
    let ctx = open_context(&config).await?;
    let opts = PassOptions {
        observer: progress::terminal_observer(),
        ..PassOptions::manual()
    };
    let report = run_pass(&ctx, &opts, &cancel).await?;
    render::print_pass(&report);
    publish::after_pass(&ctx, &report).await;
    Ok(report.all_succeeded())
}

/// What `kore-sync backfill` re-reads.
#[derive(Debug, Clone)]
pub struct BackfillRequest {
    pub from: DateTime<Utc>,
    /// None: up to now.
    pub to: Option<DateTime<Utc>>,
    /// Only this bot (or `*`); None: every scope.
    pub bot: Option<String>,
}

/// `kore-sync backfill`: re-read `[from, to)`, upserting. True if every
/// stream succeeded.
pub async fn backfill(
    config: Config,
    request: BackfillRequest,
    cancel: CancellationToken,
) -> anyhow::Result<bool> {
    if let Some(b) = &request.bot {
        require_configured(&config, b)?;
    }
    let (from, to) = (request.from, request.to.unwrap_or_else(Utc::now));
    if to <= from {
        bail!("--to ({to}) must be after --from ({from})");
    }
    let ctx = open_context(&config).await?;
    let opts = PassOptions {
        observer: progress::terminal_observer(),
        ..PassOptions::backfill((from, to), request.bot)
    };
    let report = run_pass(&ctx, &opts, &cancel).await?;
    render::print_pass(&report);
    publish::after_pass(&ctx, &report).await;
    Ok(report.all_succeeded())
}
