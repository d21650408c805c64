//! Issue 22: every command within DuckDB's memory limit (64 MiB by
//! default) at any size — turning messages on for a warehouse one already
//! has, with messages as large as rich templates make them; a
//! `rewrite-privacy` of tens of thousands of messages, killed halfway and
//! carried on; and running out of memory told in plain words.

use crate::common::*;
use crate::messages::{messages_on, stored, want};
use crate::privacy::{found_in, personal_values, privacy_section};
use std::path::Path;
use tokio::io::AsyncBufReadExt;

/// Moves every session to one channel, so its message stream reads them
/// all in one window: the largest commit a warehouse of this size makes.
fn all_on_one_channel(h: &Harness) {
    for r in h.sim_records() {
        let id = r["sessionId"].as_str().unwrap().to_owned();
        h.sim.modify(&id, |r| r["channel"] = "rtm".into());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_22_turning_messages_on_for_a_warehouse_of_large_messages_stores_every_one() {
    // 1,200 sessions and about 4,800 messages, each answer carrying an 8 KB
    // template: one window's commit stages about 20 MB. Before issue 22 it
    // failed with DuckDB's "Out of Memory Error" every time.
    let h = harness(1, 3, 400, |s| s.template_bytes = 8_000).await;
    all_on_one_channel(&h);
    run_ok(&h.write_config(&h.toml("", "")), &["sync"]).await;
    let config = messages_on(&h, "");
    run_ok(&config, &["sync"]).await;
    let want = want(&h);
    assert!(want.len() > 4_000, "{} messages", want.len());
    assert_eq!(stored(&h.warehouse), want);
    // Stored exactly: a template's bytes are in the record as received.
    let conn = db(&h.warehouse);
    let big = count(
        &conn,
        "SELECT count(*) FROM messages WHERE length(CAST(raw AS VARCHAR)) > 8000",
    );
    assert!(big as usize > want.len() / 3, "{big}");
    drop(conn);
    // A pass over the same windows again re-reads and compares them all.
    run_ok(&config, &["sync"]).await;
    assert_eq!(stored(&h.warehouse), want);
}

/// The rows a rewrite must end with, as a fresh warehouse synced under the
/// private settings from the start holds them: (id, user id or text, raw).
fn private_rows(warehouse: &Path) -> Vec<(String, Option<String>, String)> {
    let conn = db(warehouse);
    let mut stmt = conn
        .prepare(
            "SELECT session_id, user_id, CAST(raw AS VARCHAR) FROM sessions
             UNION ALL SELECT message_id, text, CAST(raw AS VARCHAR) FROM messages ORDER BY 1",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every file under the warehouse's directory that holds one of `needles`.
fn files_holding(dir: &Path, needles: &[String]) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter_map(|(path, bytes)| {
            let found = found_in(&bytes, needles);
            (!found.is_empty()).then(|| format!("{} holds {found:?}", path.display()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_22_rewrite_privacy_of_tens_of_thousands_of_messages_resumes_when_killed_and_leaves_no_original_byte()
 {
    // About 10,000 sessions and 40,000 messages: before issue 22 the
    // rewrite, one transaction, ran out of memory at 32,000.
    let h = harness(2, 15, 330, |_| {}).await;
    let plain = messages_on(&h, "");
    run_ok(&plain, &["sync"]).await;
    let n_messages = h.sim.messages().len();
    assert!(n_messages > 30_000, "{n_messages} messages");
    // Each message's text is its own (it names its session): the search
    // below looks for every one of those, and for every user id.
    let mut needles = personal_values(&h);
    let texts: Vec<String> = h
        .sim
        .messages()
        .iter()
        .flat_map(|m| m["components"].as_array().unwrap().clone())
        .filter_map(|c| c["data"]["text"].as_str().map(str::to_owned))
        .filter(|t| t.starts_with("Message "))
        .collect();
    assert!(texts.len() > 1_000, "{} texts", texts.len());
    needles.extend(texts);
    let before = files_holding(h.dir.path(), &needles);
    assert!(!before.is_empty(), "the search finds the plain values");

    // Killed once it is rewriting messages: the sessions are done, some
    // messages too.
    let strict = h.write_config(&h.toml("", &privacy_section(&h, false)));
    let mut child = kore_sync(&strict)
        .arg("rewrite-privacy")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("rewriting") && line.contains("table=messages") {
            break;
        }
    }
    signal(&child, "-KILL");
    child.wait().await.unwrap();

    // Rows are now written under two settings: nothing writes, and the
    // rewrite carries on only towards the settings it began with.
    let out = kore_sync(&strict).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stopped before it finished"), "{stderr}");
    let status = run_ok(&strict, &["status"]).await;
    assert!(status.contains("stopped halfway"), "{status}");
    let other = h.write_config(&h.toml("", &privacy_section(&h, true)));
    let out = kore_sync(&other)
        .arg("rewrite-privacy")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("was stopped halfway"), "{stderr}");

    let strict = h.write_config(&h.toml("", &privacy_section(&h, false)));
    let said = run_ok(&strict, &["rewrite-privacy"]).await;
    assert!(said.contains("rewrote the warehouse"), "{said}");
    let found = files_holding(h.dir.path(), &needles);
    assert!(found.is_empty(), "{found:?}");

    // Every row rewritten exactly once: the rows equal those of a fresh
    // warehouse synced under these settings from the start.
    let fresh = h.dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let direct = h.toml("", &privacy_section(&h, false)).replace(
        &h.warehouse.display().to_string(),
        &fresh.join("kore.duckdb").display().to_string(),
    );
    let direct_config = fresh.join("kore-sync.toml");
    std::fs::write(&direct_config, direct).unwrap();
    run_ok(&direct_config, &["sync"]).await;
    let rewritten = private_rows(&h.warehouse);
    assert_eq!(rewritten.len(), n_messages + h.sim_records().len());
    assert!(
        rewritten == private_rows(&fresh.join("kore.duckdb")),
        "rows differ from a direct sync"
    );
    run_ok(&strict, &["sync"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_22_running_out_of_memory_is_told_in_plain_words_and_loses_nothing() {
    // Answers of 60 KB each, and the least memory kore-sync accepts:
    // DuckDB reads 2,048 rows at a time, which no longer fits.
    let h = harness(1, 2, 200, |s| s.template_bytes = 60_000).await;
    all_on_one_channel(&h);
    let small = "[warehouse]\nmemory_limit = \"32MiB\"\n";
    let toml = |extra: &str| h.toml("", extra).replace("[warehouse]\n", small);
    run_ok(&h.write_config(&toml("")), &["sync"]).await;
    let sessions = read_sessions(&h.warehouse);
    let config = h.write_config(&toml("[messages]\nenabled = true\n"));
    let out = kore_sync(&config).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the warehouse ran out of memory while"),
        "{stderr}"
    );
    assert!(stderr.contains("Nothing was lost"), "{stderr}");
    assert!(stderr.contains("Raise warehouse.memory_limit"), "{stderr}");
    assert!(!stderr.contains("SET memory_limit"), "{stderr}");
    assert_eq!(read_sessions(&h.warehouse), sessions);
    // With more memory the same pass succeeds.
    let roomy = h
        .toml("", "[messages]\nenabled = true\n")
        .replace("[warehouse]\n", "[warehouse]\nmemory_limit = \"1GiB\"\n");
    run_ok(&h.write_config(&roomy), &["sync"]).await;
    assert_eq!(stored(&h.warehouse), want(&h));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_22_a_read_copy_that_does_not_fit_is_an_error_for_the_operator_and_the_pass_still_stores()
 {
    // Answers of 20 KB templates (messages of about 10 KB on average): the
    // pass stores them within the default limit, but copying 2,048 such
    // rows at a time into the read copy does not fit.
    let h = harness(1, 3, 400, |s| s.template_bytes = 20_000).await;
    all_on_one_channel(&h);
    run_ok(&h.write_config(&h.toml("", "")), &["sync"]).await;
    let config = messages_on(&h, "");
    let out = kore_sync(&config).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("could not publish the read copy"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("ran out of memory"), "{line}");
    assert_eq!(stored(&h.warehouse), want(&h));
    // With room, the next pass publishes it.
    let roomy = h
        .toml("", "[messages]\nenabled = true\n")
        .replace("[warehouse]\n", "[warehouse]\nmemory_limit = \"256MiB\"\n");
    run_ok(&h.write_config(&roomy), &["sync"]).await;
    let copied = count(
        &db(&h.dir.path().join("kore-read.duckdb")),
        "SELECT count(*) FROM messages",
    );
    assert_eq!(copied as usize, want(&h).len());
}
