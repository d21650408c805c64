//! The simulated NLU analytics (`getAnalytics`), consistent with the
//! simulated sessions and messages: each user message is an NLU event
//! (intent found, not found, or unhandled), each bot message a node's
//! performance log, and each closed session with a task a task's success or
//! failure, all timed as the message they come from and shown only once it
//! is (an active session's later messages appear when it closes). Records
//! carry the documented quirks: numbers as strings now and then, and a
//! large `NLAnalysis` holding the user's words. `type`, `filters.from` and
//! `filters.to`, `limit` and `skip` are required; `filters.channel`
//! defaults to `rtm`, as documented. Rate limits and faults are the other
//! endpoints'.

use super::auth::{answer_logged, bot_gate};
use super::http::{DatesAsked, Refusal, date_range, finish};
use super::messages::messages_of;
use super::{LoggedRequest, Shared, SimState, Simulator};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// The six request types, as the API spells them.
pub const TYPES: [&str; 6] = [
    "successintent",
    "failintent",
    "successtask",
    "failtask",
    "performance",
    "unhandledutterance",
];

const INTENTS: [&str; 4] = [
    "Reset password",
    "Check balance",
    "Order status",
    "Talk to agent",
];
const TASKS: [&str; 3] = ["Book flight", "Update address", "Cancel order"];
const NODES: [(&str, &str); 4] = [
    ("Entity_color", "entity"),
    ("Service_lookup", "service"),
    ("Message_greet", "message"),
    ("Script_validate", "script"),
];

#[derive(Debug, Deserialize)]
struct AnalyticsBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    filters: Option<Filters>,
    limit: Option<u64>,
    skip: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Filters {
    from: Option<String>,
    to: Option<String>,
    channel: Option<Vec<String>>,
}

/// The analytics route.
pub(super) fn routes() -> axum::Router<Shared> {
    axum::Router::new().route(
        "/api/public/bot/{bot_id}/getAnalytics",
        axum::routing::post(get_analytics),
    )
}

/// `POST /api/public/bot/{bot_id}/getAnalytics`.
async fn get_analytics(
    State(state): State<Shared>,
    Path(bot_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer_logged(&state, (&bot_id, "analytics"), |st, log, fault| {
        answer(st, &bot_id, (&headers, &body), log, fault)
    })
}

fn answer(
    st: &mut SimState,
    bot_id: &str,
    (headers, body): (&HeaderMap, &Bytes),
    log: &mut LoggedRequest,
    fault: Option<&super::Fault>,
) -> Response {
    let gate = bot_gate(
        st,
        (bot_id, headers),
        (|s| &s.deny_metrics, "Metrics"),
        fault,
    );
    if let Some(answer) = gate {
        return answer;
    }
    let body: AnalyticsBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return Refusal::bad_request(format!("Invalid JSON body: {e}")).into_response(),
    };
    let (Some(kind), Some(filters), Some(limit), Some(skip)) =
        (body.kind, body.filters, body.limit, body.skip)
    else {
        return Refusal::bad_request("type, filters, limit and skip are required").into_response();
    };
    if !TYPES.contains(&kind.as_str()) {
        return Refusal::bad_request(format!("Invalid type: {kind}")).into_response();
    }
    let dates = DatesAsked {
        from: filters.from.as_deref(),
        to: filters.to.as_deref(),
    };
    if dates.from.is_none() || dates.to.is_none() {
        return Refusal::bad_request("filters.from and filters.to are required").into_response();
    }
    let (from, to) = match date_range(dates, log) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    let channels = filters.channel.unwrap_or_else(|| vec!["rtm".into()]);
    log.channel_type = Some(channels.join(","));
    log.analytics_type = Some(kind.clone());
    log.skip = skip;
    log.limit = Some(limit);
    let inclusive = st.settings.date_to_inclusive;
    // The simulator's sessions last under a day: events in the window
    // belong to sessions that start at most a day before it.
    let span = (from - chrono::Duration::days(1), to);
    let lists = st.derived(("analytics", bot_id), span, |st, span| {
        events_of_bot(st, bot_id, span)
    });
    let mut matching: Vec<&Value> = lists
        .iter()
        .flat_map(|events| events.iter())
        .filter(|e| e["__type"] == kind.as_str())
        .filter(|e| channels.iter().any(|c| e["channel"] == c.as_str()))
        .filter(|e| {
            let t = event_time(e);
            t >= from && (t < to || (inclusive && t == to))
        })
        .collect();
    // Newest first, as the other endpoints page.
    matching.sort_by_cached_key(|e| {
        std::cmp::Reverse((event_time(e), e["_id"].as_str().map(str::to_owned)))
    });
    let total = matching.len();
    let limit = (limit as usize).min(st.settings.max_page_size);
    let page: Vec<Value> = matching
        .into_iter()
        .skip(skip as usize)
        .take(limit)
        .map(|e| without_type(e.clone()))
        .collect();
    log.returned = page.len();
    let more = (skip as usize).saturating_add(page.len()) < total;
    finish(
        json!({"moreAvailable": more, "totalCount": total, "result": page}),
        fault,
    )
}

/// The events of `bot_id`'s sessions that start in `[from, to]` (a request
/// costs the window's sessions, not the history's), each with its type in
/// `__type`.
fn events_of_bot(
    st: &SimState,
    bot_id: &str,
    (from, to): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
) -> Vec<Value> {
    st.sessions_starting(bot_id, (from, to))
        .iter()
        .flat_map(|r| events_of(r))
        .collect()
}

fn event_time(e: &Value) -> chrono::DateTime<chrono::Utc> {
    e["timestamp"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map_or(chrono::DateTime::<chrono::Utc>::MIN_UTC, |t| {
            t.with_timezone(&chrono::Utc)
        })
}

fn without_type(mut e: Value) -> Value {
    if let Some(o) = e.as_object_mut() {
        o.remove("__type");
    }
    e
}

/// A stable small number from a string, for the generator's choices.
fn pick(s: &str, salt: u64) -> u64 {
    s.bytes().fold(salt ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The analytics events of one simulated session (its visible messages'),
/// each with its type in `__type`.
pub fn events_of(session: &Value) -> Vec<Value> {
    let messages = messages_of(session);
    let mut events: Vec<Value> = messages
        .iter()
        .map(|m| event_of_message(session, m))
        .collect();
    let closed = session["sessionStatus"].as_str() != Some("active");
    if let (true, Some(last)) = (closed && messages.len() >= 3, messages.last()) {
        events.push(task_event(session, last));
    }
    events
}

/// The fields every event of a message shares.
fn base(session: &Value, m: &Value, kind: &str) -> Value {
    let msg_id = m["_id"].as_str().unwrap_or_default();
    let user = session["userId"].clone();
    json!({
        "__type": kind,
        "_id": format!("{:016x}{:08x}", pick(msg_id, 1), pick(kind, 2) as u32),
        "messageId": msg_id,
        "sessionId": session["sessionId"],
        "userId": user,
        "channelUId": user,
        "language": "en",
        "timestamp": m["createdOn"],
        "channel": session["channel"],
        "pinned": false,
        "customTags": {
            "userTags": [{"name": "Name", "value": "John"}],
            "sessionTags": [{"name": "plan", "value": "pro"}],
            "messageTags": []
        }
    })
}

/// What the user wrote in a message (its text components, one per line).
fn text_of(m: &Value) -> String {
    let lines: Vec<&str> = m["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["cT"] == "text")
        .filter_map(|c| c["data"]["text"].as_str())
        .collect();
    lines.join("\n")
}

fn event_of_message(session: &Value, m: &Value) -> Value {
    let msg_id = m["_id"].as_str().unwrap_or_default();
    let n = pick(msg_id, 7);
    if m["type"] != "incoming" {
        let (node, node_type) = NODES[(n % 4) as usize];
        let failed = n.is_multiple_of(9);
        let mut e = base(session, m, "performance");
        let ms = 40 + n % 900;
        e["nodeName"] = json!(node);
        e["type"] = json!(node_type);
        e["status"] = json!(if failed { "failed" } else { "success" });
        // Numbers as strings now and then, as the API sends them.
        e["statusCode"] = if n.is_multiple_of(2) {
            json!(if failed { 500 } else { 200 })
        } else {
            json!(if failed { "500" } else { "200" })
        };
        e["responseTime"] = if n.is_multiple_of(3) {
            json!(ms.to_string())
        } else {
            json!(ms)
        };
        e["NLAnalysis"] = json!({"result": "performance", "debugTitle": "Performance"});
        return e;
    }
    let utterance = text_of(m);
    let (kind, title, intent) = match n % 10 {
        0..=5 => (
            "successintent",
            "Intent Match Successful",
            Some(INTENTS[(n / 10 % 4) as usize]),
        ),
        6 | 7 => ("failintent", "Intent Match Failed", None),
        _ => ("unhandledutterance", "Unhandled Utterances", None),
    };
    let mut e = base(session, m, kind);
    e["utterance"] = json!(utterance);
    e["intent"] = intent.map_or(Value::Null, |i| json!(i));
    e["isAmbiguous"] = json!(n.is_multiple_of(7));
    e["winningIntent"] = json!([]);
    e["NLAnalysis"] = nl_analysis(&utterance, kind, title);
    e
}

/// A large `NLAnalysis` (kilobytes, as the API's), holding the user's words
/// where the documentation says: `input` and `nlProcessing.*Input`.
fn nl_analysis(utterance: &str, kind: &str, title: &str) -> Value {
    let words: Vec<Value> = utterance
        .split_whitespace()
        .map(|w| json!({"word": w, "pos": "NN", "stop": false}))
        .collect();
    let eliminated: Vec<Value> = INTENTS
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"intent": name, "score": 0.1 * i as f64, "reason": "Below threshold"}))
        .collect();
    json!({
        "result": kind, "debugTitle": title, "bot": "Support bot", "botid": "st-sim",
        "input": [utterance],
        "nlProcessing": {"originalInput": utterance, "spellCorrectedInput": utterance,
                         "normalizedInput": utterance.to_lowercase()},
        "ml": {"words": words, "eliminatedIntents": eliminated, "threshold": 0.3},
        "faq": {"matched": false, "candidates": [{"question": "How do I reset my password?", "score": 0.21}]},
        "iv": "1.0", "cek": {"applied": false}
    })
}

/// A closed session's task: done or failed at its last message.
fn task_event(session: &Value, last: &Value) -> Value {
    let id = session["sessionId"].as_str().unwrap_or_default();
    let n = pick(id, 11);
    let kind = if n.is_multiple_of(4) {
        "failtask"
    } else {
        "successtask"
    };
    let mut e = base(session, last, kind);
    let task = TASKS[(n % 3) as usize];
    e["taskName"] = json!(task);
    e["taskId"] = json!(format!("dg-{:x}", pick(task, 5)));
    e["status"] = json!(if kind == "failtask" {
        "failed"
    } else {
        "completed"
    });
    e["NLAnalysis"] = json!({"result": kind, "debugTitle": if kind == "failtask" {
        "Intent Failed/Abandoned" } else { "Intent Completed Successfully" }, "task": task});
    e
}

impl Simulator {
    /// Every analytics event getAnalytics can answer with, over every type
    /// and channel, with its type in `__type`.
    pub fn analytics_events(&self) -> Vec<Value> {
        let st = self.state.lock().expect("simulator lock");
        st.records
            .iter()
            .rev()
            .flat_map(|r| events_of(&r.record))
            .collect()
    }
}
