//! Resident memory per watched pod: N distinct pods made from a real pod
//! object (each its own name, UID and container IDs, managedFields
//! stripped as the watch strips them), kept as the aggregator's pod store
//! keeps them now (compact projections in a
//! `gpuscope_aggregator::kube::Projections`) and as `k8s-openapi` objects
//! (what the reflector stores kept before), with the process's VmRSS
//! before and after each. The projections are made first, so the objects'
//! figure cannot reuse memory the projections freed. The projections'
//! figure includes the store's indexes; their own tables are printed too
//! (`pod_index` measures them at 187,500 pods).
//!
//! usage: pod_mem POD.json [N]   (N default: 20,000)

use std::sync::Arc;

use anyhow::Context as _;
use gpuscope_aggregator::kube::{PodView, Projections};
use gpuscope_benches::rss_kb;
use k8s_openapi::api::core::v1::Pod;

/// The `i`th distinct pod like `pod`: its own name, UID and container IDs.
fn nth(pod: &Pod, i: usize) -> Pod {
    let mut p = pod.clone();
    let name = p.metadata.name.clone().unwrap_or_default();
    p.metadata.name = Some(format!("{name}-{i}"));
    p.metadata.uid = Some(format!("{i:036}"));
    let statuses = p.status.iter_mut().flat_map(|s| {
        s.container_statuses
            .iter_mut()
            .flatten()
            .chain(s.init_container_statuses.iter_mut().flatten())
    });
    for (j, cs) in statuses.enumerate() {
        cs.container_id = Some(format!("containerd://{i:032x}{j:032x}"));
    }
    p
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: pod_mem POD.json [N]")?;
    let n: usize = match args.next() {
        Some(n) => n.parse().context("N")?,
        None => 20_000,
    };
    let json = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let mut pod: Pod = serde_json::from_str(&json).with_context(|| format!("{path}: not a Pod"))?;
    pod.metadata.managed_fields = None;

    let before = rss_kb()?;
    let store = Projections::default();
    store.begin();
    for i in 0..n {
        store.put(PodView::project(&nth(&pod, i), &[])?);
    }
    store.finish();
    let projected = rss_kb()?.saturating_sub(before);

    let before = rss_kb()?;
    let objects: Vec<Arc<Pod>> = (0..n).map(|i| Arc::new(nth(&pod, i))).collect();
    let full = rss_kb()?.saturating_sub(before);

    let one = PodView::project(&nth(&pod, 0), &[])?;
    println!(
        "one projection: {} bytes of struct, {} bytes on the heap ({:?})",
        std::mem::size_of::<PodView>(),
        one.heap_bytes(),
        one
    );
    let per = |kb: u64| kb as f64 * 1024.0 / n.max(1) as f64;
    println!(
        "{n} pods like {path} ({} bytes of JSON): projections +{projected} kB VmRSS, {:.0} bytes per pod; \
         k8s-openapi objects +{full} kB VmRSS, {:.0} bytes per pod; {:.1}x smaller",
        json.len(),
        per(projected),
        per(full),
        full as f64 / projected.max(1) as f64
    );
    println!(
        "the store's indexes (by UID, by node, marks, namespaces): {} bytes of tables, {:.1} bytes per pod",
        store.index_heap_bytes(),
        store.index_heap_bytes() as f64 / n.max(1) as f64
    );
    assert_eq!(store.len(), n);
    assert_eq!(objects.len(), n);
    Ok(())
}
