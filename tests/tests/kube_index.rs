//! The pod stores' indexes (by UID, by node, the device-plugin and
//! GPU-requesting sets, the namespaces) as the real watchers keep them,
//! against the fake API server through the real kube-rs client: with the
//! namespaces restricted, a pod store per namespace plus the device-plugin
//! watchers, where a device-plugin pod of a watched namespace is seen
//! twice and must be answered once; and after a pod moves node (deleted
//! and made again under its name) or is deleted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use gpuscope_aggregator::kube::{Kube, Mark, PodIndex};
use gpuscope_aggregator::{Aggregator, Config, KubeConfig};
use gpuscope_tests::fake_kube::FakeKube;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

fn pod(namespace: &str, name: &str, node: &str, gpus: u32, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "img:1",
            "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}}]},
    })
}

fn plugin_labels() -> Value {
    json!({"app.kubernetes.io/name": "nvidia-device-plugin"})
}

/// Waits until every watcher is ready and `done` holds.
async fn until(kube: &Kube, what: &str, done: impl Fn(&Kube) -> bool) {
    let start = Instant::now();
    loop {
        let ready = kube.health().all_ready();
        if ready && done(kube) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: {:?}, pods {:?}",
            kube.health().snapshot(),
            names(&kube.pods())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn names(pods: &[std::sync::Arc<gpuscope_aggregator::kube::PodView>]) -> Vec<String> {
    let mut v: Vec<String> = pods.iter().map(|p| p.pod_name()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn restricted_namespaces_answer_each_pod_once_by_uid_node_and_mark() {
    let fake = FakeKube::start();
    fake.apply(pod("ml", "trainer-0", "gpu-1", 2, json!({})));
    fake.apply(pod("ml", "prep-0", "gpu-1", 0, json!({})));
    // A device-plugin pod in a watched namespace: the `ml` pod watcher and
    // the device-plugin watcher both see it.
    fake.apply(pod("ml", "plugin-ml", "gpu-1", 0, plugin_labels()));
    fake.apply(pod("gpu-operator", "plugin-2", "gpu-2", 0, plugin_labels()));
    // Not watched: neither namespace nor device plugin.
    fake.apply(pod("other", "web", "gpu-1", 1, json!({})));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), dir.path().to_owned());
    config.kube = Some(KubeConfig {
        server: Some(fake.url()),
        namespaces: vec!["ml".into()],
        ..KubeConfig::default()
    });
    let agg = Aggregator::start(config).await.expect("aggregator");
    let kube = agg.kube().expect("kube").clone();
    until(&kube, "listed", |k| k.pods().len() == 4).await;

    assert_eq!(
        names(&kube.pods_on("gpu-1")),
        ["ml/plugin-ml", "ml/prep-0", "ml/trainer-0"],
        "each once, the unwatched namespace left out"
    );
    assert_eq!(names(&kube.pods_on("gpu-2")), ["gpu-operator/plugin-2"]);
    assert!(kube.pods_on("gpu-3").is_empty());
    assert_eq!(
        names(&kube.marked_pods(Mark::DevicePlugin)),
        ["gpu-operator/plugin-2", "ml/plugin-ml"]
    );
    assert_eq!(names(&kube.marked_pods(Mark::Gpus)), ["ml/trainer-0"]);
    let elsewhere = kube.find_marked_pod(Mark::DevicePlugin, |p| p.node() != Some("gpu-1"));
    assert_eq!(
        elsewhere.map(|p| p.pod_name()).as_deref(),
        Some("gpu-operator/plugin-2")
    );
    let namespaces: BTreeSet<String> = ["gpu-operator", "ml"].map(String::from).into();
    assert_eq!(kube.pod_namespaces(), namespaces);
    for p in kube.pods() {
        let uid = p.uid().expect("the fake API server sets UIDs");
        let found = kube.pod_by_uid(uid).map(|f| f.pod_name());
        assert_eq!(found, Some(p.pod_name()), "by UID {uid}");
    }
    let old_uid = kube
        .pod("ml", "trainer-0")
        .and_then(|p| p.uid().map(str::to_owned));
    let old_uid = old_uid.expect("trainer-0's UID");

    // The trainer is deleted and made again on gpu-2 (a new UID), the
    // device-plugin pod on gpu-2 deleted.
    assert!(fake.delete("Pod", Some("ml"), "trainer-0"));
    fake.apply(pod("ml", "trainer-0", "gpu-2", 2, json!({})));
    assert!(fake.delete("Pod", Some("gpu-operator"), "plugin-2"));
    until(&kube, "moved", |k| {
        names(&k.pods_on("gpu-2")) == ["ml/trainer-0"]
    })
    .await;
    assert_eq!(names(&kube.pods_on("gpu-1")), ["ml/plugin-ml", "ml/prep-0"]);
    assert!(
        kube.pod_by_uid(&old_uid).is_none(),
        "the old UID is forgotten"
    );
    let new = kube.pod("ml", "trainer-0").expect("made again");
    let new_uid = new.uid().expect("a UID");
    assert_ne!(new_uid, old_uid);
    assert_eq!(
        kube.pod_by_uid(new_uid)
            .and_then(|p| p.node().map(str::to_owned))
            .as_deref(),
        Some("gpu-2")
    );
    assert_eq!(
        names(&kube.marked_pods(Mark::DevicePlugin)),
        ["ml/plugin-ml"]
    );
    assert!(
        kube.find_marked_pod(Mark::DevicePlugin, |p| p.node() != Some("gpu-1"))
            .is_none(),
        "no device-plugin pod elsewhere now"
    );
    assert_eq!(kube.pod_namespaces(), BTreeSet::from(["ml".to_owned()]));
}
