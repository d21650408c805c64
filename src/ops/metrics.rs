//! The process's Prometheus metrics, kept by `prometheus-client` (the
//! Prometheus project's Rust client) and encoded in its text format.
//!
//! One registry per process, reached through [`metrics()`]. Other layers
//! never touch the registry: they emit events (as vector does) — a plain
//! struct describing what happened, whose `emit` records it — so `ops`
//! depends on nothing above `model`.

use crate::model::{RunOutcome, StreamKey};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub bot_id: String,
    pub resource: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabel {
    pub bot_id: String,
    /// `minute` or `hour`.
    pub window: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The HTTP status, or `error` when no answer came (timeout, dropped).
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub bot_id: String,
    /// `sessions`, `messages` or `analytics`.
    pub resource: String,
    /// The partition: a containment type, a channel, or an analytics type.
    pub containment_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    pub bot_id: String,
    pub resource: String,
}

/// Registers each metric (a handle: clones share the value) under its name
/// and help text.
macro_rules! register {
    ($registry:expr, $($metric:expr => $name:literal, $help:literal;)*) => {
        $( $registry.register($name, $help, $metric.clone()); )*
    };
}

pub struct Metrics {
    registry: Registry,
    pub stream_passes: Family<OutcomeLabel, Counter>,
    pub pass_duration: Histogram,
    pub requests: Family<StatusLabel, Counter>,
    pub retries: Counter,
    pub rate_limited: Counter,
    pub budget_wait_seconds: Counter<f64, AtomicU64>,
    pub sessions_upserted: Counter,
    pub records_written: Family<ResourceLabel, Counter>,
    pub sessions_deleted: Counter,
    pub records_rejected: Counter,
    pub watermark_lag_seconds: Family<StreamLabel, Gauge<f64, AtomicU64>>,
    pub last_success: Family<StreamLabel, Gauge>,
    pub budget_used: Family<BudgetLabel, Gauge>,
    pub budget_limit: Family<BudgetLabel, Gauge>,
    pub messages_without_session: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("kore_sync");
        let m = Metrics {
            registry: Registry::default(),
            stream_passes: Family::default(),
            pass_duration: Histogram::new(exponential_buckets(0.5, 2.0, 14)),
            requests: Family::default(),
            retries: Counter::default(),
            rate_limited: Counter::default(),
            budget_wait_seconds: Counter::default(),
            sessions_upserted: Counter::default(),
            records_written: Family::default(),
            sessions_deleted: Counter::default(),
            records_rejected: Counter::default(),
            watermark_lag_seconds: Family::default(),
            last_success: Family::default(),
            budget_used: Family::default(),
            budget_limit: Family::default(),
            messages_without_session: Gauge::default(),
        };
        register!(registry,
            m.stream_passes => "stream_passes", "Stream passes by outcome";
            m.pass_duration => "pass_duration_seconds", "Duration of whole passes";
            m.requests => "api_requests", "getSessions requests by HTTP status";
            m.retries => "api_retries", "Requests retried after a failure";
            m.rate_limited => "api_rate_limited", "Answers that were HTTP 429";
            m.budget_wait_seconds => "rate_limit_wait_seconds", "Time spent waiting for the request budget";
            m.sessions_upserted => "sessions_upserted", "Sessions written (new or changed)";
            m.records_written => "records_written", "Records written (new or changed), by resource";
            m.sessions_deleted => "sessions_deleted", "Sessions deleted because the API no longer has them";
            m.records_rejected => "records_rejected", "Records kept in rejected_records";
            m.watermark_lag_seconds => "watermark_lag_seconds", "How far each stream's watermark is behind now";
            m.last_success => "stream_last_success_timestamp_seconds", "When each stream's last pass that succeeded (or only ran out of budget) ended, in Unix seconds";
            m.budget_used => "budget_used_requests", "Requests each bot's budget granted over the last minute or hour";
            m.budget_limit => "budget_limit_requests", "Each bot's request limit per minute or hour (absent: unlimited)";
            m.messages_without_session => "messages_without_session", "Stored messages whose session is not in the warehouse (should be 0)";
        );
        Metrics { registry, ..m }
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The warehouse was counted after a pass (emitted by the daemon).
#[derive(Debug, Clone, Copy)]
pub struct WarehouseCounted {
    /// Stored messages whose session is not in the warehouse.
    pub messages_without_session: i64,
}

impl WarehouseCounted {
    pub fn emit(&self) {
        metrics()
            .messages_without_session
            .set(self.messages_without_session);
    }
}

/// One stream's pass ended (emitted by the sync runner).
#[derive(Debug, Clone, Copy)]
pub struct StreamPassEnded<'a> {
    pub key: &'a StreamKey,
    pub outcome: RunOutcome,
    pub n_written: u64,
    pub n_deleted: u64,
    pub n_rejected: u64,
    pub watermark: Option<DateTime<Utc>>,
}

impl StreamPassEnded<'_> {
    pub fn emit(&self) {
        let m = metrics();
        let (bot_id, resource) = (&self.key.bot_id, self.key.partition.resource());
        m.stream_passes
            .get_or_create(&OutcomeLabel {
                bot_id: bot_id.clone(),
                resource: resource.to_owned(),
                outcome: self.outcome.as_str().to_owned(),
            })
            .inc();
        if resource == "sessions" {
            m.sessions_upserted.inc_by(self.n_written);
        }
        m.records_written
            .get_or_create(&ResourceLabel {
                bot_id: bot_id.clone(),
                resource: resource.to_owned(),
            })
            .inc_by(self.n_written);
        let stream = StreamLabel {
            bot_id: bot_id.clone(),
            resource: resource.to_owned(),
            containment_type: self.key.partition.name().to_owned(),
        };
        if self.outcome.is_good() {
            m.last_success
                .get_or_create(&stream)
                .set(Utc::now().timestamp());
        }
        m.sessions_deleted.inc_by(self.n_deleted);
        m.records_rejected.inc_by(self.n_rejected);
        if let Some(w) = self.watermark {
            let lag = (Utc::now() - w).num_milliseconds().max(0) as f64 / 1000.0;
            m.watermark_lag_seconds.get_or_create(&stream).set(lag);
        }
    }
}

/// A bot's request budget as used now (emitted by the server before each
/// scrape, so the figures are the scrape's, not the last request's).
#[derive(Debug, Clone, Copy)]
pub struct BudgetRead<'a> {
    pub bot_id: &'a str,
    pub last_minute: u32,
    pub per_minute: Option<u32>,
    pub last_hour: u32,
    pub per_hour: Option<u32>,
}

impl BudgetRead<'_> {
    pub fn emit(&self) {
        let m = metrics();
        let windows = [
            ("minute", self.last_minute, self.per_minute),
            ("hour", self.last_hour, self.per_hour),
        ];
        for (window, used, limit) in windows {
            let label = BudgetLabel {
                bot_id: self.bot_id.to_owned(),
                window: window.to_owned(),
            };
            m.budget_used.get_or_create(&label).set(i64::from(used));
            if let Some(limit) = limit {
                m.budget_limit.get_or_create(&label).set(i64::from(limit));
            }
        }
    }
}

/// A whole pass ended (emitted by the sync runner).
#[derive(Debug, Clone, Copy)]
pub struct PassEnded {
    pub took: std::time::Duration,
}

impl PassEnded {
    pub fn emit(&self) {
        metrics().pass_duration.observe(self.took.as_secs_f64());
    }
}

/// One HTTP attempt got an answer (`status`), or none (`None`: timeout,
/// refused or dropped connection). Emitted by the API client.
#[derive(Debug, Clone, Copy)]
pub struct RequestAnswered {
    pub status: Option<u16>,
}

impl RequestAnswered {
    pub fn emit(&self) {
        let status = self
            .status
            .map_or_else(|| "error".to_owned(), |s| s.to_string());
        metrics()
            .requests
            .get_or_create(&StatusLabel { status })
            .inc();
    }
}

/// One API call (with its retries) ended. Emitted by the API client.
#[derive(Debug, Clone, Copy)]
pub struct CallEnded {
    pub retries: u32,
    pub rate_limited: u32,
    pub budget_wait: std::time::Duration,
}

impl CallEnded {
    pub fn emit(&self) {
        let m = metrics();
        m.retries.inc_by(u64::from(self.retries));
        m.rate_limited.inc_by(u64::from(self.rate_limited));
        m.budget_wait_seconds.inc_by(self.budget_wait.as_secs_f64());
    }
}
