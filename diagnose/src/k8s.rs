//! Small, total accessors over Kubernetes objects: the API's optional
//! fields turned into the questions the rules ask.

use gpuscope_model::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerStatus, Event, Node, Pod, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::finding::Fact;

/// The resource name of NVIDIA GPUs.
pub const NVIDIA_GPU: &str = "nvidia.com/gpu";

/// A Kubernetes time as a [`Timestamp`].
pub fn ts(t: &Time) -> Timestamp {
    Timestamp(u64::try_from(t.0.as_nanosecond()).unwrap_or(0))
}

/// When an event last happened (`lastTimestamp`, `eventTime`,
/// `firstTimestamp`, then creation).
pub fn event_last_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(ts)
        .or_else(|| {
            e.event_time
                .as_ref()
                .map(|m| Timestamp(u64::try_from(m.0.as_nanosecond()).unwrap_or(0)))
        })
        .or_else(|| e.first_timestamp.as_ref().map(ts))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(ts))
}

/// Every time a pod carries (creation, start, conditions, container
/// state changes).
pub fn pod_times(p: &Pod) -> Vec<Timestamp> {
    let mut out: Vec<Timestamp> = p.metadata.creation_timestamp.iter().map(ts).collect();
    if let Some(s) = &p.status {
        out.extend(s.start_time.iter().map(ts));
        for c in s.conditions.iter().flatten() {
            out.extend(c.last_transition_time.iter().map(ts));
        }
        for c in container_statuses(p) {
            for state in [c.state.as_ref(), c.last_state.as_ref()]
                .into_iter()
                .flatten()
            {
                if let Some(r) = &state.running {
                    out.extend(r.started_at.iter().map(ts));
                }
                if let Some(t) = &state.terminated {
                    out.extend(t.started_at.iter().map(ts));
                    out.extend(t.finished_at.iter().map(ts));
                }
            }
        }
    }
    out
}

/// `namespace/name`.
pub fn pod_name(p: &Pod) -> String {
    format!("{}/{}", namespace(p), name(p))
}

/// The pod's namespace (`default` when unset, as the API server fills it).
pub fn namespace(p: &Pod) -> &str {
    p.metadata.namespace.as_deref().unwrap_or("default")
}

/// The pod's name.
pub fn name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or("")
}

/// The pod's UID.
pub fn uid(p: &Pod) -> Option<&str> {
    p.metadata.uid.as_deref()
}

/// The node the pod is bound to.
pub fn node_name(p: &Pod) -> Option<&str> {
    p.spec.as_ref()?.node_name.as_deref()
}

/// The pod's phase (`Pending`, `Running`, `Succeeded`, `Failed`).
pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown")
}

/// The pod's status, or an empty one (borrowed: no copy of the pod).
pub fn status(p: &Pod) -> &PodStatus {
    static EMPTY: std::sync::LazyLock<PodStatus> = std::sync::LazyLock::new(PodStatus::default);
    p.status.as_ref().unwrap_or(&EMPTY)
}

/// The pod's spec, or an empty one (borrowed: no copy of the pod).
pub fn spec(p: &Pod) -> &PodSpec {
    static EMPTY: std::sync::LazyLock<PodSpec> = std::sync::LazyLock::new(PodSpec::default);
    p.spec.as_ref().unwrap_or(&EMPTY)
}

/// Statuses of the init and app containers.
pub fn container_statuses(p: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    p.status.iter().flat_map(|s| {
        s.init_container_statuses
            .iter()
            .flatten()
            .chain(s.container_statuses.iter().flatten())
    })
}

/// A container ID without its runtime scheme (`containerd://abc` ->
/// `abc`), as the agent reports it.
pub fn bare_container_id(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

/// The pod's controlling owner as `Kind/name`, with a Deployment's
/// ReplicaSet hash removed (`ReplicaSet/web-7d4f9` -> `Deployment/web`
/// when the name ends in a pod-template hash).
pub fn owner(p: &Pod) -> Option<String> {
    let refs = p.metadata.owner_references.as_ref()?;
    let o = refs
        .iter()
        .find(|o| o.controller == Some(true))
        .or(refs.first())?;
    Some(owner_text(&o.kind, &o.name))
}

/// An owner reference as [`owner`] names it: `Kind/name`, a ReplicaSet
/// whose name ends in a pod-template hash as its Deployment.
pub fn owner_text(kind: &str, name: &str) -> String {
    if kind == "ReplicaSet"
        && let Some((base, hash)) = name.rsplit_once('-')
        && !hash.is_empty()
        && hash.len() <= 10
        && hash.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return format!("Deployment/{base}");
    }
    format!("{kind}/{name}")
}

/// A quantity of a resource in `requests` or `limits`, as a whole count
/// (GPUs) or bytes/millicores via [`quantity`].
pub fn resource(r: Option<&ResourceRequirements>, name: &str, limits: bool) -> Option<f64> {
    let r = r?;
    let map = if limits { &r.limits } else { &r.requests };
    map.as_ref()?.get(name).and_then(quantity)
}

/// A container's request or limit of a resource exactly as the manifest
/// writes it (`16Gi`, `500m`), when set.
pub fn written<'p>(
    r: Option<&'p ResourceRequirements>,
    name: &str,
    limits: bool,
) -> Option<&'p str> {
    let r = r?;
    let map = if limits { &r.limits } else { &r.requests };
    map.as_ref()?.get(name).map(|q| q.0.as_str())
}

/// A size in the user's units: the manifest's own quantity, with the
/// bytes beside it where they read differently (`16G (14.9 GiB)`,
/// `1500Mi (1.5 GiB)`), the quantity alone where they read the same
/// (`16Gi` is `16 GiB`), or the bytes alone when the manifest did not
/// write it. Every limit and request a finding quotes goes through here.
pub fn bytes_as_written(bytes: u64, written: Option<&str>) -> String {
    let human = gpuscope_model::text::human_bytes(bytes);
    match written {
        Some(w) if human.replace(' ', "").strip_suffix('B') == Some(w) => w.to_owned(),
        Some(w) => format!("{w} ({human})"),
        None => human,
    }
}

/// GPUs the pod asks for (see [`pod_request`]).
pub fn gpu_request(p: &Pod) -> u64 {
    pod_request(p, NVIDIA_GPU)
}

/// What the pod asks of a resource, as a whole count (see
/// [`pod_request_amount`]).
pub fn pod_request(p: &Pod, resource_name: &str) -> u64 {
    pod_request_amount(p, resource_name) as u64
}

/// What the pod asks of a resource, as the scheduler counts it: the sum
/// over app containers, or the largest init container's, whichever is
/// more; a container's limit stands for its request when it gives no
/// request (the API server's defaulting). Cores for `cpu`, bytes for
/// memory, a count otherwise.
pub fn pod_request_amount(p: &Pod, resource_name: &str) -> f64 {
    let Some(spec) = &p.spec else { return 0.0 };
    let one = |c: &k8s_openapi::api::core::v1::Container| {
        resource(c.resources.as_ref(), resource_name, false)
            .or_else(|| resource(c.resources.as_ref(), resource_name, true))
            .unwrap_or(0.0)
    };
    let app: f64 = spec.containers.iter().map(one).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(one)
        .fold(0.0, f64::max);
    app.max(init)
}

/// A node's `nvidia.com/gpu` capacity and allocatable counts.
pub fn node_gpus(n: &Node) -> (Option<u64>, Option<u64>) {
    let st = n.status.as_ref();
    let get = |m: Option<&std::collections::BTreeMap<String, Quantity>>| {
        m.and_then(|m| m.get(NVIDIA_GPU))
            .and_then(quantity)
            .map(|v| v as u64)
    };
    (
        get(st.and_then(|s| s.capacity.as_ref())),
        get(st.and_then(|s| s.allocatable.as_ref())),
    )
}

/// Whether the scheduler counts fewer GPUs on the node than it has: its
/// allocatable `nvidia.com/gpu` below its capacity, or none advertised.
/// The kubelet withholds GPUs that way when the device plugin goes away
/// (allocatable 0) or marks GPUs unhealthy (one fewer each).
pub fn gpus_withheld(n: &Node) -> bool {
    !matches!(node_gpus(n), (Some(capacity), Some(allocatable)) if capacity > 0 && allocatable >= capacity)
}

/// Parses a Kubernetes quantity (`2`, `500m`, `4Gi`, `1.5G`, `1e3`) into
/// a plain number (cores for CPU, bytes for memory, count otherwise).
pub fn quantity(q: &Quantity) -> Option<f64> {
    quantity_text(&q.0)
}

/// [`quantity`] of a quantity's text.
pub fn quantity_text(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let base: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(base * mult)
}

/// Whether the event is about this pod (by UID, or by kind, namespace
/// and name when the event carries no UID).
pub fn event_is_about(e: &Event, p: &Pod) -> bool {
    let o = &e.involved_object;
    if let (Some(a), Some(b)) = (o.uid.as_deref(), uid(p))
        && !a.is_empty()
    {
        return a == b;
    }
    o.kind.as_deref() == Some("Pod")
        && o.name.as_deref() == Some(name(p))
        && o.namespace.as_deref().unwrap_or("default") == namespace(p)
}

/// A container's waiting reason and message.
pub fn waiting(cs: &ContainerStatus) -> Option<(&str, &str)> {
    let w = cs.state.as_ref()?.waiting.as_ref()?;
    Some((
        w.reason.as_deref().unwrap_or(""),
        w.message.as_deref().unwrap_or(""),
    ))
}

/// Whether the event's reason is `reason`.
pub fn reason_is(e: &Event, reason: &str) -> bool {
    e.reason.as_deref() == Some(reason)
}

/// The event's message (empty without one).
pub fn message(e: &Event) -> &str {
    e.message.as_deref().unwrap_or("")
}

/// How many times an event happened (`count`, or `series.count` for new
/// style events; at least 1).
pub fn event_count(e: &Event) -> u32 {
    e.count
        .or_else(|| e.series.as_ref().and_then(|s| s.count))
        .unwrap_or(1)
        .max(1) as u32
}

/// An event's message as a fact at its last time.
pub fn event_fact(name: &str, e: &Event) -> Fact {
    let value = message(e).to_owned();
    match event_last_time(e) {
        Some(t) => Fact::at(name, value, t),
        None => Fact::new(name, value),
    }
}

/// The text between `prefix` and the next `"`.
pub fn quoted_after(text: &str, prefix: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find(&prefix.to_ascii_lowercase())? + prefix.len();
    let rest = &text[at..];
    let rest = rest.strip_prefix('\\').unwrap_or(rest);
    Some(rest.split(['"', '\\']).next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        let q = |s: &str| quantity(&Quantity(s.into()));
        assert_eq!(q("2"), Some(2.0));
        assert_eq!(q("500m"), Some(0.5));
        assert_eq!(q("4Gi"), Some(4.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(q("1.5G"), Some(1.5e9));
        assert_eq!(q("1e3"), Some(1000.0));
        assert_eq!(q("12Q"), None);
    }

    #[test]
    fn sizes_quote_the_manifest() {
        assert_eq!(bytes_as_written(16 << 30, Some("16Gi")), "16Gi");
        assert_eq!(bytes_as_written(100 << 20, Some("100Mi")), "100Mi");
        assert_eq!(
            bytes_as_written(1500 << 20, Some("1500Mi")),
            "1500Mi (1.5 GiB)"
        );
        assert_eq!(bytes_as_written(1 << 30, Some("1024Mi")), "1024Mi (1 GiB)");
        assert_eq!(
            bytes_as_written(16_000_000_000, Some("16G")),
            "16G (14.9 GiB)"
        );
        assert_eq!(bytes_as_written(16 << 30, None), "16 GiB");
    }

    #[test]
    fn deployment_owner_drops_the_template_hash() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-7d4f9b-x2", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4f9b", "uid": "u", "controller": true}
            ]}
        }))
        .expect("pod");
        assert_eq!(owner(&p).as_deref(), Some("Deployment/web"));
    }
}
