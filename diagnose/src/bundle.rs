//! Offline bundles: a folder of plain `kubectl ... -o json` outputs, the
//! agent's `watch -o jsonl` lines and optional log tails, read into an
//! [`Evidence`] so the engine runs with no cluster and no aggregator.
//!
//! Files are recognised by content, not name, except for three names:
//! - `pod.json`: the subject pod (`kubectl get pod POD -n NS -o json`);
//! - `*.jsonl`: agent records (`gpuscope-agent watch -o jsonl`);
//!   `agent-NODE.jsonl` names the node, `agent.jsonl` is the subject
//!   pod's node;
//! - `logs/CONTAINER.log`: the previous instance's log tail of the subject
//!   pod's container (`kubectl logs POD -c CONTAINER --previous`),
//!   `logs/CONTAINER.current.log` the running instance's.
//!
//! Every other `*.json` file may hold one object or a list (`"kind":
//! "List"` as kubectl prints `get` of several objects, or a typed
//! `PodList`, `EventList`…) of Pods, Nodes, Events and
//! PersistentVolumeClaims; other kinds are ignored and said so. A file
//! `meta.json` of kind `GpuscopeBundle` (written by `gpuscope bundle`)
//! names the subject and when the bundle was collected. Any subset of
//! these parts is accepted: what is missing becomes a [`Gap`].

use std::path::{Path, PathBuf};

use gpuscope_model::{Event as NodeEvent, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::PodKey;
use crate::evidence::{AgentRecords, Evidence, Gap, LogTail};

/// The kind of the metadata object in `meta.json`.
pub const META_KIND: &str = "GpuscopeBundle";

/// Why a bundle could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The folder or a file in it could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A file is not valid JSON (truncated, or not JSON at all).
    #[error("{path}: not valid JSON ({error}); re-run the kubectl command that wrote it")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        error: serde_json::Error,
    },
    /// A file holds an object that does not fit its kind.
    #[error("{path}: {what}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// A line of an agent JSON-lines file is not an agent record.
    #[error("{path}:{line}: not an agent record ({error})")]
    AgentLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's error.
        error: serde_json::Error,
    },
}

/// The bundle's own description (`meta.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Always [`META_KIND`].
    pub kind: String,
    /// The pod the bundle is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<PodKey>,
    /// When it was collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<Timestamp>,
    /// Evidence the collector could not get, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
}

/// A bundle read from disk.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// The evidence.
    pub evidence: Evidence,
    /// The subject pod: `pod.json`'s, or the one `meta.json` names, or the
    /// only pod when there is one.
    pub subject: Option<PodKey>,
}

impl Bundle {
    /// Reads the bundle folder `dir`: its files and those of its `logs`
    /// folder, then [`Bundle::from_files`].
    pub fn read(dir: &Path) -> Result<Self, BundleError> {
        let mut files = Vec::new();
        for path in list_dir(dir)? {
            let name = file_name(&path);
            if path.is_dir() {
                if name == "logs" {
                    for log in list_dir(&path)? {
                        if !log.is_dir() {
                            let bytes = std::fs::read(&log).map_err(io(&log))?;
                            files.push((format!("logs/{}", file_name(&log)), bytes));
                        }
                    }
                }
                continue;
            }
            if name.ends_with(".json") || name.ends_with(".jsonl") {
                files.push((name, std::fs::read(&path).map_err(io(&path))?));
            }
        }
        Self::from_files(dir, files)
    }

    /// Reads a bundle given as files (`name` relative to the bundle's
    /// folder, as [`Bundle::to_files`] gives them, and contents), with no
    /// disk: what [`Bundle::read`] does once it has read the folder.
    /// Errors name the file as `root/name`.
    pub fn from_files(root: &Path, mut files: Vec<(String, Vec<u8>)>) -> Result<Self, BundleError> {
        files.sort();
        let mut ev = Evidence::default();
        let mut subject_pod: Option<PodKey> = None;
        let mut meta: Option<Meta> = None;
        let mut saw = Saw::default();
        for (name, bytes) in &files {
            let path = &root.join(name);
            if let Some(log) = name.strip_prefix("logs/") {
                read_log(log, bytes, &mut ev);
                continue;
            }
            if name.contains('/') {
                continue;
            }
            let name = name.as_str();
            if let Some(stem) = name.strip_suffix(".jsonl") {
                let node = stem.strip_prefix("agent-").map(str::to_owned);
                ev.agents
                    .push(read_agent(path, text(path, bytes)?, node, &mut ev.gaps)?);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let text = text(path, bytes)?;
            let value: Value = serde_json::from_str(text).map_err(|error| BundleError::Json {
                path: path.clone(),
                error,
            })?;
            if name == "pod.json" {
                let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
                if kind != "Pod" {
                    return Err(BundleError::Shape {
                        path: path.clone(),
                        what: format!(
                            "holds a {}, not a Pod: write it with `kubectl get pod POD -n NAMESPACE -o json`",
                            if kind.is_empty() {
                                "object without a kind"
                            } else {
                                kind
                            }
                        ),
                    });
                }
                let pod: Pod = typed(path, value)?;
                subject_pod = Some(PodKey {
                    namespace: crate::k8s::namespace(&pod).to_owned(),
                    name: crate::k8s::name(&pod).to_owned(),
                });
                saw.pods += 1;
                ev.pods.push(pod);
                continue;
            }
            for (kind, item) in objects(value) {
                match kind.as_str() {
                    "Pod" => {
                        saw.pods += 1;
                        ev.pods.push(typed(path, item)?);
                    }
                    "Node" => {
                        saw.nodes += 1;
                        ev.nodes.push(typed(path, item)?);
                    }
                    "Event" => {
                        saw.events += 1;
                        ev.events.push(typed(path, item)?);
                    }
                    "PersistentVolumeClaim" => ev.pvcs.push(typed(path, item)?),
                    META_KIND => meta = Some(typed(path, item)?),
                    // An empty `kubectl get events` prints a List with no
                    // items: nothing to add, but the file was there.
                    "" if name.contains("event") => saw.events_file = true,
                    other => ev.gaps.push(Gap::new(
                        name,
                        format!(
                            "ignored an object of kind {}",
                            if other.is_empty() { "(none)" } else { other }
                        ),
                    )),
                }
            }
        }
        dedup(&mut ev.pods);
        dedup(&mut ev.nodes);
        dedup(&mut ev.events);
        dedup(&mut ev.pvcs);
        let subject = subject_pod
            .or_else(|| meta.as_ref().and_then(|m| m.subject.clone()))
            .or_else(|| {
                (ev.pods.len() == 1).then(|| PodKey {
                    namespace: crate::k8s::namespace(&ev.pods[0]).to_owned(),
                    name: crate::k8s::name(&ev.pods[0]).to_owned(),
                })
            });
        if let Some(m) = meta {
            ev.now = m.collected_at;
            ev.gaps.extend(m.gaps);
        }
        saw.note_gaps(&mut ev);
        Ok(Self {
            evidence: ev,
            subject,
        })
    }

    /// The bundle as files (`name`, contents), in the layout
    /// [`Bundle::read`] reads: what `gpuscope bundle` writes.
    pub fn to_files(&self) -> Result<Vec<(String, Vec<u8>)>, serde_json::Error> {
        let ev = &self.evidence;
        let list = |items: Vec<Value>| {
            serde_json::to_vec_pretty(&serde_json::json!({
                "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items
            }))
        };
        let with_kind = |mut v: Value, kind: &str| {
            if let Some(o) = v.as_object_mut() {
                o.insert("apiVersion".into(), "v1".into());
                o.insert("kind".into(), kind.into());
            }
            v
        };
        let mut files = Vec::new();
        let (subject, others): (Vec<&Pod>, Vec<&Pod>) = ev.pods.iter().partition(|p| {
            self.subject.as_ref().is_some_and(|s| {
                crate::k8s::namespace(p) == s.namespace && crate::k8s::name(p) == s.name
            })
        });
        if let Some(p) = subject.first() {
            files.push((
                "pod.json".to_owned(),
                serde_json::to_vec_pretty(&with_kind(serde_json::to_value(p)?, "Pod"))?,
            ));
        }
        let items = |kind: &str, v: Vec<Value>| v.into_iter().map(|x| with_kind(x, kind)).collect();
        if !others.is_empty() {
            let v = others
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            files.push(("pods.json".to_owned(), list(items("Pod", v))?));
        }
        let v = ev
            .events
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        files.push(("events.json".to_owned(), list(items("Event", v))?));
        if !ev.nodes.is_empty() {
            let v = ev
                .nodes
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            files.push(("nodes.json".to_owned(), list(items("Node", v))?));
        }
        if !ev.pvcs.is_empty() {
            let v = ev
                .pvcs
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            files.push((
                "pvcs.json".to_owned(),
                list(items("PersistentVolumeClaim", v))?,
            ));
        }
        for a in &ev.agents {
            let name = a
                .node
                .as_ref()
                .map_or_else(|| "agent.jsonl".to_owned(), |n| format!("agent-{n}.jsonl"));
            files.push((name, agent_lines(a)?));
        }
        for l in &ev.logs {
            let suffix = if l.previous { "log" } else { "current.log" };
            files.push((
                format!("logs/{}.{suffix}", l.container),
                l.text.clone().into_bytes(),
            ));
        }
        let meta = Meta {
            kind: META_KIND.to_owned(),
            subject: self.subject.clone(),
            collected_at: ev.now,
            gaps: ev.gaps.clone(),
        };
        files.push(("meta.json".to_owned(), serde_json::to_vec_pretty(&meta)?));
        Ok(files)
    }

    /// Writes the bundle into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> Result<(), BundleError> {
        let files = self.to_files().map_err(|error| BundleError::Json {
            path: dir.to_owned(),
            error,
        })?;
        for (name, data) in files {
            let path = dir.join(&name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&path, data).map_err(io(&path))?;
        }
        Ok(())
    }
}

/// What kinds of evidence the folder held, to name what was missing.
#[derive(Default)]
struct Saw {
    pods: usize,
    nodes: usize,
    events: usize,
    events_file: bool,
}

impl Saw {
    fn note_gaps(&self, ev: &mut Evidence) {
        let no_agent = ev.agents.is_empty();
        let mut gap = |what: &str, why: &str| {
            if !ev.lacks(what) {
                ev.gaps.push(Gap::new(what, why));
            }
        };
        if self.pods == 0 {
            gap(
                "pods",
                "no Pod in the bundle (kubectl get pod POD -n NS -o json > pod.json)",
            );
        }
        if self.events == 0 && !self.events_file {
            gap(
                "events",
                "no Event list in the bundle (kubectl get events -n NS -o json > events.json)",
            );
        }
        if self.nodes == 0 {
            gap(
                "node",
                "no Node in the bundle (kubectl get node NODE -o json > node.json)",
            );
        }
        if no_agent {
            gap(
                "agent",
                "no agent records in the bundle (gpuscope-agent watch -o jsonl > agent.jsonl on the node)",
            );
        }
    }
}

/// The objects in a JSON value: itself, or a list's items, with their
/// kind (an item of a typed `XxxList` without a kind is an `Xxx`).
fn objects(value: Value) -> Vec<(String, Value)> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match (kind.strip_suffix("List"), value) {
        (Some(item_kind), Value::Object(mut o)) if o.contains_key("items") => {
            let items = match o.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            if items.is_empty() {
                return vec![(String::new(), Value::Null)];
            }
            items
                .into_iter()
                .map(|item| {
                    let k = item
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or(item_kind)
                        .to_owned();
                    (k, item)
                })
                .collect()
        }
        (_, value) => vec![(kind, value)],
    }
}

fn typed<T: serde::de::DeserializeOwned>(path: &Path, value: Value) -> Result<T, BundleError> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_owned();
    serde_json::from_value(value).map_err(|e| BundleError::Shape {
        path: path.to_owned(),
        what: format!("a {kind} that does not parse: {e}"),
    })
}

/// One object once: a pod may appear in `pod.json` and in a `get pods`
/// list, a node in `node.json` and in `nodes.json`, an event in two
/// `get events` outputs. The same object is the same UID (or, for an
/// object written without one, the same kind, namespace and name); of its
/// copies the one with the highest `resourceVersion` (the API server's
/// newest) is kept, else the first read.
fn dedup<T: k8s_openapi::Metadata<Ty = ObjectMeta>>(items: &mut Vec<T>) {
    let key = |o: &T| {
        let m = o.metadata();
        match m.uid.as_deref().filter(|u| !u.is_empty()) {
            Some(uid) => uid.to_owned(),
            None => format!(
                "{}/{}",
                m.namespace.as_deref().unwrap_or(""),
                m.name.as_deref().unwrap_or("")
            ),
        }
    };
    let version = |o: &T| {
        o.metadata()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut keep: Vec<T> = Vec::with_capacity(items.len());
    for o in items.drain(..) {
        match at.get(&key(&o)) {
            Some(&i) => {
                if let (Some(new), Some(old)) = (version(&o), version(&keep[i]))
                    && new > old
                {
                    keep[i] = o;
                }
            }
            None => {
                at.insert(key(&o), keep.len());
                keep.push(o);
            }
        }
    }
    *items = keep;
}

fn read_agent(
    path: &Path,
    text: &str,
    node: Option<String>,
    gaps: &mut Vec<Gap>,
) -> Result<AgentRecords, BundleError> {
    let mut rec = AgentRecords {
        node,
        ..AgentRecords::default()
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut unknown = 0usize;
    for (i, line) in lines.iter().enumerate() {
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            // The agent may have been stopped mid-line: a cut last line
            // is a gap, a bad line elsewhere is an error.
            Err(e) if i + 1 == lines.len() && e.is_eof() => {
                gaps.push(Gap::new(
                    file_name(path),
                    format!("last line {} is cut short; ignored", i + 1),
                ));
                continue;
            }
            Err(error) => {
                return Err(BundleError::AgentLine {
                    path: path.to_owned(),
                    line: i + 1,
                    error,
                });
            }
        };
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let bad = |error| BundleError::AgentLine {
            path: path.to_owned(),
            line: i + 1,
            error,
        };
        match kind {
            "container_sample" => rec
                .containers
                .push(serde_json::from_value(value).map_err(bad)?),
            "gpu_sample" => rec.gpus.push(serde_json::from_value(value).map_err(bad)?),
            "node_sample" => rec
                .node_samples
                .push(serde_json::from_value(value).map_err(bad)?),
            "oom_kill" | "kmsg_overrun" | "xid" | "gpu_lost" | "gpu_count_changed" | "source" => {
                rec.events
                    .push(serde_json::from_value::<NodeEvent>(value).map_err(bad)?);
            }
            _ => unknown += 1,
        }
    }
    if unknown > 0 {
        gaps.push(Gap::new(
            file_name(path),
            format!("{unknown} lines of unknown kind ignored"),
        ));
    }
    rec.containers.sort_by_key(|s| s.time);
    rec.gpus.sort_by_key(|s| s.time);
    rec.node_samples.sort_by_key(|s| s.time);
    Ok(rec)
}

fn agent_lines(a: &AgentRecords) -> Result<Vec<u8>, serde_json::Error> {
    use gpuscope_model::Tagged;
    let mut out = Vec::new();
    let mut line = |v: Value| -> Result<(), serde_json::Error> {
        serde_json::to_writer(&mut out, &v)?;
        out.push(b'\n');
        Ok(())
    };
    for e in &a.events {
        line(serde_json::to_value(e)?)?;
    }
    for s in &a.node_samples {
        line(serde_json::to_value(Tagged {
            kind: "node_sample",
            value: s,
        })?)?;
    }
    for s in &a.containers {
        line(serde_json::to_value(Tagged {
            kind: "container_sample",
            value: s,
        })?)?;
    }
    for s in &a.gpus {
        line(serde_json::to_value(Tagged {
            kind: "gpu_sample",
            value: s,
        })?)?;
    }
    Ok(out)
}

/// One log tail, `logs/NAME`: `CONTAINER.log` (the previous instance's)
/// or `CONTAINER.current.log`; other names are not logs.
fn read_log(name: &str, bytes: &[u8], ev: &mut Evidence) {
    let (container, previous) = if let Some(c) = name.strip_suffix(".current.log") {
        (c, false)
    } else if let Some(c) = name.strip_suffix(".log") {
        (c, true)
    } else {
        return;
    };
    ev.logs.push(LogTail {
        namespace: String::new(),
        pod: String::new(),
        container: container.to_owned(),
        previous,
        text: String::from_utf8_lossy(bytes).into_owned(),
    });
}

/// The entries of `dir`, sorted.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, BundleError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    paths.sort();
    Ok(paths)
}

/// A file's contents as text; not UTF-8 is the error reading it as text
/// gives.
fn text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, BundleError> {
    std::str::from_utf8(bytes).map_err(|e| BundleError::Io {
        path: path.to_owned(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// The error of an I/O call on `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError {
    let path = path.to_owned();
    move |error| BundleError::Io { path, error }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
