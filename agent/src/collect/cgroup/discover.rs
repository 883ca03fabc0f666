//! Finding the cgroup hierarchies and the container cgroups in them.
//!
//! Detection looks at files, not at `/proc/mounts`, so it works on a
//! fixture tree in a tempdir and under a host root mounted elsewhere
//! (`/host/sys/fs/cgroup`).

use std::io;
use std::path::{Path, PathBuf};

use super::path::{Level, is_pod_dir_name, parse};
use super::{CgroupError, is_vanished};
use gpuscope_model::{CgroupMode, CgroupVersion, ContainerRef};

/// Where the hierarchies the agent reads are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLayout {
    /// How the host mounts cgroups.
    pub mode: CgroupMode,
    /// The v1 memory hierarchy's mount, or the v2 root.
    pub memory_root: PathBuf,
    /// Version of the memory files.
    pub memory_version: CgroupVersion,
    /// The cgroup2 mount that carries per-cgroup pressure files: the
    /// `unified` mount on a hybrid host, the root itself on v2, `None` on a
    /// pure v1 host.
    pub unified_root: Option<PathBuf>,
    /// The v1 cpuacct hierarchy (`cpuacct`, `cpu,cpuacct` or `cpuacct,cpu`);
    /// on v2 the same as `memory_root`. `None` when no cpuacct hierarchy is
    /// mounted.
    pub cpu_root: Option<PathBuf>,
}

/// One container cgroup found by [`discover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// Identity; `cgroup_path` is relative to the memory root and starts
    /// with `/`.
    pub container: ContainerRef,
}

/// Works out the layout under `cgroup_root` (normally `/sys/fs/cgroup`).
///
/// - `cgroup.controllers` at the root listing `memory`: cgroup v2.
/// - `memory/memory.limit_in_bytes`: the v1 memory controller; with
///   `unified/cgroup.controllers` as well, a hybrid host.
///
/// Anything else (a v2 root without the memory controller, no memory
/// hierarchy at all) is a [`CgroupError::Layout`].
pub fn detect_layout(cgroup_root: &Path) -> Result<CgroupLayout, CgroupError> {
    let layout_err = |reason: String| CgroupError::Layout {
        root: cgroup_root.to_path_buf(),
        reason,
    };
    let controllers = cgroup_root.join("cgroup.controllers");
    match std::fs::read(&controllers) {
        Ok(text) => {
            let has_memory = text
                .split(|b| b.is_ascii_whitespace())
                .any(|c| c == b"memory");
            if !has_memory {
                return Err(layout_err(format!(
                    "cgroup v2 root without the memory controller ({} does not list `memory`)",
                    controllers.display()
                )));
            }
            return Ok(CgroupLayout {
                mode: CgroupMode::V2,
                memory_root: cgroup_root.to_path_buf(),
                memory_version: CgroupVersion::V2,
                unified_root: Some(cgroup_root.to_path_buf()),
                cpu_root: Some(cgroup_root.to_path_buf()),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(CgroupError::Read {
                path: controllers,
                source,
            });
        }
    }
    let memory_root = cgroup_root.join("memory");
    if !memory_root.join("memory.limit_in_bytes").is_file() {
        return Err(layout_err(
            "neither a cgroup v2 root with the memory controller (cgroup.controllers) \
             nor a v1 memory hierarchy (memory/memory.limit_in_bytes)"
                .to_owned(),
        ));
    }
    let unified = cgroup_root.join("unified");
    let unified_root = unified
        .join("cgroup.controllers")
        .is_file()
        .then_some(unified);
    let cpu_root = ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]
        .iter()
        .map(|d| cgroup_root.join(d))
        .find(|d| d.join("cpuacct.usage").is_file());
    Ok(CgroupLayout {
        mode: if unified_root.is_some() {
            CgroupMode::Hybrid
        } else {
            CgroupMode::V1
        },
        memory_root,
        memory_version: CgroupVersion::V1,
        unified_root,
        cpu_root,
    })
}

/// Kubepods roots the kubelet creates, relative to the memory root.
const KUBE_ROOTS: [&str; 4] = [
    "kubepods",
    "kubepods.slice",
    "kubelet.slice/kubelet-kubepods.slice",
    "kubelet/kubepods",
];

/// Depth of a container below a kubepods root (`<qos>/<pod>/<container>`).
const MAX_DEPTH: usize = 3;

/// Fills `out` (cleared first) with every container cgroup under the
/// kubelet's roots (`kubepods`, `kubepods.slice`,
/// `kubelet.slice/kubelet-kubepods.slice`, `kubelet/kubepods`) of the
/// memory hierarchy, followed by each `extra` path (relative to the memory
/// root, e.g. `/slurm/uid_0/job_12`; only `cgroup_path` set). Sorted by
/// path, without duplicates.
///
/// A directory that vanishes during the walk is skipped silently; any other
/// error reading a directory (EACCES, ...) is returned.
pub fn discover(
    layout: &CgroupLayout,
    extra: &[String],
    out: &mut Vec<Discovered>,
) -> Result<(), CgroupError> {
    out.clear();
    let mut rel = String::with_capacity(256);
    for root in KUBE_ROOTS {
        rel.clear();
        rel.push('/');
        rel.push_str(root);
        walk(&layout.memory_root, &mut rel, 0, out)?;
    }
    for e in extra {
        let trimmed = e.trim_matches('/');
        let mut path = String::with_capacity(trimmed.len() + 1);
        path.push('/');
        path.push_str(trimmed);
        out.push(Discovered {
            container: ContainerRef {
                cgroup_path: path,
                ..ContainerRef::default()
            },
        });
    }
    out.sort_by(|a, b| a.container.cgroup_path.cmp(&b.container.cgroup_path));
    out.dedup_by(|a, b| a.container.cgroup_path == b.container.cgroup_path);
    Ok(())
}

fn walk(
    memory_root: &Path,
    rel: &mut String,
    depth: usize,
    out: &mut Vec<Discovered>,
) -> Result<(), CgroupError> {
    let dir = memory_root.join(rel.trim_start_matches('/'));
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if is_vanished(&e) || e.kind() == io::ErrorKind::NotADirectory => return Ok(()),
        Err(source) => return Err(CgroupError::Read { path: dir, source }),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if is_vanished(&e) => return Ok(()),
            Err(source) => return Err(CgroupError::Read { path: dir, source }),
        };
        match entry.file_type() {
            Ok(t) if t.is_dir() => {}
            Ok(_) => continue,
            Err(e) if is_vanished(&e) => continue,
            Err(source) => {
                return Err(CgroupError::Read {
                    path: entry.path(),
                    source,
                });
            }
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let len = rel.len();
        rel.push('/');
        rel.push_str(name);
        match parse(rel) {
            Some(p) if p.level == Level::Container => {
                if let Some(container) = super::path::parse_kubelet_path(rel) {
                    out.push(Discovered { container });
                }
            }
            // Containers live directly in pod directories.
            Some(p) if p.level == Level::Pod && depth < MAX_DEPTH => {
                walk(memory_root, rel, depth + 1, out)?;
            }
            Some(_) => {}
            // The kubepods root's QoS children.
            None if depth == 0 && !is_pod_dir_name(name) => {
                walk(memory_root, rel, depth + 1, out)?;
            }
            None => {}
        }
        rel.truncate(len);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Tree, UID, id};
    use super::*;
    use gpuscope_model::{ContainerRuntime, QosClass};

    #[test]
    fn detects_v2() {
        let t = Tree::v2();
        let l = detect_layout(t.root()).expect("v2");
        assert_eq!(l.mode, CgroupMode::V2);
        assert_eq!(l.memory_version, CgroupVersion::V2);
        assert_eq!(l.memory_root, t.root());
        assert_eq!(l.cpu_root.as_deref(), Some(t.root()));
        assert_eq!(l.unified_root.as_deref(), Some(t.root()));
    }

    #[test]
    fn detects_v1_and_hybrid_with_cpuacct_variants() {
        let t = Tree::v1(false, "cpuacct");
        let l = detect_layout(t.root()).expect("v1");
        assert_eq!(l.mode, CgroupMode::V1);
        assert_eq!(l.memory_version, CgroupVersion::V1);
        assert_eq!(l.memory_root, t.root().join("memory"));
        assert_eq!(l.unified_root, None);
        assert_eq!(l.cpu_root, Some(t.root().join("cpuacct")));

        let t = Tree::v1(true, "cpu,cpuacct");
        let l = detect_layout(t.root()).expect("hybrid");
        assert_eq!(l.mode, CgroupMode::Hybrid);
        assert_eq!(l.unified_root, Some(t.root().join("unified")));
        assert_eq!(l.cpu_root, Some(t.root().join("cpu,cpuacct")));

        // `cpuacct -> cpu,cpuacct`, as systemd mounts it.
        std::os::unix::fs::symlink("cpu,cpuacct", t.root().join("cpuacct")).expect("symlink");
        let l = detect_layout(t.root()).expect("hybrid");
        assert_eq!(l.cpu_root, Some(t.root().join("cpuacct")));
        assert!(l.cpu_root.expect("cpu").join("cpuacct.usage").is_file());

        let t = Tree::v1(false, "none");
        assert_eq!(detect_layout(t.root()).expect("v1").cpu_root, None);
    }

    #[test]
    fn layout_errors_name_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A cgroup2 root without memory (this machine's `unified`).
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu io\n").expect("write");
        let e = detect_layout(dir.path()).expect_err("no memory");
        assert!(matches!(e, CgroupError::Layout { ref root, .. } if root == dir.path()));
        assert!(e.to_string().contains("memory controller"), "{e}");
        let empty = tempfile::tempdir().expect("tempdir");
        let e = detect_layout(empty.path()).expect_err("empty");
        assert!(
            e.to_string().contains(&empty.path().display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn discovers_cgroupfs_containers_all_qos() {
        let t = Tree::v1(true, "cpuacct");
        let b = t.v1_container(&format!("/kubepods/burstable/pod{}/{}", UID, id(1)));
        let e = t.v1_container(&format!("/kubepods/besteffort/pod{}/crio-{}", UID, id(2)));
        let g = t.v1_container(&format!("/kubepods/pod{}/{}", UID, id(3)));
        // Not containers: the pod dir itself, a file, a junk dir.
        t.mkdir_mem("/kubepods/burstable/podjunk_not_hex!");
        t.mkdir_mem("/kubepods/burstable/not-a-pod");
        let layout = detect_layout(t.root()).expect("layout");
        let mut out = vec![Discovered {
            container: ContainerRef::default(),
        }];
        discover(&layout, &["slurm/uid_0/job_12/".to_owned()], &mut out).expect("discover");
        let paths: Vec<&str> = out
            .iter()
            .map(|d| d.container.cgroup_path.as_str())
            .collect();
        let mut want = vec![b.as_str(), e.as_str(), g.as_str(), "/slurm/uid_0/job_12"];
        want.sort();
        assert_eq!(paths, want);
        let by = |p: &str| {
            &out.iter()
                .find(|d| d.container.cgroup_path == p)
                .expect("found")
                .container
        };
        assert_eq!(by(&b).qos, Some(QosClass::Burstable));
        assert_eq!(by(&e).qos, Some(QosClass::BestEffort));
        assert_eq!(by(&e).runtime, Some(ContainerRuntime::CriO));
        assert_eq!(by(&g).qos, Some(QosClass::Guaranteed));
        assert_eq!(by(&g).container_id.as_deref(), Some(id(3).as_str()));
        assert_eq!(by("/slurm/uid_0/job_12").pod_uid, None);
    }

    #[test]
    fn discovers_systemd_containers_under_kubelet_slice() {
        use super::super::fixture::UID_;
        let t = Tree::v2();
        let a = t.v2_container(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{}.scope",
            id(1)
        ));
        let b = t.v2_container(&format!(
            "/kubepods.slice/kubepods-pod{UID_}.slice/docker-{}.scope",
            id(2)
        ));
        let c = t.v2_container(&format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/crio-{}.scope",
            id(3)
        ));
        // conmon is not a container.
        t.mkdir_mem(&format!(
            "/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{}.scope",
            id(4)
        ));
        let layout = detect_layout(t.root()).expect("layout");
        let mut out = Vec::new();
        discover(&layout, &[], &mut out).expect("discover");
        let paths: Vec<&str> = out
            .iter()
            .map(|d| d.container.cgroup_path.as_str())
            .collect();
        let mut want = vec![a.as_str(), b.as_str(), c.as_str()];
        want.sort();
        assert_eq!(paths, want);
        assert!(
            out.iter()
                .all(|d| d.container.pod_uid.as_deref() == Some(UID))
        );
    }

    #[test]
    fn no_kubepods_is_empty_not_error() {
        let t = Tree::v2();
        let layout = detect_layout(t.root()).expect("layout");
        let mut out = Vec::new();
        discover(&layout, &[], &mut out).expect("discover");
        assert!(out.is_empty());
    }
}
