//! What the analytics and LLM endpoints derive their records from: the
//! sessions of a window (stored, or synthetic ones built on demand), and
//! the records derived for the last windows, kept for the next pages'
//! requests when the simulator's records never change
//! (`SimSettings::memoize_windows`).

use super::SimState;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;

/// What derived records are for: the endpoint, the bot and the window.
pub(super) type DerivedKey = (&'static str, String, DateTime<Utc>, DateTime<Utc>);

/// Windows of derived records kept at most.
const DERIVED_KEPT: usize = 8;

impl SimState {
    /// The records `make` derives for `key`, or those derived for it lately.
    pub(super) fn derived(
        &mut self,
        key: DerivedKey,
        make: impl FnOnce(&SimState) -> Vec<Value>,
    ) -> Arc<Vec<Value>> {
        if let Some((_, v)) = self.derived.iter().find(|(k, _)| *k == key) {
            return v.clone();
        }
        let v = Arc::new(make(self));
        if self.settings.memoize_windows {
            if self.derived.len() == DERIVED_KEPT {
                self.derived.pop_front();
            }
            self.derived.push_back((key, v.clone()));
        }
        v
    }

    /// The sessions of `bot_id` that start in `[from, to]`: the stored
    /// ones, or with synthetic sessions those built on demand.
    pub(super) fn sessions_starting(
        &self,
        bot_id: &str,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> Vec<std::borrow::Cow<'_, Value>> {
        if let Some(syn) = &self.settings.synthetic {
            let seed = self.settings.seed;
            return syn
                .sessions_between(seed, bot_id, (from, to))
                .into_iter()
                .map(std::borrow::Cow::Owned)
                .collect();
        }
        self.records
            .iter()
            .filter(|r| r.bot_id == bot_id && r.start <= to && r.start >= from)
            .map(|r| std::borrow::Cow::Borrowed(&r.record))
            .collect()
    }
}
