//! The simulated Admin Console bot list (`GET /api/public/bots`): the
//! account app only, the account's rate limit, `limit` at most 50,
//! `availableMore` — and each bot's `jwtApps` with its client secret, as the
//! real API sends them.

use super::auth::admit;
use super::{LoggedRequest, Shared};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
pub(super) struct BotsParams {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// `GET /api/public/bots`.
pub(super) async fn list_bots(
    State(state): State<Shared>,
    Query(params): Query<BotsParams>,
    headers: HeaderMap,
) -> Response {
    let mut st = state.lock().expect("simulator lock");
    let mut log = LoggedRequest::new("bots");
    let response = match admit(&mut st, "*", &headers) {
        Err(refusal) => refusal.into_response(),
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
    st.record(log, &response);
    response
}
