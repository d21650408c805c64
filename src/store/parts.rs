//! Splitting a batch into parts that fit DuckDB's memory limit. What a
//! commit costs in DuckDB's memory grows with the bytes it stages, not with
//! its records: 5,000 messages of 5 KB (rich templates) are 25 MB staged,
//! and the comparison with the stored versions and the insert each hold
//! that again, beyond the 64 MiB default (issue 22). A part is staged and
//! written before the next is, in the caller's transaction, so a commit
//! stays one transaction whatever its size. Analytics events and LLM
//! usage records are cut the same way (`staged`), over every stream a group
//! commit holds.

use crate::model::{AnalyticsEvent, LlmUsage, Message, Session, Tag};

/// The most bytes of text one part stages (its records' `raw`, texts and
/// tags); a record larger than this is a part of its own. Measured with
/// the default limit in BENCHMARKS.md ("Every command at size").
pub(super) const PART_BYTES: usize = 4 << 20;

/// What a record costs staged: the bytes of its text columns.
pub(super) trait StagedSize {
    fn staged_bytes(&self) -> usize;
}

fn tag_bytes(tags: &[Tag]) -> usize {
    tags.iter()
        .map(|t| {
            t.kind.len()
                + t.name.as_ref().map_or(0, String::len)
                + t.value.as_ref().map_or(0, String::len)
                + t.value_json.len()
        })
        .sum()
}

impl StagedSize for Session {
    fn staged_bytes(&self) -> usize {
        self.raw.len() + tag_bytes(&self.tags)
    }
}

impl StagedSize for Message {
    fn staged_bytes(&self) -> usize {
        self.raw.len()
            + self.text.as_ref().map_or(0, String::len)
            + self.components.as_ref().map_or(0, String::len)
            + tag_bytes(&self.tags)
    }
}

impl StagedSize for AnalyticsEvent {
    fn staged_bytes(&self) -> usize {
        // `raw` holds the large `NLAnalysis`; the typed columns repeat a
        // little of it.
        self.raw.len() + self.utterance.as_ref().map_or(0, String::len) + tag_bytes(&self.tags)
    }
}

impl StagedSize for LlmUsage {
    fn staged_bytes(&self) -> usize {
        self.raw.len()
    }
}

/// `records` in order, cut into consecutive parts of at most
/// [`PART_BYTES`] each (a larger record alone); none when it is empty.
pub(super) fn parts<'r, 'a, T: StagedSize>(records: &'r [&'a T]) -> Vec<&'r [&'a T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let size = r.staged_bytes();
        if i > start && bytes + size > PART_BYTES {
            out.push(&records[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sized(usize);
    impl StagedSize for Sized {
        fn staged_bytes(&self) -> usize {
            self.0
        }
    }

    fn sizes(records: &[Sized]) -> Vec<Vec<usize>> {
        let refs: Vec<&Sized> = records.iter().collect();
        parts(&refs)
            .iter()
            .map(|p| p.iter().map(|r| r.0).collect())
            .collect()
    }

    #[test]
    fn issue_22_parts_hold_at_most_part_bytes_and_every_record_once_in_order() {
        let mb = 1 << 20;
        assert!(sizes(&[]).is_empty());
        assert_eq!(sizes(&[Sized(10), Sized(20)]), vec![vec![10, 20]]);
        let records: Vec<Sized> = (0..10).map(|_| Sized(mb + 1)).collect();
        let cut = sizes(&records);
        assert_eq!(cut.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
        // A record beyond the bound is a part of its own, never dropped.
        let cut = sizes(&[Sized(1), Sized(5 * mb), Sized(1)]);
        assert_eq!(cut, vec![vec![1], vec![5 * mb], vec![1]]);
    }

    proptest::proptest! {
        #[test]
        fn parts_cover_the_batch_exactly(sizes in proptest::collection::vec(0usize..3 << 20, 0..40)) {
            let records: Vec<Sized> = sizes.iter().map(|&s| Sized(s)).collect();
            let refs: Vec<&Sized> = records.iter().collect();
            let cut = parts(&refs);
            let flat: Vec<usize> = cut.iter().flat_map(|p| p.iter().map(|r| r.0)).collect();
            proptest::prop_assert_eq!(&flat, &sizes);
            for p in &cut {
                proptest::prop_assert!(!p.is_empty());
                let total: usize = p.iter().map(|r| r.0).sum();
                proptest::prop_assert!(p.len() == 1 || total <= PART_BYTES);
            }
        }
    }
}
