//! What a pass reads to check and plan its streams, for many streams in
//! one statement: the count within a window behind the watermark (the
//! reconcile compares it with the API's `total`), the sessions stored as
//! active before the span a pass re-reads, a message stream's sessions seen
//! closing, and a bot's channels. Every stream of every bot asks these in
//! every pass, at about the same time; one statement each cost DuckDB
//! 1–4 ms (issue 23), about what the rest of an idle stream costs. Counts
//! and stale sessions are staged with the Appender and joined with
//! `sessions` on bot and containment type; the account scope (`*`, every
//! bot), and a batch of a few, are asked one by one.

use super::error::{QueryContext, StoreError};
use super::sql::{from_micros, lit, stage_rows, ts};
use super::{messages, runs};
use crate::model::{ClosedSession, StreamFilter, StreamKey, Window};
use chrono::{DateTime, Utc};
use duckdb::{Connection, params};
use std::collections::{BTreeSet, HashMap};

/// A stream's count within a window (see `runs::count_stored`).
pub(super) struct CountStored {
    pub key: StreamKey,
    pub filter: StreamFilter,
    pub window: Window,
}

/// A stream's sessions stored as active that start before `before`.
pub(super) struct StaleActive {
    pub key: StreamKey,
    pub before: DateTime<Utc>,
}

/// Answers each request: (count with the window's end excluded, included).
pub(super) fn count_stored(
    conn: &Connection,
    reqs: &[&CountStored],
) -> Result<Vec<(u64, u64)>, StoreError> {
    const DOING: &str = "counting stored sessions";
    let mut answers = vec![(0, 0); reqs.len()];
    let (fleet, alone) = split(reqs.len(), |i| reqs[i].key.bot_id == "*");
    for i in alone {
        let r = reqs[i];
        answers[i] = runs::count_stored(conn, &r.key, &r.filter, r.window)?;
    }
    let (Some(lo), Some(hi)) = (
        fleet.iter().map(|&i| reqs[i].window.start).min(),
        fleet.iter().map(|&i| reqs[i].window.end).max(),
    ) else {
        return Ok(answers);
    };
    let tx = conn.unchecked_transaction().doing(DOING)?;
    stage_rows(&tx, "stage_counts", DOING, |rows| {
        for &i in &fleet {
            let r = reqs[i];
            rows.append_row(params![
                i as i64,
                r.key.bot_id,
                r.key.partition.name(),
                ts(r.window.start),
                ts(r.window.end),
                r.filter.session_type,
                r.filter.user_id,
            ])?;
        }
        Ok(())
    })?;
    // The requests' whole span as constants, so zone maps skip the rest of
    // the history.
    let sql = format!(
        "SELECT q.i,
                count(s.session_id) FILTER (WHERE s.start_time < CAST(q.hi AS TIMESTAMPTZ)),
                count(s.session_id)
         FROM stage_counts q LEFT JOIN (
             SELECT session_id, bot_id, containment_type, start_time, session_type, user_id
             FROM sessions
             WHERE deleted_at IS NULL
               AND start_time BETWEEN CAST({} AS TIMESTAMPTZ) AND CAST({} AS TIMESTAMPTZ)
         ) s ON s.bot_id = q.bot_id AND s.containment_type = q.containment_type
            AND s.start_time >= CAST(q.lo AS TIMESTAMPTZ) AND s.start_time <= CAST(q.hi AS TIMESTAMPTZ)
            AND (q.session_type IS NULL OR s.session_type = q.session_type)
            AND (q.user_id IS NULL OR s.user_id = q.user_id)
         GROUP BY q.i",
        lit(&ts(lo)),
        lit(&ts(hi))
    );
    let mut stmt = tx.prepare(&sql).doing(DOING)?;
    let mut found = stmt.query([]).doing(DOING)?;
    while let Some(row) = found.next().doing(DOING)? {
        let i: i64 = row.get(0).doing(DOING)?;
        let (excluded, included): (i64, i64) = (row.get(1).doing(DOING)?, row.get(2).doing(DOING)?);
        answers[i as usize] = (excluded.max(0) as u64, included.max(0) as u64);
    }
    drop(found);
    drop(stmt);
    // Emptied before the commit (a rollback empties it too).
    tx.execute_batch("DELETE FROM stage_counts").doing(DOING)?;
    tx.commit().doing(DOING)?;
    Ok(answers)
}

/// Answers each request: the ids, oldest start first.
pub(super) fn stale_active(
    conn: &Connection,
    reqs: &[&StaleActive],
) -> Result<Vec<Vec<String>>, StoreError> {
    const DOING: &str = "finding stale active sessions";
    let mut answers = vec![Vec::new(); reqs.len()];
    let (fleet, alone) = split(reqs.len(), |i| reqs[i].key.bot_id == "*");
    for i in alone {
        answers[i] = runs::stale_active_sessions(conn, &reqs[i].key, reqs[i].before)?;
    }
    let Some(before) = fleet.iter().map(|&i| reqs[i].before).max() else {
        return Ok(answers);
    };
    let tx = conn.unchecked_transaction().doing(DOING)?;
    stage_rows(&tx, "stage_stale", DOING, |rows| {
        for &i in &fleet {
            let r = reqs[i];
            let row = params![i as i64, r.key.bot_id, r.key.partition.name(), ts(r.before)];
            rows.append_row(row)?;
        }
        Ok(())
    })?;
    let sql = format!(
        "SELECT q.i, s.session_id
         FROM stage_stale q JOIN (
             SELECT session_id, bot_id, containment_type, start_time FROM sessions
             WHERE session_status = 'active' AND deleted_at IS NULL
               AND start_time < CAST({} AS TIMESTAMPTZ)
         ) s ON s.bot_id = q.bot_id AND s.containment_type = q.containment_type
            AND s.start_time < CAST(q.before AS TIMESTAMPTZ)
         ORDER BY q.i, s.start_time",
        lit(&ts(before))
    );
    let mut stmt = tx.prepare(&sql).doing(DOING)?;
    let mut found = stmt.query([]).doing(DOING)?;
    while let Some(row) = found.next().doing(DOING)? {
        let i: i64 = row.get(0).doing(DOING)?;
        answers[i as usize].push(row.get(1).doing(DOING)?);
    }
    drop(found);
    drop(stmt);
    tx.execute_batch("DELETE FROM stage_stale").doing(DOING)?;
    tx.commit().doing(DOING)?;
    Ok(answers)
}

/// A message stream's sessions seen closing that start before `before`
/// (see `messages::closed_sessions`).
pub(super) struct ClosedBefore {
    pub bot_id: String,
    pub channel: String,
    pub before: DateTime<Utc>,
}

/// Answers each request with one read of the notes of the batch's bots:
/// notes at or after a request's `before` are dropped (the stream's date
/// windows read those sessions' messages), by the request's own statement
/// and only when there are any; the rest are its answer, oldest first.
pub(super) fn closed_sessions(
    conn: &mut Connection,
    reqs: &[&ClosedBefore],
) -> Result<Vec<Vec<ClosedSession>>, StoreError> {
    const DOING: &str = "reading sessions that closed";
    if let [one] = reqs {
        let found = messages::closed_sessions(conn, (&one.bot_id, &one.channel), one.before)?;
        return Ok(vec![found]);
    }
    let mut answers = vec![Vec::new(); reqs.len()];
    let mut asked: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, r) in reqs.iter().enumerate() {
        asked.insert((r.bot_id.as_str(), r.channel.as_str()), i);
    }
    let bots: BTreeSet<String> = reqs.iter().map(|r| lit(&r.bot_id)).collect();
    let bots: Vec<String> = bots.into_iter().collect();
    let sql = format!(
        "SELECT bot_id, channel, session_id, epoch_us(start_time), epoch_us(end_time)
         FROM message_rereads WHERE bot_id IN ({}) ORDER BY start_time, session_id",
        bots.join(", ")
    );
    let mut to_drop = BTreeSet::new();
    {
        let mut stmt = conn.prepare(&sql).doing(DOING)?;
        let mut rows = stmt.query([]).doing(DOING)?;
        while let Some(row) = rows.next().doing(DOING)? {
            let (bot, channel): (String, String) =
                (row.get(0).doing(DOING)?, row.get(1).doing(DOING)?);
            let Some(&i) = asked.get(&(bot.as_str(), channel.as_str())) else {
                continue;
            };
            let closed = ClosedSession {
                session_id: row.get(2).doing(DOING)?,
                start_time: from_micros(row.get(3).doing(DOING)?),
                end_time: row.get::<_, Option<i64>>(4).doing(DOING)?.map(from_micros),
            };
            if closed.start_time >= reqs[i].before {
                to_drop.insert(i);
            } else {
                answers[i].push(closed);
            }
        }
    }
    for i in to_drop {
        let r = reqs[i];
        answers[i] = messages::closed_sessions(conn, (&r.bot_id, &r.channel), r.before)?;
    }
    Ok(answers)
}

/// Answers each bot (a request) with the channels of its stored live
/// sessions, in one scan for the batch: one bot's alone reads as much of
/// `sessions` as all of theirs, since rows are not clustered by bot.
pub(super) fn session_channels(
    conn: &Connection,
    bots: &[&String],
) -> Result<Vec<Vec<String>>, StoreError> {
    const DOING: &str = "finding the channels of bots' sessions";
    let mut answers = vec![Vec::new(); bots.len()];
    let mut asked: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, b) in bots.iter().enumerate() {
        asked.entry(b.as_str()).or_default().push(i);
    }
    let names: Vec<String> = asked.keys().map(|b| lit(b)).collect();
    let sql = format!(
        "SELECT DISTINCT bot_id, channel FROM sessions
         WHERE bot_id IN ({}) AND channel IS NOT NULL AND deleted_at IS NULL ORDER BY 1, 2",
        names.join(", ")
    );
    let mut stmt = conn.prepare(&sql).doing(DOING)?;
    let mut rows = stmt.query([]).doing(DOING)?;
    while let Some(row) = rows.next().doing(DOING)? {
        let bot: String = row.get(0).doing(DOING)?;
        let channel: String = row.get(1).doing(DOING)?;
        for &i in asked.get(bot.as_str()).into_iter().flatten() {
            answers[i].push(channel.clone());
        }
    }
    Ok(answers)
}

/// Up to this many requests, each is asked alone: its own cached statement
/// (1–2 ms on a million sessions) beats staging and a join (about 10 ms
/// however few).
const ALONE_UP_TO: usize = 6;

/// Which of `n` requests go into the joined statement and which are asked
/// alone: those `account_scope` says are for the account (`*`, every bot,
/// which the join on bot cannot serve), or all when there are few.
fn split(n: usize, account_scope: impl Fn(usize) -> bool) -> (Vec<usize>, Vec<usize>) {
    if n <= ALONE_UP_TO {
        return (Vec::new(), (0..n).collect());
    }
    (0..n).partition(|&i| !account_scope(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, ContainmentType};
    use crate::store::commit::{Gone, commit_refresh};

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + minute * 60, 0).unwrap()
    }

    /// A session of `bot`, `containment`, starting at `minute`.
    fn session(bot: &str, containment: &str, id: &str, minute: i64) -> crate::model::Session {
        let mut s = crate::store::commit::tests::session(id, "{}");
        s.bot_id = Some(bot.into());
        s.containment_type = Some(containment.into());
        s.start_time = at(minute);
        s.session_status = Some(if minute % 2 == 0 { "active" } else { "closed" }.into());
        s.session_type = Some(if minute % 3 == 0 { "voice" } else { "chat" }.into());
        s
    }

    /// Issue 23: asked for many streams in one statement, each stream gets
    /// exactly what asking it alone gives — per bot, containment type,
    /// window (end excluded and included), filter, and for the account
    /// scope `*`.
    #[test]
    fn issue_23_checks_asked_together_answer_as_each_alone() {
        let (_dir, mut conn) = crate::store::connection::tests::warehouse();
        let mut sessions = Vec::new();
        for (b, bot) in ["st-a", "st-b"].into_iter().enumerate() {
            for (c, ct) in ["agent", "selfService"].into_iter().enumerate() {
                for m in 0..30 {
                    let id = format!("{bot}-{ct}-{m:02}");
                    sessions.push(session(bot, ct, &id, m + (b + c) as i64));
                }
            }
        }
        let key = StreamKey::sessions("st-a", ContainmentType::Agent, "");
        let batch = Batch {
            records: sessions,
            rejected: Vec::new(),
        };
        let noted = crate::store::noted_days::NotedDays::default();
        commit_refresh((&mut conn, &noted), &key, &batch, &Gone::none(), Utc::now()).unwrap();

        let voice = StreamFilter {
            session_type: Some("voice".into()),
            ..StreamFilter::default()
        };
        let mut counts = Vec::new();
        let mut stale = Vec::new();
        for bot in ["st-a", "st-b", "st-c", "*"] {
            for ct in [ContainmentType::Agent, ContainmentType::SelfService] {
                for (from, to) in [(0, 10), (5, 31), (10, 12)] {
                    for filter in [StreamFilter::default(), voice.clone()] {
                        counts.push(CountStored {
                            key: StreamKey::sessions(bot, ct, ""),
                            filter,
                            window: Window {
                                start: at(from),
                                end: at(to),
                            },
                        });
                    }
                }
                stale.push(StaleActive {
                    key: StreamKey::sessions(bot, ct, ""),
                    before: at(20),
                });
            }
        }
        let asked: Vec<&CountStored> = counts.iter().collect();
        let together = count_stored(&conn, &asked).unwrap();
        for (r, got) in counts.iter().zip(&together) {
            let alone = runs::count_stored(&conn, &r.key, &r.filter, r.window).unwrap();
            assert_eq!(*got, alone, "{} {:?}", r.key, r.window);
        }
        assert!(
            together.iter().any(|(e, i)| e < i),
            "no window's end held a session"
        );
        assert!(together.contains(&(0, 0)), "no stream was empty");
        let asked: Vec<&StaleActive> = stale.iter().collect();
        let together = stale_active(&conn, &asked).unwrap();
        for (r, got) in stale.iter().zip(&together) {
            let alone = runs::stale_active_sessions(&conn, &r.key, r.before).unwrap();
            assert_eq!(*got, alone, "{}", r.key);
        }
        assert!(together.iter().any(|ids| ids.len() > 5));
    }

    /// Issue 23: noted closed sessions and bots' channels asked for many
    /// streams at once answer as each alone, and notes at or after a
    /// stream's `before` are dropped as they are alone.
    #[test]
    fn issue_23_closed_sessions_and_channels_asked_together_answer_as_each_alone() {
        let (_dir, mut conn) = crate::store::connection::tests::warehouse();
        let mut sessions = Vec::new();
        for bot in ["st-a", "st-b"] {
            for m in 0..8 {
                let mut s = session(bot, "agent", &format!("{bot}-{m}"), m);
                s.channel = Some(["rtm", "slack"][m as usize % 2].into());
                sessions.push(s);
            }
        }
        let key = StreamKey::sessions("st-a", ContainmentType::Agent, "");
        let batch = Batch {
            records: sessions,
            rejected: Vec::new(),
        };
        let noted = crate::store::noted_days::NotedDays::default();
        commit_refresh((&mut conn, &noted), &key, &batch, &Gone::none(), Utc::now()).unwrap();
        let note = |conn: &Connection| {
            conn.execute_batch("DELETE FROM message_rereads").unwrap();
            for (i, (bot, channel)) in [("st-a", "rtm"), ("st-a", "slack"), ("st-b", "rtm")]
                .into_iter()
                .cycle()
                .take(12)
                .enumerate()
            {
                conn.execute(
                    "INSERT INTO message_rereads VALUES (?, ?, ?, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ), NULL, now())",
                    params![format!("n{i}"), bot, channel, ts(at(i as i64))],
                )
                .unwrap();
            }
        };
        let asks: Vec<ClosedBefore> = [
            ("st-a", "rtm", 6),
            ("st-a", "slack", 20),
            ("st-b", "rtm", 2),
            ("st-c", "rtm", 9),
        ]
        .into_iter()
        .map(|(bot, channel, minute)| ClosedBefore {
            bot_id: bot.into(),
            channel: channel.into(),
            before: at(minute),
        })
        .collect();
        note(&conn);
        let asked: Vec<&ClosedBefore> = asks.iter().collect();
        let together = closed_sessions(&mut conn, &asked).unwrap();
        let left_together = stored_ids(&conn);
        note(&conn);
        let alone: Vec<Vec<ClosedSession>> = asks
            .iter()
            .map(|r| {
                messages::closed_sessions(&mut conn, (&r.bot_id, &r.channel), r.before).unwrap()
            })
            .collect();
        assert_eq!(together, alone);
        assert_eq!(left_together, stored_ids(&conn));
        assert!(together.iter().any(|c| c.len() > 1), "nothing was noted");
        assert!(left_together.len() < 12, "nothing was dropped");

        let bots: Vec<String> = ["st-b", "st-a", "st-c"].map(String::from).into();
        let asked: Vec<&String> = bots.iter().collect();
        let channels = session_channels(&conn, &asked).unwrap();
        assert_eq!(
            channels,
            [vec!["rtm", "slack"], vec!["rtm", "slack"], vec![]]
        );
    }

    fn stored_ids(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT session_id FROM message_rereads ORDER BY 1")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}
