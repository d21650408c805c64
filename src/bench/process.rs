//! What the benchmarks measure of the process itself (Linux `/proc`), and
//! where they keep their files.

use anyhow::Context;
use std::path::PathBuf;

/// Peak resident set size of this process so far, in MiB (Linux).
pub(super) fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// A `/proc/self/status` line in MiB, e.g. `RssAnon:` (Linux).
pub(super) fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// A fresh directory for a benchmark's warehouse.
pub(super) fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kore-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
