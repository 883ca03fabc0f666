//! Pods that stay Pending: resources, node selectors and affinity,
//! taints, volume claims, and Pending pods no scheduler message explains.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, Pod};

use crate::finding::duration;
use crate::finding::{Confidence, Fact, Finding, Kind};
use crate::k8s::{event_fact, quoted_after, reason_is};
use crate::rules::scheduling::{
    ReasonClass, Scheduling, clause_name, control_plane_taint, node_figures, scheduling_failure,
};
use crate::{Context, k8s};

pub(super) fn pending(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    if k8s::phase(pod) != "Pending" || k8s::node_name(pod).is_some() {
        return Vec::new();
    }
    let Some(s) = scheduling_failure(ctx, pod) else {
        return pending_unexplained(ctx, pod, events).into_iter().collect();
    };
    if s.gpu_shortage().is_some() {
        // gpu_health's gpu_unschedulable is the finding (see module docs).
        return Vec::new();
    }
    let resources = s.count(|c| matches!(c, ReasonClass::Resource(_)));
    let affinity = s.count(|c| *c == ReasonClass::NodeAffinity);
    let pod_affinity = s.count(|c| *c == ReasonClass::PodAffinity);
    let workload_taints: u32 = s
        .reasons
        .iter()
        .filter(|r| r.class == ReasonClass::Taint && !control_plane_taint(&r.text))
        .map(|r| r.nodes)
        .sum();
    let taints = s.count(|c| *c == ReasonClass::Taint);
    let volume = s.reasons.iter().any(|r| r.class == ReasonClass::Volume);
    let total = s.total.map(|t| format!(" of {t}")).unwrap_or_default();
    let subject = ctx.subject(pod, None);
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    // The primary reason. The scheduler counts each node under the first
    // filter it fails, in the order taints, node affinity, resources,
    // volumes, pod affinity: nodes counted under a resource passed taints
    // and affinity, so they are the nodes the pod was meant for.
    let mut f = if volume {
        pending_pvc(ctx, pod, &s)
    } else if resources > 0 {
        let lacks: Vec<String> = s
            .reasons
            .iter()
            .filter_map(|r| match &r.class {
                ReasonClass::Resource(n) => Some(format!("{} lack {n}", r.nodes)),
                _ => None,
            })
            .collect();
        let mut f = Finding::new(
            Kind::PendingResources,
            subject,
            Confidence::High,
            format!(
                "Pod {name} cannot be scheduled: the nodes that match it have no room ({}{total} nodes); it requests {}.",
                lacks.join(", "),
                requests_text(pod)
            ),
        );
        // The blocking resource, node by node: allocatable, requested by
        // the pods in the evidence, free (the scheduler's arithmetic).
        for r in s.reasons.iter() {
            let ReasonClass::Resource(res) = &r.class else {
                continue;
            };
            for n in node_figures(ctx, pod, res) {
                f = f.fact(Fact::new(format!("node {} {res}", n.node), n.text(res)));
            }
        }
        f.step("kubectl describe nodes | grep -A 8 'Allocated resources'")
        .step("Lower the pod's requests, free capacity, or add nodes (check the cluster autoscaler's node groups).")
    } else if workload_taints > 0 || (taints > 0 && affinity == 0) {
        // Control-plane taints are named only when they are all there is.
        let (n, which): (u32, Vec<&str>) = if workload_taints > 0 {
            (
                workload_taints,
                s.reasons
                    .iter()
                    .filter(|r| r.class == ReasonClass::Taint && !control_plane_taint(&r.text))
                    .map(|r| clause_name(&r.text))
                    .collect(),
            )
        } else {
            (
                taints,
                s.reasons
                    .iter()
                    .filter(|r| r.class == ReasonClass::Taint)
                    .map(|r| clause_name(&r.text))
                    .collect(),
            )
        };
        Finding::new(
            Kind::PendingTaint,
            subject,
            Confidence::High,
            format!(
                "Pod {name} cannot be scheduled: {n}{total} nodes carry taints it does not tolerate ({}).",
                which.join("; ")
            ),
        )
        .step("kubectl get nodes -o custom-columns=NAME:.metadata.name,TAINTS:.spec.taints")
        .step("Add a matching toleration to the pod spec, e.g. `tolerations: [{key: KEY, operator: Exists, effect: NoSchedule}]`, or remove the taint if it is stale (kubectl taint nodes NODE KEY-).")
    } else if affinity > 0 || pod_affinity > 0 {
        pending_affinity(ctx, pod, &s, affinity, pod_affinity)
    } else {
        let cordoned = s.count(|c| *c == ReasonClass::Cordoned);
        let summary = if cordoned > 0 {
            format!(
                "Pod {name} cannot be scheduled: {cordoned}{total} nodes are cordoned (unschedulable)."
            )
        } else {
            format!(
                "Pod {name} cannot be scheduled for a reason gpuscope does not classify: {}",
                s.message
            )
        };
        Finding::new(Kind::Pending, subject, Confidence::Medium, summary)
            .step(format!("kubectl describe pod {name} -n {ns}"))
            .step("kubectl get nodes   # SchedulingDisabled marks cordoned nodes; kubectl uncordon NODE")
    };
    for fact in s.facts() {
        f = f.fact(fact);
    }
    if let Some(e) = events
        .iter()
        .rev()
        .find(|e| reason_is(e, "TriggeredScaleUp"))
    {
        f.confidence = f.confidence.min(Confidence::Medium);
        f = f.fact(event_fact("cluster-autoscaler", e));
        f.summary
            .push_str(" The cluster autoscaler has triggered a scale-up, which may resolve it.");
    } else if let Some(e) = events
        .iter()
        .rev()
        .find(|e| reason_is(e, "NotTriggerScaleUp"))
    {
        f = f.fact(event_fact("cluster-autoscaler", e));
    }
    vec![f]
}

fn pending_pvc(ctx: &Context<'_>, pod: &Pod, s: &Scheduling) -> Finding {
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let claims: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.clone())
        })
        .collect();
    let missing = quoted_after(&s.message, "persistentvolumeclaim \"");
    let mut states: Vec<(String, String, Option<String>)> = Vec::new();
    for c in &claims {
        let (phase, class) = match ctx.pvc(ns, c) {
            Some(p) => (
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_else(|| "Unknown".into()),
                p.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
            ),
            None if missing.as_deref() == Some(c.as_str()) => ("not found".into(), None),
            None => ("not in the evidence".into(), None),
        };
        states.push((c.clone(), phase, class));
    }
    let lower = s.message.to_ascii_lowercase();
    let why = if let Some(m) = &missing {
        format!("PersistentVolumeClaim \"{m}\" does not exist in namespace {ns}")
    } else if lower.contains("unbound immediate") {
        let unbound: Vec<String> = states
            .iter()
            .filter(|(_, p, _)| p != "Bound")
            .map(|(c, p, _)| format!("\"{c}\" is {p}"))
            .collect();
        if unbound.is_empty() {
            "a PersistentVolumeClaim it mounts is not bound to a volume".to_owned()
        } else {
            format!(
                "a PersistentVolumeClaim it mounts is not bound to a volume ({})",
                unbound.join(", ")
            )
        }
    } else if lower.contains("didn't find available persistent volumes") {
        "no PersistentVolume matches its claim (size, access mode, storage class or zone)"
            .to_owned()
    } else if lower.contains("volume node affinity conflict") {
        "its volume is pinned to a zone or node where the pod cannot run (volume node affinity conflict)".to_owned()
    } else {
        format!("a volume cannot be provided ({})", s.message)
    };
    let mut f = Finding::new(
        Kind::PendingPvc,
        ctx.subject(pod, None),
        Confidence::High,
        format!("Pod {name} cannot be scheduled: {why}."),
    );
    for (c, phase, class) in &states {
        f = f.fact(Fact::new(format!("PVC {c}"), phase.clone()));
        if let Some(class) = class {
            f = f.fact(Fact::new(
                format!("PVC {c} storageClassName"),
                class.clone(),
            ));
        }
    }
    let claim = missing
        .clone()
        .or_else(|| {
            states
                .iter()
                .find(|(_, p, _)| p != "Bound")
                .map(|(c, _, _)| c.clone())
        })
        .or_else(|| claims.first().cloned())
        .unwrap_or_else(|| "CLAIM".into());
    if missing.is_some() {
        f = f.step(format!(
            "kubectl get pvc -n {ns}   # create the claim, or fix claimName in the pod's volumes"
        ));
    } else {
        f = f.step(format!(
            "kubectl describe pvc {claim} -n {ns}   # its events say why the provisioner did not bind it"
        ));
        f = f.step("kubectl get storageclass   # is there a default class, and is its provisioner running?");
    }
    f
}

fn pending_affinity(
    ctx: &Context<'_>,
    pod: &Pod,
    s: &Scheduling,
    affinity: u32,
    pod_affinity: u32,
) -> Finding {
    let name = k8s::name(pod);
    let total = s.total.map(|t| format!(" of {t}")).unwrap_or_default();
    let selector: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    let summary = if affinity > 0 {
        format!(
            "Pod {name} cannot be scheduled: {affinity}{total} nodes do not match its node selector or node affinity{}.",
            if selector.is_empty() {
                String::new()
            } else {
                format!(" (nodeSelector {})", selector.join(", "))
            }
        )
    } else {
        format!(
            "Pod {name} cannot be scheduled: {pod_affinity}{total} nodes fail its pod affinity, anti-affinity or topology spread rules."
        )
    };
    let mut f = Finding::new(
        Kind::PendingAffinity,
        ctx.subject(pod, None),
        Confidence::High,
        summary,
    );
    if !selector.is_empty() {
        f = f.fact(Fact::new("nodeSelector", selector.join(", ")));
        f = f.step(format!(
            "kubectl get nodes -l {}   # no output: no node carries these labels",
            selector.join(",")
        ));
    }
    f.step("kubectl get nodes --show-labels   # then fix the selector/affinity, or label the intended nodes (kubectl label node NODE KEY=VALUE)")
}

/// A Pending pod with no scheduler verdict: either too young, held by a
/// scheduling gate, waiting for a scheduler that is not running, or the
/// verdict is simply not in the evidence.
fn pending_unexplained(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Option<Finding> {
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let spec = pod.spec.as_ref();
    let gates: Vec<String> = spec
        .and_then(|s| s.scheduling_gates.as_ref())
        .map(|g| g.iter().map(|g| g.name.clone()).collect())
        .unwrap_or_default();
    if !gates.is_empty() {
        return Some(
            Finding::new(
                Kind::Pending,
                ctx.subject(pod, None),
                Confidence::Medium,
                format!(
                    "Pod {name} is held back from scheduling by scheduling gates ({}): a queue or controller must admit it first.",
                    gates.join(", ")
                ),
            )
            .fact(Fact::new("schedulingGates", gates.join(", ")))
            .step("kubectl get workloads -A   # when the gate is Kueue's: is the queue's ClusterQueue out of quota?")
            .step(format!("kubectl get pod {name} -n {ns} -o jsonpath='{{.spec.schedulingGates}}'")),
        );
    }
    let created = pod.metadata.creation_timestamp.as_ref().map(k8s::ts)?;
    let age = ctx.now.since(created);
    if age.as_secs() < ctx.config.pod.pending_grace_secs {
        return None;
    }
    let scheduler = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("default-scheduler");
    let mut absent = Vec::new();
    if ctx.evidence.lacks("events") {
        absent.push("no events in the evidence");
    } else if !events.iter().any(|e| reason_is(e, "FailedScheduling")) {
        absent.push("no FailedScheduling event (events expire after 1 h)");
    }
    absent.push("no PodScheduled condition");
    let (confidence, summary) = if scheduler != "default-scheduler" {
        (
            Confidence::Medium,
            format!(
                "Pod {name} has been Pending for {} without any scheduling verdict; it names scheduler \"{scheduler}\", which may not be running.",
                duration(age)
            ),
        )
    } else {
        (
            Confidence::Low,
            format!(
                "Pod {name} has been Pending for {} and the evidence does not say why ({}).",
                duration(age),
                absent.join(", ")
            ),
        )
    };
    Some(
        Finding::new(Kind::Pending, ctx.subject(pod, None), confidence, summary)
            .fact(Fact::at("created", duration(age) + " ago", created))
            .fact(Fact::new("schedulerName", scheduler))
            .fact(Fact::new("missing evidence", absent.join(", ")))
            .step(format!("kubectl describe pod {name} -n {ns}"))
            .step(format!(
                "kubectl get events -n {ns} --field-selector involvedObject.name={name} -o json > events.json"
            )),
    )
}

/// What the pod requests, summed over its containers, in the user's
/// units: a resource one container requests is quoted as the manifest
/// writes it beside the bytes (`memory 128Gi (128 GiB)`).
fn requests_text(pod: &Pod) -> String {
    let mut sums: BTreeMap<String, (f64, Vec<String>)> = BTreeMap::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        if let Some(r) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) {
            for (k, q) in r {
                if let Some(v) = k8s::quantity(q) {
                    let e = sums.entry(k.clone()).or_default();
                    e.0 += v;
                    e.1.push(q.0.clone());
                }
            }
        }
    }
    if sums.is_empty() {
        return "no resources".to_owned();
    }
    sums.iter()
        .map(|(k, (v, written))| {
            let one = (written.len() == 1).then(|| written[0].as_str());
            match k.as_str() {
                "memory" | "ephemeral-storage" => {
                    format!("{k} {}", k8s::bytes_as_written(*v as u64, one))
                }
                _ => format!("{k} {}", one.map_or_else(|| trim_float(*v), str::to_owned)),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}
