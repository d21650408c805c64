//! The text of a message: the `data.text` strings of its `components` whose
//! `cT` is `text`, read in one pass over the components with the strings
//! borrowed from the record. (Reading the components as a list of values
//! and then each element again cost three passes over the bytes and a few
//! allocations a message; at a million messages that showed.) Like the
//! rest of the parser it is total: components that are not objects, and
//! fields of other types, carry no text, and anything else is skipped over
//! without being built.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The text lines, one per text component; None when there are none (or
/// `components` is not an array).
pub(super) fn text_of(components: &RawValue) -> Option<String> {
    let TextLines(mut lines) = serde_json::from_str(components.get()).ok()?;
    match lines.len() {
        0 => None,
        1 => lines.pop().map(Cow::into_owned),
        _ => Some(lines.join("\n")),
    }
}

/// The text lines of an array of components (anything else fails, which
/// [`text_of`] takes as no text).
struct TextLines<'a>(Vec<Cow<'a, str>>);

/// One component: its `cT` and its `data.text`, each only if a string.
struct Component<'a> {
    kind: Option<Cow<'a, str>>,
    text: Option<Cow<'a, str>>,
}

/// A component's `data`: its `text` when `data` is an object.
struct DataText<'a>(Option<Cow<'a, str>>);

/// A JSON string, borrowed unless it has escapes; None for other JSON.
struct JsonStr<'a>(Option<Cow<'a, str>>);

/// The keys a component and its `data` are read by.
enum Field {
    Kind,
    Data,
    Text,
    Other,
}

/// Visitor methods taking the scalars a visitor does not want as `$none`.
macro_rules! scalars_are {
    ($none:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

/// Skips the rest of an array.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Skips the rest of an object.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Deserialize<'de> for TextLines<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextLines<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of components")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut lines = Vec::new();
                while let Some(c) = seq.next_element::<Component<'de>>()? {
                    if let (Some("text"), Some(text)) = (c.kind.as_deref(), c.text) {
                        lines.push(text);
                    }
                }
                Ok(TextLines(lines))
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'de> Deserialize<'de> for Component<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NONE: Component<'static> = Component {
            kind: None,
            text: None,
        };
        impl<'de> Visitor<'de> for V {
            type Value = Component<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON")
            }
            scalars_are!(NONE);
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(NONE)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| NONE)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut c = NONE;
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Kind => c.kind = map.next_value::<JsonStr<'de>>()?.0,
                        Field::Data => c.text = map.next_value::<DataText<'de>>()?.0,
                        Field::Text | Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(c)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for DataText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DataText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON")
            }
            scalars_are!(DataText(None));
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(DataText(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| DataText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut text = None;
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Text => text = map.next_value::<JsonStr<'de>>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(DataText(text))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for JsonStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON")
            }
            scalars_are!(JsonStr(None));
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| JsonStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| JsonStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, s: &str) -> Result<Field, E> {
                Ok(match s {
                    "cT" => Field::Kind,
                    "data" => Field::Data,
                    "text" => Field::Text,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(json: &str) -> Option<String> {
        text_of(&RawValue::from_string(json.to_owned()).unwrap())
    }

    #[test]
    fn only_string_texts_of_text_components_count_in_their_order() {
        let got = text(
            r#"[{"data":{"text":"first, cT after data"},"cT":"text"},
                {"cT":"image","data":{"text":"not text"}},
                {"cT":"text","data":{"text":{"nested":"object"}}},
                {"cT":"text","data":"not an object"},
                {"cT":"text"}, 7, "s", null, [1,[2]], {"cT":["text"],"data":{"text":"x"}},
                {"cT":"text","data":{"other":[{"text":"deep"}],"text":"esc\"aped\n"}}]"#,
        );
        assert_eq!(got.as_deref(), Some("first, cT after data\nesc\"aped\n"));
    }

    #[test]
    fn no_text_is_none_and_so_is_anything_but_an_array() {
        assert_eq!(text(r#"[{"cT":"image","data":{"url":"u"}}]"#), None);
        assert_eq!(text("[]"), None);
        assert_eq!(text(r#"{"cT":"text","data":{"text":"t"}}"#), None);
        assert_eq!(text(r#""text""#), None);
        assert_eq!(
            text(r#"[{"cT":"text","data":{"text":"one"}}]"#).as_deref(),
            Some("one")
        );
    }
}
