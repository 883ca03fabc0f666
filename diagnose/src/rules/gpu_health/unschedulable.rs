//! Pods that cannot get GPUs: the scheduler's `Insufficient
//! nvidia.com/...`, with the nodes that would fit and what excludes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::device_plugin::PluginPod;
use crate::finding::{Confidence, Fact, Finding, Kind};
use crate::rules::scheduling::{ReasonClass, exclusions, scheduling_failure};
use crate::{Context, k8s};

/// How many of `resource` the pod asks for (the scheduler's rule: app
/// containers summed, or the largest init container).
fn request_of(p: &Pod, resource: &str) -> u64 {
    k8s::pod_request(p, resource)
}

fn allocatable_of(n: &Node, resource: &str) -> u64 {
    n.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|m| m.get(resource))
        .and_then(k8s::quantity)
        .unwrap_or(0.0) as u64
}

pub(super) fn gpu_unschedulable(
    ctx: &Context<'_>,
    pod: &Pod,
    plugins: &[PluginPod<'_>],
) -> Vec<Finding> {
    let Some(s) = scheduling_failure(ctx, pod) else {
        return Vec::new();
    };
    let Some(shortage) = s.gpu_shortage() else {
        return Vec::new();
    };
    let resource = match &shortage.class {
        ReasonClass::Resource(r) => r.clone(),
        _ => k8s::NVIDIA_GPU.to_owned(),
    };
    let want = request_of(pod, &resource).max(1);
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let nodes = ctx.nodes();
    let mut facts = s.facts();
    facts.push(Fact::new(format!("requested {resource}"), want.to_string()));
    let mut missing_evidence = Vec::new();
    let summary;
    let mut confidence = Confidence::High;
    if nodes.is_empty() {
        confidence = Confidence::Medium;
        missing_evidence.push("the node list");
        summary = format!(
            "Pod {name} cannot be scheduled: {} node{} lack {want} free {resource}; the node list is not in the evidence, so gpuscope cannot say where GPUs are free or who holds them.",
            shortage.nodes,
            if shortage.nodes == 1 { "" } else { "s" }
        );
    } else {
        // Free GPUs per node: allocatable minus what bound, live pods ask.
        let mut rows: Vec<(String, u64, u64, Vec<String>)> = Vec::new();
        // Nodes whose devices exist but are not offered: capacity above
        // allocatable (the device plugin down, or GPUs marked unhealthy).
        let mut withheld: Vec<(String, u64, u64)> = Vec::new();
        let mut owners: BTreeMap<String, u64> = BTreeMap::new();
        for n in nodes {
            let nname = n.metadata.name.clone().unwrap_or_default();
            let alloc = allocatable_of(n, &resource);
            let mut used = 0;
            for p in ctx.pods().iter().filter(|p| {
                k8s::node_name(p) == Some(nname.as_str())
                    && !matches!(k8s::phase(p), "Succeeded" | "Failed")
            }) {
                let r = request_of(p, &resource);
                if r > 0 {
                    used += r;
                    *owners
                        .entry(k8s::owner(p).unwrap_or_else(|| k8s::pod_name(p)))
                        .or_default() += r;
                }
            }
            let capacity = n
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|m| m.get(&resource))
                .and_then(k8s::quantity)
                .unwrap_or(0.0) as u64;
            if capacity > alloc && exclusions(pod, n).is_empty() {
                withheld.push((nname.clone(), capacity, alloc));
            }
            rows.push((nname, alloc, used, exclusions(pod, n)));
        }
        let total_alloc: u64 = rows.iter().map(|r| r.1).sum();
        let total_used: u64 = rows.iter().map(|r| r.2).sum();
        for (n, alloc, used, why) in &rows {
            let capacity = withheld.iter().find(|w| &w.0 == n).map(|w| w.1);
            if *alloc == 0 && *used == 0 && capacity.is_none() {
                continue;
            }
            facts.push(Fact::new(
                format!("node {n}"),
                format!(
                    "{alloc} allocatable{}, {used} requested, {} free{}",
                    capacity
                        .map(|c| format!(" (capacity {c})"))
                        .unwrap_or_default(),
                    alloc.saturating_sub(*used),
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", why.join(", "))
                    }
                ),
            ));
        }
        let mut top: Vec<(String, u64)> = owners.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if !top.is_empty() {
            facts.push(Fact::new(
                "GPU holders",
                top.iter()
                    .take(5)
                    .map(|(o, n)| format!("{o}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        let roomy: Vec<&(String, u64, u64, Vec<String>)> = rows
            .iter()
            .filter(|r| r.1.saturating_sub(r.2) >= want)
            .collect();
        let max_free = rows
            .iter()
            .map(|r| r.1.saturating_sub(r.2))
            .max()
            .unwrap_or(0);
        if let Some(t) = s.total
            && (nodes.len() as u32) < t
        {
            confidence = Confidence::Medium;
            missing_evidence.push("some nodes");
        }
        // Why a node withholds GPUs: its device plugin is down (the
        // kubelet then offers none), or the plugin marked some unhealthy.
        let withheld_why = |n: &str, c: u64, a: u64| {
            let plugin = plugins.iter().find(|p| p.node.as_deref() == Some(n));
            match plugin.and_then(|p| p.problem.as_deref()) {
                Some(problem) => format!("its device plugin {problem}"),
                None if a == 0 && plugin.is_none() => {
                    "its device plugin is not registered, or it marked every GPU unhealthy"
                        .to_owned()
                }
                None => format!("the device plugin marked {} unhealthy", c - a),
            }
        };
        let withheld_text = |w: &(String, u64, u64)| {
            format!(
                "{} has {}, offers {} (allocatable {} of capacity {}: {})",
                w.0,
                w.1,
                w.2,
                w.2,
                w.1,
                withheld_why(&w.0, w.1, w.2)
            )
        };
        let withheld_note = if withheld.is_empty() {
            String::new()
        } else {
            format!(
                "; {}",
                withheld
                    .iter()
                    .map(withheld_text)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        // Nodes that would take the pod if they offered every GPU they
        // have: the GPUs withheld are the cause of the shortage.
        let used_on = |n: &str| rows.iter().find(|r| r.0 == n).map_or(0, |r| r.2);
        let would_fit: Vec<&(String, u64, u64)> = withheld
            .iter()
            .filter(|w| w.1.saturating_sub(used_on(&w.0)) >= want)
            .collect();
        summary = if total_alloc == 0 {
            format!(
                "Pod {name} cannot be scheduled: no node in the evidence offers any {resource} (no GPU nodes, or their device plugin is not running){withheld_note}."
            )
        } else if roomy.is_empty() && !would_fit.is_empty() {
            format!(
                "Pod {name} cannot be scheduled: no node has {want} free {resource}; {}: with every GPU offered, it would fit.",
                would_fit
                    .iter()
                    .map(|w| format!("{}, {} requested", withheld_text(w), used_on(&w.0)))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        } else if roomy.is_empty() {
            if total_used == 0 {
                confidence = Confidence::Medium;
                missing_evidence.push("the pods holding GPUs");
            }
            format!(
                "Pod {name} cannot be scheduled: no node has {want} free {resource}; {total_used} of the cluster's {total_alloc} are requested by running pods and the most free on one node is {max_free}{}{withheld_note}.",
                top.first()
                    .map(|(o, n)| format!(" (the largest holder is {o} with {n})"))
                    .unwrap_or_default()
            )
        } else if roomy.iter().all(|r| !r.3.is_empty()) {
            let why: Vec<String> = roomy
                .iter()
                .map(|r| format!("{} ({})", r.0, r.3.join(", ")))
                .collect();
            format!(
                "Pod {name} cannot be scheduled: the nodes with {want} free {resource} do not take it: {}.",
                why.join("; ")
            )
        } else {
            confidence = Confidence::Medium;
            let fit: Vec<&str> = roomy
                .iter()
                .filter(|r| r.3.is_empty())
                .map(|r| r.0.as_str())
                .collect();
            format!(
                "Pod {name} was not scheduled for lack of {resource}, yet {} appear{} to have {want} free and nothing that excludes the pod: GPUs were freed since the scheduler looked, or pods holding them are missing from the evidence.",
                fit.join(", "),
                if fit.len() == 1 { "s" } else { "" }
            )
        };
    }
    let mut f = Finding::new(
        Kind::GpuUnschedulable,
        ctx.subject(pod, None),
        confidence,
        summary,
    );
    for fact in facts {
        f = f.fact(fact);
    }
    if !missing_evidence.is_empty() {
        f = f.fact(Fact::new("missing evidence", missing_evidence.join(", ")));
    }
    // The scheduler's own verdict on preemption ("No preemption victims
    // found for incoming pod", "Preemption is not helpful for
    // scheduling"): do not suggest what it already ruled out.
    let no_preemption = s.preemption_futile;
    let esc = resource.replace('.', "\\.");
    vec![
        f.step(format!(
            "kubectl get nodes -o custom-columns=NAME:.metadata.name,GPUS:.status.allocatable.{esc},TAINTS:.spec.taints"
        ))
        .step(format!(
            "kubectl get pods -A --field-selector=status.phase=Running -o custom-columns=NS:.metadata.namespace,NAME:.metadata.name,NODE:.spec.nodeName,GPUS:.spec.containers[*].resources.limits.{esc}"
        ))
        .step(format!(
            "Lower the pod's {resource} request, add a toleration or fix the selector if a free node excludes it, or {}; kubectl describe pod {name} -n {ns} shows the latest verdict.",
            if no_preemption {
                "wait for the holders (the scheduler found no pod it may preempt: a higher PriorityClass would be needed)"
            } else {
                "wait for (or preempt) the holders"
            }
        )),
    ]
}
