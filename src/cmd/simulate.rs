//! `kore-sync simulate`: the demo's simulated Kore.ai API alone on an
//! address of the user's choosing, with a config that points at it, to try
//! a configuration or prototype dashboards without credentials.

use super::demo::{demo_config_toml, start_demo_simulator};
use super::{Invocation, Outcome};
use crate::cli::SimulateArgs;
use chrono::{Duration, Utc};
use std::path::Path;

/// `kore-sync simulate`: the simulated API alone, until Ctrl-C.
pub async fn run(args: SimulateArgs, inv: &Invocation) -> anyhow::Result<Outcome> {
    let SimulateArgs {
        listen,
        days,
        seed,
        sessions_per_day,
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
