//! Resident memory per kept Event: N distinct events made from real ones
//! (each its own name and UID, four per involved pod, managedFields
//! stripped as the watch strips them), kept as the aggregator's event
//! store keeps them now (compact projections in an
//! `gpuscope_aggregator::kube::EventStore`) and as `k8s-openapi` objects
//! (what the store kept before), with the process's VmRSS before and
//! after each. The projections are made first, so the objects' figure
//! cannot reuse memory the projections freed.
//!
//! usage: event_mem EVENTS.json [N]   (an EventList; N default: 100,000)

use anyhow::Context as _;
use gpuscope_aggregator::kube::{EventLimits, EventStore};
use gpuscope_benches::rss_kb;
use k8s_openapi::api::core::v1::Event;
use kube::runtime::watcher;

/// The `i`th distinct event like `e`: its own name and UID, about the
/// `i / 4`th pod.
fn nth(e: &Event, i: usize) -> Event {
    let mut e = e.clone();
    let pod = format!(
        "{}-{}",
        e.involved_object.name.as_deref().unwrap_or("pod"),
        i / 4
    );
    e.metadata.name = Some(format!("{pod}.{i:016x}"));
    e.metadata.uid = Some(format!("{i:036}"));
    e.metadata.managed_fields = None;
    e.involved_object.name = Some(pod);
    e.involved_object.uid = Some(format!("{:036}", i / 4));
    e
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: event_mem EVENTS.json [N]")?;
    let n: usize = match args.next() {
        Some(n) => n.parse().context("N")?,
        None => 100_000,
    };
    let json = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let list: serde_json::Value =
        serde_json::from_str(&json).with_context(|| format!("{path}: not JSON"))?;
    let items: Vec<Event> = serde_json::from_value(list["items"].clone())
        .with_context(|| format!("{path}: not an EventList"))?;
    anyhow::ensure!(!items.is_empty(), "{path}: no events");
    let like = |i: usize| nth(&items[i % items.len()], i);

    let before = rss_kb()?;
    let mut store = EventStore::new(EventLimits {
        per_object: 20,
        objects: n,
    });
    for i in 0..n {
        store.apply(watcher::Event::Apply(like(i)));
    }
    let kept = store.len();
    let projected = rss_kb()?.saturating_sub(before);

    let before = rss_kb()?;
    let objects: Vec<Event> = (0..n).map(like).collect();
    let full = rss_kb()?.saturating_sub(before);

    let per = |kb: u64, count: usize| kb as f64 * 1024.0 / count.max(1) as f64;
    println!(
        "{n} events like the {} of {path} ({kept} kept, {} dropped on arrival): projections +{projected} kB VmRSS, \
         {:.0} bytes per kept event; k8s-openapi objects +{full} kB VmRSS, {:.0} bytes per event; {:.1}x smaller",
        items.len(),
        store.dropped,
        per(projected, kept),
        per(full, n),
        per(full, n) / per(projected, kept).max(1.0),
    );
    assert_eq!(objects.len(), n);
    Ok(())
}
