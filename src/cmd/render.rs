//! Everything the commands print about passes and the warehouse, in one
//! place: the per-stream pass lines, the `status` table, and the JSON
//! `status --json` writes (its own output type, so the store's structs can
//! change without changing what scripts read).

use crate::model::ACCOUNT_BOT_ID;
use crate::store::{StatusReport, StreamStatus};
use crate::sync::PassReport;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::Path;

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// How long ago `t` was, for people.
fn behind(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds().max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// A stream's name in tables: `bot/containment`.
fn stream_name(s: &StreamStatus) -> String {
    format!("{}/{}", s.bot_id, s.containment_type)
}

/// One line per stream of a pass, and its error on the next.
pub fn print_pass(report: &PassReport) {
    for s in &report.streams {
        println!(
            "{:<40} {:<11} windows {}/{}  requests {} (retries {})  sessions {} ({} written){}",
            s.key.to_string(),
            s.outcome.as_str(),
            s.windows_done,
            s.windows_planned,
            s.requests,
            s.retries,
            s.sessions_received,
            s.sessions_written,
            s.error
                .as_deref()
                .map_or(String::new(), |e| format!("\n    error: {e}")),
        );
    }
}

/// The `status` table.
pub fn print_status(path: &Path, r: &StatusReport, now: DateTime<Utc>) {
    println!(
        "warehouse {} (DuckDB {}): {} sessions, {} tags, {} rejected records, {} streams",
        path.display(),
        r.duckdb_version,
        r.n_sessions,
        r.n_tags,
        r.n_rejected,
        r.streams.len()
    );
    for p in &r.publications {
        let what = if p.kind == "read_copy" {
            "read copy"
        } else {
            "Parquet export"
        };
        println!(
            "{what} {} published {} ago ({})",
            p.target,
            behind(now, p.published_at),
            stamp(p.published_at)
        );
    }
    if r.streams.is_empty() {
        println!("no stream has run yet: run `kore-sync sync`");
        return;
    }
    println!(
        "{:<32} {:>9}  {:<24} {:<16} {:<24} {:<10} OUTCOME",
        "STREAM", "SESSIONS", "WATERMARK", "BEHIND", "LAST RUN", "TRIGGER"
    );
    for s in &r.streams {
        let filter = if s.filter.is_empty() {
            String::new()
        } else {
            format!(" [filter {}]", s.filter)
        };
        let error = s
            .last_error
            .as_deref()
            .map_or(String::new(), |e| format!(": {e}"));
        println!(
            "{:<32} {:>9}  {:<24} {:<16} {:<24} {:<10} {}{filter}{error}",
            stream_name(s),
            s.n_sessions,
            s.watermark.map_or("-".into(), stamp),
            s.watermark.map_or("-".into(), |w| behind(now, w)),
            s.last_run_started.map_or("-".into(), stamp),
            s.last_trigger.as_deref().unwrap_or("-"),
            s.last_outcome.as_deref().unwrap_or("-"),
        );
    }
}

/// The demo's summary table of streams.
pub fn print_demo_streams(r: &StatusReport) {
    println!(
        "{:<20} {:<12} {:>8}  WATERMARK",
        "BOT", "CONTAINMENT", "SESSIONS"
    );
    for s in &r.streams {
        println!(
            "{:<20} {:<12} {:>8}  {}",
            if s.bot_id == ACCOUNT_BOT_ID {
                "(account)"
            } else {
                &s.bot_id
            },
            s.containment_type,
            s.n_sessions,
            s.watermark.map_or("-".into(), |w| w.to_rfc3339()),
        );
    }
}

/// What `status --json` writes: the store's status, borrowed, plus how far
/// each stream is behind now.
#[derive(Debug, Serialize)]
pub struct StatusJson<'a> {
    /// When the read copy and the Parquet export were last published.
    pub publications: Vec<PublicationJson<'a>>,
    /// The bundled DuckDB's version: readers need this version or newer.
    pub duckdb_version: &'a str,
    pub n_sessions: i64,
    pub n_tags: i64,
    pub n_rejected: i64,
    pub streams: Vec<StreamJson<'a>>,
    /// Seconds each stream's watermark is behind now, in stream order
    /// (also in each stream, as `behind_seconds`).
    pub behind_seconds: Vec<Option<i64>>,
}

#[derive(Debug, Serialize)]
pub struct PublicationJson<'a> {
    /// `read_copy` or `parquet`.
    pub kind: &'a str,
    pub target: &'a str,
    pub published_at: DateTime<Utc>,
}

/// One stream: where it stands and how its last run went.
#[derive(Debug, Serialize)]
pub struct StreamJson<'a> {
    pub bot_id: &'a str,
    pub containment_type: &'a str,
    /// The API filters the stream last ran with (empty: none).
    pub filter: &'a str,
    pub n_sessions: i64,
    pub watermark: Option<DateTime<Utc>>,
    pub behind_seconds: Option<i64>,
    pub last_trigger: Option<&'a str>,
    pub last_run_started: Option<DateTime<Utc>>,
    pub last_run_finished: Option<DateTime<Utc>>,
    pub last_outcome: Option<&'a str>,
    pub last_error: Option<&'a str>,
}

impl<'a> StatusJson<'a> {
    pub fn new(r: &'a StatusReport, now: DateTime<Utc>) -> Self {
        let streams: Vec<StreamJson<'a>> = r
            .streams
            .iter()
            .map(|s| StreamJson {
                bot_id: &s.bot_id,
                containment_type: &s.containment_type,
                filter: &s.filter,
                n_sessions: s.n_sessions,
                watermark: s.watermark,
                behind_seconds: s.watermark.map(|w| (now - w).num_seconds()),
                last_trigger: s.last_trigger.as_deref(),
                last_run_started: s.last_run_started,
                last_run_finished: s.last_run_finished,
                last_outcome: s.last_outcome.as_deref(),
                last_error: s.last_error.as_deref(),
            })
            .collect();
        StatusJson {
            publications: r
                .publications
                .iter()
                .map(|p| PublicationJson {
                    kind: &p.kind,
                    target: &p.target,
                    published_at: p.published_at,
                })
                .collect(),
            duckdb_version: &r.duckdb_version,
            n_sessions: r.n_sessions,
            n_tags: r.n_tags,
            n_rejected: r.n_rejected,
            behind_seconds: streams.iter().map(|s| s.behind_seconds).collect(),
            streams,
        }
    }
}
