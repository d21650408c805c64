//! The rows of `sync_runs`: a stream's run is recorded when it begins
//! (`running`, so `status` shows a pass under way and a crash leaves a row
//! the next open marks abandoned) and when it ends. Both are written for a
//! group of streams at once — DuckDB spends about half a millisecond on
//! any statement over a table, however few rows it writes (issue 23).

use super::RunRecord;
use super::error::{QueryContext, StoreError};
use super::sql::{stage_rows, ts};
use crate::model::StreamKey;
use chrono::{DateTime, Utc};
use duckdb::Connection;
use std::collections::HashMap;

/// Records the start of a stream's run; returns its id.
pub(super) fn begin_run(
    conn: &Connection,
    pass_id: &str,
    key: &StreamKey,
    trigger: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let ids = begin_runs(conn, pass_id, std::slice::from_ref(key), trigger, now)?;
    ids.into_iter().next().ok_or(StoreError::Unexpected {
        doing: "recording the start of a run",
        detail: "no run id returned".into(),
    })
}

/// Records the start of several streams' runs in one transaction — DuckDB
/// spends about half a millisecond on any statement over a table, however
/// few rows it writes (issue 23) — and returns their ids in `keys`' order.
pub(super) fn begin_runs(
    conn: &Connection,
    pass_id: &str,
    keys: &[StreamKey],
    trigger: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    const DOING: &str = "recording the start of runs";
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    // Staged with the Appender (a VALUES list costs DuckDB about 15 µs a
    // value to parse and bind) and inserted by one statement.
    // The staging table is empty outside this transaction (see
    // `finish_runs`).
    let tx = conn.unchecked_transaction().doing(DOING)?;
    let started = ts(now);
    stage_rows(&tx, "stage_run_starts", DOING, |rows| {
        for k in keys {
            rows.append_row(duckdb::params![
                pass_id,
                k.partition.resource(),
                k.bot_id,
                k.partition.name(),
                trigger,
                started,
                k.filter,
            ])?;
        }
        Ok(())
    })?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO sync_runs (pass_id, resource, bot_id, containment_type, trigger, started_at, outcome, filter)
             SELECT pass_id, resource, bot_id, containment_type, trigger,
                    CAST(started_at AS TIMESTAMPTZ), 'running', filter
             FROM stage_run_starts
             RETURNING run_id, resource, bot_id, containment_type",
        )
        .doing(DOING)?;
    let returned: Vec<(i64, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .doing(DOING)?
        .collect::<Result<_, _>>()
        .doing(DOING)?;
    drop(stmt);
    tx.execute_batch("DELETE FROM stage_run_starts")
        .doing(DOING)?;
    tx.commit().doing(DOING)?;
    let returned: HashMap<(&str, &str, &str), i64> = returned
        .iter()
        .map(|(id, resource, bot, name)| ((resource.as_str(), bot.as_str(), name.as_str()), *id))
        .collect();
    // RETURNING promises no order: each id is matched to its stream.
    keys.iter()
        .map(|k| {
            let name = (
                k.partition.resource(),
                k.bot_id.as_str(),
                k.partition.name(),
            );
            returned
                .get(&name)
                .copied()
                .ok_or_else(|| StoreError::Unexpected {
                    doing: DOING,
                    detail: format!("no run id returned for {k}"),
                })
        })
        .collect()
}

/// A run that ended, to be recorded with others of its group.
#[derive(Debug, Clone)]
pub struct FinishedRun {
    pub run_id: i64,
    pub record: RunRecord,
    pub finished_at: DateTime<Utc>,
}

/// Records the end of several runs in one transaction, each with its own
/// end time.
pub(super) fn finish_runs(conn: &Connection, runs: &[FinishedRun]) -> Result<(), StoreError> {
    const DOING: &str = "recording the end of runs";
    if runs.is_empty() {
        return Ok(());
    }
    // Staged with the Appender and applied by one UPDATE: DuckDB parses and
    // binds a VALUES list at about 15 µs a value, so 128 runs given inline
    // cost 30–60 ms.
    // The staging table is empty outside this transaction: it is emptied
    // before the commit, and a rollback empties it too.
    let tx = conn.unchecked_transaction().doing(DOING)?;
    stage_rows(&tx, "stage_run_ends", DOING, |rows| {
        for run in runs {
            let r = &run.record;
            rows.append_row(duckdb::params![
                run.run_id,
                ts(run.finished_at),
                r.outcome.as_str(),
                r.windows_planned,
                r.windows_done,
                r.requests,
                r.retries,
                r.rate_limited,
                r.sessions_upserted,
                r.sessions_deleted,
                r.sessions_marked_deleted,
                r.records_rejected,
                r.watermark_after.map(ts),
                r.error,
            ])?;
        }
        Ok(())
    })?;
    // The runs' id range, as constants DuckDB prunes row groups by: without
    // it the join reads every run ever recorded.
    let lo = runs.iter().map(|r| r.run_id).min().unwrap_or_default();
    let hi = runs.iter().map(|r| r.run_id).max().unwrap_or_default();
    tx.execute_batch(&format!(
        "UPDATE sync_runs SET finished_at = CAST(v.finished_at AS TIMESTAMPTZ), outcome = v.outcome,
             windows_planned = v.windows_planned, windows_done = v.windows_done,
             requests = v.requests, retries = v.retries, rate_limited = v.rate_limited,
             sessions_upserted = v.sessions_upserted, sessions_deleted = v.sessions_deleted,
             sessions_marked_deleted = v.sessions_marked_deleted,
             records_rejected = v.records_rejected,
             watermark_after = CAST(v.watermark_after AS TIMESTAMPTZ), error = v.error
         FROM stage_run_ends v
         WHERE sync_runs.run_id = v.run_id AND sync_runs.run_id BETWEEN {lo} AND {hi};
         DELETE FROM stage_run_ends;"
    ))
    .doing(DOING)?;
    tx.commit().doing(DOING)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainmentType, Partition};
    use duckdb::params;

    /// Issue 23: a group's runs begin in one statement, and each stream
    /// gets its own row and id, whatever order RETURNING gives them in.
    #[test]
    fn issue_23_runs_begun_together_get_one_row_each_in_the_keys_order() {
        let (_dir, conn) = crate::store::connection::tests::warehouse();
        let keys = vec![
            StreamKey::sessions("st-b", ContainmentType::Agent, "f"),
            StreamKey::sessions("st-a", ContainmentType::SelfService, ""),
            StreamKey {
                bot_id: "st-a".into(),
                partition: Partition::Channel("rtm".into()),
                filter: String::new(),
            },
        ];
        let ids = begin_runs(&conn, "pass-1", &keys, "manual", Utc::now()).unwrap();
        assert_eq!(ids.len(), 3);
        for (key, id) in keys.iter().zip(&ids) {
            let (resource, bot, name, outcome, filter): (String, String, String, String, String) = conn
                .query_row(
                    "SELECT resource, bot_id, containment_type, outcome, filter FROM sync_runs WHERE run_id = ?",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .unwrap();
            assert_eq!(
                (
                    resource.as_str(),
                    bot.as_str(),
                    name.as_str(),
                    filter.as_str()
                ),
                (
                    key.partition.resource(),
                    key.bot_id.as_str(),
                    key.partition.name(),
                    key.filter.as_str()
                )
            );
            assert_eq!(outcome, "running");
        }
        assert!(
            begin_runs(&conn, "pass-1", &[], "manual", Utc::now())
                .unwrap()
                .is_empty()
        );
        let one = begin_run(&conn, "pass-2", &keys[0], "verify", Utc::now()).unwrap();
        assert!(!ids.contains(&one));
    }

    /// Issue 23: runs ended together keep each its own figures and end
    /// time, and a run not among them stays `running`.
    #[test]
    fn issue_23_runs_finished_together_keep_their_own_figures() {
        use crate::model::RunOutcome;
        let (_dir, conn) = crate::store::connection::tests::warehouse();
        let keys: Vec<StreamKey> = ["a", "b", "c"]
            .iter()
            .map(|b| StreamKey::sessions(b, ContainmentType::Agent, ""))
            .collect();
        let ids = begin_runs(&conn, "p", &keys, "manual", Utc::now()).unwrap();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let run = |i: usize, outcome, error: Option<&str>| FinishedRun {
            run_id: ids[i],
            record: RunRecord {
                outcome,
                error: error.map(str::to_owned),
                watermark_after: Some(t0),
                windows_planned: 2 + i as u32,
                windows_done: 1 + i as u32,
                requests: 10 * (i as u32 + 1),
                retries: i as u32,
                rate_limited: 0,
                sessions_upserted: 100 + i as u64,
                sessions_deleted: 0,
                sessions_marked_deleted: 0,
                records_rejected: i as u64,
            },
            finished_at: t0 + chrono::TimeDelta::seconds(i as i64),
        };
        let ended = [
            run(0, RunOutcome::Succeeded, None),
            run(1, RunOutcome::Failed, Some("it's broken")),
        ];
        finish_runs(&conn, &ended).unwrap();
        let row = |id: i64| -> (String, Option<i64>, i32, i32, i64, Option<String>) {
            conn.query_row(
                "SELECT outcome, epoch_us(finished_at) // 1000000, windows_done, requests,
                        sessions_upserted, error FROM sync_runs WHERE run_id = ?",
                params![id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap()
        };
        assert_eq!(
            row(ids[0]),
            ("succeeded".into(), Some(1_800_000_000), 1, 10, 100, None)
        );
        assert_eq!(
            row(ids[1]),
            (
                "failed".into(),
                Some(1_800_000_001),
                2,
                20,
                101,
                Some("it's broken".into())
            )
        );
        assert_eq!(row(ids[2]).0, "running");
        assert_eq!(row(ids[2]).1, None);
    }
}
