//! Readers beyond this process (issue 13): the DuckDB drivers inside BI
//! tools lag a release or two, so the warehouse and its read copy (a full
//! copy, or a catalog of views over the Parquet export) are written in an
//! older storage format that DuckDB 1.4 and 1.5 open.

use crate::common::*;
use crate::outside;

/// Opens a file read-only and counts every table and view of the
/// warehouse, printing `name count` lines.
const COUNT_ALL: &str = r#"
import sys, duckdb
c = duckdb.connect(sys.argv[1], read_only=True)
names = [r[0] for r in c.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]
for n in names:
    print(n, c.sql(f'SELECT count(*) FROM "{n}"').fetchone()[0])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_duckdb_1_4_and_1_5_open_the_warehouse_and_the_read_copy() {
    let h = harness(1, 5, 20, |_| {}).await;
    // With analytics (issue 24): their tables and views are read too.
    let analytics = "[analytics]\nenabled = true\n";
    let path = h.write_config(&h.toml("", analytics));
    run_ok(&path, &["sync"]).await;
    // The catalog form of the read copy too: views over the Parquet export.
    let catalog_toml = h.toml("", analytics).replace(
        "[sync]",
        "publish = \"kore-catalog.duckdb\"\npublish_as = \"views\"\nparquet_dir = \"parquet\"\n[sync]",
    );
    run_ok(&h.write_config(&catalog_toml), &["sync"]).await;
    let n_sessions = h.sim_records().len().to_string();
    let n_events = h.sim.analytics_events().len().to_string();
    let copy = h.dir.path().join("kore-read.duckdb");
    let catalog = h.dir.path().join("kore-catalog.duckdb");
    for version in ["1.4.3", "1.5.5"] {
        let py = outside::venv(
            &format!("duckdb-{version}"),
            &[&format!("duckdb=={version}")],
        );
        for file in [&h.warehouse, &copy, &catalog] {
            let out = outside::script(&py, COUNT_ALL, &[&file.display().to_string()]);
            let counts: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once(' ')).collect();
            for view in [
                "daily_sessions",
                "daily_containment",
                "tags_long",
                "sessions_enriched",
                "daily_overview",
                "tags_wide",
                "daily_nlu",
                "top_unhandled_utterances",
                "failing_tasks",
                "slow_nodes",
            ] {
                assert!(
                    counts.iter().any(|(n, _)| *n == view),
                    "DuckDB {version} reads {view} in {}: {out}",
                    file.display()
                );
            }
            assert!(
                counts.contains(&("sessions", n_sessions.as_str()))
                    && counts.contains(&("analytics_events", n_events.as_str())),
                "DuckDB {version}, {}: {out}",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_sqlalchemy_with_duckdb_engine_lists_and_reads_the_tables() {
    let h = harness(1, 3, 20, |_| {}).await;
    let path = h.write_config(&h.toml("", ""));
    run_ok(&path, &["sync"]).await;
    let py = outside::venv(
        "duckdb-engine-0.17.0",
        &[
            "duckdb==1.4.3",
            "duckdb-engine==0.17.0",
            "sqlalchemy==2.0.44",
        ],
    );
    let code = r#"
import sys
from sqlalchemy import create_engine, inspect, text
engine = create_engine("duckdb:///" + sys.argv[1], connect_args={"read_only": True})
print(" ".join(sorted(inspect(engine).get_table_names())))
with engine.connect() as c:
    print(c.execute(text("SELECT count(*) FROM sessions")).scalar())
"#;
    let copy = h.dir.path().join("kore-read.duckdb");
    let out = outside::script(&py, code, &[&copy.display().to_string()]);
    let mut lines = out.lines();
    let tables = lines.next().unwrap_or_default();
    for t in ["sessions", "session_tags", "sync_runs", "sync_state"] {
        assert!(tables.split(' ').any(|x| x == t), "lists {t}: {out}");
    }
    assert_eq!(
        lines.next(),
        Some(h.sim_records().len().to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_status_names_each_files_storage_format_and_check_warns_about_a_newer_one() {
    let h = harness(1, 2, 10, |_| {}).await;
    // A warehouse made in a newer format, as an earlier kore-sync made it.
    let newer = h
        .toml("", "")
        .replacen("[sync]\n", "storage_version = \"v1.5.0\"\n[sync]\n", 1);
    let path = h.write_config(&newer);
    run_ok(&path, &["sync"]).await;
    let status: serde_json::Value =
        serde_json::from_str(&run_ok(&path, &["status", "--json"]).await).unwrap();
    assert_eq!(status["storage_version"], "v1.5.0+", "{status}");
    assert_eq!(
        status["publications"][0]["storage_version"], "v1.5.0",
        "{status}"
    );

    // With the default format configured: check warns, and the next pass
    // publishes the read copy in it; the warehouse keeps its own.
    let path = h.write_config(&h.toml("", ""));
    let out = run_ok(&path, &["check"]).await;
    assert!(
        out.contains("WARN  warehouse: its storage format is v1.5.0+, newer than warehouse.storage_version (v1.4.0)"),
        "{out}"
    );
    run_ok(&path, &["sync"]).await;
    let status: serde_json::Value =
        serde_json::from_str(&run_ok(&path, &["status", "--json"]).await).unwrap();
    assert_eq!(status["storage_version"], "v1.5.0+", "{status}");
    assert_eq!(
        status["publications"][0]["storage_version"], "v1.4.0",
        "{status}"
    );
    let text = run_ok(&path, &["status"]).await;
    assert!(text.contains("storage format v1.5.0+"), "{text}");
    assert!(text.contains("storage format v1.4.0)"), "{text}");
}
