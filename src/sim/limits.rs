//! The simulated rate limit: per scope (a bot, or the account), so many
//! requests in any rolling minute and hour, as Kore.ai enforces them;
//! beyond it the answer is 429.

use super::SimState;
use super::http::Refusal;
use axum::http::StatusCode;
use std::time::Duration;

/// The text Kore.ai sends with a 429.
pub(super) const RATE_LIMITED: &str =
    "Rate limit for this API has been reached. Please try again after some time.";

/// Counts this request against `scope`'s limits, or refuses it.
pub(super) fn rate_limit(st: &mut SimState, scope: &str) -> Result<(), Refusal> {
    let Some((per_min, per_hour)) = st.settings.rate_limit else {
        return Ok(());
    };
    let now = tokio::time::Instant::now();
    let log = st.rate_log.entry(scope.to_owned()).or_default();
    while log
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(3600))
    {
        log.pop_front();
    }
    let in_minute = log
        .iter()
        .rev()
        .take_while(|t| now.duration_since(**t) < Duration::from_secs(60))
        .count();
    if in_minute >= per_min as usize || log.len() >= per_hour as usize {
        return Err(Refusal::new(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED));
    }
    log.push_back(now);
    Ok(())
}
