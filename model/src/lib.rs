//! What a node observes: the samples and events gpuscope's agent reads
//! from the kernel, NVML and the kubelet, their identities (node and boot,
//! container by pod UID and container ID, GPU by UUID) and units,
//! independent of any source file format.
//!
//! These types are what `gpuscope-agent snapshot` and `watch` print as
//! JSON (the README documents the fields; [`Tagged`] marks the kind of a
//! JSON line), what [`wire`] converts to and from the `gpuscope.v1`
//! protobuf messages, and what the aggregator, the diagnosis engine and
//! the CLI read. [`text`] is how they read for people. The crate depends
//! on the wire contract's messages and serde only: no NVML, no runtime.

pub mod text;
pub mod wire;

#[cfg(test)]
mod testing;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A wall-clock instant, nanoseconds since the Unix epoch.
///
/// Printed in JSON as RFC 3339 with millisecond precision
/// (`2026-11-26T09:44:22.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Nanoseconds since the Unix epoch.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// This instant moved back by `d` (saturating at the epoch).
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d.as_nanos() as u64))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Self(
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = UNIX_EPOCH + Duration::from_nanos(self.0);
        write!(f, "{}", humantime::format_rfc3339_millis(t))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = humantime::TimestampError;

    /// Parses RFC 3339 (`2026-11-26T09:44:22.123Z`, any precision).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).map(Self::from)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How the host mounts its cgroup hierarchies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupMode {
    /// Only cgroup v1 hierarchies (the memory controller on v1).
    V1,
    /// A single cgroup v2 hierarchy with the memory controller.
    V2,
    /// The memory controller on v1 plus a cgroup2 mount (usually
    /// `unified/`) that carries per-cgroup pressure files.
    Hybrid,
}

/// Which cgroup version a container's memory files come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    /// cgroup v1 (`memory.usage_in_bytes`, `memory.oom_control`, ...).
    V1,
    /// cgroup v2 (`memory.current`, `memory.events`, ...).
    V2,
}

/// Kubernetes pod QoS class, as encoded in the kubelet's cgroup path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QosClass {
    /// Requests equal limits for every resource: directly under `kubepods`.
    Guaranteed,
    /// Under `kubepods/burstable`.
    Burstable,
    /// Under `kubepods/besteffort`.
    BestEffort,
}

/// The container runtime, as told by the container cgroup's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerRuntime {
    /// containerd (`cri-containerd-<id>.scope`, or a bare ID under cgroupfs).
    Containerd,
    /// CRI-O (`crio-<id>.scope`, `crio-conmon-<id>.scope`).
    CriO,
    /// Docker / cri-dockerd (`docker-<id>.scope`).
    Docker,
    /// A bare 64-hex ID (cgroupfs driver): the runtime does not say.
    Unknown,
}

/// The kubelet cgroup driver that named a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupDriver {
    /// `kubepods/burstable/pod<uid>/<id>`.
    Cgroupfs,
    /// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`.
    Systemd,
}

/// Who a cgroup belongs to: the identity every sample and event carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct ContainerRef {
    /// Path of the cgroup relative to its hierarchy's root, starting with
    /// `/`, exactly as the kernel prints it in `task_memcg=`.
    pub cgroup_path: String,
    /// Pod UID with dashes (`0f8c3b52-6a0e-...`), when the path is a
    /// kubelet path.
    pub pod_uid: Option<String>,
    /// Container ID (64 hex digits) when the path names one.
    pub container_id: Option<String>,
    /// QoS class from the kubelet path.
    pub qos: Option<QosClass>,
    /// Runtime named by the path.
    pub runtime: Option<ContainerRuntime>,
    /// Cgroup driver that produced the path.
    pub driver: Option<CgroupDriver>,
}

/// One PSI line (`some` or `full`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PsiLine {
    /// Share of wall time stalled, percent, 10 s average.
    pub avg10: f32,
    /// 60 s average, percent.
    pub avg60: f32,
    /// 300 s average, percent.
    pub avg300: f32,
    /// Total stall time since the cgroup was created, microseconds.
    pub total_us: u64,
}

/// One pressure file (`memory.pressure`, `cpu.pressure`, `io.pressure` or
/// `/proc/pressure/*`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Psi {
    /// Some tasks stalled.
    pub some: PsiLine,
    /// All non-idle tasks stalled (absent from old kernels' `cpu` file).
    pub full: Option<PsiLine>,
}

/// Where a container's pressure figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsiScope {
    /// The container's own cgroup (v2, or the matching cgroup in the
    /// unified hierarchy on a hybrid host).
    Container,
    /// Node-level `/proc/pressure/*`: the container has no own files.
    Node,
}

/// Memory, CPU and IO pressure for one cgroup or the node.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Pressure {
    /// `memory.pressure`.
    pub memory: Option<Psi>,
    /// `cpu.pressure`.
    pub cpu: Option<Psi>,
    /// `io.pressure`.
    pub io: Option<Psi>,
}

/// OOM-related counters of one memory cgroup. Fields a cgroup version
/// lacks are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryEvents {
    /// v2 `oom`: times the cgroup hit its limit and the OOM killer ran.
    pub oom: Option<u64>,
    /// Processes killed by the OOM killer in this cgroup (v2
    /// `memory.events` `oom_kill`, v1 `memory.oom_control` `oom_kill`).
    pub oom_kill: u64,
    /// v2 `oom_group_kill`: whole-cgroup kills (`memory.oom.group`).
    pub oom_group_kill: Option<u64>,
    /// v2 `max`: times usage was about to exceed `memory.max`.
    pub max: Option<u64>,
    /// v2 `high`: times usage exceeded `memory.high` (throttled).
    pub high: Option<u64>,
    /// v1 `under_oom`: the cgroup is in OOM now (OOM killer disabled).
    pub under_oom: Option<bool>,
    /// v1 `memory.failcnt`: charges that hit the limit.
    pub failcnt: Option<u64>,
}

/// Memory state of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryStats {
    /// `memory.current` / `memory.usage_in_bytes`.
    pub usage_bytes: u64,
    /// `memory.max` / `memory.limit_in_bytes`; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// `memory.peak` / `memory.max_usage_in_bytes`, when the kernel keeps it.
    pub peak_bytes: Option<u64>,
    /// Anonymous memory (v2 `anon`, v1 `total_rss`).
    pub anon_bytes: u64,
    /// Page cache (v2 `file`, v1 `total_cache`).
    pub file_bytes: u64,
    /// Shared memory and tmpfs such as `/dev/shm` (v2 `shmem`, v1
    /// `total_shmem`); part of `file_bytes`.
    pub shmem_bytes: u64,
    /// OOM counters.
    pub events: MemoryEvents,
    /// Reclaim counters (thrashing evidence).
    #[serde(default, skip_serializing_if = "Reclaim::is_empty")]
    pub reclaim: Reclaim,
}

/// Reclaim counters of one memory cgroup from `memory.stat`, cumulative
/// since the cgroup was created. A counter the cgroup version does not
/// keep is `None`: v1 has `pgmajfault` / `total_pgmajfault` but no
/// `workingset_refault_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reclaim {
    /// Major page faults: pages read back from disk or swap (v2
    /// `pgmajfault`, v1 `total_pgmajfault`, else `pgmajfault`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgmajfault: Option<u64>,
    /// v2 `workingset_refault_anon` (5.9+): anonymous pages swapped back
    /// in shortly after reclaim evicted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workingset_refault_anon: Option<u64>,
    /// v2 `workingset_refault_file` (5.9+; `workingset_refault` before):
    /// page cache read back shortly after reclaim evicted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workingset_refault_file: Option<u64>,
}

impl Reclaim {
    /// Whether no counter was read.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Refaults of both kinds, when the kernel keeps either.
    pub fn refaults(&self) -> Option<u64> {
        match (self.workingset_refault_anon, self.workingset_refault_file) {
            (None, None) => None,
            (a, f) => Some(a.unwrap_or(0).saturating_add(f.unwrap_or(0))),
        }
    }
}

/// What a task in uninterruptible sleep waits on, classified from the
/// kernel functions on its stack (or its wait channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// An NFS or SunRPC call.
    Nfs,
    /// A FUSE request its server has not answered.
    Fuse,
    /// Block I/O: a page or buffer under read or write.
    BlockIo,
    /// The NVIDIA kernel driver.
    GpuDriver,
    /// Something else.
    Other,
    /// Neither the wait channel nor the stack could be read.
    Unknown,
}

impl WaitKind {
    /// How a person reads it ("an NFS call", ...).
    pub fn describe(self) -> &'static str {
        match self {
            Self::Nfs => "an NFS call",
            Self::Fuse => "a FUSE request",
            Self::BlockIo => "block I/O",
            Self::GpuDriver => "the NVIDIA driver",
            Self::Other => "a kernel wait",
            Self::Unknown => "an unknown kernel wait",
        }
    }
}

/// A task (thread) of a container that stayed in uninterruptible sleep
/// (`D`) without running for longer than the agent's threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StuckTask {
    /// Task ID in the host's PID namespace (the thread's).
    pub pid: u32,
    /// The thread's `comm`.
    pub comm: String,
    /// When the agent first saw it in `D` without having run since: it
    /// has been stuck at least since then.
    pub since: Timestamp,
    /// `/proc/PID/wchan` (empty when unreadable or hidden).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wchan: String,
    /// What it waits on.
    pub wait: WaitKind,
    /// Innermost frames of `/proc/PID/stack`, innermost first (empty when
    /// not readable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<String>,
    /// The file its blocked system call works on (empty: none or unknown).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
    /// The type of the filesystem that file is on (`nfs4`, `fuse.gcsfuse`,
    /// `ext4`; empty when unknown).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fstype: String,
}

/// CPU usage of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuStats {
    /// Total CPU time, microseconds (v2 `cpu.stat` `usage_usec`; v1
    /// `cpuacct.usage` / 1000).
    pub usage_us: u64,
    /// v2 `nr_throttled`: periods in which the cgroup was throttled.
    pub nr_throttled: Option<u64>,
    /// v2 `throttled_usec`: total time throttled, microseconds.
    pub throttled_us: Option<u64>,
}

/// One collection of one container cgroup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSample {
    /// When the files were read.
    pub time: Timestamp,
    /// Whose cgroup.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// Version of the memory files.
    pub cgroup_version: CgroupVersion,
    /// Memory.
    pub memory: MemoryStats,
    /// CPU, when the CPU accounting files exist.
    pub cpu: Option<CpuStats>,
    /// Pressure stall information.
    pub pressure: Pressure,
    /// Whether `pressure` is the container's own or the node's.
    pub pressure_scope: PsiScope,
    /// Tasks stuck in uninterruptible sleep, as of the agent's last scan
    /// of this container (empty: none, or not scanned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stuck: Vec<StuckTask>,
}

/// One collection of the node itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSample {
    /// When the files were read.
    pub time: Timestamp,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: String,
    /// How cgroups are mounted (`None`: no usable memory cgroup hierarchy
    /// was found).
    pub cgroup_mode: Option<CgroupMode>,
    /// `MemTotal` from `/proc/meminfo`, bytes.
    pub mem_total_bytes: u64,
    /// `MemAvailable` from `/proc/meminfo`, bytes.
    pub mem_available_bytes: u64,
    /// `/proc/pressure/*`.
    pub pressure: Pressure,
}

/// Which limit the OOM killer enforced (`oom-kill:constraint=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OomConstraint {
    /// `CONSTRAINT_MEMCG`: the cgroup's own limit.
    Memcg,
    /// `CONSTRAINT_NONE`: the whole node ran out of memory.
    Node,
    /// `CONSTRAINT_CPUSET`: the cpuset's memory nodes ran out.
    Cpuset,
    /// `CONSTRAINT_MEMORY_POLICY`: a mempolicy's nodes ran out.
    MemoryPolicy,
    /// No kernel report was read; only the counter moved.
    Unknown,
}

/// The process the kernel killed, from its `Killed process` line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Victim {
    /// Process ID (in the host's PID namespace).
    pub pid: u32,
    /// Command name (`comm`, at most 15 bytes).
    pub comm: String,
    /// Virtual size, bytes.
    pub total_vm_bytes: u64,
    /// Anonymous resident memory, bytes.
    pub anon_rss_bytes: u64,
    /// File-backed resident memory, bytes.
    pub file_rss_bytes: u64,
    /// Shared-memory resident memory, bytes.
    pub shmem_rss_bytes: u64,
    /// Owner UID, when the kernel prints it (5.1+).
    pub uid: Option<u32>,
    /// Page-table size, bytes, when printed (5.1+).
    pub pgtables_bytes: Option<u64>,
    /// `oom_score_adj`, when printed (5.1+).
    pub oom_score_adj: Option<i32>,
}

/// Most members an [`OomGroup`] lists; the count goes on past it.
pub const MAX_GROUP_MEMBERS: usize = 64;

/// A `memory.oom.group` kill: after killing the victim it chose, the
/// kernel printed `Tasks in CGROUP are going to be killed due to
/// memory.oom.group set` and killed every other process of that cgroup
/// (the kubelet sets `memory.oom.group` on cgroup v2 since 1.28).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OomGroup {
    /// The cgroup whose processes were all killed, relative to the
    /// hierarchy root, as the kernel printed it.
    pub cgroup_path: String,
    /// The other processes killed with the chosen victim, in the kernel's
    /// order; the chosen victim's own second `Killed process` line is not
    /// repeated here. At most [`MAX_GROUP_MEMBERS`].
    #[serde(default)]
    pub members: Vec<Victim>,
    /// How many other processes were killed (`members.len()` unless the
    /// list was cut at [`MAX_GROUP_MEMBERS`]).
    pub member_count: u32,
    /// Members the kernel skipped because they were already exiting
    /// (`OOM victim P (C) is already exiting. Skip killing the task`).
    #[serde(default)]
    pub skipped: u32,
    /// `Killed process` lines of the whole OOM event, the chosen victim's
    /// first and second included: each raised the cgroup's `oom_kill`
    /// counter by one.
    pub kill_lines: u32,
}

/// One point of a container's flight recorder.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RecorderPoint {
    /// When it was read.
    pub time: Timestamp,
    /// Memory usage, bytes.
    pub usage_bytes: u64,
    /// Anonymous memory, bytes.
    pub anon_bytes: u64,
    /// Page cache, bytes.
    pub file_bytes: u64,
    /// Shared memory / tmpfs, bytes.
    pub shmem_bytes: u64,
    /// Memory PSI `some` avg10, percent.
    pub memory_some_avg10: f32,
    /// Memory PSI `some` total, microseconds.
    pub memory_some_total_us: u64,
    /// Memory PSI `full` total, microseconds.
    pub memory_full_total_us: u64,
}

/// How an OOM kill was first noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detection {
    /// The cgroup's notifier fired (v2 inotify on `memory.events`, v1
    /// eventfd on `memory.oom_control`).
    Notification,
    /// A periodic sample saw the counter move (a missed or unavailable
    /// notification, or a node-wide OOM on cgroup v1).
    Poll,
    /// Only the kernel's OOM report was seen: the cgroup was gone, or not
    /// yet watched, by the time the agent looked.
    KernelReport,
}

/// One OOM kill in one container: the process the kernel chose and, for a
/// `memory.oom.group` kill, the rest of the group killed with it (one
/// event for the whole group, however many processes died).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomKill {
    /// When the kill happened: the kernel report's time when one was
    /// read, else when the counter was seen to move.
    pub time: Timestamp,
    /// When the agent noticed it.
    pub detected_at: Timestamp,
    /// How it was noticed.
    pub detected_by: Detection,
    /// The killed process's container.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// Version of the cgroup that counted the kill, when it was read.
    pub cgroup_version: Option<CgroupVersion>,
    /// The container's memory limit, bytes (`None`: unlimited or unknown).
    pub limit_bytes: Option<u64>,
    /// The container's peak memory, bytes, when the kernel keeps it.
    pub peak_bytes: Option<u64>,
    /// The cgroup's `oom_kill` counter after this kill (`None`: the
    /// cgroup was gone before it could be read). A group kill raises it
    /// once per process killed.
    pub oom_kill: Option<u64>,
    /// The cgroup's `oom_group_kill` counter (v2).
    pub oom_group_kill: Option<u64>,
    /// Which limit was enforced.
    pub constraint: OomConstraint,
    /// The process the kernel chose to kill (the `oom-kill:` summary's
    /// `task=` and the first `Killed process` line), when the kernel
    /// report was read.
    pub victim: Option<Victim>,
    /// The rest of a `memory.oom.group` kill (`None`: only the victim was
    /// killed, or the kernel report was not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<OomGroup>,
    /// Process that triggered the OOM killer (`X invoked oom-killer`).
    pub trigger_comm: Option<String>,
    /// The memcg usage and limit the kernel printed (`memory: usage
    /// ...kB, limit ...kB`), bytes.
    pub kernel_usage_bytes: Option<u64>,
    /// See `kernel_usage_bytes`.
    pub kernel_limit_bytes: Option<u64>,
    /// The flight recorder: samples of the minutes before the kill,
    /// oldest first.
    #[serde(default)]
    pub window: Vec<RecorderPoint>,
    /// Whether the window's pressure figures are the container's own or
    /// the node's (`None`: the cgroup was never read).
    pub pressure_scope: Option<PsiScope>,
}

/// State of one data source of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Working.
    Ok,
    /// Partly working (some reads fail).
    Degraded,
    /// Not available at all.
    Unavailable,
}

/// Health of one source (`cgroup`, `kmsg`, `psi`, `node`, `notify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Source name.
    pub source: String,
    /// Its state.
    pub state: SourceState,
    /// Why it is not `ok`, naming the path or call that failed.
    pub reason: Option<String>,
}

/// Something that happened on the node, as `watch` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The OOM killer killed a process.
    OomKill(Box<OomKill>),
    /// The kernel log overwrote records before the agent read them.
    KmsgOverrun {
        /// When the agent noticed.
        time: Timestamp,
        /// Records lost (sequence-number gap).
        lost: u64,
    },
    /// NVML reported an XID error (a driver-detected GPU fault).
    Xid {
        /// When it was received.
        time: Timestamp,
        /// The GPU's UUID (empty when NVML did not name it).
        gpu_uuid: String,
        /// The GPU's NVML index, when known.
        gpu_index: Option<u32>,
        /// The XID number (e.g. 79: GPU fell off the bus; 48: double-bit ECC).
        xid: u64,
        /// XIDs seen on this GPU since the agent started, this one included.
        count: u64,
        /// Pods the kubelet gave the GPU to.
        #[serde(default)]
        holders: Vec<GpuHolder>,
        /// From gpuscope's fake NVML.
        simulated: bool,
        /// What the driver's kernel log line said, when the XID came from
        /// (or was also seen in) the kernel log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kernel: Option<KernelXidLine>,
    },
    /// A GPU answered `NVML_ERROR_GPU_IS_LOST` (fell off the bus).
    GpuLost {
        /// When it was noticed.
        time: Timestamp,
        /// The GPU's NVML index.
        gpu_index: u32,
        /// Its UUID, when it was read before it was lost.
        gpu_uuid: Option<String>,
        /// Pods the kubelet gave the GPU to.
        #[serde(default)]
        holders: Vec<GpuHolder>,
        /// From gpuscope's fake NVML.
        simulated: bool,
    },
    /// A GPU health state changed (a link down, a remap pending, a
    /// throttle reason that appeared or cleared, uncorrectable ECC errors).
    GpuHealthChange {
        /// When the reading that showed it was taken.
        time: Timestamp,
        /// The GPU's UUID.
        gpu_uuid: String,
        /// Its NVML index.
        gpu_index: Option<u32>,
        /// What changed.
        #[serde(flatten)]
        change: GpuHealthChange,
        /// Pods the kubelet gave the GPU to at that reading.
        #[serde(default)]
        holders: Vec<GpuHolder>,
        /// From gpuscope's fake NVML.
        simulated: bool,
    },
    /// The NVSwitch driver reported an SXid (a switch error).
    SwitchXid {
        /// The record's time.
        time: Timestamp,
        /// The line.
        #[serde(flatten)]
        line: SwitchXidLine,
    },
    /// The number of GPUs NVML reports changed.
    GpuCountChanged {
        /// When it was noticed.
        time: Timestamp,
        /// The count before.
        before: u32,
        /// The count now.
        after: u32,
        /// From gpuscope's fake NVML.
        simulated: bool,
    },
    /// A source changed state.
    Source {
        /// When.
        time: Timestamp,
        /// The new status.
        #[serde(flatten)]
        status: SourceStatus,
    },
}

impl Event {
    /// When it happened (or was noticed).
    pub fn time(&self) -> Timestamp {
        match self {
            Event::OomKill(k) => k.time,
            Event::KmsgOverrun { time, .. }
            | Event::Xid { time, .. }
            | Event::GpuLost { time, .. }
            | Event::GpuCountChanged { time, .. }
            | Event::GpuHealthChange { time, .. }
            | Event::SwitchXid { time, .. }
            | Event::Source { time, .. } => *time,
        }
    }
}

/// An XID as the driver printed it to the kernel log
/// (`NVRM: Xid (PCI:0000:3b:00): 79, pid=..., name=..., ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelXidLine {
    /// The GPU's PCI address as the driver printed it (`0000:3b:00`).
    pub pci_bus_id: String,
    /// The process the driver blamed, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// That process's command name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// The driver's description (the rest of the line).
    pub message: String,
    /// The line was already in the kernel's ring buffer when the agent
    /// started: history, reported once at start-up.
    #[serde(default)]
    pub before_agent_start: bool,
    /// The container of the process the driver named, its pid joined to
    /// its cgroup when the line was read (`None` for history lines, whose
    /// pid may since have been reused, and for a pid not in a container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRef>,
}

/// An NVSwitch error (SXid) as the NVSwitch driver printed it to the
/// kernel log (`nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013,
/// Non-fatal, ...`). It concerns the switch, not a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchXidLine {
    /// The switch's PCI address as printed (`0000:04:00.0`).
    pub switch_pci_bus_id: String,
    /// The switch device (`nvidia-nvswitch3`).
    pub device: String,
    /// The SXid number.
    pub sxid: u64,
    /// `Fatal` or `Non-fatal`, when the line says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The driver's description (the rest of the line).
    pub message: String,
    /// Already in the kernel's ring buffer when the agent started.
    #[serde(default)]
    pub before_agent_start: bool,
}

/// Who holds a GPU according to the kubelet (PodResources `List`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GpuHolder {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Extended resource (`nvidia.com/gpu`, `nvidia.com/mig-1g.10gb`, ...).
    pub resource_name: String,
    /// The device ID exactly as the device plugin listed it (a GPU or MIG
    /// UUID, possibly with a time-slicing `::N` suffix).
    pub device_id: String,
    /// The time-slicing replica (`::N`), when the device is shared.
    pub replica: Option<u32>,
}

impl GpuHolder {
    /// `namespace/pod`, or the namespace alone when the pod is not named
    /// (a holder the reader may not see: the aggregator names it only as
    /// "another namespace").
    pub fn label(&self) -> String {
        if self.pod.is_empty() {
            self.namespace.clone()
        } else {
            format!("{}/{}", self.namespace, self.pod)
        }
    }
}

/// One process using a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuProcess {
    /// Process ID in the host's PID namespace.
    pub pid: u32,
    /// GPU memory used by the process, bytes (`None`: the driver does not
    /// say, e.g. without permission or under MIG).
    pub used_memory_bytes: Option<u64>,
    /// Share of SM time used by the process over the last interval,
    /// percent, when NVML gives it.
    pub sm_util_percent: Option<u32>,
    /// Share of memory-controller time, percent, when NVML gives it.
    pub mem_util_percent: Option<u32>,
    /// The process's cgroup and the container it belongs to, from
    /// `/proc/<pid>/cgroup` (`None`: the process is gone or not in a
    /// container).
    #[serde(flatten)]
    pub container: Option<ContainerRef>,
}

/// One GPU (or MIG instance) at one collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    /// When it was read.
    pub time: Timestamp,
    /// NVML index (MIG instances: their parent's index).
    pub index: u32,
    /// `GPU-...` or `MIG-...` UUID.
    pub uuid: String,
    /// For a MIG instance: the parent GPU's UUID.
    pub parent_uuid: Option<String>,
    /// Product name.
    pub name: String,
    /// PCI bus ID (`00000000:19:00.0`).
    pub pci_bus_id: String,
    /// GPU utilization (share of time a kernel ran), percent.
    pub utilization_gpu_percent: Option<u32>,
    /// Memory-controller utilization, percent.
    pub utilization_memory_percent: Option<u32>,
    /// Total memory, bytes.
    pub memory_total_bytes: u64,
    /// Used memory, bytes.
    pub memory_used_bytes: u64,
    /// Power draw, watts.
    pub power_draw_watts: Option<f64>,
    /// Enforced power limit, watts.
    pub power_limit_watts: Option<f64>,
    /// GPU temperature, °C.
    pub temperature_celsius: Option<u32>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Persistence mode.
    pub persistence_mode: Option<bool>,
    /// Compute processes on it.
    #[serde(default)]
    pub processes: Vec<GpuProcess>,
    /// Pods the kubelet gave it to.
    #[serde(default)]
    pub holders: Vec<GpuHolder>,
    /// The readings come from gpuscope's fake NVML, not a real GPU.
    pub simulated: bool,
    /// Health counters of a whole GPU (`None` on MIG instances, from agents
    /// that predate them, and when NVML answers none of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<GpuHealth>,
}

/// Why NVML holds a GPU's clocks below their maximum
/// (`nvmlDeviceGetCurrentClocksEventReasons`, formerly "throttle reasons").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleReason {
    /// Nothing runs: clocks idle down (not a problem).
    Idle,
    /// Clocks pinned by `nvidia-smi -ac` / application clocks.
    ApplicationsClocks,
    /// Software power cap: the board draws at its power limit.
    SwPowerCap,
    /// Hardware slowdown (HW_SLOWDOWN pin): thermal or power-brake signal,
    /// clocks cut by half or more.
    HwSlowdown,
    /// Sync boost: held to the slowest GPU of a sync-boost group.
    SyncBoost,
    /// Software thermal slowdown: the GPU or memory is over its
    /// software temperature target.
    SwThermal,
    /// Hardware thermal slowdown: over the hardware temperature limit.
    HwThermal,
    /// Hardware power brake: the system (power supply, BMC) asserted the
    /// external power-brake signal.
    HwPowerBrake,
    /// Display clock setting.
    DisplayClocks,
}

impl ThrottleReason {
    /// Every reason with its bit in NVML's `nvmlClocksEventReason*` mask.
    pub const BITS: [(ThrottleReason, u64); 9] = [
        (ThrottleReason::Idle, 0x1),
        (ThrottleReason::ApplicationsClocks, 0x2),
        (ThrottleReason::SwPowerCap, 0x4),
        (ThrottleReason::HwSlowdown, 0x8),
        (ThrottleReason::SyncBoost, 0x10),
        (ThrottleReason::SwThermal, 0x20),
        (ThrottleReason::HwThermal, 0x40),
        (ThrottleReason::HwPowerBrake, 0x80),
        (ThrottleReason::DisplayClocks, 0x100),
    ];

    /// The reasons set in an NVML mask, in bit order (unknown bits dropped).
    pub fn from_mask(mask: u64) -> Vec<ThrottleReason> {
        Self::BITS
            .iter()
            .filter(|(_, bit)| mask & bit != 0)
            .map(|(r, _)| *r)
            .collect()
    }

    /// The NVML mask of a list of reasons.
    pub fn mask(reasons: &[ThrottleReason]) -> u64 {
        Self::BITS
            .iter()
            .filter(|(r, _)| reasons.contains(r))
            .fold(0, |m, (_, bit)| m | bit)
    }

    /// The reason as `nvidia-smi -q` and the JSON name it (`hw_power_brake`).
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleReason::Idle => "idle",
            ThrottleReason::ApplicationsClocks => "applications_clocks",
            ThrottleReason::SwPowerCap => "sw_power_cap",
            ThrottleReason::HwSlowdown => "hw_slowdown",
            ThrottleReason::SyncBoost => "sync_boost",
            ThrottleReason::SwThermal => "sw_thermal",
            ThrottleReason::HwThermal => "hw_thermal",
            ThrottleReason::HwPowerBrake => "hw_power_brake",
            ThrottleReason::DisplayClocks => "display_clocks",
        }
    }
}

/// Health counters of one GPU. Every field is `None` where the GPU or the
/// driver does not support the call (reported once, then not asked again).
/// Counters that change slowly (ECC, row remapping, PCIe replays) are read
/// at a slower cadence than the sample and carried in between.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuHealth {
    /// Why clocks are held below maximum now (empty: they are not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_reasons: Option<Vec<ThrottleReason>>,
    /// Maximum SM clock, MHz (to compare with `sm_clock_mhz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_clock_max_mhz: Option<u32>,
    /// ECC errors corrected since the driver loaded (volatile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_corrected_volatile: Option<u64>,
    /// ECC errors not corrected since the driver loaded (volatile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_uncorrected_volatile: Option<u64>,
    /// ECC errors corrected over the GPU's life (aggregate, in the infoROM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_corrected_aggregate: Option<u64>,
    /// ECC errors not corrected over the GPU's life (aggregate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_uncorrected_aggregate: Option<u64>,
    /// Rows remapped for correctable errors (Ampere and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remapped_rows_corrected: Option<u32>,
    /// Rows remapped for uncorrectable errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remapped_rows_uncorrected: Option<u32>,
    /// A remap waits for a GPU reset to take effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remap_pending: Option<bool>,
    /// A remap failed (no spare row left): the GPU needs replacing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remap_failed: Option<bool>,
    /// Current PCIe link generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_link_gen: Option<u32>,
    /// Highest PCIe generation the GPU and the slot support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_link_gen_max: Option<u32>,
    /// Current PCIe link width (lanes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_link_width: Option<u32>,
    /// Widest PCIe link the GPU and the slot support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_link_width_max: Option<u32>,
    /// PCIe replays (link-level retransmissions) since the driver loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_replays: Option<u32>,
    /// Temperature at which hardware slows the GPU down, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_slowdown_celsius: Option<u32>,
    /// Temperature at which the GPU shuts down, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_shutdown_celsius: Option<u32>,
    /// Pages retired for multiple single-bit ECC errors (before Ampere;
    /// later GPUs remap rows instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_pages_sbe: Option<u32>,
    /// Pages retired for a double-bit ECC error (before Ampere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_pages_dbe: Option<u32>,
    /// A page retirement waits for the next driver load (before Ampere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_pages_pending: Option<bool>,
    /// NVLink links, each with its state and error counters (empty: no
    /// NVLink, or not reported). Read at the slow cadence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nvlinks: Vec<NvLinkStatus>,
}

impl GpuHealth {
    /// The link `link`'s reading, if the GPU reported it.
    pub fn nvlink(&self, link: u32) -> Option<&NvLinkStatus> {
        self.nvlinks.iter().find(|l| l.link == link)
    }
}

/// One NVLink link of a GPU (`nvmlDeviceGetNvLinkState`,
/// `nvmlDeviceGetNvLinkErrorCounter`). Error counters count since the
/// driver loaded; each is `None` where the GPU does not report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvLinkStatus {
    /// The link's index on the GPU.
    pub link: u32,
    /// The link is up.
    pub active: bool,
    /// Flow-control digit CRC errors received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc_flit_errors: Option<u64>,
    /// Data CRC errors received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc_data_errors: Option<u64>,
    /// Transmissions replayed after an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_errors: Option<u64>,
    /// Link recoveries (the link retrained after errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_errors: Option<u64>,
}

impl NvLinkStatus {
    /// Every error the link counted (CRC, replay, recovery), the counters
    /// it does not report counting 0.
    pub fn errors(&self) -> u64 {
        [
            self.crc_flit_errors,
            self.crc_data_errors,
            self.replay_errors,
            self.recovery_errors,
        ]
        .iter()
        .map(|c| c.unwrap_or(0))
        .fold(0, u64::saturating_add)
    }
}

/// A GPU health state that changed between two readings of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum GpuHealthChange {
    /// An NVLink link that was up is down.
    NvlinkDown {
        /// The link.
        link: u32,
    },
    /// An NVLink link that was down is up again.
    NvlinkUp {
        /// The link.
        link: u32,
    },
    /// A row remap became pending: the GPU needs a reset.
    RemapPending,
    /// A row remap failed: no spare row left, the GPU needs replacing.
    RemapFailed,
    /// A throttle reason that slows work appeared.
    ThrottleStarted {
        /// The reason.
        reason: ThrottleReason,
    },
    /// That reason cleared.
    ThrottleCleared {
        /// The reason.
        reason: ThrottleReason,
    },
    /// The volatile uncorrectable ECC error count rose.
    EccUncorrectedRose {
        /// The count at the reading before.
        before: u64,
        /// The count now.
        after: u64,
    },
}

impl GpuHealthChange {
    /// The throttle reasons whose appearance is an event: those that cut
    /// clocks below what the workload asked for because of a fault or the
    /// environment. `sw_power_cap` is left out: a busy GPU sits at its
    /// power limit and enters and leaves it many times a minute, which is
    /// normal work, not news; `idle`, application and display clocks and
    /// sync boost are configuration.
    pub const EVENT_REASONS: [ThrottleReason; 4] = [
        ThrottleReason::HwSlowdown,
        ThrottleReason::HwThermal,
        ThrottleReason::HwPowerBrake,
        ThrottleReason::SwThermal,
    ];

    /// What changed between two readings of one GPU, in a fixed order
    /// (NVLink, remapping, ECC). Counters a reading lacks (`None`: not
    /// read, or not supported) compare as unchanged. Throttle reasons,
    /// which come and go within seconds, are not compared here: the agent
    /// reports them once they have settled ([`GpuHealthChange::EVENT_REASONS`]).
    pub fn between(before: &GpuHealth, now: &GpuHealth) -> Vec<GpuHealthChange> {
        let mut out = Vec::new();
        for l in &now.nvlinks {
            match before.nvlink(l.link) {
                Some(b) if b.active && !l.active => {
                    out.push(GpuHealthChange::NvlinkDown { link: l.link });
                }
                Some(b) if !b.active && l.active => {
                    out.push(GpuHealthChange::NvlinkUp { link: l.link });
                }
                _ => {}
            }
        }
        if before.remap_pending == Some(false) && now.remap_pending == Some(true) {
            out.push(GpuHealthChange::RemapPending);
        }
        if before.remap_failed == Some(false) && now.remap_failed == Some(true) {
            out.push(GpuHealthChange::RemapFailed);
        }
        if let (Some(b), Some(a)) = (
            before.ecc_uncorrected_volatile,
            now.ecc_uncorrected_volatile,
        ) && a > b
        {
            out.push(GpuHealthChange::EccUncorrectedRose {
                before: b,
                after: a,
            });
        }
        out
    }

    /// The change in words (`NVLink 2 down`, `hw_power_brake started`).
    pub fn describe(&self) -> String {
        match self {
            GpuHealthChange::NvlinkDown { link } => format!("NVLink {link} down"),
            GpuHealthChange::NvlinkUp { link } => format!("NVLink {link} up again"),
            GpuHealthChange::RemapPending => "row remap pending (the GPU needs a reset)".to_owned(),
            GpuHealthChange::RemapFailed => {
                "row remap failed (no spare row: replace the GPU)".to_owned()
            }
            GpuHealthChange::ThrottleStarted { reason } => {
                format!("clocks held down: {} started", reason.as_str())
            }
            GpuHealthChange::ThrottleCleared { reason } => {
                format!("{} cleared", reason.as_str())
            }
            GpuHealthChange::EccUncorrectedRose { before, after } => {
                format!("uncorrectable ECC errors {before} -> {after}")
            }
        }
    }
}

/// A value with a `"kind"` field in front, for JSON lines that mix kinds.
#[derive(serde::Serialize)]
pub struct Tagged<'a, T> {
    /// What the line is (`container_sample`, `node_sample`).
    pub kind: &'static str,
    /// The value's own fields.
    #[serde(flatten)]
    pub value: &'a T,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `oom_kill` line as an agent before the `group` field printed it
    /// (from the VM test's group kill, window cut to one point).
    const OLD_LINE: &str = r#"{"time": "2026-12-05T08:39:34.533Z", "detected_at": "2026-12-05T08:39:34.519Z", "detected_by": "notification", "cgroup_path": "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f8c3b52_6a0e_4d8e_9d39_2b1f3c6a7e11.slice/cri-containerd-9b4f2c7e1a3d5f6e8c0b2a4d6f8e1c3a5b7d9f0e2c4a6b8d0f1e3c5a7b9d2e4f.scope", "pod_uid": "0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11", "container_id": "9b4f2c7e1a3d5f6e8c0b2a4d6f8e1c3a5b7d9f0e2c4a6b8d0f1e3c5a7b9d2e4f", "qos": "burstable", "runtime": "containerd", "driver": "systemd", "cgroup_version": "v2", "limit_bytes": 33554432, "peak_bytes": 33554432, "oom_kill": 1, "oom_group_kill": 1, "constraint": "memcg", "victim": {"pid": 121, "comm": "hog", "total_vm_bytes": 34693120, "anon_rss_bytes": 32919552, "file_rss_bytes": 4096, "shmem_rss_bytes": 663552, "uid": 0, "pgtables_bytes": 110592, "oom_score_adj": 0}, "trigger_comm": "hog", "kernel_usage_bytes": 33554432, "kernel_limit_bytes": 33554432, "window": [{"time": "2026-12-05T08:39:32.617Z", "usage_bytes": 0, "anon_bytes": 0, "file_bytes": 0, "shmem_bytes": 0, "memory_some_avg10": 0.0, "memory_some_total_us": 0, "memory_full_total_us": 0}], "pressure_scope": "container"}"#;

    #[test]
    fn an_old_agents_kill_reads_without_a_group_and_writes_back_the_same_fields() {
        let k: OomKill = serde_json::from_str(OLD_LINE).expect("old line");
        assert_eq!(k.group, None);
        assert_eq!(k.victim.as_ref().map(|v| v.comm.as_str()), Some("hog"));
        let back = serde_json::to_value(&k).expect("json");
        assert!(back.get("group").is_none(), "no group, no field: {back}");
        let old: serde_json::Value = serde_json::from_str(OLD_LINE).expect("json");
        assert_eq!(back, old, "existing fields keep their JSON");
    }

    #[test]
    fn a_group_kill_writes_its_members() {
        let mut k: OomKill = serde_json::from_str(OLD_LINE).expect("old line");
        k.group = Some(OomGroup {
            cgroup_path: k.container.cgroup_path.clone(),
            members: vec![Victim {
                pid: 116,
                comm: "sh".into(),
                ..Victim::default()
            }],
            member_count: 1,
            skipped: 0,
            kill_lines: 3,
        });
        let v = serde_json::to_value(&k).expect("json");
        assert_eq!(v["group"]["member_count"], 1);
        assert_eq!(v["group"]["members"][0]["comm"], "sh");
        assert_eq!(v["group"]["kill_lines"], 3);
        let again: OomKill = serde_json::from_value(v).expect("reads back");
        assert_eq!(again, k);
    }
}
