//! Errors of the store layer.

use std::path::PathBuf;

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
    /// `rewrite-privacy` rewrote the rows but was stopped before it wrote
    /// the file anew.
    #[error(
        "a `kore-sync rewrite-privacy` of {path} was interrupted after it rewrote the rows but before it wrote \
         the file anew, so the file's free pages may still hold the old values; run `kore-sync rewrite-privacy` again"
    )]
    RewriteUnfinished { path: PathBuf },
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

/// A file operation of publishing that failed, with the file.
pub(super) fn io_err(doing: &'static str, path: &std::path::Path, e: std::io::Error) -> StoreError {
    StoreError::Publish {
        doing,
        path: path.to_owned(),
        source: e,
    }
}

pub(crate) trait QueryContext<T> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, duckdb::Error> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { doing, source })
    }
}
