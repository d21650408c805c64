//! The benchmark harness behind `kore-sync bench`. Runs the simulated API
//! in process (on-demand sessions, rate limits off), backfills N sessions
//! into a temporary warehouse, and reports wall time, sessions per second,
//! requests made against the minimum the API allows, peak RSS, and what idle
//! passes cost (and, with `download`, what a bare download of the same
//! pages takes); `messages` and `publish` measure the other paths, and
//! `commands` every command on a large warehouse. It prints
//! its own figures (they go to BENCHMARKS.md; no test asserts on time).
//!
//! Like `sim`, it stands apart from the layers: it drives the library from
//! outside, as a user's command would, and builds the simulator's records
//! through `sim`, never naming the API's fields itself.

mod commands;
mod download;
pub mod fleet;
mod messages;
mod process;
mod publish;
pub mod scan;

use crate::config;
use crate::sim::{SimBot, Simulator, Synthetic};
use crate::store::SessionStore;
use crate::sync::{PassOptions, SyncContext, run_pass};
use chrono::{DateTime, Duration, Utc};
use fleet::{Fleet, SEED};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::BenchOptions;
use process::{cpu_seconds, peak_rss_mib, status_mib, tempfile_dir};

/// `kore-sync bench`: set up, backfill, report, idle passes, clean up.
pub async fn run(o: BenchOptions) -> anyhow::Result<()> {
    if let Some(n) = o.messages {
        return messages::bench_messages(n, o.days).await;
    }
    if let Some(n) = o.commands {
        return commands::bench_commands(n, o.days).await;
    }
    let bench = Bench::start(o).await?;
    let backfill = bench.backfill().await?;
    bench.print_backfill(&backfill);
    if let Some(per_minute) = bench.o.rate_limit {
        bench.print_rate_limit(per_minute, &backfill);
    }
    if bench.o.bare_download {
        let bare = download::replay(&bench.ctx, &bench.sim.requests()).await?;
        println!(
            "bare download of the same {} pages ({:.1} MiB): {:.2} s; the backfill took {:.2} times as long",
            bare.n_pages,
            bare.n_bytes as f64 / 1_048_576.0,
            bare.elapsed.as_secs_f64(),
            backfill.elapsed / bare.elapsed.as_secs_f64().max(f64::EPSILON)
        );
    }
    if bench.o.idle_passes > 0 {
        bench.idle_passes(backfill.n_streams).await?;
    }
    if bench.o.publish {
        publish::measure((&bench.ctx, &bench.sim), &bench.dir, bench.now).await?;
    }
    bench.sim.stop();
    let dir = bench.dir.clone();
    drop(bench);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A simulator serving synthetic sessions, and a warehouse to sync them into.
struct Bench {
    o: BenchOptions,
    /// Whole seconds, so the planner's millisecond windows and the simulator agree.
    now: DateTime<Utc>,
    syn: Synthetic,
    bots: Vec<SimBot>,
    sim: Simulator,
    dir: PathBuf,
    warehouse: PathBuf,
    config: config::Config,
    ctx: SyncContext,
    cancel: CancellationToken,
}

/// What the backfill measured.
struct Backfill {
    elapsed: f64,
    /// The process's CPU seconds over the backfill, simulator included.
    cpu: Option<f64>,
    rss_before: Option<f64>,
    n_sessions: u64,
    n_streams: usize,
    requests: usize,
    fetch_time: f64,
    store_time: f64,
}

impl Bench {
    async fn start(o: BenchOptions) -> anyhow::Result<Self> {
        let now = Utc::now();
        let now = now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
        let fleet = Fleet {
            n_bots: o.bots.max(1),
            per_bot: o.sessions / u64::from(o.bots.max(1)),
            from: now - Duration::days(o.days),
            to: now - Duration::hours(1),
            rate_limit: o.rate_limit,
            channels: o.channels,
            server_page_limit: o.server_page_limit,
            page_size: o.page_size,
            max_page_size: o.max_page_size,
            window: o.window.clone(),
            analytics: false,
        };
        let (syn, bots) = (fleet.synthetic(), fleet.bots());
        let sim = fleet.serve(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let dir = tempfile_dir()?;
        let warehouse = dir.join("bench.duckdb");
        let config = config::from_toml(&fleet.config_toml(&sim.base_url(), &warehouse))?;
        let store = SessionStore::open(&config.warehouse)?;
        let ctx = SyncContext::new(config.sync_setup(), store)?;
        Ok(Bench {
            o,
            now,
            syn,
            bots,
            sim,
            dir,
            warehouse,
            config,
            ctx,
            cancel: CancellationToken::new(),
        })
    }

    async fn backfill(&self) -> anyhow::Result<Backfill> {
        let rss_before = peak_rss_mib();
        let started = Instant::now();
        let cpu_before = cpu_seconds();
        let opts = PassOptions::backfill((self.syn.from, self.now), None);
        let report = run_pass(&self.ctx, &opts, &self.cancel).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_before.zip(cpu_seconds()).map(|(a, b)| b - a);
        anyhow::ensure!(report.all_succeeded(), "the backfill failed: {report:#?}");
        let sum = |f: &dyn Fn(&crate::sync::StreamReport) -> f64| -> f64 {
            report.streams.iter().map(f).sum()
        };
        Ok(Backfill {
            elapsed,
            cpu,
            rss_before,
            n_sessions: report
                .streams
                .iter()
                .filter(|s| s.key.partition.resource() == "sessions")
                .map(|s| s.sessions_received)
                .sum(),
            n_streams: report.streams.len(),
            requests: self.sim.requests().len(),
            fetch_time: sum(&|s| s.fetch_time.as_secs_f64()),
            store_time: sum(&|s| s.store_time.as_secs_f64()),
        })
    }

    fn print_backfill(&self, b: &Backfill) {
        let o = &self.o;
        // Once the first answer taught the client the server's clamp, every
        // page is as large as both allow.
        let effective_page = o.max_page_size.max(o.page_size).min(o.server_page_limit);
        let minimum = minimum_requests(
            &self.config,
            &self.syn,
            &self.bots,
            effective_page,
            self.now,
        );
        let file_mib = std::fs::metadata(&self.warehouse)
            .map(|m| m.len() as f64 / 1_048_576.0)
            .unwrap_or(0.0);
        println!(
            "backfill of {} sessions ({} bots, {} days, window {}, page size {} up to {}, server limit {})",
            o.sessions, o.bots, o.days, o.window, o.page_size, o.max_page_size, o.server_page_limit
        );
        println!("  wall time          {:.2} s", b.elapsed);
        if let Some(cpu) = b.cpu {
            println!(
                "  CPU                {cpu:.2} s (this process, simulator included; {:.0} µs a session)",
                cpu / b.n_sessions.max(1) as f64 * 1e6
            );
        }
        println!("  sessions stored    {}", b.n_sessions);
        println!(
            "  sessions/s         {:.0}",
            b.n_sessions as f64 / b.elapsed
        );
        let messages = if o.channels > 0 {
            "; messages' requests come on top"
        } else {
            ""
        };
        println!(
            "  requests           {} (minimum the API allows for sessions: {minimum}{messages})",
            b.requests
        );
        println!(
            "  peak RSS           {:.1} MiB (before the backfill: {:.1} MiB)",
            peak_rss_mib().unwrap_or(f64::NAN),
            b.rss_before.unwrap_or(f64::NAN)
        );
        // The peak counts file-backed pages too (the binary's code, which the
        // kernel can drop and share); what is resident now splits them out.
        println!(
            "  resident at end    {:.1} MiB anonymous + {:.1} MiB file-backed (mostly the binary's code)",
            status_mib("RssAnon:").unwrap_or(f64::NAN),
            status_mib("RssFile:").unwrap_or(f64::NAN)
        );
        println!("  warehouse file     {file_mib:.1} MiB");
        println!(
            "  time in fetch      {:.2} s (HTTP, simulator, parsing; summed over streams)",
            b.fetch_time
        );
        println!(
            "  time in store      {:.2} s (staging, compare, upsert, commit)",
            b.store_time
        );
    }

    /// Per bot, both rolling windows bound the wall time from below: the
    /// last of n requests cannot start before (ceil(n/limit) - 1) windows
    /// have passed. Spreading requests evenly (as Kore.ai advises, and as
    /// the budget does) needs (n - 1) gaps of a minute / per_minute.
    fn print_rate_limit(&self, per_minute: u32, b: &Backfill) {
        let per_bot = b.requests as f64 / f64::from(self.o.bots.max(1));
        let per_hour = f64::from(per_minute) * 30.0;
        let rolling = ((per_bot / f64::from(per_minute)).ceil() - 1.0).max(0.0) * 60.0;
        let rolling = rolling.max(((per_bot / per_hour).ceil() - 1.0).max(0.0) * 3600.0);
        let even = (per_bot - 1.0).max(0.0) * 60.0 / f64::from(per_minute);
        let n_429 = self
            .sim
            .requests()
            .iter()
            .filter(|r| r.status == 429)
            .count();
        println!(
            "  rate limit         {per_minute}/min and {per_hour:.0}/h per bot, enforced by the simulator"
        );
        println!("  429 answers        {n_429}");
        println!(
            "  minimum wall time  {rolling:.1} s (rolling windows), {even:.1} s (evenly spread); measured / evenly spread = {:.3}",
            b.elapsed / even.max(f64::EPSILON)
        );
    }

    /// Passes with nothing new upstream: their requests, writes and cost.
    async fn idle_passes(&self, n_streams: usize) -> anyhow::Result<()> {
        let n = self.o.idle_passes;
        let size_before = std::fs::metadata(&self.warehouse)?.len();
        self.sim.clear_requests();
        let mut written = 0;
        let started = Instant::now();
        let cpu_before = cpu_seconds();
        for _ in 0..n {
            let r = run_pass(&self.ctx, &PassOptions::manual(), &self.cancel).await?;
            written += r.streams.iter().map(|s| s.sessions_written).sum::<u64>();
        }
        let per_pass = started.elapsed().as_secs_f64() / f64::from(n);
        // The process's CPU over the passes, simulator included.
        let cpu = cpu_before.zip(cpu_seconds()).map(|(a, b)| b - a);
        let idle_requests = self.sim.requests().len() as f64 / f64::from(n);
        let size_after = std::fs::metadata(&self.warehouse)?.len();
        println!("{n} idle passes (nothing new upstream)");
        println!("  requests per pass  {idle_requests:.1} ({n_streams} streams)");
        println!("  sessions written   {written}");
        println!("  time per pass      {:.1} ms", per_pass * 1000.0);
        if let Some(cpu) = cpu {
            let per_stream = cpu / f64::from(n) / n_streams.max(1) as f64;
            println!(
                "  CPU per stream     {:.2} ms (this process, simulator included)",
                per_stream * 1000.0
            );
        }
        println!(
            "  warehouse file     {:.2} MiB -> {:.2} MiB",
            size_before as f64 / 1_048_576.0,
            size_after as f64 / 1_048_576.0
        );
        Ok(())
    }
}

/// Σ over streams and windows of ceil(records / page) plus one per empty window.
fn minimum_requests(
    config: &config::Config,
    syn: &Synthetic,
    bots: &[SimBot],
    page: u32,
    now: DateTime<Utc>,
) -> u64 {
    let plan = crate::sync::plan::plan_range(syn.from, now, config.sync.plan.window);
    let mut total = 0;
    for b in bots {
        for ct in &config.sync.containment_types {
            for w in &plan.windows {
                let lo = syn.first_index_at(w.start.timestamp_millis(), false);
                let hi = syn.first_index_at(w.end.timestamp_millis(), true);
                let n = Synthetic::count(SEED, &b.id, Some(ct.as_str()), lo, hi);
                total += n.div_ceil(u64::from(page)).max(1);
            }
        }
    }
    total
}
