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

/// Every array under `tags`, in the order of their keys, as rows of their
/// kind; entries that are not arrays are skipped. `tags` must be an object
/// (or null or absent: no tags).
pub(super) fn parse_tags(raw: Option<&RawValue>) -> Result<Vec<Tag>, RecordError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if is_null(raw) {
        return Ok(Vec::new());
    }
    // Keys borrowed from the record (most have no escapes): a message has
    // three groups, usually empty, and a million messages made this a
    // leading source of allocations.
    let groups: BTreeMap<Key<'_>, &RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| RecordError(format!("tags should be an object, got {}", excerpt(raw))))?;
    let mut tags = Vec::new();
    for (Key(key), list) in groups {
        let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(list.get()) else {
            continue;
        };
        if items.is_empty() {
            continue;
        }
        let kind: Cow<'static, str> = match key.as_ref() {
            "userTags" => Cow::Borrowed("user"),
            "sessionTags" => Cow::Borrowed("session"),
            "messageTags" => Cow::Borrowed("message"),
            other => Cow::Owned(other.to_owned()),
        };
        for (ordinal, item) in items.into_iter().enumerate() {
            let ordinal = i32::try_from(ordinal)
                .map_err(|_| RecordError(format!("tags.{key} has too many entries")))?;
            tags.push(parse_tag(kind.clone(), ordinal, item));
        }
    }
    Ok(tags)
}

/// A key of `tags`, borrowed from the record unless it has escapes.
/// (serde's own `Cow<str>` always copies.)
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

fn parse_tag(kind: Cow<'static, str>, ordinal: i32, item: &RawValue) -> Tag {
    match serde_json::from_str::<WireTag<'_>>(item.get()) {
        Ok(t) => Tag {
            kind,
            ordinal,
            name: t.name.and_then(json_to_text),
            value: t.value.and_then(json_to_text),
            value_json: t
                .value
                .map_or_else(|| "null".to_owned(), |v| v.get().to_owned()),
        },
        // A bare value instead of {name, value}: keep it as a nameless tag.
        Err(_) => Tag {
            kind,
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
