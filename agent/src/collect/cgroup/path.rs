//! Kubelet cgroup path parsing: who a cgroup belongs to, from its name alone.
//!
//! Recognised layouts (any prefix before the kubepods root is allowed, e.g.
//! `/kubelet.slice/kubelet-kubepods.slice/...` or a `--cgroup-root`):
//!
//! - cgroupfs driver: `kubepods/<qos>/pod<uid>/<id>` and, for Guaranteed
//!   pods, `kubepods/pod<uid>/<id>`; `<id>` is a bare 64-hex ID
//!   (containerd, Docker) or `crio-<id>` (CRI-O).
//! - systemd driver: `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_with_underscores>.slice/<scope>`
//!   and `kubepods.slice/kubepods-pod<uid>.slice/<scope>` (Guaranteed), where
//!   the slice names may carry a prefix (`kubelet-kubepods.slice`, ...) and
//!   `<scope>` is `cri-containerd-<id>.scope`, `crio-<id>.scope` or
//!   `docker-<id>.scope`.
//!
//! CRI-O's `crio-conmon-<id>.scope` holds the conmon monitor process, not a
//! container: it parses as pod-level (pod UID set, `container_id` `None`,
//! runtime CRI-O), so an OOM kill of conmon is charged to the pod and
//! discovery does not sample it as a container.
//!
//! Components below the container (a container's own sub-cgroups) keep the
//! container's identity. The pause/sandbox container looks like any other
//! container here.

use gpuscope_model::{CgroupDriver, ContainerRef, ContainerRuntime, QosClass};

/// Where a parsed path ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// The pod's own cgroup.
    Pod,
    /// A pod child that is not a container (CRI-O conmon).
    PodOther,
    /// A container cgroup, or a cgroup below one.
    Container,
}

/// A parsed kubelet path, borrowing from the input (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub(crate) level: Level,
    /// Pod UID as in the path (underscores under systemd).
    pub(crate) pod_uid: &'a str,
    pub(crate) container_id: Option<&'a str>,
    pub(crate) qos: QosClass,
    pub(crate) runtime: Option<ContainerRuntime>,
    pub(crate) driver: CgroupDriver,
}

/// Parses a cgroup path relative to its hierarchy root (as the kernel prints
/// it in `task_memcg=` or `/proc/<pid>/cgroup`).
///
/// Returns the pod UID (dashes restored), the container ID (64 hex digits)
/// when the path is a container's cgroup (or below one), the QoS class,
/// the runtime and the cgroup driver; `cgroup_path` is the input. A
/// pod-level path gives `container_id: None`. Paths the kubelet did not
/// create give `None`.
pub fn parse_kubelet_path(path: &str) -> Option<ContainerRef> {
    let p = parse(path)?;
    let pod_uid = if p.driver == CgroupDriver::Systemd {
        p.pod_uid.replace('_', "-")
    } else {
        p.pod_uid.to_owned()
    };
    Some(ContainerRef {
        cgroup_path: path.to_owned(),
        pod_uid: Some(pod_uid),
        container_id: p.container_id.map(str::to_owned),
        qos: Some(p.qos),
        runtime: p.runtime,
        driver: Some(p.driver),
    })
}

/// The identity of any cgroup path: the kubelet's fields when
/// [`parse_kubelet_path`] recognises it, else only `cgroup_path` (a
/// non-kubelet cgroup, e.g. one given with `extra` paths).
pub fn container_for(path: &str) -> ContainerRef {
    parse_kubelet_path(path).unwrap_or_else(|| ContainerRef {
        cgroup_path: path.to_owned(),
        ..ContainerRef::default()
    })
}

/// The allocation-free core of [`parse_kubelet_path`].
pub(crate) fn parse(path: &str) -> Option<Parsed<'_>> {
    let mut comps = path.split('/').filter(|c| !c.is_empty());
    // Find the kubepods root.
    let (driver, base) = loop {
        let c = comps.next()?;
        if c == "kubepods" {
            break (CgroupDriver::Cgroupfs, "");
        }
        if let Some(base) = c.strip_suffix(".slice")
            && (base == "kubepods" || base.ends_with("-kubepods"))
        {
            break (CgroupDriver::Systemd, base);
        }
    };
    let (qos, pod_uid) = match driver {
        CgroupDriver::Cgroupfs => {
            let c = comps.next()?;
            let (qos, pod) = match c {
                "burstable" => (QosClass::Burstable, comps.next()?),
                "besteffort" => (QosClass::BestEffort, comps.next()?),
                _ => (QosClass::Guaranteed, c),
            };
            (qos, valid_uid(pod.strip_prefix("pod")?)?)
        }
        CgroupDriver::Systemd => {
            let c = slice_child(comps.next()?, base)?;
            let (qos, pod) = match c {
                "burstable" | "besteffort" => {
                    let qos = if c == "burstable" {
                        QosClass::Burstable
                    } else {
                        QosClass::BestEffort
                    };
                    let pod = slice_child(comps.next()?, base)?.strip_prefix(c)?;
                    (qos, pod.strip_prefix('-')?)
                }
                _ => (QosClass::Guaranteed, c),
            };
            (qos, valid_uid(pod.strip_prefix("pod")?)?)
        }
    };
    let mut parsed = Parsed {
        level: Level::Pod,
        pod_uid,
        container_id: None,
        qos,
        runtime: None,
        driver,
    };
    let Some(c) = comps.next() else {
        return Some(parsed);
    };
    let name = c.strip_suffix(".scope").unwrap_or(c);
    let (runtime, id) = if let Some(id) = name.strip_prefix("cri-containerd-") {
        (ContainerRuntime::Containerd, id)
    } else if let Some(id) = name.strip_prefix("crio-conmon-") {
        valid_id(id)?;
        parsed.level = Level::PodOther;
        parsed.runtime = Some(ContainerRuntime::CriO);
        // Nothing below conmon's scope is a container either.
        return Some(parsed);
    } else if let Some(id) = name.strip_prefix("crio-") {
        (ContainerRuntime::CriO, id)
    } else if let Some(id) = name.strip_prefix("docker-") {
        (ContainerRuntime::Docker, id)
    } else {
        (ContainerRuntime::Unknown, name)
    };
    parsed.container_id = Some(valid_id(id)?);
    parsed.runtime = Some(runtime);
    parsed.level = Level::Container;
    Some(parsed)
}

/// `kubepods-burstable.slice` with base `kubepods` -> `burstable`.
fn slice_child<'a>(c: &'a str, base: &str) -> Option<&'a str> {
    c.strip_suffix(".slice")?
        .strip_prefix(base)?
        .strip_prefix('-')
}

/// A pod UID: a UUID (dashes, or underscores under systemd) or a static
/// pod's 32-hex hash.
fn valid_uid(uid: &str) -> Option<&str> {
    let ok = !uid.is_empty()
        && uid.len() <= 64
        && uid
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
    ok.then_some(uid)
}

/// A container ID: exactly 64 lowercase hex digits.
fn valid_id(id: &str) -> Option<&str> {
    let ok = id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then_some(id)
}

/// Whether a directory name is a pod cgroup's name under either driver
/// (used by discovery to decide where containers live).
pub(crate) fn is_pod_dir_name(name: &str) -> bool {
    name.starts_with("pod") || (name.ends_with(".slice") && name.contains("-pod"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11";
    const UID_: &str = "0f8c3b52_6a0e_4d8e_9d39_2b1f3c6a7e11";
    const ID: &str = "3f9a1c0d2e4b5a6978c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3";

    fn check(
        path: &str,
        qos: QosClass,
        runtime: Option<ContainerRuntime>,
        driver: CgroupDriver,
        container: bool,
    ) {
        let r = parse_kubelet_path(path).unwrap_or_else(|| panic!("no parse: {path}"));
        assert_eq!(r.cgroup_path, path);
        assert_eq!(r.pod_uid.as_deref(), Some(UID), "{path}");
        assert_eq!(
            r.container_id.as_deref(),
            if container { Some(ID) } else { None },
            "{path}"
        );
        assert_eq!(r.qos, Some(qos), "{path}");
        assert_eq!(r.runtime, runtime, "{path}");
        assert_eq!(r.driver, Some(driver), "{path}");
    }

    #[test]
    fn cgroupfs_all_qos_and_runtimes() {
        use CgroupDriver::Cgroupfs;
        use ContainerRuntime::*;
        check(
            &format!("/kubepods/burstable/pod{UID}/{ID}"),
            QosClass::Burstable,
            Some(Unknown),
            Cgroupfs,
            true,
        );
        check(
            &format!("/kubepods/besteffort/pod{UID}/{ID}"),
            QosClass::BestEffort,
            Some(Unknown),
            Cgroupfs,
            true,
        );
        check(
            &format!("/kubepods/pod{UID}/crio-{ID}"),
            QosClass::Guaranteed,
            Some(CriO),
            Cgroupfs,
            true,
        );
        check(
            &format!("/kubepods/pod{UID}/docker-{ID}"),
            QosClass::Guaranteed,
            Some(Docker),
            Cgroupfs,
            true,
        );
        check(
            &format!("/kubepods/burstable/pod{UID}"),
            QosClass::Burstable,
            None,
            Cgroupfs,
            false,
        );
        check(
            &format!("/kubepods/pod{UID}/"),
            QosClass::Guaranteed,
            None,
            Cgroupfs,
            false,
        );
    }

    #[test]
    fn systemd_all_qos_and_runtimes() {
        use CgroupDriver::Systemd;
        use ContainerRuntime::*;
        check(
            &format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
            ),
            QosClass::Burstable,
            Some(Containerd),
            Systemd,
            true,
        );
        check(
            &format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope"
            ),
            QosClass::BestEffort,
            Some(CriO),
            Systemd,
            true,
        );
        check(
            &format!("/kubepods.slice/kubepods-pod{UID_}.slice/docker-{ID}.scope"),
            QosClass::Guaranteed,
            Some(Docker),
            Systemd,
            true,
        );
        check(
            &format!(
                "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
            ),
            QosClass::BestEffort,
            Some(Containerd),
            Systemd,
            true,
        );
        check(
            &format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"),
            QosClass::Burstable,
            None,
            Systemd,
            false,
        );
        // A container's own sub-cgroup (CRI-O + crun `container`).
        check(
            &format!("/kubepods.slice/kubepods-pod{UID_}.slice/crio-{ID}.scope/container"),
            QosClass::Guaranteed,
            Some(CriO),
            Systemd,
            true,
        );
    }

    #[test]
    fn crio_conmon_is_pod_level() {
        let p = format!("/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{ID}.scope");
        let r = parse_kubelet_path(&p).expect("conmon");
        assert_eq!(r.pod_uid.as_deref(), Some(UID));
        assert_eq!(r.container_id, None);
        assert_eq!(r.runtime, Some(ContainerRuntime::CriO));
        assert_eq!(parse(&p).map(|p| p.level), Some(Level::PodOther));
    }

    #[test]
    fn container_for_any_path() {
        let c = container_for("/slurm/uid_0/job_12");
        assert_eq!(c.cgroup_path, "/slurm/uid_0/job_12");
        assert_eq!((c.pod_uid, c.container_id, c.qos), (None, None, None));
        let k = container_for(&format!("/kubepods/pod{UID}/{ID}"));
        assert_eq!(k.container_id.as_deref(), Some(ID));
        assert_eq!(k.qos, Some(QosClass::Guaranteed));
    }

    #[test]
    fn static_pod_hash_uid() {
        let uid = "6f1a9a1d0a5e4b1c8e2f3d4c5b6a7980";
        let r = parse_kubelet_path(&format!("/kubepods/burstable/pod{uid}/{ID}")).expect("static");
        assert_eq!(r.pod_uid.as_deref(), Some(uid));
    }

    #[test]
    fn rejects_non_kubelet_paths() {
        for p in [
            "/",
            "",
            "/system.slice/containerd.service",
            "/user.slice/user-1000.slice/session-3.scope",
            "/kubepods",
            "/kubepods/burstable",
            "/kubepods.slice/kubepods-burstable.slice",
            "/kubepods/burstable/notapod",
            "/kubepods/burstable/pod/abc",
            "/kubepods/burstable/podzz-top/x",
            &format!("/kubepods/burstable/pod{UID}/{}", &ID[1..]),
            &format!("/kubepods/burstable/pod{UID}/{}", ID.to_uppercase()),
            &format!("/kubepods/burstable/pod{UID}/cri-containerd-{ID}x.scope"),
            &format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod{UID_}.slice"
            ),
            &format!("/kubepods.slice/kubepods-burstable.slice/other-burstable-pod{UID_}.slice"),
            "/slurm/uid_0/job_12",
        ] {
            assert_eq!(parse_kubelet_path(p), None, "{p}");
        }
    }
}
