//! The evidence, indexed for the questions rules ask.

use std::collections::HashMap;

use gpuscope_model::{ContainerSample, Event as NodeEvent, GpuSample, OomKill, Timestamp};
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod};

use crate::evidence::{AgentRecords, Evidence, LogTail};
use crate::finding::Subject;
use crate::{Config, k8s};

/// What a rule sees: the evidence, the thresholds, and "now".
pub struct Context<'a> {
    /// The snapshot.
    pub evidence: &'a Evidence,
    /// Thresholds and windows.
    pub config: &'a Config,
    /// The time of the snapshot (or the newest time in it).
    pub now: Timestamp,
    events_by_pod: HashMap<(String, String), Vec<&'a Event>>,
    /// When set, the one pod the rules judge (the others are neighbours).
    focus: Option<crate::PodKey>,
}

impl<'a> Context<'a> {
    /// Indexes `evidence`.
    pub fn new(evidence: &'a Evidence, config: &'a Config) -> Self {
        let now = evidence
            .now
            .or_else(|| evidence.newest_time())
            .unwrap_or_else(Timestamp::now);
        let mut events_by_pod: HashMap<(String, String), Vec<&Event>> = HashMap::new();
        for e in &evidence.events {
            let o = &e.involved_object;
            if o.kind.as_deref() == Some("Pod") {
                events_by_pod
                    .entry((
                        o.namespace.clone().unwrap_or_else(|| "default".into()),
                        o.name.clone().unwrap_or_default(),
                    ))
                    .or_default()
                    .push(e);
            }
        }
        for v in events_by_pod.values_mut() {
            v.sort_by_key(|e| k8s::event_last_time(e));
        }
        Self {
            evidence,
            config,
            now,
            events_by_pod,
            focus: None,
        }
    }

    /// Indexes `evidence` to judge one pod only: the rules skip the other
    /// pods (they stay available as neighbours), so explaining a pod costs
    /// the same in a large cluster as in a small one.
    pub fn focused(evidence: &'a Evidence, config: &'a Config, pod: &crate::PodKey) -> Self {
        Self {
            focus: Some(pod.clone()),
            ..Self::new(evidence, config)
        }
    }

    /// The pods the rules judge: every pod, or the focused one.
    pub fn subjects(&self) -> impl Iterator<Item = &'a Pod> + '_ {
        self.evidence.pods.iter().filter(|p| {
            self.focus
                .as_ref()
                .is_none_or(|f| k8s::namespace(p) == f.namespace && k8s::name(p) == f.name)
        })
    }

    /// All pods, subjects and neighbours.
    pub fn pods(&self) -> &'a [Pod] {
        &self.evidence.pods
    }

    /// All nodes.
    pub fn nodes(&self) -> &'a [Node] {
        &self.evidence.nodes
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&'a Node> {
        self.evidence
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }

    /// A PVC by namespace and name.
    pub fn pvc(&self, namespace: &str, name: &str) -> Option<&'a PersistentVolumeClaim> {
        self.evidence.pvcs.iter().find(|c| {
            c.metadata.name.as_deref() == Some(name)
                && c.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
    }

    /// Events about a pod, oldest first (matched by UID when both carry
    /// one, else by namespace and name).
    pub fn events_for(&self, pod: &Pod) -> Vec<&'a Event> {
        self.events_by_pod
            .get(&(k8s::namespace(pod).to_owned(), k8s::name(pod).to_owned()))
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|e| k8s::event_is_about(e, pod))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Events about a node, oldest first.
    pub fn node_events(&self, node: &str) -> Vec<&'a Event> {
        let mut v: Vec<&Event> = self
            .evidence
            .events
            .iter()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some("Node")
                    && e.involved_object.name.as_deref() == Some(node)
            })
            .collect();
        v.sort_by_key(|e| k8s::event_last_time(e));
        v
    }

    /// The agent records of a node. A bundle's records carry no node name
    /// and stand for the node of the bundle's pods.
    pub fn agent(&self, node: Option<&str>) -> Option<&'a AgentRecords> {
        let agents = &self.evidence.agents;
        node.and_then(|n| agents.iter().find(|a| a.node.as_deref() == Some(n)))
            .or_else(|| agents.iter().find(|a| a.node.is_none()))
    }

    /// The agent records of the pod's node.
    pub fn agent_of(&self, pod: &Pod) -> Option<&'a AgentRecords> {
        self.agent(k8s::node_name(pod))
    }

    /// Container samples of a pod, oldest first (matched by pod UID).
    pub fn samples_of(&self, pod: &Pod) -> Vec<&'a ContainerSample> {
        let (Some(a), Some(uid)) = (self.agent_of(pod), k8s::uid(pod)) else {
            return Vec::new();
        };
        a.containers
            .iter()
            .filter(|s| s.container.pod_uid.as_deref() == Some(uid))
            .collect()
    }

    /// Samples of one container instance, by its runtime ID.
    pub fn samples_of_container(&self, pod: &Pod, container_id: &str) -> Vec<&'a ContainerSample> {
        let id = k8s::bare_container_id(container_id);
        self.samples_of(pod)
            .into_iter()
            .filter(|s| s.container.container_id.as_deref() == Some(id))
            .collect()
    }

    /// OOM kills the agent recorded in the pod's containers, oldest first.
    pub fn kills_of(&self, pod: &Pod) -> Vec<&'a OomKill> {
        let (Some(a), Some(uid)) = (self.agent_of(pod), k8s::uid(pod)) else {
            return Vec::new();
        };
        let mut v: Vec<&OomKill> = a
            .events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::OomKill(k) if k.container.pod_uid.as_deref() == Some(uid) => Some(&**k),
                _ => None,
            })
            .collect();
        v.sort_by_key(|k| k.time);
        v
    }

    /// GPU samples of the GPUs the kubelet gave this pod (by PodResources
    /// holders, or by a process of the pod running on it), oldest first.
    pub fn gpus_of(&self, pod: &Pod) -> Vec<&'a GpuSample> {
        let Some(a) = self.agent_of(pod) else {
            return Vec::new();
        };
        let (ns, name, uid) = (k8s::namespace(pod), k8s::name(pod), k8s::uid(pod));
        a.gpus
            .iter()
            .filter(|g| {
                g.holders.iter().any(|h| h.namespace == ns && h.pod == name)
                    || g.processes.iter().any(|p| {
                        uid.is_some()
                            && p.container.as_ref().and_then(|c| c.pod_uid.as_deref()) == uid
                    })
            })
            .collect()
    }

    /// The log tail of a pod's container (`previous`: the terminated
    /// instance). A bundle's logs without a pod name belong to its pod.
    pub fn log(&self, pod: &Pod, container: &str, previous: bool) -> Option<&'a LogTail> {
        self.evidence.logs.iter().find(|l| {
            l.container == container
                && l.previous == previous
                && (l.pod.is_empty()
                    || (l.pod == k8s::name(pod) && l.namespace == k8s::namespace(pod)))
        })
    }

    /// The subject of a finding about a pod (and optionally a container).
    pub fn subject(&self, pod: &Pod, container: Option<&str>) -> Subject {
        Subject {
            namespace: Some(k8s::namespace(pod).to_owned()),
            pod: Some(k8s::name(pod).to_owned()),
            container: container.map(str::to_owned),
            node: k8s::node_name(pod).map(str::to_owned),
            gpu: None,
            owner: k8s::owner(pod),
        }
    }
}
