//! `kore-sync status`: the warehouse's counts, publications and each
//! stream's watermark and last run, as a table or (`--json`) for scripts.

use super::open_store;
use super::render::{StatusJson, print_status};
use crate::config::Config;
use chrono::Utc;

/// `kore-sync status [--json]`.
pub async fn status(config: Config, json: bool) -> anyhow::Result<()> {
    let store = open_store(&config.warehouse).await?;
    let report = store.status().await?;
    if json {
        let out = StatusJson::new(&report, Utc::now());
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_status(store.path(), &report, Utc::now());
    }
    Ok(())
}
