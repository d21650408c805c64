//! Publishing through `SessionStore`: the read copy (or catalog), the
//! `tags_wide` view, and the Parquet export, each step on the warehouse's
//! one connection like the rest of `session_store.rs`, and the files put
//! in place between them.

use super::error::StoreError;
use super::lake::{ParquetTarget, Sink};
use super::publish::{ReadCopy, ReadCopyForm};
use super::{SessionStore, parquet, publish};
use chrono::Utc;
use std::path::Path;
use std::time::Duration;

impl SessionStore {
    /// Rewrites `tags_wide` for the most common tag names.
    pub async fn refresh_tags_wide(&self) -> Result<(), StoreError> {
        self.with(|c| publish::refresh_tags_wide(c)).await
    }

    /// Publishes the read copy at `dest` if the data changed since the last
    /// one and `interval` has passed since it.
    pub async fn publish_copy(
        &self,
        (dest, form): (&Path, &ReadCopyForm),
        interval: Duration,
    ) -> Result<ReadCopy, StoreError> {
        let (dest, form, version) = (dest.to_owned(), form.clone(), self.storage_version.clone());
        let mode = self.published_mode;
        self.with(move |c| {
            publish::publish_copy(c, (&dest, &form), (&version, interval, mode), Utc::now())
        })
        .await
    }

    /// Exports Parquet to `target`: after a pass (`pass_id` given) the days
    /// changed since the last export, otherwise (`kore-sync export`) every
    /// day. Each day's files are put in place before the day is recorded as
    /// written; the manifest goes last. Returns the number of days written.
    pub async fn export_parquet(
        &self,
        target: &ParquetTarget,
        pass_id: Option<&str>,
    ) -> Result<usize, StoreError> {
        let full = pass_id.is_none();
        let days = self.with(move |c| parquet::days_to_export(c, full)).await?;
        if days.is_empty() && !full {
            // Nothing changed: not even the manifest is rewritten.
            return Ok(0);
        }
        let sink = Sink::open(
            target,
            &parquet::staging_dir(&self.path),
            self.published_mode,
        )?;
        let target_name = target.to_string();
        let pass_id = pass_id.map(str::to_owned);
        for day in &days {
            let stage = parquet::TABLES
                .iter()
                .map(|t| Ok((*t, sink.stage_path(t, day)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let d = day.clone();
            let staged = self
                .with(move |c| parquet::stage_day(c, &d, &stage))
                .await?;
            for part in &staged {
                match &part.file {
                    Some(file) => sink.put(part.table, day, file).await?,
                    None => sink.remove(part.table, day).await?,
                }
            }
            let (d, t, p) = (day.clone(), target_name.clone(), pass_id.clone());
            let noted = self.noted_days.clone();
            self.with(move |c| {
                let writer = parquet::Writer {
                    target: &t,
                    pass_id: p.as_deref(),
                    now: Utc::now(),
                };
                let finished = parquet::finish_day(c, &d, &staged, &writer);
                // It took the day out of `parquet_dirty_days`; forgotten
                // under the same lock, so no commit can note it between.
                noted.forget_all();
                finished
            })
            .await?;
        }
        let manifest = self
            .with(move |c| {
                let writer = parquet::Writer {
                    target: &target_name,
                    pass_id: pass_id.as_deref(),
                    now: Utc::now(),
                };
                if writer.pass_id.is_some() {
                    publish::record_publication(c, ("parquet", None), writer.target, writer.now)?;
                }
                parquet::manifest(c, &writer)
            })
            .await?;
        sink.put_manifest(manifest).await?;
        Ok(days.len())
    }
}
