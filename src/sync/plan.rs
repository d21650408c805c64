//! The window planner: a pure function of (watermark, now, settings) that
//! cuts the span a pass must read into windows the API accepts.
//!
//! Architecture invariant: planning does no I/O and reads no clock; the
//! runner passes `now` in. That is what lets the table and property tests
//! below pin its behaviour down completely.

use crate::model::{API_MAX_SPAN, Window};
use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};

/// The settings planning depends on.
#[derive(Debug, Clone, Copy)]
pub struct PlanSettings {
    /// Where history begins for a stream without a watermark.
    pub start: DateTime<Utc>,
    /// Longest window; must be positive and under [`API_MAX_SPAN`].
    pub window: Duration,
    /// Never read closer to now than this.
    pub lag: Duration,
    /// Re-read this much before the watermark each pass.
    pub lookback: Duration,
}

/// The windows one pass will read, oldest first, covering `[begin, end)`
/// exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPlan {
    pub begin: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub windows: Vec<Window>,
}

/// Plans an incremental pass: from `max(start, watermark - lookback)` (or
/// `start` without a watermark) to `now - lag`.
pub fn plan_pass(
    watermark: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    s: &PlanSettings,
) -> WindowPlan {
    let begin = match watermark {
        Some(w) => s.start.max(w - s.lookback),
        None => s.start,
    };
    plan_range(begin, now - s.lag, s.window)
}

/// Cuts `plan` at `limit`: the windows of a message stream end no later
/// than its bot's session streams have read (the lowest of their
/// watermarks), so every stored message's session has been listed first.
/// `None` (a session stream has read nothing yet) leaves nothing to read.
pub fn ending_by(plan: WindowPlan, limit: Option<DateTime<Utc>>) -> WindowPlan {
    let end = limit
        .map_or(plan.begin, to_millis)
        .min(plan.end)
        .max(plan.begin);
    let windows = plan
        .windows
        .into_iter()
        .filter(|w| w.start < end)
        .map(|w| Window {
            start: w.start,
            end: w.end.min(end),
        })
        .collect();
    WindowPlan {
        begin: plan.begin,
        end,
        windows,
    }
}

/// Plans a backfill: exactly `[from, to)`, but never closer to now than
/// `lag`.
pub fn plan_backfill(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    s: &PlanSettings,
) -> WindowPlan {
    plan_range(from, to.min(now - s.lag), s.window)
}

/// Plans the check behind a stream's watermark `W` that each pass makes
/// (`sync.reconcile`): `[max(start, W − reconcile), W − lookback)`, cut into
/// windows just under the API's 7 days (so with the defaults, 7 days and
/// 1 hour, one window: one request). Nothing without a watermark, or with
/// `reconcile` zero.
pub fn plan_reconcile(
    watermark: Option<DateTime<Utc>>,
    s: &PlanSettings,
    reconcile: Duration,
) -> WindowPlan {
    let Some(w) = watermark.filter(|_| reconcile > TimeDelta::zero()) else {
        return plan_range(s.start, s.start, API_MAX_SPAN);
    };
    plan_range(s.start.max(w - reconcile), w - s.lookback, API_MAX_SPAN)
}

/// `plan` for an endpoint that reads whole days (getLLMUsageLogs): from the
/// UTC midnight at or before its beginning to its end, in windows of at
/// most `max_days` days that begin at midnight (the last ends where `plan`
/// does). Reading from the day's start only reads again what was read.
pub fn whole_days(plan: WindowPlan, max_days: i64) -> WindowPlan {
    let begin = plan
        .begin
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    cut(begin, plan.end, TimeDelta::days(max_days.max(1)))
}

/// Plans `verify` over `[from, to)`: windows just under the API's 7 days,
/// each checked with one request.
pub fn plan_verify(from: DateTime<Utc>, to: DateTime<Utc>) -> WindowPlan {
    plan_range(from, to, API_MAX_SPAN)
}

/// Cuts `[begin, end)` into windows of at most `window`, oldest first. All
/// instants are truncated to whole milliseconds, the API's resolution. An
/// empty or inverted range yields no windows.
pub fn plan_range(begin: DateTime<Utc>, end: DateTime<Utc>, window: Duration) -> WindowPlan {
    let begin = to_millis(begin);
    let end = to_millis(end);
    let step = to_millis_delta(window).min(API_MAX_SPAN - TimeDelta::milliseconds(1));
    assert!(
        step > TimeDelta::zero(),
        "window must be positive (validated in config)"
    );
    cut(begin, end, step)
}

/// `[begin, end)` in windows of `step` (the last ends at `end`).
fn cut(begin: DateTime<Utc>, end: DateTime<Utc>, step: TimeDelta) -> WindowPlan {
    let mut windows = Vec::new();
    let mut cursor = begin;
    while cursor < end {
        let next = (cursor + step).min(end);
        windows.push(Window {
            start: cursor,
            end: next,
        });
        cursor = next;
    }
    WindowPlan {
        begin,
        end: end.max(begin),
        windows,
    }
}

fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

fn to_millis_delta(d: TimeDelta) -> TimeDelta {
    TimeDelta::milliseconds(d.num_milliseconds())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn settings() -> PlanSettings {
        PlanSettings {
            start: t("2025-01-01T00:00:00Z"),
            window: TimeDelta::days(6),
            lag: TimeDelta::minutes(5),
            lookback: TimeDelta::hours(1),
        }
    }

    #[test]
    fn table() {
        let s = settings();
        let now = t("2025-01-14T00:05:00Z");
        // (watermark, expected windows as (start, end))
        type Case<'a> = (Option<&'a str>, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case<'_>> = vec![
            (
                None,
                vec![
                    ("2025-01-01T00:00:00Z", "2025-01-07T00:00:00Z"),
                    ("2025-01-07T00:00:00Z", "2025-01-13T00:00:00Z"),
                    ("2025-01-13T00:00:00Z", "2025-01-14T00:00:00Z"),
                ],
            ),
            (
                Some("2025-01-13T12:00:00Z"),
                vec![("2025-01-13T11:00:00Z", "2025-01-14T00:00:00Z")],
            ),
            // Lookback never reaches before `start`.
            (
                Some("2025-01-01T00:30:00Z"),
                vec![
                    ("2025-01-01T00:00:00Z", "2025-01-07T00:00:00Z"),
                    ("2025-01-07T00:00:00Z", "2025-01-13T00:00:00Z"),
                    ("2025-01-13T00:00:00Z", "2025-01-14T00:00:00Z"),
                ],
            ),
            // A watermark at (or past) now - lag still re-reads the lookback.
            (
                Some("2025-01-14T00:00:00Z"),
                vec![("2025-01-13T23:00:00Z", "2025-01-14T00:00:00Z")],
            ),
            // A watermark ahead of now - lag + lookback: nothing to read.
            (Some("2025-01-15T00:00:00Z"), vec![]),
        ];
        for (wm, want) in cases {
            let plan = plan_pass(wm.map(t), now, &s);
            let got: Vec<(DateTime<Utc>, DateTime<Utc>)> =
                plan.windows.iter().map(|w| (w.start, w.end)).collect();
            let want: Vec<(DateTime<Utc>, DateTime<Utc>)> =
                want.iter().map(|(a, b)| (t(a), t(b))).collect();
            assert_eq!(got, want, "watermark {wm:?}");
        }
    }

    #[test]
    fn a_backfill_reads_its_range_but_stops_lag_before_now() {
        let s = settings();
        let now = t("2025-01-10T00:05:00Z");
        let plan = plan_backfill(
            t("2025-01-02T00:00:00Z"),
            t("2025-01-20T00:00:00Z"),
            now,
            &s,
        );
        assert_eq!(plan.begin, t("2025-01-02T00:00:00Z"));
        assert_eq!(plan.end, t("2025-01-10T00:00:00Z"));
        let plan = plan_backfill(
            t("2025-01-02T00:00:00Z"),
            t("2025-01-03T00:00:00Z"),
            now,
            &s,
        );
        assert_eq!(plan.windows.len(), 1);
        assert_eq!(plan.end, t("2025-01-03T00:00:00Z"));
    }

    #[test]
    fn the_reconcile_check_is_one_window_behind_the_lookback() {
        let s = settings();
        let week = TimeDelta::days(7);
        let w = t("2025-03-01T00:00:00Z");
        let plan = plan_reconcile(Some(w), &s, week);
        assert_eq!(
            plan.windows,
            [Window {
                start: t("2025-02-22T00:00:00Z"),
                end: t("2025-02-28T23:00:00Z"),
            }]
        );
        // Never before history's start; nothing without a watermark or when off.
        let early = plan_reconcile(Some(t("2025-01-03T00:00:00Z")), &s, week);
        assert_eq!(early.begin, s.start);
        assert!(plan_reconcile(None, &s, week).windows.is_empty());
        assert!(
            plan_reconcile(Some(w), &s, TimeDelta::zero())
                .windows
                .is_empty()
        );
        // Longer than the API allows: windows just under 7 days.
        let month = plan_reconcile(Some(w), &s, TimeDelta::days(30));
        assert_eq!(month.windows.len(), 5);
        assert!(month.windows.iter().all(|x| x.span() < API_MAX_SPAN));
    }

    #[test]
    fn sub_millisecond_instants_are_truncated() {
        let begin = t("2025-01-01T00:00:00.123456Z");
        let plan = plan_range(begin, begin + TimeDelta::days(1), TimeDelta::days(6));
        assert_eq!(plan.windows[0].start, t("2025-01-01T00:00:00.123Z"));
    }

    proptest! {
        #[test]
        fn windows_cover_the_range_exactly(
            begin_ms in 1_600_000_000_000i64..1_800_000_000_000,
            len_ms in 0i64..200 * 86_400_000,
            window_ms in 1i64..(7 * 86_400_000),
        ) {
            let begin = DateTime::from_timestamp_millis(begin_ms).unwrap();
            let end = begin + TimeDelta::milliseconds(len_ms);
            let window = TimeDelta::milliseconds(window_ms);
            prop_assume!(len_ms / window_ms < 20_000);
            let plan = plan_range(begin, end, window);
            if len_ms == 0 {
                prop_assert!(plan.windows.is_empty());
            } else {
                prop_assert_eq!(plan.windows.first().unwrap().start, begin);
                prop_assert_eq!(plan.windows.last().unwrap().end, end);
            }
            for w in &plan.windows {
                prop_assert!(w.start < w.end, "empty window {:?}", w);
                prop_assert!(w.span() <= window);
                prop_assert!(w.span() < API_MAX_SPAN);
            }
            for pair in plan.windows.windows(2) {
                // No gap and no overlap: each window starts where the last ended.
                prop_assert_eq!(pair[0].end, pair[1].start);
            }
        }

        #[test]
        fn pass_begins_at_start_or_lookback_before_the_watermark(
            wm_offset_ms in proptest::option::of(-86_400_000i64..90 * 86_400_000),
            now_offset_ms in 0i64..120 * 86_400_000,
        ) {
            let s = settings();
            let wm = wm_offset_ms.map(|o| s.start + TimeDelta::milliseconds(o));
            let now = s.start + TimeDelta::milliseconds(now_offset_ms);
            let plan = plan_pass(wm, now, &s);
            let want_begin = wm.map_or(s.start, |w| s.start.max(w - s.lookback));
            prop_assert_eq!(plan.begin, want_begin);
            for w in &plan.windows {
                prop_assert!(w.end <= now - s.lag);
                prop_assert!(w.start >= s.start);
            }
        }

        // Issue 21: a message stream's plan, cut at its bot's sessions,
        // still covers its span contiguously from the same begin, and no
        // window ends after what the sessions have read.
        #[test]
        fn issue_21_a_plan_ending_by_the_sessions_never_passes_them(
            wm_offset_ms in proptest::option::of(0i64..90 * 86_400_000),
            now_offset_ms in 0i64..120 * 86_400_000,
            limit_offset_ms in proptest::option::of(-86_400_000i64..120 * 86_400_000),
        ) {
            let s = settings();
            let wm = wm_offset_ms.map(|o| s.start + TimeDelta::milliseconds(o));
            let now = s.start + TimeDelta::milliseconds(now_offset_ms);
            let limit = limit_offset_ms.map(|o| s.start + TimeDelta::milliseconds(o));
            let full = plan_pass(wm, now, &s);
            let cut = ending_by(full.clone(), limit);
            prop_assert_eq!(cut.begin, full.begin);
            let want_end = limit.map_or(full.begin, |l| l.min(full.end).max(full.begin));
            prop_assert_eq!(cut.end, want_end);
            let mut cursor = cut.begin;
            for w in &cut.windows {
                prop_assert_eq!(w.start, cursor);
                prop_assert!(w.end > w.start && w.end <= cut.end);
                prop_assert!(limit.is_some_and(|l| w.end <= l));
                cursor = w.end;
            }
            prop_assert_eq!(cursor, cut.end);
        }
    }

    #[test]
    fn issue_21_message_windows_stop_where_the_sessions_stopped() {
        let s = settings();
        let now = t("2025-03-10T12:00:00Z");
        let full = plan_pass(Some(t("2025-03-10T00:00:00Z")), now, &s);
        // The sessions read up to 10:00: the messages stop there too.
        let cut = ending_by(full.clone(), Some(t("2025-03-10T10:00:00Z")));
        assert_eq!(cut.end, t("2025-03-10T10:00:00Z"));
        assert_eq!(cut.windows.last().unwrap().end, t("2025-03-10T10:00:00Z"));
        // A session stream that has read nothing: no message window.
        assert!(ending_by(full.clone(), None).windows.is_empty());
        // Sessions behind the messages' lookback: nothing to read either.
        assert!(
            ending_by(full, Some(t("2025-03-09T00:00:00Z")))
                .windows
                .is_empty()
        );
    }
}
