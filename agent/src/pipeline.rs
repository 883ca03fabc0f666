//! The event pipeline: turns counter movements and kernel OOM reports into
//! exactly one [`OomKill`] event per OOM kill, each carrying its
//! flight-recorder window. A `memory.oom.group` kill raises `oom_kill` once
//! per process killed; its kernel report (one per OOM event, see
//! `collect::kmsg`) says how many `Killed process` lines it had, and that
//! many increments become its one event. Without the kernel log the
//! counters alone cannot tell a group kill from several kills, so each
//! increment stays an event of its own (the diagnosis folds those of one
//! cgroup with the same `oom_group_kill` count into one OOM event).
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
use crate::recorder::Recorder;
use gpuscope_model::{
    CgroupVersion, ContainerRef, ContainerSample, Detection, Event, MemoryEvents, OomConstraint,
    OomKill, PsiScope, SourceStatus, Timestamp,
};

/// What the collector threads tell the pipeline.
#[derive(Debug)]
pub enum Input {
    /// A periodic sample of one container.
    Sample {
        /// The sample.
        sample: ContainerSample,
        /// Part of the first scan after start-up: its counters are the
        /// baseline, not new kills.
        baseline: bool,
    },
    /// A notifier fired and the container was re-read: its counters, and
    /// memory and pressure right after the kill.
    Notified {
        /// The sample read after the notification.
        sample: ContainerSample,
    },
    /// A kernel OOM report, with the victim's cgroup read right after it.
    Report {
        /// The parsed report.
        report: Box<OomReport>,
        /// Wall-clock time of the kill, from the record's timestamp.
        time: Timestamp,
        /// The victim's cgroup read after the report (`None`: it was gone
        /// or unreadable).
        sample: Option<ContainerSample>,
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
            kmsg_wait: Duration::from_millis(250),
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
    pressure_scope: Option<PsiScope>,
    recorder: Recorder,
    gone_at: Option<Timestamp>,
    /// Counter increments still to come that belong to a group kill
    /// already emitted (the counter was read before the group's last
    /// kill): they are not new kills.
    absorb: u64,
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
    /// The recorder window ends here: the read that saw the kill.
    window_end: Timestamp,
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
                pressure_scope: None,
                recorder: Recorder::new(config.window, config.recorder_capacity),
                gone_at: None,
                absorb: 0,
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
        let absorbed = t.absorb.min(events.oom_kill - t.oom_kill);
        t.absorb -= absorbed;
        let first = t.oom_kill + 1 + absorbed;
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
                window_end: time,
                report: None,
            });
        }
    }

    /// Counts the kills a sample shows and records it.
    fn observe(&mut self, sample: &ContainerSample, detected_by: Detection) {
        self.count(
            &sample.container,
            sample.cgroup_version,
            &sample.memory.events,
            sample.time,
            detected_by,
        );
        if let Some(t) = self.tracked.get_mut(&sample.container.cgroup_path) {
            t.limit_bytes = sample.memory.limit_bytes;
            t.peak_bytes = sample.memory.peak_bytes.or(t.peak_bytes);
            t.pressure_scope = Some(sample.pressure_scope);
            t.recorder.push(sample);
        }
    }

    /// Handles one input; returns the events it completes.
    pub fn handle(&mut self, input: Input, out: &mut Vec<Event>) {
        match input {
            Input::Sample { sample, baseline } => {
                if baseline {
                    self.track(&sample.container, Some(&sample.memory.events));
                }
                self.observe(&sample, Detection::Poll);
                self.emit_ready(sample.time, out);
            }
            Input::Notified { sample } => {
                self.observe(&sample, Detection::Notification);
                self.emit_ready(sample.time, out);
            }
            Input::Report {
                report,
                time,
                sample,
            } => self.on_report(report, time, sample, out),
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
        sample: Option<ContainerSample>,
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
        if let Some(sample) = &sample {
            self.observe(sample, Detection::KernelReport);
        }
        // A group kill's other `Killed process` lines each raised the
        // counter too: they are this event, not kills of their own.
        let extra = report
            .group
            .as_ref()
            .map_or(0, |g| u64::from(g.kill_lines.saturating_sub(1)));
        if let Some(i) = self
            .pending
            .iter()
            .position(|p| p.path == path && p.report.is_none())
        {
            let mut absorbed = 0;
            let mut counter = self.pending[i].oom_kill;
            let mut j = i + 1;
            while absorbed < extra && j < self.pending.len() {
                if self.pending[j].path == path && self.pending[j].report.is_none() {
                    counter = counter.max(self.pending[j].oom_kill);
                    self.pending.remove(j);
                    absorbed += 1;
                } else {
                    j += 1;
                }
            }
            if let Some(t) = self.tracked.get_mut(&path) {
                t.absorb += extra - absorbed;
            }
            let p = &mut self.pending[i];
            p.oom_kill = counter;
            p.report = Some((report, time));
        } else if sample.is_none() {
            // The cgroup is gone: the report is all there is.
            self.track(&container, None);
            self.pending.push_back(Pending {
                path,
                detected_at: Timestamp::now().max(time),
                detected_by: Detection::KernelReport,
                oom_kill: None,
                oom_group_kill: None,
                deadline: time,
                window_end: time,
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
            group: report.as_ref().and_then(|r| r.group.clone()),
            trigger_comm: report.as_ref().and_then(|r| r.trigger_comm.clone()),
            kernel_usage_bytes: report.as_ref().and_then(|r| r.memcg_usage_bytes),
            kernel_limit_bytes: report.as_ref().and_then(|r| r.memcg_limit_bytes),
            // Up to the detection: the read right after the kill shows
            // the pressure that led to it.
            pressure_scope: tracked.and_then(|t| t.pressure_scope),
            window: tracked.map_or_else(Vec::new, |t| {
                t.recorder.window_until(time.max(p.window_end))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuscope_model::{MemoryStats, Pressure, PsiScope, Victim};

    const PATH: &str = "/kubepods/burstable/pod0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11/3f9a1c0d2e4b5a6978c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3";

    fn t(ms: u64) -> Timestamp {
        Timestamp(1_764_150_000_000_000_000 + ms * 1_000_000)
    }

    fn container() -> ContainerRef {
        container_for(PATH)
    }

    fn sample(ms: u64, usage: u64, oom_kill: u64) -> ContainerSample {
        ContainerSample {
            time: t(ms),
            container: container(),
            cgroup_version: CgroupVersion::V1,
            memory: MemoryStats {
                usage_bytes: usage,
                limit_bytes: Some(64 << 20),
                events: MemoryEvents {
                    oom_kill,
                    ..MemoryEvents::default()
                },
                ..MemoryStats::default()
            },
            cpu: None,
            pressure: Pressure::default(),
            pressure_scope: PsiScope::Node,
            stuck: Vec::new(),
        }
    }

    fn counters(ms: u64, oom_kill: u64) -> Input {
        Input::Notified {
            sample: sample(ms, 64 << 20, oom_kill),
        }
    }

    fn report(ms: u64, pid: u32, readable_kills: Option<u64>) -> Input {
        Input::Report {
            report: Box::new(OomReport {
                seq: 1,
                usec: 0,
                trigger_comm: Some("python3".into()),
                constraint: OomConstraint::Memcg,
                oom_memcg: Some(PATH.into()),
                task_memcg: Some(PATH.into()),
                victim: Victim {
                    pid,
                    comm: "python3".into(),
                    anon_rss_bytes: 65_152 * 1024,
                    ..Victim::default()
                },
                group: None,
                memcg_usage_bytes: Some(64 << 20),
                memcg_limit_bytes: Some(64 << 20),
                partial: false,
            }),
            time: t(ms),
            sample: readable_kills.map(|k| sample(ms + 1, 64 << 20, k)),
        }
    }

    fn kills(events: &[Event]) -> Vec<&OomKill> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::OomKill(k) => Some(k.as_ref()),
                _ => None,
            })
            .collect()
    }

    /// A periodic sample, as the sampler sends it.
    fn poll(p: &mut Pipeline, out: &mut Vec<Event>, sample: ContainerSample, baseline: bool) {
        p.handle(Input::Sample { sample, baseline }, out);
    }

    fn pipeline() -> Pipeline {
        Pipeline::new(PipelineConfig::default())
    }

    /// A report of a group kill: the chosen `pid`, then `members` other
    /// processes, the chosen one printed twice.
    fn group_report(ms: u64, pid: u32, members: u32, readable_kills: Option<u64>) -> Input {
        let Input::Report {
            mut report,
            time,
            sample,
        } = report(ms, pid, readable_kills)
        else {
            unreachable!("report() builds a report")
        };
        report.group = Some(gpuscope_model::OomGroup {
            cgroup_path: PATH.into(),
            members: (0..members)
                .map(|i| Victim {
                    pid: 9000 + i,
                    comm: "pt_data_worker".into(),
                    ..Victim::default()
                })
                .collect(),
            member_count: members,
            skipped: 0,
            kill_lines: members + 2,
        });
        Input::Report {
            report,
            time,
            sample,
        }
    }

    #[test]
    fn a_group_kill_is_one_event_however_the_counter_was_read() {
        // Counter read mid-group (1), then after it (5): one event, the
        // chosen victim, the counter after the group.
        let mut p = pipeline();
        let mut out = Vec::new();
        poll(&mut p, &mut out, sample(0, 1 << 20, 0), true);
        p.handle(counters(100, 1), &mut out);
        p.handle(counters(120, 5), &mut out);
        p.handle(group_report(100, 8048, 3, Some(5)), &mut out);
        p.tick(t(10_000), &mut out);
        let k = kills(&out);
        assert_eq!(k.len(), 1, "{out:?}");
        assert_eq!(k[0].victim.as_ref().map(|v| v.pid), Some(8048));
        assert_eq!(k[0].oom_kill, Some(5));
        assert_eq!(k[0].group.as_ref().map(|g| g.member_count), Some(3));

        // Counter read before the group's last kills: the increments seen
        // later are the same event, not new kills.
        let mut p = pipeline();
        let mut out = Vec::new();
        poll(&mut p, &mut out, sample(0, 1 << 20, 0), true);
        p.handle(counters(100, 2), &mut out);
        p.handle(group_report(100, 8048, 3, None), &mut out);
        p.handle(counters(130, 5), &mut out);
        p.tick(t(10_000), &mut out);
        assert_eq!(kills(&out).len(), 1, "{out:?}");
        // A later single kill is a kill of its own.
        p.handle(counters(20_000, 6), &mut out);
        p.tick(t(30_000), &mut out);
        assert_eq!(kills(&out).len(), 2, "{out:?}");
    }

    #[test]
    fn baseline_counters_are_not_kills() {
        let mut p = pipeline();
        let mut out = Vec::new();
        poll(&mut p, &mut out, sample(0, 1 << 20, 3), true);
        p.handle(counters(10, 3), &mut out);
        p.tick(t(1000), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn notification_then_report_gives_one_event_with_victim_and_window() {
        let mut p = pipeline();
        let mut out = Vec::new();
        for i in 0..5 {
            poll(
                &mut p,
                &mut out,
                sample(i * 1000, (10 + i) << 20, 0),
                i == 0,
            );
        }
        p.handle(counters(4500, 1), &mut out);
        assert!(out.is_empty(), "waits for the report: {out:?}");
        p.handle(report(4500, 8048, Some(1)), &mut out);
        // A poll seeing the same counter later adds nothing.
        poll(&mut p, &mut out, sample(5000, 0, 1), false);
        p.tick(t(10_000), &mut out);
        let k = kills(&out);
        assert_eq!(k.len(), 1, "{out:?}");
        let k = k[0];
        assert_eq!(k.detected_by, Detection::Notification);
        assert_eq!(k.oom_kill, Some(1));
        assert_eq!(k.victim.as_ref().map(|v| v.pid), Some(8048));
        assert_eq!(k.constraint, OomConstraint::Memcg);
        assert_eq!(k.limit_bytes, Some(64 << 20));
        assert_eq!(
            k.container.pod_uid.as_deref(),
            Some("0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11")
        );
        assert_eq!(k.time, t(4500));
        let usage: Vec<u64> = k.window.iter().map(|p| p.usage_bytes >> 20).collect();
        assert_eq!(
            usage,
            vec![10, 11, 12, 13, 14, 64],
            "the samples before the kill, and the read at the notification"
        );
    }

    #[test]
    fn report_first_then_notification_is_still_one_event() {
        let mut p = pipeline();
        let mut out = Vec::new();
        poll(&mut p, &mut out, sample(0, 1 << 20, 0), true);
        p.handle(report(100, 8048, Some(1)), &mut out);
        assert_eq!(kills(&out).len(), 1, "report + counter: emitted at once");
        assert_eq!(kills(&out)[0].detected_by, Detection::KernelReport);
        p.handle(counters(101, 1), &mut out);
        p.tick(t(5000), &mut out);
        assert_eq!(kills(&out).len(), 1, "{out:?}");
        assert_eq!(p.late_reports(), 0);
    }

    #[test]
    fn a_kill_without_report_is_emitted_after_the_wait() {
        let mut p = pipeline();
        let mut out = Vec::new();
        poll(&mut p, &mut out, sample(0, 1 << 20, 0), true);
        p.handle(counters(1000, 1), &mut out);
        p.tick(t(1200), &mut out);
        assert!(out.is_empty(), "still inside the 250 ms wait");
        assert_eq!(p.next_deadline(), Some(t(1250)));
        p.tick(t(1250), &mut out);
        let k = kills(&out);
        assert_eq!(k.len(), 1);
        assert!(k[0].victim.is_none());
        assert_eq!(k[0].constraint, OomConstraint::Unknown);
        // The report arrives too late: counted, not a second event.
        p.handle(report(1000, 8048, Some(1)), &mut out);
        assert_eq!(kills(&out).len(), 1);
        assert_eq!(p.late_reports(), 1);
    }

    #[test]
    fn every_increment_without_a_group_is_one_event() {
        let mut p = pipeline();
        let mut out = Vec::new();
        poll(&mut p, &mut out, sample(0, 1 << 20, 2), true);
        // Three kills between two reads (e.g. a group kill).
        p.handle(counters(100, 5), &mut out);
        p.handle(report(100, 11, Some(5)), &mut out);
        p.handle(report(100, 12, Some(5)), &mut out);
        p.tick(t(1000), &mut out);
        let k = kills(&out);
        let counts: Vec<_> = k.iter().map(|k| k.oom_kill).collect();
        assert_eq!(counts, vec![Some(3), Some(4), Some(5)]);
        let pids: Vec<_> = k.iter().map(|k| k.victim.as_ref().map(|v| v.pid)).collect();
        assert_eq!(pids, vec![Some(11), Some(12), None]);
    }

    #[test]
    fn a_report_for_a_vanished_unknown_cgroup_is_an_event() {
        let mut p = pipeline();
        let mut out = Vec::new();
        p.handle(report(100, 8048, None), &mut out);
        let k = kills(&out);
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].detected_by, Detection::KernelReport);
        assert_eq!(k[0].oom_kill, None, "never read: unknown, not guessed");
        assert_eq!(
            k[0].limit_bytes,
            Some(64 << 20),
            "from the kernel's memcg line"
        );
        assert_eq!(
            k[0].container.container_id.as_deref(),
            Some("3f9a1c0d2e4b5a6978c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3")
        );
        assert!(k[0].window.is_empty());
    }

    #[test]
    fn a_container_first_seen_after_start_with_kills_reports_them() {
        let mut p = pipeline();
        let mut out = Vec::new();
        poll(&mut p, &mut out, sample(0, 1 << 20, 1), false);
        p.tick(t(250), &mut out);
        let k = kills(&out);
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].detected_by, Detection::Poll);
    }

    #[test]
    fn vanished_containers_are_forgotten_after_the_retention() {
        let mut p = pipeline();
        let mut out = Vec::new();
        poll(&mut p, &mut out, sample(0, 1 << 20, 0), true);
        p.handle(
            Input::Gone {
                cgroup_path: PATH.into(),
                time: t(1000),
            },
            &mut out,
        );
        p.tick(t(30_000), &mut out);
        assert_eq!(p.tracked(), 1, "kept for late reports");
        // A late report still finds the history.
        p.handle(report(30_000, 8048, None), &mut out);
        assert_eq!(kills(&out)[0].window.len(), 1);
        p.tick(t(62_000), &mut out);
        assert_eq!(p.tracked(), 0);
    }
}
