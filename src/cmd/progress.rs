//! Progress bars for `sync` and `backfill` on a terminal: one per stream,
//! windows done of planned, sessions, requests and time spent waiting for the
//! request budget; nothing at all when stderr is not a terminal. And
//! `rewrite-privacy`'s rows rewritten, per table.

use crate::store::RewriteProgress;
use crate::sync::{Observer, PassObserver, StreamReport};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

fn name(r: &StreamReport) -> String {
    r.key.to_string()
}

fn message(r: &StreamReport) -> String {
    let mut m = format!("{} sessions, {} requests", r.sessions_received, r.requests);
    if !r.budget_wait.is_zero() {
        m.push_str(&format!(
            ", waited {} for budget",
            humantime::format_duration(std::time::Duration::from_secs(r.budget_wait.as_secs()))
        ));
    }
    m
}

impl PassObserver for Bars {
    fn started(&self, r: &StreamReport) {
        let bar = self
            .multi
            .add(ProgressBar::new(u64::from(r.windows_planned)));
        bar.set_style(
            ProgressStyle::with_template("{prefix:<40} [{bar:25}] {pos}/{len} windows  {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(name(r));
        bar.set_message(message(r));
        self.bars.lock().expect("bars lock").insert(name(r), bar);
    }

    fn advanced(&self, r: &StreamReport) {
        if let Some(bar) = self.bars.lock().expect("bars lock").get(&name(r)) {
            bar.set_position(u64::from(r.windows_done));
            bar.set_message(message(r));
        }
    }

    fn finished(&self, r: &StreamReport) {
        if let Some(bar) = self.bars.lock().expect("bars lock").remove(&name(r)) {
            bar.set_position(u64::from(r.windows_done));
            bar.finish_with_message(format!("{} ({})", message(r), r.outcome.as_str()));
        }
    }
}

/// Progress bars on stderr if it is a terminal; otherwise none.
pub fn terminal_observer() -> Option<Observer> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    Some(Observer(Arc::new(Bars {
        multi,
        bars: Mutex::new(HashMap::new()),
    })))
}

/// `rewrite-privacy`'s progress: a bar per table on a terminal, else a log
/// line at each tenth of a table (a rewrite of millions of rows takes
/// minutes, and a service's log should show it moving).
pub fn rewrite_progress() -> Box<dyn Fn(RewriteProgress) + Send> {
    let terminal = std::io::stderr().is_terminal();
    let bar: Mutex<Option<(&'static str, ProgressBar)>> = Mutex::new(None);
    let logged = Mutex::new((String::new(), 0u64));
    Box::new(move |p: RewriteProgress| {
        if !terminal {
            let mut last = logged.lock().expect("progress lock");
            let tenth = (p.done * 10).checked_div(p.total).unwrap_or(10);
            if last.0 != p.table || tenth > last.1 {
                *last = (p.table.to_owned(), tenth);
                tracing::info!(table = %p.table, done = p.done, total = p.total, "rewriting");
            }
            return;
        }
        let mut slot = bar.lock().expect("progress lock");
        if slot.as_ref().is_none_or(|(t, _)| *t != p.table) {
            if let Some((_, old)) = slot.take() {
                old.finish();
            }
            let b = ProgressBar::with_draw_target(Some(p.total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:<10} [{bar:25}] {pos}/{len} rows  {eta} left",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_prefix(p.table);
            *slot = Some((p.table, b));
        }
        if let Some((_, b)) = slot.as_ref() {
            b.set_position(p.done);
            if p.done >= p.total {
                b.finish();
            }
        }
    })
}
