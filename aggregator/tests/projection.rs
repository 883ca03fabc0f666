//! The Kubernetes stores' projections ([`gpuscope_aggregator::kube::project`])
//! lose nothing a rule reads: over every case of the diagnosis corpus
//! (`tests/bundles/*/bundle`, the cases `cargo run -p gpuscope-diagnose
//! --example score` scores), the findings and gaps over the pods, nodes
//! and PVCs projected and rebuilt equal those over the objects as
//! collected. And each kept path is needed: dropping it changes the answer
//! to some case, unless it is listed in [`NOT_IN_CORPUS`] with what reads
//! it.

use std::path::PathBuf;

use gpuscope_aggregator::kube::project::{self, NODE_KEEP, POD_KEEP, PVC_KEEP};
use gpuscope_aggregator::kube::{
    DEFAULT_DEVICE_PLUGIN_SELECTORS, EventView, NodeView, PodView, Projection, PvcView, Selector,
    join,
};
use gpuscope_diagnose::bundle::Bundle;
use gpuscope_diagnose::{Config, Evidence, Finding, Gap, k8s};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use serde_json::{Value, json};

/// Kept paths no corpus case's answer depends on, and what reads them.
const NOT_IN_CORPUS: &[(&str, &str)] = &[
    (
        "pod metadata.deletionTimestamp",
        "rules/oom.rs, rules/pod/crash_loop.rs: a kill during deletion",
    ),
    (
        "pod metadata.ownerReferences.controller",
        "k8s::owner: the controlling owner among several",
    ),
    (
        "pod spec.terminationGracePeriodSeconds",
        "rules/oom.rs, rules/pod/crash_loop.rs, rules/pod/probe.rs: SIGKILL after the grace period",
    ),
    (
        "pod spec.schedulerName",
        "rules/pod/pending.rs: a pod no scheduler serves",
    ),
    (
        "pod spec.schedulingGates",
        "rules/pod/pending.rs: a gated pod",
    ),
    (
        "pod spec.affinity",
        "rules/scheduling.rs, rules/gpu_health/device_plugin.rs: node affinity",
    ),
    (
        "pod spec.tolerations",
        "rules/scheduling.rs: taints the pod does not tolerate",
    ),
    (
        "pod spec.containers.envFrom",
        "rules/pod/config_missing.rs: a missing ConfigMap or Secret",
    ),
    (
        "pod spec.containers.startupProbe",
        "rules/pod/probe.rs: which probe failed",
    ),
    ("pod spec.initContainers.name", INIT),
    ("pod spec.initContainers.image", INIT),
    ("pod spec.initContainers.command", INIT),
    ("pod spec.initContainers.args", INIT),
    ("pod spec.initContainers.env.name", INIT),
    ("pod spec.initContainers.env.valueFrom", INIT),
    ("pod spec.initContainers.envFrom", INIT),
    ("pod spec.initContainers.resources", INIT),
    ("pod spec.initContainers.volumeMounts", INIT),
    ("pod spec.initContainers.livenessProbe", INIT),
    ("pod spec.initContainers.readinessProbe", INIT),
    ("pod spec.initContainers.startupProbe", INIT),
    ("pod spec.initContainers.terminationMessagePolicy", INIT),
    (
        "pod status.containerStatuses.image",
        "rules/pod/image_pull.rs: the image when the spec does not name it",
    ),
    (
        "pod status.containerStatuses.started",
        "rules/pod/probe.rs: a container not yet started (startup probe)",
    ),
    ("pod status.initContainerStatuses.image", INIT_STATUS),
    (
        "pod status.initContainerStatuses.containerID",
        "kube/join.rs container_names: the agent's container IDs named",
    ),
    ("pod status.initContainerStatuses.ready", INIT_STATUS),
    ("pod status.initContainerStatuses.started", INIT_STATUS),
    (
        "node spec.unschedulable",
        "rules/scheduling.rs: a cordoned node",
    ),
    (
        "node status.conditions.reason",
        "rules/oom.rs: a node pressure condition without a message",
    ),
];

/// An init container's spec is read where an app container's is.
const INIT: &str = "rules/pod/mod.rs spec_container: an init container's spec, found by name as an app container's";
/// Init container statuses are read where app containers' are.
const INIT_STATUS: &str = "k8s::container_statuses: init and app container statuses, read alike";

fn cases() -> Vec<(String, Bundle)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/bundles");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/bundles")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("bundle").is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() > 100,
        "the corpus is where it was: {}",
        dirs.len()
    );
    dirs.into_iter()
        .map(|d| {
            let name = d
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let b = Bundle::read(&d.join("bundle")).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, b)
        })
        .collect()
}

/// The engine's answer: the subject's findings (every pod's without
/// one) and the rules' gaps.
fn answer(b: &Bundle, ev: &Evidence) -> (Vec<Finding>, Vec<Gap>) {
    let config = Config::default();
    let findings = match &b.subject {
        Some(s) => gpuscope_diagnose::explain(ev, &config, s),
        None => gpuscope_diagnose::diagnose(ev, &config),
    };
    let gaps = gpuscope_diagnose::rule_gaps(ev, &config, b.subject.as_ref());
    (findings, gaps)
}

/// The evidence with its Kubernetes objects through `f`.
fn through(
    ev: &Evidence,
    pod: impl Fn(&k8s_openapi::api::core::v1::Pod) -> k8s_openapi::api::core::v1::Pod,
    node: impl Fn(&k8s_openapi::api::core::v1::Node) -> k8s_openapi::api::core::v1::Node,
    pvc: impl Fn(
        &k8s_openapi::api::core::v1::PersistentVolumeClaim,
    ) -> k8s_openapi::api::core::v1::PersistentVolumeClaim,
) -> Evidence {
    let mut out = ev.clone();
    out.pods = ev.pods.iter().map(pod).collect();
    out.nodes = ev.nodes.iter().map(node).collect();
    out.pvcs = ev.pvcs.iter().map(pvc).collect();
    out
}

#[test]
fn findings_over_projected_objects_equal_those_over_the_originals() {
    let mut differ = Vec::new();
    let mut bytes = 0usize;
    let mut pods = 0usize;
    for (name, b) in cases() {
        let projected = through(
            &b.evidence,
            |p| {
                PodView::project(p, &[])
                    .expect("pod projects")
                    .pod()
                    .expect("pod rebuilds")
            },
            |n| {
                NodeView::project(n)
                    .expect("node projects")
                    .node()
                    .expect("node rebuilds")
            },
            |c| {
                PvcView::project(c)
                    .expect("pvc projects")
                    .pvc()
                    .expect("pvc rebuilds")
            },
        );
        for p in &b.evidence.pods {
            bytes += PodView::project(p, &[]).expect("projects").heap_bytes();
            pods += 1;
        }
        if answer(&b, &b.evidence) != answer(&b, &projected) {
            if std::env::var_os("PROJECTION_DIFF").is_some() {
                eprintln!(
                    "{name}:\n{:#?}\n---- projected:\n{:#?}",
                    answer(&b, &b.evidence),
                    answer(&b, &projected)
                );
            }
            differ.push(name);
        }
    }
    assert!(
        differ.is_empty(),
        "the answer changes through the projection in {} cases: {differ:?}",
        differ.len()
    );
    assert!(pods > 100);
    eprintln!(
        "{pods} corpus pods: {:.0} bytes of projection each (heap, not counting shared strings)",
        bytes as f64 / pods as f64
    );
}

#[test]
fn each_kept_path_is_read_by_some_case() {
    let cases = cases();
    let original: Vec<_> = cases.iter().map(|(_, b)| answer(b, &b.evidence)).collect();
    let needed = |kind: &str, keep: &[&'static str], i: usize| -> bool {
        let fewer: Vec<&'static str> = keep
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| *p)
            .collect();
        cases.iter().zip(&original).any(|((_, b), want)| {
            let ev = match kind {
                "pod" => through(
                    &b.evidence,
                    |p| project::keeping(p, &fewer).expect("pod"),
                    Clone::clone,
                    Clone::clone,
                ),
                "node" => through(
                    &b.evidence,
                    Clone::clone,
                    |n| project::keeping(n, &fewer).expect("node"),
                    Clone::clone,
                ),
                _ => through(&b.evidence, Clone::clone, Clone::clone, |c| {
                    project::keeping(c, &fewer).expect("pvc")
                }),
            };
            answer(b, &ev) != *want
        })
    };
    let mut unread = Vec::new();
    for (kind, keep) in [("pod", POD_KEEP), ("node", NODE_KEEP), ("pvc", PVC_KEEP)] {
        for (i, path) in keep.iter().enumerate() {
            if !needed(kind, keep, i) {
                unread.push(format!("{kind} {path}"));
            }
        }
    }
    let listed: Vec<String> = NOT_IN_CORPUS.iter().map(|(p, _)| (*p).to_owned()).collect();
    assert_eq!(
        unread, listed,
        "kept paths no case needs (left) must be those NOT_IN_CORPUS names with what reads them (right)"
    );
}

/// Events are kept almost whole (only `metadata` bookkeeping is dropped),
/// so the proof is the answer, not each path: the findings over the
/// events projected and rebuilt equal those over the originals.
#[test]
fn findings_over_projected_events_equal_those_over_the_originals() {
    let mut differ = Vec::new();
    let mut events = 0usize;
    let mut bytes = 0usize;
    for (name, b) in cases() {
        let mut projected = b.evidence.clone();
        projected.events = b
            .evidence
            .events
            .iter()
            .map(|e| {
                let v = EventView::project(e).expect("event projects");
                bytes += v.heap_bytes();
                events += 1;
                v.rebuilt().expect("event rebuilds")
            })
            .collect();
        if answer(&b, &b.evidence) != answer(&b, &projected) {
            differ.push(name);
        }
    }
    assert!(
        differ.is_empty(),
        "the answer changes through the event projection in {} cases: {differ:?}",
        differ.len()
    );
    assert!(events > 100, "the corpus has events: {events}");
    eprintln!(
        "{events} corpus events: {:.0} bytes of projection each (heap, not counting shared strings)",
        bytes as f64 / events as f64
    );
}

/// Every Pod, Node and PersistentVolumeClaim of the corpus's JSON files,
/// as written (kind, JSON object), each with what an API server adds
/// that no projection keeps: a resourceVersion and managedFields.
fn corpus_objects() -> Vec<(String, String, Value)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/bundles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/bundles")
        .flat_map(|e| {
            let dir = e.expect("entry").path().join("bundle");
            std::fs::read_dir(dir).into_iter().flatten()
        })
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let list_kind = value
            .get("kind")
            .and_then(Value::as_str)
            .and_then(|k| k.strip_suffix("List"))
            .map(str::to_owned);
        let items = match (value.get("items").and_then(Value::as_array), list_kind) {
            (Some(items), Some(kind)) => items
                .iter()
                .map(|i| {
                    (
                        i.get("kind")
                            .and_then(Value::as_str)
                            .unwrap_or(&kind)
                            .to_owned(),
                        i.clone(),
                    )
                })
                .collect(),
            _ => vec![(
                value
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                value,
            )],
        };
        for (kind, mut item) in items {
            if !matches!(kind.as_str(), "Pod" | "Node" | "PersistentVolumeClaim") {
                continue;
            }
            if let Some(m) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("resourceVersion".into(), json!("918273"));
                m.insert(
                    "managedFields".into(),
                    json!([{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                        "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:phase": {}}}}]),
                );
            }
            out.push((path.display().to_string(), kind, item));
        }
    }
    out
}

/// The watchers decode each object's JSON text straight into its
/// projection (`Watched`: unkept fields skipped while parsing); over every
/// Pod, Node and PVC of the corpus that projection rebuilds the object
/// that projecting the typed object rebuilds, holds as many bytes, and
/// its header (read from the kept fields) says what the `k8s::` functions say
/// of the object.
#[test]
fn decoding_the_json_projects_as_the_typed_object_does() {
    let selectors: Vec<Selector> = DEFAULT_DEVICE_PLUGIN_SELECTORS
        .iter()
        .map(|s| s.parse().expect("selector"))
        .collect();
    let objects = corpus_objects();
    let mut seen = [0usize; 3];
    for (file, kind, item) in &objects {
        let text = item.to_string();
        match kind.as_str() {
            "Pod" => {
                let p: Pod = serde_json::from_value(item.clone()).expect("a pod");
                let d =
                    PodView::decode(&text, &selectors).unwrap_or_else(|e| panic!("{file}: {e}"));
                let t = PodView::project(&p, &selectors).expect("projects");
                let what = format!("{file}: pod {}", k8s::pod_name(&p));
                assert_eq!(
                    d.pod().expect("rebuilds"),
                    t.pod().expect("rebuilds"),
                    "{what}"
                );
                assert_eq!(d.heap_bytes(), t.heap_bytes(), "{what}");
                assert_eq!(
                    (d.namespace(), d.name(), d.uid(), d.node()),
                    (
                        k8s::namespace(&p),
                        k8s::name(&p),
                        k8s::uid(&p),
                        k8s::node_name(&p)
                    ),
                    "{what}"
                );
                assert_eq!(d.owner().map(str::to_owned), k8s::owner(&p), "{what}");
                assert_eq!(d.gpu_request(), k8s::gpu_request(&p), "{what}");
                let ready = k8s::status(&p)
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                assert_eq!(d.is_ready(), ready, "{what}");
                assert_eq!(d.container_names(), join::container_names(&p), "{what}");
                assert_eq!(
                    d.is_device_plugin(),
                    selectors.iter().any(|s| s.matches(&p)),
                    "{what}"
                );
                seen[0] += 1;
            }
            "Node" => {
                let n: Node = serde_json::from_value(item.clone()).expect("a node");
                let d = NodeView::decode(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
                let t = NodeView::project(&n).expect("projects");
                assert_eq!(
                    d.node().expect("rebuilds"),
                    t.node().expect("rebuilds"),
                    "{file}"
                );
                assert_eq!(d.name(), t.name(), "{file}");
                assert_eq!(d.gpu_capacity(), t.gpu_capacity(), "{file}");
                assert_eq!(d.gpu_allocatable(), t.gpu_allocatable(), "{file}");
                assert_eq!(d.gpus(), k8s::node_gpus(&n).0, "{file}");
                seen[1] += 1;
            }
            _ => {
                let c: PersistentVolumeClaim = serde_json::from_value(item.clone()).expect("a pvc");
                let d = PvcView::decode(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
                let t = PvcView::project(&c).expect("projects");
                assert_eq!(
                    d.pvc().expect("rebuilds"),
                    t.pvc().expect("rebuilds"),
                    "{file}"
                );
                assert_eq!(
                    (d.namespace(), d.name()),
                    (t.namespace(), t.name()),
                    "{file}"
                );
                seen[2] += 1;
            }
        }
    }
    assert!(
        seen[0] > 100 && seen[1] > 50 && seen[2] > 0,
        "the corpus's pods, nodes and claims: {seen:?}"
    );
    eprintln!("decoded {seen:?} corpus pods, nodes and claims");
}
