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
//! - XID 79 and a lost GPU are one failure told as a chain: the XID is
//!   the root, the lost GPU its consequence (`caused_by`), and the
//!   lost-GPU finding cites the XID too.
//! - `device_plugin_down` is a node finding (the plugin pod is named in its
//!   evidence), so it shows for every pod on the node. When the evidence
//!   holds no device-plugin pod at all, it says nothing: a bundle that did
//!   not collect them cannot tell "missing" from "not collected". A GPU
//!   node without a plugin pod is reported (medium) only when plugin pods
//!   of other nodes are in the evidence.
//! - `gpu_unschedulable` is the primary finding for a scheduler message
//!   naming `Insufficient nvidia.com/...`; the message's other clauses are
//!   its evidence, and `pod` makes no pending finding for it.
//! - The health counters the agent reads from NVML with each GPU sample
//!   (clock event reasons, ECC, remapped rows, PCIe link) are judged over
//!   the last `health_window_secs`: what is wrong *now*, or moved
//!   recently. A counter that is non-zero but stable (corrected errors
//!   from long ago, rows already remapped) is the GPU's history, not a
//!   finding. Like XIDs, each finding names the pods holding the GPU.

mod admission;
mod device_plugin;
mod link;
mod lost;
mod memory;
mod throttled;
mod unhealthy;
mod unschedulable;
mod xid;

use std::collections::BTreeSet;

use gpuscope_model::ThrottleReason;
use gpuscope_model::{Event as NodeEvent, GpuHolder, GpuSample, SourceState, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use admission::admission_error;
use device_plugin::{device_plugin_down, plugin_states};
use link::{gpu_link_degraded, gpu_nvlink_degraded};
use lost::gpu_lost;
use memory::gpu_memory_errors;
use throttled::gpu_throttled;
use unhealthy::gpu_unhealthy;
use unschedulable::gpu_unschedulable;
use xid::gpu_xid;

use crate::evidence::AgentRecords;
use crate::finding::{Finding, Subject};
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
    /// GPU health counters (clock event reasons, ECC, remapped rows, PCIe)
    /// are judged over the samples this long before now. Default 1 800 s:
    /// long enough to see a slowdown that comes and goes and a counter
    /// that rises, short enough that a fault fixed an hour ago does not
    /// read as current.
    pub health_window_secs: u64,
    /// Clock event reasons that mean the GPU is slowed by a fault or its
    /// environment. Default `hw_slowdown`, `hw_thermal`, `hw_power_brake`,
    /// `sw_thermal`. Left out: `sw_power_cap` (a GPU working at its power
    /// limit, the normal state of a busy H100), `idle`, `sync_boost`,
    /// `applications_clocks` and `display_clocks` (settings, not faults).
    pub throttle_reasons: Vec<ThrottleReason>,
    /// Least time throttled within the window for a finding. Default
    /// 120 s: a power-brake pulse of a few seconds costs a run nothing
    /// measurable; two minutes in thirty is about 7 % of the window at
    /// half clock, a slowdown a team would notice.
    pub throttle_min_secs: u64,
    /// PCIe replays per minute, over the window, that make a link
    /// degraded. Default 8: the most NVIDIA's driver team recommends, and
    /// the limit DCGM's PCIe health watch applies
    /// (`DCGM_LIMIT_MAX_PCIREPLAY_RATE`).
    pub pcie_replays_per_min: f64,
    /// GPU utilization (percent) above which a PCIe generation below the
    /// maximum counts as degraded. Default 50: an idle or lightly used GPU
    /// lowers its link speed to save power (ASPM), so a low generation is
    /// only a fault while the GPU works.
    pub pcie_gen_busy_percent: u32,
    /// NVLink CRC errors (flow-control digit + data) a second, on one
    /// link over the window, that make it degraded. Default 100: NVIDIA's
    /// driver team told DCGM that CRC errors only matter at 100 or more a
    /// second (`DCGM_LIMIT_MAX_LWLINK_CRC_ERROR`); below that the link's
    /// replay absorbs them.
    pub nvlink_crc_per_sec: f64,
    /// NVLink replays + recoveries on one link within the window above
    /// which it is degraded. Default 1, DCGM's limit
    /// (`DCGM_LIMIT_MAX_LWLINK_ERROR`): a replay resends after an error
    /// the CRC caught and a recovery retrains the link, stalling its
    /// traffic; one may be a cosmic-ray event, more are a failing link.
    pub nvlink_replay_recovery_max: u64,
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
            health_window_secs: 1_800,
            throttle_reasons: vec![
                ThrottleReason::HwSlowdown,
                ThrottleReason::HwThermal,
                ThrottleReason::HwPowerBrake,
                ThrottleReason::SwThermal,
            ],
            throttle_min_secs: 120,
            pcie_replays_per_min: 8.0,
            pcie_gen_busy_percent: 50,
            nvlink_crc_per_sec: 100.0,
            nvlink_replay_recovery_max: 1,
        }
    }
}

/// Every finding of this family.
pub(crate) fn run(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let plugins = plugin_states(ctx);
    out.extend(gpu_xid(ctx, &plugins));
    out.extend(gpu_lost(ctx));
    out.extend(gpu_unhealthy(ctx, &plugins));
    out.extend(device_plugin_down(ctx, &plugins));
    let health = health_series(ctx);
    out.extend(gpu_throttled(ctx, &health));
    out.extend(gpu_memory_errors(ctx, &health));
    out.extend(gpu_link_degraded(ctx, &health));
    out.extend(gpu_nvlink_degraded(ctx, &health));
    for pod in ctx.subjects() {
        out.extend(gpu_unschedulable(ctx, pod, &plugins));
        out.extend(admission_error(ctx, pod, &plugins));
    }
    out
}

/// What the GPU-health rules could not judge for lack of evidence, said
/// as gaps rather than read as healthy GPUs: for a pod holding GPUs (not
/// Pending, not finished), a node the agents' records do not cover (its
/// XIDs and lost GPUs would not show), or a node whose agent reported
/// the kernel log (`kmsg`: XIDs) or NVML (`nvml`: lost GPUs) not working.
/// Without agent records at all the `agent` gap says so.
pub(crate) fn gaps(ctx: &Context<'_>) -> Vec<crate::Gap> {
    let agents = agents(ctx);
    let mut out = Vec::new();
    for pod in ctx.subjects() {
        if k8s::gpu_request(pod) == 0 || matches!(k8s::phase(pod), "Pending" | "Succeeded") {
            continue;
        }
        let Some(node) = k8s::node_name(pod) else {
            continue;
        };
        let name = k8s::pod_name(pod);
        // An agent whose node is unknown may be this node's.
        let covered = agents
            .iter()
            .any(|(n, _)| n.as_deref().is_none_or(|n| n == node));
        if !agents.is_empty() && !covered {
            out.push(crate::Gap::new(
                "gpu_health",
                format!(
                    "{name}: the agents' records do not cover its node {node}: XID errors and GPUs lost there would not show, so the health of its GPUs was not judged"
                ),
            ));
            continue;
        }
        let Some(a) = ctx.agent_of(pod) else {
            continue;
        };
        for (source, unseen) in [("kmsg", "XID errors"), ("nvml", "a GPU lost")] {
            if let Some(s) = a
                .source_at(source, ctx.now)
                .filter(|s| s.state != SourceState::Ok)
            {
                out.push(crate::Gap::new(
                    "gpu_health",
                    format!(
                        "{name}: the agent on {node} reported its {source} source {}{}: {unseen} there would not show",
                        if s.state == SourceState::Degraded {
                            "degraded"
                        } else {
                            "unavailable"
                        },
                        s.reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------
// Shared by the rules.

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
            NodeEvent::Xid { holders, .. }
            | NodeEvent::GpuLost { holders, .. }
            | NodeEvent::GpuHealthChange { holders, .. } => holders.as_slice(),
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

/// The recent samples of one whole GPU that carry health counters.
struct HealthSeries<'a> {
    /// The node of the agent that sampled it.
    node: Option<String>,
    /// The GPU's UUID.
    uuid: &'a str,
    /// Oldest first, within `health_window_secs` before now; never empty.
    samples: Vec<&'a GpuSample>,
}

impl<'a> HealthSeries<'a> {
    fn newest(&self) -> &'a GpuSample {
        self.samples[self.samples.len() - 1]
    }

    /// One finding subject per pod holding the GPU in its newest sample.
    fn subjects(&self, ctx: &Context<'_>) -> Vec<Subject> {
        gpu_subjects(
            ctx,
            self.node.as_deref(),
            Some(self.uuid),
            &self.newest().holders,
        )
    }

    /// One high-confidence finding per pod holding the GPU, with the same
    /// summary, facts and steps.
    fn findings(
        &self,
        ctx: &Context<'_>,
        kind: crate::finding::Kind,
        summary: &str,
        facts: &[crate::finding::Fact],
        steps: &[String],
    ) -> Vec<Finding> {
        let high = crate::finding::Confidence::High;
        self.findings_with(ctx, kind, high, summary, facts, steps)
    }

    /// [`HealthSeries::findings`] at another confidence.
    fn findings_with(
        &self,
        ctx: &Context<'_>,
        kind: crate::finding::Kind,
        confidence: crate::finding::Confidence,
        summary: &str,
        facts: &[crate::finding::Fact],
        steps: &[String],
    ) -> Vec<Finding> {
        self.subjects(ctx)
            .into_iter()
            .map(|subject| {
                let f = Finding::new(kind, subject, confidence, summary);
                let f = facts.iter().fold(f, |f, fact| f.fact(fact.clone()));
                steps.iter().fold(f, |f, step| f.step(step.clone()))
            })
            .collect()
    }

    /// `GPU UUID (index N) on node N`, for summaries.
    fn named(&self) -> String {
        let g = self.newest();
        format!(
            "GPU {} (index {}){}",
            self.uuid,
            g.index,
            self.node
                .as_deref()
                .map(|n| format!(" on node {n}"))
                .unwrap_or_default()
        )
    }

    /// The pods holding the GPU, for summaries (`ml/trainer-0`, or "no pod").
    fn holders(&self) -> String {
        let pods: BTreeSet<String> = self
            .newest()
            .holders
            .iter()
            .map(|h| format!("{}/{}", h.namespace, h.pod))
            .collect();
        if pods.is_empty() {
            "no pod (PodResources names no holder)".to_owned()
        } else {
            pods.into_iter().collect::<Vec<_>>().join(", ")
        }
    }
}

/// Every whole GPU's recent samples with health counters, per agent.
fn health_series<'a>(ctx: &Context<'a>) -> Vec<HealthSeries<'a>> {
    let window = ctx.config.gpu_health.health_window_secs;
    let mut out = Vec::new();
    for (node, a) in agents(ctx) {
        let mut by_gpu: std::collections::BTreeMap<&str, Vec<&GpuSample>> =
            std::collections::BTreeMap::new();
        for g in &a.gpus {
            if g.parent_uuid.is_none()
                && g.health.is_some()
                && g.time <= ctx.now
                && ctx.now.since(g.time).as_secs() <= window
            {
                by_gpu.entry(&g.uuid).or_default().push(g);
            }
        }
        for (uuid, mut samples) in by_gpu {
            samples.sort_by_key(|g| g.time);
            out.push(HealthSeries {
                node: node.clone(),
                uuid,
                samples,
            });
        }
    }
    out
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

/// Whether the driver reported an XID on a GPU this container held, or
/// lost that GPU, within `oom.match_slack_s` of the container's exit at
/// `finished`: the `gpu_xid` or `gpu_lost` finding explains that exit (an
/// illegal memory access is XID 31 to the driver and exit 1 to the
/// kubelet). XID 45 only follows a process's end, so it explains nothing.
pub(crate) fn explains_exit(
    ctx: &Context<'_>,
    pod: &Pod,
    container: &str,
    finished: Timestamp,
) -> bool {
    let slack = ctx.config.oom.match_slack_s.saturating_mul(1_000_000_000);
    let near = |t: Timestamp| t.0.abs_diff(finished.0) <= slack && recent(ctx, t);
    let held = |holders: &[GpuHolder]| {
        holders.iter().any(|h| {
            h.namespace == k8s::namespace(pod)
                && h.pod == k8s::name(pod)
                && h.container == container
        })
    };
    ctx.evidence.agents.iter().any(|a| {
        a.events.iter().any(|e| match e {
            NodeEvent::Xid {
                time,
                gpu_uuid,
                xid,
                holders,
                ..
            } if *xid != 45 && near(*time) => {
                held(holders) || held(&sampled_holders(a, gpu_uuid, *time))
            }
            NodeEvent::GpuLost { time, holders, .. } if near(*time) => held(holders),
            _ => false,
        })
    })
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

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

/// A GPU this container held that was lost (NVML's `GPU_IS_LOST`, or XID
/// 79 before NVML's count dropped) before its exit at `finished`, and not
/// back since: NVML's count did not rise again between the loss and the
/// exit. A lost GPU stays lost until the node is reset, and the kubelet
/// gives a restarted container the same devices (its device manager keeps
/// them per pod), so every later run of the container fails on it.
/// Returns the GPU (UUID, or `index N`), its index and when it was lost.
pub(crate) fn lost_before_exit(
    ctx: &Context<'_>,
    pod: &Pod,
    container: &str,
    finished: Timestamp,
) -> Option<(String, Option<u32>, Timestamp)> {
    let slack = ctx.config.oom.match_slack_s.saturating_mul(1_000_000_000);
    let held = |h: &GpuHolder| {
        h.namespace == k8s::namespace(pod) && h.pod == k8s::name(pod) && h.container == container
    };
    // A pod created after the loss (a StatefulSet's pod of the same name)
    // was given other GPUs.
    let created = pod.metadata.creation_timestamp.as_ref().map(k8s::ts);
    ctx.evidence.agents.iter().find_map(|a| {
        lost::lost_gpus(a)
            .into_iter()
            .filter(|(id, _, t, holders)| {
                let holders = if holders.is_empty() && !id.starts_with("index ") {
                    sampled_holders(a, id, *t)
                } else {
                    holders.clone()
                };
                t.0 <= finished.0.saturating_add(slack)
                    && created.is_none_or(|c| c <= *t)
                    && recent(ctx, *t)
                    && holders.iter().any(held)
                    && !a.events.iter().any(|e| {
                        matches!(e, NodeEvent::GpuCountChanged { time, before, after, .. }
                            if after > before && *time > *t && *time <= finished)
                    })
            })
            .max_by_key(|l| l.2)
            .map(|(id, index, t, _)| (id, index, t))
    })
}

/// GPUs of `node` that the device plugin may still count as unhealthy,
/// whatever the age of the fault: the node offers fewer GPUs than it has
/// (its plugin running), and an XID outside `app_xids` or a loss was
/// reported on the GPU since the plugin's container started (when that is
/// known). NVIDIA's device plugin marks a GPU unhealthy on such an XID and
/// never marks it healthy again while it runs, so allocatable stays low
/// after the error is gone; the fault behind it is current, not history.
/// GPU UUID -> the earliest report that still counts.
fn sticky_unhealthy(
    ctx: &Context<'_>,
    node: Option<&str>,
    a: &AgentRecords,
    plugins: &[device_plugin::PluginPod<'_>],
) -> std::collections::BTreeMap<String, Timestamp> {
    let mut out = std::collections::BTreeMap::new();
    let Some(name) = node else {
        return out;
    };
    let Some(n) = ctx.node(name) else {
        return out;
    };
    let (Some(cap), Some(alloc)) = k8s::node_gpus(n) else {
        return out;
    };
    let plugin = plugins.iter().find(|p| p.node.as_deref() == Some(name));
    if alloc >= cap || alloc == 0 || plugin.is_some_and(|p| p.problem.is_some()) {
        return out;
    }
    // The plugin's container started: its marks date from then.
    let since = plugin
        .and_then(|p| {
            k8s::container_statuses(p.pod)
                .filter_map(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
                .map(k8s::ts)
                .max()
        })
        .unwrap_or(Timestamp(0));
    for e in &a.events {
        if let NodeEvent::Xid {
            time,
            gpu_uuid,
            xid,
            ..
        } = e
            && !gpu_uuid.is_empty()
            && *time >= since
            && !ctx.config.gpu_health.app_xids.contains(xid)
        {
            out.entry(gpu_uuid.clone()).or_insert(since);
        }
    }
    for (id, _, t, _) in lost::lost_gpus(a) {
        if t >= since && !id.starts_with("index ") {
            out.entry(id).or_insert(since);
        }
    }
    out
}
