//! Processes that cannot move: a thread of the pod asleep in the kernel
//! (uninterruptible sleep, state `D`) on a wait that never ends, and what
//! that does to a training job; and memory thrashing told by the reclaim
//! counters.
//!
//! The mechanism: a task in `D` waits for one kernel event (an NFS reply,
//! a FUSE daemon's answer, a block I/O completion, a driver callback) and
//! no signal wakes it, not even SIGKILL for a plain `D` sleep. The agent
//! reports a thread once it has stayed in `D` without being scheduled at
//! all past its own threshold, with the kernel functions it sleeps in
//! (`wchan`, `/proc/PID/stack`) and what they say it waits on. In a
//! data-parallel job every rank meets the others in each collective, so
//! one rank stuck in a read leaves all the others spinning in NCCL: the
//! stuck rank is the cause, the wedge of the others (and the stuck
//! training of its own pod) the consequence ([`annotate`] says so in those
//! findings, and `chains` links them).
//!
//! Thrashing from reclaim counters: `workingset_refault_*` counts pages
//! the kernel evicted and then had to read back soon after (its
//! working-set detection), `pgmajfault` page faults that had to wait for a
//! disk read. Both rising fast while the cgroup sits at its limit means it
//! is evicting what it still uses. PSI says how much time that costs and
//! is the better evidence (the `oom` family judges it); the counters are
//! added to that finding, and stand on their own, at low confidence, only
//! where there is no pressure figure to judge.

use std::time::Duration;

use gpuscope_model::text::human_bytes;
use gpuscope_model::{ContainerSample, PsiScope, StuckTask, Timestamp, WaitKind};
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use crate::Context;
use crate::finding::{Confidence, Fact, Finding, Kind, duration};
use crate::k8s;
use crate::rules::chains::pod_of;
use crate::rules::gpu_use;

/// Thresholds of this family.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// How long a thread must have been stuck in uninterruptible sleep
    /// (as of the latest sample) to be reported, seconds. Default 120:
    /// the kernel's own hung-task detector warns at 120 s
    /// (`kernel.hung_task_timeout_secs`); an NFS server failover or a
    /// storage path failover completes well within it.
    pub stuck_min_s: u64,
    /// The latest container sample must be at most this old for what it
    /// says is stuck to count as stuck now, seconds. Default 300: the
    /// agent samples every second; older, the task may have recovered
    /// since.
    pub stuck_fresh_s: u64,
    /// Window over which the reclaim counters' rates are taken, seconds.
    /// Default 600: long enough that a one-off burst of faults (a model
    /// loaded, a checkpoint read) does not count, short enough to describe
    /// the present.
    pub thrash_window_s: u64,
    /// Refaults per second (anonymous + page cache) from which the
    /// container evicts what it still uses, pages/s. Default 1000 (about
    /// 4 MiB/s re-read of data the kernel had just dropped; over the
    /// window, gigabytes read twice).
    pub thrash_refaults_per_s: f64,
    /// Major faults per second from which the container waits on disk to
    /// run its own code and data, faults/s. Default 100: each is a
    /// synchronous read of 0.1-10 ms, so a hundred a second stall a thread
    /// for a noticeable share of its time.
    pub thrash_majfaults_per_s: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            stuck_min_s: 120,
            stuck_fresh_s: 300,
            thrash_window_s: 600,
            thrash_refaults_per_s: 1000.0,
            thrash_majfaults_per_s: 100.0,
        }
    }
}

/// Every finding of this family: stuck threads of the subject pods.
pub(crate) fn run(ctx: &Context<'_>) -> Vec<Finding> {
    ctx.subjects()
        .filter(|p| k8s::phase(p) == "Running")
        .flat_map(|p| stuck(ctx, p))
        .collect()
}

/// A pod's threads stuck now: from the latest sample of each of its
/// containers, when fresh, those stuck past `stuck_min_s`.
fn stuck_now<'a>(ctx: &Context<'a>, pod: &Pod) -> Vec<(&'a ContainerSample, &'a StuckTask)> {
    let t = &ctx.config.stuck_io;
    let fresh = ctx.now.saturating_sub(secs(t.stuck_fresh_s));
    let mut latest: Vec<&ContainerSample> = Vec::new();
    for s in ctx.samples_of(pod) {
        match latest
            .iter_mut()
            .find(|l| l.container.cgroup_path == s.container.cgroup_path)
        {
            Some(l) if l.time <= s.time => *l = s,
            Some(_) => {}
            None => latest.push(s),
        }
    }
    latest
        .into_iter()
        .filter(|s| s.time >= fresh && s.time <= ctx.now)
        .flat_map(|s| {
            s.stuck
                .iter()
                .filter(|st| s.time.since(st.since) >= secs(t.stuck_min_s))
                .map(move |st| (s, st))
        })
        .collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The container's name in the pod, from its runtime ID.
fn container_name(pod: &Pod, s: &ContainerSample) -> Option<String> {
    let id = s.container.container_id.as_deref()?;
    k8s::container_statuses(pod)
        .find(|c| {
            c.container_id
                .as_deref()
                .is_some_and(|x| k8s::bare_container_id(x) == id)
        })
        .map(|c| c.name.clone())
}

/// `an NFS call (rpc_wait_bit_killable) on /data/shard-0042.tar (nfs4)`.
fn what(st: &StuckTask) -> String {
    let mut s = st.wait.describe().to_owned();
    if !st.wchan.is_empty() {
        s = format!("{s} ({})", st.wchan);
    }
    match (st.file.as_str(), st.fstype.as_str()) {
        ("", _) => s,
        (f, "") => format!("{s} on {f}"),
        (f, t) => format!("{s} on {f} ({t})"),
    }
}

fn stuck(ctx: &Context<'_>, pod: &Pod) -> Vec<Finding> {
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let mut out = Vec::new();
    for (s, st) in stuck_now(ctx, pod) {
        let container = container_name(pod, s);
        let for_ = s.time.since(st.since);
        // The stack (or the blocked call's file) names the filesystem;
        // wchan alone may not (an NFS page wait reads as block I/O).
        let conf = match (st.wait, st.stack.is_empty() && st.fstype.is_empty()) {
            (WaitKind::Unknown | WaitKind::Other, _) => Confidence::Low,
            (_, false) => Confidence::High,
            (_, true) => Confidence::Medium,
        };
        let label = container.as_deref().unwrap_or("?");
        let mut f = Finding::new(
            Kind::StuckInIo,
            ctx.subject(pod, container.as_deref()),
            conf,
            format!(
                "Process {} (pid {}) in container {label} has been in uninterruptible sleep on {} for {} without running once: it cannot make progress, and no signal, not even SIGKILL, wakes it until that wait ends.",
                st.comm,
                st.pid,
                what(st),
                duration(for_)
            ),
        )
        .fact(Fact::at("stuck since", st.since.to_string(), st.since))
        .fact(Fact::new("process", format!("{} (pid {})", st.comm, st.pid)))
        .fact(Fact::new("waits on", st.wait.describe()));
        if !st.wchan.is_empty() {
            f = f.fact(Fact::new("wchan", st.wchan.clone()));
        }
        if !st.file.is_empty() {
            let file = match st.fstype.as_str() {
                "" => st.file.clone(),
                t => format!("{} ({t})", st.file),
            };
            f = f.fact(Fact::new("file", file));
        }
        if !st.stack.is_empty() {
            let frames: Vec<&str> = st.stack.iter().take(4).map(String::as_str).collect();
            f = f.fact(Fact::new("kernel stack", frames.join(" < ")));
        }
        f = f.step(format!(
            "Confirm on the node: `cat /proc/{}/stack` and `grep -E 'State|voluntary' /proc/{}/status` (the switch counts stand still while it is stuck).",
            st.pid, st.pid
        ));
        f = match st.wait {
            WaitKind::Nfs => f
                .step("Check the NFS server and the mount: `dmesg | grep -i 'not responding'`, `nfsstat -c`, `mount | grep nfs` (a `hard` mount waits forever; `soft`/`timeo=` bound the wait but turn it into I/O errors).")
                .step("Move the dataset or checkpoints off that server, or to a local cache, if it keeps stalling."),
            WaitKind::Fuse => f
                .step(format!("The FUSE daemon behind the mount is not answering (s3fs, gcsfuse, mountpoint-s3, a CSI sidecar): check its logs and CPU in `kubectl describe pod -n {ns} {name}` and on the node; `cat /sys/fs/fuse/connections/*/waiting` shows requests it holds."))
                .step("Aborting the connection (`echo 1 > /sys/fs/fuse/connections/N/abort`) frees the process with an I/O error; restart the daemon."),
            WaitKind::BlockIo => f
                .step("Check the disk: `dmesg | grep -iE 'I/O error|timeout|reset'`, `iostat -x 1`; a device that stopped completing requests needs the storage path fixed or the node drained."),
            WaitKind::GpuDriver => f
                .step("The NVIDIA driver is not returning: look for XIDs (`dmesg | grep -i xid`) and `nvidia-smi -q`; a GPU in this state usually needs a reset or the node drained."),
            WaitKind::Other | WaitKind::Unknown => f
                .step("Read the full stack on the node (root): `cat /proc/PID/stack`; its outer frames name the subsystem it waits in."),
        };
        f = f.step(format!(
            "The pod will not terminate while the process sleeps (`kubectl delete pod -n {ns} {name}` hangs in Terminating): fix the wait first."
        ));
        out.push(f);
    }
    out
}

/// The pods of the same controller (the job's ranks), this one first.
fn siblings<'a>(ctx: &Context<'a>, pod: &'a Pod) -> Vec<&'a Pod> {
    let mut v = vec![pod];
    if let Some(owner) = k8s::owner(pod) {
        v.extend(ctx.pods().iter().filter(|p| {
            k8s::owner(p).as_deref() == Some(owner.as_str())
                && k8s::uid(p) != k8s::uid(pod)
                && k8s::phase(p) == "Running"
        }));
    }
    v
}

/// A pod's rank in its job: the replica or completion index label, else
/// the pod's name.
fn rank(p: &Pod) -> String {
    let labels = p.metadata.labels.as_ref();
    [
        "training.kubeflow.org/replica-index",
        "batch.kubernetes.io/job-completion-index",
        "jobset.sigs.k8s.io/job-index",
    ]
    .iter()
    .find_map(|k| labels.and_then(|l| l.get(*k)))
    .map_or_else(|| k8s::name(p).to_owned(), |i| format!("rank {i}"))
}

/// Says, in the stuck-training and NCCL-wedge findings of a job, which
/// rank is different when one of its pods has a thread stuck in I/O:
/// "training stuck: 7 of 8 ranks wait in NCCL, rank 2 has been in
/// uninterruptible sleep on an NFS call for 14m". The stuck-in-I/O finding
/// of that pod gets the same sentence, and `chains` links the findings.
pub(crate) fn annotate(ctx: &Context<'_>, findings: &mut [Finding]) {
    for f in findings.iter_mut() {
        if !matches!(
            f.kind,
            Kind::TrainingStuck | Kind::NcclWedge | Kind::StuckInIo
        ) {
            continue;
        }
        let Some(pod) = pod_of(ctx, f) else {
            continue;
        };
        let ranks = siblings(ctx, pod);
        let Some((p, _, st)) = ranks
            .iter()
            .flat_map(|p| {
                stuck_now(ctx, p)
                    .into_iter()
                    .map(move |(s, st)| (*p, s, st))
            })
            .max_by_key(|(_, s, st)| s.time.since(st.since))
        else {
            continue;
        };
        if f.kind == Kind::StuckInIo && ranks.len() < 2 {
            continue;
        }
        let wedged = ranks
            .iter()
            .filter(|r| gpu_use::nccl_wedged(ctx, r))
            .count();
        let who = if k8s::uid(p) == k8s::uid(pod) {
            format!("{} (this pod)", rank(p))
        } else {
            format!("{} ({})", rank(p), k8s::name(p))
        };
        let now = ctx.now;
        let sentence = format!(
            "training stuck: {wedged} of {} ranks wait in NCCL, {who} has been in uninterruptible sleep on {} for {} ({}, pid {})",
            ranks.len(),
            what(st),
            duration(now.since(st.since)),
            st.comm,
            st.pid
        );
        f.summary = format!("{} In this job, {sentence}.", f.summary);
        f.evidence
            .push(Fact::at("the rank that is different", sentence, st.since));
    }
}

/// Reclaim rates of one container over the window: refaults/s and major
/// faults/s (each `None` when the counters are not kept), the first and
/// last samples they were taken between.
struct Rates<'a> {
    refaults: Option<f64>,
    majfaults: Option<f64>,
    first: &'a ContainerSample,
    last: &'a ContainerSample,
}

fn rates<'a>(
    samples: &[&'a ContainerSample],
    from: Timestamp,
    now: Timestamp,
) -> Option<Rates<'a>> {
    let w: Vec<&ContainerSample> = samples
        .iter()
        .copied()
        .filter(|s| s.time >= from && s.time <= now && !s.memory.reclaim.is_empty())
        .collect();
    let (first, last) = (*w.first()?, *w.last()?);
    let dt = last.time.since(first.time).as_secs_f64();
    if dt <= 0.0 {
        return None;
    }
    let (a, b) = (first.memory.reclaim, last.memory.reclaim);
    let rate = |x: Option<u64>, y: Option<u64>| Some(y?.saturating_sub(x?) as f64 / dt);
    Some(Rates {
        refaults: rate(a.refaults(), b.refaults()),
        majfaults: rate(a.pgmajfault, b.pgmajfault),
        first,
        last,
    })
}

/// `refaults 2400/s, major faults 180/s over 10m`.
fn rates_text(r: &Rates<'_>) -> String {
    let mut parts = Vec::new();
    if let Some(x) = r.refaults {
        parts.push(format!("refaults {x:.0}/s"));
    }
    if let Some(x) = r.majfaults {
        parts.push(format!("major faults {x:.0}/s"));
    }
    format!(
        "{} over {}",
        parts.join(", "),
        duration(r.last.time.since(r.first.time))
    )
}

/// Thrashing from the reclaim counters: adds their rates to each
/// PSI-based `memory_thrashing` finding, and makes a low-confidence one
/// for a container near its limit whose counters rise past the
/// thresholds where no pressure figure judged it (no finding from PSI).
pub(crate) fn thrashing(ctx: &Context<'_>, findings: &mut Vec<Finding>) {
    let t = &ctx.config.stuck_io;
    let near_pct = ctx.config.oom.near_limit_percent;
    let from = ctx.now.saturating_sub(secs(t.thrash_window_s));
    for pod in ctx.subjects() {
        if k8s::phase(pod) != "Running" {
            continue;
        }
        let samples = ctx.samples_of(pod);
        let mut paths: Vec<&str> = samples
            .iter()
            .map(|s| s.container.cgroup_path.as_str())
            .collect();
        paths.sort_unstable();
        paths.dedup();
        for path in paths {
            let own: Vec<&ContainerSample> = samples
                .iter()
                .copied()
                .filter(|s| s.container.cgroup_path == path)
                .collect();
            let Some(r) = rates(&own, from, ctx.now) else {
                continue;
            };
            let container = container_name(pod, r.last);
            let existing = findings.iter_mut().find(|f| {
                f.kind == Kind::MemoryThrashing
                    && f.subject.pod.as_deref() == Some(k8s::name(pod))
                    && f.subject.container == container
            });
            if let Some(f) = existing {
                f.evidence
                    .push(Fact::at("reclaim", rates_text(&r), r.last.time));
                continue;
            }
            let high = r.refaults.is_some_and(|x| x >= t.thrash_refaults_per_s)
                || r.majfaults.is_some_and(|x| x >= t.thrash_majfaults_per_s);
            let m = &r.last.memory;
            let near = m
                .limit_bytes
                .is_some_and(|l| l > 0 && m.usage_bytes * 100 >= l * near_pct);
            // A container with its own memory pressure was judged by it
            // (the `oom` family): no finding there means no stall worth one.
            let judged_by_psi =
                r.last.pressure_scope == PsiScope::Container && r.last.pressure.memory.is_some();
            if !high || !near || judged_by_psi {
                continue;
            }
            let label = container.as_deref().unwrap_or("?");
            let limit = m.limit_bytes.unwrap_or(0);
            findings.push(
                Finding::new(
                    Kind::MemoryThrashing,
                    ctx.subject(pod, container.as_deref()),
                    Confidence::Low,
                    format!(
                        "Container {label} is at {} of its {} limit and keeps faulting back in pages that reclaim took from it ({}): it is likely thrashing, running slower rather than failing; without its own pressure figure the time lost is not known.",
                        human_bytes(m.usage_bytes),
                        human_bytes(limit),
                        rates_text(&r)
                    ),
                )
                .fact(Fact::at("reclaim", rates_text(&r), r.last.time))
                .fact(Fact::at(
                    "memory use",
                    format!("{} of {}", human_bytes(m.usage_bytes), human_bytes(limit)),
                    r.last.time,
                ))
                .step("Raise the memory limit, or shrink what the process keeps hot (page cache of a dataset read again each epoch, a larger model than planned).")
                .step("On cgroup v2, `memory.pressure` of the container measures the time lost; on v1, only major faults are counted (no refault counters)."),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_task_waits_on_reads_for_people() {
        let st = StuckTask {
            pid: 1,
            comm: "python3".into(),
            since: Timestamp(0),
            wchan: "rpc_wait_bit_killable".into(),
            wait: WaitKind::Nfs,
            stack: Vec::new(),
            file: String::new(),
            fstype: String::new(),
        };
        assert_eq!(what(&st), "an NFS call (rpc_wait_bit_killable)");
        let st = StuckTask {
            wchan: String::new(),
            wait: WaitKind::Fuse,
            ..st
        };
        assert_eq!(what(&st), "a FUSE request");
        let st = StuckTask {
            file: "/data/shard-7.tar".into(),
            fstype: "fuse.gcsfuse".into(),
            ..st
        };
        assert_eq!(
            what(&st),
            "a FUSE request on /data/shard-7.tar (fuse.gcsfuse)"
        );
    }
}
