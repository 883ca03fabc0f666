//! Command-line interface: flags (each also an environment variable, since
//! DaemonSets configure by env) -> [`Config`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::collect::gpu::nvml::NvmlSettings;
use crate::collect::procs::ProcSettings;
use crate::runtime::{Config, GpuSettings};
use gpuscope_proto::client::ClientTls;

/// gpuscope's node agent: every OOM kill, memory and pressure, from the
/// real kernel; every GPU through NVML, attributed to the pod that holds it.
#[derive(Debug, Parser)]
#[command(name = "gpuscope-agent", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log format: `auto` is JSON when stderr is not a terminal.
    #[arg(long, env = "GPUSCOPE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `gpuscope_agent=debug`).
    #[arg(long, env = "GPUSCOPE_LOG", default_value = "warn", global = true)]
    pub log: String,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start-up; boxing the flattened arguments buys nothing"
)]
pub enum Command {
    /// Take one collection of the node, every container and every GPU, and
    /// print it.
    Snapshot {
        /// Where to collect from.
        #[command(flatten)]
        collect: CollectArgs,
        /// Output format.
        #[arg(short, long, env = "GPUSCOPE_OUTPUT", value_enum, default_value_t = SnapshotFormat::Table)]
        output: SnapshotFormat,
    },
    /// Print events (OOM kills, XIDs, lost GPUs, source changes) as they
    /// happen, and optionally every sample. Needs no aggregator.
    Watch {
        /// Where to collect from.
        #[command(flatten)]
        collect: CollectArgs,
        /// Output format.
        #[arg(short, long, env = "GPUSCOPE_OUTPUT", value_enum, default_value_t = WatchFormat::Table)]
        output: WatchFormat,
        /// Also print every container and node sample.
        #[arg(long, env = "GPUSCOPE_SAMPLES")]
        samples: bool,
    },
    /// Run as the node's agent: stream samples and events to the
    /// aggregator, events durably queued until acknowledged.
    Run {
        /// Where to collect from.
        #[command(flatten)]
        collect: CollectArgs,
        /// Where to send it.
        #[command(flatten)]
        ship: ShipArgs,
    },
}

/// Where `run` sends what the agent sees.
#[derive(Debug, Clone, Args)]
pub struct ShipArgs {
    /// The aggregator's URL.
    #[arg(long, env = "GPUSCOPE_AGGREGATOR")]
    pub aggregator: String,
    /// Directory of the queue of unacknowledged events; keep it across
    /// agent restarts (a hostPath in the DaemonSet).
    #[arg(long, env = "GPUSCOPE_STATE_DIR", default_value = "/var/lib/gpuscope")]
    pub state_dir: PathBuf,
    /// Most bytes of unacknowledged events kept on disk; beyond it the
    /// oldest are dropped and counted.
    #[arg(long, env = "GPUSCOPE_QUEUE_MAX_BYTES", default_value_t = 64 << 20)]
    pub queue_max_bytes: u64,
    /// This node's name (the DaemonSet sets it from spec.nodeName);
    /// default: the host name.
    #[arg(long, env = "GPUSCOPE_NODE_NAME")]
    pub node_name: Option<String>,
    /// How often samples are sent to the aggregator.
    #[arg(long, env = "GPUSCOPE_REPORT_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub report_interval: Duration,
    /// TLS towards the aggregator.
    #[command(flatten)]
    pub tls: ClientTls,
    /// A projected ServiceAccount token (audience `gpuscope`) sent as
    /// `authorization: Bearer` on each stream: the aggregator's `--auth
    /// kubernetes` lets it report only for this pod's node. Read again for
    /// every new stream, so the kubelet's rotation is picked up. Unset:
    /// no token (an aggregator with `--auth none`).
    #[arg(long, env = "GPUSCOPE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Answer the kubelet's probes over HTTP here: `/livez` (the
    /// collection loop is turning) and `/readyz` (collecting, the cgroup
    /// tree readable, the stream to the aggregator open). Off by default.
    #[arg(long, env = "GPUSCOPE_HEALTH_LISTEN", value_name = "ADDR")]
    pub health_listen: Option<std::net::SocketAddr>,
    /// `/livez` fails when no full collection ended for this long.
    #[arg(long, env = "GPUSCOPE_HEALTH_STALE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub health_stale: Duration,
}

/// `snapshot` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SnapshotFormat {
    /// Aligned table for people.
    Table,
    /// One JSON document.
    Json,
}

/// `watch` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchFormat {
    /// One line per event for people.
    Table,
    /// One JSON object per line.
    Jsonl,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, else human.
    Auto,
    /// JSON lines.
    Json,
    /// Human-readable.
    Text,
}

/// Where and how often to collect.
#[derive(Debug, Clone, Args)]
pub struct CollectArgs {
    /// Root of the host's cgroup tree (in a pod, where the host's
    /// /sys/fs/cgroup is mounted).
    #[arg(long, env = "GPUSCOPE_CGROUP_ROOT", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// The host's /proc (the DaemonSet runs with hostPID).
    #[arg(long, env = "GPUSCOPE_PROC_ROOT", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Kernel log device to read OOM reports from.
    #[arg(long, env = "GPUSCOPE_KMSG", default_value = "/dev/kmsg")]
    pub kmsg: PathBuf,
    /// Extra cgroup to watch, relative to the cgroup root's memory
    /// hierarchy (e.g. /slurm/uid_0/job_12). Repeatable; comma-separated
    /// in the environment variable.
    #[arg(
        long = "watch-cgroup",
        env = "GPUSCOPE_WATCH_CGROUP",
        value_delimiter = ','
    )]
    pub watch_cgroups: Vec<String>,
    /// Interval of a full collection (discovery and every container).
    #[arg(long, env = "GPUSCOPE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Sampling interval of hot containers (above 80 % of their limit or
    /// with rising memory pressure).
    #[arg(long, env = "GPUSCOPE_FAST_INTERVAL", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub fast_interval: Duration,
    /// History kept per container and attached to each OOM kill.
    #[arg(long, env = "GPUSCOPE_RECORDER_WINDOW", default_value = "5m", value_parser = humantime::parse_duration)]
    pub recorder_window: Duration,
    /// How long an OOM kill waits for the kernel's report to name the
    /// victim before it is emitted without one.
    #[arg(long, env = "GPUSCOPE_KMSG_WAIT", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub kmsg_wait: Duration,
    /// NVML library to load (default: the system's libnvidia-ml.so.1).
    /// gpuscope's fake NVML (tests/fake-nvml) simulates GPUs where there
    /// are none; its readings are labelled simulated.
    #[arg(long, env = "GPUSCOPE_NVML_LIB")]
    pub nvml_lib: Option<PathBuf>,
    /// How long one NVML collection may take before it is reported late
    /// (the driver is slow or hung); cgroup and OOM collection never wait
    /// for it.
    #[arg(long, env = "GPUSCOPE_NVML_DEADLINE", default_value = "2s", value_parser = humantime::parse_duration)]
    pub nvml_deadline: Duration,
    /// The kubelet's PodResources socket: which pod holds which GPU.
    #[arg(
        long,
        env = "GPUSCOPE_POD_RESOURCES_SOCKET",
        default_value = "/var/lib/kubelet/pod-resources/kubelet.sock"
    )]
    pub pod_resources_socket: PathBuf,
    /// How long a PodResources List may take.
    #[arg(long, env = "GPUSCOPE_POD_RESOURCES_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub pod_resources_timeout: Duration,
    /// Do not collect GPUs (no NVML, no PodResources).
    #[arg(long, env = "GPUSCOPE_NO_GPU")]
    pub no_gpu: bool,
    /// Do not read the GPUs' health counters (clock event reasons, ECC
    /// errors, remapped rows, PCIe link state and replays).
    #[arg(long, env = "GPUSCOPE_NO_GPU_HEALTH")]
    pub no_gpu_health: bool,
    /// Do not read the GPUs' NVLink links (state and CRC, replay and
    /// recovery error counters, every tenth collection).
    #[arg(long, env = "GPUSCOPE_NO_GPU_NVLINK")]
    pub no_gpu_nvlink: bool,
    /// How often the tasks of a container whose CPU has gone flat are
    /// scanned for threads stuck in uninterruptible sleep, with what they
    /// wait on (watch and run; 0: never)
    #[arg(long, env = "GPUSCOPE_STUCK_SCAN_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub stuck_scan_interval: Duration,
    /// How long a thread must stay in uninterruptible sleep without being
    /// scheduled before it is reported stuck
    #[arg(long, env = "GPUSCOPE_STUCK_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    pub stuck_after: Duration,
}

impl CollectArgs {
    /// The runtime configuration these flags describe.
    pub fn config(&self) -> Config {
        Config {
            cgroup_root: self.cgroup_root.clone(),
            proc_root: self.proc_root.clone(),
            kmsg: self.kmsg.clone(),
            watch_cgroups: self.watch_cgroups.clone(),
            interval: self.interval.max(Duration::from_millis(10)),
            fast_interval: self.fast_interval.max(Duration::from_millis(10)),
            recorder_window: self.recorder_window,
            kmsg_wait: self.kmsg_wait,
            procs: (!self.stuck_scan_interval.is_zero()).then(|| ProcSettings {
                scan_interval: self.stuck_scan_interval,
                stuck_after: self.stuck_after,
                ..ProcSettings::default()
            }),
            gpu: (!self.no_gpu).then(|| GpuSettings {
                nvml: NvmlSettings {
                    lib_path: self.nvml_lib.clone(),
                    deadline: self.nvml_deadline,
                    health: !self.no_gpu_health,
                    nvlink: !self.no_gpu_nvlink,
                },
                pod_resources_socket: self.pod_resources_socket.clone(),
                pod_resources_timeout: self.pod_resources_timeout,
            }),
            kmsg_not_kernel: Arc::default(),
        }
    }
}
