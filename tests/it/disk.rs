//! A file system that refuses writes (issue 20): a full disk, then a
//! read-only one, under a real warehouse. The binary runs in a private
//! mount namespace (`unshare`, util-linux) over a small tmpfs, so the test
//! needs no root on the host and leaves no mount behind. The error says what
//! happened in plain words, the file, that nothing was lost and what to do;
//! and nothing stored before is lost.

use crate::common::*;
use serde_json::Value;

/// What the script below runs, in order, inside the namespace.
const SCRIPT: &str = r#"
set -u
mount -t tmpfs -o size=32m tmpfs "$SMALL" || { echo "cannot mount a tmpfs on $SMALL" >&2; exit 97; }
run() { name=$1; shift; "$BIN" --config "$CFG" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; echo $? >"$OUT/$name.code"; }
run first sync
run before status --json
dd if=/dev/zero of="$SMALL/filler" bs=64k 2>/dev/null
run full sync
rm -f "$SMALL/filler"
run after status --json
mount -o remount,ro "$SMALL" || { echo "cannot remount $SMALL read-only" >&2; exit 98; }
run readonly sync
exit 0
"#;

fn read(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn n_sessions(status_json: &str) -> i64 {
    let v: Value =
        serde_json::from_str(status_json).unwrap_or_else(|e| panic!("{e}: {status_json}"));
    v["n_sessions"].as_i64().expect("n_sessions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_20_a_full_or_read_only_disk_is_told_plainly_and_loses_nothing() {
    let h = harness(1, 3, 40, |_| {}).await;
    let small = h.dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let warehouse = small.join("kore.duckdb");
    let toml = h.toml("", "").replace(
        &format!("{:?}", h.warehouse.display().to_string()),
        &format!("{:?}", warehouse.display().to_string()),
    );
    let config = h.write_config(&toml);
    let out = h.dir.path();
    let status = std::process::Command::new("unshare")
        .args(["--mount", "--map-root-user", "sh", "-c", SCRIPT])
        .env("BIN", BIN)
        .env("CFG", &config)
        .env("SMALL", &small)
        .env("OUT", out)
        .output()
        .expect("unshare (util-linux) runs: the test needs it to mount a small file system");
    assert!(
        status.status.success(),
        "the namespace could not be set up (user or mount namespaces refused?): {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(
        read(out, "first.code").trim(),
        "0",
        "{}",
        read(out, "first.err")
    );
    let before = n_sessions(&read(out, "before.out"));
    assert!(before > 100, "the first pass stored the history: {before}");

    // The disk is full: exit 1, and the words say so.
    let err = read(out, "full.err");
    assert_eq!(read(out, "full.code").trim(), "1", "{err}");
    assert!(err.contains("the disk is full while"), "{err}");
    assert!(
        err.contains(&small.display().to_string()),
        "names the file: {err}"
    );
    assert!(err.contains("Nothing was lost"), "{err}");
    assert!(err.contains("Free space on that file system"), "{err}");
    assert!(!err.contains("Error code"), "no DuckDB internals: {err}");
    // Nothing stored before is lost.
    assert_eq!(
        read(out, "after.code").trim(),
        "0",
        "{}",
        read(out, "after.err")
    );
    assert_eq!(n_sessions(&read(out, "after.out")), before);

    // A read-only file system: the same, in its own words.
    let err = read(out, "readonly.err");
    assert_eq!(read(out, "readonly.code").trim(), "1", "{err}");
    assert!(err.contains("the file system is read-only"), "{err}");
    assert!(err.contains("Remount that file system read-write"), "{err}");
}
