//! Conversions between the observation types and the `gpuscope.v1` wire
//! messages, both ways: the one place where the two meet.

use gpuscope_proto::v1 as pb;

use crate::{
    CgroupDriver, CgroupMode, CgroupVersion, ContainerRef, ContainerRuntime, ContainerSample,
    CpuStats, Detection, Event, GpuHealth, GpuHealthChange, GpuHolder, GpuProcess, GpuSample,
    KernelXidLine, MemoryEvents, MemoryStats, NodeSample, NvLinkStatus, OomConstraint, OomGroup,
    OomKill, Pressure, Psi, PsiLine, PsiScope, QosClass, Reclaim, RecorderPoint, SourceState,
    SourceStatus, StuckTask, SwitchXidLine, ThrottleReason, Timestamp, Victim, WaitKind,
};

impl From<CgroupMode> for pb::CgroupMode {
    fn from(m: CgroupMode) -> Self {
        match m {
            CgroupMode::V1 => Self::V1,
            CgroupMode::V2 => Self::V2,
            CgroupMode::Hybrid => Self::Hybrid,
        }
    }
}

impl From<CgroupVersion> for pb::CgroupVersion {
    fn from(v: CgroupVersion) -> Self {
        match v {
            CgroupVersion::V1 => Self::V1,
            CgroupVersion::V2 => Self::V2,
        }
    }
}

impl From<&ContainerRef> for pb::ContainerRef {
    fn from(c: &ContainerRef) -> Self {
        Self {
            cgroup_path: c.cgroup_path.clone(),
            pod_uid: c.pod_uid.clone().unwrap_or_default(),
            container_id: c.container_id.clone().unwrap_or_default(),
            qos: c.qos.map_or(pb::QosClass::Unspecified, |q| match q {
                QosClass::Guaranteed => pb::QosClass::Guaranteed,
                QosClass::Burstable => pb::QosClass::Burstable,
                QosClass::BestEffort => pb::QosClass::BestEffort,
            }) as i32,
            runtime: c
                .runtime
                .map_or(pb::ContainerRuntime::Unspecified, |r| match r {
                    ContainerRuntime::Containerd => pb::ContainerRuntime::Containerd,
                    ContainerRuntime::CriO => pb::ContainerRuntime::Crio,
                    ContainerRuntime::Docker => pb::ContainerRuntime::Docker,
                    ContainerRuntime::Unknown => pb::ContainerRuntime::Unknown,
                }) as i32,
            driver: c.driver.map_or(pb::CgroupDriver::Unspecified, |d| match d {
                CgroupDriver::Cgroupfs => pb::CgroupDriver::Cgroupfs,
                CgroupDriver::Systemd => pb::CgroupDriver::Systemd,
            }) as i32,
        }
    }
}

impl From<PsiLine> for pb::PsiLine {
    fn from(l: PsiLine) -> Self {
        Self {
            avg10: l.avg10,
            avg60: l.avg60,
            avg300: l.avg300,
            total_us: l.total_us,
        }
    }
}

impl From<Psi> for pb::Psi {
    fn from(p: Psi) -> Self {
        Self {
            some: Some(p.some.into()),
            full: p.full.map(Into::into),
        }
    }
}

impl From<Pressure> for pb::Pressure {
    fn from(p: Pressure) -> Self {
        Self {
            memory: p.memory.map(Into::into),
            cpu: p.cpu.map(Into::into),
            io: p.io.map(Into::into),
        }
    }
}

impl From<MemoryEvents> for pb::MemoryEvents {
    fn from(e: MemoryEvents) -> Self {
        Self {
            oom: e.oom,
            oom_kill: e.oom_kill,
            oom_group_kill: e.oom_group_kill,
            max: e.max,
            high: e.high,
            under_oom: e.under_oom,
            failcnt: e.failcnt,
        }
    }
}

impl From<MemoryStats> for pb::MemoryStats {
    fn from(m: MemoryStats) -> Self {
        Self {
            usage_bytes: m.usage_bytes,
            limit_bytes: m.limit_bytes,
            peak_bytes: m.peak_bytes,
            anon_bytes: m.anon_bytes,
            file_bytes: m.file_bytes,
            shmem_bytes: m.shmem_bytes,
            events: Some(m.events.into()),
            reclaim: (!m.reclaim.is_empty()).then_some(pb::Reclaim {
                pgmajfault: m.reclaim.pgmajfault,
                workingset_refault_anon: m.reclaim.workingset_refault_anon,
                workingset_refault_file: m.reclaim.workingset_refault_file,
            }),
        }
    }
}

impl From<WaitKind> for pb::WaitKind {
    fn from(w: WaitKind) -> Self {
        match w {
            WaitKind::Nfs => Self::Nfs,
            WaitKind::Fuse => Self::Fuse,
            WaitKind::BlockIo => Self::BlockIo,
            WaitKind::GpuDriver => Self::GpuDriver,
            WaitKind::Other => Self::Other,
            WaitKind::Unknown => Self::Unknown,
        }
    }
}

impl From<&StuckTask> for pb::StuckTask {
    fn from(t: &StuckTask) -> Self {
        Self {
            pid: t.pid,
            comm: t.comm.clone(),
            since_unix_nanos: t.since.as_nanos(),
            wchan: t.wchan.clone(),
            wait: pb::WaitKind::from(t.wait) as i32,
            stack: t.stack.clone(),
            file: t.file.clone(),
            fstype: t.fstype.clone(),
        }
    }
}

impl From<pb::StuckTask> for StuckTask {
    fn from(t: pb::StuckTask) -> Self {
        Self {
            pid: t.pid,
            comm: t.comm,
            since: ts(t.since_unix_nanos),
            wchan: t.wchan,
            wait: match pb::WaitKind::try_from(t.wait) {
                Ok(pb::WaitKind::Nfs) => WaitKind::Nfs,
                Ok(pb::WaitKind::Fuse) => WaitKind::Fuse,
                Ok(pb::WaitKind::BlockIo) => WaitKind::BlockIo,
                Ok(pb::WaitKind::GpuDriver) => WaitKind::GpuDriver,
                Ok(pb::WaitKind::Other) => WaitKind::Other,
                // Unspecified, unknown, or a kind newer than this reader.
                _ => WaitKind::Unknown,
            },
            stack: t.stack,
            file: t.file,
            fstype: t.fstype,
        }
    }
}

impl From<CpuStats> for pb::CpuStats {
    fn from(c: CpuStats) -> Self {
        Self {
            usage_us: c.usage_us,
            nr_throttled: c.nr_throttled,
            throttled_us: c.throttled_us,
        }
    }
}

impl From<&ContainerSample> for pb::ContainerSample {
    fn from(s: &ContainerSample) -> Self {
        Self {
            time_unix_nanos: s.time.as_nanos(),
            container: Some((&s.container).into()),
            cgroup_version: pb::CgroupVersion::from(s.cgroup_version) as i32,
            memory: Some(s.memory.into()),
            cpu: s.cpu.map(Into::into),
            pressure: Some(s.pressure.into()),
            pressure_scope: pb::PsiScope::from(s.pressure_scope) as i32,
            // Set per stream when the report is sent (`ship::refs`).
            ref_id: 0,
            stuck: s.stuck.iter().map(Into::into).collect(),
        }
    }
}

impl From<&NodeSample> for pb::NodeSample {
    fn from(n: &NodeSample) -> Self {
        Self {
            time_unix_nanos: n.time.as_nanos(),
            mem_total_bytes: n.mem_total_bytes,
            mem_available_bytes: n.mem_available_bytes,
            pressure: Some(n.pressure.into()),
        }
    }
}

impl From<PsiScope> for pb::PsiScope {
    fn from(s: PsiScope) -> Self {
        match s {
            PsiScope::Container => Self::Container,
            PsiScope::Node => Self::Node,
        }
    }
}

impl From<&Victim> for pb::Victim {
    fn from(v: &Victim) -> Self {
        Self {
            pid: v.pid,
            comm: v.comm.clone(),
            total_vm_bytes: v.total_vm_bytes,
            anon_rss_bytes: v.anon_rss_bytes,
            file_rss_bytes: v.file_rss_bytes,
            shmem_rss_bytes: v.shmem_rss_bytes,
            uid: v.uid,
            pgtables_bytes: v.pgtables_bytes,
            oom_score_adj: v.oom_score_adj,
        }
    }
}

impl From<&RecorderPoint> for pb::RecorderPoint {
    fn from(p: &RecorderPoint) -> Self {
        Self {
            time_unix_nanos: p.time.as_nanos(),
            usage_bytes: p.usage_bytes,
            anon_bytes: p.anon_bytes,
            file_bytes: p.file_bytes,
            shmem_bytes: p.shmem_bytes,
            memory_some_avg10: p.memory_some_avg10,
            memory_some_total_us: p.memory_some_total_us,
            memory_full_total_us: p.memory_full_total_us,
        }
    }
}

impl From<&OomKill> for pb::OomKill {
    fn from(k: &OomKill) -> Self {
        Self {
            time_unix_nanos: k.time.as_nanos(),
            detected_at_unix_nanos: k.detected_at.as_nanos(),
            detected_by: match k.detected_by {
                Detection::Notification => pb::Detection::Notification,
                Detection::Poll => pb::Detection::Poll,
                Detection::KernelReport => pb::Detection::KernelReport,
            } as i32,
            container: Some((&k.container).into()),
            cgroup_version: k
                .cgroup_version
                .map_or(pb::CgroupVersion::Unspecified, Into::into)
                as i32,
            limit_bytes: k.limit_bytes,
            peak_bytes: k.peak_bytes,
            oom_kill: k.oom_kill,
            oom_group_kill: k.oom_group_kill,
            constraint: match k.constraint {
                OomConstraint::Memcg => pb::OomConstraint::Memcg,
                OomConstraint::Node => pb::OomConstraint::Node,
                OomConstraint::Cpuset => pb::OomConstraint::Cpuset,
                OomConstraint::MemoryPolicy => pb::OomConstraint::MemoryPolicy,
                OomConstraint::Unknown => pb::OomConstraint::Unknown,
            } as i32,
            victim: k.victim.as_ref().map(Into::into),
            group: k.group.as_ref().map(|g| pb::OomGroup {
                cgroup_path: g.cgroup_path.clone(),
                members: g.members.iter().map(Into::into).collect(),
                member_count: g.member_count,
                skipped: g.skipped,
                kill_lines: g.kill_lines,
            }),
            trigger_comm: k.trigger_comm.clone(),
            kernel_usage_bytes: k.kernel_usage_bytes,
            kernel_limit_bytes: k.kernel_limit_bytes,
            window: k.window.iter().map(Into::into).collect(),
            pressure_scope: k
                .pressure_scope
                .map_or(pb::PsiScope::Unspecified, Into::into) as i32,
        }
    }
}

impl From<&SourceStatus> for pb::SourceStatus {
    fn from(s: &SourceStatus) -> Self {
        Self {
            source: s.source.clone(),
            state: match s.state {
                SourceState::Ok => pb::SourceState::Ok,
                SourceState::Degraded => pb::SourceState::Degraded,
                SourceState::Unavailable => pb::SourceState::Unavailable,
            } as i32,
            reason: s.reason.clone().unwrap_or_default(),
        }
    }
}

impl From<&GpuHolder> for pb::GpuHolder {
    fn from(h: &GpuHolder) -> Self {
        Self {
            namespace: h.namespace.clone(),
            pod: h.pod.clone(),
            container: h.container.clone(),
            resource_name: h.resource_name.clone(),
            device_id: h.device_id.clone(),
            replica: h.replica,
        }
    }
}

impl From<&GpuProcess> for pb::GpuProcess {
    fn from(p: &GpuProcess) -> Self {
        Self {
            pid: p.pid,
            used_memory_bytes: p.used_memory_bytes,
            sm_util_percent: p.sm_util_percent,
            mem_util_percent: p.mem_util_percent,
            container: p.container.as_ref().map(Into::into),
        }
    }
}

impl From<&GpuSample> for pb::GpuSample {
    fn from(g: &GpuSample) -> Self {
        Self {
            time_unix_nanos: g.time.as_nanos(),
            index: g.index,
            uuid: g.uuid.clone(),
            parent_uuid: g.parent_uuid.clone(),
            name: g.name.clone(),
            pci_bus_id: g.pci_bus_id.clone(),
            utilization_gpu_percent: g.utilization_gpu_percent,
            utilization_memory_percent: g.utilization_memory_percent,
            memory_total_bytes: g.memory_total_bytes,
            memory_used_bytes: g.memory_used_bytes,
            power_draw_watts: g.power_draw_watts,
            power_limit_watts: g.power_limit_watts,
            temperature_celsius: g.temperature_celsius,
            sm_clock_mhz: g.sm_clock_mhz,
            persistence_mode: g.persistence_mode,
            processes: g.processes.iter().map(Into::into).collect(),
            holders: g.holders.iter().map(Into::into).collect(),
            simulated: g.simulated,
            health: g.health.as_ref().map(Into::into),
        }
    }
}

impl From<&GpuHealth> for pb::GpuHealth {
    fn from(h: &GpuHealth) -> Self {
        Self {
            throttle_reasons: h.throttle_reasons.as_deref().map(ThrottleReason::mask),
            sm_clock_max_mhz: h.sm_clock_max_mhz,
            ecc_corrected_volatile: h.ecc_corrected_volatile,
            ecc_uncorrected_volatile: h.ecc_uncorrected_volatile,
            ecc_corrected_aggregate: h.ecc_corrected_aggregate,
            ecc_uncorrected_aggregate: h.ecc_uncorrected_aggregate,
            remapped_rows_corrected: h.remapped_rows_corrected,
            remapped_rows_uncorrected: h.remapped_rows_uncorrected,
            remap_pending: h.remap_pending,
            remap_failed: h.remap_failed,
            pcie_link_gen: h.pcie_link_gen,
            pcie_link_gen_max: h.pcie_link_gen_max,
            pcie_link_width: h.pcie_link_width,
            pcie_link_width_max: h.pcie_link_width_max,
            pcie_replays: h.pcie_replays,
            temperature_slowdown_celsius: h.temperature_slowdown_celsius,
            temperature_shutdown_celsius: h.temperature_shutdown_celsius,
            retired_pages_sbe: h.retired_pages_sbe,
            retired_pages_dbe: h.retired_pages_dbe,
            retired_pages_pending: h.retired_pages_pending,
            nvlinks: h.nvlinks.iter().map(Into::into).collect(),
        }
    }
}

impl From<&NvLinkStatus> for pb::NvLinkStatus {
    fn from(l: &NvLinkStatus) -> Self {
        Self {
            link: l.link,
            active: l.active,
            crc_flit_errors: l.crc_flit_errors,
            crc_data_errors: l.crc_data_errors,
            replay_errors: l.replay_errors,
            recovery_errors: l.recovery_errors,
        }
    }
}

impl From<pb::NvLinkStatus> for NvLinkStatus {
    fn from(l: pb::NvLinkStatus) -> Self {
        Self {
            link: l.link,
            active: l.active,
            crc_flit_errors: l.crc_flit_errors,
            crc_data_errors: l.crc_data_errors,
            replay_errors: l.replay_errors,
            recovery_errors: l.recovery_errors,
        }
    }
}

/// A health change's kind and details as the wire's `GpuHealthChange`
/// carries them (the other fields are the event's).
fn health_change_to_wire(c: GpuHealthChange) -> pb::GpuHealthChange {
    use pb::GpuHealthChangeKind as K;
    let mut m = pb::GpuHealthChange::default();
    let kind = match c {
        GpuHealthChange::NvlinkDown { link } => {
            m.nvlink = Some(link);
            K::NvlinkDown
        }
        GpuHealthChange::NvlinkUp { link } => {
            m.nvlink = Some(link);
            K::NvlinkUp
        }
        GpuHealthChange::RemapPending => K::RemapPending,
        GpuHealthChange::RemapFailed => K::RemapFailed,
        GpuHealthChange::ThrottleStarted { reason } => {
            m.throttle_reason = Some(ThrottleReason::mask(&[reason]));
            K::ThrottleStarted
        }
        GpuHealthChange::ThrottleCleared { reason } => {
            m.throttle_reason = Some(ThrottleReason::mask(&[reason]));
            K::ThrottleCleared
        }
        GpuHealthChange::EccUncorrectedRose { before, after } => {
            m.before = Some(before);
            m.after = Some(after);
            K::EccUncorrectedRose
        }
    };
    m.set_change(kind);
    m
}

/// The change a wire `GpuHealthChange` carries; `None` for a kind this
/// build does not know (a newer agent) or one missing its detail.
pub fn health_change_from_wire(m: &pb::GpuHealthChange) -> Option<GpuHealthChange> {
    use pb::GpuHealthChangeKind as K;
    let reason = || {
        ThrottleReason::from_mask(m.throttle_reason?)
            .first()
            .copied()
    };
    Some(match K::try_from(m.change).ok()? {
        K::Unspecified => return None,
        K::NvlinkDown => GpuHealthChange::NvlinkDown { link: m.nvlink? },
        K::NvlinkUp => GpuHealthChange::NvlinkUp { link: m.nvlink? },
        K::RemapPending => GpuHealthChange::RemapPending,
        K::RemapFailed => GpuHealthChange::RemapFailed,
        K::ThrottleStarted => GpuHealthChange::ThrottleStarted { reason: reason()? },
        K::ThrottleCleared => GpuHealthChange::ThrottleCleared { reason: reason()? },
        K::EccUncorrectedRose => GpuHealthChange::EccUncorrectedRose {
            before: m.before?,
            after: m.after?,
        },
    })
}

impl From<pb::GpuHealth> for GpuHealth {
    fn from(h: pb::GpuHealth) -> Self {
        Self {
            throttle_reasons: h.throttle_reasons.map(ThrottleReason::from_mask),
            sm_clock_max_mhz: h.sm_clock_max_mhz,
            ecc_corrected_volatile: h.ecc_corrected_volatile,
            ecc_uncorrected_volatile: h.ecc_uncorrected_volatile,
            ecc_corrected_aggregate: h.ecc_corrected_aggregate,
            ecc_uncorrected_aggregate: h.ecc_uncorrected_aggregate,
            remapped_rows_corrected: h.remapped_rows_corrected,
            remapped_rows_uncorrected: h.remapped_rows_uncorrected,
            remap_pending: h.remap_pending,
            remap_failed: h.remap_failed,
            pcie_link_gen: h.pcie_link_gen,
            pcie_link_gen_max: h.pcie_link_gen_max,
            pcie_link_width: h.pcie_link_width,
            pcie_link_width_max: h.pcie_link_width_max,
            pcie_replays: h.pcie_replays,
            temperature_slowdown_celsius: h.temperature_slowdown_celsius,
            temperature_shutdown_celsius: h.temperature_shutdown_celsius,
            retired_pages_sbe: h.retired_pages_sbe,
            retired_pages_dbe: h.retired_pages_dbe,
            retired_pages_pending: h.retired_pages_pending,
            nvlinks: h.nvlinks.into_iter().map(Into::into).collect(),
        }
    }
}

fn holders(h: &[GpuHolder]) -> Vec<pb::GpuHolder> {
    h.iter().map(Into::into).collect()
}

/// An event as the wire carries it, with its sequence number.
pub fn node_event(e: &Event, seq: u64) -> pb::NodeEvent {
    use pb::node_event::Kind;
    let (time, kind) = match e {
        Event::OomKill(k) => (k.time, Kind::OomKill(k.as_ref().into())),
        Event::KmsgOverrun { time, lost } => {
            (*time, Kind::KmsgOverrun(pb::KmsgOverrun { lost: *lost }))
        }
        Event::Xid {
            time,
            gpu_uuid,
            gpu_index,
            xid,
            count,
            holders: h,
            simulated,
            kernel,
        } => (
            *time,
            Kind::Xid(pb::Xid {
                gpu_uuid: gpu_uuid.clone(),
                gpu_index: *gpu_index,
                xid: *xid,
                count: *count,
                holders: holders(h),
                simulated: *simulated,
                kernel: kernel.as_ref().map(|k| pb::KernelXidLine {
                    pci_bus_id: k.pci_bus_id.clone(),
                    pid: k.pid,
                    process: k.process.clone(),
                    message: k.message.clone(),
                    before_agent_start: k.before_agent_start,
                    container: k.container.as_ref().map(Into::into),
                }),
            }),
        ),
        Event::GpuLost {
            time,
            gpu_index,
            gpu_uuid,
            holders: h,
            simulated,
        } => (
            *time,
            Kind::GpuLost(pb::GpuLost {
                gpu_index: *gpu_index,
                gpu_uuid: gpu_uuid.clone(),
                holders: holders(h),
                simulated: *simulated,
            }),
        ),
        Event::GpuCountChanged {
            time,
            before,
            after,
            simulated,
        } => (
            *time,
            Kind::GpuCountChanged(pb::GpuCountChanged {
                before: *before,
                after: *after,
                simulated: *simulated,
            }),
        ),
        Event::GpuHealthChange {
            time,
            gpu_uuid,
            gpu_index,
            change,
            holders: h,
            simulated,
        } => (
            *time,
            Kind::GpuHealthChange(pb::GpuHealthChange {
                gpu_uuid: gpu_uuid.clone(),
                gpu_index: *gpu_index,
                holders: holders(h),
                simulated: *simulated,
                ..health_change_to_wire(*change)
            }),
        ),
        Event::SwitchXid { time, line } => (
            *time,
            Kind::SwitchXid(pb::SwitchXid {
                switch_pci_bus_id: line.switch_pci_bus_id.clone(),
                device: line.device.clone(),
                sxid: line.sxid,
                severity: line.severity.clone(),
                message: line.message.clone(),
                before_agent_start: line.before_agent_start,
            }),
        ),
        Event::Source { time, status } => (*time, Kind::Source(status.into())),
    };
    pb::NodeEvent {
        seq,
        time_unix_nanos: time.as_nanos(),
        kind: Some(kind),
    }
}

// ---- From the wire back to domain types (the aggregator's clients). ----

fn ts(nanos: u64) -> Timestamp {
    Timestamp(nanos)
}

fn some_str(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl From<pb::ContainerRef> for ContainerRef {
    fn from(c: pb::ContainerRef) -> Self {
        Self {
            cgroup_path: c.cgroup_path,
            pod_uid: some_str(c.pod_uid),
            container_id: some_str(c.container_id),
            qos: match pb::QosClass::try_from(c.qos) {
                Ok(pb::QosClass::Guaranteed) => Some(QosClass::Guaranteed),
                Ok(pb::QosClass::Burstable) => Some(QosClass::Burstable),
                Ok(pb::QosClass::BestEffort) => Some(QosClass::BestEffort),
                _ => None,
            },
            runtime: match pb::ContainerRuntime::try_from(c.runtime) {
                Ok(pb::ContainerRuntime::Containerd) => Some(ContainerRuntime::Containerd),
                Ok(pb::ContainerRuntime::Crio) => Some(ContainerRuntime::CriO),
                Ok(pb::ContainerRuntime::Docker) => Some(ContainerRuntime::Docker),
                Ok(pb::ContainerRuntime::Unknown) => Some(ContainerRuntime::Unknown),
                _ => None,
            },
            driver: match pb::CgroupDriver::try_from(c.driver) {
                Ok(pb::CgroupDriver::Cgroupfs) => Some(CgroupDriver::Cgroupfs),
                Ok(pb::CgroupDriver::Systemd) => Some(CgroupDriver::Systemd),
                _ => None,
            },
        }
    }
}

fn version(v: i32) -> Option<CgroupVersion> {
    match pb::CgroupVersion::try_from(v) {
        Ok(pb::CgroupVersion::V1) => Some(CgroupVersion::V1),
        Ok(pb::CgroupVersion::V2) => Some(CgroupVersion::V2),
        _ => None,
    }
}

fn scope(v: i32) -> Option<PsiScope> {
    match pb::PsiScope::try_from(v) {
        Ok(pb::PsiScope::Container) => Some(PsiScope::Container),
        Ok(pb::PsiScope::Node) => Some(PsiScope::Node),
        _ => None,
    }
}

impl From<pb::PsiLine> for PsiLine {
    fn from(l: pb::PsiLine) -> Self {
        Self {
            avg10: l.avg10,
            avg60: l.avg60,
            avg300: l.avg300,
            total_us: l.total_us,
        }
    }
}

impl From<pb::Psi> for Psi {
    fn from(p: pb::Psi) -> Self {
        Self {
            some: p.some.map(Into::into).unwrap_or_default(),
            full: p.full.map(Into::into),
        }
    }
}

impl From<pb::Pressure> for Pressure {
    fn from(p: pb::Pressure) -> Self {
        Self {
            memory: p.memory.map(Into::into),
            cpu: p.cpu.map(Into::into),
            io: p.io.map(Into::into),
        }
    }
}

impl From<pb::MemoryEvents> for MemoryEvents {
    fn from(e: pb::MemoryEvents) -> Self {
        Self {
            oom: e.oom,
            oom_kill: e.oom_kill,
            oom_group_kill: e.oom_group_kill,
            max: e.max,
            high: e.high,
            under_oom: e.under_oom,
            failcnt: e.failcnt,
        }
    }
}

impl From<pb::MemoryStats> for MemoryStats {
    fn from(m: pb::MemoryStats) -> Self {
        Self {
            usage_bytes: m.usage_bytes,
            limit_bytes: m.limit_bytes,
            peak_bytes: m.peak_bytes,
            anon_bytes: m.anon_bytes,
            file_bytes: m.file_bytes,
            shmem_bytes: m.shmem_bytes,
            events: m.events.map(Into::into).unwrap_or_default(),
            reclaim: m
                .reclaim
                .map(|r| Reclaim {
                    pgmajfault: r.pgmajfault,
                    workingset_refault_anon: r.workingset_refault_anon,
                    workingset_refault_file: r.workingset_refault_file,
                })
                .unwrap_or_default(),
        }
    }
}

impl From<pb::ContainerSample> for ContainerSample {
    fn from(s: pb::ContainerSample) -> Self {
        Self {
            time: ts(s.time_unix_nanos),
            container: s.container.map(Into::into).unwrap_or_default(),
            cgroup_version: version(s.cgroup_version).unwrap_or(CgroupVersion::V2),
            memory: s.memory.map(Into::into).unwrap_or_default(),
            cpu: s.cpu.map(|c| CpuStats {
                usage_us: c.usage_us,
                nr_throttled: c.nr_throttled,
                throttled_us: c.throttled_us,
            }),
            pressure: s.pressure.map(Into::into).unwrap_or_default(),
            pressure_scope: scope(s.pressure_scope).unwrap_or(PsiScope::Node),
            stuck: s.stuck.into_iter().map(Into::into).collect(),
        }
    }
}

/// A node sample from the wire as the domain type. The wire sample leaves
/// the node's identity to the stream's Hello, so it is passed in.
pub fn node_sample_from_wire(s: pb::NodeSample, identity: &pb::NodeIdentity) -> NodeSample {
    NodeSample {
        time: ts(s.time_unix_nanos),
        boot_id: identity.boot_id.clone(),
        kernel_release: identity.kernel_release.clone(),
        cgroup_mode: match pb::CgroupMode::try_from(identity.cgroup_mode) {
            Ok(pb::CgroupMode::V1) => Some(CgroupMode::V1),
            Ok(pb::CgroupMode::V2) => Some(CgroupMode::V2),
            Ok(pb::CgroupMode::Hybrid) => Some(CgroupMode::Hybrid),
            _ => None,
        },
        mem_total_bytes: s.mem_total_bytes,
        mem_available_bytes: s.mem_available_bytes,
        pressure: s.pressure.map(Into::into).unwrap_or_default(),
    }
}

impl From<pb::GpuHolder> for GpuHolder {
    fn from(h: pb::GpuHolder) -> Self {
        Self {
            namespace: h.namespace,
            pod: h.pod,
            container: h.container,
            resource_name: h.resource_name,
            device_id: h.device_id,
            replica: h.replica,
        }
    }
}

impl From<pb::GpuSample> for GpuSample {
    fn from(g: pb::GpuSample) -> Self {
        Self {
            time: ts(g.time_unix_nanos),
            index: g.index,
            uuid: g.uuid,
            parent_uuid: g.parent_uuid,
            name: g.name,
            pci_bus_id: g.pci_bus_id,
            utilization_gpu_percent: g.utilization_gpu_percent,
            utilization_memory_percent: g.utilization_memory_percent,
            memory_total_bytes: g.memory_total_bytes,
            memory_used_bytes: g.memory_used_bytes,
            power_draw_watts: g.power_draw_watts,
            power_limit_watts: g.power_limit_watts,
            temperature_celsius: g.temperature_celsius,
            sm_clock_mhz: g.sm_clock_mhz,
            persistence_mode: g.persistence_mode,
            processes: g
                .processes
                .into_iter()
                .map(|p| GpuProcess {
                    pid: p.pid,
                    used_memory_bytes: p.used_memory_bytes,
                    sm_util_percent: p.sm_util_percent,
                    mem_util_percent: p.mem_util_percent,
                    container: p.container.map(Into::into),
                })
                .collect(),
            holders: g.holders.into_iter().map(Into::into).collect(),
            simulated: g.simulated,
            health: g.health.map(Into::into),
        }
    }
}

impl From<pb::Victim> for Victim {
    fn from(v: pb::Victim) -> Self {
        Self {
            pid: v.pid,
            comm: v.comm,
            total_vm_bytes: v.total_vm_bytes,
            anon_rss_bytes: v.anon_rss_bytes,
            file_rss_bytes: v.file_rss_bytes,
            shmem_rss_bytes: v.shmem_rss_bytes,
            uid: v.uid,
            pgtables_bytes: v.pgtables_bytes,
            oom_score_adj: v.oom_score_adj,
        }
    }
}

impl From<pb::OomKill> for OomKill {
    fn from(k: pb::OomKill) -> Self {
        Self {
            time: ts(k.time_unix_nanos),
            detected_at: ts(k.detected_at_unix_nanos),
            detected_by: match pb::Detection::try_from(k.detected_by) {
                Ok(pb::Detection::Notification) => Detection::Notification,
                Ok(pb::Detection::Poll) => Detection::Poll,
                _ => Detection::KernelReport,
            },
            container: k.container.map(Into::into).unwrap_or_default(),
            cgroup_version: version(k.cgroup_version),
            limit_bytes: k.limit_bytes,
            peak_bytes: k.peak_bytes,
            oom_kill: k.oom_kill,
            oom_group_kill: k.oom_group_kill,
            constraint: match pb::OomConstraint::try_from(k.constraint) {
                Ok(pb::OomConstraint::Memcg) => OomConstraint::Memcg,
                Ok(pb::OomConstraint::Node) => OomConstraint::Node,
                Ok(pb::OomConstraint::Cpuset) => OomConstraint::Cpuset,
                Ok(pb::OomConstraint::MemoryPolicy) => OomConstraint::MemoryPolicy,
                _ => OomConstraint::Unknown,
            },
            victim: k.victim.map(Into::into),
            group: k.group.map(|g| OomGroup {
                cgroup_path: g.cgroup_path,
                members: g.members.into_iter().map(Into::into).collect(),
                member_count: g.member_count,
                skipped: g.skipped,
                kill_lines: g.kill_lines,
            }),
            trigger_comm: k.trigger_comm,
            kernel_usage_bytes: k.kernel_usage_bytes,
            kernel_limit_bytes: k.kernel_limit_bytes,
            window: k
                .window
                .into_iter()
                .map(|p| RecorderPoint {
                    time: ts(p.time_unix_nanos),
                    usage_bytes: p.usage_bytes,
                    anon_bytes: p.anon_bytes,
                    file_bytes: p.file_bytes,
                    shmem_bytes: p.shmem_bytes,
                    memory_some_avg10: p.memory_some_avg10,
                    memory_some_total_us: p.memory_some_total_us,
                    memory_full_total_us: p.memory_full_total_us,
                })
                .collect(),
            pressure_scope: scope(k.pressure_scope),
        }
    }
}

/// An event from the wire as the domain type (`None` for an event kind
/// this build does not know: a newer agent).
pub fn event_from_wire(e: pb::NodeEvent) -> Option<Event> {
    use pb::node_event::Kind;
    let time = ts(e.time_unix_nanos);
    let holders = |h: Vec<pb::GpuHolder>| h.into_iter().map(Into::into).collect();
    Some(match e.kind? {
        Kind::OomKill(k) => Event::OomKill(Box::new(k.into())),
        Kind::KmsgOverrun(o) => Event::KmsgOverrun { time, lost: o.lost },
        Kind::Source(s) => Event::Source {
            time,
            status: SourceStatus {
                state: match pb::SourceState::try_from(s.state) {
                    Ok(pb::SourceState::Ok) => SourceState::Ok,
                    Ok(pb::SourceState::Degraded) => SourceState::Degraded,
                    _ => SourceState::Unavailable,
                },
                source: s.source,
                reason: some_str(s.reason),
            },
        },
        Kind::Xid(x) => Event::Xid {
            time,
            gpu_uuid: x.gpu_uuid,
            gpu_index: x.gpu_index,
            xid: x.xid,
            count: x.count,
            holders: holders(x.holders),
            simulated: x.simulated,
            kernel: x.kernel.map(|k| KernelXidLine {
                pci_bus_id: k.pci_bus_id,
                pid: k.pid,
                process: k.process,
                message: k.message,
                before_agent_start: k.before_agent_start,
                container: k.container.map(Into::into),
            }),
        },
        Kind::GpuLost(l) => Event::GpuLost {
            time,
            gpu_index: l.gpu_index,
            gpu_uuid: l.gpu_uuid,
            holders: holders(l.holders),
            simulated: l.simulated,
        },
        Kind::GpuCountChanged(c) => Event::GpuCountChanged {
            time,
            before: c.before,
            after: c.after,
            simulated: c.simulated,
        },
        Kind::SwitchXid(x) => Event::SwitchXid {
            time,
            line: SwitchXidLine {
                switch_pci_bus_id: x.switch_pci_bus_id,
                device: x.device,
                sxid: x.sxid,
                severity: x.severity,
                message: x.message,
                before_agent_start: x.before_agent_start,
            },
        },
        Kind::GpuHealthChange(c) => Event::GpuHealthChange {
            time,
            change: health_change_from_wire(&c)?,
            gpu_uuid: c.gpu_uuid,
            gpu_index: c.gpu_index,
            holders: holders(c.holders),
            simulated: c.simulated,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use prost::Message;

    #[test]
    fn oom_kill_round_trips_through_protobuf() {
        let kill = crate::testing::group_kill();
        let wire = pb::OomKill::from(&kill);
        let decoded = pb::OomKill::decode(wire.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(decoded, wire);
        let c = decoded.container.clone().expect("container");
        assert_eq!(c.pod_uid, "0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11");
        assert_eq!(c.qos(), pb::QosClass::Burstable);
        assert_eq!(
            decoded.victim.as_ref().map(|v| v.anon_rss_bytes),
            Some(66_715_648)
        );
        assert_eq!(decoded.constraint(), pb::OomConstraint::Memcg);
        assert_eq!(decoded.window.len(), 1);
        let g = decoded.group.as_ref().expect("group");
        assert_eq!((g.member_count, g.kill_lines), (1, 3));
        assert_eq!(g.members[0].comm, "pt_data_worker");
        assert_eq!(
            decoded.victim.as_ref().and_then(|v| v.oom_score_adj),
            Some(-997)
        );
        assert_eq!(
            OomKill::from(decoded),
            kill,
            "domain -> wire -> domain is lossless"
        );
    }

    #[test]
    fn stuck_tasks_and_reclaim_round_trip_and_an_old_sample_has_none() {
        let sample = ContainerSample {
            time: Timestamp(1_764_150_000_000_000_000),
            container: ContainerRef {
                cgroup_path: "/kubepods/burstable/podx/abc".into(),
                ..ContainerRef::default()
            },
            cgroup_version: CgroupVersion::V2,
            memory: MemoryStats {
                usage_bytes: 1 << 30,
                reclaim: Reclaim {
                    pgmajfault: Some(1200),
                    workingset_refault_anon: Some(0),
                    workingset_refault_file: Some(98_000),
                },
                ..MemoryStats::default()
            },
            cpu: None,
            pressure: Pressure::default(),
            pressure_scope: PsiScope::Container,
            stuck: vec![StuckTask {
                pid: 4242,
                comm: "python3".into(),
                since: Timestamp(1_764_149_160_000_000_000),
                wchan: "rpc_wait_bit_killable".into(),
                wait: WaitKind::Nfs,
                stack: vec!["rpc_wait_bit_killable+0x1e/0xa0 [sunrpc]".into()],
                file: "/data/shard-0042.tar".into(),
                fstype: "nfs4".into(),
            }],
        };
        let wire = pb::ContainerSample::from(&sample);
        assert_eq!(wire.stuck[0].wait(), pb::WaitKind::Nfs);
        let back = pb::ContainerSample::decode(wire.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(ContainerSample::from(back), sample, "lossless");

        // A sample from an agent without the fields: no counters, none stuck.
        let mut old = pb::ContainerSample::from(&sample);
        old.stuck.clear();
        old.memory.as_mut().expect("memory").reclaim = None;
        let back = ContainerSample::from(old);
        assert!(back.stuck.is_empty());
        assert_eq!(back.memory.reclaim, Reclaim::default());
        assert_eq!(back.memory.reclaim.refaults(), None);
        // The JSON of a sample without them does not name them.
        let json = serde_json::to_string(&back).expect("json");
        assert!(
            !json.contains("stuck") && !json.contains("reclaim"),
            "{json}"
        );
    }

    #[test]
    fn gpu_events_round_trip() {
        let e = Event::Xid {
            time: Timestamp(1_764_150_000_000_000_000),
            gpu_uuid: "GPU-1".into(),
            gpu_index: Some(3),
            xid: 79,
            count: 2,
            holders: vec![GpuHolder {
                namespace: "ml".into(),
                pod: "trainer-0".into(),
                container: "main".into(),
                resource_name: "nvidia.com/gpu".into(),
                device_id: "GPU-1::1".into(),
                replica: Some(1),
            }],
            simulated: true,
            kernel: Some(KernelXidLine {
                pci_bus_id: "0000:3b:00".into(),
                pid: Some(4242),
                process: Some("python3".into()),
                message: "GPU has fallen off the bus.".into(),
                before_agent_start: true,
                container: Some(crate::ContainerRef {
                    cgroup_path: "/kubepods/pod1/abc".into(),
                    pod_uid: Some("1".into()),
                    container_id: Some("abc".into()),
                    ..crate::ContainerRef::default()
                }),
            }),
        };
        let wire = node_event(&e, 42);
        assert_eq!(wire.seq, 42);
        let back = pb::NodeEvent::decode(wire.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(event_from_wire(back), Some(e));
    }

    #[test]
    fn gpu_health_round_trips_and_an_old_sample_has_none() {
        let health = GpuHealth {
            throttle_reasons: Some(vec![
                ThrottleReason::HwSlowdown,
                ThrottleReason::HwPowerBrake,
            ]),
            sm_clock_max_mhz: Some(1980),
            ecc_uncorrected_volatile: Some(2),
            remap_pending: Some(true),
            pcie_link_width: Some(8),
            pcie_link_width_max: Some(16),
            ..GpuHealth::default()
        };
        let wire = pb::GpuHealth::from(&health);
        assert_eq!(wire.throttle_reasons, Some(0x8 | 0x80), "NVML's bits");
        let sample = pb::GpuSample {
            health: Some(wire),
            ..pb::GpuSample::default()
        };
        let back = pb::GpuSample::decode(sample.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(GpuSample::from(back).health, Some(health));
        // A sample from an agent without health counters: none, not zeros.
        let old = pb::GpuSample::decode(pb::GpuSample::default().encode_to_vec().as_slice())
            .expect("decode");
        assert_eq!(GpuSample::from(old).health, None);
        // Not held is an empty list, distinct from "not supported".
        let idle = pb::GpuHealth {
            throttle_reasons: Some(0),
            ..pb::GpuHealth::default()
        };
        assert_eq!(GpuHealth::from(idle).throttle_reasons, Some(vec![]));
    }

    #[test]
    fn nvlinks_and_health_changes_round_trip() {
        let health = GpuHealth {
            nvlinks: vec![
                NvLinkStatus {
                    link: 0,
                    active: true,
                    crc_flit_errors: Some(7),
                    replay_errors: Some(1),
                    ..NvLinkStatus::default()
                },
                NvLinkStatus {
                    link: 1,
                    active: false,
                    ..NvLinkStatus::default()
                },
            ],
            ..GpuHealth::default()
        };
        let wire = pb::GpuHealth::from(&health);
        let back = pb::GpuHealth::decode(wire.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(GpuHealth::from(back), health);
        let changes = [
            GpuHealthChange::NvlinkDown { link: 5 },
            GpuHealthChange::NvlinkUp { link: 0 },
            GpuHealthChange::RemapPending,
            GpuHealthChange::RemapFailed,
            GpuHealthChange::ThrottleStarted {
                reason: ThrottleReason::HwPowerBrake,
            },
            GpuHealthChange::ThrottleCleared {
                reason: ThrottleReason::SwThermal,
            },
            GpuHealthChange::EccUncorrectedRose {
                before: 0,
                after: 2,
            },
        ];
        for change in changes {
            let e = Event::GpuHealthChange {
                time: Timestamp(1_764_150_000_000_000_000),
                gpu_uuid: "GPU-1".into(),
                gpu_index: Some(2),
                change,
                holders: Vec::new(),
                simulated: false,
            };
            let back = pb::NodeEvent::decode(node_event(&e, 7).encode_to_vec().as_slice())
                .expect("decode");
            assert_eq!(event_from_wire(back), Some(e.clone()), "{change:?}");
            let json = serde_json::to_string(&e).expect("json");
            let again: Event = serde_json::from_str(&json).expect(&json);
            assert_eq!(again, e, "{json}");
        }
        let sxid = Event::SwitchXid {
            time: Timestamp(1_764_150_000_000_000_000),
            line: SwitchXidLine {
                switch_pci_bus_id: "0000:04:00.0".into(),
                device: "nvidia-nvswitch3".into(),
                sxid: 22013,
                severity: Some("Non-fatal".into()),
                message: "Link 44 Minion Link DLREQ interrupt".into(),
                before_agent_start: false,
            },
        };
        let back =
            pb::NodeEvent::decode(node_event(&sxid, 8).encode_to_vec().as_slice()).expect("decode");
        assert_eq!(event_from_wire(back), Some(sxid.clone()));
        let json = serde_json::to_string(&sxid).expect("json");
        assert_eq!(serde_json::from_str::<Event>(&json).expect(&json), sxid);
        // A kind this build does not know (a newer agent): skipped, not
        // misread.
        let unknown = pb::NodeEvent {
            seq: 1,
            time_unix_nanos: 1,
            kind: Some(pb::node_event::Kind::GpuHealthChange(pb::GpuHealthChange {
                change: 99,
                ..pb::GpuHealthChange::default()
            })),
        };
        assert_eq!(event_from_wire(unknown), None);
    }

    #[test]
    fn health_changes_between_two_readings() {
        let link = |link, active| NvLinkStatus {
            link,
            active,
            replay_errors: Some(3),
            ..NvLinkStatus::default()
        };
        let before = GpuHealth {
            throttle_reasons: Some(vec![ThrottleReason::SwPowerCap, ThrottleReason::HwThermal]),
            ecc_uncorrected_volatile: Some(0),
            remap_pending: Some(false),
            remap_failed: Some(false),
            nvlinks: vec![link(0, true), link(1, true), link(2, false)],
            ..GpuHealth::default()
        };
        assert_eq!(GpuHealthChange::between(&before, &before), vec![]);
        let now = GpuHealth {
            // Throttle reasons are the agent's to settle: not compared.
            throttle_reasons: Some(vec![ThrottleReason::Idle, ThrottleReason::HwPowerBrake]),
            ecc_uncorrected_volatile: Some(1),
            remap_pending: Some(true),
            remap_failed: Some(false),
            nvlinks: vec![link(0, true), link(1, false), link(2, true)],
            ..GpuHealth::default()
        };
        assert_eq!(
            GpuHealthChange::between(&before, &now),
            vec![
                GpuHealthChange::NvlinkDown { link: 1 },
                GpuHealthChange::NvlinkUp { link: 2 },
                GpuHealthChange::RemapPending,
                GpuHealthChange::EccUncorrectedRose {
                    before: 0,
                    after: 1
                },
            ]
        );
        // A first reading, or counters not read: nothing to compare.
        assert_eq!(
            GpuHealthChange::between(&GpuHealth::default(), &now),
            vec![]
        );
    }
}
