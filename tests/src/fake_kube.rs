//! A fake Kubernetes API server speaking the real HTTP protocol, for tests
//! that drive the real `kubectl` and the real kube-rs client without a
//! cluster.
//!
//! It stores arbitrary JSON objects of a few core/v1 kinds (see
//! [`RESOURCES`]), serves discovery, list, get, watch (JSON lines, with
//! replay of changes newer than the requested `resourceVersion` and
//! bookmarks) and pod logs, and injects faults on demand ([`Fault`],
//! [`FakeKube::disconnect_watches`]) so tests can check client recovery.
//!
//! It forwards ports as `pods/{name}/portforward` does over WebSocket
//! ([`portforward`]): to local addresses the test maps per pod and port
//! ([`FakeKube::forward_pod_port`]), for callers RBAC allows.
//!
//! It also accepts what an event recorder writes: `events.k8s.io/v1`
//! Events created (POST) and merge-patched (PATCH, a series' count), kept
//! as written ([`FakeKube::events_v1`]) and, as the real API server does
//! (both APIs share one storage), served as core/v1 Events
//! (`regarding` -> `involvedObject`, `note` -> `message`,
//! `reportingController` -> `reportingComponent`, ...) to lists, watches
//! and `kubectl describe`.
//!
//! It answers TokenReview and SubjectAccessReview as the real API server
//! does for webhook authenticators and authorizers ([`review`]): tokens
//! registered by the test ([`FakeKube::add_token`]), decisions from the
//! RBAC objects applied to it.
//!
//! It runs on its own thread and current-thread runtime, so both plain
//! `#[test]`s and `#[tokio::test]`s can use it, and stops when dropped.
//!
//! ```no_run
//! use gpuscope_tests::fake_kube::FakeKube;
//! let kube = FakeKube::start();
//! kube.apply(serde_json::json!({
//!     "apiVersion": "v1", "kind": "Pod",
//!     "metadata": {"name": "trainer-0", "namespace": "ml"},
//! }));
//! // kubectl --server <kube.url()> get pods -A
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

pub mod portforward;
pub mod review;
pub mod scale;

pub use review::Token;

/// How often an open watch with `allowWatchBookmarks=true` gets a BOOKMARK.
pub const BOOKMARK_PERIOD: Duration = Duration::from_secs(1);

/// Watch duration when the client gives no `timeoutSeconds`.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// One served resource of the core `v1` group.
#[derive(Debug)]
pub struct Resource {
    /// Object kind (`Pod`).
    pub kind: &'static str,
    /// URL plural (`pods`).
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names (`po`).
    pub short_names: &'static [&'static str],
}

/// The kinds the fake stores and serves under `/api/v1`.
pub const RESOURCES: &[Resource] = &[
    res("Pod", "pods", true, &["po"]),
    res("Node", "nodes", false, &["no"]),
    res("Event", "events", true, &["ev"]),
    res(
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
    ),
    res("Namespace", "namespaces", false, &["ns"]),
    res("ConfigMap", "configmaps", true, &["cm"]),
    res("Service", "services", true, &["svc"]),
];

const fn res(
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> Resource {
    Resource {
        kind,
        plural,
        namespaced,
        short_names,
    }
}

fn by_kind(kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

fn by_plural(plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.plural == plural)
}

/// A failure injected into the next list or watch requests
/// ([`FakeKube::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A watch gets an ERROR event with a 410 `Expired` Status (the client
    /// must re-list); a list gets a 410 Status response.
    Gone,
    /// A 403 `Forbidden` Status response.
    Forbidden,
    /// The TCP connection is closed without any response.
    Disconnect,
    /// A 500 `InternalError` Status response.
    ServerError,
    /// A 422 `Invalid` Status response: what an API server without the
    /// WatchList feature answers a watch with `sendInitialEvents=true`.
    Invalid,
}

/// `(kind, namespace or "", name)`.
type Key = (&'static str, String, String);

/// `(namespace, pod, container, previous)`.
type LogKey = (String, String, String, bool);

/// One recorded change, replayed to watches that start behind it.
struct Change {
    rv: u64,
    event: &'static str,
    kind: &'static str,
    namespace: String,
    object: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    uids: u64,
    objects: BTreeMap<Key, Value>,
    changes: Vec<Change>,
    logs: BTreeMap<LogKey, String>,
    faults: VecDeque<Fault>,
    requests: Vec<String>,
    /// `events.k8s.io/v1` Events as written, by (namespace, name).
    events_v1: BTreeMap<(String, String), Value>,
    /// Bearer tokens TokenReview knows.
    tokens: BTreeMap<String, Token>,
    /// The token of every TokenReview asked, in order.
    reviewed: Vec<String>,
    /// Role, ClusterRole, RoleBinding and ClusterRoleBinding objects, by
    /// (kind, namespace or "", name).
    rbac: BTreeMap<(String, String, String), Value>,
    /// Where a port-forward to (namespace, pod, port) connects.
    forwards: BTreeMap<(String, String, u16), std::net::SocketAddr>,
}

/// The RBAC kinds SubjectAccessReview is decided from.
const RBAC_KINDS: [(&str, bool); 4] = [
    ("Role", true),
    ("ClusterRole", false),
    ("RoleBinding", true),
    ("ClusterRoleBinding", false),
];

impl State {
    /// Bumps the resourceVersion, stamps it on `object` and records the
    /// change.
    fn record(&mut self, event: &'static str, key: &Key, mut object: Value) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let (kind, namespace) = (key.0, key.1.clone());
        let change = Change {
            rv: self.rv,
            event,
            kind,
            namespace,
            object: object.clone(),
        };
        self.changes.push(change);
        object
    }

    /// Inserts or replaces an object whose metadata is an object.
    fn store(&mut self, key: Key, mut obj: Value) -> Value {
        let old = self.objects.get(&key);
        let old_uid = old.and_then(|o| o.pointer("/metadata/uid")).cloned();
        let event = if old.is_some() { "MODIFIED" } else { "ADDED" };
        let uid = old_uid.unwrap_or_else(|| {
            self.uids += 1;
            json!(format!("00000000-0000-4000-8000-{:012x}", self.uids))
        });
        if let Some(obj) = obj.as_object_mut() {
            obj.entry("apiVersion").or_insert(json!("v1"));
        }
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.entry("uid").or_insert(uid);
            if !key.1.is_empty() {
                meta.insert("namespace".into(), json!(key.1));
            }
        }
        let obj = self.record(event, &key, obj);
        self.objects.insert(key, obj.clone());
        obj
    }
}

struct Shared {
    state: Mutex<State>,
    /// The latest resourceVersion; wakes the watches.
    changed: watch::Sender<u64>,
    /// Bumped by [`FakeKube::disconnect_watches`].
    kick: watch::Sender<u64>,
    /// Bumped by [`FakeKube::disconnect_port_forwards`].
    cut: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `change` under the lock, then wakes the watches.
    fn change<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.lock();
        let out = change(&mut st);
        let rv = st.rv;
        drop(st);
        self.changed.send_replace(rv);
        out
    }
}

/// The fake API server; stops when dropped.
pub struct FakeKube {
    shared: Arc<Shared>,
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for FakeKube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeKube")
            .field("port", &self.port)
            .finish()
    }
}

impl FakeKube {
    /// Starts an empty server on `127.0.0.1:0` on its own thread.
    pub fn start() -> FakeKube {
        let listener = std::net::TcpListener::bind("127.0.0.1:0");
        let listener = listener.expect("a loopback port for the fake API server");
        let nonblocking = listener.set_nonblocking(true);
        nonblocking.expect("a non-blocking listener for tokio");
        let port = listener
            .local_addr()
            .expect("a bound listener's address")
            .port();
        let state = State {
            rv: 1,
            ..State::default()
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: watch::Sender::new(1),
            kick: watch::Sender::new(0),
            cut: watch::Sender::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let server = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("fake-kube".into());
        let thread = thread.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let runtime = runtime.expect("a tokio runtime for the fake API server");
            runtime.block_on(serve(listener, server, stopped));
        });
        let thread = Some(thread.expect("a thread for the fake API server"));
        FakeKube {
            shared,
            port,
            stop: Some(stop),
            thread,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates or replaces `obj` (by kind, namespace, name) and returns it as
    /// stored. Panics on an object the fake cannot store; see
    /// [`FakeKube::try_apply`].
    pub fn apply(&self, obj: Value) -> Value {
        self.try_apply(obj)
            .unwrap_or_else(|e| panic!("fake API server: {e}"))
    }

    /// Creates or replaces `obj`: sets `metadata.resourceVersion` from the
    /// global counter, fills `metadata.uid` (kept from the replaced object)
    /// and a missing `metadata.namespace` (`default`), and records an ADDED
    /// or MODIFIED watch event. Creates the object's Namespace if missing,
    /// as kubectl asks for it after a NotFound. Fails on an unknown kind or
    /// a missing name.
    pub fn try_apply(&self, obj: Value) -> Result<Value, String> {
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("object without kind")?;
        let name = str_at(&obj, "/metadata/name").ok_or("object without metadata.name")?;
        if let Some((kind, namespaced)) = RBAC_KINDS.iter().find(|(k, _)| *k == kind) {
            let ns = match namespaced {
                true => str_at(&obj, "/metadata/namespace").unwrap_or("default"),
                false => "",
            };
            let key = ((*kind).to_owned(), ns.to_owned(), name.to_owned());
            self.shared.lock().rbac.insert(key, obj.clone());
            return Ok(obj);
        }
        let res = by_kind(kind).ok_or_else(|| format!("unsupported kind {kind:?}"))?;
        let namespace = match (res.namespaced, str_at(&obj, "/metadata/namespace")) {
            (false, _) => String::new(),
            (true, ns) => ns.unwrap_or("default").to_owned(),
        };
        let key = (res.kind, namespace.clone(), name.to_owned());
        let ns_key = ("Namespace", String::new(), namespace.clone());
        Ok(self.shared.change(|st| {
            if res.namespaced && !st.objects.contains_key(&ns_key) {
                let meta = json!({"name": namespace});
                let ns =
                    json!({"kind": "Namespace", "metadata": meta, "status": {"phase": "Active"}});
                st.store(ns_key, ns);
            }
            st.store(key, obj)
        }))
    }

    /// Makes TokenReview authenticate `token` as `who`.
    pub fn add_token(&self, token: &str, who: Token) {
        self.shared.lock().tokens.insert(token.to_owned(), who);
    }

    /// The token of every TokenReview asked so far, in order.
    pub fn reviewed_tokens(&self) -> Vec<String> {
        self.shared.lock().reviewed.clone()
    }

    /// A JWT-shaped token for `who` ([`review::jwt`]: its `exp`, `aud` and
    /// `sub` claims as the API server signs them), which TokenReview
    /// authenticates as `who`.
    pub fn add_jwt(&self, who: Token) -> String {
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let token = review::jwt(
            &who,
            SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        self.add_token(&token, who);
        token
    }

    /// Deletes an object and records a DELETED watch event; `false` when
    /// there was no such object.
    pub fn delete(&self, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        let Some(res) = by_kind(kind) else {
            return false;
        };
        let namespace = if res.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        let key = (res.kind, namespace.to_owned(), name.to_owned());
        self.shared.change(|st| {
            let object = st.objects.remove(&key);
            object
                .map(|object| st.record("DELETED", &key, object))
                .is_some()
        })
    }

    /// Sets the log of a container (`previous`: of its last terminated
    /// instance, as `kubectl logs --previous` asks).
    pub fn set_log(&self, namespace: &str, pod: &str, container: &str, previous: bool, log: &str) {
        let key = (namespace.into(), pod.into(), container.into(), previous);
        self.shared.lock().logs.insert(key, log.to_owned());
    }

    /// Applies every `*.json` file of `dir` (in name order): one object, or
    /// a kubectl `List` / typed `XxxList` whose items may lack `kind`. Each
    /// `logs/CONTAINER.log` becomes the previous log of that container of
    /// the pod in `dir/pod.json`. Returns the number of objects applied.
    pub fn load_dir(&self, dir: &Path) -> Result<usize, String> {
        let mut count = 0;
        for file in files_with_ext(dir, "json")? {
            let in_file = |e: String| format!("{}: {e}", file.display());
            for obj in list_items(read_json(&file)?).map_err(in_file)? {
                self.try_apply(obj).map_err(in_file)?;
                count += 1;
            }
        }
        let logs = dir.join("logs");
        if logs.is_dir() {
            let pod_file = dir.join("pod.json");
            let pods = list_items(read_json(&pod_file)?)?;
            let pod = pods.iter().find(|p| p["kind"] == "Pod");
            let pod = pod.ok_or_else(|| format!("{}: no Pod for logs/", pod_file.display()))?;
            let name = str_at(pod, "/metadata/name").unwrap_or_default();
            let namespace = str_at(pod, "/metadata/namespace").unwrap_or("default");
            for file in files_with_ext(&logs, "log")? {
                let log = std::fs::read_to_string(&file);
                let log = log.map_err(|e| format!("{}: {e}", file.display()))?;
                let container = file.file_stem().unwrap_or_default().to_string_lossy();
                self.set_log(namespace, name, &container, true, &log);
            }
        }
        Ok(count)
    }

    /// Makes the next `count` list or watch requests fail with `fault`
    /// (queued after any faults still pending).
    pub fn fail_next(&self, fault: Fault, count: usize) {
        let faults = std::iter::repeat_n(fault, count);
        self.shared.lock().faults.extend(faults);
    }

    /// Ends every open watch stream now; clients must reconnect.
    pub fn disconnect_watches(&self) {
        self.shared.kick.send_modify(|generation| *generation += 1);
    }

    /// How many requests so far had a path (with query) starting with
    /// `path_prefix`, e.g. `/api/v1/pods`.
    pub fn requests(&self, path_prefix: &str) -> usize {
        let st = self.shared.lock();
        st.requests
            .iter()
            .filter(|r| r.starts_with(path_prefix))
            .count()
    }

    /// Every request so far, as `path?query`, oldest first.
    pub fn request_log(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Every `events.k8s.io/v1` Event written so far, as stored (after
    /// creation and merge patches), by namespace and name.
    pub fn events_v1(&self) -> Vec<Value> {
        self.shared.lock().events_v1.values().cloned().collect()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let paths = entries.filter_map(|e| e.ok().map(|e| e.path()));
    let is_match = |p: &PathBuf| p.is_file() && p.extension().is_some_and(|x| x == ext);
    let mut files: Vec<PathBuf> = paths.filter(is_match).collect();
    files.sort();
    Ok(files)
}

fn read_json(file: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// The objects of a file: the items of a `List`/`XxxList`, else the value.
fn list_items(value: Value) -> Result<Vec<Value>, String> {
    let Some(list_kind) = value["kind"].as_str().and_then(|k| k.strip_suffix("List")) else {
        return Ok(vec![value]);
    };
    let item_kind = (!list_kind.is_empty()).then(|| json!(list_kind));
    let api_version = value.get("apiVersion").cloned().unwrap_or(json!("v1"));
    let items = match value.get("items") {
        Some(Value::Array(items)) => items.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err("items is not an array".into()),
    };
    let typed = |mut item: Value| {
        if item.get("kind").is_none() {
            let kind = item_kind.clone().ok_or("an item of a List has no kind")?;
            let obj = item
                .as_object_mut()
                .ok_or("an item of a List is not an object")?;
            obj.insert("kind".into(), kind);
            obj.entry("apiVersion").or_insert(api_version.clone());
        }
        Ok(item)
    };
    items.into_iter().map(typed).collect()
}

// ---------------------------------------------------------------- server

type Body = BoxBody<Bytes, Infallible>;

/// The service error that makes hyper close the connection unanswered.
#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, stop: oneshot::Receiver<()>) {
    accept(listener, stop, move |req| handle(Arc::clone(&shared), req)).await;
}

/// Serves HTTP/1.1 (upgrades allowed: port-forward, exec) on `listener`
/// until `stop`, each request to `handle`, each connection on a task of
/// its own. Both fake API servers serve this way.
async fn accept<H, F, E>(
    listener: std::net::TcpListener,
    mut stop: oneshot::Receiver<()>,
    handle: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = Result<Response<Body>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let connection = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(handle.clone()))
            .with_upgrades();
        tokio::spawn(connection);
    }
}

/// The decoded query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let uri = req.uri().path_and_query().map_or("/", |p| p.as_str());
    shared.lock().requests.push(uri.to_owned());
    let path: Vec<String> = req.uri().path().split('/').map(str::to_owned).collect();
    if let [
        "",
        "apis",
        "events.k8s.io",
        "v1",
        "namespaces",
        ns,
        "events",
        ref name @ ..,
    ] = path.iter().map(String::as_str).collect::<Vec<_>>()[..]
    {
        let method = req.method().clone();
        let merge = req
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == b"application/merge-patch+json");
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Err(Dropped),
        };
        let name = name.first().copied();
        return Ok(write_event_v1(&shared, &method, ns, name, merge, &body));
    }
    let review = match path.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["", "apis", "authentication.k8s.io", "v1", "tokenreviews"] => Some(true),
        [
            "",
            "apis",
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
        ] => Some(false),
        _ => None,
    };
    if let (Some(token), &Method::POST) = (review, req.method()) {
        let Ok(body) = req.into_body().collect().await else {
            return Err(Dropped);
        };
        let Ok(input) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
            return Ok(status(StatusCode::BAD_REQUEST, "the body is not JSON"));
        };
        let mut st = shared.lock();
        let answer = match token {
            true => {
                let asked = input.pointer("/spec/token").and_then(Value::as_str);
                st.reviewed.push(asked.unwrap_or("").to_owned());
                review::token_review(&st.tokens, &input)
            }
            false => review::access_review(&st.rbac, &input),
        };
        return Ok(json_response(StatusCode::CREATED, &answer));
    }
    if let [
        "",
        "api",
        "v1",
        "namespaces",
        ns,
        "pods",
        pod,
        "portforward",
    ] = path.iter().map(String::as_str).collect::<Vec<_>>()[..]
        && matches!(*req.method(), Method::GET | Method::POST)
    {
        let (ns, pod) = (ns.to_owned(), pod.to_owned());
        return Ok(portforward::handle(&shared, req, &ns, &pod));
    }
    if req.method() != Method::GET {
        let message = format!("the fake API server only serves GET, not {}", req.method());
        return Ok(status(StatusCode::METHOD_NOT_ALLOWED, message));
    }
    let query = req.uri().query().unwrap_or("").as_bytes();
    let query = Query(form_urlencoded::parse(query).into_owned().collect());
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let table = accept.is_some_and(|a| a.contains("as=Table"));
    let segments: Vec<&str> = req.uri().path().trim_end_matches('/').split('/').collect();
    Ok(match segments[1..] {
        ["version"] => ok(&version_info()),
        ["api"] => ok(&json!({"kind": "APIVersions", "versions": ["v1"]})),
        ["apis"] => ok(&review::group_list()),
        ["apis", group, "v1"] => match review::resource_list(group) {
            Some(list) => ok(&list),
            None => status(StatusCode::NOT_FOUND, NO_SUCH_PATH),
        },
        ["api", "v1"] => ok(&resource_list()),
        ["api", "v1", ref rest @ ..] => return route_v1(&shared, rest, &query, table),
        _ => status(StatusCode::NOT_FOUND, NO_SUCH_PATH),
    })
}

const NO_SUCH_PATH: &str = "the server could not find the requested resource";

/// POST (create) or merge-PATCH of an `events.k8s.io/v1` Event: stored as
/// written and, converted, as the core/v1 Event of the same name.
fn write_event_v1(
    shared: &Shared,
    method: &Method,
    ns: &str,
    name: Option<&str>,
    merge: bool,
    body: &[u8],
) -> Response<Body> {
    let Ok(input) = serde_json::from_slice::<Value>(body) else {
        return status(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let (code, event) = match (method, name) {
        (&Method::POST, None) => {
            let Some(name) = str_at(&input, "/metadata/name").map(str::to_owned) else {
                return status(StatusCode::BAD_REQUEST, "metadata.name: Required value");
            };
            if shared
                .lock()
                .events_v1
                .contains_key(&(ns.to_owned(), name.clone()))
            {
                let message = format!("events.events.k8s.io {name:?} already exists");
                return json_response(
                    StatusCode::CONFLICT,
                    &status_json(StatusCode::CONFLICT, &message),
                );
            }
            (StatusCode::CREATED, (name, input))
        }
        (&Method::PATCH, Some(name)) if merge => {
            let key = (ns.to_owned(), name.to_owned());
            let Some(mut stored) = shared.lock().events_v1.get(&key).cloned() else {
                return status(
                    StatusCode::NOT_FOUND,
                    format!("events.events.k8s.io {name:?} not found"),
                );
            };
            merge_patch(&mut stored, &input);
            (StatusCode::OK, (name.to_owned(), stored))
        }
        (&Method::PATCH, Some(_)) => {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the fake API server takes merge patches only",
            );
        }
        _ => {
            let message =
                format!("the fake API server does not {method} events.k8s.io events here");
            return status(StatusCode::METHOD_NOT_ALLOWED, message);
        }
    };
    let (name, mut event) = event;
    event["apiVersion"] = json!("events.k8s.io/v1");
    event["kind"] = json!("Event");
    event["metadata"]["namespace"] = json!(ns);
    let stored = shared.change(|st| {
        let core = st.store(("Event", ns.to_owned(), name.clone()), core_event(&event));
        event["metadata"] = core["metadata"].clone();
        st.events_v1.insert((ns.to_owned(), name), event.clone());
        event
    });
    json_response(code, &stored)
}

/// The core/v1 form of an `events.k8s.io/v1` Event, field by field as the
/// API server converts it.
fn core_event(v1: &Value) -> Value {
    let mut core = json!({"apiVersion": "v1", "kind": "Event", "metadata": v1["metadata"]});
    let renames = [
        ("regarding", "involvedObject"),
        ("related", "related"),
        ("reason", "reason"),
        ("note", "message"),
        ("type", "type"),
        ("action", "action"),
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
        ("deprecatedSource", "source"),
        ("deprecatedCount", "count"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
    ];
    for (from, to) in renames {
        match v1.get(from) {
            Some(Value::Null) | None => {}
            Some(v) => core[to] = v.clone(),
        }
    }
    core
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (k, v) in patch {
        if v.is_null() {
            if let Some(t) = target.as_object_mut() {
                t.remove(k);
            }
        } else {
            merge_patch(&mut target[k], v);
        }
    }
}

fn route_v1(
    shared: &Arc<Shared>,
    rest: &[&str],
    query: &Query,
    table: bool,
) -> Result<Response<Body>, Dropped> {
    let namespaced = |plural| by_plural(plural).filter(|r| r.namespaced);
    let (res, namespace, name) = match *rest {
        [plural] => (by_plural(plural), None, None),
        [plural, name] => (
            by_plural(plural).filter(|r| !r.namespaced),
            None,
            Some(name),
        ),
        ["namespaces", ns, plural] => (namespaced(plural), Some(ns), None),
        ["namespaces", ns, plural, name] => (namespaced(plural), Some(ns), Some(name)),
        ["namespaces", ns, "pods", pod, "log"] => return Ok(pod_log(shared, ns, pod, query)),
        _ => (None, None, None),
    };
    let Some(res) = res else {
        return Ok(status(StatusCode::NOT_FOUND, NO_SUCH_PATH));
    };
    if let Some(name) = name {
        let key = (
            res.kind,
            namespace.unwrap_or("").to_owned(),
            name.to_owned(),
        );
        let st = shared.lock();
        return Ok(match st.objects.get(&key) {
            Some(obj) if table => ok(&table_json(res, std::slice::from_ref(obj), st.rv)),
            Some(obj) => ok(obj),
            None => status(
                StatusCode::NOT_FOUND,
                format!("{} {name:?} not found", res.plural),
            ),
        });
    }
    let filter = match Filter::new(res, namespace, query) {
        Ok(filter) => filter,
        Err(message) => return Ok(status(StatusCode::BAD_REQUEST, message)),
    };
    let watching = query.flag("watch");
    let fault = shared.lock().faults.pop_front();
    if let Some(fault) = fault {
        return fault_response(fault, res, namespace, watching);
    }
    if watching {
        return Ok(start_watch(shared, filter, query));
    }
    let st = shared.lock();
    let items = st
        .objects
        .iter()
        .filter(|(k, o)| filter.matches(k.0, &k.1, o));
    let items: Vec<Value> = items.map(|(_, o)| o.clone()).collect();
    Ok(ok(&if table {
        table_json(res, &items, st.rv)
    } else {
        let metadata = json!({"resourceVersion": st.rv.to_string()});
        let kind = format!("{}List", res.kind);
        json!({"kind": kind, "apiVersion": "v1", "metadata": metadata, "items": items})
    }))
}

fn fault_response(
    fault: Fault,
    res: &Resource,
    namespace: Option<&str>,
    watching: bool,
) -> Result<Response<Body>, Dropped> {
    let scope = namespace.map_or("at the cluster scope".into(), |ns| {
        format!("in the namespace {ns:?}")
    });
    let verb = if watching { "watch" } else { "list" };
    Ok(match fault {
        Fault::Disconnect => return Err(Dropped),
        Fault::Forbidden => {
            let user = "User \"system:serviceaccount:gpuscope:fake\"";
            let plural = res.plural;
            let message = format!(
                "{plural} is forbidden: {user} cannot {verb} resource {plural:?} in API group \"\" {scope}"
            );
            status(StatusCode::FORBIDDEN, message)
        }
        Fault::Invalid => {
            let message = "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled";
            status(StatusCode::UNPROCESSABLE_ENTITY, message)
        }
        Fault::ServerError => {
            let message = "an error on the server (\"injected fault\") has prevented the request from succeeding";
            status(StatusCode::INTERNAL_SERVER_ERROR, message)
        }
        Fault::Gone if watching => {
            let (tx, rx) = mpsc::channel(1);
            let expired = status_json(StatusCode::GONE, "too old resource version");
            let _ = tx.try_send(line(&json!({"type": "ERROR", "object": expired})));
            stream_response(rx)
        }
        Fault::Gone => {
            let message =
                "The provided continue parameter is too old to display a consistent list result.";
            status(StatusCode::GONE, message)
        }
    })
}

fn pod_log(shared: &Shared, ns: &str, pod: &str, query: &Query) -> Response<Body> {
    let st = shared.lock();
    let Some(pod_obj) = st.objects.get(&("Pod", ns.to_owned(), pod.to_owned())) else {
        return status(StatusCode::NOT_FOUND, format!("pods {pod:?} not found"));
    };
    let containers = pod_obj
        .pointer("/spec/containers")
        .and_then(Value::as_array);
    let names: Vec<&str> = containers
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match (query.get("container"), names.as_slice()) {
        (Some(c), _) | (None, &[c]) => c.to_owned(),
        (None, _) => {
            let message = format!(
                "a container name must be specified for pod {pod}, choose one of: {names:?}"
            );
            return status(StatusCode::BAD_REQUEST, message);
        }
    };
    let previous = query.flag("previous");
    let key = (ns.to_owned(), pod.to_owned(), container.clone(), previous);
    let Some(log) = st.logs.get(&key) else {
        let message = if previous {
            format!("previous terminated container {container:?} in pod {pod:?} not found")
        } else {
            format!("container {container:?} in pod {pod:?} is not available")
        };
        return status(StatusCode::NOT_FOUND, message);
    };
    let mut log = log.as_str();
    if let Some(n) = query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        let starts = log
            .match_indices('\n')
            .map(|(i, _)| i + 1)
            .filter(|&i| i < log.len());
        let starts: Vec<usize> = std::iter::once(0).chain(starts).collect();
        log = starts
            .len()
            .checked_sub(n)
            .map_or(log, |first| &log[starts[first]..]);
        if n == 0 {
            log = "";
        }
    }
    let mut resp = Response::new(Full::new(Bytes::from(log.to_owned())).boxed());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

// ---------------------------------------------------------------- selectors

/// Which objects a list or watch wants: kind, namespace, selectors.
struct Filter {
    kind: &'static str,
    namespace: Option<String>,
    labels: Vec<LabelReq>,
    /// `(dotted path, negated, value)`.
    fields: Vec<(String, bool, String)>,
}

/// One label requirement; `a=b` is `In [b]`, `a!=b` is `NotIn [b]`.
struct LabelReq {
    key: String,
    op: LabelOp,
    values: Vec<String>,
}

#[derive(Clone, Copy)]
enum LabelOp {
    In,
    NotIn,
    Exists,
    NotExists,
}

impl Filter {
    fn new(res: &Resource, namespace: Option<&str>, query: &Query) -> Result<Filter, String> {
        let labels = split_top_level(query.get("labelSelector").unwrap_or(""));
        let labels = labels.map(parse_label_req).collect::<Result<_, _>>()?;
        let fields = split_top_level(query.get("fieldSelector").unwrap_or("")).map(|term| {
            let (path, negated, value) = match split_op(term) {
                Some((p, "!=", v)) => (p, true, v),
                Some((p, _, v)) => (p, false, v),
                None => return Err(format!("invalid field selector term {term:?}")),
            };
            Ok((path.to_owned(), negated, value.to_owned()))
        });
        let fields = fields.collect::<Result<_, String>>()?;
        let namespace = namespace.map(str::to_owned);
        Ok(Filter {
            kind: res.kind,
            namespace,
            labels,
            fields,
        })
    }

    fn matches(&self, kind: &str, namespace: &str, obj: &Value) -> bool {
        if kind != self.kind || self.namespace.as_deref().is_some_and(|ns| ns != namespace) {
            return false;
        }
        let labels = obj.pointer("/metadata/labels");
        let labels_ok = self.labels.iter().all(|req| {
            let label = labels.and_then(|l| l.get(&req.key)).and_then(Value::as_str);
            let listed = label.is_some_and(|l| req.values.iter().any(|v| v == l));
            match req.op {
                LabelOp::In => listed,
                LabelOp::NotIn => !listed,
                LabelOp::Exists => label.is_some(),
                LabelOp::NotExists => label.is_none(),
            }
        });
        labels_ok
            && self.fields.iter().all(|(path, negated, want)| {
                let have = match obj.pointer(&format!("/{}", path.replace('.', "/"))) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                (have == *want) != *negated
            })
    }
}

/// Splits a selector at commas outside parentheses, dropping empty terms.
fn split_top_level(selector: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0i32;
    let terms = selector.split(move |c| {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        c == ',' && depth == 0
    });
    terms.map(str::trim).filter(|t| !t.is_empty())
}

/// `key`, operator (`!=`, `==`, `=`), value, all trimmed.
fn split_op(term: &str) -> Option<(&str, &str, &str)> {
    let split = |op| term.split_once(op).map(|(k, v)| (k.trim(), op, v.trim()));
    split("!=").or_else(|| split("==")).or_else(|| split("="))
}

fn parse_label_req(term: &str) -> Result<LabelReq, String> {
    let invalid = || format!("invalid label selector term {term:?}");
    let req = |key: &str, op, values| LabelReq {
        key: key.trim().to_owned(),
        op,
        values,
    };
    let set = |values: &str| -> Result<Vec<String>, String> {
        let values = values
            .trim()
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'));
        Ok(values
            .ok_or_else(invalid)?
            .split(',')
            .map(|v| v.trim().to_owned())
            .collect())
    };
    if let Some((key, values)) = term.split_once(" notin ") {
        Ok(req(key, LabelOp::NotIn, set(values)?))
    } else if let Some((key, values)) = term.split_once(" in ") {
        Ok(req(key, LabelOp::In, set(values)?))
    } else if let Some((key, op, value)) = split_op(term) {
        let op = if op == "!=" {
            LabelOp::NotIn
        } else {
            LabelOp::In
        };
        Ok(req(key, op, vec![value.to_owned()]))
    } else if let Some(key) = term.strip_prefix('!') {
        Ok(req(key, LabelOp::NotExists, Vec::new()))
    } else if term.contains(char::is_whitespace) {
        Err(invalid())
    } else {
        Ok(req(term, LabelOp::Exists, Vec::new()))
    }
}

// ---------------------------------------------------------------- watch

/// What one watch request asked for.
struct WatchOptions {
    /// Replay changes after this resourceVersion; `None`: ADDED for all.
    since: Option<u64>,
    /// `sendInitialEvents`: end the initial ADDED with the
    /// `k8s.io/initial-events-end` bookmark.
    initial_events: bool,
    bookmarks: bool,
    timeout: Duration,
}

fn start_watch(shared: &Arc<Shared>, filter: Filter, query: &Query) -> Response<Body> {
    let initial_events = query.flag("sendInitialEvents");
    let since = match query.get("resourceVersion") {
        _ if initial_events => None,
        None | Some("" | "0") => None,
        Some(rv) => rv.parse::<u64>().ok(),
    };
    let timeout = query.get("timeoutSeconds").and_then(|t| t.parse().ok());
    let timeout = timeout.map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let bookmarks = query.flag("allowWatchBookmarks");
    let options = WatchOptions {
        since,
        initial_events,
        bookmarks,
        timeout,
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(stream_watch(Arc::clone(shared), filter, options, tx));
    stream_response(rx)
}

async fn stream_watch(
    shared: Arc<Shared>,
    filter: Filter,
    opts: WatchOptions,
    tx: mpsc::Sender<Bytes>,
) {
    let mut changed = shared.changed.subscribe();
    let mut kick = shared.kick.subscribe();
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut events = Vec::new();
    let mut cursor = match opts.since {
        Some(rv) => rv,
        None => {
            let st = shared.lock();
            let objects = st
                .objects
                .iter()
                .filter(|(k, o)| filter.matches(k.0, &k.1, o));
            let mut objects: Vec<&Value> = objects.map(|(_, o)| o).collect();
            objects.sort_by_key(|o| str_at(o, "/metadata/resourceVersion")?.parse::<u64>().ok());
            events.extend(
                objects
                    .into_iter()
                    .map(|o| json!({"type": "ADDED", "object": o})),
            );
            st.rv
        }
    };
    if opts.initial_events {
        events.push(bookmark(filter.kind, cursor, true));
    }
    let start = tokio::time::Instant::now() + BOOKMARK_PERIOD;
    let mut ticks = tokio::time::interval_at(start, BOOKMARK_PERIOD);
    let mut bookmark_due = false;
    loop {
        {
            changed.borrow_and_update();
            let st = shared.lock();
            let start = st.changes.partition_point(|c| c.rv <= cursor);
            let news = st.changes[start..].iter();
            let news = news.filter(|c| filter.matches(c.kind, &c.namespace, &c.object));
            events.extend(news.map(|c| json!({"type": c.event, "object": c.object})));
            cursor = cursor.max(st.rv);
        }
        if std::mem::take(&mut bookmark_due) {
            events.push(bookmark(filter.kind, cursor, false));
        }
        for event in events.drain(..) {
            if tx.send(line(&event)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            biased;
            _ = kick.changed() => return,
            woke = changed.changed() => if woke.is_err() { return },
            () = tokio::time::sleep_until(deadline) => return,
            () = tx.closed() => return,
            _ = ticks.tick(), if opts.bookmarks => bookmark_due = true,
        }
    }
}

fn bookmark(kind: &str, rv: u64, initial_events_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let object = json!({"kind": kind, "apiVersion": "v1", "metadata": metadata});
    json!({"type": "BOOKMARK", "object": object})
}

fn line(event: &Value) -> Bytes {
    Bytes::from(format!("{event}\n"))
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let frames = ReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut resp = Response::new(StreamBody::new(frames).boxed());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

// ---------------------------------------------------------------- documents

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn ok(body: &Value) -> Response<Body> {
    json_response(StatusCode::OK, body)
}

/// A metav1 Status; the reason follows from the code.
fn status_json(code: StatusCode, message: &str) -> Value {
    let reason = match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        410 => "Expired",
        422 => "Invalid",
        _ => "InternalError",
    };
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    })
}

/// A metav1 Status response.
fn status(code: StatusCode, message: impl AsRef<str>) -> Response<Body> {
    json_response(code, &status_json(code, message.as_ref()))
}

fn version_info() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0",
        "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53", "gitTreeState": "clean",
        "buildDate": "2024-12-11T17:59:15Z", "goVersion": "go1.23.3", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn resource_list() -> Value {
    let resources = RESOURCES.iter().map(|r| {
        json!({
            "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
            "kind": r.kind, "verbs": ["get", "list", "watch"], "shortNames": r.short_names,
        })
    });
    let log = json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]});
    let resources: Vec<Value> = resources.chain([log]).collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": resources})
}

/// A `meta.k8s.io/v1` Table, as `kubectl get` asks for in its Accept
/// header; rows carry the objects' metadata.
fn table_json(res: &Resource, items: &[Value], rv: u64) -> Value {
    let columns: &[(&str, &str)] = match res.kind {
        "Pod" => &[("Status", "/status/phase"), ("Node", "/spec/nodeName")],
        "Event" => &[
            ("Type", "/type"),
            ("Reason", "/reason"),
            ("Message", "/message"),
        ],
        "PersistentVolumeClaim" => &[("Status", "/status/phase"), ("Volume", "/spec/volumeName")],
        "Namespace" => &[("Status", "/status/phase")],
        _ => &[],
    };
    let column = |name: &str, format: &str| json!({"name": name, "type": "string", "format": format, "description": "", "priority": 0});
    let columns_json = std::iter::once(column("Name", "name"));
    let columns_json: Vec<Value> = columns_json
        .chain(columns.iter().map(|(n, _)| column(n, "")))
        .collect();
    let row = |obj: &Value| {
        let cells = columns
            .iter()
            .map(|(_, p)| json!(str_at(obj, p).unwrap_or("<none>")));
        let cells: Vec<Value> = std::iter::once(obj["metadata"]["name"].clone())
            .chain(cells)
            .collect();
        let meta = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]});
        json!({"cells": cells, "object": meta})
    };
    let rows: Vec<Value> = items.iter().map(row).collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns_json, "rows": rows,
    })
}
