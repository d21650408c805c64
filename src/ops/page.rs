//! The status page (`GET /`): one self-contained HTML document drawn from a
//! [`BoardView`] — inline CSS and SVG, no scripts, nothing fetched from
//! elsewhere — that reloads itself every 30 seconds and fits a phone.
//!
//! Everything that came from the API or the config (bot names and ids,
//! error texts, partitions) passes through [`escape`] before it reaches the
//! document.

use super::board::{BoardView, BudgetUse, DaySessions, PassPoint, StreamView};
use super::charts::{DayStacks, TimeBars, short_number};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The page reloads itself this often.
const REFRESH_SECONDS: u32 = 30;

/// Text made safe for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;padding:12px;color:#222;background:#fafafa}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 6px}\
.meta{color:#666;font-size:12px}.wrap{overflow-x:auto}\
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}\
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #e5e5e5;white-space:nowrap}\
td.error{white-space:normal;max-width:28em;color:#b71c1c}\
.ok{color:#1b5e20}.bad{color:#b71c1c;font-weight:600}.warn{color:#e65100}\
.cards{display:flex;flex-wrap:wrap;gap:8px}.card{background:#fff;border:1px solid #e5e5e5;padding:8px 12px;min-width:8em}\
.card b{display:block;font-size:20px}.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:12px}figure{margin:0}figcaption{font-size:12px;color:#444}\
#sessions-chart{max-width:960px}\
.chart{width:100%;height:auto;background:#fff;border:1px solid #e5e5e5}.axis{font-size:10px;fill:#666}\
.legend span{display:inline-block;margin-right:10px}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}\
.meter{display:inline-block;width:80px;height:8px;background:#eee;vertical-align:middle;margin-left:6px}\
.meter i{display:block;height:8px;background:#1565c0}";

/// The colours of the containment types (and of any other series).
fn colour_of(containment_type: &str) -> &'static str {
    match containment_type {
        "selfService" => "#2e7d32",
        "dropOff" => "#f9a825",
        "agent" => "#1565c0",
        _ => "#8e24aa",
    }
}

/// The whole page.
pub fn render(view: &BoardView) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>kore-sync status</title><style>{STYLE}</style></head><body>\
         <h1>kore-sync</h1><p class=\"meta\">Shown at {} UTC; the warehouse was read {}. \
         Reloads every {REFRESH_SECONDS} s; the same data: <a href=\"status.json\">status.json</a>.</p>",
        view.generated_at.format("%Y-%m-%d %H:%M:%S"),
        view.read_at.map_or_else(
            || "not yet (the first pass is running)".to_owned(),
            |t| format!("at {} UTC", t.format("%Y-%m-%d %H:%M:%S"))
        ),
    );
    summary(&mut out, view);
    charts(&mut out, view);
    budgets(&mut out, &view.budgets);
    streams(&mut out, &view.streams);
    out.push_str("</body></html>");
    out
}

fn summary(out: &mut String, view: &BoardView) {
    let n_failed = view
        .streams
        .iter()
        .filter(|s| {
            s.stream
                .last_run
                .as_ref()
                .is_some_and(|r| !is_good(&r.outcome))
        })
        .count();
    let worst = view.streams.iter().filter_map(|s| s.lag_seconds).max();
    let class = if n_failed > 0 { "bad" } else { "ok" };
    let _ = write!(
        out,
        "<div class=\"cards\"><div class=\"card\"><b>{}</b>streams</div>\
         <div class=\"card\"><b class=\"{class}\" id=\"n-failed\">{n_failed}</b>failed last run</div>\
         <div class=\"card\"><b>{}</b>largest lag</div>\
         <div class=\"card\"><b>{}</b>passes in 24 h</div></div>",
        view.streams.len(),
        worst.map_or_else(|| "–".to_owned(), human_seconds),
        view.passes.len(),
    );
}

fn charts(out: &mut String, view: &BoardView) {
    let now = view.generated_at;
    let span = (now - Duration::hours(24), now);
    let series = |f: fn(&PassPoint) -> f64| -> Vec<(DateTime<Utc>, f64)> {
        view.passes.iter().map(|p| (p.started_at, f(p))).collect()
    };
    let pass_charts = [
        (
            "pass-duration",
            "Duration",
            "s",
            "#1565c0",
            series(|p| (p.duration_seconds * 10.0).round() / 10.0),
        ),
        (
            "pass-requests",
            "Requests",
            "",
            "#6a1b9a",
            series(|p| p.requests as f64),
        ),
        (
            "pass-written",
            "Rows written",
            "",
            "#2e7d32",
            series(|p| p.n_written as f64),
        ),
        (
            "pass-failures",
            "Failed streams",
            "",
            "#b71c1c",
            series(|p| p.n_failed as f64),
        ),
    ];
    out.push_str("<h2>Passes, last 24 hours</h2><div class=\"charts\" id=\"passes-chart\">");
    for (id, title, unit, color, points) in pass_charts {
        let chart = TimeBars {
            id,
            title,
            unit,
            color,
            span,
            points,
        };
        let _ = write!(
            out,
            "<figure><figcaption>{title}{}</figcaption>{}</figure>",
            if unit.is_empty() {
                String::new()
            } else {
                format!(" ({unit})")
            },
            chart.svg()
        );
    }
    out.push_str("</div>");
    let stacks = day_stacks(&view.sessions_per_day, now.date_naive());
    out.push_str("<h2>Sessions per day, last 30 days</h2><div class=\"legend\">");
    for (name, color, values) in &stacks.series {
        let _ = write!(
            out,
            "<span><i class=\"swatch\" style=\"background:{color}\"></i>{} ({})</span>",
            escape(name),
            values.iter().sum::<i64>()
        );
    }
    out.push_str("</div><div id=\"sessions-chart\">");
    out.push_str(&stacks.svg());
    out.push_str("</div>");
}

/// The last 30 days (today included), one series per containment type
/// seen, the documented three first.
fn day_stacks(rows: &[DaySessions], today: NaiveDate) -> DayStacks<'static> {
    let days: Vec<NaiveDate> = (0..30).rev().map(|d| today - Duration::days(d)).collect();
    let mut by_type: BTreeMap<(u8, String), Vec<i64>> = BTreeMap::new();
    for r in rows {
        let Some(d) = days.iter().position(|d| *d == r.day) else {
            continue;
        };
        let rank = ["selfService", "dropOff", "agent"]
            .iter()
            .position(|t| *t == r.containment_type)
            .unwrap_or(3) as u8;
        by_type
            .entry((rank, r.containment_type.clone()))
            .or_insert_with(|| vec![0; days.len()])[d] += r.n_sessions;
    }
    DayStacks {
        id: "sessions-per-day",
        title: "Sessions per day",
        days,
        series: by_type
            .into_iter()
            .map(|((_, name), values)| {
                let color = colour_of(&name);
                (name, color, values)
            })
            .collect(),
    }
}

fn budgets(out: &mut String, budgets: &[BudgetUse]) {
    out.push_str(
        "<h2>Request budget</h2><div class=\"wrap\"><table id=\"budgets\"><tr><th>Bot</th>\
         <th>Last minute</th><th>Last hour</th></tr>",
    );
    for b in budgets {
        let _ = write!(
            out,
            "<tr class=\"budget\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&b.bot_id),
            meter(b.last_minute, b.per_minute),
            meter(b.last_hour, b.per_hour)
        );
    }
    out.push_str("</table></div>");
}

fn meter(used: u32, limit: Option<u32>) -> String {
    match limit {
        Some(limit) if limit > 0 => {
            let pct = (f64::from(used) / f64::from(limit) * 100.0).min(100.0);
            format!(
                "{used} of {limit}<span class=\"meter\"><i style=\"width:{pct:.0}%\"></i></span>"
            )
        }
        _ => format!("{used} (no limit)"),
    }
}

fn streams(out: &mut String, streams: &[StreamView]) {
    out.push_str(
        "<h2>Streams</h2><div class=\"wrap\"><table id=\"streams\"><tr><th>Bot</th><th>Resource</th>\
         <th>Partition</th><th>Watermark</th><th>Behind now</th><th>Last run</th><th>Outcome</th>\
         <th>Took</th><th>Requests</th><th>Written</th><th>Rows</th><th>Error</th></tr>",
    );
    for s in streams {
        stream_row(out, s);
    }
    out.push_str("</table></div>");
}

fn stream_row(out: &mut String, s: &StreamView) {
    let st = &s.stream;
    let bot = match &st.bot_name {
        Some(name) => format!(
            "{} <span class=\"meta\">{}</span>",
            escape(name),
            escape(&st.bot_id)
        ),
        None => escape(&st.bot_id),
    };
    let _ = write!(
        out,
        "<tr class=\"stream\" data-bot=\"{}\" data-resource=\"{}\" data-partition=\"{}\"><td class=\"bot\">{bot}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td class=\"lag\" data-lag-seconds=\"{}\">{}</td>",
        escape(&st.bot_id),
        escape(&st.resource),
        escape(&st.partition),
        escape(&st.resource),
        escape(&st.partition),
        st.watermark.map_or_else(
            || "–".to_owned(),
            |w| w.format("%Y-%m-%d %H:%M:%S").to_string()
        ),
        s.lag_seconds.map_or_else(String::new, |l| l.to_string()),
        s.lag_seconds.map_or_else(|| "–".to_owned(), human_seconds),
    );
    match &st.last_run {
        Some(r) => {
            let class = if is_good(&r.outcome) { "ok" } else { "bad" };
            let took = r.finished_at.map_or_else(
                || "running".to_owned(),
                |f| human_seconds((f - r.started_at).num_seconds()),
            );
            let _ = write!(
                out,
                "<td>{} {}</td><td class=\"{class}\">{}</td><td>{took}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"error\">{}</td></tr>",
                escape(&r.trigger),
                r.started_at.format("%m-%d %H:%M"),
                escape(&r.outcome),
                r.requests,
                short_number(r.n_written as f64),
                short_number(st.n_records as f64),
                escape(r.error.as_deref().unwrap_or("")),
            );
        }
        None => {
            let _ = write!(
                out,
                "<td>–</td><td>–</td><td></td><td></td><td></td><td>{}</td><td></td></tr>",
                short_number(st.n_records as f64)
            );
        }
    }
}

fn is_good(outcome: &str) -> bool {
    matches!(outcome, "succeeded" | "budget_spent" | "running")
}

/// 3725 → "1 h 2 min".
pub fn human_seconds(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::board::{BoardRun, BoardStream};
    use chrono::TimeZone;

    fn view_with(name: &str, error: &str) -> BoardView {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let stream = BoardStream {
            bot_id: "st-1".into(),
            bot_name: Some(name.into()),
            resource: "sessions".into(),
            partition: "agent".into(),
            watermark: Some(now - Duration::minutes(90)),
            n_records: 12,
            last_run: Some(BoardRun {
                trigger: "schedule".into(),
                outcome: "failed".into(),
                started_at: now - Duration::minutes(5),
                finished_at: Some(now - Duration::minutes(4)),
                requests: 3,
                n_written: 2,
                error: Some(error.into()),
            }),
        };
        BoardView {
            generated_at: now,
            read_at: Some(now),
            streams: vec![StreamView {
                stream,
                lag_seconds: Some(5400),
            }],
            budgets: vec![BudgetUse {
                bot_id: "st-1".into(),
                last_minute: 3,
                per_minute: Some(60),
                last_hour: 30,
                per_hour: Some(1800),
            }],
            passes: vec![PassPoint {
                started_at: now - Duration::hours(1),
                duration_seconds: 1.5,
                requests: 3,
                n_written: 2,
                n_failed: 1,
            }],
            sessions_per_day: vec![DaySessions {
                day: now.date_naive(),
                containment_type: "agent".into(),
                n_sessions: 7,
            }],
        }
    }

    #[test]
    fn names_and_errors_from_the_api_are_escaped() {
        let page = render(&view_with(
            "<script>alert(1)</script>",
            "bad \"quote\" & <tag>",
        ));
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("bad &quot;quote&quot; &amp; &lt;tag&gt;"));
    }

    #[test]
    fn the_page_shows_lag_failures_and_both_charts() {
        let page = render(&view_with("Support", "timeout"));
        assert!(page.contains("data-lag-seconds=\"5400\">1 h 30 min</td>"));
        assert!(page.contains("<b class=\"bad\" id=\"n-failed\">1</b>"));
        assert!(page.contains("data-day=\"2026-12-02\" data-value=\"7\""));
        assert_eq!(page.matches("id=\"pass-").count(), 4);
        assert!(page.contains("3 of 60"));
        assert!(!page.contains("<script"), "no scripts at all");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing from elsewhere"
        );
    }

    #[test]
    fn human_seconds_reads_well() {
        assert_eq!(human_seconds(5), "5 s");
        assert_eq!(human_seconds(125), "2 min");
        assert_eq!(human_seconds(3725), "1 h 2 min");
        assert_eq!(human_seconds(90_000), "1 d 1 h");
    }
}
