//! `kore-sync sync`: one pass over every stream, then exit.

use super::{Invocation, Outcome, open_context, progress, render};
use crate::sync::{PassOptions, publish, run_pass};

/// `kore-sync sync`: one pass, then exit. Complete if every stream
/// succeeded.
pub async fn run(inv: &Invocation) -> anyhow::Result<Outcome> {
    let ctx = open_context(&inv.load()?).await?;
    let opts = PassOptions {
        observer: progress::terminal_observer(),
        ..PassOptions::manual()
    };
    let report = run_pass(&ctx, &opts, &inv.cancel).await?;
    render::print_pass(&report);
    publish::after_pass(&ctx, &report).await;
    Ok(Outcome::of(report.all_succeeded()))
}
