//! `kore-sync bench`: runs the benchmark harness (`crate::bench`), which
//! prints its own figures.

use super::Outcome;
use crate::cli::BenchOptions;

/// `kore-sync bench [OPTIONS]`.
pub async fn run(options: BenchOptions) -> anyhow::Result<Outcome> {
    crate::bench::run(options).await?;
    Ok(Outcome::Complete)
}
