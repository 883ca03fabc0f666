//! The live agent: one thread per source feeding the [`Pipeline`].
//!
//! - **sampler**: discovers containers every `interval`, samples them (hot
//!   ones every `fast_interval`), registers their OOM notifiers, reads the
//!   node.
//! - **notify**: waits on the [`Notifier`] and re-reads the counters of a
//!   container whose notifier fired (on cgroup v1, for a few milliseconds
//!   until the kill has incremented `oom_kill`).
//! - **kmsg**: reads `/dev/kmsg`, assembles OOM reports, and reads the
//!   victim cgroup's counters at once.
//! - the calling thread runs the pipeline and hands events (and, when
//!   asked, samples) to the caller's sink.
//!
//! A source that fails is reported as degraded or unavailable with the
//! reason, and the others keep going.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};

use crate::collect::cgroup::discover::{CgroupLayout, Discovered, detect_layout, discover};
use crate::collect::cgroup::path::container_for;
use crate::collect::cgroup::{CgroupReader, oom_group_set};
use crate::collect::gpu::nvml::GpuNotice;
use crate::collect::kmsg::{
    KmsgItem, KmsgReader, KmsgRecord, OomAssembler, OomReport, QUIET_FLUSH,
};
use crate::collect::node::read_node;
use crate::collect::procs::{ProcSettings, ProcWatch};
use crate::collect::psi::read_node_pressure;
use crate::collect::xid::{XidOrigin, parse_xid};
use crate::notify::Notifier;
use crate::pipeline::{Input, Pipeline, PipelineConfig};
use gpuscope_model::{
    CgroupVersion, ContainerSample, Event, GpuSample, KernelXidLine, NodeSample, OomConstraint,
    Pressure, PsiScope, SourceState, SourceStatus, SwitchXidLine, Timestamp,
};

mod gpu;

pub use gpu::{GpuCollector, GpuRound, GpuSettings};

/// Settings of a live agent (the CLI fills them from flags and env).
#[derive(Debug, Clone)]
pub struct Config {
    /// Root of the host's cgroup tree.
    pub cgroup_root: PathBuf,
    /// The host's `/proc`.
    pub proc_root: PathBuf,
    /// The kernel log device.
    pub kmsg: PathBuf,
    /// Extra cgroups to watch, relative to the memory hierarchy's root.
    pub watch_cgroups: Vec<String>,
    /// Full collection interval.
    pub interval: Duration,
    /// Sampling interval of hot containers.
    pub fast_interval: Duration,
    /// Flight-recorder history per container.
    pub recorder_window: Duration,
    /// How long a kill waits for its kernel report.
    pub kmsg_wait: Duration,
    /// Scans of flat containers for stuck tasks (`None`: off).
    pub procs: Option<ProcSettings>,
    /// GPU collection (`None`: off).
    pub gpu: Option<GpuSettings>,
    /// Where the kernel-log thread counts the records it ignored for not
    /// being the kernel's (the shipper reports the count).
    pub kmsg_not_kernel: Arc<AtomicU64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
            kmsg: PathBuf::from("/dev/kmsg"),
            watch_cgroups: Vec::new(),
            interval: Duration::from_secs(1),
            fast_interval: Duration::from_millis(250),
            recorder_window: Duration::from_secs(300),
            kmsg_wait: Duration::from_millis(100),
            procs: Some(ProcSettings::default()),
            gpu: None,
            kmsg_not_kernel: Arc::default(),
        }
    }
}

/// What the live agent hands to its sink.
#[derive(Debug)]
pub enum Output<'a> {
    /// An event.
    Event(&'a Event),
    /// A container sample (only when samples were asked for).
    Sample(&'a ContainerSample),
    /// A node sample (only when samples were asked for).
    Node(&'a NodeSample),
    /// One collection of every GPU (only when samples were asked for).
    Gpus(&'a [GpuSample]),
}

/// Messages from the source threads to the pipeline thread.
#[expect(
    clippy::large_enum_variant,
    reason = "moved once per sample through a channel; boxing would add an allocation per sample"
)]
pub(crate) enum Msg {
    Input(Input),
    Node(NodeSample),
    Gpus(Vec<GpuSample>),
    Event(Event),
}

/// One collection of everything, for `snapshot`.
#[derive(Debug, serde::Serialize)]
pub struct Snapshot {
    /// The node, when its files could be read.
    pub node: Option<NodeSample>,
    /// Every container found.
    pub containers: Vec<ContainerSample>,
    /// Every GPU and MIG instance, with its processes and holders.
    pub gpus: Vec<GpuSample>,
    /// Health of each source.
    pub sources: Vec<SourceStatus>,
}

fn status(source: &str, state: SourceState, reason: Option<String>) -> SourceStatus {
    SourceStatus {
        source: source.to_owned(),
        state,
        reason,
    }
}

/// Takes one collection of the node and every container.
pub fn snapshot(config: &Config) -> Snapshot {
    let now = Timestamp::now();
    let mut sources = Vec::new();
    let mut containers = Vec::new();
    let layout = detect_layout(&config.cgroup_root);
    let node = match read_node(&config.proc_root, layout.as_ref().ok().map(|l| l.mode), now) {
        Ok(n) => {
            sources.push(status("node", SourceState::Ok, None));
            sources.push(psi_status(&n));
            Some(n)
        }
        Err(e) => {
            sources.push(status(
                "node",
                SourceState::Unavailable,
                Some(e.to_string()),
            ));
            None
        }
    };
    let node_psi = node.as_ref().map(|n| n.pressure).unwrap_or_default();
    match layout {
        Ok(layout) => {
            let mut reader = CgroupReader::new(layout);
            let mut found = Vec::new();
            let mut errors = Vec::new();
            if let Err(e) = discover(reader.layout(), &config.watch_cgroups, &mut found) {
                errors.push(e.to_string());
            }
            for d in &found {
                match reader.read_container(&d.container, &node_psi, now) {
                    Ok(Some(s)) => containers.push(s),
                    Ok(None) => {}
                    Err(e) => errors.push(e.to_string()),
                }
            }
            sources.push(cgroup_status(&errors));
        }
        Err(e) => sources.push(status(
            "cgroup",
            SourceState::Unavailable,
            Some(e.to_string()),
        )),
    }
    let mut gpus = Vec::new();
    if let Some(settings) = &config.gpu {
        match GpuCollector::start(
            settings.clone(),
            config.proc_root.clone(),
            &config.cgroup_root,
        ) {
            Ok(mut collector) => {
                let round = collector.collect();
                sources.extend(round.nvml);
                sources.extend(round.pod_resources);
                gpus = round.gpus;
            }
            Err(e) => sources.push(status(
                "nvml",
                SourceState::Unavailable,
                Some(format!("cannot start the NVML thread: {e}")),
            )),
        }
    }
    Snapshot {
        node,
        containers,
        gpus,
        sources,
    }
}

/// The PSI source's state, from a node sample.
fn psi_status(n: &NodeSample) -> SourceStatus {
    if n.pressure.memory.is_some() {
        status("psi", SourceState::Ok, None)
    } else {
        status(
            "psi",
            SourceState::Unavailable,
            Some("the kernel has no /proc/pressure (PSI disabled or older than 4.20)".to_owned()),
        )
    }
}

fn cgroup_status(errors: &[String]) -> SourceStatus {
    match errors.first() {
        None => status("cgroup", SourceState::Ok, None),
        Some(first) => status(
            "cgroup",
            SourceState::Degraded,
            Some(format!("{} read error(s); first: {first}", errors.len())),
        ),
    }
}

/// Runs the live agent until `stop` is set, handing every event (and
/// samples, when `samples`) to `sink`. Sources that fail are reported as
/// `source` events and retried; the agent itself keeps running.
pub fn run(
    config: &Config,
    samples: bool,
    stop: &AtomicBool,
    mut sink: impl FnMut(Output<'_>),
) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let done = Arc::new(AtomicBool::new(false));
    let mut pipeline = Pipeline::new(PipelineConfig {
        window: config.recorder_window,
        recorder_capacity: (config.recorder_window.as_millis()
            / config.fast_interval.as_millis().max(1))
        .max(1) as usize,
        kmsg_wait: config.kmsg_wait,
        ..PipelineConfig::default()
    });

    // The GPU thread first: the kmsg thread hands it the kernel's XID
    // lines.
    let mut xid_tx = None;
    if let Some(settings) = &config.gpu {
        match GpuCollector::start(
            settings.clone(),
            config.proc_root.clone(),
            &config.cgroup_root,
        ) {
            Ok(collector) => {
                xid_tx = Some(collector.notice_sender());
                let (tx, done, interval) = (tx.clone(), done.clone(), config.interval);
                std::thread::Builder::new()
                    .name("gpu".into())
                    .spawn(move || gpu::run(collector, interval, &tx, &done))?;
            }
            Err(e) => send_status(
                &tx,
                "nvml",
                SourceState::Unavailable,
                Some(format!("cannot start the NVML thread: {e}")),
            ),
        }
    }

    // The XIDs already in the ring buffer (older than now) are reported
    // once, as history; the main reader starts after them.
    let started = monotonic_usec();
    match KmsgReader::open(&config.kmsg, true) {
        Ok(reader) => {
            let history = xid_tx
                .as_ref()
                .and_then(|_| KmsgReader::open(&config.kmsg, false).ok())
                .map(|r| (r, started));
            let (tx, done) = (tx.clone(), done.clone());
            let (root, proc_root) = (config.cgroup_root.clone(), config.proc_root.clone());
            let not_kernel = config.kmsg_not_kernel.clone();
            std::thread::Builder::new()
                .name("kmsg".into())
                .spawn(move || {
                    if let (Some((r, until)), Some(x)) = (history, &xid_tx) {
                        xid_history(r, until, x);
                    }
                    kmsg_thread(
                        reader,
                        &root,
                        &proc_root,
                        &tx,
                        xid_tx.as_ref(),
                        &done,
                        &not_kernel,
                    );
                })?;
        }
        Err(e) => {
            send_status(&tx, "kmsg", SourceState::Unavailable, Some(e.to_string()));
            pipeline.set_kmsg_wait(Duration::ZERO);
        }
    }

    let sampler = Sampler::new(config, tx, done.clone());
    std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || sampler.run())?;

    let result = pipeline_loop(&mut pipeline, &rx, samples, stop, &mut sink);
    done.store(true, Ordering::Relaxed);
    result
}

fn pipeline_loop(
    pipeline: &mut Pipeline,
    rx: &Receiver<Msg>,
    samples: bool,
    stop: &AtomicBool,
    sink: &mut impl FnMut(Output<'_>),
) -> anyhow::Result<()> {
    let mut events = Vec::new();
    let tick = Duration::from_millis(250);
    while !stop.load(Ordering::Relaxed) {
        let now = Timestamp::now();
        let wait = pipeline
            .next_deadline()
            .map_or(tick, |d| d.since(now).min(tick));
        match rx.recv_timeout(wait) {
            Ok(Msg::Input(input)) => {
                if samples && let Input::Sample { sample, .. } = &input {
                    sink(Output::Sample(sample));
                }
                pipeline.handle(input, &mut events);
            }
            Ok(Msg::Node(node)) => {
                if samples {
                    sink(Output::Node(&node));
                }
            }
            Ok(Msg::Gpus(gpus)) => {
                if samples {
                    sink(Output::Gpus(&gpus));
                }
            }
            Ok(Msg::Event(event)) => sink(Output::Event(&event)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                anyhow::bail!("every source stopped; nothing left to watch")
            }
        }
        pipeline.tick(Timestamp::now(), &mut events);
        for e in events.drain(..) {
            sink(Output::Event(&e));
        }
    }
    Ok(())
}

fn send_status(tx: &Sender<Msg>, source: &str, state: SourceState, reason: Option<String>) {
    match (&state, &reason) {
        (SourceState::Ok, _) => tracing::info!(source, "Source is working."),
        (_, Some(r)) => tracing::warn!(source, reason = %r, "Source is not working."),
        (_, None) => tracing::warn!(source, "Source is not working."),
    }
    let _ = tx.send(Msg::Input(Input::Source {
        status: status(source, state, reason),
        time: Timestamp::now(),
    }));
}

/// Remembers a source's last reported state, so only changes are sent.
pub(crate) struct Health {
    source: &'static str,
    last: Option<(SourceState, Option<String>)>,
}

impl Health {
    pub(crate) fn new(source: &'static str) -> Self {
        Self { source, last: None }
    }

    pub(crate) fn set(&mut self, tx: &Sender<Msg>, state: SourceState, reason: Option<String>) {
        // Compare states only: a reason that changes every cycle (a count)
        // is not a new state.
        if self.last.as_ref().map(|l| l.0) == Some(state) {
            return;
        }
        // The first report of a healthy source is not news.
        if self.last.is_some() || state != SourceState::Ok {
            send_status(tx, self.source, state, reason.clone());
        }
        self.last = Some((state, reason));
    }
}

/// Per-container sampler state.
struct Watched {
    discovered: Discovered,
    hot: bool,
    last_some_total: Option<u64>,
}

struct Sampler {
    config: Config,
    /// `None` until a cgroup layout is found (re-detected every round).
    reader: Option<CgroupReader>,
    notifier: Option<Arc<Notifier>>,
    tx: Sender<Msg>,
    done: Arc<AtomicBool>,
    watched: HashMap<String, Watched>,
    found: Vec<Discovered>,
    first_round: bool,
    node_psi: Pressure,
    cgroup_health: Health,
    notify_health: Health,
    psi_health: Health,
    node_health: Health,
    errors: Vec<String>,
    /// Stuck-task scans of flat containers (`None`: off).
    procs: Option<ProcWatch>,
    /// Whether the round being sampled is a full one (stuck-task scans
    /// happen only then).
    full: bool,
}

impl Sampler {
    fn new(config: &Config, tx: Sender<Msg>, done: Arc<AtomicBool>) -> Self {
        Self {
            config: config.clone(),
            reader: None,
            notifier: None,
            tx,
            done,
            watched: HashMap::new(),
            found: Vec::new(),
            first_round: true,
            node_psi: Pressure::default(),
            cgroup_health: Health::new("cgroup"),
            notify_health: Health::new("notify"),
            psi_health: Health::new("psi"),
            node_health: Health::new("node"),
            errors: Vec::new(),
            procs: config
                .procs
                .map(|settings| ProcWatch::new(settings, &config.proc_root)),
            full: false,
        }
    }

    fn run(mut self) {
        let mut next_full = Instant::now();
        while !self.done.load(Ordering::Relaxed) {
            let started = Instant::now();
            if started >= next_full {
                self.full_round();
                next_full += self.config.interval;
                if next_full < started {
                    next_full = started + self.config.interval;
                }
            } else {
                self.hot_round();
            }
            let until = (started + self.config.fast_interval).min(next_full);
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
    }

    /// Finds the cgroup layout (first round, or after it was missing) and
    /// starts the notifier thread for it.
    fn ensure_reader(&mut self) -> bool {
        if self.reader.is_some() {
            return true;
        }
        let layout = match detect_layout(&self.config.cgroup_root) {
            Ok(l) => l,
            Err(e) => {
                self.cgroup_health
                    .set(&self.tx, SourceState::Unavailable, Some(e.to_string()));
                return false;
            }
        };
        match Notifier::new() {
            Ok(n) => {
                let n = Arc::new(n);
                let (n2, layout2, tx, done) = (
                    n.clone(),
                    layout.clone(),
                    self.tx.clone(),
                    self.done.clone(),
                );
                let proc_root = self.config.proc_root.clone();
                let spawned = std::thread::Builder::new()
                    .name("notify".into())
                    .spawn(move || notify_thread(&n2, layout2, &proc_root, &tx, &done));
                match spawned {
                    Ok(_) => self.notifier = Some(n),
                    Err(e) => self.notify_health.set(
                        &self.tx,
                        SourceState::Unavailable,
                        Some(format!("cannot start the notifier thread: {e}")),
                    ),
                }
            }
            Err(e) => {
                self.notify_health
                    .set(&self.tx, SourceState::Unavailable, Some(e.to_string()))
            }
        }
        self.reader = Some(CgroupReader::new(layout));
        true
    }

    fn full_round(&mut self) {
        let now = Timestamp::now();
        let have_cgroups = self.ensure_reader();
        let mode = self.reader.as_ref().map(|r| r.layout().mode);
        match read_node(&self.config.proc_root, mode, now) {
            Ok(n) => {
                self.node_health.set(&self.tx, SourceState::Ok, None);
                let psi = psi_status(&n);
                self.psi_health.set(&self.tx, psi.state, psi.reason);
                self.node_psi = n.pressure;
                let _ = self.tx.send(Msg::Node(n));
            }
            Err(e) => self
                .node_health
                .set(&self.tx, SourceState::Unavailable, Some(e.to_string())),
        }
        let Some(reader) = self.reader.as_ref().filter(|_| have_cgroups) else {
            return;
        };

        self.errors.clear();
        let mut found = std::mem::take(&mut self.found);
        if let Err(e) = discover(reader.layout(), &self.config.watch_cgroups, &mut found) {
            self.errors.push(e.to_string());
        }
        for d in &found {
            if !self.watched.contains_key(&d.container.cgroup_path) {
                self.watched.insert(
                    d.container.cgroup_path.clone(),
                    Watched {
                        discovered: d.clone(),
                        hot: false,
                        last_some_total: None,
                    },
                );
            }
        }
        self.found = found;
        let paths: Vec<String> = self.watched.keys().cloned().collect();
        let baseline = self.first_round;
        self.full = true;
        for path in &paths {
            self.sample(path, baseline);
        }
        self.full = false;
        self.first_round = false;
        let errors = std::mem::take(&mut self.errors);
        let status = cgroup_status(&errors);
        self.cgroup_health
            .set(&self.tx, status.state, status.reason);
        self.errors = errors;
    }

    fn hot_round(&mut self) {
        let hot: Vec<String> = self
            .watched
            .iter()
            .filter(|(_, w)| w.hot)
            .map(|(p, _)| p.clone())
            .collect();
        for path in &hot {
            self.sample(path, false);
        }
    }

    fn sample(&mut self, path: &str, baseline: bool) {
        let (Some(w), Some(reader)) = (self.watched.get_mut(path), self.reader.as_mut()) else {
            return;
        };
        let now = Timestamp::now();
        match reader.read_container(&w.discovered.container, &self.node_psi, now) {
            Ok(Some(mut sample)) => {
                if let Some(procs) = &mut self.procs {
                    let dir = || reader.memory_dir(path);
                    procs.observe(&mut sample, dir, self.full, Instant::now());
                }
                let mem = &sample.memory;
                let near_limit = mem.limit_bytes.is_some_and(|l| {
                    l > 0 && mem.usage_bytes.saturating_mul(5) >= l.saturating_mul(4)
                });
                let some_total = (sample.pressure_scope == PsiScope::Container)
                    .then(|| sample.pressure.memory.map(|p| p.some.total_us))
                    .flatten();
                let pressure_rising = matches!(
                    (w.last_some_total, some_total),
                    (Some(a), Some(b)) if b > a
                );
                w.hot = near_limit || pressure_rising;
                w.last_some_total = some_total;
                if let Some(n) = &self.notifier
                    && !n.is_registered(path)
                {
                    let dir = reader.memory_dir(path);
                    let version = sample.cgroup_version;
                    // Send the sample first: the pipeline must see the
                    // baseline before any notification.
                    let _ = self.tx.send(Msg::Input(Input::Sample { sample, baseline }));
                    match n.register(path, &dir, version) {
                        Ok(()) => self.notify_health.set(&self.tx, SourceState::Ok, None),
                        Err(e) => self.notify_health.set(
                            &self.tx,
                            SourceState::Degraded,
                            Some(e.to_string()),
                        ),
                    }
                    return;
                }
                let _ = self.tx.send(Msg::Input(Input::Sample { sample, baseline }));
            }
            Ok(None) => self.forget(path, now),
            Err(e) => {
                tracing::debug!(cgroup = %path, error = %e, "Cgroup read failed.");
                self.errors.push(e.to_string());
            }
        }
    }

    fn forget(&mut self, path: &str, now: Timestamp) {
        self.watched.remove(path);
        if let Some(procs) = &mut self.procs {
            procs.forget(path);
        }
        if let Some(n) = &self.notifier {
            n.unregister(path);
        }
        let _ = self.tx.send(Msg::Input(Input::Gone {
            cgroup_path: path.to_owned(),
            time: now,
        }));
    }
}

/// How long, after a v1 eventfd fires, the counter is re-read waiting for
/// the kill to increment it (the eventfd fires when the cgroup enters OOM,
/// just before the kill).
const V1_SETTLE: Duration = Duration::from_millis(50);

fn notify_thread(
    notifier: &Notifier,
    layout: CgroupLayout,
    proc_root: &Path,
    tx: &Sender<Msg>,
    done: &AtomicBool,
) {
    let version = layout.memory_version;
    let mut reader = CgroupReader::new(layout);
    let mut fired = Vec::new();
    // Containers being re-read: deadline and the last oom_kill sent.
    let mut settling: HashMap<String, (Instant, Option<u64>)> = HashMap::new();
    while !done.load(Ordering::Relaxed) {
        let timeout = if settling.is_empty() {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(1)
        };
        fired.clear();
        if let Err(e) = notifier.wait(timeout, &mut fired) {
            send_status(tx, "notify", SourceState::Degraded, Some(e.to_string()));
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        let now = Instant::now();
        for path in fired.drain(..) {
            let entry = settling.entry(path).or_insert((now, None));
            entry.0 = now + V1_SETTLE;
        }
        settling.retain(|path, (deadline, last_sent)| {
            match reader.read_oom_counters(path) {
                Ok(Some(events)) => {
                    if *last_sent != Some(events.oom_kill) {
                        *last_sent = Some(events.oom_kill);
                        // A full read: memory, peak and pressure right
                        // after the kill go into the event's window.
                        let container = container_for(path);
                        if let Ok(Some(sample)) = reader.read_container(
                            &container,
                            &node_pressure(proc_root),
                            Timestamp::now(),
                        ) {
                            let _ = tx.send(Msg::Input(Input::Notified { sample }));
                        }
                    }
                    // v2 counters are already up to date when notified.
                    version == CgroupVersion::V1 && now < *deadline
                }
                Ok(None) => {
                    notifier.unregister(path);
                    false
                }
                Err(e) => {
                    tracing::debug!(cgroup = %path, error = %e, "OOM counter read failed.");
                    false
                }
            }
        });
    }
}

/// Node pressure for a container read outside the sampler (right after a
/// kill), so a container without its own pressure files still shows the
/// node's, as in its periodic samples.
fn node_pressure(proc_root: &Path) -> Pressure {
    read_node_pressure(proc_root).unwrap_or_default()
}

/// Offset from kernel log time (monotonic microseconds) to wall-clock time.
fn kmsg_to_wall(usec: u64) -> Timestamp {
    let now = Timestamp::now();
    let mono = clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0);
    Timestamp(now.0.saturating_sub(mono) + usec * 1000)
}

/// CLOCK_MONOTONIC in microseconds: the kernel log's clock.
fn monotonic_usec() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

/// Forwards an XID line to the GPU thread, which joins it to the GPU and
/// its holders (and its pid to the container), and an SXid line
/// (NVSwitch) as it is. The NVSwitch driver prints one SXid as several
/// records: `Data {...}` (the raw error words), the headline with its
/// severity and description (`Non-fatal, Link 44 Minion Link DLREQ
/// interrupt`), then `Severity 0 Engine instance 44 ...`; only the
/// headline, or a record of a format without those parts, is an event, so
/// that one error is one event.
fn forward_xid(rec: &KmsgRecord<'_>, history: bool, xids: &Sender<GpuNotice>) {
    let Some(x) = parse_xid(rec) else {
        return;
    };
    let time = kmsg_to_wall(rec.usec);
    let notice = match x.origin {
        XidOrigin::Gpu => GpuNotice::KernelXid {
            time,
            xid: x.xid,
            line: KernelXidLine {
                pci_bus_id: x.pci.to_owned(),
                pid: x.pid,
                process: x.process.map(str::to_owned),
                message: x.message.to_owned(),
                before_agent_start: history,
                container: None,
            },
        },
        XidOrigin::NvSwitch => {
            tracing::warn!(
                switch = x.switch.unwrap_or(""),
                pci = x.pci,
                sxid = x.xid,
                severity = x.severity.unwrap_or(""),
                message = x.message,
                history,
                "NVSwitch reported an SXid."
            );
            let detail = x.message.starts_with("Data {") || x.message.starts_with("Severity ");
            if x.severity.is_none() && detail {
                return;
            }
            GpuNotice::SwitchXid {
                time,
                line: SwitchXidLine {
                    switch_pci_bus_id: x.pci.to_owned(),
                    device: x.switch.unwrap_or_default().to_owned(),
                    sxid: x.xid,
                    severity: x.severity.map(str::to_owned),
                    message: x.message.to_owned(),
                    before_agent_start: history,
                },
            }
        }
    };
    let _ = xids.send(notice);
}

/// Whether a `memory.oom.group` kill may follow `report`'s kill: unless
/// every cgroup from the victim's up to the OOM domain reads
/// `memory.oom.group` 0 (unreadable or unknown: it may).
fn group_kill_possible(cgroup_root: &Path, report: &OomReport) -> bool {
    let Some(task) = report.task_memcg.as_deref() else {
        return true;
    };
    let domain = match report.constraint {
        OomConstraint::Memcg => match report.oom_memcg.as_deref() {
            Some(d) => Some(d),
            None => return true,
        },
        OomConstraint::Unknown => return true,
        // The whole machine (or its cpuset/mempolicy nodes): the root.
        OomConstraint::Node | OomConstraint::Cpuset | OomConstraint::MemoryPolicy => None,
    };
    let memory_root = detect_layout(cgroup_root).map(|l| l.memory_root);
    memory_root.map_or(true, |root| {
        oom_group_set(&root, task, domain) != Some(false)
    })
}

/// Reports the XID lines already in the kernel's ring buffer (older than
/// `until_usec`, when the main reader started) once, as history.
fn xid_history(mut reader: KmsgReader, until_usec: u64, xids: &Sender<GpuNotice>) {
    let mut failures = 0;
    while failures < 10 && reader.wait_readable(Duration::ZERO).unwrap_or(false) {
        match reader.next() {
            Ok(KmsgItem::Record(rec)) if rec.usec < until_usec => forward_xid(&rec, true, xids),
            Ok(KmsgItem::Record(_) | KmsgItem::End) => return,
            Ok(KmsgItem::Overrun { .. }) => {}
            Err(_) => failures += 1,
        }
    }
}

fn kmsg_thread(
    mut reader: KmsgReader,
    cgroup_root: &Path,
    proc_root: &Path,
    tx: &Sender<Msg>,
    xids: Option<&Sender<GpuNotice>>,
    done: &AtomicBool,
    not_kernel: &AtomicU64,
) {
    let mut cgroups: Option<CgroupReader> = None;
    // memory.oom.group exists only with the memory controller on cgroup
    // v2; unknown layout: assume it may.
    let group_kills =
        detect_layout(cgroup_root).map_or(true, |l| l.memory_version == CgroupVersion::V2);
    let mut assembler = OomAssembler::default().group_kills(group_kills);
    let mut failures = 0u32;
    let mut send = |report: OomReport| {
        let time = kmsg_to_wall(report.usec);
        let memcg = report.task_memcg.as_deref().or(report.oom_memcg.as_deref());
        if cgroups.is_none() {
            cgroups = detect_layout(cgroup_root).ok().map(CgroupReader::new);
        }
        let sample = match (&mut cgroups, memcg) {
            (Some(r), Some(path)) => r
                .read_container(
                    &container_for(path),
                    &node_pressure(proc_root),
                    Timestamp::now(),
                )
                .ok()
                .flatten(),
            _ => None,
        };
        let _ = tx.send(Msg::Input(Input::Report {
            report: Box::new(report),
            time,
            sample,
        }));
    };
    while !done.load(Ordering::Relaxed) {
        // A held report (a group kill may follow it) goes out once the
        // log has been quiet for a moment.
        if assembler.holding() && !reader.wait_readable(QUIET_FLUSH).unwrap_or(true) {
            if let Some(report) = assembler.flush() {
                send(report);
            }
            continue;
        }
        match reader.next() {
            Ok(KmsgItem::Record(rec)) => {
                failures = 0;
                if let Some(x) = xids {
                    forward_xid(&rec, false, x);
                }
                if let Some(report) = assembler.push(&rec) {
                    send(report);
                }
                // No memory.oom.group on the victim's way up to the OOM
                // domain: no group kill can follow, nothing to wait for.
                if group_kills
                    && assembler
                        .held()
                        .is_some_and(|r| r.group.is_none() && !group_kill_possible(cgroup_root, r))
                    && let Some(report) = assembler.flush()
                {
                    send(report);
                }
                let ignored = assembler.not_kernel();
                if ignored != not_kernel.load(Ordering::Relaxed) {
                    not_kernel.store(ignored, Ordering::Relaxed);
                    // The first, then at each power of two: a writer
                    // flooding the log does not flood the agent's own.
                    if ignored.is_power_of_two() {
                        tracing::warn!(
                            ignored,
                            facility = rec.facility,
                            text = %String::from_utf8_lossy(&rec.text[..rec.text.len().min(120)]),
                            "Kernel log record not from the kernel ignored: only the kernel's own records are read for OOM kills."
                        );
                    }
                }
            }
            Ok(KmsgItem::End) => {
                if let Some(report) = assembler.flush() {
                    send(report);
                }
                send_status(
                    tx,
                    "kmsg",
                    SourceState::Unavailable,
                    Some("the kernel log ended (not a kmsg device?)".to_owned()),
                );
                return;
            }
            Ok(KmsgItem::Overrun { lost }) => {
                tracing::warn!(lost, "Kernel log overwrote records before they were read.");
                let _ = tx.send(Msg::Input(Input::KmsgOverrun {
                    lost,
                    time: Timestamp::now(),
                }));
            }
            Err(e) => {
                failures += 1;
                send_status(tx, "kmsg", SourceState::Degraded, Some(e.to_string()));
                if failures > 10 {
                    send_status(tx, "kmsg", SourceState::Unavailable, Some(e.to_string()));
                    return;
                }
                std::thread::sleep(Duration::from_millis(100) * failures);
            }
        }
    }
}
