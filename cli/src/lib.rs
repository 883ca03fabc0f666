//! `gpuscope`: ask the aggregator why a run failed or is wasting GPUs.
//!
//! Built twice, as `gpuscope` and as `kubectl-gpuscope` (so `kubectl
//! gpuscope ...` works as a kubectl plugin); they call [`main_entry`] and
//! [`kubectl_main_entry`], which differ only in where the aggregator is
//! when no `--aggregator` is given (see [`Cli`]). Tables for people by
//! default, `-o json` for scripts.

mod cmd;
mod demo;
mod portforward;
mod render;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Ask gpuscope's aggregator about the cluster's nodes, GPUs, containers
/// and incidents.
#[derive(Debug, Parser)]
#[command(name = "gpuscope", version, about, long_about = None)]
pub struct Cli {
    /// The aggregator's URL, dialled directly. Without it (and without
    /// --aggregator-service), `gpuscope` dials http://127.0.0.1:7470 and
    /// `kubectl gpuscope` goes through the API server to the Service
    /// gpuscope/gpuscope-aggregator:query.
    #[arg(long, env = "GPUSCOPE_AGGREGATOR", global = true, value_name = "URL")]
    aggregator: Option<String>,
    /// Reach the aggregator through the API server instead: a port-forward,
    /// opened with the kubeconfig's credentials, to a ready pod of this
    /// Service (PORT: one of its ports, by number or name; default its only
    /// one). Needs `get services`, `list pods` and `create pods/portforward`
    /// in NAMESPACE.
    #[arg(
        long,
        env = "GPUSCOPE_AGGREGATOR_SERVICE",
        global = true,
        value_name = "NAMESPACE/NAME[:PORT]",
        conflicts_with = "aggregator"
    )]
    aggregator_service: Option<portforward::ServiceRef>,
    /// Output format.
    #[arg(short, long, env = "GPUSCOPE_OUTPUT", value_enum, default_value_t = Format::Table, global = true)]
    output: Format,
    /// TLS towards the aggregator.
    #[command(flatten)]
    tls: gpuscope_proto::client::ClientTls,
    /// Send no credentials. By default each call carries the
    /// kubeconfig's (or the pod's ServiceAccount's) bearer token, which an
    /// aggregator with `--auth kubernetes` checks with the API server.
    #[arg(long, env = "GPUSCOPE_ANONYMOUS", global = true)]
    anonymous: bool,
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
        /// Only this pod: its UID, `namespace/name`, or its name with -n
        /// (every UID the aggregator knows it by: the pod's, and those of
        /// pods of that name it recorded diagnoses of).
        #[arg(long)]
        pod: Option<String>,
        /// The namespace of --pod.
        #[arg(short, long, requires = "pod")]
        namespace: Option<String>,
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
    /// Explain why a pod failed or is wasting GPUs: one sentence per
    /// finding, the numbers that prove it, and what to do next.
    Explain {
        /// The pod: its name (with -n), `namespace/name`, or its UID. With
        /// --bundle it may be left out: the bundle's own pod.
        #[arg(required_unless_present = "bundle")]
        pod: Option<String>,
        /// The pod's namespace.
        #[arg(short, long)]
        namespace: Option<String>,
        /// Explain from an offline bundle folder (kubectl JSON outputs and
        /// agent records) instead of asking the aggregator.
        #[arg(long, value_name = "DIR")]
        bundle: Option<std::path::PathBuf>,
        /// Thresholds for the rules, as JSON (any subset of the defaults).
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
    },
    /// Current findings across pods, GPUs and nodes, most costly first
    /// (GPU-hours, then restarts).
    Diagnose(Scope),
    /// Idle GPUs with the pods and owners holding them, and the GPU-hours
    /// wasted per namespace and owner.
    Idle(Scope),
    /// Write what the aggregator knows about a pod as an offline bundle
    /// (kubectl-shaped JSON, agent records, log tails) for `explain
    /// --bundle`, a ticket or a colleague.
    Bundle {
        /// The pod: its name (with -n), `namespace/name`, or its UID.
        pod: String,
        /// The pod's namespace.
        #[arg(short, long)]
        namespace: Option<String>,
        /// The folder to write (created; default `gpuscope-bundle-POD`).
        #[arg(short = 'd', long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
    /// Print the diagnosis thresholds' defaults as JSON: the shape
    /// `--config FILE` reads (any subset of it).
    Config,
    /// Run gpuscope end to end on this machine: an aggregator, an agent,
    /// a workload in a scratch kubelet-style cgroup that grows until the
    /// kernel kills it, and what `explain` and `gpus` say. Cleans up.
    Demo,
}

/// What `diagnose` and `idle` look at.
#[derive(Debug, clap::Args)]
struct Scope {
    /// Only these namespaces (repeatable).
    #[arg(short, long)]
    namespace: Vec<String>,
    /// Every namespace (the default when no namespace is given).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Read an offline bundle folder instead of asking the aggregator.
    #[arg(long, value_name = "DIR")]
    bundle: Option<std::path::PathBuf>,
    /// Thresholds for the rules, as JSON (any subset of the defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
}

/// Parses the command line and runs it: `gpuscope`, whose aggregator is
/// at http://127.0.0.1:7470 unless told otherwise.
pub fn main_entry() -> anyhow::Result<()> {
    entry(cmd::Target::Url("http://127.0.0.1:7470".into()))
}

/// Parses the command line and runs it: `kubectl gpuscope`, which reaches
/// the manifests' aggregator Service through the API server unless told
/// otherwise.
pub fn kubectl_main_entry() -> anyhow::Result<()> {
    let service = portforward::DEFAULT_SERVICE.parse();
    let service = service.map_err(|e| anyhow::anyhow!("the default Service: {e}"))?;
    entry(cmd::Target::Service(service))
}

/// Runs the command line; `default` is where the aggregator is when no
/// flag says.
fn entry(default: cmd::Target) -> anyhow::Result<()> {
    let cli = Cli::parse();
    let target = match (cli.aggregator.clone(), cli.aggregator_service.clone()) {
        (Some(url), _) => cmd::Target::Url(url),
        (None, Some(service)) => cmd::Target::Service(service),
        (None, None) => default,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli, &target))
}

async fn run(cli: Cli, url: &cmd::Target) -> anyhow::Result<()> {
    let out = cli.output;
    match cli.command {
        Command::Demo => demo::run().await,
        Command::Config => cmd::print_json(&gpuscope_diagnose::Config::default()),
        Command::Nodes => {
            cmd::nodes(&mut cmd::connect(url, &cli.tls, cli.anonymous).await?, out).await
        }
        Command::Gpus { node } => {
            cmd::gpus(
                &mut cmd::connect(url, &cli.tls, cli.anonymous).await?,
                node,
                out,
            )
            .await
        }
        Command::Pods { node } => {
            cmd::pods(
                &mut cmd::connect(url, &cli.tls, cli.anonymous).await?,
                node,
                out,
            )
            .await
        }
        Command::Oom {
            since,
            node,
            pod,
            namespace,
        } => {
            cmd::oom(
                &mut cmd::connect(url, &cli.tls, cli.anonymous).await?,
                since,
                node,
                pod.as_deref(),
                namespace.as_deref(),
                out,
            )
            .await
        }
        Command::Events { watch, since } => {
            cmd::events(
                &mut cmd::connect(url, &cli.tls, cli.anonymous).await?,
                watch,
                since,
                out,
            )
            .await
        }
        Command::Diagnose(scope) => {
            diagnose(url, (&cli.tls, cli.anonymous), scope, cmd::Ranked::All, out).await
        }
        Command::Idle(scope) => {
            diagnose(
                url,
                (&cli.tls, cli.anonymous),
                scope,
                cmd::Ranked::Idle,
                out,
            )
            .await
        }
        Command::Explain {
            pod,
            namespace,
            bundle: Some(dir),
            config,
        } => cmd::explain_bundle(
            &dir,
            pod.as_deref(),
            namespace.as_deref(),
            &cmd::load_config(config.as_deref())?,
            out,
        ),
        Command::Bundle {
            pod,
            namespace,
            dir,
        } => {
            let dir =
                dir.unwrap_or_else(|| format!("gpuscope-bundle-{}", pod.replace('/', "_")).into());
            cmd::bundle(
                &mut cmd::connect(url, &cli.tls, cli.anonymous).await?,
                &pod,
                namespace.as_deref(),
                &dir,
            )
            .await
        }
        Command::Explain { pod, namespace, .. } => {
            cmd::explain(
                &mut cmd::connect(url, &cli.tls, cli.anonymous).await?,
                pod.as_deref().unwrap_or_default(),
                namespace.as_deref(),
                out,
            )
            .await
        }
    }
}

async fn diagnose(
    url: &cmd::Target,
    tls: (&gpuscope_proto::client::ClientTls, bool),
    scope: Scope,
    what: cmd::Ranked,
    out: Format,
) -> anyhow::Result<()> {
    let config = cmd::load_config(scope.config.as_deref())?;
    cmd::diagnose(
        url,
        tls,
        scope.bundle.as_deref(),
        &scope.namespace,
        scope.all_namespaces,
        &config,
        what,
        out,
    )
    .await
}
