//! The event pipeline: turns counter movements and kernel OOM reports into
//! exactly one [`OomKill`] event per killed process, each carrying its
//! flight-recorder window.
//!
//! A pure state machine (no I/O): the collector threads send [`Input`]s,
//! [`Pipeline::handle`] and [`Pipeline::tick`] return the events to emit.
//! It is the one owner of every container's last seen `oom_kill` counter,
//! so a kill seen by the notifier, by a poll and by the kernel report is
//! still counted once.
//!
//! Joining: each increment of `oom_kill` is one kill. A kill waits up to
//! `kmsg_wait` for the kernel's report of the same memcg (normally it is
//! already there, or arrives within a millisecond) to name the victim. A
//! report whose cgroup was already gone, or never watched (a container
//! that started and died between two scans), becomes an event by itself.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::collect::cgroup::path::container_for;
use crate::collect::kmsg::OomReport;
use crate::model::{
    CgroupVersion, ContainerRef, ContainerSample, Detection, Event, MemoryEvents, OomConstraint,
    OomKill, SourceStatus, Timestamp,
};
use crate::recorder::Recorder;

/// What the collector threads tell the pipeline.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "moved once per sample through a channel; boxing would add an allocation per sample"
)]
pub enum Input {
    /// A periodic sample of one container.
    Sample {
        /// The sample.
        sample: ContainerSample,
        /// Part of the first scan after start-up: its counters are the
        /// baseline, not new kills.
        baseline: bool,
    },
    /// A notifier fired and the container's counters were re-read.
    Counters {
        /// Whose.
        container: ContainerRef,
        /// Version of the cgroup.
        version: CgroupVersion,
        /// The counters just read.
        events: MemoryEvents,
        /// When they were read.
        time: Timestamp,
    },
    /// A kernel OOM report, with the victim cgroup's counters read right
    /// after it (`None`: the cgroup was gone or unreadable).
    Report {
        /// The parsed report.
        report: Box<OomReport>,
        /// Wall-clock time of the kill, from the record's timestamp.
        time: Timestamp,
        /// Version and counters of the victim's cgroup, when readable.
        counters: Option<(CgroupVersion, MemoryEvents)>,
    },
    /// A container's cgroup disappeared.
    Gone {
        /// Its path.
        cgroup_path: String,
        /// When it was noticed.
        time: Timestamp,
    },
    /// The kernel log lost records before they were read.
    KmsgOverrun {
        /// Records lost.
        lost: u64,
        /// When.
        time: Timestamp,
    },
    /// A source changed state.
    Source {
        /// The new status.
        status: SourceStatus,
        /// When.
        time: Timestamp,
    },
}

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// History kept per container.
    pub window: Duration,
    /// Most points per container (window / fast interval).
    pub recorder_capacity: usize,
    /// How long a kill waits for its kernel report. Zero when the kernel
    /// log cannot be read.
    pub kmsg_wait: Duration,
    /// How long a vanished container's history is kept for late reports.
    pub gone_retention: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            recorder_capacity: 1200,
            kmsg_wait: Duration::from_millis(100),
            gone_retention: Duration::from_secs(60),
        }
    }
}

struct Tracked {
    container: ContainerRef,
    version: Option<CgroupVersion>,
    oom_kill: u64,
    oom_group_kill: u64,
    limit_bytes: Option<u64>,
    peak_bytes: Option<u64>,
    recorder: Recorder,
    gone_at: Option<Timestamp>,
}

struct Pending {
    path: String,
    detected_at: Timestamp,
    detected_by: Detection,
    /// The counter value this kill brought it to; `None` when only the
    /// kernel report was seen.
    oom_kill: Option<u64>,
    oom_group_kill: Option<u64>,
    deadline: Timestamp,
    report: Option<(Box<OomReport>, Timestamp)>,
}

/// The event pipeline's state.
pub struct Pipeline {
    config: PipelineConfig,
    tracked: HashMap<String, Tracked>,
    pending: VecDeque<Pending>,
    late_reports: u64,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new(config: PipelineConfig) -> Self {
        Self {
            config,
            tracked: HashMap::new(),
            pending: VecDeque::new(),
            late_reports: 0,
        }
    }

    /// Containers currently tracked (including recently vanished ones).
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Kernel reports that arrived after their kill had been emitted
    /// without a victim (the `kmsg_wait` was too short).
    pub fn late_reports(&self) -> u64 {
        self.late_reports
    }

    /// Sets how long kills wait for their kernel report (zero once the
    /// kernel log is known to be unreadable).
    pub fn set_kmsg_wait(&mut self, wait: Duration) {
        self.config.kmsg_wait = wait;
    }

    fn track(&mut self, container: &ContainerRef, baseline: Option<&MemoryEvents>) -> &mut Tracked {
        let config = &self.config;
        self.tracked
            .entry(container.cgroup_path.clone())
            .or_insert_with(|| Tracked {
                container: container.clone(),
                version: None,
                oom_kill: baseline.map_or(0, |e| e.oom_kill),
                oom_group_kill: baseline.and_then(|e| e.oom_group_kill).unwrap_or(0),
                limit_bytes: None,
                peak_bytes: None,
                recorder: Recorder::new(config.window, config.recorder_capacity),
                gone_at: None,
            })
    }

    /// Records new kills for every increment of the counters.
    fn count(
        &mut self,
        container: &ContainerRef,
        version: CgroupVersion,
        events: &MemoryEvents,
        time: Timestamp,
        detected_by: Detection,
    ) {
        let deadline = Timestamp(time.0 + self.config.kmsg_wait.as_nanos() as u64);
        let t = self.track(container, None);
        t.version = Some(version);
        t.gone_at = None;
        if events.oom_kill < t.oom_kill {
            // The same path was reused by a new cgroup: new baseline.
            t.oom_kill = events.oom_kill;
            t.oom_group_kill = events.oom_group_kill.unwrap_or(0);
            return;
        }
        let group = events.oom_group_kill.filter(|&g| g > t.oom_group_kill);
        let first = t.oom_kill + 1;
        t.oom_kill = events.oom_kill;
        if let Some(g) = group {
            t.oom_group_kill = g;
        }
        for k in first..=events.oom_kill {
            self.pending.push_back(Pending {
                path: container.cgroup_path.clone(),
                detected_at: time,
                detected_by,
                oom_kill: Some(k),
                oom_group_kill: events.oom_group_kill,
                deadline,
                report: None,
            });
        }
    }

    /// Handles one input; returns the events it completes.
    pub fn handle(&mut self, input: Input, out: &mut Vec<Event>) {
        match input {
            Input::Sample { sample, baseline } => {
                let path = sample.container.cgroup_path.clone();
                if baseline {
                    self.track(&sample.container, Some(&sample.memory.events));
                }
                self.count(
                    &sample.container,
                    sample.cgroup_version,
                    &sample.memory.events,
                    sample.time,
                    Detection::Poll,
                );
                if let Some(t) = self.tracked.get_mut(&path) {
                    t.limit_bytes = sample.memory.limit_bytes;
                    t.peak_bytes = sample.memory.peak_bytes.or(t.peak_bytes);
                    t.recorder.push(&sample);
                }
                self.emit_ready(sample.time, out);
            }
            Input::Counters {
                container,
                version,
                events,
                time,
            } => {
                self.count(&container, version, &events, time, Detection::Notification);
                self.emit_ready(time, out);
            }
            Input::Report {
                report,
                time,
                counters,
            } => self.on_report(report, time, counters, out),
            Input::Gone { cgroup_path, time } => {
                if let Some(t) = self.tracked.get_mut(&cgroup_path) {
                    t.gone_at.get_or_insert(time);
                }
            }
            Input::KmsgOverrun { lost, time } => out.push(Event::KmsgOverrun { time, lost }),
            Input::Source { status, time } => out.push(Event::Source { time, status }),
        }
    }

    fn on_report(
        &mut self,
        report: Box<OomReport>,
        time: Timestamp,
        counters: Option<(CgroupVersion, MemoryEvents)>,
        out: &mut Vec<Event>,
    ) {
        let Some(path) = report
            .task_memcg
            .clone()
            .or_else(|| report.oom_memcg.clone())
        else {
            // A report without a cgroup (rate-limited to the Killed line):
            // attach it to a waiting kill whose victim it can only be.
            if let Some(p) = self.pending.iter_mut().find(|p| p.report.is_none()) {
                p.report = Some((report, time));
            } else {
                tracing::info!(
                    pid = report.victim.pid,
                    comm = %report.victim.comm,
                    "Kernel OOM report names no cgroup and matches no counted kill."
                );
            }
            self.emit_ready(time, out);
            return;
        };
        let container = self
            .tracked
            .get(&path)
            .map(|t| t.container.clone())
            .unwrap_or_else(|| container_for(&path));
        if let Some((version, events)) = counters {
            self.count(&container, version, &events, time, Detection::KernelReport);
        }
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.path == path && p.report.is_none())
        {
            p.report = Some((report, time));
        } else if counters.is_none() {
            // The cgroup is gone: the report is all there is.
            self.track(&container, None);
            self.pending.push_back(Pending {
                path,
                detected_at: Timestamp::now().max(time),
                detected_by: Detection::KernelReport,
                oom_kill: None,
                oom_group_kill: None,
                deadline: time,
                report: Some((report, time)),
            });
        } else {
            self.late_reports += 1;
            tracing::warn!(
                cgroup = %path,
                pid = report.victim.pid,
                "Kernel OOM report arrived after its kill was emitted; raise --kmsg-wait."
            );
        }
        self.emit_ready(time, out);
    }

    /// Emits kills whose report arrived or whose wait is over, and forgets
    /// containers gone for longer than the retention. Call periodically.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.emit_ready(now, out);
        let retention = self.config.gone_retention;
        self.tracked
            .retain(|_, t| t.gone_at.is_none_or(|g| now.since(g) < retention));
    }

    /// The earliest time a waiting kill must be emitted.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.pending.iter().map(|p| p.deadline).min()
    }

    fn emit_ready(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let wait = self.config.kmsg_wait;
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            if p.report.is_some() || p.deadline <= now || wait.is_zero() {
                if let Some(p) = self.pending.remove(i) {
                    out.push(Event::OomKill(Box::new(self.build(p))));
                }
            } else {
                i += 1;
            }
        }
    }

    fn build(&self, p: Pending) -> OomKill {
        let tracked = self.tracked.get(&p.path);
        let container = tracked
            .map(|t| t.container.clone())
            .unwrap_or_else(|| container_for(&p.path));
        let (report, time) = match p.report {
            Some((r, t)) => (Some(r), t),
            None => (None, p.detected_at),
        };
        let constraint = report
            .as_ref()
            .map_or(OomConstraint::Unknown, |r| r.constraint);
        let limit_bytes = tracked.and_then(|t| t.limit_bytes).or_else(|| {
            report
                .as_ref()
                .filter(|r| r.constraint == OomConstraint::Memcg)
                .and_then(|r| r.memcg_limit_bytes)
        });
        OomKill {
            time,
            detected_at: p.detected_at,
            detected_by: p.detected_by,
            container,
            cgroup_version: tracked.and_then(|t| t.version),
            limit_bytes,
            peak_bytes: tracked.and_then(|t| t.peak_bytes),
            oom_kill: p.oom_kill,
            oom_group_kill: p.oom_group_kill,
            constraint,
            victim: report.as_ref().map(|r| r.victim.clone()),
            trigger_comm: report.as_ref().and_then(|r| r.trigger_comm.clone()),
            kernel_usage_bytes: report.as_ref().and_then(|r| r.memcg_usage_bytes),
            kernel_limit_bytes: report.as_ref().and_then(|r| r.memcg_limit_bytes),
            window: tracked.map_or_else(Vec::new, |t| t.recorder.window_until(time)),
        }
    }
}
