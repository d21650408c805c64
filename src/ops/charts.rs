//! The status page's charts, drawn as inline SVG (no scripts, no fonts from
//! elsewhere: the page must work on an air-gapped server). Each bar is a
//! `rect` with class `bar` and its value in `data-value`, so a test (or a
//! curious operator) can read what was drawn.

use super::page::escape;
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt::Write;

/// Widths and height of a chart's drawing area, in SVG units: the small
/// charts of passes sit several to a row, the sessions' chart alone. The
/// SVG scales to its container (`viewBox`), so a phone shows it whole.
const SMALL_WIDTH: f64 = 280.0;
const WIDE_WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;
/// Room for the axis labels.
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 18.0;

/// A chart of values in time over `span`: one bar per point, placed at its
/// time. Used for the last 24 hours of passes.
pub struct TimeBars<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub unit: &'a str,
    pub color: &'a str,
    pub span: (DateTime<Utc>, DateTime<Utc>),
    pub points: Vec<(DateTime<Utc>, f64)>,
}

impl TimeBars<'_> {
    pub fn svg(&self) -> String {
        const WIDTH: f64 = SMALL_WIDTH;
        let max = self.points.iter().map(|p| p.1).fold(0.0, f64::max);
        let mut out = open_svg(self.id, self.title, (max, WIDTH));
        let (from, to) = self.span;
        let span_s = (to - from).num_seconds().max(1) as f64;
        let bar_w = (WIDTH / 96.0).max(2.0);
        for (at, value) in &self.points {
            let x = LEFT + (at.signed_duration_since(from).num_seconds() as f64 / span_s) * WIDTH;
            let h = scaled(*value, max);
            let _ = write!(
                out,
                r#"<rect class="bar" data-value="{value}" x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{}"><title>{} {}: {value} {}</title></rect>"#,
                HEIGHT - h,
                escape(self.color),
                escape(self.title),
                at.format("%H:%M"),
                escape(self.unit)
            );
        }
        let labels = [
            (0.0, from.format("%H:%M").to_string()),
            (1.0, to.format("%H:%M").to_string()),
        ];
        close_svg(out, &labels, WIDTH)
    }
}

/// Stacked bars per day: one stack a day, one colour a series.
pub struct DayStacks<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub days: Vec<NaiveDate>,
    /// (name, colour, one value a day).
    pub series: Vec<(String, &'a str, Vec<i64>)>,
}

impl DayStacks<'_> {
    pub fn svg(&self) -> String {
        let totals: Vec<i64> = (0..self.days.len())
            .map(|d| self.series.iter().map(|s| s.2[d]).sum())
            .collect();
        const WIDTH: f64 = WIDE_WIDTH;
        let max = totals.iter().copied().max().unwrap_or(0) as f64;
        let mut out = open_svg(self.id, self.title, (max, WIDTH));
        let slot = WIDTH / self.days.len().max(1) as f64;
        for (d, day) in self.days.iter().enumerate() {
            let x = LEFT + slot * d as f64 + slot * 0.1;
            let mut y = HEIGHT;
            for (name, color, values) in &self.series {
                let value = values[d];
                if value == 0 {
                    continue;
                }
                let h = scaled(value as f64, max);
                y -= h;
                let _ = write!(
                    out,
                    r#"<rect class="bar" data-series="{}" data-day="{day}" data-value="{value}" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{day} {}: {value}</title></rect>"#,
                    escape(name),
                    slot * 0.8,
                    escape(color),
                    escape(name)
                );
            }
        }
        let labels: Vec<(f64, String)> = match (self.days.first(), self.days.last()) {
            (Some(a), Some(b)) => vec![
                (0.0, a.format("%b %d").to_string()),
                (1.0, b.format("%b %d").to_string()),
            ],
            _ => Vec::new(),
        };
        close_svg(out, &labels, WIDTH)
    }
}

/// A bar's height for `value` on a scale up to `max`; at least a pixel for
/// any value above zero, so a small one still shows.
fn scaled(value: f64, max: f64) -> f64 {
    if max <= 0.0 || value <= 0.0 {
        return 0.0;
    }
    (value / max * (HEIGHT - 8.0)).max(1.0)
}

fn open_svg(id: &str, title: &str, (max, width): (f64, f64)) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg id="{}" class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet"><line x1="{LEFT}" y1="{HEIGHT}" x2="{}" y2="{HEIGHT}" stroke="#999"/><text x="{}" y="12" class="axis" text-anchor="end">{}</text><text x="{}" y="{HEIGHT}" class="axis" text-anchor="end">0</text>"##,
        escape(id),
        LEFT + width + 4.0,
        HEIGHT + BOTTOM,
        escape(title),
        LEFT + width,
        LEFT - 4.0,
        short_number(max),
        LEFT - 4.0,
    );
    out
}

fn close_svg(mut out: String, labels: &[(f64, String)], width: f64) -> String {
    for (at, text) in labels {
        let anchor = if *at < 0.5 { "start" } else { "end" };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" class="axis" text-anchor="{anchor}">{}</text>"#,
            LEFT + at * width,
            HEIGHT + BOTTOM - 4.0,
            escape(text)
        );
    }
    out.push_str("</svg>");
    out
}

/// 1234 → "1.2k", for the axis.
pub fn short_number(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v if v.fract() == 0.0 => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_point_is_a_bar_with_its_value() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let chart = TimeBars {
            id: "passes",
            title: "Pass duration",
            unit: "s",
            color: "#1565c0",
            span: (t0, t0 + chrono::Duration::hours(24)),
            points: vec![
                (t0 + chrono::Duration::hours(1), 2.5),
                (t0 + chrono::Duration::hours(2), 0.0),
            ],
        };
        let svg = chart.svg();
        assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
        assert!(svg.contains(r#"data-value="2.5""#));
        assert!(svg.starts_with(r#"<svg id="passes""#) && svg.ends_with("</svg>"));
    }

    #[test]
    fn a_series_name_is_escaped_in_the_stacks() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let chart = DayStacks {
            id: "sessions",
            title: "Sessions",
            days: vec![day],
            series: vec![("<b>".into(), "#000", vec![3])],
        };
        let svg = chart.svg();
        assert!(svg.contains("data-series=\"&lt;b&gt;\""));
        assert!(!svg.contains("<b>"));
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(1234.0), "1.2k");
        assert_eq!(short_number(2_500_000.0), "2.5M");
        assert_eq!(short_number(1.25), "1.2");
    }
}
