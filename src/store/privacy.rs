//! The privacy settings a warehouse's rows were written with
//! (`privacy_settings`), and the check every writing command makes against
//! the configuration's. `rewrite-privacy`, which applies stricter ones to
//! every stored row, is in `rewrite`.
//!
//! Architecture invariant: rows are never stored under settings other than
//! the recorded ones — a writer checks first ([`check`]), and the record
//! changes only in the transaction that rewrote every row.

use super::error::{QueryContext, StoreError};
use super::sql::ts;
use crate::privacy::{PrivacyChange, PrivacyRecord};
use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt, params};
use std::path::Path;

/// The privacy settings a warehouse's rows were written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrivacy {
    pub record: PrivacyRecord,
    /// `rewrite-privacy` rewrote the rows but has not yet written the file
    /// anew (it was stopped): the file's free pages may hold old values.
    pub file_pending: bool,
    /// `rewrite-privacy` to these settings was stopped halfway: some rows
    /// are written with them, the rest with `record`.
    pub rewriting_to: Option<PrivacyRecord>,
}

/// The settings recorded in the warehouse; None: none yet (it is empty).
pub(super) fn stored(conn: &Connection) -> Result<Option<StoredPrivacy>, StoreError> {
    let row = read_record(
        conn,
        "privacy_settings",
        "coalesce(file_pending, false)",
        |r, i| r.get(i),
    )?;
    let Some((record, file_pending)) = row else {
        return Ok(None);
    };
    Ok(Some(StoredPrivacy {
        record,
        file_pending,
        rewriting_to: super::rewrite::unfinished(conn)?.map(|u| u.target),
    }))
}

/// A record's columns as read: both lists as JSON text, `store_text`,
/// `key_check`.
type RawRecord = (String, String, bool, Option<String>);

/// Reads the one row of `table` (`privacy_settings`, or `privacy_rewrite`,
/// which hold the same settings columns) — its settings, and what `rest`
/// reads of the `extra` columns, given the index of the first — or None if
/// there is none.
pub(super) fn read_record<T>(
    conn: &Connection,
    table: &str,
    extra: &str,
    rest: impl Fn(&duckdb::Row<'_>, usize) -> duckdb::Result<T>,
) -> Result<Option<(PrivacyRecord, T)>, StoreError> {
    const DOING: &str = "reading the recorded privacy settings";
    // The lists arrive as JSON text, parsed below.
    let row: Option<(RawRecord, T)> = conn
        .query_row(
            &format!(
                "SELECT CAST(to_json(pseudonymize) AS VARCHAR), CAST(to_json(drop_tags) AS VARCHAR),
                        store_text, key_check, {extra}
                 FROM {table}"
            ),
            [],
            |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?), rest(r, 4)?)),
        )
        .optional()
        .doing(DOING)?;
    let Some(((pseudonymize, drop_tags, store_text, key_check), extra)) = row else {
        return Ok(None);
    };
    let list = |text: &str| {
        serde_json::from_str::<Vec<String>>(text).map_err(|e| StoreError::Unexpected {
            doing: DOING,
            detail: e.to_string(),
        })
    };
    let record = PrivacyRecord {
        pseudonymize: list(&pseudonymize)?,
        drop_tags: list(&drop_tags)?,
        store_text,
        key_check,
    };
    Ok(Some((record, extra)))
}

/// Whether the database file still holds pages from before a rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileState {
    /// Nothing to do: no row was rewritten, or the file was written anew.
    Current,
    /// Rows were rewritten; the file must be written anew before any writer
    /// may use it (a database file keeps freed pages).
    ToWriteAnew,
}

/// Records `settings` as those the rows are written with, and whether the
/// file is still to be written anew.
pub(super) fn record(
    conn: &Connection,
    (settings, file): (&PrivacyRecord, FileState),
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let file_pending = file == FileState::ToWriteAnew;
    let json = |v: &Vec<String>| serde_json::to_string(v).expect("strings serialize");
    conn.execute(
        "INSERT OR REPLACE INTO privacy_settings
         VALUES (1, from_json(?, '[\"VARCHAR\"]'), from_json(?, '[\"VARCHAR\"]'), ?, ?, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ), ?)",
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
    if stored.file_pending || stored.rewriting_to.is_some() {
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
