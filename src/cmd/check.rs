//! `kore-sync check`: every line of the setup, each OK or the fix —
//! configuration, each scope's token and one getSessions request, the
//! warehouse, and the publication directories. (Configuration problems are
//! reported before this runs.)

use super::{Invocation, Outcome, open_store};
use crate::config::Config;
use crate::model::{ACCOUNT_BOT_ID, Window};
use crate::store::ParquetTarget;
use crate::store::StoredPrivacy;
use crate::store::mixing_error;
use crate::sync::build_scopes;
use anyhow::Context;
use chrono::{Duration, Utc};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The check's lines, and whether all were OK.
struct Lines {
    ok: bool,
}

impl Lines {
    fn line(&mut self, what: impl std::fmt::Display, result: Result<String, String>) {
        match result {
            Ok(detail) => println!("OK    {what}: {detail}"),
            Err(fix) => {
                self.ok = false;
                println!("FAIL  {what}: {fix}");
            }
        }
    }
}

/// `kore-sync check`. Complete if every line is OK.
pub async fn run(inv: &Invocation) -> anyhow::Result<Outcome> {
    let config = inv.load()?;
    let mut out = Lines { ok: true };
    out.line(
        "configuration",
        Ok(format!(
            "{} scope(s), {} stream(s) each",
            config.scopes.len(),
            config.sync.containment_types.len()
        )),
    );
    for w in &config.warnings {
        println!("WARN  configuration: {w}");
    }
    check_scopes(&config, &mut out).await?;
    // Before the store is opened: opening makes the warehouse owner-only.
    warn_if_readable_by_others(&config);
    let store = open_store(&config.warehouse).await;
    out.line(
        format!("warehouse {}", config.warehouse.path.display()),
        store
            .as_ref()
            .map(|_| "writable, schema up to date".to_owned())
            .map_err(|e| format!("{e:#}")),
    );
    if let Ok(store) = &store {
        warn_if_newer(
            &store.storage_version().await?,
            &config.warehouse.storage_version,
        );
        let stored = store.privacy_record().await?;
        out.line(
            "privacy settings",
            privacy_matches(&config, stored.as_ref()),
        );
    }
    drop(store);
    let read_copy_dir = config
        .warehouse
        .publish
        .as_ref()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    for (what, dir) in [
        ("read copy", read_copy_dir),
        ("Parquet export", local_export_dir(&config)),
    ] {
        if let Some(dir) = dir {
            let dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            };
            out.line(
                format!("{what} directory {}", dir.display()),
                dir_writable(&dir),
            );
        }
    }
    Ok(Outcome::of(out.ok))
}

/// Whether the warehouse's rows were written with the configuration's
/// privacy settings (checked without recording anything): the verdict a
/// pass would reach.
fn privacy_matches(config: &Config, stored: Option<&StoredPrivacy>) -> Result<String, String> {
    let wanted = config.sync.privacy.record();
    let Some(stored) = stored else {
        return Ok(format!(
            "nothing stored yet; rows will be written with {}",
            wanted.describe()
        ));
    };
    match mixing_error(&config.warehouse.path, stored, wanted) {
        None => Ok(format!("rows written with {}", stored.record.describe())),
        Some(e) => Err(e.to_string()),
    }
}

/// Warns about files and directories of the warehouse, the read copy and
/// the Parquet export that users other than the owner and group can read.
fn warn_if_readable_by_others(config: &Config) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let w = &config.warehouse;
        let mut wal = w.path.as_os_str().to_owned();
        wal.push(".wal");
        let paths = [
            ("warehouse", Some(w.path.clone()), w.modes.warehouse),
            ("warehouse WAL", Some(PathBuf::from(wal)), w.modes.warehouse),
            ("read copy", w.publish.clone(), w.modes.published),
            (
                "Parquet export",
                local_export_dir(config),
                w.modes.published,
            ),
        ];
        for (what, path, want) in paths {
            let Some(path) = path else { continue };
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                println!(
                    "WARN  {what} {}: readable by other users (mode {mode:04o}); run `chmod o-rwx {}` \
                     (kore-sync writes new files {want:04o}: warehouse.file_mode / warehouse.publish_mode)",
                    path.display(),
                    path.display()
                );
            }
        }
    }
}

/// The Parquet export's directory, when it is a local one (an object
/// store is checked by its first upload).
fn local_export_dir(config: &Config) -> Option<PathBuf> {
    match &config.warehouse.parquet {
        Some(ParquetTarget::Dir(d)) => Some(d.clone()),
        _ => None,
    }
}

/// Per scope: a token can be signed, and one quick getSessions request
/// (the last hour, one record, one retry at most) is answered.
async fn check_scopes(config: &Config, out: &mut Lines) -> anyhow::Result<()> {
    let mut quick = config.api.clone();
    quick.retry.max_retries = 1;
    let scopes =
        build_scopes(&quick, &config.scopes).context("could not set up the HTTP client")?;
    let never = CancellationToken::new();
    let containment = config.sync.containment_types[0];
    for scope in &scopes {
        let (id, credentials) = (&scope.scope.bot_id, &scope.scope.credentials);
        let name = if id == ACCOUNT_BOT_ID {
            "account scope".to_owned()
        } else {
            format!("bot {id}")
        };
        if let Err(e) = credentials.header_value() {
            out.line(
                format!("{name}: token"),
                Err(format!(
                    "cannot sign a token ({e}); check the client secret"
                )),
            );
            continue;
        }
        out.line(
            format!("{name}: token"),
            Ok(format!("signed for {}", credentials.describe())),
        );
        let now = Utc::now();
        let last_hour = Window {
            start: now - Duration::hours(1),
            end: now,
        };
        let wait = Some(std::time::Duration::from_secs(10));
        let (count, _) = scope
            .count_sessions(containment, last_hour, wait, &never)
            .await;
        out.line(
            format!("{name}: getSessions"),
            count
                .map(|n| {
                    format!(
                        "answered ({} {containment} session(s) in the last hour)",
                        n.unwrap_or(0)
                    )
                })
                .map_err(|e| e.to_string()),
        );
    }
    Ok(())
}

/// Warns when the warehouse file is in a newer storage format than
/// `warehouse.storage_version`: readers of that older DuckDB cannot open it
/// (the read copy is still written in the configured format).
fn warn_if_newer(found: &str, configured: &str) {
    if version_numbers(found) > version_numbers(configured) {
        println!(
            "WARN  warehouse: its storage format is {found}, newer than warehouse.storage_version \
             ({configured}); DuckDB readers older than that cannot open it. Point them at the read \
             copy (written in {configured}), or start a fresh warehouse"
        );
    }
}

/// `v1.4.0+` → [1, 4, 0]; unreadable parts count as zero.
fn version_numbers(v: &str) -> Vec<u32> {
    v.trim_start_matches('v')
        .trim_end_matches('+')
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .collect()
}

/// Whether `dir` exists (or can be made) and a file can be written in it.
fn dir_writable(dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create it ({e}); check the path and permissions"))?;
    let probe = dir.join(format!(".kore-sync-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| format!("cannot write in it ({e}); check permissions"))?;
    let _ = std::fs::remove_file(&probe);
    Ok("writable".into())
}

#[cfg(test)]
mod tests {
    use super::version_numbers;

    #[test]
    fn storage_versions_compare_by_number() {
        assert!(version_numbers("v1.5.0+") > version_numbers("v1.4.0"));
        assert!(version_numbers("v1.10.0") > version_numbers("v1.9.9"));
        assert_eq!(version_numbers("v1.4.0+"), version_numbers("v1.4.0"));
    }
}
