//! Issue 13: bot names. With `[account]` credentials the Admin Console's
//! bot list names every bot (and wins over the config); without, the
//! `name` of a `[[bots]]` table does. The list's `jwtApps` (client secrets)
//! reach neither the warehouse, the read copy, the Parquet nor the logs.

use crate::common::*;
use kore_sync::sim::data::bot_name;
use std::path::Path;

fn names(warehouse: &Path) -> Vec<(String, Option<String>, String)> {
    let conn = db(warehouse);
    let mut stmt = conn
        .prepare("SELECT bot_id, name, source FROM bots ORDER BY bot_id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_bots_are_named_from_the_admin_console_and_their_secrets_go_nowhere() {
    let h = harness(2, 2, 5, |_| {}).await;
    let parquet = h.dir.path().join("parquet");
    let app = account_app();
    let toml = h
        .toml(
            "",
            &format!(
                "[account]\nclient_id = {:?}\nclient_secret = {:?}\n",
                app.client_id, app.client_secret
            ),
        )
        .replace(
            "[sync]",
            &format!("parquet_dir = {:?}\n[sync]", parquet.display().to_string()),
        )
        .replacen(
            "id = \"st-test-1\"\n",
            "id = \"st-test-1\"\nname = \"From config\"\n",
            1,
        );
    let config = h.write_config(&toml);
    let out = kore_sync(&config)
        .args(["-v", "sync"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The list wins over the config's name; both bots are named.
    let want: Vec<_> = h
        .bots
        .iter()
        .map(|b| (b.id.clone(), Some(bot_name(&b.id)), "api".to_owned()))
        .collect();
    assert_eq!(names(&h.warehouse), want);
    let listed = h
        .sim
        .requests()
        .iter()
        .filter(|r| r.scope == "bots")
        .count();
    assert_eq!(listed, 1, "one page of bots, one request");

    // Views and status show names.
    let conn = db(&h.warehouse);
    let (id, name): (String, String) = conn
        .query_row(
            "SELECT bot_id, bot_name FROM sessions_enriched WHERE bot_id = 'st-test-2' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(name, bot_name(&id));
    let n_unnamed = count(
        &conn,
        "SELECT count(*) FROM daily_containment WHERE bot_name IS NULL",
    );
    assert_eq!(n_unnamed, 0);
    let raw: String = conn
        .query_row("SELECT CAST(raw AS VARCHAR) FROM bots LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        raw.contains("defaultLanguage") && !raw.contains("jwtApps"),
        "{raw}"
    );
    drop(conn);
    let status = run_ok(&config, &["status"]).await;
    assert!(status.contains(&bot_name("st-test-1")), "{status}");

    // The bots' app secrets were in the answer: they are nowhere now.
    let secrets: Vec<String> = h.bots.iter().map(|b| b.app.client_secret.clone()).collect();
    let mut scanned = files_under(&parquet);
    scanned.push((h.warehouse.clone(), std::fs::read(&h.warehouse).unwrap()));
    let copy = h.dir.path().join("kore-read.duckdb");
    scanned.push((copy.clone(), std::fs::read(&copy).unwrap()));
    for secret in &secrets {
        for (path, bytes) in &scanned {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret} found in {}", path.display());
        }
        assert!(!logs.contains(secret.as_str()), "{secret} in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_without_an_account_the_config_names_bots() {
    let h = harness(2, 1, 5, |_| {}).await;
    let toml = h.toml("", "").replacen(
        "id = \"st-test-1\"\n",
        "id = \"st-test-1\"\nname = \"Helpdesk\"\n",
        1,
    );
    let config = h.write_config(&toml);
    run_ok(&config, &["sync"]).await;
    assert_eq!(
        names(&h.warehouse),
        vec![(
            "st-test-1".to_owned(),
            Some("Helpdesk".to_owned()),
            "config".to_owned()
        )]
    );
    assert!(h.sim.requests().iter().all(|r| r.scope != "bots"));
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&config, &["status", "--json"]).await).unwrap();
    let streams = json["streams"].as_array().unwrap();
    assert!(
        streams.iter().any(|s| s["bot_name"] == "Helpdesk"),
        "{json}"
    );
    assert!(streams.iter().any(|s| s["bot_name"].is_null()), "{json}");
}
