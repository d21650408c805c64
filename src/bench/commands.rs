//! `kore-sync bench --commands N`: every command at size (issue 22). Builds
//! a warehouse of N sessions and N messages of one bot once (the simulator's
//! on-demand sessions, one message each), then runs each command on it as
//! its own process, as a user would, with the default memory limit: its
//! wall time, its peak RSS (from `wait4`), and whether it succeeded. After
//! `rewrite-privacy` it searches every file of the warehouse's directory
//! (the warehouse, the read copy, the Parquet export) for the original user
//! ids and message texts, byte by byte, beside a control search before it. A migration is timed on a copy rewound to the
//! schema version before the latest. The figures go to BENCHMARKS.md.

use super::process::{peak_rss_mib, tempfile_dir};
use crate::config;
use crate::sim::{SimApp, SimBot, SimSettings, Simulator, Synthetic};
use crate::store::{ReadOnly, SessionStore};
use crate::sync::{PassOptions, SyncContext, run_pass};
use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// The simulator's seed.
const SEED: u64 = 22;

/// A pseudonymisation key for the benchmark only.
const KEY: &str = "62656e63682d6b65792d666f722d6b6f72652d73796e632d6f6e6c792d2d2d21";

/// The benchmark's files: the warehouse lives alone in `warehouse_dir`
/// (with its read copy and spill directory), so the byte scan covers
/// exactly what kore-sync keeps there.
struct Files {
    root: PathBuf,
    warehouse_dir: PathBuf,
    warehouse: PathBuf,
    /// Messages on, no privacy; the read copy a full copy.
    plain: PathBuf,
    /// As `plain`, with a Parquet export beside the warehouse and the read
    /// copy (same file) a catalog of views over it.
    lake: PathBuf,
    /// As `lake`, with pseudonymised user ids and no message text.
    private: PathBuf,
}

/// Runs the benchmark and prints its figures.
pub async fn bench_commands(n: u64, days: i64) -> anyhow::Result<()> {
    let now = Utc::now();
    let now = now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
    let from = now - Duration::days(days);
    let bot = SimBot {
        id: "st-bench-commands".into(),
        app: SimApp {
            client_id: "cs-bench".into(),
            client_secret: "bench-secret".into(),
        },
    };
    let settings = SimSettings {
        bots: vec![bot.clone()],
        synthetic: Some(Synthetic {
            per_bot: n,
            from,
            to: now - Duration::hours(1),
            with_messages: true,
        }),
        max_page_size: 10_000,
        seed: SEED,
        ..SimSettings::default()
    };
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), settings, Vec::new()).await?;
    let files = write_files(&sim, &bot, from)?;
    println!(
        "every command on a warehouse of {n} sessions and {n} messages (one bot, {days} days)"
    );
    build(&files.plain).await?;
    let needles = needles(&files.warehouse)?;
    let two_weeks = (now - Duration::days(14)).format("%Y-%m-%d").to_string();
    let export = files.root.join("export");
    let export = export.to_string_lossy();
    let query = "SELECT containment_type, count(*) AS sessions, sum(n) AS messages FROM \
                 (SELECT s.session_id, any_value(s.containment_type) AS containment_type, count(m.message_id) AS n \
                  FROM sessions s LEFT JOIN messages m USING (session_id) GROUP BY 1) GROUP BY 1";
    let (plain, lake) = (files.plain.as_path(), files.lake.as_path());
    let steps: &[(&str, &Path, &[&str])] = &[
        ("status", plain, &["status"]),
        ("sync: a pass, first read copy", plain, &["sync"]),
        (
            "query (sessions joined to messages)",
            plain,
            &["query", query],
        ),
        ("sync: a pass, nothing new", plain, &["sync"]),
        ("verify (whole history)", plain, &["verify"]),
        (
            "backfill (two weeks)",
            plain,
            &["backfill", "--from", &two_weeks],
        ),
        ("export (Parquet)", plain, &["export", "--parquet", &export]),
        ("sync: first Parquet export, catalog", lake, &["sync"]),
        ("sync: nothing new, Parquet, catalog", lake, &["sync"]),
    ];
    print_header();
    for (label, config, args) in steps {
        measure(label, config, args).await?.print(label);
    }
    let before = scan(&files.warehouse_dir, &needles);
    let label = "rewrite-privacy (pseudonyms, no text)";
    measure(label, &files.private, &["rewrite-privacy"])
        .await?
        .print(label);
    let after = scan(&files.warehouse_dir, &needles);
    let label = "sync after rewrite-privacy";
    measure(label, &files.private, &["sync"])
        .await?
        .print(label);
    migration(&files).await?;
    print_scan(&needles, &before, &after);
    sim.stop();
    let _ = std::fs::remove_dir_all(&files.root);
    Ok(())
}

/// Writes the key and the three configurations; returns where everything
/// is.
fn write_files(sim: &Simulator, bot: &SimBot, from: DateTime<Utc>) -> anyhow::Result<Files> {
    let root = tempfile_dir()?;
    let warehouse_dir = root.join("warehouse");
    std::fs::create_dir_all(&warehouse_dir)?;
    let warehouse = warehouse_dir.join("kore.duckdb");
    let key = root.join("privacy_key");
    std::fs::write(&key, KEY)?;
    crate::store::set_mode(&key, 0o600)?;
    let toml = |lake: bool, extra: &str| {
        let lake = if lake {
            "parquet_dir = \"parquet\"\npublish_as = \"views\"\n"
        } else {
            ""
        };
        format!(
            "[api]\nbase_url = {:?}\nmax_page_size = 10000\nrequests_per_minute = 0\nrequests_per_hour = 0\n\
             [warehouse]\npath = {:?}\n{lake}[sync]\nstart = {:?}\nlag = \"0s\"\n{extra}\
             [[bots]]\nid = {:?}\nclient_id = {:?}\nclient_secret = {:?}\n",
            sim.base_url(),
            warehouse.display().to_string(),
            from.to_rfc3339(),
            bot.id,
            bot.app.client_id,
            bot.app.client_secret
        )
    };
    let plain = root.join("plain.toml");
    std::fs::write(&plain, toml(false, "[messages]\nenabled = true\n"))?;
    let lake = root.join("lake.toml");
    std::fs::write(&lake, toml(true, "[messages]\nenabled = true\n"))?;
    let private = root.join("private.toml");
    std::fs::write(
        &private,
        toml(
            true,
            &format!(
                "[messages]\nenabled = true\nstore_text = false\n\
             [privacy]\npseudonymize = [\"user_id\"]\nkey_file = {:?}\n",
                key.display().to_string()
            ),
        ),
    )?;
    Ok(Files {
        root,
        warehouse_dir,
        warehouse,
        plain,
        lake,
        private,
    })
}

/// The first backfill, in process (the simulator shares the process, so
/// its peak RSS counts both).
async fn build(config: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)?;
    let config = config::from_toml(&text)?;
    let ctx = SyncContext::new(config.sync_setup(), SessionStore::open(&config.warehouse)?)?;
    let started = Instant::now();
    let report = run_pass(&ctx, &PassOptions::manual(), &CancellationToken::new()).await?;
    anyhow::ensure!(report.all_succeeded(), "the build failed: {report:#?}");
    let status = ctx.store.status().await?;
    println!(
        "  built in {:.1} s: {} sessions, {} messages (in process, simulator included: peak RSS {:.0} MiB)",
        started.elapsed().as_secs_f64(),
        status.n_sessions,
        status.n_messages,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// What one command cost.
struct Measured {
    wall: f64,
    peak_rss_mib: f64,
    /// None: it succeeded; else its exit code and the end of its stderr.
    failure: Option<String>,
}

impl Measured {
    fn print(&self, label: &str) {
        let outcome = self.failure.as_deref().unwrap_or("ok");
        println!(
            "  {label:<40} {:>8.1} s {:>8.0} MiB  {outcome}",
            self.wall, self.peak_rss_mib
        );
    }
}

fn print_header() {
    println!(
        "  {:<40} {:>10} {:>12}  outcome",
        "command", "wall", "peak RSS"
    );
}

/// Runs `kore-sync --config CONFIG ARGS…` to its end; its stdout is
/// dropped, its stderr kept for a failure.
async fn measure(label: &str, config: &Path, args: &[&str]) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe().context("finding kore-sync's own binary")?;
    let log = config.with_file_name(format!("{}.log", label.replace([' ', ':', '(', ')'], "_")));
    let child = std::process::Command::new(exe)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let started = Instant::now();
    let (code, peak_kib) = tokio::task::spawn_blocking(move || wait_with_usage(&child)).await??;
    let failure = (code != 0).then(|| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        format!("exit {code}: {}", tail.join(" | "))
    });
    Ok(Measured {
        wall: started.elapsed().as_secs_f64(),
        peak_rss_mib: peak_kib as f64 / 1024.0,
        failure,
    })
}

/// Waits for `child` and returns its exit code and peak RSS in KiB. The
/// peak is the child's `VmHWM`, read every 5 ms until it exits: `wait4`'s
/// `ru_maxrss` would report this process's peak instead, which a child
/// started by vfork inherits across `exec`.
fn wait_with_usage(child: &std::process::Child) -> anyhow::Result<(i32, u64)> {
    let pid = i32::try_from(child.id())?;
    let status_file = format!("/proc/{pid}/status");
    let mut peak_kib = 0;
    loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| hwm_kib(&s))
        {
            peak_kib = peak_kib.max(kib);
        }
        let mut status = 0;
        // SAFETY: waitpid writes only into `status`, which outlives the call.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        anyhow::ensure!(
            rc >= 0,
            "waitpid failed: {}",
            std::io::Error::last_os_error()
        );
        if rc == pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            };
            return Ok((code, peak_kib));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `VmHWM` of a `/proc/PID/status` text, in KiB.
fn hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The values that must be gone after `rewrite-privacy`: every user id and
/// every message text stored.
fn needles(warehouse: &Path) -> anyhow::Result<Vec<String>> {
    let conn = ReadOnly::open(warehouse)?;
    let mut out = Vec::new();
    conn.print(
        "SELECT DISTINCT user_id FROM sessions WHERE length(user_id) > 2
         UNION ALL SELECT DISTINCT text FROM messages WHERE length(text) > 8",
        &mut out,
    )?;
    let text = String::from_utf8(out)?;
    // One value per line after the header; texts of several lines are
    // searched for line by line.
    let mut needles: Vec<String> = text
        .lines()
        .skip(1)
        .filter(|l| l.len() > 8)
        .map(str::to_owned)
        .collect();
    needles.sort();
    needles.dedup();
    Ok(needles)
}

/// Which of `needles` the files under `dir` hold, by entry of `dir` (a
/// file, or a directory such as the Parquet export with every file under
/// it): (entry, files read, needles found in any of them).
fn scan(dir: &Path, needles: &[String]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for entry in entries {
        let (mut found, mut n_files) = (std::collections::BTreeSet::new(), 0);
        let mut stack = vec![entry.clone()];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(
                    std::fs::read_dir(&path)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.path()),
                );
            } else if let Ok(bytes) = std::fs::read(&path) {
                n_files += 1;
                found.extend(super::scan::found(&bytes, needles));
            }
        }
        let name = entry
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let name = if entry.is_dir() {
            format!("{name}/")
        } else {
            name
        };
        out.push((name, n_files, found.len()));
    }
    out
}

fn print_scan(
    needles: &[String],
    before: &[(String, usize, usize)],
    after: &[(String, usize, usize)],
) {
    println!(
        "  byte scan of the warehouse's directory for {} user ids and message texts:",
        needles.len()
    );
    for (when, entries) in [
        ("before rewrite-privacy", before),
        ("after rewrite-privacy", after),
    ] {
        for (name, n_files, n_found) in entries {
            println!("    {when:<22} {name:<22} {n_files:>5} files {n_found:>8} found");
        }
    }
}

/// Times opening a copy of the warehouse rewound to the schema version
/// before the latest: the migration runs on the whole warehouse.
async fn migration(files: &Files) -> anyhow::Result<()> {
    let copy = files.root.join("previous-version.duckdb");
    std::fs::copy(&files.warehouse, &copy)?;
    let wal = |p: &Path| PathBuf::from(format!("{}.wal", p.display()));
    if wal(&files.warehouse).exists() {
        std::fs::copy(wal(&files.warehouse), wal(&copy))?;
    }
    let version = crate::store::migrations::rewind_latest(&copy)?;
    let label = format!("migration to schema {version} (status)");
    let copy = copy.to_string_lossy();
    measure(&label, &files.private, &["status", "--db", &copy])
        .await?
        .print(&label);
    Ok(())
}
