//! The aggregator's Kubernetes side against the fake API server, through
//! the real kube-rs client and the real query API: Explain, Diagnose and
//! GetBundle read the live objects (pods, nodes, bounded events, PVCs, a
//! previous container's log), and while the API server refuses (403) the
//! answers name the stale data, until the watchers have listed again.
//!
//! Starting an aggregator against a fake API server from a test:
//!
//! ```ignore
//! let fake = FakeKube::start();
//! let mut config = gpuscope_aggregator::Config::new("127.0.0.1:0".parse()?, data_dir);
//! config.kube = Some(KubeConfig { server: Some(fake.url()), fetch_logs: true, ..KubeConfig::default() });
//! let agg = gpuscope_aggregator::Aggregator::start(config).await?;
//! // query at format!("http://{}", agg.local_addr()); or run the binary with
//! // `--kube-server <fake.url()>`.
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use gpuscope_aggregator::{Aggregator, Config, KubeConfig};
use gpuscope_proto::v1 as pb;
use gpuscope_tests::fake_kube::{FakeKube, Fault};
use serde_json::{Value, json};
use tonic::Code;

type Client = pb::query_client::QueryClient<tonic::transport::Channel>;

const DEADLINE: Duration = Duration::from_secs(30);

fn node(name: &str, gpus: u32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": gpus.to_string()},
            "allocatable": {"cpu": "64", "memory": "500Gi", "nvidia.com/gpu": gpus.to_string()},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

/// `ml/trainer-0` on gpu-node-1: crash-looping, exit code 1, 5 restarts.
fn crashlooping() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "trainer-0", "namespace": "ml",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "job-1", "controller": true}]},
        "spec": {"nodeName": "gpu-node-1", "restartPolicy": "Always",
            "containers": [{"name": "main", "image": "trainer:1",
                "resources": {"limits": {"nvidia.com/gpu": "1", "memory": "8Gi"}}}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}]},
        "status": {"phase": "Running",
            "startTime": "2026-01-10T10:00:00Z",
            "containerStatuses": [{"name": "main", "image": "trainer:1", "imageID": "", "ready": false,
                "restartCount": 5, "containerID": "containerd://c0ffee",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "startedAt": "2026-01-10T10:04:00Z", "finishedAt": "2026-01-10T10:04:09Z",
                    "containerID": "containerd://dead01"}}}]}
    })
}

/// The scheduler's words for `ml/trainer-1`: no node has 8 free GPUs.
const NO_NODE_HAS_THE_GPUS: &str = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.";

/// `ml/trainer-1`: Pending, no node fits.
fn pending() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "trainer-1", "namespace": "ml"},
        "spec": {"containers": [{"name": "main", "image": "trainer:1",
            "resources": {"limits": {"nvidia.com/gpu": "8"}}}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": NO_NODE_HAS_THE_GPUS}]}
    })
}

fn device_plugin(node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("nvidia-device-plugin-{node}"), "namespace": "gpu-operator",
            "labels": {"app": "nvidia-device-plugin-daemonset"}},
        "spec": {"nodeName": node, "containers": [{"name": "plugin", "image": "k8s-device-plugin"}]},
        "status": {"phase": "Running"}
    })
}

fn event(ns: &str, name: &str, kind: &str, object: &str, type_: &str, reason: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": kind, "name": object, "namespace": ns},
        "type": type_, "reason": reason, "message": format!("{reason} for {object}"),
        "lastTimestamp": "2026-01-10T10:05:00Z", "count": 3
    })
}

fn populate(fake: &FakeKube) {
    fake.apply(node("gpu-node-1", 8));
    fake.apply(node("gpu-node-2", 8));
    fake.apply(crashlooping());
    fake.apply(pending());
    fake.apply(device_plugin("gpu-node-1"));
    fake.apply(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "frontend", "namespace": "web"},
        "spec": {"nodeName": "cpu-node", "containers": [{"name": "web", "image": "nginx"}]},
        "status": {"phase": "Running"}
    }));
    fake.apply(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "datasets", "namespace": "ml"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Ti"}}},
        "status": {"phase": "Bound"}
    }));
    fake.apply(event(
        "ml",
        "trainer-0.backoff",
        "Pod",
        "trainer-0",
        "Warning",
        "BackOff",
    ));
    fake.apply(event(
        "ml",
        "trainer-0.pulled",
        "Pod",
        "trainer-0",
        "Normal",
        "Pulled",
    ));
    fake.apply(event(
        "ml",
        "trainer-0.killing",
        "Pod",
        "trainer-0",
        "Normal",
        "Killing",
    ));
    // The scheduler's event says what its condition says.
    let mut failed = event(
        "ml",
        "trainer-1.failed",
        "Pod",
        "trainer-1",
        "Warning",
        "FailedScheduling",
    );
    failed["message"] = NO_NODE_HAS_THE_GPUS.into();
    fake.apply(failed);
    fake.apply(event(
        "default",
        "gpu-node-1.rebooted",
        "Node",
        "gpu-node-1",
        "Warning",
        "Rebooted",
    ));
    fake.apply(event(
        "default",
        "gpu-node-2.rebooted",
        "Node",
        "gpu-node-2",
        "Warning",
        "Rebooted",
    ));
    fake.apply(event(
        "web",
        "frontend.unhealthy",
        "Pod",
        "frontend",
        "Warning",
        "Unhealthy",
    ));
    fake.set_log(
        "ml",
        "trainer-0",
        "main",
        true,
        "loading /models/llama-70b\nFileNotFoundError: [Errno 2] No such file or directory: '/models/llama-70b/config.json'\n",
    );
}

async fn start(fake: &FakeKube, data: &Path) -> (Aggregator, Client) {
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), data.to_owned());
    config.kube = Some(KubeConfig {
        server: Some(fake.url()),
        fetch_logs: true,
        ..KubeConfig::default()
    });
    let agg = Aggregator::start(config).await.expect("aggregator");
    let client = Client::connect(format!("http://{}", agg.local_addr()))
        .await
        .expect("query client");
    (agg, client)
}

fn explain_req(ns: &str, pod: &str) -> pb::ExplainRequest {
    pb::ExplainRequest {
        namespace: ns.into(),
        pod: pod.into(),
    }
}

/// Gaps other than the agent's (no agent runs in these tests).
fn kube_gaps(gaps: &[pb::Gap]) -> Vec<&pb::Gap> {
    gaps.iter().filter(|g| g.what != "agent").collect()
}

/// Waits until Explain of ml/trainer-0 answers with every watcher in sync.
async fn synced(client: &mut Client) -> pb::ExplainResponse {
    let start = Instant::now();
    loop {
        let last = client.explain(explain_req("ml", "trainer-0")).await;
        if let Ok(r) = &last
            && kube_gaps(&r.get_ref().gaps).is_empty()
        {
            return r.get_ref().clone();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the watchers did not sync: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn file<'a>(files: &'a [pb::BundleFile], name: &str) -> &'a [u8] {
    files
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.data.as_slice())
        .unwrap_or_else(|| {
            let names: Vec<_> = files.iter().map(|f| &f.name).collect();
            panic!("no {name} in the bundle: {names:?}")
        })
}

fn json_file(files: &[pb::BundleFile], name: &str) -> Value {
    serde_json::from_slice(file(files, name)).expect(name)
}

/// `field` of every item of a List file.
fn items(list: &Value, pointer: &str) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| {
            i.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

async fn bundle(client: &mut Client, ns: &str, pod: &str) -> Vec<pb::BundleFile> {
    client
        .get_bundle(pb::GetBundleRequest {
            namespace: ns.into(),
            pod: pod.into(),
        })
        .await
        .expect("GetBundle")
        .into_inner()
        .files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_diagnose_and_bundle_read_the_live_api() {
    let fake = FakeKube::start();
    populate(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let (agg, mut client) = start(&fake, dir.path()).await;

    let explained = synced(&mut client).await;
    // No agent reported from the pod's node, and the answer says so.
    assert!(
        explained
            .gaps
            .iter()
            .any(|g| g.what == "agent" && g.why.contains("gpu-node-1")),
        "{:?}",
        explained.gaps
    );
    // Whatever the rules find is about this pod or its node.
    for f in &explained.findings {
        let s = f.subject.clone().unwrap_or_default();
        assert!(
            (s.namespace.as_deref() == Some("ml") && s.pod.as_deref() == Some("trainer-0"))
                || (s.pod.is_none() && s.node.as_deref() == Some("gpu-node-1")),
            "{f:?}"
        );
    }

    // The bundle is the evidence Explain read.
    let files = bundle(&mut client, "ml", "trainer-0").await;
    let pod = json_file(&files, "pod.json");
    assert_eq!(pod["metadata"]["name"], "trainer-0");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "CrashLoopBackOff"
    );
    let events = json_file(&files, "events.json");
    let mut reasons = items(&events, "/reason");
    reasons.sort();
    // Its own Warning and kept Normal, its node's event; not the dropped
    // Normal `Pulled`, nor other pods' or nodes' events.
    assert_eq!(reasons, ["BackOff", "Killing", "Rebooted"]);
    let mut about = items(&events, "/involvedObject/name");
    about.sort();
    assert_eq!(about, ["gpu-node-1", "trainer-0", "trainer-0"]);
    let mut nodes = items(&json_file(&files, "nodes.json"), "/metadata/name");
    nodes.sort();
    // A bound pod: its own node, that node's device plugin and GPU
    // holders; not the pending GPU pod elsewhere, not the web pod.
    assert_eq!(nodes, ["gpu-node-1"]);
    let mut others = items(&json_file(&files, "pods.json"), "/metadata/name");
    others.sort();
    assert_eq!(others, ["nvidia-device-plugin-gpu-node-1"]);
    assert_eq!(
        items(&json_file(&files, "pvcs.json"), "/metadata/name"),
        ["datasets"]
    );
    let log = String::from_utf8_lossy(file(&files, "logs/main.log"));
    assert!(log.contains("FileNotFoundError"), "{log}");
    let meta = json_file(&files, "meta.json");
    assert_eq!(
        meta["subject"],
        json!({"namespace": "ml", "name": "trainer-0"})
    );

    // The pending pod: its scheduling event, and every node and GPU
    // holder (where could it fit?).
    let files = bundle(&mut client, "ml", "trainer-1").await;
    assert_eq!(
        items(&json_file(&files, "events.json"), "/reason"),
        ["FailedScheduling"]
    );
    let mut nodes = items(&json_file(&files, "nodes.json"), "/metadata/name");
    nodes.sort();
    assert_eq!(nodes, ["gpu-node-1", "gpu-node-2"]);
    let mut others = items(&json_file(&files, "pods.json"), "/metadata/name");
    others.sort();
    assert_eq!(others, ["nvidia-device-plugin-gpu-node-1", "trainer-0"]);
    let explained = client
        .explain(explain_req("ml", "trainer-1"))
        .await
        .expect("explain the pending pod")
        .into_inner();
    assert!(
        explained
            .gaps
            .iter()
            .any(|g| g.what == "agent" && g.why.contains("not bound to a node")),
        "{:?}",
        explained.gaps
    );

    // A pod nobody knows.
    let err = client
        .explain(explain_req("ml", "trainer-9"))
        .await
        .expect_err("unknown pod");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("ml/trainer-9"), "{err:?}");

    // Diagnose: a scope is required; all namespaces answers in sync.
    let err = client
        .diagnose(pb::DiagnoseRequest::default())
        .await
        .expect_err("no scope");
    assert_eq!(err.code(), Code::InvalidArgument);
    let all = client
        .diagnose(pb::DiagnoseRequest {
            namespaces: vec![],
            all_namespaces: true,
        })
        .await
        .expect("diagnose")
        .into_inner();
    assert!(kube_gaps(&all.gaps).is_empty(), "{:?}", all.gaps);
    assert!(
        all.gaps
            .iter()
            .any(|g| g.why.contains("no agent has connected")),
        "{:?}",
        all.gaps
    );
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_crashlooping_and_the_pending_pod() {
    let fake = FakeKube::start();
    populate(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let (agg, mut client) = start(&fake, dir.path()).await;
    synced(&mut client).await;
    // The specific finding, not a generic one beside or instead of it:
    // trainer-0's log names the missing model file; no node has trainer-1's
    // 8 GPUs free. trainer-0's crash loop is kept as the consequence of the
    // missing file (`caused_by`); nothing else names either pod.
    for (pod, want) in [
        (
            "trainer-0",
            &[
                ("model_files_missing", None),
                ("crash_loop", Some("model_files_missing")),
            ][..],
        ),
        ("trainer-1", &[("gpu_unschedulable", None)][..]),
    ] {
        let r = client
            .explain(explain_req("ml", pod))
            .await
            .expect("explain")
            .into_inner();
        let named: Vec<(&str, Option<&str>)> = r
            .findings
            .iter()
            .filter(|f| {
                f.subject.as_ref().is_some_and(|s| {
                    s.namespace.as_deref() == Some("ml") && s.pod.as_deref() == Some(pod)
                })
            })
            .map(|f| {
                let cause = f.caused_by.first().and_then(|id| {
                    r.findings
                        .iter()
                        .find(|c| &c.id == id)
                        .map(|c| c.kind.as_str())
                });
                (f.kind.as_str(), cause)
            })
            .collect();
        // The kinds exactly; the causes where the test names one (what
        // else a root cause links to is the chains' business, tested with
        // the bundles).
        let kinds: Vec<&str> = named.iter().map(|(k, _)| *k).collect();
        let want_kinds: Vec<&str> = want.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds, want_kinds,
            "{pod}: expected {want:?} naming ml/{pod}: {:?}",
            r.findings
        );
        for ((kind, cause), (_, want_cause)) in named.iter().zip(want) {
            if want_cause.is_some() {
                assert_eq!(cause, want_cause, "{pod}: the cause of {kind}");
            }
        }
    }
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_name_the_stale_data_while_the_api_refuses() {
    let fake = FakeKube::start();
    populate(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let (agg, mut client) = start(&fake, dir.path()).await;
    synced(&mut client).await;

    // Every watch is cut, and the next re-watches and re-lists get 403.
    fake.fail_next(Fault::Forbidden, 8);
    fake.disconnect_watches();
    let start = Instant::now();
    let failing = loop {
        let r = client
            .explain(explain_req("ml", "trainer-0"))
            .await
            .expect("explain answers from the kept data while the API refuses")
            .into_inner();
        let failing: Vec<pb::Gap> = r
            .gaps
            .iter()
            .filter(|g| g.why.contains("watch failing since"))
            .cloned()
            .collect();
        if !failing.is_empty() {
            break failing;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no gap while the API refused: {:?}",
            r.gaps
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for g in &failing {
        assert!(
            ["pods", "node", "events", "pvcs"].contains(&g.what.as_str()),
            "{g:?}"
        );
        assert!(
            g.why.contains("403") || g.why.contains("orbidden"),
            "the gap gives the error: {g:?}"
        );
        assert!(g.why.contains("data as of"), "{g:?}");
    }

    // The faults run out: the watchers list again and the gaps go away.
    synced(&mut client).await;
    // And they watch again: a new event reaches the bundle.
    fake.apply(event(
        "ml",
        "trainer-0.oom",
        "Pod",
        "trainer-0",
        "Warning",
        "Unhealthy",
    ));
    let start = Instant::now();
    loop {
        let files = bundle(&mut client, "ml", "trainer-0").await;
        if items(&json_file(&files, "events.json"), "/reason").contains(&"Unhealthy".to_owned()) {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the watch did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}
