//! Resident memory of the aggregator's deleted-pod cache
//! (`gpuscope_aggregator::kube::Departed`): N copies (distinct UIDs) of a
//! real pod object, projected as the watch keeps them, and the process's
//! VmRSS before and after.
//!
//! usage: departed_mem POD.json [N]   (N default: the cache's bound)

use anyhow::Context as _;
use gpuscope_benches::rss_kb;
use std::sync::Arc;

use gpuscope_aggregator::kube::departed::{DEPARTED_MAX, DEPARTED_TTL};
use gpuscope_aggregator::kube::{Departed, PodView};
use k8s_openapi::api::core::v1::Pod;

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
        cache.push(Arc::new(PodView::project(&p, &[])?));
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
