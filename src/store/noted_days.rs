//! Days this process knows are noted in `parquet_dirty_days`, so a commit
//! of new sessions notes only the others. Noting days is an `INSERT OR
//! IGNORE` into a keyed table, which costs DuckDB a millisecond or more
//! even for one day already there (issue 23: 1.2 ms measured with DuckDB's
//! Python client; 3.2 ms for a window's days, timed in kore-sync), and a
//! backfill's or a fleet's windows note the same few days again and again.
//!
//! Architecture invariant: a day is in the set only once a committed
//! transaction noted it, and the set is emptied whenever an export may have
//! taken days out of the table; so a day missing from the table is never in
//! the set, and every changed day still reaches the Parquet export.

use chrono::NaiveDate;
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

/// The set, shared by the clones of one `SessionStore`.
#[derive(Debug, Clone, Default)]
pub(super) struct NotedDays(Arc<Mutex<HashSet<NaiveDate>>>);

impl NotedDays {
    /// A transaction's view: what it must note, and what it noted.
    pub(super) fn noting(&self) -> DayNoting<'_> {
        DayNoting {
            known: self,
            noted: Vec::new(),
        }
    }

    /// Days noted by a transaction that has committed.
    pub(super) fn committed(&self, noting: DayNoting<'_>) {
        self.lock().extend(noting.noted);
    }

    /// Forgets every day (an export took days out of the table).
    pub(super) fn forget_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<NaiveDate>> {
        // A poisoned set is still a correct subset: keep using it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One transaction's noting of days.
#[derive(Debug)]
pub(super) struct DayNoting<'a> {
    known: &'a NotedDays,
    noted: Vec<NaiveDate>,
}

impl DayNoting<'_> {
    /// Of `days`, those neither known noted nor noted by this transaction
    /// yet; they count as noted by it from now on (the caller notes them).
    pub(super) fn take_unnoted(&mut self, days: BTreeSet<NaiveDate>) -> Vec<NaiveDate> {
        let known = self.known.lock();
        let fresh: Vec<NaiveDate> = days
            .into_iter()
            .filter(|d| !known.contains(d) && !self.noted.contains(d))
            .collect();
        drop(known);
        self.noted.extend(&fresh);
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn only_days_a_committed_transaction_noted_are_known() {
        let days = NotedDays::default();
        let mut first = days.noting();
        assert_eq!(
            first.take_unnoted([day(1), day(2)].into()),
            [day(1), day(2)]
        );
        assert_eq!(first.take_unnoted([day(2), day(3)].into()), [day(3)]);
        // Rolled back: dropped without `committed`, nothing is known.
        drop(first);
        let mut second = days.noting();
        assert_eq!(second.take_unnoted([day(1)].into()), [day(1)]);
        days.committed(second);
        assert!(days.noting().take_unnoted([day(1)].into()).is_empty());
        days.forget_all();
        assert_eq!(days.noting().take_unnoted([day(1)].into()), [day(1)]);
    }
}
