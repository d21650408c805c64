//! Issue 26: the dbt package in `dbt/`, run by a real dbt-core 1.11 with
//! dbt-duckdb 1.11.1 (a pinned virtualenv brought by `outside`) against the
//! demo's read copy, attached read-only as `kore`: every model builds and
//! every test passes, sources are fresh, the docs generate; and on a broken
//! copy (a session twice, messages whose session is gone) exactly the
//! tests that guard those rules fail.

use crate::common::*;
use crate::outside::{script, venv};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// dbt-core 1.12 pulls a parser whose install downloads a wheel from
/// outside the package registries; 1.11 does not.
const DBT_PACKAGES: &[&str] = &["dbt-core==1.11.16", "dbt-duckdb==1.11.1", "duckdb==2.0.1"];

/// A dbt-duckdb profile: the package's models go into `target.duckdb`, the
/// read copy is attached read-only under the alias the sources expect.
const PROFILE: &str = "kore_sync:
  target: test
  outputs:
    test:
      type: duckdb
      path: \"{{ env_var('DBT_TARGET_DB') }}\"
      threads: 1
      attach:
        - path: \"{{ env_var('KORE_READ_COPY') }}\"
          alias: kore
          read_only: true
";

struct Dbt {
    python: PathBuf,
    /// Where the profile, dbt's target and logs go (never the package).
    work: PathBuf,
}

impl Dbt {
    /// Runs `dbt args…` on the package with `read_copy` attached; returns
    /// whether it succeeded and what it printed.
    fn run(&self, read_copy: &Path, args: &[&str]) -> (bool, String) {
        // Through the interpreter: the virtualenv's `bin/dbt` names, in its
        // first line, the temporary directory the virtualenv was made in.
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import sys; from dbt.cli.main import cli; sys.argv[0] = 'dbt'; cli()",
            ])
            .args(args)
            .arg("--profiles-dir")
            .arg(&self.work)
            .arg("--target-path")
            .arg(self.work.join("target"))
            .arg("--log-path")
            .arg(self.work.join("logs"))
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dbt"))
            .env("DBT_TARGET_DB", self.work.join("target.duckdb"))
            .env("KORE_READ_COPY", read_copy)
            // No calls home: the machine may reach only the registries.
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .env("DO_NOT_TRACK", "1")
            .output()
            .expect("dbt runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// The tests of the last run that failed, by name.
    fn failed_tests(&self) -> BTreeSet<String> {
        let results: Value = serde_json::from_str(
            &std::fs::read_to_string(self.work.join("target/run_results.json")).unwrap(),
        )
        .unwrap();
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] != "pass" && r["status"] != "success")
            .map(|r| {
                let id = r["unique_id"].as_str().unwrap();
                // test.kore_sync.<name>.<hash>
                id.split('.').nth(2).unwrap().to_owned()
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_26_the_dbt_package_builds_and_its_tests_catch_a_broken_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    ok_stdout(bare().arg("demo").current_dir(dir.path()), &["demo"]).await;
    let read_copy = dir.path().join("kore-read.duckdb");
    assert!(read_copy.exists(), "the demo publishes its read copy");
    let work = dir.path().join("dbt");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("profiles.yml"), PROFILE).unwrap();
    let dbt = Dbt {
        python: venv("dbt-1.11.16", DBT_PACKAGES),
        work,
    };

    let (ok, out) = dbt.run(&read_copy, &["build"]);
    assert!(ok && out.contains("ERROR=0"), "dbt build:\n{out}");
    assert!(dbt.failed_tests().is_empty(), "{out}");
    let (ok, out) = dbt.run(&read_copy, &["source", "freshness"]);
    assert!(
        ok && !out.contains("ERROR STALE") && !out.contains("WARN"),
        "freshness:\n{out}"
    );
    let (ok, out) = dbt.run(&read_copy, &["docs", "generate"]);
    assert!(ok, "docs generate:\n{out}");
    assert!(dbt.work.join("target/catalog.json").exists());
    // The models were written to the profile's database, never the copy.
    let tables = script(
        &dbt.python,
        "import sys, duckdb\nc = duckdb.connect(sys.argv[1], read_only=True)\n\
         print(sorted(r[0] for r in c.sql(\"SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'fct_%' OR table_name LIKE 'stg_%' OR table_name LIKE 'dim_%'\").fetchall()))",
        &[read_copy.to_str().unwrap()],
    );
    assert_eq!(tables.trim(), "[]", "nothing written into the read copy");

    // A broken copy: one session stored twice, and a session (with its
    // tags) gone while its messages stayed.
    let broken = dir.path().join("broken.duckdb");
    std::fs::copy(&read_copy, &broken).unwrap();
    script(
        &dbt.python,
        "import sys, duckdb\nc = duckdb.connect(sys.argv[1])\n\
         c.execute('INSERT INTO sessions SELECT * FROM sessions WHERE session_id = (SELECT min(session_id) FROM sessions)')\n\
         gone = c.execute('SELECT max(session_id) FROM messages').fetchall()[0][0]\n\
         c.execute('DELETE FROM session_tags WHERE session_id = ?', [gone])\n\
         c.execute('DELETE FROM sessions WHERE session_id = ?', [gone])\n\
         c.close()",
        &[broken.to_str().unwrap()],
    );
    let (ok, out) = dbt.run(&broken, &["test"]);
    assert!(!ok, "dbt test passes on a broken warehouse:\n{out}");
    let want: BTreeSet<String> = [
        // The duplicated session, in the source and the staging view over it.
        "source_unique_kore_sessions_session_id",
        "unique_stg_kore__sessions_session_id",
        // The messages whose session is gone.
        "source_relationships_kore_messages_session_id__session_id__source_kore_sessions_",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(dbt.failed_tests(), want, "{out}");
}
