//! The commands behind the CLI. `main.rs` parses arguments and calls one of
//! these; each returns whether it fully succeeded, or an error for `main` to
//! print with its chain and map to an exit code.

use crate::config::{self, Config};
use crate::model::ACCOUNT_BOT_ID;
use crate::schedule;
use crate::sim::{SimApp, SimBot, SimSettings, Simulator, data};
use crate::store::{SessionStore, StatusReport};
use crate::sync::{PassOptions, PassReport, PassTrigger, SyncContext, publish, run_pass};
use anyhow::{Context, bail};
use chrono::{DateTime, Duration, Utc};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Cancels `token` on SIGINT or SIGTERM: the one shutdown signal every task
/// watches.
pub fn cancel_on_signals(token: CancellationToken) {
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

fn log_warnings(config: &Config) {
    for w in &config.warnings {
        warn!(warning = %w, "configuration");
    }
}

async fn open(config: &Arc<Config>) -> anyhow::Result<SyncContext> {
    log_warnings(config);
    let store = open_store(config).await?;
    SyncContext::new(config.clone(), store).context("could not set up the HTTP client")
}

/// `kore-sync sync`: one pass, then exit. True if every stream succeeded.
pub async fn sync_once(config: Config, cancel: CancellationToken) -> anyhow::Result<bool> {
    let ctx = open(&Arc::new(config)).await?;
    let opts = PassOptions {
        observer: crate::progress::terminal_observer(),
        ..PassOptions::manual()
    };
    let report = run_pass(&ctx, &opts, &cancel).await?;
    print_pass(&report);
    publish::after_pass(&ctx, &report).await;
    Ok(report.all_succeeded())
}

/// `kore-sync backfill`: re-read `[from, to)`, upserting; watermarks never move back.
pub async fn backfill(
    config: Config,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
    bot: Option<String>,
    cancel: CancellationToken,
) -> anyhow::Result<bool> {
    if let Some(b) = &bot
        && !config.scopes.iter().any(|s| &s.bot_id == b)
    {
        let known: Vec<&str> = config.scopes.iter().map(|s| s.bot_id.as_str()).collect();
        bail!(
            "--bot {b:?} is not in the configuration; configured: {}",
            known.join(", ")
        );
    }
    let to = to.unwrap_or_else(Utc::now);
    if to <= from {
        bail!("--to ({to}) must be after --from ({from})");
    }
    let ctx = open(&Arc::new(config)).await?;
    let opts = PassOptions {
        trigger: PassTrigger::Backfill,
        range: Some((from, to)),
        only_bot: bot,
        // A backfill is asked for explicitly: it waits out the hourly budget.
        max_budget_wait: None,
        observer: crate::progress::terminal_observer(),
    };
    let report = run_pass(&ctx, &opts, &cancel).await?;
    print_pass(&report);
    publish::after_pass(&ctx, &report).await;
    Ok(report.all_succeeded())
}

/// `kore-sync run`: the daemon. The warehouse is opened for each pass and
/// closed after it, so other tools can open the file between passes; the API
/// clients (and their request budgets) live as long as the process.
pub async fn run_daemon(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    use crate::ops::health::{self, Health};
    use crate::ops::notify;
    let config = Arc::new(config);
    log_warnings(&config);
    // Fail fast on a warehouse that cannot be opened or migrated, and on
    // credentials that cannot sign a token.
    drop(open_store(&config).await?);
    for scope in &config.scopes {
        scope.credentials.header_value().with_context(|| {
            format!(
                "cannot sign a token for {}; check its client secret",
                scope.bot_id
            )
        })?;
    }
    let apis = crate::sync::build_apis(&config).context("could not set up the HTTP client")?;
    let streams = config.scopes.iter().flat_map(|s| {
        config
            .sync
            .containment_types
            .iter()
            .map(move |ct| format!("{}/{}", s.bot_id, ct))
    });
    let health = Health::new(streams, config.server.max_pass_age);
    if let Some(listen) = config.server.listen {
        let addr = health::serve(listen, health.clone(), cancel.clone())
            .await
            .with_context(|| {
                format!("cannot serve health and metrics on {listen} (server.listen)")
            })?;
        info!(addr = %addr, "serving /healthz and /metrics");
    }
    if let Some(every) = notify::watchdog_interval() {
        // Ping at half the interval while the pass loop shows signs of life.
        let (health, cancel) = (health.clone(), cancel.clone());
        let alive_within = config.sync.pass_deadline + config.server.max_pass_age;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        if health.alive_within(alive_within) {
                            notify::notify_logged("WATCHDOG=1");
                        }
                    }
                }
            }
        });
    }
    let (tx, rx) = mpsc::channel(1);
    let mut scheduler = schedule::start_ticks(&config.sync.trigger, tx)
        .await
        .context("could not start the scheduler")?;
    info!(trigger = ?config.sync.trigger, scopes = config.scopes.len(), "kore-sync running");
    health.beat();
    notify::notify_logged("READY=1\nSTATUS=started; first pass running");
    let pass_cancel = cancel.clone();
    schedule::drive(rx, cancel.clone(), || {
        let (config, apis, cancel, health) = (config.clone(), apis.clone(), pass_cancel.clone(), health.clone());
        async move {
            health.beat();
            let store = match open_store(&config).await {
                Ok(store) => store,
                Err(e) => {
                    warn!(error = format!("{e:#}"), "cannot open the warehouse; skipping this pass, trying again at the next tick");
                    notify::notify_logged(&format!("STATUS=pass skipped at {}: warehouse busy or unavailable", Utc::now().format("%H:%M:%SZ")));
                    return;
                }
            };
            let ctx = SyncContext { config, store, apis };
            let result = run_pass(&ctx, &PassOptions::scheduled(), &cancel).await;
            if let Ok(report) = &result {
                publish::after_pass(&ctx, report).await;
            }
            // Release the warehouse before saying the pass is over.
            drop(ctx);
            let at = Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
            match result {
                Ok(report) => {
                    health.record(&report);
                    let n = report.streams.len();
                    if report.all_succeeded() {
                        info!(streams = n, "pass succeeded");
                        notify::notify_logged(&format!("STATUS=last pass {at}: {n} streams succeeded"));
                    } else {
                        warn!(
                            streams = n,
                            failed = report.n_failed(),
                            "pass finished with failed or interrupted streams; see `kore-sync status`"
                        );
                        notify::notify_logged(&format!(
                            "STATUS=last pass {at}: {} of {n} streams failed or were interrupted",
                            n - report.streams.iter().filter(|s| matches!(s.outcome, crate::store::RunOutcome::Succeeded | crate::store::RunOutcome::BudgetSpent)).count()
                        ));
                    }
                }
                Err(e) => {
                    error!(error = format!("{e:#}"), "pass failed: the warehouse could not be written");
                    notify::notify_logged(&format!("STATUS=last pass {at}: the warehouse could not be written"));
                }
            }
        }
    })
    .await;
    notify::notify_logged("STOPPING=1");
    if let Err(e) = scheduler.shutdown().await {
        warn!(error = %e, "scheduler did not shut down cleanly");
    }
    Ok(())
}

async fn open_store(config: &Config) -> anyhow::Result<SessionStore> {
    let path = config.warehouse.path.clone();
    Ok(tokio::task::spawn_blocking(move || SessionStore::open(&path)).await??)
}

/// `kore-sync status`.
pub async fn status(config: Config, json: bool) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let report = store.status().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&StatusJson::new(&report, Utc::now()))?
        );
    } else {
        print_status(store.path(), &report, Utc::now());
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct StatusJson<'a> {
    #[serde(flatten)]
    report: &'a StatusReport,
    /// Seconds each stream's watermark is behind now, in stream order.
    behind_seconds: Vec<Option<i64>>,
}

impl<'a> StatusJson<'a> {
    fn new(report: &'a StatusReport, now: DateTime<Utc>) -> Self {
        let behind_seconds = report
            .streams
            .iter()
            .map(|s| s.watermark.map(|w| (now - w).num_seconds()))
            .collect();
        StatusJson {
            report,
            behind_seconds,
        }
    }
}

fn behind(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds().max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

fn print_status(path: &Path, r: &StatusReport, now: DateTime<Utc>) {
    println!(
        "warehouse {} (DuckDB {}): {} sessions, {} tags, {} rejected records, {} streams",
        path.display(),
        r.duckdb_version,
        r.n_sessions,
        r.n_tags,
        r.n_rejected,
        r.streams.len()
    );
    for p in &r.publications {
        let what = if p.kind == "read_copy" {
            "read copy"
        } else {
            "Parquet export"
        };
        println!(
            "{what} {} published {} ago ({})",
            p.target,
            behind(now, p.published_at),
            p.published_at.format("%Y-%m-%dT%H:%M:%SZ")
        );
    }
    if r.streams.is_empty() {
        println!("no stream has run yet: run `kore-sync sync`");
        return;
    }
    println!(
        "{:<32} {:>9}  {:<24} {:<16} {:<24} {:<10} OUTCOME",
        "STREAM", "SESSIONS", "WATERMARK", "BEHIND", "LAST RUN", "TRIGGER"
    );
    for s in &r.streams {
        let filter = if s.filter.is_empty() {
            String::new()
        } else {
            format!(" [filter {}]", s.filter)
        };
        let error = s
            .last_error
            .as_deref()
            .map_or(String::new(), |e| format!(": {e}"));
        println!(
            "{:<32} {:>9}  {:<24} {:<16} {:<24} {:<10} {}{filter}{error}",
            format!("{}/{}", s.bot_id, s.containment_type),
            s.n_sessions,
            s.watermark
                .map_or("-".into(), |w| w.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            s.watermark.map_or("-".into(), |w| behind(now, w)),
            s.last_run_started
                .map_or("-".into(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            s.last_trigger.as_deref().unwrap_or("-"),
            s.last_outcome.as_deref().unwrap_or("-"),
        );
    }
}

fn print_pass(report: &PassReport) {
    for s in &report.streams {
        println!(
            "{:<40} {:<11} windows {}/{}  requests {} (retries {})  sessions {} ({} written){}",
            format!("{}/{}", s.bot_id, s.containment_type),
            s.outcome.as_str(),
            s.windows_done,
            s.windows_planned,
            s.requests,
            s.retries,
            s.sessions_received,
            s.sessions_written,
            s.error
                .as_deref()
                .map_or(String::new(), |e| format!("\n    error: {e}")),
        );
    }
}

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

/// Starts a simulator with `days` of history for the demo bots (and a demo
/// account app), ending now.
pub async fn start_demo_simulator(
    listen: SocketAddr,
    days: i64,
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
            40 + 25 * i as u32,
        ));
    }
    let settings = SimSettings {
        bots,
        account_app: Some(SimApp {
            client_id: "cs-demo-account".into(),
            client_secret: "demo-account-secret".into(),
        }),
        seed,
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
         [warehouse]\npath = {:?}\n[sync]\nstart = {:?}\nlag = \"0s\"\n",
        warehouse.display().to_string(),
        start.to_rfc3339()
    );
    for b in demo_bots() {
        s.push_str(&format!(
            "[[bots]]\nid = {:?}\nclient_id = {:?}\nclient_secret = {:?}\n",
            b.id, b.app.client_id, b.app.client_secret
        ));
    }
    s
}

/// `kore-sync demo`: simulated API on loopback, 30 days of two bots, synced
/// into `warehouse`, then a summary.
pub async fn demo(warehouse: &Path, cancel: CancellationToken) -> anyhow::Result<bool> {
    let days = 30;
    let sim = start_demo_simulator(SocketAddr::from(([127, 0, 0, 1], 0)), days, 42).await?;
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
    let ctx = open(&Arc::new(config)).await?;
    let started = std::time::Instant::now();
    let report = run_pass(&ctx, &PassOptions::manual(), &cancel).await?;
    let elapsed = started.elapsed();
    sim.stop();
    let requests: u32 = report.streams.iter().map(|s| s.requests).sum();
    let status = ctx.store.status().await?;
    println!(
        "\nsynced {} sessions ({} tags) in {:.1}s with {requests} requests\n",
        status.n_sessions,
        status.n_tags,
        elapsed.as_secs_f64()
    );
    println!(
        "{:<20} {:<12} {:>8}  WATERMARK",
        "BOT", "CONTAINMENT", "SESSIONS"
    );
    for s in &status.streams {
        println!(
            "{:<20} {:<12} {:>8}  {}",
            if s.bot_id == ACCOUNT_BOT_ID {
                "(account)"
            } else {
                &s.bot_id
            },
            s.containment_type,
            s.n_sessions,
            s.watermark.map_or("-".into(), |w| w.to_rfc3339()),
        );
    }
    let path = warehouse.display();
    println!(
        "\nOpen it:\n  duckdb {path} -c \"SELECT * FROM daily_containment ORDER BY day DESC LIMIT 10\"\n  \
         python3 -c \"import duckdb; print(duckdb.connect('{path}', read_only=True).sql('SELECT bot_id, containment_type, count(*) FROM sessions GROUP BY ALL'))\"\n\
         Tables: sessions, session_tags, sync_state, sync_runs; views: daily_sessions, daily_containment, tags_long.\n\
         The file is in DuckDB {} format: open it with that DuckDB version or newer.",
        status.duckdb_version
    );
    Ok(report.all_succeeded())
}

/// `kore-sync simulate`: the simulated API alone, until Ctrl-C.
pub async fn simulate(
    listen: SocketAddr,
    days: i64,
    seed: u64,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let sim = start_demo_simulator(listen, days, seed).await?;
    let warehouse = Path::new("kore-sim.duckdb");
    println!(
        "simulated Kore.ai Sessions API listening on {} ({days} days of sessions, seed {seed}).\n\
         A config that syncs from it (save as kore-sync.toml):\n\n{}\n\
         The account scope is available with client_id \"cs-demo-account\", client_secret \"demo-account-secret\".\n\
         Stop with Ctrl-C.",
        sim.base_url(),
        demo_config_toml(
            &sim.base_url(),
            warehouse,
            Utc::now() - Duration::days(days)
        )
    );
    cancel.cancelled().await;
    sim.stop();
    Ok(())
}

/// `kore-sync export --parquet DIR`: the whole history as hive-partitioned Parquet.
pub async fn export(config: Config, dir: &Path) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let days = store
        .export_parquet(dir, true)
        .await
        .with_context(|| format!("could not export Parquet to {}", dir.display()))?;
    println!(
        "exported {days} days to {}: sessions/date=YYYY-MM-DD/data.parquet and session_tags/date=YYYY-MM-DD/data.parquet",
        dir.display()
    );
    Ok(())
}

/// `kore-sync query`: SQL against a warehouse file (by default the read
/// copy), read-only, with the DuckDB version kore-sync bundles. With SQL
/// arguments, runs them and exits; otherwise reads one statement per line
/// from stdin and answers each, ending every answer with an empty line.
pub async fn query(
    config: Option<Config>,
    db: Option<std::path::PathBuf>,
    sql: Vec<String>,
) -> anyhow::Result<()> {
    let path = match (db, config) {
        (Some(p), _) => p,
        (None, Some(c)) => c
            .warehouse
            .publish
            .clone()
            .unwrap_or(c.warehouse.path.clone()),
        (None, None) => bail!("no --db given and no configuration found; pass --db PATH"),
    };
    let reader = crate::store::ReadOnly::open(&path)?;
    let mut out = std::io::stdout().lock();
    if !sql.is_empty() {
        reader.print(&sql.join(" "), &mut out)?;
        return Ok(());
    }
    for line in std::io::stdin().lines() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        if let Err(e) = reader.print(&line, &mut out) {
            use std::io::Write;
            writeln!(out, "error: {e:#}")?;
        }
        use std::io::Write;
        writeln!(out)?;
        out.flush()?;
    }
    Ok(())
}

/// `kore-sync check`: every line of the setup, each OK or the fix. True if
/// all are OK. (Configuration problems are reported before this runs.)
pub async fn check(config: Config) -> anyhow::Result<bool> {
    let mut ok = true;
    let mut line = |what: String, result: Result<String, String>| match result {
        Ok(detail) => println!("OK    {what}: {detail}"),
        Err(fix) => {
            ok = false;
            println!("FAIL  {what}: {fix}");
        }
    };
    line(
        "configuration".into(),
        Ok(format!(
            "{} scope(s), {} stream(s) each",
            config.scopes.len(),
            config.sync.containment_types.len()
        )),
    );
    for w in &config.warnings {
        println!("WARN  configuration: {w}");
    }
    // One quick try per scope: no long retry loop for a check.
    let mut quick = config.clone();
    quick.api.retry.max_retries = 1;
    let apis = crate::sync::build_apis(&quick).context("could not set up the HTTP client")?;
    let never = CancellationToken::new();
    for (scope, api) in quick.scopes.iter().zip(&apis) {
        let name = if scope.bot_id == ACCOUNT_BOT_ID {
            "account scope".to_owned()
        } else {
            format!("bot {}", scope.bot_id)
        };
        match scope.credentials.header_value() {
            Ok(_) => line(
                format!("{name}: token"),
                Ok(format!("signed for {}", scope.credentials.describe())),
            ),
            Err(e) => {
                line(
                    format!("{name}: token"),
                    Err(format!(
                        "cannot sign a token ({e}); check the client secret"
                    )),
                );
                continue;
            }
        }
        let now = Utc::now();
        let body = crate::api::wire::SessionsRequest {
            date_from: Some(crate::api::wire::format_api_time(now - Duration::hours(1))),
            date_to: Some(crate::api::wire::format_api_time(now)),
            skip: Some(0),
            limit: Some(1),
            ..Default::default()
        }
        .with_filter(&scope.filter);
        let ct = config.sync.containment_types[0];
        let (result, _) = api
            .get_sessions(
                Some(ct),
                &body,
                Some(std::time::Duration::from_secs(10)),
                &never,
            )
            .await;
        line(
            format!("{name}: getSessions"),
            result
                .map(|page| {
                    format!(
                        "answered ({} {ct} session(s) in the last hour)",
                        page.total.unwrap_or(0)
                    )
                })
                .map_err(|e| e.to_string()),
        );
    }
    let path = config.warehouse.path.clone();
    let opened = tokio::task::spawn_blocking(move || SessionStore::open(&path)).await?;
    line(
        format!("warehouse {}", config.warehouse.path.display()),
        opened
            .map(|_| "writable, schema up to date".to_owned())
            .map_err(|e| e.to_string()),
    );
    for (what, dir) in [
        (
            "read copy",
            config
                .warehouse
                .publish
                .as_ref()
                .and_then(|p| p.parent().map(Path::to_path_buf)),
        ),
        ("Parquet export", config.warehouse.parquet_dir.clone()),
    ] {
        if let Some(dir) = dir {
            let dir = if dir.as_os_str().is_empty() {
                std::path::PathBuf::from(".")
            } else {
                dir
            };
            line(
                format!("{what} directory {}", dir.display()),
                dir_writable(&dir),
            );
        }
    }
    Ok(ok)
}

fn dir_writable(dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create it ({e}); check the path and permissions"))?;
    let probe = dir.join(format!(".kore-sync-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| format!("cannot write in it ({e}); check permissions"))?;
    let _ = std::fs::remove_file(&probe);
    Ok("writable".into())
}

/// `kore-sync fetch`: read the given sessions (by id, 50 per request, or by
/// an external call id) and upsert them. Ids the API does not know are
/// listed, and removed from the warehouse with `prune`. True if every id
/// was found (or pruned).
pub async fn fetch(
    config: Config,
    ids: Vec<String>,
    call_id: Option<String>,
    bot: Option<String>,
    prune: bool,
) -> anyhow::Result<bool> {
    if ids.is_empty() && call_id.is_none() {
        bail!("nothing to fetch: give --session ID (repeatable) or --call-id ID");
    }
    let scope = match (&bot, config.scopes.as_slice()) {
        (Some(b), scopes) => scopes
            .iter()
            .find(|s| &s.bot_id == b)
            .with_context(|| format!("--bot {b:?} is not in the configuration"))?,
        (None, [only]) => only,
        (None, _) => bail!("several bots are configured: say which with --bot ID"),
    };
    let bot_id = scope.bot_id.clone();
    let ctx = open(&Arc::new(config)).await?;
    let api = ctx
        .apis
        .iter()
        .find(|a| a.bot_id() == bot_id)
        .expect("one API per scope")
        .clone();
    // The stream key only labels rejected records; containment comes from each record.
    let key = crate::model::StreamKey {
        bot_id: bot_id.clone(),
        containment_type: crate::model::ContainmentType::SelfService,
        filter: String::new(),
    };
    let mut lookups = crate::sync::run::id_lookups(&ids);
    if let Some(c) = &call_id {
        lookups.push(crate::api::wire::SessionsRequest {
            call_id: Some(c.clone()),
            ..Default::default()
        });
    }
    let mut found = crate::sync::run::Refreshed::default();
    crate::sync::run::refresh_by_id(
        &ctx.store,
        &api,
        &key,
        None,
        lookups,
        prune,
        None,
        &CancellationToken::new(),
        &mut found,
    )
    .await?;
    if let Some(c) = &call_id {
        println!("call id {c}: fetched with the other sessions below");
    }
    println!(
        "fetched and stored {} session(s) of {bot_id}",
        found.n_found
    );
    for id in &found.unknown {
        println!(
            "unknown to the API: {id}{}",
            if prune {
                " (removed from the warehouse)"
            } else {
                " (use --prune to remove it from the warehouse)"
            }
        );
    }
    publish::after_pass(&ctx, &PassReport::default()).await;
    Ok(found.unknown.is_empty() || prune)
}
