//! GenAI and LLM usage logs (`getLLMUsageLogs`): a window's (or a chunk's)
//! records in the caller's transaction with the stream's watermark, as the
//! other resources are. Records are staged, compared with the stored rows
//! by `raw`, and only new or changed ones written (a row keeps its
//! `first_synced_at`); a re-read writes nothing.

use super::chunk::{AsWindow, StoreBatches};
use super::commit::Advance;
use super::error::{QueryContext, StoreError};
use super::noted_days::DayNoting;
use super::sql::{lit, stage_rows, ts};
use super::staged::Staged;
use super::window_group::WindowRecords;
use super::{SessionStore, WindowCommit};
use crate::model::{LlmUsage, LlmUsageBatch, StreamKey, Window};
use chrono::{DateTime, Utc};
use duckdb::{Connection, Transaction, params};

impl SessionStore {
    /// Stores LLM usage records of a window still being read (`advance`
    /// None), or the rest of a window completely read with its watermark
    /// move (with the other windows waiting, `window_group`).
    pub async fn commit_llm_usage(
        &self,
        key: &StreamKey,
        batch: LlmUsageBatch,
        advance: Option<Advance>,
    ) -> Result<WindowCommit, StoreError> {
        let how: (StoreBatches<_>, AsWindow<_>) = (store_batches, WindowRecords::LlmUsage);
        self.commit_staged((key, batch, advance), how).await
    }

    /// The records stream `key` (a bot's LLM usage) holds that started
    /// within `window`, by id, each with the SHA-256 (hex) of its stored
    /// `raw` when `fingerprints` (what `verify` compares a listing with).
    pub async fn llm_usage_in_window(
        &self,
        key: &StreamKey,
        window: Window,
        fingerprints: bool,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let key = key.clone();
        self.with(move |c| in_window(&c.conn, &key, window, fingerprints))
            .await
    }

    /// Removes the records of stream `key` with these ids (confirmed erased
    /// upstream); returns how many. The days they started on are noted, so
    /// the lake's partitions of those days are written again.
    pub async fn remove_llm_usage(
        &self,
        key: &StreamKey,
        ids: Vec<String>,
    ) -> Result<u64, StoreError> {
        let key = key.clone();
        self.with(move |c| remove(&mut c.conn, &key, &ids)).await
    }
}

/// See [`SessionStore::llm_usage_in_window`].
fn in_window(
    conn: &Connection,
    key: &StreamKey,
    window: Window,
    fingerprints: bool,
) -> Result<Vec<(String, Option<String>)>, StoreError> {
    const DOING: &str = "reading the stored LLM usage records of a window";
    let fingerprint = if fingerprints {
        "sha256(CAST(raw AS VARCHAR))"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT usage_id, {fingerprint} FROM llm_usage
             WHERE bot_id = ?1 AND started_at >= CAST(CAST(?2 AS VARCHAR) AS TIMESTAMPTZ)
               AND started_at < CAST(CAST(?3 AS VARCHAR) AS TIMESTAMPTZ)"
        ))
        .doing(DOING)?;
    let rows = stmt
        .query_map(params![key.bot_id, ts(window.start), ts(window.end)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .doing(DOING)?
        .collect::<Result<_, _>>()
        .doing(DOING)?;
    Ok(rows)
}

/// See [`SessionStore::remove_llm_usage`].
fn remove(conn: &mut Connection, key: &StreamKey, ids: &[String]) -> Result<u64, StoreError> {
    const DOING: &str = "removing erased LLM usage records";
    if ids.is_empty() {
        return Ok(0);
    }
    let tx = conn.transaction().doing(DOING)?;
    tx.execute_batch("DELETE FROM stage_llm_changed;")
        .doing(DOING)?;
    stage_rows(&tx, "stage_llm_changed", DOING, |rows| {
        for id in ids {
            rows.append_row(params![id, None::<String>])?;
        }
        Ok(())
    })?;
    let gone = format!(
        "FROM llm_usage u WHERE u.bot_id = {} AND u.usage_id IN (SELECT usage_id FROM stage_llm_changed)",
        lit(&key.bot_id)
    );
    // Their days become Parquet partitions to rewrite, as a deleted
    // session's do (`commit::delete_sessions`).
    tx.execute_batch(&format!(
        "INSERT OR IGNORE INTO parquet_dirty_days
             SELECT DISTINCT CAST(make_timestamp(epoch_us(started_at)) AS DATE) {gone};"
    ))
    .doing(DOING)?;
    let n_gone = tx.execute(&format!("DELETE {gone}"), []).doing(DOING)?;
    tx.commit().doing(DOING)?;
    Ok(n_gone as u64)
}

/// How LLM usage records are staged and written (see `staged`).
const STAGED: Staged<LlmUsage> = Staged {
    identity: |u| ("", &u.usage_id),
    day: |u| u.started_at.date_naive(),
    stage,
    replace_changed,
    changed_sql: "SELECT '', usage_id FROM stage_llm_changed",
};

/// Stores the batches' records (only new or changed ones are written) and
/// their rejected records, every stream's together. Returns, per batch,
/// (distinct records, records written).
pub(super) fn store_batches(
    tx: &Transaction<'_>,
    batches: &[(&StreamKey, &LlmUsageBatch)],
    (now, days): (DateTime<Utc>, &mut DayNoting<'_>),
) -> Result<Vec<(usize, usize)>, StoreError> {
    super::staged::store_batches(tx, batches, (now, days), &STAGED)
}

/// Stages `records` (`stage_llm_usage`), emptying it first.
pub(super) fn stage(tx: &Transaction<'_>, records: &[&LlmUsage]) -> Result<(), StoreError> {
    const DOING: &str = "staging LLM usage records";
    tx.execute_batch("DELETE FROM stage_llm_usage; DELETE FROM stage_llm_changed;")
        .doing(DOING)?;
    stage_rows(tx, "stage_llm_usage", DOING, |rows| {
        for u in records {
            rows.append_row(params![
                u.usage_id,
                u.bot_id,
                u.user_id,
                ts(u.started_at),
                u.ended_at.map(ts),
                u.time_taken_ms,
                u.status_code,
                u.status,
                u.feature,
                u.model,
                u.integration,
                u.prompt_name,
                u.channel,
                u.task_id,
                u.description,
                u.request_tokens,
                u.response_tokens,
                u.raw,
            ])?;
        }
        Ok(())
    })
}

/// Replaces the stored records that are new or differ from their staged
/// version (by `raw`); returns how many.
fn replace_changed(tx: &Transaction<'_>, now: DateTime<Utc>) -> Result<usize, StoreError> {
    const DOING: &str = "writing LLM usage records";
    let now = lit(&ts(now));
    let n_changed = tx
        .execute(
            "INSERT INTO stage_llm_changed
             SELECT s.usage_id, u.first_synced_at
             FROM stage_llm_usage s LEFT JOIN llm_usage u USING (usage_id)
             WHERE u.usage_id IS NULL OR CAST(u.raw AS VARCHAR) <> s.raw",
            [],
        )
        .doing(DOING)?;
    if n_changed == 0 {
        return Ok(0);
    }
    tx.execute_batch(&format!(
        "DELETE FROM llm_usage u USING stage_llm_changed c WHERE u.usage_id = c.usage_id;
         INSERT INTO llm_usage
             SELECT s.usage_id, s.bot_id, s.user_id, CAST(s.started_at AS TIMESTAMPTZ),
                    CAST(s.ended_at AS TIMESTAMPTZ), s.time_taken_ms, s.status_code, s.status,
                    s.feature, s.model, s.integration, s.prompt_name, s.channel, s.task_id,
                    s.description, s.request_tokens, s.response_tokens, CAST(s.raw AS JSON),
                    coalesce(c.first_synced_at, CAST({now} AS TIMESTAMPTZ)),
                    CAST({now} AS TIMESTAMPTZ)
             FROM stage_llm_usage s JOIN stage_llm_changed c USING (usage_id);"
    ))
    .doing(DOING)?;
    Ok(n_changed)
}
