//! What readers outside this process get: the `tags_wide` view, and the
//! read copy, written beside its target and renamed over it.
//!
//! Architecture invariant: kore-sync never opens the read copy; it writes a
//! new file and renames it over the old one, so readers can neither block a
//! pass nor see a partial copy.

use super::error::{QueryContext, StoreError};
use super::sql::{ident, lit, ts};
use chrono::{DateTime, Utc};
use duckdb::{Connection, params};
use std::path::Path;

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
    target: &Path,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let n: i64 = conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .doing("counting sessions")?;
    conn.execute(
        "INSERT INTO publications (kind, target, published_at, n_sessions, storage_version)
         VALUES (?, ?, CAST(? AS TIMESTAMPTZ), ?, ?)
         ON CONFLICT (kind) DO UPDATE SET target = excluded.target,
             published_at = excluded.published_at, n_sessions = excluded.n_sessions,
             storage_version = excluded.storage_version",
        params![
            kind,
            target.display().to_string(),
            ts(now),
            n,
            storage_version
        ],
    )
    .doing("recording a publication")?;
    Ok(n)
}

pub(super) fn io_err(doing: &'static str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Publish {
        doing,
        path: path.to_owned(),
        source: e,
    }
}

/// Writes a consistent, checkpointed copy of the warehouse to a temporary
/// file beside `dest`, syncs it, and renames it over `dest`. Readers that
/// opened the old copy keep their view; new connections see the new one.
pub(super) fn publish_copy(
    conn: &Connection,
    dest: &Path,
    storage_version: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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
    let n = record_publication(conn, ("read_copy", Some(storage_version)), dest, now)?;
    let db: String = conn
        .query_row("SELECT current_database()", [], |r| r.get(0))
        .doing("naming the warehouse")?;
    conn.execute_batch(&format!(
        "ATTACH {} AS kore_publish (STORAGE_VERSION {})",
        lit(&tmp.display().to_string()),
        lit(storage_version)
    ))
    .doing("creating the read copy")?;
    let copied = conn.execute_batch(&format!(
        "COPY FROM DATABASE {} TO kore_publish; CHECKPOINT kore_publish;",
        ident(&db)
    ));
    let detached = conn.execute_batch("DETACH kore_publish");
    copied.doing("copying into the read copy")?;
    detached.doing("closing the read copy")?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("syncing the read copy", &tmp, e))?;
    std::fs::rename(&tmp, dest).map_err(|e| io_err("moving the read copy into place", dest, e))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(n)
}
