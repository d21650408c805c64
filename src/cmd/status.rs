//! `kore-sync status`: the warehouse's counts, publications and each
//! stream's watermark and last run, as a table or (`--json`) for scripts.
//! Needs only the warehouse, no API settings.

use super::open_store;
use super::render::{StatusJson, print_status};
use crate::store::WarehouseSettings;
use chrono::Utc;

/// `kore-sync status [--json] [--db FILE]`.
pub async fn status(warehouse: &WarehouseSettings, json: bool) -> anyhow::Result<()> {
    let store = open_store(warehouse).await?;
    let report = store.status().await?;
    if json {
        let out = StatusJson::new(&report, Utc::now());
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_status(store.path(), &report, Utc::now());
    }
    Ok(())
}
