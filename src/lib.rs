//! kore-sync keeps a local DuckDB warehouse in step with Kore.ai's Sessions
//! History API. The data's path through the crate:
//!
//! `config` → `schedule` → `sync` (`plan`, `pass`, `stream`, `fetch`) → `api`
//! (`client`, `wire`) → `store` (`commit`, `migrations`).
//!
//! Layers, top to bottom; a module imports only from layers below it (the
//! order is checked by a test, see ARCHITECTURE.md):
//! `cmd` → `config` → `schedule` → `sync` → `api`, `store` → `ops` →
//! `model`, `secret`. `cli` (the argument definitions) and `sim` (the
//! simulated API the tests and `kore-sync demo` run against) stand apart.

pub mod api;
pub mod bench;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod model;
pub mod ops;
pub mod privacy;
pub mod schedule;
pub mod secret;
pub mod sim;
pub mod store;
pub mod sync;
