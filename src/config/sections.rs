//! Stage two, one function per section: each reads its raw table, reports
//! its problems, and returns its layer's settings (None if any problem).

use super::collector::Collector;
use super::parse_instant;
use super::raw::{RawApi, RawMessages, RawServer, RawSync};
use crate::api::{ClientSettings, RetryPolicy};
use crate::model::{API_MAX_SPAN, ContainmentType, Deletes};
use crate::ops::health::ServerSettings;
use crate::privacy::PrivacyRules;
use crate::schedule::Trigger;
use crate::sync::plan::PlanSettings;
use crate::sync::{MessagesSettings, SyncSettings};
use chrono::TimeDelta;

use std::time::Duration;
use url::Url;

/// `[api]`, credentials aside (see `scopes`).
pub(super) fn api(raw: &RawApi, p: &mut Collector) -> Option<ClientSettings> {
    let base_url = base_url(raw.base_url.as_deref(), p);
    let page_size = p.int_in("api.page_size", raw.page_size, 100, 1, 10_000);
    let max_page_size = p.int_in(
        "api.max_page_size",
        raw.max_page_size,
        page_size.max(1000),
        1,
        10_000,
    );
    if max_page_size < page_size {
        p.push::<()>(
            "api.max_page_size",
            format!(
                "{max_page_size} is below api.page_size ({page_size}); raise it, or set it equal to \
                 api.page_size to always ask for that many"
            ),
        );
    }
    let timeout = p.duration("api.timeout", raw.timeout.as_deref(), "30s");
    let timeout = p.nonzero("api.timeout", timeout, "30s");
    let rpm = p.int_in(
        "api.requests_per_minute",
        raw.requests_per_minute,
        60,
        0,
        1_000_000,
    );
    let rph = p.int_in(
        "api.requests_per_hour",
        raw.requests_per_hour,
        1800,
        0,
        100_000_000,
    );
    let max_retries = p.int_in("api.max_retries", raw.max_retries, 8, 0, 100);
    // At least 1 KiB (default 64 MiB).
    let max_response_bytes = p.byte_size(
        "api.max_response_size",
        raw.max_response_size.as_deref(),
        ("64MiB", 1 << 10),
    );
    let base_delay = p.duration(
        "api.retry_base_delay",
        raw.retry_base_delay.as_deref(),
        "500ms",
    );
    Some(ClientSettings {
        base_url: base_url?,
        page_size: page_size as u32,
        max_page_size: max_page_size as u32,
        timeout: timeout?,
        requests_per_minute: rpm as u32,
        requests_per_hour: rph as u32,
        retry: RetryPolicy {
            max_retries: max_retries as u32,
            base_delay: base_delay?,
            max_delay: Duration::from_secs(60).max(base_delay?),
        },
        max_response_bytes: max_response_bytes?,
    })
}

fn base_url(text: Option<&str>, p: &mut Collector) -> Option<Url> {
    let text = text.unwrap_or("https://bots.kore.ai");
    match Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Ok(_) => p.push(
            "api.base_url",
            format!("{text:?} must be an http(s) URL with a host, e.g. \"https://bots.kore.ai\""),
        ),
        Err(e) => p.push(
            "api.base_url",
            format!("{text:?} is not a URL ({e}); use e.g. \"https://bots.kore.ai\""),
        ),
    }
}

/// `[messages]`: off unless enabled; channels named once each.
pub(super) fn messages(raw: &RawMessages, p: &mut Collector) -> Option<MessagesSettings> {
    let channels = raw.channels.clone().unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    for c in &channels {
        if c.trim().is_empty() || c.trim() != c {
            return p.push(
                "messages.channels",
                format!(
                    "{c:?} is not a channel; write names such as \"rtm\", \"msteams\", \"korevg\""
                ),
            );
        }
        if !seen.insert(c) {
            return p.push(
                "messages.channels",
                format!("{c:?} is listed twice; list each once"),
            );
        }
    }
    Some(MessagesSettings {
        enabled: raw.enabled.unwrap_or(false),
        channels,
    })
}

/// `[sync]`: how passes read, and when the daemon starts one.
pub(super) fn sync(raw: &RawSync, p: &mut Collector) -> Option<(SyncSettings, Schedule)> {
    let start = parse_instant(raw.start.as_deref().unwrap_or("2025-01-01T00:00:00Z"))
        .map_err(|e| p.push::<()>("sync.start", e))
        .ok();
    let window = window(raw.window.as_deref(), p);
    let lag = p.duration("sync.lag", raw.lag.as_deref(), "5m");
    let lookback = p.duration("sync.lookback", raw.lookback.as_deref(), "1h");
    let pass_deadline = p.duration("sync.pass_deadline", raw.pass_deadline.as_deref(), "1h");
    let pass_deadline = p.nonzero("sync.pass_deadline", pass_deadline, "1h");
    let trigger = trigger(raw, p);
    let verify = verify_schedule(raw.verify_schedule.as_deref(), p);
    let containment_types = containment_types(raw.containment_types.as_deref(), p);
    let reconcile = reconcile(raw.reconcile.as_deref(), lookback, p);
    let deletes = deletes(raw.deletes.as_deref(), p);
    let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    let settings = SyncSettings {
        plan: PlanSettings {
            start: start?,
            window: delta(window?),
            lag: delta(lag?),
            lookback: delta(lookback?),
        },
        restart_on_filter_change: raw.restart_on_filter_change.unwrap_or(true),
        pass_deadline: pass_deadline?,
        containment_types: containment_types?,
        reconcile: delta(reconcile?),
        deletes: deletes?,
        // Set from `[messages]` and `[privacy]` by `validate`.
        messages: MessagesSettings::default(),
        analytics: crate::sync::AnalyticsSettings::default(),
        privacy: PrivacyRules::default(),
    };
    let schedule = Schedule {
        trigger: trigger?,
        verify: verify?,
    };
    Some((settings, schedule))
}

/// When the daemon runs `verify`, and when it passes.
pub(super) struct Schedule {
    pub trigger: Trigger,
    pub verify: Option<String>,
}

/// `sync.verify_schedule`: a cron expression (default daily at 03:30 UTC),
/// or `""` for none.
fn verify_schedule(text: Option<&str>, p: &mut Collector) -> Option<Option<String>> {
    let expr = text.unwrap_or("0 30 3 * * *").trim();
    if expr.is_empty() {
        return Some(None);
    }
    match tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {})) {
        Ok(_) => Some(Some(expr.to_owned())),
        Err(e) => p.push(
            "sync.verify_schedule",
            format!(
                "{expr:?} is not a cron expression ({e}); it takes six fields with seconds first, \
                 e.g. \"0 30 3 * * *\" (daily at 03:30 UTC), or \"\" for none"
            ),
        ),
    }
}

/// `sync.window`: positive and under the API's 7 days.
fn window(text: Option<&str>, p: &mut Collector) -> Option<Duration> {
    let w = p.duration("sync.window", text, "6d")?;
    if w.is_zero() {
        p.push(
            "sync.window",
            "must be longer than zero; \"6d\" is the usual choice".into(),
        )
    } else if w >= API_MAX_SPAN.to_std().expect("positive") {
        p.push(
            "sync.window",
            format!(
                "{} is 7 days or more, which the API refuses; use at most \"6d\" (or e.g. \"6d 23h\")",
                humantime::format_duration(w)
            ),
        )
    } else {
        Some(w)
    }
}

/// `sync.reconcile`: zero (off), or at least `sync.lookback` (the span
/// behind the watermark it checks begins there).
fn reconcile(
    text: Option<&str>,
    lookback: Option<Duration>,
    p: &mut Collector,
) -> Option<Duration> {
    let r = p.duration("sync.reconcile", text, "7d")?;
    match lookback {
        Some(l) if !r.is_zero() && r < l => p.push(
            "sync.reconcile",
            format!(
                "{} is shorter than sync.lookback ({}); make it at least that, or \"0\" to switch reconciling off",
                humantime::format_duration(r),
                humantime::format_duration(l)
            ),
        ),
        _ => Some(r),
    }
}

/// `sync.deletes`: `"delete"` (mirror the API) or `"keep"` (mark).
fn deletes(text: Option<&str>, p: &mut Collector) -> Option<Deletes> {
    match text.map(str::trim) {
        None | Some("delete") => Some(Deletes::Delete),
        Some("keep") => Some(Deletes::Keep),
        Some(other) => p.push(
            "sync.deletes",
            format!(
                "{other:?} is not a choice; use \"delete\" (the warehouse mirrors the API) or \"keep\" \
                 (rows stay, with sessions.deleted_at set)"
            ),
        ),
    }
}

/// `sync.interval` or `sync.schedule` (not both).
fn trigger(raw: &RawSync, p: &mut Collector) -> Option<Trigger> {
    match (&raw.interval, &raw.schedule) {
        (Some(_), Some(_)) => p.push(
            "sync.schedule",
            "both sync.interval and sync.schedule are set; keep only one".into(),
        ),
        (None, Some(expr)) => {
            match tokio_cron_scheduler::Job::new_async(expr.as_str(), |_, _| Box::pin(async {})) {
                Ok(_) => Some(Trigger::Cron(expr.clone())),
                Err(e) => p.push(
                    "sync.schedule",
                    format!(
                        "{expr:?} is not a cron expression ({e}); it takes six fields with seconds first, \
                         e.g. \"0 */15 * * * *\""
                    ),
                ),
            }
        }
        (interval, None) => {
            let every = p.duration("sync.interval", interval.as_deref(), "15m");
            p.nonzero("sync.interval", every, "15m")
                .map(Trigger::Interval)
        }
    }
}

/// `sync.containment_types`: each known, each once, at least one.
fn containment_types(list: Option<&[String]>, p: &mut Collector) -> Option<Vec<ContainmentType>> {
    let Some(list) = list else {
        return Some(ContainmentType::ALL.to_vec());
    };
    let mut out = Vec::new();
    for name in list {
        match ContainmentType::parse(name.trim()) {
            Some(c) if !out.contains(&c) => out.push(c),
            Some(_) => {
                p.push::<()>(
                    "sync.containment_types",
                    format!("{name:?} is listed twice; list each once"),
                );
            }
            None => {
                p.push::<()>(
                    "sync.containment_types",
                    format!(
                        "{name:?} is not a containment type; use \"selfService\", \"dropOff\" or \"agent\""
                    ),
                );
            }
        }
    }
    if list.is_empty() {
        return p.push(
            "sync.containment_types",
            "is empty, so nothing would be synced; list at least one of \"selfService\", \"dropOff\", \"agent\"".into(),
        );
    }
    Some(out)
}

/// `[server]`. `max_pass_age` defaults to two intervals; for a cron
/// schedule, whose gaps vary, to two hours.
pub(super) fn server(
    raw: &RawServer,
    trigger: Option<&Trigger>,
    p: &mut Collector,
) -> Option<ServerSettings> {
    let listen = match raw.listen.as_deref().map(str::trim) {
        None | Some("") => Some(None),
        Some(text) => match text.parse::<std::net::SocketAddr>() {
            Ok(a) => Some(Some(a)),
            Err(_) => p.push(
                "server.listen",
                format!("{text:?} is not an address with a port; write e.g. \"127.0.0.1:9464\""),
            ),
        },
    };
    let default_age = match trigger {
        Some(Trigger::Interval(d)) => humantime::format_duration(*d * 2).to_string(),
        _ => "2h".to_owned(),
    };
    let max_pass_age = p.duration(
        "server.max_pass_age",
        raw.max_pass_age.as_deref(),
        &default_age,
    );
    Some(ServerSettings {
        listen: listen?,
        max_pass_age: max_pass_age?,
    })
}
