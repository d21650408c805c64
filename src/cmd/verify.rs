//! `kore-sync verify`: compares the warehouse with the API's counts over a
//! range of history, window by window, and repairs the windows that differ
//! (unless `--dry-run`). Exit 0 when the warehouse ends equal (with
//! `--dry-run`: when nothing differs), 1 otherwise.

use super::{open_context, render, require_configured};
use crate::config::Config;
use crate::sync::{PassReport, VerifyOptions, publish, verify};
use anyhow::bail;
use tokio_util::sync::CancellationToken;

/// `kore-sync verify`. True if the warehouse equals the API over the range.
pub async fn verify_cmd(
    config: Config,
    opts: VerifyOptions,
    json: bool,
    cancel: CancellationToken,
) -> anyhow::Result<bool> {
    if let Some(b) = &opts.only_bot {
        require_configured(&config, b)?;
    }
    if let (Some(from), Some(to)) = (opts.from, opts.to)
        && to <= from
    {
        bail!("--to ({to}) must be after --from ({from})");
    }
    let ctx = open_context(&config).await?;
    let report = verify(&ctx, &opts, &cancel).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&render::VerifyJson::new(&report))?
        );
    } else {
        render::print_verify(&report, opts.dry_run);
    }
    let changed = report
        .streams
        .iter()
        .any(|s| s.sessions_written + s.sessions_deleted + s.sessions_marked > 0);
    if changed {
        publish::after_pass(&ctx, &PassReport::default()).await;
    }
    Ok(report.all_equal())
}
