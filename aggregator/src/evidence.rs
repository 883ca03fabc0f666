//! Evidence assembly: the diagnosis engine's [`Evidence`] built from the
//! live state — the Kubernetes stores ([`crate::kube`]), the agents'
//! samples and history ([`State`]) and the incident store ([`Store`]) —
//! converted to the observation types through `gpuscope_model::wire`.
//!
//! The Kubernetes stores keep compact projections ([`crate::kube::project`]):
//! pods are selected by the fields their projection reads without
//! rebuilding (namespace, name, UID, node, GPU request, device-plugin
//! match), and only the selected ones are rebuilt as `k8s-openapi`
//! objects for the rules.
//!
//! History is kept in the state as reduced points ([`ContainerPoint`],
//! [`GpuPoint`]); they are widened back into samples here. The newest
//! sample of each container and GPU is the full one; older ones carry what
//! a point keeps: memory usage, limit, anon/file/shmem, the `oom_kill`
//! counter, CPU usage and the memory PSI `avg10` (no PSI totals, no CPU or
//! IO pressure), and for GPUs the utilizations, memory used, power and
//! temperature, with the holders of the newest sample and as many
//! processes as the point counted (the newest sample's list when the count
//! is the same, otherwise placeholders with PID 0).

use std::collections::HashSet;
use std::sync::Arc;

use gpuscope_diagnose::{AgentRecords, Evidence, Gap, LogTail, PodKey, k8s};
use gpuscope_model::wire::{event_from_wire, node_sample_from_wire};
use gpuscope_model::{self as model, Timestamp};
use gpuscope_proto::v1::{
    ContainerPoint, GpuPoint, GpuProcess, Incident, IncidentFilter, IncidentKind, MemoryEvents,
    RecordedDiagnosis, node_event::Kind as EventKind,
};
use k8s_openapi::api::core::v1::{Event, Pod};

use crate::clock::now_unix_nanos;
use crate::error::Result;
use crate::kube::{Kube, Mark, PodIndex, PodView, Projection, join};
use crate::state::{NodeRecords, State};
use crate::store::{DiagnosedPod, Store};

/// How far back a container's history goes in a cluster-wide Diagnose,
/// before its newest point (Explain of one pod takes all of it): twice the
/// 10-minute container windows of the GPU-use rules (stuck, wedge, input).
pub const DIAGNOSE_CONTAINER_WINDOW: std::time::Duration = std::time::Duration::from_secs(20 * 60);
/// History points per GPU in a Diagnose.
pub const DIAGNOSE_GPU_POINTS: usize = 600;
/// Incidents read for one pod and for one node in an Explain.
pub const EXPLAIN_INCIDENTS: usize = 500;
/// Incidents read in all for a Diagnose (newest first).
pub const DIAGNOSE_INCIDENTS: usize = 5000;
/// How far back a Diagnose reads incidents.
pub const DIAGNOSE_INCIDENTS_WINDOW: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

/// Gaps when the aggregator runs without Kubernetes.
pub fn no_kube_gaps() -> Vec<Gap> {
    let why = "the aggregator runs with --no-kube: no Kubernetes objects";
    ["pods", "node", "events", "pvcs"]
        .into_iter()
        .map(|what| Gap::new(what, why))
        .collect()
}

/// The pod an Explain or GetBundle is about, as found.
#[derive(Debug, Clone)]
pub struct Target {
    /// Namespace and name (with --no-kube and a UID: the namespace asked
    /// for and the UID).
    pub key: PodKey,
    /// The pod object, when Kubernetes knows it (or knew it: `deleted`).
    pub pod: Option<Arc<Pod>>,
    /// Kubernetes has deleted the pod lately: `pod` is its last state.
    pub deleted: bool,
    /// Its UID, when known.
    pub uid: Option<String>,
    /// Nodes whose records concern it (its node; with agent data only,
    /// every node that reported it).
    pub nodes: Vec<String>,
}

/// Builds evidence from the live state.
#[derive(Debug, Clone)]
pub struct Assembler {
    state: Arc<State>,
    store: Arc<Store>,
    kube: Option<Arc<Kube>>,
}

impl Assembler {
    /// An assembler over the aggregator's state, store and (unless
    /// --no-kube) Kubernetes stores.
    pub fn new(state: Arc<State>, store: Arc<Store>, kube: Option<Arc<Kube>>) -> Self {
        Self { state, store, kube }
    }

    /// The Kubernetes side, when it runs.
    pub fn kube(&self) -> Option<&Arc<Kube>> {
        self.kube.as_ref()
    }

    /// Finds a pod by namespace and name, or by UID (in Kubernetes, then
    /// in the agents' containers, GPU holders and stored incidents).
    /// `None`: nothing knows it.
    pub async fn resolve(&self, namespace: &str, pod: &str) -> Result<Option<Target>> {
        let namespace = if namespace.is_empty() {
            "default"
        } else {
            namespace
        };
        if let Some(kube) = &self.kube {
            let by_name = |p: &PodView| p.namespace() == namespace && p.name() == pod;
            let by_uid = |p: &PodView| !pod.is_empty() && p.uid() == Some(pod);
            let live = kube
                .pod(namespace, pod)
                .or_else(|| kube.pod_by_uid(pod).filter(|p| by_uid(p)));
            let found = match live {
                Some(p) => Some((p, false)),
                None => kube
                    .departed(|p| by_name(p) || by_uid(p))
                    .map(|p| (p, true)),
            };
            if let Some((p, deleted)) = found {
                let id = p.identity();
                return Ok(Some(Target {
                    key: PodKey {
                        namespace: id.namespace,
                        name: id.name,
                    },
                    uid: p.uid().map(str::to_owned),
                    nodes: id.node.into_iter().collect(),
                    pod: p.rebuilt().map(Arc::new),
                    deleted,
                }));
            }
        }
        let key = PodKey {
            namespace: namespace.to_owned(),
            name: pod.to_owned(),
        };
        let nodes = self.state.nodes_of_pod(pod);
        if !nodes.is_empty() {
            return Ok(Some(Target {
                key,
                pod: None,
                deleted: false,
                uid: Some(pod.to_owned()),
                nodes,
            }));
        }
        let nodes = self.state.nodes_of_gpu_holder(namespace, pod);
        if !nodes.is_empty() {
            return Ok(Some(Target {
                key,
                pod: None,
                deleted: false,
                uid: None,
                nodes,
            }));
        }
        // A pod Kubernetes has deleted since an incident named it: its
        // recorded diagnosis knows its UID and node.
        let name = DiagnosedPod::Name {
            namespace: namespace.to_owned(),
            name: pod.to_owned(),
        };
        if let Some(d) = self.recorded(name, 1).await?.pop() {
            return Ok(Some(Target {
                key,
                pod: None,
                deleted: false,
                uid: Some(d.pod_uid).filter(|u| !u.is_empty()),
                nodes: vec![d.node_name],
            }));
        }
        let filter = IncidentFilter {
            pod_uid: pod.to_owned(),
            ..IncidentFilter::default()
        };
        let (incidents, _) = self.list(filter, 0, 100).await?;
        if incidents.is_empty() {
            return Ok(None);
        }
        let mut nodes: Vec<String> = incidents.into_iter().map(|i| i.node_name).collect();
        nodes.sort();
        nodes.dedup();
        Ok(Some(Target {
            key,
            pod: None,
            deleted: false,
            uid: Some(pod.to_owned()),
            nodes,
        }))
    }

    /// The evidence about one pod: the pod, the events about it, its node
    /// and its PVCs, every node, every GPU-requesting and device-plugin
    /// pod, the PVCs it mounts, its node's agent records (its containers'
    /// history, every GPU's, incidents of the pod and the node's GPU
    /// incidents and node-wide OOM kills), and the log tails of its
    /// containers that ended abnormally (with --fetch-logs).
    pub async fn explain(&self, target: &Target) -> Result<Evidence> {
        let mut ev = Evidence {
            now: Some(Timestamp::now()),
            ..Evidence::default()
        };
        match &self.kube {
            Some(kube) => {
                kube_objects_for_pod(kube, target, &mut ev);
                ev.gaps.extend(kube.gaps());
                if target.deleted {
                    ev.gaps.push(Gap::new(
                        "pods",
                        format!(
                            "{} was deleted from Kubernetes: its last state before the deletion is used",
                            target.key
                        ),
                    ));
                }
                if let Some(pod) = &target.pod {
                    self.logs(kube, pod, &mut ev).await;
                }
            }
            None => ev.gaps.extend(no_kube_gaps()),
        }
        let uid = target.uid.as_deref();
        let mut incidents = Vec::new();
        if let Some(uid) = uid {
            let filter = IncidentFilter {
                pod_uid: uid.to_owned(),
                ..IncidentFilter::default()
            };
            incidents.extend(self.list(filter, 0, EXPLAIN_INCIDENTS).await?.0);
        }
        for node in &target.nodes {
            let filter = IncidentFilter {
                node_name: node.clone(),
                kinds: node_incident_kinds(),
                ..IncidentFilter::default()
            };
            let (found, _) = self.list(filter, 0, EXPLAIN_INCIDENTS).await?;
            incidents.extend(
                found
                    .into_iter()
                    .filter(|i| concerns(i, |p| Some(p) == uid)),
            );
        }
        if target.nodes.is_empty() {
            ev.gaps.push(Gap::new(
                "agent",
                format!("{} is not bound to a node: no agent records", target.key),
            ));
            // A pod that waits for GPUs: the GPU incidents of every GPU
            // node (an XID, a lost GPU, a count that dropped) can be why
            // none offers enough; the rules link them to its scheduling
            // failure through the GPUs they made unhealthy.
            if target.pod.as_ref().is_some_and(|p| k8s::gpu_request(p) > 0) {
                let gpu_nodes: Vec<String> = ev
                    .nodes
                    .iter()
                    .filter(|n| k8s::node_gpus(n).0.is_some_and(|c| c > 0))
                    .filter_map(|n| n.metadata.name.clone())
                    .collect();
                for node in gpu_nodes {
                    let filter = IncidentFilter {
                        node_name: node.clone(),
                        kinds: gpu_incident_kinds(),
                        ..IncidentFilter::default()
                    };
                    let (found, _) = self.list(filter, 0, EXPLAIN_INCIDENTS).await?;
                    let events = incidents_of(&node, &found);
                    if !events.is_empty() {
                        ev.agents.push(AgentRecords {
                            node: Some(node),
                            events,
                            ..AgentRecords::default()
                        });
                    }
                }
            }
        }
        for node in &target.nodes {
            let records = self
                .state
                .node_records(node, |p| Some(p) == uid, usize::MAX);
            match records {
                Some(r) => {
                    if let Some(gap) = agent_gap(&r) {
                        ev.gaps.push(gap);
                    }
                    ev.agents.push(agent_records(r, &incidents));
                }
                None => {
                    ev.gaps.push(Gap::new(
                        "agent",
                        format!("no agent has reported from node {node}"),
                    ));
                    let only = incidents_of(node, &incidents);
                    if !only.is_empty() {
                        ev.agents.push(AgentRecords {
                            node: Some(node.clone()),
                            events: only,
                            ..AgentRecords::default()
                        });
                    }
                }
            }
        }
        Ok(ev)
    }

    /// The evidence for a whole-cluster (or some namespaces') diagnosis:
    /// the namespaces' pods, events and PVCs, every node, every
    /// GPU-requesting and device-plugin pod, every node's agent records
    /// (the selected pods' containers and every GPU, bounded history) and
    /// the last day's incidents (bounded). `namespaces`: `None` for all.
    pub async fn diagnose(&self, namespaces: Option<&[String]>) -> Result<Evidence> {
        let mut ev = Evidence {
            now: Some(Timestamp::now()),
            ..Evidence::default()
        };
        let in_scope = |ns: &str| namespaces.is_none_or(|n| n.iter().any(|x| x == ns));
        // Pod UIDs whose containers are wanted; `None`: every container.
        let mut uids: Option<HashSet<String>> = None;
        match &self.kube {
            Some(kube) => {
                // Select on the projections (under the stores' read
                // locks), rebuild outside them.
                let mut selected_pods = Vec::new();
                kube.for_each_pod(|p| {
                    let selected = in_scope(p.namespace());
                    if selected || p.gpu_request() > 0 || p.is_device_plugin() {
                        if selected && namespaces.is_some() {
                            uids.get_or_insert_with(HashSet::new)
                                .extend(p.uid().map(str::to_owned));
                        }
                        selected_pods.push(p.clone());
                    }
                });
                ev.pods = selected_pods.iter().filter_map(|p| p.rebuilt()).collect();
                if namespaces.is_some() && uids.is_none() {
                    uids = Some(HashSet::new());
                }
                ev.nodes = kube.nodes().iter().filter_map(|n| n.rebuilt()).collect();
                ev.events = kube.events_where(|kind, ns| {
                    kind == "Node" || in_scope(if ns.is_empty() { "default" } else { ns })
                });
                ev.pvcs = kube
                    .pvcs()
                    .iter()
                    .filter(|c| in_scope(c.namespace()))
                    .filter_map(|c| c.rebuilt())
                    .collect();
                ev.gaps.extend(kube.gaps());
            }
            None => ev.gaps.extend(no_kube_gaps()),
        }
        let since = now_unix_nanos().saturating_sub(DIAGNOSE_INCIDENTS_WINDOW.as_nanos() as u64);
        let filter = IncidentFilter {
            kinds: node_incident_kinds(),
            ..IncidentFilter::default()
        };
        let (incidents, truncated) = self.list(filter, since, DIAGNOSE_INCIDENTS).await?;
        if truncated {
            ev.gaps.push(Gap::new(
                "agent",
                format!("more than {DIAGNOSE_INCIDENTS} incidents in the last day: only the newest were read"),
            ));
        }
        let wanted = |p: &str| uids.as_ref().is_none_or(|u| u.contains(p));
        let incidents: Vec<Incident> = incidents
            .into_iter()
            .filter(|i| concerns(i, wanted))
            .collect();
        let names = self.state.node_names();
        if names.is_empty() {
            ev.gaps.push(Gap::new(
                "agent",
                "no agent has connected to this aggregator",
            ));
        }
        for node in names {
            let Some(mut r) = self.state.node_records(&node, wanted, DIAGNOSE_GPU_POINTS) else {
                continue;
            };
            let window = DIAGNOSE_CONTAINER_WINDOW.as_nanos() as u64;
            for (_, points) in &mut r.containers {
                let newest = points.last().map_or(0, |p| p.time_unix_nanos);
                points.retain(|p| p.time_unix_nanos >= newest.saturating_sub(window));
            }
            if let Some(gap) = agent_gap(&r) {
                ev.gaps.push(gap);
            }
            ev.agents.push(agent_records(r, &incidents));
        }
        Ok(ev)
    }

    /// Log tails of the pod's containers that ended abnormally, or the
    /// gap saying why there are none.
    async fn logs(&self, kube: &Kube, pod: &Pod, ev: &mut Evidence) {
        let ended = join::abnormally_ended(pod);
        if ended.is_empty() {
            return;
        }
        if !kube.fetch_logs() {
            ev.gaps.push(Gap::new(
                "logs",
                "log tails not fetched: start the aggregator with --fetch-logs \
                 (or run kubectl logs --previous)",
            ));
            return;
        }
        let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
        for e in ended {
            match kube.log_tail(ns, name, &e.container, e.previous).await {
                Ok(text) => ev.logs.push(LogTail {
                    namespace: ns.to_owned(),
                    pod: name.to_owned(),
                    container: e.container,
                    previous: e.previous,
                    text,
                }),
                Err(why) => ev.gaps.push(Gap::new(
                    "logs",
                    format!(
                        "log of {ns}/{name} container {}{}: {why}",
                        e.container,
                        if e.previous { " (previous)" } else { "" }
                    ),
                )),
            }
        }
    }

    async fn list(
        &self,
        filter: IncidentFilter,
        since: u64,
        limit: usize,
    ) -> Result<(Vec<Incident>, bool)> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.list(&filter, since, 0, limit)).await?
    }

    /// The diagnoses recorded for `pod`, newest first, at most `limit`.
    pub async fn recorded(
        &self,
        pod: DiagnosedPod,
        limit: usize,
    ) -> Result<Vec<RecordedDiagnosis>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.diagnoses(&pod, limit)).await?
    }

    /// Stores a recorded diagnosis.
    pub async fn record(&self, d: RecordedDiagnosis) -> Result<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.record_diagnosis(&d)).await?
    }
}

/// The Kubernetes objects of an Explain.
fn kube_objects_for_pod(kube: &Kube, target: &Target, ev: &mut Evidence) {
    let node = target.nodes.first().map(String::as_str);
    let claims: Vec<String> = target
        .pod
        .as_deref()
        .map(join::claim_names)
        .unwrap_or_default();
    let ns = target.key.namespace.as_str();
    let mut seen = HashSet::new();
    if let Some(p) = &target.pod {
        seen.insert(k8s::pod_name(p));
        ev.pods.push((**p).clone());
    }
    // The neighbours the rules need, and no more (a large cluster has
    // tens of thousands of GPU pods): a pod that waits for a node needs
    // every node and every GPU holder (where are GPUs free, and why does
    // it not fit); a bound pod needs its node, that node's GPU holders and
    // device-plugin pods, and one device-plugin pod elsewhere as proof
    // that plugin pods were collected at all.
    let unbound = target
        .pod
        .as_deref()
        .is_some_and(|p| k8s::node_name(p).is_none());
    let neighbours = neighbours(kube, node, unbound, &mut seen);
    ev.pods
        .extend(neighbours.iter().filter_map(|p| p.rebuilt()));
    ev.nodes = match node {
        Some(name) if !unbound => kube
            .node(name)
            .and_then(|n| n.rebuilt())
            .into_iter()
            .collect(),
        _ => kube.nodes().iter().filter_map(|n| n.rebuilt()).collect(),
    };
    ev.pvcs = claims
        .iter()
        .filter_map(|c| kube.pvc(ns, c))
        .filter_map(|c| c.rebuilt())
        .collect();
    // Looked up by involved object, then checked whole (an event of an
    // earlier pod of the same name is not about this one). An event that
    // names no namespace is in `default`, as the API server defaults it;
    // a node's events name none, or `default`.
    let mut about = vec![("Pod", ns, target.key.name.as_str())];
    about.extend(
        claims
            .iter()
            .map(|c| ("PersistentVolumeClaim", ns, c.as_str())),
    );
    if ns == "default" {
        let unnamed: Vec<_> = about.iter().map(|(k, _, n)| (*k, "", *n)).collect();
        about.extend(unnamed);
    }
    if let Some(node) = node {
        about.extend([("Node", "", node), ("Node", "default", node)]);
    }
    ev.events = kube.events_about(&about);
    ev.events
        .retain(|e| event_concerns(e, target, node, &claims));
    ev.events.sort_by_key(k8s::event_last_time);
}

/// The neighbours the rules need of a pod on `node` (`unbound`: a pod
/// that waits for one), selected on the indexes (what they return, not
/// every pod; rebuilt by the caller outside the stores' locks): its node's
/// GPU-holding and device-plugin pods, one device-plugin pod elsewhere,
/// and for an unbound pod every GPU-requesting pod. `seen`: the
/// `namespace/name`s already taken, extended.
pub fn neighbours(
    pods: &impl PodIndex,
    node: Option<&str>,
    unbound: bool,
    seen: &mut HashSet<String>,
) -> Vec<Arc<PodView>> {
    let mut out = Vec::new();
    let mut take = |p: Arc<PodView>| {
        if seen.insert(p.pod_name()) {
            out.push(p);
        }
    };
    if unbound {
        pods.marked_pods(Mark::Gpus).into_iter().for_each(&mut take);
    }
    if let Some(node) = node {
        pods.pods_on(node)
            .into_iter()
            .filter(|p| p.is_device_plugin() || p.gpu_request() > 0)
            .for_each(&mut take);
    }
    if let Some(p) =
        pods.find_marked_pod(Mark::DevicePlugin, |p| node.is_none() || p.node() != node)
    {
        take(p);
    }
    out
}

/// Whether an event is about the pod, its node or a PVC it mounts.
fn event_concerns(e: &Event, target: &Target, node: Option<&str>, claims: &[String]) -> bool {
    let o = &e.involved_object;
    if let Some(p) = &target.pod
        && k8s::event_is_about(e, p)
    {
        return true;
    }
    match o.kind.as_deref() {
        Some("Pod") => {
            o.namespace.as_deref().unwrap_or("default") == target.key.namespace
                && o.name.as_deref() == Some(target.key.name.as_str())
                && target.pod.is_none()
        }
        Some("Node") => node.is_some() && o.name.as_deref() == node,
        Some("PersistentVolumeClaim") => {
            o.namespace.as_deref().unwrap_or("default") == target.key.namespace
                && o.name.as_ref().is_some_and(|n| claims.contains(n))
        }
        _ => false,
    }
}

/// Incident kinds read for a node: kills, GPU faults, source changes.
/// The incidents that change which GPUs a node can offer.
fn gpu_incident_kinds() -> Vec<i32> {
    [
        IncidentKind::Xid,
        IncidentKind::GpuLost,
        IncidentKind::GpuCountChanged,
        IncidentKind::GpuHealthChange,
    ]
    .into_iter()
    .map(|k| k as i32)
    .collect()
}

fn node_incident_kinds() -> Vec<i32> {
    [
        IncidentKind::OomKill,
        IncidentKind::Xid,
        IncidentKind::GpuLost,
        IncidentKind::GpuCountChanged,
        IncidentKind::GpuHealthChange,
        IncidentKind::SwitchXid,
        IncidentKind::Source,
    ]
    .into_iter()
    .map(|k| k as i32)
    .collect()
}

/// Whether a node incident bears on the pods `pod` accepts: every GPU and
/// source incident, an OOM kill of such a pod's container, and node-wide
/// OOM kills (the node ran out; anyone may have been the victim).
fn concerns(i: &Incident, pod: impl Fn(&str) -> bool) -> bool {
    match i.event.as_ref().and_then(|e| e.kind.as_ref()) {
        Some(EventKind::OomKill(k)) => {
            k.constraint() == gpuscope_proto::v1::OomConstraint::Node
                || k.container.as_ref().is_some_and(|c| pod(&c.pod_uid))
        }
        Some(_) => true,
        None => false,
    }
}

/// A gap when the node's agent is not connected now.
fn agent_gap(r: &NodeRecords) -> Option<Gap> {
    if r.connected {
        return None;
    }
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(r.last_seen_unix_nanos);
    Some(Gap::new(
        "agent",
        format!(
            "the agent of node {} is disconnected (last heard from {}): its records may be stale",
            r.node_name,
            crate::kube::health::time(when)
        ),
    ))
}

/// The node's incidents among `incidents`, as model events, oldest first,
/// each once.
fn incidents_of(node: &str, incidents: &[Incident]) -> Vec<model::Event> {
    let mut seen = HashSet::new();
    let mut v: Vec<(u64, model::Event)> = incidents
        .iter()
        .filter(|i| i.node_name == node)
        .filter(|i| {
            let seq = i.event.as_ref().map_or(0, |e| e.seq);
            seen.insert((i.boot_id.clone(), seq))
        })
        .filter_map(|i| {
            let t = crate::store::incident_time(i);
            i.event.clone().and_then(event_from_wire).map(|e| (t, e))
        })
        .collect();
    v.sort_by_key(|(t, _)| *t);
    v.into_iter().map(|(_, e)| e).collect()
}

/// One node's records as the engine's agent records.
fn agent_records(r: NodeRecords, incidents: &[Incident]) -> AgentRecords {
    let events = incidents_of(&r.node_name, incidents);
    let node_samples = r
        .latest
        .map(|s| node_sample_from_wire(s, &r.identity))
        .into_iter()
        .collect();
    let mut containers = Vec::new();
    for (latest, points) in &r.containers {
        containers.extend(container_samples(latest, points));
    }
    containers.sort_by_key(|c| c.time);
    let mut gpus = Vec::new();
    for (latest, points) in &r.gpus {
        gpus.extend(gpu_samples(latest, points));
    }
    gpus.sort_by_key(|g| g.time);
    AgentRecords {
        node: Some(r.node_name),
        events,
        containers,
        gpus,
        node_samples,
    }
}

/// A container's history widened back into samples, oldest first; the
/// newest is the full latest sample.
pub fn container_samples(
    latest: &gpuscope_proto::v1::ContainerSample,
    points: &[ContainerPoint],
) -> Vec<model::ContainerSample> {
    let mut out: Vec<model::ContainerSample> = points
        .iter()
        .filter(|p| p.time_unix_nanos != latest.time_unix_nanos)
        .map(|p| {
            let mut s = latest.clone();
            s.time_unix_nanos = p.time_unix_nanos;
            let mut m = s.memory.take().unwrap_or_default();
            m.usage_bytes = p.usage_bytes;
            m.limit_bytes = p.limit_bytes;
            m.anon_bytes = p.anon_bytes;
            m.file_bytes = p.file_bytes;
            m.shmem_bytes = p.shmem_bytes;
            m.peak_bytes = None;
            m.events = Some(MemoryEvents {
                oom_kill: p.oom_kill,
                ..MemoryEvents::default()
            });
            m.reclaim = (p.pgmajfault.is_some()
                || p.workingset_refault_anon.is_some()
                || p.workingset_refault_file.is_some())
            .then_some(gpuscope_proto::v1::Reclaim {
                pgmajfault: p.pgmajfault,
                workingset_refault_anon: p.workingset_refault_anon,
                workingset_refault_file: p.workingset_refault_file,
            });
            s.memory = Some(m);
            // What was stuck is known only as of the latest sample.
            s.stuck.clear();
            s.cpu = p.cpu_usage_us.map(|u| gpuscope_proto::v1::CpuStats {
                usage_us: u,
                ..Default::default()
            });
            s.pressure = Some(gpuscope_proto::v1::Pressure {
                memory: p.memory_some_avg10.map(|avg10| gpuscope_proto::v1::Psi {
                    some: Some(gpuscope_proto::v1::PsiLine {
                        avg10,
                        ..Default::default()
                    }),
                    full: None,
                }),
                cpu: None,
                io: None,
            });
            s.into()
        })
        .collect();
    out.push(latest.clone().into());
    out
}

/// A GPU's history widened back into samples, oldest first; the newest is
/// the full latest sample.
pub fn gpu_samples(
    latest: &gpuscope_proto::v1::GpuSample,
    points: &[GpuPoint],
) -> Vec<model::GpuSample> {
    let mut out: Vec<model::GpuSample> = points
        .iter()
        .filter(|p| p.time_unix_nanos != latest.time_unix_nanos)
        .map(|p| {
            let mut s = latest.clone();
            s.time_unix_nanos = p.time_unix_nanos;
            s.utilization_gpu_percent = p.utilization_gpu_percent;
            s.utilization_memory_percent = p.utilization_memory_percent;
            s.memory_used_bytes = p.memory_used_bytes;
            s.power_draw_watts = p.power_draw_watts;
            s.temperature_celsius = p.temperature_celsius;
            if s.processes.len() != p.processes as usize {
                s.processes = (0..p.processes).map(|_| GpuProcess::default()).collect();
            }
            s.into()
        })
        .collect();
    out.push(latest.clone().into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::HistoryConfig;
    use gpuscope_model::Event as ModelEvent;
    use gpuscope_proto::v1 as pb;

    #[test]
    fn widened_history_keeps_each_points_reclaim_counters_and_no_stuck_threads() {
        let latest = pb::ContainerSample {
            time_unix_nanos: 30,
            memory: Some(pb::MemoryStats {
                usage_bytes: 9,
                reclaim: Some(pb::Reclaim {
                    pgmajfault: Some(300),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            stuck: vec![pb::StuckTask {
                pid: 7,
                comm: "python3".into(),
                wait: pb::WaitKind::Nfs as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let points = [
            ContainerPoint {
                time_unix_nanos: 10,
                pgmajfault: Some(100),
                ..ContainerPoint::default()
            },
            ContainerPoint {
                time_unix_nanos: 20,
                ..ContainerPoint::default()
            },
            ContainerPoint {
                time_unix_nanos: 30,
                pgmajfault: Some(300),
                ..ContainerPoint::default()
            },
        ];
        let v = container_samples(&latest, &points);
        let majfaults: Vec<Option<u64>> = v.iter().map(|s| s.memory.reclaim.pgmajfault).collect();
        assert_eq!(majfaults, [Some(100), None, Some(300)]);
        let stuck: Vec<usize> = v.iter().map(|s| s.stuck.len()).collect();
        assert_eq!(
            stuck,
            [0, 0, 1],
            "what is stuck is known as of the latest sample only"
        );
    }

    const T0: u64 = 1_764_000_000_000_000_000;
    const SEC: u64 = 1_000_000_000;

    fn container(pod: &str, id: &str, t: u64, usage: u64) -> pb::ContainerSample {
        pb::ContainerSample {
            time_unix_nanos: t,
            container: Some(pb::ContainerRef {
                cgroup_path: format!("/kubepods/burstable/pod{pod}/{id}"),
                pod_uid: pod.into(),
                container_id: id.into(),
                ..Default::default()
            }),
            memory: Some(pb::MemoryStats {
                usage_bytes: usage,
                limit_bytes: Some(1 << 30),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn gpu(t: u64, util: u32, processes: usize) -> pb::GpuSample {
        pb::GpuSample {
            time_unix_nanos: t,
            uuid: "GPU-1".into(),
            utilization_gpu_percent: Some(util),
            memory_total_bytes: 80 << 30,
            processes: vec![
                pb::GpuProcess {
                    pid: 42,
                    ..Default::default()
                };
                processes
            ],
            holders: vec![pb::GpuHolder {
                namespace: "ml".into(),
                pod: "trainer-0".into(),
                container: "main".into(),
                resource_name: "nvidia.com/gpu".into(),
                device_id: "GPU-1".into(),
                replica: None,
            }],
            ..Default::default()
        }
    }

    fn oom(seq: u64, pod: &str, constraint: pb::OomConstraint) -> pb::NodeEvent {
        pb::NodeEvent {
            seq,
            time_unix_nanos: T0 + seq * SEC,
            kind: Some(EventKind::OomKill(pb::OomKill {
                time_unix_nanos: T0 + seq * SEC,
                container: Some(container(pod, "aaa", 0, 0).container.unwrap_or_default()),
                constraint: constraint as i32,
                ..Default::default()
            })),
        }
    }

    fn xid(seq: u64) -> pb::NodeEvent {
        pb::NodeEvent {
            seq,
            time_unix_nanos: T0 + seq * SEC,
            kind: Some(EventKind::Xid(pb::Xid {
                gpu_uuid: "GPU-1".into(),
                xid: 79,
                count: 1,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn the_pod_index_follows_containers_across_nodes_and_their_expiry() {
        let state = State::new(HistoryConfig {
            ttl: std::time::Duration::from_millis(50),
            ..HistoryConfig::default()
        });
        let report = |containers: Vec<pb::ContainerSample>| pb::NodeReport {
            containers,
            ..Default::default()
        };
        state.apply_report("n1", &mut report(vec![container("u-1", "aaa", T0, 1)]));
        state.apply_report("n2", &mut report(vec![container("u-1", "bbb", T0, 1)]));
        assert_eq!(state.nodes_of_pod("u-1"), ["n1", "n2"]);
        assert!(state.nodes_of_pod("u-2").is_empty());
        // The same cgroup path now belongs to another pod.
        let mut moved = container("u-1", "aaa", T0, 1);
        if let Some(r) = moved.container.as_mut() {
            r.pod_uid = "u-2".into();
        }
        state.apply_report("n1", &mut report(vec![moved]));
        assert_eq!(state.nodes_of_pod("u-1"), ["n2"]);
        assert_eq!(state.nodes_of_pod("u-2"), ["n1"]);
        // n2's container is not reported for longer than the TTL.
        std::thread::sleep(std::time::Duration::from_millis(80));
        state.apply_report("n2", &mut report(Vec::new()));
        assert!(state.nodes_of_pod("u-1").is_empty());
    }

    #[tokio::test]
    async fn without_kube_a_pod_uid_gets_its_containers_its_nodes_gpus_and_incidents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = Arc::new(State::new(HistoryConfig::default()));
        let store = Arc::new(Store::open(&dir.path().join("i.redb")).expect("store"));
        let id = pb::NodeIdentity {
            node_name: "gpu-1".into(),
            boot_id: "b1".into(),
            ..Default::default()
        };
        let _connected = state.connect(&id);
        for i in 0..3u64 {
            let t = T0 + i * SEC;
            let mut r = pb::NodeReport {
                node: Some(id.clone()),
                node_sample: Some(pb::NodeSample {
                    time_unix_nanos: t,
                    mem_total_bytes: 1 << 40,
                    ..Default::default()
                }),
                containers: vec![
                    container("u-1", "aaa", t, 100 * (i + 1)),
                    container("u-2", "bbb", t, 5),
                ],
                // Busy with two processes, then idle with one.
                gpus: vec![gpu(
                    t,
                    if i == 2 { 0 } else { 90 },
                    if i == 2 { 1 } else { 2 },
                )],
                ..Default::default()
            };
            state.apply_report("gpu-1", &mut r);
        }
        store
            .store_batch(
                "gpu-1",
                "b1",
                &[
                    oom(1, "u-1", pb::OomConstraint::Memcg),
                    oom(2, "u-2", pb::OomConstraint::Memcg),
                    xid(3),
                    oom(4, "u-3", pb::OomConstraint::Node),
                ],
                T0,
            )
            .expect("store");

        let a = Assembler::new(state, store, None);
        let target = a
            .resolve("", "u-1")
            .await
            .expect("resolve")
            .expect("known by its containers");
        assert_eq!(target.nodes, ["gpu-1"]);
        assert_eq!(target.uid.as_deref(), Some("u-1"));
        assert!(target.pod.is_none());

        let ev = a.explain(&target).await.expect("evidence");
        for what in ["pods", "node", "events", "pvcs"] {
            assert!(ev.lacks(what), "{what}: {:?}", ev.gaps);
        }
        assert!(!ev.lacks("agent"), "the agent is connected: {:?}", ev.gaps);
        assert_eq!(ev.agents.len(), 1);
        let r = &ev.agents[0];
        assert_eq!(r.node.as_deref(), Some("gpu-1"));
        let usage: Vec<_> = r.containers.iter().map(|c| c.memory.usage_bytes).collect();
        assert_eq!(usage, [100, 200, 300], "only u-1's container, oldest first");
        assert!(
            r.containers
                .iter()
                .all(|c| c.container.pod_uid.as_deref() == Some("u-1"))
        );
        let util: Vec<_> = r.gpus.iter().map(|g| g.utilization_gpu_percent).collect();
        assert_eq!(util, [Some(90), Some(90), Some(0)]);
        let procs: Vec<_> = r.gpus.iter().map(|g| g.processes.len()).collect();
        assert_eq!(procs, [2, 2, 1], "process counts survive the history");
        assert!(r.gpus.iter().all(|g| g.holders.len() == 1));
        assert_eq!(r.node_samples.len(), 1);
        // u-1's kill, the XID and the node-wide kill; not u-2's kill.
        let events: Vec<String> = r
            .events
            .iter()
            .map(|e| match e {
                ModelEvent::OomKill(k) => {
                    format!("oom {}", k.container.pod_uid.as_deref().unwrap_or(""))
                }
                ModelEvent::Xid { xid, .. } => format!("xid {xid}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(events, ["oom u-1", "xid 79", "oom u-3"]);

        // Named as a GPU holder, the pod is found on that node too.
        let holder = a.resolve("ml", "trainer-0").await.expect("resolve");
        assert_eq!(holder.map(|t| t.nodes), Some(vec!["gpu-1".to_owned()]));
        // Known only from a stored incident.
        let gone = a.resolve("", "u-3").await.expect("resolve");
        assert_eq!(gone.map(|t| t.nodes), Some(vec!["gpu-1".to_owned()]));
        assert!(a.resolve("", "u-9").await.expect("resolve").is_none());

        // Diagnose over everything: both pods' containers, and only the
        // last day's incidents (the ones above are older).
        let mut fresh = xid(5);
        fresh.time_unix_nanos = now_unix_nanos();
        a.store
            .store_batch("gpu-1", "b1", &[fresh], T0)
            .expect("store");
        let all = a.diagnose(None).await.expect("diagnose");
        assert_eq!(all.agents.len(), 1);
        assert_eq!(all.agents[0].containers.len(), 6);
        assert_eq!(all.agents[0].events.len(), 1);
    }
}
