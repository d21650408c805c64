//! `kore-sync bench`: the benchmark harness. Runs the simulated API in
//! process (on-demand sessions, rate limits off), backfills N sessions into
//! a temporary warehouse, and reports wall time, sessions per second,
//! requests made against the minimum the API allows, peak RSS, and what idle
//! passes cost. Figures go to BENCHMARKS.md; no test asserts on time.

use crate::config;
use crate::sim::{SimApp, SimBot, SimSettings, Simulator, Synthetic};
use crate::store::SessionStore;
use crate::sync::{PassOptions, PassTrigger, SyncContext, run_pass};
use anyhow::Context;
use chrono::{Duration, Utc};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub sessions: u64,
    pub bots: u32,
    pub days: i64,
    /// `api.page_size` and `api.max_page_size` of the client.
    pub page_size: u32,
    pub max_page_size: u32,
    /// The largest page the simulated server returns.
    pub server_page_limit: u32,
    /// Requests per minute the simulator enforces and the client is set to
    /// (per hour: 30 times that, Kore.ai's ratio); None = no limits.
    pub rate_limit: Option<u32>,
    pub idle_passes: u32,
    /// `sync.window`, e.g. "6d".
    pub window: String,
}

/// Peak resident set size of this process so far, in MiB (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// A `/proc/self/status` line in MiB, e.g. `RssAnon:` (Linux).
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub async fn bench(o: BenchOptions) -> anyhow::Result<()> {
    let now = Utc::now();
    // Whole seconds, so the planner's millisecond windows and the simulator agree.
    let now = now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
    let syn = Synthetic {
        per_bot: o.sessions / u64::from(o.bots.max(1)),
        from: now - Duration::days(o.days),
        to: now - Duration::hours(1),
    };
    let bots: Vec<SimBot> = (1..=o.bots)
        .map(|i| SimBot {
            id: format!("st-bench-{i}"),
            app: SimApp {
                client_id: format!("cs-bench-{i}"),
                client_secret: format!("bench-secret-{i}"),
            },
        })
        .collect();
    let settings = SimSettings {
        bots: bots.clone(),
        synthetic: Some(syn.clone()),
        max_page_size: o.server_page_limit as usize,
        rate_limit: o.rate_limit.map(|r| (r, r * 30)),
        seed: 7,
        ..SimSettings::default()
    };
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), settings, Vec::new()).await?;
    let dir = tempfile_dir()?;
    let warehouse = dir.join("bench.duckdb");
    let mut toml = format!(
        "[api]\nbase_url = {:?}\npage_size = {}\nmax_page_size = {}\nrequests_per_minute = {}\nrequests_per_hour = {}\n\
         [warehouse]\npath = {:?}\npublish = false\n[sync]\nstart = {:?}\nlag = \"0s\"\nlookback = \"1h\"\nwindow = {:?}\n",
        sim.base_url(),
        o.page_size,
        o.max_page_size,
        o.rate_limit.unwrap_or(0),
        o.rate_limit.unwrap_or(0) * 30,
        warehouse.display().to_string(),
        syn.from.to_rfc3339(),
        o.window
    );
    for b in &bots {
        toml.push_str(&format!(
            "[[bots]]\nid = {:?}\nclient_id = {:?}\nclient_secret = {:?}\n",
            b.id, b.app.client_id, b.app.client_secret
        ));
    }
    let config = Arc::new(config::from_toml(&toml)?);
    let store = SessionStore::open(&warehouse)?;
    let ctx = SyncContext::new(config.clone(), store)?;
    let cancel = CancellationToken::new();

    // The backfill.
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let opts = PassOptions {
        trigger: PassTrigger::Backfill,
        range: Some((syn.from, now)),
        only_bot: None,
        max_budget_wait: None,
        observer: None,
    };
    let report = run_pass(&ctx, &opts, &cancel).await?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.all_succeeded(), "the backfill failed: {report:#?}");
    let n_sessions: u64 = report.streams.iter().map(|s| s.sessions_received).sum();
    let requests = sim.requests().len();
    // Once the first answer taught the client the server's clamp, every
    // page is as large as both allow.
    let effective_page = o.max_page_size.max(o.page_size).min(o.server_page_limit);
    let minimum = minimum_requests(&config, &syn, &bots, 7, effective_page, now);
    let file_mib = std::fs::metadata(&warehouse)
        .map(|m| m.len() as f64 / 1_048_576.0)
        .unwrap_or(0.0);
    println!(
        "backfill of {} sessions ({} bots, {} days, window {}, page size {} up to {}, server limit {})",
        o.sessions, o.bots, o.days, o.window, o.page_size, o.max_page_size, o.server_page_limit
    );
    println!("  wall time          {elapsed:.2} s");
    println!("  sessions stored    {n_sessions}");
    println!("  sessions/s         {:.0}", n_sessions as f64 / elapsed);
    println!("  requests           {requests} (minimum the API allows: {minimum})");
    println!(
        "  peak RSS           {:.1} MiB (before the backfill: {:.1} MiB)",
        peak_rss_mib().unwrap_or(f64::NAN),
        rss_before.unwrap_or(f64::NAN)
    );
    // The peak counts file-backed pages too (the binary's code, which the
    // kernel can drop and share); what is resident now splits them out.
    println!(
        "  resident at end    {:.1} MiB anonymous + {:.1} MiB file-backed (mostly the binary's code)",
        status_mib("RssAnon:").unwrap_or(f64::NAN),
        status_mib("RssFile:").unwrap_or(f64::NAN)
    );
    println!("  warehouse file     {file_mib:.1} MiB");
    let fetch: f64 = report
        .streams
        .iter()
        .map(|s| s.fetch_time.as_secs_f64())
        .sum();
    let store: f64 = report
        .streams
        .iter()
        .map(|s| s.store_time.as_secs_f64())
        .sum();
    println!("  time in fetch      {fetch:.2} s (HTTP, simulator, parsing; summed over streams)");
    println!("  time in store      {store:.2} s (staging, compare, upsert, commit)");
    if let Some(per_minute) = o.rate_limit {
        // Per bot, both rolling windows bound the wall time from below: the
        // last of n requests cannot start before (ceil(n/limit) - 1) windows
        // have passed. Spreading requests evenly (as Kore.ai advises, and as
        // the budget does) needs (n - 1) gaps of a minute / per_minute.
        let per_bot = requests as f64 / f64::from(o.bots.max(1));
        let per_hour = f64::from(per_minute) * 30.0;
        let rolling = ((per_bot / f64::from(per_minute)).ceil() - 1.0).max(0.0) * 60.0;
        let rolling = rolling.max(((per_bot / per_hour).ceil() - 1.0).max(0.0) * 3600.0);
        let even = (per_bot - 1.0).max(0.0) * 60.0 / f64::from(per_minute);
        let n_429 = sim.requests().iter().filter(|r| r.status == 429).count();
        println!(
            "  rate limit         {per_minute}/min and {per_hour:.0}/h per bot, enforced by the simulator"
        );
        println!("  429 answers        {n_429}");
        println!(
            "  minimum wall time  {rolling:.1} s (rolling windows), {even:.1} s (evenly spread); measured / evenly spread = {:.3}",
            elapsed / even.max(f64::EPSILON)
        );
    }

    // Idle passes: nothing new upstream.
    if o.idle_passes > 0 {
        let size_before = std::fs::metadata(&warehouse)?.len();
        sim.clear_requests();
        let mut written = 0;
        let started = Instant::now();
        for _ in 0..o.idle_passes {
            let r = run_pass(&ctx, &PassOptions::manual(), &cancel).await?;
            written += r.streams.iter().map(|s| s.sessions_written).sum::<u64>();
        }
        let per_pass = started.elapsed().as_secs_f64() / f64::from(o.idle_passes);
        let idle_requests = sim.requests().len() as f64 / f64::from(o.idle_passes);
        let size_after = std::fs::metadata(&warehouse)?.len();
        println!("{} idle passes (nothing new upstream)", o.idle_passes);
        println!(
            "  requests per pass  {idle_requests:.1} ({} streams)",
            report.streams.len()
        );
        println!("  sessions written   {written}");
        println!("  time per pass      {:.1} ms", per_pass * 1000.0);
        println!(
            "  warehouse file     {:.2} MiB -> {:.2} MiB",
            size_before as f64 / 1_048_576.0,
            size_after as f64 / 1_048_576.0
        );
    }
    sim.stop();
    drop(ctx);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Σ over streams and windows of ceil(records / page) plus one per empty window.
fn minimum_requests(
    config: &config::Config,
    syn: &Synthetic,
    bots: &[SimBot],
    seed: u64,
    page: u32,
    now: chrono::DateTime<Utc>,
) -> u64 {
    let plan = crate::sync::plan::plan_range(syn.from, now, config.sync.plan.window);
    let mut total = 0;
    for b in bots {
        for ct in &config.sync.containment_types {
            for w in &plan.windows {
                let lo = syn.first_index_at(w.start.timestamp_millis(), false);
                let hi = syn.first_index_at(w.end.timestamp_millis(), true);
                let n = Synthetic::count(seed, &b.id, Some(ct.as_str()), lo, hi);
                total += n.div_ceil(u64::from(page)).max(1);
            }
        }
    }
    total
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("kore-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
