//! `kore-sync simulate`: the demo's simulated Kore.ai API alone on an
//! address of the user's choosing, with a config that points at it, to try
//! a configuration or prototype dashboards without credentials.

use super::demo::{demo_config_toml, start_demo_simulator};
use super::{Invocation, Outcome};
use crate::bench::fleet::Fleet;
use crate::cli::SimulateArgs;
use chrono::{Duration, Utc};
use std::path::Path;

/// `kore-sync simulate`: the simulated API alone, until Ctrl-C.
pub async fn run(args: SimulateArgs, inv: &Invocation) -> anyhow::Result<Outcome> {
    if let Some(n_bots) = args.fleet {
        return run_fleet(&args, n_bots, inv).await;
    }
    let SimulateArgs {
        listen,
        days,
        seed,
        sessions_per_day,
        ..
    } = args;
    let sim = start_demo_simulator(listen, (days, sessions_per_day), seed).await?;
    let warehouse = Path::new("kore-sim.duckdb");
    println!(
        "simulated Kore.ai Sessions API listening on {} ({days} days of sessions, seed {seed}).\n\
         A config that syncs from it (save as kore-sync.toml):\n\n{}\n\
         The account scope is available with client_id \"cs-demo-account\", client_secret \"demo-account-secret\".\n\
         Stop with Ctrl-C.",
        sim.base_url(),
        demo_config_toml(
            &sim.base_url(),
            warehouse,
            Utc::now() - Duration::days(days)
        )
    );
    inv.cancel.cancelled().await;
    sim.stop();
    Ok(Outcome::Complete)
}

/// `kore-sync simulate --fleet N`: bots of generated sessions, served as
/// `bench --bots` serves them, until Ctrl-C.
async fn run_fleet(args: &SimulateArgs, n_bots: u32, inv: &Invocation) -> anyhow::Result<Outcome> {
    let now = Utc::now();
    // Whole seconds, so the planner's millisecond windows and the
    // simulator agree (as in the benchmark).
    let now = now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
    let fleet = Fleet {
        n_bots,
        per_bot: u64::from(args.sessions_per_day) * args.days.max(1) as u64,
        from: now - Duration::days(args.days),
        to: now - Duration::hours(1),
        rate_limit: args.rate_limit,
        channels: args.channels,
        server_page_limit: 10_000,
        page_size: 100,
        max_page_size: 1000,
        window: "6d".into(),
        analytics: args.analytics,
    };
    let sim = fleet.serve(args.listen).await?;
    println!(
        "simulated fleet of {n_bots} bots listening on {} ({} sessions each over {} days).\n\
         A config that syncs it (save as kore-sync.toml):\n\n{}\nStop with Ctrl-C.",
        sim.base_url(),
        fleet.per_bot,
        args.days,
        fleet.config_toml(&sim.base_url(), Path::new("kore-fleet.duckdb"))
    );
    inv.cancel.cancelled().await;
    sim.stop();
    Ok(Outcome::Complete)
}
