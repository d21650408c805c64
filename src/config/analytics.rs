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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(types: Option<&[&str]>, llm_usage: Option<bool>) -> Result<AnalyticsSettings, String> {
        let raw = RawAnalytics {
            enabled: Some(true),
            types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
            llm_usage,
        };
        let mut p = Collector::default();
        analytics(&raw, &mut p).ok_or_else(|| {
            p.0.iter()
                .map(|problem| format!("{}: {}", problem.key, problem.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    #[test]
    fn every_type_and_the_llm_logs_unless_told_otherwise() {
        let all = check(None, None).unwrap();
        assert_eq!(all.types, AnalyticsType::ALL);
        assert!(all.enabled && all.llm_usage);
        let some = check(Some(&["failintent", "unhandledutterance"]), Some(false)).unwrap();
        assert_eq!(
            some.types,
            [AnalyticsType::FailIntent, AnalyticsType::UnhandledUtterance]
        );
        assert!(!some.llm_usage);
    }

    #[test]
    fn unknown_twice_listed_or_no_types_are_refused_by_name() {
        for (types, says) in [
            (&["failintents"][..], "is not an analytics type"),
            (&["performance", "performance"][..], "listed twice"),
            (&[][..], "is empty"),
        ] {
            let err = check(Some(types), None).unwrap_err();
            assert!(err.starts_with("analytics.types: "), "{err}");
            assert!(err.contains(says), "{types:?}: {err}");
        }
    }
}
