//! Configuration in two stages (as ripgrep and atuin do it): `raw` is what
//! the layers say (defaults → TOML file → `KORE_SYNC__…` environment), and
//! [`validate`] turns it into a typed [`Config`] — one function per section
//! (`sections`, `scopes`), each returning its layer's own settings type —
//! reporting every problem at once, each with the key and the fix.
//!
//! Architecture invariant: nothing outside this module reads the file or the
//! environment for settings; everything downstream takes its own settings
//! value. `config` sits at the top of the library's layers: it imports the
//! settings types of the layers below and none of them imports it.

mod analytics;
mod collector;
mod credentials;
mod privacy;
pub mod raw;
mod scopes;
mod sections;
#[cfg(test)]
mod tests;
mod warehouse;

use crate::api::{ClientSettings, RetryPolicy};
use crate::ops::health::ServerSettings;
use crate::schedule::Trigger;
use crate::store::{ParquetTarget, UploadRetry, WarehouseSettings, is_object_url};
use crate::sync::{Scope, SyncSettings, SyncSetup};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use collector::Collector;
use raw::RawConfig;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment prefix: `KORE_SYNC__API__CLIENT_SECRET` sets `api.client_secret`.
pub const ENV_PREFIX: &str = "KORE_SYNC";

/// A validated configuration. Every field holds a usable value.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ClientSettings,
    pub warehouse: WarehouseSettings,
    pub sync: SyncSettings,
    /// When the daemon starts a pass.
    pub trigger: Trigger,
    /// When the daemon runs `verify` over the whole history (a cron
    /// expression); None: never.
    pub verify_schedule: Option<String>,
    /// Every scope to sync: each `[[bots]]` entry, then `[account]` (keyed
    /// `*`) if present. Never empty.
    pub scopes: Vec<Scope>,
    pub server: ServerSettings,
    /// Things worth a warning at start that do not stop it (e.g. a secret
    /// file readable by others).
    pub warnings: Vec<String>,
}

impl Config {
    /// What the sync engine needs of this configuration.
    pub fn sync_setup(&self) -> SyncSetup<'_> {
        SyncSetup {
            client: &self.api,
            sync: &self.sync,
            scopes: &self.scopes,
            warehouse: &self.warehouse,
        }
    }
}

/// The config file to read: `--config`, else `$KORE_SYNC_CONFIG`, else
/// `kore-sync.toml` in the working directory.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("KORE_SYNC_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("kore-sync.toml"))
}

/// Whether stderr goes to systemd's journal (`$JOURNAL_STREAM` is set),
/// which stamps every line itself.
pub fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

/// The log filter `$KORE_SYNC_LOG` sets (tracing's EnvFilter syntax), if any.
pub fn log_filter() -> Option<String> {
    std::env::var("KORE_SYNC_LOG").ok()
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no config file at {path}: pass --config PATH, set KORE_SYNC_CONFIG, or copy \
         deploy/kore-sync.example.toml there (to try kore-sync without credentials, run `kore-sync demo`)"
    )]
    NotFound { path: PathBuf },
    #[error("could not read the configuration from {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the configuration has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.0 {
            write!(f, "\n  - {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

/// Loads and validates: the TOML file at `path`, then `KORE_SYNC__` variables.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    validate(load_raw(path)?)
}

/// Stage one: the TOML file at `path`, then `KORE_SYNC__` variables.
fn load_raw(path: &Path) -> Result<RawConfig, ConfigError> {
    if !path.exists() {
        return Err(ConfigError::NotFound {
            path: path.to_owned(),
        });
    }
    let env = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("sync.containment_types");
    deserialize(
        config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(env),
        path,
    )
}

/// Validates a TOML text with no environment layer (tests, the demo).
pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
    validate(deserialize(
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml)),
        Path::new("<inline>"),
    )?)
}

fn deserialize(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    path: &Path,
) -> Result<RawConfig, ConfigError> {
    let load_err = |e: config::ConfigError| ConfigError::Load {
        path: path.to_owned(),
        message: e.to_string(),
    };
    builder
        .build()
        .map_err(load_err)?
        .try_deserialize()
        .map_err(|e| match e {
            // serde's message for a typo names the key and the accepted ones.
            config::ConfigError::Message(m) if m.contains("unknown field") => {
                ConfigError::Invalid(vec![Problem {
                    key: "config".into(),
                    message: format!("{m}; remove or correct the key"),
                }])
            }
            other => load_err(other),
        })
}

/// Stage two: every section checked, all problems collected.
pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut p = Collector::default();
    let api = sections::api(&raw.api, &mut p);
    let env = warehouse::object_store_env();
    let inputs = warehouse::WarehouseInputs {
        retry: upload_retry(api.as_ref().map_or(&RetryPolicy::default(), |a| &a.retry)),
        env: &env,
    };
    let warehouse = warehouse::warehouse(&raw.warehouse, &inputs, &mut p);
    let sync = sections::sync(&raw.sync, &mut p);
    let messages = sections::messages(&raw.messages, &mut p);
    let analytics = analytics::analytics(&raw.analytics, &mut p);
    let mut warnings = Vec::new();
    let scopes = scopes::scopes(&raw, &mut p, &mut warnings);
    let store_text = raw.messages.store_text.unwrap_or(true);
    let privacy = privacy::privacy(&raw.privacy, store_text, &mut p, &mut warnings);
    if let Some(rules) = privacy.as_ref().filter(|r| r.user_id_fields()) {
        privacy::no_user_filters(rules, &scopes, &mut p);
    }
    let server = sections::server(&raw.server, sync.as_ref().map(|(_, s)| &s.trigger), &mut p);
    match (api, warehouse, sync, server, (messages, analytics, privacy)) {
        (
            Some(api),
            Some(warehouse),
            Some((mut sync, schedule)),
            Some(server),
            (Some(messages), Some(analytics), Some(privacy)),
        ) if p.is_empty() => {
            sync.messages = messages;
            sync.analytics = analytics;
            sync.privacy = privacy;
            Ok(Config {
                api,
                warehouse,
                sync,
                trigger: schedule.trigger,
                verify_schedule: schedule.verify,
                scopes,
                server,
                warnings,
            })
        }
        _ => {
            debug_assert!(!p.is_empty(), "every None above pushed a problem");
            Err(ConfigError::Invalid(p.0))
        }
    }
}

/// For the commands that only read the warehouse (`status`, `export`,
/// `query`): validates `[warehouse]` alone, so a config without API
/// credentials or bots is enough.
pub fn load_warehouse(path: &Path) -> Result<WarehouseSettings, ConfigError> {
    let raw = load_raw(path)?;
    let mut p = Collector::default();
    let env = warehouse::object_store_env();
    let inputs = warehouse::WarehouseInputs {
        retry: upload_retry(&RetryPolicy::default()),
        env: &env,
    };
    match warehouse::warehouse(&raw.warehouse, &inputs, &mut p) {
        Some(w) if p.is_empty() => Ok(w),
        _ => Err(ConfigError::Invalid(p.0)),
    }
}

/// The warehouse settings of a bare file (`--db FILE`): no read copy, no
/// export, the default storage format.
pub fn warehouse_at(path: &Path) -> WarehouseSettings {
    let raw = raw::RawWarehouse {
        path: Some(path.display().to_string()),
        publish: Some(raw::PathOrOff::Flag(false)),
        ..Default::default()
    };
    let inputs = warehouse::WarehouseInputs {
        retry: upload_retry(&RetryPolicy::default()),
        env: &[],
    };
    warehouse::warehouse(&raw, &inputs, &mut Collector::default())
        .expect("a bare path with defaults is valid")
}

/// The target of `kore-sync export --parquet`: a local directory (as
/// given), or an object store URL configured from the environment and, if
/// the config file at `path` has one, its `[warehouse.s3]` table.
pub fn export_target(text: &str, path: &Path) -> Result<ParquetTarget, ConfigError> {
    if !is_object_url(text) {
        return Ok(ParquetTarget::Dir(PathBuf::from(text)));
    }
    let s3 = if path.exists() {
        load_raw(path)?.warehouse.s3
    } else {
        None
    };
    let raw = raw::RawWarehouse {
        parquet_dir: Some(text.to_owned()),
        s3,
        ..Default::default()
    };
    let env = warehouse::object_store_env();
    let inputs = warehouse::WarehouseInputs {
        retry: upload_retry(&RetryPolicy::default()),
        env: &env,
    };
    let mut p = Collector::default();
    match warehouse::warehouse(&raw, &inputs, &mut p).and_then(|w| w.parquet) {
        Some(target) if p.is_empty() => Ok(target),
        _ => Err(ConfigError::Invalid(p.0)),
    }
}

fn upload_retry(policy: &RetryPolicy) -> UploadRetry {
    UploadRetry {
        max_retries: policy.max_retries,
        base_delay: policy.base_delay,
        max_delay: policy.max_delay,
    }
}

/// Parses a date or timestamp the way the API documents them, as GMT:
/// `yyyy-mm-dd` (midnight), `yyyy-mm-ddThh:mm:ss[.mmm]` without a zone, or
/// full RFC 3339 with `Z` or an offset.
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    Err(format!(
        "{s:?} is not a date; write yyyy-mm-dd or yyyy-mm-ddThh:mm:ss.mmmZ (GMT), e.g. \"2025-01-01\""
    ))
}
