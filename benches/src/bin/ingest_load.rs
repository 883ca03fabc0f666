//! `ingest_load`: a load generator for `gpuscope-aggregator` that speaks the
//! real ingest protocol (`gpuscope.v1.Ingest/Stream`).
//!
//! It simulates `--nodes` nodes, each with `--gpus` GPUs and `--containers`
//! containers. Every simulated node opens its own stream (many streams share
//! each of the `--connections` HTTP/2 connections), sends a Hello, then a
//! `NodeReport` (one sample of each container and GPU, values varying from
//! report to report) `--rate` times per second, or as fast as the aggregator
//! takes them with `--rate 0`. Optionally each node also sends `EventBatch`es
//! with sequence numbers: OOM kills with a recorder window at the start
//! (`--ooms`), and a source-status event every `--event-interval` seconds.
//! Acks are counted. At the end every stream is closed and the generator
//! waits until the aggregator ended each one, which it does only after it
//! applied every message before the close, so what is counted as sent was
//! also ingested.
//!
//! Values (`--values`): `busy` moves every figure each report the way a busy
//! training node's do, in the units the kernel and NVML report them (memory
//! in whole pages, anonymous memory walking, page cache and shared memory
//! changing now and then, CPU time growing by up to 4 cores, memory PSI as
//! the kernel's 10 s decaying average printed in hundredths, GPUs 85-100 %
//! busy with power following and memory held by the caching allocator);
//! `noise` makes every figure jump by arbitrary amounts every report, an
//! upper bound for the aggregator's history encoding. With `--protocol 2`
//! (the agent's) each container's identity is sent in the first report of
//! its stream and then named by its stream-local id; `--protocol 1` sends
//! it in every sample. An OOM-killed container (`--ooms`) is restarted as
//! the kubelet would: the pod's next container has a new container ID.
//!
//! Reports are encoded once per tick from a per-node template updated in
//! place and handed to tonic as bytes (a pass-through codec), so the
//! generator spends its CPU on the wire format, not on cloning messages.
//!
//! Prints progress lines and, last, one `RESULT key=value ...` line.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use gpuscope_proto::v1 as pb;
use prost::Message;
use prost::bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Simulate many gpuscope agents against one aggregator.
#[derive(Debug, Parser)]
#[command(name = "ingest_load")]
struct Args {
    /// The aggregator's URL.
    #[arg(long, default_value = "http://127.0.0.1:7470")]
    aggregator: String,
    /// Simulated nodes (one ingest stream each).
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// GPUs per node.
    #[arg(long, default_value_t = 8)]
    gpus: usize,
    /// Containers per node.
    #[arg(long, default_value_t = 32)]
    containers: usize,
    /// Reports per second per node; 0: as fast as the aggregator takes them.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// HTTP/2 connections the streams are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds of reports (after every stream is open).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Each node sends one event (a source-status change) every this many
    /// seconds; 0: none.
    #[arg(long, default_value_t = 0.0)]
    event_interval: f64,
    /// OOM kills to send before the reports, spread over the nodes (each its
    /// own EventBatch, with a `--window-points` recorder window).
    #[arg(long, default_value_t = 0)]
    ooms: usize,
    /// Recorder points per OOM kill (1 s apart).
    #[arg(long, default_value_t = 300)]
    window_points: usize,
    /// Write "POD_UID NODE" of every OOM-killed container here, one a line.
    #[arg(long)]
    pods_out: Option<PathBuf>,
    /// Node names are PREFIX-00000, PREFIX-00001, ...
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Tokio worker threads of the generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 10.0)]
    progress: f64,
    /// Ingest protocol revision: 2 names containers by stream-local ids
    /// after their first sample, 1 sends every sample's identity.
    #[arg(long, default_value_t = gpuscope_proto::INGEST_PROTOCOL,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(gpuscope_proto::INGEST_PROTOCOL)))]
    protocol: u32,
    /// How sample values move from report to report.
    #[arg(long, value_enum, default_value_t = Values::Busy)]
    values: Values,
    /// Before the timed reports, each node sends this many reports dated 1 s
    /// apart ending now, as fast as the aggregator takes them: fills the
    /// aggregator's history as that many seconds at 1 Hz would.
    #[arg(long, default_value_t = 0)]
    fill: u64,
}

/// How sample values move (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Values {
    /// As on a busy training node, in the kernel's and NVML's units.
    Busy,
    /// Every figure jumps by arbitrary amounts every report.
    Noise,
}

#[derive(Default)]
struct Counters {
    streams_open: AtomicU64,
    reports: AtomicU64,
    container_samples: AtomicU64,
    gpu_samples: AtomicU64,
    bytes: AtomicU64,
    events_sent: AtomicU64,
    events_acked: AtomicU64,
    late_ticks: AtomicU64,
    errors: AtomicU64,
    filled: AtomicU64,
}

/// Encodes pre-encoded `AgentMessage` bytes as they are; decodes
/// `AggregatorMessage`s.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;
#[derive(Debug)]
struct RawEncoder;
#[derive(Debug)]
struct AckDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for AckDecoder {
    type Item = pb::AggregatorMessage;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        pb::AggregatorMessage::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding AggregatorMessage: {e}")))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = pb::AggregatorMessage;
    type Encoder = RawEncoder;
    type Decoder = AckDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> AckDecoder {
        AckDecoder
    }
}

/// xorshift64*: cheap, deterministic per node.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn node_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:05}")
}

fn boot_id(i: usize) -> String {
    format!("b0075eed-{:04x}-4000-8000-{:012x}", i >> 16, i)
}

fn pod_uid(node: usize, pod: usize) -> String {
    format!("{node:08x}-{pod:04x}-4000-8000-00000000beef")
}

fn container_ref(node: usize, c: usize) -> pb::ContainerRef {
    container_ref_run(node, c, 0)
}

/// Container `c` of node `node` after `restarts` restarts.
fn container_ref_run(node: usize, c: usize, restarts: u64) -> pb::ContainerRef {
    // Two containers per pod, burstable, containerd, cgroupfs driver.
    let uid = pod_uid(node, c / 2);
    let id = format!("{:032x}{:016x}{:016x}", 0xc0ffee_u64 + restarts, node, c);
    pb::ContainerRef {
        cgroup_path: format!("/kubepods/burstable/pod{uid}/{id}"),
        pod_uid: uid,
        container_id: id,
        qos: pb::QosClass::Burstable as i32,
        runtime: pb::ContainerRuntime::Containerd as i32,
        driver: pb::CgroupDriver::Cgroupfs as i32,
    }
}

fn psi(avg10: f32, total: u64, full: bool) -> pb::Psi {
    let line = |a: f32, t: u64| pb::PsiLine {
        avg10: a,
        avg60: a * 0.8,
        avg300: a * 0.5,
        total_us: t,
    };
    pb::Psi {
        some: Some(line(avg10, total)),
        full: full.then(|| line(avg10 / 2.0, total / 2)),
    }
}

fn identity(args: &Args, i: usize) -> pb::NodeIdentity {
    pb::NodeIdentity {
        node_name: node_name(&args.prefix, i),
        boot_id: boot_id(i),
        kernel_release: "5.15.0-1071-nvidia".into(),
        cgroup_mode: pb::CgroupMode::V2 as i32,
        agent_version: "0.1.0-sim".into(),
    }
}

/// A node's report template: every container and GPU, updated in place.
fn template(args: &Args, i: usize, rng: &mut Rng) -> pb::NodeReport {
    let containers = (0..args.containers)
        .map(|c| {
            let limit = (2u64 << rng.below(6)) << 30;
            pb::ContainerSample {
                time_unix_nanos: 0,
                container: Some(container_ref(i, c)),
                cgroup_version: pb::CgroupVersion::V2 as i32,
                memory: Some(pb::MemoryStats {
                    usage_bytes: limit / 2,
                    limit_bytes: Some(limit),
                    peak_bytes: Some(limit / 2),
                    anon_bytes: 0,
                    file_bytes: 0,
                    shmem_bytes: 0,
                    events: Some(pb::MemoryEvents {
                        oom: Some(0),
                        oom_kill: 0,
                        oom_group_kill: Some(0),
                        max: Some(rng.below(50)),
                        high: Some(0),
                        under_oom: None,
                        failcnt: None,
                    }),
                    // What a v2 agent sends since it reads the reclaim
                    // counters.
                    reclaim: Some(pb::Reclaim {
                        pgmajfault: Some(rng.below(1 << 20)),
                        workingset_refault_anon: Some(0),
                        workingset_refault_file: Some(rng.below(1 << 24)),
                    }),
                }),
                cpu: Some(pb::CpuStats {
                    usage_us: rng.below(1 << 40),
                    nr_throttled: Some(rng.below(1000)),
                    throttled_us: Some(rng.below(1 << 30)),
                }),
                pressure: Some(pb::Pressure {
                    memory: Some(psi(0.0, rng.below(1 << 30), true)),
                    cpu: Some(psi(0.0, rng.below(1 << 34), true)),
                    io: Some(psi(0.0, rng.below(1 << 30), true)),
                }),
                pressure_scope: pb::PsiScope::Container as i32,
                ref_id: if args.protocol >= 2 { c as u32 + 1 } else { 0 },
                stuck: Vec::new(),
            }
        })
        .collect();
    let gpus = (0..args.gpus)
        .map(|g| {
            let uuid = format!(
                "GPU-{:08x}-{:04x}-4{:03x}-8000-{:012x}",
                i,
                g,
                g,
                rng.below(1 << 48)
            );
            let holder_c = g % args.containers.max(1);
            pb::GpuSample {
                time_unix_nanos: 0,
                index: g as u32,
                uuid: uuid.clone(),
                parent_uuid: None,
                name: "NVIDIA H100 80GB HBM3".into(),
                pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + g * 0x10),
                utilization_gpu_percent: Some(0),
                utilization_memory_percent: Some(0),
                memory_total_bytes: 80 << 30,
                memory_used_bytes: 0,
                power_draw_watts: Some(0.0),
                power_limit_watts: Some(700.0),
                temperature_celsius: Some(40),
                sm_clock_mhz: Some(1980),
                persistence_mode: Some(true),
                processes: vec![pb::GpuProcess {
                    pid: 10_000 + rng.below(100_000) as u32,
                    used_memory_bytes: Some(0),
                    sm_util_percent: Some(0),
                    mem_util_percent: Some(0),
                    container: (args.containers > 0).then(|| container_ref(i, holder_c)),
                }],
                holders: vec![pb::GpuHolder {
                    namespace: "ml-train".into(),
                    pod: format!("train-{i:05}-{}", holder_c / 2),
                    container: "trainer".into(),
                    resource_name: "nvidia.com/gpu".into(),
                    device_id: uuid,
                    replica: None,
                }],
                simulated: true,
                health: None,
            }
        })
        .collect();
    pb::NodeReport {
        node: Some(identity(args, i)),
        node_sample: Some(pb::NodeSample {
            time_unix_nanos: 0,
            mem_total_bytes: 2 << 40,
            mem_available_bytes: 1 << 40,
            pressure: Some(pb::Pressure {
                memory: Some(psi(0.0, 1 << 20, true)),
                cpu: Some(psi(0.0, 1 << 30, false)),
                io: Some(psi(0.0, 1 << 25, true)),
            }),
        }),
        containers,
        events: vec![],
        dropped_samples: 0,
        gpus,
        agent: Some(pb::AgentHealth {
            queue_events: 0,
            queue_bytes: 0,
            queue_dropped_events: 0,
            reconnects: 0,
            cpu_seconds: 12.5,
            resident_memory_bytes: 24 << 20,
            kmsg_not_kernel_records: 0,
        }),
    }
}

/// Moves every value of the template one step and stamps `now`.
fn step(r: &mut pb::NodeReport, rng: &mut Rng, now: u64, values: Values) {
    match values {
        Values::Busy => step_busy(r, rng, now),
        Values::Noise => step_noise(r, rng, now),
    }
}

/// `x` bytes rounded down to whole 4 KiB pages.
fn pages(x: f64) -> u64 {
    (x.max(0.0) as u64) & !4095
}

/// The kernel's 10 s PSI average after one more second in which `stalled`
/// (0..1) of the time was stalled, in the hundredths it is printed with.
fn psi_avg10(avg10: f32, stalled: f64) -> f32 {
    let decay = (-0.1f64).exp();
    let v = f64::from(avg10) * decay + stalled * 100.0 * (1.0 - decay);
    ((v * 100.0).round() / 100.0) as f32
}

/// A busy node's second (see the module's documentation): containers'
/// anonymous memory walks by up to 0.4 % of the limit, the page cache
/// moves in 30 % of seconds and shared memory in 1 %, CPU time grows by up
/// to 4 cores, one container in ten stalls on memory (up to 30 % of the
/// time); GPUs are 85-100 % busy, their memory changes in 2 % of seconds.
fn step_busy(r: &mut pb::NodeReport, rng: &mut Rng, now: u64) {
    if let Some(n) = r.node_sample.as_mut() {
        n.time_unix_nanos = now;
        n.mem_available_bytes = pages((1u64 << 40) as f64 + rng.unit() * (1u64 << 30) as f64);
    }
    for (k, c) in r.containers.iter_mut().enumerate() {
        c.time_unix_nanos = now;
        if let Some(m) = c.memory.as_mut() {
            let limit = m.limit_bytes.unwrap_or(8 << 30) as f64;
            let walk = (rng.unit() - 0.5) * 0.008 * limit;
            let anon = (m.anon_bytes as f64 + walk).clamp(0.05 * limit, 0.8 * limit);
            m.anon_bytes = pages(anon);
            if rng.below(10) < 3 || m.file_bytes == 0 {
                let moved = (rng.unit() - 0.4) * 0.004 * limit;
                m.file_bytes = pages((m.file_bytes as f64 + moved).clamp(0.0, 0.1 * limit));
            }
            if rng.below(100) == 0 {
                m.shmem_bytes = pages(rng.unit() * 0.05 * limit);
            }
            m.usage_bytes = m.anon_bytes + m.file_bytes + m.shmem_bytes + (24 << 20);
            m.peak_bytes = Some(m.peak_bytes.unwrap_or(0).max(m.usage_bytes));
        }
        if let Some(cpu) = c.cpu.as_mut() {
            cpu.usage_us += rng.below(4_000_000);
        }
        let stalled = if k % 10 == 0 { rng.unit() * 0.3 } else { 0.0 };
        if let Some(p) = c.pressure.as_mut() {
            for (psi, share) in [
                (p.memory.as_mut(), stalled),
                (p.cpu.as_mut(), 0.05),
                (p.io.as_mut(), 0.0),
            ] {
                if let Some(line) = psi.and_then(|psi| psi.some.as_mut()) {
                    line.avg10 = psi_avg10(line.avg10, share);
                    line.total_us += (share * 1e6) as u64;
                }
            }
        }
    }
    for g in &mut r.gpus {
        g.time_unix_nanos = now;
        let util = 85 + rng.below(16) as u32;
        g.utilization_gpu_percent = Some(util);
        g.utilization_memory_percent = Some(util / 2);
        if g.memory_used_bytes == 0 || rng.below(50) == 0 {
            g.memory_used_bytes = (40 + rng.below(38)) << 30 | (rng.below(1024) << 20);
        }
        let milliwatts = 80_000 + 6_200 * u64::from(util) + rng.below(5_000);
        g.power_draw_watts = Some(milliwatts as f64 / 1000.0);
        if rng.below(10) == 0 {
            let t = g.temperature_celsius.unwrap_or(60);
            g.temperature_celsius = Some((t + rng.below(3) as u32).saturating_sub(1).clamp(40, 85));
        }
        if let Some(p) = g.processes.first_mut() {
            p.used_memory_bytes = Some(g.memory_used_bytes);
            p.sm_util_percent = Some(util);
            p.mem_util_percent = Some(util / 2);
        }
    }
}

/// Every figure jumps by arbitrary amounts (a random walk within the
/// limits, counters forward).
fn step_noise(r: &mut pb::NodeReport, rng: &mut Rng, now: u64) {
    if let Some(n) = r.node_sample.as_mut() {
        n.time_unix_nanos = now;
        n.mem_available_bytes = (1 << 40) + rng.below(1 << 38);
        if let Some(m) = n.pressure.as_mut().and_then(|p| p.memory.as_mut())
            && let Some(s) = m.some.as_mut()
        {
            s.avg10 = rng.unit() as f32;
            s.total_us += rng.below(10_000);
        }
    }
    for c in &mut r.containers {
        c.time_unix_nanos = now;
        if let Some(m) = c.memory.as_mut() {
            let limit = m.limit_bytes.unwrap_or(8 << 30);
            let delta = (rng.unit() - 0.5) * 0.02 * limit as f64;
            let usage =
                (m.usage_bytes as f64 + delta).clamp(0.1 * limit as f64, 0.95 * limit as f64);
            m.usage_bytes = usage as u64;
            m.anon_bytes = (usage * (0.7 + 0.2 * rng.unit())) as u64;
            m.file_bytes = m.usage_bytes - m.anon_bytes;
            m.shmem_bytes = m.file_bytes / 4;
            m.peak_bytes = Some(m.peak_bytes.unwrap_or(0).max(m.usage_bytes));
        }
        if let Some(cpu) = c.cpu.as_mut() {
            cpu.usage_us += rng.below(4_000_000);
        }
        if let Some(p) = c.pressure.as_mut() {
            for psi in [p.memory.as_mut(), p.cpu.as_mut(), p.io.as_mut()]
                .into_iter()
                .flatten()
            {
                if let Some(s) = psi.some.as_mut() {
                    s.avg10 = (rng.unit() * rng.unit() * 20.0) as f32;
                    s.avg60 = s.avg10 * 0.8;
                    s.total_us += rng.below(50_000);
                }
            }
        }
    }
    for g in &mut r.gpus {
        g.time_unix_nanos = now;
        let util = rng.below(101) as u32;
        g.utilization_gpu_percent = Some(util);
        g.utilization_memory_percent = Some(util / 2);
        g.memory_used_bytes = rng.below(80 << 30);
        g.power_draw_watts = Some(80.0 + 6.2 * f64::from(util));
        g.temperature_celsius = Some(35 + util / 3);
        if let Some(p) = g.processes.first_mut() {
            p.used_memory_bytes = Some(g.memory_used_bytes);
            p.sm_util_percent = Some(util);
            p.mem_util_percent = Some(util / 2);
        }
    }
}

/// One OOM kill of container `c` of node `i`, with a recorder window of
/// `points` seconds of steady growth to the limit.
fn oom_event(i: usize, c: usize, seq: u64, points: usize, rng: &mut Rng) -> pb::NodeEvent {
    let now = now_nanos();
    let limit: u64 = 16 << 30;
    let start = limit / 4;
    let window = (0..points)
        .map(|p| {
            let frac = (p + 1) as f64 / points as f64;
            let usage = start + ((limit - start) as f64 * frac) as u64 - rng.below(1 << 20);
            pb::RecorderPoint {
                time_unix_nanos: now - (points - p) as u64 * 1_000_000_000,
                usage_bytes: usage,
                anon_bytes: usage / 10 * 9,
                file_bytes: usage / 10,
                shmem_bytes: usage / 40,
                memory_some_avg10: (frac * frac * 30.0) as f32,
                memory_some_total_us: (p as u64) * 5_000 + rng.below(1000),
                memory_full_total_us: (p as u64) * 2_000,
            }
        })
        .collect();
    pb::NodeEvent {
        seq,
        time_unix_nanos: now,
        kind: Some(pb::node_event::Kind::OomKill(pb::OomKill {
            time_unix_nanos: now,
            detected_at_unix_nanos: now + 2_000_000,
            detected_by: pb::Detection::Notification as i32,
            container: Some(container_ref(i, c)),
            cgroup_version: pb::CgroupVersion::V2 as i32,
            limit_bytes: Some(limit),
            peak_bytes: Some(limit),
            oom_kill: Some(1),
            oom_group_kill: Some(0),
            constraint: pb::OomConstraint::Memcg as i32,
            victim: Some(pb::Victim {
                pid: 4242 + rng.below(10_000) as u32,
                comm: "python3".into(),
                total_vm_bytes: 40 << 30,
                anon_rss_bytes: limit - (512 << 20),
                file_rss_bytes: 96 << 20,
                shmem_rss_bytes: 256 << 20,
                uid: Some(1000),
                pgtables_bytes: Some(36 << 20),
                oom_score_adj: Some(999),
            }),
            group: None,
            trigger_comm: Some("python3".into()),
            kernel_usage_bytes: Some(limit),
            kernel_limit_bytes: Some(limit),
            window,
            pressure_scope: pb::PsiScope::Container as i32,
        })),
    }
}

fn source_event(seq: u64) -> pb::NodeEvent {
    let degraded = seq.is_multiple_of(2);
    pb::NodeEvent {
        seq,
        time_unix_nanos: now_nanos(),
        kind: Some(pb::node_event::Kind::Source(pb::SourceStatus {
            source: "psi".into(),
            state: if degraded {
                pb::SourceState::Degraded
            } else {
                pb::SourceState::Ok
            } as i32,
            reason: if degraded {
                "reading /sys/fs/cgroup/kubepods/memory.pressure: EAGAIN".into()
            } else {
                String::new()
            },
        })),
    }
}

fn encode(msg: pb::agent_message::Kind) -> Bytes {
    pb::AgentMessage { kind: Some(msg) }.encode_to_vec().into()
}

/// Encodes `AgentMessage { report }` without moving the template: the
/// oneof's field 2, length-delimited, as prost's generated code writes it.
fn encode_report(report: &pb::NodeReport, buf: &mut BytesMut) -> Bytes {
    buf.reserve(report.encoded_len() + 8);
    prost::encoding::message::encode(2, report, buf);
    buf.split().freeze()
}

/// Encodes the next report to send; in protocol 2 every container is
/// announced by then, so later reports name them by id only.
fn encode_sent(report: &mut pb::NodeReport, buf: &mut BytesMut, protocol: u32) -> Bytes {
    let bytes = encode_report(report, buf);
    if protocol >= 2 {
        for c in &mut report.containers {
            c.container = None;
        }
    }
    bytes
}

struct Node {
    i: usize,
    args: Arc<Args>,
    channel: Channel,
    counters: Arc<Counters>,
    start: Instant,
    end: Instant,
}

impl Node {
    async fn run(self) -> anyhow::Result<()> {
        let Node {
            i,
            args,
            channel,
            counters,
            start,
            end,
        } = self;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 0x1000_0000_01b3));
        let mut report = template(&args, i, &mut rng);
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        tx.send(encode(pb::agent_message::Kind::Hello(pb::Hello {
            node: Some(identity(&args, i)),
            protocol: args.protocol,
        })))
        .await?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.context("connection not ready")?;
        let response = grpc
            .streaming(
                Request::new(ReceiverStream::new(rx)),
                PathAndQuery::from_static("/gpuscope.v1.Ingest/Stream"),
                RawCodec,
            )
            .await
            .with_context(|| format!("opening the stream of node {i}"))?;
        counters.streams_open.fetch_add(1, Relaxed);
        let mut inbound = response.into_inner();
        let acks_counters = counters.clone();
        let acks = tokio::spawn(async move {
            let mut acked = 0u64;
            loop {
                match inbound.message().await {
                    Ok(Some(m)) => {
                        if let Some(pb::aggregator_message::Kind::Ack(a)) = m.kind
                            && a.up_to_seq > acked
                        {
                            acks_counters
                                .events_acked
                                .fetch_add(a.up_to_seq - acked, Relaxed);
                            acked = a.up_to_seq;
                        }
                    }
                    Ok(None) => return Ok(acked),
                    Err(s) => return Err(s),
                }
            }
        });

        // OOM kills first, one batch each.
        let mut seq = 0u64;
        let n = args.nodes.max(1);
        let mine = args.ooms / n + usize::from(i < args.ooms % n);
        for k in 0..mine {
            seq += 1;
            let c = (k * 7 + i) % args.containers.max(1);
            let ev = oom_event(i, c, seq, args.window_points, &mut rng);
            // The kubelet restarts the killed container: a new ID.
            if let Some(s) = report.containers.get_mut(c) {
                s.container = Some(container_ref_run(i, c, k as u64 + 1));
            }
            tx.send(encode(pb::agent_message::Kind::Events(pb::EventBatch {
                boot_id: boot_id(i),
                events: vec![ev],
            })))
            .await?;
            counters.events_sent.fetch_add(1, Relaxed);
        }

        // Back-dated reports, 1 s apart, ending now.
        let mut buf = BytesMut::with_capacity(16 << 10);
        let filled_from = now_nanos().saturating_sub(args.fill * 1_000_000_000);
        for k in 0..args.fill {
            step(
                &mut report,
                &mut rng,
                filled_from + k * 1_000_000_000,
                args.values,
            );
            let bytes = encode_sent(&mut report, &mut buf, args.protocol);
            counters.bytes.fetch_add(bytes.len() as u64, Relaxed);
            if tx.send(bytes).await.is_err() {
                anyhow::bail!("node {i}: stream closed by the aggregator");
            }
            counters.filled.fetch_add(1, Relaxed);
        }

        // Spread the nodes' ticks evenly over one period.
        let period = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
        let offset = period.map_or(Duration::ZERO, |p| p.mul_f64(i as f64 / n as f64));
        let mut next = start + offset;
        let events_on = args.event_interval > 0.0;
        let event_every = Duration::from_secs_f64(args.event_interval.max(0.001));
        let mut event_at = start + event_every.mul_f64(rng.unit());
        let containers = report.containers.len() as u64;
        let gpus = report.gpus.len() as u64;
        loop {
            if let Some(p) = period {
                tokio::time::sleep_until(next.into()).await;
                next += p;
                if Instant::now() > next {
                    // A whole period late: skip ticks (counted).
                    counters.late_ticks.fetch_add(1, Relaxed);
                    while next < Instant::now() {
                        next += p;
                    }
                }
            }
            if Instant::now() >= end {
                break;
            }
            step(&mut report, &mut rng, now_nanos(), args.values);
            let bytes = encode_sent(&mut report, &mut buf, args.protocol);
            let len = bytes.len() as u64;
            if tx.send(bytes).await.is_err() {
                anyhow::bail!("node {i}: stream closed by the aggregator");
            }
            counters.reports.fetch_add(1, Relaxed);
            counters.container_samples.fetch_add(containers, Relaxed);
            counters.gpu_samples.fetch_add(gpus, Relaxed);
            counters.bytes.fetch_add(len, Relaxed);
            if events_on && Instant::now() >= event_at {
                seq += 1;
                tx.send(encode(pb::agent_message::Kind::Events(pb::EventBatch {
                    boot_id: boot_id(i),
                    events: vec![source_event(seq)],
                })))
                .await?;
                counters.events_sent.fetch_add(1, Relaxed);
                event_at += event_every;
            }
        }
        drop(tx);
        // The aggregator ends the response after it applied everything sent.
        let acked = acks.await?.map_err(|s| anyhow::anyhow!("node {i}: {s}"))?;
        if acked != seq {
            anyhow::bail!("node {i}: {seq} events sent, {acked} acknowledged");
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Arc<Args>) -> anyhow::Result<()> {
    // Check the hand-rolled report encoding against prost's once.
    {
        let mut rng = Rng(1);
        let r = template(&args, 0, &mut rng);
        let mut buf = BytesMut::new();
        let raw = encode_report(&r, &mut buf);
        anyhow::ensure!(
            raw.as_ref() == encode(pb::agent_message::Kind::Report(r)).as_ref(),
            "report encoding differs from prost's"
        );
    }
    if let Some(path) = &args.pods_out {
        let n = args.nodes.max(1);
        let mut out = String::new();
        for i in 0..args.nodes {
            let mine = args.ooms / n + usize::from(i < args.ooms % n);
            for k in 0..mine {
                let c = (k * 7 + i) % args.containers.max(1);
                out += &format!("{} {}\n", pod_uid(i, c / 2), node_name(&args.prefix, i));
            }
        }
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let ch = Endpoint::from_shared(args.aggregator.clone())?
            .connect_timeout(Duration::from_secs(5))
            .initial_connection_window_size(4 << 20)
            .initial_stream_window_size(1 << 20)
            .connect()
            .await
            .with_context(|| format!("connecting to {}", args.aggregator))?;
        channels.push(ch);
    }
    let counters = Arc::new(Counters::default());
    // Streams open during the first seconds; reports start after that.
    let setup = Duration::from_secs_f64(2.0 + args.nodes as f64 / 5000.0);
    let start = Instant::now() + setup;
    let end = start + Duration::from_secs_f64(args.duration);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.nodes {
        tasks.spawn(
            Node {
                i,
                args: args.clone(),
                channel: channels[i % channels.len()].clone(),
                counters: counters.clone(),
                start,
                end,
            }
            .run(),
        );
    }
    let progress = {
        let c = counters.clone();
        let every = Duration::from_secs_f64(args.progress.max(0.5));
        let nodes = args.nodes;
        tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(every).await;
                let now = Instant::now();
                let s = c.container_samples.load(Relaxed);
                println!(
                    "t={:6.1}s streams {}/{} container-samples/s {:.0} events sent {} acked {} late ticks {}",
                    now.duration_since(start).as_secs_f64(),
                    c.streams_open.load(Relaxed),
                    nodes,
                    (s - last.1) as f64 / now.duration_since(last.0).as_secs_f64(),
                    c.events_sent.load(Relaxed),
                    c.events_acked.load(Relaxed),
                    c.late_ticks.load(Relaxed),
                );
                last = (now, s);
            }
        })
    };
    while let Some(res) = tasks.join_next().await {
        if let Err(e) = res.map_err(anyhow::Error::from).and_then(|r| r)
            && counters.errors.fetch_add(1, Relaxed) < 5
        {
            eprintln!("ingest_load: {e:#}");
        }
    }
    let drained = Instant::now();
    progress.abort();
    let secs = drained.duration_since(start).as_secs_f64();
    let c = &counters;
    let cs = c.container_samples.load(Relaxed);
    println!(
        "RESULT nodes={} streams={} seconds={:.2} reports={} container_samples={} gpu_samples={} \
         container_samples_per_s={:.0} mbytes={:.1} events_sent={} events_acked={} late_ticks={} errors={} \
         filled_reports={}",
        args.nodes,
        c.streams_open.load(Relaxed),
        secs,
        c.reports.load(Relaxed),
        cs,
        c.gpu_samples.load(Relaxed),
        cs as f64 / secs,
        c.bytes.load(Relaxed) as f64 / 1e6,
        c.events_sent.load(Relaxed),
        c.events_acked.load(Relaxed),
        c.late_ticks.load(Relaxed),
        c.errors.load(Relaxed),
        c.filled.load(Relaxed),
    );
    if c.errors.load(Relaxed) > 0 {
        anyhow::bail!("{} node(s) failed", c.errors.load(Relaxed));
    }
    Ok(())
}
