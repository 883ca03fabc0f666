//! The scheduler's `FailedScheduling` message (or `PodScheduled`
//! condition), parsed once for both families: `pod`'s pending rules
//! and `gpu_health`'s `gpu_unschedulable`; with the scheduler's filters
//! that run before resource fit ([`exclusions`]: cordon, taints,
//! selectors, required affinity) and its resource arithmetic per node
//! ([`node_figures`]: allocatable, requested, free), so that both
//! families, and the chains, judge a node the same way.

use std::collections::{BTreeMap, HashMap};

use gpuscope_model::Timestamp;
use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, Toleration};

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

/// Where the scheduler's message was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The latest `FailedScheduling` event, said this many times.
    Event(u32),
    /// The `PodScheduled=False` condition: no `FailedScheduling` event in
    /// the evidence.
    Condition,
    /// The `PodScheduled=False` condition, because the event's message
    /// (said this many times) is cut short or does not parse.
    ConditionOverEvent(u32),
}

/// The scheduler's verdict on a pod that it could not place.
#[derive(Debug, Clone)]
pub(crate) struct Scheduling {
    /// The message, as written (without the preemption part).
    pub message: String,
    /// When it was last said.
    pub time: Option<Timestamp>,
    /// Where it was read.
    pub source: Source,
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
        match self.source {
            Source::Event(n) => format!("FailedScheduling event ({n} times)"),
            Source::Condition => {
                "PodScheduled condition (no FailedScheduling event: events expire after 1 h)"
                    .to_owned()
            }
            Source::ConditionOverEvent(n) => format!(
                "PodScheduled condition (the FailedScheduling event, {n} times, has the same text cut short or unreadable)"
            ),
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

/// The prefix the event recorder's correlator puts on a message it
/// aggregated from similar events.
const COMBINED: &str = "(combined from similar events): ";

/// The scheduler's failure for an unbound Pending pod. The scheduler
/// writes the same text to its `FailedScheduling` event and to the
/// `PodScheduled=False` condition; the event's copy may be cut short (the
/// events API keeps at most 1 kB of it, ending in `...`) or aggregated
/// (`(combined from similar events): `), the condition's is whole and
/// survives the event's expiry. The latest event is read when its message
/// parses whole ([`parsed_whole`]) and is not a cut-short copy of the
/// condition's; else the condition, when it parses whole; else the event.
pub(crate) fn scheduling_failure(ctx: &Context<'_>, pod: &Pod) -> Option<Scheduling> {
    if k8s::phase(pod) != "Pending" || k8s::node_name(pod).is_some() {
        return None;
    }
    let event = ctx
        .events_for(pod)
        .into_iter()
        .rev()
        .find(|e| reason_is(e, "FailedScheduling"));
    let condition = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter().find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        })
        .map(|c| {
            (
                c.message.clone().unwrap_or_default(),
                c.last_transition_time.as_ref().map(k8s::ts),
            )
        });
    let Some(e) = event else {
        return condition.map(|(msg, time)| Scheduling::read(msg, time, Source::Condition));
    };
    let count = event_count(e);
    let text = message(e);
    let text = text.strip_prefix(COMBINED).unwrap_or(text);
    let read = Scheduling::read(
        text.to_owned(),
        k8s::event_last_time(e),
        Source::Event(count),
    );
    let cut = condition.as_ref().is_some_and(|(whole, _)| {
        let stem = text.trim_end().trim_end_matches("...");
        whole.len() > stem.len() && whole.starts_with(stem)
    });
    if parsed_whole(read.total, &read.reasons) && !cut {
        return Some(read);
    }
    match condition
        .map(|(msg, time)| Scheduling::read(msg, time, Source::ConditionOverEvent(count)))
    {
        Some(c) if parsed_whole(c.total, &c.reasons) => Some(c),
        _ => Some(read),
    }
}

impl Scheduling {
    /// The verdict a message gives.
    fn read(msg: String, time: Option<Timestamp>, source: Source) -> Self {
        let (total, reasons) = parse_scheduling_message(&msg);
        let main = msg.split(" preemption:").next().unwrap_or(&msg);
        Self {
            message: main.trim().to_owned(),
            time,
            source,
            total,
            reasons,
            preemption_futile: preemption_futile(&msg),
        }
    }
}

/// Whether a parsed message accounts for what it says: its clauses cover
/// every node it counts (`0/N nodes are available`: a node may fail more
/// than one filter, never none), or one clause without a count (`pod has
/// unbound immediate PersistentVolumeClaims`, said of every node) is of a
/// known class.
fn parsed_whole(total: Option<u32>, reasons: &[Reason]) -> bool {
    match total {
        Some(t) => {
            reasons.iter().map(|r| r.nodes).sum::<u32>() >= t
                || reasons
                    .iter()
                    .any(|r| r.nodes == 0 && r.class != ReasonClass::Other)
        }
        None => reasons.iter().any(|r| r.class != ReasonClass::Other),
    }
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

/// Why a node does not take the pod, whatever its free resources (empty:
/// it would): cordoned, a `NoSchedule`/`NoExecute` taint the pod does not
/// tolerate, a `nodeSelector` or required node affinity that fails — the
/// scheduler's filters that run before resource fit.
pub(crate) fn exclusions(pod: &Pod, n: &Node) -> Vec<String> {
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

/// One node's figures for a resource the scheduler found short: what it
/// offers (`allocatable`, and `capacity` when more), what the bound, live
/// pods in the evidence request, and what is left. The scheduler's own
/// arithmetic (requests, not use), so a reader sees which node came
/// closest and by how much.
pub(crate) struct NodeFigures {
    /// The node's name.
    pub node: String,
    /// Allocatable (cores for `cpu`, bytes for memory, a count otherwise).
    pub allocatable: f64,
    /// Capacity, when the node reports it.
    pub capacity: Option<f64>,
    /// Requested by the pods bound to it that have not finished.
    pub requested: f64,
}

impl NodeFigures {
    /// `allocatable 7 (capacity 8), requested 6, free 1`, in the
    /// resource's units.
    pub(crate) fn text(&self, resource: &str) -> String {
        let q = |v: f64| match resource {
            "memory" | "ephemeral-storage" => gpuscope_model::text::human_bytes(v.max(0.0) as u64),
            "cpu" => format!("{} cores", (v * 1000.0).round() / 1000.0),
            _ => format!("{}", (v * 1000.0).round() / 1000.0),
        };
        format!(
            "allocatable {}{}, requested {}, free {}",
            q(self.allocatable),
            // A device plugin's resource offers less than it has when
            // devices are unhealthy or the plugin is gone; for CPU and
            // memory the difference is only the node's reservations.
            self.capacity
                .filter(|c| *c > self.allocatable && resource.contains('/'))
                .map(|c| format!(" (capacity {})", q(c)))
                .unwrap_or_default(),
            q(self.requested),
            q((self.allocatable - self.requested).max(0.0))
        )
    }
}

/// The figures for `resource` of every node the pod could otherwise use
/// (no taint, selector, affinity or cordon excludes it: the nodes the
/// scheduler counted under the resource); nodes that offer none of it and
/// hold no request for it are left out.
pub(crate) fn node_figures(ctx: &Context<'_>, pod: &Pod, resource: &str) -> Vec<NodeFigures> {
    // What the pods bound to each node request, in one pass over the pods
    // (a large cluster's Pending pod is explained with every GPU holder).
    let mut requested_on: HashMap<&str, f64> = HashMap::new();
    for p in ctx.pods() {
        if let Some(node) = k8s::node_name(p)
            && !matches!(k8s::phase(p), "Succeeded" | "Failed")
        {
            *requested_on.entry(node).or_default() += k8s::pod_request_amount(p, resource);
        }
    }
    let mut out = Vec::new();
    for n in ctx.nodes().iter().filter(|n| exclusions(pod, n).is_empty()) {
        let name = n.metadata.name.clone().unwrap_or_default();
        let get = |m: Option<
            &std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >| { m.and_then(|m| m.get(resource)).and_then(k8s::quantity) };
        let st = n.status.as_ref();
        let allocatable = get(st.and_then(|s| s.allocatable.as_ref())).unwrap_or(0.0);
        let capacity = get(st.and_then(|s| s.capacity.as_ref()));
        let requested = requested_on.get(name.as_str()).copied().unwrap_or(0.0);
        if allocatable == 0.0 && requested == 0.0 && capacity.unwrap_or(0.0) == 0.0 {
            continue;
        }
        out.push(NodeFigures {
            node: name,
            allocatable,
            capacity,
            requested,
        });
    }
    out
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

    /// The scheduler's message as read for a Pending pod with this
    /// `PodScheduled` condition message and this `FailedScheduling` event
    /// message.
    fn read_failure(condition: &str, event: &str) -> Scheduling {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "train-0", "namespace": "ml", "uid": "u"},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": condition,
                "lastTransitionTime": "2026-11-20T10:00:00Z"}]}
        }))
        .expect("pod");
        let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "train-0.1", "namespace": "ml"},
            "involvedObject": {"kind": "Pod", "name": "train-0", "namespace": "ml", "uid": "u"},
            "reason": "FailedScheduling", "message": event, "count": 7,
            "lastTimestamp": "2026-11-20T10:05:00Z"
        }))
        .expect("event");
        let ev = crate::Evidence {
            pods: vec![pod.clone()],
            events: vec![event],
            ..crate::Evidence::default()
        };
        let config = crate::Config::default();
        scheduling_failure(&Context::new(&ev, &config), &pod).expect("a failure")
    }

    #[test]
    fn the_message_that_parses_wins() {
        let whole = "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: team-a}, 3 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling.";
        // The event's copy cut short by the events API's 1 kB limit.
        let s = read_failure(
            whole,
            "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: team-a}, 3 Insufficient nvi...",
        );
        assert_eq!(s.source, Source::ConditionOverEvent(7));
        assert!(s.gpu_shortage().is_some());
        // Aggregated by the event correlator: the same text, read from the event.
        let s = read_failure(whole, &format!("{COMBINED}{whole}"));
        assert_eq!(s.source, Source::Event(7));
        assert_eq!(s.total, Some(4));
        assert!(!s.message.starts_with("(combined"), "{}", s.message);
        // An event text the parser cannot read at all.
        let s = read_failure(whole, "skip schedule deleting pod: ml/train-0");
        assert_eq!(s.source, Source::ConditionOverEvent(7));
        // Neither parses: the event, as said.
        let s = read_failure("unknown", "also unknown");
        assert_eq!(
            (s.source, s.message.as_str()),
            (Source::Event(7), "also unknown")
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
}
