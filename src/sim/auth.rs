//! Who may call the simulated API: routing a scope to the apps allowed to
//! read it, HS256 JWTs signed with one of their secrets (with `appId`, and
//! a fresh `jti` when the app enforces it), then the scope's rate limit;
//! and what every per-bot endpoint checks first (`bot_gate`).

use super::faults::apply_fault;
use super::http::Refusal;
use super::limits::rate_limit;
use super::{Fault, SimSettings, SimState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Routing, authentication and the rate limit, in the gateway's order.
pub(super) fn admit(st: &mut SimState, scope: &str, headers: &HeaderMap) -> Result<(), Refusal> {
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
                return Err(Refusal::new(
                    StatusCode::NOT_FOUND,
                    format!("Bot {scope} not found"),
                ));
            }
        }
    };
    authenticate(st, headers, &allowed_apps)?;
    rate_limit(st, scope)
}

#[derive(Debug, Deserialize)]
struct SimClaims {
    #[serde(rename = "appId")]
    app_id: Option<String>,
    jti: Option<String>,
}

/// Accepts a token signed by one of `apps` and naming it in `appId`.
fn authenticate(
    st: &mut SimState,
    headers: &HeaderMap,
    apps: &[(String, String)],
) -> Result<(), Refusal> {
    let unauthorized = |msg: &str| Refusal::new(StatusCode::UNAUTHORIZED, msg);
    let Some(token) = headers.get("auth").and_then(|v| v.to_str().ok()) else {
        return Err(unauthorized("auth header is missing"));
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
                None => return Err(unauthorized("jti claim is required for this app")),
                Some(jti) => {
                    if !st.seen_jti.insert(jti) {
                        return Err(unauthorized("jti has already been used"));
                    }
                }
            }
        }
        return Ok(());
    }
    Err(unauthorized(
        "Invalid token: the signature or appId does not match an app with access to this bot",
    ))
}

/// Answers one request of a per-bot endpoint labelled `resource` in the
/// request log: under the simulator's lock, with the next injected fault,
/// recorded once answered.
pub(super) fn answer_logged(
    state: &super::Shared,
    (bot_id, resource): (&str, &'static str),
    answer: impl FnOnce(&mut SimState, &mut super::LoggedRequest, Option<&Fault>) -> Response,
) -> Response {
    let mut st = state.lock().expect("simulator lock");
    let fault = super::faults::next_fault(&mut st);
    let mut log = super::LoggedRequest::new(bot_id);
    log.resource = resource;
    let response = answer(&mut st, &mut log, fault.as_ref());
    st.record(log, &response);
    response
}

/// The bots of a scope an endpoint needs whose apps lack it (a list of the
/// simulator's settings), and the scope's name.
pub(super) type ScopeDenial<'a> = (fn(&SimSettings) -> &Vec<String>, &'a str);

/// What a per-bot endpoint checks before anything else: the bot exists,
/// the caller may call ([`admit`]), the app has the endpoint's scope (a bot
/// in the denial's list is answered 403 naming it), and the injected fault,
/// if any. Some: the answer to send instead.
pub(super) fn bot_gate(
    st: &mut SimState,
    (bot_id, headers): (&str, &HeaderMap),
    (denied, scope): ScopeDenial<'_>,
    fault: Option<&Fault>,
) -> Option<Response> {
    if !st.settings.bots.iter().any(|b| b.id == bot_id) {
        let refusal = Refusal::new(StatusCode::NOT_FOUND, format!("Bot {bot_id} not found"));
        return Some(refusal.into_response());
    }
    if let Err(refusal) = admit(st, bot_id, headers) {
        return Some(refusal.into_response());
    }
    if denied(&st.settings).iter().any(|b| b == bot_id) {
        let refusal = Refusal::new(
            StatusCode::FORBIDDEN,
            format!("The app is not authorized to access this API ({scope} scope)"),
        );
        return Some(refusal.into_response());
    }
    apply_fault(st, fault)
}
