//! A Kubernetes API server at cluster scale: N GPU nodes, N x 15 pods,
//! their PVCs and a stream of events, generated from indices instead of
//! stored, so that 12,500 nodes and 190,000 pods fit in a few tens of MB.
//!
//! The mechanism: every object is a pure function of a small snapshot
//! ([`Snap`]: which slot, which generation of the pod in it, its phase, the
//! resourceVersion of its last change, when it was created). The server
//! keeps one snapshot per node, pod slot and PVC, a bounded ring of Events
//! and a bounded log of changes, and writes the JSON of an object only when
//! a list page or a watch sends it. It speaks the protocol a real API server
//! speaks to kube-rs' watcher and client-go's reflector:
//!
//! - lists with `limit` and `continue`: the first page takes a consistent
//!   snapshot of the kind (a few MB of snapshots, not objects) at the
//!   current resourceVersion, and every page of it is served from that
//!   snapshot, as the API server serves pages from etcd at one revision; a
//!   continue token whose snapshot was dropped (only the
//!   [`SNAPSHOTS_KEPT`] newest are kept) gets `410 Gone`, as an expired
//!   token does after etcd compaction;
//! - watches from a resourceVersion replay the changes after it, or get a
//!   410 `Expired` ERROR when it is older than the change log
//!   ([`ScaleConfig::changes_kept`]), as after compaction; bookmarks every
//!   [`super::BOOKMARK_PERIOD`] with `allowWatchBookmarks`; a watch with no
//!   resourceVersion, `0`, or `sendInitialEvents=true` (WatchList
//!   streaming) starts with ADDED for every object, the latter ending them
//!   with the `k8s.io/initial-events-end` bookmark;
//! - churn at a configurable rate, as a busy cluster has it: Job pods
//!   finish (MODIFIED to `Succeeded`), are deleted and replaced (ADDED
//!   `Pending`, then MODIFIED `Running`), inference pods are replaced, each
//!   step with the Events the scheduler, kubelet and Job controller record
//!   (`Scheduled`, `Pulled`, `Created`, `Started`, `Killing`, `Completed`);
//!   Events past the kept count expire with a DELETED, as their TTL does;
//!   every node's status is rewritten once per
//!   [`ScaleConfig::node_status_period`] (the kubelet's report frequency);
//! - faults on demand: slow list pages ([`ScaleKube::set_page_delay`]), a
//!   410 Gone on the next continue request ([`ScaleKube::expire_next_continue`]),
//!   a burst of pod deletions ([`ScaleKube::delete_pods`], a namespace
//!   deleted).
//!
//! The node objects are what a GPU node of a managed cluster carries:
//! GPU feature discovery labels, the `nvidia.com/gpu` taint, capacity and
//! allocatable with `nvidia.com/gpu`, conditions, addresses, `nodeInfo`, 50
//! images with digests and sizes. Each node runs 12 DaemonSet pods (CNI,
//! kube-proxy, CSI, DNS cache, the GPU operator's five, node exporter, log
//! shipper, the gpuscope agent) and 3 workload pods (a Job's trainer, an
//! inference Deployment's replica, a StatefulSet's pod with a PVC), with
//! several containers, env, volumes, probes, resources, owner references,
//! conditions and container statuses.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    BOOKMARK_PERIOD, Body, DEFAULT_WATCH_TIMEOUT, Filter, NO_SUCH_PATH, Query, Resource, accept,
    bookmark, by_plural, line, ok, resource_list, status, status_json, stream_response,
    version_info,
};

/// Pods per node: 12 DaemonSet pods and 3 workload pods.
pub const PODS_PER_NODE: u32 = 15;

/// List snapshots kept for continue tokens; an older token gets 410.
pub const SNAPSHOTS_KEPT: usize = 8;

/// How often churn and node status reports are applied.
const TICK: Duration = Duration::from_millis(100);

/// Objects generated between two sends of a streamed list or watch.
const CHUNK_BYTES: usize = 256 * 1024;

/// The size of the cluster and how busy it is.
#[derive(Debug, Clone)]
pub struct ScaleConfig {
    /// GPU nodes (`gpu-node-00000` ...); each has [`PODS_PER_NODE`] pods.
    pub nodes: u32,
    /// Workload pod lifecycle steps per second (a Job pod finishing, being
    /// deleted, created, starting; an inference pod replaced). 0: none.
    pub churn_per_second: f64,
    /// How often each node's status is rewritten (the kubelet's
    /// `nodeStatusReportFrequency`, 5 min by default). Zero: never.
    pub node_status_period: Duration,
    /// Events kept; older ones expire with a DELETED (the API server's
    /// event TTL, 1 h by default).
    pub events_kept: usize,
    /// Changes kept for watch replay; a watch from before them gets 410.
    pub changes_kept: usize,
    /// Serve streaming lists (`sendInitialEvents=true`, the WatchList
    /// feature). `false`: answer them 422 Invalid, as an API server
    /// without the feature gate does, so clients page their lists.
    pub streaming_lists: bool,
}

impl Default for ScaleConfig {
    fn default() -> Self {
        Self {
            nodes: 100,
            churn_per_second: 0.0,
            node_status_period: Duration::ZERO,
            events_kept: 20_000,
            changes_kept: 200_000,
            streaming_lists: true,
        }
    }
}

/// A pod's phase as the generator knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No pod in this slot now.
    Absent,
    /// Created and scheduled, containers being created.
    Pending,
    /// Every container running.
    Running,
    /// A Job pod whose containers exited 0.
    Succeeded,
}

/// Everything an object is generated from.
#[derive(Debug, Clone, Copy)]
enum Snap {
    Node {
        index: u32,
        rv: u64,
        /// Seconds since the server started of the last status report.
        beat: u32,
    },
    Pod {
        slot: u32,
        generation: u32,
        phase: Phase,
        rv: u64,
        /// Seconds since the server started when created.
        born: u32,
    },
    Pvc {
        index: u32,
        rv: u64,
    },
    Namespace(u32),
    Event(EventRec),
}

/// One Event about a pod (or its Job).
#[derive(Debug, Clone, Copy)]
struct EventRec {
    /// Its own resourceVersion at creation; also its name's suffix.
    id: u64,
    /// The resourceVersion of this state of it.
    rv: u64,
    slot: u32,
    generation: u32,
    reason: Reason,
    /// Seconds since the server started.
    at: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Scheduled,
    Pulled,
    Created,
    Started,
    Killing,
    Completed,
}

impl Snap {
    fn rv(&self) -> u64 {
        match *self {
            Snap::Node { rv, .. } | Snap::Pod { rv, .. } | Snap::Pvc { rv, .. } => rv,
            Snap::Namespace(_) => 1,
            Snap::Event(e) => e.rv,
        }
    }
}

/// One recorded change, replayed to watches that start behind it.
#[derive(Clone, Copy)]
struct Change {
    kind: Kind,
    event: &'static str,
    snap: Snap,
}

/// The kinds served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Node,
    Pod,
    Pvc,
    Event,
    Namespace,
}

impl Kind {
    fn of(res: &Resource) -> Option<Kind> {
        Some(match res.kind {
            "Node" => Kind::Node,
            "Pod" => Kind::Pod,
            "PersistentVolumeClaim" => Kind::Pvc,
            "Event" => Kind::Event,
            "Namespace" => Kind::Namespace,
            _ => return None,
        })
    }
}

/// A list's consistent view, kept for its continue tokens.
struct ListSnapshot {
    id: u64,
    rv: u64,
    items: Arc<Vec<Snap>>,
}

struct World {
    rv: u64,
    nodes: Vec<Snap>,
    pods: Vec<Snap>,
    pvcs: Vec<Snap>,
    events: VecDeque<EventRec>,
    changes: VecDeque<(u64, Change)>,
    snapshots: VecDeque<ListSnapshot>,
    next_snapshot: u64,
    /// Continue requests still to answer with 410.
    expire_continues: usize,
    page_delay: Duration,
    /// Churn owed (fractional steps carried between ticks).
    churn_debt: f64,
    /// Next workload slot churn visits.
    churn_cursor: u64,
    /// Next node whose status is rewritten.
    status_cursor: u64,
    status_debt: f64,
    lists: u64,
    watches: u64,
    continues_expired: u64,
}

impl World {
    fn new(config: &ScaleConfig) -> World {
        let n = config.nodes;
        let mut rv = 1;
        let mut next = || {
            rv += 1;
            rv
        };
        let nodes = (0..n)
            .map(|index| Snap::Node {
                index,
                rv: next(),
                beat: 0,
            })
            .collect();
        let pods = (0..n * PODS_PER_NODE)
            .map(|slot| Snap::Pod {
                slot,
                generation: 0,
                phase: Phase::Running,
                rv: next(),
                born: 0,
            })
            .collect();
        let pvcs = (0..n)
            .map(|index| Snap::Pvc { index, rv: next() })
            .collect();
        World {
            rv,
            nodes,
            pods,
            pvcs,
            events: VecDeque::new(),
            changes: VecDeque::new(),
            snapshots: VecDeque::new(),
            next_snapshot: 1,
            expire_continues: 0,
            page_delay: Duration::ZERO,
            churn_debt: 0.0,
            churn_cursor: 0,
            status_cursor: 0,
            status_debt: 0.0,
            lists: 0,
            watches: 0,
            continues_expired: 0,
        }
    }

    fn record(&mut self, config: &ScaleConfig, kind: Kind, event: &'static str, snap: Snap) {
        self.changes
            .push_back((snap.rv(), Change { kind, event, snap }));
        while self.changes.len() > config.changes_kept {
            self.changes.pop_front();
        }
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn set_pod(
        &mut self,
        config: &ScaleConfig,
        slot: u32,
        generation: u32,
        phase: Phase,
        now: u32,
    ) {
        let Snap::Pod {
            phase: old,
            born,
            generation: old_gen,
            ..
        } = self.pods[slot as usize]
        else {
            return;
        };
        let rv = self.bump();
        let born = if old == Phase::Absent || old_gen != generation {
            now
        } else {
            born
        };
        let snap = Snap::Pod {
            slot,
            generation,
            phase,
            rv,
            born,
        };
        let event = match (old, phase) {
            (_, Phase::Absent) => "DELETED",
            (Phase::Absent, _) => "ADDED",
            _ => "MODIFIED",
        };
        // A DELETED carries the last state of the object.
        let sent = if phase == Phase::Absent {
            let Snap::Pod { phase: last, .. } = self.pods[slot as usize] else {
                return;
            };
            Snap::Pod {
                slot,
                generation: old_gen,
                phase: last,
                rv,
                born,
            }
        } else {
            snap
        };
        self.pods[slot as usize] = snap;
        self.record(config, Kind::Pod, event, sent);
    }

    fn add_event(
        &mut self,
        config: &ScaleConfig,
        slot: u32,
        generation: u32,
        reason: Reason,
        now: u32,
    ) {
        let rv = self.bump();
        let rec = EventRec {
            id: rv,
            rv,
            slot,
            generation,
            reason,
            at: now,
        };
        self.events.push_back(rec);
        self.record(config, Kind::Event, "ADDED", Snap::Event(rec));
        while self.events.len() > config.events_kept {
            let Some(mut old) = self.events.pop_front() else {
                break;
            };
            old.rv = self.bump();
            self.record(config, Kind::Event, "DELETED", Snap::Event(old));
        }
    }

    /// One lifecycle step of the next Job or inference pod (the
    /// StatefulSet's pods stay).
    fn churn_step(&mut self, config: &ScaleConfig, now: u32) {
        let total = u64::from(config.nodes) * 2;
        if total == 0 {
            return;
        }
        // A stride coprime with most sizes spreads the steps over nodes.
        let i = (self.churn_cursor * 7919) % total;
        self.churn_cursor += 1;
        let node = (i / 2) as u32;
        let k = if i.is_multiple_of(2) {
            JOB_SLOT
        } else {
            SERVE_SLOT
        };
        let slot = node * PODS_PER_NODE + k;
        let Snap::Pod {
            generation, phase, ..
        } = self.pods[slot as usize]
        else {
            return;
        };
        let job = k == JOB_SLOT;
        match phase {
            Phase::Running if job => {
                self.set_pod(config, slot, generation, Phase::Succeeded, now);
                self.add_event(config, slot, generation, Reason::Completed, now);
            }
            Phase::Running | Phase::Succeeded => {
                if !job {
                    self.add_event(config, slot, generation, Reason::Killing, now);
                }
                self.set_pod(config, slot, generation, Phase::Absent, now);
            }
            Phase::Absent => {
                self.set_pod(config, slot, generation + 1, Phase::Pending, now);
                self.add_event(config, slot, generation + 1, Reason::Scheduled, now);
            }
            Phase::Pending => {
                self.set_pod(config, slot, generation, Phase::Running, now);
                for reason in [Reason::Pulled, Reason::Created, Reason::Started] {
                    self.add_event(config, slot, generation, reason, now);
                }
            }
        }
    }

    fn tick(&mut self, config: &ScaleConfig, now: u32) {
        self.churn_debt += config.churn_per_second * TICK.as_secs_f64();
        while self.churn_debt >= 1.0 {
            self.churn_debt -= 1.0;
            self.churn_step(config, now);
        }
        if !config.node_status_period.is_zero() && config.nodes > 0 {
            self.status_debt += f64::from(config.nodes) * TICK.as_secs_f64()
                / config.node_status_period.as_secs_f64();
            while self.status_debt >= 1.0 {
                self.status_debt -= 1.0;
                let index = (self.status_cursor % u64::from(config.nodes)) as u32;
                self.status_cursor += 1;
                let rv = self.bump();
                let snap = Snap::Node {
                    index,
                    rv,
                    beat: now,
                };
                self.nodes[index as usize] = snap;
                self.record(config, Kind::Node, "MODIFIED", snap);
            }
        }
    }

    /// The pod slots that hold a pod now.
    fn live_pods(&self) -> impl Iterator<Item = &Snap> {
        self.pods.iter().filter(|s| {
            !matches!(
                s,
                Snap::Pod {
                    phase: Phase::Absent,
                    ..
                }
            )
        })
    }

    /// The current objects of a kind.
    fn current(&self, kind: Kind) -> Vec<Snap> {
        match kind {
            Kind::Node => self.nodes.clone(),
            Kind::Pod => self.live_pods().copied().collect(),
            Kind::Pvc => self.pvcs.clone(),
            Kind::Event => self.events.iter().map(|e| Snap::Event(*e)).collect(),
            Kind::Namespace => (0..NAMESPACES.len() as u32).map(Snap::Namespace).collect(),
        }
    }
}

struct ScaleShared {
    config: ScaleConfig,
    world: Mutex<World>,
    /// Seconds since the Unix epoch when the server started.
    epoch: i64,
    started: std::time::Instant,
    changed: watch::Sender<u64>,
    /// Bumped by [`ScaleKube::expire_watches`].
    expire: watch::Sender<u64>,
}

impl ScaleShared {
    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    fn change<T>(&self, f: impl FnOnce(&mut World, &ScaleConfig, u32) -> T) -> T {
        let now = self.now();
        let mut world = self.lock();
        let out = f(&mut world, &self.config, now);
        let rv = world.rv;
        drop(world);
        self.changed.send_replace(rv);
        out
    }
}

/// Counters of what the server served, for benchmarks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleStats {
    /// The current resourceVersion.
    pub resource_version: u64,
    /// Pods that exist now.
    pub pods: usize,
    /// Events kept now.
    pub events: usize,
    /// List requests (pages included).
    pub lists: u64,
    /// Watch requests.
    pub watches: u64,
    /// Continue requests answered with 410 Gone.
    pub continues_expired: u64,
}

/// The scale API server; stops when dropped.
pub struct ScaleKube {
    shared: Arc<ScaleShared>,
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ScaleKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaleKube")
            .field("port", &self.port)
            .field("nodes", &self.shared.config.nodes)
            .finish()
    }
}

impl ScaleKube {
    /// Starts the server on `127.0.0.1:0`, on a thread of its own with a
    /// current-thread runtime (tests).
    pub fn start(config: ScaleConfig) -> ScaleKube {
        let listener = std::net::TcpListener::bind("127.0.0.1:0");
        let listener = listener.expect("a loopback port for the scale API server");
        Self::start_on(config, listener, 1)
    }

    /// Starts the server on `listener` with `workers` runtime threads.
    pub fn start_on(
        config: ScaleConfig,
        listener: std::net::TcpListener,
        workers: usize,
    ) -> ScaleKube {
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener for tokio");
        let port = listener.local_addr().expect("a bound listener").port();
        let world = World::new(&config);
        let rv = world.rv;
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let shared = Arc::new(ScaleShared {
            config,
            world: Mutex::new(world),
            epoch,
            started: std::time::Instant::now(),
            changed: watch::Sender::new(rv),
            expire: watch::Sender::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let server = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("scale-kube".into());
        let thread = thread.spawn(move || {
            let runtime = match workers {
                0 | 1 => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build(),
                n => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .enable_all()
                    .build(),
            };
            let runtime = runtime.expect("a tokio runtime for the scale API server");
            runtime.block_on(serve(listener, server, stopped));
        });
        ScaleKube {
            shared,
            port,
            stop: Some(stop),
            thread: Some(thread.expect("a thread for the scale API server")),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Delays every list page by `delay` from now on (zero: no delay).
    pub fn set_page_delay(&self, delay: Duration) {
        self.shared.lock().page_delay = delay;
    }

    /// Makes the next `count` requests with a continue token fail with
    /// `410 Gone`, as an expired token does.
    pub fn expire_next_continue(&self, count: usize) {
        self.shared.lock().expire_continues += count;
    }

    /// Ends every open watch with a 410 `Expired` ERROR, as when etcd
    /// compacted past it: clients must list again.
    pub fn expire_watches(&self) {
        self.shared
            .expire
            .send_modify(|generation| *generation += 1);
    }

    /// Deletes up to `count` pods of `namespace` (empty: of any namespace)
    /// at once (a namespace deleted: one DELETED each); returns how many
    /// were deleted. Churn may
    /// create pods in their slots again later.
    pub fn delete_pods(&self, namespace: &str, count: usize) -> usize {
        delete_pods(&self.shared, namespace, count).len()
    }

    /// Pods that exist in `namespace` now.
    pub fn pods_in(&self, namespace: &str) -> usize {
        let w = self.shared.lock();
        w.pods
            .iter()
            .filter(|s| match **s {
                Snap::Pod { slot, phase, .. } => {
                    phase != Phase::Absent && pod_namespace(slot) == namespace
                }
                _ => false,
            })
            .count()
    }

    /// The name of the pod in `slot` (node `slot / 15`) now.
    pub fn pod_name(&self, slot: u32) -> Option<(String, String)> {
        let w = self.shared.lock();
        match w.pods.get(slot as usize) {
            Some(&Snap::Pod {
                slot,
                generation,
                phase,
                ..
            }) if phase != Phase::Absent => {
                Some((pod_namespace(slot).to_owned(), pod_name(slot, generation)))
            }
            _ => None,
        }
    }

    /// What was served so far.
    pub fn stats(&self) -> ScaleStats {
        stats(&self.shared)
    }
}

fn stats(shared: &ScaleShared) -> ScaleStats {
    let w = shared.lock();
    ScaleStats {
        resource_version: w.rv,
        pods: w.live_pods().count(),
        events: w.events.len(),
        lists: w.lists,
        watches: w.watches,
        continues_expired: w.continues_expired,
    }
}

impl Drop for ScaleKube {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------- server

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<ScaleShared>,
    stop: oneshot::Receiver<()>,
) {
    let ticker = Arc::clone(&shared);
    let churn = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(TICK);
        loop {
            ticks.tick().await;
            ticker.change(|w, config, now| w.tick(config, now));
        }
    });
    accept(listener, stop, move |req| handle(Arc::clone(&shared), req)).await;
    churn.abort();
}

async fn handle(
    shared: Arc<ScaleShared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let query = req.uri().query().unwrap_or("").as_bytes();
    let query = Query(form_urlencoded::parse(query).into_owned().collect());
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').collect();
    if let ["", "_scale", control] = segments[..] {
        return Ok(control_request(&shared, req.method(), control, &query));
    }
    if req.method() != Method::GET {
        let _ = req.into_body().collect().await;
        let message = "the scale API server only serves GET (and POST to /_scale/)";
        return Ok(status(StatusCode::METHOD_NOT_ALLOWED, message));
    }
    Ok(match segments[1..] {
        ["version"] => ok(&version_info()),
        ["api"] => ok(&json!({"kind": "APIVersions", "versions": ["v1"]})),
        ["apis"] => ok(&json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})),
        ["api", "v1"] => ok(&resource_list()),
        ["api", "v1", ref rest @ ..] => route_v1(&shared, rest, &query).await,
        _ => status(StatusCode::NOT_FOUND, NO_SUCH_PATH),
    })
}

/// `/_scale/...`: faults and counters for a benchmark driving a separate
/// process (`POST /_scale/delete-pods?namespace=batch&count=10000`,
/// `POST /_scale/expire-continue?count=1`, `POST /_scale/page-delay?ms=2000`,
/// `GET /_scale/stats`).
fn control_request(
    shared: &Arc<ScaleShared>,
    method: &Method,
    control: &str,
    query: &Query,
) -> Response<Body> {
    let number = |key: &str| query.get(key).and_then(|v| v.parse::<u64>().ok());
    match (method, control) {
        (&Method::GET, "stats") => {
            let s = stats(shared);
            ok(
                &json!({"resourceVersion": s.resource_version, "pods": s.pods,
                "events": s.events, "lists": s.lists, "watches": s.watches}),
            )
        }
        (&Method::POST, "delete-pods") => {
            let ns = query.get("namespace").unwrap_or("batch").to_owned();
            let count = number("count").map_or(usize::MAX, |c| c as usize);
            let deleted = delete_pods(shared, &ns, count);
            let last = deleted.last().map(|&(slot, generation)| {
                json!([pod_namespace(slot), pod_name(slot, generation)])
            });
            ok(&json!({"deleted": deleted.len(), "last": last}))
        }
        (&Method::POST, "expire-continue") => {
            shared.lock().expire_continues += number("count").unwrap_or(1) as usize;
            ok(&json!({}))
        }
        (&Method::POST, "page-delay") => {
            shared.lock().page_delay = Duration::from_millis(number("ms").unwrap_or(0));
            ok(&json!({}))
        }
        _ => status(StatusCode::NOT_FOUND, NO_SUCH_PATH),
    }
}

/// Deletes up to `count` pods of `namespace` (empty: any); returns the
/// `(slot, generation)` of each, in the order deleted.
fn delete_pods(shared: &ScaleShared, namespace: &str, count: usize) -> Vec<(u32, u32)> {
    shared.change(|w, config, now| {
        let slots: Vec<(u32, u32)> = w
            .pods
            .iter()
            .filter_map(|s| match *s {
                Snap::Pod {
                    slot,
                    phase,
                    generation,
                    ..
                } if phase != Phase::Absent
                    && (namespace.is_empty() || pod_namespace(slot) == namespace) =>
                {
                    Some((slot, generation))
                }
                _ => None,
            })
            .take(count)
            .collect();
        for &(slot, generation) in &slots {
            w.set_pod(config, slot, generation, Phase::Absent, now);
        }
        slots
    })
}

async fn route_v1(shared: &Arc<ScaleShared>, rest: &[&str], query: &Query) -> Response<Body> {
    let (res, namespace, name) = match *rest {
        [plural] => (by_plural(plural), None, None),
        [plural, name] => (
            by_plural(plural).filter(|r| !r.namespaced),
            None,
            Some(name),
        ),
        ["namespaces", ns, plural] => (by_plural(plural).filter(|r| r.namespaced), Some(ns), None),
        ["namespaces", ns, plural, name] => (
            by_plural(plural).filter(|r| r.namespaced),
            Some(ns),
            Some(name),
        ),
        ["namespaces", _, "pods", _, "log"] => {
            let text = "serving on :8000\nready\n";
            return Response::new(
                http_body_util::Full::new(Bytes::from_static(text.as_bytes())).boxed(),
            );
        }
        _ => (None, None, None),
    };
    let Some((res, kind)) = res.and_then(|r| Some((r, Kind::of(r)?))) else {
        return status(StatusCode::NOT_FOUND, NO_SUCH_PATH);
    };
    let filter = match Filter::new(res, namespace, query) {
        Ok(filter) => filter,
        Err(message) => return status(StatusCode::BAD_REQUEST, message),
    };
    let epoch = shared.epoch;
    if let Some(name) = name {
        let current = shared.lock().current(kind);
        let found = current
            .iter()
            .filter(|s| may_match(&filter, s) && name_of(s).is_none_or(|n| n == name))
            .map(|s| object(*s, epoch))
            .find(|o| o["metadata"]["name"] == name && filter.matches(res.kind, ns_of(o), o));
        return match found {
            Some(obj) => ok(&obj),
            None => status(
                StatusCode::NOT_FOUND,
                format!("{} {name:?} not found", res.plural),
            ),
        };
    }
    if query.flag("watch") {
        if query.flag("sendInitialEvents") && !shared.config.streaming_lists {
            let message = "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled";
            return status(StatusCode::UNPROCESSABLE_ENTITY, message);
        }
        return start_watch(shared, kind, res, filter, query);
    }
    list(shared, kind, res, filter, query).await
}

fn ns_of(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("")
}

/// A list, or one page of it, streamed as it is generated.
async fn list(
    shared: &Arc<ScaleShared>,
    kind: Kind,
    res: &'static Resource,
    filter: Filter,
    query: &Query,
) -> Response<Body> {
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0);
    let (id, rv, items, offset, delay) = {
        let mut w = shared.lock();
        w.lists += 1;
        let delay = w.page_delay;
        match query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let parsed = token
                    .split_once(':')
                    .and_then(|(id, off)| Some((id.parse::<u64>().ok()?, off.parse().ok()?)));
                let found = parsed.and_then(|(id, off)| {
                    let s = w.snapshots.iter().find(|s| s.id == id)?;
                    Some((s.id, s.rv, Arc::clone(&s.items), off))
                });
                let expired = w.expire_continues > 0;
                match found {
                    Some(found) if !expired => (found.0, found.1, found.2, found.3, delay),
                    _ => {
                        w.expire_continues = w.expire_continues.saturating_sub(1);
                        w.continues_expired += 1;
                        let message = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";
                        return status(StatusCode::GONE, message);
                    }
                }
            }
            None => {
                let items = Arc::new(w.current(kind));
                let id = w.next_snapshot;
                w.next_snapshot += 1;
                let rv = w.rv;
                if limit.is_some() {
                    w.snapshots.push_back(ListSnapshot {
                        id,
                        rv,
                        items: Arc::clone(&items),
                    });
                    while w.snapshots.len() > SNAPSHOTS_KEPT {
                        w.snapshots.pop_front();
                    }
                }
                (id, rv, items, 0usize, delay)
            }
        }
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (tx, rx) = mpsc::channel(4);
    let epoch = shared.epoch;
    tokio::spawn(async move {
        let mut buf = String::with_capacity(CHUNK_BYTES + 64 * 1024);
        let mut sent = 0usize;
        let mut at = offset;
        let mut first = true;
        buf.push_str(&format!(
            "{{\"kind\":\"{}List\",\"apiVersion\":\"v1\",\"items\":[",
            res.kind
        ));
        while at < items.len() && limit.is_none_or(|l| sent < l) {
            let snap = items[at];
            at += 1;
            if !may_match(&filter, &snap) {
                continue;
            }
            let obj = object(snap, epoch);
            if !filter.matches(res.kind, ns_of(&obj), &obj) {
                continue;
            }
            if !std::mem::take(&mut first) {
                buf.push(',');
            }
            buf.push_str(&obj.to_string());
            sent += 1;
            if buf.len() >= CHUNK_BYTES {
                let chunk = Bytes::from(std::mem::take(&mut buf));
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        }
        let more = at < items.len();
        let cont = if more {
            format!(
                ",\"continue\":\"{id}:{at}\",\"remainingItemCount\":{}",
                items.len() - at
            )
        } else {
            String::new()
        };
        let _ = write!(
            buf,
            "],\"metadata\":{{\"resourceVersion\":\"{rv}\"{cont}}}}}"
        );
        let _ = tx.send(Bytes::from(buf)).await;
    });
    stream_response(rx)
}

fn start_watch(
    shared: &Arc<ScaleShared>,
    kind: Kind,
    res: &'static Resource,
    filter: Filter,
    query: &Query,
) -> Response<Body> {
    let initial = query.flag("sendInitialEvents");
    let since = match query.get("resourceVersion") {
        _ if initial => None,
        None | Some("" | "0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    format!("invalid resourceVersion {rv:?}"),
                );
            }
        },
    };
    let timeout = query.get("timeoutSeconds").and_then(|t| t.parse().ok());
    let timeout = timeout.map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let bookmarks = query.flag("allowWatchBookmarks");
    shared.lock().watches += 1;
    let (tx, rx) = mpsc::channel(16);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let w = Watch {
            shared,
            kind,
            res,
            filter,
            tx,
        };
        w.run(since, initial, bookmarks, timeout).await;
    });
    stream_response(rx)
}

struct Watch {
    shared: Arc<ScaleShared>,
    kind: Kind,
    res: &'static Resource,
    filter: Filter,
    tx: mpsc::Sender<Bytes>,
}

impl Watch {
    /// Sends `events` as JSON lines, in chunks; `false` when the client left.
    async fn send(&self, events: impl Iterator<Item = (&'static str, Snap)>) -> bool {
        let mut buf = String::new();
        for (event, snap) in events {
            if !may_match(&self.filter, &snap) {
                continue;
            }
            let obj = object(snap, self.shared.epoch);
            if !self.filter.matches(self.res.kind, ns_of(&obj), &obj) {
                continue;
            }
            let _ = writeln!(buf, "{{\"type\":\"{event}\",\"object\":{obj}}}");
            if buf.len() >= CHUNK_BYTES
                && self
                    .tx
                    .send(Bytes::from(std::mem::take(&mut buf)))
                    .await
                    .is_err()
            {
                return false;
            }
        }
        buf.is_empty() || self.tx.send(Bytes::from(buf)).await.is_ok()
    }

    /// Ends the watch as after a compaction.
    async fn expired(&self) {
        let expired = status_json(StatusCode::GONE, "too old resource version");
        let error = line(&json!({"type": "ERROR", "object": expired}));
        let _ = self.tx.send(error).await;
    }

    async fn run(self, since: Option<u64>, initial: bool, bookmarks: bool, timeout: Duration) {
        let mut changed = self.shared.changed.subscribe();
        let mut expire = self.shared.expire.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut cursor = match since {
            Some(rv) => rv,
            None => {
                let (items, rv) = {
                    let w = self.shared.lock();
                    (w.current(self.kind), w.rv)
                };
                if !self.send(items.into_iter().map(|s| ("ADDED", s))).await {
                    return;
                }
                rv
            }
        };
        if initial {
            let end = bookmark(self.res.kind, cursor, true);
            if self.tx.send(line(&end)).await.is_err() {
                return;
            }
        }
        let start = tokio::time::Instant::now() + BOOKMARK_PERIOD;
        let mut ticks = tokio::time::interval_at(start, BOOKMARK_PERIOD);
        let mut bookmark_due = false;
        loop {
            changed.borrow_and_update();
            let news: Result<Vec<(&'static str, Snap)>, ()> = {
                let w = self.shared.lock();
                let oldest = w.changes.front().map_or(w.rv, |(rv, _)| *rv);
                if cursor + 1 < oldest && cursor < w.rv {
                    Err(())
                } else {
                    let from = w.changes.partition_point(|(rv, _)| *rv <= cursor);
                    let news = w.changes.range(from..);
                    let news = news.filter(|(_, c)| c.kind == self.kind);
                    let news = news.map(|(_, c)| (c.event, c.snap)).collect();
                    cursor = cursor.max(w.rv);
                    Ok(news)
                }
            };
            let Ok(news) = news else {
                self.expired().await;
                return;
            };
            if !self.send(news.into_iter()).await {
                return;
            }
            if std::mem::take(&mut bookmark_due)
                && self
                    .tx
                    .send(line(&bookmark(self.res.kind, cursor, false)))
                    .await
                    .is_err()
            {
                return;
            }
            tokio::select! {
                biased;
                _ = expire.changed() => {
                    self.expired().await;
                    return;
                }
                woke = changed.changed() => if woke.is_err() { return },
                () = tokio::time::sleep_until(deadline) => return,
                () = self.tx.closed() => return,
                _ = ticks.tick(), if bookmarks => bookmark_due = true,
            }
        }
    }
}

// ---------------------------------------------------------------- objects

/// The DaemonSets on every node: (name, namespace, image, app label).
const DAEMONSETS: &[(&str, &str, &str)] = &[
    (
        "kube-proxy",
        "kube-system",
        "registry.k8s.io/kube-proxy:v1.32.0",
    ),
    ("cilium", "kube-system", "quay.io/cilium/cilium:v1.16.5"),
    (
        "ebs-csi-node",
        "kube-system",
        "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.37.0",
    ),
    (
        "node-local-dns",
        "kube-system",
        "registry.k8s.io/dns/k8s-dns-node-cache:1.24.0",
    ),
    (
        "nvidia-device-plugin-daemonset",
        "gpu-operator",
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
    ),
    (
        "nvidia-dcgm-exporter",
        "gpu-operator",
        "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04",
    ),
    (
        "nvidia-container-toolkit-daemonset",
        "gpu-operator",
        "nvcr.io/nvidia/k8s/container-toolkit:v1.17.3-ubuntu20.04",
    ),
    (
        "gpu-feature-discovery",
        "gpu-operator",
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
    ),
    (
        "nvidia-driver-daemonset",
        "gpu-operator",
        "nvcr.io/nvidia/driver:550.127.08-ubuntu22.04",
    ),
    (
        "node-exporter",
        "monitoring",
        "quay.io/prometheus/node-exporter:v1.8.2",
    ),
    (
        "fluent-bit",
        "logging",
        "cr.fluentbit.io/fluent/fluent-bit:3.2.2",
    ),
    ("gpuscope-agent", "gpuscope", "ghcr.io/gpuscope/agent:0.1.0"),
];

/// The workload slot of a Job's trainer pod (namespace `batch`).
const JOB_SLOT: u32 = 12;
/// The workload slot of an inference Deployment's replica.
const SERVE_SLOT: u32 = 13;

/// Namespaces: the DaemonSets', `batch`, `inference`, ten teams'.
const NAMESPACES: &[&str] = &[
    "kube-system",
    "gpu-operator",
    "monitoring",
    "logging",
    "gpuscope",
    "batch",
    "inference",
    "team-0",
    "team-1",
    "team-2",
    "team-3",
    "team-4",
    "team-5",
    "team-6",
    "team-7",
    "team-8",
    "team-9",
];

/// Images a node has pulled beside its pods' (name, size in bytes).
const IMAGES: &[(&str, u64)] = &[
    ("nvcr.io/nvidia/pytorch:24.12-py3", 22_149_877_236),
    ("nvcr.io/nvidia/pytorch:24.10-py3", 21_874_311_021),
    ("nvcr.io/nvidia/pytorch:24.07-py3", 21_031_120_870),
    ("nvcr.io/nvidia/nemo:24.12", 27_611_452_123),
    ("nvcr.io/nvidia/tritonserver:24.12-py3", 13_211_458_765),
    (
        "nvcr.io/nvidia/tritonserver:24.11-trtllm-python-py3",
        18_733_101_442,
    ),
    ("vllm/vllm-openai:v0.6.4.post1", 9_412_783_116),
    ("vllm/vllm-openai:v0.6.3", 9_398_115_907),
    (
        "ghcr.io/huggingface/text-generation-inference:2.4.1",
        6_221_870_334,
    ),
    ("nvcr.io/nvidia/cuda:12.6.3-base-ubuntu22.04", 121_887_331),
    (
        "nvcr.io/nvidia/cuda:12.4.1-runtime-ubuntu22.04",
        1_903_331_872,
    ),
    (
        "nvcr.io/nvidia/cuda:12.2.2-devel-ubuntu22.04",
        3_211_553_981,
    ),
    (
        "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04",
        412_775_091,
    ),
    ("nvcr.io/nvidia/k8s-device-plugin:v0.17.0", 161_322_447),
    (
        "nvcr.io/nvidia/k8s/container-toolkit:v1.17.3-ubuntu20.04",
        141_882_090,
    ),
    (
        "nvcr.io/nvidia/driver:550.127.08-ubuntu22.04",
        1_388_512_773,
    ),
    ("nvcr.io/nvidia/gpu-operator:v24.9.1", 201_322_901),
    (
        "nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.7.0",
        221_990_120,
    ),
    (
        "nvcr.io/nvidia/cloud-native/gpu-operator-validator:v24.9.1",
        198_311_560,
    ),
    ("registry.k8s.io/kube-proxy:v1.32.0", 30_611_902),
    ("registry.k8s.io/kube-proxy:v1.31.4", 30_231_188),
    ("registry.k8s.io/pause:3.10", 320_368),
    ("registry.k8s.io/pause:3.9", 321_520),
    ("registry.k8s.io/dns/k8s-dns-node-cache:1.24.0", 34_771_203),
    ("quay.io/cilium/cilium:v1.16.5", 199_871_332),
    ("quay.io/cilium/cilium:v1.16.4", 199_330_771),
    ("quay.io/cilium/operator-generic:v1.16.5", 32_117_654),
    (
        "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.37.0",
        42_910_223,
    ),
    (
        "public.ecr.aws/eks-distro/kubernetes-csi/node-driver-registrar:v2.12.0-eks-1-31-8",
        9_881_450,
    ),
    (
        "public.ecr.aws/eks-distro/kubernetes-csi/livenessprobe:v2.14.0-eks-1-31-8",
        9_112_381,
    ),
    ("quay.io/prometheus/node-exporter:v1.8.2", 12_104_553),
    ("cr.fluentbit.io/fluent/fluent-bit:3.2.2", 38_420_117),
    ("cr.fluentbit.io/fluent/fluent-bit:3.1.9", 37_990_208),
    ("ghcr.io/gpuscope/agent:0.1.0", 21_880_334),
    ("docker.io/library/busybox:1.37.0", 2_155_201),
    ("docker.io/library/python:3.12-slim", 52_311_780),
    ("docker.io/library/redis:7.4.1", 45_881_230),
    ("docker.io/bitnami/kubectl:1.32.0", 81_220_371),
    (
        "ghcr.io/ml-platform/trainer:2024.12.18-5f1c2e9",
        24_882_120_335,
    ),
    (
        "ghcr.io/ml-platform/trainer:2024.12.11-a81d3f0",
        24_871_554_110,
    ),
    (
        "ghcr.io/ml-platform/trainer:2024.12.04-77e0b1c",
        24_790_331_007,
    ),
    (
        "ghcr.io/ml-platform/serve:2024.12.16-0c9ad41",
        11_332_017_981,
    ),
    (
        "ghcr.io/ml-platform/serve:2024.12.09-e4b7720",
        11_320_551_334,
    ),
    ("ghcr.io/ml-platform/data-loader:1.8.3", 2_210_998_143),
    ("ghcr.io/ml-platform/eval-harness:0.9.1", 8_114_338_902),
    (
        "ghcr.io/ml-platform/feature-store-client:3.2.0",
        512_330_812,
    ),
    ("docker.io/rayproject/ray:2.40.0-py311-gpu", 14_220_338_119),
    ("docker.io/rayproject/ray:2.39.0-py311-gpu", 14_117_302_981),
    ("docker.io/envoyproxy/envoy:v1.32.2", 61_994_103),
    ("docker.io/istio/proxyv2:1.24.2", 97_331_820),
    ("ghcr.io/ml-platform/sidecar-metrics:0.4.2", 18_203_334),
    ("ghcr.io/ml-platform/ckpt-uploader:1.2.7", 98_551_113),
];

/// Deterministic 64-bit hash (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn hex64(seed: u64) -> String {
    let mut s = String::with_capacity(64);
    for i in 0..4 {
        let _ = write!(s, "{:016x}", mix(seed.wrapping_mul(4).wrapping_add(i)));
    }
    s
}

fn uid(kind: u64, a: u64, b: u64) -> String {
    let h = mix(kind << 56 ^ a << 24 ^ b);
    let l = mix(h);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (l >> 48) & 0xfff,
        l & 0xffff_ffff_ffff
    )
}

/// A pod-name suffix of 5 characters of Kubernetes' alphabet.
fn suffix(seed: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = mix(seed);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize];
            h /= ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// RFC 3339 (seconds) of `offset` seconds after `epoch` (Unix seconds).
fn rfc3339(epoch: i64, offset: u32) -> String {
    let secs = u64::try_from(epoch + i64::from(offset)).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn node_name(index: u32) -> String {
    format!("gpu-node-{index:05}")
}

/// The namespace of the pods in `slot`.
fn pod_namespace(slot: u32) -> &'static str {
    let node = slot / PODS_PER_NODE;
    match slot % PODS_PER_NODE {
        k if (k as usize) < DAEMONSETS.len() => DAEMONSETS[k as usize].1,
        JOB_SLOT => "batch",
        SERVE_SLOT => "inference",
        _ => NAMESPACES[7 + (node % 10) as usize],
    }
}

fn pod_name(slot: u32, generation: u32) -> String {
    let node = slot / PODS_PER_NODE;
    match slot % PODS_PER_NODE {
        k if (k as usize) < DAEMONSETS.len() => {
            format!("{}-{}", DAEMONSETS[k as usize].0, suffix(u64::from(slot)))
        }
        JOB_SLOT => format!(
            "train-{node:05}-{generation}-{}",
            suffix(u64::from(slot) << 20 | u64::from(generation))
        ),
        SERVE_SLOT => format!(
            "llm-serve-7d9f8b{}-{}",
            node % 10,
            suffix(u64::from(slot) << 20 | u64::from(generation))
        ),
        _ => format!("feature-store-{node}-{generation}"),
    }
}

/// The namespace of the object a snapshot describes (`""`: cluster-scoped).
fn namespace_of(snap: &Snap) -> &'static str {
    match *snap {
        Snap::Pod { slot, .. } => pod_namespace(slot),
        Snap::Pvc { index, .. } => pod_namespace(index * PODS_PER_NODE + 14),
        Snap::Event(e) => pod_namespace(e.slot),
        Snap::Node { .. } | Snap::Namespace(_) => "",
    }
}

/// Whether `filter` may match the object of `snap`, decided without
/// generating it (the namespace).
fn may_match(filter: &Filter, snap: &Snap) -> bool {
    filter
        .namespace
        .as_deref()
        .is_none_or(|ns| ns == namespace_of(snap))
}

/// The name of the object a snapshot describes, when known without
/// generating it.
fn name_of(snap: &Snap) -> Option<String> {
    Some(match *snap {
        Snap::Node { index, .. } => node_name(index),
        Snap::Pod {
            slot, generation, ..
        } => pod_name(slot, generation),
        Snap::Pvc { index, .. } => pvc_name(index),
        Snap::Namespace(index) => NAMESPACES.get(index as usize)?.to_string(),
        Snap::Event(_) => return None,
    })
}

/// The JSON of the object a snapshot describes.
fn object(snap: Snap, epoch: i64) -> Value {
    match snap {
        Snap::Node { index, rv, beat } => node(index, rv, beat, epoch),
        Snap::Pod {
            slot,
            generation,
            phase,
            rv,
            born,
        } => pod(slot, generation, phase, rv, born, epoch),
        Snap::Pvc { index, rv } => pvc(index, rv, epoch),
        Snap::Namespace(index) => namespace_object(index),
        Snap::Event(e) => event(e, epoch),
    }
}

fn node(index: u32, rv: u64, beat: u32, epoch: i64) -> Value {
    let name = node_name(index);
    let zone = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"][(index % 4) as usize];
    let ip = format!(
        "10.{}.{}.{}",
        16 + index / 65_536,
        (index / 256) % 256,
        index % 256
    );
    let created = {
        // Nodes joined over the last weeks.
        let back = 86_400 * 14 - i64::from(index % 1_209_600);
        rfc3339(epoch - back, 0)
    };
    let heartbeat = rfc3339(epoch, beat);
    let labels = json!({
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": "p5.48xlarge",
        "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "p5.48xlarge",
        "topology.kubernetes.io/region": "us-east-1", "topology.kubernetes.io/zone": zone,
        "topology.k8s.aws/network-node-layer-1": format!("nn-{:016x}", mix(u64::from(index / 512))),
        "topology.k8s.aws/network-node-layer-2": format!("nn-{:016x}", mix(u64::from(index / 64) + 1)),
        "topology.k8s.aws/network-node-layer-3": format!("nn-{:016x}", mix(u64::from(index / 16) + 2)),
        "nodepool": format!("h100-pool-{}", index % 8),
        "nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.memory": "81559",
        "nvidia.com/gpu.family": "hopper", "nvidia.com/gpu.machine": "p5.48xlarge",
        "nvidia.com/gpu.compute.major": "9", "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/cuda.driver.major": "550", "nvidia.com/cuda.driver.minor": "127",
        "nvidia.com/cuda.driver.rev": "08", "nvidia.com/cuda.runtime.major": "12",
        "nvidia.com/cuda.runtime.minor": "4", "nvidia.com/gfd.timestamp": (epoch - 86_400).to_string(),
        "nvidia.com/mig.capable": "true", "nvidia.com/mig.strategy": "single",
        "nvidia.com/gpu.deploy.device-plugin": "true", "nvidia.com/gpu.deploy.dcgm-exporter": "true",
        "nvidia.com/gpu.deploy.driver": "true", "nvidia.com/gpu.deploy.gpu-feature-discovery": "true",
        "nvidia.com/gpu.deploy.container-toolkit": "true", "nvidia.com/gpu.deploy.operator-validator": "true",
        "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
        "feature.node.kubernetes.io/kernel-version.full": "6.1.119-129.201.amzn2023.x86_64",
        "feature.node.kubernetes.io/pci-10de.present": "true",
        "feature.node.kubernetes.io/system-os_release.ID": "amzn",
    });
    let first = (index as usize * 7) % IMAGES.len();
    let images: Vec<Value> = (0..50)
        .map(|i| {
            let (image, size) = IMAGES[(first + i) % IMAGES.len()];
            let repo = image.rsplit_once(':').map_or(image, |(r, _)| r);
            let digest = hex64(mix(size ^ u64::from(index) << 8));
            json!({"names": [format!("{repo}@sha256:{digest}"), image], "sizeBytes": size + u64::from(index % 1000)})
        })
        .collect();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": created, "reason": reason, "message": message})
    };
    json!({
        "kind": "Node", "apiVersion": "v1",
        "metadata": {
            "name": name, "uid": uid(1, u64::from(index), 0), "resourceVersion": rv.to_string(),
            "creationTimestamp": created,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "csi.volume.kubernetes.io/nodeid": format!("{{\"ebs.csi.aws.com\":\"i-{:017x}\"}}", mix(u64::from(index)) >> 4),
                "nfd.node.kubernetes.io/feature-labels": "cpu-model.vendor_id,kernel-version.full,pci-10de.present,system-os_release.ID",
                "nvidia.com/gpu-driver-upgrade-enabled": "true",
            },
            "managedFields": [
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": heartbeat,
                 "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {}, "f:images": {}, "f:nodeInfo": {}, "f:allocatable": {}, "f:capacity": {}}}},
                {"manager": "nfd-master", "operation": "Update", "apiVersion": "v1", "time": created,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}, "f:annotations": {}}}},
            ],
        },
        "spec": {
            "podCIDR": format!("100.{}.{}.0/24", 64 + index / 65_536, (index / 256) % 256),
            "providerID": format!("aws:///{zone}/i-{:017x}", mix(u64::from(index)) >> 4),
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        },
        "status": {
            "capacity": {"cpu": "192", "ephemeral-storage": "3750720000Ki", "hugepages-1Gi": "0",
                "hugepages-2Mi": "0", "memory": "2097152000Ki", "nvidia.com/gpu": "8",
                "vpc.amazonaws.com/efa": "32", "pods": "110"},
            "allocatable": {"cpu": "191450m", "ephemeral-storage": "3455640987377", "hugepages-1Gi": "0",
                "hugepages-2Mi": "0", "memory": "2060163072Ki", "nvidia.com/gpu": "8",
                "vpc.amazonaws.com/efa": "32", "pods": "110"},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "InternalDNS", "address": format!("ip-{}.ec2.internal", ip.replace('.', "-"))},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{:032x}", u128::from(mix(u64::from(index))) << 64 | u128::from(mix(u64::from(index) + 1))),
                "systemUUID": uid(2, u64::from(index), 0),
                "bootID": uid(3, u64::from(index), 0),
                "kernelVersion": "6.1.119-129.201.amzn2023.x86_64",
                "osImage": "Amazon Linux 2023.6.20241212", "containerRuntimeVersion": "containerd://1.7.23",
                "kubeletVersion": "v1.32.0-eks-aeac579", "kubeProxyVersion": "v1.32.0-eks-aeac579",
                "operatingSystem": "linux", "architecture": "amd64",
            },
            "images": images,
        },
    })
}

/// Env of a workload container: what a trainer or server is given.
fn workload_env(name: &str, node: u32) -> Value {
    json!([
        {"name": "NCCL_DEBUG", "value": "WARN"},
        {"name": "NCCL_SOCKET_IFNAME", "value": "eth0"},
        {"name": "NCCL_IB_DISABLE", "value": "0"},
        {"name": "FI_PROVIDER", "value": "efa"},
        {"name": "FI_EFA_USE_DEVICE_RDMA", "value": "1"},
        {"name": "CUDA_DEVICE_MAX_CONNECTIONS", "value": "1"},
        {"name": "PYTORCH_CUDA_ALLOC_CONF", "value": "expandable_segments:True"},
        {"name": "HF_HOME", "value": "/cache/huggingface"},
        {"name": "WANDB_PROJECT", "value": format!("run-{}", node % 97)},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
        {"name": "S3_BUCKET", "valueFrom": {"configMapKeyRef": {"name": format!("{name}-config"), "key": "bucket"}}},
        {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "api-key"}}},
    ])
}

#[allow(clippy::too_many_lines)] // one literal object
fn pod(slot: u32, generation: u32, phase: Phase, rv: u64, born: u32, epoch: i64) -> Value {
    let node = slot / PODS_PER_NODE;
    let k = slot % PODS_PER_NODE;
    let name = pod_name(slot, generation);
    let ns = pod_namespace(slot);
    let node_name = node_name(node);
    let pod_uid = pod_uid(slot, generation);
    // Pods of generation 0 started with their node; later ones at `born`.
    let created = if generation == 0 {
        rfc3339(epoch - 86_400 * 3, 0)
    } else {
        rfc3339(epoch, born)
    };
    let started = rfc3339(epoch, born + 2);
    let pod_ip = format!(
        "100.{}.{}.{}",
        64 + node / 65_536,
        (node / 256) % 256,
        2 + k
    );
    let host_ip = format!(
        "10.{}.{}.{}",
        16 + node / 65_536,
        (node / 256) % 256,
        node % 256
    );
    let (owner, labels, containers, gpus): (Value, Value, Vec<(&str, String, Value)>, u32) = if (k
        as usize)
        < DAEMONSETS.len()
    {
        let (ds, _, image) = DAEMONSETS[k as usize];
        let owner = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": ds,
                "uid": uid(5, u64::from(k), 0), "controller": true, "blockOwnerDeletion": true});
        let mut labels = json!({"app": ds, "app.kubernetes.io/name": ds,
                "controller-revision-hash": format!("{:010x}", mix(u64::from(k)) >> 24),
                "pod-template-generation": "3"});
        if ds == "nvidia-device-plugin-daemonset" {
            labels["app.kubernetes.io/name"] = json!("nvidia-device-plugin");
        }
        let resources =
            json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}});
        let mut containers = vec![(ds, image.to_owned(), resources.clone())];
        if ds == "ebs-csi-node" || ds == "cilium" {
            containers.push((
                "node-driver-registrar",
                "public.ecr.aws/eks-distro/kubernetes-csi/node-driver-registrar:v2.12.0-eks-1-31-8"
                    .into(),
                resources,
            ));
        }
        (owner, labels, containers, 0)
    } else {
        let (owner_kind, owner_name, app, image, gpus) = match k {
            JOB_SLOT => (
                "Job",
                format!("train-{node:05}-{generation}"),
                "trainer",
                "ghcr.io/ml-platform/trainer:2024.12.18-5f1c2e9",
                4,
            ),
            SERVE_SLOT => (
                "ReplicaSet",
                format!("llm-serve-7d9f8b{}", node % 10),
                "llm-serve",
                "ghcr.io/ml-platform/serve:2024.12.16-0c9ad41",
                2,
            ),
            _ => (
                "StatefulSet",
                format!("feature-store-{node}"),
                "feature-store",
                "ghcr.io/ml-platform/eval-harness:0.9.1",
                2,
            ),
        };
        let owner = json!({"apiVersion": if owner_kind == "Job" { "batch/v1" } else { "apps/v1" },
                "kind": owner_kind, "name": owner_name, "uid": uid(6, u64::from(slot), u64::from(generation)),
                "controller": true, "blockOwnerDeletion": true});
        let mut labels = json!({"app": app, "app.kubernetes.io/name": app,
                "app.kubernetes.io/part-of": "ml-platform", "team": pod_namespace(slot)});
        if owner_kind == "Job" {
            labels["batch.kubernetes.io/job-name"] = json!(owner_name);
            labels["batch.kubernetes.io/controller-uid"] =
                json!(uid(6, u64::from(slot), u64::from(generation)));
        } else {
            labels["pod-template-hash"] = json!(format!("7d9f8b{}", node % 10));
        }
        let main = json!({"requests": {"cpu": "32", "memory": "400Gi", "nvidia.com/gpu": gpus.to_string(),
                "vpc.amazonaws.com/efa": "8"}, "limits": {"memory": "480Gi", "nvidia.com/gpu": gpus.to_string(),
                "vpc.amazonaws.com/efa": "8"}});
        let side = json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}});
        let containers = vec![
            (app, image.to_owned(), main),
            (
                "metrics",
                "ghcr.io/ml-platform/sidecar-metrics:0.4.2".to_owned(),
                side.clone(),
            ),
            (
                "ckpt-uploader",
                "ghcr.io/ml-platform/ckpt-uploader:1.2.7".to_owned(),
                side,
            ),
        ];
        (owner, labels, containers, gpus)
    };
    let workload = gpus > 0;
    let probe = |path: &str, port: u32| {
        json!({"httpGet": {"path": path, "port": port, "scheme": "HTTP"}, "initialDelaySeconds": 10,
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    };
    let spec_containers: Vec<Value> = containers
        .iter()
        .enumerate()
        .map(|(i, (cname, image, resources))| {
            let mut c = json!({
                "name": cname, "image": image, "imagePullPolicy": "IfNotPresent",
                "resources": resources,
                "ports": [{"name": "metrics", "containerPort": 9400 + i, "protocol": "TCP"}],
                "livenessProbe": probe("/healthz", 9400 + i as u32),
                "readinessProbe": probe("/ready", 9400 + i as u32),
                "volumeMounts": [
                    {"name": "kube-api-access", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                    {"name": "config", "mountPath": "/etc/config", "readOnly": true},
                ],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            });
            if workload && i == 0 {
                c["env"] = workload_env(&name, node);
                c["command"] = json!(["torchrun", "--nnodes=1", "--nproc-per-node=4", "/app/train.py"]);
                c["args"] = json!(["--config", "/etc/config/run.yaml", "--resume-from", "/data/ckpt/latest"]);
                if let Some(mounts) = c["volumeMounts"].as_array_mut() {
                    mounts.push(json!({"name": "dshm", "mountPath": "/dev/shm"}));
                    mounts.push(json!({"name": "data", "mountPath": "/data"}));
                }
            } else {
                c["env"] = json!([{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}]);
                c["securityContext"] = json!({"privileged": !workload, "readOnlyRootFilesystem": workload});
            }
            c
        })
        .collect();
    let mut volumes = vec![
        json!({"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}),
        json!({"name": "config", "configMap": {"name": format!("{}-config", labels["app"].as_str().unwrap_or("app")), "defaultMode": 420}}),
    ];
    if workload {
        volumes
            .push(json!({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}));
        let data = if k == JOB_SLOT || k == SERVE_SLOT {
            json!({"name": "data", "hostPath": {"path": "/mnt/nvme/cache", "type": "DirectoryOrCreate"}})
        } else {
            json!({"name": "data", "persistentVolumeClaim": {"claimName": pvc_name(node)}})
        };
        volumes.push(data);
    } else {
        volumes.push(json!({"name": "host-sys", "hostPath": {"path": "/sys", "type": ""}}));
        volumes.push(json!({"name": "host-proc", "hostPath": {"path": "/proc", "type": ""}}));
    }
    let running = phase == Phase::Running;
    let done = phase == Phase::Succeeded;
    let statuses: Vec<Value> = containers
        .iter()
        .enumerate()
        .map(|(i, (cname, image, _))| {
            let cid = format!("containerd://{}", hex64(mix(u64::from(slot) << 24 ^ u64::from(generation) << 4 ^ i as u64)));
            let state = match phase {
                Phase::Running => json!({"running": {"startedAt": started}}),
                Phase::Succeeded => json!({"terminated": {"exitCode": 0, "reason": "Completed",
                    "startedAt": started, "finishedAt": rfc3339(epoch, born + 600), "containerID": cid}}),
                _ => json!({"waiting": {"reason": "ContainerCreating"}}),
            };
            let digest = hex64(mix(image.len() as u64 ^ 0xd1));
            let repo = image.rsplit_once(':').map_or(image.as_str(), |(r, _)| r);
            json!({"name": cname, "state": state, "lastState": {}, "ready": running,
                "restartCount": 0, "image": image, "imageID": format!("{repo}@sha256:{digest}"),
                "containerID": cid, "started": running,
                "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true, "recursiveReadOnly": "Disabled"}]})
        })
        .collect();
    let cond = |type_: &str, ok: bool| {
        json!({"type": type_, "status": if ok { "True" } else { "False" },
            "lastProbeTime": null, "lastTransitionTime": started})
    };
    let phase_name = match phase {
        Phase::Running => "Running",
        Phase::Succeeded => "Succeeded",
        _ => "Pending",
    };
    let mut status = json!({
        "phase": phase_name,
        "conditions": [
            cond("PodReadyToStartContainers", !matches!(phase, Phase::Pending)),
            cond("Initialized", true),
            cond("Ready", running),
            cond("ContainersReady", running),
            cond("PodScheduled", true),
        ],
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": created,
        "containerStatuses": statuses,
        "qosClass": "Burstable",
    });
    if done {
        status["conditions"][2]["reason"] = json!("PodCompleted");
    }
    let tolerations = json!([
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ]);
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": name, "namespace": ns, "uid": pod_uid, "resourceVersion": rv.to_string(),
            "creationTimestamp": created, "labels": labels, "ownerReferences": [owner],
            "annotations": {"kubectl.kubernetes.io/default-container": containers[0].0,
                "prometheus.io/scrape": "true", "prometheus.io/port": "9400"},
            "generateName": name.rsplit_once('-').map_or(name.as_str(), |(p, _)| p).to_owned() + "-",
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": created,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {}, "f:ownerReferences": {}},
                    "f:spec": {"f:containers": {}, "f:volumes": {}, "f:tolerations": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": started,
                 "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:hostIP": {}, "f:podIP": {}, "f:phase": {}, "f:startTime": {}}}},
            ],
        },
        "spec": {
            "nodeName": node_name, "containers": spec_containers, "volumes": volumes,
            "restartPolicy": if k == JOB_SLOT { "Never" } else { "Always" },
            "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": if workload { "ml-workload" } else { "default" },
            "serviceAccount": if workload { "ml-workload" } else { "default" },
            "securityContext": {}, "schedulerName": "default-scheduler", "tolerations": tolerations,
            "priorityClassName": if workload { "ml-standard" } else { "system-node-critical" },
            "priority": if workload { 1000 } else { 2_000_001_000 },
            "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority",
            "hostNetwork": !workload,
        },
        "status": status,
    })
}

/// The UID of a pod: those the cluster started with have the UIDs
/// `benches`' `ingest_load` gives the pods of its simulated node of the
/// same index (`NODE-POD-4000-8000-00000000beef`, POD = the slot on the
/// node), so that the agents' records join the Kubernetes objects; their
/// replacements get UIDs of their own.
fn pod_uid(slot: u32, generation: u32) -> String {
    let (node, k) = (slot / PODS_PER_NODE, slot % PODS_PER_NODE);
    match generation {
        0 => format!("{node:08x}-{k:04x}-4000-8000-00000000beef"),
        _ => uid(4, u64::from(slot), u64::from(generation)),
    }
}

fn pvc_name(node: u32) -> String {
    format!("data-feature-store-{node}-0")
}

fn pvc(index: u32, rv: u64, epoch: i64) -> Value {
    let ns = pod_namespace(index * PODS_PER_NODE + 14);
    json!({
        "kind": "PersistentVolumeClaim", "apiVersion": "v1",
        "metadata": {"name": pvc_name(index), "namespace": ns, "uid": uid(7, u64::from(index), 0),
            "resourceVersion": rv.to_string(), "creationTimestamp": rfc3339(epoch - 86_400 * 3, 0),
            "labels": {"app": "feature-store"},
            "annotations": {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.beta.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                "volume.kubernetes.io/selected-node": node_name(index),
                "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com"},
            "finalizers": ["kubernetes.io/pvc-protection"]},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "500Gi"}},
            "storageClassName": "gp3", "volumeMode": "Filesystem",
            "volumeName": format!("pvc-{}", uid(8, u64::from(index), 0))},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "500Gi"}},
    })
}

fn namespace_object(index: u32) -> Value {
    let name = NAMESPACES.get(index as usize).copied().unwrap_or("default");
    json!({"kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": name, "uid": uid(9, u64::from(index), 0), "resourceVersion": "1",
            "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

fn event(e: EventRec, epoch: i64) -> Value {
    let pod = pod_name(e.slot, e.generation);
    let ns = pod_namespace(e.slot);
    let node = node_name(e.slot / PODS_PER_NODE);
    let (type_, component, message, object_kind, object_name) = match e.reason {
        Reason::Scheduled => ("Normal", "default-scheduler",
            format!("Successfully assigned {ns}/{pod} to {node}"), "Pod", pod.clone()),
        Reason::Pulled => ("Normal", "kubelet",
            "Container image \"ghcr.io/ml-platform/trainer:2024.12.18-5f1c2e9\" already present on machine".to_owned(),
            "Pod", pod.clone()),
        Reason::Created => ("Normal", "kubelet", "Created container: main".to_owned(), "Pod", pod.clone()),
        Reason::Started => ("Normal", "kubelet", "Started container main".to_owned(), "Pod", pod.clone()),
        Reason::Killing => ("Normal", "kubelet", "Stopping container main".to_owned(), "Pod", pod.clone()),
        Reason::Completed => ("Normal", "job-controller", "Job completed".to_owned(), "Job",
            pod.rsplit_once('-').map_or(pod.clone(), |(j, _)| j.to_owned())),
    };
    let at = rfc3339(epoch, e.at);
    let reason = format!("{:?}", e.reason);
    json!({
        "kind": "Event", "apiVersion": "v1",
        "metadata": {"name": format!("{object_name}.{:016x}", e.id), "namespace": ns,
            "uid": uid(10, e.id, 0), "resourceVersion": e.rv.to_string(), "creationTimestamp": at},
        "involvedObject": {"kind": object_kind, "namespace": ns, "name": object_name,
            "uid": pod_uid(e.slot, e.generation), "apiVersion": "v1",
            "resourceVersion": e.id.to_string(), "fieldPath": "spec.containers{main}"},
        "reason": reason, "message": message,
        "source": {"component": component, "host": node},
        "firstTimestamp": at, "lastTimestamp": at, "count": 1, "type": type_,
        "eventTime": null, "reportingComponent": component, "reportingInstance": node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_have_realistic_sizes() {
        let n = object(
            Snap::Node {
                index: 3,
                rv: 9,
                beat: 0,
            },
            1_700_000_000,
        )
        .to_string();
        assert!((8_000..30_000).contains(&n.len()), "node {} bytes", n.len());
        for k in [0, 4, 12, 13, 14] {
            let p = object(
                Snap::Pod {
                    slot: 30 + k,
                    generation: 1,
                    phase: Phase::Running,
                    rv: 10,
                    born: 5,
                },
                1_700_000_000,
            );
            let len = p.to_string().len();
            assert!((2_500..20_000).contains(&len), "pod slot {k}: {len} bytes");
        }
    }

    #[test]
    fn rfc3339_matches_the_calendar() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_735_689_600, 61), "2025-01-01T00:01:01Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00Z");
    }
}
