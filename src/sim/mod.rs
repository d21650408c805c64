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
//!
//! The files mirror `api/`: one per endpoint family (`sessions`, `messages`,
//! `bots`), plus who may call (`auth`), the rate limit (`limits`), injected
//! faults (`faults`), what every answer shares (`http`), the switches
//! (`settings`) and the records (`data`, `synthetic`, and what analytics
//! and LLM usage derive from them, `derived`).

mod analytics;
mod auth;
mod bots;
pub mod data;
mod derived;
mod faults;
mod http;
mod limits;
mod llm;
mod messages;
mod sessions;
mod settings;
mod synthetic;

pub use messages::messages_of;
pub use settings::{Fault, SimApp, SimBot, SimSettings};
pub use synthetic::Synthetic;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    /// The bot id, `*` for the account's getSessions, or `bots` for the
    /// Admin Console's bot list.
    pub scope: String,
    /// `sessions`, `messages` (getMessagesV2), `analytics`, `llm_usage` or
    /// `bots`.
    pub resource: &'static str,
    /// getMessagesV2's `channelType` (None: not sent, so `rtm`), or the
    /// channels a getAnalytics request named, joined by commas.
    pub channel_type: Option<String>,
    /// getAnalytics's `type`.
    pub analytics_type: Option<String>,
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
            analytics_type: None,
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
    /// The records last derived for a window (analytics events, LLM calls),
    /// newest last, reused by the next pages' requests when
    /// `settings.memoize_windows`: deriving them costs a window's sessions,
    /// and a year's backfill asks for every window page by page.
    derived: derived::Derived,
}

/// The state every handler shares, behind one lock.
type Shared = Arc<Mutex<SimState>>;

impl SimState {
    /// Logs an answered request and wakes those awaiting a request count.
    fn record(&mut self, mut log: LoggedRequest, response: &axum::response::Response) {
        log.status = response.status().as_u16();
        self.log.push(log);
        self.answered.send_modify(|n| *n += 1);
    }

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
            derived: Default::default(),
        };
        state.sort();
        let state = Arc::new(Mutex::new(state));
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let app = sessions::routes()
            .merge(messages::routes())
            .merge(analytics::routes())
            .merge(llm::routes())
            .route("/api/public/bots", axum::routing::get(bots::list_bots))
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
        let bytes = st.settings.template_bytes;
        st.records
            .iter()
            .rev()
            .flat_map(|r| messages::with_templates(messages::messages_of(&r.record), bytes))
            .collect()
    }

    /// Calls `f` with every message, one at a time (for counts over
    /// millions, without holding them all).
    pub fn for_each_message(&self, mut f: impl FnMut(&Value)) {
        let st = self.lock();
        let bytes = st.settings.template_bytes;
        for r in st.records.iter().rev() {
            for m in messages::with_templates(messages::messages_of(&r.record), bytes) {
                f(&m);
            }
        }
    }

    /// When each message was created (milliseconds), by channel: what a
    /// benchmark needs to count the fewest requests that read them.
    pub fn message_times_by_channel(&self) -> std::collections::BTreeMap<String, Vec<i64>> {
        let mut per_channel: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
        self.for_each_message(|m| {
            let at = messages::created_on(m).timestamp_millis();
            per_channel
                .entry(m["chnl"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push(at);
        });
        per_channel
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

    /// Adds a closed session of `bot` with id `id`, started at `at`.
    pub fn add_session(&self, bot: &str, id: &str, at: DateTime<Utc>) {
        let mut rng = StdRng::seed_from_u64(1);
        let users = ["bench-user@example.com".to_owned()];
        let mut rec = data::make_session(&mut rng, bot, at, Utc::now(), &users);
        rec["sessionId"] = Value::from(id);
        rec["sessionStatus"] = Value::from("closed");
        self.upsert(rec);
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
