//! Lost GPUs: `NVML_ERROR_GPU_IS_LOST`, XID 79, or a GPU count that
//! dropped.

use std::collections::{BTreeMap, BTreeSet};

use gpuscope_model::{Event as NodeEvent, GpuHolder, Timestamp};

use super::{agents, gpu_subjects, recent, sampled_holders};
use crate::Context;
use crate::evidence::AgentRecords;
use crate::finding::{Confidence, Fact, Finding, Kind};

/// Lost GPUs of an agent: UUIDs (or `index N`) with the time. A GPU that
/// reported XID 79 before NVML's count dropped is lost too: once it is off
/// the bus NVML may stop listing it instead of answering `GPU_IS_LOST`.
pub(super) fn lost_gpus(a: &AgentRecords) -> Vec<(String, Option<u32>, Timestamp, Vec<GpuHolder>)> {
    let mut out: Vec<_> = a
        .events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::GpuLost {
                time,
                gpu_index,
                gpu_uuid,
                holders,
                ..
            } => Some((
                gpu_uuid
                    .clone()
                    .unwrap_or_else(|| format!("index {gpu_index}")),
                Some(*gpu_index),
                *time,
                holders.clone(),
            )),
            _ => None,
        })
        .collect();
    let drops: Vec<Timestamp> = count_drops(a).into_iter().map(|(t, _, _)| t).collect();
    for e in &a.events {
        if let NodeEvent::Xid {
            time,
            gpu_uuid,
            gpu_index,
            xid: 79,
            holders,
            ..
        } = e
            && !gpu_uuid.is_empty()
            && drops.iter().any(|d| d >= time)
            && !out.iter().any(|l| &l.0 == gpu_uuid)
        {
            out.push((gpu_uuid.clone(), *gpu_index, *time, holders.clone()));
        }
    }
    out
}

/// Times NVML counted fewer GPUs than before: (when, before, after).
fn count_drops(a: &AgentRecords) -> Vec<(Timestamp, u32, u32)> {
    a.events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::GpuCountChanged {
                time,
                before,
                after,
                ..
            } if after < before => Some((*time, *before, *after)),
            _ => None,
        })
        .collect()
}

pub(super) fn gpu_lost(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (node, a) in agents(ctx) {
        let n = node.as_deref().unwrap_or("NODE");
        let on = node
            .as_deref()
            .map(|n| format!(" on node {n}"))
            .unwrap_or_default();
        let drops: Vec<(Timestamp, u32, u32)> = count_drops(a)
            .into_iter()
            .filter(|(t, _, _)| recent(ctx, *t))
            .collect();
        let xid79: BTreeMap<String, Timestamp> = a
            .events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::Xid {
                    time,
                    gpu_uuid,
                    xid: 79,
                    ..
                } => Some((gpu_uuid.clone(), *time)),
                _ => None,
            })
            .collect();
        let mut seen = BTreeSet::new();
        let lost: Vec<_> = lost_gpus(a)
            .into_iter()
            .filter(|l| recent(ctx, l.2) && seen.insert(l.0.clone()))
            .collect();
        let steps = |f: Finding| {
            f.step(format!(
                "kubectl drain {n} --ignore-daemonsets --delete-emptydir-data"
            ))
            .step("On the node: nvidia-smi -q; dmesg | grep -iE 'xid|fallen off the bus|NVRM'")
            .step("Reboot the node (a lost GPU does not come back without it); if it is lost again, replace the GPU or check its PCIe slot and power (RMA).")
        };
        for (id, index, time, holders) in &lost {
            let uuid = (!id.starts_with("index ")).then_some(id.as_str());
            let holders = if holders.is_empty() {
                uuid.map(|u| sampled_holders(a, u, *time))
                    .unwrap_or_default()
            } else {
                holders.clone()
            };
            for subject in gpu_subjects(ctx, node.as_deref(), uuid, &holders) {
                let held = match (&subject.namespace, &subject.pod) {
                    (Some(ns), Some(p)) => {
                        format!("; pod {ns}/{p} held it and its GPU work is gone")
                    }
                    _ => String::new(),
                };
                let mut f = Finding::new(
                    Kind::GpuLost,
                    subject,
                    Confidence::High,
                    format!(
                        "GPU {id}{}{on} stopped answering NVML (GPU is lost: it fell off the bus){held}.",
                        index
                            .filter(|_| uuid.is_some())
                            .map(|i| format!(" (index {i})"))
                            .unwrap_or_default()
                    ),
                )
                .fact(Fact::at("lost", time.to_string(), *time));
                if let Some(t) = uuid.and_then(|u| xid79.get(u)) {
                    f = f.fact(Fact::at("xid", "79 (fallen off the bus)", *t));
                }
                for (t, b, af) in &drops {
                    f = f.fact(Fact::at("NVML GPU count", format!("{b} -> {af}"), *t));
                }
                out.push(steps(f));
            }
        }
        if lost.is_empty()
            && let Some(&(t, before, after)) = drops.last()
        {
            let f = Finding::new(
                Kind::GpuLost,
                gpu_subjects(ctx, node.as_deref(), None, &[]).remove(0),
                Confidence::High,
                format!(
                    "Node {n} lost {} GPU{}: NVML counted {before} and now counts {after}.",
                    before - after,
                    if before - after == 1 { "" } else { "s" }
                ),
            )
            .fact(Fact::at(
                "NVML GPU count",
                format!("{before} -> {after}"),
                t,
            ));
            out.push(steps(f));
        }
    }
    out
}
