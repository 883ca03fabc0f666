//! OpenTelemetry export against a receiver built from the official OTLP
//! protocol definitions (`gpuscope_tests::otlp`, opentelemetry-proto's
//! tonic servers; no Collector binary):
//!
//! - The real `gpuscope-aggregator` binary, configured only through the
//!   standard `OTEL_*` variables, watches the fake Kubernetes API server
//!   and is fed one node over the real Ingest protocol (a container of a
//!   pod, a GPU it holds, an OOM kill of the container): the receiver
//!   decodes the metric names, units, kinds, attributes and values, the
//!   resource, the headers, and the log records of the incident and of
//!   the findings about it.
//! - An unreachable collector (a closed port) and one that accepts and
//!   never answers: ingest acknowledges every batch at once, every
//!   incident is stored, the export's queue stays within its bound and
//!   what it drops is counted, and the aggregator shuts down in time.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gpuscope_aggregator::export::otlp::OtlpConfig;
use gpuscope_aggregator::{Aggregator, Config};
use gpuscope_proto::v1 as pb;
use gpuscope_tests::fake_kube::FakeKube;
use gpuscope_tests::otlp::{Attr, Log, MetricKind, Point, Receiver};
use gpuscope_tests::{KillOnDrop, free_port, workspace_bin};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const NODE: &str = "gpu-node-otlp";
const CONTAINER_ID: &str = "7a1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const GPU: &str = "GPU-5e1f0c2a-0000-4000-8000-00000000c001";
const DEADLINE: Duration = Duration::from_secs(30);

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// `ml/trainer-0` on [`NODE`]: its container [`CONTAINER_ID`] was
/// OOM-killed and restarted.
fn pod() -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "trainer-0", "namespace": "ml",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "train",
                "uid": "0b0b0b0b-0000-4000-8000-000000000000", "controller": true}]},
        "spec": {"nodeName": NODE, "restartPolicy": "Always",
            "containers": [{"name": "trainer", "image": "trainer:1",
                "resources": {"limits": {"memory": "256Mi", "nvidia.com/gpu": "1"}}}]},
        "status": {"phase": "Running", "startTime": "2026-01-10T10:00:00Z",
            "containerStatuses": [{"name": "trainer", "image": "trainer:1", "imageID": "",
                "ready": true, "restartCount": 1,
                "containerID": format!("containerd://{CONTAINER_ID}"),
                "state": {"running": {"startedAt": "2026-01-10T10:05:00Z"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                    "startedAt": "2026-01-10T10:00:00Z", "finishedAt": "2026-01-10T10:04:59Z",
                    "containerID": format!("containerd://{CONTAINER_ID}")}}}]}
    })
}

fn node() -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
        "status": {"capacity": {"memory": "64Gi", "nvidia.com/gpu": "2"},
                   "allocatable": {"memory": "62Gi", "nvidia.com/gpu": "1"}}})
}

fn container_ref(pod_uid: &str) -> pb::ContainerRef {
    pb::ContainerRef {
        cgroup_path: format!("/kubepods/burstable/pod{pod_uid}/{CONTAINER_ID}"),
        pod_uid: pod_uid.to_owned(),
        container_id: CONTAINER_ID.to_owned(),
        ..Default::default()
    }
}

/// One report of the node: the pod's container, and GPU 0 held by it
/// with the container's process on it.
fn report(pod_uid: &str) -> pb::AgentMessage {
    pb::AgentMessage {
        kind: Some(pb::agent_message::Kind::Report(pb::NodeReport {
            containers: vec![pb::ContainerSample {
                container: Some(container_ref(pod_uid)),
                memory: Some(pb::MemoryStats {
                    usage_bytes: 200 << 20,
                    limit_bytes: Some(256 << 20),
                    anon_bytes: 190 << 20,
                    events: Some(pb::MemoryEvents {
                        oom_kill: 1,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                cpu: Some(pb::CpuStats {
                    usage_us: 1_500_000,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            gpus: vec![pb::GpuSample {
                index: 0,
                uuid: GPU.into(),
                name: "NVIDIA H100 80GB HBM3".into(),
                utilization_gpu_percent: Some(42),
                memory_total_bytes: 80 << 30,
                memory_used_bytes: 1 << 30,
                power_draw_watts: Some(123.5),
                temperature_celsius: Some(55),
                processes: vec![pb::GpuProcess {
                    pid: 4242,
                    used_memory_bytes: Some(1 << 30),
                    container: Some(container_ref(pod_uid)),
                    ..Default::default()
                }],
                holders: vec![pb::GpuHolder {
                    namespace: "ml".into(),
                    pod: "trainer-0".into(),
                    container: "trainer".into(),
                    resource_name: "nvidia.com/gpu".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            agent: Some(pb::AgentHealth {
                queue_events: 3,
                resident_memory_bytes: 9 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

/// An OOM kill of the pod's container.
fn oom_kill(seq: u64, time: u64, pod_uid: &str) -> pb::NodeEvent {
    pb::NodeEvent {
        seq,
        time_unix_nanos: time,
        kind: Some(pb::node_event::Kind::OomKill(pb::OomKill {
            time_unix_nanos: time,
            container: Some(container_ref(pod_uid)),
            limit_bytes: Some(256 << 20),
            victim: Some(pb::Victim {
                pid: 4242,
                comm: "python".into(),
                anon_rss_bytes: 250 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

/// An agent's stream: the sender and the acknowledgements.
struct Stream {
    tx: mpsc::Sender<pb::AgentMessage>,
    acks: tonic::Streaming<pb::AggregatorMessage>,
}

impl Stream {
    async fn open(url: &str) -> Stream {
        let deadline = Instant::now() + DEADLINE;
        let mut client = loop {
            match pb::ingest_client::IngestClient::connect(url.to_owned()).await {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "aggregator at {url}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let (tx, rx) = mpsc::channel(64);
        tx.send(pb::AgentMessage {
            kind: Some(pb::agent_message::Kind::Hello(pb::Hello {
                node: Some(pb::NodeIdentity {
                    node_name: NODE.into(),
                    boot_id: "boot-1".into(),
                    agent_version: "test".into(),
                    ..Default::default()
                }),
                protocol: 1,
            })),
        })
        .await
        .unwrap();
        let acks = client
            .stream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Stream { tx, acks }
    }

    /// Sends a batch of events and waits for its ack: how long it took.
    async fn events(&mut self, events: Vec<pb::NodeEvent>) -> Duration {
        let started = Instant::now();
        self.tx
            .send(pb::AgentMessage {
                kind: Some(pb::agent_message::Kind::Events(pb::EventBatch {
                    boot_id: "boot-1".into(),
                    events,
                })),
            })
            .await
            .unwrap();
        tokio::time::timeout(DEADLINE, self.acks.message())
            .await
            .expect("an ack in time")
            .unwrap()
            .unwrap();
        started.elapsed()
    }
}

async fn until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn s(v: &str) -> Attr {
    Attr::Str(v.to_owned())
}

/// The point of `name` whose attributes include `with`.
fn point<'a>(points: &'a [Point], name: &str, with: &[(&str, Attr)]) -> Option<&'a Point> {
    points
        .iter()
        .find(|p| p.name == name && with.iter().all(|(k, v)| p.attributes.get(*k) == Some(v)))
}

fn expect<'a>(points: &'a [Point], name: &str, with: &[(&str, Attr)]) -> &'a Point {
    point(points, name, with).unwrap_or_else(|| {
        let same: Vec<_> = points.iter().filter(|p| p.name == name).collect();
        panic!("no {name} with {with:?}; {name} points: {same:#?}")
    })
}

/// `GET /metrics` of the aggregator's Prometheus endpoint.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    c.read_to_string(&mut body).unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_incidents_and_findings_reach_a_collector_with_semantic_convention_attributes()
{
    let fake = FakeKube::start();
    let pod = fake.apply(pod());
    fake.apply(node());
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_owned();
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    // Only the standard variables: the endpoint, the interval, the
    // resource and a header.
    let _aggregator = KillOnDrop(
        Command::new(workspace_bin("gpuscope-aggregator"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(["--kube-server", &fake.url(), "--auth", "none"])
            .args(["--record-diagnosis-after", "300ms"])
            .args(["--metrics-findings-interval", "1s"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
            .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
            .env("OTEL_SERVICE_NAME", "gpuscope-lab")
            .env(
                "OTEL_RESOURCE_ATTRIBUTES",
                "k8s.cluster.name=lab,deployment.environment.name=test",
            )
            .env("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme")
            .env_remove("GPUSCOPE_OTLP_ENDPOINT")
            .env_remove("OTEL_SDK_DISABLED")
            .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("aggregator.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(dir.path().join("aggregator.log")).unwrap_or_default();

    let mut agent = Stream::open(&format!("http://127.0.0.1:{port}")).await;
    agent.tx.send(report(&uid)).await.unwrap();
    let killed_at = now_nanos() - 5_000_000_000;
    agent.events(vec![oom_kill(1, killed_at, &uid)]).await;

    // The metrics, once the pod watch has named the container.
    let named = [
        ("k8s.node.name", s(NODE)),
        ("k8s.namespace.name", s("ml")),
        ("k8s.pod.name", s("trainer-0")),
        ("k8s.pod.uid", s(&uid)),
        ("k8s.container.name", s("trainer")),
    ];
    let points = until("the named container's metrics", DEADLINE, || {
        let p = receiver.latest_points();
        (point(&p, "gpuscope.container.memory.usage", &named).is_some()
            && point(&p, "gpuscope.findings", &[]).is_some())
        .then_some(p)
    })
    .await;

    // Every point: gpuscope's scope, the resource from the environment.
    for p in &points {
        assert_eq!(p.scope, "gpuscope-aggregator", "{p:?}");
        assert_eq!(p.resource.get("service.name"), Some(&s("gpuscope-lab")));
        assert_eq!(p.resource.get("k8s.cluster.name"), Some(&s("lab")));
        assert_eq!(
            p.resource.get("deployment.environment.name"),
            Some(&s("test"))
        );
        assert!(p.resource.contains_key("service.version"), "{p:?}");
        assert!(p.name.starts_with("gpuscope."), "{}", p.name);
        assert!(!p.name.starts_with("DCGM"), "{}", p.name);
    }
    // Names, units, kinds, attributes and values.
    let check = |name: &str, with: &[(&str, Attr)], unit: &str, kind: MetricKind, value: f64| {
        let p = expect(&points, name, with);
        assert_eq!((p.unit.as_str(), p.kind), (unit, kind), "{p:?}");
        assert!(
            (p.value - value).abs() < 1e-9,
            "{name}: {} != {value}",
            p.value
        );
    };
    use MetricKind::{Counter, Gauge, UpDownCounter};
    check(
        "gpuscope.container.memory.usage",
        &named,
        "By",
        UpDownCounter,
        (200u64 << 20) as f64,
    );
    check(
        "gpuscope.container.memory.limit",
        &named,
        "By",
        UpDownCounter,
        (256u64 << 20) as f64,
    );
    check(
        "gpuscope.container.oom_kills",
        &named,
        "{kill}",
        Counter,
        1.0,
    );
    check("gpuscope.container.cpu.time", &named, "s", Counter, 1.5);
    let usage = expect(&points, "gpuscope.container.memory.usage", &named);
    assert!(usage.int, "bytes are integers");
    assert_eq!(usage.attributes.len(), named.len(), "{usage:?}");
    let gpu = [
        ("k8s.node.name", s(NODE)),
        ("hw.id", s(GPU)),
        ("hw.model", s("NVIDIA H100 80GB HBM3")),
        ("gpuscope.gpu.index", Attr::Int(0)),
        ("k8s.namespace.name", s("ml")),
        ("k8s.pod.name", s("trainer-0")),
        ("k8s.container.name", s("trainer")),
    ];
    check("gpuscope.gpu.utilization", &gpu, "1", Gauge, 0.42);
    check(
        "gpuscope.gpu.memory.usage",
        &gpu,
        "By",
        UpDownCounter,
        (1u64 << 30) as f64,
    );
    check(
        "gpuscope.gpu.memory.limit",
        &gpu,
        "By",
        UpDownCounter,
        (80u64 << 30) as f64,
    );
    check("gpuscope.gpu.power", &gpu, "W", Gauge, 123.5);
    check("gpuscope.gpu.temperature", &gpu, "Cel", Gauge, 55.0);
    check(
        "gpuscope.gpu.holder",
        &[
            ("hw.id", s(GPU)),
            ("k8s.pod.name", s("trainer-0")),
            ("gpuscope.resource.name", s("nvidia.com/gpu")),
        ],
        "1",
        Gauge,
        1.0,
    );
    check(
        "gpuscope.gpu.process.memory.usage",
        &[
            ("hw.id", s(GPU)),
            ("process.pid", Attr::Int(4242)),
            ("k8s.pod.name", s("trainer-0")),
            ("k8s.container.name", s("trainer")),
        ],
        "By",
        UpDownCounter,
        (1u64 << 30) as f64,
    );
    check(
        "gpuscope.oom_kills",
        &[("k8s.node.name", s(NODE)), ("k8s.namespace.name", s("ml"))],
        "{kill}",
        Counter,
        1.0,
    );
    check(
        "gpuscope.node.gpu.capacity",
        &[
            ("k8s.node.name", s(NODE)),
            ("gpuscope.resource.name", s("nvidia.com/gpu")),
        ],
        "{device}",
        UpDownCounter,
        2.0,
    );
    check(
        "gpuscope.agent.connected",
        &[("k8s.node.name", s(NODE))],
        "1",
        Gauge,
        1.0,
    );
    check(
        "gpuscope.agent.queue.events",
        &[("k8s.node.name", s(NODE))],
        "{event}",
        UpDownCounter,
        3.0,
    );
    check(
        "gpuscope.agent.source.degraded",
        &[
            ("k8s.node.name", s(NODE)),
            ("gpuscope.agent.source", s("kmsg")),
        ],
        "1",
        Gauge,
        0.0,
    );
    // The OOM kill's finding (`oom_killed`, or `oom_killed_worker` for
    // a worker process), counted in its namespace.
    let found = points
        .iter()
        .find(|p| {
            p.name == "gpuscope.findings"
                && p.attributes.get("k8s.namespace.name") == Some(&s("ml"))
                && p.attributes
                    .get("gpuscope.finding.kind")
                    .and_then(Attr::as_str)
                    .is_some_and(|k| k.starts_with("oom_killed"))
        })
        .unwrap_or_else(|| panic!("no OOM finding counted in {points:#?}"));
    assert_eq!(
        (found.unit.as_str(), found.kind, found.value),
        ("{finding}", UpDownCounter, 1.0)
    );
    // No empty attribute is sent (Prometheus' empty labels are left out).
    for p in &points {
        for (k, v) in &p.attributes {
            assert_ne!(v, &s(""), "{} has an empty {k}", p.name);
        }
    }
    // One source of truth: the Prometheus endpoint says the same.
    let text = scrape(metrics_port);
    let prom = text
        .lines()
        .find(|l| {
            l.starts_with("gpuscope_container_memory_usage_bytes{")
                && l.contains("pod=\"trainer-0\"")
        })
        .unwrap_or_else(|| panic!("no container memory line in\n{text}"));
    assert!(prom.ends_with(&format!(" {}", 200u64 << 20)), "{prom}");
    // The exporter's own counts are there too.
    let ok = text
        .lines()
        .find(|l| l.starts_with("gpuscope_otlp_exports_total{signal=\"metrics\",result=\"ok\"}"))
        .unwrap_or_else(|| panic!("no gpuscope_otlp_exports_total in\n{text}"));
    assert_ne!(ok.rsplit(' ').next(), Some("0"), "{ok}");

    // The incident, as a log record.
    let logs = until(
        "the OOM kill's and its findings' log records",
        DEADLINE,
        || {
            let l = receiver.logs();
            let has = |f: &dyn Fn(&Log) -> bool| l.iter().any(f);
            (has(&|l| l.event_name == "gpuscope.incident.oom_kill")
                && has(&|l| {
                    l.event_name == "gpuscope.finding"
                        && l.attributes.get("gpuscope.finding.source") == Some(&s("incident"))
                })
                && has(&|l| {
                    l.event_name == "gpuscope.finding"
                        && l.attributes.get("gpuscope.finding.source") == Some(&s("cluster"))
                }))
            .then_some(l)
        },
    )
    .await;
    let oom = logs
        .iter()
        .find(|l| l.event_name == "gpuscope.incident.oom_kill")
        .unwrap();
    assert_eq!(oom.scope, "gpuscope-aggregator");
    assert_eq!(oom.resource.get("service.name"), Some(&s("gpuscope-lab")));
    assert_eq!(
        (oom.severity_number, oom.severity_text.as_str()),
        (13, "WARN")
    );
    assert_eq!(oom.time_unix_nano, killed_at, "the kill's own time");
    assert!(oom.observed_time_unix_nano >= killed_at, "{oom:?}");
    let want: BTreeMap<&str, Attr> = [
        ("k8s.node.name", s(NODE)),
        ("k8s.namespace.name", s("ml")),
        ("k8s.pod.name", s("trainer-0")),
        ("k8s.container.name", s("trainer")),
        ("k8s.pod.uid", s(&uid)),
        ("container.id", s(CONTAINER_ID)),
        ("process.pid", Attr::Int(4242)),
        ("process.executable.name", s("python")),
        ("gpuscope.oom.limit", Attr::Int(256 << 20)),
        ("gpuscope.incident.kind", s("oom_kill")),
        ("gpuscope.incident.seq", Attr::Int(1)),
        ("gpuscope.node.boot_id", s("boot-1")),
    ]
    .into_iter()
    .collect();
    for (k, v) in &want {
        assert_eq!(oom.attributes.get(*k), Some(v), "{k} of {oom:#?}");
    }
    assert!(
        oom.body.contains("python (pid 4242)") && oom.body.contains("ml/trainer-0"),
        "{}",
        oom.body
    );
    // The findings about it: the recorded diagnosis' and the cluster's.
    let is_oom = |l: &Log| {
        l.event_name == "gpuscope.finding"
            && l.attributes
                .get("gpuscope.finding.kind")
                .and_then(Attr::as_str)
                .is_some_and(|k| k.starts_with("oom_killed"))
    };
    for source in ["incident", "cluster"] {
        let f = logs
            .iter()
            .find(|l| is_oom(l) && l.attributes.get("gpuscope.finding.source") == Some(&s(source)))
            .unwrap_or_else(|| panic!("no {source} OOM finding in {logs:#?}"));
        assert!(!f.body.is_empty(), "{f:?}");
        for (k, v) in [
            ("k8s.namespace.name", s("ml")),
            ("k8s.pod.name", s("trainer-0")),
            ("k8s.node.name", s(NODE)),
            ("gpuscope.owner", s("Job/train")),
        ] {
            assert_eq!(f.attributes.get(k), Some(&v), "{k} of {f:#?}");
        }
        assert!(
            matches!(f.attributes.get("gpuscope.finding.confidence"), Some(Attr::Str(c)) if ["low", "medium", "high"].contains(&c.as_str())),
            "{f:#?}"
        );
        assert!(
            matches!(f.attributes.get("gpuscope.finding.evidence"), Some(Attr::List(e)) if !e.is_empty()),
            "{f:#?}"
        );
    }
    // Each cluster finding once, however many diagnoses found it again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cluster_oom = receiver
        .logs()
        .iter()
        .filter(|l| is_oom(l) && l.attributes.get("gpuscope.finding.source") == Some(&s("cluster")))
        .count();
    assert_eq!(cluster_oom, 1);

    // The header from OTEL_EXPORTER_OTLP_HEADERS, on every request.
    let metadata = receiver.metadata();
    assert!(!metadata.is_empty());
    for m in &metadata {
        assert_eq!(
            m.get("x-tenant").and_then(|v| v.to_str().ok()),
            Some("acme"),
            "{m:?}"
        );
    }
    assert!(!log().contains("\"level\":\"ERROR\""), "{}", log());
}

/// Starts a library aggregator exporting to `endpoint` with a small log
/// queue, feeds it 300 OOM kills in batches of 10, and checks that ingest
/// never waited on the export: the acks came in time, every incident is
/// stored, the queue stayed within its bound and the rest was counted.
async fn ingest_is_not_held_by(endpoint: String) {
    const KILLS: u64 = 300;
    const QUEUE: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    config.record_diagnosis_after = None;
    let mut otlp = OtlpConfig::new(Some(endpoint));
    otlp.interval = Some(Duration::from_millis(200));
    otlp.timeout = Some(Duration::from_secs(1));
    otlp.log_queue = Some(QUEUE);
    otlp.report_interval = Duration::from_millis(500);
    config.otlp = Some(otlp);
    let agg = Aggregator::start(config).await.unwrap();
    let url = format!("http://{}", agg.local_addr());
    let mut agent = Stream::open(&url).await;
    agent.tx.send(report("pod-a")).await.unwrap();

    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for b in 0..KILLS / 10 {
        let events = (1..=10)
            .map(|i| oom_kill(b * 10 + i, now_nanos(), "pod-a"))
            .collect();
        slowest = slowest.max(agent.events(events).await);
        let queued = agg.otlp_stats().unwrap().log_records_queued;
        assert!(queued <= QUEUE as u64, "{queued} queued");
    }
    // An export holding ingest would cost each batch at least the export
    // timeout (1 s) once the queue (16) is full: 28 s or more in all.
    let took = started.elapsed();
    assert!(slowest < Duration::from_secs(2), "an ack took {slowest:?}");
    assert!(
        took < Duration::from_secs(15),
        "{KILLS} kills took {took:?}"
    );

    // Every incident stored, and queryable at once.
    let q = tokio::time::timeout(Duration::from_secs(2), async {
        pb::query_client::QueryClient::connect(url.clone())
            .await
            .unwrap()
            .list_incidents(pb::ListIncidentsRequest {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    })
    .await
    .expect("the query answered in time");
    assert_eq!(q.incidents.len() as u64, KILLS);

    // What the export could not send is counted: each record was
    // exported, failed, dropped at the bound, or is still queued.
    let stats = until("the log records accounted for", DEADLINE, || {
        let s = agg.otlp_stats().unwrap();
        (s.log_records_exported
            + s.log_records_failed
            + s.log_records_dropped
            + s.log_records_queued
            == KILLS
            && s.log_records_dropped > 0
            && s.metric_exports_failed > 0)
            .then_some(s)
    })
    .await;
    assert_eq!(stats.log_records_exported, 0, "{stats:?}");
    assert!(stats.last_error.is_some(), "{stats:?}");

    // The shutdown's last export does not outlast the grace period.
    let stopping = Instant::now();
    agg.shutdown(Duration::from_secs(2)).await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(6),
        "shutdown took {:?}",
        stopping.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_neither_slows_ingest_nor_loses_an_incident() {
    // A port nobody listens on.
    let port = free_port();
    ingest_is_not_held_by(format!("http://127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_neither_slows_ingest_nor_loses_an_incident() {
    let receiver = Receiver::hanging();
    ingest_is_not_held_by(receiver.endpoint()).await;
    assert!(receiver.log_requests() + receiver.metric_requests() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_exports_what_is_queued() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    config.record_diagnosis_after = None;
    let mut otlp = OtlpConfig::new(Some(receiver.endpoint()));
    // Nothing would be exported for an hour but for the shutdown.
    otlp.interval = Some(Duration::from_secs(3600));
    otlp.log_interval = Some(Duration::from_secs(3600));
    config.otlp = Some(otlp);
    let agg = Aggregator::start(config).await.unwrap();
    let mut agent = Stream::open(&format!("http://{}", agg.local_addr())).await;
    agent.tx.send(report("pod-a")).await.unwrap();
    let events = (1..=5).map(|s| oom_kill(s, now_nanos(), "pod-a")).collect();
    agent.events(events).await;
    until("5 queued log records", DEADLINE, || {
        (agg.otlp_stats().unwrap().log_records_queued == 5).then_some(())
    })
    .await;
    assert_eq!(receiver.log_requests() + receiver.metric_requests(), 0);
    agg.shutdown(Duration::from_secs(5)).await.unwrap();
    let kills = receiver
        .logs()
        .iter()
        .filter(|l| l.event_name == "gpuscope.incident.oom_kill")
        .count();
    assert_eq!(kills, 5);
    let points = receiver.latest_points();
    assert!(
        point(
            &points,
            "gpuscope.container.memory.usage",
            &[("k8s.pod.uid", s("pod-a"))]
        )
        .is_some(),
        "{points:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_behind_mutual_tls_is_reached_through_the_standard_certificate_variables() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf("localhost");
    let (client_cert, client_key) = leaf("gpuscope-aggregator");
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca_path = write("ca.crt", &ca.pem());
    let (cert_path, key_path) = (
        write("client.crt", &client_cert),
        write("client.key", &client_key),
    );
    let receiver = Receiver::start_tls(
        server_cert.into_bytes(),
        server_key.into_bytes(),
        ca.pem().into_bytes(),
    );
    let port = free_port();
    let _aggregator = KillOnDrop(
        Command::new(workspace_bin("gpuscope-aggregator"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--no-kube"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.tls_endpoint())
            .env("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_path)
            .env("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert_path)
            .env("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key_path)
            .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
            .env_remove("GPUSCOPE_OTLP_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut agent = Stream::open(&format!("http://127.0.0.1:{port}")).await;
    agent.tx.send(report("pod-a")).await.unwrap();
    agent.events(vec![oom_kill(1, now_nanos(), "pod-a")]).await;
    until("metrics and the OOM kill over TLS", DEADLINE, || {
        let points = receiver.latest_points();
        (point(
            &points,
            "gpuscope.container.memory.usage",
            &[("k8s.pod.uid", s("pod-a"))],
        )
        .is_some()
            && receiver
                .logs()
                .iter()
                .any(|l| l.event_name == "gpuscope.incident.oom_kill"))
        .then_some(())
    })
    .await;
}
