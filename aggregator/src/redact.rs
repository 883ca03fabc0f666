//! Removes from an answer what its caller may not read ([`crate::auth`]):
//! objects of namespaces it may not `get pods` in are dropped, and the
//! pods holding a GPU there are named only as [`OTHER`], so that not even
//! a pod name of another team reaches the caller.

use std::collections::BTreeSet;

use gpuscope_diagnose::Evidence;
use gpuscope_model::Event;
use gpuscope_proto::v1 as pb;

use crate::auth::Namespaces;

/// What a GPU holder in a namespace the caller may not read is called.
pub const OTHER: &str = "another namespace";

/// Renames the wire holders outside `ns`.
pub fn holders(holders: &mut [pb::GpuHolder], ns: &Namespaces) {
    for h in holders.iter_mut().filter(|h| !ns.contains(&h.namespace)) {
        OTHER.clone_into(&mut h.namespace);
        h.pod.clear();
        h.container.clear();
    }
}

/// Renames the holders outside `ns`.
fn model_holders(holders: &mut [gpuscope_model::GpuHolder], ns: &Namespaces) {
    for h in holders.iter_mut().filter(|h| !ns.contains(&h.namespace)) {
        OTHER.clone_into(&mut h.namespace);
        h.pod.clear();
        h.container.clear();
    }
}

/// The holders named in a wire incident's event.
pub fn incident_holders(i: &mut pb::Incident) -> Option<&mut Vec<pb::GpuHolder>> {
    match i.event.as_mut()?.kind.as_mut()? {
        pb::node_event::Kind::Xid(x) => Some(&mut x.holders),
        pb::node_event::Kind::GpuLost(g) => Some(&mut g.holders),
        _ => None,
    }
}

/// Every namespace the evidence names: its pods', events', claims',
/// logs' and GPU holders'.
pub fn evidence_namespaces(ev: &Evidence) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    out.extend(
        ev.pods
            .iter()
            .map(|p| gpuscope_diagnose::k8s::namespace(p).to_owned()),
    );
    out.extend(
        ev.events
            .iter()
            .filter_map(|e| e.metadata.namespace.clone()),
    );
    out.extend(ev.pvcs.iter().filter_map(|p| p.metadata.namespace.clone()));
    out.extend(ev.logs.iter().map(|l| l.namespace.clone()));
    for a in &ev.agents {
        let gpus = a.gpus.iter().flat_map(|g| g.holders.iter());
        out.extend(gpus.map(|h| h.namespace.clone()));
        for e in &a.events {
            if let Event::Xid { holders, .. } | Event::GpuLost { holders, .. } = e {
                out.extend(holders.iter().map(|h| h.namespace.clone()));
            }
        }
    }
    out.remove("");
    out
}

/// Drops the evidence of namespaces outside `ns` and renames GPU holders
/// there.
pub fn evidence(ev: &mut Evidence, ns: &Namespaces) {
    if ns.all {
        return;
    }
    ev.pods
        .retain(|p| ns.contains(gpuscope_diagnose::k8s::namespace(p)));
    ev.events
        .retain(|e| ns.contains(e.metadata.namespace.as_deref().unwrap_or("default")));
    ev.pvcs
        .retain(|p| ns.contains(p.metadata.namespace.as_deref().unwrap_or("default")));
    ev.logs
        .retain(|l| l.namespace.is_empty() || ns.contains(&l.namespace));
    for a in &mut ev.agents {
        for g in &mut a.gpus {
            model_holders(&mut g.holders, ns);
        }
        for e in &mut a.events {
            if let Event::Xid { holders, .. } | Event::GpuLost { holders, .. } = e {
                model_holders(holders, ns);
            }
        }
    }
}

/// Withholds the evidence's log tails: the caller may not `get pods/log`
/// in `namespace`. The answer says so.
pub fn logs(ev: &mut Evidence, namespace: &str) {
    ev.logs.clear();
    ev.gaps.retain(|g| g.what != "logs");
    ev.gaps.push(gpuscope_diagnose::Gap::new(
        "logs",
        format!("log tails withheld: you may not get pods/log in namespace {namespace}"),
    ));
}
