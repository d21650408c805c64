//! The service files (issue 5): the systemd unit passes `systemd-analyze
//! verify`; completions and the man page generate.

use crate::common::BIN;
use std::process::Command;

#[test]
fn the_systemd_unit_verifies() {
    let out = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .expect(
            "systemd-analyze verifies the unit: install systemd (Debian: apt-get install systemd)",
        );
    assert!(out.status.success());
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kore-sync.service"
    ))
    .unwrap();
    assert!(
        unit.contains("Type=notify")
            && unit.contains("WatchdogSec=")
            && unit.contains("LoadCredential=")
    );
    // Verify a copy whose ExecStart points at the binary under test (verify
    // checks that it exists).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kore-sync.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/kore-sync", BIN)).unwrap();
    // --man=no: the man page is installed separately (deploy/README.md).
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Only complaints about this unit count, not about the host's other units.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("kore-sync.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{stderr}");
}

#[test]
fn completions_and_man_page_are_generated_from_the_cli() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("backfill") && text.contains("config"),
            "{shell}: {text}"
        );
    }
    let out = Command::new(BIN).arg("man").output().unwrap();
    let man = String::from_utf8(out.stdout).unwrap();
    assert!(
        man.contains(".TH kore-sync") && man.contains("backfill"),
        "{man}"
    );
}
