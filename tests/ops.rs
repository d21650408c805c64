//! Operations (issue 5): `check` against the simulated API with good and bad
//! credentials.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_ok_for_a_good_setup_and_the_fix_for_a_bad_one() {
    let h = harness(2, 1, 10, |_| {}).await;
    let good = h.dir.path().join("good.toml");
    std::fs::write(&good, h.toml("", "")).unwrap();
    let out = kore_sync(&good).arg("check").output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for bot in &h.bots {
        assert!(
            stdout.contains(&format!("OK    bot {}: getSessions", bot.id)),
            "{stdout}"
        );
    }
    assert!(stdout.contains("writable"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");

    let bad = h.dir.path().join("bad.toml");
    std::fs::write(&bad, h.toml("", "").replace("\"secret-2\"", "\"not-it\"")).unwrap();
    let out = kore_sync(&bad).arg("check").output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("OK    bot {}: getSessions", h.bots[0].id)),
        "{stdout}"
    );
    let fail = stdout
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains(&h.bots[1].id))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        fail.contains("Bot Sessions") && fail.contains("cs-app-2"),
        "{fail}"
    );
    assert!(!stdout.contains("not-it"), "never prints the secret");
}
