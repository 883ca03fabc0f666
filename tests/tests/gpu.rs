//! The agent's GPU path end to end: the real nvml-wrapper loading the fake
//! `libnvidia-ml.so`, the kubelet PodResources fake on a unix socket, real
//! processes in real cgroups, and `gpuscope-agent snapshot` / `watch`.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gpuscope_tests::fake_pod_resources::{Container, FakePodResources, Pod};
use gpuscope_tests::{
    Agent, CgroupGuard, Driver, V1_MEMORY, fake_nvml_lib, have_v1_memory, ids, is_kill_of,
    kubelet_path, require, snapshot, source_of,
};
use serde_json::{Value, json};

const GPU_A: &str = "GPU-aaaaaaaa-1111-2222-3333-444444444444";
const GPU_B: &str = "GPU-bbbbbbbb-1111-2222-3333-444444444444";

/// Writes a scenario and returns the environment that selects it.
fn scenario(dir: &Path, value: &Value) -> String {
    let path = dir.join("scenario.json");
    std::fs::write(&path, serde_json::to_vec_pretty(value).expect("json")).expect("write");
    path.display().to_string()
}

/// Agent flags for the fake NVML and a PodResources socket.
fn gpu_args(lib: &Path, socket: &Path) -> Vec<String> {
    vec![
        "--nvml-lib".into(),
        lib.display().to_string(),
        "--pod-resources-socket".into(),
        socket.display().to_string(),
        "--kmsg".into(),
        "/nonexistent-kmsg".into(),
    ]
}

/// `watch` over the fake NVML with scenario `scn`, collecting every
/// `interval`, and a kubelet that gave GPU A to `ml/trainer-0` (kept alive
/// by the second value).
fn watch_trainer_on_a(scn: &str, interval: &str) -> (Agent, FakePodResources) {
    let kubelet = FakePodResources::normal(vec![
        Pod::new("ml", "trainer-0")
            .container(Container::new("main").devices("nvidia.com/gpu", &[GPU_A])),
    ])
    .expect("fake kubelet");
    let lib = fake_nvml_lib();
    let mut flags = gpu_args(&lib, kubelet.socket_path());
    flags.extend(["--interval".into(), interval.into()]);
    let agent = Agent::watch_with(&args(&flags), &[("GPUSCOPE_FAKE_NVML_SCENARIO", scn)]);
    (agent, kubelet)
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn gpu<'a>(snap: &'a Value, uuid: &str) -> &'a Value {
    snap["gpus"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["uuid"] == uuid))
        .unwrap_or_else(|| panic!("no GPU {uuid} in {snap}"))
}

#[test]
fn values_holders_and_idle_allocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scn = scenario(
        dir.path(),
        &json!({
            "driver_version": "550.54.15",
            "gpus": [
                {"uuid": GPU_A, "name": "NVIDIA H100 80GB HBM3", "pci_bus_id": "00000000:19:00.0",
                 "memory_total_bytes": 85899345920u64, "power_limit_mw": 700000, "persistence_mode": true,
                 "series": [{"t": 0, "util_gpu": 97, "util_mem": 41, "memory_used_bytes": 17179869184u64,
                             "power_mw": 612000, "temp_c": 64, "sm_clock_mhz": 1980}]},
                {"uuid": GPU_B, "pci_bus_id": "00000000:3B:00.0", "memory_total_bytes": 85899345920u64}
            ]
        }),
    );
    // GPU A is time-sliced between two pods; GPU B is allocated and idle.
    let kubelet = FakePodResources::normal(vec![
        Pod::new("ml", "trainer-0")
            .container(Container::new("main").devices("nvidia.com/gpu", &[&format!("{GPU_A}::0")])),
        Pod::new("ml", "notebook")
            .container(Container::new("lab").devices("nvidia.com/gpu", &[&format!("{GPU_A}::1")])),
        Pod::new("research", "idle-job")
            .container(Container::new("worker").devices("nvidia.com/gpu", &[GPU_B])),
    ])
    .expect("fake kubelet");
    let lib = fake_nvml_lib();
    let flags = gpu_args(&lib, kubelet.socket_path());
    let snap = snapshot(&args(&flags), &[("GPUSCOPE_FAKE_NVML_SCENARIO", &scn)]);

    let a = gpu(&snap, GPU_A);
    assert_eq!(a["index"], 0);
    assert_eq!(a["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(a["pci_bus_id"], "00000000:19:00.0");
    assert_eq!(a["memory_total_bytes"], 85_899_345_920u64);
    assert_eq!(a["memory_used_bytes"], 17_179_869_184u64);
    assert_eq!(a["utilization_gpu_percent"], 97);
    assert_eq!(a["utilization_memory_percent"], 41);
    assert_eq!(a["power_draw_watts"], 612.0);
    assert_eq!(a["power_limit_watts"], 700.0);
    assert_eq!(a["temperature_celsius"], 64);
    assert_eq!(a["sm_clock_mhz"], 1980);
    assert_eq!(a["persistence_mode"], true);
    assert_eq!(a["simulated"], true, "readings from the fake are labelled");
    let pods: Vec<(&str, u64)> = a["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .map(|h| {
            (
                h["pod"].as_str().unwrap_or(""),
                h["replica"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(pods, vec![("trainer-0", 0), ("notebook", 1)], "{a}");

    let b = gpu(&snap, GPU_B);
    assert_eq!(b["holders"][0]["namespace"], "research");
    assert_eq!(b["holders"][0]["pod"], "idle-job");
    assert_eq!(b["holders"][0]["container"], "worker");
    assert_eq!(
        b["processes"].as_array().map(Vec::len),
        Some(0),
        "allocated, idle"
    );
    assert_eq!(
        source_of(&snap["sources"], "nvml").expect("nvml")["state"],
        "ok"
    );
    assert_eq!(
        source_of(&snap["sources"], "pod_resources").expect("podres")["state"],
        "ok"
    );
}

#[test]
fn health_counters_reach_the_sample_and_unsupported_calls_stay_quiet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scn = scenario(
        dir.path(),
        &json!({
            "gpus": [
                {"uuid": GPU_A, "pci_bus_id": "00000000:19:00.0",
                 "sm_clock_max_mhz": 1980, "pcie_link_gen_max": 5, "pcie_link_width_max": 16,
                 "temp_slowdown_c": 87, "temp_shutdown_c": 92, "ecc_corrected_before": 12,
                 "series": [{"t": 0, "util_gpu": 99, "sm_clock_mhz": 990,
                             "throttle_reasons": ["hw_slowdown", "hw_power_brake"],
                             "ecc_corrected": 5, "ecc_uncorrected": 1,
                             "remapped_uncorrected": 1, "remap_pending": true,
                             "pcie_gen": 4, "pcie_width": 8, "pcie_replays": 17}]},
                // ECC off and no row remapping: NOT_SUPPORTED, as on a GPU
                // without them; a V100 retires pages instead.
                {"uuid": GPU_B, "pci_bus_id": "00000000:3B:00.0", "page_retirement": true,
                 "series": [{"t": 0, "retired_sbe": 3, "retired_pending": true}]}
            ],
            "faults": [
                {"function": "nvmlDeviceGetTotalEccErrors", "gpu": 1, "code": 3},
                {"function": "nvmlDeviceGetFieldValues", "gpu": 1, "code": 3}
            ]
        }),
    );
    let kubelet = FakePodResources::normal(vec![]).expect("fake kubelet");
    let lib = fake_nvml_lib();
    let flags = gpu_args(&lib, kubelet.socket_path());
    let snap = snapshot(&args(&flags), &[("GPUSCOPE_FAKE_NVML_SCENARIO", &scn)]);

    let a = &gpu(&snap, GPU_A)["health"];
    assert_eq!(
        a["throttle_reasons"],
        json!(["hw_slowdown", "hw_power_brake"]),
        "{a}"
    );
    assert_eq!(a["sm_clock_max_mhz"], 1980);
    assert_eq!(a["ecc_corrected_volatile"], 5);
    assert_eq!(a["ecc_uncorrected_volatile"], 1);
    assert_eq!(a["ecc_corrected_aggregate"], 17);
    assert_eq!(a["ecc_uncorrected_aggregate"], 1);
    assert_eq!(a["remapped_rows_corrected"], 0);
    assert_eq!(a["remapped_rows_uncorrected"], 1);
    assert_eq!(a["remap_pending"], true);
    assert_eq!(a["remap_failed"], false);
    assert_eq!(
        (a["pcie_link_gen"].as_u64(), a["pcie_link_gen_max"].as_u64()),
        (Some(4), Some(5))
    );
    assert_eq!(
        (
            a["pcie_link_width"].as_u64(),
            a["pcie_link_width_max"].as_u64()
        ),
        (Some(8), Some(16))
    );
    assert_eq!(a["pcie_replays"], 17);
    assert_eq!(a["temperature_slowdown_celsius"], 87);
    assert_eq!(a["temperature_shutdown_celsius"], 92);
    assert!(
        a.get("retired_pages_dbe").is_none(),
        "an H100 retires no pages: {a}"
    );

    let b = &gpu(&snap, GPU_B)["health"];
    assert_eq!(
        b["throttle_reasons"],
        json!([]),
        "not held: an empty list, {b}"
    );
    assert!(
        b.get("ecc_corrected_volatile").is_none(),
        "unsupported: absent, {b}"
    );
    assert!(b.get("remap_pending").is_none(), "{b}");
    assert_eq!(b["pcie_link_gen"], 5);
    assert_eq!(b["retired_pages_sbe"], 3);
    assert_eq!(b["retired_pages_dbe"], 0);
    assert_eq!(b["retired_pages_pending"], true);
    let nvml = source_of(&snap["sources"], "nvml").expect("nvml");
    assert_eq!(nvml["state"], "ok", "unsupported is not an error: {nvml}");
}

#[test]
fn nvlink_links_reach_the_sample_and_health_transitions_are_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scn = scenario(
        dir.path(),
        &json!({
            "gpus": [
                // Four links, one with old replays; at 1 s link 2 goes
                // down, the power brake engages and a remap becomes
                // pending.
                {"uuid": GPU_A, "pci_bus_id": "00000000:19:00.0", "nvlinks": 4,
                 "series": [{"t": 0, "util_gpu": 95, "remap_pending": false,
                             "nvlink_replay": [0, 3], "nvlink_crc_flit": [0, 0, 0, 9]},
                            {"t": 1.0, "throttle_reasons": ["hw_power_brake"], "remap_pending": true,
                             "nvlink_down": [2], "nvlink_recovery": [0, 1, 4]}]},
                // No NVLink: NOT_SUPPORTED, said once, not an error.
                {"uuid": GPU_B, "pci_bus_id": "00000000:3B:00.0"}
            ]
        }),
    );
    let (mut agent, _kubelet) = watch_trainer_on_a(&scn, "100ms");
    let first = agent.expect_line(Duration::from_secs(10), "no sample of GPU A", |v| {
        v["kind"] == "gpu_sample" && v["uuid"] == GPU_A
    });
    assert_eq!(
        first["health"]["nvlinks"],
        json!([
            {"link": 0, "active": true, "crc_flit_errors": 0, "crc_data_errors": 0, "replay_errors": 0, "recovery_errors": 0},
            {"link": 1, "active": true, "crc_flit_errors": 0, "crc_data_errors": 0, "replay_errors": 3, "recovery_errors": 0},
            {"link": 2, "active": true, "crc_flit_errors": 0, "crc_data_errors": 0, "replay_errors": 0, "recovery_errors": 0},
            {"link": 3, "active": true, "crc_flit_errors": 9, "crc_data_errors": 0, "replay_errors": 0, "recovery_errors": 0}
        ]),
        "{first}"
    );
    let mut changes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut b_samples = Vec::new();
    while changes.len() < 3 && Instant::now() < deadline {
        for v in agent.drain_for(Duration::from_millis(200)) {
            if v["kind"] == "gpu_health_change" {
                changes.push(v);
            } else if v["kind"] == "gpu_sample" && v["uuid"] == GPU_B {
                b_samples.push(v);
            } else if v["kind"] == "source" && v["source"] == "nvml" {
                assert_eq!(v["state"], "ok", "unsupported NVLink is not an error: {v}");
            }
        }
    }
    let find = |change: &str| {
        changes
            .iter()
            .find(|v| v["change"] == change)
            .unwrap_or_else(|| panic!("no {change} among {changes:?}"))
    };
    let down = find("nvlink_down");
    assert_eq!(down["link"], 2, "{down}");
    assert_eq!(down["gpu_uuid"], GPU_A);
    assert_eq!(down["gpu_index"], 0);
    assert_eq!(down["holders"][0]["pod"], "trainer-0", "{down}");
    assert_eq!(down["simulated"], true);
    assert_eq!(find("throttle_started")["reason"], "hw_power_brake");
    find("remap_pending");
    // Each transition once, not at every collection.
    let later = agent.drain_for(Duration::from_millis(1500));
    let again: Vec<_> = later
        .iter()
        .filter(|v| v["kind"] == "gpu_health_change")
        .collect();
    assert!(again.is_empty(), "{again:?}");
    let after = later
        .iter()
        .rev()
        .find(|v| v["kind"] == "gpu_sample" && v["uuid"] == GPU_A)
        .expect("GPU A still sampled");
    let links = &after["health"]["nvlinks"];
    assert_eq!(links[1]["recovery_errors"], 1, "{after}");
    assert_eq!(links[2]["active"], false, "{after}");
    assert!(
        links[2].get("recovery_errors").is_none(),
        "a link that is down is not asked for its counters: {after}"
    );
    b_samples.extend(
        later
            .into_iter()
            .filter(|v| v["kind"] == "gpu_sample" && v["uuid"] == GPU_B),
    );
    assert!(!b_samples.is_empty(), "GPU B sampled");
    for b in &b_samples {
        assert!(b["health"].get("nvlinks").is_none(), "no NVLink: {b}");
    }
    agent.assert_running();
}

/// A process that sleeps inside a fresh v1 memory cgroup at a kubelet path.
struct Sleeper {
    child: Child,
    _cgroup: CgroupGuard,
    pod: String,
    id: String,
}

impl Sleeper {
    fn start(tag: u32) -> Self {
        let (pod, id) = ids(tag);
        let path = kubelet_path(Driver::Cgroupfs, &pod, &id);
        let cgroup = CgroupGuard::create(V1_MEMORY.as_ref(), &path).expect("cgroup");
        let child = Command::new("sh")
            .args(["-c", &format!("{}; exec sleep 60", cgroup.enter())])
            .spawn()
            .expect("spawn");
        // Wait until the shell has moved itself.
        let procs = cgroup.dir.join("cgroup.procs");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&procs).is_ok_and(|p| p.contains(&child.id().to_string())) {
            assert!(
                Instant::now() < deadline,
                "process never entered its cgroup"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child,
            _cgroup: cgroup,
            pod,
            id,
        }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn processes_in_real_cgroups_are_attributed_to_their_containers() {
    if !require("root and the cgroup v1 memory hierarchy", have_v1_memory()) {
        return;
    }
    let first = Sleeper::start(20);
    let second = Sleeper::start(21);
    let dir = tempfile::tempdir().expect("tempdir");
    let scn = scenario(
        dir.path(),
        &json!({"gpus": [{"uuid": GPU_A, "processes": [
            {"pid": first.child.id(), "used_memory_bytes": 1073741824u64, "sm_util": 90, "mem_util": 40},
            {"pid": second.child.id(), "used_memory_bytes": 2147483648u64, "sm_util": 5, "mem_util": 1},
            {"pid": 1, "used_memory_bytes": 4096}
        ]}]}),
    );
    let lib = fake_nvml_lib();
    let flags = gpu_args(&lib, &dir.path().join("no-kubelet.sock"));
    let snap = snapshot(&args(&flags), &[("GPUSCOPE_FAKE_NVML_SCENARIO", &scn)]);
    let procs = gpu(&snap, GPU_A)["processes"]
        .as_array()
        .expect("processes")
        .clone();
    assert_eq!(procs.len(), 3, "{procs:?}");
    for (sleeper, bytes) in [(&first, 1_073_741_824u64), (&second, 2_147_483_648)] {
        let p = procs
            .iter()
            .find(|p| p["pid"] == sleeper.child.id())
            .expect("process listed");
        assert_eq!(p["pod_uid"], sleeper.pod.as_str(), "{p}");
        assert_eq!(p["container_id"], sleeper.id.as_str(), "{p}");
        assert_eq!(p["used_memory_bytes"], bytes, "{p}");
    }
    let first_util = procs
        .iter()
        .find(|p| p["pid"] == first.child.id())
        .expect("first");
    assert_eq!(first_util["sm_util_percent"], 90);
    let host = procs.iter().find(|p| p["pid"] == 1).expect("pid 1");
    assert!(host["pod_uid"].is_null(), "pid 1 is no container: {host}");
    let podres = source_of(&snap["sources"], "pod_resources").expect("podres");
    assert_eq!(podres["state"], "unavailable");
    assert!(
        podres["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no-kubelet.sock")),
        "{podres}"
    );
}

#[test]
fn xid_and_gpu_lost_are_events_naming_the_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scn = scenario(
        dir.path(),
        &json!({"gpus": [
            {"uuid": GPU_A, "xids": [{"t": 1.5, "xid": 79}], "lost_at": 3.0},
            {"uuid": GPU_B, "pci_bus_id": "00000000:3B:00.0"}
        ]}),
    );
    let (mut agent, _kubelet) = watch_trainer_on_a(&scn, "250ms");
    let xid = agent.expect_line(Duration::from_secs(10), "no xid event", |v| {
        v["kind"] == "xid"
    });
    assert_eq!(xid["xid"], 79);
    assert_eq!(xid["gpu_uuid"], GPU_A);
    assert_eq!(xid["gpu_index"], 0);
    assert_eq!(xid["count"], 1);
    assert_eq!(xid["holders"][0]["pod"], "trainer-0", "{xid}");
    assert_eq!(xid["simulated"], true);
    let lost = agent.expect_line(Duration::from_secs(10), "no gpu_lost event", |v| {
        v["kind"] == "gpu_lost"
    });
    assert_eq!(lost["gpu_index"], 0);
    assert_eq!(lost["gpu_uuid"], GPU_A);
    assert_eq!(lost["holders"][0]["pod"], "trainer-0", "{lost}");
    // Lost once, not every round; the other GPU is still read.
    let later = agent.drain_for(Duration::from_millis(1500));
    assert!(!later.iter().any(|v| v["kind"] == "gpu_lost"), "{later:?}");
    assert!(
        later
            .iter()
            .any(|v| v["kind"] == "gpu_sample" && v["uuid"] == GPU_B),
        "GPU B keeps being sampled"
    );
    agent.assert_running();
}

#[test]
fn kernel_xids_already_logged_are_reported_once_as_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scn = scenario(
        dir.path(),
        &json!({"gpus": [
            {"uuid": GPU_A, "pci_bus_id": "00000000:19:00.0"},
            {"uuid": GPU_B, "pci_bus_id": "00000000:3B:00.0"}
        ]}),
    );
    // The ring buffer as the agent finds it at start: a real line of
    // driver 535 (see agent/tests/fixtures/kmsg/) on GPU B's address, the
    // same text injected from user space (facility 1), an NVSwitch SXid.
    let kmsg = dir.path().join("kmsg");
    std::fs::write(
        &kmsg,
        "3,900,1000000,-;NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n\
         14,901,1000100,-;NVRM: Xid (PCI:0000:19:00): 48, pid=1, name=fake, forged from user space\n\
         3,902,1000200,-;nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013, Non-fatal, Link 44 Minion Link DLREQ interrupt\n",
    )
    .expect("write kmsg");
    let kubelet = FakePodResources::normal(vec![
        Pod::new("ml", "trainer-0")
            .container(Container::new("main").devices("nvidia.com/gpu", &[GPU_B])),
    ])
    .expect("fake kubelet");
    let lib = fake_nvml_lib();
    let mut flags = gpu_args(&lib, kubelet.socket_path());
    flags[5] = kmsg.display().to_string();
    flags.extend(["--interval".into(), "250ms".into()]);
    let mut agent = Agent::watch_with(&args(&flags), &[("GPUSCOPE_FAKE_NVML_SCENARIO", &scn)]);
    let xid = agent.expect_line(Duration::from_secs(10), "no xid event", |v| {
        v["kind"] == "xid"
    });
    assert_eq!(xid["xid"], 79, "{xid}");
    assert_eq!(xid["gpu_uuid"], GPU_B, "joined by PCI address: {xid}");
    assert_eq!(xid["gpu_index"], 1);
    assert_eq!(xid["kernel"]["pci_bus_id"], "0000:3b:00");
    assert_eq!(xid["kernel"]["message"], "GPU has fallen off the bus.");
    assert_eq!(xid["kernel"]["before_agent_start"], true);
    assert!(xid["kernel"].get("pid").is_none(), "pid unknown: {xid}");
    assert_eq!(
        xid["holders"],
        json!([]),
        "who holds the GPU now did not necessarily hold it then"
    );
    assert_eq!(xid["simulated"], false, "the kernel line is real text");
    let later = agent.drain_for(Duration::from_millis(1500));
    assert!(
        !later.iter().any(|v| v["kind"] == "xid"),
        "once, and not the forged line: {later:?}"
    );
    agent.assert_running();
}

#[test]
fn an_sxid_is_one_switch_event_and_a_history_pid_names_no_pod() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scn = scenario(
        dir.path(),
        &json!({"gpus": [{"uuid": GPU_A, "pci_bus_id": "00000000:19:00.0"}]}),
    );
    // An SXid as the NVSwitch driver prints it, three records for one
    // error (driver 570, see agent/tests/fixtures/kmsg/), and an XID naming
    // this test's own pid, both in the ring buffer before the agent starts:
    // history, whose pid may since have been reused, so it names no pod.
    let pid = std::process::id();
    let kmsg = dir.path().join("kmsg");
    std::fs::write(
        &kmsg,
        format!(
            "3,900,1000000,-;nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013, Data {{0x0000002b, 0x0000002b, 0x00000000, 0x0000002b, 0x80005302, 0x00000000, 0x00000000, 0x00000000, 0x00000000}}\n\
             3,901,1000010,-;nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013, Non-fatal, Link 44 Minion Link DLREQ interrupt\n\
             3,902,1000020,-;nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013, Severity 0 Engine instance 44 Sub-engine instance 00\n\
             3,903,1000030,-;NVRM: Xid (PCI:0000:19:00): 43, pid={pid}, name=gpu-test, Ch 00000008\n"
        ),
    )
    .expect("write kmsg");
    let kubelet = FakePodResources::normal(vec![]).expect("fake kubelet");
    let lib = fake_nvml_lib();
    let mut flags = gpu_args(&lib, kubelet.socket_path());
    flags[5] = kmsg.display().to_string();
    flags.extend(["--interval".into(), "250ms".into()]);
    let mut agent = Agent::watch_with(&args(&flags), &[("GPUSCOPE_FAKE_NVML_SCENARIO", &scn)]);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = |lines: &[Value], kind: &str| lines.iter().any(|v| v["kind"] == kind);
    while Instant::now() < deadline && !(seen(&lines, "xid") && seen(&lines, "switch_xid")) {
        lines.extend(agent.drain_for(Duration::from_millis(250)));
    }
    lines.extend(agent.drain_for(Duration::from_millis(1000)));
    let xid = lines
        .iter()
        .find(|v| v["kind"] == "xid")
        .unwrap_or_else(|| panic!("no xid event: {lines:?}"));
    assert_eq!(xid["xid"], 43, "{xid}");
    assert_eq!(xid["gpu_uuid"], GPU_A, "{xid}");
    assert_eq!(xid["kernel"]["pid"], pid, "{xid}");
    assert_eq!(xid["kernel"]["before_agent_start"], true, "{xid}");
    assert!(xid["kernel"].get("container").is_none(), "{xid}");
    let sxids: Vec<&Value> = lines.iter().filter(|v| v["kind"] == "switch_xid").collect();
    assert_eq!(sxids.len(), 1, "three records, one error: {sxids:?}");
    let s = sxids[0];
    assert_eq!(s["switch_pci_bus_id"], "0000:04:00.0", "{s}");
    assert_eq!(s["device"], "nvidia-nvswitch3");
    assert_eq!(s["sxid"], 22013);
    assert_eq!(s["severity"], "Non-fatal");
    assert_eq!(s["message"], "Link 44 Minion Link DLREQ interrupt");
    assert_eq!(s["before_agent_start"], true);
    agent.assert_running();
}

#[test]
fn device_count_change_is_an_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scn = scenario(
        dir.path(),
        &json!({"gpus": [
            {"uuid": GPU_A},
            {"uuid": GPU_B, "pci_bus_id": "00000000:3B:00.0", "present_until": 1.5}
        ]}),
    );
    let lib = fake_nvml_lib();
    let mut flags = gpu_args(&lib, &dir.path().join("none.sock"));
    flags.extend(["--interval".into(), "250ms".into()]);
    let mut agent = Agent::watch_with(&args(&flags), &[("GPUSCOPE_FAKE_NVML_SCENARIO", &scn)]);
    let change = agent.expect_line(Duration::from_secs(10), "no count change", |v| {
        v["kind"] == "gpu_count_changed"
    });
    assert_eq!(change["before"], 2);
    assert_eq!(change["after"], 1);
}

#[test]
fn mig_instances_have_their_own_uuids_and_holders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mig = "MIG-11111111-1111-5111-8111-111111111111";
    let scn = scenario(
        dir.path(),
        &json!({"gpus": [{"uuid": GPU_A, "name": "NVIDIA A100-SXM4-40GB", "memory_total_bytes": 42949672960u64,
            "mig": {"max_devices": 7, "instances": [
                {"uuid": mig, "memory_total_bytes": 10737418240u64, "memory_used_bytes": 536870912u64,
                 "processes": [{"pid": 5151, "used_memory_bytes": 536870912u64}]}]}}]}),
    );
    let kubelet = FakePodResources::normal(vec![Pod::new("ml", "small").container(
        Container::new("main").devices("nvidia.com/mig-1g.10gb", &[&format!("{mig}::2")]),
    )])
    .expect("fake kubelet");
    let lib = fake_nvml_lib();
    let flags = gpu_args(&lib, kubelet.socket_path());
    let snap = snapshot(&args(&flags), &[("GPUSCOPE_FAKE_NVML_SCENARIO", &scn)]);
    let inst = gpu(&snap, mig);
    assert_eq!(inst["parent_uuid"], GPU_A);
    assert_eq!(inst["memory_total_bytes"], 10_737_418_240u64);
    assert_eq!(inst["memory_used_bytes"], 536_870_912u64);
    assert_eq!(inst["processes"][0]["pid"], 5151);
    assert_eq!(inst["holders"][0]["pod"], "small");
    assert_eq!(
        inst["holders"][0]["resource_name"],
        "nvidia.com/mig-1g.10gb"
    );
    assert_eq!(inst["holders"][0]["replica"], 2);
    assert!(
        gpu(&snap, GPU_A)["holders"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[test]
fn bad_nvml_input_is_named_and_the_rest_keeps_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = fake_nvml_lib();
    let socket = dir.path().join("none.sock");

    // No library at all.
    let missing = dir.path().join("libnvidia-ml.so.1");
    let flags = gpu_args(&missing, &socket);
    let snap = snapshot(&args(&flags), &[]);
    let nvml = source_of(&snap["sources"], "nvml").expect("nvml");
    assert_eq!(nvml["state"], "unavailable");
    assert!(
        nvml["reason"]
            .as_str()
            .is_some_and(|r| r.contains("libnvidia-ml.so.1")),
        "{nvml}"
    );
    assert!(snap["node"].is_object(), "the node is still read");

    // A malformed scenario: NVML init fails, with the reason.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"gpus\": [ {\"uuid\": ").expect("write");
    let flags = gpu_args(&lib, &socket);
    let snap = snapshot(
        &args(&flags),
        &[("GPUSCOPE_FAKE_NVML_SCENARIO", bad.to_str().expect("utf-8"))],
    );
    let nvml = source_of(&snap["sources"], "nvml").expect("nvml");
    assert_eq!(nvml["state"], "unavailable", "{nvml}");
    assert!(
        nvml["reason"]
            .as_str()
            .is_some_and(|r| r.contains("loading")),
        "{nvml}"
    );
    assert_eq!(snap["gpus"].as_array().map(Vec::len), Some(0));

    // An error code on one call: that field is missing, the source says
    // which call failed, the GPU is still there.
    let scn = scenario(
        dir.path(),
        &json!({"gpus": [{"uuid": GPU_A}],
                "faults": [{"function": "nvmlDeviceGetPowerUsage", "code": 999}]}),
    );
    let snap = snapshot(&args(&flags), &[("GPUSCOPE_FAKE_NVML_SCENARIO", &scn)]);
    assert!(gpu(&snap, GPU_A)["power_draw_watts"].is_null());
    let nvml = source_of(&snap["sources"], "nvml").expect("nvml");
    assert_eq!(nvml["state"], "degraded");
    assert!(
        nvml["reason"]
            .as_str()
            .is_some_and(|r| r.contains("nvmlDeviceGetPowerUsage on GPU 0")),
        "{nvml}"
    );
}

/// A hung NVML call is reported late (naming the call) and does not delay
/// a real OOM kill's event.
#[test]
fn hung_nvml_call_does_not_delay_an_oom_event() {
    if !require("root and the cgroup v1 memory hierarchy", have_v1_memory()) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let scn = scenario(
        dir.path(),
        &json!({"gpus": [{"uuid": GPU_A}],
                "faults": [{"function": "nvmlDeviceGetUtilizationRates", "hang_seconds": 3600, "after": 0}]}),
    );
    let (pod, id) = ids(22);
    let path = kubelet_path(Driver::Cgroupfs, &pod, &id);
    let cg = CgroupGuard::create(V1_MEMORY.as_ref(), &path).expect("cgroup");
    cg.set_v1_limit(32 << 20).expect("limit");
    let lib = fake_nvml_lib();
    let socket = dir.path().join("none.sock");
    let flags = [
        "--nvml-lib",
        lib.to_str().expect("utf-8"),
        "--pod-resources-socket",
        socket.to_str().expect("utf-8"),
        "--nvml-deadline",
        "300ms",
        "--interval",
        "200ms",
    ];
    let mut agent = Agent::watch_with(&flags, &[("GPUSCOPE_FAKE_NVML_SCENARIO", &scn)]);
    let late = agent.expect_line(Duration::from_secs(10), "no nvml status", |v| {
        v["kind"] == "source" && v["source"] == "nvml"
    });
    assert_eq!(late["state"], "degraded", "{late}");
    assert!(
        late["reason"]
            .as_str()
            .is_some_and(|r| r.contains("nvmlDeviceGetUtilizationRates on GPU 0")),
        "{late}"
    );
    assert!(
        agent
            .wait_for(Duration::from_secs(10), |v| gpuscope_tests::is_sample_of(
                v, &path
            ))
            .is_some(),
        "{}",
        agent.tail()
    );
    let started = Instant::now();
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("{}; exec {} 256", cg.enter(), env!("CARGO_BIN_EXE_memhog")),
        ])
        .output()
        .expect("memhog");
    assert!(!out.status.success());
    let kill = agent.expect_line(Duration::from_secs(5), "no oom_kill", |v| {
        is_kill_of(v, &path)
    });
    let waited = started.elapsed();
    assert_eq!(kill["victim"]["comm"], "memhog", "{kill}");
    eprintln!("OOM event {waited:?} after the hog started, with NVML hung");
    assert!(
        waited < Duration::from_secs(2),
        "the OOM event waited {waited:?}"
    );
}
