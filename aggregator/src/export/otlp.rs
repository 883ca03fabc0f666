//! OpenTelemetry export: the same metrics as the Prometheus endpoint, and
//! every new incident and finding as a log record, pushed over OTLP/gRPC
//! (opentelemetry-otlp's tonic exporters) to a collector
//! (`--otlp-endpoint`, or the standard `OTEL_EXPORTER_OTLP_*` variables;
//! docs/metrics.md, "OpenTelemetry").
//!
//! # Metrics
//!
//! One observable instrument per metric family ([`otel`] names each, with
//! its unit), all reading the state through the Prometheus exporter's
//! walk ([`Walk`]): the first callback of a collection walks the state
//! once into [`Points`], the sink that makes attribute sets of the labels
//! (Kubernetes' semantic-convention names: `k8s.node.name`,
//! `k8s.namespace.name`, `k8s.pod.name`, `k8s.container.name`, ...), and
//! every callback then observes its family's points. There is one source
//! of truth; a series is defined once, in [`crate::export::prometheus`].
//!
//! The SDK's periodic reader collects on a thread of its own and exports
//! through a tonic channel whose connection lives on a runtime of its own
//! (one worker thread, `otlp`), so neither a collection nor an export
//! takes a worker of the runtime that serves the agents.
//!
//! Bounded: at most `max_series` series per metric are observed per
//! collection (the rest are counted in [`Stats`] and logged); the SDK's
//! per-metric cardinality limit is set a little above that; one collection
//! is held at a time.
//!
//! # Logs
//!
//! [`Logs::incident`] and [`Logs::finding`] make a log record and hand it
//! to the SDK's batch processor, whose queue is bounded and never blocks
//! (`try_send`). The SDK counts what it drops there only for its own
//! shutdown message, so [`Gate`] keeps the count of records queued or
//! being exported, refuses (and counts) a record that would not fit, and
//! the batch processor's own queue never fills. A slow or unreachable
//! collector therefore costs the aggregator one atomic add per record and
//! the queue's memory, nothing more; what it loses is counted
//! (`gpuscope_otlp_*` on `/metrics`) and logged once per interval.
//!
//! Incidents reach [`incidents_loop`] from ingest's broadcast of newly
//! stored incidents, the same one `WatchIncidents` and the diagnosis
//! recorder read; findings come from the recorded diagnoses
//! ([`crate::record`], like the Kubernetes Events of `--kube-events`) and
//! from the periodic cluster diagnosis ([`crate::export::findings`]),
//! which logs each finding the previous diagnosis did not have.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gpuscope_diagnose::{Confidence, Finding, Kind};
use gpuscope_model::GpuHealthChange;
use gpuscope_proto::v1::{GpuHolder, Incident, SourceState, node_event::Kind as EventKind};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::{AsyncInstrument, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, Key, KeyValue, StringValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, LogProcessor, SdkLogRecord,
    SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{
    Instrument, PeriodicReader, SdkMeterProvider, Stream, Temporality,
};
use tokio::sync::{broadcast, watch};

use crate::error::{Error, Result};
use crate::export::findings;
use crate::export::prometheus::{
    ContainerSeries, F, FAMILIES, Inputs, Label, LabelValue, Options, PodNames, Sample, Set, Shard,
    Sink, Walk,
};
use crate::state::State;
use crate::sync::lock;

/// The instrumentation scope of everything gpuscope exports.
pub const SCOPE: &str = "gpuscope-aggregator";

/// The default most series per metric at one export.
pub const DEFAULT_MAX_SERIES: usize = 100_000;

/// How often losses are logged (at most once per interval).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// How the aggregator exports OTLP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The collector's OTLP/gRPC endpoint for both signals
    /// (`--otlp-endpoint`, e.g. `http://otel-collector:4317`); `None`:
    /// each signal's from the standard environment
    /// (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` or `..._LOGS_ENDPOINT`, then
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Export the metrics.
    pub metrics: bool,
    /// Export incidents and findings as log records.
    pub logs: bool,
    /// How often the metrics are collected and exported; `None`:
    /// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds), else 60 s.
    pub interval: Option<Duration>,
    /// Time limit of one export request; `None`:
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), else 10 s.
    pub timeout: Option<Duration>,
    /// Most series of one metric observed at one collection; more are
    /// not exported, and counted.
    pub max_series: usize,
    /// Most log records waiting for export (queued or being sent); more
    /// are dropped, and counted. `None`: `OTEL_BLRP_MAX_QUEUE_SIZE`, else
    /// 2048.
    pub log_queue: Option<usize>,
    /// How long log records wait to be sent in a batch (unless a full
    /// batch is ready first); `None`: `OTEL_BLRP_SCHEDULE_DELAY`
    /// (milliseconds), else 1 s.
    pub log_interval: Option<Duration>,
    /// Which containers get per-container series; `None`: as the
    /// Prometheus endpoint (`--metrics-containers`).
    pub containers: Option<ContainerSeries>,
    /// How often losses are logged.
    pub report_interval: Duration,
}

impl OtlpConfig {
    /// Both signals to `endpoint` (`None`: the standard environment's),
    /// with the defaults.
    pub fn new(endpoint: Option<String>) -> Self {
        Self {
            endpoint,
            metrics: true,
            logs: true,
            interval: None,
            timeout: None,
            max_series: DEFAULT_MAX_SERIES,
            log_queue: None,
            log_interval: None,
            containers: None,
            report_interval: REPORT_INTERVAL,
        }
    }

    /// The configuration `--otlp-endpoint` (`endpoint`) and the process's
    /// standard OpenTelemetry variables ask for; `None` when no endpoint
    /// is set anywhere, or `OTEL_SDK_DISABLED=true`.
    pub fn from_env(endpoint: Option<String>) -> std::result::Result<Option<Self>, String> {
        Self::from_vars(endpoint, |k| std::env::var(k).ok())
    }

    /// [`OtlpConfig::from_env`] reading the variables through `var`.
    pub fn from_vars(
        endpoint: Option<String>,
        var: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Option<Self>, String> {
        let var = |k: &str| {
            var(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let endpoint = endpoint.filter(|e| !e.trim().is_empty());
        let any = endpoint.is_some() || var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
        let signal = |name: &str| -> std::result::Result<bool, String> {
            let upper = name.to_ascii_uppercase();
            let exporter = format!("OTEL_{upper}_EXPORTER");
            let mut on = true;
            if let Some(v) = var(&exporter) {
                for e in v.split(',').map(str::trim) {
                    match e {
                        "otlp" => {}
                        "none" => on = false,
                        other => {
                            return Err(format!(
                                "{exporter}={other}: gpuscope exports {name} over otlp (or none){}",
                                if name == "metrics" {
                                    "; its Prometheus endpoint is --metrics-listen"
                                } else {
                                    ""
                                }
                            ));
                        }
                    }
                }
            }
            let on = on && (any || var(&format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT")).is_some());
            if on {
                // The signal's own variable, else the general one.
                let first = |name: &str| {
                    [
                        format!("OTEL_EXPORTER_OTLP_{upper}_{name}"),
                        format!("OTEL_EXPORTER_OTLP_{name}"),
                    ]
                    .into_iter()
                    .find_map(|k| Some((var(&k)?, k)))
                };
                if let Some((v, k)) = first("PROTOCOL")
                    && v != "grpc"
                {
                    return Err(format!(
                        "{k}={v}: gpuscope exports OTLP over gRPC only (a collector's port 4317)"
                    ));
                }
                // The SDK would send an unknown compression uncompressed,
                // saying so nowhere.
                if let Some((v, k)) = first("COMPRESSION")
                    && !v.eq_ignore_ascii_case("gzip")
                    && !v.eq_ignore_ascii_case("none")
                {
                    return Err(format!("{k}={v}: gpuscope compresses with gzip (or none)"));
                }
            }
            Ok(on)
        };
        let (metrics, logs) = (signal("metrics")?, signal("logs")?);
        if !metrics && !logs {
            return Ok(None);
        }
        Ok(Some(Self {
            metrics,
            logs,
            ..Self::new(endpoint)
        }))
    }
}

/// What the OTLP exporter has done and lost, for `/metrics` and the log.
#[derive(Debug, Default)]
pub struct Stats {
    metric_exports_ok: AtomicU64,
    metric_exports_failed: AtomicU64,
    log_exports_ok: AtomicU64,
    log_exports_failed: AtomicU64,
    log_records_exported: AtomicU64,
    log_records_failed: AtomicU64,
    log_records_dropped: AtomicU64,
    /// Log records queued or being exported.
    log_records_queued: AtomicUsize,
    series_dropped: AtomicU64,
    last: Mutex<LastCollection>,
    last_error: Mutex<Option<String>>,
}

/// The latest collection of the metrics.
#[derive(Debug, Default, Clone, Copy)]
struct LastCollection {
    /// When its walk started.
    started: Option<Instant>,
    /// Its walk, seconds.
    walk_seconds: f64,
    /// The walk, the SDK's aggregation and the export, seconds.
    export_seconds: f64,
    /// Series observed.
    series: u64,
}

/// A copy of [`Stats`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StatsSnapshot {
    /// Metric exports the collector accepted.
    pub metric_exports_ok: u64,
    /// Metric exports that failed (after the exporter's retries).
    pub metric_exports_failed: u64,
    /// Log exports the collector accepted.
    pub log_exports_ok: u64,
    /// Log exports that failed.
    pub log_exports_failed: u64,
    /// Log records the collector accepted.
    pub log_records_exported: u64,
    /// Log records of failed exports.
    pub log_records_failed: u64,
    /// Log records dropped before export: the queue was full (or the
    /// exporter fell more than the incident broadcast's buffer behind).
    pub log_records_dropped: u64,
    /// Log records queued or being exported now.
    pub log_records_queued: u64,
    /// Series not exported: beyond `max_series` of their metric.
    pub series_dropped: u64,
    /// The latest collection's walk over the state, seconds.
    pub last_walk_seconds: f64,
    /// The latest export: walk, aggregation and request, seconds.
    pub last_export_seconds: f64,
    /// Series the latest collection observed.
    pub last_series: u64,
    /// The latest export error.
    pub last_error: Option<String>,
}

impl Stats {
    /// A copy of the counts.
    pub fn snapshot(&self) -> StatsSnapshot {
        let last = *lock(&self.last);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            metric_exports_ok: get(&self.metric_exports_ok),
            metric_exports_failed: get(&self.metric_exports_failed),
            log_exports_ok: get(&self.log_exports_ok),
            log_exports_failed: get(&self.log_exports_failed),
            log_records_exported: get(&self.log_records_exported),
            log_records_failed: get(&self.log_records_failed),
            log_records_dropped: get(&self.log_records_dropped),
            log_records_queued: self.log_records_queued.load(Ordering::Relaxed) as u64,
            series_dropped: get(&self.series_dropped),
            last_walk_seconds: last.walk_seconds,
            last_export_seconds: last.export_seconds,
            last_series: last.series,
            last_error: lock(&self.last_error).clone(),
        }
    }

    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        *lock(&self.last_error) = Some(format!("{what}: {e}"));
    }

    /// The counts in the Prometheus text format (appended to `/metrics`).
    pub fn prometheus_text(&self) -> String {
        let s = self.snapshot();
        format!(
            "# HELP gpuscope_otlp_exports_total OTLP export requests, by signal and result (after the exporter's retries).\n\
             # TYPE gpuscope_otlp_exports_total counter\n\
             gpuscope_otlp_exports_total{{signal=\"metrics\",result=\"ok\"}} {}\n\
             gpuscope_otlp_exports_total{{signal=\"metrics\",result=\"failed\"}} {}\n\
             gpuscope_otlp_exports_total{{signal=\"logs\",result=\"ok\"}} {}\n\
             gpuscope_otlp_exports_total{{signal=\"logs\",result=\"failed\"}} {}\n\
             # HELP gpuscope_otlp_log_records_total Incident and finding log records, by result: exported, failed (their export failed) or dropped (the queue was full).\n\
             # TYPE gpuscope_otlp_log_records_total counter\n\
             gpuscope_otlp_log_records_total{{result=\"exported\"}} {}\n\
             gpuscope_otlp_log_records_total{{result=\"failed\"}} {}\n\
             gpuscope_otlp_log_records_total{{result=\"dropped\"}} {}\n\
             # HELP gpuscope_otlp_log_records_queued Log records queued or being exported.\n\
             # TYPE gpuscope_otlp_log_records_queued gauge\n\
             gpuscope_otlp_log_records_queued {}\n\
             # HELP gpuscope_otlp_series_dropped_total Series not exported over OTLP: beyond --otlp-max-series of their metric at a collection.\n\
             # TYPE gpuscope_otlp_series_dropped_total counter\n\
             gpuscope_otlp_series_dropped_total {}\n\
             # HELP gpuscope_otlp_last_collection_series Series the latest OTLP metrics collection observed.\n\
             # TYPE gpuscope_otlp_last_collection_series gauge\n\
             gpuscope_otlp_last_collection_series {}\n\
             # HELP gpuscope_otlp_last_collection_walk_seconds How long the latest OTLP collection's walk over the state took, seconds.\n\
             # TYPE gpuscope_otlp_last_collection_walk_seconds gauge\n\
             gpuscope_otlp_last_collection_walk_seconds {}\n\
             # HELP gpuscope_otlp_last_export_duration_seconds How long the latest OTLP metrics export took from its collection's start, seconds.\n\
             # TYPE gpuscope_otlp_last_export_duration_seconds gauge\n\
             gpuscope_otlp_last_export_duration_seconds {}\n",
            s.metric_exports_ok,
            s.metric_exports_failed,
            s.log_exports_ok,
            s.log_exports_failed,
            s.log_records_exported,
            s.log_records_failed,
            s.log_records_dropped,
            s.log_records_queued,
            s.series_dropped,
            s.last_series,
            s.last_walk_seconds,
            s.last_export_seconds,
        )
    }
}

/// How an OpenTelemetry instrument records a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtelInstrument {
    /// An observable gauge (a value at a time).
    Gauge,
    /// An observable up-down counter (an additive value: bytes, counts).
    UpDownCounter,
    /// An observable counter (monotonic).
    Counter,
}

/// A family's OpenTelemetry metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Otel {
    /// The metric's name.
    pub name: &'static str,
    /// Its unit (UCUM).
    pub unit: &'static str,
    /// Its instrument.
    pub instrument: OtelInstrument,
    /// Integer values (else double).
    pub int: bool,
}

/// The OpenTelemetry metric of a family; `None` for the dcgm-exporter
/// compatibility families (Prometheus only).
pub const fn otel(f: F) -> Option<Otel> {
    use OtelInstrument::{Counter, Gauge, UpDownCounter as UpDown};
    let (name, unit, instrument, int) = match f {
        F::ContainerMemoryUsage => ("gpuscope.container.memory.usage", "By", UpDown, true),
        F::ContainerMemoryLimit => ("gpuscope.container.memory.limit", "By", UpDown, true),
        F::ContainerMemoryAnon => ("gpuscope.container.memory.anon", "By", UpDown, true),
        F::ContainerOomKills => ("gpuscope.container.oom_kills", "{kill}", Counter, true),
        F::ContainerCpu => ("gpuscope.container.cpu.time", "s", Counter, false),
        F::ContainerPressure => (
            "gpuscope.container.pressure.stall_time",
            "s",
            Counter,
            false,
        ),
        F::GpuUtil => ("gpuscope.gpu.utilization", "1", Gauge, false),
        F::GpuMemUtil => ("gpuscope.gpu.memory.utilization", "1", Gauge, false),
        F::GpuMemUsed => ("gpuscope.gpu.memory.usage", "By", UpDown, true),
        F::GpuMemTotal => ("gpuscope.gpu.memory.limit", "By", UpDown, true),
        F::GpuPower => ("gpuscope.gpu.power", "W", Gauge, false),
        F::GpuPowerLimit => ("gpuscope.gpu.power.limit", "W", Gauge, false),
        F::GpuTemp => ("gpuscope.gpu.temperature", "Cel", Gauge, true),
        F::GpuSmClock => ("gpuscope.gpu.sm.clock", "Hz", Gauge, true),
        F::GpuProcesses => ("gpuscope.gpu.processes", "{process}", UpDown, true),
        F::GpuHolder => ("gpuscope.gpu.holder", "1", Gauge, true),
        F::ProcMem => ("gpuscope.gpu.process.memory.usage", "By", UpDown, true),
        F::ProcSm => ("gpuscope.gpu.process.sm.utilization", "1", Gauge, false),
        F::OomKills => ("gpuscope.oom_kills", "{kill}", Counter, true),
        F::Xids => ("gpuscope.gpu.xid_errors", "{error}", Counter, true),
        F::GpuLost => ("gpuscope.gpu.lost", "{event}", Counter, true),
        F::NodeMemTotal => ("gpuscope.node.memory.limit", "By", UpDown, true),
        F::NodeMemAvail => ("gpuscope.node.memory.available", "By", UpDown, true),
        F::NodeGpuCapacity => ("gpuscope.node.gpu.capacity", "{device}", UpDown, false),
        F::NodeGpuAllocatable => ("gpuscope.node.gpu.allocatable", "{device}", UpDown, false),
        F::DevicePluginReady => ("gpuscope.device_plugin.ready", "1", Gauge, true),
        F::AgentConnected => ("gpuscope.agent.connected", "1", Gauge, true),
        F::AgentLastReport => ("gpuscope.agent.last_report.time", "s", Gauge, false),
        F::AgentDropped => ("gpuscope.agent.dropped_samples", "{sample}", Counter, true),
        F::AgentQueue => ("gpuscope.agent.queue.events", "{event}", UpDown, true),
        F::AgentQueueBytes => ("gpuscope.agent.queue.size", "By", UpDown, true),
        F::AgentQueueDropped => (
            "gpuscope.agent.queue.dropped_events",
            "{event}",
            Counter,
            true,
        ),
        F::AgentReconnects => ("gpuscope.agent.reconnects", "{reconnect}", Counter, true),
        F::AgentKmsgNotKernel => (
            "gpuscope.agent.kmsg.not_kernel_records",
            "{record}",
            Counter,
            true,
        ),
        F::AgentCpu => ("gpuscope.agent.cpu.time", "s", Counter, false),
        F::AgentRss => ("gpuscope.agent.memory.rss", "By", UpDown, true),
        F::AgentSourceDegraded => ("gpuscope.agent.source.degraded", "1", Gauge, true),
        F::Findings => ("gpuscope.findings", "{finding}", UpDown, true),
        F::IdleGpuHours => ("gpuscope.gpu.idle.time", "h", Gauge, false),
        F::FindingsAge => ("gpuscope.findings.evaluation.time", "s", Gauge, false),
        F::FindingsTook => ("gpuscope.findings.evaluation.duration", "s", Gauge, false),
        F::DcgmUtil
        | F::DcgmMemCopy
        | F::DcgmFbUsed
        | F::DcgmFbFree
        | F::DcgmPower
        | F::DcgmTemp
        | F::DcgmSmClock
        | F::DcgmXid => return None,
    };
    Some(Otel {
        name,
        unit,
        instrument,
        int,
    })
}

/// The attribute name of a label; `None` for dcgm-exporter's (never
/// exported over OTLP).
pub const fn attribute(l: Label) -> Option<&'static str> {
    Some(match l {
        Label::Node => "k8s.node.name",
        Label::Namespace => "k8s.namespace.name",
        Label::Pod => "k8s.pod.name",
        Label::Container => "k8s.container.name",
        Label::Gpu => "gpuscope.gpu.index",
        Label::Uuid => "hw.id",
        Label::Model => "hw.model",
        Label::Pid => "process.pid",
        Label::Resource => "gpuscope.resource.name",
        Label::Source => "gpuscope.agent.source",
        Label::Xid => "gpuscope.gpu.xid",
        Label::FindingKind => "gpuscope.finding.kind",
        Label::Owner => "gpuscope.owner",
        Label::PsiResource => "gpuscope.pressure.resource",
        Label::PsiKind => "gpuscope.pressure.kind",
        Label::PciBusId | Label::Device | Label::ModelName | Label::Hostname => return None,
    })
}

/// A pod's UID (`k8s.pod.uid`), a container's ID (`container.id`) and a
/// cgroup path, for what Kubernetes does not name.
const POD_UID: &str = "k8s.pod.uid";
const CONTAINER_ID: &str = "container.id";
const CGROUP: &str = "gpuscope.cgroup.path";

/// The OTLP sink of the walk: each exported family's points, each with
/// its attribute set. A label set is frozen into one shared slice the
/// first time a sample takes it, so a container's attributes are built
/// once for all its metrics.
#[derive(Debug, Default)]
pub struct Points {
    /// Points by family, indexed by [`F`].
    pub families: Vec<Vec<(Arc<[KeyValue]>, Sample)>>,
    sets: [Vec<KeyValue>; 2],
    frozen: [Option<Arc<[KeyValue]>>; 2],
}

fn slot(set: Set) -> usize {
    match set {
        Set::First => 0,
        Set::Second => 1,
    }
}

impl Points {
    /// Empty, ready for a walk.
    pub fn start(&mut self) {
        self.families.clear();
        self.families.resize_with(FAMILIES.len(), Vec::new);
        self.sets = Default::default();
        self.frozen = Default::default();
    }

    /// Points in all.
    pub fn len(&self) -> usize {
        self.families.iter().map(Vec::len).sum()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push_str(&mut self, set: Set, key: &'static str, value: &str) {
        if value.is_empty() {
            return;
        }
        let i = slot(set);
        self.frozen[i] = None;
        self.sets[i].push(KeyValue::new(
            Key::from_static_str(key),
            StringValue::from(Arc::<str>::from(value)),
        ));
    }
}

impl Sink for Points {
    fn clear(&mut self, set: Set) {
        let i = slot(set);
        self.sets[i].clear();
        self.frozen[i] = None;
    }

    fn label(&mut self, set: Set, label: Label, value: LabelValue<'_>) {
        let Some(key) = attribute(label) else {
            return;
        };
        match value {
            LabelValue::Str(s) => self.push_str(set, key, s),
            LabelValue::Int(v) => {
                let i = slot(set);
                self.frozen[i] = None;
                self.sets[i].push(KeyValue::new(
                    Key::from_static_str(key),
                    i64::try_from(v).unwrap_or(i64::MAX),
                ));
            }
        }
    }

    fn container(
        &mut self,
        set: Set,
        pod: Option<&PodNames<'_>>,
        uid: &str,
        id: &str,
        cgroup: &str,
    ) {
        if let Some(p) = pod {
            self.push_str(set, "k8s.namespace.name", p.namespace);
            self.push_str(set, "k8s.pod.name", p.name);
        }
        self.push_str(set, POD_UID, uid);
        match pod.and_then(|p| p.containers.get(id)) {
            Some(name) => self.push_str(set, "k8s.container.name", name),
            None if !uid.is_empty() && !id.is_empty() => self.push_str(set, CONTAINER_ID, id),
            None => self.push_str(set, CGROUP, cgroup),
        }
    }

    fn put(&mut self, f: F, set: Set, extra: &[(Label, LabelValue<'_>)], value: Sample) {
        if otel(f).is_none() {
            return;
        }
        let i = slot(set);
        let attrs = if extra.is_empty() {
            self.frozen[i]
                .get_or_insert_with(|| Arc::from(self.sets[i].as_slice()))
                .clone()
        } else {
            let mut v = self.sets[i].clone();
            for (label, value) in extra {
                let Some(key) = attribute(*label) else {
                    continue;
                };
                let key = Key::from_static_str(key);
                match value {
                    LabelValue::Str("") => {}
                    LabelValue::Str(s) => v.push(KeyValue::new(key, (*s).to_owned())),
                    LabelValue::Int(n) => {
                        v.push(KeyValue::new(key, i64::try_from(*n).unwrap_or(i64::MAX)));
                    }
                }
            }
            Arc::from(v)
        };
        self.families[f as usize].push((attrs, value));
    }
}

/// What a collection reads (the Prometheus endpoint's inputs).
#[derive(Clone)]
pub struct Source {
    /// The live state.
    pub state: Arc<State>,
    /// The Kubernetes side, for names, node objects and device plugins.
    pub kube: Option<Arc<crate::kube::Kube>>,
    /// The latest cluster diagnosis.
    pub findings: findings::Latest,
    /// Which series (the Prometheus endpoint's options; dcgm-exporter's
    /// names are never exported over OTLP).
    pub options: Options,
}

/// One collection at a time: the walk's buffers, its points, and which
/// families' callbacks have taken theirs since the last walk.
struct Round {
    walk: Walk,
    points: Points,
    taken: Vec<bool>,
}

/// Reads the state once per collection for every instrument's callback.
struct Collector {
    source: Source,
    max_series: usize,
    stats: Arc<Stats>,
    round: Mutex<Round>,
}

impl Collector {
    fn new(source: Source, max_series: usize, stats: Arc<Stats>) -> Self {
        Self {
            source: Source {
                options: Options {
                    dcgm: false,
                    ..source.options
                },
                ..source
            },
            max_series,
            stats,
            round: Mutex::new(Round {
                walk: Walk::default(),
                points: Points::default(),
                // Nothing taken yet counts as everything taken: the first
                // callback walks.
                taken: vec![true; FAMILIES.len()],
            }),
        }
    }

    /// Hands family `f`'s points to `observe`, walking the state first
    /// when `f` already had this walk's (the first callback of a
    /// collection: each callback runs once per collection).
    fn observe(&self, f: F, mut observe: impl FnMut(Sample, &[KeyValue])) {
        let points = {
            let mut round = lock(&self.round);
            if round.taken[f as usize] {
                self.collect(&mut round);
            }
            round.taken[f as usize] = true;
            std::mem::take(&mut round.points.families[f as usize])
        };
        for (attrs, value) in points.iter().take(self.max_series) {
            observe(*value, attrs);
        }
        if points.len() > self.max_series {
            self.stats
                .series_dropped
                .fetch_add((points.len() - self.max_series) as u64, Ordering::Relaxed);
        }
    }

    fn collect(&self, round: &mut Round) {
        let started = Instant::now();
        let s = &self.source;
        let k = super::KubeInputs::of(s.kube.as_deref());
        let inputs = Inputs {
            pods: &k.pods,
            nodes: &k.nodes,
            device_plugins: &k.device_plugins,
            counts: s.state.tally().counts(),
            findings: lock(&s.findings).clone(),
        };
        let Round {
            walk,
            points,
            taken,
        } = round;
        points.start();
        walk.run(points, &s.state, &inputs, s.options, Shard::ALL);
        taken.iter_mut().for_each(|t| *t = false);
        let series = points
            .families
            .iter()
            .map(|f| f.len().min(self.max_series) as u64)
            .sum();
        let mut last = lock(&self.stats.last);
        last.started = Some(started);
        last.walk_seconds = started.elapsed().as_secs_f64();
        last.series = series;
    }
}

/// Registers one observable instrument per exported family.
fn instruments(meter: &Meter, collector: &Arc<Collector>) {
    for &f in F::ALL {
        let Some(o) = otel(f) else { continue };
        let help = FAMILIES[f as usize].2;
        let c = collector.clone();
        match (o.instrument, o.int) {
            (OtelInstrument::Gauge, true) => {
                meter
                    .u64_observable_gauge(o.name)
                    .with_unit(o.unit)
                    .with_description(help)
                    .with_callback(move |i: &dyn AsyncInstrument<u64>| {
                        c.observe(f, |v, a| i.observe(v.as_u64(), a));
                    })
                    .build();
            }
            (OtelInstrument::Gauge, false) => {
                meter
                    .f64_observable_gauge(o.name)
                    .with_unit(o.unit)
                    .with_description(help)
                    .with_callback(move |i: &dyn AsyncInstrument<f64>| {
                        c.observe(f, |v, a| i.observe(v.as_f64(), a));
                    })
                    .build();
            }
            (OtelInstrument::Counter, true) => {
                meter
                    .u64_observable_counter(o.name)
                    .with_unit(o.unit)
                    .with_description(help)
                    .with_callback(move |i: &dyn AsyncInstrument<u64>| {
                        c.observe(f, |v, a| i.observe(v.as_u64(), a));
                    })
                    .build();
            }
            (OtelInstrument::Counter, false) => {
                meter
                    .f64_observable_counter(o.name)
                    .with_unit(o.unit)
                    .with_description(help)
                    .with_callback(move |i: &dyn AsyncInstrument<f64>| {
                        c.observe(f, |v, a| i.observe(v.as_f64(), a));
                    })
                    .build();
            }
            (OtelInstrument::UpDownCounter, true) => {
                meter
                    .i64_observable_up_down_counter(o.name)
                    .with_unit(o.unit)
                    .with_description(help)
                    .with_callback(move |i: &dyn AsyncInstrument<i64>| {
                        c.observe(f, |v, a| {
                            i.observe(i64::try_from(v.as_u64()).unwrap_or(i64::MAX), a);
                        });
                    })
                    .build();
            }
            (OtelInstrument::UpDownCounter, false) => {
                meter
                    .f64_observable_up_down_counter(o.name)
                    .with_unit(o.unit)
                    .with_description(help)
                    .with_callback(move |i: &dyn AsyncInstrument<f64>| {
                        c.observe(f, |v, a| i.observe(v.as_f64(), a));
                    })
                    .build();
            }
        }
    }
}

/// The metric exporter, counting what it exports and when it fails.
struct CountingMetrics<E> {
    inner: E,
    stats: Arc<Stats>,
}

impl<E: PushMetricExporter> PushMetricExporter for CountingMetrics<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let r = self.inner.export(metrics).await;
        match &r {
            Ok(()) => {
                self.stats.metric_exports_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats
                    .metric_exports_failed
                    .fetch_add(1, Ordering::Relaxed);
                self.stats.failed("metrics export", e);
            }
        }
        let mut last = lock(&self.stats.last);
        if let Some(started) = last.started {
            last.export_seconds = started.elapsed().as_secs_f64();
        }
        r
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// The log exporter, counting what it exports and releasing the records'
/// places in [`Gate`]'s bound.
#[derive(Debug)]
struct CountingLogs<E> {
    inner: E,
    stats: Arc<Stats>,
}

impl<E: LogExporter> LogExporter for CountingLogs<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count();
        let r = self.inner.export(batch).await;
        let s = &self.stats;
        match &r {
            Ok(()) => {
                s.log_exports_ok.fetch_add(1, Ordering::Relaxed);
                s.log_records_exported
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                s.log_exports_failed.fetch_add(1, Ordering::Relaxed);
                s.log_records_failed.fetch_add(n as u64, Ordering::Relaxed);
                s.failed("logs export", e);
            }
        }
        s.log_records_queued.fetch_sub(n, Ordering::AcqRel);
        r
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The SDK's batch processor behind a count of the records it holds:
/// a record that would not fit in its queue is dropped here, and counted
/// (the SDK's own queue then never fills; it would drop as silently).
#[derive(Debug)]
struct Gate {
    inner: BatchLogProcessor,
    stats: Arc<Stats>,
    /// The batch processor's queue size.
    capacity: usize,
}

impl LogProcessor for Gate {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        let held = self.stats.log_records_queued.fetch_add(1, Ordering::AcqRel);
        if held >= self.capacity {
            self.stats.log_records_queued.fetch_sub(1, Ordering::AcqRel);
            self.stats
                .log_records_dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.emit(record, scope);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Emits incidents and findings as log records (cheap and never
/// blocking: see the module documentation).
#[derive(Debug, Clone)]
pub struct Logs {
    logger: SdkLogger,
    stats: Arc<Stats>,
}

/// Where a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingSource<'a> {
    /// A diagnosis recorded after an incident on `node`, of the pod with
    /// this UID (empty when unknown).
    Incident {
        /// The incident's node.
        node: &'a str,
        /// The pod's UID.
        pod_uid: &'a str,
    },
    /// The periodic diagnosis of the whole cluster.
    Cluster,
}

/// A killed container's Kubernetes names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodLabels {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name (empty when its ID is not among the pod's).
    pub container: String,
}

/// An attribute list, skipping empty text.
#[derive(Default)]
struct Attrs(Vec<(Key, AnyValue)>);

impl Attrs {
    fn str(&mut self, k: &'static str, v: &str) -> &mut Self {
        if !v.is_empty() {
            self.0
                .push((Key::from_static_str(k), AnyValue::from(v.to_owned())));
        }
        self
    }

    fn int(&mut self, k: &'static str, v: u64) -> &mut Self {
        self.0.push((
            Key::from_static_str(k),
            AnyValue::Int(i64::try_from(v).unwrap_or(i64::MAX)),
        ));
        self
    }

    fn list(&mut self, k: &'static str, v: Vec<String>) -> &mut Self {
        if !v.is_empty() {
            self.0
                .push((Key::from_static_str(k), v.into_iter().collect::<AnyValue>()));
        }
        self
    }

    fn holders(&mut self, holders: &[GpuHolder]) -> &mut Self {
        if let [h] = holders {
            self.str("k8s.namespace.name", &h.namespace)
                .str("k8s.pod.name", &h.pod)
                .str("k8s.container.name", &h.container);
        }
        self.list(
            "gpuscope.gpu.holders",
            holders
                .iter()
                .filter(|h| !h.pod.is_empty())
                .map(|h| format!("{}/{}", h.namespace, h.pod))
                .collect(),
        )
    }
}

fn at(unix_nanos: u64) -> Option<SystemTime> {
    (unix_nanos > 0).then(|| UNIX_EPOCH + Duration::from_nanos(unix_nanos))
}

fn holder_text(holders: &[GpuHolder]) -> String {
    let names: Vec<String> = holders
        .iter()
        .filter(|h| !h.pod.is_empty())
        .map(|h| format!("{}/{}", h.namespace, h.pod))
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (held by {})", names.join(", "))
    }
}

fn gpu_text(index: Option<u32>, uuid: &str) -> String {
    match (index, uuid) {
        (Some(i), "") => format!("GPU {i}"),
        (Some(i), u) => format!("GPU {i} ({u})"),
        (None, "") => "a GPU".to_owned(),
        (None, u) => format!("GPU {u}"),
    }
}

impl Logs {
    fn emit(
        &self,
        event: &'static str,
        severity: Severity,
        time: Option<SystemTime>,
        observed: Option<SystemTime>,
        body: String,
        attrs: Attrs,
    ) {
        let mut r = self.logger.create_log_record();
        r.set_event_name(event);
        r.set_severity_number(severity);
        r.set_severity_text(severity.name());
        if let Some(t) = time {
            r.set_timestamp(t);
        }
        r.set_observed_timestamp(observed.unwrap_or_else(SystemTime::now));
        r.set_body(AnyValue::from(body));
        r.add_attributes(attrs.0);
        self.logger.emit(r);
    }

    /// Counts `n` records lost before they were made (the incident
    /// broadcast lagged).
    pub fn lost(&self, n: u64) {
        self.stats
            .log_records_dropped
            .fetch_add(n, Ordering::Relaxed);
    }

    /// A newly stored incident, with its killed container's names when it
    /// is an OOM kill of a pod Kubernetes names.
    pub fn incident(&self, i: &Incident, names: Option<&PodLabels>) {
        let Some(event) = i.event.as_ref() else {
            return;
        };
        let Some(kind) = event.kind.as_ref() else {
            return;
        };
        let node = i.node_name.as_str();
        let mut a = Attrs::default();
        a.str("k8s.node.name", node)
            .str("gpuscope.node.boot_id", &i.boot_id)
            .int("gpuscope.incident.seq", event.seq);
        let (event_name, kind_name, severity, body) = match kind {
            EventKind::OomKill(o) => {
                let r = o.container.clone().unwrap_or_default();
                let n = names.cloned().unwrap_or_default();
                a.str("k8s.namespace.name", &n.namespace)
                    .str("k8s.pod.name", &n.pod)
                    .str("k8s.container.name", &n.container)
                    .str(POD_UID, &r.pod_uid)
                    .str(CONTAINER_ID, &r.container_id)
                    .str(CGROUP, &r.cgroup_path);
                if let Some(l) = o.limit_bytes {
                    a.int("gpuscope.oom.limit", l);
                }
                if let Some(t) = &o.trigger_comm {
                    a.str("gpuscope.oom.trigger", t);
                }
                let mut who = String::from("a process");
                if let Some(v) = &o.victim {
                    a.int("process.pid", u64::from(v.pid))
                        .str("process.executable.name", &v.comm)
                        .int("gpuscope.oom.victim.anon_rss", v.anon_rss_bytes);
                    who = format!("{} (pid {})", v.comm, v.pid);
                }
                let whose = if !n.pod.is_empty() {
                    if n.container.is_empty() {
                        format!(" in pod {}/{}", n.namespace, n.pod)
                    } else {
                        format!(
                            " in container {} of pod {}/{}",
                            n.container, n.namespace, n.pod
                        )
                    }
                } else if !r.pod_uid.is_empty() {
                    format!(" in a container of pod UID {}", r.pod_uid)
                } else if !r.cgroup_path.is_empty() {
                    format!(" in cgroup {}", r.cgroup_path)
                } else {
                    String::new()
                };
                let limit = o
                    .limit_bytes
                    .map(|l| format!(" (memory limit {} MiB)", l >> 20))
                    .unwrap_or_default();
                (
                    "gpuscope.incident.oom_kill",
                    "oom_kill",
                    Severity::Warn,
                    format!("OOM kill of {who}{whose}{limit} on node {node}."),
                )
            }
            EventKind::Xid(x) => {
                a.str("hw.id", &x.gpu_uuid)
                    .int("gpuscope.gpu.xid", x.xid)
                    .int("gpuscope.gpu.xid.count", x.count)
                    .holders(&x.holders);
                if let Some(i) = x.gpu_index {
                    a.int("gpuscope.gpu.index", u64::from(i));
                }
                if x.simulated {
                    a.0.push((
                        Key::from_static_str("gpuscope.incident.simulated"),
                        AnyValue::Boolean(true),
                    ));
                }
                (
                    "gpuscope.incident.xid",
                    "xid",
                    Severity::Error,
                    format!(
                        "XID {} on {} of node {node}{}.",
                        x.xid,
                        gpu_text(x.gpu_index, &x.gpu_uuid),
                        holder_text(&x.holders)
                    ),
                )
            }
            EventKind::GpuLost(l) => {
                let uuid = l.gpu_uuid.as_deref().unwrap_or("");
                a.str("hw.id", uuid)
                    .int("gpuscope.gpu.index", u64::from(l.gpu_index))
                    .holders(&l.holders);
                if l.simulated {
                    a.0.push((
                        Key::from_static_str("gpuscope.incident.simulated"),
                        AnyValue::Boolean(true),
                    ));
                }
                (
                    "gpuscope.incident.gpu_lost",
                    "gpu_lost",
                    Severity::Error,
                    format!(
                        "{} of node {node} is lost (NVML_ERROR_GPU_IS_LOST){}.",
                        gpu_text(Some(l.gpu_index), uuid),
                        holder_text(&l.holders)
                    ),
                )
            }
            EventKind::Source(s) => {
                let state = match s.state() {
                    SourceState::Ok => "ok",
                    SourceState::Degraded => "degraded",
                    SourceState::Unavailable => "unavailable",
                    SourceState::Unspecified => "unspecified",
                };
                a.str("gpuscope.agent.source", &s.source)
                    .str("gpuscope.agent.source.state", state);
                let severity = if state == "ok" {
                    Severity::Info
                } else {
                    Severity::Warn
                };
                let reason = if s.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.reason)
                };
                (
                    "gpuscope.incident.source_status",
                    "source_status",
                    severity,
                    format!(
                        "The agent's {} source on node {node} is {state}{reason}.",
                        s.source
                    ),
                )
            }
            EventKind::KmsgOverrun(k) => {
                a.int("gpuscope.kmsg.lost", k.lost);
                (
                    "gpuscope.incident.kmsg_overrun",
                    "kmsg_overrun",
                    Severity::Warn,
                    format!(
                        "The kernel log of node {node} overran: {} messages were lost before the agent read them.",
                        k.lost
                    ),
                )
            }
            EventKind::GpuHealthChange(h) => {
                a.str("hw.id", &h.gpu_uuid).holders(&h.holders);
                if let Some(i) = h.gpu_index {
                    a.int("gpuscope.gpu.index", u64::from(i));
                }
                if h.simulated {
                    a.0.push((
                        Key::from_static_str("gpuscope.incident.simulated"),
                        AnyValue::Boolean(true),
                    ));
                }
                let change = gpuscope_model::wire::health_change_from_wire(h);
                let severity = match change {
                    Some(
                        GpuHealthChange::NvlinkDown { .. }
                        | GpuHealthChange::RemapPending
                        | GpuHealthChange::RemapFailed
                        | GpuHealthChange::EccUncorrectedRose { .. },
                    ) => Severity::Error,
                    Some(GpuHealthChange::ThrottleStarted { .. }) => Severity::Warn,
                    _ => Severity::Info,
                };
                (
                    "gpuscope.incident.gpu_health_change",
                    "gpu_health_change",
                    severity,
                    format!(
                        "{} of node {node}: {}{}.",
                        gpu_text(h.gpu_index, &h.gpu_uuid),
                        change.map_or_else(|| "a health change".to_owned(), |c| c.describe()),
                        holder_text(&h.holders)
                    ),
                )
            }
            EventKind::SwitchXid(x) => {
                a.str("hw.id", &x.switch_pci_bus_id)
                    .str("gpuscope.nvswitch.device", &x.device)
                    .int("gpuscope.nvswitch.sxid", x.sxid);
                let fatal = x.severity.as_deref() == Some("Fatal");
                (
                    "gpuscope.incident.switch_xid",
                    "switch_xid",
                    if fatal {
                        Severity::Error
                    } else {
                        Severity::Warn
                    },
                    format!(
                        "NVSwitch {} ({}) of node {node} reported SXid {}{}: {}.",
                        x.device,
                        x.switch_pci_bus_id,
                        x.sxid,
                        x.severity
                            .as_deref()
                            .map(|s| format!(" ({s})"))
                            .unwrap_or_default(),
                        x.message
                    ),
                )
            }
            EventKind::GpuCountChanged(c) => {
                a.int("gpuscope.gpu.count.before", u64::from(c.before))
                    .int("gpuscope.gpu.count.after", u64::from(c.after));
                (
                    "gpuscope.incident.gpu_count_changed",
                    "gpu_count_changed",
                    Severity::Warn,
                    format!(
                        "The number of GPUs of node {node} changed from {} to {}.",
                        c.before, c.after
                    ),
                )
            }
        };
        a.str("gpuscope.incident.kind", kind_name);
        self.emit(
            event_name,
            severity,
            at(event.time_unix_nanos).or_else(|| at(i.received_unix_nanos)),
            at(i.received_unix_nanos),
            body,
            a,
        );
    }

    /// A finding (`insufficient_evidence`, which says that gpuscope knows
    /// too little, is not logged).
    pub fn finding(&self, f: &Finding, source: FindingSource<'_>) {
        if f.kind == Kind::InsufficientEvidence {
            return;
        }
        let s = &f.subject;
        let mut a = Attrs::default();
        a.str("gpuscope.finding.kind", f.kind.as_str())
            .str(
                "gpuscope.finding.confidence",
                match f.confidence {
                    Confidence::Low => "low",
                    Confidence::Medium => "medium",
                    Confidence::High => "high",
                },
            )
            .str("gpuscope.finding.id", &f.id)
            .str("k8s.namespace.name", s.namespace.as_deref().unwrap_or(""))
            .str("k8s.pod.name", s.pod.as_deref().unwrap_or(""))
            .str("k8s.container.name", s.container.as_deref().unwrap_or(""))
            .str("hw.id", s.gpu.as_deref().unwrap_or(""))
            .str("gpuscope.owner", s.owner.as_deref().unwrap_or(""));
        let node = s.node.as_deref().unwrap_or("");
        match source {
            FindingSource::Incident { node: n, pod_uid } => {
                a.str("k8s.node.name", if node.is_empty() { n } else { node })
                    .str(POD_UID, pod_uid)
                    .str("gpuscope.finding.source", "incident");
            }
            FindingSource::Cluster => {
                a.str("k8s.node.name", node)
                    .str("gpuscope.finding.source", "cluster");
            }
        }
        if let Some(c) = &f.cost {
            a.0.push((
                Key::from_static_str("gpuscope.finding.gpu_hours"),
                AnyValue::Double(c.gpu_hours),
            ));
            if c.restarts > 0 {
                a.int("gpuscope.finding.restarts", u64::from(c.restarts));
            }
        }
        a.list(
            "gpuscope.finding.evidence",
            f.evidence
                .iter()
                .map(|e| format!("{}: {}", e.name, e.value))
                .collect(),
        )
        .list("gpuscope.finding.next_steps", f.next_steps.clone())
        .list("gpuscope.finding.caused_by", f.caused_by.clone());
        self.emit(
            "gpuscope.finding",
            Severity::Warn,
            None,
            None,
            f.summary.clone(),
            a,
        );
    }

    /// Logs the findings of a cluster diagnosis that `seen` (the previous
    /// diagnosis' finding ids) did not have, and makes `seen` this one's.
    pub fn new_findings(&self, findings: &[Finding], seen: &mut HashSet<String>) {
        let now: HashSet<String> = findings.iter().map(|f| f.id.clone()).collect();
        for f in findings.iter().filter(|f| !seen.contains(&f.id)) {
            self.finding(f, FindingSource::Cluster);
        }
        *seen = now;
    }
}

/// Kubernetes' names of the pods with these UIDs: the watched pods, else
/// the recently deleted ones.
fn pod_labels(kube: &crate::kube::Kube, uids: &HashSet<&str>) -> HashMap<String, PodNamesOwned> {
    use crate::kube::PodIndex as _;
    uids.iter()
        .filter_map(|&uid| {
            let p = kube
                .pod_by_uid(uid)
                .or_else(|| kube.departed(|p| p.uid() == Some(uid)))?;
            Some((uid.to_owned(), PodNamesOwned::of(&p)))
        })
        .collect()
}

/// A pod's names, owned.
#[derive(Debug, Clone, Default)]
struct PodNamesOwned {
    namespace: String,
    name: String,
    containers: HashMap<String, String>,
}

impl PodNamesOwned {
    fn of(p: &crate::kube::PodView) -> Self {
        use crate::kube::Projection as _;
        Self {
            namespace: p.namespace().to_owned(),
            name: p.name().to_owned(),
            containers: p.container_names(),
        }
    }
}

/// Logs each incident ingest stores, in batches: every incident waiting
/// is taken at once, and the OOM kills' pods named with one look at the
/// pod objects.
pub(crate) async fn incidents_loop(
    mut incidents: broadcast::Receiver<Arc<Incident>>,
    logs: Logs,
    kube: Option<Arc<crate::kube::Kube>>,
    mut shutdown: watch::Receiver<bool>,
) {
    /// Incidents taken at once, at most.
    const BATCH: usize = 1024;
    loop {
        let first = tokio::select! {
            n = incidents.recv() => n,
            _ = crate::sync::stopped(&mut shutdown) => return,
        };
        let mut batch = Vec::new();
        match first {
            Ok(i) => batch.push(i),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                logs.lost(n);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
        while batch.len() < BATCH {
            match incidents.try_recv() {
                Ok(i) => batch.push(i),
                Err(broadcast::error::TryRecvError::Lagged(n)) => logs.lost(n),
                Err(_) => break,
            }
        }
        let uids: HashSet<&str> = batch
            .iter()
            .filter_map(|i| i.event.as_ref())
            .filter_map(crate::store::oom_container)
            .map(|c| c.pod_uid.as_str())
            .filter(|u| !u.is_empty())
            .collect();
        let names = match &kube {
            Some(k) if !uids.is_empty() => pod_labels(k, &uids),
            _ => HashMap::new(),
        };
        for i in &batch {
            let labels = i
                .event
                .as_ref()
                .and_then(crate::store::oom_container)
                .and_then(|c| {
                    let p = names.get(&c.pod_uid)?;
                    Some(PodLabels {
                        namespace: p.namespace.clone(),
                        pod: p.name.clone(),
                        container: p
                            .containers
                            .get(&c.container_id)
                            .cloned()
                            .unwrap_or_default(),
                    })
                });
            logs.incident(i, labels.as_ref());
        }
    }
}

/// Logs what the exporter lost since the last report, at most once per
/// `interval`.
async fn report_loop(stats: Arc<Stats>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut last = stats.snapshot();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = crate::sync::stopped(&mut shutdown) => return,
        }
        let now = stats.snapshot();
        let dropped = now.log_records_dropped - last.log_records_dropped;
        let failed = now.log_records_failed - last.log_records_failed;
        let metrics_failed = now.metric_exports_failed - last.metric_exports_failed;
        let series = now.series_dropped - last.series_dropped;
        if dropped + failed + metrics_failed + series > 0 {
            tracing::warn!(
                dropped_log_records = dropped,
                failed_log_records = failed,
                failed_metric_exports = metrics_failed,
                dropped_series = series,
                queued_log_records = now.log_records_queued,
                last_error = now.last_error.as_deref().unwrap_or(""),
                interval = ?interval,
                "OTLP export lost data in the last interval (totals: gpuscope_otlp_* on /metrics)."
            );
        }
        last = now;
    }
}

/// The resource of everything exported: the standard environment's
/// (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), with `service.name`
/// `gpuscope-aggregator` and `service.version` unless it sets them.
pub fn resource() -> Resource {
    let detected = Resource::builder().build();
    let mut b = Resource::builder();
    let name = detected.get(&Key::from_static_str("service.name"));
    if name.is_none_or(|n| n.as_str().starts_with("unknown_service")) {
        b = b.with_service_name(SCOPE);
    }
    if detected
        .get(&Key::from_static_str("service.version"))
        .is_none()
    {
        b = b.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    b.build()
}

/// The environment's endpoint of a signal (`--otlp-endpoint` first).
fn endpoint_of(config: &OtlpConfig, signal: &str) -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    config
        .endpoint
        .clone()
        .or_else(|| var(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")))
        .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// The TLS configuration of a signal's `https` endpoint: the CA of the
/// standard `OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE` (PEM) if set, else
/// the system's roots, and the client certificate and key of
/// `..._CLIENT_CERTIFICATE` and `..._CLIENT_KEY` (mutual TLS). The SDK
/// reads none of these, and would trust no root at all.
fn tls_of(signal: &str) -> Result<tonic::transport::ClientTlsConfig> {
    let var = |name: &str| {
        std::env::var(format!("OTEL_EXPORTER_OTLP_{signal}_{name}"))
            .or_else(|_| std::env::var(format!("OTEL_EXPORTER_OTLP_{name}")))
            .ok()
            .filter(|v| !v.trim().is_empty())
    };
    let read = |path: String| {
        std::fs::read(&path).map_err(|source| Error::TlsFile {
            path: path.into(),
            source,
        })
    };
    let mut tls = tonic::transport::ClientTlsConfig::new();
    tls = match var("CERTIFICATE") {
        Some(ca) => tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
        None => tls.with_native_roots(),
    };
    match (var("CLIENT_CERTIFICATE"), var("CLIENT_KEY")) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(Error::Otlp(
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together"
                    .into(),
            ));
        }
    }
    Ok(tls)
}

/// A signal's tonic exporter builder: the endpoint, timeout and TLS
/// gpuscope sets; the rest (headers, compression, insecure) from the
/// standard environment, by the SDK.
fn tonic_builder<B>(config: &OtlpConfig, signal: &str, b: B) -> Result<B>
where
    B: opentelemetry_otlp::WithExportConfig + opentelemetry_otlp::WithTonicConfig,
{
    let mut b = b;
    if let Some(e) = &config.endpoint {
        b = b.with_endpoint(e.clone());
    }
    if let Some(t) = config.timeout {
        b = b.with_timeout(t);
    }
    if endpoint_of(config, signal).is_some_and(|e| e.starts_with("https://")) {
        b = b.with_tls_config(tls_of(signal)?);
    }
    Ok(b)
}

/// The running exporter: its runtime, the SDK's providers and the
/// loggers' handle.
pub struct Otlp {
    runtime: Option<tokio::runtime::Runtime>,
    meters: Option<SdkMeterProvider>,
    loggers: Option<SdkLoggerProvider>,
    logs: Option<Logs>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Otlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otlp")
            .field("metrics", &self.meters.is_some())
            .field("logs", &self.logs.is_some())
            .finish_non_exhaustive()
    }
}

/// The SDK's providers as `config` asks, exporting what `source` holds;
/// to run inside the exporter's runtime (the exporters' channels spawn
/// their connections' tasks on the current runtime).
fn providers(config: &OtlpConfig, source: Source, stats: &Arc<Stats>) -> Result<Providers> {
    let resource = resource();
    fn build_err(signal: &'static str) -> impl Fn(opentelemetry_otlp::ExporterBuildError) -> Error {
        move |e| Error::Otlp(format!("cannot build the OTLP {signal} exporter: {e}"))
    }

    let meters = if config.metrics {
        let exporter = tonic_builder(
            config,
            "METRICS",
            opentelemetry_otlp::MetricExporter::builder().with_tonic(),
        )?
        .build()
        .map_err(build_err("metrics"))?;
        let mut reader = PeriodicReader::builder(CountingMetrics {
            inner: exporter,
            stats: stats.clone(),
        });
        if let Some(i) = config.interval {
            reader = reader.with_interval(i);
        }
        // A little above what is observed, for the series that came
        // and went between two collections (a gauge keeps last
        // collection's until this one's ends).
        let limit = config.max_series.max(1);
        let limit = limit.saturating_add(limit / 4).saturating_add(16);
        let provider = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(reader.build())
            .with_view(move |i: &Instrument| {
                if i.name().starts_with("gpuscope.") {
                    Stream::builder().with_cardinality_limit(limit).build().ok()
                } else {
                    None
                }
            })
            .build();
        let meter = provider.meter_with_scope(
            InstrumentationScope::builder(SCOPE)
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        let collector = Arc::new(Collector::new(
            source.clone(),
            config.max_series,
            stats.clone(),
        ));
        instruments(&meter, &collector);
        Some(provider)
    } else {
        None
    };

    let (loggers, logs) = if config.logs {
        let exporter = tonic_builder(
            config,
            "LOGS",
            opentelemetry_otlp::LogExporter::builder().with_tonic(),
        )?
        .build()
        .map_err(build_err("logs"))?;
        let mut batch = BatchConfigBuilder::default();
        let capacity = config.log_queue.unwrap_or_else(|| {
            std::env::var("OTEL_BLRP_MAX_QUEUE_SIZE")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(2048)
        });
        batch = batch.with_max_queue_size(capacity.max(1));
        if let Some(d) = config.log_interval {
            batch = batch.with_scheduled_delay(d);
        }
        let processor = Gate {
            inner: BatchLogProcessor::builder(CountingLogs {
                inner: exporter,
                stats: stats.clone(),
            })
            .with_batch_config(batch.build())
            .build(),
            stats: stats.clone(),
            capacity: capacity.max(1),
        };
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(processor)
            .build();
        let logger = provider.logger_with_scope(
            InstrumentationScope::builder(SCOPE)
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        (
            Some(provider),
            Some(Logs {
                logger,
                stats: stats.clone(),
            }),
        )
    } else {
        (None, None)
    };
    Ok(Providers {
        meters,
        loggers,
        logs,
    })
}

/// What [`providers`] makes: each signal's provider, and the log
/// records' handle.
struct Providers {
    meters: Option<SdkMeterProvider>,
    loggers: Option<SdkLoggerProvider>,
    logs: Option<Logs>,
}

impl Otlp {
    /// Starts exporting what `source` holds (metrics) and what is
    /// handed to [`Otlp::logs`] (log records) as `config` says, until
    /// [`Otlp::shutdown`]. Nothing connects yet: the first export does.
    pub fn start(
        config: &OtlpConfig,
        source: Source,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp")
            .enable_all()
            .build()
            .map_err(|e| Error::Otlp(format!("cannot start the OTLP runtime: {e}")))?;
        let stats = Arc::new(Stats::default());
        let built = {
            let _entered = runtime.enter();
            providers(config, source, &stats)
        };
        let Providers {
            meters,
            loggers,
            logs,
        } = match built {
            Ok(p) => p,
            Err(e) => {
                // Not dropped here: this may be an async context.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        runtime.spawn(report_loop(stats.clone(), config.report_interval, shutdown));
        Ok(Self {
            runtime: Some(runtime),
            meters,
            loggers,
            logs,
            stats,
        })
    }

    /// The log records' handle, when logs are exported.
    pub fn logs(&self) -> Option<&Logs> {
        self.logs.as_ref()
    }

    /// What the exporter has done and lost.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Logs each incident `incidents` announces, on the exporter's
    /// runtime, until `shutdown`.
    pub fn log_incidents(
        &self,
        incidents: broadcast::Receiver<Arc<Incident>>,
        kube: Option<Arc<crate::kube::Kube>>,
        shutdown: watch::Receiver<bool>,
    ) {
        if let (Some(rt), Some(logs)) = (&self.runtime, &self.logs) {
            rt.spawn(incidents_loop(incidents, logs.clone(), kube, shutdown));
        }
    }

    /// Exports what is left (one last collection, the queued log
    /// records) and stops, waiting at most `grace`.
    pub async fn shutdown(mut self, grace: Duration) {
        let (meters, loggers, runtime) =
            (self.meters.take(), self.loggers.take(), self.runtime.take());
        // A thread of its own, not the blocking pool: the process does not
        // wait for a thread still sending to a collector that hangs.
        let (done, finished) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("otlp-stop".into())
            .spawn(move || {
                stop(meters, loggers, runtime, grace);
                let _ = done.send(());
            });
        if spawned.is_ok() && tokio::time::timeout(grace, finished).await.is_err() {
            tracing::warn!(grace = ?grace, "The OTLP exporter did not finish its last export in time.");
        }
    }
}

/// Shuts the providers down (a last export each: the log records first,
/// half of `grace` each), then the runtime.
fn stop(
    meters: Option<SdkMeterProvider>,
    loggers: Option<SdkLoggerProvider>,
    runtime: Option<tokio::runtime::Runtime>,
    grace: Duration,
) {
    if let Some(l) = loggers
        && let Err(e) = l.shutdown_with_timeout(grace / 2)
    {
        tracing::debug!(error = %e, "Shutting the OTLP logs down failed.");
    }
    if let Some(m) = meters
        && let Err(e) = m.shutdown_with_timeout(grace / 2)
    {
        tracing::debug!(error = %e, "Shutting the OTLP metrics down failed.");
    }
    if let Some(r) = runtime {
        r.shutdown_timeout(Duration::from_secs(1));
    }
}

impl Drop for Otlp {
    /// Without [`Otlp::shutdown`]: the providers' own shutdown blocks, so
    /// it runs on a thread of its own, never on an async worker.
    fn drop(&mut self) {
        let (meters, loggers, runtime) =
            (self.meters.take(), self.loggers.take(), self.runtime.take());
        if meters.is_none() && loggers.is_none() && runtime.is_none() {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("otlp-stop".into())
            .spawn(move || stop(meters, loggers, runtime, Duration::from_secs(5)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = v
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn off_without_an_endpoint_and_on_with_the_flag_or_the_standard_variables() {
        assert_eq!(OtlpConfig::from_vars(None, vars(&[])), Ok(None));
        let flag = OtlpConfig::from_vars(Some("http://c:4317".into()), vars(&[]))
            .expect("valid")
            .expect("on");
        assert!(flag.metrics && flag.logs);
        assert_eq!(flag.endpoint.as_deref(), Some("http://c:4317"));
        let env = OtlpConfig::from_vars(
            None,
            vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]),
        )
        .expect("valid")
        .expect("on");
        assert!(env.metrics && env.logs && env.endpoint.is_none());
        // A signal's own endpoint turns that signal on alone.
        let logs = OtlpConfig::from_vars(
            None,
            vars(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://c:4317")]),
        )
        .expect("valid")
        .expect("on");
        assert!(logs.logs && !logs.metrics);
        // none turns a signal off; the SDK switch turns everything off.
        let no_metrics = OtlpConfig::from_vars(
            Some("http://c:4317".into()),
            vars(&[("OTEL_METRICS_EXPORTER", "none")]),
        )
        .expect("valid")
        .expect("on");
        assert!(no_metrics.logs && !no_metrics.metrics);
        assert_eq!(
            OtlpConfig::from_vars(
                Some("http://c:4317".into()),
                vars(&[("OTEL_SDK_DISABLED", "TRUE")])
            ),
            Ok(None)
        );
    }

    #[test]
    fn other_protocols_and_exporters_are_refused() {
        let e = OtlpConfig::from_vars(
            Some("http://c:4318".into()),
            vars(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]),
        )
        .expect_err("refused");
        assert!(e.contains("gRPC only"), "{e}");
        let e = OtlpConfig::from_vars(
            Some("http://c:4317".into()),
            vars(&[("OTEL_METRICS_EXPORTER", "prometheus")]),
        )
        .expect_err("refused");
        assert!(e.contains("--metrics-listen"), "{e}");
        let e = OtlpConfig::from_vars(
            Some("http://c:4317".into()),
            vars(&[("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd")]),
        )
        .expect_err("refused");
        assert!(e.contains("gzip"), "{e}");
        assert!(
            OtlpConfig::from_vars(
                Some("http://c:4317".into()),
                vars(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")])
            )
            .is_ok()
        );
        // The signal's own protocol wins over the general one.
        assert!(
            OtlpConfig::from_vars(
                Some("http://c:4317".into()),
                vars(&[
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                    ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
                    ("OTEL_LOGS_EXPORTER", "none"),
                ])
            )
            .is_ok()
        );
    }

    use gpuscope_proto::v1 as pb;

    fn container(uid: &str, id: &str, usage: u64) -> pb::ContainerSample {
        pb::ContainerSample {
            container: Some(pb::ContainerRef {
                cgroup_path: format!("/kubepods/pod{uid}/{id}"),
                pod_uid: uid.into(),
                container_id: id.into(),
                ..Default::default()
            }),
            memory: Some(pb::MemoryStats {
                usage_bytes: usage,
                ..Default::default()
            }),
            cpu: Some(pb::CpuStats {
                usage_us: 2_500_000,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Node `gpu-1`: `ml/trainer-0`'s container `trainer` (`uid-1`,
    /// `c1`), a container of a pod Kubernetes does not know (`uid-2`), a
    /// `--watch-cgroup` one, and GPU 3.
    fn state() -> Arc<State> {
        let state = Arc::new(State::new(crate::state::HistoryConfig::default()));
        let mut other = container("", "", 3);
        if let Some(c) = other.container.as_mut() {
            c.cgroup_path = "/system.slice/batch.service".into();
        }
        let mut report = pb::NodeReport {
            containers: vec![
                container("uid-1", "c1", 1),
                container("uid-2", "c2", 2),
                other,
            ],
            gpus: vec![pb::GpuSample {
                index: 3,
                uuid: "GPU-abc".into(),
                name: "NVIDIA H100 80GB HBM3".into(),
                utilization_gpu_percent: Some(42),
                ..Default::default()
            }],
            ..Default::default()
        };
        state.apply_report("gpu-1", &mut report);
        state
    }

    fn pod() -> Arc<k8s_openapi::api::core::v1::Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "trainer-0", "namespace": "ml", "uid": "uid-1"},
                "spec": {"containers": [{"name": "trainer"}]},
                "status": {"containerStatuses": [{"name": "trainer", "image": "", "imageID": "",
                    "ready": true, "restartCount": 0, "containerID": "containerd://c1"}]}
            }))
            .expect("pod"),
        )
    }

    /// Each point of `f`: its attributes as text, and its value.
    fn points_of(p: &Points, f: F) -> Vec<(Vec<(String, String)>, Sample)> {
        let mut out: Vec<_> = p.families[f as usize]
            .iter()
            .map(|(a, v)| {
                let a: Vec<(String, String)> = a
                    .iter()
                    .map(|kv| (kv.key.as_str().to_owned(), kv.value.as_str().into_owned()))
                    .collect();
                (a, *v)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn points_carry_semantic_convention_attributes_and_no_empty_ones() {
        let state = state();
        let pods = [Arc::new(
            crate::kube::PodView::project(&pod(), &[]).expect("projects"),
        )];
        let inputs = Inputs {
            pods: &pods,
            ..Default::default()
        };
        let mut points = Points::default();
        points.start();
        Walk::default().run(
            &mut points,
            &state,
            &inputs,
            Options {
                dcgm: true,
                ..Options::default()
            },
            Shard::ALL,
        );
        let mut want = vec![
            (
                kv(&[
                    ("k8s.node.name", "gpu-1"),
                    ("k8s.namespace.name", "ml"),
                    ("k8s.pod.name", "trainer-0"),
                    ("k8s.pod.uid", "uid-1"),
                    ("k8s.container.name", "trainer"),
                ]),
                Sample::Int(1),
            ),
            (
                kv(&[
                    ("k8s.node.name", "gpu-1"),
                    ("k8s.pod.uid", "uid-2"),
                    ("container.id", "c2"),
                ]),
                Sample::Int(2),
            ),
            (
                kv(&[
                    ("k8s.node.name", "gpu-1"),
                    ("gpuscope.cgroup.path", "/system.slice/batch.service"),
                ]),
                Sample::Int(3),
            ),
        ];
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(points_of(&points, F::ContainerMemoryUsage), want);
        // The CPU series of the same containers share their attributes.
        let cpu = &points.families[F::ContainerCpu as usize];
        let usage = &points.families[F::ContainerMemoryUsage as usize];
        assert!(Arc::ptr_eq(&cpu[0].0, &usage[0].0));
        // A GPU: its index as an integer, no pod attributes without a
        // holder (Prometheus' empty labels are left out).
        let gpu = &points.families[F::GpuUtil as usize];
        assert_eq!(gpu.len(), 1);
        assert_eq!(gpu[0].1, Sample::Float(0.42));
        let attrs: Vec<_> = gpu[0].0.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            attrs,
            ["k8s.node.name", "gpuscope.gpu.index", "hw.id", "hw.model"]
        );
        assert_eq!(gpu[0].0[1].value, opentelemetry::Value::I64(3));
        // dcgm-exporter's families are Prometheus' only.
        for &f in F::ALL {
            if otel(f).is_none() {
                assert!(points.families[f as usize].is_empty(), "{f:?}");
            }
        }
    }

    #[test]
    fn one_walk_per_collection_and_series_past_the_bound_are_counted() {
        let state = state();
        let stats = Arc::new(Stats::default());
        let collector = Collector::new(
            Source {
                state: state.clone(),
                kube: None,
                findings: findings::Latest::default(),
                options: Options::default(),
            },
            2,
            stats.clone(),
        );
        let observe = |f| {
            let mut got = Vec::new();
            collector.observe(f, |v, a| got.push((v, a.len())));
            got
        };
        // The first callback walks: 3 containers, 2 observed, 1 counted.
        assert_eq!(observe(F::ContainerMemoryUsage).len(), 2);
        assert_eq!(stats.snapshot().series_dropped, 1);
        // A report arriving now is not seen by this collection's other
        // callbacks: they read the same walk.
        let mut more = pb::NodeReport {
            containers: vec![container("uid-9", "c9", 9)],
            ..Default::default()
        };
        state.apply_report("gpu-2", &mut more);
        assert_eq!(observe(F::ContainerCpu).len(), 2);
        assert_eq!(observe(F::GpuUtil).len(), 1);
        assert_eq!(stats.snapshot().series_dropped, 2);
        // The next collection (a family taken again) walks again.
        for &f in F::ALL {
            if otel(f).is_some()
                && !matches!(f, F::ContainerMemoryUsage | F::ContainerCpu | F::GpuUtil)
            {
                observe(f);
            }
        }
        assert_eq!(observe(F::ContainerMemoryUsage).len(), 2);
        assert_eq!(stats.snapshot().series_dropped, 4, "4 containers now");
        // Series observed: each family's, at most 2.
        let mut points = Points::default();
        points.start();
        Walk::default().run(
            &mut points,
            &state,
            &Inputs::default(),
            Options::default(),
            Shard::ALL,
        );
        let bounded: usize = points.families.iter().map(|f| f.len().min(2)).sum();
        assert_eq!(stats.snapshot().last_series, bounded as u64);
    }

    #[test]
    fn every_family_but_dcgm_exporters_has_a_distinct_dotted_name() {
        let mut names = HashSet::new();
        for &f in F::ALL {
            let prom = FAMILIES[f as usize].0;
            match otel(f) {
                None => assert!(prom.starts_with("DCGM_"), "{prom} is not exported"),
                Some(o) => {
                    assert!(o.name.starts_with("gpuscope."), "{}", o.name);
                    assert!(names.insert(o.name), "{} twice", o.name);
                    // Prometheus counters are OpenTelemetry counters.
                    let counter = FAMILIES[f as usize].1 == "counter";
                    assert_eq!(counter, o.instrument == OtelInstrument::Counter, "{prom}");
                }
            }
        }
    }
}
