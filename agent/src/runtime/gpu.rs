//! The GPU side of the live agent: NVML readings joined with the
//! kubelet's device assignments (PodResources) and with the container of
//! each GPU process, plus the events NVML raises (XID, GPU lost, device
//! count change), the kernel log's XIDs (their pid joined to the
//! container through `/proc/<pid>/cgroup`, as GPU processes are) and
//! NVSwitch SXids, and the health transitions between two collections (an
//! NVLink link down, a row remap pending, a throttle reason that appears,
//! uncorrectable ECC errors rising).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};

use super::{Health, Msg};
use std::time::{Duration, Instant};

use crate::collect::cgroup::discover::detect_layout;
use crate::collect::gpu::attribute::container_of_pid;
use crate::collect::gpu::nvml::{GpuNotice, NvmlSettings, NvmlSource};
use crate::collect::gpu::pod_resources::{PodResourcesClient, base_uuid};
use crate::collect::xid::same_pci_device;
use gpuscope_model::{
    CgroupVersion, Event, GpuHealthChange, GpuHolder, GpuSample, KernelXidLine, SourceState,
    SourceStatus, ThrottleReason, Timestamp,
};

/// GPU settings of the agent.
#[derive(Debug, Clone)]
pub struct GpuSettings {
    /// NVML library and deadline.
    pub nvml: NvmlSettings,
    /// The kubelet's PodResources socket.
    pub pod_resources_socket: PathBuf,
    /// How long a PodResources `List` may take.
    pub pod_resources_timeout: Duration,
}

/// One round of GPU collection.
#[derive(Debug, Default)]
pub struct GpuRound {
    /// Every GPU and MIG instance, with processes and holders.
    pub gpus: Vec<GpuSample>,
    /// Lost GPUs and device-count changes seen in this round.
    pub events: Vec<Event>,
    /// State of the NVML source.
    pub nvml: Option<SourceStatus>,
    /// State of the PodResources source.
    pub pod_resources: Option<SourceStatus>,
}

fn status(source: &str, state: SourceState, reason: Option<String>) -> SourceStatus {
    SourceStatus {
        source: source.to_owned(),
        state,
        reason,
    }
}

/// Collects GPUs round after round, remembering what it needs to turn
/// changes into events.
pub struct GpuCollector {
    settings: GpuSettings,
    proc_root: PathBuf,
    version: CgroupVersion,
    nvml: NvmlSource,
    notices: Receiver<GpuNotice>,
    pod_resources: Option<PodResourcesClient>,
    last_count: Option<u32>,
    lost: HashSet<u32>,
    xid_counts: HashMap<String, u64>,
    last: Vec<GpuSample>,
    simulated: bool,
    /// Kept to hand to the kmsg thread (see [`GpuCollector::notice_sender`]).
    notice_tx: Sender<GpuNotice>,
    /// XIDs reported lately, by GPU and XID, with when they were received:
    /// NVML's event and the kernel's line for the same XID are one event.
    recent_xids: RecentXids,
    /// Per GPU UUID: its throttle reasons as events have told them.
    throttle: HashMap<String, ThrottleState>,
}

/// XIDs reported lately, by GPU and XID, with when they were received.
#[derive(Debug, Default)]
struct RecentXids(Vec<(String, u64, Instant)>);

impl RecentXids {
    /// Whether this XID is the first report of its error: no report of the
    /// same XID on the same GPU (or on an unknown one) within
    /// [`XID_SAME_WITHIN`]. Remembers it.
    fn first(&mut self, uuid: &str, xid: u64, now: Instant) -> bool {
        self.0
            .retain(|(_, _, at)| now.duration_since(*at) <= XID_SAME_WITHIN);
        let seen = self
            .0
            .iter()
            .any(|(u, x, _)| *x == xid && (u == uuid || u.is_empty() || uuid.is_empty()));
        if !seen {
            self.0.push((uuid.to_owned(), xid, now));
        }
        !seen
    }
}

/// NVML's event and the kernel line of the same XID arrive within this
/// long of each other (both are raised by the driver's one error path).
const XID_SAME_WITHIN: Duration = Duration::from_secs(5);

impl GpuCollector {
    /// Starts the NVML worker. `cgroup_root` tells which cgroup line of
    /// `/proc/<pid>/cgroup` names a process's memory cgroup.
    pub fn start(
        settings: GpuSettings,
        proc_root: PathBuf,
        cgroup_root: &std::path::Path,
    ) -> std::io::Result<Self> {
        let (tx, notices) = mpsc::channel();
        let nvml = NvmlSource::start(settings.nvml.clone(), tx.clone())?;
        let version = detect_layout(cgroup_root).map_or(CgroupVersion::V2, |l| l.memory_version);
        Ok(Self {
            settings,
            proc_root,
            version,
            nvml,
            notices,
            pod_resources: None,
            last_count: None,
            lost: HashSet::new(),
            xid_counts: HashMap::new(),
            last: Vec::new(),
            simulated: false,
            notice_tx: tx,
            recent_xids: RecentXids::default(),
            throttle: HashMap::new(),
        })
    }

    /// Where the kmsg thread sends the XID lines of the kernel log, so that
    /// they are joined to the GPU (by PCI address) and its holders, and
    /// merged with NVML's event for the same XID.
    pub fn notice_sender(&self) -> Sender<GpuNotice> {
        self.notice_tx.clone()
    }

    /// One collection: NVML, then PodResources, then attribution.
    pub fn collect(&mut self) -> GpuRound {
        let time = Timestamp::now();
        let mut round = GpuRound::default();
        let (holders, podres_status) = self.holders();
        round.pod_resources = Some(podres_status);
        match self.nvml.collect() {
            Ok(c) => {
                self.simulated = c.simulated;
                round.nvml = Some(if c.errors.is_empty() {
                    status("nvml", SourceState::Ok, None)
                } else {
                    status(
                        "nvml",
                        SourceState::Degraded,
                        Some(format!(
                            "{} call(s) failed; first: {}",
                            c.errors.len(),
                            c.errors[0]
                        )),
                    )
                });
                if let Some(before) = self.last_count.filter(|&b| b != c.device_count) {
                    round.events.push(Event::GpuCountChanged {
                        time,
                        before,
                        after: c.device_count,
                        simulated: c.simulated,
                    });
                }
                self.last_count = Some(c.device_count);
                let now_lost: HashSet<u32> = c.lost.iter().map(|(i, _)| *i).collect();
                for (index, uuid) in &c.lost {
                    if !self.lost.contains(index) {
                        round.events.push(Event::GpuLost {
                            time,
                            gpu_index: *index,
                            gpu_uuid: uuid.clone(),
                            holders: uuid
                                .as_deref()
                                .map(|u| holders_of(&holders, u))
                                .unwrap_or_default(),
                            simulated: c.simulated,
                        });
                    }
                }
                self.lost = now_lost;
                let mut gpus = c.gpus;
                for gpu in &mut gpus {
                    gpu.holders = holders_of(&holders, &gpu.uuid);
                    for p in &mut gpu.processes {
                        p.container = container_of_pid(&self.proc_root, p.pid, self.version);
                    }
                }
                self.health_changes(&gpus, time, &mut round.events);
                round.gpus = gpus;
            }
            Err(e) => {
                let state = match e {
                    crate::collect::gpu::nvml::NvmlSourceError::Late { .. } => {
                        SourceState::Degraded
                    }
                    _ => SourceState::Unavailable,
                };
                round.nvml = Some(status("nvml", state, Some(e.to_string())));
            }
        }
        self.last.clone_from(&round.gpus);
        round
    }

    fn holders(&mut self) -> (Vec<GpuHolder>, SourceStatus) {
        let socket = &self.settings.pod_resources_socket;
        if self.pod_resources.is_none() {
            match PodResourcesClient::new(socket, self.settings.pod_resources_timeout) {
                Ok(c) => self.pod_resources = Some(c),
                Err(e) => {
                    return (
                        Vec::new(),
                        status(
                            "pod_resources",
                            SourceState::Unavailable,
                            Some(e.to_string()),
                        ),
                    );
                }
            }
        }
        let Some(client) = self.pod_resources.as_mut() else {
            return (
                Vec::new(),
                status("pod_resources", SourceState::Unavailable, None),
            );
        };
        match client.list() {
            Ok(h) => (h, status("pod_resources", SourceState::Ok, None)),
            Err(e) => (
                Vec::new(),
                status(
                    "pod_resources",
                    SourceState::Unavailable,
                    Some(e.to_string()),
                ),
            ),
        }
    }

    /// Waits up to `timeout` for an XID from NVML and turns it into an
    /// event naming the GPU and its holders.
    pub fn next_xid(&mut self, timeout: Duration) -> Option<Event> {
        match self.notices.recv_timeout(timeout) {
            Ok(GpuNotice::Xid { time, uuid, xid }) => self.xid_event(time, uuid, xid, None),
            Ok(GpuNotice::SwitchXid { time, line }) => Some(Event::SwitchXid { time, line }),
            Ok(GpuNotice::KernelXid {
                time,
                xid,
                mut line,
            }) => {
                join_pid(&self.proc_root, self.version, &mut line);
                let uuid = self
                    .last
                    .iter()
                    .find(|g| {
                        g.parent_uuid.is_none() && same_pci_device(&line.pci_bus_id, &g.pci_bus_id)
                    })
                    .map(|g| g.uuid.clone())
                    .unwrap_or_default();
                self.xid_event(time, uuid, xid, Some(line))
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }
}

impl GpuCollector {
    /// The event for one XID, from NVML or the kernel log; `None` when the
    /// other source already reported it (history lines always count: NVML
    /// cannot have seen them).
    fn xid_event(
        &mut self,
        time: Timestamp,
        uuid: String,
        xid: u64,
        kernel: Option<KernelXidLine>,
    ) -> Option<Event> {
        let history = kernel.as_ref().is_some_and(|k| k.before_agent_start);
        if !history && !self.recent_xids.first(&uuid, xid, Instant::now()) {
            return None;
        }
        let count = self.xid_counts.entry(uuid.clone()).or_insert(0);
        *count += 1;
        let gpu = self
            .last
            .iter()
            .find(|g| !uuid.is_empty() && g.uuid == uuid);
        // The pods holding the GPU now did not necessarily hold it then.
        let holders = match gpu {
            Some(g) if !history => g.holders.clone(),
            _ => Vec::new(),
        };
        Some(Event::Xid {
            time,
            gpu_index: gpu.map(|g| g.index),
            holders,
            gpu_uuid: uuid,
            xid,
            count: *count,
            simulated: self.simulated && kernel.is_none(),
            kernel,
        })
    }
}

/// Collections a throttle reason must hold (or stay cleared) before its
/// start (or end) is an event: 3, so a reason that flickers for a reading
/// or two (a power-brake pulse, NVML sampling an edge) is not a pair of
/// events each time; its time still shows in every sample.
const THROTTLE_SETTLE: u32 = 3;

/// The throttle reasons of one GPU as events have told them, and those
/// changing but not yet settled.
#[derive(Debug, Default)]
struct ThrottleState {
    /// The reasons last reported (`None`: no reading yet; the first is the
    /// GPU's state, not a change).
    reported: Option<Vec<ThrottleReason>>,
    /// Per [`GpuHealthChange::EVENT_REASONS`] entry: when it began to
    /// differ from `reported`, and for how many collections.
    pending: [Option<(Timestamp, u32)>; 4],
}

impl ThrottleState {
    /// The settled starts and ends in `now`, each with the time its
    /// change began.
    fn update(
        &mut self,
        time: Timestamp,
        now: &[ThrottleReason],
    ) -> Vec<(Timestamp, GpuHealthChange)> {
        let reasons = GpuHealthChange::EVENT_REASONS;
        let Some(reported) = &mut self.reported else {
            self.reported = Some(reasons.into_iter().filter(|r| now.contains(r)).collect());
            return Vec::new();
        };
        let mut out = Vec::new();
        for (pending, reason) in self.pending.iter_mut().zip(reasons) {
            let on = now.contains(&reason);
            if on == reported.contains(&reason) {
                *pending = None;
                continue;
            }
            let (since, n) = pending.get_or_insert((time, 0));
            *n += 1;
            if *n < THROTTLE_SETTLE {
                continue;
            }
            let since = *since;
            *pending = None;
            if on {
                reported.push(reason);
                out.push((since, GpuHealthChange::ThrottleStarted { reason }));
            } else {
                reported.retain(|r| *r != reason);
                out.push((since, GpuHealthChange::ThrottleCleared { reason }));
            }
        }
        out
    }
}

impl GpuCollector {
    /// The health transitions between the previous collection's GPUs and
    /// this one's, as events naming the GPU and the pods holding it now:
    /// NVLink, remapping and ECC changes at once, throttle reasons once
    /// settled ([`THROTTLE_SETTLE`]). A GPU seen for the first time (or
    /// without health counters) has nothing to compare with: its first
    /// reading is its state, not a change.
    fn health_changes(&mut self, now: &[GpuSample], time: Timestamp, out: &mut Vec<Event>) {
        for gpu in now {
            let Some(h) = &gpu.health else { continue };
            let mut changes = Vec::new();
            if let Some(b) = self
                .last
                .iter()
                .find(|b| b.uuid == gpu.uuid)
                .and_then(|b| b.health.as_ref())
            {
                changes.extend(
                    GpuHealthChange::between(b, h)
                        .into_iter()
                        .map(|c| (time, c)),
                );
            }
            if let Some(reasons) = &h.throttle_reasons {
                let state = self.throttle.entry(gpu.uuid.clone()).or_default();
                changes.extend(state.update(time, reasons));
            }
            for (time, change) in changes {
                out.push(Event::GpuHealthChange {
                    time,
                    gpu_uuid: gpu.uuid.clone(),
                    gpu_index: Some(gpu.index),
                    change,
                    holders: gpu.holders.clone(),
                    simulated: gpu.simulated,
                });
            }
        }
    }
}

/// Joins the process a kernel XID line names to its container, through
/// its `/proc/<pid>/cgroup` as GPU processes are, while it still runs: a
/// history line (in the ring buffer before the agent started) is left
/// alone, as its pid may since have been reused by another process.
fn join_pid(proc_root: &std::path::Path, version: CgroupVersion, line: &mut KernelXidLine) {
    if let Some(pid) = line.pid.filter(|_| !line.before_agent_start) {
        line.container = container_of_pid(proc_root, pid, version);
    }
}

/// The kubelet holders of the GPU or MIG instance `uuid`.
fn holders_of(holders: &[GpuHolder], uuid: &str) -> Vec<GpuHolder> {
    holders
        .iter()
        .filter(|h| base_uuid(&h.device_id).0 == uuid)
        .cloned()
        .collect()
}

/// The GPU thread: a collection every `interval`, XIDs in between.
pub(super) fn run(
    mut collector: GpuCollector,
    interval: Duration,
    tx: &Sender<Msg>,
    done: &AtomicBool,
) {
    let mut nvml_health = Health::new("nvml");
    let mut podres_health = Health::new("pod_resources");
    let mut next = Instant::now();
    while !done.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            if let Some(e) = collector.next_xid(next - now)
                && tx.send(Msg::Event(e)).is_err()
            {
                return;
            }
            continue;
        }
        next = now + interval;
        let round = collector.collect();
        if let Some(s) = round.nvml {
            nvml_health.set(tx, s.state, s.reason);
        }
        if let Some(s) = round.pod_resources {
            podres_health.set(tx, s.state, s.reason);
        }
        for e in round.events {
            let _ = tx.send(Msg::Event(e));
        }
        if tx.send(Msg::Gpus(round.gpus)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_reasons_are_events_once_settled() {
        use ThrottleReason::{HwPowerBrake, HwSlowdown, SwPowerCap};
        let mut s = ThrottleState::default();
        let t = |n: u64| Timestamp(n * 1_000_000_000);
        // The first reading is the state.
        assert_eq!(s.update(t(0), &[HwSlowdown]), vec![]);
        // A one-reading pulse of the power brake, and sw_power_cap (a GPU
        // at its power limit, never an event): nothing.
        assert_eq!(s.update(t(1), &[HwSlowdown, HwPowerBrake]), vec![]);
        assert_eq!(s.update(t(2), &[HwSlowdown, SwPowerCap]), vec![]);
        // The brake holds three readings: one event, dated when it began.
        assert_eq!(s.update(t(3), &[HwSlowdown, HwPowerBrake]), vec![]);
        assert_eq!(s.update(t(4), &[HwSlowdown, HwPowerBrake]), vec![]);
        assert_eq!(
            s.update(t(5), &[HwSlowdown, HwPowerBrake]),
            vec![(
                t(3),
                GpuHealthChange::ThrottleStarted {
                    reason: HwPowerBrake
                }
            )]
        );
        assert_eq!(s.update(t(6), &[HwSlowdown, HwPowerBrake]), vec![]);
        // Both clear and stay clear.
        for n in 7..9 {
            assert_eq!(s.update(t(n), &[]), vec![]);
        }
        assert_eq!(
            s.update(t(9), &[]),
            vec![
                (
                    t(7),
                    GpuHealthChange::ThrottleCleared { reason: HwSlowdown }
                ),
                (
                    t(7),
                    GpuHealthChange::ThrottleCleared {
                        reason: HwPowerBrake
                    }
                ),
            ]
        );
        assert_eq!(s.update(t(10), &[]), vec![]);
    }

    #[test]
    fn a_kernel_xid_pid_is_joined_to_its_pod_unless_history() {
        // A /proc tree with pid 4242 in a kubelet container (cgroup v1,
        // the memory controller's line, as a real /proc/PID/cgroup reads).
        let proc = tempfile::tempdir().expect("tempdir");
        let pod = "0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11";
        let id = "4d3c2b1a".repeat(8);
        std::fs::create_dir(proc.path().join("4242")).expect("mkdir");
        std::fs::write(
            proc.path().join("4242/cgroup"),
            format!(
                "12:cpuset:/\n4:memory:/kubepods/burstable/pod{pod}/{id}\n0::/system.slice/containerd.service\n"
            ),
        )
        .expect("write");
        let line = |pid, history| KernelXidLine {
            pci_bus_id: "0000:3b:00".into(),
            pid: Some(pid),
            process: Some("python3".into()),
            message: "Ch 00000008".into(),
            before_agent_start: history,
            container: None,
        };
        let mut live = line(4242, false);
        join_pid(proc.path(), CgroupVersion::V1, &mut live);
        let c = live.container.expect("joined");
        assert_eq!(c.pod_uid.as_deref(), Some(pod));
        assert_eq!(c.container_id.as_deref(), Some(id.as_str()));
        let mut history = line(4242, true);
        join_pid(proc.path(), CgroupVersion::V1, &mut history);
        assert_eq!(history.container, None, "a history pid may be reused");
        let mut gone = line(4343, false);
        join_pid(proc.path(), CgroupVersion::V1, &mut gone);
        assert_eq!(gone.container, None, "the process is gone");
    }

    #[test]
    fn nvml_and_kernel_reports_of_one_xid_are_one() {
        let mut recent = RecentXids::default();
        let t0 = Instant::now();
        assert!(recent.first("GPU-a", 79, t0), "NVML's event");
        assert!(
            !recent.first("GPU-a", 79, t0 + Duration::from_secs(1)),
            "the kernel line"
        );
        assert!(recent.first("GPU-b", 79, t0), "another GPU");
        assert!(recent.first("GPU-a", 48, t0), "another XID");
        // A kernel line whose PCI address matched no sampled GPU yet.
        assert!(!recent.first("", 48, t0 + Duration::from_secs(2)));
        // The same XID again, later: a new error.
        assert!(recent.first("GPU-a", 79, t0 + Duration::from_secs(10)));
    }
}
