//! Issue 15 (part): what leaves the machine. The API client never follows a
//! redirect (it would hand the token to another origin) and refuses an
//! answer larger than `api.max_response_size` unread.

use crate::common::*;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use std::net::SocketAddr;

/// A server that redirects every request to `target` (307, as a proxy or a
/// compromised host might), counting what it was sent.
async fn redirecting_server(target: String) -> String {
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let location = format!("{target}{}", uri.path());
        async move {
            let mut headers = HeaderMap::new();
            headers.insert(header::LOCATION, location.parse().unwrap());
            (StatusCode::TEMPORARY_REDIRECT, headers).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_a_redirect_is_refused_and_the_other_host_never_sees_the_token() {
    let h = harness(1, 2, 10, |_| {}).await;
    let redirector = redirecting_server(h.sim.base_url()).await;
    let toml = h.toml("", "").replacen(
        &format!("base_url = {:?}", h.sim.base_url()),
        &format!("base_url = {redirector:?}"),
        1,
    );
    let config = h.write_config(&toml);
    let out = kore_sync(&config).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("redirect"), "{stderr}");
    assert!(stderr.contains("api.base_url"), "{stderr}");
    assert!(
        stderr.contains(&h.sim.base_url()),
        "names the Location: {stderr}"
    );
    // The simulator (the other origin) was never asked anything.
    assert!(h.sim.requests().is_empty(), "{:?}", h.sim.requests());
    let n = count(&db(&h.warehouse), "SELECT count(*) FROM sessions");
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_an_answer_larger_than_the_limit_is_refused() {
    let h = harness(1, 2, 20, |_| {}).await;
    let toml = h
        .toml("", "")
        .replacen("[api]\n", "[api]\nmax_response_size = \"2KiB\"\n", 1);
    let config = h.write_config(&toml);
    let out = kore_sync(&config).arg("sync").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("api.max_response_size"), "{stderr}");
    let n = count(&db(&h.warehouse), "SELECT count(*) FROM sessions");
    assert_eq!(n, 0, "nothing of a refused answer is stored");
    // Not retried: the same answer would come again.
    let statuses: Vec<u16> = h.sim.requests().iter().map(|r| r.status).collect();
    assert!(statuses.len() <= 3, "one request per stream: {statuses:?}");
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The warehouse and its spill directory are owner-only; the read copy and
/// the Parquet files group-readable; both settable; `check` warns about
/// files others can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_files_are_created_with_closed_modes() {
    let h = harness(1, 2, 10, |_| {}).await;
    let toml = h
        .toml("", "")
        .replace("[sync]", "parquet_dir = \"parquet\"\n[sync]");
    let config = h.write_config(&toml);
    run_ok(&config, &["sync"]).await;
    let parquet = h.dir.path().join("parquet");
    let day = std::fs::read_dir(parquet.join("sessions"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("data.parquet");
    assert_eq!(mode_of(&h.warehouse), 0o600);
    assert_eq!(mode_of(&h.dir.path().join("kore.duckdb.tmp")), 0o700);
    assert_eq!(mode_of(&h.dir.path().join("kore-read.duckdb")), 0o640);
    assert_eq!(mode_of(&day), 0o640);
    assert_eq!(mode_of(&parquet.join("_kore_sync/manifest.json")), 0o640);

    // Configured modes; and check warns about a warehouse others can read.
    let toml = h.toml("", "").replace(
        "[sync]",
        "parquet_dir = \"parquet\"\nfile_mode = \"0640\"\npublish_mode = \"0600\"\n[sync]",
    );
    let config = h.write_config(&toml);
    let victim = h.sim_records()[0]["sessionId"].as_str().unwrap().to_owned();
    h.sim
        .modify(&victim, |r| r["channel"] = serde_json::json!("moved"));
    run_ok(&config, &["backfill", "--from", &h.start.to_rfc3339()]).await;
    assert_eq!(mode_of(&h.warehouse), 0o640);
    assert_eq!(mode_of(&h.dir.path().join("kore-read.duckdb")), 0o600);
    kore_sync::store::set_mode(&h.warehouse, 0o644).unwrap();
    let out = kore_sync(&config).arg("check").output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("WARN  warehouse")
            && stdout.contains("readable by other users (mode 0644)"),
        "{stdout}"
    );
}
