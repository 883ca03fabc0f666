//! The Prometheus text exposition format (0.0.4), rendered by hand from a
//! copy of the state (docs/metrics.md lists every series).
//!
//! Why by hand: the format is a few lines of text per sample, and the
//! well-known crates (`prometheus`, `prometheus-client`) keep a registry
//! of metric objects, one per label set, updated as values change; here
//! the values already sit in the state as the agents' encoded samples, so
//! a registry would duplicate 400,000 containers' worth of objects and
//! their updates on the ingest path. Rendering reads each node's copied
//! bytes in place (the [`crate::wire`] readers: no `ContainerSample` is
//! built, no string allocated per series) into one reused buffer per
//! metric family, so every family's samples come out as one group, as the
//! format requires; each buffer is allocated once per scrape at its last
//! size and handed to the response, so nothing is kept between scrapes.
//!
//! One walk, two exporters: [`Walk`] reads the state, the counts, the
//! Kubernetes objects and the findings once and hands every sample, with
//! its labels, to a [`Sink`]. [`Renderer`]'s sink writes this text; the
//! OTLP exporter's ([`crate::export::otlp`]) makes OpenTelemetry data
//! points of the same samples, under OpenTelemetry's names. A series is
//! therefore defined once, here, for both.
//!
//! Locks: each node's lock is held only while its bytes are copied
//! ([`State::visit_nodes`]); names, counts and findings are copied before
//! rendering starts. A slow scraper therefore slows no report: it only
//! holds this renderer, which is its own.

use std::io::Write as _;

use crate::kube::{NodeView, PodView, Projection as _};
use gpuscope_proto::v1::SourceState;

use crate::export::findings::FindingCounts;
use crate::state::{NodeCopy, State};
use crate::tally::Counts;
use crate::wire::{Fields, Malformed, Value};

/// Which containers get per-container series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerSeries {
    /// Every container.
    #[default]
    All,
    /// Containers of pods that hold a GPU (the kubelet's PodResources) or
    /// run a process on one.
    Gpu,
    /// None.
    None,
}

/// How the series are rendered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also render the GPU series under dcgm-exporter's names and labels.
    pub dcgm: bool,
    /// Which containers get per-container series.
    pub containers: ContainerSeries,
}

/// Which part of the nodes one scrape renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..of`.
    pub index: u32,
    /// How many shards.
    pub of: u32,
}

impl Shard {
    /// Everything in one scrape.
    pub const ALL: Shard = Shard { index: 0, of: 1 };

    /// Whether `node`'s series are in this shard: FNV-1a of its name,
    /// modulo the shard count.
    pub fn has(&self, node: &str) -> bool {
        self.of <= 1 || fnv1a(node.as_bytes()) % u64::from(self.of) == u64::from(self.index)
    }

    /// Whether the cluster-wide series (findings, idle hours) are here.
    pub fn has_cluster(&self) -> bool {
        self.index == 0
    }
}

/// 64-bit FNV-1a.
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a scrape reads besides the state, each copied before rendering.
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    /// The pods' projections (for names), when Kubernetes is watched.
    pub pods: &'a [std::sync::Arc<PodView>],
    /// The nodes' projections (capacity, allocatable).
    pub nodes: &'a [std::sync::Arc<NodeView>],
    /// Which pods are GPU device-plugin pods.
    pub device_plugins: &'a [std::sync::Arc<PodView>],
    /// Incident counts.
    pub counts: Counts,
    /// The latest cluster diagnosis.
    pub findings: Option<FindingCounts>,
}

macro_rules! families {
    ($($id:ident: $name:literal, $kind:literal, $help:literal;)*) => {
        /// The metric families, in output order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(non_camel_case_types, missing_docs)]
        #[repr(usize)]
        pub enum F { $($id,)* }
        /// Name, type and help of each family, indexed by [`F`].
        pub const FAMILIES: &[(&str, &str, &str)] = &[$(($name, $kind, $help),)*];
        impl F {
            /// Every family, in output order.
            pub const ALL: &[F] = &[$(F::$id,)*];
        }
    };
}

families! {
    ContainerMemoryUsage: "gpuscope_container_memory_usage_bytes", "gauge", "Memory the container's cgroup uses (memory.current / memory.usage_in_bytes), bytes.";
    ContainerMemoryLimit: "gpuscope_container_memory_limit_bytes", "gauge", "The container's memory limit (memory.max / memory.limit_in_bytes), bytes; absent when unlimited.";
    ContainerMemoryAnon: "gpuscope_container_memory_anon_bytes", "gauge", "Anonymous memory of the container (memory.stat anon / rss), bytes: what an OOM kill frees.";
    ContainerOomKills: "gpuscope_container_oom_kills_total", "counter", "Processes of the container the OOM killer killed (the cgroup's oom_kill counter; restarts with the container).";
    ContainerCpu: "gpuscope_container_cpu_usage_seconds_total", "counter", "CPU time the container used, seconds.";
    ContainerPressure: "gpuscope_container_pressure_stalled_seconds_total", "counter", "Time tasks of the container were stalled on a resource (PSI total; resource memory, cpu or io; kind some or full), seconds. Node-wide figures where the container has no pressure files of its own.";
    GpuUtil: "gpuscope_gpu_utilization_ratio", "gauge", "Fraction of the last sample period a kernel ran on the GPU (NVML utilization.gpu / 100).";
    GpuMemUtil: "gpuscope_gpu_memory_utilization_ratio", "gauge", "Fraction of the last sample period the GPU's memory was read or written (NVML utilization.memory / 100).";
    GpuMemUsed: "gpuscope_gpu_memory_used_bytes", "gauge", "GPU memory in use, bytes.";
    GpuMemTotal: "gpuscope_gpu_memory_total_bytes", "gauge", "GPU memory in all, bytes.";
    GpuPower: "gpuscope_gpu_power_watts", "gauge", "GPU power draw, watts.";
    GpuPowerLimit: "gpuscope_gpu_power_limit_watts", "gauge", "GPU enforced power limit, watts.";
    GpuTemp: "gpuscope_gpu_temperature_celsius", "gauge", "GPU temperature, degrees Celsius.";
    GpuSmClock: "gpuscope_gpu_sm_clock_hertz", "gauge", "GPU SM clock, hertz.";
    GpuProcesses: "gpuscope_gpu_processes", "gauge", "Compute processes on the GPU.";
    GpuHolder: "gpuscope_gpu_holder_info", "gauge", "1 for each pod container the kubelet gave the GPU to (PodResources), with the device resource name.";
    ProcMem: "gpuscope_gpu_process_memory_used_bytes", "gauge", "GPU memory a process uses, bytes.";
    ProcSm: "gpuscope_gpu_process_sm_utilization_ratio", "gauge", "Fraction of the GPU's SMs' time the process used (NVML process samples), where the driver keeps samples.";
    OomKills: "gpuscope_oom_kills_total", "counter", "OOM kills the agents reported (every process killed, stored once), by node and namespace of the killed container.";
    Xids: "gpuscope_gpu_xid_errors_total", "counter", "XID errors the agents reported, by GPU and XID code.";
    GpuLost: "gpuscope_gpu_lost_total", "counter", "GPUs that answered NVML_ERROR_GPU_IS_LOST.";
    NodeMemTotal: "gpuscope_node_memory_total_bytes", "gauge", "The node's memory, bytes (MemTotal).";
    NodeMemAvail: "gpuscope_node_memory_available_bytes", "gauge", "The node's available memory, bytes (MemAvailable).";
    NodeGpuCapacity: "gpuscope_node_gpu_capacity", "gauge", "GPU devices of the node object's capacity, by extended resource (nvidia.com/gpu, nvidia.com/mig-...).";
    NodeGpuAllocatable: "gpuscope_node_gpu_allocatable", "gauge", "GPU devices of the node object's allocatable, by extended resource.";
    DevicePluginReady: "gpuscope_device_plugin_ready", "gauge", "1 when the node's GPU device-plugin pod is Ready, else 0.";
    AgentConnected: "gpuscope_agent_connected", "gauge", "1 while the node's agent has a stream open to the aggregator, else 0.";
    AgentLastReport: "gpuscope_agent_last_report_timestamp_seconds", "gauge", "When the aggregator last heard from the node's agent, Unix seconds.";
    AgentDropped: "gpuscope_agent_dropped_samples_total", "counter", "Samples the agent replaced before it could send them (the stream backed up or down).";
    AgentQueue: "gpuscope_agent_queue_events", "gauge", "Events in the agent's durable queue not yet acknowledged.";
    AgentQueueBytes: "gpuscope_agent_queue_bytes", "gauge", "Bytes of the agent's unacknowledged events on disk.";
    AgentQueueDropped: "gpuscope_agent_queue_dropped_events_total", "counter", "Events the agent's queue dropped at its bound (--queue-max-bytes).";
    AgentReconnects: "gpuscope_agent_reconnects_total", "counter", "Times the agent's stream to the aggregator went down since the agent started.";
    AgentKmsgNotKernel: "gpuscope_agent_kmsg_not_kernel_records_total", "counter", "Kernel log records the agent ignored for not being the kernel's (written to /dev/kmsg from userspace): no OOM kill is read from them.";
    AgentCpu: "gpuscope_agent_cpu_seconds_total", "counter", "CPU time the agent process used, seconds.";
    AgentRss: "gpuscope_agent_resident_memory_bytes", "gauge", "The agent process's resident memory, bytes.";
    AgentSourceDegraded: "gpuscope_agent_source_degraded", "gauge", "1 while an agent source (cgroup, kmsg, psi, node, nvml, pod_resources, ...) is degraded or unavailable, 0 once it reported ok; by its latest state event.";
    Findings: "gpuscope_findings", "gauge", "Current findings of the latest cluster diagnosis, by kind and namespace.";
    IdleGpuHours: "gpuscope_idle_gpu_hours", "gauge", "GPU-hours allocated and idle (gpu_idle and gpu_memory_idle findings) by namespace and owner, at the latest diagnosis.";
    FindingsAge: "gpuscope_findings_evaluation_timestamp_seconds", "gauge", "When the latest cluster diagnosis ran, Unix seconds.";
    FindingsTook: "gpuscope_findings_evaluation_duration_seconds", "gauge", "How long the latest cluster diagnosis took, seconds.";
    DcgmUtil: "DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).";
    DcgmMemCopy: "DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).";
    DcgmFbUsed: "DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).";
    DcgmFbFree: "DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).";
    DcgmPower: "DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).";
    DcgmTemp: "DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).";
    DcgmSmClock: "DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).";
    DcgmXid: "DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.";
}

/// The agent's sources (`agent/src/runtime`): each has a
/// `gpuscope_agent_source_degraded` series for every agent that reports
/// its health.
pub const AGENT_SOURCES: &[&str] = &[
    "cgroup",
    "kmsg",
    "notify",
    "psi",
    "node",
    "nvml",
    "pod_resources",
];

/// What a label is; each exporter names it ([`Label::prometheus`], and
/// the OTLP exporter's attribute names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// The node's name.
    Node,
    /// A pod's namespace.
    Namespace,
    /// A pod's name.
    Pod,
    /// A container's name.
    Container,
    /// A GPU's index on its node.
    Gpu,
    /// A GPU's UUID.
    Uuid,
    /// A GPU's model name.
    Model,
    /// A process ID.
    Pid,
    /// An extended resource's name (`nvidia.com/gpu`, ...).
    Resource,
    /// An agent source (`cgroup`, `kmsg`, ...).
    Source,
    /// An XID code.
    Xid,
    /// A finding's kind.
    FindingKind,
    /// A pod's top owner, `Kind/name`.
    Owner,
    /// A pressure resource (`memory`, `cpu`, `io`).
    PsiResource,
    /// A pressure kind (`some`, `full`).
    PsiKind,
    /// dcgm-exporter's `pci_bus_id`.
    PciBusId,
    /// dcgm-exporter's `device` (`nvidia0`, ...).
    Device,
    /// dcgm-exporter's `modelName`.
    ModelName,
    /// dcgm-exporter's `Hostname`.
    Hostname,
}

impl Label {
    /// The Prometheus label name.
    pub const fn prometheus(self) -> &'static str {
        match self {
            Label::Node => "node",
            Label::Namespace => "namespace",
            Label::Pod => "pod",
            Label::Container => "container",
            Label::Gpu => "gpu",
            Label::Uuid => "UUID",
            Label::Model => "model",
            Label::Pid => "pid",
            Label::Resource | Label::PsiResource => "resource",
            Label::Source => "source",
            Label::Xid => "xid",
            Label::FindingKind | Label::PsiKind => "kind",
            Label::Owner => "owner",
            Label::PciBusId => "pci_bus_id",
            Label::Device => "device",
            Label::ModelName => "modelName",
            Label::Hostname => "Hostname",
        }
    }
}

/// A label's value.
#[derive(Debug, Clone, Copy)]
pub enum LabelValue<'a> {
    /// Text.
    Str(&'a str),
    /// A number (an index, a PID, a code).
    Int(u64),
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// A count, bytes, ...
    Int(u64),
    /// Seconds, ratios, watts, ...
    Float(f64),
}

impl From<u64> for Sample {
    fn from(v: u64) -> Self {
        Sample::Int(v)
    }
}

impl From<f64> for Sample {
    fn from(v: f64) -> Self {
        Sample::Float(v)
    }
}

impl Sample {
    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Sample::Int(v) => v as f64,
            Sample::Float(v) => v,
        }
    }

    /// The value as an integer (a float rounded toward zero, saturating).
    pub fn as_u64(self) -> u64 {
        match self {
            Sample::Int(v) => v,
            Sample::Float(v) => v as u64,
        }
    }
}

/// One of a sink's two label sets: a container's or GPU's (`First`), and
/// a second one for what belongs to it (a process, a holder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    /// The container's or GPU's.
    First,
    /// A process's, a holder's.
    Second,
}

/// A pod's names for labels.
#[derive(Debug)]
pub struct PodNames<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Container ID -> name.
    pub containers: std::collections::HashMap<String, String>,
}

/// Where [`Walk`] hands its samples: two label sets it builds a label at
/// a time, and the samples, each with the labels of one set and some of
/// its own.
pub trait Sink {
    /// Empties a label set.
    fn clear(&mut self, set: Set);
    /// Adds a label to a set.
    fn label(&mut self, set: Set, label: Label, value: LabelValue<'_>);
    /// Adds a container's labels to a set: its Kubernetes names when
    /// `pod` names it, else its pod UID and container ID, else its
    /// cgroup path (a `--watch-cgroup` path, outside Kubernetes).
    fn container(
        &mut self,
        set: Set,
        pod: Option<&PodNames<'_>>,
        uid: &str,
        id: &str,
        cgroup: &str,
    );
    /// One sample of family `f` with the labels of `set` and `extra`.
    fn put(&mut self, f: F, set: Set, extra: &[(Label, LabelValue<'_>)], value: Sample);
    /// Whether the sink takes family `f` at all (the walk skips reading
    /// what no sink takes; default: every family).
    fn takes(&self, f: F) -> bool {
        let _ = f;
        true
    }
}

/// The walk over everything the exporters show: each node's copied
/// samples, the incident counts, the Kubernetes objects and the latest
/// findings, handed to a [`Sink`]. It keeps only its reused buffers
/// between walks.
#[derive(Debug, Default)]
pub struct Walk {
    copy: NodeCopy,
    /// Pod UIDs running GPU processes on the current node, and the
    /// (namespace, pod) holding its GPUs ([`ContainerSeries::Gpu`]).
    gpu_pods: Vec<(usize, usize)>,
    gpu_pod_bytes: Vec<u8>,
}

impl Walk {
    /// Walks `shard` of the state and `inputs` into `sink`.
    pub fn run<S: Sink>(
        &mut self,
        sink: &mut S,
        state: &State,
        inputs: &Inputs<'_>,
        options: Options,
        shard: Shard,
    ) {
        // Only the pods of this shard's nodes are named: what a node's
        // agent reports (containers, GPU processes, kills) is of the pods
        // the kubelet runs there, so a shard's scrape does not pay for
        // the names of the whole cluster's pods (a whole scrape names
        // every pod, bound or not).
        let names: std::collections::HashMap<&str, PodNames<'_>> = inputs
            .pods
            .iter()
            .filter(|p| shard.has(p.node().unwrap_or_default()))
            .filter_map(|p| {
                Some((
                    p.uid()?,
                    PodNames {
                        namespace: p.namespace(),
                        name: p.name(),
                        containers: p.container_names(),
                    },
                ))
            })
            .collect();
        let mut copy = std::mem::take(&mut self.copy);
        state.visit_nodes(
            &mut copy,
            |n| shard.has(n),
            |node| {
                if let Err(e) = self.node(sink, node, &names, &inputs.counts, options) {
                    tracing::warn!(node = %node.name, error = %e, "A stored sample does not read; its node's series are incomplete.");
                }
            },
        );
        self.copy = copy;
        incidents(sink, &inputs.counts, &names, shard);
        kube(sink, inputs, shard);
        if shard.has_cluster()
            && let Some(f) = &inputs.findings
        {
            findings(sink, f);
        }
    }

    fn node<S: Sink>(
        &mut self,
        sink: &mut S,
        node: &NodeCopy,
        names: &std::collections::HashMap<&str, PodNames<'_>>,
        counts: &Counts,
        options: Options,
    ) -> Result<(), Malformed> {
        let name = node.name.as_str();
        sink.clear(Set::First);
        sink.label(Set::First, Label::Node, LabelValue::Str(name));
        if let Some(s) = &node.latest {
            sink.put(F::NodeMemTotal, Set::First, &[], s.mem_total_bytes.into());
            sink.put(
                F::NodeMemAvail,
                Set::First,
                &[],
                s.mem_available_bytes.into(),
            );
        }
        sink.put(
            F::AgentConnected,
            Set::First,
            &[],
            u64::from(node.connected).into(),
        );
        sink.put(
            F::AgentLastReport,
            Set::First,
            &[],
            (node.last_seen_unix_nanos as f64 / 1e9).into(),
        );
        sink.put(
            F::AgentDropped,
            Set::First,
            &[],
            node.dropped_samples.into(),
        );
        if let Some(a) = &node.agent {
            for (f, v) in [
                (F::AgentQueue, a.queue_events.into()),
                (F::AgentQueueBytes, a.queue_bytes.into()),
                (F::AgentQueueDropped, a.queue_dropped_events.into()),
                (F::AgentReconnects, a.reconnects.into()),
                (F::AgentKmsgNotKernel, a.kmsg_not_kernel_records.into()),
                (F::AgentCpu, a.cpu_seconds.into()),
                (F::AgentRss, a.resident_memory_bytes.into()),
            ] {
                sink.put(f, Set::First, &[], v);
            }
        }
        if node.agent.is_some() {
            // Every source the agent has, 0 until it reports a problem (a
            // healthy source's first state is not news to the agent), and
            // any other source it reported.
            let degraded = |source: &str| {
                counts
                    .sources
                    .get(&(name.into(), source.into()))
                    .is_some_and(|s| !matches!(s, SourceState::Ok | SourceState::Unspecified))
            };
            for source in AGENT_SOURCES {
                sink.put(
                    F::AgentSourceDegraded,
                    Set::First,
                    &[(Label::Source, LabelValue::Str(source))],
                    u64::from(degraded(source)).into(),
                );
            }
            for (n, source) in counts.sources.keys() {
                if **n == *name && !AGENT_SOURCES.contains(&&**source) {
                    sink.put(
                        F::AgentSourceDegraded,
                        Set::First,
                        &[(Label::Source, LabelValue::Str(source))],
                        u64::from(degraded(source)).into(),
                    );
                }
            }
        }

        // GPUs first: they say which pods hold or use one.
        self.gpu_pods.clear();
        self.gpu_pod_bytes.clear();
        for i in 0..node.gpus.len() {
            self.gpu(sink, name, node.gpu(i), names, counts, options)?;
        }
        if options.containers == ContainerSeries::None {
            return Ok(());
        }
        for i in 0..node.containers.len() {
            let (sample, r) = node.container(i);
            let r = crate::wire::container_ref(r)?;
            let pod = names.get(r.pod_uid);
            if options.containers == ContainerSeries::Gpu && !self.is_gpu_pod(r.pod_uid, pod) {
                continue;
            }
            sink.clear(Set::First);
            sink.label(Set::First, Label::Node, LabelValue::Str(name));
            sink.container(Set::First, pod, r.pod_uid, r.container_id, r.cgroup_path);
            container(sink, sample)?;
        }
        Ok(())
    }

    /// Whether a pod runs a process on, or holds, one of this node's GPUs.
    fn is_gpu_pod(&self, uid: &str, pod: Option<&PodNames<'_>>) -> bool {
        let b = &self.gpu_pod_bytes;
        self.gpu_pods.iter().any(|&(at, mid)| {
            let (first, second) = (&b[at..mid], &b[mid..]);
            let second = second.split(|&c| c == 0).next().unwrap_or_default();
            match pod {
                // A holder: namespace \0 pod \0; a process: uid \0 \0.
                Some(p) if second == p.name.as_bytes() && first == p.namespace.as_bytes() => true,
                _ => second.is_empty() && !uid.is_empty() && first == uid.as_bytes(),
            }
        })
    }

    fn note_gpu_pod(&mut self, first: &str, second: &str) {
        let at = self.gpu_pod_bytes.len();
        self.gpu_pod_bytes.extend_from_slice(first.as_bytes());
        let mid = self.gpu_pod_bytes.len();
        self.gpu_pod_bytes.extend_from_slice(second.as_bytes());
        self.gpu_pod_bytes.push(0);
        self.gpu_pods.push((at, mid));
    }

    fn gpu<S: Sink>(
        &mut self,
        sink: &mut S,
        node: &str,
        buf: &[u8],
        names: &std::collections::HashMap<&str, PodNames<'_>>,
        counts: &Counts,
        options: Options,
    ) -> Result<(), Malformed> {
        let mut g = GpuRead::default();
        for f in Fields::new(buf) {
            match f? {
                (2, v) => g.index = v.varint("index")?,
                (3, v) => g.uuid = v.str("uuid")?,
                (5, v) => g.model = v.str("name")?,
                (6, v) => g.pci = v.str("pci_bus_id")?,
                (7, v) => g.util = Some(v.varint("util")?),
                (8, v) => g.mem_util = Some(v.varint("mem util")?),
                (9, v) => g.total = v.varint("total")?,
                (10, v) => g.used = v.varint("used")?,
                (11, Value::Fixed64(b)) => g.power = Some(f64::from_bits(b)),
                (12, Value::Fixed64(b)) => g.power_limit = Some(f64::from_bits(b)),
                (13, v) => g.temp = Some(v.varint("temp")?),
                (14, v) => g.sm_clock = Some(v.varint("sm clock")?),
                (16, _) => g.processes += 1,
                (17, v) if g.holder.is_none() => {
                    g.holder = Some(holder(v.bytes("holder")?)?);
                    g.holders += 1;
                }
                (17, _) => g.holders += 1,
                _ => {}
            }
        }
        let index = LabelValue::Int(g.index);
        // The GPU's labels: the holder's names only when it has exactly one.
        let (ns, pod, ctr) = match g.holder {
            Some(h) if g.holders == 1 => (h.0, h.1, h.2),
            _ => ("", "", ""),
        };
        sink.clear(Set::First);
        for (k, v) in [
            (Label::Node, LabelValue::Str(node)),
            (Label::Gpu, index),
            (Label::Uuid, LabelValue::Str(g.uuid)),
            (Label::Model, LabelValue::Str(g.model)),
            (Label::Namespace, LabelValue::Str(ns)),
            (Label::Pod, LabelValue::Str(pod)),
            (Label::Container, LabelValue::Str(ctr)),
        ] {
            sink.label(Set::First, k, v);
        }
        if let Some(u) = g.util {
            sink.put(F::GpuUtil, Set::First, &[], (u as f64 / 100.0).into());
        }
        if let Some(u) = g.mem_util {
            sink.put(F::GpuMemUtil, Set::First, &[], (u as f64 / 100.0).into());
        }
        sink.put(F::GpuMemUsed, Set::First, &[], g.used.into());
        sink.put(F::GpuMemTotal, Set::First, &[], g.total.into());
        if let Some(p) = g.power {
            sink.put(F::GpuPower, Set::First, &[], p.into());
        }
        if let Some(p) = g.power_limit {
            sink.put(F::GpuPowerLimit, Set::First, &[], p.into());
        }
        if let Some(t) = g.temp {
            sink.put(F::GpuTemp, Set::First, &[], t.into());
        }
        if let Some(c) = g.sm_clock {
            sink.put(F::GpuSmClock, Set::First, &[], (c * 1_000_000).into());
        }
        sink.put(F::GpuProcesses, Set::First, &[], g.processes.into());

        // Holders and processes, with labels of their own.
        for f in Fields::new(buf) {
            match f? {
                (17, v) => {
                    let (ns, pod, ctr, resource) = holder(v.bytes("holder")?)?;
                    self.note_gpu_pod(ns, pod);
                    sink.clear(Set::Second);
                    for (k, v) in [
                        (Label::Node, LabelValue::Str(node)),
                        (Label::Gpu, index),
                        (Label::Uuid, LabelValue::Str(g.uuid)),
                        (Label::Namespace, LabelValue::Str(ns)),
                        (Label::Pod, LabelValue::Str(pod)),
                        (Label::Container, LabelValue::Str(ctr)),
                        (Label::Resource, LabelValue::Str(resource)),
                    ] {
                        sink.label(Set::Second, k, v);
                    }
                    sink.put(F::GpuHolder, Set::Second, &[], 1u64.into());
                }
                (16, v) => {
                    let (mut pid, mut mem, mut sm, mut r) = (0, None, None, None);
                    for f in Fields::new(v.bytes("process")?) {
                        match f? {
                            (1, v) => pid = v.varint("pid")?,
                            (2, v) => mem = Some(v.varint("used memory")?),
                            (3, v) => sm = Some(v.varint("sm util")?),
                            (5, v) => r = Some(crate::wire::container_ref(v.bytes("container")?)?),
                            _ => {}
                        }
                    }
                    let r = r.unwrap_or_default();
                    if !r.pod_uid.is_empty() {
                        self.note_gpu_pod(r.pod_uid, "");
                    }
                    sink.clear(Set::Second);
                    for (k, v) in [
                        (Label::Node, LabelValue::Str(node)),
                        (Label::Gpu, index),
                        (Label::Uuid, LabelValue::Str(g.uuid)),
                        (Label::Pid, LabelValue::Int(pid)),
                    ] {
                        sink.label(Set::Second, k, v);
                    }
                    sink.container(
                        Set::Second,
                        names.get(r.pod_uid),
                        r.pod_uid,
                        r.container_id,
                        r.cgroup_path,
                    );
                    if let Some(m) = mem {
                        sink.put(F::ProcMem, Set::Second, &[], m.into());
                    }
                    if let Some(s) = sm {
                        sink.put(F::ProcSm, Set::Second, &[], (s as f64 / 100.0).into());
                    }
                }
                _ => {}
            }
        }

        if options.dcgm {
            sink.clear(Set::Second);
            let device = format_device(g.index);
            for (k, v) in [
                (Label::Gpu, index),
                (Label::Uuid, LabelValue::Str(g.uuid)),
                (Label::PciBusId, LabelValue::Str(g.pci)),
                (Label::Device, LabelValue::Str(device.as_str())),
                (Label::ModelName, LabelValue::Str(g.model)),
                (Label::Hostname, LabelValue::Str(node)),
                (Label::Namespace, LabelValue::Str(ns)),
                (Label::Pod, LabelValue::Str(pod)),
                (Label::Container, LabelValue::Str(ctr)),
            ] {
                sink.label(Set::Second, k, v);
            }
            if let Some(u) = g.util {
                sink.put(F::DcgmUtil, Set::Second, &[], u.into());
            }
            if let Some(u) = g.mem_util {
                sink.put(F::DcgmMemCopy, Set::Second, &[], u.into());
            }
            const MIB: u64 = 1 << 20;
            sink.put(F::DcgmFbUsed, Set::Second, &[], (g.used / MIB).into());
            sink.put(
                F::DcgmFbFree,
                Set::Second,
                &[],
                (g.total.saturating_sub(g.used) / MIB).into(),
            );
            if let Some(p) = g.power {
                sink.put(F::DcgmPower, Set::Second, &[], p.into());
            }
            if let Some(t) = g.temp {
                sink.put(F::DcgmTemp, Set::Second, &[], t.into());
            }
            if let Some(c) = g.sm_clock {
                sink.put(F::DcgmSmClock, Set::Second, &[], c.into());
            }
            let last = counts
                .last_xid
                .iter()
                .find(|((n, _, u), _)| **n == *node && **u == *g.uuid)
                .map_or(0, |(_, x)| *x);
            sink.put(F::DcgmXid, Set::Second, &[], last.into());
        }
        Ok(())
    }
}

/// A container's samples, with the labels of the first set.
fn container<S: Sink>(sink: &mut S, buf: &[u8]) -> Result<(), Malformed> {
    let mut psi: [(&str, &str, Option<u64>); 4] = [
        ("memory", "some", None),
        ("memory", "full", None),
        ("cpu", "some", None),
        ("io", "some", None),
    ];
    for f in Fields::new(buf) {
        match f? {
            (4, v) => {
                for f in Fields::new(v.bytes("ContainerSample.memory")?) {
                    match f? {
                        (1, v) => sink.put(
                            F::ContainerMemoryUsage,
                            Set::First,
                            &[],
                            v.varint("usage")?.into(),
                        ),
                        (2, v) => sink.put(
                            F::ContainerMemoryLimit,
                            Set::First,
                            &[],
                            v.varint("limit")?.into(),
                        ),
                        (4, v) => sink.put(
                            F::ContainerMemoryAnon,
                            Set::First,
                            &[],
                            v.varint("anon")?.into(),
                        ),
                        (7, v) => {
                            let mut kills = 0;
                            for f in Fields::new(v.bytes("MemoryStats.events")?) {
                                if let (2, v) = f? {
                                    kills = v.varint("oom_kill")?;
                                }
                            }
                            sink.put(F::ContainerOomKills, Set::First, &[], kills.into());
                        }
                        _ => {}
                    }
                }
            }
            (5, v) => {
                for f in Fields::new(v.bytes("ContainerSample.cpu")?) {
                    if let (1, v) = f? {
                        sink.put(
                            F::ContainerCpu,
                            Set::First,
                            &[],
                            (v.varint("usage_us")? as f64 / 1e6).into(),
                        );
                    }
                }
            }
            (6, v) => {
                for f in Fields::new(v.bytes("ContainerSample.pressure")?) {
                    let (resource, v) = f?;
                    let psi_buf = v.bytes("Pressure")?;
                    for f in Fields::new(psi_buf) {
                        let (kind, v) = f?;
                        let total = line_total(v.bytes("Psi line")?)?;
                        let slot = match (resource, kind) {
                            (1, 1) => 0,
                            (1, 2) => 1,
                            (2, 1) => 2,
                            (3, 1) => 3,
                            _ => continue,
                        };
                        psi[slot].2 = Some(total);
                    }
                }
            }
            _ => {}
        }
    }
    for (resource, kind, total) in psi {
        if let Some(t) = total {
            sink.put(
                F::ContainerPressure,
                Set::First,
                &[
                    (Label::PsiResource, LabelValue::Str(resource)),
                    (Label::PsiKind, LabelValue::Str(kind)),
                ],
                (t as f64 / 1e6).into(),
            );
        }
    }
    Ok(())
}

/// The incident counters of the nodes in `shard`.
fn incidents<S: Sink>(
    sink: &mut S,
    counts: &Counts,
    names: &std::collections::HashMap<&str, PodNames<'_>>,
    shard: Shard,
) {
    // OOM kills by (node, namespace): pods of one namespace add up.
    let mut oom: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
    for ((node, uid), n) in &counts.oom_kills {
        if shard.has(node) {
            let ns = names.get(&**uid).map_or("", |p| p.namespace);
            *oom.entry((node, ns)).or_default() += n;
        }
    }
    for ((node, ns), n) in oom {
        sink.clear(Set::First);
        sink.label(Set::First, Label::Node, LabelValue::Str(node));
        sink.label(Set::First, Label::Namespace, LabelValue::Str(ns));
        sink.put(F::OomKills, Set::First, &[], n.into());
    }
    let gpu_labels = |sink: &mut S, (node, index, uuid): &crate::tally::GpuKey| {
        sink.clear(Set::First);
        sink.label(Set::First, Label::Node, LabelValue::Str(node));
        sink.label(
            Set::First,
            Label::Gpu,
            index.map_or(LabelValue::Str(""), |i| LabelValue::Int(u64::from(i))),
        );
        sink.label(Set::First, Label::Uuid, LabelValue::Str(uuid));
    };
    for ((gpu, code), n) in &counts.xids {
        if shard.has(&gpu.0) {
            gpu_labels(sink, gpu);
            sink.put(
                F::Xids,
                Set::First,
                &[(Label::Xid, LabelValue::Int(*code))],
                (*n).into(),
            );
        }
    }
    for (gpu, n) in &counts.gpu_lost {
        if shard.has(&gpu.0) {
            gpu_labels(sink, gpu);
            sink.put(F::GpuLost, Set::First, &[], (*n).into());
        }
    }
}

/// Node objects' GPU capacity and the device-plugin pods.
fn kube<S: Sink>(sink: &mut S, inputs: &Inputs<'_>, shard: Shard) {
    for n in inputs.nodes {
        let name = n.name();
        if !shard.has(name) {
            continue;
        }
        for (family, map) in [
            (F::NodeGpuCapacity, n.gpu_capacity()),
            (F::NodeGpuAllocatable, n.gpu_allocatable()),
        ] {
            for (resource, q) in map {
                sink.clear(Set::First);
                sink.label(Set::First, Label::Node, LabelValue::Str(name));
                sink.label(Set::First, Label::Resource, LabelValue::Str(resource));
                sink.put(
                    family,
                    Set::First,
                    &[],
                    q.parse::<f64>().unwrap_or(0.0).into(),
                );
            }
        }
    }
    for p in inputs.device_plugins {
        let node = p.node().unwrap_or("");
        if !shard.has(node) {
            continue;
        }
        let ready = p.is_ready();
        sink.clear(Set::First);
        sink.label(Set::First, Label::Node, LabelValue::Str(node));
        sink.label(Set::First, Label::Namespace, LabelValue::Str(p.namespace()));
        sink.label(Set::First, Label::Pod, LabelValue::Str(p.name()));
        sink.put(
            F::DevicePluginReady,
            Set::First,
            &[],
            u64::from(ready).into(),
        );
    }
}

/// The latest cluster diagnosis' counts.
fn findings<S: Sink>(sink: &mut S, f: &FindingCounts) {
    for ((kind, ns), n) in &f.by_kind {
        sink.clear(Set::First);
        sink.label(Set::First, Label::FindingKind, LabelValue::Str(kind));
        sink.label(Set::First, Label::Namespace, LabelValue::Str(ns));
        sink.put(F::Findings, Set::First, &[], (*n).into());
    }
    for ((ns, owner), h) in &f.idle_gpu_hours {
        sink.clear(Set::First);
        sink.label(Set::First, Label::Namespace, LabelValue::Str(ns));
        sink.label(Set::First, Label::Owner, LabelValue::Str(owner));
        sink.put(F::IdleGpuHours, Set::First, &[], (*h).into());
    }
    sink.clear(Set::First);
    sink.put(F::FindingsAge, Set::First, &[], f.at_unix_seconds.into());
    sink.put(F::FindingsTook, Set::First, &[], f.took_seconds.into());
}

/// Renders scrapes; keeps only each family's size between them.
#[derive(Debug, Default)]
pub struct Renderer {
    walk: Walk,
    text: Text,
}

/// The text sink: one buffer per family, and the two label sets as text
/// (without braces).
#[derive(Debug, Default)]
struct Text {
    families: Vec<Vec<u8>>,
    /// Each family's size at the last scrape.
    sizes: Vec<usize>,
    /// The current container's or GPU's label set.
    labels: Vec<u8>,
    /// A second label set (a process's, a holder's).
    labels2: Vec<u8>,
}

/// What one scrape rendered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rendered {
    /// Samples written.
    pub samples: usize,
    /// Bytes written.
    pub bytes: usize,
}

impl Renderer {
    /// Renders `shard` of the state and `inputs` and returns the text as
    /// one chunk per family (HELP and TYPE lines first).
    pub fn render(
        &mut self,
        state: &State,
        inputs: &Inputs<'_>,
        options: Options,
        shard: Shard,
    ) -> (Vec<bytes::Bytes>, Rendered) {
        self.text.start();
        self.walk.run(&mut self.text, state, inputs, options, shard);
        self.text.finish()
    }
}

impl Text {
    /// Each family's buffer is allocated once, at the size it had last
    /// time, and handed to the response at the end: nothing of a scrape
    /// is kept between scrapes.
    fn start(&mut self) {
        self.sizes.resize(FAMILIES.len(), 0);
        self.families = self
            .sizes
            .iter()
            .map(|&n| Vec::with_capacity(n + n / 8))
            .collect();
    }

    /// The chunks: each non-empty family's HELP and TYPE, then its
    /// samples, handed over, not copied.
    fn finish(&mut self) -> (Vec<bytes::Bytes>, Rendered) {
        let mut out = Vec::with_capacity(2 * FAMILIES.len());
        let mut r = Rendered::default();
        for ((buf, size), (name, kind, help)) in
            self.families.iter_mut().zip(&mut self.sizes).zip(FAMILIES)
        {
            *size = buf.len();
            if buf.is_empty() {
                continue;
            }
            r.samples += buf.iter().filter(|&&b| b == b'\n').count();
            let mut head = Vec::with_capacity(help.len() + 2 * name.len() + 32);
            let _ = write!(head, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            let samples = std::mem::take(buf);
            r.bytes += head.len() + samples.len();
            out.push(bytes::Bytes::from(head));
            out.push(bytes::Bytes::from(samples));
        }
        (out, r)
    }

    fn set(&mut self, set: Set) -> &mut Vec<u8> {
        match set {
            Set::First => &mut self.labels,
            Set::Second => &mut self.labels2,
        }
    }
}

impl Sink for Text {
    fn clear(&mut self, set: Set) {
        self.set(set).clear();
    }

    fn label(&mut self, set: Set, label: Label, value: LabelValue<'_>) {
        label_value(self.set(set), label.prometheus(), value);
    }

    fn container(
        &mut self,
        set: Set,
        pod: Option<&PodNames<'_>>,
        uid: &str,
        id: &str,
        cgroup: &str,
    ) {
        container_labels(self.set(set), pod, uid, id, cgroup);
    }

    fn put(&mut self, f: F, set: Set, extra: &[(Label, LabelValue<'_>)], value: Sample) {
        let buf = &mut self.families[f as usize];
        buf.extend_from_slice(FAMILIES[f as usize].0.as_bytes());
        let set = match set {
            Set::First => &self.labels,
            Set::Second => &self.labels2,
        };
        if set.is_empty() && extra.is_empty() {
            buf.push(b' ');
            write_sample(value, buf);
            buf.push(b'\n');
            return;
        }
        buf.push(b'{');
        buf.extend_from_slice(set);
        for (k, v) in extra {
            label_value(buf, k.prometheus(), *v);
        }
        buf.extend_from_slice(b"} ");
        write_sample(value, buf);
        buf.push(b'\n');
    }
}

/// What [`Walk::gpu`] reads of a GPU sample.
#[derive(Debug, Default)]
struct GpuRead<'a> {
    index: u64,
    uuid: &'a str,
    model: &'a str,
    pci: &'a str,
    util: Option<u64>,
    mem_util: Option<u64>,
    total: u64,
    used: u64,
    power: Option<f64>,
    power_limit: Option<f64>,
    temp: Option<u64>,
    sm_clock: Option<u64>,
    processes: u64,
    holders: u64,
    holder: Option<(&'a str, &'a str, &'a str, &'a str)>,
}

/// A `GpuHolder`'s namespace, pod, container and resource name.
fn holder(buf: &[u8]) -> Result<(&str, &str, &str, &str), Malformed> {
    let mut h = ("", "", "", "");
    for f in Fields::new(buf) {
        match f? {
            (1, v) => h.0 = v.str("GpuHolder.namespace")?,
            (2, v) => h.1 = v.str("GpuHolder.pod")?,
            (3, v) => h.2 = v.str("GpuHolder.container")?,
            (4, v) => h.3 = v.str("GpuHolder.resource_name")?,
            _ => {}
        }
    }
    Ok(h)
}

/// A `PsiLine`'s `total_us`.
fn line_total(buf: &[u8]) -> Result<u64, Malformed> {
    let mut t = 0;
    for f in Fields::new(buf) {
        if let (4, v) = f? {
            t = v.varint("PsiLine.total_us")?;
        }
    }
    Ok(t)
}

/// `namespace`, `pod` and `container` labels of a container: its
/// Kubernetes names when the pod is known, else its pod UID and container
/// ID (so that two containers never share a label set), else its cgroup
/// path as `container` (a `--watch-cgroup` path, outside Kubernetes).
fn container_labels(
    set: &mut Vec<u8>,
    pod: Option<&PodNames<'_>>,
    uid: &str,
    id: &str,
    cgroup: &str,
) {
    let named = pod.and_then(|p| Some((p, p.containers.get(id)?)));
    let (ns, pod, ctr) = match named {
        Some((p, c)) => (p.namespace, p.name, c.as_str()),
        None if !uid.is_empty() => (
            pod.map_or("", |p| p.namespace),
            pod.map_or(uid, |p| p.name),
            if id.is_empty() { cgroup } else { id },
        ),
        None => ("", "", cgroup),
    };
    label_sep(set, "namespace", ns);
    label_sep(set, "pod", pod);
    label_sep(set, "container", ctr);
}

/// A label with a text or numeric value, after a comma unless the set is
/// empty.
fn label_value(set: &mut Vec<u8>, k: &str, v: LabelValue<'_>) {
    match v {
        LabelValue::Str(s) => label_sep(set, k, s),
        LabelValue::Int(i) => label_sep(set, k, itoa(i).as_str()),
    }
}

/// `k="v"`, escaped, after a comma unless the set is empty.
fn label_sep(set: &mut Vec<u8>, k: &str, v: &str) {
    if !set.is_empty() && set.last() != Some(&b'{') {
        set.push(b',');
    }
    label(set, k, v);
}

/// `k="v"` with `\`, `"` and newlines escaped as the format requires.
fn label(set: &mut Vec<u8>, k: &str, v: &str) {
    set.extend_from_slice(k.as_bytes());
    set.extend_from_slice(b"=\"");
    for &b in v.as_bytes() {
        match b {
            b'\\' => set.extend_from_slice(b"\\\\"),
            b'"' => set.extend_from_slice(b"\\\""),
            b'\n' => set.extend_from_slice(b"\\n"),
            _ => set.push(b),
        }
    }
    set.push(b'"');
}

/// A small number as text, without allocating.
fn itoa(v: u64) -> Itoa {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut v = v;
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    Itoa { buf, at }
}

/// [`itoa`]'s text.
#[derive(Debug, Clone, Copy)]
struct Itoa {
    buf: [u8; 20],
    at: usize,
}

impl Itoa {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.at..]).unwrap_or("0")
    }
}

/// dcgm-exporter's `device` label: `nvidia0`, ...
fn format_device(index: u64) -> DeviceName {
    let i = itoa(index);
    let mut buf = [0u8; 26];
    buf[..6].copy_from_slice(b"nvidia");
    let digits = &i.buf[i.at..];
    buf[6..6 + digits.len()].copy_from_slice(digits);
    DeviceName {
        buf,
        len: 6 + digits.len(),
    }
}

#[derive(Debug, Clone, Copy)]
struct DeviceName {
    buf: [u8; 26],
    len: usize,
}

impl DeviceName {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("nvidia")
    }
}

/// A sample value as the format writes it.
fn write_sample(value: Sample, buf: &mut Vec<u8>) {
    match value {
        Sample::Int(v) => buf.extend_from_slice(itoa(v).as_str().as_bytes()),
        Sample::Float(v) if v.is_nan() => buf.extend_from_slice(b"NaN"),
        Sample::Float(v) if v.is_infinite() => {
            buf.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
        }
        Sample::Float(v) => {
            let _ = write!(buf, "{v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use gpuscope_proto::v1 as pb;

    /// A node with one container and one GPU held by its pod, the
    /// container's process on it.
    fn state() -> State {
        let state = State::new(crate::state::HistoryConfig::default());
        let container = pb::ContainerRef {
            cgroup_path: "/kubepods/burstable/poduid-1/c1".into(),
            pod_uid: "uid-1".into(),
            container_id: "c1".into(),
            ..Default::default()
        };
        let psi = |total| pb::Psi {
            some: Some(pb::PsiLine {
                total_us: total,
                ..Default::default()
            }),
            full: Some(pb::PsiLine {
                total_us: total / 2,
                ..Default::default()
            }),
        };
        let mut report = pb::NodeReport {
            node: Some(pb::NodeIdentity {
                node_name: "gpu-1".into(),
                ..Default::default()
            }),
            containers: vec![pb::ContainerSample {
                container: Some(container.clone()),
                memory: Some(pb::MemoryStats {
                    usage_bytes: 5 << 20,
                    limit_bytes: Some(32 << 20),
                    anon_bytes: 4 << 20,
                    events: Some(pb::MemoryEvents {
                        oom_kill: 2,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                cpu: Some(pb::CpuStats {
                    usage_us: 1_500_000,
                    ..Default::default()
                }),
                pressure: Some(pb::Pressure {
                    memory: Some(psi(3_000_000)),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            gpus: vec![pb::GpuSample {
                index: 3,
                uuid: "GPU-abc".into(),
                name: "NVIDIA H100 80GB HBM3".into(),
                utilization_gpu_percent: Some(42),
                memory_total_bytes: 80 << 30,
                memory_used_bytes: 1 << 30,
                power_draw_watts: Some(123.5),
                processes: vec![pb::GpuProcess {
                    pid: 77,
                    used_memory_bytes: Some(1 << 30),
                    container: Some(container),
                    ..Default::default()
                }],
                holders: vec![pb::GpuHolder {
                    namespace: "ml".into(),
                    pod: "trainer-0".into(),
                    container: "trainer".into(),
                    resource_name: "nvidia.com/gpu".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            agent: Some(pb::AgentHealth {
                queue_events: 4,
                reconnects: 1,
                cpu_seconds: 2.5,
                resident_memory_bytes: 9 << 20,
                ..Default::default()
            }),
            ..Default::default()
        };
        state.apply_report("gpu-1", &mut report);
        state
    }

    fn render(state: &State, options: Options) -> String {
        let (chunks, r) =
            Renderer::default().render(state, &Inputs::default(), options, Shard::ALL);
        let text: Vec<u8> = chunks.concat();
        assert_eq!(r.bytes, text.len());
        String::from_utf8(text).expect("utf-8")
    }

    #[test]
    fn every_series_of_a_node_reads_as_the_agent_sent_it() {
        let text = render(
            &state(),
            Options {
                dcgm: true,
                ..Options::default()
            },
        );
        for line in [
            r#"gpuscope_container_memory_usage_bytes{node="gpu-1",namespace="",pod="uid-1",container="c1"} 5242880"#,
            r#"gpuscope_container_memory_limit_bytes{node="gpu-1",namespace="",pod="uid-1",container="c1"} 33554432"#,
            r#"gpuscope_container_oom_kills_total{node="gpu-1",namespace="",pod="uid-1",container="c1"} 2"#,
            r#"gpuscope_container_cpu_usage_seconds_total{node="gpu-1",namespace="",pod="uid-1",container="c1"} 1.5"#,
            r#"gpuscope_container_pressure_stalled_seconds_total{node="gpu-1",namespace="",pod="uid-1",container="c1",resource="memory",kind="full"} 1.5"#,
            r#"gpuscope_gpu_utilization_ratio{node="gpu-1",gpu="3",UUID="GPU-abc",model="NVIDIA H100 80GB HBM3",namespace="ml",pod="trainer-0",container="trainer"} 0.42"#,
            r#"gpuscope_gpu_holder_info{node="gpu-1",gpu="3",UUID="GPU-abc",namespace="ml",pod="trainer-0",container="trainer",resource="nvidia.com/gpu"} 1"#,
            r#"gpuscope_gpu_process_memory_used_bytes{node="gpu-1",gpu="3",UUID="GPU-abc",pid="77",namespace="",pod="uid-1",container="c1"} 1073741824"#,
            r#"gpuscope_agent_queue_events{node="gpu-1"} 4"#,
            r#"gpuscope_agent_resident_memory_bytes{node="gpu-1"} 9437184"#,
            r#"gpuscope_agent_source_degraded{node="gpu-1",source="kmsg"} 0"#,
            r#"DCGM_FI_DEV_FB_USED{gpu="3",UUID="GPU-abc",pci_bus_id="",device="nvidia3",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-1",namespace="ml",pod="trainer-0",container="trainer"} 1024"#,
            r#"DCGM_FI_DEV_FB_FREE{gpu="3",UUID="GPU-abc",pci_bus_id="",device="nvidia3",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-1",namespace="ml",pod="trainer-0",container="trainer"} 80896"#,
            "# TYPE gpuscope_container_oom_kills_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // Each family once, its samples together after its TYPE line.
        let mut seen = std::collections::HashSet::new();
        let mut current = "";
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap_or_default();
                assert!(seen.insert(current.to_owned()), "{current} twice");
            } else if !l.starts_with('#') {
                assert!(l.starts_with(current), "{l} outside its family {current}");
            }
        }
    }

    #[test]
    fn gpu_mode_keeps_only_containers_of_gpu_pods_and_none_keeps_none() {
        let s = state();
        let other = pb::ContainerRef {
            cgroup_path: "/kubepods/besteffort/poduid-2/c2".into(),
            pod_uid: "uid-2".into(),
            container_id: "c2".into(),
            ..Default::default()
        };
        let mut r = pb::NodeReport {
            containers: vec![pb::ContainerSample {
                container: Some(other),
                memory: Some(pb::MemoryStats {
                    usage_bytes: 1,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        s.apply_report("gpu-1", &mut r);
        let count = |containers| {
            render(
                &s,
                Options {
                    dcgm: false,
                    containers,
                },
            )
            .lines()
            .filter(|l| l.starts_with("gpuscope_container_memory_usage_bytes"))
            .count()
        };
        assert_eq!(count(ContainerSeries::All), 2);
        assert_eq!(count(ContainerSeries::Gpu), 1);
        assert_eq!(count(ContainerSeries::None), 0);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = Vec::new();
        label_sep(&mut s, "a", "x\"y\\z\nw");
        label_sep(&mut s, "b", "");
        assert_eq!(s, br#"a="x\"y\\z\nw",b="""#);
    }

    #[test]
    fn numbers_render_as_the_format_reads_them() {
        let mut b = Vec::new();
        write_sample(0u64.into(), &mut b);
        b.push(b' ');
        write_sample(u64::MAX.into(), &mut b);
        b.push(b' ');
        write_sample(0.25f64.into(), &mut b);
        b.push(b' ');
        write_sample(f64::INFINITY.into(), &mut b);
        assert_eq!(b, b"0 18446744073709551615 0.25 +Inf");
        assert_eq!(format_device(12).as_str(), "nvidia12");
    }

    #[test]
    fn a_shard_names_the_containers_of_its_nodes_pods() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "trainer-0", "namespace": "ml", "uid": "uid-1"},
            "spec": {"nodeName": "gpu-1", "containers": [{"name": "trainer"}]},
            "status": {"containerStatuses": [{"name": "trainer", "containerID": "containerd://c1",
                "image": "", "imageID": "", "ready": true, "restartCount": 0}]},
        }))
        .expect("pod");
        let pods = [std::sync::Arc::new(
            PodView::project(&pod, &[]).expect("projects"),
        )];
        let inputs = Inputs {
            pods: &pods,
            ..Default::default()
        };
        let line = r#"gpuscope_container_memory_usage_bytes{node="gpu-1",namespace="ml",pod="trainer-0",container="trainer"} 5242880"#;
        let state = state();
        for index in 0..4 {
            let shard = Shard { index, of: 4 };
            let (chunks, _) =
                Renderer::default().render(&state, &inputs, Options::default(), shard);
            let text = String::from_utf8(chunks.concat()).expect("utf-8");
            assert_eq!(
                text.lines().any(|l| l == line),
                shard.has("gpu-1"),
                "shard {index}:\n{text}"
            );
        }
    }

    #[test]
    fn shards_split_the_nodes_and_shard_zero_has_the_cluster() {
        let nodes: Vec<String> = (0..1000).map(|i| format!("node-{i}")).collect();
        let per: Vec<usize> = (0..4)
            .map(|i| {
                let s = Shard { index: i, of: 4 };
                nodes.iter().filter(|n| s.has(n)).count()
            })
            .collect();
        assert_eq!(per.iter().sum::<usize>(), 1000, "{per:?}");
        assert!(per.iter().all(|&n| n > 180), "{per:?}");
        assert!(Shard { index: 0, of: 4 }.has_cluster());
        assert!(!Shard { index: 1, of: 4 }.has_cluster());
    }
}
