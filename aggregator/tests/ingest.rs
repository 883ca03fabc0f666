//! Ingest over loopback with a real tonic client: dedupe, ack semantics,
//! out-of-order seqs, and rogue streams that must not disturb a
//! well-behaved agent.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use gpuscope_aggregator::{Aggregator, Config};
use gpuscope_proto::v1::{
    AgentMessage, AggregatorMessage, ContainerRef, ContainerSample, GetSeriesRequest, Hello,
    IncidentFilter, ListContainersRequest, MemoryStats, NodeIdentity, NodeReport, agent_message,
    get_series_request,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

async fn start(tweak: impl FnOnce(&mut Config)) -> (Aggregator, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    tweak(&mut config);
    let agg = Aggregator::start(config).await.unwrap();
    let url = format!("http://{}", agg.local_addr());
    (agg, url, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn resent_batch_is_stored_once() {
    let (_agg, url, _dir) = start(|_| {}).await;
    let n = 200;
    let events: Vec<_> = (1..=n).map(|s| oom(s, now(), "pod-a")).collect();
    let mut agent = Agent::connect(&url, "node-a", "boot-1").await;
    assert_eq!(
        agent.send_batch("boot-1", events.clone()).await.up_to_seq,
        n
    );
    // The same batch again, on the same stream and on a new one.
    assert_eq!(
        agent.send_batch("boot-1", events.clone()).await.up_to_seq,
        n
    );
    let mut again = Agent::connect(&url, "node-a", "boot-1").await;
    assert_eq!(again.send_batch("boot-1", events).await.up_to_seq, n);

    let stored = incidents(&url, IncidentFilter::default()).await;
    assert_eq!(stored.len() as u64, n);
    assert_eq!(
        seqs(&stored, "node-a", "boot-1"),
        (1..=n).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_order_seqs_ack_the_highest_contiguous() {
    let (_agg, url, _dir) = start(|_| {}).await;
    let mut agent = Agent::connect(&url, "node-b", "boot-1").await;
    let t = now();
    let ack = agent
        .send_batch("boot-1", vec![xid(3, t), xid(1, t), xid(5, t), xid(3, t)])
        .await;
    assert_eq!((ack.boot_id.as_str(), ack.up_to_seq), ("boot-1", 1));
    assert_eq!(
        agent.send_batch("boot-1", vec![xid(2, t)]).await.up_to_seq,
        3
    );
    assert_eq!(
        agent.send_batch("boot-1", vec![xid(4, t)]).await.up_to_seq,
        5
    );
    // Another boot of the same node has its own sequence.
    assert_eq!(
        agent.send_batch("boot-0", vec![xid(1, t)]).await.up_to_seq,
        1
    );
    let stored = incidents(&url, IncidentFilter::default()).await;
    assert_eq!(seqs(&stored, "node-b", "boot-1"), vec![1, 2, 3, 4, 5]);
    assert_eq!(seqs(&stored, "node-b", "boot-0"), vec![1]);
}

/// Opens a raw stream and returns the status it ends with.
async fn rogue_status(url: &str, msgs: Vec<AgentMessage>) -> tonic::Status {
    let mut client = gpuscope_proto::v1::ingest_client::IngestClient::connect(url.to_owned())
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(16);
    for m in msgs {
        tx.send(m).await.unwrap();
    }
    let result = client.stream(ReceiverStream::new(rx)).await;
    let status = match result {
        Err(s) => s,
        Ok(resp) => {
            let mut inbound = resp.into_inner();
            loop {
                match tokio::time::timeout(WAIT, inbound.message()).await.unwrap() {
                    Err(s) => break s,
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("stream ended without an error status"),
                }
            }
        }
    };
    drop(tx);
    status
}

/// A message whose field 1 is a varint where AgentMessage has a Hello:
/// it cannot decode as an AgentMessage.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(uint64, tag = "1")]
    x: u64,
}

#[tokio::test(flavor = "multi_thread")]
async fn rogue_streams_are_rejected_and_others_keep_working() {
    let (_agg, url, _dir) = start(|c| c.max_message_bytes = 64 * 1024).await;
    let mut good = Agent::connect(&url, "good", "boot-1").await;
    let mut seq = 0;
    let mut good_batch = async |good: &mut Agent| {
        seq += 1;
        let ack = good.send_batch("boot-1", vec![oom(seq, now(), "p")]).await;
        assert_eq!(ack.up_to_seq, seq, "well-behaved agent keeps being acked");
    };
    good_batch(&mut good).await;

    // 1. No Hello: a report first.
    let report = AgentMessage {
        kind: Some(agent_message::Kind::Report(NodeReport::default())),
    };
    let s = rogue_status(&url, vec![report]).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(
        s.message().contains("first message must be a Hello"),
        "{s:?}"
    );
    good_batch(&mut good).await;

    // 2. A Hello without a node name.
    let s = rogue_status(&url, vec![hello("", "b")]).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("node_name"), "{s:?}");

    // 3. Oversized: a Hello of 100 KiB against a 64 KiB limit.
    let big = AgentMessage {
        kind: Some(agent_message::Kind::Hello(Hello {
            node: Some(NodeIdentity {
                node_name: "big".into(),
                boot_id: "b".into(),
                agent_version: "x".repeat(100 * 1024),
                ..Default::default()
            }),
            protocol: 1,
        })),
    };
    let s = rogue_status(&url, vec![big]).await;
    assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
    assert!(s.message().contains("too large"), "{s:?}");
    good_batch(&mut good).await;

    // 4. Oversized after a valid Hello: ends that stream only.
    let big_batch = batch(
        "b",
        vec![{
            let mut e = oom(1, now(), "p");
            if let Some(gpuscope_proto::v1::node_event::Kind::OomKill(o)) = &mut e.kind {
                o.trigger_comm = Some("y".repeat(100 * 1024));
            }
            e
        }],
    );
    let s = rogue_status(&url, vec![hello("big2", "b"), big_batch]).await;
    assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
    good_batch(&mut good).await;

    // 5. Undecodable protobuf inside a well-formed gRPC frame.
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Garbage, AggregatorMessage>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/gpuscope.v1.Ingest/Stream");
    let garbage = tokio_stream::iter(vec![Garbage { x: 7 }]);
    let s = grpc
        .streaming(tonic::Request::new(garbage), path, codec)
        .await
        .expect_err("garbage is rejected");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("malformed AgentMessage"), "{s:?}");
    good_batch(&mut good).await;

    // 6. Garbage bytes on a raw TCP connection: the connection is closed.
    let addr = url.trim_start_matches("http://");
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"\x16\x03\x01 this is not HTTP/2 at all \xff\xfe\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    tokio::time::timeout(WAIT, raw.read_to_end(&mut sink))
        .await
        .expect("server closes a garbage connection")
        .ok();
    good_batch(&mut good).await;

    // 7. A stream that never sends anything is not served forever: covered by
    // --hello-timeout; the good agent is still fine.
    good_batch(&mut good).await;
    let stored = incidents(&url, IncidentFilter::default()).await;
    assert_eq!(
        seqs(&stored, "good", "boot-1"),
        (1..=seq).collect::<Vec<_>>()
    );
    assert!(stored.iter().all(|i| i.node_name == "good"));
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_without_hello_times_out() {
    let (_agg, url, _dir) = start(|c| c.hello_timeout = Duration::from_millis(300)).await;
    let s = rogue_status(&url, vec![]).await;
    assert_eq!(s.code(), Code::DeadlineExceeded, "{s:?}");
    assert!(s.message().contains("no Hello"), "{s:?}");
}

/// A sample of `path` (pod `uid`) using `usage` bytes at `time`, named by
/// stream-local `id` and, when `announce`, by its reference too.
fn sample(path: &str, uid: &str, id: u32, announce: bool, usage: u64) -> ContainerSample {
    ContainerSample {
        time_unix_nanos: now(),
        container: announce.then(|| ContainerRef {
            cgroup_path: path.into(),
            pod_uid: uid.into(),
            container_id: path.trim_start_matches('/').into(),
            ..Default::default()
        }),
        memory: Some(MemoryStats {
            usage_bytes: usage,
            ..Default::default()
        }),
        ref_id: id,
        ..Default::default()
    }
}

fn report(containers: Vec<ContainerSample>) -> AgentMessage {
    AgentMessage {
        kind: Some(agent_message::Kind::Report(NodeReport {
            containers,
            ..Default::default()
        })),
    }
}

fn hello2(node: &str) -> AgentMessage {
    let mut h = hello(node, "boot-1");
    if let Some(agent_message::Kind::Hello(h)) = &mut h.kind {
        h.protocol = 2;
    }
    h
}

/// Every container of `node`: (cgroup path, pod UID, latest usage, points).
async fn containers(url: &str, node: &str) -> Vec<(String, String, u64, usize)> {
    let mut q = query(url).await;
    let list = q
        .list_containers(ListContainersRequest {
            node_name: node.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    let mut out = Vec::new();
    for c in list {
        let latest = c.latest.unwrap();
        let r = latest.container.unwrap();
        let series = q
            .get_series(GetSeriesRequest {
                node_name: node.into(),
                target: Some(get_series_request::Target::ContainerId(
                    r.container_id.clone(),
                )),
            })
            .await
            .unwrap()
            .into_inner();
        out.push((
            r.cgroup_path,
            r.pod_uid,
            latest.memory.unwrap().usage_bytes,
            series.container_points.len(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn container_ids_name_containers_after_their_announcement() {
    let (_agg, url, _dir) = start(|_| {}).await;
    let mut client = gpuscope_proto::v1::ingest_client::IngestClient::connect(url.clone())
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(16);
    tx.send(hello2("n2")).await.unwrap();
    let _resp = client.stream(ReceiverStream::new(rx)).await.unwrap();
    // Announced, then by id in another order, then id 1 rebound to a new
    // container (the kubelet restarted /a as /c), id 2 still /b.
    tx.send(report(vec![
        sample("/a", "pa", 1, true, 10),
        sample("/b", "pb", 2, true, 20),
    ]))
    .await
    .unwrap();
    tx.send(report(vec![
        sample("", "", 2, false, 21),
        sample("", "", 1, false, 11),
    ]))
    .await
    .unwrap();
    tx.send(report(vec![
        sample("/c", "pa", 1, true, 30),
        sample("", "", 2, false, 22),
    ]))
    .await
    .unwrap();
    tx.send(report(vec![
        sample("", "", 1, false, 31),
        sample("", "", 2, false, 23),
    ]))
    .await
    .unwrap();
    let want = vec![
        ("/a".to_owned(), "pa".to_owned(), 11, 2),
        ("/b".to_owned(), "pb".to_owned(), 23, 4),
        ("/c".to_owned(), "pa".to_owned(), 31, 2),
    ];
    let mut got = Vec::new();
    for _ in 0..100 {
        got = containers(&url, "n2").await;
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got, want);

    // Ids live as long as their stream: a new stream must announce again.
    let s = rogue_status(
        &url,
        vec![hello2("n2"), report(vec![sample("", "", 2, false, 24)])],
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(
        s.message()
            .contains("ContainerSample.ref_id was not announced on this stream"),
        "{s:?}"
    );
    let s = rogue_status(
        &url,
        vec![
            hello2("n3"),
            report(vec![sample("/x", "px", 70_000, true, 1)]),
        ],
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("ref_id is over 65535"), "{s:?}");
    // The first stream's containers are untouched by the rogue ones.
    assert_eq!(containers(&url, "n2").await, want);
}
