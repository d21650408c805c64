//! `kore-sync bench --publish`: what publishing costs at the benchmark's
//! size — the Parquet export with each form of read copy (a full copy, or a
//! catalog of views over the export), first in full, then after a pass that
//! changed nothing, then after one that changed one day (a new session in
//! the last day).

use crate::api::wire::parse_session;
use crate::model::{ContainmentType, SessionBatch, StreamKey};
use crate::store::{Gone, ParquetTarget, ReadCopyForm, WarehouseSettings};
use crate::sync::SyncContext;
use crate::sync::publish::publish;
use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use std::path::Path;
use std::time::Instant;

/// Publishes three times and prints what each cost.
pub async fn measure(ctx: &SyncContext, dir: &Path, now: DateTime<Utc>) -> anyhow::Result<()> {
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
    add_one_session(ctx, now, "bench-one-day-change-1").await?;
    one(ctx, &copy, "after a pass changing one day").await?;
    let views = WarehouseSettings {
        publish: Some(dir.join("bench-catalog.duckdb")),
        read_copy_form: ReadCopyForm::Views { parquet_dir },
        ..copy
    };
    println!("publishing, publish_as = \"views\" (Parquet export + catalog over it)");
    one(ctx, &views, "first (export already done)").await?;
    one(ctx, &views, "after an idle pass").await?;
    add_one_session(ctx, now, "bench-one-day-change-2").await?;
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

/// Stores one new session that started an hour ago, as a pass would.
async fn add_one_session(ctx: &SyncContext, now: DateTime<Utc>, id: &str) -> anyhow::Result<()> {
    let bot = ctx.scopes[0].scope.bot_id.clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let users = vec!["bench-user@example.com".to_owned()];
    let mut record = crate::sim::data::make_session(
        &mut rng,
        &bot.clone(),
        now - Duration::hours(1),
        now,
        &users,
    );
    record["sessionId"] = serde_json::json!(id);
    let raw = serde_json::value::to_raw_value(&record)?;
    let session = parse_session(&raw, None)?;
    let key = StreamKey::sessions(&bot, ContainmentType::SelfService, "");
    let batch = SessionBatch {
        records: vec![session],
        rejected: Vec::new(),
    };
    ctx.store.commit_refresh(&key, batch, Gone::none()).await?;
    Ok(())
}
