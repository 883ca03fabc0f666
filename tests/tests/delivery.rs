//! Agent -> aggregator delivery, end to end with the real binaries over
//! loopback: every event stored exactly once when the aggregator is
//! killed with SIGKILL mid-stream, when the connection is cut for 60 s,
//! and when the agent restarts with events queued. Counted, not sampled.
//!
//! The events are XIDs from the fake NVML (one scenario XID each, numbered
//! 1000 + i), so their number and identity are known exactly.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gpuscope_aggregator::Store;
use gpuscope_proto::v1 as pb;
use gpuscope_tests::{KillOnDrop, V2Tree, fake_nvml_lib, free_port, workspace_bin};
use serde_json::json;

const N: u64 = 40;

fn aggregator(data: &Path, port: u16) -> KillOnDrop {
    KillOnDrop(
        Command::new(workspace_bin("gpuscope-aggregator"))
            .args([
                "--no-kube",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn aggregator"),
    )
}

/// `xids`: seconds at which XID 1000 + i fires.
fn agent(dir: &Path, state: &Path, cgroups: &Path, port: u16, xids: &[f64]) -> KillOnDrop {
    let scenario = dir.join(format!("scenario-{}.json", xids.len()));
    let xids: Vec<_> = xids
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"t": t, "xid": 1000 + i as u64}))
        .collect();
    let s = json!({"gpus": [{"uuid": "GPU-de11e7e7-0000-4000-8000-000000000001", "xids": xids}]});
    std::fs::write(&scenario, s.to_string()).expect("scenario");
    KillOnDrop(
        Command::new(workspace_bin("gpuscope-agent"))
            .args(["run", "--aggregator", &format!("http://127.0.0.1:{port}")])
            .arg("--state-dir")
            .arg(state)
            .arg("--cgroup-root")
            .arg(cgroups)
            .arg("--nvml-lib")
            .arg(fake_nvml_lib())
            .args([
                "--kmsg",
                "/nonexistent-kmsg",
                "--interval",
                "200ms",
                "--report-interval",
                "200ms",
            ])
            .arg("--pod-resources-socket")
            .arg(dir.join("no-kubelet.sock"))
            .env("GPUSCOPE_FAKE_NVML_SCENARIO", &scenario)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn agent"),
    )
}

/// XID number -> how many times it is stored, read through the query API.
fn stored_xids(port: u16) -> Option<HashMap<u64, usize>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut client = pb::query_client::QueryClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .ok()?;
        let list = client
            .list_incidents(pb::ListIncidentsRequest {
                filter: Some(pb::IncidentFilter {
                    node_name: String::new(),
                    pod_uid: String::new(),
                    kinds: vec![pb::IncidentKind::Xid as i32],
                    ..Default::default()
                }),
                since_unix_nanos: 0,
                until_unix_nanos: 0,
                limit: 10_000,
            })
            .await
            .ok()?
            .into_inner();
        let mut counts = HashMap::new();
        for i in list.incidents {
            if let Some(pb::node_event::Kind::Xid(x)) = i.event.and_then(|e| e.kind) {
                *counts.entry(x.xid).or_insert(0) += 1;
            }
        }
        Some(counts)
    })
}

/// Waits until all N XIDs are stored (or the deadline), then asserts each
/// is stored exactly once.
fn assert_all_once(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        last = stored_xids(port);
        if last.as_ref().is_some_and(|c| c.len() as u64 == N) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Give a duplicate, if there were one, the time to arrive.
    std::thread::sleep(Duration::from_millis(1000));
    let counts = stored_xids(port).or(last).expect("query the aggregator");
    for i in 0..N {
        assert_eq!(
            counts.get(&(1000 + i)).copied().unwrap_or(0),
            1,
            "XID {} must be stored exactly once; stored: {counts:?}",
            1000 + i
        );
    }
    assert_eq!(counts.len() as u64, N, "{counts:?}");
}

fn spread(n: u64, from: f64, step: f64) -> Vec<f64> {
    (0..n).map(|i| from + step * i as f64).collect()
}

/// XIDs in the incident database of a stopped aggregator, read directly:
/// what was stored when it died.
fn xids_on_disk(data: &Path) -> usize {
    let store = Store::open(&data.join("incidents.redb")).expect("open the aggregator's store");
    let filter = pb::IncidentFilter {
        kinds: vec![pb::IncidentKind::Xid as i32],
        ..Default::default()
    };
    let (incidents, more) = store.list(&filter, 0, 0, 10_000).expect("list");
    assert!(!more);
    incidents.len()
}

/// Runs an agent raising N XIDs (one every 100 ms from 0.5 s) against an
/// aggregator that is killed with SIGKILL once it stored `before` of them
/// and restarted on the same data directory and port after `down`. The
/// kill must fall mid-stream (some stored before it, some after: checked
/// on disk), and all N must be stored once.
fn aggregator_away(before: u64, down: Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, state) = (dir.path().join("data"), dir.path().join("state"));
    let tree = V2Tree::new();
    let port = free_port();
    let mut agg = aggregator(&data, port);
    let _agent = agent(dir.path(), &state, tree.root(), port, &spread(N, 0.5, 0.1));
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_xids(port).is_none_or(|c| (c.len() as u64) < before) {
        assert!(
            Instant::now() < deadline,
            "the aggregator never stored {before} XIDs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = agg.0.kill();
    let _ = agg.0.wait();
    let at_kill = xids_on_disk(&data) as u64;
    assert!(
        (before..N).contains(&at_kill),
        "killed mid-stream: {at_kill} of {N} XIDs stored before the kill"
    );
    std::thread::sleep(down);
    agg = aggregator(&data, port);
    assert_all_once(port, Duration::from_secs(60));
    drop(agg);
}

#[test]
fn aggregator_killed_mid_stream_and_restarted() {
    // Killed with a quarter of the XIDs stored and the rest still coming.
    aggregator_away(N / 4, Duration::from_millis(1500));
}

#[test]
fn connection_cut_for_60_seconds() {
    // Half the XIDs before the cut, the rest during it.
    aggregator_away(N / 2, Duration::from_secs(60));
}

#[test]
fn agent_restarts_with_events_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, state) = (dir.path().join("data"), dir.path().join("state"));
    let tree = V2Tree::new();
    let port = free_port();
    // No aggregator yet: every XID is queued on disk.
    let mut first = agent(dir.path(), &state, tree.root(), port, &spread(N, 0.2, 0.05));
    std::thread::sleep(Duration::from_secs(4));
    let _ = first.0.kill();
    let _ = first.0.wait();
    let agg = aggregator(&data, port);
    // The restarted agent's NVML raises no XID: what arrives was queued.
    let _second = agent(dir.path(), &state, tree.root(), port, &[]);
    assert_all_once(port, Duration::from_secs(40));
    drop(agg);
}
