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

/// CPU time (user + system) this process has used so far, in seconds,
/// from `/proc/self/stat` (Linux; clock ticks of 10 ms).
pub(super) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may
    // hold spaces: utime and stime are the 12th and 13th of those.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// A fresh directory for a benchmark's warehouse.
pub(super) fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kore-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_is_read_and_grows() {
        let before = super::cpu_seconds().expect("Linux /proc/self/stat");
        // Spin until the kernel has counted a tick of this process's CPU
        // (10 ms), or give up after five seconds of wall time.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let mut now = before;
        while now <= before && started.elapsed() < std::time::Duration::from_secs(5) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            now = super::cpu_seconds().unwrap();
        }
        assert!(now > before, "CPU time did not grow: {before} -> {now}");
    }
}
