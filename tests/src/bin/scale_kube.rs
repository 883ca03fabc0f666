//! `scale_kube`: the scale Kubernetes API server
//! ([`gpuscope_tests::fake_kube::scale`]) as a process of its own, so that a
//! benchmark can measure the aggregator watching it apart from the server's
//! own memory and CPU.
//!
//! It prints `listening on http://ADDR` once it serves, and `sample pod
//! NAMESPACE NAME` (a pod churn leaves alone), then runs until
//! killed. Faults are asked for over HTTP: `POST /_scale/delete-pods?
//! namespace=batch&count=10000`, `POST /_scale/expire-continue?count=1`,
//! `POST /_scale/page-delay?ms=2000`; `GET /_scale/stats` gives counters.

use std::time::Duration;

use clap::Parser;
use gpuscope_tests::fake_kube::scale::{ScaleConfig, ScaleKube};

/// A Kubernetes API server of N GPU nodes and N x 15 pods, generated.
#[derive(Parser, Debug)]
struct Args {
    /// GPU nodes; each runs 12 DaemonSet pods and 3 workload pods.
    #[arg(long, env = "SCALE_KUBE_NODES", default_value_t = 1000)]
    nodes: u32,
    /// Address to listen on.
    #[arg(long, env = "SCALE_KUBE_LISTEN", default_value = "127.0.0.1:0")]
    listen: String,
    /// Workload pod lifecycle steps per second per 1,000 nodes (each with
    /// its Events).
    #[arg(long, env = "SCALE_KUBE_CHURN", default_value_t = 2.0)]
    churn_per_1000_nodes: f64,
    /// Seconds between two status reports of one node (the kubelet's
    /// nodeStatusReportFrequency); 0: none.
    #[arg(long, env = "SCALE_KUBE_NODE_STATUS_SECONDS", default_value_t = 300)]
    node_status_seconds: u64,
    /// Events kept before the oldest expire.
    #[arg(long, env = "SCALE_KUBE_EVENTS_KEPT", default_value_t = 50_000)]
    events_kept: usize,
    /// Runtime worker threads.
    #[arg(long, env = "SCALE_KUBE_WORKERS", default_value_t = 2)]
    workers: usize,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let config = ScaleConfig {
        nodes: args.nodes,
        churn_per_second: args.churn_per_1000_nodes * f64::from(args.nodes) / 1000.0,
        node_status_period: Duration::from_secs(args.node_status_seconds),
        events_kept: args.events_kept,
        ..ScaleConfig::default()
    };
    let listener = std::net::TcpListener::bind(&args.listen)?;
    let addr = listener.local_addr()?;
    let server = ScaleKube::start_on(config, listener, args.workers);
    println!("listening on http://{addr}");
    // A GPU workload pod that stays (a StatefulSet's): for readiness checks.
    if let Some((namespace, pod)) = server.pod_name(14) {
        println!("sample pod {namespace} {pod}");
    }
    loop {
        std::thread::park();
    }
}
