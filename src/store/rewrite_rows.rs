//! What one chunk of `rewrite-privacy` writes (see `rewrite`): its sessions,
//! messages or analytics events read again under the new rules, and, in the last
//! transaction, the rejected records. Rows are deleted and appended, never
//! updated in place: DuckDB keeps updated values in memory until a
//! checkpoint, and a rewrite touches every row.

use super::arrow::{append_batch, session_batch, tag_batch};
use super::error::{QueryContext, StoreError};
use super::message_write;
use super::rewrite::RecordRewrite;
use super::sql::lit;
use crate::model::{AnalyticsEvent, AnalyticsType, LlmUsage, Message, Session};
use duckdb::{Transaction, params};

/// The SQL condition on `key` of a chunk's range `(after, through]`.
fn range(key: &str, (after, through): (&str, &str)) -> String {
    format!("{key} > {} AND {key} <= {}", lit(after), lit(through))
}

/// Writes a chunk's sessions again: rows are deleted and appended, not
/// updated — DuckDB keeps updated values in memory until a checkpoint, and
/// a rewrite touches every row. Only what the rules change is new: the user
/// id, the record and its tags; sync times and deletion marks stay.
pub(super) fn rewrite_sessions(
    tx: &Transaction<'_>,
    rows: &[(String, String)],
    rw: &dyn RecordRewrite,
    bounds: (&str, &str),
) -> Result<(), StoreError> {
    let sessions: Vec<Session> = read_again(rows, |raw| rw.session(raw))?;
    let refs: Vec<&Session> = sessions.iter().collect();
    tx.execute_batch("DELETE FROM stage_sessions; DELETE FROM stage_tags;")
        .doing("clearing staging tables")?;
    append_batch(
        tx,
        "stage_sessions",
        session_batch(&refs)?,
        "staging rewritten sessions",
    )?;
    append_batch(
        tx,
        "stage_tags",
        tag_batch(&refs)?,
        "staging rewritten tags",
    )?;
    let in_range = range("session_id", bounds);
    tx.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE rewrite_rows AS
             SELECT t.* REPLACE (s.user_id AS user_id, CAST(s.raw AS JSON) AS raw)
             FROM sessions t JOIN stage_sessions s USING (session_id) WHERE t.{in_range};
         DELETE FROM sessions WHERE {in_range};
         INSERT INTO sessions SELECT * FROM rewrite_rows;
         DELETE FROM session_tags WHERE {in_range};
         INSERT INTO session_tags
             SELECT session_id, kind, ordinal, name, value, CAST(value_json AS JSON) FROM stage_tags;
         DROP TABLE rewrite_rows;"
    ))
    .doing("rewriting sessions")
}

/// Writes a chunk's messages again, as [`rewrite_sessions`] does: the
/// text, the components, the record and its tags are new.
pub(super) fn rewrite_messages(
    tx: &Transaction<'_>,
    rows: &[(String, String)],
    rw: &dyn RecordRewrite,
    bounds: (&str, &str),
) -> Result<(), StoreError> {
    let rewritten: Vec<Message> = read_again(rows, |raw| rw.message(raw))?;
    let refs: Vec<&Message> = rewritten.iter().collect();
    message_write::stage(tx, &refs)?;
    let in_range = range("message_id", bounds);
    tx.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE rewrite_rows AS
             SELECT t.* REPLACE (s.text AS text, CAST(s.components AS JSON) AS components,
                                 CAST(s.raw AS JSON) AS raw)
             FROM messages t JOIN stage_messages s USING (message_id) WHERE t.{in_range};
         DELETE FROM messages WHERE {in_range};
         INSERT INTO messages SELECT * FROM rewrite_rows;
         DELETE FROM message_tags WHERE {in_range};
         INSERT INTO message_tags
             SELECT message_id, kind, ordinal, name, value, CAST(value_json AS JSON)
             FROM stage_message_tags;
         DROP TABLE rewrite_rows;"
    ))
    .doing("rewriting messages")
}

/// The key analytics events are rewritten by: type and id, joined by a
/// unit separator (neither holds one).
pub(super) const ANALYTICS_KEY: &str = "(type || chr(31) || event_id)";

/// Writes a chunk's analytics events again, as [`rewrite_sessions`] does:
/// the user ids, the utterance, the record and its tags are new.
pub(super) fn rewrite_analytics(
    tx: &Transaction<'_>,
    rows: &[(String, String)],
    rw: &dyn RecordRewrite,
    bounds: (&str, &str),
) -> Result<(), StoreError> {
    let rewritten: Vec<AnalyticsEvent> = rows
        .iter()
        .map(|(key, raw)| {
            let kind = key
                .split_once('\u{1f}')
                .and_then(|(t, _)| AnalyticsType::parse(t));
            let Some(kind) = kind else {
                return Err(format!("{key:?} is not a stored analytics type"));
            };
            rw.analytics(kind, raw)
        })
        .zip(rows)
        .map(|(r, (key, _))| {
            r.map_err(|detail| StoreError::Rewrite {
                id: key.replace('\u{1f}', "/"),
                detail,
            })
        })
        .collect::<Result<_, _>>()?;
    let refs: Vec<&AnalyticsEvent> = rewritten.iter().collect();
    super::analytics::stage(tx, &refs)?;
    let in_range = range(ANALYTICS_KEY, bounds);
    tx.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE rewrite_rows AS
             SELECT t.* REPLACE (s.user_id AS user_id, s.channel_uid AS channel_uid,
                                 s.utterance AS utterance, CAST(s.raw AS JSON) AS raw)
             FROM analytics_events t JOIN stage_analytics s USING (type, event_id)
             WHERE {in_range};
         DELETE FROM analytics_events WHERE {in_range};
         INSERT INTO analytics_events SELECT * FROM rewrite_rows;
         DELETE FROM analytics_event_tags WHERE {in_range};
         INSERT INTO analytics_event_tags
             SELECT type, event_id, kind, ordinal, name, value, CAST(value_json AS JSON)
             FROM stage_analytics_tags;
         DROP TABLE rewrite_rows;"
    ))
    .doing("rewriting analytics events")
}

/// Writes a chunk's LLM usage records again, as [`rewrite_sessions`] does:
/// the user id and the record are new; the id stays (it never depended on
/// the privacy settings).
pub(super) fn rewrite_llm_usage(
    tx: &Transaction<'_>,
    rows: &[(String, String)],
    rw: &dyn RecordRewrite,
    bounds: (&str, &str),
) -> Result<(), StoreError> {
    let mut rewritten: Vec<LlmUsage> = read_again(rows, |raw| rw.llm_usage(raw))?;
    for (u, (id, _)) in rewritten.iter_mut().zip(rows) {
        u.usage_id.clone_from(id);
    }
    let refs: Vec<&LlmUsage> = rewritten.iter().collect();
    super::llm::stage(tx, &refs)?;
    let in_range = range("usage_id", bounds);
    tx.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE rewrite_rows AS
             SELECT t.* REPLACE (s.user_id AS user_id, CAST(s.raw AS JSON) AS raw)
             FROM llm_usage t JOIN stage_llm_usage s USING (usage_id) WHERE t.{in_range};
         DELETE FROM llm_usage WHERE {in_range};
         INSERT INTO llm_usage SELECT * FROM rewrite_rows;
         DROP TABLE rewrite_rows;"
    ))
    .doing("rewriting LLM usage records")
}

pub(super) fn rewrite_rejected(
    tx: &Transaction<'_>,
    rw: &dyn RecordRewrite,
) -> Result<usize, StoreError> {
    let raws: Vec<(String, String)> = {
        let mut stmt = tx
            .prepare("SELECT DISTINCT containment_type, raw FROM rejected_records")
            .doing("reading rejected records")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .doing("reading rejected records")?
            .collect::<Result<_, _>>()
            .doing("reading rejected records")?
    };
    let mut stmt = tx
        .prepare("UPDATE rejected_records SET raw = ? WHERE containment_type = ? AND raw = ?")
        .doing("rewriting rejected records")?;
    for (partition, raw) in &raws {
        stmt.execute(params![rw.rejected(partition, raw), partition, raw])
            .doing("rewriting rejected records")?;
    }
    Ok(raws.len())
}

/// Each `(id, raw)` of a chunk read again by `parse`; the first record
/// that fails stops the chunk, naming its id.
fn read_again<T>(
    rows: &[(String, String)],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|(id, raw)| {
            parse(raw).map_err(|detail| StoreError::Rewrite {
                id: id.to_owned(),
                detail,
            })
        })
        .collect()
}
