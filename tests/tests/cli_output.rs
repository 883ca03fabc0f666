//! What `gpuscope nodes`, `gpus`, `pods`, `oom` and `events` print, in
//! `-o table` and `-o json`, compared with the checked-in text in
//! `tests/snapshots/cli-<command>-<format>.txt`: a change of what users
//! read is a visible diff. Run with `GPUSCOPE_UPDATE_SNAPSHOTS=1` to
//! rewrite them after an intended change (refused when `CI` is set).
//!
//! A real `gpuscope-aggregator` on loopback is fed by a scripted agent that
//! speaks the real ingest protocol (Hello, a NodeReport, EventBatches,
//! Acks) for two nodes, with messages built from the agent's own model
//! types by its `wire` conversions, and fixed timestamps. Only what the
//! aggregator stamps on receipt (`last_seen`, `received`) and relative
//! times (`3s ago`) are masked before comparing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gpuscope_model::text::table;
use gpuscope_model::wire::node_event;
use gpuscope_model::{
    CgroupDriver, CgroupVersion, ContainerRef, ContainerRuntime, ContainerSample, CpuStats,
    Detection, Event, GpuHolder, GpuProcess, GpuSample, MemoryEvents, MemoryStats, NodeSample,
    OomConstraint, OomKill, Pressure, Psi, PsiLine, PsiScope, QosClass, RecorderPoint, SourceState,
    SourceStatus, Timestamp, Victim,
};
use gpuscope_proto::v1 as pb;
use gpuscope_tests::{KillOnDrop, free_port, updating_snapshots, workspace_bin};
use serde_json::Value;
use tokio_stream::wrappers::ReceiverStream;

/// 2025-03-14T09:26:53Z: "now" for every sample the scripted agents send.
const T0: u64 = 1_741_944_413_000_000_000;
const SEC: u64 = 1_000_000_000;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

const NODE_A: &str = "gpu-node-a";
const NODE_B: &str = "gpu-node-b";
const BOOT_A: &str = "6f1c2a9e-3b7d-4c55-9a0e-1d2f3b4c5d6e";
const BOOT_B: &str = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d";

const TRAINER_POD: &str = "7c1e4b2a-9d3f-4e8a-b6c5-2f1a0e9d8c7b";
const TRAINER_ID: &str = "3f9a2c7e1b5d4a8f6e2c9b1d7a3f5e8c0b4d6a2e9f1c3b5d7e9a1c3e5f7b9d1a";
const SIDECAR_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const INFER_POD: &str = "e4d3c2b1-a0f9-4e8d-9c7b-6a5f4e3d2c1b";
const INFER_ID: &str = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f";

const GPU_A0: &str = "GPU-1d6b3a2e-5f4c-4b7a-9e8d-0c1b2a3f4e5d";
const GPU_A1: &str = "GPU-2e7c4b3f-6a5d-4c8b-8f9e-1d2c3b4a5f6e";
const GPU_B0: &str = "GPU-3f8d5c4a-7b6e-4d9c-a0f1-2e3d4c5b6a7f";

fn systemd_ref(pod: &str, id: &str) -> ContainerRef {
    ContainerRef {
        cgroup_path: format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
            pod.replace('-', "_")
        ),
        pod_uid: Some(pod.to_owned()),
        container_id: Some(id.to_owned()),
        qos: Some(QosClass::Burstable),
        runtime: Some(ContainerRuntime::Containerd),
        driver: Some(CgroupDriver::Systemd),
    }
}

fn cgroupfs_ref(pod: &str, id: &str) -> ContainerRef {
    ContainerRef {
        cgroup_path: format!("/kubepods/pod{pod}/{id}"),
        pod_uid: Some(pod.to_owned()),
        container_id: Some(id.to_owned()),
        qos: Some(QosClass::Guaranteed),
        runtime: Some(ContainerRuntime::Unknown),
        driver: Some(CgroupDriver::Cgroupfs),
    }
}

fn psi(avg10: f32, total_us: u64) -> Psi {
    let line = PsiLine {
        avg10,
        avg60: avg10 / 2.0,
        avg300: avg10 / 4.0,
        total_us,
    };
    Psi {
        some: line,
        full: Some(PsiLine {
            total_us: total_us / 2,
            ..line
        }),
    }
}

fn container(
    c: ContainerRef,
    version: CgroupVersion,
    usage: u64,
    limit: Option<u64>,
    oom_kill: u64,
    mem_psi: f32,
) -> ContainerSample {
    ContainerSample {
        time: Timestamp(T0),
        container: c,
        cgroup_version: version,
        memory: MemoryStats {
            usage_bytes: usage,
            limit_bytes: limit,
            peak_bytes: Some(usage + usage / 8),
            anon_bytes: usage / 4 * 3,
            file_bytes: usage / 4,
            shmem_bytes: usage / 16,
            events: MemoryEvents {
                oom: (version == CgroupVersion::V2).then_some(oom_kill),
                oom_kill,
                oom_group_kill: (version == CgroupVersion::V2).then_some(0),
                max: (version == CgroupVersion::V2).then_some(oom_kill * 35),
                high: (version == CgroupVersion::V2).then_some(0),
                under_oom: (version == CgroupVersion::V1).then_some(false),
                failcnt: (version == CgroupVersion::V1).then_some(0),
            },
            reclaim: Default::default(),
        },
        cpu: Some(CpuStats {
            usage_us: 9_876_543_210,
            nr_throttled: Some(12),
            throttled_us: Some(345_678),
        }),
        pressure: Pressure {
            memory: Some(psi(mem_psi, 1_234_567)),
            cpu: Some(psi(1.5, 7_654_321)),
            io: Some(psi(0.0, 42)),
        },
        pressure_scope: if version == CgroupVersion::V2 {
            PsiScope::Container
        } else {
            PsiScope::Node
        },
        stuck: Vec::new(),
    }
}

fn holder(namespace: &str, pod: &str, container: &str, device: &str) -> GpuHolder {
    GpuHolder {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        container: container.to_owned(),
        resource_name: "nvidia.com/gpu".to_owned(),
        device_id: device.to_owned(),
        replica: None,
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per GPU field the snapshots show"
)]
fn gpu(
    index: u32,
    uuid: &str,
    name: &str,
    util: u32,
    used: u64,
    total: u64,
    processes: Vec<GpuProcess>,
    holders: Vec<GpuHolder>,
    simulated: bool,
) -> GpuSample {
    GpuSample {
        time: Timestamp(T0),
        index,
        uuid: uuid.to_owned(),
        parent_uuid: None,
        name: name.to_owned(),
        pci_bus_id: format!("00000000:{:02X}:00.0", 0x19 + index * 0x10),
        utilization_gpu_percent: Some(util),
        utilization_memory_percent: Some(util / 2),
        memory_total_bytes: total,
        memory_used_bytes: used,
        power_draw_watts: Some(90.0 + f64::from(util) * 5.5),
        power_limit_watts: Some(700.0),
        temperature_celsius: Some(30 + util / 3),
        sm_clock_mhz: Some(1980),
        persistence_mode: Some(true),
        processes,
        holders,
        simulated,
        health: None,
    }
}

/// One scripted node: what its agent reports and the events it sends.
struct Script {
    identity: pb::NodeIdentity,
    node: NodeSample,
    containers: Vec<ContainerSample>,
    gpus: Vec<GpuSample>,
    events: Vec<Event>,
}

fn identity(node: &str, boot: &str, kernel: &str, mode: pb::CgroupMode) -> pb::NodeIdentity {
    pb::NodeIdentity {
        node_name: node.to_owned(),
        boot_id: boot.to_owned(),
        kernel_release: kernel.to_owned(),
        cgroup_mode: mode as i32,
        // Fixed, so a version bump does not change the snapshots.
        agent_version: "0.0.0-snapshot".to_owned(),
    }
}

fn node_sample(boot: &str, kernel: &str, total: u64, available: u64) -> NodeSample {
    NodeSample {
        time: Timestamp(T0),
        boot_id: boot.to_owned(),
        kernel_release: kernel.to_owned(),
        cgroup_mode: None,
        mem_total_bytes: total,
        mem_available_bytes: available,
        pressure: Pressure {
            memory: Some(psi(0.25, 99_000)),
            cpu: Some(psi(3.0, 5_000_000)),
            io: Some(psi(0.5, 77_000)),
        },
    }
}

/// Node A: a trainer on GPU 0 that was OOM-killed once (and still runs:
/// the kill took a data-loader worker), a sidecar, an idle GPU 1.
fn node_a() -> Script {
    let kernel = "6.8.0-1015-nvidia";
    let trainer = systemd_ref(TRAINER_POD, TRAINER_ID);
    let sidecar = systemd_ref(TRAINER_POD, SIDECAR_ID);
    let kill_time = T0 - 60 * SEC;
    let window: Vec<RecorderPoint> = (0..6u64)
        .map(|i| RecorderPoint {
            time: Timestamp(kill_time - (5 - i) * 10 * SEC),
            usage_bytes: 26 * GIB + i * GIB,
            anon_bytes: 24 * GIB + i * GIB,
            file_bytes: 2 * GIB,
            shmem_bytes: 512 * MIB,
            memory_some_avg10: i as f32 * 4.5,
            memory_some_total_us: 1_000_000 + i * 250_000,
            memory_full_total_us: 400_000 + i * 100_000,
        })
        .collect();
    let kill = OomKill {
        time: Timestamp(kill_time),
        detected_at: Timestamp(kill_time + 3 * SEC / 1000),
        detected_by: Detection::Notification,
        container: trainer.clone(),
        cgroup_version: Some(CgroupVersion::V2),
        limit_bytes: Some(32 * GIB),
        peak_bytes: Some(32 * GIB),
        oom_kill: Some(1),
        oom_group_kill: Some(0),
        constraint: OomConstraint::Memcg,
        victim: Some(Victim {
            pid: 48_213,
            comm: "pt_data_worker".to_owned(),
            total_vm_bytes: 41 * GIB,
            anon_rss_bytes: 18 * GIB + 300 * MIB,
            file_rss_bytes: 96 * MIB,
            shmem_rss_bytes: 512 * MIB,
            uid: Some(1000),
            pgtables_bytes: Some(38 * MIB),
            oom_score_adj: Some(984),
        }),
        group: None,
        trigger_comm: Some("python3".to_owned()),
        kernel_usage_bytes: Some(32 * GIB),
        kernel_limit_bytes: Some(32 * GIB),
        window,
        pressure_scope: Some(PsiScope::Container),
    };
    Script {
        identity: identity(NODE_A, BOOT_A, kernel, pb::CgroupMode::V2),
        node: node_sample(BOOT_A, kernel, 2048 * GIB, 1536 * GIB + 700 * MIB),
        containers: vec![
            container(
                trainer.clone(),
                CgroupVersion::V2,
                27 * GIB + 400 * MIB,
                Some(32 * GIB),
                1,
                12.5,
            ),
            container(
                sidecar,
                CgroupVersion::V2,
                48 * MIB + 123_456,
                Some(256 * MIB),
                0,
                0.0,
            ),
        ],
        gpus: vec![
            gpu(
                0,
                GPU_A0,
                "NVIDIA H100 80GB HBM3",
                97,
                71 * GIB + 512 * MIB,
                80 * GIB,
                vec![GpuProcess {
                    pid: 47_001,
                    used_memory_bytes: Some(71 * GIB),
                    sm_util_percent: Some(95),
                    mem_util_percent: Some(61),
                    container: Some(trainer),
                }],
                vec![holder("ml-team", "trainer-0", "trainer", GPU_A0)],
                false,
            ),
            gpu(
                1,
                GPU_A1,
                "NVIDIA H100 80GB HBM3",
                0,
                0,
                80 * GIB,
                Vec::new(),
                Vec::new(),
                false,
            ),
        ],
        events: vec![Event::OomKill(Box::new(kill))],
    }
}

/// Node B (cgroup v1, fake NVML): an inference pod whose GPU raised XID 79,
/// a host process on the GPU, and the kernel log source unavailable.
fn node_b() -> Script {
    let kernel = "5.15.0-1063-aws";
    let infer = cgroupfs_ref(INFER_POD, INFER_ID);
    Script {
        identity: identity(NODE_B, BOOT_B, kernel, pb::CgroupMode::V1),
        node: node_sample(BOOT_B, kernel, 1024 * GIB, 200 * GIB),
        containers: vec![container(
            infer.clone(),
            CgroupVersion::V1,
            9 * GIB + 100 * MIB,
            None,
            0,
            0.75,
        )],
        gpus: vec![gpu(
            0,
            GPU_B0,
            "NVIDIA A100-SXM4-40GB",
            41,
            30 * GIB,
            40 * GIB,
            vec![
                GpuProcess {
                    pid: 3_101,
                    used_memory_bytes: Some(29 * GIB),
                    sm_util_percent: Some(40),
                    mem_util_percent: Some(22),
                    container: Some(infer),
                },
                GpuProcess {
                    pid: 977,
                    used_memory_bytes: None,
                    sm_util_percent: None,
                    mem_util_percent: None,
                    container: None,
                },
            ],
            vec![holder("serving", "infer-1", "server", GPU_B0)],
            true,
        )],
        events: vec![
            Event::Source {
                time: Timestamp(T0 - 600 * SEC),
                status: SourceStatus {
                    source: "kmsg".to_owned(),
                    state: SourceState::Unavailable,
                    reason: Some("/dev/kmsg: Permission denied (os error 13)".to_owned()),
                },
            },
            Event::Xid {
                time: Timestamp(T0 - 30 * SEC),
                gpu_uuid: GPU_B0.to_owned(),
                gpu_index: Some(0),
                xid: 79,
                count: 1,
                holders: vec![holder("serving", "infer-1", "server", GPU_B0)],
                simulated: true,
                kernel: None,
            },
        ],
    }
}

/// An open ingest stream, kept open (the node stays `connected`) until
/// dropped.
struct Stream {
    _tx: tokio::sync::mpsc::Sender<pb::AgentMessage>,
    _inbound: tonic::Streaming<pb::AggregatorMessage>,
}

/// Plays `script` as the agent does (`agent/src/ship/stream.rs`): Hello,
/// a report, then the events in one batch numbered from 1; returns once
/// the aggregator acknowledged every event.
async fn play(url: &str, script: &Script, within: Duration) -> Stream {
    let deadline = tokio::time::Instant::now() + within;
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(url.to_owned())
            .expect("url")
            .connect()
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the aggregator at {url} did not accept connections within {within:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let mut client = pb::ingest_client::IngestClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let send = |kind| pb::AgentMessage { kind: Some(kind) };
    tx.send(send(pb::agent_message::Kind::Hello(pb::Hello {
        node: Some(script.identity.clone()),
        protocol: 1,
    })))
    .await
    .expect("queue hello");
    let mut inbound = client
        .stream(ReceiverStream::new(rx))
        .await
        .expect("open the ingest stream")
        .into_inner();
    tx.send(send(pb::agent_message::Kind::Report(pb::NodeReport {
        node: Some(script.identity.clone()),
        node_sample: Some((&script.node).into()),
        containers: script.containers.iter().map(Into::into).collect(),
        events: Vec::new(),
        dropped_samples: 0,
        gpus: script.gpus.iter().map(Into::into).collect(),
        agent: None,
    })))
    .await
    .expect("send report");
    let events: Vec<pb::NodeEvent> = script
        .events
        .iter()
        .zip(1..)
        .map(|(e, seq)| node_event(e, seq))
        .collect();
    let last = events.len() as u64;
    let boot = script.identity.boot_id.clone();
    tx.send(send(pb::agent_message::Kind::Events(pb::EventBatch {
        boot_id: boot.clone(),
        events,
    })))
    .await
    .expect("send events");
    loop {
        let msg = tokio::time::timeout_at(deadline, inbound.message())
            .await
            .unwrap_or_else(|_| panic!("no ack of {boot} up to {last} within {within:?}"))
            .expect("ingest stream failed")
            .expect("the aggregator closed the ingest stream");
        if let Some(pb::aggregator_message::Kind::Ack(ack)) = msg.kind
            && ack.boot_id == boot
            && ack.up_to_seq >= last
        {
            break;
        }
    }
    Stream {
        _tx: tx,
        _inbound: inbound,
    }
}

/// Polls the query API until it shows both nodes connected with all their
/// containers, GPUs and incidents.
async fn wait_for_data(url: &str, scripts: &[Script], within: Duration) {
    let deadline = Instant::now() + within;
    let mut client = pb::query_client::QueryClient::connect(url.to_owned())
        .await
        .expect("connect the query API");
    let want_incidents: usize = scripts.iter().map(|s| s.events.len()).sum();
    let mut last = String::new();
    while Instant::now() < deadline {
        let nodes = client
            .list_nodes(pb::ListNodesRequest {})
            .await
            .expect("ListNodes")
            .into_inner()
            .nodes;
        let incidents = client
            .list_incidents(pb::ListIncidentsRequest::default())
            .await
            .expect("ListIncidents")
            .into_inner()
            .incidents;
        let nodes_ok = scripts.iter().all(|s| {
            nodes.iter().any(|n| {
                n.identity.as_ref().map(|i| i.node_name.as_str())
                    == Some(s.identity.node_name.as_str())
                    && n.connected
                    && n.latest.is_some()
                    && n.containers as usize == s.containers.len()
                    && n.gpus as usize == s.gpus.len()
            })
        });
        if nodes_ok && incidents.len() == want_incidents {
            return;
        }
        last = format!("{nodes:?}\n{} incident(s)", incidents.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the aggregator did not show the scripted data within {within:?}; last:\n{last}");
}

/// Runs the real `gpuscope` binary against the aggregator.
fn gpuscope(url: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(workspace_bin("gpuscope"));
    cmd.args(["--aggregator", url]).args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("GPUSCOPE_")) {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("run gpuscope");
    assert!(
        out.status.success(),
        "`gpuscope {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Whether a table cell is a relative time from `render::ago`
/// (`12s ago`, `5m ago`, `3h ago`, `412d ago`).
fn is_ago(cell: &str) -> bool {
    cell.strip_suffix(" ago")
        .and_then(|t| t.strip_suffix(['s', 'm', 'h', 'd']))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits an aligned table into cells at the columns of its header (whose
/// names hold no spaces), checks that the CLI's renderer lays those cells
/// out exactly as printed (the columns were aligned), replaces relative
/// times by `<ago>` and lays the table out again, so a relative time of
/// another width does not move the other columns.
fn mask_ago_in_table(text: &str) -> String {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let Some(header) = lines.first() else {
        return text.to_owned();
    };
    let starts: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != ' ' && (i == 0 || header[i - 1] == ' '))
        .collect();
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|line| {
            starts
                .iter()
                .enumerate()
                .map(|(c, &from)| {
                    let to = starts.get(c + 1).copied().unwrap_or(line.len());
                    let cell: String = line
                        .get(from.min(line.len())..to.min(line.len()))
                        .unwrap_or_default()
                        .iter()
                        .collect();
                    cell.trim_end().to_owned()
                })
                .collect()
        })
        .collect();
    assert_eq!(
        table(&rows),
        text,
        "the table's rows are not aligned on its header's columns"
    );
    let masked: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| if is_ago(&c) { "<ago>".to_owned() } else { c })
                .collect()
        })
        .collect();
    table(&masked)
}

/// Replaces the value of every `key` (times the aggregator stamps on
/// receipt) by `"<varies>"`, at any depth.
fn mask_key(v: &mut Value, key: &str) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map.iter_mut() {
                if k == key {
                    *inner = Value::String("<varies>".to_owned());
                } else {
                    mask_key(inner, key);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| mask_key(i, key)),
        _ => {}
    }
}

/// Pretty JSON with the aggregator's receive times masked.
fn mask_json(text: &str) -> String {
    let mut v: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    mask_key(&mut v, "last_seen");
    mask_key(&mut v, "received");
    serde_json::to_string_pretty(&v).expect("json") + "\n"
}

/// JSON lines, each with the aggregator's receive time masked.
fn mask_json_lines(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line is not JSON ({e}): {line}"));
            mask_key(&mut v, "received");
            serde_json::to_string(&v).expect("json") + "\n"
        })
        .collect()
}

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("snapshots")
        .join(name)
}

/// Compares `got` with the snapshot `name` (or rewrites it under
/// `GPUSCOPE_UPDATE_SNAPSHOTS`); returns a description of a difference.
fn check(name: &str, command: &str, got: &str) -> Option<String> {
    let path = snapshot_path(name);
    if updating_snapshots() {
        std::fs::write(&path, got).expect("write snapshot");
        return None;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (GPUSCOPE_UPDATE_SNAPSHOTS=1 creates it)",
            path.display()
        )
    });
    (got != want).then(|| {
        format!(
            "`{command}` changed ({}):\n--- snapshot\n{want}--- now\n{got}",
            path.display()
        )
    })
}

#[test]
fn cli_tables_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("aggregator.log")).expect("log file");
    let mut aggregator = Command::new(workspace_bin("gpuscope-aggregator"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("GPUSCOPE_")) {
        aggregator.env_remove(k);
    }
    let _aggregator = KillOnDrop(
        aggregator
            .args(["--no-kube", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            // The scripted events are from a fixed day in the past: keep them.
            .args(["--retention", "100y"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn aggregator"),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let scripts = [node_a(), node_b()];
    let _streams = runtime.block_on(async {
        let mut streams = Vec::new();
        for s in &scripts {
            streams.push(play(&url, s, Duration::from_secs(20)).await);
        }
        wait_for_data(&url, &scripts, Duration::from_secs(10)).await;
        streams
    });

    // The events are from a fixed day: show every past one.
    let commands: [(&str, &[&str]); 5] = [
        ("nodes", &["nodes"]),
        ("gpus", &["gpus"]),
        ("pods", &["pods"]),
        ("oom", &["oom"]),
        ("events", &["events", "--since", "100y"]),
    ];
    let mut diffs = Vec::new();
    for (name, args) in commands {
        for format in ["table", "json"] {
            let mut full = args.to_vec();
            full.extend(["-o", format]);
            let out = gpuscope(&url, &full);
            let normalised = match (name, format) {
                ("nodes" | "oom", "table") => mask_ago_in_table(&out),
                ("events", "json") => mask_json_lines(&out),
                (_, "json") => mask_json(&out),
                _ => out,
            };
            let command = format!("gpuscope {}", full.join(" "));
            diffs.extend(check(
                &format!("cli-{name}-{format}.txt"),
                &command,
                &normalised,
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{}\nIf intended, rerun with GPUSCOPE_UPDATE_SNAPSHOTS=1 and commit the diff.",
        diffs.join("\n")
    );
}
