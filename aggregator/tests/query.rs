//! The query service over loopback: node, GPU and container state, series,
//! incident filters, WatchIncidents and retention.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use gpuscope_aggregator::{Aggregator, Config};
use gpuscope_proto::v1::{
    AgentMessage, ContainerRef, ContainerSample, GetSeriesRequest, GpuSample, Incident,
    IncidentFilter, IncidentKind, ListContainersRequest, ListGpusRequest, ListIncidentsRequest,
    ListNodesRequest, MemoryStats, NodeReport, NodeSample, WatchIncidentsRequest,
    WatchIncidentsResponse, agent_message, get_series_request::Target, watch_incidents_response,
};

async fn start(tweak: impl FnOnce(&mut Config)) -> (Aggregator, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    tweak(&mut config);
    let agg = Aggregator::start(config).await.unwrap();
    let url = format!("http://{}", agg.local_addr());
    (agg, url, dir)
}

fn container(pod: &str, id: &str, usage: u64) -> ContainerSample {
    ContainerSample {
        time_unix_nanos: now(),
        container: Some(ContainerRef {
            cgroup_path: format!("/kubepods/pod{pod}/{id}"),
            pod_uid: pod.into(),
            container_id: id.into(),
            ..Default::default()
        }),
        memory: Some(MemoryStats {
            usage_bytes: usage,
            limit_bytes: Some(1 << 30),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn report(usage: u64) -> AgentMessage {
    AgentMessage {
        kind: Some(agent_message::Kind::Report(NodeReport {
            node_sample: Some(NodeSample {
                time_unix_nanos: now(),
                mem_total_bytes: 64 << 30,
                mem_available_bytes: 32 << 30,
                ..Default::default()
            }),
            containers: vec![container("pod-1", "c1", usage), container("pod-2", "c2", 7)],
            gpus: vec![
                GpuSample {
                    index: 1,
                    uuid: "GPU-b".into(),
                    memory_used_bytes: usage,
                    ..Default::default()
                },
                GpuSample {
                    index: 0,
                    uuid: "GPU-a".into(),
                    utilization_gpu_percent: Some(50),
                    ..Default::default()
                },
            ],
            dropped_samples: 3,
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_gpus_containers_and_series() {
    // No coarse tier: the reports carry the real clock, and a step
    // boundary between them would add a merged point before the newest 3.
    let (_agg, url, _dir) = start(|c| {
        c.history.container_points = 3;
        c.history.container_coarse_points = 0;
    })
    .await;
    let mut agent = Agent::connect(&url, "node-q", "boot-1").await;
    for usage in [10, 20, 30, 40] {
        agent.tx.send(report(usage)).await.unwrap();
    }
    // An event batch after the reports: its ack means the reports are applied.
    agent.send_batch("boot-1", vec![xid(1, now())]).await;
    let mut q = query(&url).await;

    let nodes = q
        .list_nodes(ListNodesRequest {})
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    let n = &nodes[0];
    assert_eq!(n.identity.as_ref().unwrap().node_name, "node-q");
    assert!(n.connected);
    assert_eq!(n.dropped_samples, 3);
    assert_eq!((n.containers, n.gpus), (2, 2));
    assert_eq!(n.latest.as_ref().unwrap().mem_total_bytes, 64 << 30);

    let gpus = q
        .list_gpus(ListGpusRequest::default())
        .await
        .unwrap()
        .into_inner()
        .gpus;
    let uuids: Vec<_> = gpus
        .iter()
        .map(|g| g.latest.as_ref().unwrap().uuid.as_str())
        .collect();
    assert_eq!(uuids, ["GPU-a", "GPU-b"], "sorted by index");
    assert!(
        q.list_gpus(ListGpusRequest {
            node_name: "other".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .gpus
        .is_empty()
    );

    let cs = q
        .list_containers(ListContainersRequest {
            pod_uid: "pod-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(cs.len(), 1);
    let latest = cs[0].latest.as_ref().unwrap();
    assert_eq!(latest.memory.as_ref().unwrap().usage_bytes, 40);

    let series = q
        .get_series(GetSeriesRequest {
            target: Some(Target::ContainerId("c1".into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(series.node_name, "node-q");
    let usage: Vec<_> = series
        .container_points
        .iter()
        .map(|p| p.usage_bytes)
        .collect();
    assert_eq!(
        usage,
        [20, 30, 40],
        "ring of 3 keeps the newest, oldest first"
    );
    assert_eq!(series.container_points[0].limit_bytes, Some(1 << 30));

    let series = q
        .get_series(GetSeriesRequest {
            target: Some(Target::GpuUuid("GPU-b".into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let used: Vec<_> = series
        .gpu_points
        .iter()
        .map(|p| p.memory_used_bytes)
        .collect();
    assert_eq!(used, [10, 20, 30, 40]);

    let missing = q
        .get_series(GetSeriesRequest {
            target: Some(Target::CgroupPath("/nope".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    drop(agent);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let nodes = q
            .list_nodes(ListNodesRequest {})
            .await
            .unwrap()
            .into_inner()
            .nodes;
        if !nodes[0].connected {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the disconnect is never seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn incident_filters() {
    let (_agg, url, _dir) = start(|_| {}).await;
    let t0 = now() - 3_600_000_000_000;
    let sec = 1_000_000_000;
    let mut a = Agent::connect(&url, "node-a", "b").await;
    a.send_batch(
        "b",
        vec![
            oom(1, t0, "pod-1"),
            xid(2, t0 + sec),
            oom(3, t0 + 2 * sec, "pod-2"),
        ],
    )
    .await;
    let mut b = Agent::connect(&url, "node-b", "b").await;
    b.send_batch("b", vec![oom(1, t0 + 3 * sec, "pod-1")]).await;

    let all = incidents(&url, IncidentFilter::default()).await;
    let order: Vec<_> = all
        .iter()
        .map(|i| i.event.as_ref().unwrap().time_unix_nanos)
        .collect();
    assert_eq!(
        order,
        [t0 + 3 * sec, t0 + 2 * sec, t0 + sec, t0],
        "newest first"
    );

    let by_node = incidents(
        &url,
        IncidentFilter {
            node_name: "node-a".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(seqs(&by_node, "node-a", "b"), [1, 2, 3]);
    assert_eq!(by_node.len(), 3);

    let by_pod = incidents(
        &url,
        IncidentFilter {
            pod_uid: "pod-1".into(),
            ..Default::default()
        },
    )
    .await;
    let who: Vec<_> = by_pod.iter().map(|i| i.node_name.as_str()).collect();
    assert_eq!(who, ["node-b", "node-a"]);

    let xids = incidents(
        &url,
        IncidentFilter {
            kinds: vec![IncidentKind::Xid as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(xids.len(), 1);
    assert_eq!(xids[0].event.as_ref().unwrap().seq, 2);

    let mut q = query(&url).await;
    let resp = q
        .list_incidents(ListIncidentsRequest {
            since_unix_nanos: t0 + sec,
            until_unix_nanos: t0 + 3 * sec,
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.truncated);
    assert_eq!(resp.incidents.len(), 1);
    assert_eq!(
        resp.incidents[0].event.as_ref().unwrap().time_unix_nanos,
        t0 + 2 * sec
    );
}

/// The next message of an incident watch, which must be an incident.
async fn next_incident(watch: &mut tonic::Streaming<WatchIncidentsResponse>) -> Incident {
    let msg = tokio::time::timeout(WAIT, watch.message())
        .await
        .expect("an incident in time")
        .expect("watch stream")
        .expect("watch still open");
    match msg.kind.expect("kind") {
        watch_incidents_response::Kind::Incident(i) => i,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_delivers_a_new_oom_incident() {
    let (_agg, url, _dir) = start(|_| {}).await;
    let mut q = query(&url).await;
    let mut watch = q
        .watch_incidents(WatchIncidentsRequest {
            filter: Some(IncidentFilter {
                kinds: vec![IncidentKind::OomKill as i32],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let mut agent = Agent::connect(&url, "node-w", "b").await;
    // An XID (filtered out), then an OOM kill, then the OOM kill resent
    // (a duplicate: no second incident).
    agent.send_batch("b", vec![xid(1, now())]).await;
    agent.send_batch("b", vec![oom(2, now(), "pod-w")]).await;
    agent.send_batch("b", vec![oom(2, now(), "pod-w")]).await;
    agent.send_batch("b", vec![oom(3, now(), "pod-w")]).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let i = next_incident(&mut watch).await;
        assert_eq!(i.node_name, "node-w");
        got.push(i.event.unwrap().seq);
    }
    assert_eq!(got, [2, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_old_incidents() {
    let (_agg, url, _dir) = start(|c| {
        c.retention = Duration::from_secs(3600);
        c.retention_interval = Duration::from_millis(50);
    })
    .await;
    let mut agent = Agent::connect(&url, "node-r", "b").await;
    let old = now() - 2 * 3_600_000_000_000;
    let ack = agent
        .send_batch("b", vec![oom(1, old, "p"), oom(2, now(), "p"), xid(3, old)])
        .await;
    assert_eq!(ack.up_to_seq, 3);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = incidents(&url, IncidentFilter::default()).await;
        if left.len() == 1 {
            assert_eq!(left[0].event.as_ref().unwrap().seq, 2);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "old incidents not deleted: {}",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A late resend of a deleted event is still a duplicate: not stored
    // again (retention would delete it again at once, so the list cannot
    // tell), and so not announced to a watcher, which gets the next new
    // event first.
    let mut q = query(&url).await;
    let mut watch = q
        .watch_incidents(WatchIncidentsRequest { filter: None })
        .await
        .unwrap()
        .into_inner();
    let ack = agent.send_batch("b", vec![oom(1, old, "p")]).await;
    assert_eq!(ack.up_to_seq, 3);
    let ack = agent.send_batch("b", vec![oom(4, now(), "p")]).await;
    assert_eq!(ack.up_to_seq, 4);
    let i = next_incident(&mut watch).await;
    assert_eq!(i.event.unwrap().seq, 4, "the resent seq 1 was stored again");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_only_listener_serves_queries_and_not_ingest() {
    let (agg, url, _dir) = start(|c| c.query_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let query_url = format!("http://{}", agg.query_addr().unwrap());
    let agent = Agent::connect(&url, "qnode", "boot-1").await;
    agent.tx.send(report(100)).await.unwrap();
    let mut q = query(&query_url).await;
    let mut nodes = Vec::new();
    for _ in 0..100 {
        nodes = q
            .list_nodes(ListNodesRequest {})
            .await
            .unwrap()
            .into_inner()
            .nodes;
        if !nodes.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let names: Vec<_> = nodes
        .iter()
        .filter_map(|n| n.identity.as_ref().map(|i| i.node_name.as_str()))
        .collect();
    assert_eq!(names, ["qnode"]);
    // Agents keep to the main listener.
    let mut ingest = gpuscope_proto::v1::ingest_client::IngestClient::connect(query_url.clone())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(hello("other", "b")).await.unwrap();
    let s = ingest
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect_err("no Ingest on the query listener");
    assert_eq!(s.code(), tonic::Code::Unimplemented, "{s:?}");
    drop(agent);
    agg.shutdown(Duration::from_secs(5)).await.unwrap();
    let addr = query_url.trim_start_matches("http://");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the query listener is closed after shutdown"
    );
}
