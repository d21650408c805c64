//! Group commit of windows (sessions and messages). Streams of many bots
//! finish windows at once (each bot may send a request a second, so a
//! fleet's windows arrive together), and a transaction costs DuckDB a few milliseconds
//! whatever it holds (issue 23: begin, a read of the watermark, the
//! upsert's statements, the move, the commit). So a window ready while the
//! connection is busy waits in a queue, and whoever takes the connection
//! next stores every waiting window in one transaction: one read of their
//! watermarks, one upsert of their sessions, one of their messages, one
//! statement moving their watermarks.
//!
//! Architecture invariant: a window's records, their tags and its
//! stream's watermark change in one transaction (`commit_windows`), so the
//! watermark never runs ahead of the data, whatever kills the process; a
//! group rolls back whole, and then each of its windows is tried alone, so
//! one window's failure fails only its stream. A group holds each stream
//! at most once (a stream's store jobs run one at a time, `StorePipe`; a
//! second window of one stream waits for the next group).

use super::WindowCommit;
use super::batched::{Batched, Call, answer_together};
use super::commit::{Advance, StreamBatch, store_batches};
use super::error::{QueryContext, StoreError};
use super::message_write;
use super::noted_days::NotedDays;
use super::runs::stream_states;
use super::session_store::Writer;
use super::watermarks::{WindowDone, move_watermarks};
use crate::model::{AnalyticsBatch, LlmUsageBatch, MessageBatch, SessionBatch, StreamKey};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// A window completely read, waiting to be stored.
pub(super) struct QueuedWindow {
    pub key: StreamKey,
    pub advance: Advance,
    pub records: WindowRecords,
}

/// What a window read: sessions, or messages (the rest of them, when its
/// earlier chunks were stored as they came), or analytics events.
pub(super) enum WindowRecords {
    Sessions(SessionBatch),
    Messages(MessageBatch),
    Analytics(AnalyticsBatch),
    LlmUsage(LlmUsageBatch),
}

/// The queue of windows waiting to be stored.
pub(super) type WindowQueue = Batched<QueuedWindow, WindowCommit>;

/// Stores the waiting windows, the caller (their taker) holding the
/// connection: in groups of distinct streams, oldest first, each group one
/// transaction. Every window's outcome goes to its caller.
pub(super) fn commit_waiting(
    writer: &mut Writer,
    noted: &NotedDays,
    mut waiting: Vec<Call<QueuedWindow, WindowCommit>>,
    now: DateTime<Utc>,
) {
    while !waiting.is_empty() {
        let mut streams = HashSet::new();
        let (group, later): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|(w, _)| streams.insert(w.key.clone()));
        waiting = later;
        answer_together(group, |windows| {
            commit_windows((&mut *writer, noted), windows, now)
        });
    }
}

/// Stores windows of distinct streams completely read and moves their
/// watermarks (see [`crate::model::next_watermark`] for where to), all in
/// one transaction. Returns each window's outcome, in order.
pub(super) fn commit_windows(
    (writer, noted): (&mut Writer, &NotedDays),
    windows: &[&QueuedWindow],
    now: DateTime<Utc>,
) -> Result<Vec<WindowCommit>, StoreError> {
    let Writer {
        conn,
        message_ids,
        analytics_counts,
    } = writer;
    let tx = conn
        .transaction()
        .doing("beginning the window transaction")?;
    let keys: Vec<StreamKey> = windows.iter().map(|w| w.key.clone()).collect();
    let states = stream_states(&tx, &keys)?;
    // Sessions together (one upsert), then messages together, then
    // analytics events.
    let mut counts = vec![(0, 0); windows.len()];
    let (mut sessions, mut messages) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    let (mut analytics, mut llm) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for (i, (w, state)) in windows.iter().zip(&states).enumerate() {
        match &w.records {
            WindowRecords::Sessions(batch) => {
                sessions.0.push(i);
                sessions.1.push(StreamBatch {
                    key: &w.key,
                    batch,
                    watermark: state.0,
                });
            }
            WindowRecords::Messages(batch) => {
                messages.0.push(i);
                messages.1.push((&w.key, batch));
            }
            WindowRecords::Analytics(batch) => {
                analytics.0.push(i);
                analytics.1.push((&w.key, batch));
            }
            WindowRecords::LlmUsage(batch) => {
                llm.0.push(i);
                llm.1.push((&w.key, batch));
            }
        }
    }
    let mut days = noted.noting();
    let stored = store_batches(&tx, &sessions.1, (now, &mut days))?;
    let stored_messages =
        message_write::store_batches((&tx, message_ids), &messages.1, (now, &mut days))?;
    for (i, n) in sessions.0.into_iter().zip(stored) {
        counts[i] = n;
    }
    let stored_analytics = super::analytics::store_batches(&tx, &analytics.1, (now, &mut days))?;
    let stored_llm = super::llm::store_batches(&tx, &llm.1, (now, &mut days))?;
    for (i, n) in messages.0.into_iter().zip(stored_messages) {
        counts[i] = n;
    }
    for (i, n) in analytics.0.into_iter().zip(stored_analytics) {
        counts[i] = n;
        // Events written: their bots' counts kept are stale.
        if let (WindowRecords::Analytics(batch), true) = (&windows[i].records, n.1 > 0) {
            analytics_counts.forget_bots(&windows[i].key, batch);
        }
    }
    for (i, n) in llm.0.into_iter().zip(stored_llm) {
        counts[i] = n;
    }
    let done: Vec<WindowDone<'_>> = windows
        .iter()
        .zip(states)
        .map(|(w, stored)| WindowDone {
            key: &w.key,
            advance: w.advance,
            stored,
        })
        .collect();
    let after = move_watermarks(&tx, &done, now)?;
    tx.commit().doing("committing the windows")?;
    noted.committed(days);
    Ok(counts
        .into_iter()
        .zip(after)
        .map(|((n_received, n_written), watermark)| WindowCommit {
            n_received,
            n_written,
            n_deleted: 0,
            n_marked: 0,
            watermark,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, ContainmentType, Session, Window};

    use crate::store::connection::tests::warehouse;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + minute * 60, 0).unwrap()
    }

    fn session(bot: &str, id: &str, minute: i64, raw: &str) -> Session {
        let mut s = crate::store::commit::tests::session(id, raw);
        s.bot_id = Some(bot.into());
        s.start_time = at(minute);
        s
    }

    /// A window [0, 60) of `bot`'s agent sessions, with `sessions`.
    fn queued(bot: &str, sessions: Vec<Session>) -> QueuedWindow {
        QueuedWindow {
            key: StreamKey::sessions(bot, ContainmentType::Agent, ""),
            advance: Advance {
                window: Window {
                    start: at(0),
                    end: at(60),
                },
                history_start: at(0),
            },
            records: WindowRecords::Sessions(Batch {
                records: sessions,
                rejected: Vec::new(),
            }),
        }
    }

    fn stored(conn: &duckdb::Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Issue 23: windows of several bots waiting together are stored in one
    /// transaction, each with its own counts and its own watermark moved.
    #[test]
    fn issue_23_waiting_windows_are_stored_together_with_their_watermarks() {
        let (_dir, conn) = warehouse();
        let mut conn = Writer::new(conn);
        let (noted, queue) = (NotedDays::default(), WindowQueue::default());
        let a = queued("st-a", vec![session("st-a", "a1", 1, "{}")]);
        let b = queued(
            "st-b",
            vec![
                session("st-b", "b1", 2, "{}"),
                session("st-b", "b2", 3, "{}"),
            ],
        );
        let a_out = queue.push(a).0;
        let b_out = queue.push(b).0;
        commit_waiting(&mut conn, &noted, queue.take(), Utc::now());
        for (mut out, n) in [(a_out, 1), (b_out, 2)] {
            let commit = out.try_recv().unwrap().unwrap();
            assert_eq!((commit.n_received, commit.n_written), (n, n));
            assert_eq!(commit.watermark, Some(at(60)));
        }
        let ids = stored(&conn, "SELECT session_id FROM sessions ORDER BY 1");
        assert_eq!(ids, ["a1", "b1", "b2"]);
        let marks = stored(
            &conn,
            "SELECT bot_id || ' ' || epoch_us(watermark) FROM sync_state ORDER BY 1",
        );
        let end = at(60).timestamp_micros();
        assert_eq!(marks, [format!("st-a {end}"), format!("st-b {end}")]);
        // A second round of the same streams: the rows exist, so it updates
        // them; nothing new is written.
        let a = queued("st-a", vec![session("st-a", "a1", 1, "{}")]);
        let mut a_out = queue.push(a).0;
        commit_waiting(&mut conn, &noted, queue.take(), Utc::now());
        let commit = a_out.try_recv().unwrap().unwrap();
        assert_eq!((commit.n_received, commit.n_written), (1, 0));
    }

    /// Issue 23: a group that fails is tried window by window, so one
    /// window that cannot be stored fails its own stream only.
    #[test]
    fn issue_23_a_failing_window_fails_alone() {
        let (_dir, conn) = warehouse();
        let mut conn = Writer::new(conn);
        let (noted, queue) = (NotedDays::default(), WindowQueue::default());
        let a = queued("st-a", vec![session("st-a", "a1", 1, "{}")]);
        let a_out = queue.push(a).0;
        commit_waiting(&mut conn, &noted, queue.take(), Utc::now());
        a_out.blocking_recv().unwrap().unwrap();
        // a1 changed into a record DuckDB refuses as JSON: its replace fails.
        let a = queued("st-a", vec![session("st-a", "a1", 1, "{not json")]);
        let b = queued("st-b", vec![session("st-b", "b1", 2, "{}")]);
        let mut a_out = queue.push(a).0;
        let mut b_out = queue.push(b).0;
        commit_waiting(&mut conn, &noted, queue.take(), Utc::now());
        assert!(a_out.try_recv().unwrap().is_err());
        let b_commit = b_out.try_recv().unwrap().unwrap();
        assert_eq!((b_commit.n_written, b_commit.watermark), (1, Some(at(60))));
        let raws = stored(
            &conn,
            "SELECT CAST(raw AS VARCHAR) FROM sessions ORDER BY session_id",
        );
        assert_eq!(raws, ["{}", "{}"]);
    }

    /// Two windows of one stream never share a transaction: the second is
    /// stored after the first, from the watermark the first left.
    #[test]
    fn windows_of_one_stream_are_stored_one_after_another() {
        let (_dir, conn) = warehouse();
        let mut conn = Writer::new(conn);
        let (noted, queue) = (NotedDays::default(), WindowQueue::default());
        let first = queued("st-a", vec![session("st-a", "a1", 1, "{}")]);
        let mut second = queued("st-a", vec![session("st-a", "a2", 70, "{}")]);
        second.advance.window = Window {
            start: at(60),
            end: at(120),
        };
        let first_out = queue.push(first).0;
        let second_out = queue.push(second).0;
        commit_waiting(&mut conn, &noted, queue.take(), Utc::now());
        let marks: Vec<_> = [first_out, second_out]
            .into_iter()
            .map(|mut o| o.try_recv().unwrap().unwrap().watermark)
            .collect();
        assert_eq!(marks, [Some(at(60)), Some(at(120))]);
    }

    /// A fleet's group (more windows than are named inline) inserts, then
    /// moves, every stream's own watermark.
    #[test]
    fn issue_23_a_fleet_s_group_moves_every_watermark() {
        let (_dir, conn) = warehouse();
        let mut conn = Writer::new(conn);
        let (noted, queue) = (NotedDays::default(), WindowQueue::default());
        let n = crate::store::run_rows::INLINE_ROWS + 6;
        let bots: Vec<String> = (0..n).map(|i| format!("st-{i:02}")).collect();
        for (round, end) in [(0, 60), (1, 120)] {
            let mut answers = Vec::new();
            for (i, bot) in bots.iter().enumerate() {
                let id = format!("{bot}-{round}");
                let mut w = queued(bot, vec![session(bot, &id, 60 * round + i as i64, "{}")]);
                w.advance.window = Window {
                    start: at(60 * round),
                    end: at(end),
                };
                answers.push(queue.push(w).0);
            }
            commit_waiting(&mut conn, &noted, queue.take(), Utc::now());
            for mut a in answers {
                let commit = a.try_recv().unwrap().unwrap();
                assert_eq!((commit.n_written, commit.watermark), (1, Some(at(end))));
            }
            let at_end = stored(
                &conn,
                &format!(
                    "SELECT bot_id FROM sync_state WHERE epoch_us(watermark) = {}",
                    at(end).timestamp_micros()
                ),
            );
            assert_eq!(at_end.len(), n, "round {round}");
        }
    }

    /// A message of `session`, created at `minute`.
    fn message(id: &str, session: &str, minute: i64) -> crate::model::Message {
        crate::model::Message {
            message_id: id.into(),
            session_id: Some(session.into()),
            bot_id: Some("st-a".into()),
            direction: Some("incoming".into()),
            created_on: at(minute),
            channel: Some("rtm".into()),
            lang: None,
            text: Some("hi".into()),
            components: None,
            raw: format!(r#"{{"_id":"{id}"}}"#),
            tags: Vec::new(),
        }
    }

    /// Issue 23: a message window joins the group: its messages are stored
    /// after the group's sessions (so those of a session stored in the same
    /// group are kept, those of an unknown session left out), counted as
    /// its own, and its watermark moves with the others.
    #[test]
    fn issue_23_message_windows_commit_in_the_group_after_its_sessions() {
        let (_dir, conn) = warehouse();
        let mut conn = Writer::new(conn);
        let (noted, queue) = (NotedDays::default(), WindowQueue::default());
        let sessions = queued("st-a", vec![session("st-a", "s1", 1, "{}")]);
        let mut messages = queued("st-a", Vec::new());
        messages.key = StreamKey {
            bot_id: "st-a".into(),
            partition: crate::model::Partition::Channel("rtm".into()),
            filter: String::new(),
        };
        messages.records = WindowRecords::Messages(Batch {
            records: vec![message("m1", "s1", 2), message("m2", "s9", 3)],
            rejected: Vec::new(),
        });
        let mut answers = [queue.push(sessions).0, queue.push(messages).0];
        commit_waiting(&mut conn, &noted, queue.take(), Utc::now());
        let [s, m] = answers.each_mut().map(|a| a.try_recv().unwrap().unwrap());
        assert_eq!(
            (s.n_received, s.n_written, s.watermark),
            (1, 1, Some(at(60)))
        );
        assert_eq!(
            (m.n_received, m.n_written, m.watermark),
            (2, 1, Some(at(60)))
        );
        assert_eq!(stored(&conn, "SELECT message_id FROM messages"), ["m1"]);
        let marks = stored(&conn, "SELECT resource FROM sync_state ORDER BY 1");
        assert_eq!(marks, ["messages", "sessions"]);
    }
}
