//! NLU analytics events (`getAnalytics`): a window's (or a chunk's) events
//! with their tags, in the caller's transaction with the stream's
//! watermark, as sessions and messages are. Events are staged, compared
//! with the stored rows by `raw`, and only new or changed ones written
//! (an event keeps its `first_synced_at`); a re-read writes nothing.

use super::chunk::{AsWindow, StoreBatches};
use super::commit::Advance;
use super::error::{QueryContext, StoreError};
use super::noted_days::{DayNoting, NotedDays};
use super::session_store::Writer;
use super::sql::{lit, stage_rows, ts};
use super::staged::Staged;
use super::upsert::note_days;
use super::window_group::WindowRecords;
use super::{SessionStore, WindowCommit};
use crate::model::{AnalyticsBatch, AnalyticsEvent, StreamKey, Window};
use chrono::{DateTime, Utc};
use duckdb::{Connection, Transaction, params};

impl SessionStore {
    /// Stores analytics events of a window still being read (`advance`
    /// None), or the rest of a window completely read with its watermark
    /// move (with the other windows waiting, `window_group`).
    pub async fn commit_analytics(
        &self,
        key: &StreamKey,
        batch: AnalyticsBatch,
        advance: Option<Advance>,
    ) -> Result<WindowCommit, StoreError> {
        let how: (StoreBatches<_>, AsWindow<_>) = (store_batches, WindowRecords::Analytics);
        self.commit_staged((key, batch, advance), how).await
    }

    /// Removes the events stream `key` holds strictly inside `window` that
    /// are not in `listed` (the ids a complete paging of the window found:
    /// erased upstream), with their tags; returns how many.
    pub async fn remove_unlisted_analytics(
        &self,
        key: &StreamKey,
        window: Window,
        listed: Vec<String>,
    ) -> Result<u64, StoreError> {
        let (key, noted) = (key.clone(), self.noted_days.clone());
        self.with(move |c| {
            c.analytics_counts.forget();
            remove_unlisted((&mut c.conn, &noted), &key, window, &listed)
        })
        .await
    }

    /// The analytics events stream `key` (a bot and a type) holds in
    /// `window`, counted with the window's end excluded and included.
    /// `of_bot`: count every type of the bot at once and keep the counts
    /// for its other streams (worth it when they follow with the same
    /// window and no events written in between: an idle pass, `verify`);
    /// otherwise the stream's alone, unless kept counts answer.
    pub async fn count_stored_analytics(
        &self,
        key: &StreamKey,
        window: Window,
        of_bot: bool,
    ) -> Result<(u64, u64), StoreError> {
        let key = key.clone();
        self.with(move |c| {
            let Writer {
                conn,
                analytics_counts,
                ..
            } = c;
            if of_bot {
                return analytics_counts.count(conn, &key, window);
            }
            match analytics_counts.kept(&key, window) {
                Some(kept) => Ok(kept),
                None => super::runs::count_in_window(
                    conn,
                    ("analytics_events", "event_time", "type"),
                    &key,
                    window,
                ),
            }
        })
        .await
    }
}

/// How analytics events are staged and written (see `staged`).
const STAGED: Staged<AnalyticsEvent> = Staged {
    identity: |e| (e.kind.as_str(), &e.event_id),
    day: |e| e.event_time.date_naive(),
    stage,
    replace_changed,
    changed_sql: "SELECT type, event_id FROM stage_analytics_changed",
};

/// Stores the batches' events (only new or changed ones are written) and
/// their rejected records, every stream's together. Returns, per batch,
/// (distinct events, events written).
pub(super) fn store_batches(
    tx: &Transaction<'_>,
    batches: &[(&StreamKey, &AnalyticsBatch)],
    (now, days): (DateTime<Utc>, &mut DayNoting<'_>),
) -> Result<Vec<(usize, usize)>, StoreError> {
    super::staged::store_batches(tx, batches, (now, days), &STAGED)
}

/// Stages `events` and their tags (`stage_analytics`,
/// `stage_analytics_tags`), emptying both first.
pub(super) fn stage(tx: &Transaction<'_>, events: &[&AnalyticsEvent]) -> Result<(), StoreError> {
    const DOING: &str = "staging analytics events";
    tx.execute_batch(
        "DELETE FROM stage_analytics; DELETE FROM stage_analytics_tags;
         DELETE FROM stage_analytics_changed;",
    )
    .doing(DOING)?;
    stage_rows(tx, "stage_analytics", DOING, |rows| {
        for e in events {
            rows.append_row(params![
                e.kind.as_str(),
                e.event_id,
                e.bot_id,
                e.session_id,
                e.message_id,
                ts(e.event_time),
                e.channel,
                e.language,
                e.user_id,
                e.channel_uid,
                e.utterance,
                e.intent,
                e.task_id,
                e.task_name,
                e.is_ambiguous,
                e.node_name,
                e.node_type,
                e.status,
                e.status_code,
                e.response_time_ms,
                e.raw,
            ])?;
        }
        Ok(())
    })?;
    stage_rows(tx, "stage_analytics_tags", DOING, |rows| {
        for e in events {
            for t in &e.tags {
                rows.append_row(params![
                    e.kind.as_str(),
                    e.event_id,
                    t.kind.as_ref(),
                    t.ordinal,
                    t.name,
                    t.value,
                    t.value_json,
                ])?;
            }
        }
        Ok(())
    })
}

/// Replaces the stored events that are new or differ from their staged
/// version (by `raw`), with their tags; returns how many.
fn replace_changed(tx: &Transaction<'_>, now: DateTime<Utc>) -> Result<usize, StoreError> {
    const DOING: &str = "writing analytics events";
    let now = lit(&ts(now));
    let n_changed = tx
        .execute(
            "INSERT INTO stage_analytics_changed
             SELECT s.type, s.event_id, a.first_synced_at
             FROM stage_analytics s
             LEFT JOIN analytics_events a ON a.type = s.type AND a.event_id = s.event_id
             WHERE a.event_id IS NULL OR CAST(a.raw AS VARCHAR) <> s.raw",
            [],
        )
        .doing(DOING)?;
    if n_changed == 0 {
        return Ok(0);
    }
    tx.execute_batch(&format!(
        "DELETE FROM analytics_events a USING stage_analytics_changed c
             WHERE a.type = c.type AND a.event_id = c.event_id;
         DELETE FROM analytics_event_tags a USING stage_analytics_changed c
             WHERE a.type = c.type AND a.event_id = c.event_id;
         INSERT INTO analytics_events
             SELECT s.type, s.event_id, s.bot_id, s.session_id, s.message_id,
                    CAST(s.event_time AS TIMESTAMPTZ), s.channel, s.language, s.user_id,
                    s.channel_uid, s.utterance, s.intent, s.task_id, s.task_name,
                    s.is_ambiguous, s.node_name, s.node_type, s.status, s.status_code,
                    s.response_time_ms, CAST(s.raw AS JSON),
                    coalesce(c.first_synced_at, CAST({now} AS TIMESTAMPTZ)),
                    CAST({now} AS TIMESTAMPTZ)
             FROM stage_analytics s
             JOIN stage_analytics_changed c ON c.type = s.type AND c.event_id = s.event_id;
         INSERT INTO analytics_event_tags
             SELECT t.type, t.event_id, t.kind, t.ordinal, t.name, t.value,
                    CAST(t.value_json AS JSON)
             FROM stage_analytics_tags t
             JOIN stage_analytics_changed c ON c.type = t.type AND c.event_id = t.event_id;"
    ))
    .doing(DOING)?;
    Ok(n_changed)
}

/// See [`SessionStore::remove_unlisted_analytics`].
fn remove_unlisted(
    (conn, noted): (&mut Connection, &NotedDays),
    key: &StreamKey,
    window: Window,
    listed: &[String],
) -> Result<u64, StoreError> {
    const DOING: &str = "removing erased analytics events";
    let tx = conn.transaction().doing(DOING)?;
    tx.execute_batch("DELETE FROM stage_analytics_changed;")
        .doing(DOING)?;
    stage_rows(&tx, "stage_analytics_changed", DOING, |rows| {
        for id in listed {
            rows.append_row(params![key.partition.name(), id, None::<String>])?;
        }
        Ok(())
    })?;
    // The gone ones, kept in `stage_analytics` (emptied by every write) by
    // type and id, so events and tags go by the same list. Strictly inside
    // the window: whether the API counts an event on either end in it is
    // not documented.
    let inside = format!(
        "bot_id = {} AND type = {} AND event_time > CAST({} AS TIMESTAMPTZ)
         AND event_time < CAST({} AS TIMESTAMPTZ)",
        lit(&key.bot_id),
        lit(key.partition.name()),
        lit(&ts(window.start)),
        lit(&ts(window.end))
    );
    let mut days = noted.noting();
    let gone_days: Vec<String> = {
        let mut stmt = tx
            .prepare(&format!(
                "SELECT DISTINCT CAST(CAST(make_timestamp(epoch_us(event_time)) AS DATE) AS VARCHAR)
                 FROM analytics_events a WHERE {inside}
                   AND NOT EXISTS (SELECT 1 FROM stage_analytics_changed c WHERE c.event_id = a.event_id)"
            ))
            .doing(DOING)?;
        stmt.query_map([], |r| r.get(0))
            .doing(DOING)?
            .collect::<Result<_, _>>()
            .doing(DOING)?
    };
    if gone_days.is_empty() {
        return Ok(0);
    }
    tx.execute_batch(&format!(
        "DELETE FROM stage_analytics;
         INSERT INTO stage_analytics (type, event_id)
             SELECT type, event_id FROM analytics_events a WHERE {inside}
               AND NOT EXISTS (SELECT 1 FROM stage_analytics_changed c WHERE c.event_id = a.event_id);
         DELETE FROM analytics_event_tags t USING stage_analytics g
             WHERE t.type = g.type AND t.event_id = g.event_id;"
    ))
    .doing(DOING)?;
    let n_gone = tx
        .execute(
            "DELETE FROM analytics_events a USING stage_analytics g
             WHERE a.type = g.type AND a.event_id = g.event_id",
            [],
        )
        .doing(DOING)?;
    let dates = gone_days
        .iter()
        .filter_map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .collect();
    note_days(&tx, &days.take_unnoted(dates))?;
    tx.commit().doing(DOING)?;
    noted.committed(days);
    Ok(n_gone as u64)
}
