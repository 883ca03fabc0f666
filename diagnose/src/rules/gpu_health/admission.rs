//! The kubelet's admission errors (`UnexpectedAdmissionError`,
//! `OutOf<resource>`, `NodeAffinity`).

use k8s_openapi::api::core::v1::Pod;

use super::device_plugin::PluginPod;
use super::opt;
use crate::finding::duration;
use crate::finding::{Confidence, Fact, Finding, Kind};
use crate::k8s::{event_count, event_fact, message, reason_is};
use crate::{Context, k8s};

pub(super) fn admission_error(
    ctx: &Context<'_>,
    pod: &Pod,
    plugins: &[PluginPod<'_>],
) -> Vec<Finding> {
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
    let why = if lower.contains("gpu is lost") {
        // The plugin asks NVML for its devices on every allocation; one
        // GPU off the bus makes that fail for every pod on the node.
        format!(
            "the device plugin could not list its GPUs because NVML answered \"GPU is lost\"{}: a GPU fell off the bus (XID 79), and every allocation on the node fails until it is reset or the node rebooted",
            msg.split("nvml.Device ")
                .nth(1)
                .and_then(|r| r.split(':').next())
                .map(|d| format!(" for device {d}"))
                .unwrap_or_default()
        )
    } else if lower.contains("unhealthy devices") {
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
        f = f.fact(Fact::at("started", duration(ctx.now.since(t)) + " ago", t));
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
