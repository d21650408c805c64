//! Realistic, deterministic session records for the simulated API: channels,
//! languages, interactive and non-interactive sessions, all three containment
//! types, `isDeveloper` in both documented spellings, mixed-type tag values,
//! unicode, duplicate tag names, extra tag arrays, missing optional fields,
//! and sessions still active near the end of the range.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const CHANNELS: &[(&str, u32)] = &[
    ("rtm", 40),
    ("msteams", 15),
    ("slack", 10),
    ("korevg", 10),
    ("api", 8),
    ("facebook", 6),
    ("email", 4),
    ("sms", 4),
    ("skypeforbusiness", 3),
];
const LANGS: &[&[&str]] = &[
    &["en"],
    &["en"],
    &["en"],
    &["de"],
    &["es"],
    &["en", "es"],
    &["ja"],
    &["fr", "en"],
];
const CITIES: &[&str] = &[
    "Zürich",
    "東京",
    "São Paulo",
    "New York",
    "Kraków",
    "Reykjavík 🌋",
];
const PLANS: &[&str] = &["free", "pro", "enterprise"];

/// Formats a timestamp as the API does: `yyyy-mm-ddThh:mm:ss.mmmZ`.
/// The name the simulated bot list gives a bot.
pub fn bot_name(bot_id: &str) -> String {
    format!("Support bot {}", bot_id.trim_start_matches("st-"))
}

pub fn api_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn pick_weighted<'a>(rng: &mut StdRng, items: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut n = rng.random_range(0..total);
    for (item, w) in items {
        if n < *w {
            return item;
        }
        n -= w;
    }
    items[0].0
}

fn hex_id(rng: &mut StdRng) -> String {
    (0..24)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("digit"))
        .collect()
}

/// A MongoDB ObjectId as Kore.ai's session ids are: 24 hex digits, the first
/// eight the creation time in seconds, so ids sort by time (and the
/// warehouse's id lookups can prune by them, as they can upstream). Draws
/// as many random digits as [`hex_id`].
fn object_id(rng: &mut StdRng, at: DateTime<Utc>) -> String {
    let random = hex_id(rng);
    format!(
        "{:08x}{}",
        at.timestamp().clamp(0, i64::from(u32::MAX)),
        &random[8..]
    )
}

/// Generates the sessions of one bot with start times in `[from, to)`,
/// `per_day` on average, oldest first. The same seed gives the same records.
pub fn generate_bot_sessions(
    seed: u64,
    bot_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    per_day: u32,
) -> Vec<Value> {
    let bot_seed = bot_id
        .bytes()
        .fold(seed, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = StdRng::seed_from_u64(bot_seed);
    let span_ms = (to - from).num_milliseconds().max(0);
    let n = (span_ms as f64 / 86_400_000.0 * f64::from(per_day)).round() as usize;
    let mut starts: Vec<i64> = (0..n)
        .map(|_| rng.random_range(0..span_ms.max(1)))
        .collect();
    starts.sort_unstable();
    let users: Vec<String> = (0..(n / 3).max(5))
        .map(|_| format!("u-{}", hex_id(&mut rng)))
        .collect();
    starts
        .into_iter()
        .map(|offset| {
            let start = from + Duration::milliseconds(offset);
            make_session(&mut rng, bot_id, start, to, &users)
        })
        .collect()
}

/// One record as the API would send it. Sessions that start within the last
/// 20 minutes of `now` are still active and have no end time.
pub fn make_session(
    rng: &mut StdRng,
    bot_id: &str,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    users: &[String],
) -> Value {
    let mut text = String::with_capacity(768);
    write_session(rng, bot_id, start, now, users, None, &mut text);
    serde_json::from_str(&text).expect("the generator writes JSON")
}

/// What [`write_session`] writes in place of its own draws (the benchmark's
/// on-demand sessions have ids and containment types of their own).
pub struct Overrides<'a> {
    pub session_id: &'a str,
    pub containment_type: &'static str,
    pub channel: &'static str,
}

/// Writes one record as JSON text: what [`make_session`] returns, without
/// building a `Value` first (the benchmark serves millions of these). The
/// random draws are the same with or without `overrides`.
pub fn write_session(
    rng: &mut StdRng,
    bot_id: &str,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    users: &[String],
    overrides: Option<&Overrides<'_>>,
    out: &mut String,
) {
    use std::fmt::Write;
    let active = now - start < Duration::minutes(20);
    let interactive = rng.random_bool(0.8);
    let containment = if !interactive {
        "dropOff"
    } else {
        pick_weighted(rng, &[("selfService", 65), ("dropOff", 20), ("agent", 15)])
    };
    let messages: u32 = if interactive {
        rng.random_range(1..40)
    } else {
        0
    };
    let session_id = object_id(rng, start);
    let channel = pick_weighted(rng, CHANNELS);
    let user = &users[rng.random_range(0..users.len())];
    let tasks = rng.random_range(0..=messages.min(5));
    let (session_id, containment, channel) = match overrides {
        Some(o) => (o.session_id, o.containment_type, o.channel),
        None => (session_id.as_str(), containment, channel),
    };
    // Every string written unescaped here is an id, a timestamp or one of the
    // constants above, none of which holds a quote, backslash or control
    // character; `json_str` escapes anything else.
    let _ = write!(
        out,
        r#"{{"sessionId":"{session_id}","botId":{},"channel":"{channel}","userId":{},"start_time":"{}","sessionType":"{}","containmentType":"{containment}","sessionStatus":"{}","noOfMessagesExchanged":{messages},"noOfTasksExecuted":{tasks}"#,
        json_str(bot_id),
        json_str(user),
        api_time(start),
        if interactive {
            "interactive"
        } else {
            "non-interactive"
        },
        if active { "active" } else { "closed" },
    );
    if !active {
        let len = Duration::milliseconds(rng.random_range(500..30 * 60_000));
        let _ = write!(out, r#","end_time":"{}""#, api_time(start + len));
    }
    // About 1 in 20 records lack session_lang, as older sessions do.
    if rng.random_ratio(19, 20) {
        let langs = LANGS[rng.random_range(0..LANGS.len())];
        let _ = write!(out, r#","session_lang":["{}"]"#, langs.join("\",\""));
    }
    // isDeveloper is documented both as a Boolean and as 1/0.
    let dev = rng.random_bool(0.05);
    if rng.random_bool(0.5) {
        let _ = write!(out, r#","isDeveloper":{dev}"#);
    } else {
        let _ = write!(out, r#","isDeveloper":{}"#, u8::from(dev));
    }
    out.push_str(r#","tags":"#);
    // Voice sessions carry the caller's number and channel id as tags, as
    // agent desktops set them: personal data `[privacy]` must catch. Derived
    // from the session, not drawn, so the other draws stay the same.
    let voice = (channel == "korevg").then(|| VoiceTags {
        caller_number: caller_number(session_id),
        channel_uid: user,
    });
    write_tags(rng, voice.as_ref(), out);
    // Voice sessions carry the agent desktop's external call id.
    if channel == "korevg" {
        let _ = write!(out, r#","callId":"call-{}""#, hex_id(rng));
    }
    out.push('}');
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The tags a voice session carries besides the drawn ones.
struct VoiceTags<'a> {
    caller_number: String,
    channel_uid: &'a str,
}

/// A caller number made from a session id: `+1 555 01` and five digits.
pub fn caller_number(session_id: &str) -> String {
    let n = session_id
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    format!("+1 555 01{:05}", n % 100_000)
}

fn write_tags(rng: &mut StdRng, voice: Option<&VoiceTags<'_>>, out: &mut String) {
    use std::fmt::Write;
    let mut user_tags: Vec<String> = Vec::new();
    if let Some(v) = voice {
        user_tags.push(format!(
            r#"{{"name":"channelUId","value":{}}}"#,
            json_str(v.channel_uid)
        ));
    }
    if rng.random_bool(0.7) {
        let plan = PLANS[rng.random_range(0..PLANS.len())];
        user_tags.push(format!(r#"{{"name":"plan","value":"{plan}"}}"#));
    }
    if rng.random_bool(0.5) {
        let city = CITIES[rng.random_range(0..CITIES.len())];
        user_tags.push(format!(r#"{{"name":"city","value":"{city}"}}"#));
    }
    if rng.random_bool(0.3) {
        let visits: u32 = rng.random_range(1..500);
        user_tags.push(format!(r#"{{"name":"visits","value":{visits}}}"#));
    }
    if rng.random_bool(0.2) {
        let vip = rng.random_bool(0.5);
        user_tags.push(format!(r#"{{"name":"vip","value":{vip}}}"#));
    }
    let mut session_tags: Vec<String> = Vec::new();
    if let Some(v) = voice {
        session_tags.push(format!(
            r#"{{"name":"callerNumber","value":"{}"}}"#,
            v.caller_number
        ));
    }
    if rng.random_bool(0.4) {
        session_tags.push(r#"{"name":"intent","value":"order_status"}"#.to_owned());
        // The same name twice in one session: both are kept, by position.
        if rng.random_bool(0.3) {
            session_tags.push(r#"{"name":"intent","value":"refund"}"#.to_owned());
        }
    }
    if rng.random_bool(0.15) {
        let items: u32 = rng.random_range(1..9);
        session_tags.push(format!(
            r#"{{"name":"cart","value":{{"items":{items},"currency":"EUR"}}}}"#
        ));
    }
    if rng.random_bool(0.1) {
        session_tags.push(r#"{"name":"skills","value":["billing","tier2"]}"#.to_owned());
    }
    if rng.random_bool(0.1) {
        session_tags.push(r#"{"name":"escalation","value":null}"#.to_owned());
    }
    if rng.random_bool(0.05) {
        session_tags.push(r#"{"name":"score","value":0.875}"#.to_owned());
    }
    let _ = write!(
        out,
        r#"{{"userTags":[{}],"sessionTags":[{}]"#,
        user_tags.join(","),
        session_tags.join(",")
    );
    if rng.random_bool(0.1) {
        out.push_str(r#","altText":[{"name":"greeting","value":"Grüß Gott 👋"}]"#);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records_and_oldest_first() {
        let from = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let to = from + Duration::days(3);
        let a = generate_bot_sessions(7, "st-a", from, to, 50);
        let b = generate_bot_sessions(7, "st-a", from, to, 50);
        assert_eq!(a, b);
        assert_ne!(a, generate_bot_sessions(8, "st-a", from, to, 50));
        assert_eq!(a.len(), 150);
        let starts: Vec<&str> = a
            .iter()
            .map(|r| r["start_time"].as_str().unwrap())
            .collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn written_records_are_json_with_every_field_and_the_overrides() {
        let now = Utc::now();
        let users = vec!["u-1".to_owned()];
        for n in 0..200u64 {
            let mut rng = StdRng::seed_from_u64(n);
            let mut text = String::new();
            let o = Overrides {
                session_id: "0000000000000000000000ab",
                containment_type: "agent",
                channel: "slack",
            };
            let start = now - Duration::minutes(i64::try_from(n).unwrap());
            write_session(&mut rng, "st-a", start, now, &users, Some(&o), &mut text);
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(v["sessionId"], "0000000000000000000000ab");
            assert_eq!(v["containmentType"], "agent");
            assert_eq!(v["channel"], "slack");
            assert_eq!(v["sessionStatus"], if n < 20 { "active" } else { "closed" });
            assert_eq!(v.get("end_time").is_some(), n >= 20, "{text}");
            assert!(v["tags"]["userTags"].is_array() && v["tags"]["sessionTags"].is_array());
            let raw = serde_json::value::RawValue::from_string(text.clone()).unwrap();
            crate::api::wire::parse_session(&raw, None).unwrap_or_else(|e| panic!("{e}: {text}"));
        }
    }
}
