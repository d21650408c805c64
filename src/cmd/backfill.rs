//! `kore-sync backfill`: re-read a range of history, upserting; watermarks
//! never move back.

use super::{Invocation, Outcome, date_flag, open_context, progress, render, require_configured};
use crate::cli::BackfillArgs;
use crate::config;
use crate::sync::{PassOptions, publish, run_pass};
use anyhow::bail;
use chrono::Utc;

/// `kore-sync backfill --from DATE [--to DATE] [--bot ID]`: re-read
/// `[from, to)`, upserting. Complete if every stream succeeded.
pub async fn run(args: BackfillArgs, inv: &Invocation) -> anyhow::Result<Outcome> {
    let from = config::parse_instant(&args.from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let to = date_flag("--to", args.to.as_deref())?.unwrap_or_else(Utc::now);
    let config = inv.load()?;
    if let Some(b) = &args.bot {
        require_configured(&config, b)?;
    }
    if to <= from {
        bail!("--to ({to}) must be after --from ({from})");
    }
    let ctx = open_context(&config).await?;
    let opts = PassOptions {
        observer: progress::terminal_observer(),
        ..PassOptions::backfill((from, to), args.bot)
    };
    let report = run_pass(&ctx, &opts, &inv.cancel).await?;
    render::print_pass(&report);
    publish::after_pass(&ctx, &report).await;
    Ok(Outcome::of(report.all_succeeded()))
}
