//! `kore-sync bench --publish`: what publishing costs at the benchmark's
//! size — the Parquet export with each form of read copy (a full copy, or a
//! catalog of views over the export), first in full, then after a pass that
//! changed nothing, then after one that changed one day (a new session in
//! the last day).

use crate::sim::Simulator;
use crate::store::{ParquetTarget, ReadCopyForm, WarehouseSettings};
use crate::sync::publish::publish;
use crate::sync::{FetchByIdRequest, SyncContext, fetch_by_id};
use chrono::{DateTime, Duration, Utc};
use std::path::Path;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Publishes three times and prints what each cost.
pub(super) async fn measure(
    (ctx, sim): (&SyncContext, &Simulator),
    dir: &Path,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let parquet_dir = dir.join("parquet");
    let copy = WarehouseSettings {
        publish: Some(dir.join("bench-read.duckdb")),
        parquet: Some(ParquetTarget::Dir(parquet_dir.clone())),
        read_copy_form: ReadCopyForm::Copy,
        ..(*ctx.warehouse).clone()
    };
    println!("publishing, publish_as = \"copy\" (Parquet export + full read copy)");
    one(ctx, &copy, "first, everything").await?;
    one(ctx, &copy, "after an idle pass").await?;
    add_one_session((ctx, sim), now, "bench-one-day-change-1").await?;
    one(ctx, &copy, "after a pass changing one day").await?;
    let views = WarehouseSettings {
        publish: Some(dir.join("bench-catalog.duckdb")),
        read_copy_form: ReadCopyForm::Views { parquet_dir },
        ..copy
    };
    println!("publishing, publish_as = \"views\" (Parquet export + catalog over it)");
    one(ctx, &views, "first (export already done)").await?;
    one(ctx, &views, "after an idle pass").await?;
    add_one_session((ctx, sim), now, "bench-one-day-change-2").await?;
    one(ctx, &views, "after a pass changing one day").await?;
    Ok(())
}

/// One publication: its time and the bytes it wrote.
async fn one(ctx: &SyncContext, settings: &WarehouseSettings, what: &str) -> anyhow::Result<()> {
    let before = written_bytes();
    let started = Instant::now();
    let done = publish(&ctx.store, settings, "bench").await;
    let took = started.elapsed().as_secs_f64();
    let bytes = written_bytes()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(b));
    println!(
        "  {what:<32} {took:>7.2} s  written {:>9}  read copy {:?}  Parquet days {:?}",
        bytes.map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1_048_576.0)),
        done.read_copy,
        done.parquet_days,
    );
    Ok(())
}

/// Bytes this process has written to storage so far (Linux), for what a
/// publication cost.
fn written_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A new session that started an hour ago lands upstream and is read by
/// id, through the same parsing and privacy rules as a pass.
async fn add_one_session(
    (ctx, sim): (&SyncContext, &Simulator),
    now: DateTime<Utc>,
    id: &str,
) -> anyhow::Result<()> {
    let bot = ctx.scopes[0].scope.bot_id.clone();
    sim.add_session(&bot, id, now - Duration::hours(1));
    let request = FetchByIdRequest {
        bot_id: bot,
        session_ids: vec![id.to_owned()],
        call_id: None,
        prune: false,
    };
    let found = fetch_by_id(ctx, &request, &CancellationToken::new()).await?;
    anyhow::ensure!(found.n_written == 1, "the new session was not stored");
    Ok(())
}
