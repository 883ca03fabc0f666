//! The scheduler's `FailedScheduling` message (or `PodScheduled`
//! condition), parsed once for both families: `pod`'s pending rules
//! and `gpu_health`'s `gpu_unschedulable`.

use gpuscope_model::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use crate::finding::Fact;
use crate::k8s::{event_count, message, reason_is};
use crate::{Context, k8s};

/// Why the scheduler excluded some nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReasonClass {
    /// `Insufficient <resource>`, `Too many pods`, no free ports.
    Resource(String),
    /// An untolerated taint.
    Taint,
    /// The pod's node selector or node affinity.
    NodeAffinity,
    /// Inter-pod affinity, anti-affinity or topology spread.
    PodAffinity,
    /// Volumes: unbound or missing claims, no matching volume, volume
    /// node affinity.
    Volume,
    /// Nodes cordoned (`spec.unschedulable`).
    Cordoned,
    /// Anything else.
    Other,
}

/// One `N node(s) …` clause of a scheduling failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reason {
    /// How many nodes it excluded (0 when the clause has no count).
    pub nodes: u32,
    /// The clause, as the scheduler wrote it.
    pub text: String,
    /// Its class.
    pub class: ReasonClass,
}

/// The scheduler's verdict on a pod that it could not place.
#[derive(Debug, Clone)]
pub(crate) struct Scheduling {
    /// The message, as written (without the preemption part).
    pub message: String,
    /// When it was last said.
    pub time: Option<Timestamp>,
    /// `FailedScheduling` event (with its count) or `PodScheduled`
    /// condition (`None`).
    pub event_count: Option<u32>,
    /// Nodes considered (`0/N nodes are available`).
    pub total: Option<u32>,
    /// The clauses.
    pub reasons: Vec<Reason>,
    /// Whether the scheduler said preemption cannot help on any node (every
    /// clause of its `preemption:` part is "No preemption victims found" or
    /// "Preemption is not helpful for scheduling").
    pub preemption_futile: bool,
}

impl Scheduling {
    /// The GPU resources (`nvidia.com/...`) some nodes lack.
    pub(crate) fn gpu_shortage(&self) -> Option<&Reason> {
        self.reasons
            .iter()
            .find(|r| matches!(&r.class, ReasonClass::Resource(n) if n.starts_with("nvidia.com/")))
    }

    /// Nodes excluded for reasons of a class.
    pub(crate) fn count(&self, f: impl Fn(&ReasonClass) -> bool) -> u32 {
        self.reasons
            .iter()
            .filter(|r| f(&r.class))
            .map(|r| r.nodes)
            .sum()
    }

    /// Where the message came from, for people.
    pub(crate) fn source(&self) -> String {
        match self.event_count {
            Some(n) => format!("FailedScheduling event ({n} times)"),
            None => "PodScheduled condition (no FailedScheduling event: events expire after 1 h)"
                .to_owned(),
        }
    }

    /// Facts: the message, its source, and one per clause.
    pub(crate) fn facts(&self) -> Vec<Fact> {
        let mut v = vec![
            match self.time {
                Some(t) => Fact::at("scheduler message", self.message.clone(), t),
                None => Fact::new("scheduler message", self.message.clone()),
            },
            Fact::new("source", self.source()),
        ];
        for r in self.reasons.iter().filter(|r| r.nodes > 0) {
            let of = self.total.map(|t| format!(" of {t}")).unwrap_or_default();
            v.push(Fact::new(
                format!("nodes excluded: {}", clause_name(&r.text)),
                format!("{}{of}", r.nodes),
            ));
        }
        v
    }
}

/// A clause without its count (`2 Insufficient memory` -> `Insufficient memory`).
pub(super) fn clause_name(text: &str) -> &str {
    text.split_once(' ')
        .filter(|(n, _)| n.parse::<u32>().is_ok())
        .map_or(text, |(_, rest)| rest)
}

/// The scheduler's failure for an unbound Pending pod: its latest
/// `FailedScheduling` event, else the `PodScheduled=False` condition's
/// message (which survives the event's expiry).
pub(crate) fn scheduling_failure(ctx: &Context<'_>, pod: &Pod) -> Option<Scheduling> {
    if k8s::phase(pod) != "Pending" || k8s::node_name(pod).is_some() {
        return None;
    }
    let event = ctx
        .events_for(pod)
        .into_iter()
        .rev()
        .find(|e| reason_is(e, "FailedScheduling"));
    let (msg, time, count) = match event {
        Some(e) => (
            message(e).to_owned(),
            k8s::event_last_time(e),
            Some(event_count(e)),
        ),
        None => {
            let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })?;
            (
                c.message.clone().unwrap_or_default(),
                c.last_transition_time.as_ref().map(k8s::ts),
                None,
            )
        }
    };
    let (total, reasons) = parse_scheduling_message(&msg);
    let main = msg.split(" preemption:").next().unwrap_or(&msg);
    Some(Scheduling {
        message: main.trim().to_owned(),
        time,
        event_count: count,
        total,
        reasons,
        preemption_futile: preemption_futile(&msg),
    })
}

/// Parses `0/5 nodes are available: 1 Insufficient cpu, 2 node(s) had
/// untolerated taint {k: v}, ... preemption: ...` into the node total and
/// the clauses; messages without counts (`pod has unbound immediate
/// PersistentVolumeClaims`) give one clause with a count of 0.
pub(crate) fn parse_scheduling_message(msg: &str) -> (Option<u32>, Vec<Reason>) {
    let main = msg.split(" preemption:").next().unwrap_or(msg).trim();
    let (total, rest) = match main.split_once(" nodes are available:") {
        Some((head, rest)) => (
            head.rsplit('/').next().and_then(|n| n.trim().parse().ok()),
            rest,
        ),
        None => (None, main),
    };
    let rest = rest.trim().trim_end_matches('.');
    // Split on ", " before a count; a taint's text may hold ", " itself.
    let mut clauses: Vec<String> = Vec::new();
    for piece in rest.split(", ") {
        let starts_with_count = piece
            .split_once(' ')
            .is_some_and(|(n, _)| n.parse::<u32>().is_ok());
        match clauses.last_mut() {
            Some(last) if !starts_with_count => {
                last.push_str(", ");
                last.push_str(piece);
            }
            _ => clauses.push(piece.to_owned()),
        }
    }
    let reasons = clauses
        .into_iter()
        .filter(|c| !c.is_empty())
        .flat_map(|c| {
            // `pod has unbound immediate PersistentVolumeClaims. ...`
            c.split(". ")
                .map(|s| s.trim().trim_end_matches('.').to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .map(|text| {
            let (nodes, body) = match text.split_once(' ') {
                Some((n, b)) if n.parse::<u32>().is_ok() => (n.parse().unwrap_or(0), b.to_owned()),
                _ => (0, text.clone()),
            };
            Reason {
                nodes,
                class: classify_clause(&body),
                text,
            }
        })
        .collect();
    (total, reasons)
}

fn classify_clause(body: &str) -> ReasonClass {
    let b = body.to_ascii_lowercase();
    if let Some(r) = body.strip_prefix("Insufficient ") {
        ReasonClass::Resource(r.trim().to_owned())
    } else if b.contains("too many pods") {
        ReasonClass::Resource("pods".into())
    } else if b.contains("free ports") {
        ReasonClass::Resource("host ports".into())
    } else if b.contains("taint") {
        ReasonClass::Taint
    } else if b.contains("persistentvolumeclaim")
        || b.contains("persistent volume")
        || b.contains("volume node affinity")
        || b.contains("volume")
    {
        ReasonClass::Volume
    } else if b.contains("node affinity") || b.contains("node selector") {
        ReasonClass::NodeAffinity
    } else if b.contains("pod affinity")
        || b.contains("anti-affinity")
        || b.contains("topology spread")
    {
        ReasonClass::PodAffinity
    } else if b.contains("unschedulable") {
        ReasonClass::Cordoned
    } else {
        ReasonClass::Other
    }
}

/// Whether a taint clause names only control-plane taints (which a
/// workload is never meant to tolerate: those nodes are not candidates).
pub(super) fn control_plane_taint(text: &str) -> bool {
    text.contains("node-role.kubernetes.io/control-plane")
        || text.contains("node-role.kubernetes.io/master")
}

/// Whether the `preemption:` part of a scheduling message rules
/// preemption out on every node.
fn preemption_futile(msg: &str) -> bool {
    let Some((_, preemption)) = msg.split_once(" preemption:") else {
        return false;
    };
    let clauses = preemption
        .split_once("available:")
        .map_or("", |(_, c)| c)
        .trim()
        .trim_end_matches('.');
    !clauses.is_empty()
        && clauses.split(", ").all(|c| {
            c.contains("No preemption victims found") || c.contains("Preemption is not helpful")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::quoted_after;

    #[test]
    fn scheduling_messages_parse_into_counted_clauses() {
        let (total, r) = parse_scheduling_message(
            "0/5 nodes are available: 1 Insufficient cpu, 2 Insufficient memory, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.",
        );
        assert_eq!(total, Some(5));
        let got: Vec<(u32, ReasonClass)> = r.iter().map(|r| (r.nodes, r.class.clone())).collect();
        assert_eq!(
            got,
            vec![
                (1, ReasonClass::Resource("cpu".into())),
                (2, ReasonClass::Resource("memory".into())),
                (2, ReasonClass::Taint),
                (3, ReasonClass::NodeAffinity),
            ]
        );
    }

    #[test]
    fn preemption_is_futile_only_when_every_node_says_so() {
        assert!(preemption_futile(
            "0/12 nodes are available: 4 Insufficient nvidia.com/gpu, 8 node(s) didn't match Pod's node affinity/selector. preemption: 0/12 nodes are available: 4 No preemption victims found for incoming pod, 8 Preemption is not helpful for scheduling."
        ));
        assert!(!preemption_futile(
            "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Insufficient nvidia.com/gpu."
        ));
        assert!(!preemption_futile(
            "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
        ));
    }

    #[test]
    fn unbound_claims_and_missing_claims_are_volume_reasons() {
        let (total, r) = parse_scheduling_message(
            "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
        );
        assert_eq!(total, Some(3));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].class, ReasonClass::Volume);
        let (_, r) = parse_scheduling_message("persistentvolumeclaim \"data\" not found");
        assert_eq!(r[0].class, ReasonClass::Volume);
        assert_eq!(
            quoted_after(
                "persistentvolumeclaim \"data\" not found",
                "persistentvolumeclaim \""
            ),
            Some("data".into())
        );
    }
}
