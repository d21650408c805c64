//! Arrow encoding: sessions, messages and their tags as record batches,
//! columns in the order of the staging tables (and, for
//! [`new_session_rows`] and [`new_message_rows`], of `sessions` and
//! `messages`), so one Appender call moves a whole commit into DuckDB
//! instead of one call per row, and no time is formatted as text to be
//! parsed again.

use super::error::{QueryContext, StoreError};
use crate::model::{Message, Session, Tag};
use chrono::{DateTime, Utc};
use duckdb::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, ListBuilder, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use duckdb::arrow::error::ArrowError;
use duckdb::arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// The columns of `stage_sessions`, in table order.
const SESSION_COLUMNS: [&str; 14] = [
    "session_id",
    "bot_id",
    "channel",
    "user_id",
    "start_time",
    "end_time",
    "session_lang",
    "session_type",
    "containment_type",
    "is_developer",
    "session_status",
    "messages_exchanged",
    "tasks_executed",
    "raw",
];

fn encode_err(doing: &'static str) -> impl FnOnce(ArrowError) -> StoreError {
    move |source| StoreError::Encode { doing, source }
}

/// A TIMESTAMPTZ column: UTC instants in microseconds, handed over as
/// numbers (no text to format here and parse again in DuckDB).
fn utc_micros(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(
        values
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    )
}

/// The `stage_sessions` rows. `session_lang` is JSON text here (the staging
/// table's type); [`new_session_rows`] turns it into a list.
pub(super) fn session_batch(sessions: &[&Session]) -> Result<RecordBatch, StoreError> {
    // Borrowed: the Arrow array copies each string once, straight from the session.
    let text = |f: &dyn Fn(&Session) -> Option<&str>| -> ArrayRef {
        Arc::new(sessions.iter().map(|s| f(s)).collect::<StringArray>())
    };
    let langs: StringArray = sessions
        .iter()
        .map(|s| {
            s.session_lang
                .as_ref()
                .map(|l| serde_json::to_string(l).expect("strings serialize"))
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        text(&|s| Some(s.session_id.as_str())),
        text(&|s| s.bot_id.as_deref()),
        text(&|s| s.channel.as_deref()),
        text(&|s| s.user_id.as_deref()),
        utc_micros(
            sessions
                .iter()
                .map(|s| Some(s.start_time.timestamp_micros())),
        ),
        utc_micros(
            sessions
                .iter()
                .map(|s| s.end_time.map(|t| t.timestamp_micros())),
        ),
        Arc::new(langs),
        text(&|s| s.session_type.as_deref()),
        text(&|s| s.containment_type.as_deref()),
        Arc::new(
            sessions
                .iter()
                .map(|s| s.is_developer)
                .collect::<BooleanArray>(),
        ),
        text(&|s| s.session_status.as_deref()),
        Arc::new(
            sessions
                .iter()
                .map(|s| s.messages_exchanged)
                .collect::<Int32Array>(),
        ),
        Arc::new(
            sessions
                .iter()
                .map(|s| s.tasks_executed)
                .collect::<Int32Array>(),
        ),
        text(&|s| Some(s.raw.as_str())),
    ];
    RecordBatch::try_from_iter(SESSION_COLUMNS.into_iter().zip(columns))
        .map_err(encode_err("encoding sessions"))
}

/// The `stage_tags` (and `session_tags`) rows of these sessions.
pub(super) fn tag_batch(sessions: &[&Session]) -> Result<RecordBatch, StoreError> {
    let tags: Vec<(&str, &Tag)> = sessions
        .iter()
        .flat_map(|s| s.tags.iter().map(move |t| (s.session_id.as_str(), t)))
        .collect();
    tag_rows("session_id", &tags)
}

/// The `stage_message_tags` (and `message_tags`) rows of these messages.
pub(super) fn message_tag_batch(messages: &[&Message]) -> Result<RecordBatch, StoreError> {
    let tags: Vec<(&str, &Tag)> = messages
        .iter()
        .flat_map(|m| m.tags.iter().map(move |t| (m.message_id.as_str(), t)))
        .collect();
    tag_rows("message_id", &tags)
}

/// Tag rows, each with the id of its record (a session or a message) in
/// the column `id_column`.
fn tag_rows(id_column: &str, tags: &[(&str, &Tag)]) -> Result<RecordBatch, StoreError> {
    fn text<'a>(
        tags: &[(&'a str, &'a Tag)],
        f: impl Fn(&(&'a str, &'a Tag)) -> Option<&'a str>,
    ) -> ArrayRef {
        Arc::new(tags.iter().map(f).collect::<StringArray>())
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        (id_column, text(tags, |(id, _)| Some(id))),
        ("kind", text(tags, |(_, t)| Some(t.kind.as_ref()))),
        (
            "ordinal",
            Arc::new(
                tags.iter()
                    .map(|(_, t)| Some(t.ordinal))
                    .collect::<Int32Array>(),
            ),
        ),
        ("name", text(tags, |(_, t)| t.name.as_deref())),
        ("value", text(tags, |(_, t)| t.value.as_deref())),
        (
            "value_json",
            text(tags, |(_, t)| Some(t.value_json.as_str())),
        ),
    ];
    RecordBatch::try_from_iter(columns).map_err(encode_err("encoding tags"))
}

/// The `stage_messages` rows of these messages (the columns of `messages`
/// but the two sync times).
pub(super) fn message_batch(messages: &[&Message]) -> Result<RecordBatch, StoreError> {
    let text = |f: &dyn Fn(&Message) -> Option<&str>| -> ArrayRef {
        Arc::new(messages.iter().map(|m| f(m)).collect::<StringArray>())
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("message_id", text(&|m| Some(m.message_id.as_str()))),
        ("session_id", text(&|m| m.session_id.as_deref())),
        ("bot_id", text(&|m| m.bot_id.as_deref())),
        ("direction", text(&|m| m.direction.as_deref())),
        (
            "created_on",
            utc_micros(
                messages
                    .iter()
                    .map(|m| Some(m.created_on.timestamp_micros())),
            ),
        ),
        ("channel", text(&|m| m.channel.as_deref())),
        ("lang", text(&|m| m.lang.as_deref())),
        ("text", text(&|m| m.text.as_deref())),
        ("components", text(&|m| m.components.as_deref())),
        ("raw", text(&|m| Some(m.raw.as_str()))),
    ];
    RecordBatch::try_from_iter(columns).map_err(encode_err("encoding messages"))
}

/// The `messages` rows of messages none of which is stored: a
/// [`message_batch`] with both sync times `now`.
pub(super) fn new_message_rows(
    staged: RecordBatch,
    now: DateTime<Utc>,
) -> Result<RecordBatch, StoreError> {
    let n = staged.num_rows();
    let synced = utc_micros(std::iter::repeat_n(Some(now.timestamp_micros()), n));
    let mut columns = named_columns(&staged);
    columns.push(("first_synced_at".into(), synced.clone()));
    columns.push(("last_synced_at".into(), synced));
    RecordBatch::try_from_iter(columns).map_err(encode_err("encoding new messages"))
}

/// The `stage_message_keys` rows: each message's id and session id, what
/// deciding whether it is stored (and may be) needs.
pub(super) fn message_key_batch(messages: &[&Message]) -> Result<RecordBatch, StoreError> {
    let ids: StringArray = messages
        .iter()
        .map(|m| Some(m.message_id.as_str()))
        .collect();
    let sessions: StringArray = messages.iter().map(|m| m.session_id.as_deref()).collect();
    RecordBatch::try_from_iter([
        ("message_id", Arc::new(ids) as ArrayRef),
        ("session_id", Arc::new(sessions) as ArrayRef),
    ])
    .map_err(encode_err("encoding message ids"))
}

/// The ids column of a [`session_batch`], alone.
pub(super) fn id_batch(staged: &RecordBatch) -> Result<RecordBatch, StoreError> {
    RecordBatch::try_from_iter([("session_id", staged.column(0).clone())])
        .map_err(encode_err("encoding session ids"))
}

/// The `sessions` rows for sessions none of which is stored yet: the staged
/// columns in table order, but `session_lang` as a list, both sync times
/// `now`, and `deleted_at` NULL.
pub(super) fn new_session_rows(
    sessions: &[&Session],
    staged: RecordBatch,
    now: DateTime<Utc>,
) -> Result<RecordBatch, StoreError> {
    let mut langs = ListBuilder::new(StringBuilder::new());
    for s in sessions {
        match &s.session_lang {
            Some(list) => {
                for lang in list {
                    langs.values().append_value(lang);
                }
                langs.append(true);
            }
            None => langs.append(false),
        }
    }
    let mut columns = named_columns(&staged);
    let lang = columns
        .iter_mut()
        .find(|(name, _)| name == "session_lang")
        .expect("the staged batch has a session_lang column");
    lang.1 = Arc::new(langs.finish());
    let synced = utc_micros(sessions.iter().map(|_| Some(now.timestamp_micros())));
    columns.push(("first_synced_at".into(), synced.clone()));
    columns.push(("last_synced_at".into(), synced));
    columns.push((
        "deleted_at".into(),
        utc_micros(sessions.iter().map(|_| None)),
    ));
    RecordBatch::try_from_iter(columns).map_err(encode_err("encoding new sessions"))
}

/// A batch's columns with their names, to add to or replace.
fn named_columns(batch: &RecordBatch) -> Vec<(String, ArrayRef)> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .zip(batch.columns().iter().cloned())
        .collect()
}

/// Appends a record batch to `table` (columns in table order): one call per
/// table instead of one per row.
pub(super) fn append_batch(
    tx: &duckdb::Transaction<'_>,
    table: &str,
    batch: RecordBatch,
    doing: &'static str,
) -> Result<(), StoreError> {
    let mut app = tx.appender(table).doing(doing)?;
    app.append_record_batch(batch).doing(doing)?;
    app.flush().doing(doing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use duckdb::arrow::array::Array;

    fn session(id: &str, tags: usize, langs: Option<Vec<&str>>) -> Session {
        Session {
            session_id: id.into(),
            bot_id: Some("st-1".into()),
            channel: None,
            user_id: None,
            start_time: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
            end_time: None,
            session_lang: langs.map(|l| l.into_iter().map(str::to_owned).collect()),
            session_type: None,
            containment_type: Some("agent".into()),
            is_developer: Some(true),
            session_status: None,
            messages_exchanged: Some(3),
            tasks_executed: None,
            raw: format!("{{\"sessionId\":\"{id}\"}}"),
            tags: (0..tags)
                .map(|i| Tag {
                    kind: "user".into(),
                    ordinal: i as i32,
                    name: Some(format!("n{i}")),
                    value: None,
                    value_json: "null".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn batches_have_one_row_per_session_and_per_tag_in_table_order() {
        let (a, b) = (
            session("a", 2, Some(vec!["en", "de"])),
            session("b", 1, None),
        );
        let sessions = [&a, &b];
        let staged = session_batch(&sessions).unwrap();
        assert_eq!(staged.num_rows(), 2);
        let names: Vec<String> = staged
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, SESSION_COLUMNS);
        let tags = tag_batch(&sessions).unwrap();
        assert_eq!(tags.num_rows(), 3);
        let rows = new_session_rows(&sessions, staged, Utc::now()).unwrap();
        assert_eq!(rows.num_columns(), SESSION_COLUMNS.len() + 3);
        // A missing language list stays NULL rather than becoming empty.
        let langs = rows.column(6);
        assert!(!langs.is_null(0) && langs.is_null(1));
    }
}
