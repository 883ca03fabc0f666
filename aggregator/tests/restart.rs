//! The real binary, killed with SIGKILL mid-stream and restarted on the same
//! data directory: every acknowledged event survives, and after the agent
//! resends everything unacknowledged each event is stored exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use gpuscope_proto::v1::{IncidentFilter, aggregator_message};
use tokio::sync::mpsc;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(port: u16, dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gpuscope-aggregator"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--no-kube"])
        .arg("--data-dir")
        .arg(dir)
        .env("GPUSCOPE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + WAIT;
    while gpuscope_proto::v1::query_client::QueryClient::connect(url.to_owned())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "aggregator did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const N: u64 = 2000;
const BATCH: u64 = 10;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_stream_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = spawn(port, dir.path());
    wait_ready(&url).await;

    // Stream every event without waiting for acks; kill the aggregator once
    // some (not all) are acknowledged.
    let mut agent = Agent::connect(&url, "node-k", "boot-1").await;
    let tx = agent.tx.clone();
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel();
    let sender = tokio::spawn(async move {
        for start in (1..=N).step_by(BATCH as usize) {
            let events = (start..start + BATCH)
                .map(|s| oom(s, now(), "pod-k"))
                .collect();
            if tx.send(batch("boot-1", events)).await.is_err() {
                return;
            }
            let _ = sent_tx.send(start + BATCH - 1);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let mut acked = 0;
    loop {
        let msg = tokio::time::timeout(WAIT, agent.rx.message())
            .await
            .unwrap();
        let Ok(Some(msg)) = msg else { break };
        let Some(aggregator_message::Kind::Ack(ack)) = msg.kind else {
            continue;
        };
        assert!(ack.up_to_seq >= acked, "acks never go back");
        acked = ack.up_to_seq;
        if acked >= N / 4 {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    let _ = child.kill();
    child.wait().unwrap();
    // Acks that were already in flight when the process died still count.
    while let Ok(Ok(Some(msg))) =
        tokio::time::timeout(Duration::from_secs(2), agent.rx.message()).await
    {
        if let Some(aggregator_message::Kind::Ack(ack)) = msg.kind {
            acked = acked.max(ack.up_to_seq);
        }
    }
    sender.abort();
    let mut sent = 0;
    while let Ok(s) = sent_rx.try_recv() {
        sent = s;
    }
    assert!(
        (N / 4..N).contains(&acked),
        "killed mid-stream: acked {acked}, sent {sent}"
    );

    let mut child = spawn(port, dir.path());
    wait_ready(&url).await;
    // Everything acknowledged before the kill is on disk.
    let stored = incidents(&url, IncidentFilter::default()).await;
    let got = seqs(&stored, "node-k", "boot-1");
    assert_eq!(got.len(), stored.len(), "no other incidents");
    for s in 1..=acked {
        assert!(
            got.binary_search(&s).is_ok(),
            "acked seq {s} lost by SIGKILL"
        );
    }

    // The agent resends everything unacknowledged (plus one acked batch, as
    // a real agent might), in batches, and gets everything acknowledged.
    let mut agent = Agent::connect(&url, "node-k", "boot-1").await;
    let mut last = 0;
    let from = acked.saturating_sub(BATCH) + 1;
    let mut s = from;
    while s <= N {
        let end = (s + BATCH - 1).min(N);
        let events = (s..=end).map(|q| oom(q, now(), "pod-k")).collect();
        last = agent.send_batch("boot-1", events).await.up_to_seq;
        s = end + 1;
    }
    assert_eq!(last, N);

    let stored = incidents(&url, IncidentFilter::default()).await;
    assert_eq!(stored.len() as u64, N, "each event stored exactly once");
    assert_eq!(
        seqs(&stored, "node-k", "boot-1"),
        (1..=N).collect::<Vec<_>>()
    );

    // Graceful shutdown on SIGTERM.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "SIGTERM exits cleanly: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
