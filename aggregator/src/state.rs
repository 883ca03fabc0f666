//! Live state: per node the latest identity, samples and a bounded recent
//! history of every container and GPU (in memory; rebuilt from the agents'
//! reports after a restart).
//!
//! Locking: a map of nodes behind a `RwLock` (written only when a node is
//! first seen), each node behind its own `Mutex`. Ingest holds one node's
//! lock for one report; a query holds each node's lock only long enough to
//! copy what it returns, so a slow query never blocks ingest of other nodes
//! and blocks one node's ingest for at most one copy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use gpuscope_proto::v1::{
    AgentHealth, ContainerInfo, ContainerPoint, ContainerRef, ContainerSample, GpuInfo, GpuPoint,
    GpuSample, NodeEvent, NodeIdentity, NodeInfo, NodeReport, NodeSample,
};
use prost::Message;

use crate::clock::now_unix_nanos;
use crate::history::{self, ContainerHistory, GpuHistory};
use crate::sync::lock;
use crate::tally::Tally;
use crate::wire::{self, Malformed};

/// Sizes of the recent-history series: the newest points as they came
/// (fine), and before them one merged point per `step` (coarse).
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Newest points kept per container (one per sample).
    pub container_points: usize,
    /// Newest points kept per GPU (one per sample).
    pub gpu_points: usize,
    /// Time merged into one coarse point (buckets aligned to multiples of
    /// it in Unix time); zero turns the coarse tier off.
    pub step: Duration,
    /// Coarse points kept per container; 0: none.
    pub container_coarse_points: usize,
    /// Coarse points kept per GPU; 0: none. The GPU-idle rule's 30-minute
    /// window needs at least 30 minutes of GPU history in all.
    pub gpu_coarse_points: usize,
    /// How long a container or GPU absent from its node's reports is still
    /// remembered (with its history).
    pub ttl: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            container_points: 120,
            gpu_points: 120,
            step: Duration::from_secs(30),
            container_coarse_points: 120,
            gpu_coarse_points: 120,
            ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// A container's latest sample (its encoded bytes, as received) and
/// history.
#[derive(Debug)]
struct ContainerState {
    /// The encoded `ContainerSample` (without its `ContainerRef` when the
    /// agent named the container by a stream-local id).
    latest: Vec<u8>,
    /// The encoded `ContainerRef`.
    ref_bytes: Box<[u8]>,
    /// Its cgroup path (the key) and pod UID.
    cgroup_path: Box<str>,
    pod_uid: Box<str>,
    /// The (stream, stream-local id) that named it last; (0, 0): none.
    named_by: (u32, u32),
    last_seen: u64,
    history: ContainerHistory,
}

impl ContainerState {
    /// The latest sample, decoded (its bytes were checked on receipt).
    fn sample(&self) -> ContainerSample {
        decode_sample(&self.latest, &self.ref_bytes)
    }
}

/// A stored container sample and its `ContainerRef`, decoded.
fn decode_sample(latest: &[u8], ref_bytes: &[u8]) -> ContainerSample {
    let mut s = ContainerSample::decode(latest).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "Stored container sample does not decode.");
        ContainerSample::default()
    });
    if s.container.is_none() {
        s.container = ContainerRef::decode(ref_bytes).ok();
    }
    s
}

#[derive(Debug)]
struct GpuState {
    /// The encoded `GpuSample`.
    latest: Vec<u8>,
    uuid: Box<str>,
    last_seen: u64,
    history: GpuHistory,
}

impl GpuState {
    fn sample(&self) -> GpuSample {
        GpuSample::decode(&self.latest[..]).unwrap_or_else(|e| {
            tracing::warn!(uuid = %self.uuid, error = %e, "Stored sample does not decode.");
            GpuSample::default()
        })
    }
}

#[derive(Debug, Default)]
struct NodeState {
    identity: NodeIdentity,
    streams: u32,
    last_seen: u64,
    latest: Option<NodeSample>,
    dropped_samples: u64,
    /// The agent's own health at its latest report.
    agent: Option<AgentHealth>,
    /// In the order of the node's last report, so that the i-th container
    /// of a report is found at index i without hashing.
    containers: Vec<ContainerState>,
    /// Cgroup path -> index in `containers`.
    container_index: HashMap<Box<str>, u32>,
    gpus: Vec<GpuState>,
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

/// The largest stream-local container id (`ContainerSample.ref_id`).
pub const MAX_REF_ID: u32 = 65_535;

/// One ingest stream's container ids (protocol 2): each id's encoded
/// `ContainerRef`, as last announced with it.
#[derive(Debug)]
pub struct StreamRefs {
    /// This stream's number, unique in the process.
    stream: u32,
    /// By id: the reference and its binding's number (unique in the
    /// stream, so a container named through a binding since replaced is
    /// not taken for the new one).
    refs: Vec<Option<(Box<[u8]>, u32)>>,
    bindings: u32,
}

impl StreamRefs {
    /// A new stream's empty table.
    pub fn new() -> Self {
        static STREAMS: AtomicU32 = AtomicU32::new(1);
        Self {
            stream: STREAMS.fetch_add(1, Ordering::Relaxed),
            refs: Vec::new(),
            bindings: 0,
        }
    }

    /// Binds `id` (1..=[`MAX_REF_ID`]) to `ref_bytes`, unless it already
    /// is; the binding's number.
    fn bind(&mut self, id: u32, ref_bytes: &[u8]) -> u32 {
        let at = id as usize;
        if self.refs.len() <= at {
            self.refs.resize_with(at + 1, || None);
        }
        if let Some((r, bound)) = &self.refs[at]
            && **r == *ref_bytes
        {
            return *bound;
        }
        self.bindings = self.bindings.wrapping_add(1).max(1);
        self.refs[at] = Some((ref_bytes.into(), self.bindings));
        self.bindings
    }

    /// The reference `id` is bound to, and the binding's number.
    fn get(&self, id: u32) -> Option<(&[u8], u32)> {
        self.refs
            .get(id as usize)?
            .as_ref()
            .map(|(r, b)| (&r[..], *b))
    }
}

impl Default for StreamRefs {
    fn default() -> Self {
        Self::new()
    }
}

/// Every node's live state.
#[derive(Debug)]
pub struct State {
    nodes: RwLock<HashMap<String, Arc<Mutex<NodeState>>>>,
    /// Pod UID -> the nodes with a container of it, so finding a pod does
    /// not visit every node. Kept as containers come and go; a reader
    /// checks each node it names.
    pods: Mutex<HashMap<Box<str>, Vec<String>>>,
    history: HistoryConfig,
    /// Counts of the incidents ingest stored, for the exporters.
    tally: Tally,
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
            pods: Mutex::new(HashMap::new()),
            history,
            tally: Tally::default(),
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
    /// forgetting containers and GPUs unseen for the TTL. (The ingest path
    /// is [`State::apply_encoded`]; this one encodes the report first.)
    pub fn apply_report(&self, node: &str, report: &mut NodeReport) {
        let bytes = NodeReport {
            node: None,
            events: Vec::new(),
            ..std::mem::take(report)
        }
        .encode_to_vec();
        if let Err(e) = self.apply_encoded(node, &bytes, &mut StreamRefs::new()) {
            tracing::warn!(node, error = %e, "Report not applied.");
        }
    }

    /// Applies one encoded `NodeReport` of `node` (see
    /// [`State::apply_report`]), read in place. Returns its events and its
    /// `node` field's bytes (the boot its events belong to); a malformed
    /// report is an error, and the samples before the malformed one stay
    /// applied.
    pub fn apply_encoded<'a>(
        &self,
        node: &str,
        report: &'a [u8],
        refs: &mut StreamRefs,
    ) -> Result<Applied<'a>, Malformed> {
        let now = now_unix_nanos();
        let ttl = self.history.ttl.as_nanos() as u64;
        let arc = self.node(node);
        let mut n = lock(&arc);
        n.last_seen = now;
        let mut applied = Applied::default();
        let (mut c_pos, mut g_pos) = (0usize, 0usize);
        let mut dropped = 0;
        for f in wire::Fields::new(report) {
            match f? {
                (1, v) => applied.node = Some(v.bytes("NodeReport.node")?),
                (2, v) => {
                    let s = NodeSample::decode(v.bytes("NodeReport.node_sample")?)
                        .map_err(|_| Malformed("NodeReport.node_sample"))?;
                    n.latest = Some(s);
                }
                (3, v) => {
                    let buf = v.bytes("NodeReport.containers")?;
                    if self.apply_container(&mut n, node, c_pos, buf, now, refs)? {
                        c_pos += 1;
                    }
                }
                (4, v) => applied.events.push(
                    NodeEvent::decode(v.bytes("NodeReport.events")?)
                        .map_err(|_| Malformed("NodeReport.events"))?,
                ),
                (5, v) => dropped = v.varint("NodeReport.dropped_samples")?,
                (7, v) => {
                    n.agent = Some(
                        AgentHealth::decode(v.bytes("NodeReport.agent")?)
                            .map_err(|_| Malformed("NodeReport.agent"))?,
                    );
                }
                (6, v) => {
                    self.apply_gpu(&mut n, g_pos, v.bytes("NodeReport.gpus")?, now)?;
                    g_pos += 1;
                }
                _ => {}
            }
        }
        n.dropped_samples = dropped;
        let cutoff = now.saturating_sub(ttl);
        if n.containers.iter().any(|c| c.last_seen < cutoff) {
            let gone: Vec<Box<str>> = n
                .containers
                .iter()
                .filter(|c| c.last_seen < cutoff)
                .map(|c| c.pod_uid.clone())
                .collect();
            n.containers.retain(|c| c.last_seen >= cutoff);
            reindex(&mut n);
            for uid in gone {
                if !n.containers.iter().any(|c| c.pod_uid == uid) {
                    self.unindex_pod(&uid, node);
                }
            }
        }
        n.gpus.retain(|g| g.last_seen >= cutoff);
        Ok(applied)
    }

    /// One container sample, expected at index `pos`; false when it named
    /// no container (and was ignored).
    fn apply_container(
        &self,
        n: &mut NodeState,
        node: &str,
        pos: usize,
        buf: &[u8],
        now: u64,
        refs: &mut StreamRefs,
    ) -> Result<bool, Malformed> {
        let view = wire::container(buf)?;
        let id = view.ref_id;
        if id > MAX_REF_ID {
            return Err(Malformed("ContainerSample.ref_id is over 65535"));
        }
        // The container's index, and the binding that named it.
        let (i, bound) = if view.has_ref {
            let bound = (id != 0).then(|| refs.bind(id, &view.container_ref));
            let i = self.find_container(n, node, pos, &view.container_ref, now)?;
            (i, bound)
        } else if id != 0 {
            let Some((ref_bytes, bound)) = refs.get(id) else {
                return Err(Malformed(
                    "ContainerSample.ref_id was not announced on this stream",
                ));
            };
            let i = match n.containers.get(pos) {
                // Named by this very binding in an earlier report.
                Some(c) if c.named_by == (refs.stream, bound) => pos,
                _ => self.find_container(n, node, pos, ref_bytes, now)?,
            };
            (i, Some(bound))
        } else {
            return Ok(false);
        };
        let c = &mut n.containers[i];
        if c.latest.capacity() > buf.len() + buf.len() / 2 {
            // After an announcement the samples are smaller: shed its room.
            c.latest = buf.to_vec();
        } else {
            c.latest.clear();
            c.latest.extend_from_slice(buf);
        }
        if let Some(bound) = bound {
            c.named_by = (refs.stream, bound);
        }
        c.last_seen = now;
        c.history.push(history::container_channels(&view.point));
        Ok(true)
    }

    /// The index of the container `ref_bytes` (an encoded `ContainerRef`)
    /// names, moved to `pos` when it is elsewhere (the next report finds it
    /// there) and created when new.
    fn find_container(
        &self,
        n: &mut NodeState,
        node: &str,
        pos: usize,
        ref_bytes: &[u8],
        now: u64,
    ) -> Result<usize, Malformed> {
        // The same container as at this position in the last report: its
        // reference's bytes are the same.
        if let Some(c) = n.containers.get(pos)
            && *c.ref_bytes == *ref_bytes
        {
            return Ok(pos);
        }
        let r = wire::container_ref(ref_bytes)?;
        let i = match n.container_index.get(r.cgroup_path) {
            Some(&i) => {
                let i = i as usize;
                let c = &mut n.containers[i];
                if *c.ref_bytes != *ref_bytes {
                    c.ref_bytes = ref_bytes.into();
                }
                // Same path, maybe another pod UID.
                if *c.pod_uid != *r.pod_uid {
                    let old = std::mem::replace(&mut c.pod_uid, r.pod_uid.into());
                    self.index_pod(r.pod_uid, node);
                    if !n.containers.iter().any(|c| c.pod_uid == old) {
                        self.unindex_pod(&old, node);
                    }
                }
                i
            }
            None => {
                self.index_pod(r.pod_uid, node);
                let i = n.containers.len();
                n.containers.push(ContainerState {
                    latest: Vec::new(),
                    ref_bytes: ref_bytes.into(),
                    cgroup_path: r.cgroup_path.into(),
                    pod_uid: r.pod_uid.into(),
                    named_by: (0, 0),
                    last_seen: now,
                    history: ContainerHistory::new(
                        self.history.container_points,
                        self.history.container_coarse_points,
                        self.history.step,
                    ),
                });
                n.container_index.insert(r.cgroup_path.into(), i as u32);
                i
            }
        };
        // Keep report order: the next report finds it at `pos`.
        if i != pos && pos < n.containers.len() {
            n.containers.swap(i, pos);
            for k in [i, pos] {
                let key = n.containers[k].cgroup_path.clone();
                n.container_index.insert(key, k as u32);
            }
            return Ok(pos);
        }
        Ok(i)
    }

    /// One GPU sample, expected at index `pos`.
    fn apply_gpu(
        &self,
        n: &mut NodeState,
        pos: usize,
        buf: &[u8],
        now: u64,
    ) -> Result<(), Malformed> {
        let view = wire::gpu(buf)?;
        let i = match n.gpus.get(pos) {
            Some(g) if *g.uuid == *view.uuid => pos,
            _ => match n.gpus.iter().position(|g| *g.uuid == *view.uuid) {
                Some(i) => i,
                None => {
                    n.gpus.push(GpuState {
                        latest: Vec::new(),
                        uuid: view.uuid.into(),
                        last_seen: now,
                        history: GpuHistory::new(
                            self.history.gpu_points,
                            self.history.gpu_coarse_points,
                            self.history.step,
                        ),
                    });
                    n.gpus.len() - 1
                }
            },
        };
        let i = if i != pos && pos < n.gpus.len() {
            n.gpus.swap(i, pos);
            pos
        } else {
            i
        };
        let g = &mut n.gpus[i];
        g.latest.clear();
        g.latest.extend_from_slice(buf);
        g.last_seen = now;
        g.history.push(history::gpu_channels(&view.point));
        Ok(())
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
        for (name, arc) in self.selected(node) {
            let n = lock(&arc);
            let mut gpus: Vec<_> = n
                .gpus
                .iter()
                .map(|g| GpuInfo {
                    node_name: name.clone(),
                    latest: Some(g.sample()),
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
                .filter(|c| pod_uid.is_empty() || *c.pod_uid == *pod_uid)
                .map(|c| {
                    (
                        c.cgroup_path.clone(),
                        ContainerInfo {
                            node_name: name.clone(),
                            latest: Some(c.sample()),
                            last_seen_unix_nanos: c.last_seen,
                            ..ContainerInfo::default()
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
                SeriesTarget::GpuUuid(uuid) => {
                    n.gpus
                        .iter()
                        .find(|g| *g.uuid == *uuid)
                        .map(|g| Series::Gpu {
                            node_name: name.clone(),
                            uuid: uuid.to_owned(),
                            points: g.history.to_vec().iter().map(history::gpu_point).collect(),
                        })
                }
                SeriesTarget::CgroupPath(path) => n
                    .container_index
                    .get(path)
                    .map(|&i| container_series(&name, &n.containers[i as usize])),
                SeriesTarget::ContainerId(id) => n
                    .containers
                    .iter()
                    .find(|c| {
                        !id.is_empty()
                            && wire::container_ref(&c.ref_bytes).is_ok_and(|r| r.container_id == id)
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

/// One node's latest records, copied under its lock as the bytes they
/// are kept in, for an exporter to read after the lock is released
/// ([`State::visit_nodes`]). Reused from node to node: copying allocates
/// only while a node is larger than every node before it.
#[derive(Debug, Default)]
pub struct NodeCopy {
    /// The node's name.
    pub name: String,
    /// Whether an ingest stream from it is open now.
    pub connected: bool,
    /// When it was last heard from, Unix nanoseconds.
    pub last_seen_unix_nanos: u64,
    /// Its latest node sample.
    pub latest: Option<NodeSample>,
    /// Samples its agent dropped (latest report).
    pub dropped_samples: u64,
    /// Its agent's own health (latest report).
    pub agent: Option<AgentHealth>,
    /// Each container's encoded `ContainerSample` and `ContainerRef`, as
    /// ranges of `bytes`.
    pub containers: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Each GPU's encoded `GpuSample`, as a range of `bytes`.
    pub gpus: Vec<std::ops::Range<usize>>,
    /// The bytes the ranges point into.
    pub bytes: Vec<u8>,
}

impl NodeCopy {
    /// The `i`-th container's sample and reference bytes.
    pub fn container(&self, i: usize) -> (&[u8], &[u8]) {
        let (s, r) = &self.containers[i];
        (&self.bytes[s.clone()], &self.bytes[r.clone()])
    }

    /// The `i`-th GPU's sample bytes.
    pub fn gpu(&self, i: usize) -> &[u8] {
        &self.bytes[self.gpus[i].clone()]
    }
}

impl State {
    /// Calls `f` with a copy of each node `select` accepts, in name order.
    /// Each node's lock is held only while its bytes are copied into
    /// `copy` (a few microseconds for 40 series), never while `f` runs, so
    /// a slow exporter delays no report.
    pub fn visit_nodes(
        &self,
        copy: &mut NodeCopy,
        select: impl Fn(&str) -> bool,
        mut f: impl FnMut(&NodeCopy),
    ) {
        for (name, arc) in self.all() {
            if !select(&name) {
                continue;
            }
            copy.containers.clear();
            copy.gpus.clear();
            copy.bytes.clear();
            {
                let n = lock(&arc);
                copy.connected = n.streams > 0;
                copy.last_seen_unix_nanos = n.last_seen;
                copy.latest = n.latest;
                copy.dropped_samples = n.dropped_samples;
                copy.agent = n.agent;
                for c in &n.containers {
                    let at = copy.bytes.len();
                    copy.bytes.extend_from_slice(&c.latest);
                    let mid = copy.bytes.len();
                    copy.bytes.extend_from_slice(&c.ref_bytes);
                    copy.containers.push((at..mid, mid..copy.bytes.len()));
                }
                for g in &n.gpus {
                    let at = copy.bytes.len();
                    copy.bytes.extend_from_slice(&g.latest);
                    copy.gpus.push(at..copy.bytes.len());
                }
            }
            copy.name = name;
            f(copy);
        }
    }

    /// Counts of the incidents ingest stored.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

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
        // Copied under the lock as bytes and encoded points; decoded after.
        let containers: Vec<_> = n
            .containers
            .iter()
            .filter(|c| pods(&c.pod_uid))
            .map(|c| {
                (
                    (c.latest.clone(), c.ref_bytes.clone()),
                    c.history.last(max_points),
                )
            })
            .collect();
        let gpus: Vec<_> = n
            .gpus
            .iter()
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
        let mut containers: Vec<_> = containers
            .into_iter()
            .map(|((latest, ref_bytes), points)| {
                (
                    decode_sample(&latest, &ref_bytes),
                    points.iter().map(history::container_point).collect(),
                )
            })
            .collect();
        let mut gpus: Vec<_> = gpus
            .into_iter()
            .map(|(latest, points)| {
                (
                    GpuSample::decode(&latest[..]).unwrap_or_default(),
                    points.iter().map(history::gpu_point).collect(),
                )
            })
            .collect();
        containers.sort_by(|a: &(ContainerSample, Vec<ContainerPoint>), b| {
            let path = |c: &ContainerSample| c.container.as_ref().map(|r| r.cgroup_path.clone());
            path(&a.0).cmp(&path(&b.0))
        });
        gpus.sort_by(|a: &(GpuSample, Vec<GpuPoint>), b| {
            (a.0.index, &a.0.uuid).cmp(&(b.0.index, &b.0.uuid))
        });
        Some(NodeRecords {
            containers,
            gpus,
            ..out
        })
    }

    /// Nodes with a container of this pod UID, sorted.
    pub fn nodes_of_pod(&self, pod_uid: &str) -> Vec<String> {
        if pod_uid.is_empty() {
            return Vec::new();
        }
        let candidates = lock(&self.pods).get(pod_uid).cloned().unwrap_or_default();
        let nodes = self
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(name, _)| candidates.contains(name))
            .map(|(name, arc)| (name.clone(), arc.clone()))
            .collect::<Vec<_>>();
        let mut out: Vec<String> = nodes
            .into_iter()
            .filter(|(_, arc)| lock(arc).containers.iter().any(|c| *c.pod_uid == *pod_uid))
            .map(|(name, _)| name)
            .collect();
        out.sort();
        out
    }

    /// Notes that `node` has a container of `pod_uid`.
    fn index_pod(&self, pod_uid: &str, node: &str) {
        if pod_uid.is_empty() {
            return;
        }
        let mut pods = lock(&self.pods);
        let nodes = pods.entry(pod_uid.into()).or_default();
        if !nodes.iter().any(|n| n == node) {
            nodes.push(node.to_owned());
        }
    }

    /// Notes that `node` has no container of `pod_uid` any more.
    fn unindex_pod(&self, pod_uid: &str, node: &str) {
        let mut pods = lock(&self.pods);
        if let Some(nodes) = pods.get_mut(pod_uid) {
            nodes.retain(|n| n != node);
            if nodes.is_empty() {
                pods.remove(pod_uid);
            }
        }
    }

    /// Nodes where the kubelet gave a GPU to this pod, sorted.
    pub fn nodes_of_gpu_holder(&self, namespace: &str, pod: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|(_, arc)| {
                lock(arc).gpus.iter().any(|g| {
                    g.sample()
                        .holders
                        .iter()
                        .any(|h| h.namespace == namespace && h.pod == pod)
                })
            })
            .map(|(name, _)| name)
            .collect()
    }
}

/// Rebuilds the path index after containers were removed.
fn reindex(n: &mut NodeState) {
    let NodeState {
        containers,
        container_index,
        ..
    } = n;
    container_index.clear();
    for (i, c) in containers.iter().enumerate() {
        container_index.insert(c.cgroup_path.clone(), i as u32);
    }
}

fn container_series(node: &str, c: &ContainerState) -> Series {
    Series::Container {
        node_name: node.to_owned(),
        latest: Box::new(c.sample()),
        points: c
            .history
            .to_vec()
            .iter()
            .map(history::container_point)
            .collect(),
    }
}

/// What [`State::apply_encoded`] leaves to the caller.
#[derive(Debug, Default)]
pub struct Applied<'a> {
    /// The report's events.
    pub events: Vec<NodeEvent>,
    /// The report's `NodeIdentity`, encoded.
    pub node: Option<&'a [u8]>,
}
