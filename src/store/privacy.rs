//! The privacy settings a warehouse's rows were written with
//! (`privacy_settings`), the check every writing command makes against the
//! configuration's, and `rewrite-privacy`: stricter settings applied to
//! every stored row, then the whole warehouse written to a new file, since a
//! database file keeps freed pages (and the old values in them) until they
//! are reused.
//!
//! Architecture invariant: rows are never stored under settings other than
//! the recorded ones — a writer checks first ([`check`]), and the record
//! changes only in the transaction that rewrote every row.

use super::arrow::{append_batch, session_batch, tag_batch};
use super::error::{QueryContext, StoreError};
use super::sql::ts;
use super::{WarehouseSettings, connection, messages, publish};
use crate::model::{Message, Session};
use crate::privacy::{PrivacyChange, PrivacyRecord};
use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt, Transaction, params};
use std::path::Path;

/// Rows read and rewritten at a time (each chunk is parsed in memory).
const CHUNK: usize = 20_000;

/// The privacy settings a warehouse's rows were written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrivacy {
    pub record: PrivacyRecord,
    /// `rewrite-privacy` rewrote the rows but has not yet written the file
    /// anew (it was stopped): the file's free pages may hold old values.
    pub file_pending: bool,
}

/// The settings recorded in the warehouse; None: none yet (it is empty).
pub(super) fn stored(conn: &Connection) -> Result<Option<StoredPrivacy>, StoreError> {
    const DOING: &str = "reading the recorded privacy settings";
    // The lists arrive as JSON text, parsed below.
    let row: Option<((String, String), StoredPrivacy)> = conn
        .query_row(
            "SELECT CAST(to_json(pseudonymize) AS VARCHAR), CAST(to_json(drop_tags) AS VARCHAR),
                    store_text, key_check, coalesce(file_pending, false)
             FROM privacy_settings",
            [],
            |r| {
                let record = PrivacyRecord {
                    pseudonymize: Vec::new(),
                    drop_tags: Vec::new(),
                    store_text: r.get(2)?,
                    key_check: r.get(3)?,
                };
                let file_pending = r.get(4)?;
                Ok((
                    (r.get(0)?, r.get(1)?),
                    StoredPrivacy {
                        record,
                        file_pending,
                    },
                ))
            },
        )
        .optional()
        .doing(DOING)?;
    let Some(((pseudonymize, drop_tags), mut stored)) = row else {
        return Ok(None);
    };
    let list = |text: &str| {
        serde_json::from_str::<Vec<String>>(text).map_err(|e| StoreError::Unexpected {
            doing: DOING,
            detail: e.to_string(),
        })
    };
    stored.record.pseudonymize = list(&pseudonymize)?;
    stored.record.drop_tags = list(&drop_tags)?;
    Ok(Some(stored))
}

/// Whether the database file still holds pages from before a rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileState {
    /// Nothing to do: no row was rewritten, or the file was written anew.
    Current,
    /// Rows were rewritten; the file must be written anew before any writer
    /// may use it (a database file keeps freed pages).
    ToWriteAnew,
}

/// Records `settings` as those the rows are written with, and whether the
/// file is still to be written anew.
fn record(
    conn: &Connection,
    (settings, file): (&PrivacyRecord, FileState),
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let file_pending = file == FileState::ToWriteAnew;
    let json = |v: &Vec<String>| serde_json::to_string(v).expect("strings serialize");
    conn.execute(
        "INSERT OR REPLACE INTO privacy_settings
         VALUES (1, from_json(?, '[\"VARCHAR\"]'), from_json(?, '[\"VARCHAR\"]'), ?, ?, CAST(? AS TIMESTAMPTZ), ?)",
        params![
            json(&settings.pseudonymize),
            json(&settings.drop_tags),
            settings.store_text,
            settings.key_check,
            ts(now),
            file_pending
        ],
    )
    .doing("recording the privacy settings")?;
    Ok(())
}

/// Fails unless the rows were written with `wanted` (recording it when the
/// warehouse has no record yet), saying what to do.
pub(super) fn check(
    conn: &Connection,
    path: &Path,
    wanted: &PrivacyRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    match stored(conn)? {
        None => record(conn, (wanted, FileState::Current), now),
        Some(stored) => mixing_error(path, &stored, wanted).map_or(Ok(()), Err),
    }
}

/// Why rows written as `stored` must not be joined by rows written under
/// `wanted`, saying what to do; None when they may.
pub fn mixing_error(
    path: &Path,
    stored: &StoredPrivacy,
    wanted: &PrivacyRecord,
) -> Option<StoreError> {
    if stored.file_pending {
        return Some(StoreError::RewriteUnfinished {
            path: path.to_owned(),
        });
    }
    let stored = &stored.record;
    let fix = match stored.change_to(wanted) {
        PrivacyChange::Same => return None,
        PrivacyChange::Stricter(added) => format!(
            "nothing is stored under mixed settings, so no pass runs until `kore-sync rewrite-privacy` \
             applies them to every stored row ({}) — or set [privacy] back",
            added.join(", ")
        ),
        PrivacyChange::Looser(why) => looser_fix(path, &why),
    };
    Some(StoreError::PrivacyChanged {
        path: path.to_owned(),
        stored: stored.describe(),
        wanted: wanted.describe(),
        fix,
    })
}

/// What to do when settings cannot be applied to stored rows.
pub fn looser_fix(path: &Path, why: &[String]) -> String {
    format!(
        "stored rows cannot be brought to these settings ({}); set [privacy] back, or start a fresh \
         warehouse (move {} aside) and sync the history again",
        why.join("; "),
        path.display()
    )
}

/// How stored records are read again under new rules (implemented above
/// the store, where the API's record shapes are known). Each takes a stored
/// `raw` and returns the record as it is now to be stored.
pub trait RecordRewrite: Sync {
    fn session(&self, raw: &str) -> Result<Session, String>;
    fn message(&self, raw: &str) -> Result<Message, String>;
    /// A rejected record's `raw` as it may now be kept.
    fn rejected(&self, raw: &str) -> String;
}

/// What `rewrite-privacy` rewrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewritten {
    pub n_sessions: usize,
    pub n_messages: usize,
    pub n_rejected: usize,
}

/// Applies `rw` to every stored session, message and rejected record and
/// records `wanted`, in one transaction; then writes the warehouse to a new
/// file and moves it over the old one. Every Parquet day is marked to be
/// written again; the read copy follows from its fingerprint.
pub fn rewrite_privacy(
    settings: &WarehouseSettings,
    rw: &dyn RecordRewrite,
    wanted: &PrivacyRecord,
) -> Result<Rewritten, StoreError> {
    let path = &settings.path;
    let mut conn = connection::open(path, &settings.storage_version, settings.modes.warehouse)?;
    let now = Utc::now();
    let tx = conn.transaction().doing("beginning the rewrite")?;
    let done = Rewritten {
        n_sessions: rewrite_sessions(&tx, rw)?,
        n_messages: rewrite_messages(&tx, rw)?,
        n_rejected: rewrite_rejected(&tx, rw)?,
    };
    tx.execute_batch(
        "INSERT OR IGNORE INTO parquet_dirty_days
             SELECT DISTINCT CAST(make_timestamp(epoch_us(start_time)) AS DATE) FROM sessions;
         INSERT OR IGNORE INTO parquet_dirty_days
             SELECT DISTINCT CAST(make_timestamp(epoch_us(created_on)) AS DATE) FROM messages;",
    )
    .doing("marking every day for the Parquet export")?;
    record(&tx, (wanted, FileState::ToWriteAnew), now)?;
    tx.commit().doing("committing the rewrite")?;
    publish::refresh_tags_wide(&conn)?;
    write_file_anew(conn, settings)?;
    Ok(done)
}

/// Finishes a `rewrite-privacy` that was stopped after it committed the
/// rows: writes the file anew.
pub fn finish_rewrite(settings: &WarehouseSettings) -> Result<(), StoreError> {
    let conn = connection::open(
        &settings.path,
        &settings.storage_version,
        settings.modes.warehouse,
    )?;
    write_file_anew(conn, settings)
}

/// Copies the whole warehouse into a new file (clearing `file_pending`
/// there), closes the old one and moves the new one over it: a database
/// file keeps freed pages, and the old values in them, until they are
/// reused.
fn write_file_anew(conn: Connection, settings: &WarehouseSettings) -> Result<(), StoreError> {
    let path = &settings.path;
    conn.execute_batch("CHECKPOINT")
        .doing("checkpointing the warehouse")?;
    let tmp = publish::write_beside(&conn, path, &settings.storage_version, |c, db| {
        publish::copy_everything(c, db)?;
        c.execute_batch("UPDATE kore_publish.privacy_settings SET file_pending = false")
            .doing("marking the new file written")
    })?;
    drop(conn);
    // The copy holds everything committed; a log left beside the old file
    // must not be replayed onto the new one.
    let wal = path.with_file_name(format!(
        "{}.wal",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    match std::fs::remove_file(&wal) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(super::error::io_err(
                "removing the old write-ahead log",
                &wal,
                e,
            ));
        }
    }
    publish::move_into_place(&tmp, path, settings.modes.warehouse)
}

/// Reads `(id, raw)` rows of `table` after `after`, in id order.
fn chunk_after(
    tx: &Transaction<'_>,
    (table, id): (&str, &str),
    after: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = tx
        .prepare(&format!(
            "SELECT {id}, CAST(raw AS VARCHAR) FROM {table} WHERE {id} > ? ORDER BY {id} LIMIT {CHUNK}"
        ))
        .doing("reading stored records")?;
    stmt.query_map(params![after], |r| Ok((r.get(0)?, r.get(1)?)))
        .doing("reading stored records")?
        .collect::<Result<_, _>>()
        .doing("reading stored records")
}

fn rewrite_sessions(tx: &Transaction<'_>, rw: &dyn RecordRewrite) -> Result<usize, StoreError> {
    let (mut after, mut n) = (String::new(), 0);
    loop {
        let rows = chunk_after(tx, ("sessions", "session_id"), &after)?;
        let Some((last, _)) = rows.last() else {
            return Ok(n);
        };
        after = last.clone();
        let sessions = rows
            .iter()
            .map(|(id, raw)| rw.session(raw).map_err(|detail| rewrite_err(id, detail)))
            .collect::<Result<Vec<Session>, StoreError>>()?;
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
        // Only what the rules change is written: the user id, the record and
        // its tags. Sync times and deletion marks stay.
        tx.execute_batch(
            "UPDATE sessions SET user_id = s.user_id, raw = CAST(s.raw AS JSON)
                 FROM stage_sessions s WHERE sessions.session_id = s.session_id;
             DELETE FROM session_tags WHERE session_id IN (SELECT session_id FROM stage_sessions);
             INSERT INTO session_tags
                 SELECT session_id, kind, ordinal, name, value, CAST(value_json AS JSON) FROM stage_tags;",
        )
        .doing("rewriting sessions")?;
        n += sessions.len();
    }
}

fn rewrite_messages(tx: &Transaction<'_>, rw: &dyn RecordRewrite) -> Result<usize, StoreError> {
    let (mut after, mut n) = (String::new(), 0);
    loop {
        let rows = chunk_after(tx, ("messages", "message_id"), &after)?;
        let Some((last, _)) = rows.last() else {
            return Ok(n);
        };
        after = last.clone();
        let rewritten = rows
            .iter()
            .map(|(id, raw)| rw.message(raw).map_err(|detail| rewrite_err(id, detail)))
            .collect::<Result<Vec<Message>, StoreError>>()?;
        let refs: Vec<&Message> = rewritten.iter().collect();
        messages::stage(tx, &refs)?;
        tx.execute_batch(
            "UPDATE messages SET text = s.text, components = CAST(s.components AS JSON),
                                 raw = CAST(s.raw AS JSON)
                 FROM stage_messages s WHERE messages.message_id = s.message_id;
             DELETE FROM message_tags WHERE message_id IN (SELECT message_id FROM stage_messages);
             INSERT INTO message_tags
                 SELECT message_id, kind, ordinal, name, value, CAST(value_json AS JSON)
                 FROM stage_message_tags;",
        )
        .doing("rewriting messages")?;
        n += rewritten.len();
    }
}

fn rewrite_rejected(tx: &Transaction<'_>, rw: &dyn RecordRewrite) -> Result<usize, StoreError> {
    let raws: Vec<String> = {
        let mut stmt = tx
            .prepare("SELECT DISTINCT raw FROM rejected_records")
            .doing("reading rejected records")?;
        stmt.query_map([], |r| r.get(0))
            .doing("reading rejected records")?
            .collect::<Result<_, _>>()
            .doing("reading rejected records")?
    };
    for raw in &raws {
        tx.execute(
            "UPDATE rejected_records SET raw = ? WHERE raw = ?",
            params![rw.rejected(raw), raw],
        )
        .doing("rewriting rejected records")?;
    }
    Ok(raws.len())
}

fn rewrite_err(id: &str, detail: String) -> StoreError {
    StoreError::Rewrite {
        id: id.to_owned(),
        detail,
    }
}
