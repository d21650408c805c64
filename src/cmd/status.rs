//! `kore-sync status`: the warehouse's counts, publications and each
//! stream's watermark and last run, as a table or (`--json`) for scripts.
//! Needs only the warehouse, no API settings.

use super::render::{StatusJson, print_status};
use super::{Invocation, Outcome, open_store};
use crate::cli::StatusArgs;
use chrono::Utc;

/// `kore-sync status [--json] [--db FILE]`.
pub async fn run(args: StatusArgs, inv: &Invocation) -> anyhow::Result<Outcome> {
    let store = open_store(&inv.warehouse(args.db.as_deref())?).await?;
    let report = store.status().await?;
    if args.json {
        let out = StatusJson::new(&report, Utc::now());
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_status(store.path(), &report, Utc::now());
    }
    Ok(Outcome::Complete)
}
