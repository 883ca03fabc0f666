//! The Kubernetes side: watchers that keep Pods, Nodes, core v1 Events,
//! PersistentVolumeClaims and the GPU device-plugin pods in memory, the
//! health of each watcher, and (optionally) previous-container log tails.
//!
//! Each watcher is `kube::runtime::watcher` feeding a store of compact
//! projections ([`project`], [`store::Projections`], applied in place: a
//! relist never holds two copies; each object decoded from the API
//! server's JSON straight into the fields its projection keeps,
//! [`watched`]) or, for Events, the bounded
//! [`events::EventStore`]. A watcher first asks for a streaming list
//! (`sendInitialEvents=true` with bookmarks: the API server sends the
//! current objects as watch events, with no list response to hold in
//! memory at once) and, when the API server refuses it (one without the
//! WatchList feature answers 400/422 Invalid), pages its lists with
//! `limit`/`continue` (500 objects a page, kube-runtime's default) from
//! then on. When a watcher fails
//! (410 Gone, 403 Forbidden, a dropped connection, a server error) its
//! store keeps what it had, the failure is recorded in [`Health`], and the
//! watch is started over with a fresh list after the kube-runtime default
//! backoff (0.8 s doubling to 30 s, with jitter). Starting over with a list,
//! as client-go's reflector does after a failed watch, is what lets the
//! health say precisely when the data is current again: a complete list
//! marks the watcher ready, and every response said which data was stale
//! until then ([`Kube::gaps`]). The pod watchers also keep the last state
//! of each pod they see deleted, for an hour ([`Departed`]). With
//! [`KubeConfig::publish_events`], findings are also published as Events
//! on their pods ([`publish`]).

pub mod departed;
pub mod events;
pub mod health;
pub mod join;
pub mod project;
pub mod publish;
pub mod store;
pub mod watched;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, LogParams};
use ::kube::runtime::watcher::{self, DefaultBackoff};
use gpuscope_diagnose::Gap;
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

pub use departed::Departed;
pub use events::{EventLimits, EventStore};
pub use health::{Health, WatchState, WatcherHealth};
pub use join::Selector;
pub use project::{EventView, NodeView, PodView, Projection, PvcView};
pub use store::{Mark, Projections};
pub use watched::Watched;

use crate::sync::lock;

/// Label selectors of the NVIDIA device-plugin pods in common installs:
/// the GPU operator's, the upstream DaemonSet manifest's, and the Helm
/// chart's.
pub const DEFAULT_DEVICE_PLUGIN_SELECTORS: &[&str] = &[
    "app.kubernetes.io/name=nvidia-device-plugin",
    "name=nvidia-device-plugin-ds",
    "app=nvidia-device-plugin-daemonset",
];

/// Why the Kubernetes side could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// Neither in-cluster credentials nor a kubeconfig were found.
    #[error(
        "no Kubernetes configuration found: run in a pod with a service account, set KUBECONFIG, \
         pass --kube-server URL, or pass --no-kube to run without Kubernetes"
    )]
    NoConfig(#[source] ::kube::config::InferConfigError),
    /// `--kube-server` is not a URL.
    #[error("--kube-server {url:?} is not a URL: {source}")]
    BadServer {
        /// What was given.
        url: String,
        /// Why.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The client could not be built from the configuration.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] ::kube::Error),
    /// A device-plugin label selector is not one this build can match.
    #[error("--device-plugin-selector: {0}")]
    Selector(String),
    /// The watchers' runtime could not be started.
    #[error("cannot start the Kubernetes watchers' thread: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What to watch, and how.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    /// The API server's URL, without credentials (`http://127.0.0.1:8001`
    /// for `kubectl proxy`, a fake API server in tests). `None`: in-cluster
    /// configuration, else the kubeconfig (`kube::Config::infer`).
    pub server: Option<String>,
    /// Watch only these namespaces' pods, events and PVCs; empty: all.
    pub namespaces: Vec<String>,
    /// Label selectors of the GPU device-plugin pods (any matches).
    pub device_plugin_selectors: Vec<String>,
    /// Fetch the log tail of containers that ended abnormally on Explain
    /// and GetBundle.
    pub fetch_logs: bool,
    /// How many events are kept.
    pub events: EventLimits,
    /// How long one log fetch may take.
    pub log_timeout: Duration,
    /// Publish each recorded finding about a pod as a Kubernetes Event on
    /// it ([`publish`]); needs `create` and `patch` on `events.k8s.io`
    /// events.
    pub publish_events: bool,
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self {
            server: None,
            namespaces: Vec::new(),
            device_plugin_selectors: DEFAULT_DEVICE_PLUGIN_SELECTORS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            fetch_logs: false,
            events: EventLimits::default(),
            log_timeout: Duration::from_secs(5),
            publish_events: false,
        }
    }
}

/// Lines of a log tail fetched.
pub const LOG_TAIL_LINES: i64 = 200;
/// Bytes of a log tail fetched, at most.
pub const LOG_TAIL_BYTES: i64 = 256 * 1024;

/// The running watchers and their stores.
pub struct Kube {
    client: Client,
    fetch_logs: bool,
    log_timeout: Duration,
    namespaces: Vec<String>,
    selectors: Vec<Selector>,
    pods: Vec<Arc<Projections<PodView>>>,
    departed: Arc<Mutex<Departed>>,
    nodes: Arc<Projections<NodeView>>,
    pvcs: Vec<Arc<Projections<PvcView>>>,
    events: Vec<Arc<Mutex<EventStore>>>,
    health: Health,
    tasks: Vec<JoinHandle<()>>,
    /// The watchers' own runtime ([`Kube::start`]).
    runtime: Option<tokio::runtime::Runtime>,
    publisher: Option<publish::Publisher>,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("namespaces", &self.namespaces)
            .field("selectors", &self.selectors)
            .field("fetch_logs", &self.fetch_logs)
            .field("health", &self.health.snapshot())
            .finish_non_exhaustive()
    }
}

impl Drop for Kube {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Kube {
    /// A client for `config.server`, or from the in-cluster configuration
    /// or kubeconfig.
    pub async fn client(config: &KubeConfig) -> Result<Client, KubeError> {
        let cfg = match &config.server {
            Some(url) => {
                let uri: http::Uri = url.parse().map_err(|source| KubeError::BadServer {
                    url: url.clone(),
                    source,
                })?;
                ::kube::Config::new(uri)
            }
            None => ::kube::Config::infer().await.map_err(KubeError::NoConfig)?,
        };
        tracing::info!(server = %cfg.cluster_url, "Kubernetes API server.");
        Client::try_from(cfg).map_err(KubeError::Client)
    }

    /// Starts every watcher, on a runtime of their own: one thread
    /// (`kube`) that decodes and applies the watch events, the first lists
    /// of a large cluster included (hundreds of thousands of objects), so
    /// that this work neither waits behind the agents' streams on the
    /// ingest runtime's workers nor holds them up. The client's own
    /// connections run where they are made.
    pub fn start(client: Client, config: &KubeConfig) -> Result<Self, KubeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kube")
            .enable_all()
            .build()
            .map_err(KubeError::Runtime)?;
        let rt = runtime.handle();
        let selectors = config
            .device_plugin_selectors
            .iter()
            .map(|s| s.parse::<Selector>().map_err(KubeError::Selector))
            .collect::<Result<Vec<_>, _>>()?;
        let health = Health::default();
        let mut tasks = Vec::new();
        let mut pods = Vec::new();
        let mut pvcs = Vec::new();
        let mut events = Vec::new();
        let all = config.namespaces.is_empty();

        let nodes = Arc::new(Projections::default());
        tasks.push(spawn_watch(
            rt,
            Api::<Watched<Node>>::all(client.clone()),
            watcher::Config::default(),
            "nodes".into(),
            "node",
            &health,
            projecting(
                nodes.clone(),
                |n: &Watched<Node>| NodeView::of_pruned(n.body()),
                |_| {},
            ),
        ));

        // (watcher name suffix, Api) per namespace, or one for all.
        let scopes: Vec<(String, Option<String>)> = if all {
            vec![(String::new(), None)]
        } else {
            config
                .namespaces
                .iter()
                .map(|ns| (format!(" in {ns}"), Some(ns.clone())))
                .collect()
        };
        let departed = Arc::new(Mutex::new(Departed::default()));
        let shared_selectors = Arc::new(selectors.clone());
        for (suffix, ns) in &scopes {
            let store = Arc::new(Projections::default());
            let gone = departed.clone();
            let sel = shared_selectors.clone();
            tasks.push(spawn_watch(
                rt,
                scoped::<Watched<Pod>>(&client, ns.as_deref()),
                watcher::Config::default(),
                format!("pods{suffix}"),
                "pods",
                &health,
                projecting(
                    store.clone(),
                    move |p: &Watched<Pod>| PodView::of_pruned(p.body(), &sel),
                    move |p| lock(&gone).push(p),
                ),
            ));
            pods.push(store);
            let store = Arc::new(Projections::default());
            tasks.push(spawn_watch(
                rt,
                scoped::<Watched<PersistentVolumeClaim>>(&client, ns.as_deref()),
                watcher::Config::default(),
                format!("pvcs{suffix}"),
                "pvcs",
                &health,
                projecting(
                    store.clone(),
                    |c: &Watched<PersistentVolumeClaim>| PvcView::of_pruned(c.body()),
                    |_| {},
                ),
            ));
            pvcs.push(store);
        }
        // Node events are recorded in `default`: watch it too.
        let mut event_scopes = scopes.clone();
        if !all && !config.namespaces.iter().any(|n| n == "default") {
            event_scopes.push((" in default".into(), Some("default".into())));
        }
        for (suffix, ns) in event_scopes {
            let api = scoped::<Event>(&client, ns.as_deref());
            let store = Arc::new(Mutex::new(EventStore::new(config.events)));
            let sink = store.clone();
            tasks.push(spawn_watch(
                rt,
                api,
                watcher::Config::default(),
                format!("events{suffix}"),
                "events",
                &health,
                move |ev| lock(&sink).apply(ev),
            ));
            events.push(store);
        }
        // Watching all namespaces, the pod store already has the device
        // plugin; otherwise it lives in a namespace of its own.
        if !all {
            for sel in &selectors {
                let store = Arc::new(Projections::default());
                let all_selectors = shared_selectors.clone();
                tasks.push(spawn_watch(
                    rt,
                    Api::<Watched<Pod>>::all(client.clone()),
                    watcher::Config::default().labels(sel.as_str()),
                    format!("device-plugin pods {sel}"),
                    "pods",
                    &health,
                    projecting(
                        store.clone(),
                        move |p: &Watched<Pod>| PodView::of_pruned(p.body(), &all_selectors),
                        |_| {},
                    ),
                ));
                pods.push(store);
            }
        }
        let publisher = config
            .publish_events
            .then(|| publish::Publisher::new(client.clone()));
        Ok(Self {
            publisher,
            client,
            fetch_logs: config.fetch_logs,
            log_timeout: config.log_timeout,
            namespaces: config.namespaces.clone(),
            selectors,
            pods,
            departed,
            nodes,
            pvcs,
            events,
            health,
            tasks,
            runtime: Some(runtime),
        })
    }

    /// The Event publisher, when findings are published as Events.
    pub fn publisher(&self) -> Option<&publish::Publisher> {
        self.publisher.as_ref()
    }

    /// Every pod known, as projected (each once, also when two watchers
    /// see it); [`PodView::pod`] rebuilds one.
    pub fn pods(&self) -> Vec<Arc<PodView>> {
        self.pods_from(Projections::state)
    }

    /// What `select` picks from each pod store, each pod once: with one
    /// store (every namespace watched) as it comes; with several (one per
    /// namespace, and the device-plugin watchers, which can see a pod of a
    /// watched namespace again) without the second sighting.
    fn pods_from(
        &self,
        select: impl Fn(&Projections<PodView>) -> Vec<Arc<PodView>>,
    ) -> Vec<Arc<PodView>> {
        match self.pods.as_slice() {
            [one] => select(one),
            many => {
                let mut seen = std::collections::HashSet::new();
                many.iter()
                    .flat_map(|s| select(s))
                    .filter(|p| seen.insert(p.pod_name()))
                    .collect()
            }
        }
    }

    /// Calls `f` on every pod known, as projected, each once, under the
    /// stores' read locks (no vector of every pod; keep `f` short). A walk
    /// of the whole cluster: a question about one pod or node asks the
    /// indexes instead ([`PodIndex`]).
    pub fn for_each_pod(&self, mut f: impl FnMut(&Arc<PodView>)) {
        match self.pods.as_slice() {
            [one] => one.for_each(f),
            many => {
                let mut seen = std::collections::HashSet::new();
                for s in many {
                    s.for_each(|p| {
                        if seen.insert(p.pod_name()) {
                            f(p);
                        }
                    });
                }
            }
        }
    }

    /// A pod by namespace and name.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<PodView>> {
        self.pods.iter().find_map(|s| s.get(namespace, name))
    }

    /// The namespaces that have pods.
    pub fn pod_namespaces(&self) -> std::collections::BTreeSet<String> {
        self.pods.iter().flat_map(|s| s.namespaces()).collect()
    }

    /// The most recently deleted pod matching `pred`, as its deletion
    /// showed it (kept an hour, at most 2,000: [`Departed`]).
    pub fn departed(&self, pred: impl FnMut(&PodView) -> bool) -> Option<Arc<PodView>> {
        lock(&self.departed).find(pred)
    }

    /// Every node known, as projected.
    pub fn nodes(&self) -> Vec<Arc<NodeView>> {
        self.nodes.state()
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<Arc<NodeView>> {
        self.nodes.get("", name)
    }

    /// Every PVC known, as projected.
    pub fn pvcs(&self) -> Vec<Arc<PvcView>> {
        self.pvcs.iter().flat_map(|s| s.state()).collect()
    }

    /// A PVC by namespace and name.
    pub fn pvc(&self, namespace: &str, name: &str) -> Option<Arc<PvcView>> {
        self.pvcs.iter().find_map(|s| s.get(namespace, name))
    }

    /// Kept events about these involved objects, each (kind, namespace
    /// as the event names it: empty for cluster-scoped objects, name),
    /// rebuilt; oldest first per object.
    pub fn events_about(&self, objects: &[(&str, &str, &str)]) -> Vec<Event> {
        let views: Vec<_> = self
            .events
            .iter()
            .flat_map(|s| {
                let s = lock(s);
                objects
                    .iter()
                    .flat_map(|(kind, ns, name)| s.about(kind, ns, name))
                    .collect::<Vec<_>>()
            })
            .collect();
        views.iter().filter_map(|e| e.rebuilt()).collect()
    }

    /// Kept events whose involved object's kind and namespace (empty where
    /// the event names none) pass `pred`, rebuilt.
    pub fn events_where(&self, mut pred: impl FnMut(&str, &str) -> bool) -> Vec<Event> {
        let views: Vec<_> = self
            .events
            .iter()
            .flat_map(|s| lock(s).select(&mut pred))
            .collect();
        views.iter().filter_map(|e| e.rebuilt()).collect()
    }

    /// Whether a pod object is a GPU device-plugin pod (a projected one
    /// says it: [`PodView::is_device_plugin`]).
    pub fn is_device_plugin(&self, p: &Pod) -> bool {
        self.selectors.iter().any(|s| s.matches(p))
    }

    /// Whether a namespace is watched.
    pub fn watches(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }

    /// The watchers' health.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Which Kubernetes data is missing or stale now.
    pub fn gaps(&self) -> Vec<Gap> {
        self.health.gaps()
    }

    /// Whether log tails are fetched.
    pub fn fetch_logs(&self) -> bool {
        self.fetch_logs
    }

    /// The last [`LOG_TAIL_LINES`] lines of a container's log (`previous`:
    /// of its terminated previous instance). The error is a sentence.
    pub async fn log_tail(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<String, String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = LogParams {
            container: Some(container.to_owned()),
            previous,
            tail_lines: Some(LOG_TAIL_LINES),
            limit_bytes: Some(LOG_TAIL_BYTES),
            ..LogParams::default()
        };
        match tokio::time::timeout(self.log_timeout, api.logs(pod, &params)).await {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.log_timeout)),
        }
    }
}

/// The pod lookups the queries make instead of walking every pod, each
/// answered by the stores' indexes ([`store`]): by the whole Kubernetes
/// side ([`Kube`]: every pod store, each pod once) or by one store.
pub trait PodIndex {
    /// A pod by UID.
    fn pod_by_uid(&self, uid: &str) -> Option<Arc<PodView>>;
    /// The pods bound to `node`, each once.
    fn pods_on(&self, node: &str) -> Vec<Arc<PodView>>;
    /// The pods with `mark` (GPU-requesting, device-plugin), each once.
    fn marked_pods(&self, mark: Mark) -> Vec<Arc<PodView>>;
    /// One pod with `mark` for which `pred` holds (tried under a store's
    /// read lock; keep `pred` short).
    fn find_marked_pod(
        &self,
        mark: Mark,
        pred: impl FnMut(&PodView) -> bool,
    ) -> Option<Arc<PodView>>;
}

impl PodIndex for Projections<PodView> {
    fn pod_by_uid(&self, uid: &str) -> Option<Arc<PodView>> {
        self.by_uid(uid)
    }
    fn pods_on(&self, node: &str) -> Vec<Arc<PodView>> {
        self.on_node(node)
    }
    fn marked_pods(&self, mark: Mark) -> Vec<Arc<PodView>> {
        self.marked(mark)
    }
    fn find_marked_pod(
        &self,
        mark: Mark,
        pred: impl FnMut(&PodView) -> bool,
    ) -> Option<Arc<PodView>> {
        self.find_marked(mark, pred)
    }
}

impl PodIndex for Kube {
    fn pod_by_uid(&self, uid: &str) -> Option<Arc<PodView>> {
        self.pods.iter().find_map(|s| s.by_uid(uid))
    }
    fn pods_on(&self, node: &str) -> Vec<Arc<PodView>> {
        self.pods_from(|s| s.on_node(node))
    }
    fn marked_pods(&self, mark: Mark) -> Vec<Arc<PodView>> {
        self.pods_from(|s| s.marked(mark))
    }
    fn find_marked_pod(
        &self,
        mark: Mark,
        mut pred: impl FnMut(&PodView) -> bool,
    ) -> Option<Arc<PodView>> {
        self.pods
            .iter()
            .find_map(|s| s.find_marked(mark, &mut pred))
    }
}

/// The API of one namespace, or of all.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: ::kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watcher's sink that keeps projections in `store`, applying a
/// (re)list in place ([`Projections`]); `gone` gets each object deleted,
/// and each object a relist no longer names (deleted while the watch was
/// down), as last kept.
fn projecting<K, V>(
    store: Arc<Projections<V>>,
    project: impl Fn(&K) -> V + Send + 'static,
    mut gone: impl FnMut(Arc<V>) + Send + 'static,
) -> impl FnMut(watcher::Event<K>) + Send + 'static
where
    V: Projection,
{
    move |ev| match ev {
        watcher::Event::Init => store.begin(),
        watcher::Event::InitApply(o) | watcher::Event::Apply(o) => store.put(project(&o)),
        watcher::Event::Delete(o) => {
            let v = project(&o);
            store.remove(v.namespace(), v.name());
            gone(Arc::new(v));
        }
        watcher::Event::InitDone => store.finish().into_iter().for_each(&mut gone),
    }
}

/// Whether the API server refused a streaming list (`sendInitialEvents`):
/// one without the WatchList feature answers the watch with 400 Bad
/// Request or 422 Invalid (`sendInitialEvents is forbidden for watch
/// unless the WatchList feature gate is enabled`; older ones refuse the
/// `resourceVersionMatch` the request carries).
fn refuses_streaming(e: &watcher::Error) -> bool {
    let code = match e {
        watcher::Error::WatchStartFailed(::kube::Error::Api(s)) => s.code,
        watcher::Error::WatchError(s) => s.code,
        _ => return false,
    };
    matches!(code, 400 | 422)
}

/// Runs one watcher forever: every event goes to `sink`; a
/// complete list marks it ready; an error marks it failed and, after the
/// default backoff, starts it over with a fresh list. The list is a
/// streaming one until the API server refuses it, then paged.
fn spawn_watch<K, F>(
    rt: &tokio::runtime::Handle,
    api: Api<K>,
    config: watcher::Config,
    name: String,
    what: &'static str,
    health: &Health,
    mut sink: F,
) -> JoinHandle<()>
where
    K: ::kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: FnMut(watcher::Event<K>) + Send + 'static,
{
    let health = health.clone();
    health.register(&name, what);
    rt.spawn(async move {
        let mut backoff = DefaultBackoff::default();
        let mut streaming = true;
        loop {
            let wc = if streaming {
                config.clone().streaming_lists()
            } else {
                config.clone()
            };
            let stream = watcher::watcher(api.clone(), wc);
            let mut stream = std::pin::pin!(stream);
            let mut listed = false;
            let error = loop {
                match stream.next().await {
                    Some(Ok(ev)) => {
                        let done = matches!(ev, watcher::Event::InitDone);
                        sink(ev);
                        if done {
                            listed = true;
                            health.ready(&name);
                        }
                    }
                    Some(Err(e)) if streaming && !listed && refuses_streaming(&e) => {
                        tracing::info!(watcher = %name, error = %error_text(&e), "The API server refuses streaming lists; paging lists instead.");
                        streaming = false;
                        break None;
                    }
                    Some(Err(e)) => break Some(error_text(&e)),
                    None => break Some("watch stream ended".to_owned()),
                }
            };
            let Some(error) = error else { continue };
            health.failed(&name, error);
            let delay = backoff.next().unwrap_or(Duration::from_secs(30));
            tokio::time::sleep(delay).await;
        }
    })
}

/// The error and its causes, on one line.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}
