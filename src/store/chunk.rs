//! Storing a chunk of a window still being read, for the resources whose
//! records are staged and compared (analytics events, LLM usage): one
//! transaction of its own, the watermark left where it is (a window
//! completely read commits with the others waiting, `window_group`).

use super::WindowCommit;
use super::error::{QueryContext, StoreError};
use super::noted_days::{DayNoting, NotedDays};
use crate::model::StreamKey;
use duckdb::{Connection, Transaction};

/// Runs `store` (which returns the records received and written) in a
/// transaction of its own and answers with the stream's watermark as it
/// stands.
pub(super) fn commit_chunk(
    (conn, noted): (&mut Connection, &NotedDays),
    key: &StreamKey,
    store: impl FnOnce(&Transaction<'_>, &mut DayNoting<'_>) -> Result<(usize, usize), StoreError>,
) -> Result<WindowCommit, StoreError> {
    let tx = conn
        .transaction()
        .doing("beginning a chunk's transaction")?;
    let mut days = noted.noting();
    let (n_received, n_written) = store(&tx, &mut days)?;
    let watermark = super::runs::watermark_with_filter(&tx, key)?.0;
    tx.commit().doing("committing a chunk")?;
    noted.committed(days);
    Ok(WindowCommit {
        n_received,
        n_written,
        n_deleted: 0,
        n_marked: 0,
        watermark,
    })
}
