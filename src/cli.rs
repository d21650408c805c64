//! The command-line interface, as clap derives it. Kept apart from `main.rs`
//! so that completions and a man page can be generated from it later.

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kore-sync",
    version,
    about = "Keeps a local DuckDB warehouse in step with Kore.ai's Sessions History API",
    long_about = "Keeps a local DuckDB warehouse in step with Kore.ai's Sessions History API \
                  (getSessions), so you can run SQL over your bots' conversations.\n\n\
                  Try it without credentials: `kore-sync demo`."
)]
pub struct Cli {
    /// Config file [default: $KORE_SYNC_CONFIG, else ./kore-sync.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only)
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// Log line format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync two simulated bots' last 30 days into ./kore-demo.duckdb; needs no credentials or config
    Demo(DemoArgs),
    /// One pass over every configured bot and containment type, then exit (0 only if every stream succeeded)
    Sync,
    /// The daemon: a pass at start, then on the schedule, until SIGTERM or SIGINT
    Run,
    /// Per stream: watermark, how far behind now, last run and its outcome; row counts
    Status(StatusArgs),
    /// Re-read a past range, upserting; never moves a watermark backwards
    Backfill(BackfillArgs),
    /// Compare stored history with the API's counts, window by window, and repair what differs
    Verify(VerifyArgs),
    /// Fetch given sessions now (by id, 50 per request, or by external call id) and upsert them
    Fetch(FetchArgs),
    /// Check the setup: configuration, a token and one small request per bot, the warehouse; OK or the fix per line
    Check,
    /// Apply stricter [privacy] settings (or messages.store_text = false) to every stored row, the read copy and the Parquet export
    RewritePrivacy,
    /// Write the whole history as hive-partitioned Parquet (sessions/date=…, session_tags/date=…)
    Export(ExportArgs),
    /// Run SQL read-only against the read copy (or --db FILE), with the DuckDB version kore-sync bundles
    Query(QueryArgs),
    /// Benchmark: backfill N simulated sessions in process and report time, requests and memory
    Bench(BenchOptions),
    /// Print a shell completion script
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
    /// Run the simulated Kore.ai API alone, to try a config or prototype dashboards without credentials
    Simulate(SimulateArgs),
}

/// `kore-sync demo`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where to write the demo warehouse (replaced if it exists)
    #[arg(long, default_value = "kore-demo.duckdb")]
    pub warehouse: PathBuf,
}

/// `kore-sync status`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// A warehouse file to read [default: warehouse.path of the configuration]; needs no API settings
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

/// `kore-sync backfill`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    /// Start of the range: yyyy-mm-dd or yyyy-mm-ddThh:mm:ss.mmmZ (GMT)
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// End of the range (exclusive), same forms [default: now]
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Only this bot id (use '*' for the account scope)
    #[arg(long, value_name = "ID")]
    pub bot: Option<String>,
}

/// `kore-sync verify`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Start of the range: yyyy-mm-dd or yyyy-mm-ddThh:mm:ss.mmmZ (GMT) [default: sync.start]
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// End of the range (exclusive), same forms [default: each stream's watermark]
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Only this bot id (use '*' for the account scope)
    #[arg(long, value_name = "ID")]
    pub bot: Option<String>,
    /// Count only: report the windows that differ, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `kore-sync fetch`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct FetchArgs {
    /// A session id (repeatable; duplicates are dropped)
    #[arg(long = "session", value_name = "ID")]
    pub sessions: Vec<String>,
    /// An external call id (agent desktop): fetch that call's sessions
    #[arg(long, value_name = "ID")]
    pub call_id: Option<String>,
    /// The bot to ask (required when several are configured)
    #[arg(long, value_name = "ID")]
    pub bot: Option<String>,
    /// Remove ids the API reports unknown (invalidSessions) from the warehouse
    #[arg(long)]
    pub prune: bool,
}

/// `kore-sync export`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Target directory, or an object store URL (s3://bucket/prefix, gs://…, az://…)
    #[arg(long, value_name = "DIR|URL")]
    pub parquet: String,
    /// A warehouse file to read [default: warehouse.path of the configuration]; needs no API settings
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

/// `kore-sync query`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// Database file [default: the configured read copy, else the warehouse]
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// The query; without it, one query per line is read from stdin
    pub sql: Vec<String>,
}

/// `kore-sync simulate`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Days of history to generate, ending now
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Seed for the generated data
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Sessions a day of the first bot (the second has 1.6 times as many)
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sessions_per_day: u32,
    /// Instead of the demo's two bots: this many bots of generated
    /// sessions (--sessions-per-day each over --days), as `bench --bots`
    /// syncs them, so a sync of a fleet runs in a process of its own
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub fleet: Option<u32>,
    /// With --fleet: requests per minute per bot the simulator enforces
    /// (and the printed config's client keeps to)
    #[arg(long, requires = "fleet")]
    pub rate_limit: Option<u32>,
    /// With --fleet: message channels per bot (see `bench --channels`)
    #[arg(long, requires = "fleet", default_value_t = 0)]
    pub channels: u32,
    /// With --fleet: the printed config syncs NLU analytics and LLM usage
    /// too (seven more streams a bot, derived from the same sessions)
    #[arg(long, requires = "fleet")]
    pub analytics: bool,
}

/// `kore-sync bench`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Sessions to backfill
    #[arg(long, default_value_t = 100_000)]
    pub sessions: u64,
    /// Bots they are spread over
    #[arg(long, default_value_t = 1)]
    pub bots: u32,
    /// Days of history they are spread over
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// api.page_size
    #[arg(long, default_value_t = 100)]
    pub page_size: u32,
    /// api.max_page_size (equal to --page-size: no adaptive paging)
    #[arg(long, default_value_t = 1000)]
    pub max_page_size: u32,
    /// The largest page the simulated server returns
    #[arg(long, default_value_t = 10_000)]
    pub server_page_limit: u32,
    /// Requests per minute per bot, enforced by the simulator and set in
    /// the client (per hour: 30 times that)
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Message channels per bot (0: messages off): the four the simulated
    /// sessions use, then more named ones
    #[arg(long, default_value_t = 0)]
    pub channels: u32,
    /// Passes with nothing new to run after the backfill
    #[arg(long, default_value_t = 10)]
    pub idle_passes: u32,
    /// sync.window for the backfill
    #[arg(long, default_value = "6d")]
    pub window: String,
    /// Instead: backfill about this many conversation messages (with their
    /// sessions, over --days) and report messages per second and requests
    #[arg(long, value_name = "N")]
    pub messages: Option<u64>,
    /// Instead: build a warehouse of N sessions and N messages (one bot,
    /// over --days), then time every command on it, each as its own
    /// process: wall time, peak RSS, and a byte scan after rewrite-privacy
    #[arg(long, value_name = "N", conflicts_with = "messages")]
    pub commands: Option<u64>,
    /// After the backfill, measure publishing (read copy and Parquet): the
    /// first publication, an idle pass's, and one after a pass that changed
    /// one day
    #[arg(long)]
    pub publish: bool,
    /// After the backfill, fetch its getSessions pages again as bare
    /// downloads (same order per bot, bots at once, bodies read and thrown
    /// away) and compare the backfill's wall time with theirs
    #[arg(long)]
    pub bare_download: bool,
}
