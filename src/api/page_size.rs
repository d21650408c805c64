//! Adaptive page size: how many records to ask `getSessions` for per page.
//!
//! Every request counts against 60 a minute, so larger pages mean fewer
//! requests for the same sessions. How large a page the server honours is not
//! documented (`../shared/kore-api.md`, open questions), so kore-sync asks
//! for `api.max_page_size` and learns from the answers:
//!
//! - a page shorter than asked for while `moreAvailable` is true means the
//!   server clamps: from then on kore-sync asks for exactly what it returned
//!   (asking for more would only be clamped again), but never for less than
//!   `api.page_size` — a short page from a server quirk (records vanishing
//!   mid-paging) must not shrink every later page;
//! - a 400 that names `limit` means the server refuses large pages outright:
//!   kore-sync falls back to `api.page_size` (and the runner repeats that
//!   page with it).
//!
//! Either way paging stays exact, because `skip` advances by the records
//! actually returned; only the number of requests changes. What was learned
//! lasts for the process and is shared by every stream of a scope.

use std::sync::atomic::{AtomicU32, Ordering};
use tracing::info;

#[derive(Debug)]
pub struct PageSize {
    /// `api.page_size`: always accepted; the fallback.
    base: u32,
    /// What the next request asks for. Invariant: `base.min(max) <= current
    /// <= max`, and it only ever shrinks (each shrink is logged, so at most a
    /// few lines per scope and process).
    current: AtomicU32,
}

impl PageSize {
    /// `base` is `api.page_size`, `max` is `api.max_page_size` (>= base;
    /// equal switches adaptation off).
    pub fn new(base: u32, max: u32) -> Self {
        PageSize {
            base,
            current: AtomicU32::new(max.max(base)),
        }
    }

    /// The `limit` to send.
    pub fn ask(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// Notes an answer to a request that asked for `asked` records.
    pub fn observe(&self, scope: &str, asked: u32, returned: usize, more_available: Option<bool>) {
        let returned = u32::try_from(returned).unwrap_or(u32::MAX);
        if more_available == Some(true) && returned > 0 && returned < asked {
            let clamp = returned.max(self.base);
            let before = self.current.fetch_min(clamp, Ordering::Relaxed);
            if clamp < before {
                info!(
                    bot_id = scope,
                    asked,
                    page_size = clamp,
                    "the API returns at most this many sessions per page; asking for that from now on"
                );
            }
        }
    }

    /// The server refused a request for `asked` records with a 400 naming
    /// `limit`. Returns true if a smaller page is worth trying (the caller
    /// repeats the request with [`PageSize::ask`]).
    pub fn refused(&self, scope: &str, asked: u32, message: &str) -> bool {
        if asked <= self.base || !message.to_ascii_lowercase().contains("limit") {
            return false;
        }
        if self.current.fetch_min(self.base, Ordering::Relaxed) > self.base {
            info!(
                bot_id = scope,
                asked,
                page_size = self.base,
                error = message,
                "the API refused a large page; using api.page_size from now on"
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_for_the_maximum_until_the_server_clamps_then_for_what_it_returns() {
        let p = PageSize::new(100, 1000);
        assert_eq!(p.ask(), 1000);
        // A full page, or the last (short) page of a window, teaches nothing.
        p.observe("st-1", 1000, 1000, Some(true));
        p.observe("st-1", 1000, 17, Some(false));
        p.observe("st-1", 1000, 0, Some(true));
        assert_eq!(p.ask(), 1000);
        // Short while more is available: the server's clamp.
        p.observe("st-1", 1000, 250, Some(true));
        assert_eq!(p.ask(), 250);
        // It never grows back, and a smaller clamp wins.
        p.observe("st-1", 250, 250, Some(true));
        assert_eq!(p.ask(), 250);
        p.observe("st-1", 250, 200, Some(true));
        assert_eq!(p.ask(), 200);
        // Never below api.page_size: a stray short page costs nothing later.
        p.observe("st-1", 200, 3, Some(true));
        assert_eq!(p.ask(), 100);
    }

    #[test]
    fn a_refused_large_page_falls_back_to_the_configured_size() {
        let p = PageSize::new(100, 1000);
        assert!(
            !p.refused("st-1", 1000, "bad dates"),
            "only a limit complaint counts"
        );
        assert_eq!(p.ask(), 1000);
        assert!(p.refused("st-1", 1000, "limit must be at most 100"));
        assert_eq!(p.ask(), 100);
        // At the configured size there is nothing smaller to try.
        assert!(!p.refused("st-1", 100, "limit must be at most 100"));
    }

    #[test]
    fn equal_sizes_switch_adaptation_off() {
        let p = PageSize::new(100, 100);
        assert_eq!(p.ask(), 100);
        p.observe("st-1", 100, 100, Some(true));
        assert_eq!(p.ask(), 100);
    }
}
