//! The proactive request budget: at most `per_minute` requests in any rolling
//! minute and `per_hour` in any rolling hour, spaced evenly, shared by every
//! stream (and backfill) of one bot, or of the account scope.
//!
//! Why not governor: its GCRA buckets express one rate with a burst, so two
//! rolling windows (60/min *and* 1,800/h) can only be met by running at the
//! lower rate all the time. A log of the last hour's request times is exact
//! for both windows, costs at most `per_hour` instants, and is easy to test
//! under tokio's paused clock.
//!
//! After a 429 (another client shares the budget), the spacing doubles for
//! [`SLOW_DOWN_FOR`], so kore-sync keeps a lower pace for a while instead of
//! hitting the limit again at once.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// Requests reach the server a little after they are granted, and not all
/// equally late, so the windows are kept this much longer than the server's:
/// a request granted exactly at the limit could otherwise arrive inside it.
const MARGIN: Duration = Duration::from_millis(500);
/// How long the slower pace lasts after a 429.
pub const SLOW_DOWN_FOR: Duration = Duration::from_secs(600);

/// The budget would make the caller wait longer than it is willing to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetExhausted {
    /// How long until a request would fit.
    pub wait: Duration,
}

/// What a budget has granted lately, against its limits (None: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUsage {
    pub last_minute: u32,
    pub per_minute: Option<u32>,
    pub last_hour: u32,
    pub per_hour: Option<u32>,
}

#[derive(Debug)]
pub struct RequestBudget {
    per_minute: u32,
    per_hour: u32,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    /// Wall-clock times of grants not yet handed to [`RequestBudget::take_unsaved`],
    /// so they can be persisted and seen by the next process on this warehouse.
    unsaved: Vec<chrono::DateTime<chrono::Utc>>,
    /// Start times of the requests granted in the last hour, oldest first.
    /// Invariant: non-decreasing, and never more than `per_hour` entries
    /// within any hour nor more than `per_minute` within any minute. Entries
    /// may lie in the future: a grant reserves its slot before the caller
    /// sleeps until it.
    granted: VecDeque<Instant>,
    /// Until then, requests are spaced twice as far apart (after a 429).
    slow_until: Option<Instant>,
}

impl RequestBudget {
    /// `0` for either limit means unlimited.
    pub fn new(per_minute: u32, per_hour: u32) -> Self {
        RequestBudget {
            per_minute,
            per_hour,
            state: Mutex::new(BudgetState::default()),
        }
    }

    pub fn unlimited() -> Self {
        Self::new(0, 0)
    }

    /// Waits until one more request fits the budget, reserves it, and returns
    /// how long it waited. If that would take longer than `max_wait`, nothing
    /// is reserved and the wait is returned as an error.
    pub async fn acquire(&self, max_wait: Option<Duration>) -> Result<Duration, BudgetExhausted> {
        let now = Instant::now();
        let slot = self.reserve(now, max_wait)?;
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
        Ok(slot - now)
    }

    /// Notes a 429: keep a slower pace for a while.
    pub fn slow_down(&self) {
        let mut st = self.state.lock().expect("budget lock poisoned");
        st.slow_until = Some(Instant::now() + SLOW_DOWN_FOR);
    }

    /// Replaces what the budget knows of the last hour with `times` (wall
    /// clock), e.g. the requests every process made on this warehouse, as
    /// the store recorded them. Grants not yet taken stay counted.
    pub fn load_history(&self, times: &[chrono::DateTime<chrono::Utc>]) {
        let mut st = self.state.lock().expect("budget lock poisoned");
        let now = Instant::now();
        let wall_now = chrono::Utc::now();
        let mut all: Vec<Instant> = times
            .iter()
            .chain(st.unsaved.iter())
            .filter_map(|t| {
                let ago = (wall_now - *t).to_std().unwrap_or(Duration::ZERO);
                now.checked_sub(ago)
            })
            .collect();
        all.sort();
        st.granted = all.into();
    }

    /// Requests granted over the last hour, and the hourly limit (None:
    /// unlimited).
    pub fn used_in_last_hour(&self) -> Option<(u32, u32)> {
        if self.per_hour == 0 {
            return None;
        }
        let st = self.state.lock().expect("budget lock poisoned");
        let now = Instant::now();
        let used = st.granted.iter().filter(|t| **t + HOUR > now).count();
        Some((u32::try_from(used).unwrap_or(u32::MAX), self.per_hour))
    }

    /// Requests granted over the last minute and the last hour (a slot
    /// reserved for a request about to go counts), and the limits.
    pub fn usage(&self) -> BudgetUsage {
        let st = self.state.lock().expect("budget lock poisoned");
        let now = Instant::now();
        let within = |span: Duration| {
            let n = st.granted.iter().filter(|t| **t + span > now).count();
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        BudgetUsage {
            last_minute: within(MINUTE),
            per_minute: (self.per_minute > 0).then_some(self.per_minute),
            last_hour: within(HOUR),
            per_hour: (self.per_hour > 0).then_some(self.per_hour),
        }
    }

    /// Wall-clock times of the grants made since the last call, to persist.
    pub fn take_unsaved(&self) -> Vec<chrono::DateTime<chrono::Utc>> {
        std::mem::take(&mut self.state.lock().expect("budget lock poisoned").unsaved)
    }

    fn reserve(
        &self,
        now: Instant,
        max_wait: Option<Duration>,
    ) -> Result<Instant, BudgetExhausted> {
        let mut st = self.state.lock().expect("budget lock poisoned");
        while st
            .granted
            .front()
            .is_some_and(|t| *t + HOUR + MARGIN <= now)
        {
            st.granted.pop_front();
        }
        let slot = self.next_slot(&st, now);
        if let Some(max) = max_wait
            && slot - now > max
        {
            return Err(BudgetExhausted { wait: slot - now });
        }
        let slow = st.slow_until.is_some_and(|t| t > now);
        if self.per_minute > 0 || self.per_hour > 0 || slow {
            st.granted.push_back(slot);
        }
        let wall = chrono::Utc::now() + (slot - now);
        st.unsaved.push(wall);
        Ok(slot)
    }

    /// The earliest time at or after `now` a request fits the budget.
    fn next_slot(&self, st: &BudgetState, now: Instant) -> Instant {
        let slow = st.slow_until.is_some_and(|t| t > now);
        let log = &st.granted;
        let mut slot = now;
        if self.per_minute > 0 {
            // Even spacing: never two requests closer than a minute / per_minute
            // (twice that while slowed down).
            let gap = (MINUTE + MARGIN) / self.per_minute * if slow { 2 } else { 1 };
            if let Some(last) = log.back() {
                slot = slot.max(*last + gap);
            }
            let n = self.per_minute as usize;
            if log.len() >= n {
                slot = slot.max(log[log.len() - n] + MINUTE + MARGIN);
            }
        } else if slow {
            // Unlimited by config, but the server disagreed: at most 1/s for a while.
            if let Some(last) = log.back() {
                slot = slot.max(*last + Duration::from_secs(1));
            }
        }
        if self.per_hour > 0 {
            let n = self.per_hour as usize;
            if log.len() >= n {
                slot = slot.max(log[log.len() - n] + HOUR + MARGIN);
            }
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paused clock rounds sleeps to whole milliseconds.
    fn assert_near(got: Duration, want: Duration) {
        let diff = got.abs_diff(want);
        assert!(diff <= Duration::from_millis(5), "{got:?} is not {want:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_evenly_within_the_minute_budget() {
        let budget = RequestBudget::new(60, 0);
        let start = Instant::now();
        for _ in 0..5 {
            budget.acquire(None).await.unwrap();
        }
        assert_near(start.elapsed(), (MINUTE + MARGIN) / 60 * 4);
    }

    #[tokio::test(start_paused = true)]
    async fn usage_counts_the_last_minute_and_hour_apart() {
        let budget = RequestBudget::new(0, 100);
        for _ in 0..3 {
            budget.acquire(None).await.unwrap();
        }
        tokio::time::advance(Duration::from_secs(120)).await;
        budget.acquire(None).await.unwrap();
        let usage = budget.usage();
        assert_eq!(
            usage,
            BudgetUsage {
                last_minute: 1,
                per_minute: None,
                last_hour: 4,
                per_hour: Some(100)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn hourly_budget_holds_over_a_rolling_hour() {
        let budget = RequestBudget::new(0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            budget.acquire(None).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        let waited = budget.acquire(None).await.unwrap();
        assert_eq!(waited, HOUR + MARGIN);
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_budget_is_reported_instead_of_waited_for() {
        let budget = RequestBudget::new(60, 2);
        budget.acquire(Some(Duration::from_secs(5))).await.unwrap();
        budget.acquire(Some(Duration::from_secs(5))).await.unwrap();
        let err = budget
            .acquire(Some(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(err.wait > Duration::from_secs(3500), "{err:?}");
        // Nothing was reserved by the refused call: after the hour, two fit again.
        tokio::time::advance(HOUR + MARGIN).await;
        budget.acquire(Some(Duration::from_secs(5))).await.unwrap();
        budget.acquire(Some(Duration::from_secs(5))).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_429_the_pace_halves_for_a_while() {
        let budget = RequestBudget::new(60, 0);
        budget.acquire(None).await.unwrap();
        budget.slow_down();
        assert_near(
            budget.acquire(None).await.unwrap(),
            (MINUTE + MARGIN) / 60 * 2,
        );
        tokio::time::advance(SLOW_DOWN_FOR).await;
        budget.acquire(None).await.unwrap();
        assert_near(budget.acquire(None).await.unwrap(), (MINUTE + MARGIN) / 60);
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limits_in_any_window() {
        let budget = RequestBudget::new(60, 100);
        let mut times = Vec::new();
        let start = Instant::now();
        for _ in 0..250 {
            budget.acquire(None).await.unwrap();
            times.push(Instant::now() - start);
        }
        for (i, t) in times.iter().enumerate() {
            let in_minute = times[i..].iter().take_while(|u| **u < *t + MINUTE).count();
            let in_hour = times[i..].iter().take_while(|u| **u < *t + HOUR).count();
            assert!(
                in_minute <= 60,
                "{in_minute} requests within a minute of {t:?}"
            );
            assert!(in_hour <= 100, "{in_hour} requests within an hour of {t:?}");
        }
    }

    #[tokio::test]
    async fn history_from_another_process_counts_against_the_budget() {
        let first = RequestBudget::new(0, 3);
        for _ in 0..2 {
            first.acquire(None).await.unwrap();
        }
        let saved = first.take_unsaved();
        assert_eq!(saved.len(), 2);
        assert!(first.take_unsaved().is_empty());
        // A second process starts with what the first recorded.
        let second = RequestBudget::new(0, 3);
        second.load_history(&saved);
        second.acquire(Some(Duration::from_secs(1))).await.unwrap();
        let err = second
            .acquire(Some(Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(err.wait > Duration::from_secs(3500));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let budget = RequestBudget::unlimited();
        let start = Instant::now();
        for _ in 0..1000 {
            budget.acquire(None).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
