//! The commands behind the CLI, one file per command (as mini-redis keeps
//! `cmd/`). `main.rs` parses arguments and calls one of these; each returns
//! whether it fully succeeded, or an error for `main` to print with its
//! chain and map to an exit code. What a command prints is rendered in
//! `render`; the terminal progress bars are in `progress`.
//!
//! This is the top layer: commands build the lower layers' values from the
//! configuration and call the library's public interfaces (`sync`, `store`),
//! never the API's wire shapes.

pub mod bench;
mod bench_env;
mod bench_messages;
mod bench_publish;
pub mod check;
pub mod daemon;
pub mod demo;
pub mod export;
pub mod fetch;
pub mod progress;
pub mod query;
pub mod render;
pub mod rewrite_privacy;
pub mod status;
pub mod sync;
pub mod verify;

use crate::config::Config;
use crate::store::{SessionStore, WarehouseSettings};
use crate::sync::SyncContext;
use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Cancels `token` on SIGINT or SIGTERM: the one shutdown signal every task
/// watches.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => info!(signal = "SIGINT", "shutting down"),
                        _ = term.recv() => info!(signal = "SIGTERM", "shutting down"),
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops kore-sync");
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        token.cancel();
    });
}

/// Logs the configuration's warnings (e.g. a secret file others may read).
fn log_warnings(config: &Config) {
    for w in &config.warnings {
        warn!(warning = %w, "configuration");
    }
}

/// Opens the warehouse off the async runtime.
async fn open_store(settings: &WarehouseSettings) -> anyhow::Result<SessionStore> {
    Ok(SessionStore::open_async(settings).await?)
}

/// Opens the warehouse to write into it: fails unless its rows were
/// written with the configuration's privacy settings.
async fn open_store_to_write(config: &Config) -> anyhow::Result<SessionStore> {
    let store = open_store(&config.warehouse).await?;
    store.check_privacy(config.sync.privacy.record()).await?;
    Ok(store)
}

/// Opens the warehouse and builds a sync context with fresh API views.
async fn open_context(config: &Config) -> anyhow::Result<SyncContext> {
    log_warnings(config);
    let store = open_store_to_write(config).await?;
    SyncContext::new(config.sync_setup(), store).context("could not set up the HTTP client")
}

/// Fails with the configured bots named when `bot` is not one of them.
fn require_configured(config: &Config, bot: &str) -> anyhow::Result<()> {
    if config.scopes.iter().any(|s| s.bot_id == bot) {
        return Ok(());
    }
    let known: Vec<&str> = config.scopes.iter().map(|s| s.bot_id.as_str()).collect();
    bail!(
        "--bot {bot:?} is not in the configuration; configured: {}",
        known.join(", ")
    )
}
