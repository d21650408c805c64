//! Bookkeeping rows: each stream's watermark and filter (`sync_state`),
//! the cross-process request log (`api_requests`), and what a pass reads
//! of the stored sessions to check them (counts, stale active sessions).
//! Runs' own rows are `run_rows.rs`'.

use super::error::{QueryContext, StoreError};
use super::sql::{from_micros, lit, ts};
use crate::model::{StreamFilter, StreamKey, Window};
use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt, params};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The stream's stored watermark and the filter it was reached with.
pub(super) fn watermark_with_filter(
    conn: &Connection,
    key: &StreamKey,
) -> Result<StoredState, StoreError> {
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

/// A stream's stored watermark and the filter it was reached with (both
/// None: no row yet).
pub type StoredState = (Option<DateTime<Utc>>, Option<String>);

/// The stored state of each of `keys`, in their order, read in one
/// statement for a group of streams (a bot's session streams, or its
/// message streams) rather than one each (issue 23).
pub(super) fn stream_states(
    conn: &Connection,
    keys: &[StreamKey],
) -> Result<Vec<StoredState>, StoreError> {
    const DOING: &str = "reading watermarks";
    // One stream: its own cached statement.
    if let [key] = keys {
        return Ok(vec![watermark_with_filter(conn, key)?]);
    }
    let bots: BTreeSet<&str> = keys.iter().map(|k| k.bot_id.as_str()).collect();
    let mut found: HashMap<(String, String, String), StoredState> = HashMap::new();
    // Every bot's rows in one statement: a group commit spans a fleet.
    let bots: Vec<String> = bots.into_iter().map(lit).collect();
    for chunk in bots.chunks(512) {
        let sql = format!(
            "SELECT resource, bot_id, containment_type, epoch_us(watermark), coalesce(filter, '')
             FROM sync_state WHERE bot_id IN ({})",
            chunk.join(", ")
        );
        let mut stmt = conn.prepare(&sql).doing(DOING)?;
        let mut rows = stmt.query([]).doing(DOING)?;
        while let Some(row) = rows.next().doing(DOING)? {
            let at: i64 = row.get(3).doing(DOING)?;
            let state = (Some(from_micros(at)), Some(row.get(4).doing(DOING)?));
            let name = (
                row.get(0).doing(DOING)?,
                row.get(1).doing(DOING)?,
                row.get(2).doing(DOING)?,
            );
            found.insert(name, state);
        }
    }
    Ok(keys
        .iter()
        .map(|k| {
            let name = (
                k.partition.resource().to_owned(),
                k.bot_id.clone(),
                k.partition.name().to_owned(),
            );
            found.remove(&name).unwrap_or((None, None))
        })
        .collect())
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
               AND (? = '*' OR bot_id = ?) AND start_time < CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)
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

/// Requests sent within the hour before `now`, for each of `scopes` (those
/// without any are absent), read in one statement for a whole pass.
pub(super) fn request_histories(
    conn: &Connection,
    scopes: &[String],
    now: DateTime<Utc>,
) -> Result<HashMap<String, Vec<DateTime<Utc>>>, StoreError> {
    const DOING: &str = "reading the request log";
    let wanted: HashSet<&str> = scopes.iter().map(String::as_str).collect();
    let mut stmt = conn
        .prepare_cached(
            "SELECT scope, epoch_us(requested_at) FROM api_requests
             WHERE epoch_us(requested_at) > ? ORDER BY requested_at",
        )
        .doing(DOING)?;
    let since = now.timestamp_micros() - 3_600_000_000;
    let mut rows = stmt.query(params![since]).doing(DOING)?;
    let mut found: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    while let Some(row) = rows.next().doing(DOING)? {
        let scope: String = row.get(0).doing(DOING)?;
        if wanted.contains(scope.as_str()) {
            let at = from_micros(row.get(1).doing(DOING)?);
            found.entry(scope).or_default().push(at);
        }
    }
    Ok(found)
}

/// What a pass leaves in the bookkeeping once its scopes are done: the
/// requests each scope sent, and the bots whose noted closed sessions
/// nothing will read (their messages are not synced).
#[derive(Debug, Default)]
pub struct PassLog {
    pub requests: Vec<(String, Vec<DateTime<Utc>>)>,
    pub forget_bots: Vec<String>,
}

/// Writes a pass's log in one transaction: appends its requests, drops
/// entries older than an hour, and forgets the noted sessions of
/// `forget_bots`.
pub(super) fn record_pass(
    conn: &mut Connection,
    log: &PassLog,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const DOING: &str = "recording requests";
    let tx = conn.transaction().doing(DOING)?;
    let rows: Vec<(&str, DateTime<Utc>)> = log
        .requests
        .iter()
        .flat_map(|(scope, times)| times.iter().map(move |t| (scope.as_str(), *t)))
        .collect();
    if !rows.is_empty() {
        // Appended, not inserted: the appender skips DuckDB's parser and
        // planner, which cost more than a pass's few hundred rows.
        let mut log_rows = tx.appender("api_requests").doing(DOING)?;
        for (scope, at) in &rows {
            log_rows.append_row(params![scope, ts(*at)]).doing(DOING)?;
        }
        log_rows.flush().doing(DOING)?;
    }
    tx.prepare_cached("DELETE FROM api_requests WHERE epoch_us(requested_at) <= ?")
        .doing("pruning the request log")?
        .execute(params![now.timestamp_micros() - 3_600_000_000])
        .doing("pruning the request log")?;
    super::messages::forget_bots(&tx, &log.forget_bots, now)?;
    tx.commit().doing(DOING)
}

/// The SQL condition that selects a stream's live sessions starting within
/// `[from, to]` (callers that exclude `to` add that themselves), with its
/// filter's `session_type` and `user_id` applied, and its parameters.
fn stream_span(key: &StreamKey, filter: &StreamFilter, window: Window) -> (String, Vec<String>) {
    let mut sql = String::from(
        "deleted_at IS NULL AND containment_type = ? AND (? = '*' OR bot_id = ?)
         AND start_time >= CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ) AND start_time <= CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)",
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
            "SELECT count(*) FILTER (WHERE start_time < CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)), count(*)
             FROM sessions WHERE {cond}"
        ))
        .doing("counting stored sessions")?
        .query_row(duckdb::params_from_iter(params), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .doing("counting stored sessions")?;
    Ok((excluded.max(0) as u64, included.max(0) as u64))
}

/// The rows of `table` (its time and partition columns named) of stream
/// `key`'s bot and partition within `window`, counted with its end
/// excluded and included: for messages and analytics events.
pub(super) fn count_in_window(
    conn: &Connection,
    (table, time, partition): (&str, &str, &str),
    key: &StreamKey,
    window: Window,
) -> Result<(u64, u64), StoreError> {
    let doing = "counting stored records";
    let (excluded, included): (i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT count(*) FILTER (WHERE {time} < CAST(CAST(?3 AS VARCHAR) AS TIMESTAMPTZ)), count(*)
             FROM {table} WHERE bot_id = ?1 AND {partition} = ?2
               AND {time} >= CAST(CAST(?4 AS VARCHAR) AS TIMESTAMPTZ)
               AND {time} <= CAST(CAST(?3 AS VARCHAR) AS TIMESTAMPTZ)"
        ))
        .doing(doing)?
        .query_row(
            params![
                key.bot_id,
                key.partition.name(),
                ts(window.end),
                ts(window.start)
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .doing(doing)?;
    Ok((excluded.max(0) as u64, included.max(0) as u64))
}

/// The rows of `table` (its time and partition columns named) of `bot_id`
/// within `window`, for each of `partitions`, counted with its end excluded
/// and included, in their order. One row of filtered counts, so the answer
/// has a fixed shape; a `GROUP BY` version, tried first, used as much CPU
/// or more in the fleet's first pass (BENCHMARKS.md, issue 24).
pub(super) fn count_by_partition(
    conn: &Connection,
    (table, time, partition): (&str, &str, &str),
    (bot_id, partitions): (&str, &[&str]),
    window: Window,
) -> Result<Vec<(u64, u64)>, StoreError> {
    const DOING: &str = "counting stored records";
    let counts: Vec<String> = partitions
        .iter()
        .map(|p| {
            let p = lit(p);
            format!(
                "count(*) FILTER (WHERE {partition} = {p} AND {time} < CAST(CAST(?2 AS VARCHAR) AS TIMESTAMPTZ)),
                 count(*) FILTER (WHERE {partition} = {p})"
            )
        })
        .collect();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {} FROM {table} WHERE bot_id = ?1
               AND {time} >= CAST(CAST(?3 AS VARCHAR) AS TIMESTAMPTZ)
               AND {time} <= CAST(CAST(?2 AS VARCHAR) AS TIMESTAMPTZ)",
            counts.join(", ")
        ))
        .doing(DOING)?;
    stmt.query_row(params![bot_id, ts(window.end), ts(window.start)], |r| {
        (0..partitions.len())
            .map(|i| {
                let (excluded, included): (i64, i64) = (r.get(2 * i)?, r.get(2 * i + 1)?);
                Ok((excluded.max(0) as u64, included.max(0) as u64))
            })
            .collect()
    })
    .doing(DOING)
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
             WHERE {cond} AND start_time < CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ) ORDER BY session_id"
        ))
        .doing("listing stored sessions")?;
    let ids = stmt
        .query_map(duckdb::params_from_iter(args), |r| r.get(0))
        .doing("listing stored sessions")?
        .collect::<Result<Vec<String>, _>>()
        .doing("listing stored sessions")?;
    Ok(ids)
}
