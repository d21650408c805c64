//! Where the Parquet export lands: a local directory, or an object store
//! (`s3://`, `gs://`, `az://`) written with Apache Arrow's `object_store`.
//!
//! A partition is first written to a local file, then put in place whole:
//! in a directory by a rename, in an object store by one PUT (or one
//! multipart upload, which the store also makes visible only when it
//! completes). Either way a reader sees the old day or the new day, never
//! half of one.
//!
//! Architecture invariant: the options of an object store (which may hold
//! secrets) are never printed; `Debug` and `Display` show the URL and the
//! option names only.

use super::error::{StorageProblem, StoreError, io_err};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload, RetryConfig};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A day file at least this large is uploaded in parts (S3 allows parts of
/// 5 MiB and more); smaller ones go in one PUT.
const MULTIPART_FROM: usize = 16 * 1024 * 1024;

/// Where the Parquet export goes (`warehouse.parquet_dir`).
#[derive(Debug, Clone, PartialEq)]
pub enum ParquetTarget {
    Dir(PathBuf),
    Object(ObjectTarget),
}

impl fmt::Display for ParquetTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParquetTarget::Dir(d) => write!(f, "{}", d.display()),
            ParquetTarget::Object(o) => write!(f, "{}", o.url),
        }
    }
}

/// An object store location and how to reach it.
#[derive(Clone, PartialEq)]
pub struct ObjectTarget {
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`.
    pub url: url::Url,
    /// `object_store` configuration keys and values (e.g. `aws_endpoint`,
    /// `aws_secret_access_key`), from the environment and `[warehouse.s3]`.
    /// They may hold secrets: never printed.
    pub options: Vec<(String, String)>,
    /// How failed requests are retried: the API's backoff settings.
    pub retry: UploadRetry,
}

/// Exponential backoff for uploads, the same settings the API client uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UploadRetry {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl fmt::Debug for ObjectTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ObjectTarget")
            .field("url", &self.url.as_str())
            .field("option_keys", &keys)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The URL schemes `object_store` handles here.
pub fn is_object_url(text: &str) -> bool {
    [
        "s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "azure://",
    ]
    .iter()
    .any(|s| text.starts_with(s))
}

/// The open export target: what the export loop writes through.
pub(super) enum Sink {
    /// A directory, and the permissions of the files put there.
    Dir(PathBuf, u32),
    Object {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        /// Local files are staged here before upload (beside the warehouse).
        staging: PathBuf,
    },
}

fn lake_err(doing: &'static str, target: &str, e: impl fmt::Display) -> StoreError {
    let detail = e.to_string();
    // A local directory (or the staging one) that refuses the write.
    if let Some(problem) = StorageProblem::in_text(&detail) {
        return StoreError::Storage {
            doing,
            problem,
            path: Some(PathBuf::from(target)),
        };
    }
    StoreError::Lake {
        doing,
        target: target.to_owned(),
        detail,
    }
}

impl Sink {
    /// Opens `target`; `staging` is a local directory for files on their way
    /// to an object store.
    pub(super) fn open(
        target: &ParquetTarget,
        staging: &Path,
        mode: u32,
    ) -> Result<Sink, StoreError> {
        let object = match target {
            ParquetTarget::Dir(d) => return Ok(Sink::Dir(d.clone(), mode)),
            ParquetTarget::Object(o) => o,
        };
        let url = object.url.as_str();
        let (scheme, path) = ObjectStoreScheme::parse(&object.url)
            .map_err(|e| lake_err("reading the URL", url, e))?;
        let retry = RetryConfig {
            max_retries: object.retry.max_retries as usize,
            retry_timeout: Duration::from_secs(300),
            backoff: object_store::BackoffConfig {
                init_backoff: object.retry.base_delay,
                max_backoff: object.retry.max_delay,
                base: 2.0,
            },
        };
        let store =
            build_store(scheme, object, retry).map_err(|e| lake_err("connecting", url, e))?;
        let prefix = ObjectPath::parse(path).map_err(|e| lake_err("reading the URL", url, e))?;
        std::fs::create_dir_all(staging)
            .map_err(|e| io_err("creating the upload staging directory", staging, e))?;
        super::set_mode(staging, 0o700)
            .map_err(|e| io_err("restricting the upload staging directory", staging, e))?;
        Ok(Sink::Object {
            store,
            prefix,
            staging: staging.to_owned(),
        })
    }

    /// The relative name of a partition: `table/date=YYYY-MM-DD/data.parquet`.
    pub(super) fn partition_name(table: &str, day: &str) -> String {
        format!("{table}/date={day}/data.parquet")
    }

    /// The local file a partition is written to before it is put in place.
    pub(super) fn stage_path(&self, table: &str, day: &str) -> Result<PathBuf, StoreError> {
        let path = match self {
            Sink::Dir(dir, _) => {
                let part = dir.join(table).join(format!("date={day}"));
                std::fs::create_dir_all(&part)
                    .map_err(|e| io_err("creating a partition", &part, e))?;
                part.join(".data.parquet.tmp")
            }
            Sink::Object { staging, .. } => staging.join(format!("{table}-{day}.parquet")),
        };
        Ok(path)
    }

    /// Puts a staged partition in place, whole.
    pub(super) async fn put(
        &self,
        table: &str,
        day: &str,
        staged: &Path,
    ) -> Result<(), StoreError> {
        let name = Self::partition_name(table, day);
        match self {
            Sink::Dir(dir, mode) => put_file(staged, &dir.join(&name), *mode).await,
            Sink::Object { store, prefix, .. } => {
                let bytes = tokio::fs::read(staged)
                    .await
                    .map_err(|e| io_err("reading a staged partition", staged, e))?;
                upload(store.as_ref(), &child(prefix, &name), bytes).await?;
                let _ = tokio::fs::remove_file(staged).await;
                Ok(())
            }
        }
    }

    /// Removes a partition whose day has no rows left.
    pub(super) async fn remove(&self, table: &str, day: &str) -> Result<(), StoreError> {
        let name = Self::partition_name(table, day);
        match self {
            Sink::Dir(dir, _) => {
                let part = dir.join(table).join(format!("date={day}"));
                match tokio::fs::remove_dir_all(&part).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_err("removing an emptied partition", &part, e)),
                }
            }
            Sink::Object { store, prefix, .. } => match store.delete(&child(prefix, &name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(lake_err("removing an emptied partition", &name, e)),
            },
        }
    }

    /// Writes `_kore_sync/manifest.json`, whole.
    pub(super) async fn put_manifest(&self, json: Vec<u8>) -> Result<(), StoreError> {
        const NAME: &str = "_kore_sync/manifest.json";
        match self {
            Sink::Dir(dir, mode) => {
                let target = dir.join(NAME);
                let parent = target.parent().expect("the manifest has a directory");
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| io_err("creating the manifest's directory", parent, e))?;
                let tmp = parent.join(".manifest.json.tmp");
                tokio::fs::write(&tmp, json)
                    .await
                    .map_err(|e| io_err("writing the manifest", &tmp, e))?;
                put_file(&tmp, &target, *mode).await
            }
            Sink::Object { store, prefix, .. } => {
                upload(store.as_ref(), &child(prefix, NAME), json).await
            }
        }
    }
}

fn child(prefix: &ObjectPath, name: &str) -> ObjectPath {
    name.split('/')
        .fold(prefix.clone(), |p, part| p.clone().join(part))
}

/// Syncs a local file, gives it `mode`, and renames it over `target`.
async fn put_file(staged: &Path, target: &Path, mode: u32) -> Result<(), StoreError> {
    let (staged, target) = (staged.to_owned(), target.to_owned());
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&staged)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err("syncing a Parquet file", &staged, e))?;
        super::set_mode(&staged, mode)
            .map_err(|e| io_err("setting a Parquet file's permissions", &staged, e))?;
        std::fs::rename(&staged, &target)
            .map_err(|e| io_err("moving a Parquet file into place", &target, e))
    })
    .await
    .map_err(|e| StoreError::Worker(e.to_string()))?
}

/// One object, whole: a single PUT, or a multipart upload for large files
/// (the object appears only when the upload completes). Failed requests are
/// retried by the store with the configured backoff.
async fn upload(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    bytes: Vec<u8>,
) -> Result<(), StoreError> {
    let key = path.to_string();
    if bytes.len() < MULTIPART_FROM {
        store
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(|e| lake_err("uploading", &key, e))?;
        return Ok(());
    }
    let mut upload = store
        .put_multipart(path)
        .await
        .map_err(|e| lake_err("starting a multipart upload", &key, e))?;
    let result = async {
        for part in bytes.chunks(MULTIPART_FROM / 2) {
            upload.put_part(PutPayload::from(part.to_vec())).await?;
        }
        upload.complete().await
    }
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = upload.abort().await;
            Err(lake_err("uploading in parts", &key, e))
        }
    }
}

fn build_store(
    scheme: ObjectStoreScheme,
    target: &ObjectTarget,
    retry: RetryConfig,
) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
    let url = target.url.as_str();
    let opts = target.options.iter();
    Ok(match scheme {
        ObjectStoreScheme::AmazonS3 => Arc::new(
            opts.filter_map(|(k, v)| Some((k.parse::<AmazonS3ConfigKey>().ok()?, v)))
                .fold(AmazonS3Builder::new().with_url(url), |b, (k, v)| {
                    b.with_config(k, v)
                })
                .with_retry(retry)
                .build()?,
        ),
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            opts.filter_map(|(k, v)| Some((k.parse::<GoogleConfigKey>().ok()?, v)))
                .fold(
                    GoogleCloudStorageBuilder::new().with_url(url),
                    |b, (k, v)| b.with_config(k, v),
                )
                .with_retry(retry)
                .build()?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            opts.filter_map(|(k, v)| Some((k.parse::<AzureConfigKey>().ok()?, v)))
                .fold(MicrosoftAzureBuilder::new().with_url(url), |b, (k, v)| {
                    b.with_config(k, v)
                })
                .with_retry(retry)
                .build()?,
        ),
        other => {
            return Err(object_store::Error::NotSupported {
                source: format!("{other:?} is not an object store kore-sync writes to").into(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_option_values() {
        let target = ObjectTarget {
            url: url::Url::parse("s3://lake/kore").unwrap(),
            options: vec![("aws_secret_access_key".into(), "hunter2-secret".into())],
            retry: UploadRetry {
                max_retries: 1,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
            },
        };
        let shown = format!("{target:?} {}", ParquetTarget::Object(target.clone()));
        assert!(shown.contains("aws_secret_access_key"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn object_urls_are_told_from_paths() {
        assert!(is_object_url("s3://bucket/prefix"));
        assert!(is_object_url("gs://bucket"));
        assert!(is_object_url("az://container/p"));
        assert!(!is_object_url("/var/lib/kore/parquet"));
        assert!(!is_object_url("parquet"));
    }

    #[test]
    fn partition_keys_sit_under_the_prefix() {
        let prefix = ObjectPath::parse("kore/lake").unwrap();
        let key = child(&prefix, &Sink::partition_name("sessions", "2026-01-02"));
        assert_eq!(
            key.as_ref(),
            "kore/lake/sessions/date=2026-01-02/data.parquet"
        );
    }
}
