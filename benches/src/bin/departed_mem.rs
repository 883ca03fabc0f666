//! Resident memory of the aggregator's deleted-pod cache
//! (`gpuscope_aggregator::kube::Departed`): N copies (distinct UIDs) of a
//! real pod object, managedFields stripped as the watch stores them, and
//! the process's VmRSS before and after.
//!
//! usage: departed_mem POD.json [N]   (N default: the cache's bound)

use anyhow::Context as _;
use gpuscope_aggregator::kube::Departed;
use gpuscope_aggregator::kube::departed::{DEPARTED_MAX, DEPARTED_TTL};
use k8s_openapi::api::core::v1::Pod;

fn rss_kb() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS in /proc/self/status")?
        .parse()
        .context("VmRSS is not a number")
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: departed_mem POD.json [N]")?;
    let n = match args.next() {
        Some(n) => n.parse().context("N")?,
        None => DEPARTED_MAX,
    };
    let json = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let mut pod: Pod = serde_json::from_str(&json).with_context(|| format!("{path}: not a Pod"))?;
    pod.metadata.managed_fields = None;
    let mut cache = Departed::new(DEPARTED_TTL, n);
    let before = rss_kb()?;
    for i in 0..n {
        let mut p = pod.clone();
        p.metadata.uid = Some(format!("{i:036}"));
        cache.push(p);
    }
    let added = rss_kb()?.saturating_sub(before);
    println!(
        "{} pods like {path} ({} bytes of JSON): +{added} kB VmRSS, {:.1} kB per pod",
        cache.len(),
        json.len(),
        added as f64 / n.max(1) as f64
    );
    Ok(())
}
