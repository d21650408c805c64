//! `kore-sync bench --bare-download`: the backfill's getSessions pages
//! (from the simulator's log) fetched again as bare downloads
//! (`sync::bare`), so the backfill's wall time can be set against the
//! least any client could take to fetch the same bytes (issue 23: a sync
//! within four times it).

use crate::sim::LoggedRequest;
use crate::sync::SyncContext;
use crate::sync::bare::{BareDownload, BarePage, download_pages};

/// Replays the answered getSessions requests of `logged`.
pub(super) async fn replay(
    ctx: &SyncContext,
    logged: &[LoggedRequest],
) -> anyhow::Result<BareDownload> {
    let pages: Vec<BarePage> = logged
        .iter()
        .filter(|r| r.resource == "sessions" && r.status == 200)
        .map(|r| BarePage {
            bot_id: r.scope.clone(),
            containment_type: r.containment_type.clone(),
            date_from: r.date_from,
            date_to: r.date_to,
            skip: r.skip,
            limit: r.limit,
        })
        .collect();
    Ok(download_pages(ctx, &pages).await?)
}
