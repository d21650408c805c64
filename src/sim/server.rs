//! The simulator's HTTP side: routes, authentication, rate limiting, faults,
//! and the `getSessions` semantics themselves.

use super::{Fault, LoggedRequest, SimRecord, SimState};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

type Shared = Arc<Mutex<SimState>>;

/// The sessions and bot-list routes (`sim::messages` adds its own).
pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/public/bot/{bot_id}/getSessions", post(bot_scope))
        .route("/api/public/getSessions", post(account_scope))
        .route("/api/public/bots", get(list_bots))
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

#[derive(Debug, Deserialize)]
struct BotsParams {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The Admin Console's bot list: the account app only, the account's rate
/// limit, `limit` at most 50, `availableMore` — and each bot's `jwtApps`
/// with its client secret, as the real API sends them.
async fn list_bots(
    State(state): State<Shared>,
    Query(params): Query<BotsParams>,
    headers: HeaderMap,
) -> Response {
    let mut st = state.lock().expect("simulator lock");
    let mut log = LoggedRequest::new("bots");
    let response = match admit(&mut st, "*", &headers) {
        Err(resp) => resp,
        Ok(()) => {
            let offset = params.offset.unwrap_or(0);
            let limit = params.limit.unwrap_or(50).clamp(1, 50);
            let all = &st.settings.bots;
            let page: Vec<Value> = all
                .iter()
                .skip(offset)
                .take(limit)
                .map(|b| {
                    json!({
                        "_id": b.id,
                        "name": super::data::bot_name(&b.id),
                        "description": format!("Simulated bot {}", b.id),
                        "status": "published",
                        "type": "default",
                        "defaultLanguage": "en",
                        "createdOn": "2024-03-01T10:00:00.000Z",
                        "jwtApps": [{
                            "clientId": b.app.client_id,
                            "clientSecret": b.app.client_secret,
                            "name": "sessions app"
                        }]
                    })
                })
                .collect();
            log.returned = page.len();
            axum::Json(json!({
                "total": all.len(),
                "availableMore": offset + page.len() < all.len(),
                "bots": page
            }))
            .into_response()
        }
    };
    log.status = response.status().as_u16();
    st.log.push(log);
    st.answered.send_modify(|n| *n += 1);
    response
}

pub(super) fn error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        axum::Json(json!({"errors": [{"msg": msg, "code": status.as_u16()}]})),
    )
        .into_response()
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RequestBody {
    pub(super) user_id: Option<String>,
    pub(super) skip: Option<u64>,
    pub(super) offset: Option<u64>,
    pub(super) limit: Option<u64>,
    pub(super) date_from: Option<String>,
    pub(super) date_to: Option<String>,
    pub(super) session_type: Option<String>,
    pub(super) session_id: Option<Vec<String>>,
    pub(super) tags: Option<Value>,
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
        log.status = response.status().as_u16();
        st.log.push(log);
        st.answered.send_modify(|n| *n += 1);
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

pub(super) fn next_fault(st: &mut SimState) -> Option<Fault> {
    if let Some(f) = st.faults.pop_front() {
        return Some(f);
    }
    if st.settings.fault_rate > 0.0 && st.rng.random_bool(st.settings.fault_rate.min(1.0)) {
        let kinds = [
            Fault::Status(500),
            Fault::Status(503),
            Fault::HtmlBadGateway,
            Fault::RateLimited {
                retry_after: Some(1),
            },
            Fault::RateLimited { retry_after: None },
            Fault::DropConnection,
            Fault::TruncatedBody,
            Fault::Slow(st.settings.slow_fault),
        ];
        let i = st.rng.random_range(0..kinds.len());
        return Some(kinds[i].clone());
    }
    None
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
    if let Err(resp) = admit(st, req.scope, req.headers) {
        return resp;
    }
    if let Some(resp) = apply_fault(st, fault) {
        return resp;
    }
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    // The call id variant: the sessions of one external call.
    if let Some(call_id) = &req.params.call_id {
        return by_call_id(st, req.scope, call_id, log, fault);
    }
    // sessionId lookups ignore every other filter.
    if let Some(ids) = &body.session_id {
        return by_session_ids(st, req.scope, ids, log, fault);
    }
    let (from, to) = match date_range(&body, log) {
        Ok(range) => range,
        Err(resp) => return resp,
    };
    let ask = match paging(st, &body, from, to, log) {
        Ok(ask) => ask,
        Err(resp) => return resp,
    };
    if let Some(syn) = st.settings.synthetic.clone() {
        return synthetic_page(st, &syn, req, ask, log, fault);
    }
    stored_page(st, req, &body, ask, log, fault)
}

/// Routing, authentication and the rate limit.
#[allow(clippy::result_large_err)]
pub(super) fn admit(st: &mut SimState, scope: &str, headers: &HeaderMap) -> Result<(), Response> {
    let allowed_apps: Vec<(String, String)> = if scope == "*" {
        st.settings
            .account_app
            .iter()
            .map(|a| (a.client_id.clone(), a.client_secret.clone()))
            .collect()
    } else {
        match st.settings.bots.iter().find(|b| b.id == scope) {
            Some(b) => vec![(b.app.client_id.clone(), b.app.client_secret.clone())],
            None => {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    &format!("Bot {scope} not found"),
                ));
            }
        }
    };
    authenticate(st, headers, &allowed_apps)?;
    match rate_limit(st, scope) {
        Some(resp) => Err(resp),
        None => Ok(()),
    }
}

/// Applies an injected fault: changes the records first, or answers with
/// the failure instead.
pub(super) fn apply_fault(st: &mut SimState, fault: Option<&Fault>) -> Option<Response> {
    match fault {
        Some(Fault::UpsertFirst(record)) => {
            let rec = SimRecord::from_value(record.clone());
            st.records.retain(|r| r.session_id != rec.session_id);
            st.records.push(rec);
            st.sort();
            None
        }
        Some(Fault::RemoveFirst(id)) => {
            st.records.retain(|r| &r.session_id != id);
            None
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(error(status, "Internal server error (injected)"))
        }
        Some(Fault::HtmlBadGateway) => Some(
            (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
            )
                .into_response(),
        ),
        Some(Fault::RateLimited { retry_after }) => {
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit for this API has been reached. Please try again after some time.",
            );
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, s.to_string().parse().expect("digits"));
            }
            Some(resp)
        }
        _ => None,
    }
}

/// The JSON body (empty: all defaults) and the containment type asked for.
#[allow(clippy::result_large_err)]
fn parse_body(req: &Incoming<'_>) -> Result<RequestBody, Response> {
    let body: RequestBody = if req.body.is_empty() {
        RequestBody::default()
    } else {
        serde_json::from_slice(req.body)
            .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("Invalid JSON body: {e}")))?
    };
    if let Some(ct) = &req.params.containment_type
        && !["selfService", "dropOff", "agent"].contains(&ct.as_str())
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid containmentType {ct}"),
        ));
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
) -> Response {
    log.session_ids = Some(ids.len());
    if ids.len() > 50 {
        return error(StatusCode::BAD_REQUEST, "sessionId accepts at most 50 ids");
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
    finish(
        json!({"total": found.len(), "moreAvailable": false, "sessions": found, "invalidSessions": invalid}),
        fault,
    )
}

/// `dateFrom`/`dateTo` with the documented defaults; explicit dates must
/// span less than 7 days (the defaults are exactly 7).
#[allow(clippy::result_large_err)]
pub(super) fn date_range(
    body: &RequestBody,
    log: &mut LoggedRequest,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Response> {
    let parse = |s: &Option<String>, field: &str| -> Result<Option<DateTime<Utc>>, Response> {
        match s {
            None => Ok(None),
            Some(s) => parse_api_date(s).map(Some).ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid {field}: expected yyyy-mm-dd or yyyy-mm-ddThh:mm:ss.msZ"),
                )
            }),
        }
    };
    let (from, to) = (
        parse(&body.date_from, "dateFrom")?,
        parse(&body.date_to, "dateTo")?,
    );
    let week = Duration::days(7);
    let (from, to) = match (from, to) {
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, f + week),
        (None, Some(t)) => (t - week, t),
        (None, None) => {
            let today = Utc::now()
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc();
            (today - week, today)
        }
    };
    log.date_from = Some(from);
    log.date_to = Some(to);
    if to < from {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "dateFrom must be before dateTo",
        ));
    }
    if body.date_from.is_some() && body.date_to.is_some() && to - from >= week {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "The date range should be less than 7 days",
        ));
    }
    Ok((from, to))
}

/// `skip` (or `offset`) and `limit`, as deep and as large as the settings
/// allow.
#[allow(clippy::result_large_err)]
fn paging(
    st: &SimState,
    body: &RequestBody,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    log: &mut LoggedRequest,
) -> Result<PageAsk, Response> {
    let skip = body.skip.or(body.offset).unwrap_or(0);
    log.skip = skip;
    log.limit = body.limit;
    if let Some(max) = st.settings.max_skip
        && skip >= max
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            &format!("skip must be less than {max}"),
        ));
    }
    if let (Some(max), Some(limit)) = (st.settings.refuse_limit_above, body.limit)
        && limit > max as u64
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            &format!("limit must not exceed {max}"),
        ));
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

pub(super) fn finish(body: Value, fault: Option<&Fault>) -> Response {
    finish_text(
        serde_json::to_string(&body).expect("values serialize"),
        fault,
    )
}

fn finish_text(text: String, fault: Option<&Fault>) -> Response {
    if let Some(Fault::TruncatedBody) = fault {
        let cut = text.len() / 2;
        let cut = (0..=cut)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        return (
            [(header::CONTENT_TYPE, "application/json")],
            text[..cut].to_owned(),
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// Sends half of the body, then fails the stream so the connection is cut.
async fn drop_midway(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected drop",
        )),
    ];
    let mut resp =
        Response::from_parts(parts, Body::from_stream(futures_util::stream::iter(chunks)));
    resp.headers_mut().insert(
        header::CONTENT_LENGTH,
        bytes.len().to_string().parse().expect("digits"),
    );
    resp
}

/// Dates as the API documents them: `yyyy-mm-dd` or a full timestamp, GMT.
fn parse_api_date(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[derive(Debug, Deserialize)]
struct SimClaims {
    #[serde(rename = "appId")]
    app_id: Option<String>,
    jti: Option<String>,
}

#[allow(clippy::result_large_err)]
fn authenticate(
    st: &mut SimState,
    headers: &HeaderMap,
    apps: &[(String, String)],
) -> Result<(), Response> {
    let Some(token) = headers.get("auth").and_then(|v| v.to_str().ok()) else {
        return Err(error(StatusCode::UNAUTHORIZED, "auth header is missing"));
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = true;
    for (client_id, secret) in apps {
        let Ok(data) = jsonwebtoken::decode::<SimClaims>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        ) else {
            continue;
        };
        if data.claims.app_id.as_deref() != Some(client_id.as_str()) {
            continue;
        }
        if st.settings.enforce_jti {
            match data.claims.jti {
                None => {
                    return Err(error(
                        StatusCode::UNAUTHORIZED,
                        "jti claim is required for this app",
                    ));
                }
                Some(jti) => {
                    if !st.seen_jti.insert(jti) {
                        return Err(error(StatusCode::UNAUTHORIZED, "jti has already been used"));
                    }
                }
            }
        }
        return Ok(());
    }
    Err(error(
        StatusCode::UNAUTHORIZED,
        "Invalid token: the signature or appId does not match an app with access to this bot",
    ))
}

fn rate_limit(st: &mut SimState, scope: &str) -> Option<Response> {
    let (per_min, per_hour) = st.settings.rate_limit?;
    let now = tokio::time::Instant::now();
    let log = st.rate_log.entry(scope.to_owned()).or_default();
    while log
        .front()
        .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(3600))
    {
        log.pop_front();
    }
    let in_minute = log
        .iter()
        .rev()
        .take_while(|t| now.duration_since(**t) < std::time::Duration::from_secs(60))
        .count();
    if in_minute >= per_min as usize || log.len() >= per_hour as usize {
        return Some(error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit for this API has been reached. Please try again after some time.",
        ));
    }
    log.push_back(now);
    None
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
