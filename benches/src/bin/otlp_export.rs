//! The cost of one OTLP metrics export of a large cluster: N nodes x
//! (G GPUs + C containers) applied to the aggregator's state, exported
//! through `gpuscope_aggregator::export::otlp` (the SDK's periodic reader
//! and tonic exporter, as the aggregator runs it) to a receiver built from
//! opentelemetry-proto that decodes and counts, in a child process (this
//! binary with `--serve`), so that its decoding is not counted. Prints the
//! series, the walk's time, the whole export's time (walk, the SDK's
//! aggregation and conversion, the request until the receiver answered),
//! the CPU time this process spent on it, the request's size, and the
//! memory the export added (VmHWM over VmRSS before it; the peak is reset
//! through `/proc/self/clear_refs`); and, for comparison, one Prometheus
//! render of the same state.
//!
//! usage: otlp_export [--nodes 1250] [--gpus 8] [--containers 32]
//!                    [--metrics-containers all|gpu|none] [--max-series N]

use std::io::{BufRead as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use gpuscope_aggregator::export::otlp::{Otlp, OtlpConfig, Source};
use gpuscope_aggregator::export::prometheus::{ContainerSeries, Inputs, Options, Renderer, Shard};
use gpuscope_aggregator::state::State;
use gpuscope_proto::v1 as pb;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message as _;

#[derive(Parser)]
struct Args {
    /// Nodes.
    #[arg(long, default_value_t = 1250)]
    nodes: usize,
    /// GPUs per node.
    #[arg(long, default_value_t = 8)]
    gpus: usize,
    /// Containers per node.
    #[arg(long, default_value_t = 32)]
    containers: usize,
    /// Which containers get series (as `--otlp-containers`).
    #[arg(long, default_value = "all")]
    metrics_containers: String,
    /// `--otlp-max-series` (default: every series of the largest metric,
    /// 4 per container).
    #[arg(long)]
    max_series: Option<usize>,
    /// Be the receiver: print its address, then a line per request.
    #[arg(long, hide = true)]
    serve: bool,
}

/// The receiver: decodes each request and prints its points and size.
struct Receiver;

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let r = request.into_inner();
        let points: usize = r
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .map(|m| match &m.data {
                Some(Data::Gauge(g)) => g.data_points.len(),
                Some(Data::Sum(s)) => s.data_points.len(),
                _ => 0,
            })
            .sum();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "received {points} {}", r.encoded_len());
        let _ = out.flush();
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// This process's CPU time (utime + stime), seconds.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').context("no ) in /proc/self/stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

fn status_kb(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .with_context(|| format!("no {field} in /proc/self/status"))?
        .parse()
        .with_context(|| format!("{field} is not a number"))
}

fn report(n: usize, gpus: usize, containers: usize) -> pb::NodeReport {
    let container = |c: usize| pb::ContainerRef {
        cgroup_path: format!("/kubepods/burstable/pod{n:08}-{c:04}/{c:064x}"),
        pod_uid: format!("{n:08}-0000-4000-8000-{c:012}"),
        container_id: format!("{:064x}", n * 1000 + c),
        ..Default::default()
    };
    pb::NodeReport {
        node_sample: Some(pb::NodeSample {
            mem_total_bytes: 1 << 40,
            mem_available_bytes: 1 << 39,
            ..Default::default()
        }),
        containers: (0..containers)
            .map(|c| pb::ContainerSample {
                container: Some(container(c)),
                memory: Some(pb::MemoryStats {
                    usage_bytes: (c as u64 + 1) << 24,
                    limit_bytes: Some(64 << 30),
                    anon_bytes: (c as u64 + 1) << 23,
                    events: Some(pb::MemoryEvents::default()),
                    ..Default::default()
                }),
                cpu: Some(pb::CpuStats {
                    usage_us: 1_000_000 * c as u64,
                    ..Default::default()
                }),
                pressure: Some(pb::Pressure {
                    memory: Some(pb::Psi {
                        some: Some(pb::PsiLine::default()),
                        full: Some(pb::PsiLine::default()),
                    }),
                    cpu: Some(pb::Psi {
                        some: Some(pb::PsiLine::default()),
                        full: None,
                    }),
                    io: Some(pb::Psi {
                        some: Some(pb::PsiLine::default()),
                        full: None,
                    }),
                }),
                ..Default::default()
            })
            .collect(),
        gpus: (0..gpus)
            .map(|g| pb::GpuSample {
                index: g as u32,
                uuid: format!("GPU-{n:08}-0000-4000-8000-{g:012}"),
                name: "NVIDIA H100 80GB HBM3".into(),
                utilization_gpu_percent: Some(42),
                utilization_memory_percent: Some(17),
                memory_total_bytes: 80 << 30,
                memory_used_bytes: 40 << 30,
                power_draw_watts: Some(512.5),
                power_limit_watts: Some(700.0),
                temperature_celsius: Some(61),
                sm_clock_mhz: Some(1980),
                processes: vec![pb::GpuProcess {
                    pid: 1000 + g as u32,
                    used_memory_bytes: Some(40 << 30),
                    container: Some(container(g % containers.max(1))),
                    ..Default::default()
                }],
                holders: vec![pb::GpuHolder {
                    namespace: "ml".into(),
                    pod: format!("train-{n}-{g}"),
                    container: "trainer".into(),
                    resource_name: "nvidia.com/gpu".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
        agent: Some(pb::AgentHealth {
            queue_events: 1,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(Receiver).max_decoding_message_size(usize::MAX))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await?;
        return Ok(());
    }
    let containers = match args.metrics_containers.as_str() {
        "all" => ContainerSeries::All,
        "gpu" => ContainerSeries::Gpu,
        "none" => ContainerSeries::None,
        other => anyhow::bail!("--metrics-containers {other}: all, gpu or none"),
    };
    let options = Options {
        dcgm: false,
        containers,
    };
    let state = Arc::new(State::new(
        gpuscope_aggregator::state::HistoryConfig::default(),
    ));
    for n in 0..args.nodes {
        let mut r = report(n, args.gpus, args.containers);
        state.apply_report(&format!("node-{n:05}"), &mut r);
    }

    // The Prometheus render of the same state, for comparison.
    let started = Instant::now();
    let (chunks, rendered) =
        Renderer::default().render(&state, &Inputs::default(), options, Shard::ALL);
    let render = started.elapsed();
    drop(chunks);

    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the receiver")?;
    let mut lines =
        std::io::BufReader::new(child.stdout.take().context("the receiver's stdout")?).lines();
    let addr = lines
        .next()
        .context("the receiver's address")??
        .strip_prefix("listening ")
        .context("the receiver's first line")?
        .to_owned();

    let mut config = OtlpConfig::new(Some(format!("http://{addr}")));
    config.logs = false;
    config.interval = Some(Duration::from_secs(5));
    config.timeout = Some(Duration::from_secs(300));
    config.containers = Some(containers);
    config.max_series = args
        .max_series
        .unwrap_or(args.nodes * args.containers.max(args.gpus) * 4 + 1000);
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let rss = status_kb("VmRSS:")?;
    // Peak RSS from now on (Linux >= 4.0).
    std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM")?;
    let otlp = Otlp::start(
        &config,
        Source {
            state: state.clone(),
            kube: None,
            findings: Default::default(),
            options,
        },
        stop,
    )?;
    let started_rss = status_kb("VmRSS:")?;
    let cpu_before = cpu_seconds()?;
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        let s = otlp.stats().snapshot();
        if s.metric_exports_ok + s.metric_exports_failed > 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no export in 20 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hwm = status_kb("VmHWM:")?;
    let cpu = cpu_seconds()? - cpu_before;
    let s = otlp.stats().snapshot();
    anyhow::ensure!(s.metric_exports_failed == 0, "the export failed: {s:?}");
    let received = lines.next().context("the receiver's count")??;
    let mut received = received.split_whitespace().skip(1);
    let points: u64 = received.next().context("points")?.parse()?;
    let bytes: u64 = received.next().context("bytes")?.parse()?;
    println!(
        "{} nodes x ({} GPUs + {} containers), --otlp-containers {}:",
        args.nodes, args.gpus, args.containers, args.metrics_containers
    );
    println!(
        "  Prometheus render: {} samples, {:.1} MB, {:.3} s",
        rendered.samples,
        rendered.bytes as f64 / 1e6,
        render.as_secs_f64()
    );
    println!(
        "  OTLP export: {} series ({points} points received, {:.1} MB request), walk {:.3} s, walk + SDK + request {:.3} s wall, {:.2} CPU-s in this process ({:.1} us per series)",
        s.last_series,
        bytes as f64 / 1e6,
        s.last_walk_seconds,
        s.last_export_seconds,
        cpu,
        cpu * 1e6 / s.last_series.max(1) as f64
    );
    println!(
        "  the exporter started: VmRSS +{:.1} MiB (--otlp-max-series {}: each metric's table sized for it)",
        started_rss.saturating_sub(rss) as f64 / 1024.0,
        config.max_series
    );
    println!(
        "  memory: VmRSS {:.1} MiB before, peak {:.1} MiB during (+{:.1} MiB, {:.0} bytes per series)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        hwm.saturating_sub(rss) as f64 / 1024.0,
        hwm.saturating_sub(rss) as f64 * 1024.0 / s.last_series.max(1) as f64
    );
    otlp.shutdown(Duration::from_secs(5)).await;
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
