//! `gpuscope`: ask the aggregator why a run failed or is wasting GPUs.
//!
//! Built twice, as `gpuscope` and as `kubectl-gpuscope` (so `kubectl
//! gpuscope ...` works as a kubectl plugin); both call [`main_entry`].
//! Tables for people by default, `-o json` for scripts.

mod cmd;
mod demo;
mod render;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Ask gpuscope's aggregator about the cluster's nodes, GPUs, containers
/// and incidents.
#[derive(Debug, Parser)]
#[command(name = "gpuscope", version, about, long_about = None)]
pub struct Cli {
    /// The aggregator's URL.
    #[arg(
        long,
        env = "GPUSCOPE_AGGREGATOR",
        default_value = "http://127.0.0.1:7470",
        global = true
    )]
    aggregator: String,
    /// Output format.
    #[arg(short, long, env = "GPUSCOPE_OUTPUT", value_enum, default_value_t = Format::Table, global = true)]
    output: Format,
    /// TLS towards the aggregator.
    #[command(flatten)]
    tls: gpuscope_agent::ship::endpoint::ClientTls,
    /// What to show.
    #[command(subcommand)]
    command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned tables for people.
    Table,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Nodes whose agents report, with their state.
    Nodes,
    /// Every GPU, its use, processes and holding pods.
    Gpus {
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
    },
    /// Containers with their memory, limit and OOM kills.
    Pods {
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
    },
    /// OOM kills, newest first.
    Oom {
        /// Only kills newer than this (e.g. 1h, 30m).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
        /// Only this pod UID.
        #[arg(long)]
        pod: Option<String>,
    },
    /// Incidents (OOM kills, XIDs, lost GPUs, source changes).
    Events {
        /// Keep watching for new ones.
        #[arg(short, long)]
        watch: bool,
        /// Show the past ones of this long first (e.g. 1h).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
        since: Duration,
    },
    /// Run gpuscope end to end on this machine: an aggregator, an agent,
    /// a workload in a scratch kubelet-style cgroup that grows until the
    /// kernel kills it, and what `explain` and `gpus` say. Cleans up.
    Demo,
    /// Explain why a pod's container was OOM-killed, from node evidence.
    Explain {
        /// The pod: its UID, or a unique prefix of it. (Names need the
        /// Kubernetes side of the aggregator, which is not there yet.)
        pod: String,
        /// The pod's namespace (used once pods are known by name).
        #[arg(short, long)]
        namespace: Option<String>,
    },
}

/// Parses the command line and runs it.
pub fn main_entry() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (url, out) = (cli.aggregator.as_str(), cli.output);
    match cli.command {
        Command::Demo => demo::run().await,
        Command::Nodes => cmd::nodes(&mut cmd::connect(url, &cli.tls).await?, out).await,
        Command::Gpus { node } => {
            cmd::gpus(&mut cmd::connect(url, &cli.tls).await?, node, out).await
        }
        Command::Pods { node } => {
            cmd::pods(&mut cmd::connect(url, &cli.tls).await?, node, out).await
        }
        Command::Oom { since, node, pod } => {
            cmd::oom(
                &mut cmd::connect(url, &cli.tls).await?,
                since,
                node,
                pod,
                out,
            )
            .await
        }
        Command::Events { watch, since } => {
            cmd::events(&mut cmd::connect(url, &cli.tls).await?, watch, since, out).await
        }
        Command::Explain { pod, namespace } => {
            cmd::explain(
                &mut cmd::connect(url, &cli.tls).await?,
                &pod,
                namespace.as_deref(),
                out,
            )
            .await
        }
    }
}
