//! Helpers shared by the integration tests: a simulator on port 0 with
//! generated bots, a config pointing at it, a pass runner, and readers that
//! compare the warehouse with the simulator's records field by field.

use chrono::{DateTime, Duration, Utc};
use kore_sync::config::{self, Config};
use kore_sync::sim::{SimApp, SimBot, SimSettings, Simulator, data};
use kore_sync::store::SessionStore;
use kore_sync::sync::{PassOptions, PassReport, SyncContext, run_pass};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The kore-sync binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kore-sync");

/// `kore-sync`, with the caller's environment cleared of kore-sync's own
/// variables; killed if the test drops it.
pub fn bare() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BIN);
    c.env_remove("KORE_SYNC_CONFIG")
        .env_remove("KORE_SYNC_LOG")
        .kill_on_drop(true);
    c
}

/// `kore-sync --config CONFIG`, as [`bare`].
pub fn kore_sync(config: &Path) -> tokio::process::Command {
    let mut c = bare();
    c.arg("--config").arg(config);
    c
}

/// Sends `sig` (e.g. "-TERM") to a running child.
pub fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("still running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// Runs `kore-sync --config CONFIG ARGS…`, asserting it exits 0 (showing its
/// stderr if not), and returns its stdout.
pub async fn run_ok(config: &Path, args: &[&str]) -> String {
    ok_stdout(kore_sync(config).args(args), args).await
}

/// Runs a prepared command, asserting it exits 0 (showing its stderr if
/// not), and returns its stdout.
pub async fn ok_stdout(cmd: &mut tokio::process::Command, args: &[&str]) -> String {
    let out = cmd.output().await.expect("the binary runs");
    assert!(
        out.status.success(),
        "kore-sync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn bot(n: u32) -> SimBot {
    SimBot {
        id: format!("st-test-{n}"),
        app: SimApp {
            client_id: format!("cs-app-{n}"),
            client_secret: format!("secret-{n}"),
        },
    }
}

pub fn account_app() -> SimApp {
    SimApp {
        client_id: "cs-account".into(),
        client_secret: "account-secret".into(),
    }
}

pub struct Harness {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub warehouse: PathBuf,
    pub bots: Vec<SimBot>,
    /// Where history begins (`sync.start`).
    pub start: DateTime<Utc>,
}

/// A simulator with `bots` bots holding `days` days of sessions up to now.
pub async fn harness(
    n_bots: u32,
    days: i64,
    per_day: u32,
    tweak: impl FnOnce(&mut SimSettings),
) -> Harness {
    let now = Utc::now();
    let start = now - Duration::days(days);
    let bots: Vec<SimBot> = (1..=n_bots).map(bot).collect();
    let mut records = Vec::new();
    for b in &bots {
        records.extend(data::generate_bot_sessions(7, &b.id, start, now, per_day));
    }
    let mut settings = SimSettings {
        bots: bots.clone(),
        account_app: Some(account_app()),
        ..SimSettings::default()
    };
    tweak(&mut settings);
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), settings, records)
        .await
        .expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let warehouse = dir.path().join("kore.duckdb");
    Harness {
        sim,
        dir,
        warehouse,
        bots,
        start,
    }
}

impl Harness {
    /// A config for every bot, with fast retries and no lag; `extra` is
    /// appended (later keys in a table override earlier ones only via the
    /// sections it opens, so pass whole sections).
    pub fn toml(&self, sync_section: &str, extra: &str) -> String {
        let mut s = format!(
            "[api]\nbase_url = {:?}\nrequests_per_minute = 0\nrequests_per_hour = 0\nretry_base_delay = \"1ms\"\nmax_retries = 10\ntimeout = \"2s\"\n\
             [warehouse]\npath = {:?}\n[sync]\nstart = {:?}\nlag = \"0s\"\n{sync_section}\n",
            self.sim.base_url(),
            self.warehouse.display().to_string(),
            self.start.to_rfc3339(),
        );
        for b in &self.bots {
            s.push_str(&format!(
                "[[bots]]\nid = {:?}\nclient_id = {:?}\nclient_secret = {:?}\n",
                b.id, b.app.client_id, b.app.client_secret
            ));
        }
        s.push_str(extra);
        s
    }

    /// Writes `toml` to `kore-sync.toml` in the test's directory.
    pub fn write_config(&self, toml: &str) -> PathBuf {
        let path = self.dir.path().join("kore-sync.toml");
        std::fs::write(&path, toml).expect("config written");
        path
    }

    pub fn config(&self) -> Config {
        config::from_toml(&self.toml("", "")).expect("valid test config")
    }

    /// Adds `n` sessions of the first bot that started within the last
    /// `within`, so lookback behaviour never depends on the generator's luck.
    pub fn add_recent_sessions(&self, n: usize, within: Duration) {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(11);
        let now = Utc::now();
        for i in 0..n {
            let at = now - within * (i as i32 + 1) / (n as i32 + 1);
            let mut rec = data::make_session(
                &mut rng,
                &self.bots[0].id,
                at,
                now,
                &["u-recent".to_owned()],
            );
            rec["sessionId"] = serde_json::json!(format!("recent{i:018}"));
            self.sim.upsert(rec);
        }
    }

    /// Every record of the simulator, oldest first.
    pub fn sim_records(&self) -> Vec<Value> {
        self.sim.records()
    }

    /// The simulator's records of one containment type, oldest first.
    pub fn sim_records_of(&self, containment_type: &str) -> Vec<Value> {
        self.sim
            .records()
            .into_iter()
            .filter(|r| r["containmentType"] == serde_json::json!(containment_type))
            .collect()
    }
}

/// Opens the warehouse, runs one pass, and closes it again.
pub async fn pass(config: &Config, opts: PassOptions) -> PassReport {
    pass_with(config, opts, &CancellationToken::new()).await
}

pub async fn pass_with(
    config: &Config,
    opts: PassOptions,
    cancel: &CancellationToken,
) -> PassReport {
    let store = SessionStore::open(&config.warehouse).expect("warehouse opens");
    let ctx = SyncContext::new(config.sync_setup(), store).expect("client builds");
    run_pass(&ctx, &opts, cancel)
        .await
        .expect("the warehouse is writable")
}

/// One `sessions` row in comparable form.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub session_id: String,
    pub bot_id: Option<String>,
    pub channel: Option<String>,
    pub user_id: Option<String>,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub session_lang: Option<String>,
    pub session_type: Option<String>,
    pub containment_type: Option<String>,
    pub is_developer: Option<bool>,
    pub session_status: Option<String>,
    pub messages_exchanged: Option<i32>,
    pub tasks_executed: Option<i32>,
    pub raw: String,
}

/// One `session_tags` row.
pub type TagRow = (
    String,
    String,
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub fn db(path: &Path) -> duckdb::Connection {
    duckdb::Connection::open(path).expect("warehouse opens for reading")
}

/// Records a pass kept as rejected, over all its streams.
pub fn n_rejected(report: &PassReport) -> u64 {
    report.streams.iter().map(|s| s.records_rejected).sum()
}

/// Every `.rs` file under `dir`, recursively.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The one number a `SELECT count(*) …` (or any single-integer query)
/// answers.
pub fn count(conn: &duckdb::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn read_sessions(path: &Path) -> Vec<SessionRow> {
    let conn = db(path);
    let mut stmt = conn
        .prepare(
            "SELECT session_id, bot_id, channel, user_id, epoch_ms(start_time), epoch_ms(end_time),
                    CAST(to_json(session_lang) AS VARCHAR), session_type, containment_type, is_developer,
                    session_status, messages_exchanged, tasks_executed, CAST(raw AS VARCHAR)
             FROM sessions ORDER BY session_id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(SessionRow {
            session_id: r.get(0)?,
            bot_id: r.get(1)?,
            channel: r.get(2)?,
            user_id: r.get(3)?,
            start_ms: r.get(4)?,
            end_ms: r.get(5)?,
            session_lang: r.get(6)?,
            session_type: r.get(7)?,
            containment_type: r.get(8)?,
            is_developer: r.get(9)?,
            session_status: r.get(10)?,
            messages_exchanged: r.get(11)?,
            tasks_executed: r.get(12)?,
            raw: r.get(13)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

pub fn read_tags(path: &Path) -> Vec<TagRow> {
    let conn = db(path);
    let mut stmt = conn
        .prepare(
            "SELECT session_id, kind, ordinal, name, value, CAST(value_json AS VARCHAR)
             FROM session_tags ORDER BY session_id, kind, ordinal",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

pub fn watermark_ms(path: &Path, bot_id: &str, containment_type: &str) -> Option<i64> {
    let conn = db(path);
    conn.query_row(
        "SELECT epoch_ms(watermark) FROM sync_state WHERE bot_id = ? AND containment_type = ?",
        duckdb::params![bot_id, containment_type],
        |r| r.get(0),
    )
    .ok()
}

fn ms(v: &Value) -> Option<i64> {
    v.as_str().map(|s| {
        DateTime::parse_from_rfc3339(s)
            .expect("sim times parse")
            .timestamp_millis()
    })
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// The row a record must become, derived independently of the parser.
pub fn expected_row(rec: &Value) -> SessionRow {
    SessionRow {
        session_id: rec["sessionId"].as_str().unwrap().to_owned(),
        bot_id: text(&rec["botId"]),
        channel: text(&rec["channel"]),
        user_id: text(&rec["userId"]),
        start_ms: ms(&rec["start_time"]).unwrap(),
        end_ms: ms(&rec["end_time"]),
        session_lang: rec
            .get("session_lang")
            .map(|l| serde_json::to_string(l).unwrap()),
        session_type: text(&rec["sessionType"]),
        containment_type: text(&rec["containmentType"]),
        is_developer: match &rec["isDeveloper"] {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => Some(n.as_i64() == Some(1)),
            _ => None,
        },
        session_status: text(&rec["sessionStatus"]),
        messages_exchanged: rec["noOfMessagesExchanged"].as_i64().map(|n| n as i32),
        tasks_executed: rec["noOfTasksExecuted"].as_i64().map(|n| n as i32),
        raw: serde_json::to_string(rec).unwrap(),
    }
}

pub fn expected_tags(rec: &Value) -> Vec<TagRow> {
    let id = rec["sessionId"].as_str().unwrap().to_owned();
    let mut out = Vec::new();
    if let Some(tags) = rec["tags"].as_object() {
        for (key, list) in tags {
            let Some(items) = list.as_array() else {
                continue;
            };
            let kind = match key.as_str() {
                "userTags" => "user".to_owned(),
                "sessionTags" => "session".to_owned(),
                k => k.to_owned(),
            };
            for (i, item) in items.iter().enumerate() {
                let value = &item["value"];
                let value_text = match value {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(serde_json::to_string(other).unwrap()),
                };
                out.push((
                    id.clone(),
                    kind.clone(),
                    i as i32,
                    text(&item["name"]),
                    value_text,
                    Some(serde_json::to_string(value).unwrap()),
                ));
            }
        }
    }
    out
}

/// Asserts the warehouse holds exactly `records`, field by field, tags included.
pub fn assert_warehouse_equals(path: &Path, records: &[Value]) {
    let mut want: Vec<SessionRow> = records.iter().map(expected_row).collect();
    want.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    let got = read_sessions(path);
    assert_eq!(got.len(), want.len(), "session count differs");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    let mut want_tags: Vec<TagRow> = records.iter().flat_map(expected_tags).collect();
    want_tags.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    let got_tags = read_tags(path);
    assert_eq!(got_tags.len(), want_tags.len(), "tag count differs");
    assert_eq!(got_tags, want_tags);
}

/// Every file under `dir` (recursively), read whole, with its path: for
/// byte scans of what kore-sync wrote.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

/// Each stream's last run outcome, keyed `resource:partition`.
pub fn run_outcomes(warehouse: &Path) -> std::collections::BTreeMap<String, String> {
    let conn = db(warehouse);
    let mut stmt = conn
        .prepare("SELECT resource || ':' || containment_type, outcome FROM sync_runs")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Runs `backfill` from `h.start` with `config` `rounds` times, each killed
/// with SIGKILL once the simulator has answered a random number of
/// requests more (from `more`, seeded by `seed`), and calls `check` with
/// the round after each kill.
pub async fn killed_backfills(
    h: &Harness,
    config: &Path,
    (rounds, more, seed): (usize, std::ops::Range<usize>, u64),
    mut check: impl FnMut(usize),
) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut answered = h.sim.requests().len();
    for round in 0..rounds {
        let mut child = kore_sync(config)
            .args(["backfill", "--from", &h.start.to_rfc3339()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        answered += rng.random_range(more.clone());
        // A backfill that ends first is a test too large a step: say so,
        // rather than wait for requests that never come.
        tokio::select! {
            () = h.sim.wait_for_requests(answered) => {}
            status = child.wait() => panic!("round {round}: the backfill ended ({status:?}) before {answered} requests"),
        }
        signal(&child, "-KILL");
        assert!(
            !child.wait().await.unwrap().success(),
            "round {round}: killed"
        );
        check(round);
        answered = h.sim.requests().len();
    }
}
