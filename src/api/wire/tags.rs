//! A record's `tags`: every array under it (`userTags`, `sessionTags`, …)
//! flattened into rows of its own kind, each value kept as text and as
//! JSON, so mixed-type and duplicate tags survive.

use super::fields::{excerpt, is_null};
use super::session::RecordError;
use crate::model::Tag;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct WireTag<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

/// Flattens `tags`: every array under it becomes rows of its own kind.
/// Non-array members (null, objects) carry no rows; they stay in `raw`.
pub(super) fn parse_tags(raw: Option<&RawValue>) -> Result<Vec<Tag>, RecordError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if is_null(raw) {
        return Ok(Vec::new());
    }
    let groups: BTreeMap<Cow<'_, str>, &RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| RecordError(format!("tags should be an object, got {}", excerpt(raw))))?;
    let mut tags = Vec::new();
    for (key, list) in groups {
        let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(list.get()) else {
            continue;
        };
        let kind = match key.as_ref() {
            "userTags" => "user".to_owned(),
            "sessionTags" => "session".to_owned(),
            // A message's own tags (conversation history).
            "messageTags" => "message".to_owned(),
            other => other.to_owned(),
        };
        for (ordinal, item) in items.into_iter().enumerate() {
            let ordinal = i32::try_from(ordinal)
                .map_err(|_| RecordError(format!("tags.{key} has too many entries")))?;
            tags.push(parse_tag(&kind, ordinal, item));
        }
    }
    Ok(tags)
}

fn parse_tag(kind: &str, ordinal: i32, item: &RawValue) -> Tag {
    match serde_json::from_str::<WireTag<'_>>(item.get()) {
        Ok(t) => Tag {
            kind: kind.to_owned(),
            ordinal,
            name: t.name.and_then(json_to_text),
            value: t.value.and_then(json_to_text),
            value_json: t
                .value
                .map_or_else(|| "null".to_owned(), |v| v.get().to_owned()),
        },
        // A bare value instead of {name, value}: keep it as a nameless tag.
        Err(_) => Tag {
            kind: kind.to_owned(),
            ordinal,
            name: None,
            value: json_to_text(item),
            value_json: item.get().to_owned(),
        },
    }
}

/// A string as is; null as None; anything else as its JSON text.
fn json_to_text(raw: &RawValue) -> Option<String> {
    let s = raw.get().trim();
    if s == "null" {
        None
    } else if s.starts_with('"') {
        serde_json::from_str::<String>(s).ok()
    } else {
        Some(s.to_owned())
    }
}
