//! Full and damaged volumes, for real: the aggregator's incident store on
//! a file really truncated and on a size-limited tmpfs that a real
//! aggregator fills through a real agent stream, and the agent's state
//! directory on one (mounting needs root: these tests fail under `CI`
//! without it and skip loudly elsewhere).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gpuscope_aggregator::{Aggregator, Config};
use gpuscope_proto::v1::{
    AgentMessage, ContainerRef, EventBatch, Hello, IncidentFilter, ListIncidentsRequest,
    ListNodesRequest, NodeEvent, NodeIdentity, OomKill, agent_message, aggregator_message,
    ingest_client::IngestClient, node_event, query_client::QueryClient,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const NODE: &str = "node-full";
const BOOT: &str = "boot-1";

/// An OOM kill with a 16 KiB cgroup path: a few hundred fill a small
/// volume.
fn big_oom(seq: u64) -> NodeEvent {
    NodeEvent {
        seq,
        time_unix_nanos: 1_764_000_000_000_000_000 + seq,
        kind: Some(node_event::Kind::OomKill(OomKill {
            container: Some(ContainerRef {
                cgroup_path: format!("/kubepods/pod-{seq}/{}", "c".repeat(16 << 10)),
                pod_uid: format!("pod-{seq}"),
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

/// One agent stream: sends batches, reads acks.
struct Stream {
    tx: mpsc::Sender<AgentMessage>,
    rx: tonic::Streaming<gpuscope_proto::v1::AggregatorMessage>,
}

impl Stream {
    async fn open(url: &str) -> Stream {
        let mut client = IngestClient::connect(url.to_owned()).await.unwrap();
        let (tx, rx) = mpsc::channel(16);
        tx.send(AgentMessage {
            kind: Some(agent_message::Kind::Hello(Hello {
                node: Some(NodeIdentity {
                    node_name: NODE.into(),
                    boot_id: BOOT.into(),
                    ..Default::default()
                }),
                protocol: 1,
            })),
        })
        .await
        .unwrap();
        let rx = client
            .stream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Stream { tx, rx }
    }

    /// Sends `events`; the acknowledged seq, or the status that ended the
    /// stream instead.
    async fn send(&mut self, events: Vec<NodeEvent>) -> Result<u64, tonic::Status> {
        let msg = AgentMessage {
            kind: Some(agent_message::Kind::Events(EventBatch {
                boot_id: BOOT.into(),
                events,
            })),
        };
        if self.tx.send(msg).await.is_err() {
            return Err(tonic::Status::unavailable("stream closed"));
        }
        let answer = tokio::time::timeout(Duration::from_secs(20), self.rx.message())
            .await
            .expect("an ack or an error within 20 s");
        match answer? {
            Some(m) => match m.kind {
                Some(aggregator_message::Kind::Ack(a)) => Ok(a.up_to_seq),
                None => panic!("empty AggregatorMessage"),
            },
            None => Err(tonic::Status::unavailable("stream ended")),
        }
    }
}

async fn stored_seqs(url: &str) -> Vec<u64> {
    let mut seqs: Vec<u64> = QueryClient::connect(url.to_owned())
        .await
        .unwrap()
        .list_incidents(ListIncidentsRequest {
            filter: Some(IncidentFilter::default()),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .expect("queries answer")
        .into_inner()
        .incidents
        .iter()
        .map(|i| i.event.as_ref().unwrap().seq)
        .collect();
    seqs.sort_unstable();
    seqs
}

fn mount_tmpfs(at: &Path, size: &str) -> bool {
    Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "gpuscope-test",
        ])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

/// A full volume: the aggregator stops acknowledging (the agent keeps its
/// events), queries keep answering, and once space returns ingest resumes
/// by itself: every event the agent sent is stored, none lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_volume_stops_acks_keeps_queries_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("data");
    std::fs::create_dir(&mnt).unwrap();
    if !gpuscope_tests::require("root to mount a tmpfs", mount_tmpfs(&mnt, "3m")) {
        return;
    }
    let _mounted = Mounted(&mnt);
    let config = Config::new("127.0.0.1:0".parse().unwrap(), mnt.clone());
    let agg = Aggregator::start(config).await.unwrap();
    let url = format!("http://{}", agg.local_addr());

    // Fill the volume: one event per batch until one is not acknowledged.
    let mut stream = Stream::open(&url).await;
    let mut acked = 0;
    let refused = loop {
        assert!(acked < 1000, "3 MiB never filled");
        match stream.send(vec![big_oom(acked + 1)]).await {
            Ok(up_to) => {
                assert_eq!(up_to, acked + 1);
                acked = up_to;
            }
            Err(status) => break status,
        }
    };
    assert!(acked > 10, "the volume filled after only {acked} events");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    // The agent keeps what was not acknowledged: it sends it again, and
    // while the volume is full it is refused again, not acknowledged.
    let unacked: Vec<NodeEvent> = (acked + 1..=acked + 5).map(big_oom).collect();
    let mut again = Stream::open(&url).await;
    assert!(again.send(unacked.clone()).await.is_err());
    // Queries answer from what is stored.
    assert_eq!(stored_seqs(&url).await, (1..=acked).collect::<Vec<_>>());

    // Space returns.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(grown.success());
    // The agent's next try is acknowledged, with nothing lost.
    let deadline = Instant::now() + Duration::from_secs(20);
    let up_to = loop {
        let mut s = Stream::open(&url).await;
        match s.send(unacked.clone()).await {
            Ok(up_to) => break up_to,
            Err(status) => {
                assert!(
                    Instant::now() < deadline,
                    "no ack within 20 s of space returning: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(up_to, acked + 5);
    assert_eq!(stored_seqs(&url).await, (1..=acked + 5).collect::<Vec<_>>());
    // The subject is ingest, not shutdown: a slow stream ending is no failure here.
    if let Err(e) = agg.shutdown(Duration::from_secs(5)).await {
        eprintln!("shutdown: {e}");
    }
}

/// A store file really truncated (as a full or failing disk leaves one)
/// does not stop the aggregator: it is kept aside under a dated name, a
/// fresh store starts, and it says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_store_is_kept_aside_and_a_fresh_one_serves() {
    let dir = tempfile::tempdir().unwrap();
    let url_of = |agg: &Aggregator| format!("http://{}", agg.local_addr());
    {
        let agg = Aggregator::start(Config::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().to_owned(),
        ))
        .await
        .unwrap();
        let mut s = Stream::open(&url_of(&agg)).await;
        assert_eq!(s.send((1..=20).map(big_oom).collect()).await.unwrap(), 20);
        agg.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let file = dir.path().join("incidents.redb");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let agg = Aggregator::start(Config::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().to_owned(),
    ))
    .await
    .expect("a damaged store does not stop the aggregator");
    let reset = agg.store_reset().expect("the reset is reported");
    assert!(reset.reason.contains("truncated"), "{}", reset.reason);
    let kept = reset
        .kept_as
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(kept.starts_with("incidents.redb.damaged-20"), "{kept}");
    assert_eq!(std::fs::metadata(&reset.kept_as).unwrap().len(), len / 2);
    // `gpuscope nodes` says so (its ListNodes answer's notices).
    let url = url_of(&agg);
    let notices = QueryClient::connect(url.clone())
        .await
        .unwrap()
        .list_nodes(ListNodesRequest {})
        .await
        .unwrap()
        .into_inner()
        .notices;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("damaged beyond repair"),
        "{}",
        notices[0]
    );
    assert!(notices[0].contains(&kept), "{}", notices[0]);
    // The fresh store serves and stores.
    assert!(stored_seqs(&url).await.is_empty());
    let mut s = Stream::open(&url).await;
    assert_eq!(s.send(vec![big_oom(1)]).await.unwrap(), 1);
    assert_eq!(stored_seqs(&url).await, [1]);
    agg.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// A full agent state directory: events beyond what the queue holds are
/// dropped and counted, collection goes on, and once there is room the
/// queue takes events again.
#[test]
fn a_full_agent_state_dir_drops_and_counts_and_goes_on() {
    use gpuscope_agent::ship::stream::{ShipConfig, Shipper};
    use gpuscope_model::{Event, Timestamp};

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    if !gpuscope_tests::require("root to mount a tmpfs", mount_tmpfs(&state, "64k")) {
        return;
    }
    let _mounted = Mounted(&state);
    let shipper = Shipper::start(
        ShipConfig {
            // Nothing listens there: every event stays in the queue.
            aggregator: "http://127.0.0.1:1".into(),
            state_dir: state.clone(),
            queue_max_bytes: 64 << 20,
            report_interval: Duration::from_secs(1),
            tls: Default::default(),
            token_file: None,
            kmsg_not_kernel: Default::default(),
        },
        NodeIdentity {
            node_name: NODE.into(),
            boot_id: BOOT.into(),
            ..Default::default()
        },
    )
    .unwrap();
    let event = Event::KmsgOverrun {
        time: Timestamp::now(),
        lost: 1,
    };
    let sent = 5000;
    for _ in 0..sent {
        shipper.event(&event);
    }
    let (queued, dropped) = (shipper.pending() as u64, shipper.dropped());
    assert!(queued > 100, "the queue took only {queued} events");
    assert!(
        dropped > 0,
        "64 KiB held all {sent} events: nothing was full"
    );
    assert_eq!(
        queued + dropped,
        sent,
        "queued {queued} + dropped {dropped}"
    );

    // Room again: the queue takes events again.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=16m"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(grown.success());
    for _ in 0..10 {
        shipper.event(&event);
    }
    assert_eq!(shipper.pending() as u64, queued + 10);
    assert_eq!(shipper.dropped(), dropped);
}
