//! Progress bars for `sync` and `backfill` on a terminal: one per stream,
//! windows done of planned, sessions, requests and time spent waiting for the
//! request budget. Nothing at all when stderr is not a terminal.

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
