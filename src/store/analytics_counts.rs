//! The analytics counts behind the watermark, taken for all of a bot's
//! types at once. Each pass compares every analytics stream's stored events
//! in the windows behind its watermark with the API's `totalCount`; a
//! bot's six streams run one after another with the same windows (their
//! group's `now`), and asking DuckDB for each type alone cost about a
//! millisecond and a half a stream, a fifth of an idle pass (issue 24). One
//! statement answers the six, and is kept until a write of analytics events
//! could change it.
//!
//! Architecture invariant: a count kept here equals what counting the table
//! would answer. Every write of `analytics_events` through the writing
//! connection forgets the counts it may change: a group commit those of the
//! bots whose events it wrote (`forget_bots`), a chunk's commit and the
//! removal of erased events every count (`forget`). No other connection
//! writes while this one holds the file.

use super::error::StoreError;
use crate::model::{AnalyticsBatch, AnalyticsType, StreamKey, Window};
use duckdb::Connection;
use std::collections::{HashMap, HashSet};

/// A bot and a window, in microseconds.
type Scope = (String, i64, i64);

/// Counts per type of a bot's events in a window: (end excluded, end
/// included).
type ByType = HashMap<String, (u64, u64)>;

/// Windows kept at most; more are forgotten all at once (a fleet's pass
/// asks for one or two windows a bot).
const KEPT: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct AnalyticsCounts {
    /// Invariant: each entry holds every type's counts as stored since the
    /// last write of analytics events (see the module's invariant).
    by_window: HashMap<Scope, ByType>,
}

impl AnalyticsCounts {
    /// The events stream `key` (a bot and a type) holds in `window`, end
    /// excluded and included: from the counts kept, or counted for all of
    /// the bot's types in one statement, kept for its other streams.
    pub(super) fn count(
        &mut self,
        conn: &Connection,
        key: &StreamKey,
        window: Window,
    ) -> Result<(u64, u64), StoreError> {
        if let Some(kept) = self.kept(key, window) {
            return Ok(kept);
        }
        if self.by_window.len() >= KEPT {
            self.by_window.clear();
        }
        let counts = count_types(conn, &key.bot_id, window)?;
        let of_stream = of_type(&counts, key);
        self.by_window.insert(scope(key, window), counts);
        Ok(of_stream)
    }

    /// The counts kept for stream `key` in `window`, if any.
    pub(super) fn kept(&self, key: &StreamKey, window: Window) -> Option<(u64, u64)> {
        let counts = self.by_window.get(&scope(key, window))?;
        Some(of_type(counts, key))
    }

    /// Forgets every count: analytics events are about to change.
    pub(super) fn forget(&mut self) {
        self.by_window.clear();
    }

    /// Forgets the counts of the bots whose events stream `key` wrote from
    /// `batch` (the stream's bot, and any other an event names).
    pub(super) fn forget_bots(&mut self, key: &StreamKey, batch: &AnalyticsBatch) {
        let bots: HashSet<&str> = std::iter::once(key.bot_id.as_str())
            .chain(batch.records.iter().filter_map(|e| e.bot_id.as_deref()))
            .collect();
        self.by_window
            .retain(|(bot, _, _), _| !bots.contains(bot.as_str()));
    }
}

fn scope(key: &StreamKey, window: Window) -> Scope {
    (
        key.bot_id.clone(),
        window.start.timestamp_micros(),
        window.end.timestamp_micros(),
    )
}

/// Stream `key`'s type's counts among its bot's (none: no events).
fn of_type(counts: &ByType, key: &StreamKey) -> (u64, u64) {
    counts.get(key.partition.name()).copied().unwrap_or((0, 0))
}

/// Every type's events of `bot_id` within `window`, counted with its end
/// excluded and included.
fn count_types(conn: &Connection, bot_id: &str, window: Window) -> Result<ByType, StoreError> {
    let types = AnalyticsType::ALL.map(|t| t.as_str());
    let counts = super::runs::count_by_partition(
        conn,
        ("analytics_events", "event_time", "type"),
        (bot_id, &types),
        window,
    )?;
    Ok(types.into_iter().map(str::to_owned).zip(counts).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Partition;
    use crate::store::connection::tests::warehouse;
    use chrono::{DateTime, Duration, Utc};

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + minute * 60, 0).unwrap()
    }

    fn insert(conn: &Connection, kind: &str, id: &str, minute: i64) {
        conn.execute(
            "INSERT INTO analytics_events (type, event_id, bot_id, event_time, raw, first_synced_at, last_synced_at)
             VALUES (?, ?, 'ac-bot', CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ), '{}', now(), now())",
            duckdb::params![kind, id, crate::store::sql::ts(at(minute))],
        )
        .unwrap();
    }

    fn key(kind: AnalyticsType) -> StreamKey {
        StreamKey {
            bot_id: "ac-bot".into(),
            partition: Partition::Analytics(kind),
            filter: String::new(),
        }
    }

    /// Each type's counts come from one statement for the bot, the end
    /// counted both ways; a type without events counts none; kept counts
    /// are answered until forgotten, then counted again.
    #[test]
    fn issue_24_a_bot_s_types_are_counted_together_until_events_change() {
        let (_dir, conn) = warehouse();
        let window = Window {
            start: at(0),
            end: at(60),
        };
        insert(&conn, "failintent", "e1", 10);
        insert(&conn, "failintent", "e2", 60);
        insert(&conn, "successintent", "e3", 20);
        insert(&conn, "successintent", "e4", 61);
        let mut counts = AnalyticsCounts::default();
        let fail = key(AnalyticsType::FailIntent);
        let success = key(AnalyticsType::SuccessIntent);
        let unhandled = key(AnalyticsType::UnhandledUtterance);
        assert_eq!(counts.count(&conn, &fail, window).unwrap(), (1, 2));
        assert_eq!(counts.count(&conn, &success, window).unwrap(), (1, 1));
        assert_eq!(counts.count(&conn, &unhandled, window).unwrap(), (0, 0));
        // Kept: a row added behind its back is not seen...
        insert(&conn, "successintent", "e5", 30);
        assert_eq!(counts.count(&conn, &success, window).unwrap(), (1, 1));
        // ...which is why every write forgets them first: another bot's
        // events leave this bot's counts, its own forget them.
        let mut other = key(AnalyticsType::SuccessIntent);
        other.bot_id = "ac-other".into();
        let batch = crate::model::Batch {
            records: Vec::new(),
            rejected: Vec::new(),
        };
        counts.forget_bots(&other, &batch);
        assert_eq!(counts.count(&conn, &success, window).unwrap(), (1, 1));
        counts.forget_bots(&success, &batch);
        assert_eq!(counts.count(&conn, &success, window).unwrap(), (2, 2));
        insert(&conn, "successintent", "e6", 31);
        counts.forget();
        assert_eq!(counts.count(&conn, &success, window).unwrap(), (3, 3));
        let later = Window {
            start: at(30),
            end: at(30) + Duration::hours(1),
        };
        assert_eq!(counts.count(&conn, &success, later).unwrap(), (3, 3));
    }
}
