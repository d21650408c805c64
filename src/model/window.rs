//! Time windows and the watermark rule: the two pure ideas the planner (in
//! `sync`) and the commit (in `store`) share. They live here, below both,
//! so neither layer has to import the other.
//!
//! Architecture invariant: the watermark rule is a pure function — no
//! clock, no I/O. The store calls it inside the transaction that stores a
//! window, with the watermark it read in that same transaction.

use chrono::{DateTime, TimeDelta, Utc};

/// The API refuses a `dateFrom`..`dateTo` span of 7 days or more.
pub const API_MAX_SPAN: TimeDelta = TimeDelta::days(7);

/// One half-open window `[start, end)`, sent as `dateFrom=start`,
/// `dateTo=end`. Consecutive windows share their boundary instant, so a
/// session starting exactly on it is read whether the server treats `dateTo`
/// as inclusive (read twice, upserted once) or exclusive (read by the next
/// window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn span(&self) -> TimeDelta {
        self.end - self.start
    }
}

/// The watermark after storing `window` completely, given the `current` one
/// (None: the stream has none yet, or it was reached under another filter).
///
/// The watermark means "every session that started before it has been read
/// at least once", so it moves to `window.end` only when the windows read so
/// far are contiguous: the window starts at or before the current watermark,
/// or, for a stream without one, at or before `history_start`. It never
/// moves back. A window that leaves a gap (a backfill of a later range)
/// leaves the watermark where it was.
pub fn next_watermark(
    current: Option<DateTime<Utc>>,
    window: Window,
    history_start: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match current {
        Some(w) if window.start <= w => Some(w.max(window.end)),
        Some(w) => Some(w),
        None if window.start <= history_start => Some(window.end),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn watermark_rule_table() {
        let start = t("2025-01-01T00:00:00Z");
        // (current, window start, window end, expected)
        let cases: &[(Option<&str>, &str, &str, Option<&str>)] = &[
            // A new stream's first window starts at history's start.
            (
                None,
                "2025-01-01T00:00:00Z",
                "2025-01-07T00:00:00Z",
                Some("2025-01-07T00:00:00Z"),
            ),
            // A new stream's window before history's start still counts.
            (
                None,
                "2024-12-30T00:00:00Z",
                "2025-01-02T00:00:00Z",
                Some("2025-01-02T00:00:00Z"),
            ),
            // A new stream's window after history's start leaves a gap.
            (None, "2025-01-03T00:00:00Z", "2025-01-04T00:00:00Z", None),
            // Contiguous: starts exactly at the watermark.
            (
                Some("2025-01-07T00:00:00Z"),
                "2025-01-07T00:00:00Z",
                "2025-01-13T00:00:00Z",
                Some("2025-01-13T00:00:00Z"),
            ),
            // Overlapping (the lookback): starts before the watermark.
            (
                Some("2025-01-07T00:00:00Z"),
                "2025-01-06T23:00:00Z",
                "2025-01-08T00:00:00Z",
                Some("2025-01-08T00:00:00Z"),
            ),
            // A window wholly behind the watermark never moves it back.
            (
                Some("2025-01-07T00:00:00Z"),
                "2025-01-02T00:00:00Z",
                "2025-01-03T00:00:00Z",
                Some("2025-01-07T00:00:00Z"),
            ),
            // A gap after the watermark: it stays.
            (
                Some("2025-01-07T00:00:00Z"),
                "2025-01-07T00:00:00.001Z",
                "2025-01-08T00:00:00Z",
                Some("2025-01-07T00:00:00Z"),
            ),
        ];
        for &(current, from, to, want) in cases {
            let window = Window {
                start: t(from),
                end: t(to),
            };
            assert_eq!(
                next_watermark(current.map(t), window, start),
                want.map(t),
                "current {current:?}, window {from}..{to}"
            );
        }
    }
}
