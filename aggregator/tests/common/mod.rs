//! Helpers shared by the aggregator's integration tests: a real tonic
//! client speaking the Ingest and Query protocols over loopback.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use gpuscope_proto::v1::{
    Ack, AgentMessage, ContainerRef, EventBatch, Hello, Incident, IncidentFilter,
    ListIncidentsRequest, NodeEvent, NodeIdentity, OomKill, Victim, Xid, agent_message,
    aggregator_message, ingest_client::IngestClient, node_event, query_client::QueryClient,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

/// A generous bound for anything that should happen at once.
pub const WAIT: Duration = Duration::from_secs(20);

/// Now, Unix nanoseconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// An OOM kill of a container of `pod_uid`.
pub fn oom(seq: u64, time: u64, pod_uid: &str) -> NodeEvent {
    NodeEvent {
        seq,
        time_unix_nanos: time,
        kind: Some(node_event::Kind::OomKill(OomKill {
            time_unix_nanos: time,
            container: Some(ContainerRef {
                cgroup_path: format!("/kubepods/burstable/pod{pod_uid}/c{seq}"),
                pod_uid: pod_uid.to_owned(),
                container_id: format!("{seq:064x}"),
                ..Default::default()
            }),
            limit_bytes: Some(256 << 20),
            victim: Some(Victim {
                pid: 4242,
                comm: "python".into(),
                anon_rss_bytes: 250 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

/// An XID 79 on a GPU.
pub fn xid(seq: u64, time: u64) -> NodeEvent {
    NodeEvent {
        seq,
        time_unix_nanos: time,
        kind: Some(node_event::Kind::Xid(Xid {
            gpu_uuid: "GPU-0000".into(),
            xid: 79,
            count: 1,
            ..Default::default()
        })),
    }
}

/// A Hello for (node, boot).
pub fn hello(node: &str, boot: &str) -> AgentMessage {
    AgentMessage {
        kind: Some(agent_message::Kind::Hello(Hello {
            node: Some(NodeIdentity {
                node_name: node.into(),
                boot_id: boot.into(),
                agent_version: "test".into(),
                ..Default::default()
            }),
            protocol: 1,
        })),
    }
}

/// An event batch.
pub fn batch(boot: &str, events: Vec<NodeEvent>) -> AgentMessage {
    AgentMessage {
        kind: Some(agent_message::Kind::Events(EventBatch {
            boot_id: boot.into(),
            events,
        })),
    }
}

/// One agent stream.
pub struct Agent {
    pub tx: mpsc::Sender<AgentMessage>,
    pub rx: Streaming<AggregatorMessage>,
}

pub use gpuscope_proto::v1::AggregatorMessage;

impl Agent {
    /// Opens a stream to `url` and sends the Hello.
    pub async fn connect(url: &str, node: &str, boot: &str) -> Agent {
        let mut client = IngestClient::connect(url.to_owned()).await.unwrap();
        let (tx, rx) = mpsc::channel(1024);
        tx.send(hello(node, boot)).await.unwrap();
        let resp = client.stream(ReceiverStream::new(rx)).await.unwrap();
        Agent {
            tx,
            rx: resp.into_inner(),
        }
    }

    /// The next ack.
    pub async fn ack(&mut self) -> Ack {
        let msg = tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("ack in time")
            .expect("stream ok")
            .expect("stream open");
        match msg.kind {
            Some(aggregator_message::Kind::Ack(a)) => a,
            None => panic!("empty AggregatorMessage"),
        }
    }

    /// Sends a batch and returns its ack.
    pub async fn send_batch(&mut self, boot: &str, events: Vec<NodeEvent>) -> Ack {
        self.tx.send(batch(boot, events)).await.unwrap();
        self.ack().await
    }
}

/// A Query client.
pub async fn query(url: &str) -> QueryClient<Channel> {
    QueryClient::connect(url.to_owned()).await.unwrap()
}

/// Every stored incident matching `filter`, newest first.
pub async fn incidents(url: &str, filter: IncidentFilter) -> Vec<Incident> {
    let resp = query(url)
        .await
        .list_incidents(ListIncidentsRequest {
            filter: Some(filter),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!resp.truncated);
    resp.incidents
}

/// The seqs of `incidents` of (node, boot), sorted.
pub fn seqs(incidents: &[Incident], node: &str, boot: &str) -> Vec<u64> {
    let mut v: Vec<u64> = incidents
        .iter()
        .filter(|i| i.node_name == node && i.boot_id == boot)
        .map(|i| i.event.as_ref().unwrap().seq)
        .collect();
    v.sort_unstable();
    v
}
