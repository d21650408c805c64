//! `kore-sync demo`: the simulated Kore.ai API on loopback with two made-up
//! bots, synced into a warehouse, so kore-sync can be tried without
//! credentials; and the demo bots and their config, which `simulate` serves
//! alone.

use super::{Invocation, Outcome, open_context, render};
use crate::cli::DemoArgs;
use crate::config;
use crate::sim::{SimApp, SimBot, SimSettings, Simulator, data};
use crate::store::ReadCopy;
use crate::sync::{PassOptions, run_pass};
use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use std::net::SocketAddr;
use std::path::Path;

/// The demo's two bots and their (public, made-up) app credentials.
pub fn demo_bots() -> Vec<SimBot> {
    ["st-demo-support", "st-demo-sales"]
        .into_iter()
        .enumerate()
        .map(|(i, id)| SimBot {
            id: id.to_owned(),
            app: SimApp {
                client_id: format!("cs-demo-app-{}", i + 1),
                client_secret: format!("demo-secret-{}", i + 1),
            },
        })
        .collect()
}

/// The simulated API of the demo: two bots, `days` of history up to now,
/// `per_day` sessions a day for the first bot and 1.6 times as many for
/// the second, and a demo account app (`simulate` can ask for more
/// sessions, to try a config at size).
pub async fn start_demo_simulator(
    listen: SocketAddr,
    (days, per_day): (i64, u32),
    seed: u64,
) -> anyhow::Result<Simulator> {
    let now = Utc::now();
    let from = now - Duration::days(days);
    let bots = demo_bots();
    let mut records = Vec::new();
    for (i, bot) in bots.iter().enumerate() {
        records.extend(data::generate_bot_sessions(
            seed,
            &bot.id,
            from,
            now,
            per_day + per_day * 5 / 8 * i as u32,
        ));
    }
    let settings = SimSettings {
        bots,
        account_app: Some(SimApp {
            client_id: "cs-demo-account".into(),
            client_secret: "demo-account-secret".into(),
        }),
        seed,
        // Its records never change once it runs (demo, simulate).
        memoize_windows: true,
        ..SimSettings::default()
    };
    Simulator::start(listen, settings, records)
        .await
        .with_context(|| format!("could not start the simulated API on {listen}"))
}

/// The config that points kore-sync at a simulator running the demo bots.
pub fn demo_config_toml(base_url: &str, warehouse: &Path, start: DateTime<Utc>) -> String {
    let mut s = format!(
        "[api]\nbase_url = {base_url:?}\nrequests_per_minute = 0\nrequests_per_hour = 0\n\
         [warehouse]\npath = {:?}\n[sync]\nstart = {:?}\nlag = \"0s\"\n[messages]\nenabled = true\n\
         [analytics]\nenabled = true\n",
        warehouse.display().to_string(),
        start.to_rfc3339()
    );
    // Named as the simulated Admin Console's bot list names them.
    for b in demo_bots() {
        s.push_str(&format!(
            "[[bots]]\nid = {:?}\nname = {:?}\nclient_id = {:?}\nclient_secret = {:?}\n",
            b.id,
            data::bot_name(&b.id),
            b.app.client_id,
            b.app.client_secret
        ));
    }
    s
}

/// `kore-sync demo`: simulated API on loopback, 30 days of two bots, synced
/// into `warehouse`, then a summary.
pub async fn run(args: DemoArgs, inv: &Invocation) -> anyhow::Result<Outcome> {
    let warehouse = args.warehouse.as_path();
    let days = 30;
    let sim = start_demo_simulator(SocketAddr::from(([127, 0, 0, 1], 0)), (days, 40), 42).await?;
    if warehouse.exists() {
        std::fs::remove_file(warehouse).with_context(|| {
            format!(
                "could not replace the previous demo warehouse {}",
                warehouse.display()
            )
        })?;
        let _ = std::fs::remove_file(warehouse.with_extension("duckdb.wal"));
    }
    println!(
        "kore-sync demo: simulated Kore.ai API on {}, two bots, {days} days of sessions",
        sim.base_url()
    );
    let toml = demo_config_toml(
        &sim.base_url(),
        warehouse,
        Utc::now() - Duration::days(days),
    );
    let config = config::from_toml(&toml).context("the demo configuration is invalid (a bug)")?;
    let ctx = open_context(&config).await?;
    let started = std::time::Instant::now();
    let report = run_pass(&ctx, &PassOptions::manual(), &inv.cancel).await?;
    let elapsed = started.elapsed();
    sim.stop();
    // The read copy BI tools and the dbt package open, as a sync makes it.
    let published = crate::sync::publish::after_pass(&ctx, &report).await;
    let read_copy = match published.read_copy {
        Some(ReadCopy::Written { .. }) => ctx.warehouse.publish.clone(),
        _ => None,
    };
    let requests: u32 = report.streams.iter().map(|s| s.requests).sum();
    let status = ctx.store.status().await?;
    println!(
        "\nsynced {} sessions ({} tags), {} messages, {} analytics events and {} LLM calls in {:.1}s with {requests} requests\n",
        status.n_sessions,
        status.n_tags,
        status.n_messages,
        status.n_analytics_events,
        status.n_llm_calls,
        elapsed.as_secs_f64()
    );
    render::print_demo_streams(&status);
    if let Some((id, containment, transcript)) = ctx.store.sample_transcript().await? {
        println!("\nA {containment} conversation (session {id}, from the transcripts view):");
        for line in transcript.lines() {
            println!("  {line}");
        }
    }
    // The store is closed once the context is gone; its spill directory
    // is empty then and would only clutter the user's directory.
    drop(ctx);
    crate::store::remove_empty_spill_dir(warehouse);
    let path = warehouse.display();
    println!(
        "\nOpen it:\n  duckdb {path} -c \"SELECT * FROM daily_containment ORDER BY day DESC LIMIT 10\"\n  \
         python3 -c \"import duckdb; print(duckdb.connect('{path}', read_only=True).sql('SELECT bot_id, containment_type, count(*) FROM sessions GROUP BY ALL'))\"\n\
         Tables: sessions, session_tags, messages, message_tags, analytics_events, analytics_event_tags, llm_usage, \
         bots, sync_state, sync_runs; views: daily_sessions, daily_containment, tags_long, transcripts, session_messages, \
         first_user_messages, daily_nlu, top_unhandled_utterances, failing_tasks, slow_nodes, daily_llm_usage.\n\
         kore-sync bundles DuckDB {}; the file is in the storage format of DuckDB {}, so that DuckDB or newer opens it.",
        status.duckdb_version,
        crate::store::DEFAULT_STORAGE_VERSION
    );
    if let Some(copy) = read_copy {
        println!(
            "BI tools and the dbt package (dbt/) open the read copy, {}, which a sync \
             publishes again after each pass.",
            copy.display()
        );
    }
    Ok(Outcome::of(report.all_succeeded()))
}
