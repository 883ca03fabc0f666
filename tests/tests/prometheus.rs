//! The Prometheus endpoint and the Grafana dashboards against a real
//! Prometheus (Debian's `prometheus` package): it scrapes a running
//! aggregator every second while a real agent streams to it (fake GPUs
//! through the fake NVML, the kubelet's PodResources from the fake
//! server, a real OOM kill in a real memory cgroup at the pod's kubelet
//! path), the aggregator watches a fake Kubernetes API server, and a
//! second node speaks the real ingest protocol with back-dated samples of
//! an idle GPU (the GPU-idle rule needs minutes of history). Then every
//! PromQL expression of every panel, annotation and variable of
//! `deploy/grafana/*.json` is evaluated through Prometheus' HTTP API over
//! the test's time range, and each must return data.
//!
//! The aggregator runs as in the manifests, with `--auth kubernetes`: the
//! agents present bound tokens for their nodes, and Prometheus scrapes with
//! its ServiceAccount's token (`authorization.credentials_file`, as the
//! ServiceMonitor of the `prometheus` overlay has it), allowed `get
//! /metrics` by the overlay's ClusterRole (fed to the fake API server,
//! which answers the SubjectAccessReview from it). A scrape without a
//! token gets 401, one of a user without that ClusterRole 403.
//!
//! Needs root, the cgroup v1 memory hierarchy and `/usr/bin/prometheus`
//! (`PROMETHEUS` names another): fails under CI without them, skips
//! loudly elsewhere. About 15 s.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gpuscope_proto::v1 as pb;
use gpuscope_tests::fake_kube::{FakeKube, Token};
use gpuscope_tests::fake_pod_resources::{Container, FakePodResources, Pod};
use gpuscope_tests::{
    CgroupGuard, Driver, KillOnDrop, V1_MEMORY, fake_nvml_lib, free_port, have_v1_memory, ids,
    kubelet_path, require, workspace_bin,
};
use serde_json::{Value, json};

const MEMHOG: &str = env!("CARGO_BIN_EXE_memhog");
const NODE: &str = "gpu-node-prom";
const IDLE_NODE: &str = "gpu-node-idle";
const GPU0: &str = "GPU-5e1f0c2a-0000-4000-8000-00000000a001";
const GPU1: &str = "GPU-5e1f0c2a-0000-4000-8000-00000000a002";
const IDLE_GPU: &str = "GPU-5e1f0c2a-0000-4000-8000-00000000b001";

fn prometheus_bin() -> String {
    std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Prometheus' ServiceAccount token (the fake API server knows it).
const PROMETHEUS_TOKEN: &str = "prometheus-sa-token";

/// `GET path` on 127.0.0.1:port (HTTP/1.0, 10 s limit): status and body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_get_as(port, path, None)
}

/// [`http_get`] with `token` as the bearer token; `/metrics` of the
/// aggregator is scraped as Prometheus.
fn http_get_as(port: u16, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Ok((status, body))
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Prometheus' `/api/v1/query_range` of `expr` over `[start, now]`: its
/// result array.
fn query_range(port: u16, expr: &str, start: f64) -> Result<Vec<Value>, String> {
    let path = format!(
        "/api/v1/query_range?query={}&start={start:.3}&end={:.3}&step=1",
        encode(expr),
        unix_now()
    );
    let (status, body) = http_get(port, &path).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {body} ({e})"))?;
    if v["status"] != "success" {
        return Err(format!("{status}: {body}"));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn wait_until<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn pod_object(name: &str, uid: &str, node: &str, owner: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "ml", "uid": uid,
            "creationTimestamp": "2026-11-26T08:00:00Z",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": owner,
                "uid": format!("{owner}-0000-4000-8000-000000000000"), "controller": true}]
        },
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "trainer", "image": "ghcr.io/example/trainer:1.4",
                "resources": {"limits": {"memory": "64Mi", "nvidia.com/gpu": "1"}}
            }]
        },
        "status": status
    })
}

fn running(id: &str) -> Value {
    json!({
        "phase": "Running",
        "startTime": "2026-11-26T08:00:00Z",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{
            "name": "trainer", "image": "ghcr.io/example/trainer:1.4", "imageID": "",
            "containerID": format!("containerd://{id}"),
            "ready": true, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-11-26T08:00:05Z"}}
        }]
    })
}

fn node_object(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"capacity": {"memory": "64Gi", "nvidia.com/gpu": "2"},
                   "allocatable": {"memory": "62Gi", "nvidia.com/gpu": "1"}}})
}

/// The scenario of the agent's fake NVML: GPU 0 busy with `pid` and an
/// XID after 2 s, GPU 1 lost after 3 s.
fn scenario(pid: u32) -> Value {
    json!({
        "gpus": [
            {"uuid": GPU0, "pci_bus_id": "00000000:19:00.0",
             "series": [{"t": 0, "util_gpu": 0, "memory_used_bytes": 0},
                        {"t": 1, "util_gpu": 63, "util_mem": 20, "memory_used_bytes": 2147483648u64, "power_mw": 350000}],
             "processes": [{"pid": pid, "used_memory_bytes": 2147483648u64, "sm_util": 55, "mem_util": 20}],
             "xids": [{"t": 2.0, "xid": 79}]},
            {"uuid": GPU1, "pci_bus_id": "00000000:2a:00.0", "lost_at": 3.0}
        ]
    })
}

/// Plays the idle node as an agent would have over the last 7 minutes:
/// Hello, then one report every 10 s of agent time, back-dated, of one
/// GPU held by `ml/idler-0` and never used; returns the stream, open.
async fn idle_node(
    url: String,
    token: &str,
) -> (
    tokio::sync::mpsc::Sender<pb::AgentMessage>,
    tonic::Streaming<pb::AggregatorMessage>,
) {
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect to the aggregator");
    let mut client = pb::ingest_client::IngestClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(512);
    let identity = pb::NodeIdentity {
        node_name: IDLE_NODE.into(),
        boot_id: "5e1f0c2a-boot-4000-8000-000000000001".into(),
        ..Default::default()
    };
    let msg = |kind| pb::AgentMessage { kind: Some(kind) };
    tx.send(msg(pb::agent_message::Kind::Hello(pb::Hello {
        node: Some(identity.clone()),
        protocol: 1,
    })))
    .await
    .expect("hello");
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let bearer = format!("Bearer {token}").parse().expect("metadata");
    request.metadata_mut().insert("authorization", bearer);
    let inbound = client
        .stream(request)
        .await
        .expect("open the ingest stream")
        .into_inner();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    for k in (0..=42u64).rev() {
        let t = now - k * 10_000_000_000;
        tx.send(msg(pb::agent_message::Kind::Report(pb::NodeReport {
            node: Some(identity.clone()),
            gpus: vec![pb::GpuSample {
                time_unix_nanos: t,
                index: 0,
                uuid: IDLE_GPU.into(),
                name: "NVIDIA H100 80GB HBM3".into(),
                utilization_gpu_percent: Some(0),
                utilization_memory_percent: Some(0),
                memory_total_bytes: 80 << 30,
                memory_used_bytes: 0,
                power_draw_watts: Some(70.0),
                temperature_celsius: Some(30),
                holders: vec![pb::GpuHolder {
                    namespace: "ml".into(),
                    pod: "idler-0".into(),
                    container: "trainer".into(),
                    resource_name: "nvidia.com/gpu".into(),
                    device_id: IDLE_GPU.into(),
                    replica: None,
                }],
                ..Default::default()
            }],
            ..Default::default()
        })))
        .await
        .expect("report");
    }
    (tx, inbound)
}

/// Every PromQL expression of a dashboard: panel targets, annotations and
/// query variables, with where it is.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let title = dashboard["title"].as_str().unwrap_or("?").to_owned();
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((
                    format!("{title} / {} / {}", p["title"], t["refId"]),
                    e.to_owned(),
                ));
            }
        }
    }
    for a in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(e) = a["expr"].as_str() {
            out.push((format!("{title} / annotation {}", a["name"]), e.to_owned()));
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] == "query"
            && let Some(q) = v["query"].as_str()
        {
            // label_values(SELECTOR, LABEL): the selector must match.
            let selector = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map_or(q, |(s, _)| s);
            out.push((
                format!("{title} / variable {}", v["name"]),
                selector.to_owned(),
            ));
        }
    }
    out
}

/// Grafana's variables, as a person looking at this test's cluster sets
/// them.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "15s")
        .replace("$__interval", "5s")
        .replace("$__range", "5m")
        .replace("$cluster", "ci")
        .replace("$namespace", "ml")
        .replace("$node", ".*")
        .replace("$pod", "trainer-0")
}

#[test]
fn prometheus_scrapes_the_aggregator_and_every_dashboard_panel_has_data() {
    if !require("root and the cgroup v1 memory hierarchy", have_v1_memory())
        || !require(
            "Debian's prometheus package (apt-get install prometheus)",
            std::path::Path::new(&prometheus_bin()).exists(),
        )
    {
        return;
    }
    let started = unix_now() - 1.0;
    let dir = tempfile::tempdir().expect("tempdir");

    // The pod's container: a real memory cgroup at its kubelet path, with
    // a process that the fake NVML lists on GPU 0.
    let (uid, id) = ids(77);
    let cg = CgroupGuard::create(
        V1_MEMORY.as_ref(),
        &kubelet_path(Driver::Cgroupfs, &uid, &id),
    )
    .expect("create cgroup");
    cg.set_v1_limit(64 << 20).expect("limit");
    // Its CPU accounting twin, as the kubelet makes it.
    let cpu = CgroupGuard::create(
        "/sys/fs/cgroup/cpuacct".as_ref(),
        &kubelet_path(Driver::Cgroupfs, &uid, &id),
    )
    .expect("create cpuacct cgroup");
    let enter = format!("{}; {}", cg.enter(), cpu.enter());
    let sleeper = KillOnDrop(
        Command::new("sh")
            .args(["-c", &format!("{enter}; exec sleep 300")])
            .spawn()
            .expect("sleeper"),
    );
    let scenario_path = dir.path().join("scenario.json");
    std::fs::write(&scenario_path, scenario(sleeper.0.id()).to_string()).expect("scenario");
    let kubelet = FakePodResources::normal(vec![
        Pod::new("ml", "trainer-0")
            .container(Container::new("trainer").devices("nvidia.com/gpu", &[GPU0])),
    ])
    .expect("fake PodResources");

    let kube = FakeKube::start();
    kube.apply(node_object(NODE));
    kube.apply(node_object(IDLE_NODE));
    kube.apply(pod_object("trainer-0", &uid, NODE, "train", running(&id)));
    let (idle_uid, idle_id) = ids(78);
    kube.apply(pod_object(
        "idler-0",
        &idle_uid,
        IDLE_NODE,
        "idler",
        running(&idle_id),
    ));
    kube.apply(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "nvidia-device-plugin-daemonset-x7k2p", "namespace": "kube-system",
                     "uid": "5e1f0c2a-dp00-4000-8000-000000000001",
                     "labels": {"app": "nvidia-device-plugin-daemonset"}},
        "spec": {"nodeName": NODE, "containers": [{"name": "nvidia-device-plugin-ctr", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    }));

    // Who may do what: the agents' bound tokens, Prometheus' token and the
    // prometheus overlay's ClusterRole bound to its ServiceAccount, and a
    // user without it.
    for (token, node) in [("agent-prom", NODE), ("agent-idle", IDLE_NODE)] {
        let pod = format!("gpuscope-agent-{node}");
        let t = Token::bound("gpuscope", "gpuscope-agent", &pod, node, "gpuscope");
        kube.add_token(token, t);
    }
    kube.add_token(
        PROMETHEUS_TOKEN,
        Token::user("system:serviceaccount:monitoring:prometheus-k8s"),
    );
    kube.add_token("nobody-token", Token::user("nobody"));
    kube.apply(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "gpuscope-metrics-reader"},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}),
    );
    kube.apply(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "gpuscope-metrics-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
            "name": "gpuscope-metrics-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"}]}));
    let agent_token = dir.path().join("agent-token");
    std::fs::write(&agent_token, "agent-prom\n").expect("agent token");
    let prometheus_token = dir.path().join("prometheus-token");
    std::fs::write(&prometheus_token, PROMETHEUS_TOKEN).expect("prometheus token");

    let port = free_port();
    let metrics_port = free_port();
    let aggregator = KillOnDrop(
        Command::new(workspace_bin("gpuscope-aggregator"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(["--metrics-dcgm-names", "--metrics-findings-interval", "2s"])
            .args([
                "--kube-server",
                &kube.url(),
                "--auth",
                "kubernetes",
                "--record-diagnosis-after",
                "0s",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("aggregator.log")).expect("log"))
            .spawn()
            .expect("aggregator"),
    );
    let agent = KillOnDrop(
        Command::new(workspace_bin("gpuscope-agent"))
            .args(["run", "--aggregator", &format!("http://127.0.0.1:{port}")])
            .args([
                "--node-name",
                NODE,
                "--interval",
                "250ms",
                "--report-interval",
                "250ms",
            ])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--token-file")
            .arg(&agent_token)
            .arg("--nvml-lib")
            .arg(fake_nvml_lib())
            .arg("--pod-resources-socket")
            .arg(kubelet.socket_path())
            .env("GPUSCOPE_FAKE_NVML_SCENARIO", &scenario_path)
            .stdout(Stdio::null())
            .spawn()
            .expect("agent"),
    );
    wait_until(Duration::from_secs(20), "/metrics to answer", || {
        http_get_as(metrics_port, "/metrics", Some(PROMETHEUS_TOKEN))
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    let (status, body) = http_get(metrics_port, "/metrics").expect("scrape without a token");
    assert_eq!(status, 401, "without a token: {body}");
    assert!(body.contains("no credentials"), "{body}");
    let (status, body) =
        http_get_as(metrics_port, "/metrics", Some("nobody-token")).expect("scrape as nobody");
    assert_eq!(status, 403, "as nobody: {body}");
    assert!(body.contains("nobody may not get /metrics"), "{body}");
    // Multi-threaded: its worker keeps the idle node's stream going after
    // block_on returns.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _idle_stream =
        runtime.block_on(idle_node(format!("http://127.0.0.1:{port}"), "agent-idle"));

    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: gpuscope\n    authorization:\n      \
             credentials_file: {}\n    static_configs:\n      \
             - targets: ['127.0.0.1:{metrics_port}']\n        labels:\n          cluster: ci\n",
            prometheus_token.display()
        ),
    )
    .expect("prometheus.yml");
    let prom_log = dir.path().join("prometheus.log");
    let _prometheus = KillOnDrop(
        Command::new(prometheus_bin())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&prom_log).expect("prometheus log"))
            .spawn()
            .expect("start prometheus"),
    );

    // Prometheus has seen the container before its OOM kill, so the kill
    // is a change of its counter.
    let before = r#"gpuscope_container_oom_kills_total{namespace="ml",pod="trainer-0",container="trainer"} == 0"#;
    wait_until(
        Duration::from_secs(30),
        "Prometheus to scrape trainer-0's container",
        || {
            query_range(prom_port, before, started)
                .ok()
                .filter(|r| !r.is_empty())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let out = Command::new("sh")
        .args(["-c", &format!("{enter}; exec {MEMHOG} 256")])
        .stdout(Stdio::null())
        .output()
        .expect("run memhog");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "the kernel must SIGKILL memhog"
    );
    // What the series must show after the kill: the cgroup's counter, the
    // stored incident, and the idle GPU-hours of the other node.
    for (expr, what) in [
        (
            r#"gpuscope_container_oom_kills_total{namespace="ml",pod="trainer-0",container="trainer"} == 1"#,
            "the container's OOM kill counter at 1",
        ),
        (
            r#"gpuscope_oom_kills_total{node="gpu-node-prom",namespace="ml"} == 1"#,
            "the OOM kill counted once",
        ),
        (
            r#"gpuscope_idle_gpu_hours{namespace="ml",owner="Job/idler"} > 0"#,
            "idle GPU-hours of Job/idler",
        ),
        (
            r#"gpuscope_gpu_lost_total{node="gpu-node-prom",gpu="1"} == 1"#,
            "GPU 1 lost",
        ),
        (
            r#"DCGM_FI_DEV_FB_USED{Hostname="gpu-node-prom",gpu="0",pod="trainer-0"} == 2048"#,
            "dcgm-exporter's FB_USED in MiB",
        ),
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while query_range(prom_port, expr, started).map_or(true, |r| r.is_empty()) {
            if Instant::now() > deadline {
                let (_, metrics) = http_get_as(metrics_port, "/metrics", Some(PROMETHEUS_TOKEN))
                    .unwrap_or_default();
                let shown: Vec<&str> = metrics
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.starts_with("gpuscope_container"))
                    .collect();
                panic!(
                    "timed out waiting for {what} ({expr}); /metrics now:\n{}",
                    shown.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    std::thread::sleep(Duration::from_secs(3));

    let grafana = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana");
    let mut files: Vec<_> = std::fs::read_dir(&grafana)
        .expect("deploy/grafana")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "three dashboards in {}", grafana.display());
    let mut empty = Vec::new();
    let mut evaluated = 0;
    for f in &files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(f).expect("read"))
            .expect("dashboard JSON");
        for (at, expr) in expressions(&d) {
            evaluated += 1;
            match query_range(prom_port, &substitute(&expr), started) {
                Ok(r) if !r.is_empty() => {}
                Ok(_) => empty.push(format!("{at}: no data: {expr}")),
                Err(e) => empty.push(format!("{at}: error {e}: {expr}")),
            }
        }
    }
    eprintln!(
        "evaluated {evaluated} expressions of {} dashboards",
        files.len()
    );
    assert!(evaluated >= 40, "only {evaluated} expressions found");
    assert!(
        empty.is_empty(),
        "{} of {evaluated} dashboard expressions returned no data:\n{}\n(aggregator log: {})",
        empty.len(),
        empty.join("\n"),
        std::fs::read_to_string(dir.path().join("aggregator.log")).unwrap_or_default()
    );
    drop((agent, aggregator, sleeper));
}
