//! Container cgroups: discovery ([`mod@discover`]), kubelet path parsing
//! ([`path`]) and the per-sample readers ([`CgroupReader`], with the
//! version-specific parts in `v1` and `v2`).
//!
//! A cgroup that disappears while it is read (its container exited) is
//! normal: reads return `Ok(None)`, never an error.

pub mod discover;
pub mod path;
mod v1;
mod v2;

pub use v2::oom_group_set;

#[cfg(test)]
pub(crate) mod fixture;

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use discover::{CgroupLayout, Discovered, detect_layout, discover};
pub use path::{container_for, parse_kubelet_path};

use crate::collect::parse::ParseError;
use gpuscope_model::{
    CgroupVersion, ContainerRef, ContainerSample, MemoryEvents, Pressure, Timestamp,
};

/// Errors of the cgroup source. Each names the path that failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup file or directory could not be read (EACCES, EIO, ...;
    /// never a vanished cgroup, which is `Ok(None)`).
    #[error("reading {path}: {source}", path = path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A cgroup file's content is not what the kernel writes there.
    #[error("parsing {path}: {source}", path = path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: ParseError,
    },
    /// The cgroup hierarchies under a root are not a layout the agent can
    /// read (no memory controller found).
    #[error("cgroup layout under {root}: {reason}", root = root.display())]
    Layout {
        /// The cgroup root that was examined.
        root: PathBuf,
        /// What is missing.
        reason: String,
    },
}

/// Whether an I/O error means the cgroup is gone: ENOENT before open,
/// ENODEV when reading a file of a removed cgroup.
pub(crate) fn is_vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(nix::errno::Errno::ENODEV as i32)
}

/// A reused path and read buffer: reading a cgroup file allocates nothing
/// once both have grown to size.
#[derive(Debug)]
pub(crate) struct Files {
    path: PathBuf,
    buf: Vec<u8>,
}

impl Files {
    fn new() -> Self {
        Self {
            path: PathBuf::with_capacity(512),
            buf: vec![0; 16 * 1024],
        }
    }

    fn set_path(&mut self, root: &Path, cgroup_path: &str, file: &str) {
        let os: &mut OsString = self.path.as_mut_os_string();
        os.clear();
        os.push(root.as_os_str());
        let rel = cgroup_path.trim_matches('/');
        if !rel.is_empty() {
            os.push("/");
            os.push(rel);
        }
        os.push("/");
        os.push(file);
    }

    /// Reads `<root>/<cgroup_path>/<file>` and parses it with `f`.
    /// `Ok(None)`: the file does not exist (or its cgroup was removed).
    pub(crate) fn read<T>(
        &mut self,
        root: &Path,
        cgroup_path: &str,
        file: &str,
        f: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<Option<T>, CgroupError> {
        self.set_path(root, cgroup_path, file);
        let res = std::fs::File::open(&self.path).and_then(|h| read_into(h, &mut self.buf));
        let len = match res {
            Ok(len) => len,
            Err(e) if is_vanished(&e) => return Ok(None),
            Err(source) => {
                return Err(CgroupError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        match f(&self.buf[..len]) {
            Ok(v) => Ok(Some(v)),
            Err(source) => Err(CgroupError::Parse {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// Reads the whole file into `buf` (kept at full length, grown when a file
/// fills it) and returns the length read. Plain `read` calls only: kernel
/// files report size 0, so `read_to_end`'s size probe (`statx` + `lseek`)
/// is two wasted system calls per file.
pub(crate) fn read_into(mut file: std::fs::File, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads container cgroups, reusing one buffer for every file.
#[derive(Debug)]
pub struct CgroupReader {
    layout: CgroupLayout,
    files: Files,
}

impl CgroupReader {
    /// A reader for the hierarchies of `layout`.
    pub fn new(layout: CgroupLayout) -> Self {
        Self {
            layout,
            files: Files::new(),
        }
    }

    /// The layout it reads.
    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    /// Absolute directory of a container's memory cgroup
    /// (`cgroup_path` is relative to the memory root).
    pub fn memory_dir(&self, cgroup_path: &str) -> PathBuf {
        self.layout
            .memory_root
            .join(cgroup_path.trim_start_matches('/'))
    }

    /// Reads one container's memory, CPU and pressure files.
    ///
    /// v2: `memory.current`, `memory.max`, `memory.peak` (absent before
    /// 5.19: `None`), `memory.stat`, `memory.events`, `{memory,cpu,io}.pressure`
    /// and `cpu.stat`. v1: `memory.usage_in_bytes`, `memory.limit_in_bytes`,
    /// `memory.max_usage_in_bytes` (as the peak), `memory.stat`,
    /// `memory.oom_control`, `memory.failcnt`, `cpuacct.usage` from the
    /// cpuacct hierarchy, and the pressure files of the same path in the
    /// unified hierarchy when it exists there (scope `Container`), else
    /// `node_psi` (scope `Node`).
    ///
    /// `Ok(None)` when the cgroup no longer exists (a file is missing, or
    /// the kernel answers ENODEV); `Err` for other read failures and
    /// malformed content, naming the file.
    pub fn read_container(
        &mut self,
        container: &ContainerRef,
        node_psi: &Pressure,
        time: Timestamp,
    ) -> Result<Option<ContainerSample>, CgroupError> {
        let raw = match self.layout.memory_version {
            CgroupVersion::V2 => v2::read(
                &self.layout,
                &mut self.files,
                &container.cgroup_path,
                node_psi,
            )?,
            CgroupVersion::V1 => v1::read(
                &self.layout,
                &mut self.files,
                &container.cgroup_path,
                node_psi,
            )?,
        };
        Ok(raw.map(|raw| ContainerSample {
            time,
            container: container.clone(),
            cgroup_version: self.layout.memory_version,
            memory: raw.memory,
            cpu: raw.cpu,
            pressure: raw.pressure,
            pressure_scope: raw.pressure_scope,
            stuck: Vec::new(),
        }))
    }

    /// Reads only the OOM counters of a cgroup: the cheap read right after
    /// an OOM notification. v2: `memory.events`; v1: `memory.oom_control`
    /// and `memory.failcnt`. `Ok(None)` when the cgroup is gone.
    pub fn read_oom_counters(
        &mut self,
        cgroup_path: &str,
    ) -> Result<Option<MemoryEvents>, CgroupError> {
        match self.layout.memory_version {
            CgroupVersion::V2 => {
                v2::read_events(&self.layout.memory_root, &mut self.files, cgroup_path)
            }
            CgroupVersion::V1 => {
                v1::read_events(&self.layout.memory_root, &mut self.files, cgroup_path)
            }
        }
    }
}

/// What the version-specific readers return.
pub(crate) struct Raw {
    pub(crate) memory: gpuscope_model::MemoryStats,
    pub(crate) cpu: Option<gpuscope_model::CpuStats>,
    pub(crate) pressure: Pressure,
    pub(crate) pressure_scope: gpuscope_model::PsiScope,
}

/// Reads the three pressure files of `<root>/<cgroup_path>`; `None` for a
/// file that does not exist.
pub(crate) fn read_pressure(
    files: &mut Files,
    root: &Path,
    cgroup_path: &str,
) -> Result<Pressure, CgroupError> {
    use crate::collect::parse::parse_psi;
    Ok(Pressure {
        memory: files.read(root, cgroup_path, "memory.pressure", parse_psi)?,
        cpu: files.read(root, cgroup_path, "cpu.pressure", parse_psi)?,
        io: files.read(root, cgroup_path, "io.pressure", parse_psi)?,
    })
}

#[cfg(test)]
mod tests {
    use super::fixture::{Tree, UID, UID_, V2_EVENTS, id};
    use super::*;

    #[test]
    fn read_into_grows_the_buffer_for_large_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("memory.stat");
        let text: String = (0..4000).map(|i| format!("key{i} {i}\n")).collect();
        std::fs::write(&path, &text).expect("write");
        let mut buf = vec![0; 16];
        let len = read_into(std::fs::File::open(&path).expect("open"), &mut buf).expect("read");
        assert_eq!(&buf[..len], text.as_bytes());
    }
    use gpuscope_model::{CpuStats, MemoryStats, Psi, PsiLine, PsiScope, QosClass};

    fn node_psi() -> Pressure {
        let line = PsiLine {
            avg10: 9.0,
            avg60: 8.0,
            avg300: 7.0,
            total_us: 99,
        };
        Pressure {
            memory: Some(Psi {
                some: line,
                full: Some(line),
            }),
            cpu: None,
            io: None,
        }
    }

    fn found(layout: &CgroupLayout) -> Vec<Discovered> {
        let mut out = Vec::new();
        discover(layout, &[], &mut out).expect("discover");
        out
    }

    #[test]
    fn reads_v2_container() {
        let t = Tree::v2();
        let p = t.v2_container(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{}.scope",
            id(1)
        ));
        let mut r = CgroupReader::new(detect_layout(t.root()).expect("layout"));
        let d = found(r.layout());
        assert_eq!(d.len(), 1);
        let s = r
            .read_container(&d[0].container, &node_psi(), Timestamp(5))
            .expect("read")
            .expect("present");
        assert_eq!(s.container.cgroup_path, p);
        assert_eq!(s.container.pod_uid.as_deref(), Some(UID));
        assert_eq!(s.cgroup_version, CgroupVersion::V2);
        assert_eq!(
            s.memory,
            MemoryStats {
                usage_bytes: 1_048_576,
                limit_bytes: Some(33_554_432),
                peak_bytes: Some(33_554_432),
                anon_bytes: 700_416,
                file_bytes: 204_800,
                shmem_bytes: 8192,
                events: MemoryEvents {
                    oom: Some(1),
                    oom_kill: 1,
                    oom_group_kill: Some(0),
                    max: Some(35),
                    high: Some(0),
                    under_oom: None,
                    failcnt: None,
                },
                reclaim: Default::default(),
            }
        );
        assert_eq!(
            s.cpu,
            Some(CpuStats {
                usage_us: 2_500_000,
                nr_throttled: Some(4),
                throttled_us: Some(120_000)
            })
        );
        assert_eq!(s.pressure_scope, PsiScope::Container);
        assert_eq!(s.pressure.memory.expect("mem").some.total_us, 6251);
        assert_eq!(s.pressure.cpu.expect("cpu").some.avg10, 47.80);
        assert_eq!(
            s.pressure.io.expect("io").full.expect("full").total_us,
            1_535_723
        );
        assert_eq!(s.time, Timestamp(5));

        // Before 5.19 there is no memory.peak; `max` means unlimited.
        std::fs::remove_file(t.mem(&p).join("memory.peak")).expect("rm");
        std::fs::write(t.mem(&p).join("memory.max"), "max\n").expect("w");
        std::fs::write(
            t.mem(&p).join("memory.events"),
            "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
        )
        .expect("w");
        let s = r
            .read_container(&d[0].container, &node_psi(), Timestamp(6))
            .expect("read")
            .expect("present");
        assert_eq!(s.memory.peak_bytes, None);
        assert_eq!(s.memory.limit_bytes, None);
        assert_eq!(s.memory.events.oom_group_kill, None);

        let ev = r.read_oom_counters(&p).expect("events").expect("present");
        assert_eq!(ev.oom_kill, 0);
        assert_eq!(r.memory_dir(&p), t.mem(&p));
    }

    #[test]
    fn reads_v1_hybrid_container_with_own_psi() {
        let t = Tree::v1(true, "cpu,cpuacct");
        let p = t.v1_container(&format!("/kubepods/besteffort/pod{UID}/{}", id(2)));
        let mut r = CgroupReader::new(detect_layout(t.root()).expect("layout"));
        let d = found(r.layout());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].container.qos, Some(QosClass::BestEffort));
        let s = r
            .read_container(&d[0].container, &node_psi(), Timestamp(1))
            .expect("read")
            .expect("present");
        assert_eq!(s.container.cgroup_path, p);
        assert_eq!(s.cgroup_version, CgroupVersion::V1);
        assert_eq!(
            s.memory,
            MemoryStats {
                usage_bytes: 1_048_576,
                limit_bytes: Some(67_108_864),
                peak_bytes: Some(2_097_152),
                anon_bytes: 1_003_520,
                file_bytes: 40_960,
                shmem_bytes: 4096,
                events: MemoryEvents {
                    oom: None,
                    oom_kill: 2,
                    oom_group_kill: None,
                    max: None,
                    high: None,
                    under_oom: Some(false),
                    failcnt: Some(3),
                },
                reclaim: Default::default(),
            }
        );
        assert_eq!(
            s.cpu,
            Some(CpuStats {
                usage_us: 5_000_000,
                nr_throttled: None,
                throttled_us: None
            })
        );
        assert_eq!(s.pressure_scope, PsiScope::Container);
        assert_eq!(s.pressure.memory.expect("mem").some.total_us, 6251);

        let ev = r.read_oom_counters(&p).expect("counters").expect("present");
        assert_eq!((ev.oom_kill, ev.failcnt), (2, Some(3)));
    }

    #[test]
    fn v1_without_unified_twin_uses_node_psi_and_unlimited_limit() {
        let t = Tree::v1(false, "cpuacct");
        let p = t.v1_container(&format!("/kubepods/pod{UID}/{}", id(3)));
        std::fs::write(
            t.mem(&p).join("memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .expect("w");
        let mut r = CgroupReader::new(detect_layout(t.root()).expect("layout"));
        let d = found(r.layout());
        let s = r
            .read_container(&d[0].container, &node_psi(), Timestamp(1))
            .expect("read")
            .expect("present");
        assert_eq!(s.memory.limit_bytes, None);
        assert_eq!(s.pressure_scope, PsiScope::Node);
        assert_eq!(s.pressure, node_psi());
        assert_eq!(s.container.qos, Some(QosClass::Guaranteed));

        // Hybrid host, but this path has no unified twin: node PSI too.
        let t = Tree::v1(true, "none");
        let p = t.v1_container(&format!("/kubepods/pod{UID}/{}", id(3)));
        std::fs::remove_dir_all(t.root().join("unified/kubepods")).expect("rm");
        let mut r = CgroupReader::new(detect_layout(t.root()).expect("layout"));
        let c = ContainerRef {
            cgroup_path: p,
            ..Default::default()
        };
        let s = r
            .read_container(&c, &node_psi(), Timestamp(1))
            .expect("read")
            .expect("present");
        assert_eq!(s.pressure_scope, PsiScope::Node);
        assert_eq!(s.cpu, None);
    }

    #[test]
    fn vanished_cgroup_is_none() {
        for v2 in [false, true] {
            let t = if v2 {
                Tree::v2()
            } else {
                Tree::v1(true, "cpuacct")
            };
            let rel = format!("/kubepods/burstable/pod{UID}/{}", id(4));
            if v2 {
                t.v2_container(&rel);
            } else {
                t.v1_container(&rel);
            }
            let mut r = CgroupReader::new(detect_layout(t.root()).expect("layout"));
            let d = found(r.layout());
            assert_eq!(d.len(), 1);
            std::fs::remove_dir_all(t.mem(&rel)).expect("rm");
            let s = r
                .read_container(&d[0].container, &node_psi(), Timestamp(1))
                .expect("vanished is not an error");
            assert_eq!(s, None);
            assert_eq!(r.read_oom_counters(&rel).expect("not an error"), None);
        }
        // An `extra` path that never existed reads as gone, too.
        let t = Tree::v2();
        let mut r = CgroupReader::new(detect_layout(t.root()).expect("layout"));
        let mut out = Vec::new();
        discover(r.layout(), &["/slurm/job_1".to_owned()], &mut out).expect("discover");
        assert_eq!(
            r.read_container(&out[0].container, &node_psi(), Timestamp(1))
                .expect("ok"),
            None
        );
    }

    #[test]
    fn malformed_files_name_the_path() {
        let t = Tree::v2();
        let rel = format!("/kubepods/pod{UID}/{}", id(5));
        t.v2_container(&rel);
        let mut r = CgroupReader::new(detect_layout(t.root()).expect("layout"));
        let c = parse_kubelet_path(&rel).expect("kubelet path");
        std::fs::write(t.mem(&rel).join("memory.events"), "oom_kill lots\n").expect("w");
        let e = r
            .read_container(&c, &node_psi(), Timestamp(1))
            .expect_err("malformed");
        let file = t.mem(&rel).join("memory.events");
        assert!(
            matches!(&e, CgroupError::Parse { path, .. } if *path == file),
            "{e}"
        );
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
        assert!(e.to_string().contains("oom_kill"), "{e}");

        std::fs::write(t.mem(&rel).join("memory.events"), V2_EVENTS).expect("w");
        std::fs::write(t.mem(&rel).join("memory.current"), "").expect("w");
        let e = r
            .read_container(&c, &node_psi(), Timestamp(1))
            .expect_err("empty");
        assert!(e.to_string().contains("memory.current"), "{e}");

        let t = Tree::v1(false, "cpuacct");
        t.v1_container(&rel);
        std::fs::write(t.mem(&rel).join("memory.limit_in_bytes"), "-1\n").expect("w");
        let mut r = CgroupReader::new(detect_layout(t.root()).expect("layout"));
        let e = r
            .read_container(&c, &node_psi(), Timestamp(1))
            .expect_err("negative");
        assert!(e.to_string().contains("memory.limit_in_bytes"), "{e}");
    }

    #[test]
    fn unreadable_file_is_an_error_not_vanished() {
        let t = Tree::v2();
        let rel = format!("/kubepods/pod{UID}/{}", id(6));
        t.v2_container(&rel);
        // A directory where a file should be: EISDIR on read, as a stand-in
        // for EACCES (root ignores file modes).
        let f = t.mem(&rel).join("memory.stat");
        std::fs::remove_file(&f).expect("rm");
        std::fs::create_dir(&f).expect("mkdir");
        let mut r = CgroupReader::new(detect_layout(t.root()).expect("layout"));
        let c = parse_kubelet_path(&rel).expect("kubelet path");
        let e = r
            .read_container(&c, &node_psi(), Timestamp(1))
            .expect_err("eisdir");
        assert!(
            matches!(&e, CgroupError::Read { path, .. } if *path == f),
            "{e}"
        );
    }

    /// Removes the directories it created, deepest first, even when the
    /// test fails.
    struct RmdirGuard(Vec<PathBuf>);

    impl Drop for RmdirGuard {
        fn drop(&mut self) {
            for d in self.0.iter().rev() {
                match std::fs::remove_dir(d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    // Another test's cgroup shares a parent: it cleans up.
                    Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EBUSY as i32) => {}
                    Err(e) => eprintln!("cleanup: rmdir {}: {e}", d.display()),
                }
            }
        }
    }

    impl RmdirGuard {
        fn mkdir_all(&mut self, root: &Path, rel: &str) {
            let mut d = root.to_path_buf();
            for c in rel.split('/').filter(|c| !c.is_empty()) {
                d.push(c);
                match std::fs::create_dir(&d) {
                    Ok(()) => self.0.push(d.clone()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => panic!("mkdir {}: {e}", d.display()),
                }
            }
        }
    }

    /// Effective UID 0, from `/proc/self/status` (nix's `user` feature is
    /// not enabled).
    fn euid_is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
            })
            .unwrap_or(false)
    }

    fn random_hex(n: usize) -> String {
        let mut s = String::new();
        while s.len() < n {
            let u = std::fs::read_to_string("/proc/sys/kernel/random/uuid").expect("uuid");
            s.extend(u.trim().chars().filter(|c| *c != '-'));
        }
        s.truncate(n);
        s
    }

    /// A real v1 memory cgroup at a kubelet cgroupfs path on this machine,
    /// with its cpuacct and unified (PSI) twins.
    #[test]
    fn real_v1_hybrid_cgroup_on_this_machine() {
        let root = Path::new("/sys/fs/cgroup");
        let have = euid_is_root()
            && root.join("memory/memory.limit_in_bytes").is_file()
            && root.join("unified/cgroup.controllers").is_file();
        if !have {
            let why = "needs root, /sys/fs/cgroup/memory (v1) and /sys/fs/cgroup/unified";
            if std::env::var_os("CI").is_some() {
                panic!("{why}");
            }
            eprintln!("SKIPPED: real_v1_hybrid_cgroup_on_this_machine: {why}");
            return;
        }
        let uid = random_hex(32);
        let uid = format!(
            "{}-{}-{}-{}-{}",
            &uid[..8],
            &uid[8..12],
            &uid[12..16],
            &uid[16..20],
            &uid[20..]
        );
        let cid = random_hex(64);
        let rel = format!("/kubepods/burstable/pod{uid}/{cid}");
        let layout = detect_layout(root).expect("layout of /sys/fs/cgroup");
        assert_eq!(layout.mode, gpuscope_model::CgroupMode::Hybrid);
        let mut guard = RmdirGuard(Vec::new());
        for h in [
            layout.memory_root.clone(),
            layout.cpu_root.clone().expect("cpuacct hierarchy"),
            layout.unified_root.clone().expect("unified"),
        ] {
            guard.mkdir_all(&h, &rel);
        }
        let mem_dir = layout.memory_root.join(rel.trim_start_matches('/'));
        std::fs::write(mem_dir.join("memory.limit_in_bytes"), "50331648").expect("set limit");

        let mut out = Vec::new();
        discover(&layout, &[], &mut out).expect("discover");
        let mine = out
            .iter()
            .find(|d| d.container.cgroup_path == rel)
            .unwrap_or_else(|| panic!("{rel} not discovered"));
        assert_eq!(mine.container.pod_uid.as_deref(), Some(uid.as_str()));
        assert_eq!(mine.container.container_id.as_deref(), Some(cid.as_str()));
        assert_eq!(mine.container.qos, Some(QosClass::Burstable));

        let mut r = CgroupReader::new(layout);
        assert_eq!(r.memory_dir(&rel), mem_dir);
        let s = r
            .read_container(&mine.container, &node_psi(), Timestamp::now())
            .expect("read")
            .expect("present");
        assert_eq!(s.memory.limit_bytes, Some(50_331_648));
        assert_eq!(s.memory.usage_bytes, 0);
        assert_eq!(s.memory.peak_bytes, Some(0));
        assert_eq!(s.memory.events.oom_kill, 0);
        assert_eq!(s.memory.events.failcnt, Some(0));
        assert_eq!(s.memory.events.under_oom, Some(false));
        assert_eq!(s.cpu.map(|c| c.usage_us), Some(0));
        assert_eq!(s.pressure_scope, PsiScope::Container);
        assert_eq!(s.pressure.memory.expect("memory.pressure").some.total_us, 0);
        assert!(s.pressure.cpu.is_some() && s.pressure.io.is_some());

        // The container exits: its cgroup goes away under the reader.
        std::fs::remove_dir(&mem_dir).expect("rmdir");
        assert_eq!(
            r.read_container(&mine.container, &node_psi(), Timestamp::now())
                .expect("vanished is not an error"),
            None
        );
        assert_eq!(r.read_oom_counters(&rel).expect("not an error"), None);
    }
}
