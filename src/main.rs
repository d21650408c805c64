//! The `kore-sync` binary: parses the command line, sets up logging, calls
//! into the library, and maps the outcome to an exit code, printing any error
//! with its whole chain.
//!
//! Exit codes: 0 success; 1 a stream or the run failed; 2 the configuration
//! or the command line is wrong.

use clap::Parser;
use kore_sync::cli::{Cli, Command, LogFormat};
use kore_sync::cmd;
use kore_sync::config;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    restore_sigpipe();
    return_freed_blocks();
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
    match runtime.block_on(cmd::run(cli)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("kore-sync: {e:#}");
            ExitCode::from(cmd::exit_code(&e))
        }
    }
}

/// Piped into `head` or a pager that quits early, kore-sync ends quietly as
/// other Unix tools do, instead of panicking on the broken pipe: Rust
/// starts programs with SIGPIPE ignored, so its default is restored. Sockets
/// are unaffected: Rust's networking sends with `MSG_NOSIGNAL`.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first in `main`, before any thread exists; it only
    // resets one signal's disposition to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Blocks of 256 KiB and more come from their own mappings, so freeing one
/// gives its memory back at once. glibc's default raises this threshold each
/// time such a block is freed, after which DuckDB's buffer-pool blocks
/// (256 KiB each) were carved from malloc's arenas, and the holes they left
/// kept the process's resident memory about a third above what it used.
/// Issue 23's million messages peaked at 178,544 KB before and about
/// 157,000 KB with this, for about 5 % more CPU (BENCHMARKS.md, "Memory
/// given back"). A threshold set with glibc's own `MALLOC_MMAP_THRESHOLD_`
/// is left alone.
fn return_freed_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: called in `main` before any other thread exists; mallopt
        // only changes a tunable of the allocator.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        }
    }
}

fn init_tracing(cli: &Cli) {
    // The demo speaks through its summary; its per-stream log lines would
    // only bury it, so it logs warnings unless asked for more.
    let default = if matches!(cli.command, Command::Demo(_)) {
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
