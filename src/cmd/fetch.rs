//! `kore-sync fetch`: read given sessions (by id, 50 per request, or by an
//! external call id) and upsert them, through the sync engine's by-id
//! refresh. Ids the API does not know are listed, and removed from the
//! warehouse with `--prune`.

use super::{open_context, require_configured};
use crate::config::Config;
use crate::sync::{FetchByIdRequest, PassReport, fetch_by_id, publish};
use anyhow::bail;
use tokio_util::sync::CancellationToken;

/// What was asked on the command line.
#[derive(Debug, Clone)]
pub struct FetchArgs {
    pub session_ids: Vec<String>,
    pub call_id: Option<String>,
    /// Which bot; may be left out when only one is configured.
    pub bot: Option<String>,
    pub prune: bool,
}

/// `kore-sync fetch`. True if every id was found (or pruned).
pub async fn fetch(
    config: Config,
    args: FetchArgs,
    cancel: CancellationToken,
) -> anyhow::Result<bool> {
    if args.session_ids.is_empty() && args.call_id.is_none() {
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
        session_ids: args.session_ids,
        call_id: args.call_id.clone(),
        prune: args.prune,
    };
    let found = fetch_by_id(&ctx, &request, &cancel).await?;
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
    publish::after_pass(&ctx, &PassReport::default()).await;
    Ok(found.unknown.is_empty() || args.prune)
}
