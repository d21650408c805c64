//! Which message ids may be stored: a Bloom filter of the ids in
//! `messages`, kept beside the writer's connection, so a part of new
//! messages (a backfill, new messages at the head) skips the look-up of
//! stored ids. That look-up reads every row group whose id range overlaps
//! the part's, and a channel with few messages has row groups spanning
//! months: with nine channels it read about twelve rows for each one that
//! mattered (issue 23).
//!
//! Architecture invariant: the filter never says "not stored" of a stored
//! id. It is built from the table by the connection that writes it (no
//! other process can write the file meanwhile: DuckDB locks it), every id
//! the connection appends is added before its transaction commits, and it
//! lives and dies with the connection. A rolled-back or deleted id left in
//! it only makes a look-up happen that was not needed.

use super::error::{QueryContext, StoreError};
use duckdb::Transaction;
use duckdb::arrow::array::{Array, AsArray};
use std::hash::{DefaultHasher, Hasher};

/// The filter is built once a look-up found most of a part new (a
/// backfill): a pass that re-reads stored messages never pays for it.
const BUILD_WHEN_NEW: f64 = 0.5;

/// Parts smaller than this are looked up without the filter (building it
/// reads every stored id).
const BUILD_FROM: usize = 256;

/// Bits per id at the filter's capacity. It is built for twice the ids
/// stored (at least [`MIN_CAPACITY`]), dropped once full, and built again
/// when next worth it: 5 MB at a million messages.
const BITS_PER_ID: usize = 20;
const MIN_CAPACITY: usize = 1 << 16;

/// Hash functions per id: a new id is taken for stored about once in
/// 15,000 when the filter is full, once in 25 million when just built.
const HASHES: u64 = 14;

/// The ids the writer's connection knows may be stored.
#[derive(Debug, Default)]
pub(super) struct MessageIds {
    filter: Option<Bloom>,
}

#[derive(Debug)]
struct Bloom {
    bits: Vec<u64>,
    /// Ids added; past `capacity` the filter is dropped.
    n_ids: usize,
    capacity: usize,
}

impl MessageIds {
    /// Whether `id` may be stored: true unless the filter is built and
    /// rules it out.
    pub(super) fn may_be_stored(&self, id: &str) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|bloom| bloom.may_hold(id.as_bytes()))
    }

    /// Whether the filter is built (a look-up's outcome then says nothing
    /// about building it).
    pub(super) fn is_built(&self) -> bool {
        self.filter.is_some()
    }

    /// After a look-up without the filter: builds it (reading every stored
    /// id, in `tx`, so the transaction's own are among them) when the part
    /// was large and mostly new.
    pub(super) fn after_look_up(
        &mut self,
        tx: &Transaction<'_>,
        (n_part, n_stored): (usize, usize),
    ) -> Result<(), StoreError> {
        let mostly_new = (n_stored as f64) < n_part as f64 * BUILD_WHEN_NEW;
        if self.filter.is_some() || n_part < BUILD_FROM || !mostly_new {
            return Ok(());
        }
        const DOING: &str = "reading the stored message ids";
        let n: i64 = tx
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .doing(DOING)?;
        let mut bloom = Bloom::for_ids((n.max(0) as usize * 2).max(MIN_CAPACITY));
        // Streamed a vector at a time: a million ids held at once were
        // 26 MB of DuckDB's memory, the pass's peak.
        let mut stmt = tx.prepare("SELECT message_id FROM messages").doing(DOING)?;
        for batch in stmt.stream_arrow([]).doing(DOING)? {
            let batch = batch.doing(DOING)?;
            let column = batch.column(0);
            let ids: Box<dyn Iterator<Item = Option<&str>>> =
                if let Some(a) = column.as_string_opt::<i32>() {
                    Box::new(a.iter())
                } else if let Some(a) = column.as_string_opt::<i64>() {
                    Box::new(a.iter())
                } else if let Some(a) = column.as_string_view_opt() {
                    Box::new(a.iter())
                } else {
                    return Err(StoreError::Worker(format!(
                        "{DOING}: DuckDB gave the ids as {}",
                        column.data_type()
                    )));
                };
            ids.flatten().for_each(|id| bloom.add(id.as_bytes()));
        }
        self.filter = Some(bloom);
        Ok(())
    }

    /// Adds ids about to be stored by the caller's transaction.
    pub(super) fn add<'a>(&mut self, ids: impl Iterator<Item = &'a str>) {
        if let Some(bloom) = &mut self.filter {
            ids.for_each(|id| bloom.add(id.as_bytes()));
            if bloom.n_ids > bloom.capacity {
                // Too full to rule out much: built again, larger, when next
                // worth it.
                self.filter = None;
            }
        }
    }
}

impl Bloom {
    /// Sized for `capacity` ids at [`BITS_PER_ID`] each.
    fn for_ids(capacity: usize) -> Bloom {
        Bloom {
            bits: vec![0; (capacity * BITS_PER_ID).div_ceil(64)],
            n_ids: 0,
            capacity,
        }
    }

    /// The bit positions of an id: double hashing of one 64-bit hash,
    /// each mapped onto the bits by a multiply and shift.
    fn positions(&self, id: &[u8]) -> impl Iterator<Item = usize> + use<> {
        let mut hasher = DefaultHasher::new();
        hasher.write(id);
        let h1 = hasher.finish();
        let h2 = h1.rotate_left(32) | 1;
        let n_bits = (self.bits.len() * 64) as u128;
        (0..HASHES).map(move |i| {
            let g = h1.wrapping_add(i.wrapping_mul(h2));
            ((u128::from(g) * n_bits) >> 64) as usize
        })
    }

    fn add(&mut self, id: &[u8]) {
        for p in self.positions(id) {
            self.bits[p / 64] |= 1 << (p % 64);
        }
        self.n_ids += 1;
    }

    fn may_hold(&self, id: &[u8]) -> bool {
        self.positions(id)
            .all(|p| self.bits[p / 64] & (1 << (p % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Architecture invariant: an id added is never ruled out.
        #[test]
        fn an_added_id_is_never_ruled_out(ids in proptest::collection::vec("[a-z0-9-]{1,30}", 1..400)) {
            let mut bloom = Bloom::for_ids(100);
            for id in &ids {
                bloom.add(id.as_bytes());
            }
            for id in &ids {
                prop_assert!(bloom.may_hold(id.as_bytes()));
            }
        }
    }

    #[test]
    fn new_ids_are_ruled_out_at_the_designed_rate() {
        let mut bloom = Bloom::for_ids(100_000);
        for i in 0..100_000 {
            bloom.add(format!("ms-stored-{i}").as_bytes());
        }
        let taken = (0..100_000)
            .filter(|i| bloom.may_hold(format!("ms-new-{i}").as_bytes()))
            .count();
        // Full, about one in 15,000: a few at most.
        assert!(taken < 20, "{taken} new ids taken for stored");
    }
}
