//! Stage one of configuration: the raw shape, exactly as the TOML file and
//! `KORE_SYNC__` environment variables give it, layered by the `config`
//! crate. Nothing is interpreted here beyond TOML types; unknown keys are
//! refused (`deny_unknown_fields`) so a typo never silently falls back to a
//! default. Stage two (`super::validate`) turns this into a typed `Config`.
//!
//! The credential keys are declared once ([`RawCredentials`]) and flattened
//! into `[api]` (the default) and [`RawScope`] (a `[[bots]]` table or
//! `[account]`). serde cannot refuse unknown keys in a table with a
//! flattened part, so those two tables collect whatever else they hold in
//! `unknown`, and validation refuses it by name, as serde does elsewhere.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Keys a table holds that kore-sync does not know.
pub type UnknownKeys = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub warehouse: RawWarehouse,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub bots: Vec<RawScope>,
    #[serde(default)]
    pub account: Option<RawScope>,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub messages: RawMessages,
    #[serde(default)]
    pub analytics: RawAnalytics,
    #[serde(default)]
    pub privacy: RawPrivacy,
}

/// `[privacy]`: what is kept out of the warehouse. `Debug` leaves the key
/// out.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivacy {
    pub pseudonymize: Option<Vec<String>>,
    pub drop_tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "text")]
    pub key: Option<String>,
    pub key_file: Option<String>,
}

impl std::fmt::Debug for RawPrivacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPrivacy")
            .field("pseudonymize", &self.pseudonymize)
            .field("drop_tags", &self.drop_tags)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// `[messages]`: conversation history beside sessions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMessages {
    pub enabled: Option<bool>,
    pub channels: Option<Vec<String>>,
    pub store_text: Option<bool>,
}

/// `[analytics]`: NLU analytics (getAnalytics) beside sessions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnalytics {
    pub enabled: Option<bool>,
    pub types: Option<Vec<String>>,
    pub llm_usage: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub max_pass_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawApi {
    pub base_url: Option<String>,
    #[serde(flatten)]
    pub credentials: RawCredentials,
    pub page_size: Option<i64>,
    pub max_page_size: Option<i64>,
    pub timeout: Option<String>,
    pub requests_per_minute: Option<i64>,
    pub requests_per_hour: Option<i64>,
    pub max_retries: Option<i64>,
    pub retry_base_delay: Option<String>,
    /// The largest answer read, e.g. "64MiB".
    pub max_response_size: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    pub path: Option<String>,
    /// A path, or `false` to switch the read copy off.
    pub publish: Option<PathOrOff>,
    pub parquet_dir: Option<String>,
    pub storage_version: Option<String>,
    pub publish_interval: Option<String>,
    pub publish_as: Option<String>,
    /// The most memory DuckDB may use, e.g. "256MiB".
    pub memory_limit: Option<String>,
    /// The most temporary disk DuckDB may use, e.g. "4GiB".
    pub max_temp_size: Option<String>,
    /// Octal permissions of the warehouse, e.g. "0600".
    pub file_mode: Option<String>,
    /// Octal permissions of the read copy and Parquet files, e.g. "0640".
    pub publish_mode: Option<String>,
    /// Overrides of the `AWS_*` environment for an `s3://` `parquet_dir`.
    pub s3: Option<RawS3>,
}

/// `[warehouse.s3]`: each key overrides its `AWS_*` variable.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub allow_http: Option<bool>,
    pub virtual_hosted_style_request: Option<bool>,
}

/// `publish = "kore-read.duckdb"` or `publish = false`.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum PathOrOff {
    Path(String),
    Flag(bool),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub start: Option<String>,
    pub window: Option<String>,
    pub lag: Option<String>,
    pub lookback: Option<String>,
    pub pass_deadline: Option<String>,
    pub interval: Option<String>,
    pub restart_on_filter_change: Option<bool>,
    pub schedule: Option<String>,
    pub containment_types: Option<Vec<String>>,
    pub reconcile: Option<String>,
    pub deletes: Option<String>,
    pub verify_schedule: Option<String>,
}

/// A `[[bots]]` table, or `[account]` (which takes no `id`): credentials
/// (falling back to `[api]`'s) and the API filters its streams apply.
#[derive(Debug, Default, Deserialize)]
pub struct RawScope {
    pub id: Option<String>,
    /// The bot's name for views and `status`, used until the Admin
    /// Console's bot list names it.
    pub name: Option<String>,
    /// Overrides `messages.enabled` for this bot.
    pub messages: Option<bool>,
    /// Overrides `analytics.enabled` for this bot.
    pub analytics: Option<bool>,
    #[serde(flatten)]
    pub credentials: RawCredentials,
    pub session_type: Option<String>,
    pub user_id: Option<String>,
    pub tags: Option<serde_json::Value>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

/// The credential keys of `[api]`, a `[[bots]]` table or `[account]`.
/// (Each takes a number as its text too: a flattened part loses the
/// `config` crate's own leniency, and an environment variable holding only
/// digits arrives as a number.)
#[derive(Clone, Default, Deserialize)]
pub struct RawCredentials {
    #[serde(default, deserialize_with = "text")]
    pub client_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub client_secret: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub client_secret_file: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub token: Option<String>,
}

/// Leaves the secrets out.
impl std::fmt::Debug for RawCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("RawCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(&self.client_secret))
            .field("client_secret_file", &self.client_secret_file)
            .field("token", &redacted(&self.token))
            .finish()
    }
}

/// A string, or a number or boolean taken as its text.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            Some(other.to_string())
        }
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected text, found {other}"
            )));
        }
    })
}

impl RawCredentials {
    /// Whether the table names any credential at all.
    pub fn any(&self) -> bool {
        self.client_id.is_some()
            || self.client_secret.is_some()
            || self.client_secret_file.is_some()
            || self.token.is_some()
    }
}
