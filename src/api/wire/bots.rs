//! The wire shape of the Admin Console's "Get Bots" list
//! (`GET /api/public/bots?offset&limit`), and what kore-sync keeps of a bot.
//!
//! Architecture invariant: a bot's `jwtApps` (its apps with their client
//! secrets) is dropped here, while parsing; no other layer ever holds it.

use crate::model::Bot;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The most bots one page may hold (the API's `limit` at most 50).
pub const BOTS_PAGE: u32 = 50;

/// One page of the bot list. Note the API's `availableMore`, not the
/// `moreAvailable` of getSessions.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotsResponse {
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub available_more: bool,
    #[serde(default)]
    pub bots: Vec<Map<String, Value>>,
}

/// Every bot of a page with an `_id`, secrets removed.
pub fn bot_records(page: BotsResponse) -> Vec<Bot> {
    page.bots.into_iter().filter_map(bot_record).collect()
}

fn bot_record(mut bot: Map<String, Value>) -> Option<Bot> {
    // Secrets first, before anything else can look at the record.
    bot.remove("jwtApps");
    let text = |key: &str| bot.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(Bot {
        bot_id: text("_id")?,
        name: text("name"),
        description: text("description"),
        status: text("status"),
        default_language: text("defaultLanguage"),
        created_on: text("createdOn"),
        raw: Some(Value::Object(bot)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_apps_never_leave_the_parser() {
        let page: BotsResponse = serde_json::from_str(
            r#"{"total": 2, "availableMore": true, "bots": [
                {"_id": "st-1", "name": "Support", "status": "published", "defaultLanguage": "en",
                 "createdOn": "2024-01-02T03:04:05.000Z",
                 "jwtApps": [{"clientId": "cs-1", "clientSecret": "very-secret"}]},
                {"name": "no id"}]}"#,
        )
        .unwrap();
        assert!(page.available_more);
        let bots = bot_records(page);
        assert_eq!(bots.len(), 1, "a bot without _id is skipped");
        assert_eq!(bots[0].bot_id, "st-1");
        assert_eq!(bots[0].name.as_deref(), Some("Support"));
        assert_eq!(bots[0].default_language.as_deref(), Some("en"));
        let raw = bots[0].raw.as_ref().unwrap().to_string();
        assert!(
            !raw.contains("jwtApps") && !raw.contains("very-secret"),
            "{raw}"
        );
        assert!(raw.contains("\"status\":\"published\""), "{raw}");
    }
}
