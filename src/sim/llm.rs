//! The simulated GenAI and LLM usage logs (`getLLMUsageLogs`, under
//! `/api/1.1/`), consistent with the simulated conversations: some of the
//! bot's answers came from a model, each logged as one call that ended as
//! the answer was sent, shown once the answer is. Records carry the
//! documented quirks: display-name keys with spaces (`"Feature Name "` ends
//! with one), numbers as strings now and then, no id, failed calls without
//! a response payload, and payloads holding what the user wrote. `dateFrom`
//! and `dateTo` are plain dates (timestamps are read too), `dateTo`
//! inclusive, at most 90 days apart; `limit` and `skip` come as strings or
//! numbers. The answer is a bare array, newest first.

use super::auth::{ScopeDenial, answer_logged, bot_gate};
use super::http::{Refusal, finish};
use super::messages::messages_of;
use super::{LoggedRequest, Shared, SimState, Simulator};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

const FEATURES: [&str; 3] = ["GenAI Node", "Agent Node", "Rephrase Responses"];
const MODELS: [(&str, &str); 3] = [
    ("GPT-4", "OpenAI"),
    ("GPT-4o", "Azure OpenAI"),
    ("claude-3-5-sonnet", "Anthropic"),
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LlmBody {
    date_from: Option<String>,
    date_to: Option<String>,
    limit: Option<Value>,
    skip: Option<Value>,
}

/// The LLM usage route.
pub(super) fn routes() -> axum::Router<Shared> {
    axum::Router::new().route(
        "/api/1.1/public/bot/{bot_id}/getLLMUsageLogs",
        axum::routing::post(get_llm_usage),
    )
}

async fn get_llm_usage(
    State(state): State<Shared>,
    Path(bot_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer_logged(&state, (&bot_id, "llm_usage"), |st, log, fault| {
        answer(st, &bot_id, (&headers, &body), log, fault)
    })
}

/// A whole number sent as a number or a string.
fn number(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A plain date (or a timestamp's day).
fn day(s: Option<&str>) -> Option<NaiveDate> {
    let s = s?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.date_naive()))
}

fn answer(
    st: &mut SimState,
    bot_id: &str,
    (headers, body): (&HeaderMap, &Bytes),
    log: &mut LoggedRequest,
    fault: Option<&super::Fault>,
) -> Response {
    let denial: ScopeDenial<'_> = (|s| &s.deny_llm_logs, "Fetch Gen AI and LLM Usage Logs");
    if let Some(answer) = bot_gate(st, (bot_id, headers), denial, fault) {
        return answer;
    }
    let body: LlmBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return Refusal::bad_request(format!("Invalid JSON body: {e}")).into_response(),
    };
    let (Some(from), Some(to)) = (day(body.date_from.as_deref()), day(body.date_to.as_deref()))
    else {
        return Refusal::bad_request("dateFrom and dateTo are required (yyyy-mm-dd)")
            .into_response();
    };
    if to < from || to - from > Duration::days(90) {
        return Refusal::bad_request("The date range should be at most 90 days").into_response();
    }
    let (Some(limit), skip) = (number(body.limit.as_ref()), number(body.skip.as_ref())) else {
        return Refusal::bad_request("limit is required").into_response();
    };
    let skip = skip.unwrap_or(0);
    let start = from.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let end = (to + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    log.date_from = Some(start);
    log.date_to = Some(end);
    log.skip = skip;
    log.limit = Some(limit);
    // The simulator's sessions last under a day: calls in the span belong
    // to sessions that start at most a day before it.
    let span = (start - Duration::days(1), end);
    let lists = st.derived(("llm_usage", bot_id), span, |st, span| {
        calls_of_bot(st, bot_id, span)
    });
    let mut matching: Vec<&Value> = lists
        .iter()
        .flat_map(|calls| calls.iter())
        .filter(|c| (start..end).contains(&started(c)))
        .collect();
    matching.sort_by_cached_key(|c| std::cmp::Reverse(started(c)));
    let limit = (limit as usize).min(st.settings.max_page_size);
    let page: Vec<Value> = matching
        .into_iter()
        .skip(skip as usize)
        .take(limit)
        .cloned()
        .collect();
    log.returned = page.len();
    finish(Value::Array(page), fault)
}

fn started(c: &Value) -> DateTime<Utc> {
    c["start Date"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
}

/// The calls of `bot_id`'s sessions that start in `[from, to]`.
fn calls_of_bot(
    st: &SimState,
    bot_id: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Vec<Value> {
    st.sessions_starting(bot_id, (from, to))
        .iter()
        .flat_map(|r| calls_of(r))
        .collect()
}

/// A stable small number from a string, for the generator's choices.
fn pick(s: &str, salt: u64) -> u64 {
    s.bytes().fold(salt ^ 0x51_7cc1_b727_220a, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The logged LLM calls of one simulated session: one for every answer of
/// the bot a model wrote (about a third), ending as it was sent.
pub fn calls_of(session: &Value) -> Vec<Value> {
    let messages = messages_of(session);
    let mut said = String::new();
    let mut calls = Vec::new();
    for m in &messages {
        let text = m["components"][0]["data"]["text"].as_str().unwrap_or("");
        if m["type"] == "incoming" {
            said = text.to_owned();
            continue;
        }
        let id = m["_id"].as_str().unwrap_or_default();
        let n = pick(id, 3);
        if !n.is_multiple_of(3) {
            continue;
        }
        calls.push(call(session, m, (n, &said)));
    }
    calls
}

fn call(session: &Value, answer: &Value, (n, said): (u64, &str)) -> Value {
    let end = super::messages::created_on(answer);
    let took = 300 + (n % 4000) as i64;
    let start = end - Duration::milliseconds(took);
    let (model, integration) = MODELS[(n / 3 % 3) as usize];
    let failed = n.is_multiple_of(11);
    let (request_tokens, response_tokens) = (100 + n % 900, if failed { 0 } else { 20 + n % 300 });
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut payload = json!({
        "Prompt Name": "Default",
        "Request Payload": {"model": model.to_lowercase(), "messages": [
            {"role": "system", "content": "You are a helpful support bot."},
            {"role": "user", "content": said}]},
        "Request Tokens": request_tokens,
        "Response Tokens": if n.is_multiple_of(2) { json!(response_tokens) } else { json!(response_tokens.to_string()) },
    });
    if !failed {
        payload["Response Payload"] = json!({
            "id": format!("chatcmpl-{:x}", pick(answer["_id"].as_str().unwrap_or_default(), 9)),
            "choices": [{"message": {"role": "assistant", "content": answer["components"][0]["data"]["text"]}}],
            "usage": {"prompt_tokens": request_tokens, "completion_tokens": response_tokens}
        });
    }
    json!({
        "Prompt Name": "Default",
        "Integration": integration,
        "start Date": time(start),
        "End Date": time(end),
        "Time Taken": if n.is_multiple_of(5) { json!(took.to_string()) } else { json!(took) },
        "statusCode": if failed { json!(500) } else { json!(200) },
        "Bot ID": session["botId"],
        "User ID": session["userId"],
        "Feature Name ": FEATURES[(n % 3) as usize],
        "Model Name": model,
        "Channel Name": session["channel"],
        "Description": format!("{}-{:04}", FEATURES[(n % 3) as usize].replace(' ', ""), n % 10_000),
        "task Id": format!("dg-{:x}", pick(FEATURES[(n % 3) as usize], 5)),
        "Status": if failed { "Failure" } else { "Success" },
        "Payload Details": payload,
    })
}

impl Simulator {
    /// Every logged LLM call getLLMUsageLogs can answer with.
    pub fn llm_calls(&self) -> Vec<Value> {
        let st = self.state.lock().expect("simulator lock");
        st.records
            .iter()
            .rev()
            .flat_map(|r| calls_of(&r.record))
            .collect()
    }
}
