//! Which container a GPU process belongs to: `/proc/<pid>/cgroup` (the
//! DaemonSet runs in the host's PID namespace) parsed with the same
//! kubelet path rules as the cgroup collector.

use std::path::Path;

use crate::collect::cgroup::path::container_for;
use gpuscope_model::{CgroupVersion, ContainerRef};

/// The memory cgroup of `pid` under `proc_root`, as a [`ContainerRef`]
/// (`None`: the process is gone, or its cgroup file has no memory line).
///
/// `version` selects the line: the `memory` controller's line on cgroup v1
/// (hybrid hosts too, matching the paths the cgroup collector reports),
/// the `0::` line on cgroup v2.
pub fn container_of_pid(
    proc_root: &Path,
    pid: u32,
    version: CgroupVersion,
) -> Option<ContainerRef> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    memory_cgroup_path(&text, version).map(container_for)
}

/// The memory cgroup path in the text of a `/proc/<pid>/cgroup` file.
pub fn memory_cgroup_path(text: &str, version: CgroupVersion) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match version {
            CgroupVersion::V2 => controllers.is_empty(),
            CgroupVersion::V1 => controllers.split(',').any(|c| c == "memory"),
        };
        wanted.then_some(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "12:pids:/kubepods/burstable/pod0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11/aa\n\
        5:memory:/kubepods/burstable/pod0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11/3f9a1c0d2e4b5a6978c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3\n\
        4:cpu,cpuacct:/kubepods/burstable/pod0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11/aa\n\
        0::/kubepods/burstable/pod0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11/3f9a1c0d2e4b5a6978c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3\n";

    #[test]
    fn picks_the_memory_line_on_v1_and_the_unified_line_on_v2() {
        let v1 = memory_cgroup_path(HYBRID, CgroupVersion::V1).expect("v1");
        assert!(v1.starts_with("/kubepods/burstable/pod0f8c3b52"));
        assert!(v1.ends_with("e1f2a3"));
        let v2 = memory_cgroup_path(HYBRID, CgroupVersion::V2).expect("v2");
        assert!(v2.ends_with("e1f2a3"));
        let c = container_for(v1);
        assert_eq!(
            c.pod_uid.as_deref(),
            Some("0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11")
        );
    }

    #[test]
    fn systemd_v2_process() {
        let text = "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f8c3b52_6a0e_4d8e_9d39_2b1f3c6a7e11.slice/cri-containerd-3f9a1c0d2e4b5a6978c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3.scope\n";
        let c = container_for(memory_cgroup_path(text, CgroupVersion::V2).expect("path"));
        assert_eq!(
            c.container_id.as_deref(),
            Some("3f9a1c0d2e4b5a6978c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3")
        );
    }

    #[test]
    fn gone_process_and_garbage_are_none() {
        assert!(container_of_pid(Path::new("/proc"), u32::MAX, CgroupVersion::V1).is_none());
        assert!(memory_cgroup_path("garbage\n\n::", CgroupVersion::V1).is_none());
    }

    #[test]
    fn this_process_is_found() {
        // Every process has a cgroup line for the unified hierarchy.
        let text = std::fs::read_to_string("/proc/self/cgroup").expect("read");
        assert!(
            memory_cgroup_path(&text, CgroupVersion::V2).is_some(),
            "{text}"
        );
    }
}
