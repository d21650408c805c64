//! `kore-sync rewrite-privacy`: applies the configuration's stricter
//! `[privacy]` (or `messages.store_text = false`) to every stored row, the
//! warehouse file, the read copy and the Parquet export, so a changed
//! setting is never silently mixed with rows written under the old one.
//! Looser settings cannot be applied (a pseudonym cannot be turned back into
//! an id); the error says to start a fresh warehouse instead. A rewrite that
//! was stopped before it wrote the file anew is finished by running it again.

use super::{Invocation, Outcome};
use crate::config::Config;
use crate::sync::privacy::{RewriteOutcome, rewrite_privacy};
use crate::sync::publish::Published;

/// `kore-sync rewrite-privacy`. Complete when every row is rewritten.
pub async fn run(inv: &Invocation) -> anyhow::Result<Outcome> {
    let config = inv.load()?;
    super::log_warnings(&config);
    let outcome = rewrite_privacy(
        &config.warehouse,
        &config.sync.privacy,
        super::progress::rewrite_progress(),
    )
    .await?;
    let published = match outcome {
        RewriteOutcome::Unchanged(settings) => {
            println!(
                "nothing to rewrite: the warehouse's rows are written with {}",
                settings.describe()
            );
            return Ok(Outcome::Complete);
        }
        RewriteOutcome::Finished { to, published } => {
            println!(
                "finished an interrupted rewrite: {} written anew; its rows are written with {}",
                config.warehouse.path.display(),
                to.describe()
            );
            published
        }
        RewriteOutcome::Rewrote {
            from,
            to,
            rewritten,
            published,
        } => {
            println!("rewrote the warehouse from {}", from.describe());
            println!("                         to {}", to.describe());
            println!(
                "  {} sessions, {} messages, {} analytics events, {} LLM calls, {} rejected records; {} written anew",
                rewritten.n_sessions,
                rewritten.n_messages,
                rewritten.n_analytics,
                rewritten.n_llm_calls,
                rewritten.n_rejected,
                config.warehouse.path.display()
            );
            published
        }
    };
    let complete = report_publications(&config, &published);
    println!(
        "Copies made before now — backups, older object versions in a versioned bucket, BI \
         extracts — still hold the old values; replace or delete them."
    );
    Ok(Outcome::of(complete))
}

/// Prints what was published again; false if a configured publication
/// failed (the next pass tries again).
fn report_publications(config: &Config, published: &Published) -> bool {
    let mut complete = true;
    if config.warehouse.parquet.is_some() {
        match published.parquet_days {
            Some(n) => println!("  Parquet export: {n} days written again"),
            None => {
                complete = false;
                println!(
                    "  Parquet export: FAILED (see the log); the next pass writes every day again"
                );
            }
        }
    }
    if let Some(dest) = &config.warehouse.publish {
        match published.read_copy {
            Some(_) => println!("  read copy: {} written again", dest.display()),
            None => {
                complete = false;
                println!("  read copy: FAILED (see the log); the next pass writes it again");
            }
        }
    }
    complete
}
