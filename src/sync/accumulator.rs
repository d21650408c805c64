//! What paging a span gathers: one version of each record per id (the
//! latest read), the records that could not be parsed, and the rule that
//! tells whether a span's pages add up.

use crate::model::ids::IdMap;
use crate::model::{Batch, Keyed, RejectedRecord};
use serde_json::value::RawValue;
use std::fmt::Display;
use tracing::warn;

/// One span's (or window's) distinct records and its rejected ones.
#[derive(Debug)]
pub(super) struct Accumulator<R> {
    /// Invariant: maps each id in `records` to its index there, and only those.
    by_id: IdMap<String, usize>,
    records: Vec<R>,
    rejected: Vec<RejectedRecord>,
}

impl<R> Default for Accumulator<R> {
    fn default() -> Self {
        Accumulator {
            by_id: IdMap::default(),
            records: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

impl<R: Keyed> Accumulator<R> {
    /// Parses a page into the accumulator. Records seen twice (pages shift
    /// while new records land at the head) are kept once, latest version.
    /// Returns the ids (or raw text, for records without one) on the page.
    pub(super) fn take(
        &mut self,
        page: Vec<Box<RawValue>>,
        parse: impl Fn(Box<RawValue>) -> Result<R, RejectedRecord>,
        stream: impl Display,
    ) -> Vec<String> {
        let mut keys = Vec::with_capacity(page.len());
        for raw in page {
            match parse(raw) {
                Ok(r) => {
                    keys.push(r.id().to_owned());
                    self.insert(r);
                }
                Err(rejected) => {
                    warn!(stream = %stream, error = %rejected.reason,
                          "record rejected; kept in rejected_records");
                    // An id-less record is known by its text as listed.
                    let listed = rejected.listed_as.as_ref().unwrap_or(&rejected.raw);
                    keys.push(
                        rejected
                            .session_id
                            .clone()
                            .unwrap_or_else(|| listed.clone()),
                    );
                    self.rejected.push(rejected);
                }
            }
        }
        keys
    }

    /// Keeps one version per id: the latest one inserted.
    fn insert(&mut self, r: R) {
        match self.by_id.get(r.id()) {
            Some(&i) => self.records[i] = r,
            None => {
                self.by_id.insert(r.id().to_owned(), self.records.len());
                self.records.push(r);
            }
        }
    }

    /// Adds another accumulator's records (theirs win) and rejected ones.
    pub(super) fn merge(&mut self, other: Accumulator<R>) {
        for r in other.records {
            self.insert(r);
        }
        self.rejected.extend(other.rejected);
    }

    /// Distinct records held.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// What to store.
    pub(super) fn into_batch(self) -> Batch<R> {
        Batch {
            records: self.records,
            rejected: self.rejected,
        }
    }
}

/// True when the distinct records read match every `total` the pages gave
/// (the first page's and the last page's). Records that appear at the head
/// of a newest-first list shift later pages (the last total grows); records
/// that vanish shift them the other way (the first total is too large).
/// Either way some record may have been skipped, so both must agree.
pub(super) fn consistent(totals: (Option<u64>, Option<u64>), n_distinct: usize) -> bool {
    let n = n_distinct as u64;
    totals.0.is_none_or(|t| t == n) && totals.1.is_none_or(|t| t == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Rec {
        id: String,
        version: u32,
    }

    impl Keyed for Rec {
        fn id(&self) -> &str {
            &self.id
        }
    }

    /// Records are `{"id": "...", "v": n}`; anything else is rejected.
    fn parse(raw: Box<RawValue>) -> Result<Rec, RejectedRecord> {
        let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
        match (v["id"].as_str(), v["v"].as_u64()) {
            (Some(id), Some(n)) => Ok(Rec {
                id: id.to_owned(),
                version: n as u32,
            }),
            (id, _) => Err(RejectedRecord {
                session_id: id.map(str::to_owned),
                reason: "no version".into(),
                // Taken, as the engine's parsers take theirs.
                raw: Box::<str>::from(raw).into_string(),
                listed_as: None,
            }),
        }
    }

    fn page(items: &[&str]) -> Vec<Box<RawValue>> {
        items
            .iter()
            .map(|s| RawValue::from_string((*s).to_owned()).unwrap())
            .collect()
    }

    #[test]
    fn a_record_read_twice_is_kept_once_latest_version_in_first_position() {
        let mut acc = Accumulator::default();
        let keys = acc.take(
            page(&[r#"{"id":"a","v":1}"#, r#"{"id":"b","v":1}"#]),
            parse,
            "s",
        );
        assert_eq!(keys, ["a", "b"]);
        acc.take(page(&[r#"{"id":"a","v":2}"#]), parse, "s");
        assert_eq!(acc.len(), 2);
        let batch = acc.into_batch();
        assert_eq!(
            batch.records,
            [
                Rec {
                    id: "a".into(),
                    version: 2
                },
                Rec {
                    id: "b".into(),
                    version: 1
                }
            ]
        );
    }

    #[test]
    fn rejected_records_are_kept_and_keyed_by_id_or_raw_text() {
        let mut acc: Accumulator<Rec> = Accumulator::default();
        let keys = acc.take(page(&[r#"{"id":"x"}"#, r#"{"q":1}"#]), parse, "s");
        assert_eq!(keys, ["x", r#"{"q":1}"#]);
        assert_eq!(acc.len(), 0);
        assert_eq!(acc.into_batch().rejected.len(), 2);
    }

    #[test]
    fn merging_keeps_the_other_version_and_all_rejected() {
        let mut a = Accumulator::default();
        a.take(page(&[r#"{"id":"a","v":1}"#, "{}"]), parse, "s");
        let mut b = Accumulator::default();
        b.take(
            page(&[r#"{"id":"a","v":3}"#, r#"{"id":"c","v":1}"#, "{}"]),
            parse,
            "s",
        );
        a.merge(b);
        let batch = a.into_batch();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.records[0].version, 3);
        assert_eq!(batch.rejected.len(), 2);
    }

    #[test]
    fn pages_add_up_only_when_every_total_matches() {
        // (first total, last total, distinct read, consistent?)
        let cases = [
            (Some(5), Some(5), 5, true),
            (None, None, 5, true),
            (Some(5), None, 5, true),
            (Some(5), Some(6), 5, false), // a record landed at the head
            (Some(6), Some(5), 5, false), // a record vanished
            (Some(6), Some(6), 5, false), // a record was skipped
        ];
        for (first, last, n, want) in cases {
            assert_eq!(consistent((first, last), n), want, "{first:?} {last:?} {n}");
        }
    }
}
