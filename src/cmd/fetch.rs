//! `kore-sync fetch`: read given sessions (by id, 50 per request, or by an
//! external call id) and upsert them, through the sync engine's by-id
//! refresh. Ids the API does not know are listed, and removed from the
//! warehouse with `--prune`.

use super::{Invocation, Outcome, open_context, require_configured};
use crate::cli::FetchArgs;
use crate::sync::{FetchByIdRequest, fetch_by_id, publish};
use anyhow::bail;

/// `kore-sync fetch`. Complete if every id was found (or pruned).
pub async fn run(args: FetchArgs, inv: &Invocation) -> anyhow::Result<Outcome> {
    let config = inv.load()?;
    if args.sessions.is_empty() && args.call_id.is_none() {
        bail!("nothing to fetch: give --session ID (repeatable) or --call-id ID");
    }
    let bot_id = match (&args.bot, config.scopes.as_slice()) {
        (Some(b), _) => {
            require_configured(&config, b)?;
            b.clone()
        }
        (None, [only]) => only.bot_id.clone(),
        (None, _) => bail!("several bots are configured: say which with --bot ID"),
    };
    let ctx = open_context(&config).await?;
    let request = FetchByIdRequest {
        bot_id: bot_id.clone(),
        session_ids: args.sessions,
        call_id: args.call_id.clone(),
        prune: args.prune,
    };
    let found = fetch_by_id(&ctx, &request, &inv.cancel).await?;
    if let Some(c) = &args.call_id {
        println!("call id {c}: fetched with the other sessions below");
    }
    println!(
        "fetched and stored {} session(s) of {bot_id}",
        found.n_found
    );
    for id in &found.unknown {
        let what = if args.prune {
            " (removed from the warehouse)"
        } else {
            " (use --prune to remove it from the warehouse)"
        };
        println!("unknown to the API: {id}{what}");
    }
    publish::publish_now(&ctx).await;
    Ok(Outcome::of(found.unknown.is_empty() || args.prune))
}
