//! kore-sync keeps a local DuckDB warehouse in step with Kore.ai's Sessions
//! History API. The data's path through the crate:
//!
//! `config` → `schedule` → `sync` (`plan`, `run`) → `api` (`client`, `wire`)
//! → `store` (`duckdb`, `migrations`).
//!
//! `ops` is what operators see (metrics, health, sd_notify); `sim` is the simulated API the tests and `kore-sync demo` run against;
//! `app` holds the commands `main.rs` dispatches to. See ARCHITECTURE.md.

pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod model;
pub mod ops;
pub mod progress;
pub mod schedule;
pub mod secret;
pub mod sim;
pub mod store;
pub mod sync;
