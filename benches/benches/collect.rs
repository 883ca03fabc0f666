//! One collection cycle over 200 containers (discover + `read_container`
//! for each), against the floor: opening, reading and closing exactly the
//! files the reader reads, and nothing else.
//!
//! Two trees: `fixture_v2`, a cgroup v2 tree in a tempdir (systemd driver
//! paths, every file the v2 reader reads), and `real_v1`, 200 real cgroup
//! v1 memory cgroups at kubelet cgroupfs paths on this machine with their
//! cpuacct and unified twins (needs root; set `GPUSCOPE_BENCH_REAL=0` to
//! skip). `benches/collect_ratio.py` prints the medians and ratios.
//! `floor_read_to_end` is a diagnostic: the floor read the way the reader
//! reads (`File::read_to_end`, which adds `statx` and `lseek` per file);
//! `discover_only` is the discovery part of the agent's cycle.
//!
//! ```text
//! cargo bench -p gpuscope-benches --bench collect && python3 benches/collect_ratio.py
//! ```

use std::hint::black_box;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gpuscope_agent::collect::cgroup::{
    CgroupLayout, CgroupReader, Discovered, detect_layout, discover,
};
use gpuscope_model::{CgroupVersion, ContainerSample, Pressure, Timestamp};

/// Containers per tree.
const CONTAINERS: usize = 200;
/// Containers per pod (so 100 pods).
const PER_POD: usize = 2;

/// The files `CgroupReader::read_container` reads for one container, in
/// its order (agent/src/collect/cgroup/{v1,v2}.rs).
fn files_read(layout: &CgroupLayout, cgroup_path: &str, out: &mut Vec<PathBuf>) {
    let rel = cgroup_path.trim_start_matches('/');
    let mem = layout.memory_root.join(rel);
    match layout.memory_version {
        CgroupVersion::V2 => {
            for f in [
                "memory.current",
                "memory.max",
                "memory.peak",
                "memory.pressure",
                "cpu.pressure",
                "io.pressure",
                "cpu.stat",
                "memory.stat",
                "memory.events",
            ] {
                out.push(mem.join(f));
            }
        }
        CgroupVersion::V1 => {
            for f in [
                "memory.usage_in_bytes",
                "memory.limit_in_bytes",
                "memory.max_usage_in_bytes",
            ] {
                out.push(mem.join(f));
            }
            if let Some(cpu) = &layout.cpu_root {
                out.push(cpu.join(rel).join("cpuacct.usage"));
            }
            if let Some(u) = &layout.unified_root {
                for f in ["memory.pressure", "cpu.pressure", "io.pressure"] {
                    out.push(u.join(rel).join(f));
                }
            }
            for f in ["memory.stat", "memory.oom_control", "memory.failcnt"] {
                out.push(mem.join(f));
            }
        }
    }
}

/// The floor: open, read until EOF into a reused buffer, close.
fn read_all(files: &[PathBuf], buf: &mut [u8]) -> usize {
    let mut total = 0;
    for f in files {
        let mut h = std::fs::File::open(f).expect("open");
        loop {
            match h.read(buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read {}: {e}", f.display()),
            }
        }
    }
    total
}

/// The floor plus what `std::fs::File::read_to_end` adds (a `statx` and an
/// `lseek` per file, for its size hint): the reader's way of reading,
/// without its parsing, discovery and allocation.
fn read_all_std(files: &[PathBuf], buf: &mut Vec<u8>) -> usize {
    let mut total = 0;
    for f in files {
        buf.clear();
        let mut h = std::fs::File::open(f).expect("open");
        total += h.read_to_end(buf).expect("read");
    }
    total
}

fn bench_tree(c: &mut Criterion, name: &str, layout: CgroupLayout) {
    let mut found = Vec::new();
    discover(&layout, &[], &mut found).expect("discover");
    if found.len() != CONTAINERS {
        eprintln!(
            "WARNING: {name}: {} containers discovered, not {CONTAINERS} \
             (other kubepods cgroups on this machine?)",
            found.len()
        );
    }
    let mut floor_files = Vec::new();
    for d in &found {
        files_read(&layout, &d.container.cgroup_path, &mut floor_files);
    }
    eprintln!(
        "{name}: {} containers, {} files per cycle",
        found.len(),
        floor_files.len()
    );

    let node_psi = Pressure::default();
    let mut reader = CgroupReader::new(layout);
    let mut found: Vec<Discovered> = Vec::new();
    let mut samples: Vec<ContainerSample> = Vec::with_capacity(CONTAINERS);
    let mut buf = vec![0u8; 16 * 1024];
    let mut vec_buf = Vec::with_capacity(16 * 1024);

    let mut g = c.benchmark_group(name);
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    g.bench_function("agent", |b| {
        b.iter(|| {
            discover(reader.layout(), &[], &mut found).expect("discover");
            samples.clear();
            let now = Timestamp::now();
            for d in &found {
                let s = reader
                    .read_container(&d.container, &node_psi, now)
                    .expect("read")
                    .expect("present");
                samples.push(s);
            }
            black_box(samples.len())
        });
    });
    g.bench_function("floor", |b| {
        b.iter(|| black_box(read_all(&floor_files, &mut buf)));
    });
    // Diagnostic: where between the two the reader's syscalls put it.
    g.bench_function("floor_read_to_end", |b| {
        b.iter(|| black_box(read_all_std(&floor_files, &mut vec_buf)));
    });
    g.bench_function("discover_only", |b| {
        b.iter(|| {
            discover(reader.layout(), &[], &mut found).expect("discover");
            black_box(found.len())
        });
    });
    g.finish();
}

// ---- (a) fixture cgroup v2 tree -------------------------------------------

/// A cgroup v2 `memory.stat` as kernel 6.1 writes it.
const V2_MEMORY_STAT: &str = "anon 700416\nfile 204800\nkernel 65536\nkernel_stack 16384\n\
pagetables 8192\nsec_pagetables 0\npercpu 480\nsock 0\nvmalloc 0\nshmem 8192\nzswap 0\n\
zswapped 0\nfile_mapped 106496\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\n\
file_thp 0\nshmem_thp 0\ninactive_anon 708608\nactive_anon 0\ninactive_file 135168\n\
active_file 69632\nunevictable 0\nslab_reclaimable 18232\nslab_unreclaimable 21040\n\
slab 39272\nworkingset_refault_anon 0\nworkingset_refault_file 0\nworkingset_activate_anon 0\n\
workingset_activate_file 0\nworkingset_restore_anon 0\nworkingset_restore_file 0\n\
workingset_nodereclaim 0\npgscan 0\npgsteal 0\npgscan_kswapd 0\npgscan_direct 0\n\
pgsteal_kswapd 0\npgsteal_direct 0\npgfault 8563\npgmajfault 0\npgrefill 0\npgactivate 17\n\
pgdeactivate 0\npglazyfree 0\npglazyfreed 0\nzswpin 0\nzswpout 0\nthp_fault_alloc 0\n\
thp_collapse_alloc 0\n";
/// `cpu.stat` of a throttled container (6.1).
const V2_CPU_STAT: &str = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n\
nr_periods 10\nnr_throttled 4\nthrottled_usec 120000\nnr_bursts 0\nburst_usec 0\n";
/// `memory.events` of the 6.1 VM sample after its kill (kernel-samples).
const V2_EVENTS: &str = "low 0\nhigh 0\nmax 35\noom 1\noom_kill 1\noom_group_kill 0\n";
const PSI_MEM: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=6251\n\
full avg10=0.00 avg60=0.00 avg300=0.00 total=6251\n";
const PSI_CPU: &str = "some avg10=47.80 avg60=19.02 avg300=5.19 total=18727649\n\
full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
const PSI_IO: &str = "some avg10=0.23 avg60=0.69 avg300=0.30 total=1904463\n\
full avg10=0.11 avg60=0.55 avg300=0.25 total=1535723\n";

/// Writes the files a v2 cgroup directory has that the reader reads, plus
/// two it does not (as every real cgroup directory has more files).
fn v2_cgroup_dir(d: &Path) {
    std::fs::create_dir_all(d).expect("mkdir");
    for (f, text) in [
        ("cgroup.procs", ""),
        ("cgroup.controllers", "cpu io memory pids\n"),
        ("memory.current", "1048576\n"),
        ("memory.max", "33554432\n"),
        ("memory.peak", "33554432\n"),
        ("memory.stat", V2_MEMORY_STAT),
        ("memory.events", V2_EVENTS),
        ("memory.pressure", PSI_MEM),
        ("cpu.pressure", PSI_CPU),
        ("io.pressure", PSI_IO),
        ("cpu.stat", V2_CPU_STAT),
    ] {
        std::fs::write(d.join(f), text).expect("write");
    }
}

fn fixture_v2(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    )
    .expect("write");
    let qos = root.join("kubepods.slice/kubepods-burstable.slice");
    v2_cgroup_dir(&root.join("kubepods.slice"));
    v2_cgroup_dir(&qos);
    for p in 0..CONTAINERS / PER_POD {
        let uid = format!("0f8c3b52_6a0e_4d8e_9d39_{p:012x}");
        let pod = qos.join(format!("kubepods-burstable-pod{uid}.slice"));
        v2_cgroup_dir(&pod);
        for k in 0..PER_POD {
            let id = format!("{:016x}{}", p * PER_POD + k, "c0ffee00".repeat(6));
            v2_cgroup_dir(&pod.join(format!("cri-containerd-{id}.scope")));
        }
    }
    let layout = detect_layout(root).expect("layout");
    bench_tree(c, "fixture_v2", layout);
}

// ---- (b) real cgroup v1 memory cgroups -------------------------------------

/// Removes the cgroups it made, deepest first, even on panic.
struct RmdirGuard(Vec<PathBuf>);

impl Drop for RmdirGuard {
    fn drop(&mut self) {
        let mut failed = 0;
        for d in self.0.iter().rev() {
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    failed += 1;
                    eprintln!("cleanup: rmdir {}: {e}", d.display());
                }
            }
        }
        eprintln!(
            "real_v1: removed {} cgroups ({failed} failed)",
            self.0.len() - failed
        );
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

fn random_hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        let u = std::fs::read_to_string("/proc/sys/kernel/random/uuid").expect("uuid");
        s.extend(u.trim().chars().filter(|c| *c != '-'));
    }
    s.truncate(n);
    s
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn real_v1(c: &mut Criterion) {
    if std::env::var("GPUSCOPE_BENCH_REAL").as_deref() == Ok("0") {
        eprintln!("\n*** SKIPPED real_v1: GPUSCOPE_BENCH_REAL=0 ***\n");
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    let have = is_root()
        && root.join("memory/memory.limit_in_bytes").is_file()
        && root.join("cpuacct/cpuacct.usage").is_file()
        && root.join("unified/cgroup.controllers").is_file();
    if !have {
        eprintln!(
            "\n*** SKIPPED real_v1: needs root and /sys/fs/cgroup/{{memory,cpuacct}} (v1) \
             and /sys/fs/cgroup/unified ***\n"
        );
        return;
    }
    let layout = detect_layout(root).expect("layout of /sys/fs/cgroup");
    let mut guard = RmdirGuard(Vec::new());
    for _ in 0..CONTAINERS / PER_POD {
        let u = random_hex(32);
        let uid = format!(
            "{}-{}-{}-{}-{}",
            &u[..8],
            &u[8..12],
            &u[12..16],
            &u[16..20],
            &u[20..]
        );
        for _ in 0..PER_POD {
            let rel = format!("kubepods/burstable/pod{uid}/{}", random_hex(64));
            for h in [
                Some(&layout.memory_root),
                layout.cpu_root.as_ref(),
                layout.unified_root.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                guard.mkdir_all(h, &rel);
            }
        }
    }
    bench_tree(c, "real_v1", layout);
    drop(guard);
}

criterion_group!(benches, fixture_v2, real_v1);
criterion_main!(benches);
