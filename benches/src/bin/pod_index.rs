//! What the pod store's indexes save and cost, at the size of issue #15's
//! cluster (12,500 nodes × 15 pods = 187,500 pods).
//!
//! Fills one `gpuscope_aggregator::kube::Projections` (the all-namespaces
//! pod store) with generated pods projected as the watcher projects them:
//! per node a dozen DaemonSet pods (one of them the NVIDIA device plugin,
//! matched by the default selectors), two GPU training pods and one CPU
//! pod, each with its own UID, containers and container IDs. Then times,
//! side by side in one run (old and new alternating, a random node each
//! round), the selections the queries make, as they were (a walk of every
//! pod, as the code before the indexes did it) and as they are (the
//! aggregator's own functions over the indexes, `evidence::neighbours`
//! and the store's lookups):
//!
//! - `explain`: a bound pod found by UID, then its neighbours (its node's
//!   GPU and device-plugin pods, one device-plugin pod elsewhere);
//! - `explain unbound`: every GPU-requesting pod;
//! - `ListContainers` of one node: naming its containers by pod UID (was:
//!   a vector of every pod, then a map of every pod by UID);
//! - the agent token check: the bound pod by UID (was: by name, every pod).
//!
//! Old and new answers are compared every round; a difference fails the
//! run. Rebuilding the selected pods (`PodView::pod`) costs the same either
//! way; it is timed once at the end, for a bound and an unbound pod. Memory: the indexes' heap (their tables'
//! capacity) per pod, and the VmRSS a store with indexes takes beyond one
//! whose objects declare no index keys, same objects, same run.
//!
//! usage: pod_index [--nodes N] [--pods-per-node 15] [--rounds R]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use gpuscope_aggregator::evidence::neighbours;
use gpuscope_aggregator::kube::{
    DEFAULT_DEVICE_PLUGIN_SELECTORS, PodView, Projection, Projections, Selector,
};
use gpuscope_benches::rss_kb;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// Command line.
#[derive(Debug, Parser)]
struct Args {
    /// Nodes in the generated cluster.
    #[arg(long, default_value_t = 12_500)]
    nodes: usize,
    /// Pods per node (at least 4: plugin, two GPU pods, one CPU pod; the
    /// rest DaemonSet pods).
    #[arg(long, default_value_t = 15)]
    pods_per_node: usize,
    /// Timed rounds of each query, old and new.
    #[arg(long, default_value_t = 40)]
    rounds: usize,
}

/// The `i`th UID, in the API server's form.
fn uid(i: usize) -> String {
    format!(
        "{:08x}-5e1f-4c0d-9a6b-{:012x}",
        i,
        i.wrapping_mul(2_654_435_761)
    )
}

/// A container ID of the runtime's form.
fn container_id(pod: usize, c: usize) -> String {
    format!("containerd://{pod:032x}{c:032x}")
}

/// The `slot`th pod of node `node` (`i`: its index in the cluster).
fn pod(node: usize, slot: usize, i: usize) -> Value {
    let node_name = format!("gpu-node-{node:05}");
    let (namespace, name, labels, gpus, containers): (String, String, Value, u32, usize) =
        match slot {
            0 => (
                "gpu-operator".into(),
                format!("nvidia-device-plugin-daemonset-{node:05}"),
                json!({"app.kubernetes.io/name": "nvidia-device-plugin", "controller-revision-hash": "6d8f9c7b5"}),
                0,
                1,
            ),
            1 | 2 => (
                format!("team-{}", node % 40),
                format!("train-{node:05}-{slot}-worker-0"),
                json!({"job-name": format!("train-{node:05}-{slot}"), "app": "trainer"}),
                4,
                2,
            ),
            3 => (
                format!("team-{}", node % 40),
                format!("prep-{node:05}-7c9f4"),
                json!({"app": "prep"}),
                0,
                1,
            ),
            _ => (
                "kube-system".into(),
                format!("ds-{slot}-{node:05}"),
                json!({"k8s-app": format!("ds-{slot}"), "controller-revision-hash": "5b7d9"}),
                0,
                2,
            ),
        };
    let resources = if gpus > 0 {
        json!({"limits": {"nvidia.com/gpu": gpus.to_string(), "cpu": "16", "memory": "128Gi"},
               "requests": {"nvidia.com/gpu": gpus.to_string(), "cpu": "16", "memory": "128Gi"}})
    } else {
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}})
    };
    let names: Vec<String> = (0..containers).map(|c| format!("c{c}")).collect();
    let spec_containers: Vec<Value> = names
        .iter()
        .map(|n| {
            json!({"name": n, "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                   "resources": resources,
                   "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]})
        })
        .collect();
    let statuses: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(c, n)| {
            json!({"name": n, "ready": true, "restartCount": 0,
                   "image": "nvcr.io/nvidia/pytorch:24.05-py3", "imageID": "sha256:0f1e",
                   "containerID": container_id(i, c),
                   "state": {"running": {"startedAt": "2026-12-01T10:00:00Z"}}})
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid(i), "labels": labels,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "owner",
                                          "uid": uid(usize::MAX - i), "controller": true}]},
        "spec": {"nodeName": node_name, "containers": spec_containers},
        "status": {"phase": "Running", "podIP": "10.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": statuses}
    })
}

/// A pod projection that declares no index keys: the store without
/// indexes, for the memory comparison.
struct Unindexed(PodView);

impl Projection for Unindexed {
    fn namespace(&self) -> &str {
        self.0.namespace()
    }
    fn name(&self) -> &str {
        self.0.name()
    }
}

/// An explain's selection as compared: the `namespace/name`s of the
/// pods on `node` and of the GPU pods, sorted, and how many device-plugin
/// pods from elsewhere (one: which one depends on the order of the walk).
fn shape(pods: &[Arc<PodView>], node: Option<&str>) -> (Vec<String>, usize) {
    let elsewhere =
        |p: &&Arc<PodView>| p.is_device_plugin() && p.gpu_request() == 0 && p.node() != node;
    let mut v: Vec<String> = pods
        .iter()
        .filter(|p| !elsewhere(p))
        .map(|p| p.pod_name())
        .collect();
    v.sort();
    (v, pods.iter().filter(elsewhere).count())
}

// ------------------------------------------------ the selections, before

/// A pod by UID, walking every pod (`evidence::resolve` before).
fn walk_by_uid(s: &Projections<PodView>, uid: &str) -> Option<Arc<PodView>> {
    let mut found = None;
    s.for_each(|p| {
        if found.is_none() && p.uid() == Some(uid) {
            found = Some(p.clone());
        }
    });
    found
}

/// The neighbours of an explain, walking every pod (before).
fn walk_neighbours(
    s: &Projections<PodView>,
    node: Option<&str>,
    unbound: bool,
) -> Vec<Arc<PodView>> {
    let mut seen = HashSet::new();
    let mut witness = false;
    let mut out = Vec::new();
    s.for_each(|p| {
        let plugin = p.is_device_plugin();
        let here = node.is_some() && p.node() == node;
        let gpus = p.gpu_request() > 0;
        let wanted = (unbound && gpus) || (here && (plugin || gpus)) || (plugin && !witness);
        if wanted && seen.insert(p.pod_name()) {
            witness |= plugin && !here;
            out.push(p.clone());
        }
    });
    out
}

/// Names of containers by pod UID through a map of every pod
/// (`query::Namer` before).
fn map_names(s: &Projections<PodView>, refs: &[(String, String)]) -> Vec<Option<String>> {
    let pods = s.state();
    let by_uid: HashMap<&str, &PodView> =
        pods.iter().filter_map(|p| Some((p.uid()?, &**p))).collect();
    refs.iter()
        .map(|(u, c)| {
            by_uid
                .get(u.as_str())
                .and_then(|p| p.container_name(c))
                .map(str::to_owned)
        })
        .collect()
}

/// The node of a pod by name, walking every pod (the token check before).
fn walk_by_name(s: &Projections<PodView>, name: &str) -> Option<String> {
    let mut on = None;
    s.for_each(|p| {
        if on.is_none() && p.name() == name {
            on = Some(p.node().map(str::to_owned));
        }
    });
    on?
}

// ------------------------------------------------ the selections, now

/// Names of containers by pod UID, one index lookup each (now).
fn index_names(s: &Projections<PodView>, refs: &[(String, String)]) -> Vec<Option<String>> {
    refs.iter()
        .map(|(u, c)| {
            s.by_uid(u)
                .and_then(|p| p.container_name(c).map(str::to_owned))
        })
        .collect()
}

// ------------------------------------------------ timing

/// Durations of one query, old and new.
#[derive(Default)]
struct Timed {
    old: Vec<Duration>,
    new: Vec<Duration>,
}

/// The `q` quantile of `v` (sorted in place).
fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

impl Timed {
    fn print(&mut self, what: &str) {
        let (o50, n50) = (quantile(&mut self.old, 0.5), quantile(&mut self.new, 0.5));
        let (o99, n99) = (quantile(&mut self.old, 0.99), quantile(&mut self.new, 0.99));
        println!(
            "{what:<28} walk median {:>9.3} ms (p99 {:>8.3}) | index median {:>8.4} ms (p99 {:>7.4}) | {:>7.1}x",
            o50.as_secs_f64() * 1e3,
            o99.as_secs_f64() * 1e3,
            n50.as_secs_f64() * 1e3,
            n99.as_secs_f64() * 1e3,
            o50.as_secs_f64() / n50.as_secs_f64().max(1e-9),
        );
    }
}

/// Times `old` and `new` once each, and checks that they agree as
/// `compare` sees them (outside the timing).
fn race<T, U: PartialEq + std::fmt::Debug>(
    t: &mut Timed,
    what: &str,
    old: impl FnOnce() -> T,
    new: impl FnOnce() -> T,
    compare: impl Fn(T) -> U,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let a = old();
    t.old.push(start.elapsed());
    let start = Instant::now();
    let b = new();
    t.new.push(start.elapsed());
    let (a, b) = (compare(a), compare(b));
    anyhow::ensure!(a == b, "{what}: the walk answers {a:?}, the index {b:?}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.pods_per_node >= 4, "--pods-per-node: at least 4");
    anyhow::ensure!(args.nodes >= 2, "--nodes: at least 2");
    let selectors = DEFAULT_DEVICE_PLUGIN_SELECTORS
        .iter()
        .map(|s| s.parse::<Selector>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let n = args.nodes * args.pods_per_node;

    // The same projections twice: without index keys, then with.
    let start = Instant::now();
    let mut views = Vec::with_capacity(n);
    for node in 0..args.nodes {
        for slot in 0..args.pods_per_node {
            let i = node * args.pods_per_node + slot;
            let p: Pod = serde_json::from_value(pod(node, slot, i)).context("generated pod")?;
            views.push(PodView::project(&p, &selectors)?);
        }
    }
    println!(
        "{n} pods on {} nodes generated and projected in {:.1?}",
        args.nodes,
        start.elapsed()
    );
    // Both stores get copies (a copy of each body, as a watch event
    // makes), the views stay until both are full.
    let plain = Projections::default();
    let before = rss_kb()?;
    plain.begin();
    for v in &views {
        plain.put(Unindexed(v.clone()));
    }
    plain.finish();
    let plain_kb = rss_kb()?.saturating_sub(before);
    let store = Projections::default();
    let before = rss_kb()?;
    store.begin();
    for v in &views {
        store.put(v.clone());
    }
    store.finish();
    let indexed_kb = rss_kb()?.saturating_sub(before);
    drop(plain);
    drop(views);
    let per = |bytes: f64| bytes / n as f64;
    println!(
        "indexes: {:.1} bytes per pod of table heap ({} bytes); VmRSS of the store with indexes +{indexed_kb} kB, \
         without +{plain_kb} kB: {:.1} bytes per pod",
        per(store.index_heap_bytes() as f64),
        store.index_heap_bytes(),
        per((indexed_kb as f64 - plain_kb as f64) * 1024.0),
    );

    // A fixed xorshift sequence picks the node of each round.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |m: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m as u64) as usize
    };
    let (mut explain, mut unbound, mut list, mut token) = Default::default();
    for _ in 0..args.rounds {
        let node = next(args.nodes);
        let node_name = format!("gpu-node-{node:05}");
        let target = node * args.pods_per_node + 1;
        let target_uid = uid(target);
        race(
            &mut explain,
            "explain",
            || {
                let p = walk_by_uid(&store, &target_uid);
                (p, walk_neighbours(&store, Some(&node_name), false))
            },
            || {
                let p = store.by_uid(&target_uid);
                let near = neighbours(&store, Some(&node_name), false, &mut HashSet::new());
                (p, near)
            },
            |(p, near)| (p.map(|p| p.pod_name()), shape(&near, Some(&node_name))),
        )?;
        race(
            &mut unbound,
            "explain unbound",
            || walk_neighbours(&store, None, true),
            || neighbours(&store, None, true, &mut HashSet::new()),
            |near| shape(&near, None),
        )?;
        let refs: Vec<(String, String)> = (0..args.pods_per_node)
            .flat_map(|slot| {
                let i = node * args.pods_per_node + slot;
                (0..2).map(move |c| {
                    (
                        uid(i),
                        container_id(i, c)["containerd://".len()..].to_owned(),
                    )
                })
            })
            .collect();
        race(
            &mut list,
            "ListContainers",
            || map_names(&store, &refs),
            || index_names(&store, &refs),
            |n| n,
        )?;
        let agent = format!("ds-4-{node:05}");
        let agent_uid = uid(node * args.pods_per_node + 4);
        race(
            &mut token,
            "token check",
            || walk_by_name(&store, &agent),
            || {
                store
                    .by_uid(&agent_uid)
                    .and_then(|p| p.node().map(str::to_owned))
            },
            |n| n,
        )?;
    }
    println!("{} rounds, one random node each:", args.rounds);
    explain.print("explain (bound pod)");
    unbound.print("explain (unbound pod)");
    list.print("ListContainers (one node)");
    token.print("agent token check");

    // What the selections feed: the pods rebuilt for the rules. A bound
    // pod's explain rebuilds its node's few; an unbound pod's rebuilds
    // every GPU holder (and, in the aggregator, every node).
    let rebuild = |what: &str, near: Vec<Arc<PodView>>| -> anyhow::Result<()> {
        let mut took = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let pods: Vec<Pod> = near.iter().map(|p| p.pod()).collect::<Result<_, _>>()?;
            took.push(start.elapsed());
            anyhow::ensure!(pods.len() == near.len());
        }
        println!(
            "rebuilding the pods of the {what} ({}): median {:.3} ms of 5",
            near.len(),
            quantile(&mut took, 0.5).as_secs_f64() * 1e3
        );
        Ok(())
    };
    let node_name = format!("gpu-node-{:05}", next(args.nodes));
    rebuild(
        "explain of a bound pod",
        neighbours(&store, Some(&node_name), false, &mut HashSet::new()),
    )?;
    rebuild(
        "explain of an unbound GPU pod",
        neighbours(&store, None, true, &mut HashSet::new()),
    )?;
    Ok(())
}
