//! `kore-sync man`: the man page (roff), from the argument definitions in
//! `cli`.

use super::Outcome;
use crate::cli::Cli;
use clap::CommandFactory;

/// Prints the man page on stdout.
pub fn run() -> anyhow::Result<Outcome> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(Outcome::Complete)
}
