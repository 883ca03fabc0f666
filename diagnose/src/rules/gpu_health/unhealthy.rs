//! GPUs the device plugin marked unhealthy (allocatable below capacity).

use std::collections::BTreeSet;

use gpuscope_model::Timestamp;

use super::device_plugin::PluginPod;
use super::lost::lost_gpus;
use super::xid::xid_groups;
use super::{agents, recent, sticky_unhealthy};
use crate::finding::{Confidence, Fact, Finding, Kind, Subject};
use crate::{Context, k8s};

pub(super) fn gpu_unhealthy(ctx: &Context<'_>, plugins: &[PluginPod<'_>]) -> Vec<Finding> {
    let th = &ctx.config.gpu_health;
    let all_agents = agents(ctx);
    let mut out = Vec::new();
    for n in ctx.nodes() {
        let Some(name) = n.metadata.name.as_deref() else {
            continue;
        };
        let (cap, alloc) = k8s::node_gpus(n);
        let (Some(cap), Some(alloc)) = (cap, alloc) else {
            continue;
        };
        let agent = all_agents
            .iter()
            .find(|(node, _)| node.as_deref() == Some(name))
            .map(|(_, a)| *a);
        // GPUs NVML sees now (not counting MIG instances; with MIG the
        // advertised count is of instances, so only capacity is compared).
        let (nvml, mig) = agent.map_or((None, false), |a| {
            let newest = a.gpus.iter().map(|g| g.time).max();
            let mig = a.gpus.iter().any(|g| g.parent_uuid.is_some());
            let seen: BTreeSet<&str> = a
                .gpus
                .iter()
                .filter(|g| {
                    g.parent_uuid.is_none()
                        && newest
                            .is_some_and(|t| t.since(g.time).as_secs() <= th.gpu_sample_window_secs)
                })
                .map(|g| g.uuid.as_str())
                .collect();
            ((!seen.is_empty()).then_some(seen.len() as u64), mig)
        });
        let expected = match nvml {
            Some(v) if !mig => cap.max(v),
            _ => cap,
        };
        if alloc >= expected {
            continue;
        }
        let plugin = plugins.iter().find(|p| p.node.as_deref() == Some(name));
        if alloc == 0 && plugin.is_some_and(|p| p.problem.is_some()) {
            continue; // device_plugin_down tells it.
        }
        // Which GPU: XIDs the plugin acts on, or a lost GPU.
        let mut suspects: Vec<(String, String, Timestamp)> = Vec::new();
        if let Some(a) = agent {
            let sticky = sticky_unhealthy(ctx, Some(name), a, plugins);
            for g in xid_groups(ctx, a, &sticky) {
                if !th.app_xids.contains(&g.xid) && !g.uuid.is_empty() {
                    suspects.push((g.uuid.clone(), format!("XID {}", g.xid), g.last));
                }
            }
            for (id, _, t, _) in lost_gpus(a) {
                if (recent(ctx, t) || sticky.get(&id).is_some_and(|since| t >= *since))
                    && !suspects.iter().any(|s| s.0 == id)
                {
                    suspects.push((id, "lost".to_owned(), t));
                }
            }
        }
        let missing = expected - alloc;
        let counts = format!(
            "allocatable {alloc}, capacity {cap}{}",
            nvml.filter(|_| !mig)
                .map(|v| format!(", NVML sees {v}"))
                .unwrap_or_default()
        );
        let (confidence, summary) = if !suspects.is_empty() {
            let names: Vec<String> = suspects
                .iter()
                .map(|(g, why, _)| format!("{g} after {why}"))
                .collect();
            (
                Confidence::High,
                format!(
                    "Node {name} offers {alloc} of its {expected} GPUs: the device plugin marked {} unhealthy ({}).",
                    names.len(),
                    names.join(", ")
                ),
            )
        } else if alloc == 0 {
            (
                Confidence::Medium,
                format!(
                    "Node {name} offers none of its {expected} GPUs ({counts}): the device plugin is not registered with the kubelet, or it marked every GPU unhealthy{}.",
                    if plugin.is_none() {
                        "; its pod is not in the evidence"
                    } else {
                        ""
                    }
                ),
            )
        } else {
            (
                Confidence::Medium,
                format!(
                    "Node {name} offers {alloc} of its {expected} GPUs ({counts}): the device plugin marked {missing} unhealthy; no XID or lost-GPU event in the evidence names which."
                ),
            )
        };
        let mut f = Finding::new(
            Kind::GpuUnhealthy,
            Subject {
                node: Some(name.to_owned()),
                gpu: suspects.first().map(|s| s.0.clone()),
                ..Subject::default()
            },
            confidence,
            summary,
        )
        .fact(Fact::new("allocatable nvidia.com/gpu", alloc.to_string()))
        .fact(Fact::new("capacity nvidia.com/gpu", cap.to_string()));
        if let (Some(v), false) = (nvml, mig) {
            f = f.fact(Fact::new("GPUs NVML sees", v.to_string()));
        }
        for (g, why, t) in &suspects {
            f = f.fact(Fact::at(format!("GPU {g}"), why.clone(), *t));
        }
        if let Some(p) = plugin {
            f = f.fact(Fact::new(
                "device-plugin pod",
                format!(
                    "{} {}",
                    k8s::pod_name(p.pod),
                    p.problem.as_deref().unwrap_or("is Running and Ready")
                ),
            ));
        }
        let logs = plugin.map_or_else(
            || "kubectl logs -n NAMESPACE DEVICE_PLUGIN_POD | grep -i unhealthy".to_owned(),
            |p| {
                format!(
                    "kubectl logs {} -n {} | grep -i unhealthy",
                    k8s::name(p.pod),
                    k8s::namespace(p.pod)
                )
            },
        );
        out.push(
            f.step(logs)
                .step(format!("On node {name}: nvidia-smi -q -d ECC,ROW_REMAPPER; dmesg | grep -i xid"))
                .step(format!("kubectl drain {name} --ignore-daemonsets, reset the GPU or reboot, then restart the device-plugin pod so it advertises the GPU again")),
        );
    }
    out
}
