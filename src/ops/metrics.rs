//! The process's Prometheus metrics, kept by `prometheus-client` (the
//! Prometheus project's Rust client) and encoded in its text format.
//!
//! One registry per process, reached through [`metrics()`]: the API client
//! counts requests by status where they happen, and the runner records each
//! stream's pass when it ends.

use crate::sync::StreamReport;
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
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The HTTP status, or `error` when no answer came (timeout, dropped).
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub bot_id: String,
    pub containment_type: String,
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
    pub sessions_deleted: Counter,
    pub records_rejected: Counter,
    pub watermark_lag_seconds: Family<StreamLabel, Gauge<f64, AtomicU64>>,
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
            sessions_deleted: Counter::default(),
            records_rejected: Counter::default(),
            watermark_lag_seconds: Family::default(),
        };
        registry.register(
            "stream_passes",
            "Stream passes by outcome",
            m.stream_passes.clone(),
        );
        registry.register(
            "pass_duration_seconds",
            "Duration of whole passes",
            m.pass_duration.clone(),
        );
        registry.register(
            "api_requests",
            "getSessions requests by HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "api_retries",
            "Requests retried after a failure",
            m.retries.clone(),
        );
        registry.register(
            "api_rate_limited",
            "Answers that were HTTP 429",
            m.rate_limited.clone(),
        );
        registry.register(
            "rate_limit_wait_seconds",
            "Time spent waiting for the request budget",
            m.budget_wait_seconds.clone(),
        );
        registry.register(
            "sessions_upserted",
            "Sessions written (new or changed)",
            m.sessions_upserted.clone(),
        );
        registry.register(
            "sessions_deleted",
            "Sessions deleted because the API no longer has them",
            m.sessions_deleted.clone(),
        );
        registry.register(
            "records_rejected",
            "Records kept in rejected_records",
            m.records_rejected.clone(),
        );
        registry.register(
            "watermark_lag_seconds",
            "How far each stream's watermark is behind now",
            m.watermark_lag_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records one stream's pass.
    pub fn record_stream(&self, s: &StreamReport) {
        self.stream_passes
            .get_or_create(&OutcomeLabel {
                outcome: s.outcome.as_str().to_owned(),
            })
            .inc();
        self.sessions_upserted.inc_by(s.sessions_written);
        self.sessions_deleted.inc_by(s.sessions_deleted);
        self.records_rejected.inc_by(s.records_rejected);
        if let Some(w) = s.watermark {
            let lag = (chrono::Utc::now() - w).num_milliseconds().max(0) as f64 / 1000.0;
            self.watermark_lag_seconds
                .get_or_create(&StreamLabel {
                    bot_id: s.bot_id.clone(),
                    containment_type: s.containment_type.clone(),
                })
                .set(lag);
        }
    }

    /// Counts one attempt's answer (`None`: no answer).
    pub fn record_request(&self, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.requests.get_or_create(&StatusLabel { status }).inc();
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
