//! Shared helpers for gpuscope benchmarks.

use anyhow::Context as _;

/// This process's resident memory (`VmRSS` of `/proc/self/status`), kB.
pub fn rss_kb() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS in /proc/self/status")?
        .parse()
        .context("VmRSS is not a number")
}
