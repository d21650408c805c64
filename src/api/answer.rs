//! Reading an answer: its body, bounded by `api.max_response_size`, and what
//! its status means — a page, or the [`ApiError`] that says what happened
//! and what to do.

use super::auth::Credentials;
use super::error::ApiError;
use super::wire::error_message;
use serde::de::DeserializeOwned;
use std::time::Duration;
use url::Url;

/// Who asked what, for the errors that name it.
pub(super) struct Asked<'a> {
    pub url: &'a Url,
    pub credentials: &'a Credentials,
    pub bot: &'a str,
}

/// The body, unless it is larger than `limit` bytes: then an error, without
/// reading the rest.
pub(super) async fn read_bounded(
    url: &Url,
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::TooLarge {
        url: url.to_string(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // Sized once when the server says how large (a page of messages is
    // megabytes: growing by doubling copied it several times).
    let expected = resp.content_length().unwrap_or(0).min(limit);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = resp.chunk().await.map_err(|source| ApiError::Transport {
        url: url.to_string(),
        source,
    })? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Turns an answer into a page or the [`ApiError`] its status means.
pub(super) fn classify<T: DeserializeOwned>(
    asked: &Asked<'_>,
    (status, bytes): (u16, &[u8]),
    retry_after: Option<Duration>,
) -> Result<T, ApiError> {
    // The body as text, for error messages only: a good page is parsed
    // from the bytes and never decoded twice.
    let text = || error_message(&String::from_utf8_lossy(bytes));
    match status {
        200..=299 => serde_json::from_slice::<T>(bytes).map_err(|e| ApiError::Unparseable {
            detail: e.to_string(),
            excerpt: text(),
        }),
        s @ (401 | 403) => Err(ApiError::Unauthorized {
            url: asked.url.to_string(),
            status: s,
            message: text(),
            credentials: asked.credentials.describe(),
            bot: asked.bot.to_owned(),
            scope: api_scope_of(asked.url),
        }),
        429 => Err(ApiError::RateLimited {
            message: text(),
            retry_after,
        }),
        // 408 (request timeout) is a transient failure like a 5xx.
        s @ (408 | 500..=599) => Err(ApiError::Server {
            status: s,
            message: text(),
        }),
        s => Err(ApiError::Rejected {
            status: s,
            message: text(),
        }),
    }
}

/// The app scope an endpoint needs, for the error that names it.
fn api_scope_of(url: &Url) -> &'static str {
    let path = url.path();
    if path.contains("getMessages") {
        "Chat History"
    } else if path.ends_with("/getAnalytics") {
        "Metrics"
    } else if path.ends_with("/getLLMUsageLogs") {
        "Fetch Gen AI and LLM Usage Logs"
    } else if path.ends_with("/bots") {
        "Bot Management (Admin Console)"
    } else {
        "Bot Sessions"
    }
}

/// Retry-After is either delay-seconds or an HTTP date.
pub(super) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn a_refusal_names_the_scope_the_endpoint_needs() {
        let scope = |u: &str| api_scope_of(&Url::parse(u).unwrap());
        assert_eq!(
            scope("https://h/api/public/bot/st-1/getMessagesV2"),
            "Chat History"
        );
        assert_eq!(
            scope("https://h/api/public/bot/st-1/getSessions"),
            "Bot Sessions"
        );
        assert_eq!(
            scope("https://h/api/public/bot/st-1/getAnalytics"),
            "Metrics"
        );
        assert_eq!(
            scope("https://h/api/public/bots"),
            "Bot Management (Admin Console)"
        );
    }
}
