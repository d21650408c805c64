//! `[analytics]`: whether NLU analytics (getAnalytics) are synced, which
//! of its six types, and whether the GenAI and LLM usage logs with them. Off unless enabled (the app needs the Metrics
//! scope, which not every app has); every type when enabled.

use super::collector::Collector;
use super::raw::RawAnalytics;
use crate::model::AnalyticsType;
use crate::sync::AnalyticsSettings;

/// `[analytics]`, checked: each type known and named once.
pub(super) fn analytics(raw: &RawAnalytics, p: &mut Collector) -> Option<AnalyticsSettings> {
    let types = match &raw.types {
        None => AnalyticsType::ALL.to_vec(),
        Some(names) => {
            let mut types = Vec::with_capacity(names.len());
            for name in names {
                let Some(t) = AnalyticsType::parse(name) else {
                    let known: Vec<&str> = AnalyticsType::ALL.iter().map(|t| t.as_str()).collect();
                    return p.push(
                        "analytics.types",
                        format!("{name:?} is not an analytics type; use some of {known:?}"),
                    );
                };
                if types.contains(&t) {
                    return p.push(
                        "analytics.types",
                        format!("{name:?} is listed twice; list each once"),
                    );
                }
                types.push(t);
            }
            if types.is_empty() {
                return p.push(
                    "analytics.types",
                    "is empty; list the types to read, or set analytics.enabled = false".into(),
                );
            }
            types
        }
    };
    Some(AnalyticsSettings {
        enabled: raw.enabled.unwrap_or(false),
        types,
        llm_usage: raw.llm_usage.unwrap_or(true),
    })
}
