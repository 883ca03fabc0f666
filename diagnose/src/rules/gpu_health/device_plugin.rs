//! The device plugin: its pods, and GPU nodes whose plugin is down.

use k8s_openapi::api::core::v1::{Node, Pod};

use super::opt;
use crate::finding::{Confidence, Fact, Finding, Kind, Subject};
use crate::k8s::waiting;
use crate::{Context, k8s};

/// One device-plugin pod and what is wrong with it.
pub(super) struct PluginPod<'a> {
    pub(super) pod: &'a Pod,
    /// The node it serves.
    pub(super) node: Option<String>,
    /// Why it is down (`None`: Running and Ready).
    pub(super) problem: Option<String>,
    pub(super) restarts: u32,
}

/// Device-plugin pods found by the configured selectors.
pub(super) fn plugin_states<'a>(ctx: &Context<'a>) -> Vec<PluginPod<'a>> {
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

pub(super) fn device_plugin_down(ctx: &Context<'_>, plugins: &[PluginPod<'_>]) -> Vec<Finding> {
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
        let node_obj = node.as_deref().and_then(|n| ctx.node(n));
        // A plugin pod down while the node still advertises every GPU
        // (not Ready but still registered, or a node status not yet
        // updated): the scheduler still counts them.
        let effect = match node_obj.map(|n| (k8s::gpus_withheld(n), k8s::node_gpus(n))) {
            Some((false, (Some(cap), _))) => format!(
                "the node still advertises all {cap} GPUs (allocatable {cap} of capacity {cap}), so the scheduler still places GPU pods there, but the kubelet may fail to allocate them until the plugin is back"
            ),
            _ => "the kubelet cannot allocate GPUs there, so new GPU pods on the node fail or wait"
                .to_owned(),
        };
        let mut f = Finding::new(
            Kind::DevicePluginDown,
            Subject {
                node: node.clone(),
                ..Subject::default()
            },
            Confidence::High,
            format!(
                "The NVIDIA device plugin{on} is down (pod {pn} {problem}{}): {effect}.",
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
        if let Some(n) = node_obj {
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
