//! `kore-sync run`: the daemon. It checks what it can at start (the
//! warehouse opens and migrates, every scope can sign a token), serves
//! the status page, health and metrics, pings systemd's watchdog, and runs a pass at start
//! and on every tick of the schedule — and `verify` on the ticks of
//! `sync.verify_schedule` — until shutdown.
//!
//! Architecture invariant: the daemon holds the warehouse file only during
//! a pass (it opens the store per pass), so other tools can open it between
//! passes; the API views and their request budgets live as long as the
//! process. Passes and verifies never overlap (`schedule::drive` awaits
//! each).

use super::board;
use super::{Invocation, Outcome, log_warnings, open_store_to_write};
use crate::config::Config;
use crate::model::StreamKey;
use crate::ops::board::Board;
use crate::ops::health::{self, Health, StreamPassHealth};
use crate::ops::metrics::WarehouseCounted;
use crate::ops::notify;
use crate::schedule;
use crate::schedule::Work;
use crate::sync::{
    PASS_BUDGET_PATIENCE, PassOptions, PassReport, ScopeApi, SyncContext, VerifyOptions,
    build_scopes, publish, run_pass, verify,
};
use anyhow::Context;
use chrono::Utc;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// `kore-sync run`: until shutdown; an error only when it cannot start.
pub async fn run(inv: &Invocation) -> anyhow::Result<Outcome> {
    Daemon::start(inv.load()?, inv.cancel.clone())
        .await?
        .serve()
        .await?;
    Ok(Outcome::Complete)
}

/// The daemon's long-lived parts.
pub struct Daemon {
    config: Arc<Config>,
    /// One per scope, kept for the process's life (their budgets remember
    /// the last hour).
    scopes: Vec<ScopeApi>,
    health: Health,
    /// What the status page shows: read from the warehouse after each pass.
    board: Board,
    cancel: CancellationToken,
}

impl Daemon {
    /// Fails fast on a warehouse that cannot be opened or migrated, and on
    /// credentials that cannot sign a token.
    pub async fn start(config: Config, cancel: CancellationToken) -> anyhow::Result<Self> {
        log_warnings(&config);
        let store = open_store_to_write(&config).await?;
        for scope in &config.scopes {
            scope.credentials.header_value().with_context(|| {
                format!(
                    "cannot sign a token for {}; check its client secret",
                    scope.bot_id
                )
            })?;
        }
        let scopes = build_scopes(&config.api, &config.scopes)
            .context("could not set up the HTTP client")?;
        let streams = config.scopes.iter().flat_map(|s| {
            config
                .sync
                .containment_types
                .iter()
                .map(|&ct| StreamKey::sessions(&s.bot_id, ct, &s.filter.fingerprint()))
        });
        let health = Health::new(streams, config.server.max_pass_age);
        let board = board::new_board(&scopes);
        board::refresh(&board, &store).await;
        drop(store);
        Ok(Daemon {
            config: Arc::new(config),
            scopes,
            health,
            board,
            cancel,
        })
    }

    /// Serves, schedules, and runs passes (and verifies) until shutdown.
    pub async fn serve(self) -> anyhow::Result<()> {
        if let Some(listen) = self.config.server.listen {
            let served = (self.health.clone(), self.board.clone());
            let addr = health::serve(listen, served, self.cancel.clone())
                .await
                .with_context(|| {
                    format!("cannot serve health and metrics on {listen} (server.listen)")
                })?;
            info!(addr = %addr, "serving the status page, /status.json, /healthz and /metrics");
        }
        self.start_watchdog();
        let (senders, ticks) = schedule::channels();
        let verify = self.config.verify_schedule.as_deref();
        let mut scheduler = schedule::start_ticks(&self.config.trigger, verify, senders)
            .await
            .context("could not start the scheduler")?;
        info!(trigger = ?self.config.trigger, scopes = self.config.scopes.len(), "kore-sync running");
        self.health.beat();
        notify::notify_logged("READY=1\nSTATUS=started; first pass running");
        schedule::drive(ticks, self.cancel.clone(), |work| self.run(work)).await;
        notify::notify_logged("STOPPING=1");
        if let Err(e) = scheduler.shutdown().await {
            warn!(error = %e, "scheduler did not shut down cleanly");
        }
        Ok(())
    }

    /// Pings systemd's watchdog at half its interval while the pass loop
    /// shows signs of life.
    fn start_watchdog(&self) {
        let Some(every) = notify::watchdog_interval() else {
            return;
        };
        let (health, cancel) = (self.health.clone(), self.cancel.clone());
        let alive_within = self.config.sync.pass_deadline + self.config.server.max_pass_age;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        if health.alive_within(alive_within) {
                            notify::notify_logged("WATCHDOG=1");
                        }
                    }
                }
            }
        });
    }

    /// Opens the warehouse for one tick's work, with the process's API
    /// views; None (logged) when it is busy or unavailable: the work is
    /// skipped and the next tick tries again.
    async fn open(&self, work: Work) -> Option<SyncContext> {
        self.health.beat();
        match open_store_to_write(&self.config).await {
            Ok(store) => Some(SyncContext::with_scopes(
                self.config.sync_setup(),
                store,
                self.scopes.clone(),
            )),
            Err(e) => {
                let what = match work {
                    Work::Pass => "pass",
                    Work::Verify => "verify",
                };
                let privacy = matches!(
                    e.downcast_ref::<crate::store::StoreError>(),
                    Some(crate::store::StoreError::PrivacyChanged { .. })
                );
                if privacy {
                    // Someone changed the warehouse's settings under the
                    // daemon: only an operator can reconcile them.
                    error!(
                        error = format!("{e:#}"),
                        work = what,
                        "skipping this {what}"
                    );
                } else {
                    warn!(
                        error = format!("{e:#}"),
                        work = what,
                        "cannot open the warehouse; skipping this {what}, trying again at the next tick"
                    );
                }
                notify::notify_logged(&format!(
                    "STATUS={what} skipped at {}: warehouse busy or unavailable",
                    Utc::now().format("%H:%M:%SZ")
                ));
                None
            }
        }
    }

    /// The work of one tick.
    pub async fn run(&self, work: Work) {
        match work {
            Work::Pass => self.pass().await,
            Work::Verify => self.verify().await,
        }
    }

    /// The scheduled `verify` over the whole history (`sync.verify_schedule`).
    /// It never runs beside a pass, stops when the hourly budget is spent
    /// (the next pass must not starve), and keeps to the pass deadline.
    pub async fn verify(&self) {
        let Some(ctx) = self.open(Work::Verify).await else {
            return;
        };
        let opts = VerifyOptions {
            max_budget_wait: Some(PASS_BUDGET_PATIENCE),
            deadline: Some(self.config.sync.pass_deadline),
            ..VerifyOptions::default()
        };
        match verify(&ctx, &opts, &self.cancel).await {
            Ok(report) => {
                let written: u64 = report.streams.iter().map(|s| s.sessions_written).sum();
                let gone: u64 = report
                    .streams
                    .iter()
                    .map(|s| s.sessions_deleted + s.sessions_marked)
                    .sum();
                info!(
                    equal = report.all_equal(),
                    windows = report.rows.len(),
                    n_written = written,
                    n_gone = gone,
                    "verify finished"
                );
                if report.changed() {
                    publish::publish_now(&ctx).await;
                }
                board::refresh(&self.board, &ctx.store).await;
            }
            Err(e) => {
                error!(
                    error = format!("{e:#}"),
                    "verify failed: the warehouse could not be written"
                );
            }
        }
    }

    /// One scheduled pass: open the warehouse (or skip the pass if it is
    /// busy), run, publish, release the warehouse, then report.
    pub async fn pass(&self) {
        let Some(ctx) = self.open(Work::Pass).await else {
            return;
        };
        let result = run_pass(&ctx, &PassOptions::scheduled(), &self.cancel).await;
        if let Ok(report) = &result {
            publish::after_pass(&ctx, report).await;
            match ctx.store.messages_without_session().await {
                Ok(n) => WarehouseCounted {
                    messages_without_session: n,
                }
                .emit(),
                Err(e) => warn!(error = %e, "could not count messages without a session"),
            }
        }
        board::refresh(&self.board, &ctx.store).await;
        // Release the warehouse before saying the pass is over.
        drop(ctx);
        match result {
            Ok(report) => self.record(&report),
            Err(e) => {
                let at = Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
                error!(
                    error = format!("{e:#}"),
                    "pass failed: the warehouse could not be written"
                );
                notify::notify_logged(&format!(
                    "STATUS=last pass {at}: the warehouse could not be written"
                ));
            }
        }
    }

    /// Tells health, the log and systemd how a pass went.
    fn record(&self, report: &PassReport) {
        self.health.beat();
        for s in &report.streams {
            self.health.record(StreamPassHealth {
                key: &s.key,
                outcome: s.outcome,
                watermark: s.watermark,
                error: s.error.as_deref(),
            });
        }
        let at = Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        let n = report.streams.len();
        if report.all_succeeded() {
            info!(streams = n, "pass succeeded");
            notify::notify_logged(&format!("STATUS=last pass {at}: {n} streams succeeded"));
        } else {
            warn!(
                streams = n,
                failed = report.n_failed(),
                "pass finished with failed or interrupted streams; see `kore-sync status`"
            );
            notify::notify_logged(&format!(
                "STATUS=last pass {at}: {} of {n} streams failed or were interrupted",
                report.n_not_good()
            ));
        }
    }
}
