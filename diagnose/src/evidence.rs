//! The evidence snapshot the rules read: Kubernetes objects as the API
//! server (or `kubectl -o json`) returns them, the agent's records of the
//! nodes, and previous-container log tails.

use gpuscope_model::{
    ContainerSample, Event as NodeEvent, GpuSample, NodeSample, SourceStatus, Timestamp,
};
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod};

/// Everything known, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Pods: the subjects and their neighbours (device-plugin pods, other
    /// GPU holders).
    pub pods: Vec<Pod>,
    /// Core v1 events.
    pub events: Vec<Event>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// PersistentVolumeClaims.
    pub pvcs: Vec<PersistentVolumeClaim>,
    /// The agents' records, per node.
    pub agents: Vec<AgentRecords>,
    /// Log tails of containers.
    pub logs: Vec<LogTail>,
    /// When the snapshot was taken. `None`: the newest time in the
    /// evidence stands for it (bundles read offline).
    pub now: Option<Timestamp>,
    /// Evidence that was missing or stale, said so in the output and used
    /// by the rules to lower confidence.
    pub gaps: Vec<Gap>,
}

/// What one node's agent recorded.
#[derive(Debug, Clone, Default)]
pub struct AgentRecords {
    /// The node's name; `None` when unknown (a bundle's `agent.jsonl`
    /// belongs to the subject pod's node).
    pub node: Option<String>,
    /// Events: OOM kills, XIDs, GPUs lost, source changes.
    pub events: Vec<NodeEvent>,
    /// Container samples, oldest first.
    pub containers: Vec<ContainerSample>,
    /// GPU samples, oldest first.
    pub gpus: Vec<GpuSample>,
    /// Node samples, oldest first.
    pub node_samples: Vec<NodeSample>,
}

impl AgentRecords {
    /// A source's state as the agent last reported it at or before `t`
    /// (`kmsg`, `cgroup`, `nvml`, ...); `None` when it never reported it.
    pub fn source_at(&self, source: &str, t: Timestamp) -> Option<&SourceStatus> {
        self.events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::Source { time, status } if status.source == source && *time <= t => {
                    Some((*time, status))
                }
                _ => None,
            })
            .max_by_key(|(time, _)| *time)
            .map(|(_, s)| s)
    }
}

/// The tail of one container's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTail {
    /// Namespace of the pod (empty: the bundle's subject pod).
    pub namespace: String,
    /// Pod name (empty: the bundle's subject pod).
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Whether this is the previous (terminated) instance's log.
    pub previous: bool,
    /// The last lines.
    pub text: String,
}

/// A piece of evidence that was absent or stale.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    /// Which evidence (`events`, `node`, `agent`, `logs`, a file name).
    pub what: String,
    /// Why: missing, unreadable, stale since a time.
    pub why: String,
}

impl Gap {
    /// A gap.
    pub fn new(what: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            why: why.into(),
        }
    }
}

impl Evidence {
    /// Whether a kind of evidence is recorded as missing (`events`,
    /// `node`, `agent`, `logs`, `pvcs`, `pods`).
    pub fn lacks(&self, what: &str) -> bool {
        self.gaps.iter().any(|g| g.what == what)
    }

    /// The newest time anywhere in the evidence, standing for "now" when
    /// the snapshot has none.
    pub fn newest_time(&self) -> Option<Timestamp> {
        let k8s = self
            .events
            .iter()
            .filter_map(crate::k8s::event_last_time)
            .chain(self.pods.iter().flat_map(crate::k8s::pod_times));
        let agent = self.agents.iter().flat_map(|a| {
            a.containers
                .iter()
                .map(|s| s.time)
                .chain(a.gpus.iter().map(|g| g.time))
                .chain(a.node_samples.iter().map(|n| n.time))
                .chain(a.events.iter().map(NodeEvent::time))
        });
        k8s.chain(agent).max()
    }
}
