//! The simulated conversation history (`getMessagesV2`, and v1
//! `getMessages` with its 100-message page), consistent with
//! the simulated sessions: each session's messages lie between its start
//! and end, alternate between the user and the bot, and come in varied
//! shapes (text, image, an NLResponse whose `data.text` is an object,
//! unicode, HTML entities, `[data_purged]`, message tags). An active session
//! shows its first two messages; when it closes, the rest appear. The
//! `channelType` default is `rtm`, as documented; `sessionId` (a list)
//! narrows a request to those sessions. Rate limits (shared with
//! getSessions), faults and the 7-day rule are the sessions endpoint's.

use super::auth::bot_gate;
use super::faults::next_fault;
use super::http::{DatesAsked, Refusal, date_range, finish};
use super::{LoggedRequest, Shared, SimState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MessagesBody {
    date_from: Option<String>,
    date_to: Option<String>,
    skip: Option<u64>,
    offset: Option<u64>,
    limit: Option<u64>,
    channel_type: Option<String>,
    session_id: Option<Vec<String>>,
}

/// The most messages v1 (`getMessages`) returns per page.
pub const V1_MAX_PAGE: usize = 100;

/// The conversation history routes: v2, and v1 with its 100-message page.
pub(super) fn routes() -> axum::Router<Shared> {
    axum::Router::new()
        .route(
            "/api/public/bot/{bot_id}/getMessagesV2",
            axum::routing::post(get_messages_v2),
        )
        .route(
            "/api/public/bot/{bot_id}/getMessages",
            axum::routing::post(get_messages_v1),
        )
}

/// `POST /api/public/bot/{bot_id}/getMessagesV2`.
async fn get_messages_v2(
    state: State<Shared>,
    bot_id: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    get_messages(state, bot_id, (headers, body), ("messages", None)).await
}

/// `POST /api/public/bot/{bot_id}/getMessages`: the same history, at most
/// [`V1_MAX_PAGE`] a page.
async fn get_messages_v1(
    state: State<Shared>,
    bot_id: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    get_messages(
        state,
        bot_id,
        (headers, body),
        ("messages_v1", Some(V1_MAX_PAGE)),
    )
    .await
}

/// Either version; `resource` labels the log, `page_cap` bounds a page below
/// the simulator's own limit.
async fn get_messages(
    State(state): State<Shared>,
    Path(bot_id): Path<String>,
    (headers, body): (HeaderMap, Bytes),
    (resource, page_cap): (&'static str, Option<usize>),
) -> Response {
    let mut st = state.lock().expect("simulator lock");
    let fault = next_fault(&mut st);
    let mut log = LoggedRequest::new(&bot_id);
    log.resource = resource;
    let response = answer(
        &mut st,
        &bot_id,
        (&headers, &body, page_cap),
        &mut log,
        fault.as_ref(),
    );
    st.record(log, &response);
    response
}

fn answer(
    st: &mut SimState,
    bot_id: &str,
    (headers, body, page_cap): (&HeaderMap, &Bytes, Option<usize>),
    log: &mut LoggedRequest,
    fault: Option<&super::Fault>,
) -> Response {
    let gate = bot_gate(
        st,
        (bot_id, headers),
        (|s| &s.deny_chat_history, "Chat History"),
        fault,
    );
    if let Some(answer) = gate {
        return answer;
    }
    let body: MessagesBody = if body.is_empty() {
        MessagesBody::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return Refusal::bad_request(format!("Invalid JSON body: {e}")).into_response();
            }
        }
    };
    let dates = DatesAsked {
        from: body.date_from.as_deref(),
        to: body.date_to.as_deref(),
    };
    let (from, to) = match date_range(dates, log) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    let channel = body.channel_type.clone().unwrap_or_else(|| "rtm".into());
    log.channel_type = body.channel_type.clone();
    if let Some(syn) = st.settings.synthetic.clone().filter(|s| s.with_messages) {
        let ask = SyntheticAsk {
            bot_id,
            channel: &channel,
            window: (from, to),
            session_ids: body.session_id.as_deref(),
            skip: body.skip.or(body.offset).unwrap_or(0),
            limit: body
                .limit
                .map_or(100, |l| l as usize)
                .min(st.settings.max_messages_page),
        };
        log.skip = ask.skip;
        log.limit = body.limit;
        return synthetic_page(st, &syn, &ask, log, fault);
    }
    let skip = body.skip.or(body.offset).unwrap_or(0) as usize;
    log.skip = skip as u64;
    log.limit = body.limit;
    let limit = body
        .limit
        .map_or(100, |l| l as usize)
        .min(st.settings.max_messages_page)
        .min(page_cap.unwrap_or(usize::MAX));
    let inclusive = st.settings.date_to_inclusive;
    let mut matching: Vec<Value> = st
        .records
        .iter()
        .filter(|r| r.bot_id == bot_id && r.record["channel"].as_str() == Some(channel.as_str()))
        .filter(|r| {
            let id = r.record["sessionId"].as_str().unwrap_or_default();
            body.session_id
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == id))
        })
        // Only sessions that can have a message in the window (the
        // simulator's sessions last under a day): a page costs the window's
        // sessions, not the history's.
        .filter(|r| r.start <= to && r.start >= from - Duration::days(1))
        .flat_map(|r| with_templates(messages_of(&r.record), st.settings.template_bytes))
        .filter(|m| {
            let t = created_on(m);
            t >= from && (t < to || (inclusive && t == to))
        })
        .collect();
    // Newest first, as the API pages by default.
    matching.sort_by(|a, b| {
        (created_on(b), b["_id"].as_str()).cmp(&(created_on(a), a["_id"].as_str()))
    });
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(skip).take(limit).collect();
    log.returned = page.len();
    let more = skip.saturating_add(page.len()) < total;
    finish(
        json!({"total": total, "moreAvailable": more, "icon": "", "messages": page}),
        fault,
    )
}

/// A request for synthetic messages (see `Synthetic::with_messages`).
struct SyntheticAsk<'a> {
    bot_id: &'a str,
    channel: &'a str,
    window: (DateTime<Utc>, DateTime<Utc>),
    session_ids: Option<&'a [String]>,
    skip: u64,
    limit: usize,
}

/// A page of synthetic messages, newest first: one per session, created at
/// its start, so the window's sessions of the channel are its messages.
fn synthetic_page(
    st: &SimState,
    syn: &super::Synthetic,
    ask: &SyntheticAsk<'_>,
    log: &mut LoggedRequest,
    fault: Option<&super::Fault>,
) -> Response {
    let (from, to) = ask.window;
    let lo = syn.first_index_at(from.timestamp_millis(), false);
    let hi = syn.first_index_at(to.timestamp_millis(), st.settings.date_to_inclusive);
    let (total, indices) = match ask.session_ids {
        None => super::Synthetic::channel_page(ask.channel, (lo, hi), ask.skip, ask.limit),
        Some(ids) => {
            let mut all: Vec<u64> = ids
                .iter()
                .filter_map(|id| super::Synthetic::index_of(id))
                .filter(|i| (lo..hi).contains(i) && super::Synthetic::channel(*i) == ask.channel)
                .collect();
            all.sort_unstable_by(|a, b| b.cmp(a));
            all.dedup();
            let total = all.len() as u64;
            (
                total,
                all.into_iter()
                    .skip(ask.skip as usize)
                    .take(ask.limit)
                    .collect(),
            )
        }
    };
    let seed = st.settings.seed;
    let page: Vec<Value> = indices
        .iter()
        .map(|&i| {
            let mut text = String::with_capacity(800);
            syn.write_record(seed, ask.bot_id, i, &mut text);
            let session: Value = serde_json::from_str(&text).expect("the generator writes JSON");
            let id = session["sessionId"].as_str().unwrap_or_default().to_owned();
            let at = DateTime::from_timestamp_millis(syn.start_ms(i)).expect("in range");
            message(&session, &id, 0, at)
        })
        .collect();
    log.returned = page.len();
    let more = ask.skip.saturating_add(page.len() as u64) < total;
    finish(
        json!({"total": total, "moreAvailable": more, "icon": "", "messages": page}),
        fault,
    )
}

/// When a message was created (the earliest time if it says nothing).
pub(super) fn created_on(m: &Value) -> DateTime<Utc> {
    m["createdOn"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
}

/// A stable small number from a string, for the generator's choices.
fn pick(s: &str, salt: u64) -> u64 {
    s.bytes().fold(salt ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `messages` with a rich template of `bytes` added to each outgoing one
/// (see `SimSettings::template_bytes`); unchanged when `bytes` is 0.
pub(super) fn with_templates(mut messages: Vec<Value>, bytes: usize) -> Vec<Value> {
    if bytes == 0 {
        return messages;
    }
    for m in messages.iter_mut().filter(|m| m["type"] == "outgoing") {
        let id = m["_id"].as_str().unwrap_or_default().to_owned();
        // Distinct per message, so storage cannot share it between rows.
        let mut payload = String::with_capacity(bytes + 20);
        while payload.len() < bytes {
            payload.push_str(&format!("{id}:{} ", payload.len()));
        }
        payload.truncate(bytes);
        if let Some(components) = m["components"].as_array_mut() {
            components
                .push(json!({"cT": "template", "data": {"type": "carousel", "payload": payload}}));
        }
    }
    messages
}

/// The messages of one simulated session, oldest first.
pub fn messages_of(session: &Value) -> Vec<Value> {
    let Some(id) = session["sessionId"].as_str() else {
        return Vec::new();
    };
    let Some(start) = session["start_time"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
    else {
        return Vec::new();
    };
    let end = session["end_time"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc));
    let n_total = 2 + pick(id, 1) % 5;
    let closed = end.is_some() && session["sessionStatus"].as_str() != Some("active");
    let n = if closed { n_total } else { 2 };
    // The first two half a second apart (a session lasts at least that), the
    // rest spread over what is left of the session: an active session's
    // messages keep their times once it closes, as a message never changes.
    let first_ms = 500;
    let rest_ms = end
        .map_or(0, |e| (e - start).num_milliseconds() - first_ms)
        .max(0);
    (0..n)
        .map(|i| {
            let offset = if i < 2 {
                first_ms * i as i64
            } else {
                first_ms + rest_ms * (i as i64 - 1) / (n_total as i64 - 1)
            };
            message(session, id, i, start + Duration::milliseconds(offset))
        })
        .collect()
}

fn message(session: &Value, id: &str, i: u64, at: DateTime<Utc>) -> Value {
    let channel = session["channel"].clone();
    let user = session["userId"].clone();
    let incoming = i.is_multiple_of(2);
    let components = match pick(id, 10 + i) % 5 {
        0 => {
            json!([{"cT": "text", "data": {"text": format!("Bonjour, j'ai besoin d'aide n°{i} — ünïcødé 👋")}}])
        }
        1 => json!([
            {"cT": "text", "data": {"text": format!("Price &amp; plan &lt;{i}&gt;")}},
            {"cT": "image", "data": {"url": format!("https://cdn.example.com/{id}/{i}.png")}, "thumbnails": []}
        ]),
        2 => json!([
            {"cT": "NLResponse", "data": {"text": {"intent": "reset", "confidence": 0.9}}},
            {"cT": "text", "data": {"text": format!("Message {i} of {id}")}}
        ]),
        3 => json!([{"cT": "text", "data": {"text": "My card is [data_purged]"}}]),
        _ => json!([{"cT": "text", "data": {"text": format!("line one {i}\nline two")}}]),
    };
    let tags = if i == 0 {
        json!({"messageTags": [{"name": "intent", "value": "help"}, {"name": "score", "value": pick(id, 3) % 10}], "userTags": [], "sessionTags": []})
    } else {
        json!({"messageTags": [], "userTags": [], "sessionTags": []})
    };
    json!({
        "_id": format!("ms-{id}-{i}"),
        "type": if incoming { "incoming" } else { "outgoing" },
        "status": if incoming { "received" } else { "sent" },
        "createdBy": if incoming { user.clone() } else { session["botId"].clone() },
        "createdOn": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "botId": session["botId"],
        "chnl": channel,
        "channels": [{"type": channel, "channelUId": user}],
        "lang": "en",
        "sessionId": id,
        "isBB": 0, "isD": 0, "ms": 1,
        "components": components,
        "tags": tags,
        "timestampValue": at.timestamp_millis(),
        "__v": 0
    })
}
