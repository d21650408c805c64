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
    let started = ts(now);
    let rows: Vec<[&str; 7]> = keys
        .iter()
        .map(|k| {
            [
                pass_id,
                k.partition.resource(),
                k.bot_id.as_str(),
                k.partition.name(),
                trigger,
                started.as_str(),
                k.filter.as_str(),
            ]
        })
        .collect();
    let returned = if rows.len() <= INLINE_ROWS {
        insert_inline(conn, &rows)?
    } else {
        insert_staged(conn, &rows)?
    };
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

/// Up to this many rows, a statement names its values inline (a `VALUES`
/// list, about 15 µs a value for DuckDB to parse and bind); beyond, they
/// are staged with the Appender and applied by one statement, which costs
/// three statements more (about 3 ms) but nothing a value.
pub(super) const INLINE_ROWS: usize = 24;

/// The ids `INSERT … RETURNING` gave, with each row's stream.
type Returned = Vec<(i64, String, String, String)>;

const INSERT_STARTS: &str = "INSERT INTO sync_runs (pass_id, resource, bot_id, containment_type, trigger, started_at, outcome, filter)";
const DOING_STARTS: &str = "recording the start of runs";

/// Run starts given inline (a few).
fn insert_inline(conn: &Connection, rows: &[[&str; 7]]) -> Result<Returned, StoreError> {
    let row = "(?, ?, ?, ?, ?, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ), 'running', ?)";
    let sql = format!(
        "{INSERT_STARTS} VALUES {} RETURNING run_id, resource, bot_id, containment_type",
        vec![row; rows.len()].join(", ")
    );
    let mut stmt = conn.prepare_cached(&sql).doing(DOING_STARTS)?;
    let args = duckdb::params_from_iter(rows.iter().flatten());
    stmt.query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .doing(DOING_STARTS)?
        .collect::<Result<_, _>>()
        .doing(DOING_STARTS)
}

/// Run starts staged (many).
fn insert_staged(conn: &Connection, rows: &[[&str; 7]]) -> Result<Returned, StoreError> {
    // The staging table is empty outside this transaction: it is emptied
    // before the commit, and a rollback empties it too.
    let tx = conn.unchecked_transaction().doing(DOING_STARTS)?;
    stage_rows(&tx, "stage_run_starts", DOING_STARTS, |app| {
        rows.iter()
            .try_for_each(|row| app.append_row(duckdb::appender_params_from_iter(row.iter())))
    })?;
    let mut stmt = tx
        .prepare_cached(&format!(
            "{INSERT_STARTS}
             SELECT pass_id, resource, bot_id, containment_type, trigger,
                    CAST(started_at AS TIMESTAMPTZ), 'running', filter
             FROM stage_run_starts
             RETURNING run_id, resource, bot_id, containment_type"
        ))
        .doing(DOING_STARTS)?;
    let returned: Returned = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .doing(DOING_STARTS)?
        .collect::<Result<_, _>>()
        .doing(DOING_STARTS)?;
    drop(stmt);
    tx.execute_batch("DELETE FROM stage_run_starts")
        .doing(DOING_STARTS)?;
    tx.commit().doing(DOING_STARTS)?;
    Ok(returned)
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
    const COLUMNS: &str = "run_id, finished_at, outcome, windows_planned, windows_done, \
        requests, retries, rate_limited, sessions_upserted, sessions_deleted, \
        sessions_marked_deleted, records_rejected, watermark_after, error";
    const ROW: &str = "(CAST(? AS BIGINT), CAST(? AS VARCHAR), CAST(? AS VARCHAR), \
        CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS INTEGER), \
        CAST(? AS INTEGER), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), \
        CAST(? AS BIGINT), CAST(? AS VARCHAR), CAST(? AS VARCHAR))";
    if runs.is_empty() {
        return Ok(());
    }
    let rows: Vec<[Box<dyn duckdb::ToSql>; 14]> = runs.iter().map(end_row).collect();
    // The runs' id range, as constants DuckDB prunes row groups by: without
    // it the join reads every run ever recorded.
    let lo = runs.iter().map(|r| r.run_id).min().unwrap_or_default();
    let hi = runs.iter().map(|r| r.run_id).max().unwrap_or_default();
    let update = |source: &str| {
        format!(
            "UPDATE sync_runs SET finished_at = CAST(v.finished_at AS TIMESTAMPTZ), outcome = v.outcome,
                 windows_planned = v.windows_planned, windows_done = v.windows_done,
                 requests = v.requests, retries = v.retries, rate_limited = v.rate_limited,
                 sessions_upserted = v.sessions_upserted, sessions_deleted = v.sessions_deleted,
                 sessions_marked_deleted = v.sessions_marked_deleted,
                 records_rejected = v.records_rejected,
                 watermark_after = CAST(v.watermark_after AS TIMESTAMPTZ), error = v.error
             FROM {source}
             WHERE sync_runs.run_id = v.run_id AND sync_runs.run_id BETWEEN {lo} AND {hi}"
        )
    };
    if rows.len() <= INLINE_ROWS {
        let values = format!(
            "(VALUES {}) AS v({COLUMNS})",
            vec![ROW; rows.len()].join(", ")
        );
        conn.prepare(&update(&values))
            .doing(DOING)?
            .execute(duckdb::params_from_iter(rows.iter().flatten()))
            .doing(DOING)?;
        return Ok(());
    }
    // The staging table is empty outside this transaction: it is emptied
    // before the commit, and a rollback empties it too.
    let tx = conn.unchecked_transaction().doing(DOING)?;
    stage_rows(&tx, "stage_run_ends", DOING, |app| {
        rows.iter()
            .try_for_each(|row| app.append_row(duckdb::appender_params_from_iter(row.iter())))
    })?;
    tx.execute_batch(&format!(
        "{}; DELETE FROM stage_run_ends;",
        update("stage_run_ends v")
    ))
    .doing(DOING)?;
    tx.commit().doing(DOING)
}

/// A run's end as the values of a row of `stage_run_ends`.
fn end_row(run: &FinishedRun) -> [Box<dyn duckdb::ToSql>; 14] {
    let r = &run.record;
    [
        Box::new(run.run_id),
        Box::new(ts(run.finished_at)),
        Box::new(r.outcome.as_str().to_owned()),
        Box::new(r.windows_planned),
        Box::new(r.windows_done),
        Box::new(r.requests),
        Box::new(r.retries),
        Box::new(r.rate_limited),
        Box::new(r.sessions_upserted),
        Box::new(r.sessions_deleted),
        Box::new(r.sessions_marked_deleted),
        Box::new(r.records_rejected),
        Box::new(r.watermark_after.map(ts)),
        Box::new(r.error.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainmentType, Partition};
    use duckdb::params;

    /// `n` streams of bots `x0`, `x1`, …
    fn more_keys(n: usize) -> Vec<StreamKey> {
        (0..n)
            .map(|i| StreamKey::sessions(&format!("x{i}"), ContainmentType::DropOff, ""))
            .collect()
    }

    /// Issue 23: a group's runs begin in one statement, and each stream
    /// gets its own row and id, whatever order RETURNING gives them in —
    /// a few named inline, many staged.
    #[test]
    fn issue_23_runs_begun_together_get_one_row_each_in_the_keys_order() {
        for extra in [0, INLINE_ROWS] {
            runs_begun_together(extra);
        }
    }

    fn runs_begun_together(extra: usize) {
        let (_dir, conn) = crate::store::connection::tests::warehouse();
        let mut keys = vec![
            StreamKey::sessions("st-b", ContainmentType::Agent, "f"),
            StreamKey::sessions("st-a", ContainmentType::SelfService, ""),
            StreamKey {
                bot_id: "st-a".into(),
                partition: Partition::Channel("rtm".into()),
                filter: String::new(),
            },
        ];
        keys.extend(more_keys(extra));
        let ids = begin_runs(&conn, "pass-1", &keys, "manual", Utc::now()).unwrap();
        assert_eq!(ids.len(), 3 + extra);
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
        let one = begin_runs(&conn, "pass-2", &keys[..1], "verify", Utc::now()).unwrap()[0];
        assert!(!ids.contains(&one));
    }

    /// Issue 23: runs ended together keep each its own figures and end
    /// time, and a run not among them stays `running` — a few named
    /// inline, many staged.
    #[test]
    fn issue_23_runs_finished_together_keep_their_own_figures() {
        for extra in [0, INLINE_ROWS] {
            runs_finished_together(extra);
        }
    }

    fn runs_finished_together(extra: usize) {
        use crate::model::RunOutcome;
        let (_dir, conn) = crate::store::connection::tests::warehouse();
        let mut keys: Vec<StreamKey> = ["a", "b"]
            .iter()
            .map(|b| StreamKey::sessions(b, ContainmentType::Agent, ""))
            .collect();
        keys.extend(more_keys(extra));
        keys.push(StreamKey::sessions("c", ContainmentType::Agent, ""));
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
        let mut ended = vec![
            run(0, RunOutcome::Succeeded, None),
            run(1, RunOutcome::Failed, Some("it's broken")),
        ];
        ended.extend((2..2 + extra).map(|i| run(i, RunOutcome::Succeeded, None)));
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
        let last = ids[ids.len() - 1];
        assert_eq!(row(last).0, "running");
        assert_eq!(row(last).1, None);
        if extra > 0 {
            assert_eq!(row(ids[2 + extra - 1]).0, "succeeded");
        }
    }
}
