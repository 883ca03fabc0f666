//! Findings as Kubernetes Events (`--kube-events`), end to end against the
//! fake API server: an OOM kill of a pod's container reaches the
//! aggregator over the real Ingest protocol, the recorded diagnosis is
//! published through kube-runtime's event recorder (`events.k8s.io/v1`
//! create, then a merge patch counting the second kill into the series),
//! and the real `kubectl describe pod` shows it with type, reason, source
//! and the finding's sentence. Also: the per-pod rate limit.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gpuscope_aggregator::kube::publish::Publisher;
use gpuscope_aggregator::{Aggregator, Config, KubeConfig};
use gpuscope_diagnose::{Confidence, Finding, Kind, Subject};
use gpuscope_proto::v1 as pb;
use gpuscope_tests::fake_kube::FakeKube;
use gpuscope_tests::kubectl::Kubectl;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const DEADLINE: Duration = Duration::from_secs(30);
const CONTAINER_ID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// `ml/trainer-0`: its container was OOM-killed (the instance
/// [`CONTAINER_ID`]) and restarted.
fn oom_killed_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "trainer-0", "namespace": "ml"},
        "spec": {"nodeName": "gpu-node-1", "restartPolicy": "Always",
            "containers": [{"name": "trainer", "image": "trainer:1",
                "resources": {"limits": {"memory": "256Mi"}}}]},
        "status": {"phase": "Running", "startTime": "2026-01-10T10:00:00Z",
            "containerStatuses": [{"name": "trainer", "image": "trainer:1", "imageID": "",
                "ready": true, "restartCount": 1,
                "containerID": "containerd://5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
                "state": {"running": {"startedAt": "2026-01-10T10:05:00Z"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                    "startedAt": "2026-01-10T10:00:00Z", "finishedAt": "2026-01-10T10:04:59Z",
                    "containerID": format!("containerd://{CONTAINER_ID}")}}}]}
    })
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// An OOM kill of the pod's container, as an agent sends it.
fn oom_kill(seq: u64, pod_uid: &str) -> pb::NodeEvent {
    let time = now_nanos();
    pb::NodeEvent {
        seq,
        time_unix_nanos: time,
        kind: Some(pb::node_event::Kind::OomKill(pb::OomKill {
            time_unix_nanos: time,
            container: Some(pb::ContainerRef {
                cgroup_path: format!("/kubepods/burstable/pod{pod_uid}/{CONTAINER_ID}"),
                pod_uid: pod_uid.to_owned(),
                container_id: CONTAINER_ID.to_owned(),
                ..Default::default()
            }),
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

/// Waits until `f` returns something, failing after [`DEADLINE`].
async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn gpuscope_events(fake: &FakeKube) -> Vec<Value> {
    fake.events_v1()
        .into_iter()
        .filter(|e| e["reportingController"] == "gpuscope")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_becomes_an_event_that_kubectl_describe_shows() {
    let fake = FakeKube::start();
    let pod = fake.apply(oom_killed_pod());
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"));
    config.record_diagnosis_after = Some(Duration::from_millis(300));
    config.kube = Some(KubeConfig {
        server: Some(fake.url()),
        publish_events: true,
        ..KubeConfig::default()
    });
    let agg = Aggregator::start(config).await.unwrap();
    // The pod watch must have the pod before the diagnosis is made.
    let kube = agg.kube().unwrap().clone();
    until("the pod watch", || {
        kube.pods()
            .iter()
            .any(|p| gpuscope_aggregator::kube::Projection::name(&**p) == "trainer-0")
            .then_some(())
    })
    .await;

    // The agent's stream: Hello, then one OOM kill.
    let mut ingest =
        pb::ingest_client::IngestClient::connect(format!("http://{}", agg.local_addr()))
            .await
            .unwrap();
    let (tx, rx) = mpsc::channel(16);
    let hello = pb::agent_message::Kind::Hello(pb::Hello {
        node: Some(pb::NodeIdentity {
            node_name: "gpu-node-1".into(),
            boot_id: "boot-1".into(),
            agent_version: "test".into(),
            ..Default::default()
        }),
        protocol: 1,
    });
    tx.send(pb::AgentMessage { kind: Some(hello) })
        .await
        .unwrap();
    let mut acks = ingest
        .stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let send_kill = |seq| {
        let tx = tx.clone();
        let uid = uid.clone();
        async move {
            let batch = pb::agent_message::Kind::Events(pb::EventBatch {
                boot_id: "boot-1".into(),
                events: vec![oom_kill(seq, &uid)],
            });
            tx.send(pb::AgentMessage { kind: Some(batch) })
                .await
                .unwrap();
        }
    };
    send_kill(1).await;
    acks.message().await.unwrap().unwrap();

    let first = until("a GpuscopeOOMKilled Event", || {
        gpuscope_events(&fake)
            .into_iter()
            .find(|e| e["reason"] == "GpuscopeOOMKilled")
    })
    .await;
    assert_eq!(first["type"], "Warning");
    assert_eq!(first["action"], "Diagnosed");
    assert_eq!(first["regarding"]["kind"], "Pod");
    assert_eq!(first["regarding"]["name"], "trainer-0");
    assert_eq!(first["regarding"]["namespace"], "ml");
    assert_eq!(first["regarding"]["uid"], uid.as_str());
    let note = first["note"].as_str().unwrap().to_owned();
    assert!(note.contains("trainer"), "{note}");
    assert!(first.get("series").is_none_or(Value::is_null), "{first}");

    // A second kill: the same reason on the same pod is counted into the
    // first Event's series (a merge patch), not a second Event.
    send_kill(2).await;
    acks.message().await.unwrap().unwrap();
    let name = first["metadata"]["name"].clone();
    let counted = until("the Event's series count 2", || {
        gpuscope_events(&fake)
            .into_iter()
            .find(|e| e["metadata"]["name"] == name && e["series"]["count"] == 2)
    })
    .await;
    let oom_events = gpuscope_events(&fake)
        .into_iter()
        .filter(|e| e["reason"] == "GpuscopeOOMKilled")
        .count();
    assert_eq!(oom_events, 1, "{:#?}", fake.events_v1());
    assert_eq!(counted["note"], first["note"]);
    let patches = fake
        .request_log()
        .iter()
        .filter(|r| r.starts_with("/apis/events.k8s.io/v1/namespaces/ml/events/"))
        .count();
    assert!(patches >= 1, "{:?}", fake.request_log());

    // The real kubectl reads it where people look.
    let Some(kubectl) = Kubectl::new(&fake) else {
        return;
    };
    let described = kubectl.ok(&["describe", "pod", "trainer-0", "-n", "ml"]);
    let line = described
        .lines()
        .find(|l| l.contains("GpuscopeOOMKilled"))
        .unwrap_or_else(|| panic!("no GpuscopeOOMKilled in kubectl describe:\n{described}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[0], "Warning", "{line}");
    assert!(line.contains("(x2 over"), "{line}");
    assert!(line.contains(" gpuscope "), "{line}");
    let first_words: String = note
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        described
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(&first_words),
        "the finding's sentence ({note}) is not in:\n{described}"
    );
    agg.shutdown(Duration::from_secs(5)).await.unwrap();
}

fn finding(kind: Kind, summary: &str) -> Finding {
    Finding::new(
        kind,
        Subject {
            namespace: Some("ml".into()),
            pod: Some("trainer-0".into()),
            ..Subject::default()
        },
        Confidence::High,
        summary,
    )
}

#[tokio::test]
async fn events_are_rate_limited_per_pod() {
    let fake = FakeKube::start();
    let pod = fake.apply(oom_killed_pod());
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).unwrap();
    let client = kube::Client::try_from(kube::Config::new(fake.url().parse().unwrap())).unwrap();
    let publisher = Publisher::with_limits(client, 2, Duration::from_secs(3600));
    let findings = [
        finding(Kind::OomKilled, "The container trainer was OOM-killed."),
        finding(Kind::CrashLoop, "The container trainer is crash-looping."),
        finding(Kind::MemoryThrashing, "The container trainer is thrashing."),
        finding(Kind::InsufficientEvidence, "Not enough is known."),
    ];
    // Two tokens: two Events; the third finding is dropped, and
    // insufficient_evidence is never published.
    assert_eq!(publisher.publish(&pod, &findings).await, 2);
    let reasons: Vec<Value> = fake
        .events_v1()
        .iter()
        .map(|e| e["reason"].clone())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.contains(&json!("GpuscopeOOMKilled")), "{reasons:?}");
    assert!(reasons.contains(&json!("GpuscopeCrashLoop")), "{reasons:?}");
    // Another pod has a bucket of its own.
    let mut other = pod.clone();
    other.metadata.name = Some("trainer-1".into());
    other.metadata.uid = Some("another-uid".into());
    assert_eq!(publisher.publish(&other, &findings[..1]).await, 1);
}
