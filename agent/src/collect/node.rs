//! The node itself: boot ID, kernel release, memory and pressure.

use std::io;
use std::path::{Path, PathBuf};

use crate::collect::parse::{ParseError, parse_meminfo};
use crate::collect::psi::{PsiError, read_node_pressure};
use gpuscope_model::{CgroupMode, NodeSample, Pressure, Timestamp};

/// Errors reading the node's `/proc` files. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A file could not be read.
    #[error("reading {path}: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file's content is malformed.
    #[error("parsing {path}: {source}", path = path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: ParseError,
    },
    /// The pressure files exist but could not be read or parsed.
    #[error(transparent)]
    Psi(#[from] PsiError),
}

fn read(path: PathBuf) -> Result<(PathBuf, Vec<u8>), NodeError> {
    match std::fs::read(&path) {
        Ok(b) => Ok((path, b)),
        Err(source) => Err(NodeError::Read { path, source }),
    }
}

fn read_trimmed(path: PathBuf) -> Result<String, NodeError> {
    let (path, bytes) = read(path)?;
    let s = String::from_utf8_lossy(bytes.trim_ascii()).into_owned();
    if s.is_empty() {
        return Err(NodeError::Parse {
            path,
            source: ParseError::Empty,
        });
    }
    Ok(s)
}

/// `MemTotal` and `MemAvailable` of `<proc_root>/meminfo`, bytes.
pub fn read_meminfo(proc_root: &Path) -> Result<(u64, u64), NodeError> {
    let (path, bytes) = read(proc_root.join("meminfo"))?;
    parse_meminfo(&bytes).map_err(|source| NodeError::Parse { path, source })
}

/// Reads the node sample from `proc_root` (normally `/proc`):
/// `sys/kernel/random/boot_id`, `sys/kernel/osrelease`, `meminfo` and
/// `pressure/*`.
///
/// A kernel without PSI (no `pressure/` files) gives a sample whose
/// `pressure` fields are all `None`; the PSI source reports that state
/// through [`read_node_pressure`]. Any other failure is an error.
pub fn read_node(
    proc_root: &Path,
    cgroup_mode: Option<CgroupMode>,
    time: Timestamp,
) -> Result<NodeSample, NodeError> {
    let boot_id = read_trimmed(proc_root.join("sys/kernel/random/boot_id"))?;
    let kernel_release = read_trimmed(proc_root.join("sys/kernel/osrelease"))?;
    let (mem_total_bytes, mem_available_bytes) = read_meminfo(proc_root)?;
    let pressure = match read_node_pressure(proc_root) {
        Ok(p) => p,
        Err(e) if e.is_unsupported() => Pressure::default(),
        Err(e) => return Err(e.into()),
    };
    Ok(NodeSample {
        time,
        boot_id,
        kernel_release,
        cgroup_mode,
        mem_total_bytes,
        mem_available_bytes,
        pressure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::cgroup::fixture::{PSI_CPU, PSI_IO, PSI_MEM};

    fn fake_proc() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        std::fs::create_dir_all(r.join("sys/kernel/random")).expect("mkdir");
        std::fs::create_dir_all(r.join("pressure")).expect("mkdir");
        std::fs::write(
            r.join("sys/kernel/random/boot_id"),
            "3f10d360-2214-4b75-b41d-63ece74ff46b\n",
        )
        .expect("w");
        std::fs::write(r.join("sys/kernel/osrelease"), "6.18.44-fc-v669\n").expect("w");
        std::fs::write(
            r.join("meminfo"),
            "MemTotal:       24684084 kB\nMemFree:        23710088 kB\nMemAvailable:   24324588 kB\nBuffers: 1 kB\n",
        )
        .expect("w");
        std::fs::write(r.join("pressure/memory"), PSI_MEM).expect("w");
        std::fs::write(r.join("pressure/cpu"), PSI_CPU).expect("w");
        std::fs::write(r.join("pressure/io"), PSI_IO).expect("w");
        dir
    }

    #[test]
    fn reads_fake_proc() {
        let p = fake_proc();
        let n = read_node(p.path(), Some(CgroupMode::Hybrid), Timestamp(7)).expect("node");
        assert_eq!(n.boot_id, "3f10d360-2214-4b75-b41d-63ece74ff46b");
        assert_eq!(n.kernel_release, "6.18.44-fc-v669");
        assert_eq!(n.mem_total_bytes, 24_684_084 * 1024);
        assert_eq!(n.mem_available_bytes, 24_324_588 * 1024);
        assert_eq!(n.cgroup_mode, Some(CgroupMode::Hybrid));
        assert_eq!(n.time, Timestamp(7));
        assert_eq!(n.pressure.memory.expect("mem").some.total_us, 6251);

        // No PSI: the sample still comes, without pressure.
        std::fs::remove_dir_all(p.path().join("pressure")).expect("rm");
        let n = read_node(p.path(), Some(CgroupMode::Hybrid), Timestamp(7)).expect("node");
        assert_eq!(n.pressure, Pressure::default());

        std::fs::write(p.path().join("meminfo"), "MemTotal: 12 kB\n").expect("w");
        let e = read_node(p.path(), Some(CgroupMode::V1), Timestamp(7)).expect_err("meminfo");
        assert!(e.to_string().contains("meminfo"), "{e}");
        assert!(e.to_string().contains("MemAvailable"), "{e}");

        std::fs::remove_file(p.path().join("sys/kernel/random/boot_id")).expect("rm");
        let e = read_node(p.path(), Some(CgroupMode::V1), Timestamp(7)).expect_err("boot_id");
        assert!(e.to_string().contains("boot_id"), "{e}");
    }

    #[test]
    fn reads_this_machines_proc() {
        let n = read_node(
            Path::new("/proc"),
            Some(CgroupMode::Hybrid),
            Timestamp::now(),
        )
        .expect("real /proc");
        assert_eq!(n.boot_id.len(), 36, "{}", n.boot_id);
        assert!(n.mem_total_bytes >= n.mem_available_bytes);
        assert!(n.mem_total_bytes > 64 << 20);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
        assert_eq!(n.kernel_release, release.trim());
    }
}
