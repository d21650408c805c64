//! The `kore-sync` binary: parses the command line, sets up logging, calls
//! into the library, and maps the outcome to an exit code, printing any error
//! with its whole chain.
//!
//! Exit codes: 0 success; 1 a stream or the run failed; 2 the configuration
//! or the command line is wrong.

use clap::{CommandFactory, Parser};
use kore_sync::cli::{Cli, Command, LogFormat};
use kore_sync::cmd;
use kore_sync::config::{self, ConfigError};
use std::io::IsTerminal;
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

async fn dispatch(cli: Cli) -> anyhow::Result<bool> {
    let cancel = CancellationToken::new();
    cmd::cancel_on_signals(cancel.clone());
    let load = || config::load(&config::config_path(cli.config.as_deref()));
    let warehouse = |db: Option<&std::path::Path>| match db {
        Some(file) => Ok::<_, ConfigError>(config::warehouse_at(file)),
        None => config::load_warehouse(&config::config_path(cli.config.as_deref())),
    };
    match &cli.command {
        Command::Demo { warehouse } => cmd::demo::demo(warehouse, cancel).await,
        Command::Simulate { listen, days, seed } => {
            cmd::demo::simulate(*listen, *days, *seed, cancel)
                .await
                .map(|()| true)
        }
        Command::Sync => cmd::sync::sync_once(load()?, cancel).await,
        Command::Check => cmd::check::check(load()?).await,
        Command::RewritePrivacy => cmd::rewrite_privacy::rewrite(load()?).await,
        Command::Fetch {
            sessions,
            call_id,
            bot,
            prune,
        } => {
            let args = cmd::fetch::FetchArgs {
                session_ids: sessions.clone(),
                call_id: call_id.clone(),
                bot: bot.clone(),
                prune: *prune,
            };
            cmd::fetch::fetch(load()?, args, cancel).await
        }
        Command::Bench(options) => cmd::bench::bench(options.clone()).await.map(|()| true),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "kore-sync", &mut std::io::stdout());
            Ok(true)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(true)
        }
        Command::Run => cmd::daemon::run_daemon(load()?, cancel)
            .await
            .map(|()| true),
        // Commands that only read the warehouse need only `[warehouse]`, or
        // no configuration at all with --db.
        Command::Status { json, db } => cmd::status::status(&warehouse(db.as_deref())?, *json)
            .await
            .map(|()| true),
        Command::Export { parquet, db } => {
            let target =
                config::export_target(parquet, &config::config_path(cli.config.as_deref()))?;
            cmd::export::export(&warehouse(db.as_deref())?, &target)
                .await
                .map(|()| true)
        }
        Command::Query { db, sql } => {
            let file = match db {
                Some(db) => db.clone(),
                None => {
                    let w = warehouse(None)?;
                    w.publish.unwrap_or(w.path)
                }
            };
            cmd::query::query(&file, sql.clone()).await.map(|()| true)
        }
        Command::Verify {
            from,
            to,
            bot,
            dry_run,
            json,
        } => {
            let opts = kore_sync::sync::VerifyOptions {
                from: date("--from", from.as_deref())?,
                to: date("--to", to.as_deref())?,
                only_bot: bot.clone(),
                dry_run: *dry_run,
                // Asked for explicitly: waits out the budget, no deadline.
                max_budget_wait: None,
                deadline: None,
                observer: cmd::progress::terminal_observer(),
            };
            cmd::verify::verify_cmd(load()?, opts, *json, cancel).await
        }
        Command::Backfill { from, to, bot } => {
            let request = cmd::sync::BackfillRequest {
                from: config::parse_instant(from).map_err(|e| anyhow::anyhow!("--from: {e}"))?,
                to: date("--to", to.as_deref())?,
                bot: bot.clone(),
            };
            cmd::sync::backfill(load()?, request, cancel).await
        }
    }
}

/// An optional date flag, in either of the API's forms.
fn date(flag: &str, value: Option<&str>) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    value
        .map(config::parse_instant)
        .transpose()
        .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
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
    let filter = config::log_filter()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "{level},hyper=warn,reqwest=warn,tokio_cron_scheduler=warn"
            ))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Under systemd the journal stamps every line; a second timestamp is noise.
    match (cli.log_format, config::under_journald()) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).init(),
        (LogFormat::Text, false) => builder.init(),
    }
}
