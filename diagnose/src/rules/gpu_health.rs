//! GPUs and the device plugin: XID errors, lost GPUs, GPUs the device
//! plugin marked unhealthy, device-plugin pods that are down, pods that
//! cannot get GPUs, and the kubelet's admission errors.
//!
//! Written from what the pieces do:
//! - the driver reports faults as XIDs; the agent records them with the
//!   pods the kubelet gave the GPU to (PodResources), and a GPU that stops
//!   answering NVML (`NVML_ERROR_GPU_IS_LOST`) or vanishes from its count;
//! - NVIDIA's device plugin advertises `nvidia.com/gpu` and marks a GPU
//!   unhealthy on XIDs other than the application-caused ones (13, 31, 43,
//!   45, 68, 109 by default); the kubelet then lowers the node's
//!   allocatable count below its capacity. When the plugin goes away the
//!   kubelet sets allocatable to 0;
//! - the scheduler reports `Insufficient nvidia.com/gpu`; the kubelet's
//!   device manager rejects a pod at admission (`UnexpectedAdmissionError`)
//!   when it cannot allocate the devices the scheduler counted on.
//!
//! Decisions:
//! - A finding about a GPU whose holder is known names the holder pod in
//!   its subject (one finding per holder pod), so that explaining that pod
//!   shows it; without a holder it is a node finding.
//! - XID 79 and a lost GPU are one failure: the lost-GPU finding cites the
//!   XID and no separate XID finding is made for it.
//! - `device_plugin_down` is a node finding (the plugin pod is named in its
//!   evidence), so it shows for every pod on the node. When the evidence
//!   holds no device-plugin pod at all, it says nothing: a bundle that did
//!   not collect them cannot tell "missing" from "not collected". A GPU
//!   node without a plugin pod is reported (medium) only when plugin pods
//!   of other nodes are in the evidence.
//! - `gpu_unschedulable` is the primary finding for a scheduler message
//!   naming `Insufficient nvidia.com/...`; the message's other clauses are
//!   its evidence, and `pod` makes no pending finding for it.

use std::collections::{BTreeMap, BTreeSet};

use gpuscope_agent::model::{Event as NodeEvent, GpuHolder, Timestamp};
use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, Toleration};
use serde::{Deserialize, Serialize};

use super::pod::{event_count, event_fact, human, message, reason_is, scheduling_failure, waiting};
use crate::evidence::AgentRecords;
use crate::finding::{Confidence, Fact, Finding, Kind, Subject};
use crate::{Context, k8s};

/// Thresholds of the GPU-health rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// XIDs and lost-GPU events older than this (before "now") are not
    /// reported. Default 86 400 s (a day): long enough to catch the fault
    /// behind a failure found the next morning, short enough that a GPU
    /// reset last week does not haunt every report.
    pub event_window_secs: u64,
    /// XIDs that the application causes and that do not make NVIDIA's
    /// device plugin mark the GPU unhealthy. Default 13, 31, 43, 45, 68,
    /// 109: the device plugin's own default skip list.
    pub app_xids: Vec<u64>,
    /// Label selectors (`key=value`) that find the device-plugin pods.
    /// Default: the labels of NVIDIA's Helm chart
    /// (`app.kubernetes.io/name=nvidia-device-plugin`), its static
    /// DaemonSet (`name=nvidia-device-plugin-ds`) and the GPU operator's
    /// (`app=nvidia-device-plugin-daemonset`).
    pub device_plugin_selectors: Vec<String>,
    /// GPU samples within this long before the newest one count as the
    /// GPUs NVML sees now. Default 600 s: several sampling intervals, so
    /// that one missed sample does not look like a lost GPU.
    pub gpu_sample_window_secs: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            event_window_secs: 86_400,
            app_xids: vec![13, 31, 43, 45, 68, 109],
            device_plugin_selectors: vec![
                "app.kubernetes.io/name=nvidia-device-plugin".into(),
                "name=nvidia-device-plugin-ds".into(),
                "app=nvidia-device-plugin-daemonset".into(),
            ],
            gpu_sample_window_secs: 600,
        }
    }
}

/// Every finding of this family.
pub(crate) fn run(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let plugins = plugin_states(ctx);
    out.extend(gpu_xid(ctx));
    out.extend(gpu_lost(ctx));
    out.extend(gpu_unhealthy(ctx, &plugins));
    out.extend(device_plugin_down(ctx, &plugins));
    for pod in ctx.pods() {
        out.extend(gpu_unschedulable(ctx, pod));
        out.extend(admission_error(ctx, pod, &plugins));
    }
    out
}

// ---------------------------------------------------------------------
// XIDs.

/// Who or what an XID points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XidCause {
    /// The application (bad kernel, illegal address).
    App,
    /// Follows another error (the process was torn down).
    Follows,
    /// GPU memory, NVLink, PCIe: hardware.
    Hardware,
    /// Driver or GPU firmware (GSP, micro-controller).
    Driver,
}

/// The meaning of the XIDs gpuscope knows (NVIDIA's XID catalogue,
/// <https://docs.nvidia.com/deploy/xid-errors/>).
fn xid_info(xid: u64) -> Option<(&'static str, XidCause)> {
    use XidCause::*;
    Some(match xid {
        13 => (
            "graphics engine exception, usually the application: an out-of-range access or an illegal instruction",
            App,
        ),
        31 => (
            "GPU memory page fault: the application accessed an illegal address (rarely a driver bug)",
            App,
        ),
        43 => (
            "GPU stopped processing: the application faulted and its channel was reset",
            App,
        ),
        45 => (
            "preemptive cleanup: a process's GPU work was torn down because it ended or was killed, often after another error",
            Follows,
        ),
        48 => (
            "double-bit ECC error: uncorrectable GPU memory error (hardware)",
            Hardware,
        ),
        61 => (
            "internal micro-controller breakpoint or warning (firmware)",
            Driver,
        ),
        62 => ("internal micro-controller halt (firmware)", Driver),
        63 => (
            "ECC page retirement or row remapping recorded: a failing memory row was replaced",
            Hardware,
        ),
        64 => (
            "ECC page retirement or row remapping failed (hardware)",
            Hardware,
        ),
        68 => ("video processor (NVDEC/NVENC) exception", App),
        74 => (
            "NVLink error: a link or its peer GPU failed (hardware or cabling)",
            Hardware,
        ),
        79 => (
            "GPU has fallen off the bus: PCIe, power or thermal fault (hardware)",
            Hardware,
        ),
        92 => (
            "high single-bit ECC error rate: the GPU's memory is degrading",
            Hardware,
        ),
        94 => (
            "contained ECC error: the affected application was stopped, other applications are fine",
            Hardware,
        ),
        95 => (
            "uncontained ECC error: every application on the GPU is affected until it is reset",
            Hardware,
        ),
        109 => (
            "context switch timeout: a kernel ran too long to be preempted, or a driver fault",
            App,
        ),
        119 => (
            "GSP RPC timeout: the GPU System Processor firmware stopped answering the driver",
            Driver,
        ),
        120 => (
            "GSP error: the GPU System Processor firmware faulted",
            Driver,
        ),
        140 => ("unrecovered ECC error in GPU memory (hardware)", Hardware),
        154 => (
            "GPU recovery action changed: the driver asks for a GPU reset or node reboot",
            Driver,
        ),
        _ => return None,
    })
}

/// The node an agent's records belong to: its own name, or, for a
/// bundle's unnamed `agent.jsonl`, the node of the pods holding its GPUs,
/// else the only node (or the only node pods are bound to) in the
/// evidence.
fn agent_node(ctx: &Context<'_>, a: &AgentRecords) -> Option<String> {
    if let Some(n) = &a.node {
        return Some(n.clone());
    }
    let holders = a
        .gpus
        .iter()
        .flat_map(|g| g.holders.iter())
        .chain(a.events.iter().flat_map(|e| match e {
            NodeEvent::Xid { holders, .. } | NodeEvent::GpuLost { holders, .. } => {
                holders.as_slice()
            }
            _ => &[],
        }));
    for h in holders {
        if let Some(n) = find_pod(ctx, &h.namespace, &h.pod).and_then(k8s::node_name) {
            return Some(n.to_owned());
        }
    }
    if let [n] = ctx.nodes() {
        return n.metadata.name.clone();
    }
    let bound: BTreeSet<&str> = ctx.pods().iter().filter_map(k8s::node_name).collect();
    match bound.len() {
        1 => bound.into_iter().next().map(str::to_owned),
        _ => None,
    }
}

/// Agents with the node each stands for.
fn agents<'a>(ctx: &Context<'a>) -> Vec<(Option<String>, &'a AgentRecords)> {
    ctx.evidence
        .agents
        .iter()
        .map(|a| (agent_node(ctx, a), a))
        .collect()
}

fn find_pod<'a>(ctx: &Context<'a>, ns: &str, name: &str) -> Option<&'a Pod> {
    ctx.pods()
        .iter()
        .find(|p| k8s::namespace(p) == ns && k8s::name(p) == name)
}

/// Whether an event is inside the reporting window.
fn recent(ctx: &Context<'_>, t: Timestamp) -> bool {
    ctx.now.since(t).as_secs() <= ctx.config.gpu_health.event_window_secs
}

/// One subject per holder pod (or one node subject when none).
fn gpu_subjects(
    ctx: &Context<'_>,
    node: Option<&str>,
    gpu: Option<&str>,
    holders: &[GpuHolder],
) -> Vec<Subject> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for h in holders {
        if !seen.insert((h.namespace.clone(), h.pod.clone())) {
            continue;
        }
        let mut s = match find_pod(ctx, &h.namespace, &h.pod) {
            Some(p) => ctx.subject(p, Some(&h.container)),
            None => Subject {
                namespace: Some(h.namespace.clone()),
                pod: Some(h.pod.clone()),
                container: Some(h.container.clone()),
                ..Subject::default()
            },
        };
        if s.node.is_none() {
            s.node = node.map(str::to_owned);
        }
        s.gpu = gpu.map(str::to_owned);
        out.push(s);
    }
    if out.is_empty() {
        out.push(Subject {
            node: node.map(str::to_owned),
            gpu: gpu.map(str::to_owned),
            ..Subject::default()
        });
    }
    out
}

/// Holders of a GPU from the agent's samples, nearest before `t`.
fn sampled_holders(a: &AgentRecords, uuid: &str, t: Timestamp) -> Vec<GpuHolder> {
    a.gpus
        .iter()
        .filter(|g| g.uuid == uuid && !g.holders.is_empty())
        .min_by_key(|g| {
            if g.time <= t {
                t.0 - g.time.0
            } else {
                u64::MAX / 2 + (g.time.0 - t.0) / 2
            }
        })
        .map(|g| g.holders.clone())
        .unwrap_or_default()
}

/// Lost GPUs of an agent: UUIDs (or `index N`) with the time.
fn lost_gpus(a: &AgentRecords) -> Vec<(String, Option<u32>, Timestamp, Vec<GpuHolder>)> {
    a.events
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
        .collect()
}

struct XidGroup {
    uuid: String,
    index: Option<u32>,
    xid: u64,
    first: Timestamp,
    last: Timestamp,
    count: u64,
    lines: u64,
    holders: Vec<GpuHolder>,
    simulated: bool,
}

fn xid_groups(ctx: &Context<'_>, a: &AgentRecords) -> Vec<XidGroup> {
    let mut groups: BTreeMap<(String, u64), XidGroup> = BTreeMap::new();
    for e in &a.events {
        let NodeEvent::Xid {
            time,
            gpu_uuid,
            gpu_index,
            xid,
            count,
            holders,
            simulated,
        } = e
        else {
            continue;
        };
        if !recent(ctx, *time) {
            continue;
        }
        let g = groups
            .entry((gpu_uuid.clone(), *xid))
            .or_insert_with(|| XidGroup {
                uuid: gpu_uuid.clone(),
                index: *gpu_index,
                xid: *xid,
                first: *time,
                last: *time,
                count: 0,
                lines: 0,
                holders: Vec::new(),
                simulated: *simulated,
            });
        g.first = g.first.min(*time);
        g.last = g.last.max(*time);
        g.count = g.count.max(*count);
        g.lines += 1;
        for h in holders {
            if !g.holders.contains(h) {
                g.holders.push(h.clone());
            }
        }
    }
    let mut v: Vec<XidGroup> = groups.into_values().collect();
    for g in &mut v {
        g.count = g.count.max(g.lines);
        if g.holders.is_empty() && !g.uuid.is_empty() {
            g.holders = sampled_holders(a, &g.uuid, g.last);
        }
    }
    v
}

fn gpu_xid(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (node, a) in agents(ctx) {
        let lost: BTreeSet<String> = lost_gpus(a).into_iter().map(|l| l.0).collect();
        let groups = xid_groups(ctx, a);
        for g in &groups {
            if g.xid == 79 && lost.contains(&g.uuid) {
                continue; // Told by gpu_lost.
            }
            // XID 45 is the cleanup after another fault: told with it.
            let cleanup = groups.iter().find(|o| o.xid == 45 && o.uuid == g.uuid);
            if g.xid == 45 && groups.iter().any(|o| o.xid != 45 && o.uuid == g.uuid) {
                continue;
            }
            let gpu = if g.uuid.is_empty() {
                g.index
                    .map_or_else(|| "an unnamed GPU".to_owned(), |i| format!("GPU index {i}"))
            } else {
                format!(
                    "GPU {}{}",
                    g.uuid,
                    g.index.map(|i| format!(" (index {i})")).unwrap_or_default()
                )
            };
            let on = node
                .as_deref()
                .map(|n| format!(" on node {n}"))
                .unwrap_or_default();
            let times = if g.count > 1 {
                format!(" {} times", g.count)
            } else {
                String::new()
            };
            let (confidence, meaning, cause) = match xid_info(g.xid) {
                Some((m, c)) if !g.uuid.is_empty() => (Confidence::High, m.to_owned(), Some(c)),
                Some((m, c)) => (Confidence::Medium, m.to_owned(), Some(c)),
                None => (
                    Confidence::Medium,
                    "an XID gpuscope's table does not describe; see NVIDIA's XID catalogue"
                        .to_owned(),
                    None,
                ),
            };
            for subject in gpu_subjects(
                ctx,
                node.as_deref(),
                (!g.uuid.is_empty()).then_some(g.uuid.as_str()),
                &g.holders,
            ) {
                let held = match (&subject.namespace, &subject.pod) {
                    (Some(ns), Some(p)) => format!(", while pod {ns}/{p} held it"),
                    _ => String::new(),
                };
                let mut f = Finding::new(
                    Kind::GpuXid,
                    subject,
                    confidence,
                    format!("{gpu}{on} reported XID {}{times}{held}: {meaning}.", g.xid),
                )
                .fact(Fact::at("xid", g.xid.to_string(), g.last))
                .fact(Fact::new("count", g.count.to_string()));
                if g.first != g.last {
                    f = f.fact(Fact::at("first seen", g.first.to_string(), g.first));
                }
                if let Some(c) = cleanup.filter(|_| g.xid != 45) {
                    f = f.fact(Fact::at(
                        "followed by",
                        format!("XID 45 (preemptive cleanup) {} times", c.count),
                        c.last,
                    ));
                }
                if !g.holders.is_empty() {
                    let names: Vec<String> = g
                        .holders
                        .iter()
                        .map(|h| format!("{}/{} ({})", h.namespace, h.pod, h.container))
                        .collect();
                    f = f.fact(Fact::new("holders", names.join(", ")));
                }
                if g.simulated {
                    f = f.fact(Fact::new("simulated", "true (gpuscope's fake NVML)"));
                }
                let n = node.as_deref().unwrap_or("NODE");
                let sel = if g.uuid.is_empty() {
                    g.index.map_or_else(String::new, |i| format!(" -i {i}"))
                } else {
                    format!(" -i {}", g.uuid)
                };
                let read_log = match (&f.subject.namespace, &f.subject.pod) {
                    (Some(ns), Some(p)) => format!("kubectl logs {p} -n {ns} --previous   # the CUDA error the program saw"),
                    _ => "Find the process that ran on the GPU at that time and read its log for the CUDA error.".to_owned(),
                };
                f = match cause {
                    Some(XidCause::App) | Some(XidCause::Follows) => f
                        .step(read_log)
                        .step("Re-run with CUDA_LAUNCH_BLOCKING=1 (or under compute-sanitizer) to find the faulting kernel; if it repeats with several programs on this GPU only, treat it as hardware."),
                    Some(XidCause::Hardware) | Some(XidCause::Driver) => f
                        .step(format!("kubectl drain {n} --ignore-daemonsets --delete-emptydir-data   # move work off the GPU's node"))
                        .step(format!("On the node: nvidia-smi -q{sel} -d ECC,ROW_REMAPPER,PAGE_RETIREMENT; dmesg | grep -i xid"))
                        .step("Reset the GPU (nvidia-smi -r) or reboot the node; if the XID comes back, replace the GPU (RMA)."),
                    None => f
                        .step(format!("Look up XID {} in NVIDIA's catalogue: https://docs.nvidia.com/deploy/xid-errors/", g.xid))
                        .step(format!("On the node: dmesg | grep -i xid; nvidia-smi -q{sel}")),
                };
                out.push(f);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------
// Lost GPUs.

fn gpu_lost(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (node, a) in agents(ctx) {
        let n = node.as_deref().unwrap_or("NODE");
        let on = node
            .as_deref()
            .map(|n| format!(" on node {n}"))
            .unwrap_or_default();
        let drops: Vec<(Timestamp, u32, u32)> = a
            .events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::GpuCountChanged {
                    time,
                    before,
                    after,
                    ..
                } if after < before && recent(ctx, *time) => Some((*time, *before, *after)),
                _ => None,
            })
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

// ---------------------------------------------------------------------
// The device plugin.

/// One device-plugin pod and what is wrong with it.
struct PluginPod<'a> {
    pod: &'a Pod,
    /// The node it serves.
    node: Option<String>,
    /// Why it is down (`None`: Running and Ready).
    problem: Option<String>,
    restarts: u32,
}

/// Device-plugin pods found by the configured selectors.
fn plugin_states<'a>(ctx: &Context<'a>) -> Vec<PluginPod<'a>> {
    let selectors: Vec<(&str, &str)> = ctx
        .config
        .gpu_health
        .device_plugin_selectors
        .iter()
        .filter_map(|s| s.split_once('='))
        .collect();
    ctx.pods()
        .iter()
        .filter(|p| {
            p.metadata.labels.as_ref().is_some_and(|l| {
                selectors
                    .iter()
                    .any(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
        })
        .map(|p| {
            let phase = k8s::phase(p);
            let restarts: u32 = k8s::container_statuses(p)
                .map(|c| c.restart_count.max(0) as u32)
                .sum();
            let not_ready: Vec<String> = k8s::container_statuses(p)
                .filter(|c| !c.ready)
                .map(|c| match waiting(c) {
                    Some((r, _)) if !r.is_empty() => format!("container {} is {r}", c.name),
                    _ => format!("container {} is not ready", c.name),
                })
                .collect();
            let problem = if phase != "Running" {
                Some(match not_ready.first() {
                    Some(w) => format!("is {phase}; {w}"),
                    None => format!("is {phase}"),
                })
            } else if !not_ready.is_empty() {
                Some(format!("is Running but {}", not_ready.join(", ")))
            } else {
                None
            };
            PluginPod {
                pod: p,
                node: k8s::node_name(p)
                    .map(str::to_owned)
                    .or_else(|| daemonset_target(p)),
                problem,
                restarts,
            }
        })
        .collect()
}

/// The node an unscheduled DaemonSet pod is meant for: its required node
/// affinity `matchFields` on `metadata.name`.
fn daemonset_target(p: &Pod) -> Option<String> {
    let terms = &p
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// Whether a node has GPUs: `nvidia.com/gpu` capacity, or the GPU
/// feature-discovery label.
fn is_gpu_node(n: &Node) -> bool {
    let (cap, _) = k8s::node_gpus(n);
    cap.is_some_and(|c| c > 0)
        || n.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("nvidia.com/gpu.present"))
            .is_some_and(|v| v == "true")
}

fn device_plugin_down(ctx: &Context<'_>, plugins: &[PluginPod<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    for pp in plugins {
        let Some(problem) = &pp.problem else {
            continue;
        };
        let pn = k8s::pod_name(pp.pod);
        let node = pp.node.clone();
        let on = node
            .as_deref()
            .map(|n| format!(" on node {n}"))
            .unwrap_or_default();
        let mut f = Finding::new(
            Kind::DevicePluginDown,
            Subject {
                node: node.clone(),
                ..Subject::default()
            },
            Confidence::High,
            format!(
                "The NVIDIA device plugin{on} is down (pod {pn} {problem}{}): the kubelet cannot allocate GPUs there, so new GPU pods on the node fail or wait.",
                if pp.restarts > 0 {
                    format!(", {} restarts", pp.restarts)
                } else {
                    String::new()
                }
            ),
        )
        .fact(Fact::new("device-plugin pod", pn.clone()))
        .fact(Fact::new("phase", k8s::phase(pp.pod)))
        .fact(Fact::new("restarts", pp.restarts.to_string()));
        for c in k8s::container_statuses(pp.pod) {
            if let Some(t) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
                let v = format!(
                    "{} ({})",
                    t.exit_code,
                    t.reason.as_deref().unwrap_or("no reason")
                );
                f = f.fact(match t.finished_at.as_ref() {
                    Some(at) => Fact::at(format!("{} last exit", c.name), v, k8s::ts(at)),
                    None => Fact::new(format!("{} last exit", c.name), v),
                });
            }
        }
        if let Some(n) = node.as_deref().and_then(|n| ctx.node(n)) {
            let (cap, alloc) = k8s::node_gpus(n);
            f = f.fact(Fact::new(
                "node nvidia.com/gpu",
                format!("capacity {}, allocatable {}", opt(cap), opt(alloc)),
            ));
        }
        let (ns, name) = (k8s::namespace(pp.pod), k8s::name(pp.pod));
        out.push(
            f.step(format!("kubectl logs {name} -n {ns} --previous --tail=50   # e.g. 'could not load NVML library': driver or container toolkit missing"))
                .step(format!("kubectl describe pod {name} -n {ns}"))
                .step(format!(
                    "kubectl get node {} -o jsonpath='{{.status.allocatable}}'",
                    node.as_deref().unwrap_or("NODE")
                )),
        );
    }
    // GPU nodes with no plugin pod, when plugin pods of other nodes show
    // that they were collected.
    if !plugins.is_empty() {
        for n in ctx.nodes().iter().filter(|n| is_gpu_node(n)) {
            let Some(name) = n.metadata.name.as_deref() else {
                continue;
            };
            if plugins.iter().any(|p| p.node.as_deref() == Some(name)) {
                continue;
            }
            let (cap, alloc) = k8s::node_gpus(n);
            out.push(
                Finding::new(
                    Kind::DevicePluginDown,
                    Subject {
                        node: Some(name.to_owned()),
                        ..Subject::default()
                    },
                    Confidence::Medium,
                    format!(
                        "No NVIDIA device-plugin pod runs on GPU node {name} although {} run on other nodes: its DaemonSet does not select this node (node selector, labels or an untolerated taint).",
                        plugins.len()
                    ),
                )
                .fact(Fact::new(
                    "node nvidia.com/gpu",
                    format!("capacity {}, allocatable {}", opt(cap), opt(alloc)),
                ))
                .fact(Fact::new(
                    "device-plugin pods elsewhere",
                    plugins
                        .iter()
                        .map(|p| k8s::pod_name(p.pod))
                        .collect::<Vec<_>>()
                        .join(", "),
                ))
                .step("kubectl get ds -A -l app.kubernetes.io/name=nvidia-device-plugin -o yaml   # nodeSelector, affinity, tolerations")
                .step(format!("kubectl get node {name} --show-labels; kubectl describe node {name} | grep Taints")),
            );
        }
    }
    out
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

// ---------------------------------------------------------------------
// GPUs marked unhealthy.

fn gpu_unhealthy(ctx: &Context<'_>, plugins: &[PluginPod<'_>]) -> Vec<Finding> {
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
            for g in xid_groups(ctx, a) {
                if !th.app_xids.contains(&g.xid) && !g.uuid.is_empty() {
                    suspects.push((g.uuid.clone(), format!("XID {}", g.xid), g.last));
                }
            }
            for (id, _, t, _) in lost_gpus(a) {
                if recent(ctx, t) && !suspects.iter().any(|s| s.0 == id) {
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

// ---------------------------------------------------------------------
// Pods that cannot get GPUs.

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

fn tolerates(t: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == effect);
    let key_ok = match t.key.as_deref() {
        None | Some("") => t.operator.as_deref() == Some("Exists"),
        Some(k) => k == key,
    };
    let value_ok = match t.operator.as_deref() {
        Some("Exists") => true,
        _ => t.value.as_deref().unwrap_or("") == value,
    };
    effect_ok && key_ok && value_ok
}

fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let v = labels.get(&r.key);
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => v.is_some_and(|v| values.contains(v)),
        "NotIn" => v.is_none_or(|v| !values.contains(v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" | "Lt" => {
            let (Some(a), Some(b)) = (
                v.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" { a > b } else { a < b }
        }
        _ => false,
    }
}

/// Why a node with enough free GPUs does not take the pod (empty: it
/// would).
fn exclusions(pod: &Pod, n: &Node) -> Vec<String> {
    let mut why = Vec::new();
    let spec = pod.spec.as_ref();
    let nspec = n.spec.as_ref();
    if nspec.and_then(|s| s.unschedulable) == Some(true) {
        why.push("cordoned".to_owned());
    }
    let tolerations: &[Toleration] = spec.and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
    for t in nspec.and_then(|s| s.taints.as_ref()).into_iter().flatten() {
        if t.effect != "NoSchedule" && t.effect != "NoExecute" {
            continue;
        }
        let value = t.value.as_deref().unwrap_or("");
        if !tolerations
            .iter()
            .any(|tol| tolerates(tol, &t.key, value, &t.effect))
        {
            why.push(format!(
                "taint {}={value}:{} not tolerated",
                t.key, t.effect
            ));
        }
    }
    let empty = BTreeMap::new();
    let labels = n.metadata.labels.as_ref().unwrap_or(&empty);
    for (k, v) in spec
        .and_then(|s| s.node_selector.as_ref())
        .into_iter()
        .flatten()
    {
        if labels.get(k) != Some(v) {
            why.push(format!("nodeSelector {k}={v} does not match"));
        }
    }
    if let Some(req) = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    {
        let name = n.metadata.name.clone().unwrap_or_default();
        let term_ok = |t: &k8s_openapi::api::core::v1::NodeSelectorTerm| {
            t.match_expressions
                .iter()
                .flatten()
                .all(|r| requirement_matches(r, labels))
                && t.match_fields.iter().flatten().all(|r| {
                    let mut m = BTreeMap::new();
                    m.insert("metadata.name".to_owned(), name.clone());
                    requirement_matches(r, &m)
                })
        };
        if !req.node_selector_terms.iter().any(term_ok) {
            why.push("required node affinity does not match".to_owned());
        }
    }
    why
}

fn gpu_unschedulable(ctx: &Context<'_>, pod: &Pod) -> Vec<Finding> {
    let Some(s) = scheduling_failure(ctx, pod) else {
        return Vec::new();
    };
    let Some(shortage) = s.gpu_shortage() else {
        return Vec::new();
    };
    let resource = match &shortage.class {
        super::pod::ReasonClass::Resource(r) => r.clone(),
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
            rows.push((nname, alloc, used, exclusions(pod, n)));
        }
        let total_alloc: u64 = rows.iter().map(|r| r.1).sum();
        let total_used: u64 = rows.iter().map(|r| r.2).sum();
        for (n, alloc, used, why) in &rows {
            if *alloc == 0 && *used == 0 {
                continue;
            }
            facts.push(Fact::new(
                format!("node {n}"),
                format!(
                    "{alloc} allocatable, {used} requested, {} free{}",
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
        summary = if total_alloc == 0 {
            format!(
                "Pod {name} cannot be scheduled: no node in the evidence offers any {resource} (no GPU nodes, or their device plugin is not running)."
            )
        } else if roomy.is_empty() {
            if total_used == 0 {
                confidence = Confidence::Medium;
                missing_evidence.push("the pods holding GPUs");
            }
            format!(
                "Pod {name} cannot be scheduled: no node has {want} free {resource}; {total_used} of the cluster's {total_alloc} are requested by running pods and the most free on one node is {max_free}{}.",
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
    let esc = resource.replace('.', "\\.");
    vec![
        f.step(format!(
            "kubectl get nodes -o custom-columns=NAME:.metadata.name,GPUS:.status.allocatable.{esc},TAINTS:.spec.taints"
        ))
        .step(format!(
            "kubectl get pods -A --field-selector=status.phase=Running -o custom-columns=NS:.metadata.namespace,NAME:.metadata.name,NODE:.spec.nodeName,GPUS:.spec.containers[*].resources.limits.{esc}"
        ))
        .step(format!(
            "Lower the pod's {resource} request, add a toleration or fix the selector if a free node excludes it, or wait for (or preempt) the holders; kubectl describe pod {name} -n {ns} shows the latest verdict."
        )),
    ]
}

// ---------------------------------------------------------------------
// Kubelet admission.

fn admission_error(ctx: &Context<'_>, pod: &Pod, plugins: &[PluginPod<'_>]) -> Vec<Finding> {
    let status = pod.status.as_ref();
    let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    let event = ctx
        .events_for(pod)
        .into_iter()
        .rev()
        .find(|e| reason_is(e, "UnexpectedAdmissionError"));
    let by_status = reason == "UnexpectedAdmissionError"
        || reason == "NodeAffinity"
        || (reason.starts_with("OutOf") && k8s::phase(pod) == "Failed");
    if !by_status && event.is_none() {
        return Vec::new();
    }
    let msg = status
        .and_then(|s| s.message.as_deref())
        .filter(|m| !m.is_empty())
        .or(event.map(message))
        .unwrap_or("");
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let node = k8s::node_name(pod).unwrap_or("NODE");
    let lower = msg.to_ascii_lowercase();
    let why = if lower.contains("unhealthy devices") {
        "the device plugin had marked the GPUs the kubelet picked as unhealthy".to_owned()
    } else if lower.contains("requested number of devices unavailable") {
        format!(
            "the kubelet's device manager had no free GPU to give it ({}): the device plugin restarted or re-registered, a GPU went unhealthy, or the kubelet restarted with a stale device checkpoint",
            msg.split("unavailable for ")
                .nth(1)
                .map_or("", |r| r.trim_end_matches(", which is unexpected").trim())
        )
    } else if let Some(res) = reason.strip_prefix("OutOf") {
        format!(
            "when it reached node {node}, the node's {res} were all in use (the scheduler's view was stale, or pods were placed with nodeName and bypassed it)"
        )
    } else if reason == "NodeAffinity" {
        format!(
            "node {node} no longer matches its node selector or affinity (the node's labels changed after scheduling)"
        )
    } else {
        "the kubelet's device manager could not allocate its devices".to_owned()
    };
    let mut f = Finding::new(
        Kind::AdmissionError,
        ctx.subject(pod, None),
        Confidence::High,
        format!("The kubelet rejected pod {name} at admission: {why}."),
    );
    if !reason.is_empty() {
        f = f.fact(Fact::new("reason", reason));
    }
    f = f.fact(match event {
        Some(e) => event_fact("message", e),
        None => Fact::new("message", msg),
    });
    if let Some(e) = event {
        f = f.fact(Fact::new("admission failures", event_count(e).to_string()));
    }
    if let Some(n) = k8s::node_name(pod).and_then(|n| ctx.node(n)) {
        let (cap, alloc) = k8s::node_gpus(n);
        f = f.fact(Fact::new(
            "node nvidia.com/gpu",
            format!("capacity {}, allocatable {}", opt(cap), opt(alloc)),
        ));
    }
    let plugin = plugins
        .iter()
        .find(|p| p.node.as_deref() == k8s::node_name(pod));
    if let Some(p) = plugin {
        f = f.fact(Fact::new(
            "device-plugin pod",
            format!(
                "{} {}, {} restarts",
                k8s::pod_name(p.pod),
                p.problem.as_deref().unwrap_or("is Running and Ready"),
                p.restarts
            ),
        ));
    }
    if let Some(t) = status.and_then(|s| s.start_time.as_ref()).map(k8s::ts) {
        f = f.fact(Fact::at("started", human(ctx.now.since(t)) + " ago", t));
    }
    let recreate = if k8s::owner(pod).is_some() {
        format!(
            "kubectl delete pod {name} -n {ns}   # its controller creates a new one, which the kubelet admits afresh"
        )
    } else {
        format!(
            "kubectl delete pod {name} -n {ns} and apply it again (it has no controller to recreate it)"
        )
    };
    let plugin_logs = plugin.map_or_else(
        || format!("kubectl logs -n NAMESPACE DEVICE_PLUGIN_POD_ON_{node} --tail=100   # did it restart or mark GPUs unhealthy?"),
        |p| {
            format!(
                "kubectl logs {} -n {} --tail=100   # did it restart or mark GPUs unhealthy?",
                k8s::name(p.pod),
                k8s::namespace(p.pod)
            )
        },
    );
    vec![f.step(recreate).step(plugin_logs).step(format!(
        "kubectl describe node {node} | grep -A2 nvidia.com/gpu"
    ))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_match_taints_like_the_scheduler() {
        let t =
            |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>| Toleration {
                key: key.map(Into::into),
                operator: Some(op.into()),
                value: value.map(Into::into),
                effect: effect.map(Into::into),
                toleration_seconds: None,
            };
        assert!(tolerates(
            &t(Some("nvidia.com/gpu"), "Exists", None, None),
            "nvidia.com/gpu",
            "present",
            "NoSchedule"
        ));
        assert!(tolerates(
            &t(None, "Exists", None, None),
            "anything",
            "x",
            "NoExecute"
        ));
        assert!(!tolerates(
            &t(Some("nvidia.com/gpu"), "Equal", Some("true"), None),
            "nvidia.com/gpu",
            "present",
            "NoSchedule"
        ));
        assert!(!tolerates(
            &t(Some("nvidia.com/gpu"), "Exists", None, Some("NoExecute")),
            "nvidia.com/gpu",
            "",
            "NoSchedule"
        ));
    }

    #[test]
    fn known_xids_have_a_cause() {
        assert_eq!(xid_info(79).map(|x| x.1), Some(XidCause::Hardware));
        assert_eq!(xid_info(13).map(|x| x.1), Some(XidCause::App));
        assert!(xid_info(9999).is_none());
    }
}
