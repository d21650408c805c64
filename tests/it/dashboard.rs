//! Issue 25: something to look at. The status page of a daemon run against
//! the simulator, rendered by a real headless Chromium (Debian's package,
//! brought by `outside`), checked from the DOM it produced and from its
//! screenshot; and the Grafana dashboard's every query run by a real
//! Prometheus scraping a daemon.

use crate::common::*;
use crate::ops::start_daemon;
use crate::outside;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A bot name that must reach the page as text.
const HOSTILE_NAME: &str = "<script>alert(1)</script>";

/// Where the tests keep what they produced (the screenshot).
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Chromium's options for a closed machine: no sandbox (tests run as
/// root), no GPU, none of its background connections.
fn chromium(user_data: &Path) -> Command {
    let mut cmd = Command::new(outside::debian("chromium", "chromium"));
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", user_data.display()));
    cmd
}

fn run_chromium(cmd: &mut Command) -> String {
    let out = cmd.output().expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The RGB pixels of a PNG, and its width.
fn pixels(png_path: &Path) -> (Vec<[u8; 3]>, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3, "a colour screenshot: {:?}", info.color_type);
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (px, info.width)
}

fn hex(c: &str) -> [u8; 3] {
    let v = u32::from_str_radix(c.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_25_the_status_page_renders_every_stream_both_charts_and_escapes_names() {
    let h = harness(2, 10, 30, |_| {}).await;
    let toml = h
        .toml(
            "interval = \"1h\"",
            "[server]\nlisten = \"127.0.0.1:0\"\n[analytics]\nenabled = true\n",
        )
        .replace(
            "id = \"st-test-1\"\n",
            &format!("id = \"st-test-1\"\nname = {HOSTILE_NAME:?}\n"),
        );
    let config = h.write_config(&toml);
    let (mut child, addr, _) = start_daemon(&config, &[]).await;

    let json: Value = reqwest::get(format!("http://{addr}/status.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let streams = json["streams"].as_array().unwrap();
    // Two bots: three containment types, nine message channels at most,
    // six analytics types and the LLM logs each; every one has run.
    assert!(streams.len() >= 2 * (3 + 6 + 1), "{json}");
    assert!(
        streams
            .iter()
            .all(|s| s["last_run"]["outcome"] == "succeeded"),
        "{json}"
    );
    let n_sessions_30d: i64 = json["sessions_per_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["n_sessions"].as_i64().unwrap())
        .sum();
    let n_live: i64 = streams
        .iter()
        .filter(|s| s["resource"] == "sessions")
        .map(|s| s["n_records"].as_i64().unwrap())
        .sum();
    assert_eq!(
        n_sessions_30d, n_live,
        "every session is in the last 30 days"
    );
    assert_eq!(n_live as usize, h.sim.records().len());

    let url = format!("http://{addr}/");
    let profile = tempfile::tempdir().unwrap();
    let dom = run_chromium(chromium(profile.path()).arg("--dump-dom").arg(&url));
    // Every stream, with its lag.
    for s in streams {
        let row = format!(
            "data-bot=\"{}\" data-resource=\"{}\" data-partition=\"{}\"",
            s["bot_id"].as_str().unwrap(),
            s["resource"].as_str().unwrap(),
            s["partition"].as_str().unwrap()
        );
        let at = dom.find(&row).unwrap_or_else(|| panic!("no row {row}"));
        let rest = &dom[at..];
        let row_html = &rest[..rest.find("</tr>").unwrap()];
        let lag = row_html
            .split("data-lag-seconds=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no lag in {row_html}"));
        assert!(lag.parse::<i64>().is_ok_and(|l| l >= 0), "{row_html}");
    }
    // Both charts drew their data: the pass's requests, and every session.
    let bars = |chart: &str| -> Vec<f64> {
        let start = dom.find(&format!("id=\"{chart}\"")).unwrap();
        let svg = &dom[start..start + dom[start..].find("</svg>").unwrap()];
        svg.split("class=\"bar\"")
            .skip(1)
            .filter_map(|b| {
                b.split("data-value=\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    };
    assert!(bars("pass-requests").iter().any(|v| *v > 0.0), "{dom}");
    let drawn: f64 = bars("sessions-per-day").iter().sum();
    assert_eq!(drawn as i64, n_sessions_30d);
    // The hostile name is text, and the page has no script at all.
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<script"), "{dom}");

    // The screenshot shows the bars in their colours.
    let shot = artifacts().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        chromium(profile.path())
            .arg("--window-size=1200,1600")
            .arg(format!("--screenshot={}", shot.display()))
            .arg(&url),
    );
    let (px, width) = pixels(&shot);
    assert_eq!(width, 1200);
    for colour in ["#2e7d32", "#f9a825", "#1565c0"] {
        let want = hex(colour);
        let n = px.iter().filter(|p| **p == want).count();
        assert!(n > 50, "{colour}: {n} pixels in {}", shot.display());
    }
    child.kill().await.unwrap();
}

/// What Prometheus's HTTP API answers for `path`.
async fn prometheus_get(base: &str, path: &str, query: &[(&str, &str)]) -> Value {
    let answer = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .query(query)
        .send()
        .await
        .unwrap();
    answer.json().await.unwrap()
}

/// A free loopback port (Prometheus cannot be told to take port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_25_every_dashboard_query_returns_data_from_a_real_prometheus() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/kore-sync.json"
        ))
        .unwrap(),
    )
    .expect("the dashboard is JSON");
    // Grafana's shape: a uid, panels with targets, the bot variable.
    assert_eq!(dashboard["uid"], "kore-sync");
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    let bot = vars
        .iter()
        .find(|v| v["name"] == "bot")
        .expect("a bot variable");
    assert_eq!(bot["type"], "query");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut exprs = Vec::new();
    for p in panels {
        assert!(
            p["id"].is_u64() && p["title"].is_string() && p["gridPos"]["w"].is_u64(),
            "{p}"
        );
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{p}");
        for t in targets {
            exprs.push((
                p["title"].as_str().unwrap().to_owned(),
                t["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }

    let h = harness(2, 3, 20, |_| {}).await;
    let toml = h
        .toml("interval = \"2s\"", "[server]\nlisten = \"127.0.0.1:0\"\n")
        .replace(
            "requests_per_minute = 0\nrequests_per_hour = 0",
            "requests_per_minute = 600\nrequests_per_hour = 18000",
        );
    let config = h.write_config(&toml);
    let (mut child, addr, _) = start_daemon(&config, &[]).await;

    let prometheus = outside::debian("prometheus", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kore-sync\n    static_configs:\n      - targets: ['{addr}']\n"),
    )
    .unwrap();
    let port = free_port();
    let mut prom = tokio::process::Command::new(prometheus)
        .arg(format!("--config.file={}", prom_config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus starts");
    let base = format!("http://127.0.0.1:{port}");

    // Wait (on Prometheus's own answer, not a guess) until it holds enough
    // scrapes for the rates and at least two passes have ended.
    let ready = "count_over_time(up{job=\"kore-sync\"}[1m]) >= 12 and on() sum(kore_sync_pass_duration_seconds_count) >= 2";
    let mut waited = 0;
    loop {
        let answer = reqwest::Client::new()
            .get(format!("{base}/api/v1/query"))
            .query(&[("query", ready)])
            .send()
            .await;
        let ok = match answer {
            Ok(a) => a.json::<Value>().await.is_ok_and(|v| {
                v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            }),
            Err(_) => false,
        };
        if ok {
            break;
        }
        waited += 1;
        assert!(
            waited < 120,
            "Prometheus never held 12 scrapes and two passes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The bot variable's values, as Grafana asks for them.
    let values = prometheus_get(
        &base,
        "/api/v1/label/bot_id/values",
        &[("match[]", "kore_sync_watermark_lag_seconds")],
    )
    .await;
    let bots: Vec<&str> = values["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(bots, ["st-test-1", "st-test-2"], "{values}");

    for (title, expr) in &exprs {
        let query = expr
            .replace("$bot", ".*")
            .replace("$__rate_interval", "10s");
        let answer = prometheus_get(&base, "/api/v1/query", &[("query", &query)]).await;
        assert_eq!(answer["status"], "success", "{title}: {query}: {answer}");
        let result = answer["data"]["result"].as_array().unwrap();
        assert!(!result.is_empty(), "{title}: {query} returned no data");
    }
    child.kill().await.unwrap();
    prom.kill().await.unwrap();
}
