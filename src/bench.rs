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
    pub page_size: u32,
    pub idle_passes: u32,
    /// `sync.window`, e.g. "6d".
    pub window: String,
}

/// Peak resident set size of this process so far, in MiB (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
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
        max_page_size: 10_000,
        seed: 7,
        ..SimSettings::default()
    };
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), settings, Vec::new()).await?;
    let dir = tempfile_dir()?;
    let warehouse = dir.join("bench.duckdb");
    let mut toml = format!(
        "[api]\nbase_url = {:?}\npage_size = {}\nrequests_per_minute = 0\nrequests_per_hour = 0\n\
         [warehouse]\npath = {:?}\npublish = false\n[sync]\nstart = {:?}\nlag = \"0s\"\nlookback = \"1h\"\nwindow = {:?}\n",
        sim.base_url(),
        o.page_size,
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
    let minimum = minimum_requests(&config, &syn, &bots, 7, o.page_size, now);
    let file_mib = std::fs::metadata(&warehouse)
        .map(|m| m.len() as f64 / 1_048_576.0)
        .unwrap_or(0.0);
    println!(
        "backfill of {} sessions ({} bots, {} days, window {}, page size {})",
        o.sessions, o.bots, o.days, o.window, o.page_size
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
