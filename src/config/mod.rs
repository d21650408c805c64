//! Configuration in two stages (as ripgrep and atuin do it): `raw` is what
//! the layers say (defaults → TOML file → `KORE_SYNC__…` environment), and
//! [`validate`] turns it into a typed [`Config`], reporting every problem at
//! once, each with the key and the fix.
//!
//! Architecture invariant: nothing outside this module reads the file or the
//! environment for settings; everything downstream takes a `Config`.

pub mod raw;

use crate::api::{Credentials, RetryPolicy};
use crate::model::{ACCOUNT_BOT_ID, ContainmentType};
use crate::secret::Secret;
use crate::sync::plan::{API_MAX_SPAN, PlanSettings};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use raw::{RawConfig, RawCredentials};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// The environment prefix: `KORE_SYNC__API__CLIENT_SECRET` sets `api.client_secret`.
pub const ENV_PREFIX: &str = "KORE_SYNC";

/// A validated configuration. Every field holds a usable value.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiSettings,
    pub warehouse: WarehouseSettings,
    pub sync: SyncSettings,
    /// Every scope to sync: each `[[bots]]` entry, then `[account]` (keyed
    /// `*`) if present. Never empty.
    pub scopes: Vec<ScopeConfig>,
    pub server: ServerSettings,
    /// Things worth a warning at start that do not stop it (e.g. a secret
    /// file readable by others).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub base_url: Url,
    /// Always asked for when the server refuses larger pages.
    pub page_size: u32,
    /// Asked for first; the server's clamp is learned (`api::PageSize`).
    /// Invariant: `max_page_size >= page_size`.
    pub max_page_size: u32,
    pub timeout: Duration,
    /// 0 = unlimited.
    pub requests_per_minute: u32,
    /// 0 = unlimited.
    pub requests_per_hour: u32,
    pub retry: RetryPolicy,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where `/healthz` and `/metrics` are served; None = off.
    pub listen: Option<std::net::SocketAddr>,
    /// `/healthz` is 503 when a stream's last good pass is older than this.
    pub max_pass_age: Duration,
}

#[derive(Debug, Clone)]
pub struct WarehouseSettings {
    pub path: PathBuf,
    /// Where the read copy is published after each successful pass; None = off.
    pub publish: Option<PathBuf>,
    /// Where changed sessions and tags are exported as hive-partitioned
    /// Parquet after each successful pass; None = off.
    pub parquet_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub plan: PlanSettings,
    /// When a stream's filter changes, read it again from `start` (true) or
    /// keep the watermark (false).
    pub restart_on_filter_change: bool,
    /// A pass stops (committed windows kept) when it runs longer than this.
    pub pass_deadline: Duration,
    pub trigger: Trigger,
    pub containment_types: Vec<ContainmentType>,
}

/// When `run` starts a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Interval(Duration),
    /// A cron expression with seconds, as tokio-cron-scheduler reads it.
    Cron(String),
}

/// One bot, or the account scope, with the credentials to use for it.
#[derive(Debug, Clone)]
pub struct ScopeConfig {
    pub bot_id: String,
    pub credentials: Credentials,
    pub filter: crate::model::StreamFilter,
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
    load_from(
        config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(env),
        path,
    )
}

/// Validates a TOML text with no environment layer (tests, the demo).
pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
    load_from(
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml)),
        Path::new("<inline>"),
    )
}

fn load_from(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    path: &Path,
) -> Result<Config, ConfigError> {
    let load_err = |e: config::ConfigError| ConfigError::Load {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let raw: RawConfig = builder
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
        })?;
    validate(raw)
}

/// Stage two: every check, all problems collected.
pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut p = Collector::default();

    // [api]
    let base_url_text = raw
        .api
        .base_url
        .clone()
        .unwrap_or_else(|| "https://bots.kore.ai".into());
    let base_url = match Url::parse(&base_url_text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Ok(_) => p.push("api.base_url", format!("{base_url_text:?} must be an http(s) URL with a host, e.g. \"https://bots.kore.ai\"")),
        Err(e) => p.push("api.base_url", format!("{base_url_text:?} is not a URL ({e}); use e.g. \"https://bots.kore.ai\"")),
    };
    let page_size = p.int_in("api.page_size", raw.api.page_size, 100, 1, 10_000);
    let max_page_size = p.int_in(
        "api.max_page_size",
        raw.api.max_page_size,
        page_size.max(1000),
        1,
        10_000,
    );
    if max_page_size < page_size {
        p.push::<()>(
            "api.max_page_size",
            format!(
                "{max_page_size} is below api.page_size ({page_size}); raise it, or set it equal to \
                 api.page_size to always ask for that many"
            ),
        );
    }
    let timeout = p.duration("api.timeout", raw.api.timeout.as_deref(), "30s");
    if timeout.is_some_and(|t| t.is_zero()) {
        p.push::<()>(
            "api.timeout",
            "must be longer than zero, e.g. \"30s\"".into(),
        );
    }
    let rpm = p.int_in(
        "api.requests_per_minute",
        raw.api.requests_per_minute,
        60,
        0,
        1_000_000,
    );
    let rph = p.int_in(
        "api.requests_per_hour",
        raw.api.requests_per_hour,
        1800,
        0,
        100_000_000,
    );
    let max_retries = p.int_in("api.max_retries", raw.api.max_retries, 8, 0, 100);
    let retry_base_delay = p.duration(
        "api.retry_base_delay",
        raw.api.retry_base_delay.as_deref(),
        "500ms",
    );

    // [warehouse]
    let warehouse_path = PathBuf::from(
        raw.warehouse
            .path
            .clone()
            .unwrap_or_else(|| "kore.duckdb".into()),
    );
    // The read copy sits beside the warehouse unless told otherwise; a
    // relative path is taken relative to the warehouse's directory.
    let beside = |p: &str| -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            warehouse_path.parent().unwrap_or(Path::new("")).join(p)
        }
    };
    let publish = match &raw.warehouse.publish {
        None | Some(raw::PathOrOff::Flag(true)) => Some(beside("kore-read.duckdb")),
        Some(raw::PathOrOff::Flag(false)) => None,
        Some(raw::PathOrOff::Path(p)) if p.trim().is_empty() => None,
        Some(raw::PathOrOff::Path(p)) => Some(beside(p)),
    };
    if publish.as_deref() == Some(warehouse_path.as_path()) {
        p.push::<()>(
            "warehouse.publish",
            "is the warehouse itself; name another file (e.g. \"kore-read.duckdb\") or set it to false".into(),
        );
    }
    let parquet_dir = raw
        .warehouse
        .parquet_dir
        .as_deref()
        .filter(|d| !d.trim().is_empty())
        .map(beside);

    // [sync]
    let start_text = raw
        .sync
        .start
        .clone()
        .unwrap_or_else(|| "2025-01-01T00:00:00Z".into());
    let start = match parse_instant(&start_text) {
        Ok(t) => Some(t),
        Err(e) => p.push("sync.start", e),
    };
    let window = p.duration("sync.window", raw.sync.window.as_deref(), "6d");
    if let Some(w) = window {
        if w.is_zero() {
            p.push::<()>(
                "sync.window",
                "must be longer than zero; \"6d\" is the usual choice".into(),
            );
        } else if w >= API_MAX_SPAN.to_std().expect("positive") {
            p.push::<()>(
                "sync.window",
                format!(
                    "{} is 7 days or more, which the API refuses; use at most \"6d\" (or e.g. \"6d 23h\")",
                    humantime::format_duration(w)
                ),
            );
        }
    }
    let lag = p.duration("sync.lag", raw.sync.lag.as_deref(), "5m");
    let lookback = p.duration("sync.lookback", raw.sync.lookback.as_deref(), "1h");
    let pass_deadline = p.duration(
        "sync.pass_deadline",
        raw.sync.pass_deadline.as_deref(),
        "1h",
    );
    if pass_deadline.is_some_and(|d| d.is_zero()) {
        p.push::<()>(
            "sync.pass_deadline",
            "must be longer than zero, e.g. \"1h\"".into(),
        );
    }
    let trigger = match (&raw.sync.interval, &raw.sync.schedule) {
        (Some(_), Some(_)) => p.push(
            "sync.schedule",
            "both sync.interval and sync.schedule are set; keep only one".into(),
        ),
        (None, Some(expr)) => match tokio_cron_scheduler::Job::new_async(expr.as_str(), |_, _| Box::pin(async {})) {
            Ok(_) => Some(Trigger::Cron(expr.clone())),
            Err(e) => p.push(
                "sync.schedule",
                format!("{expr:?} is not a cron expression ({e}); it takes six fields with seconds first, e.g. \"0 */15 * * * *\""),
            ),
        },
        (interval, None) => match p.duration("sync.interval", interval.as_deref(), "15m") {
            Some(d) if d.is_zero() => p.push("sync.interval", "must be longer than zero, e.g. \"15m\"".into()),
            Some(d) => Some(Trigger::Interval(d)),
            None => None,
        },
    };
    let containment_types = match &raw.sync.containment_types {
        None => ContainmentType::ALL.to_vec(),
        Some(list) => {
            let mut out = Vec::new();
            for name in list {
                match ContainmentType::parse(name.trim()) {
                    Some(c) if !out.contains(&c) => out.push(c),
                    Some(_) => {
                        p.push::<()>(
                            "sync.containment_types",
                            format!("{name:?} is listed twice; list each once"),
                        );
                    }
                    None => {
                        p.push::<()>(
                            "sync.containment_types",
                            format!("{name:?} is not a containment type; use \"selfService\", \"dropOff\" or \"agent\""),
                        );
                    }
                }
            }
            if list.is_empty() {
                p.push::<()>(
                    "sync.containment_types",
                    "is empty, so nothing would be synced; list at least one of \"selfService\", \"dropOff\", \"agent\"".into(),
                );
            }
            out
        }
    };

    // [[bots]] and [account]
    let api_creds = RawCredentials {
        client_id: raw.api.client_id.clone(),
        client_secret: raw.api.client_secret.clone(),
        client_secret_file: raw.api.client_secret_file.clone(),
        token: raw.api.token.clone(),
        ..RawCredentials::default()
    };
    let mut warnings = Vec::new();
    let mut scopes = Vec::new();
    if raw.bots.is_empty() && raw.account.is_none() {
        p.push::<()>(
            "bots",
            "no [[bots]] and no [account]: add a [[bots]] table with id = \"st-…\" for each bot to sync, or an [account] table".into(),
        );
    }
    for (i, bot) in raw.bots.iter().enumerate() {
        let key = format!("bots[{i}]");
        let id = match bot.id.as_deref().map(str::trim) {
            None | Some("") => {
                p.push::<()>(
                    &format!("{key}.id"),
                    "is missing; set it to the bot's id (\"st-…\", Bot Settings > Config)".into(),
                );
                continue;
            }
            Some(ACCOUNT_BOT_ID) => {
                p.push::<()>(
                    &format!("{key}.id"),
                    "\"*\" is reserved for the [account] scope; use the bot's \"st-…\" id".into(),
                );
                continue;
            }
            Some(id) => id.to_owned(),
        };
        if scopes.iter().any(|s: &ScopeConfig| s.bot_id == id) {
            p.push::<()>(
                &format!("{key}.id"),
                format!("bot {id:?} is listed twice; keep one [[bots]] table per bot"),
            );
            continue;
        }
        let own = RawCredentials {
            client_id: bot.client_id.clone(),
            client_secret: bot.client_secret.clone(),
            client_secret_file: bot.client_secret_file.clone(),
            token: bot.token.clone(),
            ..RawCredentials::default()
        };
        let filter = filter_of(
            &key,
            bot.session_type.as_deref(),
            bot.user_id.as_deref(),
            bot.tags.as_ref(),
            &mut p,
        );
        let creds = resolve_credentials(&key, &own, &api_creds, &mut p, &mut warnings);
        if let Some(credentials) = creds {
            scopes.push(ScopeConfig {
                bot_id: id,
                credentials,
                filter,
            });
        }
    }
    if let Some(account) = &raw.account
        && let Some(credentials) =
            resolve_credentials("account", account, &api_creds, &mut p, &mut warnings)
    {
        let filter = filter_of(
            "account",
            account.session_type.as_deref(),
            account.user_id.as_deref(),
            account.tags.as_ref(),
            &mut p,
        );
        scopes.push(ScopeConfig {
            bot_id: ACCOUNT_BOT_ID.to_owned(),
            credentials,
            filter,
        });
    }

    // [server]
    let listen = match raw.server.listen.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match text.parse::<std::net::SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => p.push(
                "server.listen",
                format!("{text:?} is not an address with a port; write e.g. \"127.0.0.1:9464\""),
            ),
        },
    };
    // Two intervals by default; for a cron schedule, whose gaps vary, two hours.
    let default_age = match &trigger {
        Some(Trigger::Interval(d)) => humantime::format_duration(*d * 2).to_string(),
        _ => "2h".to_owned(),
    };
    let max_pass_age = p.duration(
        "server.max_pass_age",
        raw.server.max_pass_age.as_deref(),
        &default_age,
    );

    if !p.0.is_empty() {
        return Err(ConfigError::Invalid(p.0));
    }
    let max_pass_age = max_pass_age.expect("no problems, so parsed");
    let (
        Some(base_url),
        Some(timeout),
        Some(start),
        Some(window),
        Some(lag),
        Some(lookback),
        Some(trigger),
        Some(retry_base_delay),
        Some(pass_deadline),
    ) = (
        base_url,
        timeout,
        start,
        window,
        lag,
        lookback,
        trigger,
        retry_base_delay,
        pass_deadline,
    )
    else {
        unreachable!("every None above pushed a problem");
    };
    let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    Ok(Config {
        api: ApiSettings {
            base_url,
            page_size: page_size as u32,
            max_page_size: max_page_size as u32,
            timeout,
            requests_per_minute: rpm as u32,
            requests_per_hour: rph as u32,
            retry: RetryPolicy {
                max_retries: max_retries as u32,
                base_delay: retry_base_delay,
                max_delay: Duration::from_secs(60).max(retry_base_delay),
            },
        },
        warehouse: WarehouseSettings {
            path: warehouse_path,
            publish,
            parquet_dir,
        },
        sync: SyncSettings {
            plan: PlanSettings {
                start,
                window: delta(window),
                lag: delta(lag),
                lookback: delta(lookback),
            },
            pass_deadline,
            restart_on_filter_change: raw.sync.restart_on_filter_change.unwrap_or(true),
            trigger,
            containment_types,
        },
        scopes,
        server: ServerSettings {
            listen,
            max_pass_age,
        },
        warnings,
    })
}

/// A scope's API filters, checked.
fn filter_of(
    key: &str,
    session_type: Option<&str>,
    user_id: Option<&str>,
    tags: Option<&serde_json::Value>,
    p: &mut Collector,
) -> crate::model::StreamFilter {
    let session_type = match session_type.map(str::trim) {
        None | Some("") => None,
        Some(t @ ("interactive" | "non-interactive")) => Some(t.to_owned()),
        Some(t) => p.push(
            &format!("{key}.session_type"),
            format!("{t:?} is not a session type; use \"interactive\" or \"non-interactive\""),
        ),
    };
    crate::model::StreamFilter {
        session_type,
        user_id: user_id
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
        tags: tags.map(|t| serde_json::to_string(t).expect("JSON values serialize")),
    }
}

/// Picks a scope's credentials: its own if it names any, else `[api]`'s.
fn resolve_credentials(
    key: &str,
    own: &RawCredentials,
    fallback: &RawCredentials,
    p: &mut Collector,
    warnings: &mut Vec<String>,
) -> Option<Credentials> {
    let has_any = |c: &RawCredentials| {
        c.client_id.is_some()
            || c.client_secret.is_some()
            || c.client_secret_file.is_some()
            || c.token.is_some()
    };
    let (src, src_key) = if has_any(own) {
        (own, key.to_owned())
    } else {
        (fallback, "api".to_owned())
    };
    if let Some(token) = &src.token {
        if src.client_secret.is_some() || src.client_secret_file.is_some() {
            return p.push(
                &format!("{src_key}.token"),
                "is set together with a client secret; keep either token or client_id + client_secret".into(),
            );
        }
        return Some(Credentials::Token(Secret::new(token.clone())));
    }
    let secret = match (&src.client_secret, &src.client_secret_file) {
        (Some(_), Some(_)) => {
            return p.push(
                &format!("{src_key}.client_secret_file"),
                "is set together with client_secret; keep only one".into(),
            );
        }
        (Some(s), None) => Some(Secret::new(s.clone())),
        (None, Some(file)) => {
            read_secret_file(&format!("{src_key}.client_secret_file"), file, p, warnings)
        }
        (None, None) => None,
    };
    match (&src.client_id, secret) {
        (Some(id), Some(secret)) if !id.trim().is_empty() && !secret.is_empty() => Some(Credentials::ClientSecret {
            client_id: id.trim().to_owned(),
            client_secret: secret,
        }),
        (_, Some(s)) if s.is_empty() => None, // reported by read_secret_file or below
        _ => p.push(
            key,
            format!(
                "has no credentials: set client_id and client_secret (or client_secret_file, or token) in [{}] or in [api]; \
                 the Client ID and Secret are on the JWT app with the \"Bot Sessions\" scope",
                if key == "account" { "account".to_owned() } else { format!("{key} (a [[bots]] table)") }
            ),
        ),
    }
}

fn read_secret_file(
    key: &str,
    file: &str,
    p: &mut Collector,
    warnings: &mut Vec<String>,
) -> Option<Secret> {
    // `$CREDENTIALS_DIRECTORY` (systemd LoadCredential=) may prefix the path.
    let expanded = match std::env::var("CREDENTIALS_DIRECTORY") {
        Ok(dir) => file.replace("$CREDENTIALS_DIRECTORY", &dir),
        Err(_) => file.to_owned(),
    };
    match std::fs::read_to_string(&expanded) {
        Ok(text) => {
            let secret = text.trim();
            if secret.is_empty() {
                return p.push(key, format!("{expanded:?} is empty; put the app's Client Secret in it"));
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(&expanded)
                    && meta.permissions().mode() & 0o077 != 0 {
                        warnings.push(format!(
                            "{key}: {expanded:?} is readable by group or others; run `chmod 600 {expanded}`"
                        ));
                    }
            }
            Some(Secret::new(secret))
        }
        Err(e) => p.push(key, format!("cannot read {expanded:?} ({e}); check the path and that kore-sync's user may read it")),
    }
}

/// Collects problems; every `push` returns `None` so it can end a match arm.
#[derive(Default)]
struct Collector(Vec<Problem>);

impl Collector {
    fn push<T>(&mut self, key: &str, message: String) -> Option<T> {
        self.0.push(Problem {
            key: key.to_owned(),
            message,
        });
        None
    }

    fn duration(&mut self, key: &str, value: Option<&str>, default: &str) -> Option<Duration> {
        let text = value.unwrap_or(default);
        match humantime::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => self.push(
                key,
                format!("{text:?} is not a duration ({e}); write e.g. \"90s\", \"15m\", \"6d\""),
            ),
        }
    }

    fn int_in(&mut self, key: &str, value: Option<i64>, default: i64, min: i64, max: i64) -> i64 {
        let v = value.unwrap_or(default);
        if v < min || v > max {
            self.push::<()>(
                key,
                format!("{v} is out of range; use a value from {min} to {max}"),
            );
            default
        } else {
            v
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [api]
        client_id = "cs-1"
        client_secret = "s"
        [[bots]]
        id = "st-1"
    "#;

    #[test]
    fn defaults_fill_everything_but_the_bots() {
        let c = from_toml(MINIMAL).unwrap();
        assert_eq!(c.api.base_url.as_str(), "https://bots.kore.ai/");
        assert_eq!(c.api.page_size, 100);
        assert_eq!(c.api.max_page_size, 1000);
        assert_eq!(c.api.requests_per_minute, 60);
        assert_eq!(c.api.requests_per_hour, 1800);
        assert_eq!(c.sync.plan.window, TimeDelta::days(6));
        assert_eq!(c.sync.trigger, Trigger::Interval(Duration::from_secs(900)));
        assert_eq!(c.sync.containment_types, ContainmentType::ALL.to_vec());
        assert_eq!(c.scopes.len(), 1);
        assert_eq!(c.scopes[0].bot_id, "st-1");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = from_toml(
            r#"
            [api]
            base_url = "not a url"
            [sync]
            window = "7d"
            lag = "soon"
            containment_types = ["selfService", "human"]
            [[bots]]
            id = "st-1"
            "#,
        )
        .unwrap_err();
        let ConfigError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "api.base_url",
                "sync.window",
                "sync.lag",
                "sync.containment_types",
                "bots[0]"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("5 problems"), "{text}");
        assert!(text.contains("the API refuses"), "{text}");
        assert!(text.contains("client_secret"), "{text}");
    }

    #[test]
    fn max_page_size_defaults_above_page_size_and_may_not_be_below_it() {
        let c = from_toml(&MINIMAL.replace("[api]\n", "[api]\npage_size = 2000\n")).unwrap();
        assert_eq!((c.api.page_size, c.api.max_page_size), (2000, 2000));
        let err =
            from_toml(&MINIMAL.replace("[api]\n", "[api]\npage_size = 200\nmax_page_size = 50\n"))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("api.max_page_size") && err.contains("below api.page_size"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = from_toml(&format!("{MINIMAL}\n[sync]\nwindw = \"6d\"\n")).unwrap_err();
        assert!(err.to_string().contains("windw"), "{err}");
    }

    #[test]
    fn an_empty_bot_list_without_account_is_refused() {
        let err = from_toml("[api]\nclient_id = \"a\"\nclient_secret = \"b\"\n").unwrap_err();
        assert!(
            err.to_string().contains("no [[bots]] and no [account]"),
            "{err}"
        );
    }

    #[test]
    fn bot_credentials_override_api_and_account_is_keyed_star() {
        let c = from_toml(
            r#"
            [api]
            client_id = "cs-api"
            client_secret = "s"
            [[bots]]
            id = "st-1"
            [[bots]]
            id = "st-2"
            client_id = "cs-own"
            client_secret = "t"
            [account]
            token = "ready.jwt.here"
            "#,
        )
        .unwrap();
        let ids: Vec<String> = c.scopes.iter().map(|s| s.credentials.describe()).collect();
        assert_eq!(
            ids,
            [
                "client_id \"cs-api\"",
                "client_id \"cs-own\"",
                "the configured token"
            ]
        );
        assert_eq!(c.scopes[2].bot_id, "*");
        // Secrets never show in Debug output.
        assert!(!format!("{c:?}").contains("ready.jwt.here"));
    }

    #[test]
    fn secret_file_is_read_and_loose_permissions_warn() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "from-file\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let c = from_toml(&format!(
            "[api]\nclient_id = \"a\"\nclient_secret_file = {:?}\n[[bots]]\nid = \"st-1\"\n",
            f.display().to_string()
        ))
        .unwrap();
        let Credentials::ClientSecret { client_secret, .. } = &c.scopes[0].credentials else {
            panic!()
        };
        assert_eq!(client_secret.expose(), "from-file");
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    }

    #[test]
    fn cron_schedule_is_checked() {
        let ok = from_toml(&format!(
            "{MINIMAL}\n[sync]\nschedule = \"0 */15 * * * *\"\n"
        ))
        .unwrap();
        assert_eq!(ok.sync.trigger, Trigger::Cron("0 */15 * * * *".into()));
        let err = from_toml(&format!(
            "{MINIMAL}\n[sync]\nschedule = \"every now and then\"\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("sync.schedule"), "{err}");
    }

    #[test]
    fn instants_in_both_api_forms() {
        assert_eq!(
            parse_instant("2025-01-02").unwrap().to_rfc3339(),
            "2025-01-02T00:00:00+00:00"
        );
        assert_eq!(
            parse_instant("2025-01-02T03:04:05.678Z")
                .unwrap()
                .timestamp_millis(),
            1_735_787_045_678
        );
        assert_eq!(
            parse_instant("2025-01-02T03:04:05").unwrap().to_rfc3339(),
            "2025-01-02T03:04:05+00:00"
        );
        assert!(
            parse_instant("02/01/2025")
                .unwrap_err()
                .contains("yyyy-mm-dd")
        );
    }
}
