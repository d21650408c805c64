//! What every simulated endpoint shares on the HTTP side: the refusal type
//! (a status and the API's error body), writing a JSON answer (cut short
//! when a fault says so), cutting the connection midway, and the documented
//! date forms and 7-day rule.

use super::{Fault, LoggedRequest};
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};

/// A request the simulated API refuses, answered as Kore.ai does: the
/// status and `{"errors": [{"msg", "code"}]}`. Small, so handlers can
/// return it in a `Result` and turn it into a response at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"errors": [{"msg": self.message, "code": self.status.as_u16()}]})),
        )
            .into_response()
    }
}

/// A JSON answer, cut short when the fault is `TruncatedBody`.
pub(super) fn finish(body: Value, fault: Option<&Fault>) -> Response {
    finish_text(
        serde_json::to_string(&body).expect("values serialize"),
        fault,
    )
}

/// A JSON answer already written as text.
pub(super) fn finish_text(text: String, fault: Option<&Fault>) -> Response {
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
pub(super) async fn drop_midway(response: Response) -> Response {
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

/// A request's `dateFrom` and `dateTo`, as sent.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DatesAsked<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
}

/// `dateFrom`/`dateTo` with the documented defaults; explicit dates must
/// span less than 7 days (the defaults are exactly 7).
/// The range goes into `log` before it is checked, as the gateway logs it.
pub(super) fn date_range(
    asked: DatesAsked<'_>,
    log: &mut LoggedRequest,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Refusal> {
    let parse = |s: Option<&str>, field: &str| -> Result<Option<DateTime<Utc>>, Refusal> {
        match s {
            None => Ok(None),
            Some(s) => parse_api_date(s).map(Some).ok_or_else(|| {
                Refusal::bad_request(format!(
                    "Invalid {field}: expected yyyy-mm-dd or yyyy-mm-ddThh:mm:ss.msZ"
                ))
            }),
        }
    };
    let (from, to) = (parse(asked.from, "dateFrom")?, parse(asked.to, "dateTo")?);
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
        return Err(Refusal::bad_request("dateFrom must be before dateTo"));
    }
    if asked.from.is_some() && asked.to.is_some() && to - from >= week {
        return Err(Refusal::bad_request(
            "The date range should be less than 7 days",
        ));
    }
    Ok((from, to))
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
