//! Realistic, deterministic session records for the simulated API: channels,
//! languages, interactive and non-interactive sessions, all three containment
//! types, `isDeveloper` in both documented spellings, mixed-type tag values,
//! unicode, duplicate tag names, extra tag arrays, missing optional fields,
//! and sessions still active near the end of the range.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

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
    let active = now - start < Duration::minutes(20);
    let interactive = rng.random_bool(0.8);
    let containment = if !interactive {
        "dropOff"
    } else {
        pick_weighted(rng, &[("selfService", 65), ("dropOff", 20), ("agent", 15)])
    };
    let messages = if interactive {
        rng.random_range(1..40)
    } else {
        0
    };
    let mut rec = json!({
        "sessionId": hex_id(rng),
        "botId": bot_id,
        "channel": pick_weighted(rng, CHANNELS),
        "userId": users[rng.random_range(0..users.len())],
        "start_time": api_time(start),
        "sessionType": if interactive { "interactive" } else { "non-interactive" },
        "containmentType": containment,
        "sessionStatus": if active { "active" } else { "closed" },
        "noOfMessagesExchanged": messages,
        "noOfTasksExecuted": rng.random_range(0..=messages.min(5)),
    });
    let obj = rec.as_object_mut().expect("object");
    if !active {
        let len = Duration::milliseconds(rng.random_range(500..30 * 60_000));
        obj.insert("end_time".into(), json!(api_time(start + len)));
    }
    // About 1 in 20 records lack session_lang, as older sessions do.
    if rng.random_ratio(19, 20) {
        let langs = LANGS[rng.random_range(0..LANGS.len())];
        obj.insert("session_lang".into(), json!(langs));
    }
    // isDeveloper is documented both as a Boolean and as 1/0.
    let dev = rng.random_bool(0.05);
    obj.insert(
        "isDeveloper".into(),
        if rng.random_bool(0.5) {
            json!(dev)
        } else {
            json!(u8::from(dev))
        },
    );
    obj.insert("tags".into(), make_tags(rng));
    // Voice sessions carry the agent desktop's external call id.
    if obj["channel"] == "korevg" {
        obj.insert("callId".into(), json!(format!("call-{}", hex_id(rng))));
    }
    rec
}

fn make_tags(rng: &mut StdRng) -> Value {
    let mut user_tags = Vec::new();
    if rng.random_bool(0.7) {
        user_tags.push(json!({"name": "plan", "value": PLANS[rng.random_range(0..PLANS.len())]}));
    }
    if rng.random_bool(0.5) {
        user_tags.push(json!({"name": "city", "value": CITIES[rng.random_range(0..CITIES.len())]}));
    }
    if rng.random_bool(0.3) {
        user_tags.push(json!({"name": "visits", "value": rng.random_range(1..500)}));
    }
    if rng.random_bool(0.2) {
        user_tags.push(json!({"name": "vip", "value": rng.random_bool(0.5)}));
    }
    let mut session_tags = Vec::new();
    if rng.random_bool(0.4) {
        session_tags.push(json!({"name": "intent", "value": "order_status"}));
        // The same name twice in one session: both are kept, by position.
        if rng.random_bool(0.3) {
            session_tags.push(json!({"name": "intent", "value": "refund"}));
        }
    }
    if rng.random_bool(0.15) {
        session_tags.push(
            json!({"name": "cart", "value": {"items": rng.random_range(1..9), "currency": "EUR"}}),
        );
    }
    if rng.random_bool(0.1) {
        session_tags.push(json!({"name": "skills", "value": ["billing", "tier2"]}));
    }
    if rng.random_bool(0.1) {
        session_tags.push(json!({"name": "escalation", "value": null}));
    }
    if rng.random_bool(0.05) {
        session_tags.push(json!({"name": "score", "value": 0.875}));
    }
    let mut tags = json!({"userTags": user_tags, "sessionTags": session_tags});
    if rng.random_bool(0.1) {
        tags.as_object_mut().expect("object").insert(
            "altText".into(),
            json!([{"name": "greeting", "value": "Grüß Gott 👋"}]),
        );
    }
    tags
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
}
