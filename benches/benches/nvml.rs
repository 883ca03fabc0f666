//! CPU cost of one NVML collection through gpuscope's fake NVML
//! (tests/fake-nvml), with 1 and 8 GPUs, 3 compute processes per GPU.
//!
//! NVML initialisation is process-global and the fake reads its scenario
//! once, at the first init, so this binary re-executes itself once per
//! scenario: the parent writes the scenario, starts the GPU processes
//! (`sleep`, real pids so /proc attribution has files to read) and runs a
//! child with `GPUSCOPE_FAKE_NVML_SCENARIO` set in the child's environment
//! only. Each child measures, in group `nvml_<N>gpu`:
//!
//! - `agent_nvml`: one `NvmlSource::collect()` (the agent's NVML worker:
//!   the request/response channel to its thread, every NVML call, the
//!   conversion to `GpuSample`s);
//! - `agent_nvml_no_health`: the same without the health counters
//!   (throttle reasons every collection, ECC, remapped rows and PCIe every
//!   tenth, limits once): the agent as it was before them, for the ratio;
//! - `wrapper_calls`: the nvml-wrapper calls of a collection without health
//!   counters, made directly on the bench thread, without the agent's code
//!   (the fake's work plus nvml-wrapper's, the floor of
//!   `agent_nvml_no_health`);
//! - `round_no_kubelet`: one full `GpuCollector::collect()` (PodResources
//!   against a missing socket, NVML, /proc attribution of every process);
//! - `round_fake_kubelet`: the same with gpuscope-tests' fake PodResources
//!   server holding every GPU (a real gRPC `List` over a unix socket).
//!
//! `benches/nvml_per_gpu.py` prints the medians per GPU. With
//! `GPUSCOPE_BENCH_NVML_PROFILE=K` a child only runs K `agent_nvml`
//! collections and exits, and `GPUSCOPE_BENCH_NVML_WRAP` runs each child
//! under a command (both for `benches/nvml_callgrind.sh`).
//!
//! ```text
//! cargo build --release -p gpuscope-fake-nvml
//! cargo bench -p gpuscope-benches --bench nvml && python3 benches/nvml_per_gpu.py
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use criterion::Criterion;
use gpuscope_agent::collect::gpu::nvml::{NvmlCollection, NvmlSettings, NvmlSource};
use gpuscope_agent::runtime::{GpuCollector, GpuSettings};
use gpuscope_tests::fake_pod_resources::{Container, FakePodResources, Pod};
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};

/// Compute processes per GPU.
const PROCESSES_PER_GPU: usize = 3;
/// Set in a child: its number of GPUs.
const CHILD_VAR: &str = "GPUSCOPE_BENCH_NVML_GPUS";
/// In the parent: a command (words split at spaces, `{gpus}` replaced by
/// the GPU count) to run each child under, e.g. valgrind.
const WRAP_VAR: &str = "GPUSCOPE_BENCH_NVML_WRAP";
/// Set in a child: run this many collections without criterion, then exit.
const PROFILE_VAR: &str = "GPUSCOPE_BENCH_NVML_PROFILE";
/// Set: the profiled collections read no health counters.
const NO_HEALTH_VAR: &str = "GPUSCOPE_BENCH_NVML_NO_HEALTH";
/// Set: the profiled collections read the health counters but not NVLink.
const NO_NVLINK_VAR: &str = "GPUSCOPE_BENCH_NVML_NO_NVLINK";

fn uuid(i: usize) -> String {
    format!(
        "GPU-{:08x}-0000-4000-8000-{:012x}",
        0xbe7c_0000_u32 + i as u32,
        i
    )
}

/// The fake library: `GPUSCOPE_FAKE_NVML_LIB`, else next to this binary's
/// profile directory (`cargo build --release -p gpuscope-fake-nvml`).
fn fake_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("GPUSCOPE_FAKE_NVML_LIB") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    for dir in [deps.parent().expect("profile dir"), deps] {
        let lib = dir.join("libgpuscope_fake_nvml.so");
        if lib.exists() {
            return lib;
        }
    }
    panic!(
        "libgpuscope_fake_nvml.so not found next to {}: run cargo build --release -p gpuscope-fake-nvml",
        exe.display()
    );
}

/// A scenario of `pids.len() / 3` GPUs, busy, with their processes, and
/// an H100 SXM's 18 NVLink links each.
fn scenario(pids: &[u32]) -> String {
    let gpus: Vec<String> = pids
        .chunks(PROCESSES_PER_GPU)
        .enumerate()
        .map(|(i, p)| {
            format!(
                r#"{{"uuid": "{}", "pci_bus_id": "00000000:{:02X}:00.0", "persistence_mode": true,
  "nvlinks": 18,
  "series": [{{"t": 0, "util_gpu": 97, "util_mem": 41, "memory_used_bytes": 22548578304,
              "power_mw": 612000, "temp_c": 64, "sm_clock_mhz": 1980,
              "nvlink_replay": [0, 3], "nvlink_crc_flit": [12]}},
             {{"t": 3600, "util_gpu": 12}}],
  "processes": [{{"pid": {}, "used_memory_bytes": 17179869184, "sm_util": 80, "mem_util": 30}},
                {{"pid": {}, "used_memory_bytes": 4294967296, "sm_util": 10, "mem_util": 2}},
                {{"pid": {}, "used_memory_bytes": 1073741824}}]}}"#,
                uuid(i),
                0x19 + 0x10 * i,
                p[0],
                p[1],
                p[2]
            )
        })
        .collect();
    format!(
        "{{\"driver_version\": \"550.54.15\", \"gpus\": [{}]}}",
        gpus.join(",\n")
    )
}

fn main() {
    match std::env::var(CHILD_VAR) {
        Ok(n) => child(n.parse().expect("GPU count")),
        Err(_) => parent(),
    }
}

/// Runs one child per scenario with this process's arguments.
fn parent() {
    let lib = fake_lib();
    let dir = tempfile::tempdir().expect("tempdir");
    for gpus in [1usize, 8] {
        let mut sleepers: Vec<Child> = (0..gpus * PROCESSES_PER_GPU)
            .map(|_| {
                Command::new("sleep")
                    .arg("3600")
                    .spawn()
                    .expect("spawn sleep")
            })
            .collect();
        let pids: Vec<u32> = sleepers.iter().map(Child::id).collect();
        let path = dir.path().join(format!("gpus{gpus}.json"));
        std::fs::write(&path, scenario(&pids)).expect("write scenario");
        let exe = std::env::current_exe().expect("current_exe");
        // GPUSCOPE_BENCH_NVML_WRAP: a command the child runs under.
        let wrap = std::env::var(WRAP_VAR).unwrap_or_default();
        let mut wrap = wrap
            .split_whitespace()
            .map(|w| w.replace("{gpus}", &gpus.to_string()));
        let mut cmd = match wrap.next() {
            Some(w) => {
                let mut cmd = Command::new(w);
                cmd.args(wrap).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        let status = cmd
            .args(std::env::args_os().skip(1))
            .env(CHILD_VAR, gpus.to_string())
            .env("GPUSCOPE_FAKE_NVML_SCENARIO", &path)
            .env("GPUSCOPE_FAKE_NVML_LIB", &lib)
            .status()
            .expect("run the bench child");
        for s in &mut sleepers {
            let _ = s.kill();
            let _ = s.wait();
        }
        assert!(status.success(), "the {gpus}-GPU child failed: {status}");
    }
}

fn check(c: &NvmlCollection, gpus: usize) {
    assert!(c.simulated, "not the fake NVML");
    assert_eq!(c.gpus.len(), gpus, "{c:?}");
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let procs: usize = c.gpus.iter().map(|g| g.processes.len()).sum();
    assert_eq!(procs, gpus * PROCESSES_PER_GPU, "{c:?}");
}

fn settings(lib: &Path) -> NvmlSettings {
    NvmlSettings {
        lib_path: Some(lib.to_path_buf()),
        deadline: Duration::from_secs(5),
        health: true,
        nvlink: true,
    }
}

fn child(gpus: usize) {
    let lib = fake_lib();
    let (tx, _notices) = mpsc::channel();
    // `GPUSCOPE_BENCH_NVML_NO_HEALTH`: the profiled collections leave the
    // health counters out (the agent before them, for
    // `benches/nvml_callgrind.py --no-health`).
    let health = std::env::var_os(NO_HEALTH_VAR).is_none();
    let nvlink = std::env::var_os(NO_NVLINK_VAR).is_none();
    let mut source = NvmlSource::start(
        NvmlSettings {
            health,
            nvlink,
            ..settings(&lib)
        },
        tx,
    )
    .expect("start NvmlSource");
    check(&source.collect().expect("first collection"), gpus);

    if let Ok(k) = std::env::var(PROFILE_VAR) {
        for _ in 0..k.parse::<u32>().expect("iterations") {
            black_box(source.collect().expect("collect"));
        }
        return;
    }

    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut g = c.benchmark_group(format!("nvml_{gpus}gpu"));

    g.bench_function("agent_nvml", |b| {
        b.iter(|| black_box(source.collect().expect("collect")));
    });

    // The agent before health counters: the same collection without them.
    let (tx, _notices) = mpsc::channel();
    let mut without = NvmlSource::start(
        NvmlSettings {
            health: false,
            ..settings(&lib)
        },
        tx,
    )
    .expect("start NvmlSource");
    assert!(without.collect().expect("collect").gpus[0].health.is_none());
    g.bench_function("agent_nvml_no_health", |b| {
        b.iter(|| black_box(without.collect().expect("collect")));
    });

    // The same nvml-wrapper calls as the agent's worker, on this thread.
    // Init is reference-counted in the fake: this shares the scenario.
    let nvml = Nvml::builder()
        .lib_path(lib.as_os_str())
        .init()
        .expect("nvml init");
    let mut last_seen = vec![0u64; gpus];
    g.bench_function("wrapper_calls", |b| {
        b.iter(|| wrapper_calls(&nvml, &mut last_seen));
    });

    let collector = |socket: &Path| {
        GpuCollector::start(
            GpuSettings {
                nvml: settings(&lib),
                pod_resources_socket: socket.to_path_buf(),
                pod_resources_timeout: Duration::from_secs(2),
            },
            PathBuf::from("/proc"),
            Path::new("/sys/fs/cgroup"),
        )
        .expect("start GpuCollector")
    };
    let missing = tempfile::tempdir().expect("tempdir");
    let mut round = collector(&missing.path().join("kubelet.sock"));
    let first = round.collect();
    assert_eq!(first.gpus.len(), gpus);
    g.bench_function("round_no_kubelet", |b| {
        b.iter(|| black_box(round.collect()));
    });

    let pods = (0..gpus)
        .map(|i| {
            Pod::new("ml", &format!("trainer-{i}"))
                .container(Container::new("main").devices("nvidia.com/gpu", &[uuid(i).as_str()]))
        })
        .collect();
    let kubelet = FakePodResources::normal(pods).expect("fake kubelet");
    let mut round = collector(kubelet.socket_path());
    let first = round.collect();
    assert!(
        first.gpus.iter().all(|g| g.holders.len() == 1),
        "holders missing: {:?}",
        first.pod_resources
    );
    g.bench_function("round_fake_kubelet", |b| {
        b.iter(|| black_box(round.collect()));
    });
    g.finish();
    c.final_summary();
}

/// Every call `Worker::collect` / `read_device` makes for a GPU without
/// MIG, results kept only as far as `black_box`.
fn wrapper_calls(nvml: &Nvml, last_seen: &mut [u64]) {
    black_box(nvml.sys_driver_version().ok());
    let count = nvml.device_count().expect("count");
    for index in 0..count {
        let d = nvml.device_by_index(index).expect("handle");
        black_box(d.uuid().ok());
        black_box(d.memory_info().ok());
        black_box(d.name().ok());
        black_box(d.pci_info().ok());
        black_box(d.utilization_rates().ok());
        black_box(d.power_usage().ok());
        black_box(d.enforced_power_limit().ok());
        black_box(d.temperature(TemperatureSensor::Gpu).ok());
        black_box(d.clock_info(Clock::SM).ok());
        black_box(d.is_in_persistent_mode().ok());
        black_box(d.running_compute_processes().ok());
        let last = &mut last_seen[index as usize];
        if let Ok(samples) = d.process_utilization_stats(Some(*last).filter(|&l| l > 0)) {
            *last = samples.iter().map(|s| s.timestamp).max().unwrap_or(*last);
            black_box(samples);
        }
        black_box(d.mig_mode().ok());
    }
}
