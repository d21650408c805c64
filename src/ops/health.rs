//! Health: the last pass of every stream, as the daemon saw it, and the HTTP
//! server for `GET /healthz`, `GET /metrics`, the status page `GET /` and
//! its data `GET /status.json` (`[server] listen`).
//!
//! `/healthz` answers 200 when every configured stream's last pass
//! succeeded (or only ran out of request budget) within `max_age`, else 503;
//! the JSON body gives each stream's lag and last error either way.

use super::board::Board;
use super::metrics::{BudgetRead, metrics};
use crate::model::{RunOutcome, StreamKey};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where `/healthz` and `/metrics` are served, and when a stream counts as
/// stale (`[server]` in the config).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// None = no server.
    pub listen: Option<SocketAddr>,
    /// `/healthz` is 503 when a stream's last good pass is older than this.
    pub max_pass_age: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamHealth {
    pub outcome: RunOutcome,
    pub finished_at: DateTime<Utc>,
    pub watermark: Option<DateTime<Utc>>,
    pub lag_seconds: Option<i64>,
    pub error: Option<String>,
}

/// How one stream's pass ended, as the daemon tells [`Health`].
#[derive(Debug, Clone, Copy)]
pub struct StreamPassHealth<'a> {
    pub key: &'a StreamKey,
    pub outcome: RunOutcome,
    pub watermark: Option<DateTime<Utc>>,
    pub error: Option<&'a str>,
}

/// Shared between the daemon loop (writer) and the server (reader).
#[derive(Debug, Clone)]
pub struct Health {
    inner: Arc<Mutex<HealthInner>>,
    max_age: Duration,
}

#[derive(Debug, Default)]
struct HealthInner {
    /// Keyed "bot/containment"; every configured stream, None until its first pass.
    streams: BTreeMap<String, Option<StreamHealth>>,
    /// When the daemon loop last started or finished a pass.
    heartbeat: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub healthy: bool,
    pub checked_at: DateTime<Utc>,
    pub max_age_seconds: u64,
    pub streams: BTreeMap<String, Option<StreamHealth>>,
}

impl Health {
    /// Health for these streams, each unknown until its first pass.
    pub fn new(streams: impl IntoIterator<Item = StreamKey>, max_age: Duration) -> Self {
        let inner = HealthInner {
            streams: streams.into_iter().map(|s| (s.to_string(), None)).collect(),
            heartbeat: None,
        };
        Health {
            inner: Arc::new(Mutex::new(inner)),
            max_age,
        }
    }

    pub fn beat(&self) {
        self.inner.lock().expect("health lock").heartbeat = Some(Utc::now());
    }

    /// True if the daemon loop started or finished a pass within `within`.
    pub fn alive_within(&self, within: Duration) -> bool {
        let hb = self.inner.lock().expect("health lock").heartbeat;
        hb.is_some_and(|t| (Utc::now() - t).to_std().unwrap_or_default() <= within)
    }

    /// Records how one stream's pass ended (and that the loop is alive).
    pub fn record(&self, pass: StreamPassHealth<'_>) {
        let now = Utc::now();
        let mut inner = self.inner.lock().expect("health lock");
        inner.heartbeat = Some(now);
        inner.streams.insert(
            pass.key.to_string(),
            Some(StreamHealth {
                outcome: pass.outcome,
                finished_at: now,
                watermark: pass.watermark,
                lag_seconds: pass.watermark.map(|w| (now - w).num_seconds()),
                error: pass.error.map(str::to_owned),
            }),
        );
    }

    pub fn report(&self) -> HealthReport {
        let now = Utc::now();
        let inner = self.inner.lock().expect("health lock");
        let fresh =
            |h: &StreamHealth| (now - h.finished_at).to_std().unwrap_or_default() <= self.max_age;
        let healthy = !inner.streams.is_empty()
            && inner
                .streams
                .values()
                .all(|s| s.as_ref().is_some_and(|h| h.outcome.is_good() && fresh(h)));
        let streams = inner
            .streams
            .iter()
            .map(|(k, v)| {
                let v = v.clone().map(|mut h| {
                    h.lag_seconds = h.watermark.map(|w| (now - w).num_seconds());
                    h
                });
                (k.clone(), v)
            })
            .collect();
        HealthReport {
            healthy,
            checked_at: now,
            max_age_seconds: self.max_age.as_secs(),
            streams,
        }
    }
}

/// What the server's routes read.
#[derive(Debug, Clone)]
struct Served {
    health: Health,
    board: Board,
}

async fn healthz(State(served): State<Served>) -> impl IntoResponse {
    let report = served.health.report();
    let status = if report.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report))
}

async fn prometheus(State(served): State<Served>) -> impl IntoResponse {
    for b in (served.board.budgets())() {
        BudgetRead {
            bot_id: &b.bot_id,
            last_minute: b.last_minute,
            per_minute: b.per_minute,
            last_hour: b.last_hour,
            per_hour: b.per_hour,
        }
        .emit();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics().encode(),
    )
}

/// The status page: rendered from the board, never from the warehouse.
async fn status_page(State(served): State<Served>) -> impl IntoResponse {
    let page = super::page::render(&served.board.view(Utc::now()));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
}

async fn status_json(State(served): State<Served>) -> impl IntoResponse {
    axum::Json(served.board.view(Utc::now()))
}

/// Binds `listen` and serves until `cancel`. Returns the bound address
/// (useful with port 0).
pub async fn serve(
    listen: SocketAddr,
    (health, board): (Health, Board),
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/", get(status_page))
        .route("/status.json", get(status_json))
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .with_state(Served { health, board });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the health and metrics server stopped");
        }
    });
    Ok(addr)
}
