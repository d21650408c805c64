//! `kore-sync query`: SQL against a warehouse file (by default the read
//! copy), read-only, with the DuckDB version kore-sync bundles. With SQL
//! arguments, runs them and exits; otherwise reads one statement per line
//! from stdin and answers each, ending every answer with an empty line.

use crate::config::Config;
use crate::store::ReadOnly;
use anyhow::{Context, bail};
use std::io::Write;
use std::path::PathBuf;

/// `kore-sync query [--db PATH] [SQL…]`.
pub async fn query(
    config: Option<Config>,
    db: Option<PathBuf>,
    sql: Vec<String>,
) -> anyhow::Result<()> {
    let path = match (db, config) {
        (Some(p), _) => p,
        (None, Some(c)) => c.warehouse.publish.unwrap_or(c.warehouse.path),
        (None, None) => bail!("no --db given and no configuration found; pass --db PATH"),
    };
    let reader = ReadOnly::open(&path)?;
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
