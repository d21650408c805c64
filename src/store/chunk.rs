//! Storing a chunk of a window still being read, for the resources whose
//! records are staged and compared (analytics events, LLM usage): one
//! transaction of its own, the watermark left where it is (a window
//! completely read commits with the others waiting, `window_group`);
//! `SessionStore::commit_staged` sends either way.

use super::commit::Advance;
use super::error::{QueryContext, StoreError};
use super::noted_days::{DayNoting, NotedDays};
use super::window_group::WindowRecords;
use super::{SessionStore, WindowCommit};
use crate::model::{Batch, StreamKey};
use chrono::{DateTime, Utc};
use duckdb::{Connection, Transaction};

/// How a resource's batches are stored in a transaction: per batch,
/// (records received, records written).
pub(super) type StoreBatches<R> = fn(
    &Transaction<'_>,
    &[(&StreamKey, &Batch<R>)],
    (DateTime<Utc>, &mut DayNoting<'_>),
) -> Result<Vec<(usize, usize)>, StoreError>;

/// A completely read window's batch as what `window_group` stores.
pub(super) type AsWindow<R> = fn(Batch<R>) -> WindowRecords;

impl SessionStore {
    /// Stores `batch` of a window still being read (`advance` None), in a
    /// transaction of its own with `store`; or the rest of a window
    /// completely read, as `records` says, with its watermark move (with
    /// the other windows waiting, `window_group`).
    pub(super) async fn commit_staged<R: Send + 'static>(
        &self,
        (key, batch, advance): (&StreamKey, Batch<R>, Option<Advance>),
        (store, records): (StoreBatches<R>, AsWindow<R>),
    ) -> Result<WindowCommit, StoreError> {
        let Some(advance) = advance else {
            let (key, noted) = (key.clone(), self.noted_days.clone());
            return self
                .with(move |c| {
                    // Analytics events may change (LLM calls may too: the
                    // counts are forgotten either way).
                    c.analytics_counts.forget();
                    commit_chunk((&mut c.conn, &noted), &key, |tx, days| {
                        Ok(store(tx, &[(&key, &batch)], (Utc::now(), days))?[0])
                    })
                })
                .await;
        };
        self.commit_in_group(key, advance, records(batch)).await
    }
}

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
