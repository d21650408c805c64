//! What the analytics and LLM endpoints derive their records from: the
//! sessions of a span (stored, or synthetic ones built on demand). When the
//! simulator's records never change (`SimSettings::memoize_windows`, a
//! benchmark's fleet) the records of each bot's day are derived once and
//! kept for later requests: a pass asks for every page of a window and
//! each analytics type of a bot asks for the same span, and an idle pass's
//! windows end at a new instant each time, but in the same day. Deriving
//! them again for every request made the simulator, not the sync, what a
//! fleet's benchmark measured (its allocator's free lists grew with every
//! pass).

use super::SimState;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What derived records are for: the endpoint, the bot and the day (or,
/// not memoizing, the span).
pub(super) type DerivedKey = (&'static str, String, DateTime<Utc>, DateTime<Utc>);

/// Days of derived records kept at most, and records over all of them (the
/// oldest derived go first): a fleet's idle pass asks for two days of each
/// of hundreds of bots, a year's backfill for weeks of one.
const DERIVED_KEPT: usize = 16_384;
const DERIVED_RECORDS_KEPT: usize = 400_000;

/// The derived records kept, by key, and the order they were derived in.
#[derive(Default)]
pub(super) struct Derived {
    by_key: HashMap<DerivedKey, Arc<Vec<Value>>>,
    order: VecDeque<DerivedKey>,
    n_records: usize,
}

impl Derived {
    fn keep(&mut self, key: DerivedKey, records: Arc<Vec<Value>>) {
        self.n_records += records.len();
        self.order.push_back(key.clone());
        self.by_key.insert(key, records);
        while self.order.len() > 1
            && (self.order.len() > DERIVED_KEPT || self.n_records > DERIVED_RECORDS_KEPT)
        {
            let oldest = self.order.pop_front().expect("more than one");
            if let Some(gone) = self.by_key.remove(&oldest) {
                self.n_records -= gone.len();
            }
        }
    }
}

impl SimState {
    /// The records `make` derives from `bot_id`'s sessions starting in
    /// `[from, to]` (`make` is given the span it derives for: `[from, to]`,
    /// or one whole UTC day, `[day, next day - 1 µs]`), as lists that
    /// together hold each record once.
    pub(super) fn derived(
        &mut self,
        (endpoint, bot_id): (&'static str, &str),
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        make: impl Fn(&SimState, (DateTime<Utc>, DateTime<Utc>)) -> Vec<Value>,
    ) -> Vec<Arc<Vec<Value>>> {
        if !self.settings.memoize_windows {
            return vec![Arc::new(make(self, (from, to)))];
        }
        let mut day = from
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        let mut lists = Vec::new();
        while day <= to {
            let next = day + Duration::days(1);
            let key = (endpoint, bot_id.to_owned(), day, next);
            let records = match self.derived.by_key.get(&key) {
                Some(v) => v.clone(),
                None => {
                    let v = Arc::new(make(self, (day, next - Duration::microseconds(1))));
                    self.derived.keep(key, v.clone());
                    v
                }
            };
            lists.push(records);
            day = next;
        }
        lists
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{SimSettings, Synthetic};
    use rand::SeedableRng;
    use std::cell::Cell;

    fn state(memoize_windows: bool) -> SimState {
        let from = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let settings = SimSettings {
            synthetic: Some(Synthetic {
                per_bot: 500,
                from,
                to: from + Duration::days(10),
                with_messages: false,
            }),
            memoize_windows,
            ..SimSettings::default()
        };
        SimState {
            settings,
            records: Vec::new(),
            faults: VecDeque::new(),
            rng: rand::rngs::StdRng::seed_from_u64(7),
            log: Vec::new(),
            seen_jti: Default::default(),
            rate_log: Default::default(),
            answered: tokio::sync::watch::Sender::new(0),
            derived: Derived::default(),
        }
    }

    /// The sessions' ids `derived` hands out for a span, sorted, and how
    /// many times it derived.
    fn ids(st: &mut SimState, span: (DateTime<Utc>, DateTime<Utc>)) -> (Vec<String>, usize) {
        let made = Cell::new(0);
        let lists = st.derived(("test", "b"), span, |st, span| {
            made.set(made.get() + 1);
            let sessions = st.sessions_starting("b", span);
            sessions.iter().map(|s| s["sessionId"].clone()).collect()
        });
        let mut ids: Vec<String> = lists
            .iter()
            .flat_map(|l| l.iter())
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        (ids, made.get())
    }

    /// Day by day, each record of a span is handed out once, as deriving
    /// the span whole does; asked again, nothing is derived again.
    #[test]
    fn days_hold_each_record_of_the_span_once() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let span = (start + Duration::hours(30), start + Duration::hours(80));
        let (whole, _) = ids(&mut state(false), span);
        let mut memo = state(true);
        let (by_day, n_made) = ids(&mut memo, span);
        // The days the span touches hold more: compare within the span.
        let within: Vec<String> = {
            let sessions = memo.sessions_starting("b", span);
            let mut v: Vec<String> = sessions
                .iter()
                .map(|s| s["sessionId"].as_str().unwrap().to_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(whole, within);
        assert!(within.iter().all(|id| by_day.binary_search(id).is_ok()));
        let mut distinct = by_day.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), by_day.len(), "a record in two days");
        assert_eq!(n_made, 3, "three days touched");
        let (again, n_made) = ids(&mut memo, span);
        assert_eq!((again, n_made), (by_day, 0));
    }
}
