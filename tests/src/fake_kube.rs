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
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

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
}

/// `(kind, namespace or "", name)`.
type Key = (&'static str, String, String);

/// `(namespace, pod, container, previous)`.
type LogKey = (String, String, String, bool);

/// One recorded change, replayed to watches that start behind it.
struct Change {
    rv: u64,
    kind: &'static str,
    namespace: String,
    event: &'static str,
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
}

struct Shared {
    state: Mutex<State>,
    /// The latest resourceVersion; wakes the watches.
    changed: watch::Sender<u64>,
    /// Bumped by [`FakeKube::disconnect_watches`].
    kick: watch::Sender<u64>,
}

impl State {
    /// Inserts or replaces a validated object and records the change.
    fn store(
        &mut self,
        kind: &'static str,
        namespace: String,
        name: String,
        mut obj: Value,
    ) -> Value {
        self.rv += 1;
        let rv = self.rv;
        let key = (kind, namespace.clone(), name);
        let old_uid = self
            .objects
            .get(&key)
            .and_then(|o| o.pointer("/metadata/uid"))
            .cloned();
        let uid = old_uid.unwrap_or_else(|| {
            self.uids += 1;
            json!(format!("00000000-0000-4000-8000-{:012x}", self.uids))
        });
        obj.as_object_mut()
            .map(|o| o.entry("apiVersion").or_insert(json!("v1")));
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            meta.entry("uid").or_insert(uid);
            if !namespace.is_empty() {
                meta.insert("namespace".into(), json!(namespace));
            }
        }
        let event = match self.objects.insert(key, obj.clone()) {
            Some(_) => "MODIFIED",
            None => "ADDED",
        };
        let object = obj.clone();
        self.changes.push(Change {
            rv,
            kind,
            namespace,
            event,
            object,
        });
        obj
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
            .field("url", &self.url())
            .finish()
    }
}

impl FakeKube {
    /// Starts an empty server on `127.0.0.1:0` on its own thread.
    pub fn start() -> FakeKube {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a loopback port for the fake API server");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener for tokio");
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 1,
                ..State::default()
            }),
            changed: watch::Sender::new(1),
            kick: watch::Sender::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let server = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-kube".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime for the fake API server");
                runtime.block_on(serve(listener, server, stopped));
            })
            .expect("a thread for the fake API server");
        FakeKube {
            shared,
            port,
            stop: Some(stop),
            thread: Some(thread),
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
    /// as kubectl checks it on NotFound. Fails on an unknown kind or a
    /// missing name.
    pub fn try_apply(&self, obj: Value) -> Result<Value, String> {
        let kind = obj.get("kind").and_then(Value::as_str);
        let kind = kind.ok_or("object without kind")?;
        let res = by_kind(kind).ok_or_else(|| format!("unsupported kind {kind:?}"))?;
        if !obj.get("metadata").is_some_and(Value::is_object) {
            return Err("object without metadata".into());
        }
        let name = str_at(&obj, "/metadata/name").ok_or("object without metadata.name")?;
        let name = name.to_owned();
        let namespace = match (res.namespaced, str_at(&obj, "/metadata/namespace")) {
            (false, _) => String::new(),
            (true, ns) => ns.unwrap_or("default").to_owned(),
        };
        let mut st = self.shared.lock();
        if res.namespaced
            && !st
                .objects
                .contains_key(&("Namespace", String::new(), namespace.clone()))
        {
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}, "status": {"phase": "Active"}});
            st.store("Namespace", String::new(), namespace.clone(), ns);
        }
        let stored = st.store(res.kind, namespace, name, obj);
        let rv = st.rv;
        drop(st);
        self.shared.changed.send_replace(rv);
        Ok(stored)
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
        let rv = {
            let mut st = self.shared.lock();
            let key = (res.kind, namespace.to_owned(), name.to_owned());
            let Some(mut object) = st.objects.remove(&key) else {
                return false;
            };
            st.rv += 1;
            let rv = st.rv;
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            let namespace = namespace.to_owned();
            st.changes.push(Change {
                rv,
                kind: res.kind,
                namespace,
                event: "DELETED",
                object,
            });
            rv
        };
        self.shared.changed.send_replace(rv);
        true
    }

    /// Sets the log of a container (`previous`: of its last terminated
    /// instance, as `kubectl logs --previous` asks).
    pub fn set_log(&self, namespace: &str, pod: &str, container: &str, previous: bool, text: &str) {
        let key = (namespace.into(), pod.into(), container.into(), previous);
        self.shared.lock().logs.insert(key, text.to_owned());
    }

    /// Applies every `*.json` file of `dir` (in name order): one object, or
    /// a kubectl `List` / typed `XxxList` whose items may lack `kind`. Each
    /// `logs/CONTAINER.log` becomes the previous log of that container of
    /// the pod in `dir/pod.json`. Returns the number of objects applied.
    pub fn load_dir(&self, dir: &Path) -> Result<usize, String> {
        let mut count = 0;
        for file in files_with_ext(dir, "json")? {
            let value = read_json(&file)?;
            for obj in list_items(value).map_err(|e| format!("{}: {e}", file.display()))? {
                self.try_apply(obj)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
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
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                let container = file.file_stem().unwrap_or_default().to_string_lossy();
                self.set_log(namespace, name, &container, true, &text);
            }
        }
        Ok(count)
    }

    /// Makes the next `count` list or watch requests fail with `fault`
    /// (queued after any faults still pending).
    pub fn fail_next(&self, fault: Fault, count: usize) {
        self.shared
            .lock()
            .faults
            .extend(std::iter::repeat_n(fault, count));
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
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == ext))
        .collect();
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
    let item_kind = (!list_kind.is_empty()).then(|| list_kind.to_owned());
    let api_version = value.get("apiVersion").cloned().unwrap_or(json!("v1"));
    let items = match value.get("items") {
        Some(Value::Array(items)) => items.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err("items is not an array".into()),
    };
    items
        .into_iter()
        .map(|mut item| {
            if item.get("kind").is_none() {
                let kind = item_kind.as_ref().ok_or("an item of a List has no kind")?;
                item["kind"] = json!(kind);
                item.as_object_mut()
                    .map(|o| o.entry("apiVersion").or_insert(api_version.clone()));
            }
            Ok(item)
        })
        .collect()
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

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
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
    let uri = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    shared.lock().requests.push(uri);
    if req.method() != Method::GET {
        let message = format!("the fake API server only serves GET, not {}", req.method());
        return Ok(status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            message,
        ));
    }
    let query = Query(
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
    );
    let accept = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let table = accept.contains("as=Table");
    let path = req.uri().path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    Ok(match segments.as_slice() {
        ["version"] => json_response(StatusCode::OK, &version_info()),
        ["api"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"]}),
        ),
        ["apis"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        ["api", "v1"] => json_response(StatusCode::OK, &resource_list()),
        ["api", "v1", rest @ ..] => return route_v1(&shared, rest, &query, table),
        _ => not_found_path(),
    })
}

fn route_v1(
    shared: &Arc<Shared>,
    rest: &[&str],
    query: &Query,
    table: bool,
) -> Result<Response<Body>, Dropped> {
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
        ["namespaces", ns, "pods", pod, "log"] => return Ok(pod_log(shared, ns, pod, query)),
        _ => (None, None, None),
    };
    let Some(res) = res else {
        return Ok(not_found_path());
    };
    if let Some(name) = name {
        return Ok(get_object(shared, res, namespace, name, table));
    }
    let filter = match Filter::new(res, namespace, query) {
        Ok(filter) => filter,
        Err(message) => return Ok(status(StatusCode::BAD_REQUEST, "BadRequest", message)),
    };
    let watching = query.flag("watch");
    let fault = shared.lock().faults.pop_front();
    let scope = namespace.map_or("at the cluster scope".into(), |ns| {
        format!("in the namespace {ns:?}")
    });
    let verb = if watching { "watch" } else { "list" };
    match fault {
        None => {}
        Some(Fault::Disconnect) => return Err(Dropped),
        Some(Fault::Forbidden) => {
            let message = format!(
                "{} is forbidden: User \"system:serviceaccount:gpuscope:fake\" cannot {verb} resource {:?} in API group \"\" {scope}",
                res.plural, res.plural
            );
            return Ok(status(StatusCode::FORBIDDEN, "Forbidden", message));
        }
        Some(Fault::ServerError) => {
            let message = "an error on the server (\"injected fault\") has prevented the request from succeeding";
            return Ok(status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                message.into(),
            ));
        }
        Some(Fault::Gone) if watching => {
            let (tx, rx) = mpsc::channel(1);
            let event = json!({"type": "ERROR", "object": status_json(410, "Expired", "too old resource version")});
            let _ = tx.try_send(line(&event));
            return Ok(stream_response(rx));
        }
        Some(Fault::Gone) => {
            let message =
                "The provided continue parameter is too old to display a consistent list result.";
            return Ok(status(StatusCode::GONE, "Expired", message.into()));
        }
    }
    if watching {
        return Ok(start_watch(shared, filter, query));
    }
    let st = shared.lock();
    let items = st
        .objects
        .iter()
        .filter(|(k, o)| filter.matches(k.0, &k.1, o))
        .map(|(_, o)| o);
    let items: Vec<Value> = items.cloned().collect();
    let rv = st.rv.to_string();
    drop(st);
    let body = if table {
        table_json(res, &items, &rv, query)
    } else {
        json!({
            "kind": format!("{}List", res.kind), "apiVersion": "v1",
            "metadata": {"resourceVersion": rv}, "items": items,
        })
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn get_object(
    shared: &Shared,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    table: bool,
) -> Response<Body> {
    let key = (res.kind, ns.unwrap_or("").to_owned(), name.to_owned());
    let st = shared.lock();
    match st.objects.get(&key) {
        Some(obj) if table => {
            let rv = st.rv.to_string();
            json_response(
                StatusCode::OK,
                &table_json(res, std::slice::from_ref(obj), &rv, &Query(Vec::new())),
            )
        }
        Some(obj) => json_response(StatusCode::OK, obj),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} {name:?} not found", res.plural),
        ),
    }
}

fn pod_log(shared: &Shared, ns: &str, pod: &str, query: &Query) -> Response<Body> {
    let previous = query.flag("previous");
    let st = shared.lock();
    let Some(pod_obj) = st.objects.get(&("Pod", ns.to_owned(), pod.to_owned())) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("pods {pod:?} not found"),
        );
    };
    let container = match query.get("container") {
        Some(c) => c.to_owned(),
        None => {
            let names: Vec<&str> = pod_obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
                .unwrap_or_default();
            match names.as_slice() {
                [only] => (*only).to_owned(),
                _ => {
                    let message = format!(
                        "a container name must be specified for pod {pod}, choose one of: {names:?}"
                    );
                    return status(StatusCode::BAD_REQUEST, "BadRequest", message);
                }
            }
        }
    };
    let key = (ns.to_owned(), pod.to_owned(), container.clone(), previous);
    let Some(text) = st.logs.get(&key) else {
        let message = if previous {
            format!("previous terminated container {container:?} in pod {pod:?} not found")
        } else {
            format!("container {container:?} in pod {pod:?} is not available")
        };
        return status(StatusCode::NOT_FOUND, "NotFound", message);
    };
    let text = match query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let mut tail = lines[lines.len().saturating_sub(n)..].join("\n");
            if !tail.is_empty() {
                tail.push('\n');
            }
            tail
        }
        None => text.clone(),
    };
    let mut resp = Response::new(Full::new(Bytes::from(text)).boxed());
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
    fields: Vec<(String, bool, String)>,
}

enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Filter {
    fn new(res: &Resource, namespace: Option<&str>, query: &Query) -> Result<Filter, String> {
        let labels = split_top_level(query.get("labelSelector").unwrap_or(""))
            .map(parse_label_req)
            .collect::<Result<_, _>>()?;
        let fields = split_top_level(query.get("fieldSelector").unwrap_or(""))
            .map(|term| {
                let (path, negate, value) = if let Some((p, v)) = term.split_once("!=") {
                    (p, true, v)
                } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('='))
                {
                    (p, false, v)
                } else {
                    return Err(format!("invalid field selector term {term:?}"));
                };
                Ok((path.trim().to_owned(), negate, value.trim().to_owned()))
            })
            .collect::<Result<_, String>>()?;
        Ok(Filter {
            kind: res.kind,
            namespace: namespace.map(str::to_owned),
            labels,
            fields,
        })
    }

    fn matches(&self, kind: &str, namespace: &str, obj: &Value) -> bool {
        if kind != self.kind || self.namespace.as_deref().is_some_and(|ns| ns != namespace) {
            return false;
        }
        let label = |key: &str| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
        };
        let labels_ok = self.labels.iter().all(|req| match req {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|(path, negate, want)| {
                let pointer = format!("/{}", path.replace('.', "/"));
                let have = match obj.pointer(&pointer) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                (have == *want) != *negate
            })
    }
}

/// Splits a selector at commas outside parentheses, dropping empty terms.
fn split_top_level(selector: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0i32;
    selector
        .split(move |c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            c == ',' && depth == 0
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn parse_label_req(term: &str) -> Result<LabelReq, String> {
    let set = |key: &str, values: &str| -> Result<(String, Vec<String>), String> {
        let values = values
            .trim()
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'));
        let values = values.ok_or_else(|| format!("invalid label selector term {term:?}"))?;
        Ok((
            key.trim().to_owned(),
            values.split(',').map(|v| v.trim().to_owned()).collect(),
        ))
    };
    let bad = || format!("invalid label selector term {term:?}");
    if let Some((k, vs)) = term.split_once(" notin ") {
        let (k, vs) = set(k, vs)?;
        Ok(LabelReq::NotIn(k, vs))
    } else if let Some((k, vs)) = term.split_once(" in ") {
        let (k, vs) = set(k, vs)?;
        Ok(LabelReq::In(k, vs))
    } else if let Some((k, v)) = term.split_once("!=") {
        Ok(LabelReq::NotEq(k.trim().to_owned(), v.trim().to_owned()))
    } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        Ok(LabelReq::Eq(k.trim().to_owned(), v.trim().to_owned()))
    } else if let Some(k) = term.strip_prefix('!') {
        Ok(LabelReq::NotExists(k.trim().to_owned()))
    } else if term.contains(char::is_whitespace) {
        Err(bad())
    } else {
        Ok(LabelReq::Exists(term.to_owned()))
    }
}

// ---------------------------------------------------------------- watch

fn start_watch(shared: &Arc<Shared>, filter: Filter, query: &Query) -> Response<Body> {
    let since = match query.get("resourceVersion") {
        None | Some("" | "0") => None,
        Some(rv) => rv.parse::<u64>().ok(),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let options = WatchOptions {
        since: if query.flag("sendInitialEvents") {
            None
        } else {
            since
        },
        initial_events_end: query.flag("sendInitialEvents"),
        bookmarks: query.flag("allowWatchBookmarks"),
        timeout,
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(stream_watch(Arc::clone(shared), filter, options, tx));
    stream_response(rx)
}

struct WatchOptions {
    /// Replay changes after this resourceVersion; `None`: ADDED for all.
    since: Option<u64>,
    /// Send the `k8s.io/initial-events-end` bookmark after the initial ADDED.
    initial_events_end: bool,
    bookmarks: bool,
    timeout: Duration,
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
    let (mut cursor, initial) = {
        let st = shared.lock();
        match opts.since {
            Some(rv) => (rv, Vec::new()),
            None => {
                let mut objects: Vec<&Value> = st
                    .objects
                    .iter()
                    .filter(|(k, o)| filter.matches(k.0, &k.1, o))
                    .map(|(_, o)| o)
                    .collect();
                objects.sort_by_key(|o| {
                    str_at(o, "/metadata/resourceVersion").and_then(|rv| rv.parse::<u64>().ok())
                });
                let events = objects
                    .into_iter()
                    .map(|o| json!({"type": "ADDED", "object": o}))
                    .collect();
                (st.rv, events)
            }
        }
    };
    let mut events: Vec<Value> = initial;
    if opts.initial_events_end {
        events.push(bookmark(filter.kind, cursor, true));
    }
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + BOOKMARK_PERIOD,
        BOOKMARK_PERIOD,
    );
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
            woke = changed.changed() => if woke.is_err() { return },
            _ = kick.changed() => return,
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
    json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": "v1", "metadata": metadata}})
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

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    })
}

/// A metav1 Status response.
fn status(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    json_response(code, &status_json(code.as_u16(), reason, &message))
}

fn not_found_path() -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource".into(),
    )
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
    let mut resources: Vec<Value> = RESOURCES
        .iter()
        .map(|r| {
            json!({
                "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "list", "watch"], "shortNames": r.short_names,
            })
        })
        .collect();
    resources.push(json!({
        "name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"],
    }));
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": resources})
}

/// A `meta.k8s.io/v1` Table, as `kubectl get` asks for in its Accept header.
fn table_json(res: &Resource, items: &[Value], rv: &str, query: &Query) -> Value {
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
    let mut definitions = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}),
    ];
    definitions.extend(columns.iter().map(|(name, _)| json!({"name": name, "type": "string", "format": "", "description": "", "priority": 0})));
    let full = query.get("includeObject") == Some("Object");
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut cells = vec![obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            cells.extend(columns.iter().map(|(_, p)| json!(str_at(obj, p).unwrap_or("<none>"))));
            let object = if full {
                obj.clone()
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
        "columnDefinitions": definitions, "rows": rows,
    })
}
