//! Stage one of configuration: the raw shape, exactly as the TOML file and
//! `KORE_SYNC__` environment variables give it, layered by the `config`
//! crate. Nothing is interpreted here beyond TOML types; unknown keys are
//! refused (`deny_unknown_fields`) so a typo never silently falls back to a
//! default. Stage two (`super::validate`) turns this into a typed `Config`.

use serde::Deserialize;

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
    pub bots: Vec<RawBot>,
    #[serde(default)]
    pub account: Option<RawCredentials>,
    #[serde(default)]
    pub server: RawServer,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub max_pass_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub base_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub token: Option<String>,
    pub page_size: Option<i64>,
    pub max_page_size: Option<i64>,
    pub timeout: Option<String>,
    pub requests_per_minute: Option<i64>,
    pub requests_per_hour: Option<i64>,
    pub max_retries: Option<i64>,
    pub retry_base_delay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    pub path: Option<String>,
    /// A path, or `false` to switch the read copy off.
    pub publish: Option<PathOrOff>,
    pub parquet_dir: Option<String>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBot {
    pub id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub token: Option<String>,
    pub session_type: Option<String>,
    pub user_id: Option<String>,
    pub tags: Option<serde_json::Value>,
}

/// Credentials as `[account]` (and the credential part of `[api]`) give them.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub token: Option<String>,
    pub session_type: Option<String>,
    pub user_id: Option<String>,
    pub tags: Option<serde_json::Value>,
}
