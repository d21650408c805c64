//! Injected faults: the next queued one, or a random one at the configured
//! rate; and applying it to an answer — a changed record first, or a
//! failure (an error status, an HTML 502, a 429) instead of the answer.
//! Slow answers and cut connections are applied by the handler, after the
//! lock is released.

use super::http::Refusal;
use super::limits::RATE_LIMITED;
use super::{Fault, SimRecord, SimState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;

/// The fault for the next answer, if any.
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
            Some(Refusal::new(status, "Internal server error (injected)").into_response())
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
            let mut resp = Refusal::new(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED).into_response();
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, s.to_string().parse().expect("digits"));
            }
            Some(resp)
        }
        _ => None,
    }
}
