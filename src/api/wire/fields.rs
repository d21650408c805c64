//! Reading one field of a raw record: leniently where the API is known to
//! vary (numbers sent as text, `isDeveloper` in two spellings), strictly
//! elsewhere, with a [`RecordError`] naming the field.

use super::session::RecordError;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

pub(super) fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}

pub(super) fn opt_string(
    raw: Option<&RawValue>,
    field: &str,
) -> Result<Option<String>, RecordError> {
    match raw {
        None => Ok(None),
        Some(r) if is_null(r) => Ok(None),
        Some(r) => serde_json::from_str::<String>(r.get())
            .map(Some)
            .map_err(|_| RecordError(format!("{field} should be a string, got {}", excerpt(r)))),
    }
}

pub(super) fn opt_string_list(
    raw: Option<&RawValue>,
    field: &str,
) -> Result<Option<Vec<String>>, RecordError> {
    match raw {
        None => Ok(None),
        Some(r) if is_null(r) => Ok(None),
        Some(r) => {
            // The API documents an array; a lone string is accepted as a
            // one-element list rather than rejecting the whole session.
            if let Ok(list) = serde_json::from_str::<Vec<String>>(r.get()) {
                return Ok(Some(list));
            }
            serde_json::from_str::<String>(r.get())
                .map(|s| Some(vec![s]))
                .map_err(|_| {
                    RecordError(format!(
                        "{field} should be a list of strings, got {}",
                        excerpt(r)
                    ))
                })
        }
    }
}

pub(super) fn opt_i32(raw: Option<&RawValue>, field: &str) -> Result<Option<i32>, RecordError> {
    match raw {
        None => Ok(None),
        Some(r) if is_null(r) => Ok(None),
        Some(r) => {
            if let Ok(n) = serde_json::from_str::<i32>(r.get()) {
                return Ok(Some(n));
            }
            // Some serializers write counts as floats ("3.0") or strings ("3").
            let as_float = serde_json::from_str::<f64>(r.get()).ok().or_else(|| {
                serde_json::from_str::<String>(r.get())
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
            });
            match as_float {
                Some(f) if f.fract() == 0.0 && f >= i32::MIN as f64 && f <= i32::MAX as f64 => {
                    Ok(Some(f as i32))
                }
                _ => Err(RecordError(format!(
                    "{field} should be a whole number that fits 32 bits, got {}",
                    excerpt(r)
                ))),
            }
        }
    }
}

/// isDeveloper is documented both as a Boolean and as "1 for Yes, 0 for No".
pub(super) fn opt_flag(raw: Option<&RawValue>, field: &str) -> Result<Option<bool>, RecordError> {
    let Some(r) = raw else { return Ok(None) };
    match r.get().trim() {
        "null" => Ok(None),
        "true" | "1" | "\"true\"" | "\"1\"" => Ok(Some(true)),
        "false" | "0" | "\"false\"" | "\"0\"" => Ok(Some(false)),
        _ => Err(RecordError(format!(
            "{field} should be true/false or 1/0, got {}",
            excerpt(r)
        ))),
    }
}

/// A string as is, anything else (a number, a list) as its JSON text; null
/// as None. For fields whose type the API does not fix.
pub(super) fn opt_text(raw: Option<&RawValue>) -> Option<String> {
    let r = raw.filter(|r| !is_null(r))?;
    serde_json::from_str::<String>(r.get())
        .ok()
        .or_else(|| Some(r.get().trim().to_owned()))
}

/// A whole number from a number or a numeric string (fractions rounded;
/// an empty string is None).
pub(super) fn opt_whole_number(
    raw: Option<&RawValue>,
    field: &str,
) -> Result<Option<i64>, RecordError> {
    let Some(r) = raw.filter(|r| !is_null(r)) else {
        return Ok(None);
    };
    let text = serde_json::from_str::<String>(r.get()).unwrap_or_else(|_| r.get().to_owned());
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i64>()
        .ok()
        .or_else(|| {
            text.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && f.abs() < 9e15)
                .map(|f| f.round() as i64)
        })
        .map(Some)
        .ok_or_else(|| {
            RecordError(format!(
                "{field} should be a whole number, got {}",
                excerpt(r)
            ))
        })
}

pub(super) fn parse_time(s: &str, field: &str) -> Result<DateTime<Utc>, RecordError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| RecordError(format!("{field} is not an ISO-8601 timestamp ({e}): {s:?}")))
}

pub(super) fn excerpt(r: &RawValue) -> String {
    let s = r.get();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_owned()
    }
}
