//! Values the unit tests of several modules share.

use crate::{
    CgroupDriver, CgroupVersion, ContainerRef, ContainerRuntime, Detection, OomConstraint,
    OomGroup, OomKill, PsiScope, QosClass, RecorderPoint, Timestamp, Victim,
};

/// A memory.oom.group kill: python3 chosen, one DataLoader worker with it.
pub(crate) fn group_kill() -> OomKill {
    OomKill {
        time: Timestamp(1_764_150_000_123_000_000),
        detected_at: Timestamp(1_764_150_000_124_000_000),
        detected_by: Detection::Notification,
        container: ContainerRef {
            cgroup_path: "/kubepods/burstable/podx/abc".into(),
            pod_uid: Some("0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11".into()),
            container_id: Some("abc".into()),
            qos: Some(QosClass::Burstable),
            runtime: Some(ContainerRuntime::Unknown),
            driver: Some(CgroupDriver::Cgroupfs),
        },
        cgroup_version: Some(CgroupVersion::V1),
        limit_bytes: Some(67_108_864),
        peak_bytes: None,
        oom_kill: Some(1),
        oom_group_kill: None,
        constraint: OomConstraint::Memcg,
        victim: Some(Victim {
            pid: 8048,
            comm: "python3".into(),
            anon_rss_bytes: 65_152 * 1024,
            oom_score_adj: Some(-997),
            ..Victim::default()
        }),
        group: Some(OomGroup {
            cgroup_path: "/kubepods/burstable/podx/abc".into(),
            members: vec![Victim {
                pid: 8051,
                comm: "pt_data_worker".into(),
                shmem_rss_bytes: 4096,
                ..Victim::default()
            }],
            member_count: 1,
            skipped: 0,
            kill_lines: 3,
        }),
        trigger_comm: Some("python3".into()),
        kernel_usage_bytes: Some(67_108_864),
        kernel_limit_bytes: Some(67_108_864),
        window: vec![RecorderPoint {
            usage_bytes: 1 << 20,
            ..RecorderPoint::default()
        }],
        pressure_scope: Some(PsiScope::Container),
    }
}
