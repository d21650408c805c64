//! `kore-sync export --parquet DIR`: the whole history as hive-partitioned
//! Parquet, whatever was exported before.

use super::open_store;
use crate::config::Config;
use anyhow::Context;
use std::path::Path;

/// `kore-sync export --parquet DIR`.
pub async fn export(config: Config, dir: &Path) -> anyhow::Result<()> {
    let store = open_store(&config.warehouse).await?;
    let days = store
        .export_parquet(dir, true)
        .await
        .with_context(|| format!("could not export Parquet to {}", dir.display()))?;
    println!(
        "exported {days} days to {}: sessions/date=YYYY-MM-DD/data.parquet and session_tags/date=YYYY-MM-DD/data.parquet",
        dir.display()
    );
    Ok(())
}
