//! `gpuscope-aggregator`: serves gpuscope's Ingest and Query gRPC services.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gpuscope_aggregator::auth::{AuthLimits, Ttls};
use gpuscope_aggregator::limits::Limits;
use gpuscope_aggregator::{Aggregator, AuthConfig, Config, HistoryConfig, KubeConfig, TlsFiles};

/// gpuscope's aggregator: receives the node agents' streams, keeps recent
/// per-node, per-container and per-GPU history in memory, stores incidents
/// (OOM kills, XIDs, GPU losses, ...) durably, and serves the query API the
/// `gpuscope` CLI uses. Ingest and Query share one gRPC address
/// (`--query-listen` adds a Query-only one).
#[derive(Debug, Parser)]
#[command(name = "gpuscope-aggregator", version)]
struct Args {
    /// Address to serve gRPC on (Ingest for agents, Query for the CLI).
    #[arg(long, env = "GPUSCOPE_LISTEN", default_value = "0.0.0.0:7470")]
    listen: SocketAddr,

    /// Also serve the Query service (gpuscope CLI, dashboards) here, on a
    /// thread of its own, so that answers do not wait in line behind the
    /// reports of thousands of agents. Both listeners serve the same data.
    #[arg(long, env = "GPUSCOPE_QUERY_LISTEN")]
    query_listen: Option<SocketAddr>,

    /// Also serve the standard gRPC health service (grpc.health.v1) alone
    /// here, in plain text even with --tls-cert: the kubelet's `grpc`
    /// probes speak no TLS. The main listeners serve it too.
    #[arg(long, env = "GPUSCOPE_HEALTH_LISTEN", value_name = "ADDR")]
    health_listen: Option<SocketAddr>,

    /// Serve Prometheus metrics (`GET /metrics`, text format 0.0.4) on
    /// this address, on a thread of its own (docs/metrics.md); e.g.
    /// `0.0.0.0:9470`. Off by default.
    #[arg(long, env = "GPUSCOPE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,

    /// Also export the GPU series under dcgm-exporter's names and labels
    /// (`DCGM_FI_DEV_GPU_UTIL`, `DCGM_FI_DEV_FB_USED`, ... with `gpu`,
    /// `UUID`, `device`, `modelName`, `Hostname`), so that dashboards and
    /// alerts written for dcgm-exporter keep working.
    #[arg(long, env = "GPUSCOPE_METRICS_DCGM_NAMES")]
    metrics_dcgm_names: bool,

    /// Which containers get per-container series: `all`, `gpu` (pods that
    /// hold or use a GPU) or `none`. The per-container series are most of
    /// a large cluster's series (docs/metrics.md, "Cardinality").
    #[arg(long, env = "GPUSCOPE_METRICS_CONTAINERS", default_value = "all", value_parser = parse_containers)]
    metrics_containers: gpuscope_aggregator::export::prometheus::ContainerSeries,

    /// How often the whole cluster is diagnosed for the metrics' findings
    /// and idle GPU-hours, and for the OTLP export's new findings (needs
    /// Kubernetes).
    #[arg(long, env = "GPUSCOPE_METRICS_FINDINGS_INTERVAL", default_value = "60s", value_parser = parse_step)]
    metrics_findings_interval: Duration,

    /// Push the metrics (the same as /metrics, under OpenTelemetry names)
    /// and every new incident and finding (as log records) to this
    /// OpenTelemetry collector over OTLP/gRPC, e.g.
    /// `http://otel-collector.observability:4317`. Without it, the standard
    /// OTEL_EXPORTER_OTLP_ENDPOINT (or ..._METRICS_ENDPOINT,
    /// ..._LOGS_ENDPOINT) turns the export on; the other OTEL_* variables
    /// (headers, timeout, interval, service name, resource attributes) are
    /// honoured either way (docs/metrics.md, "OpenTelemetry"). Off by
    /// default.
    #[arg(long, env = "GPUSCOPE_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,

    /// Most series of one metric exported over OTLP at one collection;
    /// more are not exported, and are counted
    /// (gpuscope_otlp_series_dropped_total). The largest metric is the
    /// containers' pressure (4 series per container). Each metric's table
    /// is sized for this many at start (docs/metrics.md, "OpenTelemetry").
    #[arg(long, env = "GPUSCOPE_OTLP_MAX_SERIES", default_value_t = gpuscope_aggregator::export::otlp::DEFAULT_MAX_SERIES, value_name = "N")]
    otlp_max_series: usize,

    /// Which containers get per-container series over OTLP: `all`, `gpu`
    /// or `none`; default: as --metrics-containers. An OTLP export costs
    /// much more per series than a scrape (docs/metrics.md).
    #[arg(long, env = "GPUSCOPE_OTLP_CONTAINERS", value_parser = parse_containers)]
    otlp_containers: Option<gpuscope_aggregator::export::prometheus::ContainerSeries>,

    /// Directory of the incident database (`incidents.redb`); created if
    /// missing. Use a persistent volume: incidents survive restarts.
    #[arg(long, env = "GPUSCOPE_DATA_DIR")]
    data_dir: PathBuf,

    /// Incidents older than this are deleted (e.g. `7d`, `12h`).
    #[arg(long, env = "GPUSCOPE_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    retention: Duration,

    /// How often old incidents are deleted.
    #[arg(long, env = "GPUSCOPE_RETENTION_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    retention_interval: Duration,

    /// Diagnose each pod an incident names (an OOM kill of its container,
    /// an XID or lost GPU it held) this long after the incident, when the
    /// kubelet has reported the termination, and store the findings with
    /// the incidents: `explain` of the pod answers with them after
    /// Kubernetes has deleted it. `0s`: do not.
    #[arg(long, env = "GPUSCOPE_RECORD_DIAGNOSIS_AFTER", default_value = "10s", value_parser = humantime::parse_duration)]
    record_diagnosis_after: Duration,

    /// Newest points of history kept per container, one per sample the
    /// agent sends (120 is 2 minutes at 1 Hz). Older history is kept
    /// coarse (--history-step, --history-coarse-points).
    #[arg(long, env = "GPUSCOPE_HISTORY_POINTS", default_value_t = 120)]
    history_points: usize,

    /// Newest points of history kept per GPU or MIG instance, one per
    /// sample.
    #[arg(long, env = "GPUSCOPE_GPU_HISTORY_POINTS", default_value_t = 120)]
    gpu_history_points: usize,

    /// Time merged into one coarse point of older history: gauges keep
    /// their maximum (memory, GPU utilization, power, ...), counters their
    /// last value, so no peak and no moment of GPU use is lost.
    #[arg(long, env = "GPUSCOPE_HISTORY_STEP", default_value = "30s", value_parser = parse_step)]
    history_step: Duration,

    /// Coarse points kept per container, before its newest points (120
    /// is 1 hour at 30 s); 0 keeps only the newest points.
    #[arg(long, env = "GPUSCOPE_HISTORY_COARSE_POINTS", default_value_t = 120)]
    history_coarse_points: usize,

    /// Coarse points kept per GPU or MIG instance. The GPU-idle rule looks
    /// at 30 minutes: with fewer than 30 minutes of GPU history in all, it
    /// can never call a GPU idle with full confidence.
    #[arg(
        long,
        env = "GPUSCOPE_GPU_HISTORY_COARSE_POINTS",
        default_value_t = 120
    )]
    gpu_history_coarse_points: usize,

    /// How long a container or GPU that stopped being reported is still
    /// remembered, with its history.
    #[arg(long, env = "GPUSCOPE_CONTAINER_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    container_ttl: Duration,

    /// Largest gRPC message accepted or sent, bytes. Larger messages end
    /// their stream with OUT_OF_RANGE.
    #[arg(long, env = "GPUSCOPE_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    max_message_bytes: usize,

    /// How long a new ingest stream may take to send its Hello.
    #[arg(long, env = "GPUSCOPE_HELLO_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    hello_timeout: Duration,

    /// Incidents buffered per WatchIncidents watcher; a slower watcher is
    /// told how many it skipped.
    #[arg(long, env = "GPUSCOPE_WATCH_BUFFER", default_value_t = 4096)]
    watch_buffer: usize,

    /// Run without a Kubernetes API: containers are named by pod UID and
    /// container ID, Explain takes a pod UID, and every answer says that
    /// the Kubernetes objects are missing. By default the aggregator
    /// watches Kubernetes (in-cluster service account, else KUBECONFIG or
    /// ~/.kube/config) and refuses to start without a configuration.
    #[arg(long, env = "GPUSCOPE_NO_KUBE", conflicts_with = "kube_server")]
    no_kube: bool,

    /// Talk to the Kubernetes API server at this URL, without credentials
    /// (`kubectl proxy`'s `http://127.0.0.1:8001`, a test's fake server),
    /// instead of the in-cluster or kubeconfig configuration.
    #[arg(long, env = "GPUSCOPE_KUBE_SERVER", value_name = "URL")]
    kube_server: Option<String>,

    /// Watch only this namespace's pods, events and PVCs (repeatable, or
    /// comma-separated in the environment); default: every namespace.
    /// Nodes and the GPU device-plugin pods are watched cluster-wide.
    #[arg(
        long = "namespace",
        env = "GPUSCOPE_NAMESPACES",
        value_name = "NS",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,

    /// Label selector of the GPU device-plugin pods (repeatable; any
    /// matches; `key=value` terms joined by commas; several separated by `;` in
    /// the environment). Default: the NVIDIA
    /// GPU operator's, DaemonSet manifest's and Helm chart's labels.
    #[arg(
        long = "device-plugin-selector",
        env = "GPUSCOPE_DEVICE_PLUGIN_SELECTORS",
        value_name = "SEL",
        value_delimiter = ';',
        default_values_t = gpuscope_aggregator::kube::DEFAULT_DEVICE_PLUGIN_SELECTORS.iter().map(|s| s.to_string())
    )]
    device_plugin_selectors: Vec<String>,

    /// On Explain and GetBundle, fetch the last 200 log lines of the
    /// pod's containers that ended abnormally (`kubectl logs --previous`);
    /// needs `get` on `pods/log`.
    #[arg(long, env = "GPUSCOPE_FETCH_LOGS", conflicts_with = "no_kube")]
    fetch_logs: bool,

    /// Publish each finding of a recorded diagnosis (--record-diagnosis-after)
    /// as a Kubernetes Event on its pod (type Warning, reason per kind such
    /// as GpuscopeOOMKilled, the finding's sentence as the message), so
    /// that `kubectl describe pod` shows it; repeats are counted into one
    /// Event's series, at most 25 per pod then one per 5 minutes. Needs
    /// create and patch on events.k8s.io events.
    #[arg(long, env = "GPUSCOPE_KUBE_EVENTS", conflicts_with = "no_kube")]
    kube_events: bool,

    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "GPUSCOPE_LOG", default_value = "info")]
    log: String,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "GPUSCOPE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert (PEM).
    #[arg(long, env = "GPUSCOPE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mutual TLS; PEM).
    #[arg(long, env = "GPUSCOPE_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,

    /// Who may ask and report: `kubernetes` (the default with Kubernetes)
    /// authenticates every caller's bearer token with a TokenReview and
    /// authorizes each request with SubjectAccessReviews, as the API
    /// server would (README, "Who may ask what"); agents report only for
    /// their own node. `none` (the default with --no-kube) lets anyone who
    /// reaches the port ask anything and report as any node: only on
    /// loopback addresses.
    #[arg(long, env = "GPUSCOPE_AUTH", value_enum)]
    auth: Option<AuthMode>,

    /// ServiceAccounts (`namespace:name`, repeatable) whose pod-bound
    /// tokens (audience `gpuscope`) may report for their pod's node.
    #[arg(
        long = "agent-service-account",
        env = "GPUSCOPE_AGENT_SERVICE_ACCOUNTS",
        value_delimiter = ',',
        default_value = "gpuscope:gpuscope-agent"
    )]
    agent_service_accounts: Vec<String>,

    /// How long an allowed SubjectAccessReview is cached (the kubelet's
    /// default).
    #[arg(long, env = "GPUSCOPE_AUTH_ALLOW_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    auth_allow_ttl: Duration,

    /// How long a denied SubjectAccessReview is cached: a new RoleBinding
    /// takes effect within it.
    #[arg(long, env = "GPUSCOPE_AUTH_DENY_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    auth_deny_ttl: Duration,

    /// How long a TokenReview's answer is cached: a revoked token keeps
    /// working at most this long.
    #[arg(long, env = "GPUSCOPE_AUTH_TOKEN_TTL", default_value = "2m", value_parser = humantime::parse_duration)]
    auth_token_ttl: Duration,

    /// How long a token the API server refused is remembered as refused:
    /// the same bad token sent again costs no TokenReview within it.
    #[arg(long, env = "GPUSCOPE_AUTH_TOKEN_DENY_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    auth_token_deny_ttl: Duration,

    /// Failed authentications per second (on average) one peer address
    /// may cause; beyond it (and --auth-failure-burst) its tokens are
    /// refused with RESOURCE_EXHAUSTED before any TokenReview, except
    /// those already known valid (docs/limits.md).
    #[arg(long, env = "GPUSCOPE_AUTH_FAILURES_PER_PEER", default_value_t = 1.0)]
    auth_failures_per_peer: f64,

    /// Failed authentications one peer address may cause at once above
    /// --auth-failures-per-peer.
    #[arg(long, env = "GPUSCOPE_AUTH_FAILURE_BURST", default_value_t = 20)]
    auth_failure_burst: u32,

    /// TokenReviews in flight to the API server at once, in all; a caller
    /// that waits 2 s for a place gets UNAVAILABLE.
    #[arg(long, env = "GPUSCOPE_TOKEN_REVIEWS_IN_FLIGHT", default_value_t = 64)]
    token_reviews_in_flight: u32,

    /// Users may also identify with a TLS client certificate signed by
    /// this CA (PEM bundle), as with the API server's --client-ca-file:
    /// the user is the subject's CN, the groups its O values, authorized
    /// with SubjectAccessReviews like a token's user. Needs --tls-cert
    /// and --auth kubernetes; client certificates stay optional (agents
    /// and other users send tokens). Not with --tls-client-ca.
    #[arg(
        long,
        env = "GPUSCOPE_CLIENT_CA_FILE",
        requires = "tls_cert",
        conflicts_with = "tls_client_ca"
    )]
    client_ca_file: Option<PathBuf>,

    /// Query calls per second per caller (its user, or its IP address
    /// with --auth none), on average; beyond it RESOURCE_EXHAUSTED
    /// (docs/limits.md).
    #[arg(long, env = "GPUSCOPE_QUERY_RATE", default_value_t = 50.0)]
    query_rate: f64,

    /// Query calls per caller allowed at once above --query-rate.
    #[arg(long, env = "GPUSCOPE_QUERY_BURST", default_value_t = 100)]
    query_burst: u32,

    /// Query calls of one caller in progress at once; beyond it
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "GPUSCOPE_QUERY_CONCURRENCY", default_value_t = 16)]
    query_concurrency: u32,

    /// Open ingest streams per IP address; beyond it RESOURCE_EXHAUSTED.
    #[arg(long, env = "GPUSCOPE_MAX_STREAMS_PER_PEER", default_value_t = 4)]
    max_streams_per_peer: u32,

    /// Open ingest streams in all; beyond it RESOURCE_EXHAUSTED.
    #[arg(long, env = "GPUSCOPE_MAX_STREAMS", default_value_t = 20_000)]
    max_streams: u32,

    /// Longest any call may take before its answer starts (a unary call's
    /// whole answer, a stream's first message); beyond it CANCELLED
    /// ("Timeout expired"). A client's shorter deadline wins.
    #[arg(long, env = "GPUSCOPE_RPC_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    rpc_timeout: Duration,
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuthMode {
    /// TokenReview and SubjectAccessReview with the API server.
    Kubernetes,
    /// Anyone may ask anything (loopback addresses only).
    None,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(&args.log)?;
    let mut config = Config::new(args.listen, args.data_dir.clone());
    config.query_listen = args.query_listen;
    config.health_listen = args.health_listen;
    config.retention = args.retention;
    config.retention_interval = args.retention_interval;
    config.record_diagnosis_after =
        (!args.record_diagnosis_after.is_zero()).then_some(args.record_diagnosis_after);
    config.history = HistoryConfig {
        container_points: args.history_points,
        gpu_points: args.gpu_history_points,
        step: args.history_step,
        container_coarse_points: args.history_coarse_points,
        gpu_coarse_points: args.gpu_history_coarse_points,
        ttl: args.container_ttl,
    };
    config.max_message_bytes = args.max_message_bytes;
    config.hello_timeout = args.hello_timeout;
    config.watch_buffer = args.watch_buffer;
    config.metrics_listen = args.metrics_listen;
    config.metrics.dcgm = args.metrics_dcgm_names;
    config.metrics.containers = args.metrics_containers;
    config.metrics_findings_interval = args.metrics_findings_interval;
    config.otlp =
        gpuscope_aggregator::export::otlp::OtlpConfig::from_env(args.otlp_endpoint.clone())
            .map_err(|e| anyhow::anyhow!(e))
            .context("configuring the OTLP export")?
            .map(|mut c| {
                c.max_series = args.otlp_max_series.max(1);
                c.containers = args.otlp_containers;
                c
            });
    config.limits = Limits {
        query_rate: args.query_rate,
        query_burst: args.query_burst,
        query_concurrency: args.query_concurrency,
        streams_per_peer: args.max_streams_per_peer,
        streams_total: args.max_streams,
        rpc_timeout: args.rpc_timeout,
        ..Limits::default()
    };
    if let (Some(cert), Some(key)) = (args.tls_cert.clone(), args.tls_key.clone()) {
        config.tls = Some(TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca.clone(),
        });
    }

    if !args.no_kube {
        config.kube = Some(KubeConfig {
            server: args.kube_server.clone(),
            namespaces: args.namespaces.clone(),
            device_plugin_selectors: args.device_plugin_selectors.clone(),
            fetch_logs: args.fetch_logs,
            publish_events: args.kube_events,
            ..KubeConfig::default()
        });
    }

    let auth = args.auth.unwrap_or(if args.no_kube {
        AuthMode::None
    } else {
        AuthMode::Kubernetes
    });
    match auth {
        AuthMode::Kubernetes => {
            config.auth = Some(AuthConfig {
                ttls: Ttls {
                    token: args.auth_token_ttl,
                    token_deny: args.auth_token_deny_ttl,
                    allow: args.auth_allow_ttl,
                    deny: args.auth_deny_ttl,
                },
                agent_service_accounts: args.agent_service_accounts.clone(),
                limits: AuthLimits {
                    failures_per_peer_rate: args.auth_failures_per_peer,
                    failures_per_peer_burst: args.auth_failure_burst,
                    reviews_in_flight: args.token_reviews_in_flight,
                    ..AuthLimits::default()
                },
                client_ca: args.client_ca_file.clone(),
            });
        }
        AuthMode::None => {
            anyhow::ensure!(
                args.client_ca_file.is_none(),
                "--client-ca-file identifies users for --auth kubernetes; it means nothing with \
                 --auth none"
            );
            let open = std::iter::once(args.listen)
                .chain(args.query_listen)
                .chain(args.metrics_listen)
                .find(|a| !a.ip().is_loopback());
            if let Some(addr) = open {
                anyhow::bail!(
                    "--auth none lets anyone who reaches {addr} read every namespace and report \
                     as any node: listen on a loopback address, or use --auth kubernetes"
                );
            }
        }
    }

    let mut aggregator = Aggregator::start(config)
        .await
        .with_context(|| format!("starting the aggregator on {}", args.listen))?;
    tokio::select! {
        res = aggregator.wait() => {
            res.context("gRPC server stopped")?;
            return Ok(());
        }
        sig = shutdown_signal() => {
            let sig = sig?;
            tracing::info!(signal = sig, "Shutting down.");
        }
    }
    aggregator
        .shutdown(Duration::from_secs(10))
        .await
        .context("shutting down")?;
    Ok(())
}

/// A `--history-step`: a humantime duration of more than zero.
fn parse_step(s: &str) -> anyhow::Result<Duration> {
    let step = humantime::parse_duration(s)?;
    anyhow::ensure!(!step.is_zero(), "the step must be more than 0");
    Ok(step)
}

/// A `--metrics-containers` value.
fn parse_containers(
    s: &str,
) -> anyhow::Result<gpuscope_aggregator::export::prometheus::ContainerSeries> {
    use gpuscope_aggregator::export::prometheus::ContainerSeries;
    Ok(match s {
        "all" => ContainerSeries::All,
        "gpu" => ContainerSeries::Gpu,
        "none" => ContainerSeries::None,
        _ => anyhow::bail!("expected all, gpu or none"),
    })
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid --log filter {filter:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
    Ok(())
}
