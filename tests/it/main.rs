//! kore-sync's integration tests, in one crate so DuckDB and the library are
//! linked once: the real binary and the library against the simulated
//! Kore.ai API on port 0, sharing the helpers in `common`.

mod analytics;
mod analytics_safety;
mod architecture;
mod cli;
mod common;
mod dashboard;
mod dbt;
mod deploy;
mod disk;
mod engine_cost;
mod fetch;
mod filters;
mod lake;
mod layers;
mod llm;
mod memory;
mod messages;
mod messages_late;
mod names;
mod ops;
mod orphans;
mod outside;
mod paging;
mod parquet;
mod privacy;
mod process;
mod read_side;
mod readers;
mod reconcile;
mod recovery;
mod reliability;
mod security;
mod sync;
mod verify_many;
