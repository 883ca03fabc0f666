//! `gpuscope`: ask the aggregator why a run failed or is wasting GPUs.
//!
//! Also installed as `kubectl-gpuscope`, so `kubectl gpuscope ...` works.
//! Tables for people by default, `-o json` for scripts.

mod cmd;
mod render;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Ask gpuscope's aggregator about the cluster's nodes, GPUs, containers
/// and incidents.
#[derive(Debug, Parser)]
#[command(name = "gpuscope", version, about, long_about = None)]
struct Cli {
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut client = cmd::connect(&cli.aggregator).await?;
    let out = cli.output;
    match cli.command {
        Command::Nodes => cmd::nodes(&mut client, out).await,
        Command::Gpus { node } => cmd::gpus(&mut client, node, out).await,
        Command::Pods { node } => cmd::pods(&mut client, node, out).await,
        Command::Oom { since, node, pod } => cmd::oom(&mut client, since, node, pod, out).await,
        Command::Events { watch, since } => cmd::events(&mut client, watch, since, out).await,
        Command::Explain { pod, namespace } => {
            cmd::explain(&mut client, &pod, namespace.as_deref(), out).await
        }
    }
}
