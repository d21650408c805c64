//! `kore-sync export --parquet DIR|URL`: the whole history as
//! hive-partitioned Parquet, in a directory or an object store, whatever was
//! exported before. Needs only the warehouse, no API settings.

use super::{Invocation, Outcome, open_store};
use crate::cli::ExportArgs;
use crate::config;
use anyhow::Context;

/// `kore-sync export --parquet DIR|URL [--db FILE]`.
pub async fn run(args: ExportArgs, inv: &Invocation) -> anyhow::Result<Outcome> {
    let target = config::export_target(&args.parquet, &inv.config_path())?;
    let store = open_store(&inv.warehouse(args.db.as_deref())?).await?;
    let days = store
        .export_parquet(&target, None)
        .await
        .with_context(|| format!("could not export Parquet to {target}"))?;
    println!(
        "exported {days} days to {target}: sessions/, session_tags/, messages/ and message_tags/ \
         (each date=YYYY-MM-DD/data.parquet) and _kore_sync/manifest.json"
    );
    Ok(Outcome::Complete)
}
