//! `kore-sync query`: SQL against a warehouse file (by default the read
//! copy), read-only, with the DuckDB version kore-sync bundles. With SQL
//! arguments, runs them and exits; otherwise reads one statement per line
//! from stdin and answers each, ending every answer with an empty line.

use super::{Invocation, Outcome};
use crate::cli::QueryArgs;
use crate::store::ReadOnly;
use anyhow::Context;
use std::io::Write;

/// `kore-sync query [--db PATH] [SQL…]`: against `--db`, else the read
/// copy, else the warehouse.
pub async fn run(args: QueryArgs, inv: &Invocation) -> anyhow::Result<Outcome> {
    let file = match args.db {
        Some(db) => db,
        None => {
            let w = inv.warehouse(None)?;
            w.publish.unwrap_or(w.path)
        }
    };
    let (reader, sql) = (ReadOnly::open(&file)?, args.sql);
    let mut out = std::io::stdout().lock();
    if !sql.is_empty() {
        reader.print(&sql.join(" "), &mut out)?;
        return Ok(Outcome::Complete);
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
    Ok(Outcome::Complete)
}
