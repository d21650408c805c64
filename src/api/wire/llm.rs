//! The wire shapes of `getLLMUsageLogs` (GenAI and LLM usage logs): the
//! request body and the parser of one record into an [`LlmUsage`]. The
//! answer is a bare JSON array. Records are keyed by display names, spaces
//! included (`"Feature Name "` ends with one), send numbers as numbers or
//! strings, and carry no id: [`usage_id`] derives one.

use super::fields::{excerpt, is_null, opt_string, opt_text, opt_whole_number, parse_time};
use super::session::RecordError;
use crate::model::LlmUsage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The request body for `limit` records of the days `date_from` to
/// `date_to` (plain dates, as the API's example sends them), skipping
/// `skip`. `limit` and `skip` go as strings, as in the API's example.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LlmUsageRequest {
    pub date_from: String,
    pub date_to: String,
    pub limit: String,
    pub skip: String,
}

#[derive(Deserialize)]
struct WireUsage<'a> {
    #[serde(rename = "Bot ID", borrow, default)]
    bot_id: Option<&'a RawValue>,
    #[serde(rename = "User ID", borrow, default)]
    user_id: Option<&'a RawValue>,
    #[serde(rename = "start Date", alias = "Start Date", borrow, default)]
    started: Option<&'a RawValue>,
    #[serde(rename = "End Date", alias = "end Date", borrow, default)]
    ended: Option<&'a RawValue>,
    #[serde(rename = "Time Taken", borrow, default)]
    time_taken: Option<&'a RawValue>,
    #[serde(rename = "statusCode", borrow, default)]
    status_code: Option<&'a RawValue>,
    #[serde(rename = "Status", borrow, default)]
    status: Option<&'a RawValue>,
    // The API's key ends with a space; without it too, should that be fixed.
    #[serde(rename = "Feature Name ", alias = "Feature Name", borrow, default)]
    feature: Option<&'a RawValue>,
    #[serde(rename = "Model Name", borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(rename = "Integration", borrow, default)]
    integration: Option<&'a RawValue>,
    #[serde(rename = "Prompt Name", borrow, default)]
    prompt_name: Option<&'a RawValue>,
    #[serde(rename = "Channel Name", borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(rename = "task Id", alias = "Task Id", borrow, default)]
    task_id: Option<&'a RawValue>,
    #[serde(rename = "Description", borrow, default)]
    description: Option<&'a RawValue>,
    #[serde(rename = "Payload Details", borrow, default)]
    payload: Option<&'a RawValue>,
}

/// What the usage id and the token counts are read from in `Payload
/// Details`.
#[derive(Deserialize, Default)]
struct WirePayload<'a> {
    #[serde(rename = "Request Tokens", borrow, default)]
    request_tokens: Option<&'a RawValue>,
    #[serde(rename = "Response Tokens", borrow, default)]
    response_tokens: Option<&'a RawValue>,
    #[serde(rename = "Response Payload", borrow, default)]
    response: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct WireResponse<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// Parses one record read for `bot_id` (the record's own `Bot ID` wins);
/// the record's text becomes `raw` uncopied. A record that fails is handed
/// back with the reason.
pub(super) fn parse_usage_owned(
    raw: Box<RawValue>,
    (bot_id, usage_id): (&str, &str),
) -> Result<LlmUsage, (RecordError, Box<RawValue>)> {
    match parse_fields(&raw, (bot_id, usage_id)) {
        Ok(mut usage) => {
            usage.raw = Box::<str>::from(raw).into_string();
            Ok(usage)
        }
        Err(e) => Err((e, raw)),
    }
}

fn parse_fields(raw: &RawValue, (bot_id, usage_id): (&str, &str)) -> Result<LlmUsage, RecordError> {
    if !raw.get().trim_start().starts_with('{') {
        return Err(RecordError(format!(
            "LLM usage record is not a JSON object: {}",
            excerpt(raw)
        )));
    }
    let w: WireUsage<'_> = serde_json::from_str(raw.get()).map_err(|e| {
        RecordError(format!(
            "LLM usage record is not a JSON object of the expected shape ({e}): {}",
            excerpt(raw)
        ))
    })?;
    let started = opt_string(w.started, "start Date")?
        .ok_or_else(|| RecordError("\"start Date\" is missing".into()))?;
    let ended = opt_string(w.ended, "End Date")?;
    let payload: WirePayload<'_> = w
        .payload
        .filter(|p| !is_null(p))
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    Ok(LlmUsage {
        usage_id: usage_id.to_owned(),
        bot_id: opt_string(w.bot_id, "Bot ID")?.or_else(|| Some(bot_id.to_owned())),
        user_id: opt_string(w.user_id, "User ID")?,
        started_at: parse_time(&started, "start Date")?,
        ended_at: ended.map(|e| parse_time(&e, "End Date")).transpose()?,
        time_taken_ms: opt_whole_number(w.time_taken, "Time Taken")?,
        status_code: opt_whole_number(w.status_code, "statusCode")?
            .map(|c| {
                i32::try_from(c).map_err(|_| RecordError(format!("statusCode {c} is out of range")))
            })
            .transpose()?,
        status: opt_text(w.status),
        feature: opt_text(w.feature),
        model: opt_text(w.model),
        integration: opt_text(w.integration),
        prompt_name: opt_text(w.prompt_name),
        channel: opt_text(w.channel),
        task_id: opt_text(w.task_id),
        description: opt_text(w.description),
        request_tokens: opt_whole_number(payload.request_tokens, "Request Tokens")?,
        response_tokens: opt_whole_number(payload.response_tokens, "Response Tokens")?,
        raw: String::new(),
    })
}

/// The id of a logged call: `llm-` and 32 hex digits of the SHA-256 of what
/// identifies it as the API sent it (before any privacy rule) — bot, start
/// and end (milliseconds), feature, model, integration, prompt, task,
/// channel, description, and the model's own response id when the
/// integration gives one. Not the user: the id must not confirm a guess of
/// who made a call when user ids are pseudonymised. The same record read
/// again gets the same id, whatever the privacy settings; two calls share
/// one only if they match in all of these, down to the millisecond they
/// started and ended.
pub fn usage_id(raw: &RawValue, bot_id: &str) -> Option<String> {
    let w: WireUsage<'_> = serde_json::from_str(raw.get()).ok()?;
    let payload: WirePayload<'_> = w
        .payload
        .filter(|p| !is_null(p))
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    let response_id = payload
        .response
        .filter(|r| !is_null(r))
        .and_then(|r| serde_json::from_str::<WireResponse<'_>>(r.get()).ok())
        .and_then(|r| opt_text(r.id));
    let ms = |r: Option<&RawValue>| {
        opt_text(r)
            .and_then(|t| parse_time(&t, "").ok())
            .map(|t| t.timestamp_millis())
    };
    let fields = serde_json::json!([
        opt_text(w.bot_id).unwrap_or_else(|| bot_id.to_owned()),
        ms(w.started),
        ms(w.ended),
        opt_text(w.feature),
        opt_text(w.model),
        opt_text(w.integration),
        opt_text(w.prompt_name),
        opt_text(w.task_id),
        opt_text(w.channel),
        opt_text(w.description),
        response_id,
    ]);
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, fields.to_string().as_bytes());
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("llm-{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<LlmUsage, RecordError> {
        let raw = serde_json::value::to_raw_value(&v).unwrap();
        let id = usage_id(&raw, "st-1").unwrap_or_default();
        parse_usage_owned(raw, ("st-1", &id)).map_err(|(e, _)| e)
    }

    fn documented() -> serde_json::Value {
        json!({ "Prompt Name": "Default", "Integration": "OpenAI",
          "start Date": "2024-03-08T06:38:54.008Z", "End Date": "2024-03-08T06:38:58.386Z",
          "Time Taken": 4378, "statusCode": 200, "Bot ID": "st-9", "User ID": "u-1",
          "Feature Name ": "GenAI Node", "Model Name": "GPT-4", "Channel Name": "msteams",
          "Description": "Order pizza-GenAINode0002", "task Id": "dg-1", "Status": "Success",
          "Payload Details": { "Prompt Name": "Default",
             "Request Payload": { "model": "gpt-4", "messages": [{"role": "user", "content": "Order pizza"}] },
             "Response Payload": { "id": "chatcmpl-1", "usage": {"prompt_tokens": 614, "completion_tokens": 74} },
             "Request Tokens": 614, "Response Tokens": 74 } })
    }

    #[test]
    fn the_documented_record_parses_with_its_display_name_keys() {
        let u = parse(documented()).unwrap();
        assert_eq!(u.bot_id.as_deref(), Some("st-9"));
        assert_eq!(u.feature.as_deref(), Some("GenAI Node"));
        assert_eq!(u.model.as_deref(), Some("GPT-4"));
        assert_eq!(u.time_taken_ms, Some(4378));
        assert_eq!(u.status_code, Some(200));
        assert_eq!((u.request_tokens, u.response_tokens), (Some(614), Some(74)));
        assert_eq!(
            u.ended_at.unwrap().timestamp_millis() - u.started_at.timestamp_millis(),
            4378
        );
        assert!(
            u.usage_id.starts_with("llm-") && u.usage_id.len() == 36,
            "{}",
            u.usage_id
        );
        assert!(u.raw.contains("Order pizza"));
    }

    #[test]
    fn the_same_call_keeps_its_id_and_another_call_gets_another() {
        let a = parse(documented()).unwrap();
        assert_eq!(parse(documented()).unwrap().usage_id, a.usage_id);
        // Numbers as strings are the same call.
        let mut as_strings = documented();
        as_strings["Time Taken"] = json!("4378");
        as_strings["statusCode"] = json!("200");
        assert_eq!(parse(as_strings).unwrap().usage_id, a.usage_id);
        // Nor does the user count (see `usage_id`).
        let mut other_user = documented();
        other_user["User ID"] = json!("u-2");
        assert_eq!(parse(other_user).unwrap().usage_id, a.usage_id);
        for (key, value) in [
            ("start Date", json!("2024-03-08T06:38:54.009Z")),
            ("End Date", json!("2024-03-08T06:38:58.387Z")),
            ("Feature Name ", json!("Agent Node")),
            ("Model Name", json!("GPT-4o")),
        ] {
            let mut other = documented();
            other[key] = value;
            assert_ne!(parse(other).unwrap().usage_id, a.usage_id, "{key}");
        }
        let mut other_answer = documented();
        other_answer["Payload Details"]["Response Payload"]["id"] = json!("chatcmpl-2");
        assert_ne!(parse(other_answer).unwrap().usage_id, a.usage_id);
    }

    #[test]
    fn failed_calls_without_payload_parse_and_bad_fields_are_named() {
        let u = parse(
            json!({"start Date": "2024-03-08T06:38:54.008Z", "statusCode": 500,
                             "Status": "Failure", "Payload Details": null}),
        )
        .unwrap();
        assert_eq!(
            (u.status_code, u.request_tokens, u.ended_at),
            (Some(500), None, None)
        );
        let err = |v| parse(v).unwrap_err().0;
        assert!(err(json!({"Model Name": "x"})).contains("start Date"));
        assert!(
            err(json!({"start Date": "2024-03-08T06:38:54.008Z", "Time Taken": "slow"}))
                .contains("Time Taken")
        );
        assert!(err(json!([1, 2])).contains("not a JSON object"));
    }
}
