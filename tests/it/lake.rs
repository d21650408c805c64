//! Issue 13: the Parquet export to object storage, against a real
//! S3-compatible server (moto, from PyPI, started by the test in a pinned
//! virtualenv). A pass uploads exactly the changed days, one object per day
//! and table; the objects, read back by pyarrow with hive partitioning,
//! equal the warehouse; a failed upload leaves its days to write; the
//! credentials never appear in kore-sync's output.

use crate::common::*;
use crate::outside::{script, venv};
use crate::parquet::assert_exported_equals_warehouse;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const LAKE_PACKAGES: &[&str] = &["moto[server]==5.2.5", "pyarrow==26.0.1", "boto3==1.44.8"];

/// A secret the test hands kore-sync; it must never be printed.
const SECRET: &str = "s3-secret-Zq8xW1";

/// An S3-compatible server on a free port, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
    python: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MOTO: &str = r#"
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test closes stdin or dies
server.stop()
"#;

fn start_moto() -> Moto {
    let python = venv("lake-moto-5.2.5", LAKE_PACKAGES);
    let mut child = Command::new(&python)
        .args(["-c", MOTO])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("moto prints its port");
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("moto did not start: {line:?}"));
    Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        python,
    }
}

/// boto3 against the server, with the test's credentials: `code` sees `s3`
/// (a client), `json` and `sys.argv`.
const BOTO: &str = r#"
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="test-key-id",
                  aws_secret_access_key=sys.argv[2], region_name="us-east-1")
"#;

impl Moto {
    fn boto(&self, code: &str, args: &[&str]) -> String {
        let mut all = vec![self.endpoint.as_str(), SECRET];
        all.extend_from_slice(args);
        script(&self.python, &format!("{BOTO}{code}"), &all)
    }

    fn make_bucket(&self, bucket: &str) {
        self.boto(
            "s3.create_bucket(Bucket=sys.argv[3])\n\
             s3.put_bucket_versioning(Bucket=sys.argv[3], VersioningConfiguration={'Status': 'Enabled'})",
            &[bucket],
        );
    }

    /// Every key under the bucket with how many times it was written.
    fn versions(&self, bucket: &str) -> std::collections::BTreeMap<String, u64> {
        let out = self.boto(
            "counts = {}\n\
             for page in s3.get_paginator('list_object_versions').paginate(Bucket=sys.argv[3]):\n\
             \x20   for v in page.get('Versions', []):\n\
             \x20       counts[v['Key']] = counts.get(v['Key'], 0) + 1\n\
             print(json.dumps(counts))",
            &[bucket],
        );
        serde_json::from_str(out.trim()).unwrap()
    }

    /// Reads the export under `s3://bucket/prefix` with pyarrow (hive
    /// partitioning) and writes each table to one local Parquet file, with
    /// the `date` column pyarrow took from the partitions.
    fn read_back(&self, bucket: &str, prefix: &str, out: &Path) {
        self.boto(
            r#"
import pyarrow.dataset as ds, pyarrow.parquet as pq, pyarrow.fs as pafs
host = sys.argv[1].split("://")[1]
fs = pafs.S3FileSystem(endpoint_override=host, scheme="http", access_key="test-key-id",
                       secret_key=sys.argv[2], region="us-east-1")
for table in ("sessions", "session_tags"):
    data = ds.dataset(f"{sys.argv[3]}/{sys.argv[4]}/{table}", filesystem=fs, format="parquet",
                      partitioning="hive").to_table()
    pq.write_table(data, f"{sys.argv[5]}/{table}.parquet")
"#,
            &[bucket, prefix, &out.display().to_string()],
        );
    }

    fn manifest(&self, bucket: &str, key: &str) -> Value {
        let out = self.boto(
            "print(s3.get_object(Bucket=sys.argv[3], Key=sys.argv[4])['Body'].read().decode())",
            &[bucket, key],
        );
        serde_json::from_str(out.trim()).unwrap()
    }
}

/// `kore-sync ARGS…` with the S3 settings in the standard environment;
/// asserts success and that the secret is nowhere in its output.
async fn run_with_s3(moto: &Moto, config: &Path, args: &[&str]) -> String {
    let out = kore_sync(config)
        .args(args)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test-key-id")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .env("KORE_SYNC_LOG", "debug")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kore-sync {args:?} failed: {text}");
    assert!(!text.contains(SECRET), "the secret was printed: {text}");
    text
}

fn s3_config(h: &Harness, url: &str) -> PathBuf {
    let toml = h.toml("", "").replace(
        "[sync]",
        &format!("parquet_dir = {url:?}\npublish = false\n[sync]"),
    );
    h.write_config(&toml)
}

fn dirty_days(warehouse: &Path) -> i64 {
    db(warehouse)
        .query_row("SELECT count(*) FROM parquet_dirty_days", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_the_s3_export_uploads_exactly_the_changed_days_and_reads_back_as_the_warehouse() {
    let moto = start_moto();
    moto.make_bucket("lake");
    let h = harness(2, 4, 20, |_| {}).await;
    let config = s3_config(&h, "s3://lake/kore");
    run_with_s3(&moto, &config, &["sync"]).await;
    assert_eq!(dirty_days(&h.warehouse), 0);

    let first = moto.versions("lake");
    let days: Vec<&String> = first
        .keys()
        .filter(|k| k.starts_with("kore/sessions/"))
        .collect();
    assert!(days.len() >= 4, "one object per day: {first:?}");
    assert!(
        first.values().all(|&n| n == 1),
        "each written once: {first:?}"
    );
    let out = tempfile::tempdir().unwrap();
    moto.read_back("lake", "kore", out.path());
    let from = |t: &str| format!("read_parquet('{}/{t}.parquet')", out.path().display());
    assert_exported_equals_warehouse(&h.warehouse, &from("sessions"), &from("session_tags"));

    // The manifest lists every partition, its rows and the pass that wrote it.
    let manifest = moto.manifest("lake", "kore/_kore_sync/manifest.json");
    let parts = manifest["partitions"].as_array().unwrap();
    let n_objects = first.keys().filter(|k| k.ends_with("data.parquet")).count();
    assert_eq!(parts.len(), n_objects, "{manifest}");
    let rows: i64 = parts
        .iter()
        .filter(|p| p["table"] == "sessions")
        .map(|p| p["rows"].as_i64().unwrap())
        .sum();
    let n = count(&db(&h.warehouse), "SELECT count(*) FROM sessions");
    assert_eq!(rows, n);
    assert!(parts.iter().all(|p| p["pass_id"].is_string()), "{manifest}");

    // One session changes upstream: the next pass rewrites its day only.
    let victim = h.sim_records()[5].clone();
    let id = victim["sessionId"].as_str().unwrap().to_owned();
    h.sim
        .modify(&id, |r| r["channel"] = serde_json::json!("changed-channel"));
    run_with_s3(
        &moto,
        &config,
        &["backfill", "--from", &h.start.to_rfc3339()],
    )
    .await;
    let day: String = db(&h.warehouse)
        .query_row(
            "SELECT CAST(CAST(make_timestamp(epoch_us(start_time)) AS DATE) AS VARCHAR) FROM sessions WHERE session_id = ?",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    let second = moto.versions("lake");
    for (key, n) in &second {
        let changed = key.contains(&format!("/date={day}/")) || key.ends_with("manifest.json");
        assert_eq!(*n, if changed { 2 } else { 1 }, "{key}: {second:?}");
    }
    moto.read_back("lake", "kore", out.path());
    assert_exported_equals_warehouse(&h.warehouse, &from("sessions"), &from("session_tags"));

    // A pass that changes nothing uploads nothing, not even the manifest.
    run_with_s3(&moto, &config, &["sync"]).await;
    assert_eq!(moto.versions("lake"), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_a_failed_upload_leaves_its_days_to_write_and_the_next_pass_uploads_them() {
    let moto = start_moto();
    let h = harness(1, 3, 10, |_| {}).await;
    let config = s3_config(&h, "s3://not-yet/lake");
    // The bucket does not exist: the pass stores sessions, the upload fails.
    let text = run_with_s3(&moto, &config, &["sync"]).await;
    assert!(text.contains("could not export Parquet"), "{text}");
    assert!(dirty_days(&h.warehouse) >= 3, "the days stay to write");

    moto.make_bucket("not-yet");
    run_with_s3(&moto, &config, &["sync"]).await;
    assert_eq!(dirty_days(&h.warehouse), 0);
    let out = tempfile::tempdir().unwrap();
    moto.read_back("not-yet", "lake", out.path());
    let from = |t: &str| format!("read_parquet('{}/{t}.parquet')", out.path().display());
    assert_exported_equals_warehouse(&h.warehouse, &from("sessions"), &from("session_tags"));
}
