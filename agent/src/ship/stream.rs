//! The agent's stream to the aggregator (`gpuscope.v1.Ingest/Stream`).
//!
//! - **Events** go through the durable [`EventQueue`] first: each is
//!   numbered and fsynced before it is sent, sent again after every
//!   reconnect until the aggregator acknowledges it, and survives an agent
//!   restart. The aggregator applies each (node, boot, seq) once.
//! - **Samples**: latest wins. Each report carries the newest sample of
//!   every container seen since the previous report, the newest node
//!   sample and the newest GPU collection; a sample replaced before it was
//!   sent, or a report that cannot be sent while disconnected, is counted
//!   as dropped and reported in `dropped_samples`.
//! - **Reconnect** with exponential backoff (100 ms doubling to 30 s) and
//!   ±50 % jitter, so a restarted aggregator is not hit by every node at
//!   the same instant.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gpuscope_proto::v1 as pb;
use gpuscope_proto::v1::ingest_client::IngestClient;
use prost::Message;
use tokio::sync::Notify;
use tokio_stream::wrappers::ReceiverStream;

use crate::model::{ContainerSample, Event, GpuSample, NodeSample};
use crate::ship::endpoint::{ClientTls, EndpointError, endpoint};
use crate::ship::queue::{EventQueue, QueueError};
use crate::wire::node_event;

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

    /// Queues an event durably and wakes the stream. A queue failure is
    /// logged (the event is then only in the agent's own output).
    pub fn event(&self, e: &Event) {
        let payload = node_event(e, 0).encode_to_vec();
        if let Err(err) = lock(&self.shared.queue).push(&payload) {
            tracing::error!(error = %err, "Cannot queue an event for the aggregator.");
        }
        self.shared.wake.notify_one();
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
}

/// Keeps a stream open, reconnecting with jittered backoff.
async fn connection_loop(config: &ShipConfig, identity: &pb::NodeIdentity, shared: &Shared) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        match session(config, identity, shared).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "Aggregator stream down; reconnecting."),
        }
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

/// One stream: Hello, every unacknowledged event, then events as they
/// come, reports every interval, acks applied to the queue.
async fn session(
    config: &ShipConfig,
    identity: &pb::NodeIdentity,
    shared: &Shared,
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
            protocol: 1,
        })),
    };
    let stream_err = |status: tonic::Status| ShipError::Stream {
        url: url.clone(),
        status: Box::new(status),
    };
    tx.send(hello)
        .await
        .map_err(|_| ShipError::Closed(url.clone()))?;
    let mut inbound = client
        .stream(ReceiverStream::new(rx))
        .await
        .map_err(stream_err)?
        .into_inner();
    tracing::info!(aggregator = %url, "Connected to the aggregator.");
    let mut cursor: Option<(String, u64)> = None;
    let mut tick = tokio::time::interval(config.report_interval);
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
                let report = take_report(shared, identity);
                if tx.try_send(report).is_err() {
                    // The stream is backed up: the samples are dropped.
                    lock(&shared.latest).dropped += 1;
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

fn take_report(shared: &Shared, identity: &pb::NodeIdentity) -> pb::AgentMessage {
    let mut l = lock(&shared.latest);
    let report = pb::NodeReport {
        node: Some(identity.clone()),
        node_sample: l.node.take(),
        containers: l.containers.drain().map(|(_, c)| c).collect(),
        events: Vec::new(),
        dropped_samples: l.dropped,
        gpus: std::mem::take(&mut l.gpus),
    };
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
