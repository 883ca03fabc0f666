//! The query service (`gpuscope.v1.Query`): live state from [`State`],
//! incidents from the [`Store`], new incidents from the ingest broadcast,
//! and the diagnosis engine's findings over evidence from the
//! [`Assembler`].
//!
//! With an [`Authorizer`] every call is authenticated and each answer holds
//! only what its caller may read ([`crate::auth`], [`crate::redact`]).

use std::pin::Pin;
use std::sync::Arc;

use crate::kube::{Kube, PodIndex as _, Projection};
use gpuscope_diagnose::bundle::Bundle;
use gpuscope_proto::v1 as pb;
use gpuscope_proto::v1::{
    BundleFile, ContainerInfo, ContainerRef, DiagnoseRequest, DiagnoseResponse, ExplainRequest,
    ExplainResponse, GetBundleRequest, GetBundleResponse, GetSeriesRequest, GetSeriesResponse,
    Incident, IncidentFilter, ListContainersRequest, ListContainersResponse, ListGpusRequest,
    ListGpusResponse, ListIncidentsRequest, ListIncidentsResponse, ListNodesRequest,
    ListNodesResponse, RecordedDiagnosis, WatchIncidentsRequest, WatchIncidentsResponse,
    WatchLagged, get_series_request::Target, query_server::Query, watch_incidents_response,
};
use tokio::sync::{broadcast, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::auth::{Access, Authorizer, Gate, Namespaces};
use crate::evidence::{Assembler, Target as PodTarget};
use crate::redact;
use crate::state::{Series, SeriesTarget, State};
use crate::store::{DiagnosedPod, Store, matches};

/// ListIncidents' limit when the request sets none.
pub const DEFAULT_LIMIT: usize = 1000;
/// The most incidents one ListIncidents answer holds.
pub const MAX_INCIDENTS: usize = 10_000;
/// The most nodes one ListNodes answer holds (`truncated` beyond).
pub const MAX_NODES: usize = 50_000;
/// The most GPUs or containers one ListGpus or ListContainers answer
/// holds; more come in pages.
pub const MAX_PAGE: usize = 5_000;
/// The most findings one Diagnose answer holds (the most costly first;
/// a gap says how many were left out).
pub const MAX_FINDINGS: usize = 10_000;

/// The Query service.
#[derive(Debug, Clone)]
pub struct QueryService {
    store: Arc<Store>,
    state: Arc<State>,
    incidents: broadcast::Sender<Arc<Incident>>,
    shutdown: watch::Receiver<bool>,
    diagnosis: Option<Diagnosis>,
    auth: Option<Arc<Authorizer>>,
    limiter: Arc<crate::limits::QueryLimiter>,
}

/// What Explain, Diagnose and GetBundle need.
#[derive(Debug, Clone)]
pub(crate) struct Diagnosis {
    pub(crate) assembler: Arc<Assembler>,
    config: Arc<gpuscope_diagnose::Config>,
}

impl Diagnosis {
    pub(crate) fn new(assembler: Arc<Assembler>, config: Arc<gpuscope_diagnose::Config>) -> Self {
        Self { assembler, config }
    }

    /// The findings about one pod, with the evidence they were made from.
    pub(crate) async fn explain(
        &self,
        target: &PodTarget,
    ) -> crate::error::Result<(Vec<gpuscope_diagnose::Finding>, gpuscope_diagnose::Evidence)> {
        let ev = self.assembler.explain(target).await?;
        Ok(self.judge(target, ev))
    }

    /// The findings about one pod from its evidence `ev`, and `ev` with
    /// what the rules could not judge added to its gaps.
    fn judge(
        &self,
        target: &PodTarget,
        mut ev: gpuscope_diagnose::Evidence,
    ) -> (Vec<gpuscope_diagnose::Finding>, gpuscope_diagnose::Evidence) {
        let findings = if target.pod.is_some() {
            // What the rules could not judge is said beside the evidence's
            // own gaps.
            let judged = gpuscope_diagnose::rule_gaps(&ev, &self.config, Some(&target.key));
            let findings = gpuscope_diagnose::explain(&ev, &self.config, &target.key);
            ev.gaps.extend(judged);
            findings
        } else {
            // Without the pod object (--no-kube, or a pod Kubernetes no
            // longer has), the agent records are this pod's containers and
            // its nodes' GPUs and incidents: every finding bears on it,
            // except those naming another pod.
            let uid = target.uid.as_deref();
            gpuscope_diagnose::diagnose(&ev, &self.config)
                .into_iter()
                .filter(|f| {
                    f.subject
                        .pod
                        .as_deref()
                        .is_none_or(|p| p == target.key.name || Some(p) == uid)
                })
                .collect()
        };
        (findings, ev)
    }
}

impl QueryService {
    /// A query service over `store` and `state`, watching `incidents`.
    pub fn new(
        store: Arc<Store>,
        state: Arc<State>,
        incidents: broadcast::Sender<Arc<Incident>>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            state,
            incidents,
            shutdown,
            diagnosis: None,
            auth: None,
            limiter: Arc::new(crate::limits::QueryLimiter::new(
                crate::limits::Limits::default(),
            )),
        }
    }

    /// Limits each caller's queries to `limits`.
    pub fn with_limits(mut self, limits: crate::limits::Limits) -> Self {
        self.limiter = Arc::new(crate::limits::QueryLimiter::new(limits));
        self
    }

    /// Authenticates the caller of `request` and admits the call under its
    /// limits: what it may see, and its place among its calls in progress.
    async fn admit<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(Gate, tokio::sync::OwnedSemaphorePermit), Status> {
        let gate = self.gate(request).await?;
        let caller = match &gate {
            Gate::Checked { caller, .. } => caller.user.clone(),
            Gate::Open => request
                .remote_addr()
                .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string()),
        };
        let permit = self.limiter.admit(&caller)?;
        Ok((gate, permit))
    }

    /// Authenticates every call with `auth` and answers each only with
    /// what its caller may read.
    pub fn with_auth(mut self, auth: Arc<Authorizer>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// What the caller of `request` may see.
    async fn gate<T>(&self, request: &Request<T>) -> Result<Gate, Status> {
        match &self.auth {
            None => Ok(Gate::Open),
            Some(auth) => {
                let caller = auth.authenticate_request(request, "").await?;
                Ok(Gate::Checked {
                    auth: auth.clone(),
                    caller,
                })
            }
        }
    }

    /// The namespaces of the pods Kubernetes has, readable or not by the
    /// caller.
    async fn readable_pods(&self, gate: &Gate) -> Result<Namespaces, Status> {
        let namespaces = self.kube().map(|k| k.pod_namespaces()).unwrap_or_default();
        gate.namespaces(namespaces).await
    }

    /// Serves Explain, Diagnose and GetBundle with evidence from
    /// `assembler` and the rules' thresholds `config` (without it they
    /// answer UNIMPLEMENTED).
    pub fn with_diagnosis(
        mut self,
        assembler: Arc<Assembler>,
        config: Arc<gpuscope_diagnose::Config>,
    ) -> Self {
        self.diagnosis = Some(Diagnosis::new(assembler, config));
        self
    }

    /// The Kubernetes side, when the aggregator watches it.
    fn kube(&self) -> Option<&Arc<crate::kube::Kube>> {
        self.diagnosis.as_ref().and_then(|d| d.assembler.kube())
    }

    fn diagnosis(&self) -> Result<&Diagnosis, Status> {
        self.diagnosis
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this query service has no diagnosis"))
    }

    /// The pod a request names, or NOT_FOUND.
    async fn target(&self, namespace: &str, pod: &str) -> Result<(&Diagnosis, PodTarget), Status> {
        let d = self.diagnosis()?;
        if pod.is_empty() {
            return Err(Status::invalid_argument("name a pod"));
        }
        let target = d
            .assembler
            .resolve(namespace, pod)
            .await
            .map_err(internal)?;
        let Some(target) = target else {
            let ns = if namespace.is_empty() {
                "default"
            } else {
                namespace
            };
            let hint = match d.assembler.kube() {
                Some(kube) => {
                    let gaps = kube.gaps();
                    if gaps.is_empty() {
                        String::new()
                    } else {
                        let why: Vec<_> = gaps.iter().map(|g| g.why.as_str()).collect();
                        format!(" (Kubernetes data is incomplete: {})", why.join("; "))
                    }
                }
                None => " (the aggregator runs with --no-kube: name the pod by its UID)".to_owned(),
            };
            return Err(Status::not_found(format!(
                "pod {ns}/{pod} is not known to Kubernetes or to any agent{hint}"
            )));
        };
        Ok((d, target))
    }
}

impl QueryService {
    /// The pod a request names, when the caller may get pods in its
    /// namespace (asked before the pod is looked up, so that a denial says
    /// nothing of whether it exists).
    async fn authorized_target(
        &self,
        gate: &Gate,
        namespace: &str,
        pod: &str,
    ) -> Result<(&Diagnosis, PodTarget), Status> {
        let asked = if namespace.is_empty() {
            "default"
        } else {
            namespace
        };
        let by_uid = looks_like_uid(pod);
        if !by_uid {
            gate.require(&Access::pods(asked)).await?;
        }
        let (d, target) = self.target(namespace, pod).await?;
        if target.pod.is_some() && (by_uid || target.key.namespace != asked) {
            // Named by UID: its own namespace decides.
            gate.require(&Access::pods(&target.key.namespace)).await?;
        } else if by_uid {
            // Kubernetes no longer knows the pod, so neither its namespace:
            // only who may read every namespace.
            gate.require(&Access::pods("")).await?;
        }
        Ok((d, target))
    }
}

impl Diagnosis {
    /// [`Diagnosis::explain`] with only what `gate` may read in the
    /// evidence, and without log tails unless `logs`.
    async fn explain_as(
        &self,
        target: &PodTarget,
        gate: &Gate,
        logs: bool,
    ) -> Result<(Vec<gpuscope_diagnose::Finding>, gpuscope_diagnose::Evidence), Status> {
        let mut ev = self.assembler.explain(target).await.map_err(internal)?;
        let ns = gate.namespaces(redact::evidence_namespaces(&ev)).await?;
        redact::evidence(&mut ev, &ns);
        if !logs {
            redact::logs(&mut ev, &target.key.namespace);
        }
        Ok(self.judge(target, ev))
    }
}

/// Whether `pod` is a UID (8-4-4-4-12 hex digits) rather than a name.
fn looks_like_uid(pod: &str) -> bool {
    let groups: Vec<&str> = pod.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The incidents the caller may read: OOM kills of pods in namespaces it
/// may get pods in, node-wide ones (XIDs, lost GPUs, unnamed kills) when it
/// may list nodes, GPU holders of other namespaces renamed.
async fn visible(gate: &Gate, mut incidents: Vec<Incident>) -> Result<Vec<Incident>, Status> {
    if let Gate::Open = gate {
        return Ok(incidents);
    }
    let nodes = gate.may(&Access::nodes()).await?;
    let mut named: std::collections::BTreeSet<String> =
        incidents.iter().map(|i| i.pod_namespace.clone()).collect();
    for i in &incidents {
        let e = i.event.as_ref().and_then(|e| e.kind.as_ref());
        if let Some(
            pb::node_event::Kind::Xid(pb::Xid { holders, .. })
            | pb::node_event::Kind::GpuLost(pb::GpuLost { holders, .. }),
        ) = e
        {
            named.extend(holders.iter().map(|h| h.namespace.clone()));
        }
    }
    let ns = gate.namespaces(named).await?;
    incidents.retain(|i| match i.pod_namespace.as_str() {
        "" => nodes,
        namespace => ns.contains(namespace),
    });
    for i in &mut incidents {
        if let Some(h) = redact::incident_holders(i) {
            redact::holders(h, &ns);
        }
    }
    Ok(incidents)
}

/// One page of `items` (sorted by `key`): those after `token`, at most
/// `limit` (0: [`MAX_PAGE`], and never more), and the token of the next
/// page (empty: none).
fn page<T>(items: Vec<T>, key: impl Fn(&T) -> String, limit: u32, token: &str) -> (Vec<T>, String) {
    let limit = match limit as usize {
        0 => MAX_PAGE,
        n => n.min(MAX_PAGE),
    };
    let mut out: Vec<T> = items
        .into_iter()
        .filter(|i| token.is_empty() || key(i).as_str() > token)
        .take(limit + 1)
        .collect();
    let next = if out.len() > limit {
        out.truncate(limit);
        out.last().map(&key).unwrap_or_default()
    } else {
        String::new()
    };
    (out, next)
}

/// Whether a finding about `s` may be shown: a pod's in a readable
/// namespace, a node's or GPU's to who may list nodes.
fn readable_subject(s: &gpuscope_diagnose::Subject, ns: &Namespaces, nodes: bool) -> bool {
    match s.namespace.as_deref() {
        Some(namespace) => ns.contains(namespace),
        None => nodes,
    }
}

fn internal(e: crate::error::Error) -> Status {
    Status::internal(format!("assembling evidence failed: {e}"))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchIncidentsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Query for QueryService {
    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let (gate, _permit) = self.admit(&request).await?;
        gate.require(&Access::nodes()).await?;
        let mut nodes = self.state.nodes();
        let truncated = nodes.len() > MAX_NODES;
        nodes.truncate(MAX_NODES);
        Ok(Response::new(ListNodesResponse {
            nodes,
            truncated,
            notices: self
                .store
                .reset()
                .map(|r| r.to_string())
                .into_iter()
                .collect(),
        }))
    }

    async fn list_gpus(
        &self,
        request: Request<ListGpusRequest>,
    ) -> Result<Response<ListGpusResponse>, Status> {
        let (gate, _permit) = self.admit(&request).await?;
        gate.require(&Access::nodes()).await?;
        let r = request.get_ref();
        let (mut gpus, next_page_token) = page(
            self.state.gpus(&r.node_name),
            |g| {
                let l = g.latest.as_ref();
                let (index, uuid) = l.map_or((0, ""), |l| (l.index, l.uuid.as_str()));
                format!("{}\0{index:010}\0{uuid}", g.node_name)
            },
            r.limit,
            &r.page_token,
        );
        let held = gpus
            .iter()
            .filter_map(|g| g.latest.as_ref())
            .flat_map(|l| l.holders.iter().map(|h| h.namespace.clone()))
            .collect();
        let ns = gate.namespaces(held).await?;
        for g in gpus.iter_mut().filter_map(|g| g.latest.as_mut()) {
            redact::holders(&mut g.holders, &ns);
        }
        Ok(Response::new(ListGpusResponse {
            gpus,
            next_page_token,
        }))
    }

    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let (gate, _permit) = self.admit(&request).await?;
        let r = request.get_ref();
        let mut containers = self.state.containers(&r.node_name, &r.pod_uid);
        Namer(self.kube().map(|k| &**k)).containers(&mut containers);
        let ns = gate
            .namespaces(containers.iter().map(|c| c.pod_namespace.clone()).collect())
            .await?;
        // A container Kubernetes does not name is shown only to who may
        // read every namespace.
        containers.retain(|c| ns.contains(&c.pod_namespace));
        let (containers, next_page_token) = page(
            containers,
            |c| {
                let path = c.latest.as_ref().and_then(|l| l.container.as_ref());
                let path = path.map_or("", |c| c.cgroup_path.as_str());
                format!("{}\0{path}", c.node_name)
            },
            r.limit,
            &r.page_token,
        );
        Ok(Response::new(ListContainersResponse {
            containers,
            next_page_token,
        }))
    }

    async fn list_incidents(
        &self,
        request: Request<ListIncidentsRequest>,
    ) -> Result<Response<ListIncidentsResponse>, Status> {
        let (gate, _permit) = self.admit(&request).await?;
        let r = request.into_inner();
        if r.until_unix_nanos != 0 && r.until_unix_nanos <= r.since_unix_nanos {
            return Err(Status::invalid_argument(
                "until_unix_nanos must be after since_unix_nanos",
            ));
        }
        let limit = if r.limit == 0 {
            DEFAULT_LIMIT
        } else {
            (r.limit as usize).min(MAX_INCIDENTS)
        };
        let store = self.store.clone();
        let filter = r.filter.unwrap_or_default();
        let kube = self.kube().cloned();
        let (since, until) = (r.since_unix_nanos, r.until_unix_nanos);
        let (incidents, truncated) = tokio::task::spawn_blocking(move || {
            let (mut incidents, truncated) = if filter.pod_name.is_empty() {
                store.list(&filter, since, until, limit)?
            } else {
                let uids = uids_named(kube.as_deref(), &store, &filter)?;
                list_uids(&store, &filter, &uids, since, until, limit)?
            };
            Namer(kube.as_deref()).incidents(&mut incidents);
            name_from_records(&store, &mut incidents)?;
            Ok::<_, crate::error::Error>((incidents, truncated))
        })
        .await
        .map_err(|e| Status::internal(format!("query task failed: {e}")))?
        .map_err(|e| Status::internal(format!("reading incidents failed: {e}")))?;
        let incidents = visible(&gate, incidents).await?;
        Ok(Response::new(ListIncidentsResponse {
            incidents,
            truncated,
        }))
    }

    async fn get_series(
        &self,
        request: Request<GetSeriesRequest>,
    ) -> Result<Response<GetSeriesResponse>, Status> {
        let (gate, _permit) = self.admit(&request).await?;
        let r = request.get_ref();
        let target = match &r.target {
            Some(Target::CgroupPath(p)) => SeriesTarget::CgroupPath(p),
            Some(Target::ContainerId(id)) => SeriesTarget::ContainerId(id),
            Some(Target::GpuUuid(u)) => SeriesTarget::GpuUuid(u),
            None => {
                return Err(Status::invalid_argument(
                    "GetSeriesRequest needs a target: cgroup_path, container_id or gpu_uuid",
                ));
            }
        };
        if let SeriesTarget::GpuUuid(_) = target {
            gate.require(&Access::nodes()).await?;
        }
        let Some(series) = self.state.series(&r.node_name, target) else {
            return Err(Status::not_found(format!("no history for {target:?}")));
        };
        if let Series::Container { latest, .. } = &series {
            // The container's pod namespace; unnamed: every namespace.
            let names = latest
                .container
                .as_ref()
                .and_then(|c| Namer(self.kube().map(|k| &**k)).name(c))
                .map(|n| n.namespace);
            gate.require(&Access::pods(names.as_deref().unwrap_or("")))
                .await?;
        }
        Ok(Response::new(match series {
            Series::Container {
                node_name,
                latest,
                points,
            } => GetSeriesResponse {
                node_name,
                container: latest.container,
                container_points: points,
                ..Default::default()
            },
            Series::Gpu {
                node_name,
                uuid,
                points,
            } => GetSeriesResponse {
                node_name,
                gpu_uuid: uuid,
                gpu_points: points,
                ..Default::default()
            },
        }))
    }

    async fn explain(
        &self,
        request: Request<ExplainRequest>,
    ) -> Result<Response<ExplainResponse>, Status> {
        let (gate, _permit) = self.admit(&request).await?;
        let r = request.into_inner();
        let (d, target) = self.authorized_target(&gate, &r.namespace, &r.pod).await?;
        let logs = gate.may(&Access::logs(&target.key.namespace)).await?;
        let (findings, ev) = d.explain_as(&target, &gate, logs).await?;
        // Gone from Kubernetes: what was concluded while it was there.
        // (A pod deleted within the hour is explained from its last state
        // above, with everything a recorded diagnosis would add.)
        let recorded = match (&target.pod, &target.uid) {
            (Some(_), _) => None,
            (None, Some(uid)) => Some(DiagnosedPod::Uid(uid.clone())),
            (None, None) => Some(DiagnosedPod::Name {
                namespace: target.key.namespace.clone(),
                name: target.key.name.clone(),
            }),
        };
        let recorded = match recorded {
            Some(pod) => d.assembler.recorded(pod, 20).await.map_err(internal)?,
            None => Vec::new(),
        };
        Ok(Response::new(ExplainResponse {
            findings: findings.iter().map(Into::into).collect(),
            gaps: ev.gaps.iter().map(Into::into).collect(),
            recorded,
        }))
    }

    async fn diagnose(
        &self,
        request: Request<DiagnoseRequest>,
    ) -> Result<Response<DiagnoseResponse>, Status> {
        let (gate, _permit) = self.admit(&request).await?;
        let d = self.diagnosis()?;
        let r = request.into_inner();
        if !r.all_namespaces && r.namespaces.is_empty() {
            return Err(Status::invalid_argument(
                "name namespaces or set all_namespaces",
            ));
        }
        for ns in r.namespaces.iter().filter(|_| !r.all_namespaces) {
            gate.require(&Access::pods(ns)).await?;
        }
        let readable = self.readable_pods(&gate).await?;
        let scope: Option<Vec<String>> = if r.all_namespaces && !readable.all {
            Some(readable.readable.iter().cloned().collect())
        } else {
            (!r.all_namespaces).then(|| r.namespaces.clone())
        };
        let mut ev = d
            .assembler
            .diagnose(scope.as_deref())
            .await
            .map_err(internal)?;
        let ns = gate.namespaces(redact::evidence_namespaces(&ev)).await?;
        redact::evidence(&mut ev, &ns);
        let nodes = gate.may(&Access::nodes()).await?;
        if !readable.left_out.is_empty() {
            ev.gaps.push(gpuscope_diagnose::Gap::new(
                "namespaces",
                format!(
                    "left out, you may not get pods there: {}",
                    readable.left_out.join(", ")
                ),
            ));
        }
        let config = d.config.clone();
        let (findings, ev) = tokio::task::spawn_blocking(move || {
            let mut ev = ev;
            let mut findings = gpuscope_diagnose::diagnose(&ev, &config);
            findings.retain(|f| readable_subject(&f.subject, &ns, nodes));
            if findings.len() > MAX_FINDINGS {
                let left = findings.len() - MAX_FINDINGS;
                // Already most costly first.
                findings.truncate(MAX_FINDINGS);
                ev.gaps.push(gpuscope_diagnose::Gap::new(
                    "findings",
                    format!("{left} less costly findings left out (at most {MAX_FINDINGS} per answer): name namespaces"),
                ));
            }
            let judged = gpuscope_diagnose::rule_gaps(&ev, &config, None);
            ev.gaps.extend(judged);
            (findings, ev)
        })
        .await
        .map_err(|e| Status::internal(format!("diagnosis task failed: {e}")))?;
        Ok(Response::new(DiagnoseResponse {
            findings: findings.iter().map(Into::into).collect(),
            gaps: ev.gaps.iter().map(Into::into).collect(),
        }))
    }

    async fn get_bundle(
        &self,
        request: Request<GetBundleRequest>,
    ) -> Result<Response<GetBundleResponse>, Status> {
        let (gate, _permit) = self.admit(&request).await?;
        let r = request.into_inner();
        let (d, target) = self.authorized_target(&gate, &r.namespace, &r.pod).await?;
        let mut evidence = d.assembler.explain(&target).await.map_err(internal)?;
        let ns = gate
            .namespaces(redact::evidence_namespaces(&evidence))
            .await?;
        redact::evidence(&mut evidence, &ns);
        if !gate.may(&Access::logs(&target.key.namespace)).await? {
            redact::logs(&mut evidence, &target.key.namespace);
        }
        let bundle = Bundle {
            evidence,
            subject: Some(target.key),
        };
        let files = bundle
            .to_files()
            .map_err(|e| Status::internal(format!("encoding the bundle failed: {e}")))?;
        Ok(Response::new(GetBundleResponse {
            files: files
                .into_iter()
                .map(|(name, data)| BundleFile { name, data })
                .collect(),
        }))
    }

    type WatchIncidentsStream = WatchStream;

    async fn watch_incidents(
        &self,
        request: Request<WatchIncidentsRequest>,
    ) -> Result<Response<Self::WatchIncidentsStream>, Status> {
        let (gate, _permit) = self.admit(&request).await?;
        let filter = request.into_inner().filter.unwrap_or_default();
        let mut rx = self.incidents.subscribe();
        let (tx, out) = tokio::sync::mpsc::channel(64);
        let mut shutdown = self.shutdown.clone();
        let kube = self.kube().cloned();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    n = rx.recv() => n,
                    _ = crate::sync::stopped(&mut shutdown) => {
                        let _ = tx.send(Err(Status::unavailable("aggregator shutting down"))).await;
                        return;
                    }
                    _ = tx.closed() => return,
                };
                let msg = match next {
                    Ok(incident) if matches(&filter, &incident) => {
                        let mut incident = (*incident).clone();
                        Namer(kube.as_deref()).incidents(std::slice::from_mut(&mut incident));
                        if !named_as(&filter, &incident) {
                            continue;
                        }
                        let Ok(mut shown) = visible(&gate, vec![incident]).await else {
                            let _ = tx
                                .send(Err(Status::unavailable(
                                    "cannot check access with the Kubernetes API server",
                                )))
                                .await;
                            return;
                        };
                        let Some(incident) = shown.pop() else {
                            continue;
                        };
                        watch_incidents_response::Kind::Incident(incident)
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "Incident watcher lagged.");
                        watch_incidents_response::Kind::Lagged(WatchLagged { skipped })
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let resp = WatchIncidentsResponse { kind: Some(msg) };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }
}

/// The namespace a filter's pod name is in.
fn filter_namespace(filter: &IncidentFilter) -> &str {
    match filter.pod_namespace.as_str() {
        "" => "default",
        ns => ns,
    }
}

/// Whether a (named) incident passes the filter's pod name, if it has one.
fn named_as(filter: &IncidentFilter, i: &Incident) -> bool {
    filter.pod_name.is_empty()
        || (i.pod_name == filter.pod_name && i.pod_namespace == filter_namespace(filter))
}

/// Every UID the pod the filter names is known by: the pod object's, and
/// those of the recorded diagnoses of pods of that name. Blocking.
fn uids_named(
    kube: Option<&Kube>,
    store: &Store,
    filter: &IncidentFilter,
) -> crate::error::Result<Vec<String>> {
    let namespace = filter_namespace(filter);
    let mut uids: Vec<String> = kube
        .and_then(|k| k.pod(namespace, &filter.pod_name))
        .and_then(|p| p.uid().map(str::to_owned))
        .into_iter()
        .collect();
    let named = DiagnosedPod::Name {
        namespace: namespace.to_owned(),
        name: filter.pod_name.clone(),
    };
    for d in store.diagnoses(&named, 1000)? {
        if !d.pod_uid.is_empty() && !uids.contains(&d.pod_uid) {
            uids.push(d.pod_uid);
        }
    }
    if !filter.pod_uid.is_empty() {
        uids.retain(|u| *u == filter.pod_uid);
    }
    Ok(uids)
}

/// The incidents of each of `uids` passing `filter`, newest first, at
/// most `limit`, and whether more matched. Blocking.
fn list_uids(
    store: &Store,
    filter: &IncidentFilter,
    uids: &[String],
    since: u64,
    until: u64,
    limit: usize,
) -> crate::error::Result<(Vec<Incident>, bool)> {
    let mut out = Vec::new();
    let mut truncated = false;
    for uid in uids {
        let one = IncidentFilter {
            pod_uid: uid.clone(),
            ..filter.clone()
        };
        let (found, more) = store.list(&one, since, until, limit)?;
        out.extend(found);
        truncated |= more;
    }
    out.sort_by_key(|i| std::cmp::Reverse(crate::store::incident_time(i)));
    if out.len() > limit {
        out.truncate(limit);
        truncated = true;
    }
    Ok((out, truncated))
}

/// Names the OOM kills of pods Kubernetes no longer has (or that the
/// aggregator did not watch then) from their pods' newest recorded
/// diagnosis ([`crate::record`]). Blocking.
fn name_from_records(store: &Store, incidents: &mut [Incident]) -> crate::error::Result<()> {
    let mut recorded: std::collections::HashMap<String, Option<RecordedDiagnosis>> =
        std::collections::HashMap::new();
    for i in incidents.iter_mut().filter(|i| i.pod_name.is_empty()) {
        let Some(c) = oom_container(i).filter(|c| !c.pod_uid.is_empty()) else {
            continue;
        };
        let d = match recorded.get(&c.pod_uid) {
            Some(d) => d,
            None => {
                let d = store
                    .diagnoses(&DiagnosedPod::Uid(c.pod_uid.clone()), 1)?
                    .pop()
                    .filter(|d| !d.pod_name.is_empty());
                recorded.entry(c.pod_uid.clone()).or_insert(d)
            }
        };
        let Some(d) = d else { continue };
        i.container_name = d
            .container_names
            .get(&c.container_id)
            .cloned()
            .unwrap_or_default();
        i.pod_namespace = d.pod_namespace.clone();
        i.pod_name = d.pod_name.clone();
    }
    Ok(())
}

/// An OOM kill incident's container.
fn oom_container(i: &Incident) -> Option<&ContainerRef> {
    i.event.as_ref().and_then(crate::store::oom_container)
}

/// Names what the agents report by pod UID and container ID (a
/// container's samples, an OOM kill) as Kubernetes does, from the pod
/// objects the aggregator watches (looked up by UID in the stores' index,
/// one lookup per container named: no walk of every pod); `None`: the
/// aggregator does not watch Kubernetes, nothing is named.
struct Namer<'a>(Option<&'a Kube>);

/// A container's pod namespace, pod name and container name (empty when
/// its ID is no longer among the pod's current or previous containers).
struct Names {
    namespace: String,
    pod: String,
    container: String,
}

impl Namer<'_> {
    fn name(&self, r: &ContainerRef) -> Option<Names> {
        let p = self.0?.pod_by_uid(&r.pod_uid)?;
        Some(Names {
            namespace: p.namespace().to_owned(),
            pod: p.name().to_owned(),
            container: p
                .container_name(&r.container_id)
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// Fills in each container's names.
    fn containers(&self, containers: &mut [ContainerInfo]) {
        for c in containers {
            let Some(n) = c
                .latest
                .as_ref()
                .and_then(|l| l.container.as_ref())
                .and_then(|r| self.name(r))
            else {
                continue;
            };
            c.pod_namespace = n.namespace;
            c.pod_name = n.pod;
            c.container_name = n.container;
        }
    }

    /// Fills in the names of each OOM kill's container.
    fn incidents(&self, incidents: &mut [Incident]) {
        for i in incidents {
            let Some(n) = oom_container(i).and_then(|r| self.name(r)) else {
                continue;
            };
            i.pod_namespace = n.namespace;
            i.pod_name = n.pod;
            i.container_name = n.container;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_is_told_from_a_name() {
        assert!(looks_like_uid("00000000-0000-4000-8000-000000000001"));
        assert!(!looks_like_uid("trainer-0"));
        assert!(!looks_like_uid("abcdefgh-0000-4000-8000-000000000001"));
    }

    #[test]
    fn pages_continue_after_the_token_and_end_with_an_empty_one() {
        let items = vec!["a", "b", "c"];
        let key = |s: &&str| (*s).to_owned();
        let (first, next) = page(items.clone(), key, 2, "");
        assert_eq!((first, next.as_str()), (vec!["a", "b"], "b"));
        let (rest, next) = page(items.clone(), key, 2, &next);
        assert_eq!((rest, next.as_str()), (vec!["c"], ""));
        let (all, next) = page(items, key, 0, "");
        assert_eq!((all.len(), next.as_str()), (3, ""), "0: the maximum");
    }

    #[test]
    fn a_pod_name_filter_matches_the_named_incident_in_its_namespace() {
        let named = Incident {
            pod_namespace: "default".into(),
            pod_name: "web".into(),
            ..Incident::default()
        };
        let filter = |ns: &str, name: &str| IncidentFilter {
            pod_namespace: ns.into(),
            pod_name: name.into(),
            ..IncidentFilter::default()
        };
        assert!(named_as(&filter("", ""), &named));
        assert!(named_as(&filter("", "web"), &named));
        assert!(named_as(&filter("default", "web"), &named));
        assert!(!named_as(&filter("ml", "web"), &named));
        assert!(!named_as(&filter("", "db"), &named));
        assert!(!named_as(&filter("", "web"), &Incident::default()));
    }
}
