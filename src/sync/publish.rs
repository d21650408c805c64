//! After a successful pass: refresh the derived `tags_wide` view, publish the
//! read copy for BI tools, and export changed days as Parquet — in that
//! order, so the copy and the export carry the same data.
//!
//! Architecture invariant: only a pass in which no stream failed or was
//! interrupted is published, so readers never see a half-written pass; a
//! failed publication is logged and retried after the next pass, and never
//! fails the pass itself (the warehouse already holds the data).

use super::{PassReport, SyncContext};
use crate::store::{SessionStore, WarehouseSettings};
use tracing::{info, warn};

/// What publishing did; `None` fields were switched off or skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    pub read_copy_sessions: Option<i64>,
    pub parquet_days: Option<usize>,
}

/// Publishes after a pass in which no stream failed or was interrupted.
pub async fn after_pass(ctx: &SyncContext, report: &PassReport) -> Published {
    if !report.all_succeeded() {
        warn!("not publishing: a stream failed or was interrupted; readers keep the previous copy");
        return Published::default();
    }
    publish(&ctx.store, &ctx.warehouse).await
}

/// Refreshes `tags_wide`, then publishes whatever the settings switch on.
pub async fn publish(store: &SessionStore, settings: &WarehouseSettings) -> Published {
    let mut out = Published::default();
    if let Err(e) = store.refresh_tags_wide().await {
        warn!(error = %e, "could not refresh the tags_wide view");
    }
    if let Some(dest) = &settings.publish {
        match store.publish_copy(dest).await {
            Ok(n) => {
                info!(path = %dest.display(), n_sessions = n, "published the read copy");
                out.read_copy_sessions = Some(n);
            }
            Err(e) => {
                warn!(path = %dest.display(), error = %e, "could not publish the read copy; will try after the next pass")
            }
        }
    }
    if let Some(dir) = &settings.parquet_dir {
        match store.export_parquet(dir, false).await {
            Ok(n) => {
                info!(dir = %dir.display(), n_days = n, "exported changed days as Parquet");
                out.parquet_days = Some(n);
            }
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "could not export Parquet; will try after the next pass")
            }
        }
    }
    out
}
