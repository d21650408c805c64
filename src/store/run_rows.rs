//! The rows of `sync_runs`: a stream's run is recorded when it begins
//! (`running`, so `status` shows a pass under way and a crash leaves a row
//! the next open marks abandoned) and when it ends. Both are written for a
//! group of streams at once — DuckDB spends about half a millisecond on
//! any statement over a table, however few rows it writes (issue 23).

use super::RunRecord;
use super::error::{QueryContext, StoreError};
use super::sql::ts;
use crate::model::StreamKey;
use chrono::{DateTime, Utc};
use duckdb::Connection;

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

/// Records the start of several streams' runs in one statement — DuckDB
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
    let row = "(?, ?, ?, ?, ?, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ), 'running', ?)";
    let sql = format!(
        "INSERT INTO sync_runs (pass_id, resource, bot_id, containment_type, trigger, started_at, outcome, filter)
         VALUES {} RETURNING run_id, resource, bot_id, containment_type",
        vec![row; keys.len()].join(", ")
    );
    let started = ts(now);
    let args = keys.iter().flat_map(|k| {
        [
            pass_id,
            k.partition.resource(),
            k.bot_id.as_str(),
            k.partition.name(),
            trigger,
            started.as_str(),
            k.filter.as_str(),
        ]
    });
    let mut stmt = conn.prepare_cached(&sql).doing(DOING)?;
    let returned: Vec<(i64, String, String, String)> = stmt
        .query_map(duckdb::params_from_iter(args), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .doing(DOING)?
        .collect::<Result<_, _>>()
        .doing(DOING)?;
    // RETURNING promises no order: each id is matched to its stream.
    keys.iter()
        .map(|k| {
            returned
                .iter()
                .find(|(_, resource, bot, name)| {
                    resource == k.partition.resource()
                        && *bot == k.bot_id
                        && name == k.partition.name()
                })
                .map(|(id, ..)| *id)
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

/// Records the end of several runs in one statement (one per 128 runs),
/// each with its own end time.
pub(super) fn finish_runs(conn: &Connection, runs: &[FinishedRun]) -> Result<(), StoreError> {
    const DOING: &str = "recording the end of runs";
    const ROW: &str = "(CAST(? AS BIGINT), CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ), CAST(? AS VARCHAR), \
        CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS INTEGER), \
        CAST(? AS INTEGER), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), \
        CAST(? AS BIGINT), CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ), CAST(? AS VARCHAR))";
    for chunk in runs.chunks(128) {
        let sql = format!(
            "UPDATE sync_runs SET finished_at = v.finished_at, outcome = v.outcome,
                 windows_planned = v.windows_planned, windows_done = v.windows_done,
                 requests = v.requests, retries = v.retries, rate_limited = v.rate_limited,
                 sessions_upserted = v.sessions_upserted, sessions_deleted = v.sessions_deleted,
                 sessions_marked_deleted = v.sessions_marked_deleted,
                 records_rejected = v.records_rejected, watermark_after = v.watermark_after,
                 error = v.error
             FROM (VALUES {}) AS v(run_id, finished_at, outcome, windows_planned, windows_done,
                 requests, retries, rate_limited, sessions_upserted, sessions_deleted,
                 sessions_marked_deleted, records_rejected, watermark_after, error)
             WHERE sync_runs.run_id = v.run_id",
            vec![ROW; chunk.len()].join(", ")
        );
        let mut args: Vec<Box<dyn duckdb::ToSql>> = Vec::with_capacity(chunk.len() * 14);
        for run in chunk {
            let r = &run.record;
            args.push(Box::new(run.run_id));
            args.push(Box::new(ts(run.finished_at)));
            args.push(Box::new(r.outcome.as_str()));
            args.push(Box::new(r.windows_planned));
            args.push(Box::new(r.windows_done));
            args.push(Box::new(r.requests));
            args.push(Box::new(r.retries));
            args.push(Box::new(r.rate_limited));
            args.push(Box::new(r.sessions_upserted));
            args.push(Box::new(r.sessions_deleted));
            args.push(Box::new(r.sessions_marked_deleted));
            args.push(Box::new(r.records_rejected));
            args.push(Box::new(r.watermark_after.map(ts)));
            args.push(Box::new(r.error.clone()));
        }
        // Cached by its text, which differs only with the group's size.
        conn.prepare_cached(&sql)
            .doing(DOING)?
            .execute(duckdb::params_from_iter(args.iter().map(|a| a.as_ref())))
            .doing(DOING)?;
    }
    Ok(())
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        let conn = Connection::open(&path).unwrap();
        super::super::migrations::apply(&conn, &path).unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.duckdb");
        let conn = Connection::open(&path).unwrap();
        super::super::migrations::apply(&conn, &path).unwrap();
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
