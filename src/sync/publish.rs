//! After a successful pass: refresh the derived `tags_wide` view, export
//! changed days as Parquet, and publish the read copy for BI tools — in that
//! order, so the copy and the export carry the same data (and a catalog read
//! copy finds the files it reads).
//!
//! Architecture invariant: only a pass in which no stream failed or was
//! interrupted is published, so readers never see a half-written pass; a
//! failed publication is logged and retried after the next pass, and never
//! fails the pass itself (the warehouse already holds the data).

use super::{PassReport, SyncContext};
use crate::store::{ReadCopy, ReadCopyForm, SessionStore, StoreError, WarehouseSettings};
use std::path::Path;
use tracing::{debug, error, info, warn};

/// What publishing did; `None` fields were switched off or failed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    pub read_copy: Option<ReadCopy>,
    pub parquet_days: Option<usize>,
}

/// Publishes after a pass in which no stream failed or was interrupted.
pub async fn after_pass(ctx: &SyncContext, report: &PassReport) -> Published {
    if !report.all_succeeded() {
        warn!("not publishing: a stream failed or was interrupted; readers keep the previous copy");
        return Published::default();
    }
    publish(&ctx.store, &ctx.warehouse, &report.pass_id).await
}

/// Publishes now, outside a pass: for commands that changed the warehouse
/// without one (`verify`, `fetch`). They export under an id of their own,
/// so the Parquet manifest still names who wrote each day.
pub async fn publish_now(ctx: &SyncContext) -> Published {
    let pass_id = uuid::Uuid::new_v4().to_string();
    publish(&ctx.store, &ctx.warehouse, &pass_id).await
}

/// Refreshes `tags_wide`, exports changed days as Parquet, then publishes
/// the read copy — after the export, since a catalog read copy reads the
/// exported files (and is not rewritten if the export failed).
pub async fn publish(
    store: &SessionStore,
    settings: &WarehouseSettings,
    pass_id: &str,
) -> Published {
    let mut out = Published::default();
    if let Err(e) = store.refresh_tags_wide().await {
        warn!(error = %e, "could not refresh the tags_wide view");
    }
    if let Some(target) = &settings.parquet {
        match store.export_parquet(target, Some(pass_id)).await {
            Ok(n) => {
                info!(target = %target, n_days = n, "exported changed days as Parquet");
                out.parquet_days = Some(n);
            }
            Err(e) if needs_operator(&e) => {
                error!(target = %target, error = %e, "could not export Parquet; the days stay marked and are tried after the next pass")
            }
            Err(e) => {
                warn!(target = %target, error = %e, "could not export Parquet; the days stay marked and are tried after the next pass")
            }
        }
    }
    let catalog = matches!(settings.read_copy_form, ReadCopyForm::Views { .. });
    if catalog && out.parquet_days.is_none() {
        warn!(
            "read catalog left as is: it reads the Parquet export, which failed; will try after the next pass"
        );
        return out;
    }
    if let Some(dest) = &settings.publish {
        out.read_copy = publish_read_copy(store, settings, dest).await;
    }
    out
}

/// The read copy (or catalog), if it is due.
async fn publish_read_copy(
    store: &SessionStore,
    settings: &WarehouseSettings,
    dest: &Path,
) -> Option<ReadCopy> {
    let form = &settings.read_copy_form;
    match store
        .publish_copy((dest, form), settings.publish_interval)
        .await
    {
        Ok(done) => {
            match done {
                ReadCopy::Written { n_sessions, bytes } => {
                    info!(path = %dest.display(), n_sessions, bytes, "published the read copy")
                }
                ReadCopy::Unchanged => {
                    debug!(path = %dest.display(), "read copy left as is: nothing changed")
                }
                ReadCopy::NotYet => debug!(
                    path = %dest.display(),
                    interval = %humantime::format_duration(settings.publish_interval),
                    "read copy left as is until warehouse.publish_interval has passed"
                ),
            }
            Some(done)
        }
        Err(e) if needs_operator(&e) => {
            error!(path = %dest.display(), error = %e, "could not publish the read copy; will try after the next pass");
            None
        }
        Err(e) => {
            warn!(path = %dest.display(), error = %e, "could not publish the read copy; will try after the next pass");
            None
        }
    }
}

/// Whether a publication failed in a way the next pass cannot get past
/// alone — out of memory or of temporary disk, or a disk that refuses the
/// write — so an
/// operator must act (logged at ERROR); anything else may pass (WARN).
fn needs_operator(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::OutOfMemory { .. } | StoreError::TempFull { .. } | StoreError::Storage { .. }
    )
}
