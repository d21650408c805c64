//! Everything the commands print about passes and the warehouse, in one
//! place: the per-stream pass lines, the `status` table, and the JSON
//! `status --json` writes (its own output type, so the store's structs can
//! change without changing what scripts read). `verify`'s table and JSON
//! are in `render_verify`.

use crate::model::ACCOUNT_BOT_ID;
use crate::store::{StatusReport, StreamStatus};
use crate::sync::{PassReport, StreamReport};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::Path;

pub(super) fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// How long ago `t` was, for people.
fn behind(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds().max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// A stream's name in tables: `bot/containment`.
fn stream_name(s: &StreamStatus) -> String {
    if s.resource == "sessions" {
        format!("{}/{}", s.bot_id, s.containment_type)
    } else {
        format!("{}/{}:{}", s.bot_id, s.resource, s.containment_type)
    }
}

/// A stream's name, outcome and windows, the start of its summary line.
pub(super) fn stream_head(s: &StreamReport) -> String {
    format!(
        "{:<40} {:<11} windows {}/{}",
        s.key.to_string(),
        s.outcome.as_str(),
        s.windows_done,
        s.windows_planned
    )
}

/// The stream's error on a line of its own, if it has one.
pub(super) fn stream_error(s: &StreamReport) -> String {
    s.error
        .as_deref()
        .map_or(String::new(), |e| format!("\n    error: {e}"))
}

/// What a stream's records are called in a line of its own.
fn records_noun(s: &StreamReport) -> &'static str {
    match s.key.partition.resource() {
        "sessions" => "sessions",
        "messages" => "messages",
        "llm_usage" => "calls",
        _ => "events",
    }
}

/// One line per stream of a pass, and its error on the next.
pub fn print_pass(report: &PassReport) {
    for s in &report.streams {
        println!(
            "{}  requests {} (retries {})  {} {} ({} written){}",
            stream_head(s),
            s.requests,
            s.retries,
            records_noun(s),
            s.sessions_received,
            s.sessions_written,
            stream_error(s),
        );
    }
}

/// The `status` table.
pub fn print_status(path: &Path, r: &StatusReport, now: DateTime<Utc>) {
    println!(
        "warehouse {} (storage format {}, kore-sync's DuckDB {}): {} sessions, {} tags, {} messages, {} analytics events, {} LLM calls, {} rejected records, {} streams",
        path.display(),
        r.storage_version,
        r.duckdb_version,
        r.n_sessions,
        r.n_tags,
        r.n_messages,
        r.n_analytics_events,
        r.n_llm_calls,
        r.n_rejected,
        r.streams.len()
    );
    if r.n_gone > 0 {
        println!(
            "{} sessions the API no longer has are kept, marked in sessions.deleted_at (sync.deletes = \"keep\")",
            r.n_gone
        );
    }
    if r.n_messages_without_session > 0 {
        println!(
            "{} messages have no session in the warehouse (should be 0; they were stored by an earlier kore-sync: \
             `kore-sync verify` confirms their sessions with the API)",
            r.n_messages_without_session
        );
    }
    if let Some(p) = &r.privacy {
        let unfinished = match (&p.rewriting_to, p.file_pending) {
            (Some(to), _) => format!(
                " — a rewrite-privacy to {} stopped halfway: run it again to finish",
                to.describe()
            ),
            (None, true) => " — a rewrite-privacy was interrupted: run it again".to_owned(),
            (None, false) => String::new(),
        };
        println!("rows written with {}{unfinished}", p.record.describe());
    }
    for p in &r.publications {
        let what = if p.kind == "read_copy" {
            "read copy"
        } else {
            "Parquet export"
        };
        let format = p
            .storage_version
            .as_deref()
            .map_or(String::new(), |v| format!(", storage format {v}"));
        println!(
            "{what} {} published {} ago ({}{format})",
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
        "{:<32} {:<20} {:>9}  {:<24} {:<16} {:<24} {:<10} OUTCOME",
        "STREAM", "BOT NAME", "SESSIONS", "WATERMARK", "BEHIND", "LAST RUN", "TRIGGER"
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
            "{:<32} {:<20} {:>9}  {:<24} {:<16} {:<24} {:<10} {}{filter}{error}",
            stream_name(s),
            s.bot_name.as_deref().unwrap_or("-"),
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
    let stream = |s: &crate::store::StreamStatus| {
        if s.resource == "sessions" {
            s.containment_type.clone()
        } else {
            format!("{}:{}", s.resource, s.containment_type)
        }
    };
    // Wide enough for the longest stream name (channels vary in length).
    let width = r
        .streams
        .iter()
        .map(|s| stream(s).len())
        .max()
        .unwrap_or(0)
        .max(20);
    println!(
        "{:<20} {:<26} {:<width$} {:>8}  WATERMARK",
        "BOT", "NAME", "STREAM", "ROWS"
    );
    for s in &r.streams {
        println!(
            "{:<20} {:<26} {:<width$} {:>8}  {}",
            if s.bot_id == ACCOUNT_BOT_ID {
                "(account)"
            } else {
                &s.bot_id
            },
            s.bot_name.as_deref().unwrap_or("-"),
            stream(s),
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
    /// The bundled DuckDB's version.
    pub duckdb_version: &'a str,
    /// The warehouse file's storage format: readers need that DuckDB or newer.
    pub storage_version: &'a str,
    pub n_sessions: i64,
    pub n_tags: i64,
    pub n_messages: i64,
    pub n_analytics_events: i64,
    pub n_llm_calls: i64,
    pub n_rejected: i64,
    /// Sessions the API no longer has, kept and marked.
    pub n_gone: i64,
    /// Messages whose session is not in the warehouse (should stay 0).
    pub n_messages_without_session: i64,
    /// The privacy settings the rows were written with (null: nothing
    /// stored yet).
    pub privacy: Option<PrivacyJson<'a>>,
    pub streams: Vec<StreamJson<'a>>,
    /// Seconds each stream's watermark is behind now, in stream order
    /// (also in each stream, as `behind_seconds`).
    pub behind_seconds: Vec<Option<i64>>,
}

/// `[privacy]` and `messages.store_text` as the rows were written.
#[derive(Debug, Serialize)]
pub struct PrivacyJson<'a> {
    pub pseudonymize: &'a [String],
    pub drop_tags: &'a [String],
    pub store_text: bool,
    /// A `rewrite-privacy` was interrupted before it wrote the file anew.
    pub file_pending: bool,
    /// A `rewrite-privacy` was stopped halfway through the rows.
    pub rewrite_unfinished: bool,
}

#[derive(Debug, Serialize)]
pub struct PublicationJson<'a> {
    /// `read_copy` or `parquet`.
    pub kind: &'a str,
    pub target: &'a str,
    pub published_at: DateTime<Utc>,
    pub storage_version: Option<&'a str>,
}

/// One stream: where it stands and how its last run went.
#[derive(Debug, Serialize)]
pub struct StreamJson<'a> {
    /// `sessions` or `messages`.
    pub resource: &'a str,
    pub bot_id: &'a str,
    /// The bot's name, from the bot list or the config (None: unknown).
    pub bot_name: Option<&'a str>,
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
                resource: &s.resource,
                bot_id: &s.bot_id,
                bot_name: s.bot_name.as_deref(),
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
                    storage_version: p.storage_version.as_deref(),
                })
                .collect(),
            duckdb_version: &r.duckdb_version,
            storage_version: &r.storage_version,
            n_sessions: r.n_sessions,
            n_tags: r.n_tags,
            n_messages: r.n_messages,
            n_analytics_events: r.n_analytics_events,
            n_llm_calls: r.n_llm_calls,
            n_rejected: r.n_rejected,
            n_gone: r.n_gone,
            n_messages_without_session: r.n_messages_without_session,
            privacy: r.privacy.as_ref().map(|p| PrivacyJson {
                pseudonymize: &p.record.pseudonymize,
                drop_tags: &p.record.drop_tags,
                store_text: p.record.store_text,
                file_pending: p.file_pending,
                rewrite_unfinished: p.rewriting_to.is_some(),
            }),
            behind_seconds: streams.iter().map(|s| s.behind_seconds).collect(),
            streams,
        }
    }
}
