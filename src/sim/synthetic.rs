//! On-demand sessions for the benchmarks: session `i` of a bot is a pure
//! function of (seed, bot, i), so millions can be served without storing
//! one, and a window's count per containment type is arithmetic.

use super::data;
use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// On-demand sessions: `per_bot` per bot, evenly spread over `[from, to)`.
/// Session `i` of a bot is a pure function of (seed, bot, i), so nothing is
/// stored and a page costs only the records on it.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub per_bot: u64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Each session has one message, created at its start, so
    /// getMessagesV2 serves as many messages as there are sessions, paged
    /// as arithmetically as the sessions are. Off: no messages.
    pub with_messages: bool,
}

/// The channels of synthetic sessions, in turn: session `i`'s is
/// `CHANNELS[i % 4]`, so a channel's sessions in an index range are counted
/// and paged by arithmetic.
const CHANNELS: [&str; 4] = ["rtm", "msteams", "slack", "korevg"];

impl Synthetic {
    /// Start time of session `i`, in milliseconds; non-decreasing in `i`.
    pub fn start_ms(&self, i: u64) -> i64 {
        let span = (self.to - self.from).num_milliseconds().max(1) as i128;
        self.from.timestamp_millis()
            + (i128::from(i) * span / i128::from(self.per_bot.max(1))) as i64
    }

    /// The first index whose start is at or after `t_ms` (or after it, with `strictly_after`).
    pub fn first_index_at(&self, t_ms: i64, strictly_after: bool) -> u64 {
        let (mut lo, mut hi) = (0u64, self.per_bot);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let s = self.start_ms(mid);
            if s < t_ms || (strictly_after && s == t_ms) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The containment type of session `i` of `bot`, without building it.
    ///
    /// Indices come in blocks of [`BLOCK`]; each block holds exactly 13
    /// self-service, 4 drop-off and 3 agent sessions (65/20/15 %), rotated
    /// by a hash of the block, so a window's count per type is arithmetic
    /// and a page costs only the records on it (see [`Synthetic::count`]).
    pub fn containment(seed: u64, bot: &str, i: u64) -> &'static str {
        let block = i / BLOCK;
        let rotation =
            mix(seed ^ bot_hash(bot) ^ block.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % BLOCK;
        match (i % BLOCK + rotation) % BLOCK {
            0..13 => "selfService",
            13..17 => "dropOff",
            _ => "agent",
        }
    }

    /// How many of the indices in `lo..hi` have containment type `ct`
    /// (all of them when `ct` is `None`), in O(1) block steps.
    pub fn count(seed: u64, bot: &str, ct: Option<&str>, lo: u64, hi: u64) -> u64 {
        let Some(ct) = ct else {
            return hi.saturating_sub(lo);
        };
        if hi <= lo {
            return 0;
        }
        let matches = |a: u64, b: u64| {
            (a..b)
                .filter(|i| Self::containment(seed, bot, *i) == ct)
                .count() as u64
        };
        // Every block holds the same mix, so block 0 tells how many.
        let per_block = matches(0, BLOCK);
        let first_full = lo.div_ceil(BLOCK) * BLOCK;
        let last_full = hi / BLOCK * BLOCK;
        if first_full >= last_full {
            return matches(lo, hi);
        }
        matches(lo, first_full)
            + (last_full - first_full) / BLOCK * per_block
            + matches(last_full, hi)
    }

    /// The indices of a newest-first page: those in `lo..hi` with type `ct`,
    /// from the highest down, skipping `skip` and taking up to `limit`.
    /// Whole blocks are skipped arithmetically, so the cost is the page's.
    pub fn page(
        seed: u64,
        bot: &str,
        ct: Option<&str>,
        (lo, hi): (u64, u64),
        skip: u64,
        limit: usize,
    ) -> Vec<u64> {
        // Find the highest index `top` such that `skip` matches lie in `top..hi`.
        let mut top = hi;
        let mut to_skip = skip;
        while top > lo && to_skip > 0 {
            let block_start = ((top - 1) / BLOCK * BLOCK).max(lo);
            let n = Self::count(seed, bot, ct, block_start, top);
            if n <= to_skip {
                to_skip -= n;
                top = block_start;
            } else {
                // The skip ends inside this block: walk it one by one.
                while to_skip > 0 {
                    top -= 1;
                    if ct.is_none_or(|c| Self::containment(seed, bot, top) == c) {
                        to_skip -= 1;
                    }
                }
            }
        }
        (lo..top)
            .rev()
            .filter(|i| ct.is_none_or(|c| Self::containment(seed, bot, *i) == c))
            .take(limit)
            .collect()
    }

    /// The channel of session `i` (of any bot).
    pub fn channel(i: u64) -> &'static str {
        CHANNELS[(i % CHANNELS.len() as u64) as usize]
    }

    /// The indices in `lo..hi` whose channel is `channel`: how many, and a
    /// newest-first page of them after `skip`, at most `limit`.
    pub fn channel_page(
        channel: &str,
        (lo, hi): (u64, u64),
        skip: u64,
        limit: usize,
    ) -> (u64, Vec<u64>) {
        let Some(c) = CHANNELS.iter().position(|x| *x == channel) else {
            return (0, Vec::new());
        };
        let (c, n) = (c as u64, CHANNELS.len() as u64);
        // The first index at or after `x` with this channel.
        let first_at = |x: u64| x + (c + n - x % n) % n;
        let (first, end) = (first_at(lo), first_at(hi));
        let total = end.saturating_sub(first) / n;
        let page = (0..limit as u64)
            .map(|k| skip + k)
            .take_while(|k| *k < total)
            .map(|k| end - n * (k + 1))
            .collect();
        (total, page)
    }

    /// The index of a synthetic session id (its last eight hex digits).
    pub fn index_of(session_id: &str) -> Option<u64> {
        let tail = session_id.get(session_id.len().checked_sub(8)?..)?;
        u64::from_str_radix(tail, 16).ok()
    }

    /// Session `i` of `bot` as the API would send it, appended to `out` as
    /// JSON text (no `Value` is built: the benchmark serves millions).
    pub fn write_record(&self, seed: u64, bot: &str, i: u64, out: &mut String) {
        let mut rng = StdRng::seed_from_u64(mix(seed ^ bot_hash(bot) ^ i));
        let start = DateTime::from_timestamp_millis(self.start_ms(i)).expect("in range");
        let users = [format!("u-{:08x}", mix(i) % 5000)];
        // Shaped like Kore.ai's ids (MongoDB ObjectIds): creation time in
        // seconds first, so ids sort by start time as real ones do.
        let session_id = format!(
            "{:08x}{:08x}{:08x}",
            start.timestamp() as u32,
            bot_hash(bot) as u32,
            i as u32
        );
        let overrides = data::Overrides {
            session_id: &session_id,
            containment_type: Self::containment(seed, bot, i),
            channel: Self::channel(i),
        };
        data::write_session(
            &mut rng,
            bot,
            start,
            self.to + chrono::Duration::days(1),
            &users,
            Some(&overrides),
            out,
        );
    }
}

impl Synthetic {
    /// The sessions of `bot` starting in `[from, to]`, built and parsed,
    /// for the endpoints whose records derive from a session's (analytics
    /// and LLM usage): a window's sessions cost what a page of them does.
    pub fn sessions_between(
        &self,
        seed: u64,
        bot: &str,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> Vec<serde_json::Value> {
        let lo = self.first_index_at(from.timestamp_millis(), false);
        let hi = self.first_index_at(to.timestamp_millis(), true);
        let mut text = String::new();
        (lo..hi)
            .filter_map(|i| {
                text.clear();
                self.write_record(seed, bot, i, &mut text);
                serde_json::from_str(&text).ok()
            })
            .collect()
    }
}

/// Indices per containment block (see [`Synthetic::containment`]).
const BLOCK: u64 = 20;

fn bot_hash(bot: &str) -> u64 {
    bot.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64's finaliser: a cheap, well-mixed hash of a counter.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::Synthetic;
    use proptest::prelude::*;

    const TYPES: [Option<&str>; 4] = [None, Some("selfService"), Some("dropOff"), Some("agent")];

    proptest! {
        // The arithmetic count and page equal the brute-force walk over the
        // window, so the bench's pages are what a stored list would give.
        #[test]
        fn synthetic_count_and_page_match_a_walk(
            lo in 0u64..200, len in 0u64..200, t in 0usize..4, skip in 0u64..120, limit in 1usize..50,
        ) {
            let (hi, ct) = (lo + len, TYPES[t]);
            let walk: Vec<u64> = (lo..hi)
                .rev()
                .filter(|i| ct.is_none_or(|c| Synthetic::containment(7, "st-x", *i) == c))
                .collect();
            prop_assert_eq!(Synthetic::count(7, "st-x", ct, lo, hi), walk.len() as u64);
            let want: Vec<u64> = walk.iter().copied().skip(skip as usize).take(limit).collect();
            prop_assert_eq!(Synthetic::page(7, "st-x", ct, (lo, hi), skip, limit), want);
        }
    }

    proptest! {
        // A channel's count and page equal the walk over the window.
        #[test]
        fn synthetic_channel_page_matches_a_walk(
            lo in 0u64..100, len in 0u64..100, c in 0usize..5, skip in 0u64..40, limit in 1usize..30,
        ) {
            let channel = ["rtm", "msteams", "slack", "korevg", "email"][c];
            let walk: Vec<u64> = (lo..lo + len).rev().filter(|i| Synthetic::channel(*i) == channel).collect();
            let (total, page) = Synthetic::channel_page(channel, (lo, lo + len), skip, limit);
            prop_assert_eq!(total, walk.len() as u64);
            let want: Vec<u64> = walk.iter().copied().skip(skip as usize).take(limit).collect();
            prop_assert_eq!(page, want);
        }
    }

    #[test]
    fn synthetic_containment_shares_are_65_20_15() {
        let n = |ct| Synthetic::count(7, "st-x", Some(ct), 0, 2_000);
        assert_eq!(
            (n("selfService"), n("dropOff"), n("agent")),
            (1_300, 400, 300)
        );
    }
}
