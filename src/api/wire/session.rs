//! The record parser: one raw session record into a [`Session`], or a
//! [`RecordError`] naming the field. It is total — any input yields one of
//! the two, never a panic — and fields it does not know are kept in
//! `Session::raw` untouched.

use super::fields::{excerpt, opt_flag, opt_i32, opt_string, opt_string_list, parse_time};
use super::tags::parse_tags;
use crate::model::{ContainmentType, Session};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a record could not be turned into a [`Session`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

/// Every field the typed columns read. Values stay raw so that each can be
/// interpreted leniently where the API is known to vary (isDeveloper) and
/// strictly elsewhere, with an error naming the field.
#[derive(Deserialize)]
struct WireSession<'a> {
    #[serde(rename = "sessionId", borrow, default)]
    session_id: Option<&'a RawValue>,
    #[serde(rename = "botId", borrow, default)]
    bot_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(rename = "userId", borrow, default)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    start_time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    end_time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    session_lang: Option<&'a RawValue>,
    #[serde(rename = "sessionType", borrow, default)]
    session_type: Option<&'a RawValue>,
    #[serde(rename = "containmentType", borrow, default)]
    containment_type: Option<&'a RawValue>,
    #[serde(rename = "isDeveloper", borrow, default)]
    is_developer: Option<&'a RawValue>,
    #[serde(rename = "sessionStatus", borrow, default)]
    session_status: Option<&'a RawValue>,
    #[serde(rename = "noOfMessagesExchanged", borrow, default)]
    messages_exchanged: Option<&'a RawValue>,
    #[serde(rename = "noOfTasksExecuted", borrow, default)]
    tasks_executed: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tags: Option<&'a RawValue>,
}

/// Parses one raw record. `stream_containment` fills `containment_type` when
/// the record lacks it.
pub fn parse_session(
    raw: &RawValue,
    stream_containment: Option<ContainmentType>,
) -> Result<Session, RecordError> {
    let mut session = parse_fields(raw, stream_containment)?;
    session.raw = raw.get().to_owned();
    Ok(session)
}

/// [`parse_session`] taking the record: its text becomes `raw` without a
/// copy. A record that fails is handed back with the reason.
pub fn parse_session_owned(
    raw: Box<RawValue>,
    stream_containment: Option<ContainmentType>,
) -> Result<Session, (RecordError, Box<RawValue>)> {
    match parse_fields(&raw, stream_containment) {
        Ok(mut session) => {
            session.raw = Box::<str>::from(raw).into_string();
            Ok(session)
        }
        Err(e) => Err((e, raw)),
    }
}

/// Every field of a session but `raw`, left empty.
fn parse_fields(
    raw: &RawValue,
    stream_containment: Option<ContainmentType>,
) -> Result<Session, RecordError> {
    let text = raw.get();
    // serde would read a struct from a JSON array positionally; a record must
    // be an object.
    if !text.trim_start().starts_with('{') {
        return Err(RecordError(format!(
            "record is not a JSON object: {}",
            excerpt(raw)
        )));
    }
    let w: WireSession<'_> = serde_json::from_str(text).map_err(|e| {
        RecordError(format!(
            "record is not a JSON object of the expected shape: {e}"
        ))
    })?;

    let session_id = opt_string(w.session_id, "sessionId")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RecordError("sessionId is missing or empty".into()))?;
    let start_raw = opt_string(w.start_time, "start_time")?
        .ok_or_else(|| RecordError("start_time is missing".into()))?;
    let start_time = parse_time(&start_raw, "start_time")?;
    let end_time = match opt_string(w.end_time, "end_time")? {
        Some(s) if !s.is_empty() => Some(parse_time(&s, "end_time")?),
        _ => None,
    };
    let containment_type = opt_string(w.containment_type, "containmentType")?
        .or_else(|| stream_containment.map(|c| c.as_str().to_owned()));

    Ok(Session {
        session_id,
        bot_id: opt_string(w.bot_id, "botId")?,
        channel: opt_string(w.channel, "channel")?,
        user_id: opt_string(w.user_id, "userId")?,
        start_time,
        end_time,
        session_lang: opt_string_list(w.session_lang, "session_lang")?,
        session_type: opt_string(w.session_type, "sessionType")?,
        containment_type,
        is_developer: opt_flag(w.is_developer, "isDeveloper")?,
        session_status: opt_string(w.session_status, "sessionStatus")?,
        messages_exchanged: opt_i32(w.messages_exchanged, "noOfMessagesExchanged")?,
        tasks_executed: opt_i32(w.tasks_executed, "noOfTasksExecuted")?,
        tags: parse_tags(w.tags)?,
        raw: String::new(),
    })
}

/// The sessionId of a record that may be malformed otherwise, for reports.
pub fn session_id_of(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        #[serde(rename = "sessionId")]
        session_id: Option<String>,
    }
    serde_json::from_str::<IdOnly>(raw.get())
        .ok()
        .and_then(|r| r.session_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tag;
    use proptest::prelude::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    const DOC_EXAMPLE: &str = r#"{
      "sessionId": "6465cf6e4769ed4e822b82a1", "botId": "st-dc600cf5",
      "channel": "rtm", "userId": "u-8c4ca335",
      "start_time": "2023-05-18T07:10:38.695Z", "end_time": "2023-05-18T07:10:39.201Z",
      "session_lang": ["en"], "sessionType": "interactive", "containmentType": "selfService",
      "isDeveloper": false, "sessionStatus": "closed",
      "tags": { "userTags": [ {"name": "regular", "value": "newuser"} ], "sessionTags": [] },
      "noOfMessagesExchanged": 3, "noOfTasksExecuted": 1 }"#;

    #[test]
    fn parses_the_documented_example() {
        let s = parse_session(&raw(DOC_EXAMPLE), None).unwrap();
        assert_eq!(s.session_id, "6465cf6e4769ed4e822b82a1");
        assert_eq!(s.bot_id.as_deref(), Some("st-dc600cf5"));
        assert_eq!(s.start_time.timestamp_millis(), 1_684_393_838_695);
        assert_eq!(s.end_time.unwrap().timestamp_millis(), 1_684_393_839_201);
        assert_eq!(s.session_lang, Some(vec!["en".to_owned()]));
        assert_eq!(s.is_developer, Some(false));
        assert_eq!(s.messages_exchanged, Some(3));
        assert_eq!(s.tasks_executed, Some(1));
        assert_eq!(s.containment_type.as_deref(), Some("selfService"));
        assert_eq!(s.raw, DOC_EXAMPLE);
        assert_eq!(
            s.tags,
            vec![Tag {
                kind: "user".into(),
                ordinal: 0,
                name: Some("regular".into()),
                value: Some("newuser".into()),
                value_json: "\"newuser\"".into()
            }]
        );
    }

    #[test]
    fn is_developer_accepts_bool_and_zero_one() {
        for (v, want) in [("true", true), ("false", false), ("1", true), ("0", false)] {
            let rec = format!(
                r#"{{"sessionId":"a","start_time":"2024-01-01T00:00:00.000Z","isDeveloper":{v}}}"#
            );
            assert_eq!(
                parse_session(&raw(&rec), None).unwrap().is_developer,
                Some(want),
                "{v}"
            );
        }
        let rec =
            r#"{"sessionId":"a","start_time":"2024-01-01T00:00:00.000Z","isDeveloper":"maybe"}"#;
        assert!(
            parse_session(&raw(rec), None)
                .unwrap_err()
                .0
                .contains("isDeveloper")
        );
    }

    #[test]
    fn missing_optional_fields_are_none_and_containment_falls_back_to_stream() {
        let rec = r#"{"sessionId":"a","start_time":"2024-01-01T00:00:00.000Z"}"#;
        let s = parse_session(&raw(rec), Some(ContainmentType::DropOff)).unwrap();
        assert_eq!(s.bot_id, None);
        assert_eq!(s.channel, None);
        assert_eq!(s.end_time, None);
        assert_eq!(s.session_lang, None);
        assert_eq!(s.is_developer, None);
        assert_eq!(s.messages_exchanged, None);
        assert_eq!(s.containment_type.as_deref(), Some("dropOff"));
        assert!(s.tags.is_empty());
    }

    #[test]
    fn unknown_fields_are_kept_in_raw() {
        let rec =
            r#"{"sessionId":"a","start_time":"2024-01-01T00:00:00.000Z","brandNew":{"x":[1,2]}}"#;
        let s = parse_session(&raw(rec), None).unwrap();
        assert_eq!(s.raw, rec);
    }

    #[test]
    fn every_tag_value_type_is_flattened() {
        let rec = r#"{"sessionId":"a","start_time":"2024-01-01T00:00:00.000Z","tags":{
            "userTags":[{"name":"s","value":"x"},{"name":"n","value":1.50},{"name":"b","value":true},
                        {"name":"z","value":null},{"name":"o","value":{"k":"v"}},{"name":"a","value":[1,"two"]},
                        {"name":"s","value":"dup"},{"name":"missing"}],
            "sessionTags":[{"name":"ü","value":"日本"}],
            "altText":[{"name":"alt","value":"t"}],
            "notAnArray":{"x":1}}}"#;
        let s = parse_session(&raw(rec), None).unwrap();
        type Row<'a> = (&'a str, i32, Option<&'a str>, Option<&'a str>, &'a str);
        let got: Vec<Row<'_>> = s
            .tags
            .iter()
            .map(|t| {
                (
                    t.kind.as_ref(),
                    t.ordinal,
                    t.name.as_deref(),
                    t.value.as_deref(),
                    t.value_json.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("altText", 0, Some("alt"), Some("t"), "\"t\""),
                ("session", 0, Some("ü"), Some("日本"), "\"日本\""),
                ("user", 0, Some("s"), Some("x"), "\"x\""),
                ("user", 1, Some("n"), Some("1.50"), "1.50"),
                ("user", 2, Some("b"), Some("true"), "true"),
                ("user", 3, Some("z"), None, "null"),
                ("user", 4, Some("o"), Some(r#"{"k":"v"}"#), r#"{"k":"v"}"#),
                ("user", 5, Some("a"), Some(r#"[1,"two"]"#), r#"[1,"two"]"#),
                ("user", 6, Some("s"), Some("dup"), "\"dup\""),
                ("user", 7, Some("missing"), None, "null"),
            ]
        );
    }

    #[test]
    fn bad_records_name_the_field() {
        let cases = [
            (r#"{"start_time":"2024-01-01T00:00:00Z"}"#, "sessionId"),
            (r#"{"sessionId":"a"}"#, "start_time"),
            (
                r#"{"sessionId":"a","start_time":"yesterday"}"#,
                "start_time",
            ),
            (
                r#"{"sessionId":"a","start_time":"2024-01-01T00:00:00Z","noOfMessagesExchanged":"many"}"#,
                "noOfMessagesExchanged",
            ),
            (
                r#"{"sessionId":7,"start_time":"2024-01-01T00:00:00Z"}"#,
                "sessionId",
            ),
            (r#"[1,2]"#, "JSON object"),
            (r#""just a string""#, "JSON object"),
        ];
        for (rec, field) in cases {
            let err = parse_session(&raw(rec), None).unwrap_err();
            assert!(err.0.contains(field), "{rec}: {err}");
        }
    }

    proptest! {
        // The parser is total: any JSON text or garbage yields Ok or Err, never a panic.
        #[test]
        fn parser_never_panics(s in ".{0,200}") {
            if let Ok(r) = RawValue::from_string(s) {
                let _ = parse_session(&r, Some(ContainmentType::Agent));
            }
        }

        #[test]
        fn parser_never_panics_on_json_shaped_records(
            id in proptest::option::of("[a-z0-9]{0,8}"),
            start in prop_oneof![Just("2024-01-01T00:00:00.000Z".to_owned()), ".{0,30}"],
            dev in prop_oneof![Just("true"), Just("0"), Just("\"x\""), Just("null"), Just("[]")],
            msgs in prop_oneof![Just("3"), Just("-1"), Just("1e20"), Just("\"7\""), Just("{}")],
            tag_value in prop_oneof![Just("1"), Just("\"v\""), Just("null"), Just("[{}]"), Just("{\"a\":null}")],
        ) {
            let id = id.map_or("null".to_owned(), |i| format!("{i:?}"));
            let rec = format!(
                r#"{{"sessionId":{id},"start_time":{start:?},"isDeveloper":{dev},"noOfMessagesExchanged":{msgs},"tags":{{"userTags":[{{"name":"n","value":{tag_value}}}],"x":{tag_value}}}}}"#
            );
            if let Ok(r) = RawValue::from_string(rec)
                && let Ok(s) = parse_session(&r, None) {
                    prop_assert!(!s.session_id.is_empty());
                }
        }
    }
}
