//! The commands behind the CLI, one file per command (as mini-redis keeps
//! `cmd/`; `daemon.rs` is `kore-sync run`). `main.rs` parses arguments and
//! calls [`run`], which hands each command its arguments and an
//! [`Invocation`]; every command returns the same type, an [`Outcome`] or
//! an error for `main` to print with its chain and map to an exit code
//! ([`exit_code`]). What commands print is rendered in `render`; the
//! terminal progress bars are in `progress`.
//!
//! This is the top layer: commands build the lower layers' values from the
//! configuration and call the library's public interfaces (`sync`, `store`),
//! never the API's wire shapes.

pub mod backfill;
pub mod bench;
pub mod board;
pub mod check;
pub mod completions;
pub mod daemon;
pub mod demo;
pub mod export;
pub mod fetch;
pub mod man;
pub mod progress;
pub mod query;
pub mod render;
pub mod render_verify;
pub mod rewrite_privacy;
pub mod simulate;
pub mod status;
pub mod sync;
pub mod verify;

use crate::cli::{Cli, Command};
use crate::config::{self, Config, ConfigError};
use crate::store::{SessionStore, WarehouseSettings};
use crate::sync::SyncContext;
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How a command that ran to its end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done: exit 0.
    Complete,
    /// The command ran, but not all of it succeeded (a stream failed, an id
    /// was unknown, the warehouse differs from the API): exit 1.
    Incomplete,
}

impl Outcome {
    /// `Complete` when `succeeded`.
    pub fn of(succeeded: bool) -> Self {
        if succeeded {
            Outcome::Complete
        } else {
            Outcome::Incomplete
        }
    }

    /// The process's exit code: 0 or 1.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Complete => 0,
            Outcome::Incomplete => 1,
        }
    }
}

/// The exit code for a command's error: 2 when the configuration or the
/// command line is wrong, 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<ConfigError>().is_some() {
        2
    } else {
        1
    }
}

/// What every command is given besides its own arguments: where the
/// configuration is, and the one shutdown signal.
pub struct Invocation {
    /// `--config`, if given.
    config: Option<PathBuf>,
    /// Cancelled on SIGINT or SIGTERM.
    pub cancel: CancellationToken,
}

impl Invocation {
    /// The configuration file this invocation reads.
    fn config_path(&self) -> PathBuf {
        config::config_path(self.config.as_deref())
    }

    /// The whole configuration, validated.
    fn load(&self) -> Result<Config, ConfigError> {
        config::load(&self.config_path())
    }

    /// Only `[warehouse]`, for the commands that only read the warehouse:
    /// or no configuration at all with `--db FILE`.
    fn warehouse(&self, db: Option<&Path>) -> Result<WarehouseSettings, ConfigError> {
        match db {
            Some(file) => Ok(config::warehouse_at(file)),
            None => config::load_warehouse(&self.config_path()),
        }
    }
}

/// Runs the command `cli` names, watching SIGINT and SIGTERM.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let inv = Invocation {
        config: cli.config,
        cancel: CancellationToken::new(),
    };
    cancel_on_signals(inv.cancel.clone());
    match cli.command {
        Command::Demo(args) => demo::run(args, &inv).await,
        Command::Simulate(args) => simulate::run(args, &inv).await,
        Command::Sync => sync::run(&inv).await,
        Command::Run => daemon::run(&inv).await,
        Command::Check => check::run(&inv).await,
        Command::RewritePrivacy => rewrite_privacy::run(&inv).await,
        Command::Fetch(args) => fetch::run(args, &inv).await,
        Command::Backfill(args) => backfill::run(args, &inv).await,
        Command::Verify(args) => verify::run(args, &inv).await,
        Command::Status(args) => status::run(args, &inv).await,
        Command::Export(args) => export::run(args, &inv).await,
        Command::Query(args) => query::run(args, &inv).await,
        Command::Bench(options) => bench::run(options).await,
        Command::Completions { shell } => completions::run(shell),
        Command::Man => man::run(),
    }
}

/// An optional date flag, in either of the API's forms.
fn date_flag(flag: &str, value: Option<&str>) -> anyhow::Result<Option<DateTime<Utc>>> {
    value
        .map(config::parse_instant)
        .transpose()
        .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// Cancels `token` on SIGINT or SIGTERM: the one shutdown signal every task
/// watches.
fn cancel_on_signals(token: CancellationToken) {
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
