//! What the engine says: findings, their kinds, subjects and evidence.

use std::time::Duration;

use gpuscope_model::Timestamp;
use serde::{Deserialize, Serialize};

/// The vocabulary of findings. The snake_case name is the `kind` in JSON
/// output and is stable: scripts match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    // Memory.
    /// The container's main process was killed at the container's memory
    /// limit (the kernel's memcg OOM killer); the container restarted.
    OomKilled,
    /// A process inside the container was killed at its limit while the
    /// container lived on: a worker died and Kubernetes did not notice.
    OomKilledWorker,
    /// The node ran out of memory as a whole and the kernel killed a
    /// process of this container; its own limit was not the cause.
    OomNode,
    /// The kubelet evicted the pod (node memory, disk or PID pressure).
    Evicted,
    /// The container status says OOMKilled but no kernel kill was seen for
    /// that container instance (the runtime's label can be sticky or
    /// second-hand): low confidence.
    OomStatusWithoutKill,
    /// Exit 137 (SIGKILL) that was not an OOM kill: a failed liveness
    /// probe or a stop that outlived its grace period.
    #[serde(rename = "exit_137_not_oom")]
    Exit137NotOom,
    /// CUDA ran out of GPU memory: the GPU's memory was at capacity before
    /// the exit, or the log tail says so.
    CudaOom,
    /// Memory pressure stayed high without a kill: the container spends
    /// its time reclaiming page cache (thrashing).
    MemoryThrashing,
    // GPU use.
    /// A GPU allocated to a pod ran no process for the whole window.
    GpuIdle,
    /// A GPU's memory is held but its utilization stayed at or below the
    /// idle threshold for the window.
    GpuMemoryIdle,
    /// Training stopped making progress: the pod is Running, but GPU and
    /// container CPU went flat near zero after a period of activity.
    TrainingStuck,
    /// Utilization pinned near 100 % with power near idle and nothing
    /// changing: the signature of a collective (NCCL) that is waiting.
    NcclWedge,
    /// The GPU waits for input: low GPU utilization while the container's
    /// CPU is saturated or its I/O pressure is high.
    InputBound,
    /// NCCL reported an error in the log tail (timeouts, unhandled
    /// system or CUDA errors, remote peer gone).
    NcclError,
    /// A process of the pod has been in uninterruptible sleep (`D`)
    /// without running for minutes, waiting on NFS, FUSE, block I/O or the
    /// GPU driver: it cannot move, and its job's other ranks wait for it.
    #[serde(rename = "process_stuck_io")]
    StuckInIo,
    // GPUs and the device plugin.
    /// The driver reported an XID error for a GPU.
    GpuXid,
    /// A GPU fell off the bus or stopped answering NVML.
    GpuLost,
    /// The node advertises fewer allocatable GPUs than NVML sees: the
    /// device plugin marked one unhealthy.
    GpuUnhealthy,
    /// The GPU device-plugin pod on a GPU node is not running or not ready.
    DevicePluginDown,
    /// The GPU's clocks were held down by a hardware slowdown, a power
    /// brake or a thermal limit for a while: every step of the pods on it,
    /// and of their collective, runs slower.
    GpuThrottled,
    /// The GPU's memory is failing: uncorrectable ECC errors rising, or a
    /// row remap pending (needs a reset) or failed (needs replacing).
    GpuMemoryErrors,
    /// The GPU's PCIe link is degraded: narrower or slower than it can
    /// run, or retransmitting (replays) often.
    GpuLinkDegraded,
    /// An NVLink link of the GPU is down or counting errors fast: its
    /// peer-to-peer and collective traffic slows or falls back.
    GpuNvlinkDegraded,
    /// The pod is Pending because no node has enough free
    /// `nvidia.com/gpu` (or none fits it for another reason).
    GpuUnschedulable,
    /// The kubelet rejected the pod at admission (UnexpectedAdmissionError,
    /// usually the device plugin could not allocate the GPUs).
    AdmissionError,
    // The everyday failures.
    /// The image cannot be pulled (missing name or tag, unauthorized, rate
    /// limited, or registry unreachable).
    ImagePull,
    /// The container keeps crashing (CrashLoopBackOff), with the meaning
    /// of its exit code.
    CrashLoop,
    /// The container failed and, under restartPolicy Never (a Job's pod),
    /// so did the pod: one exit, not a loop, with the meaning of its exit
    /// code and who stopped it.
    ContainerFailed,
    /// Pending: no node has the CPU, memory or other resource requested.
    PendingResources,
    /// Pending: the node selector or affinity matches no node.
    PendingAffinity,
    /// Pending: the nodes that would fit have taints the pod does not
    /// tolerate.
    PendingTaint,
    /// Pending: a PersistentVolumeClaim the pod mounts is not bound.
    PendingPvc,
    /// Pending for a reason the evidence does not show (no scheduling
    /// event seen): low confidence.
    Pending,
    /// The container cannot be created: a ConfigMap, Secret or key it
    /// references is missing (CreateContainerConfigError).
    ConfigMissing,
    /// A volume could not be mounted (FailedMount) or the sandbox could not
    /// be created (FailedCreatePodSandBox).
    MountFailed,
    /// The program could not find its model or data files at load time.
    ModelFilesMissing,
    /// A liveness, readiness or startup probe keeps failing.
    ProbeFailing,
    /// The pod failed or is unhealthy but the evidence at hand does not
    /// say why; the finding names what is missing.
    InsufficientEvidence,
}

impl Kind {
    /// Every kind, in documentation order.
    pub const ALL: [Kind; 38] = [
        Self::OomKilled,
        Self::OomKilledWorker,
        Self::OomNode,
        Self::Evicted,
        Self::OomStatusWithoutKill,
        Self::Exit137NotOom,
        Self::CudaOom,
        Self::MemoryThrashing,
        Self::GpuIdle,
        Self::GpuMemoryIdle,
        Self::TrainingStuck,
        Self::NcclWedge,
        Self::InputBound,
        Self::NcclError,
        Self::StuckInIo,
        Self::GpuXid,
        Self::GpuLost,
        Self::GpuUnhealthy,
        Self::DevicePluginDown,
        Self::GpuThrottled,
        Self::GpuMemoryErrors,
        Self::GpuLinkDegraded,
        Self::GpuNvlinkDegraded,
        Self::GpuUnschedulable,
        Self::AdmissionError,
        Self::ImagePull,
        Self::CrashLoop,
        Self::ContainerFailed,
        Self::PendingResources,
        Self::PendingAffinity,
        Self::PendingTaint,
        Self::PendingPvc,
        Self::Pending,
        Self::ConfigMissing,
        Self::MountFailed,
        Self::ModelFilesMissing,
        Self::ProbeFailing,
        Self::InsufficientEvidence,
    ];

    /// The stable snake_case name (the same as the JSON `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OomKilled => "oom_killed",
            Self::OomKilledWorker => "oom_killed_worker",
            Self::OomNode => "oom_node",
            Self::Evicted => "evicted",
            Self::OomStatusWithoutKill => "oom_status_without_kill",
            Self::Exit137NotOom => "exit_137_not_oom",
            Self::CudaOom => "cuda_oom",
            Self::MemoryThrashing => "memory_thrashing",
            Self::GpuIdle => "gpu_idle",
            Self::GpuMemoryIdle => "gpu_memory_idle",
            Self::TrainingStuck => "training_stuck",
            Self::NcclWedge => "nccl_wedge",
            Self::InputBound => "input_bound",
            Self::NcclError => "nccl_error",
            Self::StuckInIo => "process_stuck_io",
            Self::GpuXid => "gpu_xid",
            Self::GpuLost => "gpu_lost",
            Self::GpuUnhealthy => "gpu_unhealthy",
            Self::DevicePluginDown => "device_plugin_down",
            Self::GpuThrottled => "gpu_throttled",
            Self::GpuMemoryErrors => "gpu_memory_errors",
            Self::GpuLinkDegraded => "gpu_link_degraded",
            Self::GpuNvlinkDegraded => "gpu_nvlink_degraded",
            Self::GpuUnschedulable => "gpu_unschedulable",
            Self::AdmissionError => "admission_error",
            Self::ImagePull => "image_pull",
            Self::CrashLoop => "crash_loop",
            Self::ContainerFailed => "container_failed",
            Self::PendingResources => "pending_resources",
            Self::PendingAffinity => "pending_affinity",
            Self::PendingTaint => "pending_taint",
            Self::PendingPvc => "pending_pvc",
            Self::Pending => "pending",
            Self::ConfigMissing => "config_missing",
            Self::MountFailed => "mount_failed",
            Self::ModelFilesMissing => "model_files_missing",
            Self::ProbeFailing => "probe_failing",
            Self::InsufficientEvidence => "insufficient_evidence",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How sure the engine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// The evidence is thin or second-hand: check before acting.
    Low,
    /// The mechanism is clear but one piece of evidence is missing.
    Medium,
    /// The evidence shows the mechanism directly.
    High,
}

/// What a finding is about. Every field is optional: a node finding has
/// no pod, a pod finding may have no GPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Namespace of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Container name (or container ID when the name is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// GPU UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// The pod's top owner, `Kind/name` (e.g. `Job/train-llama`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One number (or fact) of evidence, with when it was true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// What it is.
    pub name: String,
    /// Its value, for people.
    pub value: String,
    /// When it was true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
}

impl Fact {
    /// A fact without a time.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            time: None,
        }
    }

    /// A fact true at `time`.
    pub fn at(name: impl Into<String>, value: impl Into<String>, time: Timestamp) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            time: Some(time),
        }
    }
}

/// What a finding costs, for ranking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// GPU-hours allocated and not used (or lost to the failure).
    #[serde(default)]
    pub gpu_hours: f64,
    /// Container restarts caused.
    #[serde(default)]
    pub restarts: u32,
}

/// One diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Its handle within one report, stable for the same evidence:
    /// `KIND:NAMESPACE/POD[:CONTAINER][:GPU]` or `KIND:NODE[:GPU]`
    /// (a `#2` suffix when two findings would share one). Assigned by the
    /// engine once every rule has run; [`Finding::caused_by`] refers to it.
    #[serde(default)]
    pub id: String,
    /// What was found.
    pub kind: Kind,
    /// What it is about.
    pub subject: Subject,
    /// One plain sentence.
    pub summary: String,
    /// How sure the engine is.
    pub confidence: Confidence,
    /// The numbers that prove it.
    pub evidence: Vec<Fact>,
    /// The command to run or the manifest change to make.
    pub next_steps: Vec<String>,
    /// What it costs, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// The ids of the findings that caused this one (empty: a root
    /// cause, or a finding on its own). A crash loop is caused by the
    /// exit that ended each run; that exit by the probe that killed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caused_by: Vec<String>,
}

impl Finding {
    /// A finding with no evidence or next steps yet.
    pub fn new(
        kind: Kind,
        subject: Subject,
        confidence: Confidence,
        summary: impl Into<String>,
    ) -> Self {
        Self {
            id: String::new(),
            kind,
            subject,
            summary: summary.into(),
            confidence,
            evidence: Vec::new(),
            next_steps: Vec::new(),
            cost: None,
            caused_by: Vec::new(),
        }
    }

    /// Adds one fact.
    pub fn fact(mut self, f: Fact) -> Self {
        self.evidence.push(f);
        self
    }

    /// Adds one fact when there is one.
    pub fn fact_opt(mut self, f: Option<Fact>) -> Self {
        self.evidence.extend(f);
        self
    }

    /// Adds one next step.
    pub fn step(mut self, s: impl Into<String>) -> Self {
        self.next_steps.push(s.into());
        self
    }

    /// The ranking key: GPU-hours first, then restarts, then confidence.
    pub fn rank_key(&self) -> (u64, u32, Confidence) {
        let c = self.cost.unwrap_or_default();
        ((c.gpu_hours * 1000.0) as u64, c.restarts, self.confidence)
    }
}

// ---------------------------------------------------------------------
// How findings word durations.

/// A duration for people, the one way every finding words one, as
/// kubectl's AGE column and gpuscope's own tables do: `45s`, `12m`,
/// `3h5m`, `2d4h`; two units at most, a zero second one left out (`2h`).
/// Seconds up to two minutes, minutes up to two hours: the unit a
/// person would count in.
pub(crate) fn duration(d: Duration) -> String {
    let s = d.as_secs();
    let two = |big: u64, big_unit: &str, small: u64, small_unit: &str| match small {
        0 => format!("{big}{big_unit}"),
        _ => format!("{big}{big_unit}{small}{small_unit}"),
    };
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => two(s / 3600, "h", s % 3600 / 60, "m"),
        _ => two(s / 86400, "d", s % 86400 / 3600, "h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_one_way() {
        let d = |s| duration(Duration::from_secs(s));
        assert_eq!(d(0), "0s");
        assert_eq!(d(45), "45s");
        assert_eq!(d(119), "119s");
        assert_eq!(d(600), "10m");
        assert_eq!(d(7199), "119m");
        assert_eq!(d(7200), "2h");
        assert_eq!(d(7500), "2h5m");
        assert_eq!(d(19_680), "5h28m");
        assert_eq!(d(2 * 86400 + 4 * 3600 + 59), "2d4h");
        assert_eq!(d(3 * 86400), "3d");
    }

    #[test]
    fn kind_names_are_the_json_names() {
        for k in Kind::ALL {
            assert_eq!(serde_json::to_value(k).ok(), Some(k.as_str().into()));
        }
    }
}
