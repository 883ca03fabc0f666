//! Volumes and sandboxes that cannot be set up (`FailedMount`,
//! `FailedAttachVolume`, `FailedMapVolume`, `FailedCreatePodSandBox`).

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};

use super::config_missing::missing_object;
use super::last_line;
use crate::finding::{Confidence, Fact, Finding, Kind};
use crate::k8s::{event_count, event_fact, message, quoted_after, reason_is, waiting};
use crate::{Context, k8s};

pub(super) const MOUNT_REASONS: [&str; 4] = [
    "FailedMount",
    "FailedAttachVolume",
    "FailedMapVolume",
    "FailedCreatePodSandBox",
];

/// Whether the pod's containers have not all started yet.
fn not_started(pod: &Pod) -> bool {
    let statuses: Vec<&ContainerStatus> = k8s::container_statuses(pod).collect();
    k8s::phase(pod) == "Pending"
        || statuses.is_empty()
        || statuses.iter().any(|cs| {
            waiting(cs).is_some_and(|(r, _)| r == "ContainerCreating" || r == "PodInitializing")
        })
}

pub(super) fn mount_failed(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    if !not_started(pod) || k8s::node_name(pod).is_none() {
        return Vec::new();
    }
    let failures: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| MOUNT_REASONS.iter().any(|r| reason_is(e, r)))
        .collect();
    // The most specific message: a generic timeout only when nothing
    // else is said.
    let Some(primary) = failures
        .iter()
        .rev()
        .find(|e| !is_generic_mount_timeout(message(e)))
        .or(failures.last())
        .copied()
    else {
        return Vec::new();
    };
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let node = k8s::node_name(pod).unwrap_or("NODE");
    let msg = message(primary);
    let lower = msg.to_ascii_lowercase();
    let reason = primary.reason.as_deref().unwrap_or("");
    let volume = quoted_after(msg, "for volume \"");
    let mut steps: Vec<String> = Vec::new();
    let (confidence, why) = if lower.contains("nvidia-container-cli")
        || lower.contains("nvml error")
        || lower.contains("nvidia-container-runtime")
        || lower.contains("no runtime for \"nvidia\"")
    {
        steps.push(format!(
            "kubectl debug node/{node} -it --image=ubuntu -- chroot /host nvidia-smi   # is the driver loaded?"
        ));
        steps.push("kubectl get pods -n gpu-operator -o wide   # the driver and container-toolkit pods of this node".into());
        (
            Confidence::High,
            format!(
                "the NVIDIA container runtime could not set up the GPU on node {node}: the GPU driver is not loaded or does not match the toolkit"
            ),
        )
    } else if reason == "FailedCreatePodSandBox" {
        steps.push(format!(
            "kubectl get pods -n kube-system -o wide --field-selector spec.nodeName={node}   # is the CNI pod (calico, cilium, aws-node...) of this node running?"
        ));
        steps.push("On the node: journalctl -u containerd -u kubelet --since -15m".into());
        (
            Confidence::High,
            if lower.contains("network") || lower.contains("cni") || lower.contains("plugin type") {
                format!(
                    "the pod network could not be set up on node {node} (the CNI plugin failed)"
                )
            } else {
                format!("the container runtime could not create the pod sandbox on node {node}")
            },
        )
    } else if lower.contains("multi-attach error") {
        steps.push("kubectl get volumeattachment   # which node still holds it".into());
        steps.push("Delete the old pod that uses the volume (or wait for it to terminate); ReadWriteOnce volumes attach to one node at a time.".into());
        (
            Confidence::High,
            format!(
                "volume {} is still attached to another node (Multi-Attach error)",
                volume.as_deref().unwrap_or("(unnamed)")
            ),
        )
    } else if let Some((kind, obj, _)) = missing_object(msg) {
        steps.push(format!(
            "kubectl get {} {obj} -n {ns}",
            kind.to_ascii_lowercase()
        ));
        steps.push(format!(
            "Create the {kind}, fix the volume's name in the pod spec, or mark the volume `optional: true`."
        ));
        (
            Confidence::High,
            format!(
                "volume {} needs {kind} \"{obj}\", which does not exist in namespace {ns}",
                volume.as_deref().unwrap_or("(unnamed)")
            ),
        )
    } else if is_generic_mount_timeout(msg) {
        steps.push(format!(
            "kubectl get pvc -n {ns}; kubectl get volumeattachment   # is the volume bound and attached?"
        ));
        steps.push("kubectl logs -n kube-system -l app=ebs-csi-controller --tail=50   # the CSI driver's controller (name varies by driver)".into());
        (
            Confidence::Medium,
            format!(
                "its volumes were not attached or mounted in time ({}); the cause is in the storage driver's logs",
                unmounted(msg)
            ),
        )
    } else {
        steps.push(format!("kubectl describe pod {name} -n {ns}"));
        steps.push(format!(
            "On node {node}: journalctl -u kubelet --since -15m | grep -i mount"
        ));
        (
            Confidence::High,
            format!(
                "{} failed: {}",
                volume.as_deref().map_or_else(
                    || "setting up its volumes".to_owned(),
                    |v| format!("volume {v}")
                ),
                last_line(msg)
            ),
        )
    };
    let mut f = Finding::new(
        Kind::MountFailed,
        ctx.subject(pod, None),
        confidence,
        format!("Pod {name} cannot start: {why}."),
    )
    .fact(event_fact(reason, primary))
    .fact(Fact::new("failures", event_count(primary).to_string()));
    for e in failures
        .iter()
        .filter(|e| !std::ptr::eq(**e, primary))
        .rev()
        .take(2)
    {
        f = f.fact(event_fact(e.reason.as_deref().unwrap_or("event"), e));
    }
    for s in steps {
        f = f.step(s);
    }
    vec![f]
}

fn is_generic_mount_timeout(msg: &str) -> bool {
    msg.contains("Unable to attach or mount volumes")
        || msg.contains("timed out waiting for the condition")
}

/// `unmounted volumes=[data], unattached volumes=[...]` -> `unmounted: data`.
fn unmounted(msg: &str) -> String {
    msg.split("unmounted volumes=[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .map_or_else(|| "timed out".to_owned(), |v| format!("unmounted: {v}"))
}
