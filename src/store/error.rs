//! Errors of the store layer. A file system that refuses a write (full,
//! read-only, permission denied) is recognised wherever the store or
//! publishing writes — in DuckDB's answers and in file operations alike —
//! and told in plain words as [`StoreError::Storage`].

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the warehouse file (DuckDB allows one writer).
    #[error(
        "the warehouse {path} is in use by another process ({detail}); stop that process \
         (another kore-sync, or a tool holding the file open), or point warehouse.path elsewhere"
    )]
    Locked { path: PathBuf, detail: String },
    #[error("could not open the warehouse {path}: {source}; check the path exists and is writable")]
    Open {
        path: PathBuf,
        #[source]
        source: duckdb::Error,
    },
    #[error(
        "the warehouse {path} was written by a newer kore-sync (schema version {found}, this build knows {known}); upgrade kore-sync"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: duckdb::Error,
    },
    /// The file system refused a write; what was being written was rolled
    /// back (a transaction, or a file not yet renamed into place).
    #[error(
        "{} while {doing}: could not write {}. Nothing was lost: what was being written was rolled back, \
         and the warehouse and the published copies hold what they held before. {}",
        problem.what(),
        path.as_deref().map_or("a file of the warehouse".to_owned(), |p| p.display().to_string()),
        problem.fix()
    )]
    Storage {
        doing: &'static str,
        problem: StorageProblem,
        /// The file the write was for, when the error names it.
        path: Option<PathBuf>,
    },
    /// DuckDB needed more memory than `warehouse.memory_limit` allows; the
    /// statement's transaction was rolled back.
    #[error(
        "the warehouse ran out of memory while {doing} ({used}). Nothing was lost: what was being \
         written was rolled back, and the warehouse holds what it held before. Raise \
         warehouse.memory_limit (default {default}; e.g. \"256MiB\") and run kore-sync again, \
         and tell us what you ran: every command is meant to work within the default"
    , default = super::DEFAULT_MEMORY_LIMIT)]
    OutOfMemory { doing: &'static str, used: String },
    /// DuckDB's spill files reached `warehouse.max_temp_size`; the
    /// statement's transaction was rolled back.
    #[error(
        "the warehouse's temporary files reached warehouse.max_temp_size while {doing} ({used}). \
         Nothing was lost: what was being written was rolled back, and the warehouse holds what it \
         held before. Raise warehouse.max_temp_size (default {default}), or warehouse.memory_limit \
         so that less is spilled, and run kore-sync again"
    , default = super::DEFAULT_MAX_TEMP_SIZE)]
    TempFull { doing: &'static str, used: String },
    #[error("warehouse query failed while {doing}: {source}")]
    Query {
        doing: &'static str,
        #[source]
        source: duckdb::Error,
    },
    #[error(
        "publishing failed while {doing} ({path}): {source}; check the directory exists and is writable"
    )]
    Publish {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing to the object store failed (after its retries).
    #[error(
        "the Parquet export failed while {doing} ({target}): {detail}; check the bucket exists, \
         the credentials (AWS_* environment, [warehouse.s3], or the instance's role) may write to it, \
         and the endpoint is reachable"
    )]
    Lake {
        doing: &'static str,
        target: String,
        detail: String,
    },
    /// Building the Arrow batches a commit appends failed (a bug: the
    /// columns are built from typed fields).
    #[error("could not encode sessions for the warehouse while {doing}: {source}")]
    Encode {
        doing: &'static str,
        #[source]
        source: duckdb::arrow::error::ArrowError,
    },
    /// DuckDB answered with a value kore-sync cannot read (a bug, or a
    /// warehouse edited by hand).
    #[error("the warehouse holds an unexpected value while {doing}: {detail}")]
    Unexpected { doing: &'static str, detail: String },
    /// Writing a query's answer to the terminal or a pipe failed.
    #[error("could not write the answer: {0}")]
    Output(#[source] std::io::Error),
    #[error("the store's worker thread stopped unexpectedly: {0}")]
    Worker(String),
    /// The configuration's privacy settings differ from those the stored
    /// rows were written with; `fix` says what to do.
    #[error(
        "the warehouse {path} was written with {stored}, but the configuration asks for {wanted}; {fix}"
    )]
    PrivacyChanged {
        path: PathBuf,
        stored: String,
        wanted: String,
        fix: String,
    },
    /// `rewrite-privacy` was stopped before it finished: some rows are
    /// rewritten and some not, or the file is not yet written anew.
    #[error(
        "a `kore-sync rewrite-privacy` of {path} was stopped before it finished (rows rewritten in part, or the \
         file not yet written anew, so its free pages may still hold the old values); no pass runs until it \
         finishes: run `kore-sync rewrite-privacy` again with the same [privacy] settings, and it carries on \
         where it stopped"
    )]
    RewriteUnfinished { path: PathBuf },
    /// A stopped rewrite is to be resumed under other settings than it
    /// began with: rows already rewritten would get the rules twice.
    #[error(
        "a `kore-sync rewrite-privacy` to {was} was stopped halfway, and the configuration now asks for {now}; \
         set [privacy] (and messages.store_text) back as they were and run `kore-sync rewrite-privacy` to finish \
         it, then change the settings and run it again"
    )]
    RewriteTargetChanged { was: String, now: String },
    /// A stored record could not be re-read under new privacy settings.
    #[error(
        "could not apply the new privacy settings to stored record {id}: {detail}; nothing was changed"
    )]
    Rewrite { id: String, detail: String },
}

impl StoreError {
    /// Store errors are retryable only when another process holds the file
    /// for a moment (e.g. a tool opened it between passes).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Locked { .. })
    }
}

/// A write the file system refused, for a reason the operator can fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageProblem {
    NoSpace,
    PermissionDenied,
    ReadOnly,
}

impl StorageProblem {
    /// Recognises the problem in an error's text (DuckDB passes the
    /// operating system's words on, e.g. `No space left on device`).
    pub fn in_text(text: &str) -> Option<Self> {
        let text = text.to_ascii_lowercase();
        if text.contains("no space left on device") || text.contains("disk quota exceeded") {
            Some(StorageProblem::NoSpace)
        } else if text.contains("read-only file system") {
            Some(StorageProblem::ReadOnly)
        } else if text.contains("permission denied") || text.contains("operation not permitted") {
            Some(StorageProblem::PermissionDenied)
        } else {
            None
        }
    }

    /// Recognises the problem in a file operation's error.
    pub fn of_io(e: &std::io::Error) -> Option<Self> {
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                Some(StorageProblem::NoSpace)
            }
            std::io::ErrorKind::ReadOnlyFilesystem => Some(StorageProblem::ReadOnly),
            std::io::ErrorKind::PermissionDenied => Some(StorageProblem::PermissionDenied),
            _ => StorageProblem::in_text(&e.to_string()),
        }
    }

    /// What happened, in plain words.
    fn what(self) -> &'static str {
        match self {
            StorageProblem::NoSpace => "the disk is full",
            StorageProblem::PermissionDenied => "permission was denied",
            StorageProblem::ReadOnly => "the file system is read-only",
        }
    }

    /// What to do about it.
    fn fix(self) -> &'static str {
        match self {
            StorageProblem::NoSpace => {
                "Free space on that file system (the warehouse also needs room for its write-ahead log \
                 and its spill directory <warehouse>.tmp/), or move warehouse.path to a larger one, then run kore-sync again."
            }
            StorageProblem::PermissionDenied => {
                "Give the user kore-sync runs as write access to that file and its directory \
                 (under systemd: the unit's User= and StateDirectory=), then run kore-sync again."
            }
            StorageProblem::ReadOnly => {
                "Remount that file system read-write, or move warehouse.path (and warehouse.publish) to a writable one \
                 (under systemd: ProtectSystem= makes most of / read-only; use StateDirectory=), then run kore-sync again."
            }
        }
    }
}

/// The file a DuckDB error names (its first double-quoted text), if any.
fn quoted_path(text: &str) -> Option<PathBuf> {
    let start = text.find('"')? + 1;
    let len = text[start..].find('"')?;
    Some(PathBuf::from(&text[start..start + len]))
}

/// A DuckDB failure while `doing`: a refused write in plain words, else
/// the query's error.
pub(super) fn query_err(doing: &'static str, source: duckdb::Error) -> StoreError {
    let text = source.to_string();
    // DuckDB reports the spill limit as running out of memory; it names
    // its setting, which is ours to name instead.
    if text.contains("max_temp_directory_size") {
        return StoreError::TempFull {
            doing,
            used: memory_used(&text),
        };
    }
    if is_out_of_memory(&text) {
        return StoreError::OutOfMemory {
            doing,
            used: memory_used(&text),
        };
    }
    match StorageProblem::in_text(&text) {
        Some(problem) => StoreError::Storage {
            doing,
            problem,
            path: quoted_path(&text),
        },
        None => StoreError::Query { doing, source },
    }
}

/// Whether DuckDB's error is its buffer pool running out: an "Out of
/// Memory Error", or a commit that could not pin or allocate a block.
pub(super) fn is_out_of_memory(text: &str) -> bool {
    text.contains("Out of Memory Error")
        || text.contains("failed to pin block")
        || text.contains("could not allocate block")
        || text.contains("failed to allocate data")
}

/// What DuckDB's out-of-memory error says was in use ("54.0 MiB/61.0 MiB
/// used"), as "54.0 MiB of 61.0 MiB in use"; its advice to `SET
/// memory_limit` is left out, since kore-sync's setting is what to change.
fn memory_used(text: &str) -> String {
    let used = text.find('(').and_then(|start| {
        let inner = &text[start + 1..];
        let (of, _) = inner.split_once(" used)")?;
        let (a, b) = of.split_once('/')?;
        Some(format!("{a} of {b} in use"))
    });
    used.unwrap_or_else(|| "DuckDB could not allocate more".to_owned())
}

/// A file operation of publishing that failed, with the file.
pub(super) fn io_err(doing: &'static str, path: &Path, e: std::io::Error) -> StoreError {
    match StorageProblem::of_io(&e) {
        Some(problem) => StoreError::Storage {
            doing,
            problem,
            path: Some(path.to_owned()),
        },
        None => StoreError::Publish {
            doing,
            path: path.to_owned(),
            source: e,
        },
    }
}

pub(crate) trait QueryContext<T> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, duckdb::Error> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| query_err(doing, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_in_duckdbs_words_is_told_plainly_with_its_file() {
        let duckdb = "IO Error: Could not write file \"/var/lib/kore-sync/kore.duckdb.wal\": \
                      No space left on device\n\nError code 1: Unknown error code";
        let problem = StorageProblem::in_text(duckdb);
        assert_eq!(problem, Some(StorageProblem::NoSpace));
        let e = StoreError::Storage {
            doing: "storing sessions",
            problem: StorageProblem::NoSpace,
            path: quoted_path(duckdb),
        };
        let text = e.to_string();
        assert!(text.starts_with("the disk is full while storing sessions: could not write /var/lib/kore-sync/kore.duckdb.wal."), "{text}");
        assert!(text.contains("Nothing was lost"), "{text}");
        assert!(text.contains("Free space"), "{text}");
        assert!(!text.contains("Error code"), "{text}");
    }

    #[test]
    fn issue_22_out_of_memory_is_told_in_kore_syncs_words() {
        let duckdb = "Out of Memory Error: failed to allocate data of size 16.0 MiB (54.0 MiB/61.0 MiB used)\n\
                      Possible solutions:\n* Reducing the number of threads (SET threads=X)\n\
                      * Increasing the memory limit (SET memory_limit='...GB')";
        assert_eq!(memory_used(duckdb), "54.0 MiB of 61.0 MiB in use");
        let e = StoreError::OutOfMemory {
            doing: "storing messages",
            used: memory_used(duckdb),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("the warehouse ran out of memory while storing messages (54.0 MiB of 61.0 MiB in use). Nothing was lost"),
            "{text}"
        );
        assert!(
            text.contains("Raise warehouse.memory_limit (default 64MiB"),
            "{text}"
        );
        assert!(!text.contains("SET memory_limit"), "{text}");
        assert_eq!(
            memory_used("Out of Memory Error: odd"),
            "DuckDB could not allocate more"
        );
        // A commit's checkpoint says it in other words.
        let commit = "TransactionContext Error: Failed to commit: failed to pin block of size 256.0 KiB \
                      (31.9 MiB/32.0 MiB used)";
        assert!(is_out_of_memory(commit));
        assert_eq!(memory_used(commit), "31.9 MiB of 32.0 MiB in use");
        assert!(!is_out_of_memory(
            "Catalog Error: Table with name x does not exist"
        ));
    }

    #[test]
    fn permission_and_read_only_are_recognised_in_text_and_io_errors() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            StorageProblem::in_text("Cannot open file \"/x\": Permission denied"),
            Some(StorageProblem::PermissionDenied)
        );
        assert_eq!(
            StorageProblem::in_text("Could not write file \"/x\": Read-only file system"),
            Some(StorageProblem::ReadOnly)
        );
        assert_eq!(
            StorageProblem::of_io(&Error::from(ErrorKind::ReadOnlyFilesystem)),
            Some(StorageProblem::ReadOnly)
        );
        assert_eq!(
            StorageProblem::of_io(&Error::from_raw_os_error(28)),
            Some(StorageProblem::NoSpace)
        );
        assert_eq!(
            StorageProblem::in_text("Catalog Error: no such table"),
            None
        );
        let e = io_err(
            "renaming the read copy",
            Path::new("/srv/read.duckdb"),
            Error::from(ErrorKind::PermissionDenied),
        );
        assert!(e.to_string().starts_with("permission was denied while renaming the read copy: could not write /srv/read.duckdb."), "{e}");
    }
}
