//! `[warehouse]`: the warehouse file, the read copy, the Parquet export
//! (a directory or an object store) and the storage format readers need.
//! Validated on its own too, for the commands that only read the warehouse
//! (`status`, `export`, `query`) and so need no API settings.

use super::collector::Collector;
use super::raw::{PathOrOff, RawS3, RawWarehouse};
use crate::store::{
    DEFAULT_MAX_TEMP_SIZE, DEFAULT_MEMORY_LIMIT, DEFAULT_STORAGE_VERSION, FileModes,
    MIN_MAX_TEMP_SIZE, MIN_MEMORY_LIMIT, ObjectTarget, ParquetTarget, ReadCopyForm, UploadRetry,
    WarehouseSettings, is_object_url,
};
use std::path::{Path, PathBuf};

/// The environment variables an object store is configured from: the
/// standard `AWS_*` (and `GOOGLE_*`, `AZURE_*`) names, as `object_store`
/// reads them. Read here, with every other setting.
pub(super) fn object_store_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// What `[warehouse]` needs beside its own table.
pub(super) struct WarehouseInputs<'a> {
    /// The API's backoff, which uploads use too.
    pub retry: UploadRetry,
    /// `object_store_env()`, or a test's stand-in.
    pub env: &'a [(String, String)],
}

/// `[warehouse]`. The read copy sits beside the warehouse unless told
/// otherwise; relative paths are taken relative to the warehouse's
/// directory.
pub(super) fn warehouse(
    raw: &RawWarehouse,
    inputs: &WarehouseInputs<'_>,
    p: &mut Collector,
) -> Option<WarehouseSettings> {
    let path = PathBuf::from(raw.path.as_deref().unwrap_or("kore.duckdb"));
    let beside = |name: &str| -> PathBuf {
        let name = PathBuf::from(name);
        if name.is_absolute() {
            name
        } else {
            path.parent().unwrap_or(Path::new("")).join(name)
        }
    };
    let publish = match &raw.publish {
        None | Some(PathOrOff::Flag(true)) => Some(beside("kore-read.duckdb")),
        Some(PathOrOff::Flag(false)) => None,
        Some(PathOrOff::Path(p)) if p.trim().is_empty() => None,
        Some(PathOrOff::Path(p)) => Some(beside(p)),
    };
    let publish = if publish.as_deref() == Some(path.as_path()) {
        p.push(
            "warehouse.publish",
            "is the warehouse itself; name another file (e.g. \"kore-read.duckdb\") or set it to false".into(),
        )
    } else {
        Some(publish)
    };
    let parquet =
        match raw.parquet_dir.as_deref().map(str::trim) {
            None | Some("") => no_s3_without_url(raw.s3.as_ref(), p),
            // No early return: every other key is still checked.
            Some(text) if is_object_url(text) => object_target(text, raw.s3.as_ref(), inputs, p)
                .map(|t| Some(ParquetTarget::Object(t))),
            Some(text) => no_s3_without_url(raw.s3.as_ref(), p)
                .map(|_| Some(ParquetTarget::Dir(beside(text)))),
        };
    let read_copy_form = read_copy_form(raw.publish_as.as_deref(), parquet.as_ref(), p);
    let storage_version = storage_version(raw.storage_version.as_deref(), p);
    let defaults = FileModes::default();
    let modes = (
        file_mode(
            "warehouse.file_mode",
            raw.file_mode.as_deref(),
            defaults.warehouse,
            p,
        ),
        file_mode(
            "warehouse.publish_mode",
            raw.publish_mode.as_deref(),
            defaults.published,
            p,
        ),
    );
    let publish_interval = p.duration(
        "warehouse.publish_interval",
        raw.publish_interval.as_deref(),
        "0s",
    );
    let memory_limit = p.byte_size(
        "warehouse.memory_limit",
        raw.memory_limit.as_deref(),
        (DEFAULT_MEMORY_LIMIT, MIN_MEMORY_LIMIT),
    );
    let max_temp_size = p.byte_size(
        "warehouse.max_temp_size",
        raw.max_temp_size.as_deref(),
        (DEFAULT_MAX_TEMP_SIZE, MIN_MAX_TEMP_SIZE),
    );
    Some(WarehouseSettings {
        path,
        publish: publish?,
        parquet: parquet?,
        storage_version: storage_version?,
        publish_interval: publish_interval?,
        read_copy_form: read_copy_form?,
        memory_limit: memory_limit?,
        max_temp_size: max_temp_size?,
        modes: FileModes {
            warehouse: modes.0?,
            published: modes.1?,
        },
    })
}

/// An octal permission such as "0640": owner read and write at least.
fn file_mode(key: &str, text: Option<&str>, default: u32, p: &mut Collector) -> Option<u32> {
    let Some(text) = text.map(str::trim) else {
        return Some(default);
    };
    match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o777 && m & 0o600 == 0o600 => Some(m),
        _ => p.push(
            key,
            format!(
                "{text:?} is not a file mode kore-sync can use; write octal permissions that let \
                 the owner read and write, e.g. \"{default:04o}\""
            ),
        ),
    }
}

/// `warehouse.publish_as`: `"copy"` (a full copy) or `"views"` (a catalog
/// over the Parquet export, which must then be a local directory).
fn read_copy_form(
    text: Option<&str>,
    parquet: Option<&Option<ParquetTarget>>,
    p: &mut Collector,
) -> Option<ReadCopyForm> {
    match text.map(str::trim).unwrap_or("copy") {
        "copy" => Some(ReadCopyForm::Copy),
        "views" => match parquet {
            Some(Some(ParquetTarget::Dir(dir))) => Some(ReadCopyForm::Views {
                parquet_dir: dir.clone(),
            }),
            // A bad parquet_dir has its own problem already.
            None => None,
            Some(_) => p.push(
                "warehouse.publish_as",
                "\"views\" reads the Parquet export: set warehouse.parquet_dir to a local directory".into(),
            ),
        },
        other => p.push(
            "warehouse.publish_as",
            format!(
                "{other:?} is not a publish mode; write \"copy\" (a full copy each time) or \"views\" \
                 (a small catalog over the Parquet export: costs what changed)"
            ),
        ),
    }
}

/// `[warehouse.s3]` only makes sense with an `s3://` export.
fn no_s3_without_url(s3: Option<&RawS3>, p: &mut Collector) -> Option<Option<ParquetTarget>> {
    match s3 {
        None => Some(None),
        Some(_) => p.push(
            "warehouse.s3",
            "is set but warehouse.parquet_dir is not an s3:// URL; set parquet_dir = \"s3://bucket/prefix\" or remove [warehouse.s3]".into(),
        ),
    }
}

/// An object store export: the URL, and its options from the environment
/// with `[warehouse.s3]` laid over them.
fn object_target(
    text: &str,
    s3: Option<&RawS3>,
    inputs: &WarehouseInputs<'_>,
    p: &mut Collector,
) -> Option<ObjectTarget> {
    let url = match url::Url::parse(text) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => u,
        _ => {
            return p.push(
                "warehouse.parquet_dir",
                format!("{text:?} names no bucket; write e.g. \"s3://my-bucket/kore-sync\""),
            );
        }
    };
    if s3.is_some() && !matches!(url.scheme(), "s3" | "s3a") {
        return no_s3_without_url(s3, p).and(None);
    }
    let mut options = inputs.env.to_vec();
    if let Some(s3) = s3 {
        let set = [
            ("aws_endpoint", s3.endpoint.clone()),
            ("aws_region", s3.region.clone()),
            ("aws_access_key_id", s3.access_key_id.clone()),
            ("aws_secret_access_key", s3.secret_access_key.clone()),
            ("aws_session_token", s3.session_token.clone()),
            ("aws_allow_http", s3.allow_http.map(|b| b.to_string())),
            (
                "aws_virtual_hosted_style_request",
                s3.virtual_hosted_style_request.map(|b| b.to_string()),
            ),
        ];
        for (key, value) in set {
            if let Some(value) = value {
                // The environment names the endpoint `aws_endpoint_url`;
                // the table's key replaces either spelling.
                options.retain(|(k, _)| {
                    k != key && !(key == "aws_endpoint" && k == "aws_endpoint_url")
                });
                options.push((key.to_owned(), value));
            }
        }
    }
    Some(ObjectTarget {
        url,
        options,
        retry: inputs.retry,
    })
}

/// `warehouse.storage_version`: a DuckDB storage format, `vMAJOR.MINOR.PATCH`.
fn storage_version(text: Option<&str>, p: &mut Collector) -> Option<String> {
    let v = text.unwrap_or(DEFAULT_STORAGE_VERSION).trim();
    let parts: Vec<&str> = v.strip_prefix('v').unwrap_or("").split('.').collect();
    let numeric = |n: &&str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    if parts.len() == 3 && parts.iter().all(numeric) {
        Some(v.to_owned())
    } else {
        p.push(
            "warehouse.storage_version",
            format!(
                "{v:?} is not a DuckDB storage version; write e.g. \"{DEFAULT_STORAGE_VERSION}\" \
                 (the oldest DuckDB that must read the files)"
            ),
        )
    }
}
