//! `kore-sync query`: SQL against a warehouse file (by default the read
//! copy), read-only, with the DuckDB version kore-sync bundles. With SQL
//! arguments, runs them and exits; otherwise reads one statement per line
//! from stdin and answers each, ending every answer with an empty line.

use crate::store::ReadOnly;
use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// `kore-sync query [--db PATH] [SQL…]`, against `path`.
pub async fn query(path: &Path, sql: Vec<String>) -> anyhow::Result<()> {
    let reader = ReadOnly::open(path)?;
    let mut out = std::io::stdout().lock();
    if !sql.is_empty() {
        reader.print(&sql.join(" "), &mut out)?;
        return Ok(());
    }
    for line in std::io::stdin().lines() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        if let Err(e) = reader.print(&line, &mut out) {
            writeln!(out, "error: {e:#}")?;
        }
        writeln!(out)?;
        out.flush()?;
    }
    Ok(())
}
