//! The simulated Kore.ai Sessions History API, used by the tests, `demo` and
//! `simulate`. It is a faithful stand-in for the endpoint as
//! `shared/kore-api.md` describes it: both scopes, HS256 JWT checks (with
//! optional JTI enforcement), the containmentType filter, the 7-day rule,
//! newest-first paging with total/moreAvailable, sessionId lookups with
//! invalidSessions, per-bot rate limits answered with 429, and switches to
//! inject faults, clamp page size, cap skip depth, and choose whether
//! `dateTo` is inclusive. Everything is deterministic from a seed.
//!
//! Tests drive it through [`Simulator`]: change records (`upsert`, `modify`,
//! `remove`), queue faults, and read the request log.

pub mod data;
mod messages;
mod server;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One JWT app the simulator accepts.
#[derive(Debug, Clone)]
pub struct SimApp {
    pub client_id: String,
    pub client_secret: String,
}

/// One simulated bot and the app allowed to read it.
#[derive(Debug, Clone)]
pub struct SimBot {
    pub id: String,
    pub app: SimApp,
}

/// A fault to inject into one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// An error status with a JSON error body.
    Status(u16),
    /// A 502 with an HTML page, as gateways send.
    HtmlBadGateway,
    /// 429, with or without Retry-After (seconds).
    RateLimited { retry_after: Option<u64> },
    /// The connection drops halfway through the body.
    DropConnection,
    /// A 200 whose JSON body is cut short.
    TruncatedBody,
    /// The answer comes after this delay.
    Slow(Duration),
    /// Not a fault: this record is added (or replaced) just before the
    /// request is answered, as if it landed while a window was being paged.
    UpsertFirst(Value),
    /// Not a fault: this session is deleted just before the request is answered.
    RemoveFirst(String),
}

/// The simulator's switches.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub bots: Vec<SimBot>,
    /// The Admin Console app for the account-wide endpoint, if any.
    pub account_app: Option<SimApp>,
    /// Largest page the server returns, whatever `limit` asks for.
    pub max_page_size: usize,
    /// Largest page of messages getMessagesV2 returns (the API: 10,000).
    pub max_messages_page: usize,
    /// Bots whose apps lack the Chat History scope: getMessagesV2 answers 403.
    pub deny_chat_history: Vec<String>,
    /// Answer 400 to a `limit` above this, instead of clamping.
    pub refuse_limit_above: Option<usize>,
    /// `limit` when the request has none.
    pub default_page_size: usize,
    /// Refuse `skip` beyond this with a 400.
    pub max_skip: Option<u64>,
    /// Whether a session starting exactly at `dateTo` is included.
    pub date_to_inclusive: bool,
    /// Refuse tokens without a `jti`, and replayed ones.
    pub enforce_jti: bool,
    /// Per-bot (and per-account) limits as (per minute, per hour); None = off.
    pub rate_limit: Option<(u32, u32)>,
    /// Share of requests, 0.0–1.0, that get a random fault.
    pub fault_rate: f64,
    /// How long a random `Fault::Slow` takes (set it above the client's timeout).
    pub slow_fault: Duration,
    /// Added to every answer, to make passes long enough to interrupt.
    pub latency: Duration,
    /// Generate each bot's sessions on demand instead of storing them, for
    /// benchmarks with millions of sessions (bot scope only).
    pub synthetic: Option<Synthetic>,
    pub seed: u64,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            bots: Vec::new(),
            account_app: None,
            max_page_size: 100,
            max_messages_page: 10_000,
            deny_chat_history: Vec::new(),
            default_page_size: 100,
            refuse_limit_above: None,
            max_skip: None,
            date_to_inclusive: true,
            enforce_jti: false,
            rate_limit: None,
            fault_rate: 0.0,
            slow_fault: Duration::from_secs(3),
            latency: Duration::ZERO,
            synthetic: None,
            seed: 1,
        }
    }
}

/// On-demand sessions: `per_bot` per bot, evenly spread over `[from, to)`.
/// Session `i` of a bot is a pure function of (seed, bot, i), so nothing is
/// stored and a page costs only the records on it.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub per_bot: u64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

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

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    /// The bot id, `*` for the account's getSessions, or `bots` for the
    /// Admin Console's bot list.
    pub scope: String,
    /// `sessions`, `messages` (getMessagesV2) or `bots`.
    pub resource: &'static str,
    /// getMessagesV2's `channelType` (None: not sent, so `rtm`).
    pub channel_type: Option<String>,
    pub containment_type: Option<String>,
    pub date_from: Option<DateTime<Utc>>,
    pub date_to: Option<DateTime<Utc>>,
    pub skip: u64,
    pub limit: Option<u64>,
    pub session_ids: Option<usize>,
    pub status: u16,
    pub returned: usize,
    /// When the request arrived.
    pub received_at: std::time::Instant,
}

impl LoggedRequest {
    /// A request to `scope` (a bot id, `*`, or `bots` for the bot list),
    /// its details filled in as it is answered.
    pub fn new(scope: &str) -> Self {
        LoggedRequest {
            scope: scope.to_owned(),
            resource: if scope == "bots" { "bots" } else { "sessions" },
            channel_type: None,
            containment_type: None,
            date_from: None,
            date_to: None,
            skip: 0,
            limit: None,
            session_ids: None,
            status: 200,
            returned: 0,
            received_at: std::time::Instant::now(),
        }
    }
}

/// A stored record with its parsed keys.
#[derive(Debug, Clone)]
struct SimRecord {
    bot_id: String,
    session_id: String,
    start: DateTime<Utc>,
    record: Value,
}

impl SimRecord {
    fn from_value(record: Value) -> Self {
        let session_id = record["sessionId"]
            .as_str()
            .expect("sim records have a sessionId")
            .to_owned();
        let bot_id = record["botId"]
            .as_str()
            .expect("sim records have a botId")
            .to_owned();
        let start = DateTime::parse_from_rfc3339(
            record["start_time"]
                .as_str()
                .expect("sim records have a start_time"),
        )
        .expect("sim start_time is RFC 3339")
        .with_timezone(&Utc);
        SimRecord {
            bot_id,
            session_id,
            start,
            record,
        }
    }
}

pub(crate) struct SimState {
    settings: SimSettings,
    /// Every session, kept sorted newest first (start desc, then id), the
    /// order the API pages in.
    records: Vec<SimRecord>,
    faults: VecDeque<Fault>,
    rng: StdRng,
    log: Vec<LoggedRequest>,
    seen_jti: HashSet<String>,
    /// Request times per scope for the rate limit.
    rate_log: std::collections::HashMap<String, VecDeque<tokio::time::Instant>>,
    /// Counts answered requests, so tests can await "n requests so far".
    answered: tokio::sync::watch::Sender<usize>,
}

impl SimState {
    fn sort(&mut self) {
        self.records.sort_by(|a, b| {
            b.start
                .cmp(&a.start)
                .then_with(|| b.session_id.cmp(&a.session_id))
        });
    }
}

/// A handle on a running simulator.
#[derive(Clone)]
pub struct Simulator {
    state: Arc<Mutex<SimState>>,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Simulator {
    /// Starts the simulator on `listen` (use port 0 for any free port) with
    /// the given records.
    pub async fn start(
        listen: SocketAddr,
        settings: SimSettings,
        records: Vec<Value>,
    ) -> std::io::Result<Self> {
        let rng = StdRng::seed_from_u64(settings.seed);
        let mut state = SimState {
            settings,
            records: records.into_iter().map(SimRecord::from_value).collect(),
            faults: VecDeque::new(),
            rng,
            log: Vec::new(),
            seen_jti: HashSet::new(),
            rate_log: Default::default(),
            answered: tokio::sync::watch::Sender::new(0),
        };
        state.sort();
        let state = Arc::new(Mutex::new(state));
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let app = server::routes()
            .merge(messages::routes())
            .with_state(state.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "simulated API stopped");
            }
        });
        Ok(Simulator {
            state,
            addr,
            shutdown,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to put in `api.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().expect("simulator state lock")
    }

    /// Every record, oldest first.
    pub fn records(&self) -> Vec<Value> {
        let st = self.lock();
        st.records.iter().rev().map(|r| r.record.clone()).collect()
    }

    /// Every message getMessagesV2 can answer with, over every channel,
    /// oldest session first.
    pub fn messages(&self) -> Vec<Value> {
        let st = self.lock();
        st.records
            .iter()
            .rev()
            .flat_map(|r| messages::messages_of(&r.record))
            .collect()
    }

    /// Calls `f` with every message, one at a time (for counts over
    /// millions, without holding them all).
    pub fn for_each_message(&self, mut f: impl FnMut(&Value)) {
        let st = self.lock();
        for r in st.records.iter().rev() {
            for m in messages::messages_of(&r.record) {
                f(&m);
            }
        }
    }

    /// Adds a record, or replaces the one with the same sessionId.
    pub fn upsert(&self, record: Value) {
        let rec = SimRecord::from_value(record);
        let mut st = self.lock();
        st.records.retain(|r| r.session_id != rec.session_id);
        st.records.push(rec);
        st.sort();
    }

    /// Changes one record in place; returns false if there is no such id.
    pub fn modify(&self, session_id: &str, f: impl FnOnce(&mut Value)) -> bool {
        let mut st = self.lock();
        let Some(pos) = st.records.iter().position(|r| r.session_id == session_id) else {
            return false;
        };
        let mut value = st.records[pos].record.clone();
        f(&mut value);
        st.records[pos] = SimRecord::from_value(value);
        st.sort();
        true
    }

    /// Deletes a record upstream (e.g. erased on a customer's request).
    pub fn remove(&self, session_id: &str) -> bool {
        let mut st = self.lock();
        let before = st.records.len();
        st.records.retain(|r| r.session_id != session_id);
        st.records.len() != before
    }

    /// Late arrivals: lists `n` closed sessions of `bot` that started between
    /// `ages.0` and `ages.1` ago, as Kore.ai's analytics store does some time
    /// after a session ends. Returns their ids.
    pub fn arrive_late(
        &self,
        bot: &str,
        n: usize,
        ages: (chrono::TimeDelta, chrono::TimeDelta),
        seed: u64,
    ) -> Vec<String> {
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(seed);
        let now = Utc::now();
        let span_ms = (ages.1 - ages.0).num_milliseconds().max(1);
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let at = now - ages.0 - chrono::TimeDelta::milliseconds(rng.random_range(0..span_ms));
            let mut rec = data::make_session(&mut rng, bot, at, now, &[format!("u-late-{seed}")]);
            let id = format!("late{seed:06}{i:014}");
            rec["sessionId"] = Value::from(id.clone());
            rec["sessionStatus"] = Value::from("closed");
            self.upsert(rec);
            ids.push(id);
        }
        ids
    }

    /// Erasure or retention: deletes `n` closed sessions chosen anywhere in
    /// the history. Returns their ids.
    pub fn erase_anywhere(&self, n: usize, seed: u64) -> Vec<String> {
        use rand::seq::SliceRandom;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut st = self.lock();
        let mut closed: Vec<String> = st
            .records
            .iter()
            .filter(|r| r.record["sessionStatus"].as_str() != Some("active"))
            .map(|r| r.session_id.clone())
            .collect();
        closed.shuffle(&mut rng);
        closed.truncate(n);
        st.records.retain(|r| !closed.contains(&r.session_id));
        closed
    }

    /// Queues faults for the next requests, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Changes the switches while running.
    pub fn configure(&self, f: impl FnOnce(&mut SimSettings)) {
        f(&mut self.lock().settings);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    /// Resolves once the simulator has answered at least `n` requests in all.
    pub async fn wait_for_requests(&self, n: usize) {
        let mut rx = self.lock().answered.subscribe();
        let _ = rx.wait_for(|count| *count >= n).await;
    }
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

    #[test]
    fn synthetic_containment_shares_are_65_20_15() {
        let n = |ct| Synthetic::count(7, "st-x", Some(ct), 0, 2_000);
        assert_eq!(
            (n("selfService"), n("dropOff"), n("agent")),
            (1_300, 400, 300)
        );
    }
}
