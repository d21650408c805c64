//! What the status page charts, read from the warehouse: the passes of the
//! last hours (their stream runs summed) and the live sessions per UTC day
//! and containment type. The daemon reads them after a pass, with the
//! stream rows of `status`, while it holds the warehouse anyway.

use super::error::{QueryContext, StoreError};
use super::sql::from_micros;
use super::{SessionStore, StatusReport, status};
use chrono::{DateTime, NaiveDate, Utc};
use duckdb::Connection;

/// One pass: its stream runs summed.
#[derive(Debug, Clone, PartialEq)]
pub struct PassSummary {
    pub started_at: DateTime<Utc>,
    /// From its first run's start to its last run's end.
    pub duration_seconds: f64,
    pub requests: i64,
    /// Records written (new or changed), over every resource.
    pub n_written: i64,
    /// Runs that failed, were interrupted or abandoned.
    pub n_failed: i64,
}

/// Live sessions of one containment type that started on one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayCount {
    pub day: NaiveDate,
    pub containment_type: String,
    pub n_sessions: i64,
}

/// What the status page shows of the warehouse.
#[derive(Debug, Clone)]
pub struct History {
    pub status: StatusReport,
    pub passes: Vec<PassSummary>,
    pub sessions_per_day: Vec<DayCount>,
}

impl SessionStore {
    /// The status report, the passes started since `passes_since`, and the
    /// sessions per day since `days_since`, in one turn of the connection.
    pub async fn history(
        &self,
        passes_since: DateTime<Utc>,
        days_since: NaiveDate,
    ) -> Result<History, StoreError> {
        self.with(move |c| {
            Ok(History {
                status: status::status(c)?,
                passes: passes(c, passes_since)?,
                sessions_per_day: sessions_per_day(c, days_since)?,
            })
        })
        .await
    }
}

fn passes(conn: &Connection, since: DateTime<Utc>) -> Result<Vec<PassSummary>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT epoch_us(min(started_at)),
                    epoch_us(max(coalesce(finished_at, started_at))) - epoch_us(min(started_at)),
                    sum(requests), sum(sessions_upserted),
                    count(*) FILTER (WHERE outcome IN ('failed', 'interrupted', 'abandoned'))
             FROM sync_runs WHERE started_at >= CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)
             GROUP BY pass_id ORDER BY 1",
        )
        .doing("reading the passes for the status page")?;
    let rows = stmt
        .query_map([since.to_rfc3339()], |r| {
            Ok(PassSummary {
                started_at: from_micros(r.get(0)?),
                duration_seconds: r.get::<_, i64>(1)? as f64 / 1e6,
                requests: r.get(2)?,
                n_written: r.get(3)?,
                n_failed: r.get(4)?,
            })
        })
        .doing("reading the passes for the status page")?
        .collect::<Result<_, _>>()
        .doing("reading the passes for the status page")?;
    Ok(rows)
}

fn sessions_per_day(conn: &Connection, since: NaiveDate) -> Result<Vec<DayCount>, StoreError> {
    let since = since
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .to_rfc3339();
    let mut stmt = conn
        .prepare(
            "SELECT CAST(CAST(make_timestamp(epoch_us(start_time)) AS DATE) AS VARCHAR) AS day,
                    containment_type, count(*)
             FROM sessions
             WHERE deleted_at IS NULL AND start_time >= CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)
             GROUP BY ALL ORDER BY ALL",
        )
        .doing("counting sessions per day for the status page")?;
    let rows = stmt
        .query_map([since], |r| {
            let day: String = r.get(0)?;
            Ok(DayCount {
                day: day.parse().unwrap_or_default(),
                containment_type: r.get(1)?,
                n_sessions: r.get(2)?,
            })
        })
        .doing("counting sessions per day for the status page")?
        .collect::<Result<_, _>>()
        .doing("counting sessions per day for the status page")?;
    Ok(rows)
}
