//! The wire shapes of `getAnalytics` (NLU analytics): the request body, the
//! answer's envelope, and the parser of one record into an
//! [`AnalyticsEvent`]. Like the other parsers it is total: a field of an
//! unexpected type rejects the record by name, and the record is kept in
//! `raw` as received (after the privacy rules, `super::privacy`).

use super::fields::{excerpt, opt_flag, opt_string, opt_text, opt_whole_number, parse_time};
use super::session::RecordError;
use super::tags::parse_tags;
use crate::model::{AnalyticsEvent, AnalyticsType};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The request body of `getAnalytics` for one type and one date window.
/// `limit` and `skip` are required by the API; `filters.channel` is always
/// sent, as the API reads `rtm` alone without it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AnalyticsRequest {
    #[serde(rename = "type")]
    pub kind: String,
    pub filters: AnalyticsFilters,
    pub limit: u64,
    pub skip: u64,
}

/// `filters` of an analytics request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AnalyticsFilters {
    pub from: String,
    pub to: String,
    pub channel: Vec<String>,
}

/// The answer's envelope; records stay raw so one bad record is reported
/// on its own.
#[derive(Debug, Deserialize)]
pub struct AnalyticsResponse {
    #[serde(rename = "totalCount", default)]
    pub total_count: Option<u64>,
    #[serde(rename = "moreAvailable", default)]
    pub more_available: Option<bool>,
    #[serde(default)]
    pub result: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "_id", borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(rename = "botId", borrow, default)]
    bot_id: Option<&'a RawValue>,
    #[serde(rename = "sessionId", borrow, default)]
    session_id: Option<&'a RawValue>,
    #[serde(rename = "messageId", borrow, default)]
    message_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(borrow, default)]
    language: Option<&'a RawValue>,
    #[serde(rename = "userId", borrow, default)]
    user_id: Option<&'a RawValue>,
    #[serde(rename = "channelUId", borrow, default)]
    channel_uid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    utterance: Option<&'a RawValue>,
    #[serde(borrow, default)]
    intent: Option<&'a RawValue>,
    #[serde(rename = "taskId", borrow, default)]
    task_id: Option<&'a RawValue>,
    #[serde(rename = "taskName", borrow, default)]
    task_name: Option<&'a RawValue>,
    #[serde(rename = "isAmbiguous", borrow, default)]
    is_ambiguous: Option<&'a RawValue>,
    #[serde(rename = "nodeName", borrow, default)]
    node_name: Option<&'a RawValue>,
    #[serde(rename = "type", borrow, default)]
    node_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
    #[serde(rename = "statusCode", borrow, default)]
    status_code: Option<&'a RawValue>,
    #[serde(rename = "responseTime", borrow, default)]
    response_time: Option<&'a RawValue>,
    #[serde(rename = "customTags", borrow, default)]
    tags: Option<&'a RawValue>,
}

/// Parses one record listed under `kind` for `bot_id` (the record's own
/// `botId` wins when it has one); the record's text becomes `raw`
/// uncopied. A record that fails is handed back with the reason.
pub(super) fn parse_event_owned(
    raw: Box<RawValue>,
    (kind, bot_id): (AnalyticsType, &str),
) -> Result<AnalyticsEvent, (RecordError, Box<RawValue>)> {
    match parse_fields(&raw, kind) {
        Ok(mut event) => {
            event.bot_id = event.bot_id.or_else(|| Some(bot_id.to_owned()));
            event.raw = Box::<str>::from(raw).into_string();
            Ok(event)
        }
        Err(e) => Err((e, raw)),
    }
}

/// Every field but `raw`, left empty.
fn parse_fields(raw: &RawValue, kind: AnalyticsType) -> Result<AnalyticsEvent, RecordError> {
    // serde would read an array as a struct by position.
    if !raw.get().trim_start().starts_with('{') {
        return Err(RecordError(format!(
            "analytics record is not a JSON object: {}",
            excerpt(raw)
        )));
    }
    let w: WireEvent<'_> = serde_json::from_str(raw.get()).map_err(|e| {
        RecordError(format!(
            "analytics record is not a JSON object of the expected shape ({e}): {}",
            excerpt(raw)
        ))
    })?;
    let event_id = opt_string(w.id, "_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RecordError("_id is missing or empty".into()))?;
    let at = opt_string(w.timestamp, "timestamp")?
        .ok_or_else(|| RecordError("timestamp is missing".into()))?;
    Ok(AnalyticsEvent {
        kind,
        event_id,
        bot_id: opt_string(w.bot_id, "botId")?,
        session_id: opt_string(w.session_id, "sessionId")?,
        message_id: opt_string(w.message_id, "messageId")?,
        event_time: parse_time(&at, "timestamp")?,
        channel: opt_string(w.channel, "channel")?,
        language: opt_string(w.language, "language")?,
        user_id: opt_string(w.user_id, "userId")?,
        channel_uid: opt_string(w.channel_uid, "channelUId")?,
        utterance: opt_string(w.utterance, "utterance")?,
        intent: opt_text(w.intent),
        task_id: opt_string(w.task_id, "taskId")?,
        task_name: opt_string(w.task_name, "taskName")?,
        is_ambiguous: opt_flag(w.is_ambiguous, "isAmbiguous")?,
        node_name: opt_string(w.node_name, "nodeName")?,
        node_type: opt_string(w.node_type, "type")?,
        status: opt_text(w.status),
        status_code: opt_text(w.status_code),
        response_time_ms: opt_whole_number(w.response_time, "responseTime")?,
        raw: String::new(),
        tags: parse_tags(w.tags)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<AnalyticsEvent, RecordError> {
        let raw = serde_json::value::to_raw_value(&v).unwrap();
        parse_event_owned(raw, (AnalyticsType::Performance, "st-1")).map_err(|(e, _)| e)
    }

    #[test]
    fn the_documented_record_parses_field_by_field() {
        let e = parse(json!({
            "_id": "63a", "messageId": "ms-1", "sessionId": "s-1", "utterance": "aslfkj",
            "intent": "Mobile Enquiry", "userId": "u-1", "channelUId": "a@b.c", "language": "en",
            "timestamp": "2022-09-24T08:24:39.840Z", "channel": "rtm", "isAmbiguous": false,
            "taskName": "Mobile Enquiry", "taskId": "dg-1", "nodeName": "Entity_color",
            "type": "entity", "status": "success", "statusCode": 200, "responseTime": "125",
            "customTags": {"userTags": [{"name": "Name", "value": "John"}], "sessionTags": []},
            "NLAnalysis": {"debugTitle": "Performance", "input": ["aslfkj"]}
        }))
        .unwrap();
        assert_eq!(e.event_id, "63a");
        assert_eq!(e.kind, AnalyticsType::Performance);
        assert_eq!(e.bot_id.as_deref(), Some("st-1"));
        assert_eq!(e.event_time.to_rfc3339(), "2022-09-24T08:24:39.840+00:00");
        assert_eq!(e.utterance.as_deref(), Some("aslfkj"));
        assert_eq!(e.is_ambiguous, Some(false));
        assert_eq!(e.status_code.as_deref(), Some("200"));
        assert_eq!(e.response_time_ms, Some(125));
        assert_eq!(e.node_type.as_deref(), Some("entity"));
        assert_eq!(e.tags.len(), 1);
        assert_eq!(e.tags[0].kind, "user");
        assert!(e.raw.contains("NLAnalysis"));
    }

    #[test]
    fn missing_fields_are_none_and_bad_ones_are_named() {
        let e =
            parse(json!({"_id": "x", "timestamp": "2024-01-01T00:00:00Z", "responseTime": 12.6}))
                .unwrap();
        assert_eq!((e.utterance, e.channel, e.is_ambiguous), (None, None, None));
        assert_eq!(e.response_time_ms, Some(13));
        let err = |v| parse(v).unwrap_err().0;
        assert!(err(json!({"timestamp": "2024-01-01T00:00:00Z"})).contains("_id"));
        assert!(err(json!({"_id": "x"})).contains("timestamp"));
        assert!(
            err(json!({"_id": "x", "timestamp": "2024-01-01T00:00:00Z", "responseTime": "slow"}))
                .contains("responseTime")
        );
        assert!(err(json!(["not", "an", "object"])).contains("not a JSON object"));
    }
}
