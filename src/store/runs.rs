//! Bookkeeping rows: each stream's watermark and filter (`sync_state`),
//! each run (`sync_runs`), the cross-process request log (`api_requests`),
//! and the sessions a pass must re-read by id.

use super::RunRecord;
use super::error::{QueryContext, StoreError};
use super::sql::{from_micros, ts};
use crate::model::{StreamFilter, StreamKey, Window};
use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt, params};

/// The stream's stored watermark and the filter it was reached with.
pub(super) fn watermark_with_filter(
    conn: &Connection,
    key: &StreamKey,
) -> Result<(Option<DateTime<Utc>>, Option<String>), StoreError> {
    const DOING: &str = "reading a watermark";
    conn.prepare_cached(
        "SELECT epoch_us(watermark), coalesce(filter, '') FROM sync_state
         WHERE resource = ? AND bot_id = ? AND containment_type = ?",
    )
    .doing(DOING)?
    .query_row(
        params![key.partition.resource(), key.bot_id, key.partition.name()],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
    )
    .optional()
    .doing(DOING)
    .map(|o| match o {
        Some((w, f)) => (Some(from_micros(w)), Some(f)),
        None => (None, None),
    })
}

/// Keeps the stored watermark but records it under the stream's new filter
/// (`sync.restart_on_filter_change = false`).
pub(super) fn adopt_filter(conn: &Connection, key: &StreamKey) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE sync_state SET filter = ?
         WHERE resource = ? AND bot_id = ? AND containment_type = ?",
        params![
            key.filter,
            key.partition.resource(),
            key.bot_id,
            key.partition.name()
        ],
    )
    .doing("keeping a watermark under a new filter")?;
    Ok(())
}

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
    let row = "(?, ?, ?, ?, ?, CAST(? AS TIMESTAMPTZ), 'running', ?)";
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

pub(super) fn finish_run(
    conn: &Connection,
    run_id: i64,
    r: &RunRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const DOING: &str = "recording the end of a run";
    conn.prepare_cached(
        "UPDATE sync_runs SET finished_at = CAST(? AS TIMESTAMPTZ), outcome = ?, windows_planned = ?,
             windows_done = ?, requests = ?, retries = ?, rate_limited = ?, sessions_upserted = ?,
             sessions_deleted = ?, sessions_marked_deleted = ?, records_rejected = ?,
             watermark_after = CAST(? AS TIMESTAMPTZ), error = ?
         WHERE run_id = ?",
    )
    .doing(DOING)?
    .execute(params![
            ts(now),
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
        run_id
    ])
    .doing(DOING)?;
    Ok(())
}

/// Ids of sessions stored as `active` for this stream that started before
/// `before`: a pass's windows no longer cover them, so they are re-read by id.
pub(super) fn stale_active_sessions(
    conn: &Connection,
    key: &StreamKey,
    before: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT session_id FROM sessions
             WHERE session_status = 'active' AND deleted_at IS NULL AND containment_type = ?
               AND (? = '*' OR bot_id = ?) AND start_time < CAST(? AS TIMESTAMPTZ)
             ORDER BY start_time",
        )
        .doing("finding stale active sessions")?;
    let ids = stmt
        .query_map(
            params![key.partition.name(), key.bot_id, key.bot_id, ts(before)],
            |r| r.get(0),
        )
        .doing("finding stale active sessions")?
        .collect::<Result<Vec<String>, _>>()
        .doing("finding stale active sessions")?;
    Ok(ids)
}

/// Requests sent for `scope` within the hour before `now`.
pub(super) fn request_history(
    conn: &Connection,
    scope: &str,
    now: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT epoch_us(requested_at) FROM api_requests
             WHERE scope = ? AND epoch_us(requested_at) > ? ORDER BY requested_at",
        )
        .doing("reading the request log")?;
    let since = now.timestamp_micros() - 3_600_000_000;
    let times = stmt
        .query_map(params![scope, since], |r| r.get::<_, i64>(0))
        .doing("reading the request log")?
        .map(|r| r.map(from_micros))
        .collect::<Result<Vec<_>, _>>()
        .doing("reading the request log")?;
    Ok(times)
}

/// Appends requests to the log and drops entries older than an hour.
pub(super) fn record_requests(
    conn: &mut Connection,
    scope: &str,
    times: &[DateTime<Utc>],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let tx = conn.transaction().doing("recording requests")?;
    {
        // One statement for all of them (a statement costs DuckDB about
        // half a millisecond however few rows it writes), in chunks so the
        // statement's text stays small.
        for chunk in times.chunks(256) {
            let sql = format!(
                "INSERT INTO api_requests VALUES {}",
                vec!["(?, CAST(? AS TIMESTAMPTZ))"; chunk.len()].join(", ")
            );
            let args: Vec<String> = chunk
                .iter()
                .flat_map(|t| [scope.to_owned(), ts(*t)])
                .collect();
            // Not cached: its text varies with the count, and would push
            // the fixed statements out of the cache.
            tx.prepare(&sql)
                .doing("recording requests")?
                .execute(duckdb::params_from_iter(args))
                .doing("recording requests")?;
        }
        tx.prepare_cached("DELETE FROM api_requests WHERE epoch_us(requested_at) <= ?")
            .doing("pruning the request log")?
            .execute(params![now.timestamp_micros() - 3_600_000_000])
            .doing("pruning the request log")?;
    }
    tx.commit().doing("recording requests")
}

/// The SQL condition that selects a stream's live sessions starting within
/// `[from, to]` (callers that exclude `to` add that themselves), with its
/// filter's `session_type` and `user_id` applied, and its parameters.
fn stream_span(key: &StreamKey, filter: &StreamFilter, window: Window) -> (String, Vec<String>) {
    let mut sql = String::from(
        "deleted_at IS NULL AND containment_type = ? AND (? = '*' OR bot_id = ?)
         AND start_time >= CAST(? AS TIMESTAMPTZ) AND start_time <= CAST(? AS TIMESTAMPTZ)",
    );
    let mut args = vec![
        key.partition.name().to_owned(),
        key.bot_id.clone(),
        key.bot_id.clone(),
        ts(window.start),
        ts(window.end),
    ];
    if let Some(t) = &filter.session_type {
        sql.push_str(" AND session_type = ?");
        args.push(t.clone());
    }
    if let Some(u) = &filter.user_id {
        sql.push_str(" AND user_id = ?");
        args.push(u.clone());
    }
    (sql, args)
}

/// How many live sessions the stream holds in `window`: counted with the
/// window's end excluded and included (one scan), since the API may treat
/// `dateTo` either way.
pub(super) fn count_stored(
    conn: &Connection,
    key: &StreamKey,
    filter: &StreamFilter,
    window: Window,
) -> Result<(u64, u64), StoreError> {
    let (cond, args) = stream_span(key, filter, window);
    let params = std::iter::once(ts(window.end)).chain(args);
    // The text depends only on the filter's shape: one cached plan each.
    let (excluded, included): (i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT count(*) FILTER (WHERE start_time < CAST(? AS TIMESTAMPTZ)), count(*)
             FROM sessions WHERE {cond}"
        ))
        .doing("counting stored sessions")?
        .query_row(duckdb::params_from_iter(params), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .doing("counting stored sessions")?;
    Ok((excluded.max(0) as u64, included.max(0) as u64))
}

/// The ids of the stream's live sessions starting within `[from, to)`.
pub(super) fn stored_ids(
    conn: &Connection,
    key: &StreamKey,
    filter: &StreamFilter,
    window: Window,
) -> Result<Vec<String>, StoreError> {
    let (cond, mut args) = stream_span(key, filter, window);
    args.push(ts(window.end));
    let mut stmt = conn
        .prepare(&format!(
            "SELECT session_id FROM sessions
             WHERE {cond} AND start_time < CAST(? AS TIMESTAMPTZ) ORDER BY session_id"
        ))
        .doing("listing stored sessions")?;
    let ids = stmt
        .query_map(duckdb::params_from_iter(args), |r| r.get(0))
        .doing("listing stored sessions")?
        .collect::<Result<Vec<String>, _>>()
        .doing("listing stored sessions")?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainmentType, Partition};

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
}
