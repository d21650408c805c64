//! The `kore-sync` binary: parses the command line, sets up logging, calls
//! into the library, and maps the outcome to an exit code, printing any error
//! with its whole chain.
//!
//! Exit codes: 0 success; 1 a stream or the run failed; 2 the configuration
//! or the command line is wrong.

use clap::{CommandFactory, Parser};
use kore_sync::app;
use kore_sync::cli::{Cli, Command, LogFormat};
use kore_sync::config::{self, ConfigError};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kore-sync: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kore-sync: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .or_else(|| std::env::var_os("KORE_SYNC_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("kore-sync.toml"))
}

async fn dispatch(cli: Cli) -> anyhow::Result<bool> {
    let cancel = CancellationToken::new();
    app::cancel_on_signals(cancel.clone());
    let load = || config::load(&config_path(&cli));
    match &cli.command {
        Command::Demo { warehouse } => app::demo(warehouse, cancel).await,
        Command::Simulate { listen, days, seed } => app::simulate(*listen, *days, *seed, cancel)
            .await
            .map(|()| true),
        Command::Sync => app::sync_once(load()?, cancel).await,
        Command::Check => app::check(load()?).await,
        Command::Fetch {
            sessions,
            call_id,
            bot,
            prune,
        } => {
            app::fetch(
                load()?,
                sessions.clone(),
                call_id.clone(),
                bot.clone(),
                *prune,
            )
            .await
        }
        Command::Bench {
            sessions,
            bots,
            days,
            page_size,
            max_page_size,
            server_page_limit,
            rate_limit,
            idle_passes,
            window,
        } => {
            let o = kore_sync::bench::BenchOptions {
                sessions: *sessions,
                bots: *bots,
                days: *days,
                page_size: *page_size,
                max_page_size: *max_page_size,
                server_page_limit: *server_page_limit,
                rate_limit: *rate_limit,
                idle_passes: *idle_passes,
                window: window.clone(),
            };
            kore_sync::bench::bench(o).await.map(|()| true)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "kore-sync", &mut std::io::stdout());
            Ok(true)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(true)
        }
        Command::Run => app::run_daemon(load()?, cancel).await.map(|()| true),
        Command::Status { json } => app::status(load()?, *json).await.map(|()| true),
        Command::Export { parquet } => app::export(load()?, parquet).await.map(|()| true),
        Command::Query { db, sql } => {
            // A config is only needed to find the read copy.
            let config = if db.is_some() { None } else { Some(load()?) };
            app::query(config, db.clone(), sql.clone())
                .await
                .map(|()| true)
        }
        Command::Backfill { from, to, bot } => {
            let from = config::parse_instant(from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
            let to = to
                .as_deref()
                .map(config::parse_instant)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--to: {e}"))?;
            app::backfill(load()?, from, to, bot.clone(), cancel).await
        }
    }
}

fn init_tracing(cli: &Cli) {
    // The demo speaks through its summary; its per-stream log lines would
    // only bury it, so it logs warnings unless asked for more.
    let default = if matches!(cli.command, Command::Demo { .. }) {
        "warn"
    } else {
        "info"
    };
    let level = match (cli.verbose, cli.quiet) {
        (0, 0) => default,
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    let filter = EnvFilter::try_from_env("KORE_SYNC_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},hyper=warn,reqwest=warn,tokio_cron_scheduler=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Under systemd the journal stamps every line; a second timestamp is noise.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    match (cli.log_format, journald) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).init(),
        (LogFormat::Text, false) => builder.init(),
    }
}
