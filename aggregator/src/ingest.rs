//! The ingest stream server (`gpuscope.v1.Ingest/Stream`).
//!
//! Per stream: the first message must be a Hello (else INVALID_ARGUMENT);
//! then reports update [`State`] and event batches go to the [`Store`]. A
//! batch is acknowledged only after its transaction committed, with the
//! highest contiguous stored seq of its boot, so an ack never covers an
//! event that is not on disk. A stream that breaks the contract (garbage,
//! an oversized message, no Hello) is ended with a status naming what was
//! wrong and a warn log naming the peer; other streams are not affected.

use std::sync::Arc;
use std::time::Duration;

use gpuscope_proto::v1::{
    Ack, AgentMessage, AggregatorMessage, EventBatch, Hello, Incident, NodeEvent, agent_message,
    aggregator_message, ingest_server::Ingest,
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::state::State;
use crate::store::Store;

/// Protocol revision this aggregator speaks (Hello.protocol).
pub const PROTOCOL: u32 = 1;

/// The Ingest service.
#[derive(Debug, Clone)]
pub struct IngestService {
    store: Arc<Store>,
    state: Arc<State>,
    incidents: broadcast::Sender<Arc<Incident>>,
    hello_timeout: Duration,
    shutdown: watch::Receiver<bool>,
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
        }
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

fn message_name(kind: &Option<agent_message::Kind>) -> &'static str {
    match kind {
        None => "an empty AgentMessage",
        Some(agent_message::Kind::Hello(_)) => "Hello",
        Some(agent_message::Kind::Report(_)) => "NodeReport",
        Some(agent_message::Kind::Events(_)) => "EventBatch",
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
    if hello.protocol > PROTOCOL {
        return Err(Status::failed_precondition(format!(
            "Hello.protocol {} is newer than this aggregator's {PROTOCOL}",
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

#[tonic::async_trait]
impl Ingest for IngestService {
    type StreamStream = ReceiverStream<Result<AggregatorMessage, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
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
        let hello = match first.kind {
            Some(agent_message::Kind::Hello(h)) => h,
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
        let (tx, rx) = mpsc::channel(64);
        let session = Session {
            peer,
            hello,
            svc: self.clone(),
            tx,
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

    async fn run(self, mut inbound: Streaming<AgentMessage>) {
        let identity = self.hello.node.clone().unwrap_or_default();
        let _connection = self.svc.state.connect(&identity);
        tracing::info!(peer = %self.peer, node = %identity.node_name, boot_id = %identity.boot_id,
            agent_version = %identity.agent_version, "Agent connected.");
        let mut shutdown = self.svc.shutdown.clone();
        let end = loop {
            let msg = tokio::select! {
                m = inbound.message() => m,
                _ = crate::stopped(&mut shutdown) => {
                    break Some(Status::unavailable("aggregator shutting down"));
                }
            };
            let msg = match msg {
                Ok(Some(m)) => m,
                Ok(None) => break None,
                Err(status) => break Some(reject(&self.peer, read_status(status))),
            };
            let result = match msg.kind {
                Some(agent_message::Kind::Report(mut report)) => {
                    self.svc.state.apply_report(self.node_name(), &mut report);
                    if report.events.is_empty() {
                        Ok(())
                    } else {
                        // Events inside a report are stored like a batch of
                        // the report's boot, so none is lost.
                        let boot = report
                            .node
                            .as_ref()
                            .map(|n| n.boot_id.clone())
                            .filter(|b| !b.is_empty())
                            .unwrap_or_else(|| self.boot_id().to_owned());
                        self.store(EventBatch {
                            boot_id: boot,
                            events: report.events,
                        })
                        .await
                    }
                }
                Some(agent_message::Kind::Events(batch)) => self.store(batch).await,
                Some(agent_message::Kind::Hello(_)) => Err(Status::invalid_argument(
                    "a second Hello on the same stream (open a new stream instead)",
                )),
                None => Err(Status::invalid_argument(
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
            store.store_batch(&node, &boot, &events, crate::now_unix_nanos())
        })
        .await
        .map_err(|e| Status::internal(format!("store task failed: {e}")))?
        .map_err(|e| {
            tracing::error!(node = %self.node_name(), error = %e, "Storing events failed.");
            Status::internal(format!("storing events failed: {e}"))
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
