//! `kore-sync completions SHELL`: a shell completion script, from the
//! argument definitions in `cli`.

use super::Outcome;
use crate::cli::Cli;
use clap::CommandFactory;

/// Prints the completion script for `shell` on stdout.
pub fn run(shell: clap_complete::Shell) -> anyhow::Result<Outcome> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "kore-sync", &mut std::io::stdout());
    Ok(Outcome::Complete)
}
