//! `kore-sync verify`: compares the warehouse with the API's counts over a
//! range of history, window by window, and repairs the windows that differ
//! (unless `--dry-run`). Exit 0 when the warehouse ends equal (with
//! `--dry-run`: when nothing differs), 1 otherwise.

use super::{
    Invocation, Outcome, date_flag, open_context, progress, render_verify, require_configured,
};
use crate::cli::VerifyArgs;
use crate::sync::{VerifyOptions, publish, verify};
use anyhow::bail;

/// `kore-sync verify`. Complete if the warehouse equals the API over the
/// range.
pub async fn run(args: VerifyArgs, inv: &Invocation) -> anyhow::Result<Outcome> {
    let opts = VerifyOptions {
        from: date_flag("--from", args.from.as_deref())?,
        to: date_flag("--to", args.to.as_deref())?,
        only_bot: args.bot,
        dry_run: args.dry_run,
        // Asked for explicitly: waits out the budget, no deadline.
        max_budget_wait: None,
        deadline: None,
        observer: progress::terminal_observer(),
    };
    let config = inv.load()?;
    if let Some(b) = &opts.only_bot {
        require_configured(&config, b)?;
    }
    if let (Some(from), Some(to)) = (opts.from, opts.to)
        && to <= from
    {
        bail!("--to ({to}) must be after --from ({from})");
    }
    let ctx = open_context(&config).await?;
    let report = verify(&ctx, &opts, &inv.cancel).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&render_verify::VerifyJson::new(&report))?
        );
    } else {
        render_verify::print_verify(&report, opts.dry_run);
    }
    if report.changed() {
        publish::publish_now(&ctx).await;
    }
    Ok(Outcome::of(report.all_equal()))
}
