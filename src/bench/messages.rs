//! `kore-sync bench --messages N`: a backfill of about N conversation
//! messages from the simulator (stored sessions, their messages generated
//! per request), after their sessions: wall time, messages per second, and
//! requests against the fewest the API allows — per channel and window
//! (under 7 days), ⌈messages / 10,000⌉, at least one.

use super::process::{peak_rss_mib, tempfile_dir};
use crate::config;
use crate::sim::{SimApp, SimBot, SimSettings, Simulator, data};
use crate::store::SessionStore;
use crate::sync::plan::plan_range;
use crate::sync::{MESSAGES_PAGE, PassOptions, SyncContext, run_pass};
use chrono::{DateTime, Duration, Utc};
use std::net::SocketAddr;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Runs the benchmark and prints its figures.
pub async fn bench_messages(n: u64, days: i64) -> anyhow::Result<()> {
    let now = Utc::now();
    let from = now - Duration::days(days);
    let bot = SimBot {
        id: "st-bench-messages".into(),
        app: SimApp {
            client_id: "cs-bench".into(),
            client_secret: "bench-secret".into(),
        },
    };
    // The generator's closed sessions hold four messages on average.
    let per_day = u32::try_from(n / 4 / days.max(1) as u64)
        .unwrap_or(u32::MAX)
        .max(1);
    let records = data::generate_bot_sessions(7, &bot.id, from, now - Duration::hours(1), per_day);
    let settings = SimSettings {
        bots: vec![bot.clone()],
        max_page_size: 1000,
        ..SimSettings::default()
    };
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), settings, records).await?;
    let dir = tempfile_dir()?;
    let toml = |messages: bool| {
        format!(
            "[api]\nbase_url = {:?}\nmax_page_size = 1000\nrequests_per_minute = 0\nrequests_per_hour = 0\n\
             [warehouse]\npath = {:?}\npublish = false\n[sync]\nstart = {:?}\nlag = \"0s\"\nreconcile = \"0\"\n\
             [messages]\nenabled = {messages}\n[[bots]]\nid = {:?}\nclient_id = {:?}\nclient_secret = {:?}\n",
            sim.base_url(),
            dir.join("bench.duckdb").display().to_string(),
            from.to_rfc3339(),
            bot.id,
            bot.app.client_id,
            bot.app.client_secret
        )
    };
    let cancel = CancellationToken::new();
    // Sessions first, so the timed pass is the messages' backfill.
    let sessions_only = config::from_toml(&toml(false))?;
    let store = SessionStore::open(&sessions_only.warehouse)?;
    let ctx = SyncContext::new(sessions_only.sync_setup(), store)?;
    run_pass(&ctx, &PassOptions::manual(), &cancel).await?;
    drop(ctx);
    let config = config::from_toml(&toml(true))?;
    let ctx = SyncContext::new(config.sync_setup(), SessionStore::open(&config.warehouse)?)?;
    sim.clear_requests();
    // The pass plans its windows up to now: so does the minimum.
    let pass_now = Utc::now();
    let started = Instant::now();
    let report = run_pass(&ctx, &PassOptions::manual(), &cancel).await?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.all_succeeded(), "the pass failed: {report:#?}");
    let stored = ctx.store.status().await?.n_messages;
    let requests = sim
        .requests()
        .iter()
        .filter(|r| r.resource == "messages")
        .count();
    let minimum = minimum_requests(&sim, from, pass_now, config.sync.plan.window);
    println!(
        "backfill of {stored} messages ({per_day} sessions a day over {days} days, after their sessions)"
    );
    println!("  wall time          {elapsed:.2} s");
    println!("  messages/s         {:.0}", stored as f64 / elapsed);
    println!("  requests           {requests} (minimum the API allows: {minimum})");
    if let Some(rss) = peak_rss_mib() {
        println!("  peak RSS           {rss:.1} MiB (simulator included)");
    }
    sim.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Σ over channels and windows of ⌈messages / page⌉, at least one each.
fn minimum_requests(
    sim: &Simulator,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    window: chrono::TimeDelta,
) -> u64 {
    let plan = plan_range(from, now, window);
    let per_channel = sim.message_times_by_channel();
    let mut total = 0;
    for times in per_channel.values() {
        for w in &plan.windows {
            let (lo, hi) = (w.start.timestamp_millis(), w.end.timestamp_millis());
            let n = times.iter().filter(|t| **t >= lo && **t < hi).count() as u64;
            total += n.div_ceil(u64::from(MESSAGES_PAGE)).max(1);
        }
    }
    total
}
