//! Sparse windows held back to be committed together, and the budget that
//! bounds what all of a pass's streams hold. Each commit costs DuckDB
//! milliseconds whatever its size, so a stream that reads many sparse
//! windows in a row commits them in one transaction (issue 23); but a fleet
//! of bots, each holding its windows while it waits a second for its next
//! request, held most of what it read at once (issue 24). So a stream holds
//! a window only while the records held across every stream of the pass
//! stay within [`HOLD_BYTES`] of text; beyond it, it commits at once, which
//! under a rate limit costs nothing that matters.

use super::resource::Resource;
use super::store_pipe::StorePipe;
use crate::model::{Batch, Keyed, Window};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A stream holds windows while they hold fewer records than this (a
/// window denser than this is stored in chunks anyway).
pub const HOLD_RECORDS: usize = 4_000;

/// The most text (records as received) held across a pass's streams. A
/// single stream's run of sparse windows fits: 4,000 messages average
/// about 2.2 MB.
pub const HOLD_BYTES: usize = 4 << 20;

/// What the streams sharing it may hold, in bytes of record text.
#[derive(Debug)]
pub struct HoldBudget {
    capacity: usize,
    /// Invariant: at most `capacity`; the sum of the live [`Reservation`]s.
    held: AtomicUsize,
}

impl HoldBudget {
    pub fn new(capacity: usize) -> Self {
        HoldBudget {
            capacity,
            held: AtomicUsize::new(0),
        }
    }

    /// Bytes held now, across every stream.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Reserves `n` more bytes, if the total stays within the capacity.
    fn try_reserve(&self, n: usize) -> bool {
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(n).filter(|&total| total <= self.capacity)
            })
            .is_ok()
    }
}

impl Default for HoldBudget {
    fn default() -> Self {
        HoldBudget::new(HOLD_BYTES)
    }
}

/// Bytes of a [`HoldBudget`] taken by one stream's held windows; given back
/// when dropped (on commit, and on an early return alike).
struct Reservation<'a> {
    budget: &'a HoldBudget,
    bytes: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Windows completely read and to be committed in one transaction, the
/// watermark moved to the last one's end.
pub(super) struct Held<'a, T> {
    /// From the first one's start to the last one's end.
    span: Window,
    batch: Batch<T>,
    n_windows: u32,
    /// None while the windows are due now rather than held.
    reservation: Option<Reservation<'a>>,
}

impl<T> Held<'_, T> {
    /// Starts the windows' commit on `pipe`; what they held is given back.
    pub(super) fn commit<R: Resource<Record = T>>(self, resource: &R, pipe: &StorePipe) {
        let n_rejected = self.batch.rejected.len();
        pipe.start_windows(
            (self.n_windows, n_rejected),
            resource.commit_window(self.span, self.batch),
        );
    }
}

/// One stream's windows on their way to being committed.
pub(super) struct Holder<'a, T> {
    budget: &'a HoldBudget,
    held: Option<Held<'a, T>>,
}

impl<'a, T: Keyed> Holder<'a, T> {
    pub(super) fn new(budget: &'a HoldBudget) -> Self {
        Holder { budget, held: None }
    }

    /// Adds `window`, completely read, with its records. Returns the
    /// windows to commit now: all of them when none follows (`last`), when
    /// they hold [`HOLD_RECORDS`] records or more, or when the budget has no
    /// room for this window's text; otherwise they are held.
    pub(super) fn add(
        &mut self,
        window: Window,
        batch: Batch<T>,
        last: bool,
    ) -> Option<Held<'a, T>> {
        let bytes: usize = batch.records.iter().map(Keyed::text_len).sum();
        let joined = match self.held.take() {
            None => Held {
                span: window,
                batch,
                n_windows: 1,
                reservation: None,
            },
            Some(h) => Held {
                span: Window {
                    start: h.span.start,
                    end: window.end,
                },
                batch: h.batch.followed_by(batch),
                n_windows: h.n_windows + 1,
                reservation: h.reservation,
            },
        };
        if last || joined.batch.records.len() >= HOLD_RECORDS || !self.budget.try_reserve(bytes) {
            return Some(joined);
        }
        let reservation = match joined.reservation {
            Some(mut r) => {
                r.bytes += bytes;
                r
            }
            None => Reservation {
                budget: self.budget,
                bytes,
            },
        };
        self.held = Some(Held {
            reservation: Some(reservation),
            ..joined
        });
        None
    }

    /// The windows still held, if any (a stop or failure ended the run).
    pub(super) fn finish(&mut self) -> Option<Held<'a, T>> {
        self.held.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    struct Rec(String);

    impl Keyed for Rec {
        fn id(&self) -> &str {
            &self.0
        }
        fn text_len(&self) -> usize {
            100
        }
    }

    fn window(day: u32) -> Window {
        Window {
            start: Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 11, day + 1, 0, 0, 0).unwrap(),
        }
    }

    /// `n` records of 100 bytes of text each.
    fn batch(n: usize) -> Batch<Rec> {
        Batch {
            records: (0..n).map(|i| Rec(i.to_string())).collect(),
            rejected: Vec::new(),
        }
    }

    #[test]
    fn sparse_windows_are_held_and_committed_together_with_the_last() {
        let budget = HoldBudget::new(10_000);
        let mut holder = Holder::new(&budget);
        assert!(holder.add(window(1), batch(3), false).is_none());
        assert!(holder.add(window(2), batch(4), false).is_none());
        assert_eq!(budget.held(), 700);
        let due = holder
            .add(window(3), batch(5), true)
            .expect("the last window");
        assert_eq!((due.n_windows, due.batch.records.len()), (3, 12));
        assert_eq!(
            (due.span.start, due.span.end),
            (window(1).start, window(3).end)
        );
        drop(due);
        assert_eq!(budget.held(), 0, "given back once committed");
    }

    #[test]
    fn issue_24_a_stream_commits_at_once_when_the_shared_budget_is_taken() {
        // Two streams share room for five records' text.
        let budget = HoldBudget::new(500);
        let (mut a, mut b) = (Holder::new(&budget), Holder::new(&budget));
        assert!(a.add(window(1), batch(4), false).is_none());
        let due = b.add(window(1), batch(2), false).expect("no room left");
        assert_eq!(due.n_windows, 1);
        drop(due);
        assert_eq!(budget.held(), 400);
        // `a`'s next window does not fit either: everything it held is due.
        let due = a.add(window(2), batch(2), false).expect("over the budget");
        assert_eq!((due.n_windows, due.batch.records.len()), (2, 6));
        assert_eq!(budget.held(), 400, "held until the commit starts");
        drop(due);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn dense_windows_are_due_at_once_and_an_ended_run_gives_back_what_it_held() {
        let budget = HoldBudget::new(usize::MAX);
        let mut holder = Holder::new(&budget);
        let due = holder.add(window(1), batch(HOLD_RECORDS), false);
        assert_eq!(due.map(|d| d.n_windows), Some(1));
        assert!(holder.add(window(2), batch(1), false).is_none());
        assert_eq!(budget.held(), 100);
        drop(holder.finish());
        assert_eq!(budget.held(), 0);
    }
}
