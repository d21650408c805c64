//! What `verify` prints: the table of windows that differed and of each
//! stream's run, the messages left without a session, and the JSON
//! `verify --json` writes (its own output type, like `status --json`).

use super::render::{stamp, stream_error, stream_head};
use crate::sync::VerifyReport;
use crate::sync::orphans::OrphanCheck;
use crate::sync::reconcile::WindowCheck;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The `verify` table: one line per window that differs (or was repaired),
/// then a line per stream.
pub fn print_verify(report: &VerifyReport, dry_run: bool) {
    println!(
        "{:<32} {:<45} {:>9} {:>9} {:>7} {:>7} {:>7}  STATE",
        "STREAM", "WINDOW", "API", "STORED", "ADDED", "UPDATED", "DELETED"
    );
    for row in &report.rows {
        let c = &row.check;
        let touched = c.added + c.updated + c.deleted > 0;
        if c.equal && !touched {
            continue;
        }
        let state = match (c.equal, dry_run) {
            (true, _) => "repaired",
            (false, true) => "differs",
            (false, false) => "still differs",
        };
        println!(
            "{:<32} {:<45} {:>9} {:>9} {:>7} {:>7} {:>7}  {state}",
            row.key.to_string(),
            format!("{} .. {}", stamp(c.window.start), stamp(c.window.end)),
            c.api_count.map_or("-".into(), |n| n.to_string()),
            c.stored_count,
            c.added,
            c.updated,
            c.deleted,
        );
    }
    for s in &report.streams {
        let n_differ = report
            .rows
            .iter()
            .filter(|r| {
                r.key == s.key
                    && (!r.check.equal || r.check.added + r.check.updated + r.check.deleted > 0)
            })
            .count();
        println!(
            "{} ({n_differ} differed)  requests {}  written {}  deleted {}  marked {}{}",
            stream_head(s),
            s.requests,
            s.sessions_written,
            s.sessions_deleted,
            s.sessions_marked,
            stream_error(s),
        );
    }
    for o in report
        .orphans
        .iter()
        .filter(|o| o.n_sessions > 0 || o.error.is_some())
    {
        let what = if dry_run {
            format!("{} sessions to confirm with the API", o.n_sessions)
        } else {
            format!(
                "{} sessions looked up: {} stored, {} gone upstream; {} still missing",
                o.n_sessions, o.n_found, o.n_gone, o.n_left
            )
        };
        let error = o
            .error
            .as_deref()
            .map_or(String::new(), |e| format!("  error: {e}"));
        println!("messages of {} without a session: {what}{error}", o.bot_id);
    }
    if let Some(why) = &report.stopped {
        println!(
            "verify stopped before checking every stream ({why}); \
             run it again to check the rest"
        );
    }
}

/// What `verify --json` writes.
#[derive(Debug, Serialize)]
pub struct VerifyJson<'a> {
    pub equal: bool,
    pub windows: Vec<VerifyWindowJson<'a>>,
    /// Per bot: the sessions of messages that had none (issue 21).
    pub messages_without_session: &'a [OrphanCheck],
    /// Why verify stopped before checking every stream; null when it
    /// checked them all.
    pub stopped: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct VerifyWindowJson<'a> {
    pub bot_id: &'a str,
    pub containment_type: &'a str,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    #[serde(flatten)]
    pub check: &'a WindowCheck,
}

impl<'a> VerifyJson<'a> {
    pub fn new(r: &'a VerifyReport) -> Self {
        VerifyJson {
            equal: r.all_equal(),
            windows: r
                .rows
                .iter()
                .map(|row| VerifyWindowJson {
                    bot_id: &row.key.bot_id,
                    containment_type: row.key.partition.name(),
                    window_start: row.check.window.start,
                    window_end: row.check.window.end,
                    check: &row.check,
                })
                .collect(),
            messages_without_session: &r.orphans,
            stopped: r.stopped.as_deref(),
        }
    }
}
