//! How the aggregator's watchers list: a streaming list
//! (`sendInitialEvents=true`, the initial objects as watch events ended
//! by the `k8s.io/initial-events-end` bookmark) where the API server
//! offers it, and paged lists (`limit`/`continue`) from the first refusal
//! on (a 422 Invalid, as an API server without the WatchList feature
//! answers), against the fake API server through the real kube-rs client.

use std::time::{Duration, Instant};

use gpuscope_aggregator::kube::{Kube, Projection};
use gpuscope_aggregator::{Aggregator, Config, KubeConfig};
use gpuscope_tests::fake_kube::{FakeKube, Fault};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

fn populate(fake: &FakeKube) {
    for i in 0..3 {
        fake.apply(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("trainer-{i}"), "namespace": "ml"},
            "spec": {"nodeName": "gpu-1", "containers": [{"name": "main", "image": "trainer:1",
                "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        }));
    }
    fake.apply(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "gpu-1"},
        "status": {"capacity": {"nvidia.com/gpu": "8"}, "allocatable": {"nvidia.com/gpu": "8"}},
    }));
}

async fn start(fake: &FakeKube, data: &std::path::Path) -> Aggregator {
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), data.to_owned());
    config.kube = Some(KubeConfig {
        server: Some(fake.url()),
        ..KubeConfig::default()
    });
    Aggregator::start(config).await.expect("aggregator")
}

/// Waits until every watcher is ready and the pods and the node are in.
async fn listed(kube: &Kube) {
    let start = Instant::now();
    loop {
        let ready = kube.health().all_ready();
        if ready && kube.pods().len() == 3 && kube.node("gpu-1").is_some() {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "not listed: {:?}, {} pods",
            kube.health().snapshot(),
            kube.pods().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pod requests of each form: (streaming watches, paged lists).
fn pod_requests(fake: &FakeKube) -> (usize, usize) {
    let log = fake.request_log();
    let pods = log.iter().filter(|r| r.starts_with("/api/v1/pods?"));
    let streaming = pods
        .clone()
        .filter(|r| r.contains("watch=true") && r.contains("sendInitialEvents=true"))
        .count();
    let paged = pods
        .filter(|r| !r.contains("watch=true") && r.contains("limit=500"))
        .count();
    (streaming, paged)
}

#[tokio::test]
async fn a_streaming_list_where_the_api_server_offers_it() {
    let fake = FakeKube::start();
    populate(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let agg = start(&fake, dir.path()).await;
    let kube = agg.kube().expect("kube").clone();
    listed(&kube).await;
    let (streaming, paged) = pod_requests(&fake);
    assert!(streaming >= 1, "{:?}", fake.request_log());
    assert_eq!(paged, 0, "no list request: {:?}", fake.request_log());
    let p = kube.pod("ml", "trainer-1").expect("projected");
    assert_eq!((p.node(), p.gpu_request()), (Some("gpu-1"), 1));
    let rebuilt = p.pod().expect("rebuilds");
    assert_eq!(rebuilt.spec.expect("spec").containers[0].name, "main");
}

#[tokio::test]
async fn paged_lists_from_the_first_refusal_of_a_streaming_one() {
    let fake = FakeKube::start();
    populate(&fake);
    // Each watcher's first request (its streaming watch) is refused.
    fake.fail_next(Fault::Invalid, 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let agg = start(&fake, dir.path()).await;
    let kube = agg.kube().expect("kube").clone();
    listed(&kube).await;
    let (streaming, paged) = pod_requests(&fake);
    assert_eq!(streaming, 1, "one refused try: {:?}", fake.request_log());
    assert!(paged >= 1, "then a paged list: {:?}", fake.request_log());
    // A relist after 410 Gone stays paged, and the store answers all along.
    fake.fail_next(Fault::Gone, 4);
    fake.disconnect_watches();
    let start = Instant::now();
    while pod_requests(&fake).1 < paged + 1 {
        assert_eq!(kube.pods().len(), 3, "the store keeps answering");
        assert!(start.elapsed() < DEADLINE, "{:?}", fake.request_log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    listed(&kube).await;
    assert_eq!(pod_requests(&fake).0, 1, "no second streaming try");
    assert_eq!(
        kube.pods().iter().filter(|p| p.namespace() == "ml").count(),
        3
    );
}
