//! Fake cgroup trees in a tempdir, with the files the kernel writes.

use std::path::{Path, PathBuf};

/// A pod UID as the kubelet writes it under cgroupfs.
pub(crate) const UID: &str = "0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11";
/// The same UID as the systemd driver writes it.
pub(crate) const UID_: &str = "0f8c3b52_6a0e_4d8e_9d39_2b1f3c6a7e11";

/// A 64-hex container ID.
pub(crate) fn id(n: u64) -> String {
    format!("{n:x}{}", "c0ffee".repeat(11))[..64].to_owned()
}

/// `memory.events` of the 6.1 VM sample after its kill.
pub(crate) const V2_EVENTS: &str = "low 0\nhigh 0\nmax 35\noom 1\noom_kill 1\noom_group_kill 0\n";
/// A `memory.pressure` with totals.
pub(crate) const PSI_MEM: &str = "some avg10=1.50 avg60=0.75 avg300=0.25 total=6251\nfull avg10=1.00 avg60=0.50 avg300=0.10 total=4000\n";
/// A `cpu.pressure`.
pub(crate) const PSI_CPU: &str = "some avg10=47.80 avg60=19.02 avg300=5.19 total=18727649\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
/// An `io.pressure`.
pub(crate) const PSI_IO: &str = "some avg10=0.23 avg60=0.69 avg300=0.30 total=1904463\nfull avg10=0.11 avg60=0.55 avg300=0.25 total=1535723\n";

/// A fake `/sys/fs/cgroup`.
pub(crate) struct Tree {
    dir: tempfile::TempDir,
    v2: bool,
    cpuacct: Option<String>,
    unified: bool,
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

impl Tree {
    /// A cgroup v2 root with the memory controller.
    pub(crate) fn v2() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            &dir.path().join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        );
        Self {
            dir,
            v2: true,
            cpuacct: None,
            unified: false,
        }
    }

    /// A v1 tree: `memory/`, optionally `unified/`, and cpuacct mounted as
    /// `cpuacct_dir` (`"none"`: not at all).
    pub(crate) fn v1(unified: bool, cpuacct_dir: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        write(
            &r.join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        write(&r.join("memory/memory.usage_in_bytes"), "5000000\n");
        if unified {
            write(&r.join("unified/cgroup.controllers"), "");
        }
        let cpuacct = (cpuacct_dir != "none").then(|| cpuacct_dir.to_owned());
        if let Some(c) = &cpuacct {
            write(&r.join(c).join("cpuacct.usage"), "123456789\n");
        }
        Self {
            dir,
            v2: false,
            cpuacct,
            unified,
        }
    }

    /// The fake `/sys/fs/cgroup`.
    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The memory hierarchy's directory for `rel`.
    pub(crate) fn mem(&self, rel: &str) -> PathBuf {
        let base = if self.v2 {
            self.root().to_path_buf()
        } else {
            self.root().join("memory")
        };
        base.join(rel.trim_start_matches('/'))
    }

    /// Creates an empty directory in the memory hierarchy.
    pub(crate) fn mkdir_mem(&self, rel: &str) {
        std::fs::create_dir_all(self.mem(rel)).expect("mkdir");
    }

    /// A v1 container: 1 MiB used of 64 MiB, peak 2 MiB, 2 kills, failcnt
    /// 3, 5 s of CPU, and pressure files in `unified/` when there is one.
    pub(crate) fn v1_container(&self, rel: &str) -> String {
        let m = self.mem(rel);
        write(&m.join("memory.usage_in_bytes"), "1048576\n");
        write(&m.join("memory.limit_in_bytes"), "67108864\n");
        write(&m.join("memory.max_usage_in_bytes"), "2097152\n");
        write(&m.join("memory.failcnt"), "3\n");
        write(
            &m.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        write(
            &m.join("memory.stat"),
            "cache 1\nrss 2\nshmem 3\nmapped_file 0\nhierarchical_memory_limit 67108864\n\
             total_cache 40960\ntotal_rss 1003520\ntotal_shmem 4096\n",
        );
        if let Some(c) = &self.cpuacct {
            write(
                &self
                    .root()
                    .join(c)
                    .join(rel.trim_start_matches('/'))
                    .join("cpuacct.usage"),
                "5000000123\n",
            );
        }
        if self.unified {
            let u = self
                .root()
                .join("unified")
                .join(rel.trim_start_matches('/'));
            write(&u.join("memory.pressure"), PSI_MEM);
            write(&u.join("cpu.pressure"), PSI_CPU);
            write(&u.join("io.pressure"), PSI_IO);
        }
        rel.to_owned()
    }

    /// A v2 container: 1 MiB used of 32 MiB, peak 32 MiB, the VM sample's
    /// `memory.events`, pressure and `cpu.stat`.
    pub(crate) fn v2_container(&self, rel: &str) -> String {
        let m = self.mem(rel);
        write(&m.join("memory.current"), "1048576\n");
        write(&m.join("memory.max"), "33554432\n");
        write(&m.join("memory.peak"), "33554432\n");
        write(
            &m.join("memory.stat"),
            "anon 700416\nfile 204800\nkernel 65536\nshmem 8192\n",
        );
        write(&m.join("memory.events"), V2_EVENTS);
        write(&m.join("memory.pressure"), PSI_MEM);
        write(&m.join("cpu.pressure"), PSI_CPU);
        write(&m.join("io.pressure"), PSI_IO);
        write(
            &m.join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 120000\n",
        );
        rel.to_owned()
    }
}
