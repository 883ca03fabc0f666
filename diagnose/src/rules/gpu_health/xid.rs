//! XID errors the driver reported, with their meaning and the pods
//! holding the GPU.

use std::collections::{BTreeMap, BTreeSet};

use gpuscope_model::{Event as NodeEvent, GpuHolder, Timestamp};

use super::device_plugin::PluginPod;
use super::lost::lost_gpus;
use super::{agents, gpu_subjects, recent, sampled_holders, sticky_unhealthy};
use crate::Context;
use crate::evidence::AgentRecords;
use crate::finding::{Confidence, Fact, Finding, Kind};

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

/// The reports of one XID code on one GPU within the reporting window.
pub(super) struct XidGroup {
    pub(super) uuid: String,
    pub(super) index: Option<u32>,
    pub(super) xid: u64,
    pub(super) first: Timestamp,
    pub(super) last: Timestamp,
    /// How many times the driver reported this code on this GPU in the
    /// window: distinct reports, each counted once however many files or
    /// agents carried it.
    pub(super) count: u64,
    /// The agent's own counter at the last report: every XID of every
    /// code on this GPU since the agent started, which is not this count.
    pub(super) agent_counter: u64,
    pub(super) holders: Vec<GpuHolder>,
    pub(super) simulated: bool,
}

/// XIDs per GPU and per code over the reporting window (`event_window_secs`
/// before "now"). The agent's `count` is its lifetime counter of all XIDs
/// on the GPU, so it counts neither one code nor the period: the count is
/// of distinct reports (GPU, code, time) instead. A GPU is named by its
/// UUID, or by its index when NVML gave none.
///
/// `sticky`: GPUs whose XIDs count whatever their age, from the time given
/// (the device plugin still marks them unhealthy: [`super::sticky_unhealthy`]).
pub(super) fn xid_groups(
    ctx: &Context<'_>,
    a: &AgentRecords,
    sticky: &BTreeMap<String, Timestamp>,
) -> Vec<XidGroup> {
    let mut groups: BTreeMap<(String, u64), XidGroup> = BTreeMap::new();
    let mut seen: BTreeSet<(String, u64, Timestamp)> = BTreeSet::new();
    for e in &a.events {
        let NodeEvent::Xid {
            time,
            gpu_uuid,
            gpu_index,
            xid,
            count,
            holders,
            simulated,
            ..
        } = e
        else {
            continue;
        };
        if !recent(ctx, *time) && sticky.get(gpu_uuid).is_none_or(|since| time < since) {
            continue;
        }
        let gpu = if gpu_uuid.is_empty() {
            gpu_index.map_or_else(String::new, |i| format!("index {i}"))
        } else {
            gpu_uuid.clone()
        };
        if !seen.insert((gpu.clone(), *xid, *time)) {
            continue;
        }
        let g = groups.entry((gpu, *xid)).or_insert_with(|| XidGroup {
            uuid: gpu_uuid.clone(),
            index: *gpu_index,
            xid: *xid,
            first: *time,
            last: *time,
            count: 0,
            agent_counter: 0,
            holders: Vec::new(),
            simulated: *simulated,
        });
        if *time >= g.last {
            g.agent_counter = *count;
        }
        g.first = g.first.min(*time);
        g.last = g.last.max(*time);
        g.count += 1;
        for h in holders {
            if !g.holders.contains(h) {
                g.holders.push(h.clone());
            }
        }
    }
    let mut v: Vec<XidGroup> = groups.into_values().collect();
    for g in &mut v {
        if g.holders.is_empty() && !g.uuid.is_empty() {
            g.holders = sampled_holders(a, &g.uuid, g.last);
        }
    }
    v
}

pub(super) fn gpu_xid(ctx: &Context<'_>, plugins: &[PluginPod<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (node, a) in agents(ctx) {
        let lost: BTreeSet<String> = lost_gpus(a).into_iter().map(|l| l.0).collect();
        let sticky = sticky_unhealthy(ctx, node.as_deref(), a, plugins);
        let groups = xid_groups(ctx, a, &sticky);
        for g in &groups {
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
            let period = crate::finding::duration(ctx.now.since(g.first));
            let times = if g.count > 1 {
                format!(" {} times in the last {period}", g.count)
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
                let then_lost = if g.xid == 79 && lost.contains(&g.uuid) {
                    "; NVML lost the GPU after it"
                } else {
                    ""
                };
                // Older than the window, kept because the device plugin
                // still counts the GPU unhealthy.
                let still = if recent(ctx, g.last) {
                    String::new()
                } else {
                    format!(
                        "; reported at {}, and the node still offers fewer GPUs than it has: the device plugin keeps the GPU marked unhealthy until it restarts",
                        g.last
                    )
                };
                let mut f = Finding::new(
                    Kind::GpuXid,
                    subject,
                    confidence,
                    format!(
                        "{gpu}{on} reported XID {}{times}{held}: {meaning}{then_lost}{still}.",
                        g.xid
                    ),
                )
                .fact(Fact::at("xid", g.xid.to_string(), g.last))
                .fact(Fact::new(
                    "count",
                    format!(
                        "{} (XID {} on this GPU, {} to now)",
                        g.count, g.xid, g.first
                    ),
                ));
                if g.agent_counter > g.count {
                    f = f.fact(Fact::new(
                        "agent's XID counter",
                        format!(
                            "{} (every XID on this GPU since the agent started, all codes)",
                            g.agent_counter
                        ),
                    ));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_xids_have_a_cause() {
        assert_eq!(xid_info(79).map(|x| x.1), Some(XidCause::Hardware));
        assert_eq!(xid_info(13).map(|x| x.1), Some(XidCause::App));
        assert!(xid_info(9999).is_none());
    }
}
