//! cgroup v2 container reads (`memory.current`, `memory.events`, ...).

use std::path::Path;

use super::{CgroupError, CgroupLayout, Files, Raw, read_pressure};
use crate::collect::parse::{
    parse_cpu_stat, parse_memory_events, parse_memory_stat, parse_single_u64, parse_u64_or_max,
};
use gpuscope_model::{CgroupVersion, CpuStats, MemoryEvents, MemoryStats, Pressure, PsiScope};

/// Reads one v2 cgroup; `Ok(None)` when it is gone.
///
/// Optional files (`memory.peak`, the pressure files) are read before the
/// last required ones, so a cgroup removed mid-read is still seen as gone
/// rather than as a cgroup without those files.
pub(crate) fn read(
    layout: &CgroupLayout,
    files: &mut Files,
    path: &str,
    node_psi: &Pressure,
) -> Result<Option<Raw>, CgroupError> {
    let root = &layout.memory_root;
    let mut memory = MemoryStats::default();
    let Some(usage) = files.read(root, path, "memory.current", parse_single_u64)? else {
        return Ok(None);
    };
    let Some(limit) = files.read(root, path, "memory.max", parse_u64_or_max)? else {
        return Ok(None);
    };
    memory.usage_bytes = usage;
    memory.limit_bytes = limit;
    // memory.peak exists since 5.19.
    memory.peak_bytes = files.read(root, path, "memory.peak", parse_single_u64)?;
    let own = read_pressure(files, root, path)?;
    // No memory.pressure: a kernel booted with psi=0 or without CONFIG_PSI.
    let (pressure, pressure_scope) = if own.memory.is_some() {
        (own, PsiScope::Container)
    } else {
        (*node_psi, PsiScope::Node)
    };
    let Some(cpu) = files.read(root, path, "cpu.stat", |t| {
        let mut c = CpuStats::default();
        parse_cpu_stat(t, &mut c).map(|()| c)
    })?
    else {
        return Ok(None);
    };
    let Some(()) = files.read(root, path, "memory.stat", |t| {
        parse_memory_stat(t, CgroupVersion::V2, &mut memory)
    })?
    else {
        return Ok(None);
    };
    let Some(events) = read_events(root, files, path)? else {
        return Ok(None);
    };
    memory.events = events;
    Ok(Some(Raw {
        memory,
        cpu: Some(cpu),
        pressure,
        pressure_scope,
    }))
}

/// `memory.events`; `Ok(None)` when the cgroup is gone.
pub(crate) fn read_events(
    root: &Path,
    files: &mut Files,
    path: &str,
) -> Result<Option<MemoryEvents>, CgroupError> {
    files.read(root, path, "memory.events", |t| {
        let mut ev = MemoryEvents::default();
        parse_memory_events(t, &mut ev).map(|()| ev)
    })
}

/// Whether the kernel may kill a whole group after choosing a victim in
/// `task_memcg`: `Some(false)` when `memory.oom.group` reads 0 in the
/// victim's cgroup and in each ancestor up to the OOM domain `oom_memcg`
/// (the cgroup whose limit was hit; `None`: the whole machine), `Some(true)`
/// when one of them reads 1, `None` when a file could not be read (the
/// caller cannot tell, and must assume a group kill may follow).
///
/// The kernel's `mem_cgroup_get_oom_group()` walks the same way: from the
/// victim's memory cgroup up to the OOM domain, the highest one with
/// `memory.oom.group` set is killed whole. Paths are as the kernel prints
/// them (relative to the hierarchy's root, leading `/`).
pub fn oom_group_set(
    memory_root: &Path,
    task_memcg: &str,
    oom_memcg: Option<&str>,
) -> Option<bool> {
    let domain = oom_memcg.unwrap_or("/").trim_end_matches('/');
    let mut path = task_memcg.trim_end_matches('/');
    // The root cgroup has no memory.oom.group and is never killed whole.
    while !path.is_empty() {
        let file = memory_root
            .join(path.trim_start_matches('/'))
            .join("memory.oom.group");
        match std::fs::read(&file).ok().as_deref().map(<[u8]>::trim_ascii) {
            Some(b"0") => {}
            Some(b"1") => return Some(true),
            _ => return None,
        }
        if path == domain {
            break;
        }
        path = &path[..path.rfind('/')?];
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::oom_group_set;

    /// A cgroup tree on disk: `(path, memory.oom.group contents)`.
    fn tree(dirs: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for (path, group) in dirs {
            let dir = root.path().join(path);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("memory.oom.group"), group).expect("write");
        }
        root
    }

    const POD: &str = "/kubepods.slice/kubepods-pod1.slice";
    const CONTAINER: &str = "/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope";

    #[test]
    fn no_group_between_the_victim_and_the_domain() {
        let t = tree(&[
            ("kubepods.slice", "0\n"),
            ("kubepods.slice/kubepods-pod1.slice", "0\n"),
            (
                "kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope",
                "0\n",
            ),
        ]);
        assert_eq!(
            oom_group_set(t.path(), CONTAINER, Some(CONTAINER)),
            Some(false)
        );
        assert_eq!(oom_group_set(t.path(), CONTAINER, Some(POD)), Some(false));
        // A machine-wide OOM walks up to the root.
        assert_eq!(oom_group_set(t.path(), CONTAINER, None), Some(false));
    }

    #[test]
    fn a_group_on_the_way_up_counts_only_inside_the_domain() {
        let t = tree(&[
            ("kubepods.slice", "1\n"),
            ("kubepods.slice/kubepods-pod1.slice", "0\n"),
            (
                "kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope",
                "0\n",
            ),
        ]);
        // The limit hit was the pod's: kubepods.slice is outside the domain.
        assert_eq!(oom_group_set(t.path(), CONTAINER, Some(POD)), Some(false));
        assert_eq!(oom_group_set(t.path(), CONTAINER, None), Some(true));
        let t = tree(&[(
            "kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope",
            "1\n",
        )]);
        assert_eq!(
            oom_group_set(t.path(), CONTAINER, Some(CONTAINER)),
            Some(true)
        );
    }

    #[test]
    fn an_unreadable_file_cannot_tell() {
        let t = tree(&[("kubepods.slice/kubepods-pod1.slice", "0\n")]);
        // The container's own cgroup is gone (or never had the file).
        assert_eq!(oom_group_set(t.path(), CONTAINER, Some(POD)), None);
        let t = tree(&[(
            "kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope",
            "x\n",
        )]);
        assert_eq!(oom_group_set(t.path(), CONTAINER, Some(CONTAINER)), None);
    }
}
