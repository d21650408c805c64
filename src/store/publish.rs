//! What readers outside this process get: the `tags_wide` view, and the
//! read copy, written beside its target and renamed over it.
//!
//! Architecture invariant: kore-sync never opens the read copy; it writes a
//! new file and renames it over the old one, so readers can neither block a
//! pass nor see a partial copy.
//!
//! The copy costs the whole warehouse, so it is written only when the data
//! changed since the last one (a fingerprint of counts and latest changes,
//! recorded with the publication), and at most once per
//! `warehouse.publish_interval`.

use super::error::{QueryContext, StoreError, io_err};
use super::sql::{count_rows, from_micros, ident, lit, ts};
use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many tag names `tags_wide` gets a column for.
const TAGS_WIDE_COLUMNS: usize = 20;

/// Rewrites `tags_wide` with one column per most common tag name.
pub(super) fn refresh_tags_wide(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT name FROM session_tags WHERE name IS NOT NULL
             GROUP BY name ORDER BY count(*) DESC, name LIMIT ?",
        )
        .doing("finding common tag names")?;
    let names: Vec<String> = stmt
        .query_map(params![TAGS_WIDE_COLUMNS as i64], |r| r.get(0))
        .doing("finding common tag names")?
        .collect::<Result<_, _>>()
        .doing("finding common tag names")?;
    let mut sql = String::from("CREATE OR REPLACE VIEW tags_wide AS SELECT session_id");
    for name in &names {
        sql.push_str(&format!(
            ", first(value ORDER BY kind, ordinal) FILTER (WHERE name = {}) AS {}",
            lit(name),
            ident(name)
        ));
    }
    // Sessions kept but gone upstream (`deletes = "keep"`) are left out, as
    // in every analyst view.
    sql.push_str(
        " FROM session_tags WHERE session_id NOT IN
             (SELECT session_id FROM sessions WHERE deleted_at IS NOT NULL)
         GROUP BY session_id",
    );
    conn.execute_batch(&sql).doing("rewriting tags_wide")
}

pub(super) fn record_publication(
    conn: &Connection,
    (kind, storage_version): (&str, Option<&str>),
    target: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let n = count_rows(conn, "SELECT count(*) FROM sessions")?;
    conn.execute(
        "INSERT INTO publications (kind, target, published_at, n_sessions, storage_version)
         VALUES (?, ?, CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ), ?, ?)
         ON CONFLICT (kind) DO UPDATE SET target = excluded.target,
             published_at = excluded.published_at, n_sessions = excluded.n_sessions,
             storage_version = excluded.storage_version",
        params![kind, target, ts(now), n, storage_version],
    )
    .doing("recording a publication")?;
    Ok(n)
}

/// What publishing the read copy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadCopy {
    /// A new copy is in place: its sessions and its size in bytes.
    Written { n_sessions: i64, bytes: u64 },
    /// Nothing changed since the copy in place was written.
    Unchanged,
    /// The data changed, but `warehouse.publish_interval` has not passed
    /// since the last copy; a later pass writes it.
    NotYet,
}

/// Row counts and the latest change of the data a reader sees: equal
/// fingerprints, equal data. An unchanged re-read writes nothing (so
/// `last_synced_at` stays), a delete lowers the count, a mark sets
/// `deleted_at`; bot names count too, and the privacy settings' record
/// (`rewrite-privacy` changes rows without a sync).
fn fingerprint(conn: &Connection) -> Result<String, StoreError> {
    conn.query_row(
        "SELECT concat_ws('/', count(*), epoch_us(max(last_synced_at)),
                count(deleted_at), epoch_us(max(deleted_at)),
                (SELECT md5(coalesce(string_agg(concat_ws('=', bot_id, name), ',' ORDER BY bot_id), ''))
                 FROM bots),
                (SELECT concat_ws('/', count(*), epoch_us(max(last_synced_at))) FROM messages),
                (SELECT coalesce(max(epoch_us(recorded_at)), 0) FROM privacy_settings))
         FROM sessions",
        [],
        |r| r.get(0),
    )
    .doing("reading what changed since the read copy")
}

/// What a new copy must be: where, in which storage format, holding data
/// with which fingerprint, and at most how often.
struct Wanted<'a> {
    dest: &'a Path,
    storage_version: &'a str,
    fingerprint: &'a str,
    interval: Duration,
}

/// Whether the copy must be rewritten now (`Written`, with no figures yet):
/// always when it is missing, elsewhere or in another format; otherwise
/// when the data changed and `interval` has passed since the last copy.
fn copy_due(
    conn: &Connection,
    want: &Wanted<'_>,
    now: DateTime<Utc>,
) -> Result<ReadCopy, StoreError> {
    let last: Option<(String, Option<String>, Option<String>, i64)> = conn
        .query_row(
            "SELECT target, storage_version, data_fingerprint, epoch_us(published_at)
             FROM publications WHERE kind = 'read_copy'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .doing("reading the last publication")?;
    let due = ReadCopy::Written {
        n_sessions: 0,
        bytes: 0,
    };
    let Some((target, version, last_fingerprint, published_us)) = last else {
        return Ok(due);
    };
    if target != want.dest.display().to_string()
        || version.as_deref() != Some(want.storage_version)
        || !want.dest.exists()
    {
        return Ok(due);
    }
    let (fingerprint, interval) = (want.fingerprint, want.interval);
    if last_fingerprint.as_deref() == Some(fingerprint) {
        return Ok(ReadCopy::Unchanged);
    }
    let since = now.signed_duration_since(from_micros(published_us));
    if since.to_std().unwrap_or_default() < interval {
        return Ok(ReadCopy::NotYet);
    }
    Ok(due)
}

/// Publishes the read copy at `dest` if the data changed since the last one
/// (and `interval` has passed since it), else leaves it.
pub(super) fn publish_copy(
    conn: &Connection,
    (dest, form): (&Path, &ReadCopyForm),
    (storage_version, interval, mode): (&str, Duration, u32),
    now: DateTime<Utc>,
) -> Result<ReadCopy, StoreError> {
    // A change of form (copy or catalog) is a change of what readers get.
    let form_name = match form {
        ReadCopyForm::Copy => "copy",
        ReadCopyForm::Views { .. } => "views",
    };
    let fingerprint = format!("{form_name}:{}", fingerprint(conn)?);
    let want = Wanted {
        dest,
        storage_version,
        fingerprint: &fingerprint,
        interval,
    };
    match copy_due(conn, &want, now)? {
        ReadCopy::Written { .. } => {}
        skipped => return Ok(skipped),
    }
    match form {
        ReadCopyForm::Copy => {
            replace_read_file(conn, dest, (storage_version, mode), copy_everything)?
        }
        ReadCopyForm::Views { parquet_dir } => {
            replace_read_file(conn, dest, (storage_version, mode), |c, db| {
                super::catalog::fill_catalog(c, db, parquet_dir)
            })?
        }
    }
    let n_sessions = record_publication(
        conn,
        ("read_copy", Some(storage_version)),
        &dest.display().to_string(),
        now,
    )?;
    conn.execute(
        "UPDATE publications SET data_fingerprint = ? WHERE kind = 'read_copy'",
        params![fingerprint],
    )
    .doing("recording a publication")?;
    let bytes = std::fs::metadata(dest).map_or(0, |m| m.len());
    Ok(ReadCopy::Written { n_sessions, bytes })
}

/// What the read copy holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadCopyForm {
    /// A full copy of the warehouse: costs the whole file each time.
    Copy,
    /// A small catalog: the small tables copied, `sessions` and
    /// `session_tags` as views over the Parquet export in this directory,
    /// and the analyst views: costs what changed (`super::catalog`).
    Views { parquet_dir: PathBuf },
}

/// Writes a new read database at a temporary file beside `dest` (attached
/// as `kore_publish`, in `storage_version`), with `fill` given the
/// warehouse's name; checkpoints and syncs it, and renames it over `dest`.
/// Readers that opened the old file keep their view; new connections see
/// the new one.
pub(super) fn replace_read_file(
    conn: &Connection,
    dest: &Path,
    (storage_version, mode): (&str, u32),
    fill: impl FnOnce(&Connection, &str) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let tmp = write_beside(conn, dest, storage_version, fill)?;
    move_into_place(&tmp, dest, mode)
}

/// Writes a new database file beside `dest` (its name prefixed with `.`
/// and suffixed `.tmp`), attached as `kore_publish` in `storage_version`
/// and filled by `fill` (given the warehouse's name); checkpoints and
/// detaches it. Returns its path.
pub(super) fn write_beside(
    conn: &Connection,
    dest: &Path,
    storage_version: &str,
    fill: impl FnOnce(&Connection, &str) -> Result<(), StoreError>,
) -> Result<PathBuf, StoreError> {
    let dir = dir_of(dest);
    std::fs::create_dir_all(dir)
        .map_err(|e| io_err("creating the read copy's directory", dir, e))?;
    let name = dest.file_name().map_or("kore-read.duckdb".into(), |n| {
        n.to_string_lossy().into_owned()
    });
    let tmp = dir.join(format!(".{name}.tmp"));
    for stale in [tmp.clone(), dir.join(format!(".{name}.tmp.wal"))] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing a stale temporary copy", &stale, e)),
        }
    }
    let db: String = conn
        .query_row("SELECT current_database()", [], |r| r.get(0))
        .doing("naming the warehouse")?;
    conn.execute_batch(&format!(
        "ATTACH {} AS kore_publish (STORAGE_VERSION {})",
        lit(&tmp.display().to_string()),
        lit(storage_version)
    ))
    .doing("creating the new database file")?;
    let filled = fill(conn, &db).and_then(|()| {
        conn.execute_batch("CHECKPOINT kore_publish")
            .doing("checkpointing the new database file")
    });
    let detached = conn.execute_batch("DETACH kore_publish");
    filled?;
    detached.doing("closing the new database file")?;
    Ok(tmp)
}

/// Syncs `tmp`, gives it `mode` and renames it over `dest`, durably.
pub(super) fn move_into_place(tmp: &Path, dest: &Path, mode: u32) -> Result<(), StoreError> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("syncing the new database file", tmp, e))?;
    super::set_mode(tmp, mode)
        .map_err(|e| io_err("setting the new database file's permissions", tmp, e))?;
    std::fs::rename(tmp, dest)
        .map_err(|e| io_err("moving the new database file into place", dest, e))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir_of(dest)) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A consistent copy of the whole warehouse.
pub(super) fn copy_everything(conn: &Connection, db: &str) -> Result<(), StoreError> {
    conn.execute_batch(&format!("COPY FROM DATABASE {} TO kore_publish", ident(db)))
        .doing("copying into the read copy")
}
