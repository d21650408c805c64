//! Applies [`PrivacyRules`] to one raw record (a session or a message)
//! before it is parsed, so every column derived from it — and `raw` itself —
//! holds only protected values: `parse_or_reject` and
//! `parse_message_or_reject`, the parsers the engine calls, go through here. This module knows where the API puts
//! end-user ids: `userId`, a message's `createdBy`/`lmodifiedBy` (unless the
//! bot wrote it) and `channels[].channelUId`, and the `{name, value}` lists
//! under `tags`.

use super::analytics::parse_event_owned;
use super::llm::{parse_usage_owned, usage_id};
use super::message::parse_message_owned;
use super::session::{RecordError, parse_session_owned, session_id_of};
use crate::model::{
    AnalyticsEvent, AnalyticsType, ContainmentType, LlmUsage, Message, RejectedRecord, Session,
};
use crate::privacy::PrivacyRules;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// What a rejected record keeps when it cannot be protected (it is not a
/// JSON object, so no field can be found in it).
pub const WITHHELD: &str = r#"{"removed": "the record is not a JSON object, so it is not kept under [privacy] or messages.store_text = false"}"#;

/// Parses one raw session record after `rules` protected it, or keeps it
/// (as protected) as a [`RejectedRecord`] with the reason (and its
/// sessionId, if it has a readable one). `stream_containment` fills
/// `containment_type` when the record lacks it.
pub fn parse_or_reject(
    raw: Box<RawValue>,
    stream_containment: Option<ContainmentType>,
    rules: &PrivacyRules,
) -> Result<Session, RejectedRecord> {
    parse_protected((rules, protect), raw, |r| {
        parse_session_owned(r, stream_containment)
    })
}

/// Parses one raw message after `rules` protected it (with
/// `messages.store_text` off, each component's `data` is removed first, so
/// `text` is None), or keeps it, as protected, as a [`RejectedRecord`].
pub fn parse_message_or_reject(
    raw: Box<RawValue>,
    rules: &PrivacyRules,
) -> Result<Message, RejectedRecord> {
    parse_protected((rules, protect), raw, parse_message_owned)
}

/// Parses one analytics record of `kind` read for `bot_id` after `rules`
/// protected it (see [`protect_analytics`]), or keeps it, as protected,
/// as a [`RejectedRecord`].
pub fn parse_analytics_or_reject(
    raw: Box<RawValue>,
    (kind, bot_id): (AnalyticsType, &str),
    rules: &PrivacyRules,
) -> Result<AnalyticsEvent, RejectedRecord> {
    parse_protected((rules, protect_analytics), raw, |r| {
        parse_event_owned(r, (kind, bot_id))
    })
}

/// Parses one LLM usage record read for `bot_id` after `rules` protected
/// it (see [`protect_llm_usage`]), or keeps it, as protected, as a
/// [`RejectedRecord`]. Its id is derived from the record as received, so it
/// is the same under any settings (see `llm::usage_id`).
pub fn parse_llm_usage_or_reject(
    raw: Box<RawValue>,
    bot_id: &str,
    rules: &PrivacyRules,
) -> Result<LlmUsage, RejectedRecord> {
    let id = usage_id(&raw, bot_id).unwrap_or_default();
    parse_protected((rules, protect_llm_usage), raw, |r| {
        parse_usage_owned(r, (bot_id, &id))
    })
}

/// How a kind of record is protected (`protect`, `protect_analytics`): the
/// record with the rules applied, None when it is not a JSON object.
type Protect = fn(&PrivacyRules, &str) -> Option<String>;

/// Parses `raw` with `parse` after applying `rules` to it; a record that
/// fails is kept as rejected in its protected form (or withheld whole).
/// The record's text moves into what it is parsed into, uncopied.
fn parse_protected<T>(
    (rules, protect): (&PrivacyRules, Protect),
    raw: Box<RawValue>,
    parse: impl FnOnce(Box<RawValue>) -> Result<T, (RecordError, Box<RawValue>)>,
) -> Result<T, RejectedRecord> {
    let reject = |(e, record): (RecordError, Box<RawValue>), listed_as| RejectedRecord {
        session_id: session_id_of(&record),
        reason: e.0,
        raw: Box::<str>::from(record).into_string(),
        listed_as,
    };
    if rules.is_identity() {
        return parse(raw).map_err(|e| reject(e, None));
    }
    let protected = protect(rules, raw.get()).and_then(|text| RawValue::from_string(text).ok());
    let Some(protected) = protected else {
        return Err(RejectedRecord {
            session_id: None,
            reason: "the record is not a JSON object".into(),
            raw: WITHHELD.into(),
            listed_as: Some(Box::<str>::from(raw).into_string()),
        });
    };
    parse(protected).map_err(|e| reject(e, Some(Box::<str>::from(raw).into_string())))
}

/// The record with the rules applied, as JSON text; None when `raw` is not
/// a JSON object (then nothing of it may be kept).
pub fn protect(rules: &PrivacyRules, raw: &str) -> Option<String> {
    let mut record: Value = serde_json::from_str(raw).ok()?;
    let obj = record.as_object_mut()?;
    if rules.user_id_fields() {
        protect_ids(rules, obj);
    }
    protect_tags(rules, obj.get_mut("tags"));
    if !rules.store_text() {
        remove_content(obj);
    }
    Some(record.to_string())
}

/// Replaces the end-user ids of a session or message with pseudonyms.
fn protect_ids(rules: &PrivacyRules, obj: &mut Map<String, Value>) {
    let bot_id = obj.get("botId").cloned();
    if let Some(v) = obj.get_mut("userId") {
        hash_value(rules, v);
    }
    for field in ["createdBy", "lmodifiedBy"] {
        if let Some(v) = obj.get_mut(field)
            && Some(&*v) != bot_id.as_ref()
        {
            hash_value(rules, v);
        }
    }
    if let Some(channels) = obj.get_mut("channels").and_then(Value::as_array_mut) {
        for channel in channels.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(v) = channel.get_mut("channelUId") {
                hash_value(rules, v);
            }
        }
    }
}

/// Protects every `{name, value}` tag of the lists under `groups` (a
/// record's `tags` or `customTags`).
fn protect_tags(rules: &PrivacyRules, groups: Option<&mut Value>) {
    let Some(groups) = groups.and_then(Value::as_object_mut) else {
        return;
    };
    for list in groups.values_mut().filter_map(Value::as_array_mut) {
        for tag in list.iter_mut().filter_map(Value::as_object_mut) {
            protect_tag(rules, tag);
        }
    }
}

/// Drops or pseudonymises one `{name, value}` tag's value by its name.
fn protect_tag(rules: &PrivacyRules, tag: &mut Map<String, Value>) {
    let Some(name) = tag.get("name").and_then(Value::as_str) else {
        return;
    };
    let (drop, hash) = (rules.drops_tag(name), rules.hashes_tag(name));
    if let Some(v) = tag.get_mut("value") {
        if drop {
            *v = Value::Null;
        } else if hash {
            hash_value(rules, v);
        }
    }
}

/// A string becomes its pseudonym; any other non-null value the pseudonym
/// of its JSON text (so an id sent as a number is not kept either).
fn hash_value(rules: &PrivacyRules, v: &mut Value) {
    let text = match &*v {
        Value::Null => return,
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    *v = Value::String(rules.pseudonym(&text));
}

/// An analytics record with the rules applied (see [`protect`]): its
/// `userId` and `channelUId` pseudonymised, its `customTags` protected like
/// `tags`, and without `messages.store_text` its `utterance` removed and
/// its `NLAnalysis` cut to what names the outcome (`result`, `debugTitle`,
/// `bot`, `botid`, `task`): the rest analyses the user's words, and holds
/// them (`input`, `nlProcessing.*Input`, word analyses).
pub fn protect_analytics(rules: &PrivacyRules, raw: &str) -> Option<String> {
    let mut record: Value = serde_json::from_str(raw).ok()?;
    let obj = record.as_object_mut()?;
    if rules.user_id_fields() {
        for field in ["userId", "channelUId"] {
            if let Some(v) = obj.get_mut(field) {
                hash_value(rules, v);
            }
        }
    }
    protect_tags(rules, obj.get_mut("customTags"));
    if !rules.store_text() {
        obj.remove("utterance");
        if let Some(nl) = obj.get_mut("NLAnalysis").and_then(Value::as_object_mut) {
            nl.retain(|k, _| {
                ["result", "debugTitle", "bot", "botid", "task"].contains(&k.as_str())
            });
        }
    }
    Some(record.to_string())
}

/// An LLM usage record with the rules applied (see [`protect`]): its `User
/// ID` and `channelUserIds` pseudonymised, and without
/// `messages.store_text` the prompt and the answer removed from `Payload
/// Details` (`Request Payload`; of `Response Payload` only its `id` and
/// `usage` stay), the token counts kept.
pub fn protect_llm_usage(rules: &PrivacyRules, raw: &str) -> Option<String> {
    let mut record: Value = serde_json::from_str(raw).ok()?;
    let obj = record.as_object_mut()?;
    if rules.user_id_fields() {
        if let Some(v) = obj.get_mut("User ID") {
            hash_value(rules, v);
        }
        if let Some(ids) = obj.get_mut("channelUserIds").and_then(Value::as_array_mut) {
            ids.iter_mut().for_each(|v| hash_value(rules, v));
        }
    }
    if !rules.store_text()
        && let Some(details) = obj
            .get_mut("Payload Details")
            .and_then(Value::as_object_mut)
    {
        details.remove("Request Payload");
        if let Some(response) = details
            .get_mut("Response Payload")
            .and_then(Value::as_object_mut)
        {
            response.retain(|k, _| k == "id" || k == "usage");
        }
    }
    Some(record.to_string())
}

/// Removes what people wrote or were shown: each component's `data`.
fn remove_content(obj: &mut Map<String, Value>) {
    if let Some(components) = obj.get_mut("components").and_then(Value::as_array_mut) {
        for c in components.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("data");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::parse_message;
    use super::super::message::tests::{raw as msg_raw, sample};
    use super::super::session::parse_session;
    use super::*;
    use crate::privacy::PseudonymKey;
    use serde_json::json;

    fn rules(p: &[&str], d: &[&str], store_text: bool) -> PrivacyRules {
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        let d: Vec<String> = d.iter().map(|s| s.to_string()).collect();
        PrivacyRules::new(&p, &d, store_text, Some(PseudonymKey::new(&"k".repeat(32)))).unwrap()
    }

    #[test]
    fn without_store_text_no_content_is_kept() {
        let no_text = PrivacyRules::new(&[], &[], false, None).unwrap();
        let m = parse_message_or_reject(msg_raw(sample()), &no_text).unwrap();
        assert_eq!(m.text, None);
        for kept in [m.raw.as_str(), m.components.as_deref().unwrap()] {
            assert!(
                !kept.contains("Héllo") && !kept.contains("second line") && !kept.contains("y.png"),
                "{kept}"
            );
            assert!(kept.contains("\"cT\":\"text\""), "{kept}");
        }
        let bad = parse_message_or_reject(
            msg_raw(serde_json::json!({"_id": "x", "components": [{"cT": "text", "data": {"text": "secret words"}}]})),
            &no_text,
        )
        .unwrap_err();
        assert!(bad.reason.contains("createdOn"), "{}", bad.reason);
        assert!(!bad.raw.contains("secret words"), "{}", bad.raw);
        let not_object =
            parse_message_or_reject(msg_raw(serde_json::json!(["secret words"])), &no_text)
                .unwrap_err();
        assert!(!not_object.raw.contains("secret words"));
    }

    #[test]
    fn every_user_id_of_a_message_becomes_the_same_pseudonym() {
        let r = rules(&["user_id"], &[], true);
        let msg = json!({"_id": "m", "botId": "st-1", "type": "incoming",
            "createdBy": "alice@x.com", "lmodifiedBy": "alice@x.com",
            "channels": [{"type": "rtm", "channelUId": "alice@x.com"}],
            "tags": {"userTags": [{"name": "channelUId", "value": "alice@x.com"}]}});
        let out: Value = serde_json::from_str(&protect(&r, &msg.to_string()).unwrap()).unwrap();
        let p = r.pseudonym("alice@x.com");
        assert_eq!(out["createdBy"], p.as_str());
        assert_eq!(out["lmodifiedBy"], p.as_str());
        assert_eq!(out["channels"][0]["channelUId"], p.as_str());
        assert_eq!(out["tags"]["userTags"][0]["value"], p.as_str());
        assert!(!out.to_string().contains("alice"));
        // The bot's own messages keep the bot id.
        let bot = json!({"botId": "st-1", "createdBy": "st-1"});
        let out: Value = serde_json::from_str(&protect(&r, &bot.to_string()).unwrap()).unwrap();
        assert_eq!(out["createdBy"], "st-1");
    }

    #[test]
    fn dropped_tags_keep_their_row_with_a_null_value() {
        let r = rules(&[], &["callerNumber"], true);
        let s = json!({"sessionId": "s", "userId": "bob", "tags": {
            "sessionTags": [{"name": "CallerNumber", "value": "+1 555 0100"}, {"name": "intent", "value": "x"}],
            "altText": [{"name": "callerNumber", "value": {"n": "+1 555 0100"}}]}});
        let out: Value = serde_json::from_str(&protect(&r, &s.to_string()).unwrap()).unwrap();
        assert_eq!(
            out["tags"]["sessionTags"][0],
            json!({"name": "CallerNumber", "value": null})
        );
        assert_eq!(out["tags"]["sessionTags"][1]["value"], "x");
        assert_eq!(out["tags"]["altText"][0]["value"], Value::Null);
        assert_eq!(
            out["userId"], "bob",
            "user ids are kept unless pseudonymised"
        );
    }

    #[test]
    fn non_string_ids_are_hashed_and_non_objects_are_withheld() {
        let r = rules(&["user_id"], &[], false);
        let s = json!({"userId": 12345, "components": [{"cT": "text", "data": {"text": "hi"}}]});
        let out: Value = serde_json::from_str(&protect(&r, &s.to_string()).unwrap()).unwrap();
        assert_eq!(out["userId"], r.pseudonym("12345").as_str());
        assert_eq!(out["components"], json!([{"cT": "text"}]));
        assert_eq!(protect(&r, "[\"alice\"]"), None);
        assert_eq!(protect(&r, "not json"), None);
    }

    proptest::proptest! {
        // Wherever the API puts an end-user id (as a string or not) and
        // whatever else a record holds, the protected record keeps no trace
        // of the id or of a dropped tag's value, and still parses.
        #[test]
        fn no_id_or_dropped_value_survives(
            id in "[a-zA-Z0-9@._+-]{6,24}",
            phone in "\\+[0-9]{8,12}",
            as_number in proptest::bool::ANY,
            tag_kind in proptest::sample::select(vec!["userTags", "sessionTags", "messageTags", "altText"]),
            extra in proptest::collection::btree_map("x[a-z]{1,5}", "[a-z ]{0,8}", 0..4),
        ) {
            let r = rules(&["user_id"], &["callerNumber"], true);
            let user: Value = if as_number { json!(id.len() * 1_000_003 + 7) } else { json!(id) };
            let mut rec = json!({
                "_id": "ms-1", "sessionId": "s-1", "botId": "st-1", "type": "incoming",
                "createdOn": "2026-01-02T03:04:05.678Z", "start_time": "2026-01-02T03:04:05.678Z",
                "userId": user, "createdBy": user, "lmodifiedBy": user,
                "channels": [{"type": "rtm", "channelUId": user}],
                "tags": {tag_kind: [{"name": "channelUId", "value": user}, {"name": "callerNumber", "value": phone}]},
            });
            for (k, v) in &extra {
                rec[k] = json!(v);
            }
            let needle = match &user { Value::String(s) => s.clone(), other => other.to_string() };
            let out = protect(&r, &rec.to_string()).unwrap();
            proptest::prop_assert!(!out.contains(&needle), "{out}");
            proptest::prop_assert!(!out.contains(&phone), "{out}");
            let raw = RawValue::from_string(out).unwrap();
            proptest::prop_assert!(parse_session(&raw, None).is_ok());
            proptest::prop_assert!(parse_message(&raw).is_ok());
        }
    }
}
