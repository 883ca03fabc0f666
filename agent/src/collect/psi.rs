//! Node-level pressure stall information (`/proc/pressure/*`).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::collect::parse::{ParseError, parse_psi};
use gpuscope_model::{Pressure, Psi};

/// Errors reading the node's pressure files. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PsiError {
    /// A pressure file could not be read; `NotFound` means the kernel has no
    /// PSI (built without `CONFIG_PSI`, or booted with `psi=0`).
    #[error("reading {path}: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A pressure file's content is malformed.
    #[error("parsing {path}: {source}", path = path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: ParseError,
    },
}

impl PsiError {
    /// Whether the error means this kernel has no PSI at all.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Self::Read { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Reads one pressure file through a stack buffer (the files are < 200
/// bytes).
pub fn read_psi_file(path: &Path) -> Result<Psi, PsiError> {
    let mut buf = [0u8; 512];
    let read = std::fs::File::open(path).and_then(|mut f| {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    });
    let n = read.map_err(|source| PsiError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_psi(&buf[..n]).map_err(|source| PsiError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `<proc_root>/pressure/{memory,cpu,io}` (`proc_root` is normally
/// `/proc`). A missing file is an error naming it (see
/// [`PsiError::is_unsupported`]); the caller reports PSI as unavailable
/// and carries on.
pub fn read_node_pressure(proc_root: &Path) -> Result<Pressure, PsiError> {
    let dir = proc_root.join("pressure");
    Ok(Pressure {
        memory: Some(read_psi_file(&dir.join("memory"))?),
        cpu: Some(read_psi_file(&dir.join("cpu"))?),
        io: Some(read_psi_file(&dir.join("io"))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::cgroup::fixture::{PSI_CPU, PSI_IO, PSI_MEM};

    #[test]
    fn reads_fixture_proc() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pressure");
        std::fs::create_dir(&p).expect("mkdir");
        std::fs::write(p.join("memory"), PSI_MEM).expect("w");
        std::fs::write(p.join("cpu"), PSI_CPU).expect("w");
        std::fs::write(p.join("io"), PSI_IO).expect("w");
        let pr = read_node_pressure(dir.path()).expect("psi");
        let mem = pr.memory.expect("mem");
        assert_eq!(mem.some.avg10, 1.5);
        assert_eq!(mem.full.expect("full").total_us, 4000);
        assert_eq!(pr.cpu.expect("cpu").some.avg10, 47.80);
        assert_eq!(pr.io.expect("io").some.total_us, 1_904_463);

        std::fs::write(p.join("io"), "some avg10=zz\n").expect("w");
        let e = read_node_pressure(dir.path()).expect_err("bad io");
        assert!(!e.is_unsupported());
        assert!(e.to_string().contains("pressure/io"), "{e}");

        std::fs::remove_file(p.join("cpu")).expect("rm");
        let e = read_node_pressure(dir.path()).expect_err("no cpu");
        assert!(e.is_unsupported());
        assert!(e.to_string().contains("pressure/cpu"), "{e}");
    }

    #[test]
    fn reads_this_machines_proc() {
        if !Path::new("/proc/pressure/memory").exists() {
            let why = "needs /proc/pressure (a kernel with PSI)";
            if std::env::var_os("CI").is_some() {
                panic!("{why}");
            }
            eprintln!("SKIPPED: reads_this_machines_proc: {why}");
            return;
        }
        let pr = read_node_pressure(Path::new("/proc")).expect("real /proc/pressure");
        assert!(pr.memory.expect("memory").full.is_some());
        assert!(pr.io.is_some() && pr.cpu.is_some());
    }
}
