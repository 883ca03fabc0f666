//! The ingest stream server (`gpuscope.v1.Ingest/Stream`).
//!
//! Per stream: the first message must be a Hello (else INVALID_ARGUMENT);
//! then reports update [`State`] and event batches go to the [`Store`]. A
//! batch is acknowledged only after its transaction committed, with the
//! highest contiguous stored seq of its boot, so an ack never covers an
//! event that is not on disk. A stream that breaks the contract (garbage,
//! an oversized message, no Hello) is ended with a status naming what was
//! wrong and a warn log naming the peer; other streams are not affected.
//!
//! With [`AgentAuth`], a stream is accepted only from an agent's projected
//! ServiceAccount token (audience [`crate::auth::AGENT_AUDIENCE`]) that the
//! API server says is bound to a pod on the node the Hello names: a node
//! can report only for itself, as NodeRestriction lets a kubelet write
//! only its own node's objects. While a node streams, a second stream for
//! it replaces the first only when it comes from the same pod; one from
//! another identity is refused.
//!
//! A stream outlives no token: the kubelet rewrites the projected token
//! file at 80 % of the token's life, but an open stream still carries the
//! token it was opened with. TokenReview's answer does not say until when
//! a token holds, so the stream ends when the token's JWT `exp` passes
//! ([`crate::auth::Caller::expires`]), with UNAUTHENTICATED ("token
//! expired"); the agent reads its token file again at each connect and
//! reopens the stream with the fresh token, and resends every event not
//! acknowledged, so none is lost. A token without `exp` is reviewed again
//! each [`crate::auth::Ttls::token`] instead, and the stream ends as soon
//! as the API server no longer accepts it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::kube::{Kube, PodIndex as _, Projection as _};

use gpuscope_proto::INGEST_PROTOCOL;
use gpuscope_proto::v1::{
    Ack, AggregatorMessage, EventBatch, Hello, Incident, NodeEvent, NodeIdentity,
    aggregator_message,
};
use prost::Message;
use prost::bytes::{Buf, Bytes};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Context, Poll, StdError, http};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::auth::{AGENT_AUDIENCE, Authorizer, EXTRA_NODE_NAME, EXTRA_POD_NAME, EXTRA_POD_UID};
use crate::state::{State, StreamRefs};
use crate::store::Store;
use crate::sync::lock;

/// The Ingest service.
#[derive(Debug, Clone)]
pub struct IngestService {
    store: Arc<Store>,
    state: Arc<State>,
    incidents: broadcast::Sender<Arc<Incident>>,
    hello_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    auth: Option<Arc<AgentAuth>>,
    streams: Arc<crate::limits::StreamLimiter>,
    /// The open stream of each node (with [`AgentAuth`]): its identity,
    /// its number, and the sender that ends it.
    owners: Arc<std::sync::Mutex<std::collections::HashMap<String, Owner>>>,
}

/// Who may report for a node ([`IngestService::with_auth`]).
#[derive(Debug)]
pub struct AgentAuth {
    /// Asks the API server about tokens.
    pub authorizer: Arc<Authorizer>,
    /// The agents' ServiceAccounts, `namespace:name`.
    pub service_accounts: Vec<String>,
    /// The pods Kubernetes has: a token's pod, when known, must be on its
    /// node.
    pub kube: Option<Arc<Kube>>,
}

/// A node's open stream.
#[derive(Debug)]
struct Owner {
    identity: String,
    number: u64,
    replace: Option<tokio::sync::oneshot::Sender<()>>,
}

impl AgentAuth {
    /// The identity of the agent whose token the metadata carries, when it
    /// may report for the Hello's node, and when its token expires.
    async fn admit(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        node: &str,
        peer: Option<IpAddr>,
    ) -> Result<(String, Option<SystemTime>), Status> {
        let caller = self
            .authorizer
            .authenticate(metadata, AGENT_AUDIENCE, peer)
            .await?;
        let agent = self.service_accounts.iter().any(|sa| {
            caller
                .user
                .strip_prefix("system:serviceaccount:")
                .is_some_and(|u| u == sa)
        });
        if !agent {
            return Err(Status::permission_denied(format!(
                "{} is not a gpuscope agent's ServiceAccount ({})",
                caller.user,
                self.service_accounts.join(", ")
            )));
        }
        let (Some(pod), Some(bound_node)) =
            (caller.extra(EXTRA_POD_NAME), caller.extra(EXTRA_NODE_NAME))
        else {
            return Err(Status::permission_denied(format!(
                "the token of {} is not bound to a pod: mount a projected ServiceAccount token \
                 (audience {AGENT_AUDIENCE})",
                caller.user
            )));
        };
        if bound_node != node {
            return Err(Status::permission_denied(format!(
                "the token of pod {pod} on node {bound_node} cannot report for node {node}"
            )));
        }
        let on_other_node = self.kube.as_ref().and_then(|k| {
            bound_pod_node(k, pod, caller.extra(EXTRA_POD_UID), node).filter(|on| on != node)
        });
        if let Some(on) = on_other_node {
            return Err(Status::permission_denied(format!(
                "pod {pod} runs on node {on}, not {node}"
            )));
        }
        Ok((format!("{} pod {pod}", caller.user), caller.expires))
    }
}

/// The node Kubernetes has the token's pod `name` (UID `uid`, when the
/// token says it) on, when it knows: the pod with that UID (the by-UID
/// index), else a pod of that name on the node the agent reports for (the
/// by-node index: the usual answer, in a handful of pods); only a pod on
/// neither is looked for among every pod (by name, in any namespace, as
/// the token names no namespace).
fn bound_pod_node(kube: &Kube, name: &str, uid: Option<&str>, node: &str) -> Option<String> {
    if let Some(p) = uid
        .and_then(|u| kube.pod_by_uid(u))
        .filter(|p| p.name() == name)
    {
        return p.node().map(str::to_owned);
    }
    if kube.pods_on(node).iter().any(|p| p.name() == name) {
        return Some(node.to_owned());
    }
    let mut on = None;
    kube.for_each_pod(|p| {
        if on.is_none() && p.name() == name {
            on = Some(p.node().map(str::to_owned));
        }
    });
    on?
}

/// What an open stream's token is checked again with.
struct Recheck {
    auth: Arc<AgentAuth>,
    metadata: tonic::metadata::MetadataMap,
    peer: Option<IpAddr>,
    /// The token's `exp`, when it has one.
    expires: Option<SystemTime>,
}

impl Recheck {
    /// When to look at the token again: at its expiry, or after the token
    /// cache's life for a token without one.
    fn deadline(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        match self.expires {
            Some(exp) => now + exp.duration_since(SystemTime::now()).unwrap_or_default(),
            None => now + self.auth.authorizer.ttls().token,
        }
    }

    /// At the deadline: the status that ends the stream, or `None` (a
    /// token without `exp` the API server still accepts).
    async fn check(&mut self, node: &str) -> Option<Status> {
        if let Some(exp) = self.expires {
            if SystemTime::now() >= exp {
                let at = humantime::format_rfc3339_seconds(exp);
                tracing::info!(node, expired = %at,
                    "Ending an ingest stream: its token expired (the agent reconnects with its current token).");
                return Some(Status::unauthenticated(format!(
                    "token expired: the token that opened this stream expired at {at}; reconnect \
                     with the current token (the kubelet rotates the projected token file)"
                )));
            }
            return None;
        }
        match self.auth.admit(&self.metadata, node, self.peer).await {
            Ok((_, expires)) => {
                self.expires = expires;
                None
            }
            Err(s) => {
                tracing::warn!(
                    node,
                    reason = s.message(),
                    "Ending an ingest stream: its token is no longer accepted."
                );
                Some(s)
            }
        }
    }
}

impl IngestService {
    /// Accepts streams only from agents whose token `auth` admits, each
    /// for its own node.
    pub fn with_auth(mut self, auth: AgentAuth) -> Self {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// Records `identity`'s stream as `node`'s: replaces an open stream of
    /// the same identity, refuses one of another. Returns the stream's
    /// number and what ends it when it is replaced.
    fn own(
        &self,
        node: &str,
        identity: String,
    ) -> Result<(u64, tokio::sync::oneshot::Receiver<()>), Status> {
        static NUMBERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let number = NUMBERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (replace, replaced) = tokio::sync::oneshot::channel();
        let mut owners = lock(&self.owners);
        if let Some(open) = owners.get_mut(node) {
            if open.identity != identity {
                return Err(Status::permission_denied(format!(
                    "node {node} is streaming as {}; {identity} may not replace it",
                    open.identity
                )));
            }
            if let Some(old) = open.replace.take() {
                let _ = old.send(());
            }
        }
        let owner = Owner {
            identity,
            number,
            replace: Some(replace),
        };
        owners.insert(node.to_owned(), owner);
        Ok((number, replaced))
    }
}

impl IngestService {
    /// An ingest service writing to `store` and `state` and announcing new
    /// incidents on `incidents`.
    pub fn new(
        store: Arc<Store>,
        state: Arc<State>,
        incidents: broadcast::Sender<Arc<Incident>>,
        hello_timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            state,
            incidents,
            hello_timeout,
            shutdown,
            auth: None,
            streams: Arc::new(crate::limits::StreamLimiter::new(
                crate::limits::Limits::default(),
            )),
            owners: Arc::default(),
        }
    }

    /// Bounds the open streams per peer and in all by `limits`.
    pub fn with_limits(mut self, limits: crate::limits::Limits) -> Self {
        self.streams = Arc::new(crate::limits::StreamLimiter::new(limits));
        self
    }
}

/// Logs a rejected stream and returns its status.
fn reject(peer: &str, status: Status) -> Status {
    tracing::warn!(peer, code = ?status.code(), reason = status.message(), "Rejected ingest stream.");
    status
}

/// Turns a failure to read the next message into the status the peer gets:
/// an undecodable message is the peer's fault (INVALID_ARGUMENT), an
/// oversized one keeps tonic's OUT_OF_RANGE.
fn read_status(status: Status) -> Status {
    match status.code() {
        Code::Internal if status.message().contains("decode") => {
            Status::invalid_argument(format!("malformed AgentMessage: {}", status.message()))
        }
        Code::OutOfRange => Status::out_of_range(format!(
            "AgentMessage too large: {} (raise --max-message-bytes)",
            status.message()
        )),
        code => Status::new(code, format!("reading stream: {}", status.message())),
    }
}

/// One `AgentMessage`, read in place from its bytes: the report is left
/// encoded for [`State::apply_encoded`].
enum Kind<'a> {
    Hello(Hello),
    Report(&'a [u8]),
    Events(EventBatch),
    Empty,
}

fn malformed(why: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("malformed AgentMessage: {why}"))
}

/// Reads an `AgentMessage` (its `kind` oneof: the last field of it wins).
fn agent_message(buf: &[u8]) -> Result<Kind<'_>, Status> {
    let mut kind = Kind::Empty;
    for f in crate::wire::Fields::new(buf) {
        let (tag, v) = f.map_err(malformed)?;
        kind = match tag {
            1 => Kind::Hello(
                Hello::decode(v.bytes("AgentMessage.hello").map_err(malformed)?)
                    .map_err(malformed)?,
            ),
            2 => Kind::Report(v.bytes("AgentMessage.report").map_err(malformed)?),
            3 => Kind::Events(
                EventBatch::decode(v.bytes("AgentMessage.events").map_err(malformed)?)
                    .map_err(malformed)?,
            ),
            _ => continue,
        };
    }
    Ok(kind)
}

fn message_name(kind: &Kind<'_>) -> &'static str {
    match kind {
        Kind::Empty => "an empty AgentMessage",
        Kind::Hello(_) => "Hello",
        Kind::Report(_) => "NodeReport",
        Kind::Events(_) => "EventBatch",
    }
}

fn check_hello(hello: &Hello) -> Result<(), Status> {
    let Some(node) = hello.node.as_ref() else {
        return Err(Status::invalid_argument("Hello.node is missing"));
    };
    if node.node_name.is_empty() {
        return Err(Status::invalid_argument("Hello.node.node_name is empty"));
    }
    if node.boot_id.is_empty() {
        return Err(Status::invalid_argument("Hello.node.boot_id is empty"));
    }
    if hello.protocol > INGEST_PROTOCOL {
        return Err(Status::failed_precondition(format!(
            "Hello.protocol {} is newer than this aggregator's {INGEST_PROTOCOL}",
            hello.protocol
        )));
    }
    Ok(())
}

fn check_batch(batch: &EventBatch) -> Result<(), Status> {
    if batch.boot_id.is_empty() {
        return Err(Status::invalid_argument("EventBatch.boot_id is empty"));
    }
    if batch.events.iter().any(|e| e.seq == 0) {
        return Err(Status::invalid_argument(
            "EventBatch has an event with seq 0 (seqs start at 1)",
        ));
    }
    Ok(())
}

type AckStream = ReceiverStream<Result<AggregatorMessage, Status>>;

impl IngestService {
    async fn stream(
        &self,
        request: Request<Streaming<Bytes>>,
    ) -> Result<Response<AckStream>, Status> {
        let remote = request.remote_addr();
        let peer = remote.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let admitted = self
            .streams
            .admit(remote.map(|a| a.ip()))
            .map_err(|s| reject(&peer, s))?;
        let metadata = request.metadata().clone();
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(self.hello_timeout, inbound.message()).await {
            Err(_) => {
                return Err(reject(
                    &peer,
                    Status::deadline_exceeded(format!(
                        "no Hello within {:?} of opening the stream",
                        self.hello_timeout
                    )),
                ));
            }
            Ok(Err(status)) => return Err(reject(&peer, read_status(status))),
            Ok(Ok(None)) => {
                return Err(reject(
                    &peer,
                    Status::invalid_argument("stream ended before its Hello"),
                ));
            }
            Ok(Ok(Some(m))) => m,
        };
        let hello = match agent_message(&first).map_err(|s| reject(&peer, s))? {
            Kind::Hello(h) => h,
            other => {
                return Err(reject(
                    &peer,
                    Status::invalid_argument(format!(
                        "the first message must be a Hello, got {}",
                        message_name(&other)
                    )),
                ));
            }
        };
        check_hello(&hello).map_err(|s| reject(&peer, s))?;
        let node = hello
            .node
            .as_ref()
            .map_or("", |n| n.node_name.as_str())
            .to_owned();
        let peer_ip = remote.map(|a| a.ip());
        let (owned, recheck) = match &self.auth {
            None => (None, None),
            Some(auth) => {
                let (identity, expires) = auth
                    .admit(&metadata, &node, peer_ip)
                    .await
                    .map_err(|s| reject(&peer, s))?;
                let owned = self.own(&node, identity).map_err(|s| reject(&peer, s))?;
                let recheck = Recheck {
                    auth: auth.clone(),
                    metadata,
                    peer: peer_ip,
                    expires,
                };
                (Some(owned), Some(recheck))
            }
        };
        let (tx, rx) = mpsc::channel(64);
        let session = Session {
            peer,
            hello,
            svc: self.clone(),
            tx,
            owned,
            recheck,
            _admitted: admitted,
        };
        tokio::spawn(session.run(inbound));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// One accepted stream.
struct Session {
    peer: String,
    hello: Hello,
    svc: IngestService,
    tx: mpsc::Sender<Result<AggregatorMessage, Status>>,
    /// The stream's number among its node's and what ends it when a newer
    /// stream of the same agent replaces it (with [`AgentAuth`]).
    owned: Option<(u64, tokio::sync::oneshot::Receiver<()>)>,
    /// Its token, checked again when it expires (with [`AgentAuth`]).
    recheck: Option<Recheck>,
    /// Its place under the stream limits, held while it is open.
    _admitted: crate::limits::StreamPermit,
}

impl Session {
    fn node_name(&self) -> &str {
        self.hello
            .node
            .as_ref()
            .map_or("", |n| n.node_name.as_str())
    }

    fn boot_id(&self) -> &str {
        self.hello.node.as_ref().map_or("", |n| n.boot_id.as_str())
    }

    async fn run(mut self, mut inbound: Streaming<Bytes>) {
        let (number, mut replaced) = match self.owned.take() {
            Some((n, r)) => (Some(n), Some(r)),
            None => (None, None),
        };
        let identity = self.hello.node.clone().unwrap_or_default();
        let _connection = self.svc.state.connect(&identity);
        tracing::info!(peer = %self.peer, node = %identity.node_name, boot_id = %identity.boot_id,
            agent_version = %identity.agent_version, "Agent connected.");
        let mut shutdown = self.svc.shutdown.clone();
        let mut refs = StreamRefs::new();
        let mut recheck = self.recheck.take();
        // One timer for the stream's life, reset after each check (none is
        // armed without a recheck: the branch is disabled).
        let expiry = tokio::time::sleep_until(
            recheck
                .as_ref()
                .map_or_else(tokio::time::Instant::now, Recheck::deadline),
        );
        tokio::pin!(expiry);
        let end = loop {
            let msg = tokio::select! {
                m = inbound.message() => m,
                () = &mut expiry, if recheck.is_some() => {
                    let r = recheck.as_mut().expect("guarded");
                    if let Some(status) = r.check(self.node_name()).await {
                        break Some(status);
                    }
                    expiry.as_mut().reset(r.deadline());
                    continue;
                }
                _ = crate::sync::stopped(&mut shutdown) => {
                    break Some(Status::unavailable("aggregator shutting down"));
                }
                _ = async { replaced.as_mut().expect("guarded").await }, if replaced.is_some() => {
                    break Some(Status::aborted("replaced by a newer stream of the same agent"));
                }
            };
            let msg = match msg {
                Ok(Some(m)) => m,
                Ok(None) => break None,
                Err(status) => break Some(reject(&self.peer, read_status(status))),
            };
            let result = match agent_message(&msg) {
                Err(status) => Err(status),
                Ok(Kind::Report(report)) => {
                    match self
                        .svc
                        .state
                        .apply_encoded(self.node_name(), report, &mut refs)
                    {
                        Err(e) => Err(malformed(format_args!("NodeReport: {e}"))),
                        Ok(applied) if applied.events.is_empty() => Ok(()),
                        Ok(applied) => {
                            // Events inside a report are stored like a batch of
                            // the report's boot, so none is lost.
                            let boot = applied
                                .node
                                .and_then(|n| NodeIdentity::decode(n).ok())
                                .map(|n| n.boot_id)
                                .filter(|b| !b.is_empty())
                                .unwrap_or_else(|| self.boot_id().to_owned());
                            self.store(EventBatch {
                                boot_id: boot,
                                events: applied.events,
                            })
                            .await
                        }
                    }
                }
                Ok(Kind::Events(batch)) => self.store(batch).await,
                Ok(Kind::Hello(_)) => Err(Status::invalid_argument(
                    "a second Hello on the same stream (open a new stream instead)",
                )),
                Ok(Kind::Empty) => Err(Status::invalid_argument(
                    "empty AgentMessage (no hello, report or events)",
                )),
            };
            match result {
                Ok(()) => {}
                Err(status) if status.code() == Code::Cancelled => break None,
                Err(status) if status.code() == Code::Internal => {
                    break Some(status);
                }
                Err(status) => break Some(reject(&self.peer, status)),
            }
        };
        if let Some(number) = number {
            let mut owners = lock(&self.svc.owners);
            if owners
                .get(self.node_name())
                .is_some_and(|o| o.number == number)
            {
                owners.remove(self.node_name());
            }
        }
        tracing::info!(peer = %self.peer, node = %identity.node_name,
            reason = end.as_ref().map_or("closed by agent", |s| s.message()), "Agent disconnected.");
        if let Some(status) = end {
            let _ = self.tx.send(Err(status)).await;
        }
    }

    /// Stores a batch, then acknowledges it and announces new incidents.
    async fn store(&self, batch: EventBatch) -> Result<(), Status> {
        check_batch(&batch)?;
        self.svc.state.touch(self.node_name());
        let store = self.svc.store.clone();
        let node = self.node_name().to_owned();
        let boot = batch.boot_id.clone();
        let events: Vec<NodeEvent> = batch.events;
        let stored = tokio::task::spawn_blocking(move || {
            store.store_batch(&node, &boot, &events, crate::clock::now_unix_nanos())
        })
        .await
        .map_err(|e| Status::internal(format!("store task failed: {e}")))?
        .map_err(|e| {
            tracing::error!(node = %self.node_name(), error = %e, "Storing events failed.");
            // The agent keeps the batch and sends it again later (a full
            // volume recovers by itself once space returns).
            Status::unavailable(format!("storing events failed: {e}"))
        })?;
        tracing::debug!(node = %self.node_name(), boot_id = %batch.boot_id, new = stored.new.len(),
            duplicates = stored.duplicates, up_to_seq = stored.up_to_seq, "Stored events.");
        // The transaction is committed: acknowledging is safe now.
        let ack = AggregatorMessage {
            kind: Some(aggregator_message::Kind::Ack(Ack {
                boot_id: batch.boot_id,
                up_to_seq: stored.up_to_seq,
            })),
        };
        self.svc
            .state
            .tally()
            .incidents(self.node_name(), &stored.new);
        for incident in stored.new {
            // No receiver is fine: nobody is watching.
            let _ = self.svc.incidents.send(Arc::new(incident));
        }
        if self.tx.send(Ok(ack)).await.is_err() {
            return Err(Status::cancelled("agent went away"));
        }
        Ok(())
    }
}

/// The `gpuscope.v1.Ingest` server: tonic's generated one, except that an
/// `AgentMessage` arrives as its bytes ([`RawCodec`]) and is read in place
/// (see [`crate::wire`]), not decoded into a `NodeReport` with a `String`
/// per identity field of every sample.
#[derive(Debug, Clone)]
pub struct IngestServer {
    inner: Arc<IngestService>,
    max_message_bytes: usize,
}

impl IngestServer {
    /// Serves `service`, refusing messages over `max_message_bytes` either
    /// way.
    pub fn new(service: IngestService, max_message_bytes: usize) -> Self {
        Self {
            inner: Arc::new(service),
            max_message_bytes,
        }
    }
}

impl tonic::server::NamedService for IngestServer {
    const NAME: &'static str = "gpuscope.v1.Ingest";
}

/// `Stream`'s handler.
struct StreamSvc(Arc<IngestService>);

impl tonic::server::StreamingService<Bytes> for StreamSvc {
    type Response = AggregatorMessage;
    type ResponseStream = AckStream;
    type Future = BoxFuture<Response<AckStream>, Status>;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.stream(request).await })
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for IngestServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != "/gpuscope.v1.Ingest/Stream" {
            return Box::pin(async move {
                Ok(Status::unimplemented("unknown method of gpuscope.v1.Ingest").into_http())
            });
        }
        let inner = self.inner.clone();
        let max = self.max_message_bytes;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_max_message_size_config(Some(max), Some(max));
            Ok(grpc.streaming(StreamSvc(inner), req).await)
        })
    }
}

/// Agent messages as their bytes (not decoded); acks encoded with prost.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// See [`RawCodec`].
#[derive(Debug)]
pub struct RawDecoder;

/// See [`RawCodec`].
#[derive(Debug)]
pub struct AckEncoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

impl Encoder for AckEncoder {
    type Item = AggregatorMessage;
    type Error = Status;

    fn encode(&mut self, item: AggregatorMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding AggregatorMessage: {e}")))
    }

    /// Acks are a few dozen bytes: a small buffer per stream, not tonic's
    /// default 8 KiB (100 MB over 12,500 agents).
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(256, 32 * 1024)
    }
}

impl Codec for RawCodec {
    type Encode = AggregatorMessage;
    type Decode = Bytes;
    type Encoder = AckEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> AckEncoder {
        AckEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}
