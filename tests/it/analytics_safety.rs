//! Issue 24: NLU analytics kept safe — what the privacy settings leave
//! out of every file, `rewrite-privacy` over stored events, and SIGKILL
//! during a backfill (nothing lost, nothing doubled).

use crate::analytics::{Row, analytics_on, assert_same, stored, want};
use crate::common::*;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_privacy_leaves_no_utterance_or_user_id_in_any_file() {
    let h = harness(1, 3, 12, |_| {}).await;
    let key = crate::privacy::key_file(&h);
    let settings = format!(
        "[analytics]\nenabled = true\n[messages]\nstore_text = false\n\
         [privacy]\npseudonymize = [\"user_id\"]\nkey_file = {:?}\n",
        key.display().to_string()
    );
    let with_parquet =
        |toml: String, dir: &str| toml.replace("[sync]", &format!("parquet_dir = {dir:?}\n[sync]"));
    let config = h.write_config(&with_parquet(h.toml("", &settings), "parquet"));
    run_ok(&config, &["sync"]).await;
    assert_eq!(stored(&h).len(), want(&h).len());

    // What users wrote (utterances, the NLAnalysis inputs) and who they
    // are: none of it in any file.
    let mut needles: BTreeSet<String> = BTreeSet::new();
    for e in h.sim.analytics_events() {
        if let Some(u) = e["utterance"].as_str() {
            needles.insert(u.to_owned());
        }
        needles.insert(e["userId"].as_str().unwrap().to_owned());
    }
    needles.insert("Bonjour, j'ai besoin".to_owned());
    let needles: Vec<String> = needles.into_iter().collect();
    let dir = h.dir.path();
    let mut files = vec![
        (h.warehouse.clone(), std::fs::read(&h.warehouse).unwrap()),
        (
            dir.join("kore-read.duckdb"),
            std::fs::read(dir.join("kore-read.duckdb")).unwrap(),
        ),
    ];
    files.extend(files_under(&dir.join("parquet")));
    assert!(
        files
            .iter()
            .any(|(p, _)| p.to_string_lossy().contains("analytics_events")),
        "the events were exported"
    );
    for (path, bytes) in &files {
        let found = crate::privacy::found_in(bytes, &needles);
        assert!(found.is_empty(), "{} holds {found:?}", path.display());
    }
    let conn = db(&h.warehouse);
    // Compressed columns hide text from a byte scan: ask DuckDB too.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM analytics_events WHERE utterance IS NOT NULL
                OR json_extract_string(raw, '$.utterance') IS NOT NULL OR json_extract(raw, '$.NLAnalysis.input') IS NOT NULL
                OR json_extract(raw, '$.NLAnalysis.nlProcessing') IS NOT NULL OR json_extract(raw, '$.NLAnalysis.ml') IS NOT NULL
                OR json_extract_string(raw, '$.userId') NOT LIKE 'pz-%' OR json_extract_string(raw, '$.channelUId') NOT LIKE 'pz-%'"
        ),
        0
    );
    // The outcome stays: what was found, and for whom (a pseudonym that
    // joins with the sessions').
    assert!(
        count(
            &conn,
            "SELECT count(*) FROM daily_nlu WHERE intents_found > 0"
        ) > 0
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM analytics_events e JOIN sessions s USING (session_id)
             WHERE e.user_id IS DISTINCT FROM s.user_id"
        ),
        0
    );

    // Control: without the rules, the same search finds them.
    let control = h
        .toml("", "[analytics]\nenabled = true\n")
        .replace("kore.duckdb", "control.duckdb")
        .replace("[sync]", "publish = \"control-read.duckdb\"\n[sync]");
    run_ok(&h.write_config(&control), &["sync"]).await;
    let bytes = std::fs::read(dir.join("control.duckdb")).unwrap();
    assert!(!crate::privacy::found_in(&bytes, &needles).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_rewrite_privacy_brings_stored_events_under_stricter_settings() {
    let h = harness(1, 3, 12, |_| {}).await;
    run_ok(&analytics_on(&h, ""), &["sync"]).await;
    let before = stored(&h);
    assert!(
        before.iter().any(|r| r.utterance.is_some()),
        "utterances are stored"
    );
    // Records the analytics and LLM streams could not store, kept as
    // received (as a pass leaves them in `rejected_records`).
    db(&h.warehouse)
        .execute_batch(&format!(
            "INSERT INTO rejected_records VALUES
             ('{bot}', 'failintent', NULL, 'bad timestamp',
              '{{\"utterance\": \"my card number is 4111\", \"userId\": \"u-rejected-1\",
                \"channelUId\": \"someone@example.com\", \"NLAnalysis\": {{\"input\": [\"my card number is 4111\"]}}}}', now()),
             ('{bot}', 'all', NULL, 'bad start Date',
              '{{\"User ID\": \"u-rejected-2\", \"Payload Details\": {{\"Request Payload\":
                {{\"messages\": [{{\"role\": \"user\", \"content\": \"order pizza for Alice\"}}]}}}}}}', now())",
            bot = h.bots[0].id
        ))
        .unwrap();
    let key = crate::privacy::key_file(&h);
    let strict = h.write_config(&h.toml(
        "",
        &format!(
            "[analytics]\nenabled = true\n[messages]\nstore_text = false\n\
             [privacy]\npseudonymize = [\"user_id\"]\nkey_file = {:?}\n",
            key.display().to_string()
        ),
    ));
    let said = run_ok(&strict, &["rewrite-privacy"]).await;
    let conn = db(&h.warehouse);
    for needle in [
        "4111",
        "u-rejected-1",
        "someone@example.com",
        "u-rejected-2",
        "Alice",
    ] {
        let sql = format!("SELECT count(*) FROM rejected_records WHERE raw LIKE '%{needle}%'");
        assert_eq!(count(&conn, &sql), 0, "{needle} kept in rejected_records");
    }
    assert_eq!(count(&conn, "SELECT count(*) FROM rejected_records"), 2);
    drop(conn);
    assert!(
        said.contains(&format!("{} analytics events", before.len())),
        "{said}"
    );
    // Every row is still there, with what the rules keep: no utterance, no
    // user id, the outcome and the tags as they were.
    let after = stored(&h);
    let without_text = |rows: &[Row]| -> Vec<Row> {
        rows.iter()
            .cloned()
            .map(|mut r| {
                r.utterance = None;
                r
            })
            .collect()
    };
    assert_eq!(after, without_text(&before));
    let conn = db(&h.warehouse);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM analytics_events WHERE json_extract_string(raw, '$.utterance') IS NOT NULL
                OR json_extract(raw, '$.NLAnalysis.input') IS NOT NULL OR user_id NOT LIKE 'pz-%'
                OR channel_uid NOT LIKE 'pz-%'"
        ),
        0
    );
    drop(conn);
    // A pass under the new settings finds nothing to change.
    let out = run_ok(&strict, &["backfill", "--from", &h.start.to_rfc3339()]).await;
    assert_eq!(
        count(
            &db(&h.warehouse),
            "SELECT count(*) FROM analytics_events WHERE last_synced_at > first_synced_at"
        ),
        0,
        "{out}"
    );
}

/// SIGKILL at random moments of a backfill with analytics: no event is
/// doubled, no analytics stream's watermark runs ahead of its data, and
/// one clean pass completes everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_24_a_kill_mid_backfill_loses_and_doubles_no_event() {
    let h = harness(1, 24, 20, |s| {
        s.latency = std::time::Duration::from_millis(15)
    })
    .await;
    let toml = h
        .toml("window = \"2d\"", "[analytics]\nenabled = true\n")
        .replace("[api]\n", "[api]\npage_size = 20\nmax_page_size = 40\n");
    let config = h.write_config(&toml);
    let all = want(&h);
    let mut most_marks = 0;
    let check = |round: usize| {
        let conn = db(&h.warehouse);
        let doubled = count(
            &conn,
            "SELECT count(*) FROM (SELECT type, event_id FROM analytics_events
                                   GROUP BY ALL HAVING count(*) > 1)",
        );
        assert_eq!(doubled, 0, "round {round}: no event twice");
        let mut stmt = conn
            .prepare(
                "SELECT containment_type, epoch_ms(watermark) FROM sync_state WHERE resource = 'analytics'",
            )
            .unwrap();
        let marks: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(stmt);
        drop(conn);
        most_marks = most_marks.max(marks.len());
        let held: BTreeSet<(String, String)> = stored(&h)
            .into_iter()
            .map(|r| (r.kind, r.event_id))
            .collect();
        for (kind, wm) in marks {
            for e in all.iter().filter(|e| e.kind == kind && e.at_ms < wm) {
                assert!(
                    held.contains(&(e.kind.clone(), e.event_id.clone())),
                    "round {round}: {} before {kind}'s watermark is missing",
                    e.event_id
                );
            }
        }
    };
    killed_backfills(&h, &config, (4, 30..100, 29), check).await;
    assert!(
        most_marks > 0,
        "a kill came after analytics windows were stored"
    );
    run_ok(&config, &["sync"]).await;
    assert_same(&stored(&h), &all, "after a clean pass");
}
