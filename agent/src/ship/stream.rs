//! The agent's stream to the aggregator (`gpuscope.v1.Ingest/Stream`).
//!
//! - **Events** go through the durable [`EventQueue`] first: each is
//!   numbered and fsynced before it is sent, sent again after every
//!   reconnect until the aggregator acknowledges it, and survives an agent
//!   restart. The aggregator applies each (node, boot, seq) once.
//! - **Samples**: latest wins. Each report carries the newest sample of
//!   every container seen since the previous report, the newest node
//!   sample and the newest GPU collection; a sample replaced before it was
//!   sent (the stream backed up or down) is counted as dropped and
//!   reported in `dropped_samples`.
//! - **Container ids** (protocol 2, [`RefIds`]): a container's identity
//!   is sent once per stream, then only its stream-local id. An aggregator
//!   that refuses protocol 2 (an older one) is spoken to in protocol 1,
//!   every sample with its identity.
//! - **Reconnect** with exponential backoff (100 ms doubling to 30 s) and
//!   ±50 % jitter, so a restarted aggregator is not hit by every node at
//!   the same instant.
//! - **Token** ([`ShipConfig::token_file`]): read again at every connect,
//!   so the kubelet's rotation of the projected token is picked up. An
//!   aggregator with `--auth kubernetes` ends a stream when the token it
//!   was opened with expires (UNAUTHENTICATED, "token expired ..."): the
//!   agent reconnects at once with the file's current token and resends
//!   what was not acknowledged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gpuscope_proto::v1 as pb;
use gpuscope_proto::v1::ingest_client::IngestClient;
use prost::Message;
use tokio::sync::Notify;
use tokio_stream::wrappers::ReceiverStream;

use crate::ship::health::SelfUsage;
use crate::ship::queue::{EventQueue, QueueError, QueueStats};
use crate::ship::refs::RefIds;
use gpuscope_model::wire::node_event;
use gpuscope_model::{ContainerSample, Event, GpuSample, NodeSample};
use gpuscope_proto::client::{ClientTls, EndpointError, endpoint};

/// Settings of the stream.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// The aggregator's URL (`http://host:7470`).
    pub aggregator: String,
    /// Directory of the event queue (a hostPath in production).
    pub state_dir: PathBuf,
    /// Most bytes of unacknowledged events kept; the oldest are dropped
    /// (and counted) beyond it.
    pub queue_max_bytes: u64,
    /// How often a report of samples is sent.
    pub report_interval: Duration,
    /// TLS towards the aggregator.
    pub tls: ClientTls,
    /// A bearer token file sent with each stream, read at each connect.
    pub token_file: Option<PathBuf>,
    /// Kernel-log records ignored for not being the kernel's (counted by
    /// the collection side), reported in each report's agent health.
    pub kmsg_not_kernel: Arc<AtomicU64>,
}

/// Why the stream could not start or went down.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The event queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The aggregator's address or TLS settings are unusable.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// Connecting failed.
    #[error("connecting to the aggregator at {url}: {source}")]
    Connect {
        /// The address.
        url: String,
        /// The error.
        source: tonic::transport::Error,
    },
    /// The aggregator ended or refused the stream.
    #[error("stream to the aggregator at {url}: {status}")]
    Stream {
        /// The address.
        url: String,
        /// The gRPC status.
        status: Box<tonic::Status>,
    },
    /// The aggregator closed the stream.
    #[error("the aggregator at {0} closed the stream")]
    Closed(String),
    /// The runtime thread could not start.
    #[error("starting the stream thread: {0}")]
    Thread(std::io::Error),
    /// The token file could not be read or is not a token.
    #[error("token file {path}: {why}")]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

#[derive(Default)]
struct Latest {
    node: Option<pb::NodeSample>,
    containers: HashMap<String, pb::ContainerSample>,
    gpus: Vec<pb::GpuSample>,
    dropped: u64,
}

struct Shared {
    queue: Mutex<EventQueue>,
    latest: Mutex<Latest>,
    wake: Notify,
    /// Whether a stream is open (the aggregator answered the Hello).
    connected: Arc<AtomicBool>,
    /// Times the stream went down since the agent started.
    reconnects: AtomicU64,
    /// [`ShipConfig::kmsg_not_kernel`].
    kmsg_not_kernel: Arc<AtomicU64>,
    /// Events the queue could not take (a full or failing state volume):
    /// dropped, and counted with the queue's own drops.
    unqueued: AtomicU64,
}

/// The queue's drops and the events it could not take.
fn dropped(shared: &Shared, queue: QueueStats) -> u64 {
    queue.dropped + shared.unqueued.load(Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Handle the agent's collection threads feed.
pub struct Shipper {
    shared: Arc<Shared>,
}

impl Shipper {
    /// Opens the queue and starts streaming to the aggregator on a thread
    /// of its own.
    pub fn start(config: ShipConfig, identity: pb::NodeIdentity) -> Result<Self, ShipError> {
        // A missing state directory is created (a fresh hostPath); one that
        // cannot be is a configuration error named by the queue.
        let _ = std::fs::create_dir_all(&config.state_dir);
        let queue = EventQueue::open(&config.state_dir, &identity.boot_id, config.queue_max_bytes)?;
        let pending = queue.len();
        if pending > 0 {
            tracing::info!(pending, "Replaying unacknowledged events from the queue.");
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            latest: Mutex::new(Latest::default()),
            wake: Notify::new(),
            connected: Arc::new(AtomicBool::new(false)),
            reconnects: AtomicU64::new(0),
            kmsg_not_kernel: config.kmsg_not_kernel.clone(),
            unqueued: AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ShipError::Thread)?;
        let s = shared.clone();
        std::thread::Builder::new()
            .name("ship".into())
            .spawn(move || runtime.block_on(connection_loop(&config, &identity, &s)))
            .map_err(ShipError::Thread)?;
        Ok(Self { shared })
    }

    /// Queues an event durably and wakes the stream. An event the queue
    /// cannot take (a full state volume, a disk error) is dropped and
    /// counted ([`Shipper::dropped`], the health's `queue_dropped_events`),
    /// and logged at the first and each power of two; collection goes on,
    /// and the queue takes events again once it can write.
    pub fn event(&self, e: &Event) {
        let payload = node_event(e, 0).encode_to_vec();
        if let Err(err) = lock(&self.shared.queue).push(&payload) {
            let n = self.shared.unqueued.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(error = %err, dropped = n,
                    "Cannot queue an event for the aggregator: dropped (the event is only in the agent's own output).");
            }
        }
        self.shared.wake.notify_one();
    }

    /// Events dropped: by the queue's bound (over its whole life) and,
    /// since the agent started, for want of a writable queue.
    pub fn dropped(&self) -> u64 {
        dropped(&self.shared, lock(&self.shared.queue).stats())
    }

    /// Records the newest sample of a container.
    pub fn container(&self, s: &ContainerSample) {
        let mut l = lock(&self.shared.latest);
        if l.containers
            .insert(s.container.cgroup_path.clone(), s.into())
            .is_some()
        {
            l.dropped += 1;
        }
    }

    /// Records the newest node sample.
    pub fn node(&self, n: &NodeSample) {
        lock(&self.shared.latest).node = Some(n.into());
    }

    /// Records the newest GPU collection.
    pub fn gpus(&self, gpus: &[GpuSample]) {
        lock(&self.shared.latest).gpus = gpus.iter().map(Into::into).collect();
    }

    /// Unacknowledged events in the queue.
    pub fn pending(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// A flag that is true while a stream to the aggregator is open (the
    /// agent's readiness reads it).
    pub fn connected(&self) -> Arc<AtomicBool> {
        self.shared.connected.clone()
    }
}

/// Keeps a stream open, reconnecting with jittered backoff.
async fn connection_loop(config: &ShipConfig, identity: &pb::NodeIdentity, shared: &Shared) {
    let mut backoff = Duration::from_millis(100);
    let mut protocol = gpuscope_proto::INGEST_PROTOCOL;
    loop {
        let started = Instant::now();
        let ended = session(config, identity, shared, protocol).await;
        shared.connected.store(false, Ordering::Relaxed);
        match ended {
            Ok(()) => {}
            Err(ShipError::Stream { status, .. })
                if protocol > 1 && status.code() == tonic::Code::FailedPrecondition =>
            {
                tracing::warn!(status = %status.message(),
                    "The aggregator does not speak protocol {protocol}; speaking protocol 1.");
                protocol = 1;
                continue;
            }
            Err(ShipError::Stream { status, .. })
                if status.code() == tonic::Code::Unauthenticated
                    && status.message().starts_with("token expired") =>
            {
                // The aggregator ended a stream whose token expired: the
                // kubelet has rotated the file by now (at 80 % of the
                // token's life), and the next connection reads it again.
                tracing::info!(status = %status.message(),
                    "Stream token expired; reconnecting with the token file's current token.");
                backoff = Duration::from_millis(100);
            }
            Err(e) => tracing::warn!(error = %e, "Aggregator stream down; reconnecting."),
        }
        shared.reconnects.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// `d` scaled by a factor in [0.5, 1.5), from the clock's nanoseconds.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d.mul_f64(0.5 + f64::from(nanos % 1000) / 1000.0)
}

/// `Bearer TOKEN` from a token file.
fn bearer(
    path: &std::path::Path,
) -> Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>, ShipError> {
    let err = |why: String| ShipError::Token {
        path: path.to_owned(),
        why,
    };
    let token = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    format!("Bearer {}", token.trim())
        .parse()
        .map_err(|_| err("not a token (control characters or non-ASCII)".to_owned()))
}

/// One stream: Hello, every unacknowledged event, then events as they
/// come, reports every interval, acks applied to the queue.
async fn session(
    config: &ShipConfig,
    identity: &pb::NodeIdentity,
    shared: &Shared,
    protocol: u32,
) -> Result<(), ShipError> {
    let url = config.aggregator.clone();
    let endpoint = endpoint(&url, &config.tls)?
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10));
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| ShipError::Connect {
            url: url.clone(),
            source,
        })?;
    let mut client = IngestClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AgentMessage>(16);
    let hello = pb::AgentMessage {
        kind: Some(pb::agent_message::Kind::Hello(pb::Hello {
            node: Some(identity.clone()),
            protocol,
        })),
    };
    let stream_err = |status: tonic::Status| ShipError::Stream {
        url: url.clone(),
        status: Box::new(status),
    };
    tx.send(hello)
        .await
        .map_err(|_| ShipError::Closed(url.clone()))?;
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(path) = &config.token_file {
        request
            .metadata_mut()
            .insert("authorization", bearer(path)?);
    }
    let mut inbound = client
        .stream(request)
        .await
        .map_err(stream_err)?
        .into_inner();
    tracing::info!(aggregator = %url, "Connected to the aggregator.");
    shared.connected.store(true, Ordering::Relaxed);
    let mut cursor: Option<(String, u64)> = None;
    let mut ids = (protocol >= 2).then(RefIds::default);
    let mut tick = tokio::time::interval(config.report_interval);
    let mut usage = SelfUsage::new();
    loop {
        // Send everything queued after the cursor, in batches per boot.
        loop {
            let batch = {
                let q = lock(&shared.queue);
                q.pending(cursor.as_ref().map(|(b, s)| (b.as_str(), *s)), 256)?
            };
            let Some(last) = batch.last() else {
                break;
            };
            cursor = Some((last.boot_id.clone(), last.seq));
            for msg in batches(batch) {
                tx.send(msg)
                    .await
                    .map_err(|_| ShipError::Closed(url.clone()))?;
            }
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            _ = tick.tick() => {
                // When the stream is backed up the samples wait for the
                // next tick (a container's newer sample replaces its older
                // one, which is counted as dropped then).
                if let Ok(slot) = tx.try_reserve() {
                    slot.send(take_report(shared, identity, ids.as_mut(), &mut usage));
                }
            }
            msg = inbound.message() => match msg {
                Ok(Some(pb::AggregatorMessage { kind: Some(pb::aggregator_message::Kind::Ack(ack)) })) => {
                    lock(&shared.queue).ack(&ack.boot_id, ack.up_to_seq)?;
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err(ShipError::Closed(url)),
                Err(status) => return Err(stream_err(status)),
            },
        }
    }
}

/// Queue entries as `EventBatch` messages, one per run of the same boot.
fn batches(entries: Vec<crate::ship::queue::Entry>) -> Vec<pb::AgentMessage> {
    let mut out: Vec<pb::EventBatch> = Vec::new();
    for e in entries {
        let mut event = match pb::NodeEvent::decode(e.payload.as_slice()) {
            Ok(ev) => ev,
            Err(err) => {
                tracing::error!(boot_id = %e.boot_id, seq = e.seq, error = %err, "Queued event does not decode; skipped.");
                continue;
            }
        };
        event.seq = e.seq;
        match out.last_mut() {
            Some(b) if b.boot_id == e.boot_id => b.events.push(event),
            _ => out.push(pb::EventBatch {
                boot_id: e.boot_id,
                events: vec![event],
            }),
        }
    }
    out.into_iter()
        .map(|b| pb::AgentMessage {
            kind: Some(pb::agent_message::Kind::Events(b)),
        })
        .collect()
}

/// The report of everything sampled since the last one; with `ids`
/// (protocol 2), containers are named by their stream-local ids.
fn take_report(
    shared: &Shared,
    identity: &pb::NodeIdentity,
    ids: Option<&mut RefIds>,
    usage: &mut SelfUsage,
) -> pb::AgentMessage {
    let mut queue = lock(&shared.queue).stats();
    queue.dropped = dropped(shared, queue);
    let agent = usage.health(
        queue,
        shared.reconnects.load(Ordering::Relaxed),
        shared.kmsg_not_kernel.load(Ordering::Relaxed),
    );
    let mut report = {
        let mut l = lock(&shared.latest);
        pb::NodeReport {
            node: Some(identity.clone()),
            node_sample: l.node.take(),
            containers: l.containers.drain().map(|(_, c)| c).collect(),
            events: Vec::new(),
            dropped_samples: l.dropped,
            gpus: std::mem::take(&mut l.gpus),
            agent: Some(agent),
        }
    };
    if let Some(ids) = ids {
        ids.apply(&mut report);
    }
    pb::AgentMessage {
        kind: Some(pb::agent_message::Kind::Report(report)),
    }
}

/// This node's identity: `node_name` (the DaemonSet passes
/// `spec.nodeName`), else the host name; the boot ID, kernel release and
/// cgroup mode read under `proc_root` and `cgroup_root`.
pub fn identity(
    node_name: Option<String>,
    proc_root: &std::path::Path,
    cgroup_root: &std::path::Path,
) -> std::io::Result<pb::NodeIdentity> {
    let read = |rel: &str| {
        std::fs::read_to_string(proc_root.join(rel))
            .map(|s| s.trim().to_owned())
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("{}: {e}", proc_root.join(rel).display()))
            })
    };
    let node_name = match node_name {
        Some(n) => n,
        None => read("sys/kernel/hostname")?,
    };
    let cgroup_mode = crate::collect::cgroup::discover::detect_layout(cgroup_root)
        .map_or(pb::CgroupMode::Unspecified, |l| l.mode.into());
    Ok(pb::NodeIdentity {
        node_name,
        boot_id: read("sys/kernel/random/boot_id")?,
        kernel_release: read("sys/kernel/osrelease")?,
        cgroup_mode: cgroup_mode as i32,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::pin::Pin;

    use gpuscope_proto::v1::ingest_server::{Ingest, IngestServer};
    use tokio_stream::{Stream, StreamExt};
    use tonic::{Request, Response, Status, Streaming};

    use super::*;

    /// Each report's Hello revision and container samples.
    type Seen = Vec<(u32, Vec<pb::ContainerSample>)>;

    /// An aggregator that speaks protocols up to `max` and records what
    /// it was sent.
    #[derive(Clone)]
    struct Fake {
        max: u32,
        seen: Arc<Mutex<Seen>>,
    }

    #[tonic::async_trait]
    impl Ingest for Fake {
        type StreamStream =
            Pin<Box<dyn Stream<Item = Result<pb::AggregatorMessage, Status>> + Send>>;

        async fn stream(
            &self,
            request: Request<Streaming<pb::AgentMessage>>,
        ) -> Result<Response<Self::StreamStream>, Status> {
            let mut inbound = request.into_inner();
            let Some(Ok(pb::AgentMessage {
                kind: Some(pb::agent_message::Kind::Hello(hello)),
            })) = inbound.next().await
            else {
                return Err(Status::invalid_argument("no Hello"));
            };
            if hello.protocol > self.max {
                return Err(Status::failed_precondition(format!(
                    "Hello.protocol {} is newer than this aggregator's {}",
                    hello.protocol, self.max
                )));
            }
            let seen = self.seen.clone();
            tokio::spawn(async move {
                while let Some(Ok(m)) = inbound.next().await {
                    if let Some(pb::agent_message::Kind::Report(r)) = m.kind {
                        lock(&seen).push((hello.protocol, r.containers));
                    }
                }
            });
            Ok(Response::new(Box::pin(tokio_stream::pending())))
        }
    }

    /// Starts the fake and an agent stream to it with one container
    /// sampled before every report; returns what the fake saw after
    /// `reports` reports with a container sample.
    async fn ship_to(max: u32, reports: usize) -> Seen {
        let fake = Fake {
            max,
            seen: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder()
            .add_service(IngestServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        let dir = tempfile::tempdir().unwrap();
        let shipper = Shipper::start(
            ShipConfig {
                aggregator: format!("http://{addr}"),
                state_dir: dir.path().to_owned(),
                queue_max_bytes: 1 << 20,
                report_interval: Duration::from_millis(20),
                tls: ClientTls::default(),
                token_file: None,
                kmsg_not_kernel: Arc::default(),
            },
            pb::NodeIdentity {
                node_name: "n".into(),
                boot_id: "b".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let sample: ContainerSample = pb::ContainerSample {
            container: Some(pb::ContainerRef {
                cgroup_path: "/kubepods/podu/c1".into(),
                pod_uid: "u".into(),
                container_id: "c1".into(),
                ..Default::default()
            }),
            memory: Some(pb::MemoryStats::default()),
            ..Default::default()
        }
        .into();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            shipper.container(&sample);
            tokio::time::sleep(Duration::from_millis(30)).await;
            let seen: Vec<_> = lock(&fake.seen)
                .iter()
                .filter(|(_, c)| !c.is_empty())
                .cloned()
                .collect();
            if seen.len() >= reports {
                return seen;
            }
            assert!(Instant::now() < deadline, "only {seen:?} arrived");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn protocol_2_names_a_container_once_then_by_id() {
        let seen = ship_to(gpuscope_proto::INGEST_PROTOCOL, 3).await;
        let first = &seen[0];
        assert_eq!(first.0, 2);
        assert_eq!(first.1[0].ref_id, 1);
        assert_eq!(
            first.1[0]
                .container
                .as_ref()
                .map(|r| r.container_id.as_str()),
            Some("c1")
        );
        for (protocol, containers) in &seen[1..] {
            assert_eq!(*protocol, 2);
            assert_eq!(containers[0].ref_id, 1);
            assert_eq!(containers[0].container, None, "announced already");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_older_aggregator_is_spoken_to_in_protocol_1() {
        let seen = ship_to(1, 2).await;
        for (protocol, containers) in &seen {
            assert_eq!(*protocol, 1);
            assert_eq!(containers[0].ref_id, 0);
            assert!(containers[0].container.is_some(), "every sample named");
        }
    }
}
