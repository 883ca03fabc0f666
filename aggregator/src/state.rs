//! Live state: per node the latest identity, samples and a bounded recent
//! history of every container and GPU (in memory; rebuilt from the agents'
//! reports after a restart).
//!
//! Locking: a map of nodes behind a `RwLock` (written only when a node is
//! first seen), each node behind its own `Mutex`. Ingest holds one node's
//! lock for one report; a query holds each node's lock only long enough to
//! copy what it returns, so a slow query never blocks ingest of other nodes
//! and blocks one node's ingest for at most one copy.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use gpuscope_proto::v1::{
    ContainerInfo, ContainerPoint, ContainerSample, GpuInfo, GpuPoint, GpuSample, NodeIdentity,
    NodeInfo, NodeReport, NodeSample,
};

use crate::{lock, now_unix_nanos};

/// Sizes of the recent-history rings.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Points kept per container (one per sample).
    pub container_points: usize,
    /// Points kept per GPU (one per sample).
    pub gpu_points: usize,
    /// How long a container or GPU absent from its node's reports is still
    /// remembered (with its history).
    pub ttl: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            container_points: 600,
            gpu_points: 600,
            ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// A bounded ring: pushing onto a full ring drops the oldest point.
#[derive(Debug, Clone)]
struct Ring<T> {
    points: VecDeque<T>,
    cap: usize,
}

impl<T: Clone> Ring<T> {
    fn new(cap: usize) -> Self {
        Self {
            points: VecDeque::with_capacity(cap.min(64)),
            cap,
        }
    }

    fn push(&mut self, p: T) {
        if self.cap == 0 {
            return;
        }
        if self.points.len() == self.cap {
            self.points.pop_front();
        }
        self.points.push_back(p);
    }

    fn to_vec(&self) -> Vec<T> {
        self.points.iter().cloned().collect()
    }

    /// The newest `n` points, oldest first.
    fn last(&self, n: usize) -> Vec<T> {
        let skip = self.points.len().saturating_sub(n);
        self.points.iter().skip(skip).cloned().collect()
    }
}

#[derive(Debug)]
struct ContainerState {
    latest: ContainerSample,
    last_seen: u64,
    history: Ring<ContainerPoint>,
}

#[derive(Debug)]
struct GpuState {
    latest: GpuSample,
    last_seen: u64,
    history: Ring<GpuPoint>,
}

#[derive(Debug, Default)]
struct NodeState {
    identity: NodeIdentity,
    streams: u32,
    last_seen: u64,
    latest: Option<NodeSample>,
    dropped_samples: u64,
    containers: HashMap<String, ContainerState>,
    gpus: HashMap<String, GpuState>,
}

/// What a history query found.
#[derive(Debug, Clone, PartialEq)]
pub enum Series {
    /// A container's history.
    Container {
        /// The node.
        node_name: String,
        /// The container's latest sample.
        latest: Box<ContainerSample>,
        /// Oldest first.
        points: Vec<ContainerPoint>,
    },
    /// A GPU's history.
    Gpu {
        /// The node.
        node_name: String,
        /// The GPU's UUID.
        uuid: String,
        /// Oldest first.
        points: Vec<GpuPoint>,
    },
}

/// One node's records, copied out of the state for the diagnosis.
#[derive(Debug, Clone, Default)]
pub struct NodeRecords {
    /// The node's name.
    pub node_name: String,
    /// Its latest Hello.
    pub identity: NodeIdentity,
    /// Whether an ingest stream from it is open now.
    pub connected: bool,
    /// When it was last heard from, Unix nanoseconds.
    pub last_seen_unix_nanos: u64,
    /// Its latest node sample.
    pub latest: Option<NodeSample>,
    /// The selected containers: latest sample and history, oldest first.
    pub containers: Vec<(ContainerSample, Vec<ContainerPoint>)>,
    /// Every GPU: latest sample and history, oldest first.
    pub gpus: Vec<(GpuSample, Vec<GpuPoint>)>,
}

/// Which series to find.
#[derive(Debug, Clone, Copy)]
pub enum SeriesTarget<'a> {
    /// A container by cgroup path.
    CgroupPath(&'a str),
    /// A container by container ID.
    ContainerId(&'a str),
    /// A GPU by UUID.
    GpuUuid(&'a str),
}

/// Every node's live state.
#[derive(Debug)]
pub struct State {
    nodes: RwLock<HashMap<String, Arc<Mutex<NodeState>>>>,
    history: HistoryConfig,
}

/// Marks a node connected while it lives (one per open ingest stream).
#[derive(Debug)]
pub struct Connection {
    node: Arc<Mutex<NodeState>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut n = lock(&self.node);
        n.streams = n.streams.saturating_sub(1);
        n.last_seen = now_unix_nanos();
    }
}

impl State {
    /// Empty state with these ring sizes.
    pub fn new(history: HistoryConfig) -> Self {
        Self {
            nodes: RwLock::new(HashMap::new()),
            history,
        }
    }

    fn node(&self, name: &str) -> Arc<Mutex<NodeState>> {
        if let Some(n) = self
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
        {
            return n.clone();
        }
        self.nodes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// `node` alone when it is given (and known), else every node sorted
    /// by name: a query for one node does not copy every name.
    fn selected(&self, node: &str) -> Vec<(String, Arc<Mutex<NodeState>>)> {
        if node.is_empty() {
            return self.all();
        }
        self.nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(node)
            .map(|n| vec![(node.to_owned(), n.clone())])
            .unwrap_or_default()
    }

    fn all(&self) -> Vec<(String, Arc<Mutex<NodeState>>)> {
        let mut v: Vec<_> = self
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Records a Hello: the node's identity, and an open stream until the
    /// returned guard drops.
    pub fn connect(&self, identity: &NodeIdentity) -> Connection {
        let node = self.node(&identity.node_name);
        {
            let mut n = lock(&node);
            n.identity = identity.clone();
            n.streams += 1;
            n.last_seen = now_unix_nanos();
        }
        Connection { node }
    }

    /// Marks `node` as heard from now.
    pub fn touch(&self, node: &str) {
        lock(&self.node(node)).last_seen = now_unix_nanos();
    }

    /// Applies one report of `node`: latest samples, history rings, and
    /// forgetting containers and GPUs unseen for the TTL.
    pub fn apply_report(&self, node: &str, report: &mut NodeReport) {
        let now = now_unix_nanos();
        let ttl = self.history.ttl.as_nanos() as u64;
        let arc = self.node(node);
        let mut n = lock(&arc);
        n.last_seen = now;
        if let Some(s) = &report.node_sample {
            n.latest = Some(*s);
        }
        n.dropped_samples = report.dropped_samples;
        // The samples are moved into the state, not cloned, and an existing
        // container is found without allocating a key.
        for c in std::mem::take(&mut report.containers) {
            let Some(path) = c.container.as_ref().map(|r| r.cgroup_path.as_str()) else {
                continue;
            };
            let point = container_point(&c);
            if let Some(entry) = n.containers.get_mut(path) {
                entry.latest = c;
                entry.last_seen = now;
                entry.history.push(point);
            } else {
                let mut history = Ring::new(self.history.container_points);
                history.push(point);
                let key = path.to_owned();
                n.containers.insert(
                    key,
                    ContainerState {
                        latest: c,
                        last_seen: now,
                        history,
                    },
                );
            }
        }
        for g in std::mem::take(&mut report.gpus) {
            let point = gpu_point(&g);
            if let Some(entry) = n.gpus.get_mut(g.uuid.as_str()) {
                entry.latest = g;
                entry.last_seen = now;
                entry.history.push(point);
            } else {
                let mut history = Ring::new(self.history.gpu_points);
                history.push(point);
                n.gpus.insert(
                    g.uuid.clone(),
                    GpuState {
                        latest: g,
                        last_seen: now,
                        history,
                    },
                );
            }
        }
        let cutoff = now.saturating_sub(ttl);
        n.containers.retain(|_, c| c.last_seen >= cutoff);
        n.gpus.retain(|_, g| g.last_seen >= cutoff);
    }

    /// Every node, sorted by name.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.all()
            .into_iter()
            .map(|(_, arc)| {
                let n = lock(&arc);
                NodeInfo {
                    identity: Some(n.identity.clone()),
                    connected: n.streams > 0,
                    last_seen_unix_nanos: n.last_seen,
                    latest: n.latest,
                    dropped_samples: n.dropped_samples,
                    containers: n.containers.len() as u32,
                    gpus: n.gpus.len() as u32,
                }
            })
            .collect()
    }

    /// GPUs of `node` (empty: every node), sorted by node, index, UUID.
    pub fn gpus(&self, node: &str) -> Vec<GpuInfo> {
        let mut out = Vec::new();
        for (name, arc) in self.all() {
            if !node.is_empty() && node != name {
                continue;
            }
            let n = lock(&arc);
            let mut gpus: Vec<_> = n
                .gpus
                .values()
                .map(|g| GpuInfo {
                    node_name: name.clone(),
                    latest: Some(g.latest.clone()),
                })
                .collect();
            drop(n);
            gpus.sort_by(|a, b| {
                let key = |g: &GpuInfo| {
                    g.latest
                        .as_ref()
                        .map(|s| (s.index, s.uuid.clone()))
                        .unwrap_or_default()
                };
                key(a).cmp(&key(b))
            });
            out.extend(gpus);
        }
        out
    }

    /// Containers of `node` and `pod_uid` (empty: any), sorted by node and
    /// cgroup path.
    pub fn containers(&self, node: &str, pod_uid: &str) -> Vec<ContainerInfo> {
        let mut out = Vec::new();
        for (name, arc) in self.selected(node) {
            let n = lock(&arc);
            let mut cs: Vec<_> = n
                .containers
                .iter()
                .filter(|(_, c)| {
                    pod_uid.is_empty()
                        || c.latest
                            .container
                            .as_ref()
                            .is_some_and(|r| r.pod_uid == pod_uid)
                })
                .map(|(path, c)| {
                    (
                        path.clone(),
                        ContainerInfo {
                            node_name: name.clone(),
                            latest: Some(c.latest.clone()),
                            last_seen_unix_nanos: c.last_seen,
                        },
                    )
                })
                .collect();
            drop(n);
            cs.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(cs.into_iter().map(|(_, c)| c));
        }
        out
    }

    /// The history of one container or GPU, on `node` (empty: the first node
    /// by name that has it).
    pub fn series(&self, node: &str, target: SeriesTarget<'_>) -> Option<Series> {
        for (name, arc) in self.selected(node) {
            let n = lock(&arc);
            let found = match target {
                SeriesTarget::GpuUuid(uuid) => n.gpus.get(uuid).map(|g| Series::Gpu {
                    node_name: name.clone(),
                    uuid: uuid.to_owned(),
                    points: g.history.to_vec(),
                }),
                SeriesTarget::CgroupPath(path) => {
                    n.containers.get(path).map(|c| container_series(&name, c))
                }
                SeriesTarget::ContainerId(id) => n
                    .containers
                    .values()
                    .find(|c| {
                        c.latest
                            .container
                            .as_ref()
                            .is_some_and(|r| !id.is_empty() && r.container_id == id)
                    })
                    .map(|c| container_series(&name, c)),
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

impl State {
    /// Names of every node heard from, sorted.
    pub fn node_names(&self) -> Vec<String> {
        self.all().into_iter().map(|(name, _)| name).collect()
    }

    /// The records of `node`: the containers whose pod UID `pods` accepts
    /// (a container without a pod UID is passed `""`), every GPU, each with
    /// at most its newest `max_points` history points. `None`: no agent
    /// has reported from that node.
    pub fn node_records(
        &self,
        node: &str,
        pods: impl Fn(&str) -> bool,
        max_points: usize,
    ) -> Option<NodeRecords> {
        let arc = self
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(node)?
            .clone();
        let n = lock(&arc);
        let mut containers: Vec<_> = n
            .containers
            .iter()
            .filter(|(_, c)| {
                pods(
                    c.latest
                        .container
                        .as_ref()
                        .map_or("", |r| r.pod_uid.as_str()),
                )
            })
            .map(|(path, c)| (path.clone(), c.latest.clone(), c.history.last(max_points)))
            .collect();
        let mut gpus: Vec<_> = n
            .gpus
            .values()
            .map(|g| (g.latest.clone(), g.history.last(max_points)))
            .collect();
        let out = NodeRecords {
            node_name: node.to_owned(),
            identity: n.identity.clone(),
            connected: n.streams > 0,
            last_seen_unix_nanos: n.last_seen,
            latest: n.latest,
            containers: Vec::new(),
            gpus: Vec::new(),
        };
        drop(n);
        containers.sort_by(|a, b| a.0.cmp(&b.0));
        gpus.sort_by(|a, b| (a.0.index, &a.0.uuid).cmp(&(b.0.index, &b.0.uuid)));
        Some(NodeRecords {
            containers: containers.into_iter().map(|(_, l, p)| (l, p)).collect(),
            gpus,
            ..out
        })
    }

    /// Nodes with a container of this pod UID, sorted.
    pub fn nodes_of_pod(&self, pod_uid: &str) -> Vec<String> {
        if pod_uid.is_empty() {
            return Vec::new();
        }
        self.all()
            .into_iter()
            .filter(|(_, arc)| {
                lock(arc).containers.values().any(|c| {
                    c.latest
                        .container
                        .as_ref()
                        .is_some_and(|r| r.pod_uid == pod_uid)
                })
            })
            .map(|(name, _)| name)
            .collect()
    }

    /// Nodes where the kubelet gave a GPU to this pod, sorted.
    pub fn nodes_of_gpu_holder(&self, namespace: &str, pod: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|(_, arc)| {
                lock(arc).gpus.values().any(|g| {
                    g.latest
                        .holders
                        .iter()
                        .any(|h| h.namespace == namespace && h.pod == pod)
                })
            })
            .map(|(name, _)| name)
            .collect()
    }
}

fn container_series(node: &str, c: &ContainerState) -> Series {
    Series::Container {
        node_name: node.to_owned(),
        latest: Box::new(c.latest.clone()),
        points: c.history.to_vec(),
    }
}

/// One container sample reduced to a history point (the one conversion).
fn container_point(c: &ContainerSample) -> ContainerPoint {
    {
        let mem = c.memory.as_ref();
        ContainerPoint {
            time_unix_nanos: c.time_unix_nanos,
            usage_bytes: mem.map_or(0, |m| m.usage_bytes),
            limit_bytes: mem.and_then(|m| m.limit_bytes),
            anon_bytes: mem.map_or(0, |m| m.anon_bytes),
            file_bytes: mem.map_or(0, |m| m.file_bytes),
            shmem_bytes: mem.map_or(0, |m| m.shmem_bytes),
            cpu_usage_us: c.cpu.as_ref().map(|c| c.usage_us),
            memory_some_avg10: c
                .pressure
                .as_ref()
                .and_then(|p| p.memory.as_ref())
                .and_then(|m| m.some.as_ref())
                .map(|s| s.avg10),
            oom_kill: mem
                .and_then(|m| m.events.as_ref())
                .map_or(0, |e| e.oom_kill),
        }
    }
}

/// One GPU sample reduced to a history point (the one conversion).
fn gpu_point(g: &GpuSample) -> GpuPoint {
    {
        GpuPoint {
            time_unix_nanos: g.time_unix_nanos,
            utilization_gpu_percent: g.utilization_gpu_percent,
            utilization_memory_percent: g.utilization_memory_percent,
            memory_used_bytes: g.memory_used_bytes,
            power_draw_watts: g.power_draw_watts,
            temperature_celsius: g.temperature_celsius,
            processes: g.processes.len() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_drops_oldest_at_capacity() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.to_vec(), vec![2, 3, 4]);
    }
}
