//! kore-sync's integration tests, in one crate so DuckDB and the library are
//! linked once: the real binary and the library against the simulated
//! Kore.ai API on port 0, sharing the helpers in `common`.

mod cli;
mod common;
mod deploy;
mod fetch;
mod filters;
mod lake;
mod layers;
mod messages;
mod names;
mod ops;
mod paging;
mod parquet;
mod privacy;
mod process;
mod python;
mod read_side;
mod readers;
mod reconcile;
mod reliability;
mod security;
mod sync;
