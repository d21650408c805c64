//! The message parser (conversation history, `getMessagesV2`): one raw
//! message into a [`Message`], or a [`RecordError`] naming the field. Like
//! the session parser it is total, and keeps the record in `raw`. The
//! privacy rules (among them `messages.store_text`) are applied to the
//! record before it is parsed (`super::privacy`).

use super::components::text_of;
use super::fields::{excerpt, is_null, opt_string, parse_time};
use super::session::RecordError;
use super::tags::parse_tags;
use crate::model::Message;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(rename = "_id", borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(rename = "sessionId", borrow, default)]
    session_id: Option<&'a RawValue>,
    #[serde(rename = "botId", borrow, default)]
    bot_id: Option<&'a RawValue>,
    #[serde(rename = "type", borrow, default)]
    direction: Option<&'a RawValue>,
    #[serde(rename = "createdOn", borrow, default)]
    created_on: Option<&'a RawValue>,
    #[serde(borrow, default)]
    chnl: Option<&'a RawValue>,
    #[serde(borrow, default)]
    lang: Option<&'a RawValue>,
    #[serde(borrow, default)]
    components: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tags: Option<&'a RawValue>,
}

/// Parses one raw message (as protected by the caller, if at all), keeping
/// a copy of it in `raw`.
pub fn parse_message(raw: &RawValue) -> Result<Message, RecordError> {
    let mut message = parse_fields(raw)?;
    message.raw = raw.get().to_owned();
    Ok(message)
}

/// [`parse_message`] taking the record: its text becomes `raw` without a
/// copy (a page of messages is megabytes). A record that fails is handed
/// back with the reason.
pub fn parse_message_owned(raw: Box<RawValue>) -> Result<Message, (RecordError, Box<RawValue>)> {
    match parse_fields(&raw) {
        Ok(mut message) => {
            message.raw = Box::<str>::from(raw).into_string();
            Ok(message)
        }
        Err(e) => Err((e, raw)),
    }
}

/// Every field of a message but `raw`, left empty.
fn parse_fields(raw: &RawValue) -> Result<Message, RecordError> {
    let text = raw.get();
    if !text.trim_start().starts_with('{') {
        return Err(RecordError(format!(
            "message is not a JSON object: {}",
            excerpt(raw)
        )));
    }
    let w: WireMessage<'_> = serde_json::from_str(text).map_err(|e| {
        RecordError(format!(
            "message is not a JSON object of the expected shape: {e}"
        ))
    })?;
    let message_id = opt_string(w.id, "_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RecordError("_id is missing or empty".into()))?;
    let created = opt_string(w.created_on, "createdOn")?
        .ok_or_else(|| RecordError("createdOn is missing".into()))?;
    // Kept as received (parsed once more, borrowing, for the text): no
    // tree of values is built and serialised again.
    let components = w.components.filter(|c| !is_null(c));
    let message_text = components.and_then(text_of);
    Ok(Message {
        message_id,
        session_id: opt_string(w.session_id, "sessionId")?,
        bot_id: opt_string(w.bot_id, "botId")?,
        direction: opt_string(w.direction, "type")?,
        created_on: parse_time(&created, "createdOn")?,
        channel: opt_string(w.chnl, "chnl")?,
        lang: opt_string(w.lang, "lang")?,
        text: message_text,
        components: components.map(|c| c.get().to_owned()),
        raw: String::new(),
        tags: parse_tags(w.tags)?,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::Value;

    pub(in crate::api::wire) fn raw(v: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&v).unwrap()
    }

    pub(in crate::api::wire) fn sample() -> Value {
        serde_json::json!({
            "_id": "ms-1", "type": "incoming", "createdOn": "2026-01-02T03:04:05.678Z",
            "botId": "st-1", "chnl": "msteams", "lang": "en", "sessionId": "s-1",
            "components": [
                {"cT": "text", "data": {"text": "Héllo &amp; 👋"}},
                {"cT": "image", "data": {"url": "https://x/y.png"}},
                {"cT": "NLResponse", "data": {"text": {"nested": "object"}}},
                {"cT": "text", "data": {"text": "second line"}}
            ],
            "tags": {"messageTags": [{"name": "intent", "value": "reset"}], "userTags": []}
        })
    }

    #[test]
    fn text_joins_the_text_components_and_tags_are_flattened() {
        let m = parse_message(&raw(sample())).unwrap();
        assert_eq!(m.message_id, "ms-1");
        assert_eq!(m.direction.as_deref(), Some("incoming"));
        assert_eq!(m.channel.as_deref(), Some("msteams"));
        assert_eq!(m.text.as_deref(), Some("Héllo &amp; 👋\nsecond line"));
        assert_eq!(m.tags.len(), 1);
        assert_eq!(m.tags[0].kind, "message");
        assert_eq!(m.tags[0].value.as_deref(), Some("reset"));
        assert!(m.raw.contains("Héllo"));
    }

    #[test]
    fn a_message_without_id_or_time_is_refused_by_name() {
        let e = parse_message(&raw(
            serde_json::json!({"createdOn": "2026-01-01T00:00:00Z"}),
        ))
        .unwrap_err();
        assert!(e.0.contains("_id"), "{e}");
        let e = parse_message(&raw(serde_json::json!({"_id": "m"}))).unwrap_err();
        assert!(e.0.contains("createdOn"), "{e}");
    }
}
