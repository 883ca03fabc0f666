//! `explain_rpc`: the in-process cost of `gpuscope explain POD`.
//!
//! Times, N times over a list of pods (lines "POD_UID NODE", as
//! `ingest_load --pods-out` writes them), the one RPC `gpuscope explain`
//! makes: `Explain` with the pod's UID (the aggregator resolves the pod,
//! assembles the evidence: its incidents, its containers' and its node's
//! GPUs' history; and runs the diagnosis); it counts the answers with an
//! "OOM-killed" finding (the rules leave out a kill the container has
//! visibly survived, as the generator's containers do). For comparison it also times `ListIncidents` with the pod UID
//! filter and `ListContainers` of the pod on its node (what the CLI sent
//! before the `Explain` RPC). Prints p50/p90/p99/max of each, and the
//! response sizes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use gpuscope_proto::v1 as pb;
use gpuscope_proto::v1::query_client::QueryClient;
use prost::Message;

/// Time explain's queries against a running aggregator.
#[derive(Debug, Parser)]
#[command(name = "explain_rpc")]
struct Args {
    /// The aggregator's URL.
    #[arg(long, default_value = "http://127.0.0.1:7470")]
    aggregator: String,
    /// File of "POD_UID NODE" lines.
    #[arg(long)]
    pods: PathBuf,
    /// Runs of each variant.
    #[arg(short, default_value_t = 200)]
    n: usize,
}

fn summary(name: &str, mut v: Vec<Duration>, bytes: usize) {
    v.sort();
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{name:<44} n={} p50 {:8.2} ms  p90 {:8.2} ms  p99 {:8.2} ms  max {:8.2} ms  response {:.1} kB",
        v.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0),
        bytes as f64 / 1e3
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.pods)
        .with_context(|| format!("reading {}", args.pods.display()))?;
    let pods: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect();
    anyhow::ensure!(!pods.is_empty(), "no pods in {}", args.pods.display());
    let (mut connect, mut explain, mut filtered, mut containers) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut explain_bytes, mut filtered_bytes, mut containers_bytes) = (0, 0, 0);
    let mut named_kill = 0;
    for k in 0..args.n {
        let (pod, node) = &pods[(k * 7919) % pods.len()];
        let t = Instant::now();
        let mut client = QueryClient::connect(args.aggregator.clone())
            .await?
            .max_decoding_message_size(256 << 20);
        connect.push(t.elapsed());

        let t = Instant::now();
        let r = client
            .explain(pb::ExplainRequest {
                namespace: String::new(),
                pod: pod.clone(),
            })
            .await?
            .into_inner();
        explain.push(t.elapsed());
        explain_bytes = r.encoded_len();
        if r.findings.iter().any(|f| f.summary.contains("OOM-killed")) {
            named_kill += 1;
        }

        let t = Instant::now();
        let r = client
            .list_incidents(pb::ListIncidentsRequest {
                filter: Some(pb::IncidentFilter {
                    node_name: String::new(),
                    pod_uid: pod.clone(),
                    kinds: vec![pb::IncidentKind::OomKill as i32],
                    ..Default::default()
                }),
                since_unix_nanos: 0,
                until_unix_nanos: 0,
                limit: 10_000,
            })
            .await?
            .into_inner();
        filtered.push(t.elapsed());
        filtered_bytes = r.encoded_len();

        let t = Instant::now();
        let r = client
            .list_containers(pb::ListContainersRequest {
                node_name: node.clone(),
                pod_uid: pod.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        containers.push(t.elapsed());
        containers_bytes = r.encoded_len();
    }
    summary("connect", connect, 0);
    summary("Explain(pod UID)", explain, explain_bytes);
    println!(
        "Explain answers with an \"OOM-killed\" finding: {named_kill} of {}",
        args.n
    );
    summary(
        "ListIncidents(OOM kills, pod_uid filter)",
        filtered,
        filtered_bytes,
    );
    summary("ListContainers(node, pod)", containers, containers_bytes);
    Ok(())
}
