//! The simulated `getSessions`, both scopes: the call-id and session-id
//! variants, and date windows paged newest first with `total` and
//! `moreAvailable`, filtered by containment type, `userId`, `sessionType`
//! and tags — from the stored records, or built on demand (`Synthetic`).

use super::auth::admit;
use super::faults::{apply_fault, next_fault};
use super::http::{DatesAsked, Refusal, date_range, drop_midway, finish, finish_text};
use super::{Fault, LoggedRequest, Shared, SimRecord, SimState};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;

/// The getSessions routes, bot and account scope.
pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/public/bot/{bot_id}/getSessions", post(bot_scope))
        .route("/api/public/getSessions", post(account_scope))
}

#[derive(Debug, Deserialize)]
struct Params {
    #[serde(rename = "containmentType")]
    containment_type: Option<String>,
    #[serde(rename = "callId")]
    call_id: Option<String>,
}

async fn bot_scope(
    State(state): State<Shared>,
    Path(bot_id): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, bot_id, params, headers, body).await
}

async fn account_scope(
    State(state): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, "*".to_owned(), params, headers, body).await
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RequestBody {
    user_id: Option<String>,
    skip: Option<u64>,
    offset: Option<u64>,
    limit: Option<u64>,
    date_from: Option<String>,
    date_to: Option<String>,
    session_type: Option<String>,
    session_id: Option<Vec<String>>,
    tags: Option<Value>,
}

async fn handle(
    state: Shared,
    scope: String,
    params: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Everything is decided under the lock; only slow answers wait outside it.
    let (mut response, fault, latency) = {
        let mut st = state.lock().expect("simulator lock");
        let fault = next_fault(&mut st);
        let mut log = LoggedRequest::new(&scope);
        log.containment_type = params.containment_type.clone();
        let incoming = Incoming {
            scope: &scope,
            params: &params,
            headers: &headers,
            body: &body,
        };
        let response = answer(&mut st, &incoming, &mut log, fault.as_ref());
        st.record(log, &response);
        (response, fault, st.settings.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(Fault::Slow(d)) = fault {
        tokio::time::sleep(d).await;
    }
    if let Some(Fault::DropConnection) = fault {
        response = drop_midway(response).await;
    }
    response
}

/// One request as the handler received it.
struct Incoming<'a> {
    scope: &'a str,
    params: &'a Params,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// Where a date-window request pages: `[from, to)` (or `to` inclusive,
/// as the settings say), `limit` records from `skip`.
#[derive(Clone, Copy)]
struct PageAsk {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    skip: u64,
    limit: usize,
}

/// Answers one request, in the order the real gateway decides: route and
/// authenticate, rate limit, injected faults, the body, then the call-id,
/// session-id or date-window variant.
fn answer(
    st: &mut SimState,
    req: &Incoming<'_>,
    log: &mut LoggedRequest,
    fault: Option<&Fault>,
) -> Response {
    if let Err(refusal) = admit(st, req.scope, req.headers) {
        return refusal.into_response();
    }
    if let Some(resp) = apply_fault(st, fault) {
        return resp;
    }
    match answer_admitted(st, req, log, fault) {
        Ok(resp) => resp,
        Err(refusal) => refusal.into_response(),
    }
}

/// The body and the variant it asks for, once the request is admitted.
fn answer_admitted(
    st: &mut SimState,
    req: &Incoming<'_>,
    log: &mut LoggedRequest,
    fault: Option<&Fault>,
) -> Result<Response, Refusal> {
    let body = parse_body(req)?;
    // The call id variant: the sessions of one external call.
    if let Some(call_id) = &req.params.call_id {
        return Ok(by_call_id(st, req.scope, call_id, log, fault));
    }
    // sessionId lookups ignore every other filter.
    if let Some(ids) = &body.session_id {
        return by_session_ids(st, req.scope, ids, log, fault);
    }
    let dates = DatesAsked {
        from: body.date_from.as_deref(),
        to: body.date_to.as_deref(),
    };
    let (from, to) = date_range(dates, log)?;
    let ask = paging(st, &body, (from, to), log)?;
    if let Some(syn) = st.settings.synthetic.clone() {
        return Ok(synthetic_page(st, &syn, req, ask, log, fault));
    }
    Ok(stored_page(st, req, &body, ask, log, fault))
}

/// The JSON body (empty: all defaults) and the containment type asked for.
fn parse_body(req: &Incoming<'_>) -> Result<RequestBody, Refusal> {
    let body: RequestBody = if req.body.is_empty() {
        RequestBody::default()
    } else {
        serde_json::from_slice(req.body)
            .map_err(|e| Refusal::bad_request(format!("Invalid JSON body: {e}")))?
    };
    if let Some(ct) = &req.params.containment_type
        && !["selfService", "dropOff", "agent"].contains(&ct.as_str())
    {
        return Err(Refusal::bad_request(format!(
            "Invalid containmentType {ct}"
        )));
    }
    Ok(body)
}

fn in_scope(scope: &str, r: &SimRecord) -> bool {
    scope == "*" || r.bot_id == scope
}

/// The sessions of one external call (`?callId=`).
fn by_call_id(
    st: &SimState,
    scope: &str,
    call_id: &str,
    log: &mut LoggedRequest,
    fault: Option<&Fault>,
) -> Response {
    let found: Vec<Value> = st
        .records
        .iter()
        .filter(|r| in_scope(scope, r) && r.record["callId"].as_str() == Some(call_id))
        .map(|r| r.record.clone())
        .collect();
    log.returned = found.len();
    finish(
        json!({"total": found.len(), "moreAvailable": false, "sessions": found}),
        fault,
    )
}

/// A sessionId lookup: at most 50 ids, duplicates ignored, unknown ids in
/// `invalidSessions`.
fn by_session_ids(
    st: &SimState,
    scope: &str,
    ids: &[String],
    log: &mut LoggedRequest,
    fault: Option<&Fault>,
) -> Result<Response, Refusal> {
    log.session_ids = Some(ids.len());
    if ids.len() > 50 {
        return Err(Refusal::bad_request("sessionId accepts at most 50 ids"));
    }
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    let mut invalid = Vec::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        match st
            .records
            .iter()
            .find(|r| &r.session_id == id && in_scope(scope, r))
        {
            Some(r) => found.push(r.record.clone()),
            None => invalid.push(id.clone()),
        }
    }
    log.returned = found.len();
    Ok(finish(
        json!({"total": found.len(), "moreAvailable": false, "sessions": found, "invalidSessions": invalid}),
        fault,
    ))
}

/// `skip` (or `offset`) and `limit`, as deep and as large as the settings
/// allow.
fn paging(
    st: &SimState,
    body: &RequestBody,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    log: &mut LoggedRequest,
) -> Result<PageAsk, Refusal> {
    let skip = body.skip.or(body.offset).unwrap_or(0);
    log.skip = skip;
    log.limit = body.limit;
    if let Some(max) = st.settings.max_skip
        && skip >= max
    {
        return Err(Refusal::bad_request(format!(
            "skip must be less than {max}"
        )));
    }
    if let (Some(max), Some(limit)) = (st.settings.refuse_limit_above, body.limit)
        && limit > max as u64
    {
        return Err(Refusal::bad_request(format!("limit must not exceed {max}")));
    }
    let limit = body
        .limit
        .map_or(st.settings.default_page_size, |l| l as usize)
        .min(st.settings.max_page_size);
    Ok(PageAsk {
        from,
        to,
        skip,
        limit,
    })
}

/// A page of synthetic sessions: newest first over the bot's indices in the
/// window; only the page's records are built.
fn synthetic_page(
    st: &SimState,
    syn: &super::Synthetic,
    req: &Incoming<'_>,
    ask: PageAsk,
    log: &mut LoggedRequest,
    fault: Option<&Fault>,
) -> Response {
    let inclusive = st.settings.date_to_inclusive;
    let lo = syn.first_index_at(ask.from.timestamp_millis(), false);
    let hi = syn.first_index_at(ask.to.timestamp_millis(), inclusive);
    let (seed, scope) = (st.settings.seed, req.scope);
    let ct = req.params.containment_type.as_deref();
    let total = super::Synthetic::count(seed, scope, ct, lo, hi) as usize;
    let indices = super::Synthetic::page(seed, scope, ct, (lo, hi), ask.skip, ask.limit);
    log.returned = indices.len();
    let more = (ask.skip as usize).saturating_add(indices.len()) < total;
    let mut text = String::with_capacity(64 + 800 * indices.len());
    text.push_str(&format!(
        r#"{{"total":{total},"moreAvailable":{more},"sessions":["#
    ));
    for (n, i) in indices.into_iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        syn.write_record(seed, scope, i, &mut text);
    }
    text.push_str("]}");
    finish_text(text, fault)
}

/// A page of the stored records matching the window and the filters,
/// newest first.
fn stored_page(
    st: &SimState,
    req: &Incoming<'_>,
    body: &RequestBody,
    ask: PageAsk,
    log: &mut LoggedRequest,
    fault: Option<&Fault>,
) -> Response {
    let inclusive = st.settings.date_to_inclusive;
    let matching: Vec<&SimRecord> = st
        .records
        .iter()
        .filter(|r| in_scope(req.scope, r))
        .filter(|r| r.start >= ask.from && (r.start < ask.to || (inclusive && r.start == ask.to)))
        .filter(|r| {
            req.params
                .containment_type
                .as_deref()
                .is_none_or(|c| r.record["containmentType"].as_str() == Some(c))
        })
        .filter(|r| matches_filters(body, &r.record))
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .iter()
        .skip(ask.skip as usize)
        .take(ask.limit)
        .map(|r| r.record.clone())
        .collect();
    log.returned = page.len();
    let more = (ask.skip as usize).saturating_add(page.len()) < total;
    finish(
        json!({"total": total, "moreAvailable": more, "sessions": page}),
        fault,
    )
}

/// The body's `userId`, `sessionType` and `tags` filters.
fn matches_filters(body: &RequestBody, record: &Value) -> bool {
    body.user_id
        .as_deref()
        .is_none_or(|u| record["userId"].as_str() == Some(u))
        && body
            .session_type
            .as_deref()
            .is_none_or(|t| record["sessionType"].as_str() == Some(t))
        && body
            .tags
            .as_ref()
            .is_none_or(|f| tags_match(f, &record["tags"]))
}

/// The simulator's reading of the tags filter: every `{name, value}` listed
/// under a key (e.g. `userTags`) must be among the record's tags of that key.
fn tags_match(filter: &Value, tags: &Value) -> bool {
    let Some(groups) = filter.as_object() else {
        return true;
    };
    groups.iter().all(|(key, wanted)| {
        let have = tags[key].as_array().cloned().unwrap_or_default();
        wanted.as_array().is_none_or(|w| {
            w.iter().all(|t| {
                have.iter().any(|h| {
                    h["name"] == t["name"] && (t.get("value").is_none() || h["value"] == t["value"])
                })
            })
        })
    })
}
