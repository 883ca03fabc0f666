//! What the evidence cannot explain: failed or stuck pods that no rule
//! explains, with the evidence that is missing.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Event, Pod};

use super::image_pull::PULL_REASONS;
use super::last_line;
use super::mount::MOUNT_REASONS;
use crate::finding::duration;
use crate::finding::{Confidence, Fact, Finding, Kind};
use crate::k8s::{reason_is, waiting};
use crate::{Context, k8s};

/// Waiting reasons some rule of this family explains.
const EXPLAINED_WAITING: [&str; 9] = [
    "ContainerCreating",
    "PodInitializing",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];

/// Pod status reasons other families own (evictions: `oom`; kubelet
/// admission: `gpu_health`).
fn reason_owned_elsewhere(reason: &str) -> bool {
    reason == "Evicted"
        || reason == "UnexpectedAdmissionError"
        || reason == "NodeAffinity"
        || reason.starts_with("OutOf")
}

pub(super) fn insufficient_evidence(
    ctx: &Context<'_>,
    pod: &Pod,
    events: &[&Event],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let missing = missing_evidence(ctx);
    for cs in k8s::container_statuses(pod) {
        let Some((reason, msg)) = waiting(cs) else {
            continue;
        };
        if reason == "ContainerCreating" {
            if let Some(f) = stuck_creating(ctx, pod, cs, events) {
                out.push(f);
            }
            continue;
        }
        if EXPLAINED_WAITING.contains(&reason) || PULL_REASONS.contains(&reason) {
            continue;
        }
        // The runtime could not start the command: `crash_loop` tells it.
        if reason == "RunContainerError"
            && cs
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| {
                    matches!(
                        t.reason.as_deref(),
                        Some("StartError" | "ContainerCannotRun")
                    )
                })
        {
            continue;
        }
        out.push(
            Finding::new(
                Kind::InsufficientEvidence,
                ctx.subject(pod, Some(&cs.name)),
                Confidence::Low,
                format!(
                    "Container {} is waiting with reason {reason}, which gpuscope does not explain{}.",
                    cs.name,
                    if msg.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", last_line(msg))
                    }
                ),
            )
            .fact(Fact::new("waiting reason", reason))
            .fact(Fact::new("missing evidence", missing.clone()))
            .step(format!("kubectl describe pod {name} -n {ns}")),
        );
    }
    let status = pod.status.as_ref();
    let phase = k8s::phase(pod);
    let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    let smsg = status.and_then(|s| s.message.as_deref()).unwrap_or("");
    if phase == "Failed" && !reason_owned_elsewhere(reason) {
        let terminated: Vec<&ContainerStateTerminated> = k8s::container_statuses(pod)
            .filter_map(|cs| cs.state.as_ref()?.terminated.as_ref())
            .collect();
        // A non-zero exit is explained (crash_loop here, 137 by oom).
        if !terminated.iter().any(|t| t.exit_code != 0) {
            let summary = if reason.is_empty() {
                format!(
                    "Pod {name} failed, but no container records a failing exit and the pod gives no reason; missing: {missing}."
                )
            } else {
                format!(
                    "Pod {name} failed with reason {reason} ({smsg}); gpuscope has no rule that explains it further."
                )
            };
            let mut f = Finding::new(
                Kind::InsufficientEvidence,
                ctx.subject(pod, None),
                Confidence::Low,
                summary,
            )
            .fact(Fact::new("phase", phase))
            .fact(Fact::new("missing evidence", missing.clone()));
            if !reason.is_empty() {
                f = f.fact(Fact::new("reason", reason));
            }
            out.push(
                f.step(format!("kubectl describe pod {name} -n {ns}"))
                    .step(format!(
                        "kubectl logs {name} -n {ns} --all-containers --previous"
                    )),
            );
        }
    } else if phase == "Unknown" && pod.status.is_some() {
        out.push(
            Finding::new(
                Kind::InsufficientEvidence,
                ctx.subject(pod, None),
                Confidence::Low,
                format!(
                    "Pod {name} is in phase Unknown: its node{} stopped reporting to the API server; missing: {missing}.",
                    k8s::node_name(pod).map(|n| format!(" {n}")).unwrap_or_default()
                ),
            )
            .fact(Fact::new("phase", "Unknown"))
            .step(format!(
                "kubectl describe node {}   # Conditions: Ready=Unknown, and when the kubelet last posted status",
                k8s::node_name(pod).unwrap_or("NODE")
            )),
        );
    }
    out
}

/// A container in `ContainerCreating` for long, with no event saying why
/// (no mount or sandbox failure, no image pull in progress).
fn stuck_creating(
    ctx: &Context<'_>,
    pod: &Pod,
    cs: &ContainerStatus,
    events: &[&Event],
) -> Option<Finding> {
    let explained = events.iter().any(|e| {
        MOUNT_REASONS.iter().any(|r| reason_is(e, r))
            || reason_is(e, "Pulling")
            || reason_is(e, "Failed")
    });
    if explained {
        return None;
    }
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(k8s::ts)?;
    let age = ctx.now.since(since);
    if age.as_secs() < ctx.config.pod.creating_grace_secs {
        return None;
    }
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    Some(
        Finding::new(
            Kind::InsufficientEvidence,
            ctx.subject(pod, Some(&cs.name)),
            Confidence::Low,
            format!(
                "Container {} has been in ContainerCreating for {} and no event says why (a large image pull, a volume or the pod sandbox); missing: {}.",
                cs.name,
                duration(age),
                missing_evidence(ctx)
            ),
        )
        .fact(Fact::at("waiting since", duration(age), since))
        .step(format!("kubectl describe pod {name} -n {ns}   # Events: Pulling, FailedMount, FailedCreatePodSandBox"))
        .step(format!(
            "kubectl get events -n {ns} --field-selector involvedObject.name={name} -o json > events.json"
        )),
    )
}

/// The kinds of evidence recorded as missing, for people.
fn missing_evidence(ctx: &Context<'_>) -> String {
    let v: Vec<&str> = ["events", "logs", "agent", "node"]
        .into_iter()
        .filter(|w| ctx.evidence.lacks(w))
        .collect();
    if v.is_empty() {
        "nothing recorded as missing; the events may have expired".to_owned()
    } else {
        v.join(", ")
    }
}
