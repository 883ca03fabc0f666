//! Memory: OOM kills (the container's, a worker's, the node's), kubelet
//! evictions, `OOMKilled` statuses no kernel kill backs, exit 137 that
//! was not an OOM kill, CUDA out-of-memory, and memory thrashing.
//!
//! The mechanism. The kernel's memcg OOM killer kills one process when a
//! cgroup's charge would exceed its limit, and counts it in the cgroup's
//! `memory.events` `oom_kill` (v1: `memory.oom_control`). containerd
//! labels a container's exit `OOMKilled` when it saw an OOM event for the
//! container's cgroup. On cgroup v2 the kubelet (1.28+) sets
//! `memory.oom.group`, so the whole container dies; on v1 only the victim
//! dies, and when that victim is a child (a DataLoader worker) the
//! container lives on and Kubernetes shows nothing: only the agent saw it.
//! A kill with `CONSTRAINT_NONE` is the node running out, not the limit.
//!
//! How a kill is tied to a container instance: the agent's kill carries
//! the container ID from its cgroup path, and the container status's
//! `containerID` (`containerd://<id>`) names each instance; when the IDs
//! cannot be compared, the kill's time must fall inside the instance's
//! `startedAt`..`finishedAt` (± `match_slack_s`).
//!
//! An `OOMKilled` status with no kill recorded for that instance is
//! decided as follows:
//! - the agent was not watching (no records of the node, none within
//!   `agent_coverage_s` of the exit, or its kernel-log source was down and
//!   it never sampled the instance): `oom_killed`, Medium, from the status
//!   alone, saying the node evidence is missing;
//! - the agent sampled the instance and its `oom_kill` counter moved:
//!   `oom_killed`, Medium (the kernel report was not recorded);
//! - the agent was watching and another process on the node was killed
//!   within `match_slack_s` of the exit: `oom_status_without_kill`,
//!   Medium (a second-hand label);
//! - the agent was watching and saw nothing: `oom_status_without_kill`,
//!   Low;
//! - the exit code is not 137 (143: SIGTERM): containerd keeps the
//!   `OOMKilled` reason once it saw an OOM event in the container's cgroup,
//!   so a worker killed earlier labels a later exit; `oom_status_without_kill`,
//!   with the exit's real reason: Medium when the evidence gives it (or the
//!   agent counted the earlier kill), Low when only the label and the code
//!   disagree; an exit with an error of the main process's own (not 0,
//!   137 or 143) whose termination message or log says a worker was
//!   killed by SIGKILL is that worker's OOM kill: `oom_killed_worker`,
//!   Medium; where the agent watched the instance to its end with its
//!   `oom_kill` counter at 0, the label is said to be wrong, not sticky
//!   (when the agent recorded the earlier kill, its
//!   `oom_killed_worker` finding says so instead: a kill followed by an
//!   exit other than 137 is a worker's, as the main process outlived it).
//!
//! One OOM event is one kill: a `memory.oom.group` kill kills every process
//! of the container but is reported (and counted) once, naming the victim
//! the kernel chose; agents that sent one event per process killed are read
//! the same way. What led to it is read from the killed instance's whole
//! history ([`super::memory_story`]).

use std::time::Duration;

use gpuscope_model::text::human_bytes;
use std::borrow::Cow;

use gpuscope_model::{
    ContainerSample, Event as NodeEvent, OomConstraint, OomGroup, OomKill, PsiScope, SourceState,
    Timestamp, Victim,
};
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::logs;
use super::memory_story::{self, Verdict};
use crate::Context;
use crate::evidence::Gap;
use crate::finding::{self, Confidence, Cost, Fact, Finding, Kind};
use crate::k8s;

/// Thresholds of this family.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// Seconds after a kill from which a sample of the same container
    /// proves it lived on (a worker died, not the container). Default 2:
    /// the runtime reaps a dead container within a second; a sample later
    /// than that with memory in use is a live process.
    pub survived_after_s: u64,
    /// Anonymous memory that counts as "still alive", bytes. Default 4
    /// MiB: an exited container's cgroup keeps kernel memory and page
    /// cache until it is removed, but no anonymous memory; any living
    /// process holds more than this.
    pub survived_min_usage_bytes: u64,
    /// Tolerance between the kernel's time of a kill (or an event's time)
    /// and the kubelet's `startedAt`/`finishedAt`, seconds. Default 30:
    /// the kubelet records the exit when it next syncs the pod (up to
    /// ~10 s), events are stamped by another clock, and a liveness kill
    /// waits for the grace period.
    pub match_slack_s: u64,
    /// The agent counts as "watching" at a moment when it has a record
    /// within this many seconds of it. Default 120: samples come every
    /// few seconds, so two minutes of nothing means the agent (or its
    /// stream) was down.
    pub agent_coverage_s: u64,
    /// Head-room over the peak when suggesting a limit, percent. Default
    /// 25: covers batch-to-batch variation without doubling the
    /// reservation.
    pub limit_headroom_percent: u64,
    /// Growth shorter than this is not judged steady (no leak verdict),
    /// seconds. Default 240: most of the agent's default 5-minute
    /// recorder window. A ramp of a minute or two is a load phase (a
    /// dataset, a checkpoint, an evaluation set read at once); a leak
    /// fills the whole window.
    pub leak_min_span_s: u64,
    /// How straight the growth must be to call it steady (R² of a line
    /// through the recorder points). Default 0.95: a leak grows at a
    /// constant rate; epoch-shaped use goes up and down.
    pub leak_min_r2: f64,
    /// Shared memory (tmpfs, /dev/shm) above this share of the charge is
    /// called out, percent. Default 25: PyTorch DataLoader workers pass
    /// batches through /dev/shm; a quarter of the limit there is a sizing
    /// choice, not noise.
    pub shmem_share_percent: u64,
    /// Memory PSI `some` avg10 at or above which a sample counts as
    /// thrashing, percent. Default 20: a fifth of wall time stalled on
    /// reclaim is a job running visibly slower; single-digit values are
    /// normal page-cache churn.
    pub thrash_some_avg10_percent: f32,
    /// Memory PSI `full` avg10 at or above which a sample counts as
    /// thrashing, percent. Default 5: `full` means every task stalled at
    /// once; 5 % is already a large loss.
    pub thrash_full_avg10_percent: f32,
    /// How long pressure must stay high to be thrashing, seconds. Default
    /// 60: avg10 spikes during a checkpoint write; a minute is a pattern.
    pub thrash_min_s: u64,
    /// Usage at or above this share of the limit counts as "at the
    /// limit", percent. Default 90: reclaim of the container's own cache
    /// starts close to the limit.
    pub near_limit_percent: u64,
    /// Exits and kills older than this are history, not a current
    /// problem, seconds. Default 86400 (a day): a container that was
    /// OOM-killed last week and has run cleanly since needs no action,
    /// while a day still covers a failure overnight.
    pub recent_s: u64,
    /// Fewest samples of a killed instance to tell its memory story (leak,
    /// step, plateau). Default 6: a line or a jump needs a few points on
    /// either side; fewer is said to be too sparse.
    pub story_min_points: usize,
    /// Median spacing of the samples above which the story is too sparse
    /// to tell, seconds. Default 120: `gpuscope bundle` keeps 30 s points
    /// and exported metrics are scraped every 15-60 s; minutes apart hide
    /// both a jump and the shape of a rise.
    pub story_sparse_gap_s: u64,
    /// Least rise between two neighbouring samples to call it a step,
    /// percent of the limit. Default 20: a fifth of the limit in one go is
    /// one large allocation (a batch, a file, a model), not steady growth.
    pub step_min_percent: u64,
    /// Longest gap between the two samples of a step, seconds. Default
    /// 120: over longer gaps a rise may as well be steady growth unseen.
    pub step_max_s: u64,
    /// Least time at the limit (`near_limit_percent`) before the kill to
    /// call it a plateau, seconds. Default 120: the kernel reclaims for
    /// seconds before every kill; minutes at the limit mean the job ran
    /// on reclaimed page cache until an allocation could not be met.
    pub plateau_min_s: u64,
    /// Per-process kill events of one cgroup within this many seconds,
    /// with the same `oom_group_kill` count, are one group kill (agents
    /// before the `group` field sent one event per process killed),
    /// seconds. Default 2: the kernel kills a group in one loop, within
    /// milliseconds; a new OOM of the restarted container takes longer.
    pub group_merge_s: u64,
    /// GPU memory use at or above this share of the total before a
    /// non-zero exit suggests CUDA ran out, percent. Default 98: the
    /// allocator fails when a request does not fit the last percent.
    pub cuda_oom_memory_percent: u64,
    /// How far before the exit to look for a full GPU, seconds. Default
    /// 120: NVML samples are a few seconds apart, and the process frees
    /// its memory as it dies.
    pub cuda_oom_lookback_s: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            survived_after_s: 2,
            survived_min_usage_bytes: 4 << 20,
            match_slack_s: 30,
            agent_coverage_s: 120,
            limit_headroom_percent: 25,
            leak_min_span_s: 240,
            leak_min_r2: 0.95,
            shmem_share_percent: 25,
            thrash_some_avg10_percent: 20.0,
            thrash_full_avg10_percent: 5.0,
            thrash_min_s: 60,
            near_limit_percent: 90,
            recent_s: 86_400,
            story_min_points: 6,
            story_sparse_gap_s: 120,
            step_min_percent: 20,
            step_max_s: 120,
            plateau_min_s: 120,
            group_merge_s: 2,
            cuda_oom_memory_percent: 98,
            cuda_oom_lookback_s: 120,
        }
    }
}

/// Every finding of this family.
pub(crate) fn run(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for pod in ctx.subjects() {
        let evicted = evicted(ctx, pod);
        let insts = instances(pod);
        out.extend(kills(ctx, pod, &insts));
        for i in insts
            .iter()
            .filter(|i| i.exit.is_some() && recent(ctx, i.finished, ctx.config.oom.recent_s))
        {
            if let Some(f) = status_oom(ctx, pod, i, &insts) {
                out.push(f);
            } else if evicted.is_none()
                && let Some(f) = exit_137(ctx, pod, i, &insts)
            {
                out.push(f);
            }
        }
        out.extend(evicted);
        out.extend(cuda_oom(ctx, pod, &insts));
        out.extend(thrashing(ctx, pod, &insts));
    }
    out.extend(orphan_kills(ctx));
    out
}

/// Kills of pods the evidence holds no object for (an aggregator run with
/// `--no-kube`, or a pod deleted since, such as a finished Job cleaned
/// up): the agent's own record still explains them, named by pod UID.
fn orphan_kills(ctx: &Context<'_>) -> Vec<Finding> {
    let known: std::collections::HashSet<&str> = ctx.pods().iter().filter_map(k8s::uid).collect();
    let mut orphans: std::collections::BTreeSet<(Option<&str>, &str)> = Default::default();
    for a in &ctx.evidence.agents {
        for e in &a.events {
            if let NodeEvent::OomKill(k) = e
                && let Some(uid) = k.container.pod_uid.as_deref()
                && !known.contains(uid)
            {
                orphans.insert((a.node.as_deref(), uid));
            }
        }
    }
    let mut out = Vec::new();
    for (node, uid) in orphans {
        let pod = Pod {
            metadata: ObjectMeta {
                uid: Some(uid.to_owned()),
                name: Some(uid.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_owned),
                ..PodSpec::default()
            }),
            status: None,
        };
        for mut f in kills(ctx, &pod, &[]) {
            f.subject.namespace = None;
            f.subject.owner = None;
            f.evidence.insert(
                0,
                Fact::new(
                    "pod",
                    format!(
                        "UID {uid}: no Kubernetes object for it (not watched, or deleted since)"
                    ),
                ),
            );
            out.push(f);
        }
    }
    out
}

/// Whether a moment is recent enough to speak about.
pub(crate) fn recent(ctx: &Context<'_>, t: Option<Timestamp>, recent_s: u64) -> bool {
    t.is_none_or(|t| ctx.now.since(t) <= secs(recent_s))
}

/// One container instance the pod status names.
#[derive(Debug, Clone)]
pub(crate) struct Instance<'p> {
    /// Container name.
    pub name: &'p str,
    /// Bare runtime ID.
    pub id: Option<&'p str>,
    /// When it started.
    pub started: Option<Timestamp>,
    /// When it ended (`None`: running or waiting).
    pub finished: Option<Timestamp>,
    /// How it ended.
    pub exit: Option<&'p ContainerStateTerminated>,
    /// Whether it is the running instance.
    pub running: bool,
    /// The container's restart count.
    pub restarts: i32,
}

/// Every instance of every container: the current one and the last
/// terminated one.
pub(crate) fn instances(pod: &Pod) -> Vec<Instance<'_>> {
    let mut v = Vec::new();
    for s in k8s::container_statuses(pod) {
        if let Some(st) = &s.state {
            if let Some(r) = &st.running {
                v.push(Instance {
                    name: &s.name,
                    id: s.container_id.as_deref().map(k8s::bare_container_id),
                    started: r.started_at.as_ref().map(k8s::ts),
                    finished: None,
                    exit: None,
                    running: true,
                    restarts: s.restart_count,
                });
            }
            if let Some(t) = &st.terminated {
                v.push(terminated(&s.name, t, s.restart_count));
            }
        }
        if let Some(t) = s.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
            v.push(terminated(&s.name, t, s.restart_count));
        }
    }
    v
}

fn terminated<'p>(name: &'p str, t: &'p ContainerStateTerminated, restarts: i32) -> Instance<'p> {
    Instance {
        name,
        id: t.container_id.as_deref().map(k8s::bare_container_id),
        started: t.started_at.as_ref().map(k8s::ts),
        finished: t.finished_at.as_ref().map(k8s::ts),
        exit: Some(t),
        running: false,
        restarts,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp(t.0.saturating_add(d.as_nanos() as u64))
}

/// The instance a kill happened in: by container ID, else (when the ID
/// names no known instance) the one instance whose lifetime holds the
/// kill's time.
fn instance_of<'i, 'p>(
    ctx: &Context<'_>,
    insts: &'i [Instance<'p>],
    k: &OomKill,
) -> Option<&'i Instance<'p>> {
    if let Some(id) = k.container.container_id.as_deref()
        && let Some(i) = insts.iter().find(|i| i.id == Some(id))
    {
        return Some(i);
    }
    let slack = secs(ctx.config.oom.match_slack_s);
    let fits: Vec<&Instance> = insts
        .iter()
        .filter(|i| {
            i.started.is_some_and(|s| plus(k.time, slack) >= s)
                && i.finished.map_or(i.running, |f| k.time <= plus(f, slack))
        })
        .collect();
    (fits.len() == 1).then(|| fits[0])
}

/// The kills the agent recorded that belong to a given instance.
fn kills_in<'a>(
    ctx: &Context<'a>,
    pod: &Pod,
    insts: &[Instance<'_>],
    i: &Instance<'_>,
) -> Vec<&'a OomKill> {
    ctx.kills_of(pod)
        .into_iter()
        .filter(|k| {
            instance_of(ctx, insts, k).is_some_and(|m| m.id == i.id && m.finished == i.finished)
        })
        .collect()
}

/// Whether the container lived on after the kill: sampled after it with
/// anonymous memory in use (page cache outlives the processes).
fn survived(ctx: &Context<'_>, pod: &Pod, k: &OomKill, inst: Option<&Instance<'_>>) -> bool {
    let t = &ctx.config.oom;
    let after = plus(k.time, secs(t.survived_after_s));
    let sampled_alive = k.container.container_id.as_deref().is_some_and(|id| {
        ctx.samples_of_container(pod, id)
            .iter()
            .any(|s| s.time >= after && s.memory.anon_bytes >= t.survived_min_usage_bytes)
    });
    // The instance ended after the kill with a code other than SIGKILL's
    // 137: its main process was not the victim and lived on to exit by
    // itself (PyTorch raises "DataLoader worker (pid N) is killed by
    // signal" and exits 1). A group kill takes the main process too.
    let exited_otherwise = k.oom_group_kill.is_none_or(|n| n == 0)
        && k.group
            .as_ref()
            .is_none_or(|g| g.member_count == 0 && g.kill_lines <= 1)
        && inst
            .and_then(|i| i.exit.map(|e| (e, i.finished)))
            .is_some_and(|(e, fin)| {
                e.exit_code != 137 && fin.is_none_or(|f| plus(f, secs(1)) >= k.time)
            });
    sampled_alive || exited_otherwise || inst.is_some_and(|i| i.running)
}

/// The memory story of the instance a kill ended: its whole history (the
/// agent's samples of that container ID), not only the recorder window,
/// up to the kill.
fn story_of(
    ctx: &Context<'_>,
    pod: &Pod,
    k: &OomKill,
    limit: Option<u64>,
) -> (Vec<memory_story::Point>, memory_story::Story) {
    let history: Vec<&ContainerSample> = k
        .container
        .container_id
        .as_deref()
        .map(|id| ctx.samples_of_container(pod, id))
        .unwrap_or_default();
    let pts = memory_story::series(&history, &k.window, plus(k.time, secs(1)));
    let story = memory_story::read(&pts, limit, &story_settings(&ctx.config.oom));
    (pts, story)
}

/// What the memory rules could not judge for lack of samples, said as
/// gaps rather than left out: what led to a container-limit kill (the
/// memory story) where the agent recorded no memory of the killed
/// instance or too little, too far apart, to tell a leak from a step or a
/// plateau; and an `OOMKilled` exit no recorded kill explains, of an
/// instance the agent never sampled. Without agent records of the node
/// the `agent` gap says so.
pub(crate) fn gaps(ctx: &Context<'_>) -> Vec<Gap> {
    let mut out = Vec::new();
    for pod in ctx.subjects() {
        if ctx.agent_of(pod).is_none() {
            continue;
        }
        let insts = instances(pod);
        let pod_name = k8s::pod_name(pod);
        // The newest container-limit kill of each instance.
        let mut newest: Vec<(Option<&str>, &OomKill)> = Vec::new();
        for k in ctx.kills_of(pod).into_iter().filter(|k| {
            k.constraint != OomConstraint::Node
                && recent(ctx, Some(k.time), ctx.config.oom.recent_s)
        }) {
            let id = k.container.container_id.as_deref();
            newest.retain(|(i, _)| *i != id);
            newest.push((id, k));
        }
        for (id, k) in newest {
            let container = instance_of(ctx, &insts, k)
                .map_or_else(|| id.map_or("?", |id| &id[..id.len().min(12)]), |i| i.name);
            let limit = k
                .limit_bytes
                .or(k.kernel_limit_bytes)
                .or_else(|| spec_limit(pod, container));
            let (pts, story) = story_of(ctx, pod, k, limit);
            if story.verdict != Verdict::Sparse {
                continue;
            }
            let seen = if pts.is_empty() {
                "the agent recorded no memory samples of the killed instance and no recorder window with the kill".to_owned()
            } else {
                format!(
                    "the agent's {} memory points of the killed instance over {}, one every {}, are too few or too far apart",
                    story.points,
                    finding::duration(story.span),
                    finding::duration(story.interval)
                )
            };
            out.push(Gap::new(
                "memory_story",
                format!(
                    "{pod_name}, container {container}: {seen} to tell a leak from a step or a plateau; what led to the kill at {} was not judged",
                    k.time
                ),
            ));
        }
        for i in insts.iter().filter(|i| {
            i.exit
                .is_some_and(|e| e.reason.as_deref() == Some("OOMKilled"))
                && recent(ctx, i.finished, ctx.config.oom.recent_s)
        }) {
            if kills_in(ctx, pod, &insts, i).is_empty() && samples(ctx, pod, i).is_empty() {
                out.push(Gap::new(
                    "memory_story",
                    format!(
                        "{pod_name}, container {}: the agent recorded no kill and no samples of the instance that ended OOMKilled{}; what led to it was not judged",
                        i.name,
                        i.id.map(|id| format!(" ({})", &id[..id.len().min(12)]))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
    }
    out
}

/// Findings from the kills the agent recorded: one per container and
/// kind, about the newest kill, with the others counted. A kill older
/// than `recent_s` is history, unless the instance it happened in ended
/// recently: the runtime's OOMKilled flag from a worker killed days ago
/// labels that exit, and the kill explains the label.
fn kills(ctx: &Context<'_>, pod: &Pod, insts: &[Instance<'_>]) -> Vec<Finding> {
    let recent_s = ctx.config.oom.recent_s;
    let all = oom_events(
        ctx.kills_of(pod)
            .into_iter()
            .filter(|k| {
                recent(ctx, Some(k.time), recent_s)
                    || instance_of(ctx, insts, k)
                        .is_some_and(|i| i.finished.is_some() && recent(ctx, i.finished, recent_s))
            })
            .collect(),
        ctx.config.oom.group_merge_s,
    );
    let spec = k8s::spec(pod);
    let single = (spec.containers.len() == 1).then(|| spec.containers[0].name.clone());
    // (container name, kind, the kills with their instances)
    type Group<'k, 'i, 'p> = (String, Kind, Vec<(&'k OomKill, Option<&'i Instance<'p>>)>);
    let mut groups: Vec<Group> = Vec::new();
    for k in &all {
        let inst = instance_of(ctx, insts, k);
        let name = inst
            .map(|i| i.name.to_owned())
            .or_else(|| single.clone())
            .unwrap_or_else(|| {
                let id = k.container.container_id.as_deref().unwrap_or("?");
                id[..id.len().min(12)].to_owned()
            });
        let kind = if k.constraint == OomConstraint::Node {
            Kind::OomNode
        } else if survived(ctx, pod, k, inst) {
            Kind::OomKilledWorker
        } else {
            Kind::OomKilled
        };
        match groups
            .iter_mut()
            .find(|(n, kd, _)| *n == name && *kd == kind)
        {
            Some(g) => g.2.push((k, inst)),
            None => groups.push((name, kind, vec![(k, inst)])),
        }
    }
    groups
        .into_iter()
        .filter_map(|(name, kind, ks)| {
            let (k, inst) = *ks.last()?;
            let processes = ks
                .iter()
                .map(|(k, _)| {
                    k.group
                        .as_ref()
                        .map_or(1, |g| u64::from(g.member_count) + 1)
                })
                .sum();
            Some(kill_finding(
                ctx,
                pod,
                &name,
                kind,
                k,
                inst,
                ks.len(),
                processes,
            ))
        })
        .collect()
}

/// The container's memory limit from the pod spec, bytes.
fn spec_limit(pod: &Pod, container: &str) -> Option<u64> {
    spec_limit_written(pod, container).map(|(b, _)| b)
}

/// The container's memory limit from the pod spec: bytes, and the
/// quantity as the manifest writes it (`64Gi`).
fn spec_limit_written<'p>(pod: &'p Pod, container: &str) -> Option<(u64, &'p str)> {
    let r = k8s::spec(pod)
        .containers
        .iter()
        .find(|c| c.name == container)?
        .resources
        .as_ref();
    let bytes = k8s::resource(r, "memory", true)? as u64;
    Some((bytes, k8s::written(r, "memory", true)?))
}

/// The kernel keeps a cgroup's limit in whole pages: a limit read back
/// from the cgroup within a page of the spec's is the spec's limit.
const PAGE_BYTES: u64 = 4096;

/// A memory limit of the container as findings quote it: the manifest's
/// own quantity when `bytes` is the spec's limit, in
/// [`k8s::bytes_as_written`]'s form; the bytes alone when the limit
/// differs from the spec's; `no` without one.
fn limit_words(pod: &Pod, container: &str, bytes: Option<u64>) -> String {
    let Some(b) = bytes else {
        return "no".to_owned();
    };
    match spec_limit_written(pod, container) {
        Some((s, w)) if s.abs_diff(b) < PAGE_BYTES => k8s::bytes_as_written(s, Some(w)),
        _ => k8s::bytes_as_written(b, None),
    }
}

/// `resources.limits.memory` to suggest: `bytes` + head-room, rounded up
/// to 256 MiB, in Mi.
fn suggest_mi(bytes: u64, headroom_percent: u64) -> u64 {
    let b = bytes as f64 * (1.0 + headroom_percent as f64 / 100.0);
    (b / f64::from(256u32 << 20)).ceil() as u64 * 256
}

/// The process as a finding names it: `python3 (pid 4242: anon-rss
/// 60.1 GiB, file-rss 12 MiB, shmem-rss 2 GiB)`.
fn process(v: &Victim) -> String {
    format!(
        "{} (pid {}: anon-rss {}, file-rss {}, shmem-rss {})",
        v.comm,
        v.pid,
        human_bytes(v.anon_rss_bytes),
        human_bytes(v.file_rss_bytes),
        human_bytes(v.shmem_rss_bytes)
    )
}

/// The members of a group kill as a short list: `pt_data_worker (pid 9001),
/// sh (pid 116) and 3 more`.
fn member_list(g: &OomGroup) -> String {
    const SHOWN: usize = 6;
    let mut names: Vec<String> = g
        .members
        .iter()
        .take(SHOWN)
        .map(|m| format!("{} (pid {})", m.comm, m.pid))
        .collect();
    let more = (g.member_count as usize).saturating_sub(names.len());
    if more > 0 {
        names.push(format!("{more} more"));
    }
    names.join(", ")
}

/// One event per OOM kill. Agents before the `group` field sent one
/// event per process a `memory.oom.group` kill killed, in the kernel's
/// order (the chosen victim first): those of one cgroup within
/// `group_merge_s` of each other and with the same `oom_group_kill`
/// count are folded into the first, the others becoming its group.
fn oom_events<'a>(kills: Vec<&'a OomKill>, merge_s: u64) -> Vec<Cow<'a, OomKill>> {
    let mut out: Vec<Cow<'a, OomKill>> = Vec::new();
    // Whether the event at the same index may take more members (it came
    // from an agent that sent one event per process).
    let mut open: Vec<bool> = Vec::new();
    for k in kills {
        let joins = k.group.is_none()
            && k.oom_group_kill.is_some_and(|g| g > 0)
            && open.last() == Some(&true)
            && out.last().is_some_and(|last| {
                last.container.cgroup_path == k.container.cgroup_path
                    && last.oom_group_kill == k.oom_group_kill
                    && k.time >= last.time
                    && k.time.since(last.time) <= secs(merge_s)
            });
        if let (true, Some(last)) = (joins, out.last_mut()) {
            let first = last.to_mut();
            let chosen = first.victim.as_ref().map(|v| v.pid);
            let path = first.container.cgroup_path.clone();
            first.oom_kill = first.oom_kill.max(k.oom_kill);
            let g = first.group.get_or_insert_with(|| OomGroup {
                cgroup_path: path,
                kill_lines: 1,
                ..OomGroup::default()
            });
            g.kill_lines += 1;
            if let Some(v) = &k.victim
                && Some(v.pid) != chosen
                && !g.members.iter().any(|m| m.pid == v.pid)
            {
                g.members.push(v.clone());
                g.member_count += 1;
            }
            continue;
        }
        open.push(k.group.is_none() && k.oom_group_kill.is_some_and(|g| g > 0));
        out.push(Cow::Borrowed(k));
    }
    out
}

/// Why the kernel chose a victim of a node-wide OOM: its `oom_score_adj`,
/// which the kubelet sets from the pod's QoS class (pkg/kubelet/qos/policy.go:
/// Guaranteed and node-critical pods -997, BestEffort 1000, Burstable
/// `1000 - 1000 × memory request / node memory capacity`, kept within
/// 3..=999), and what the kubelet would have set for this pod when that
/// differs.
fn score_reason(adj: i32, pod: &Pod, container: &str, capacity: Option<u64>) -> String {
    let resources = k8s::spec(pod)
        .containers
        .iter()
        .find(|c| c.name == container)
        .and_then(|c| c.resources.as_ref());
    let request = k8s::resource(resources, "memory", false).map(|v| v as u64);
    let qos = k8s::status(pod).qos_class.as_deref();
    let burstable = match (request, capacity) {
        (Some(r), Some(c)) if c > 0 => {
            let v = (1000 - (1000 * u128::from(r) / u128::from(c)) as i64).clamp(3, 999);
            Some((
                v as i32,
                format!(
                    "1000 - 1000 × {} / {}",
                    k8s::bytes_as_written(r, k8s::written(resources, "memory", false)),
                    human_bytes(c)
                ),
            ))
        }
        _ => None,
    };
    let expected = match qos {
        Some("Guaranteed") => Some((-997, "-997".to_owned())),
        Some("BestEffort") => Some((1000, "1000".to_owned())),
        Some("Burstable") => burstable.clone(),
        _ => None,
    };
    let what = match adj {
        1000 => "a BestEffort pod's (no memory request): the kubelet's first choice for the node's OOM killer".to_owned(),
        -997 => "a Guaranteed pod's, the last the kubelet offers: the kernel chose it anyway for its size, as little else was left to kill".to_owned(),
        3..=999 => match &burstable {
            Some((v, f)) if (v - adj).abs() <= 1 => format!(
                "a Burstable pod's, which the kubelet sets to {f} = {v}: the smaller the memory request, the earlier the victim"
            ),
            _ => "a Burstable pod's (the kubelet sets 1000 - 1000 × memory request / node memory): the smaller the request, the earlier the victim".to_owned(),
        },
        -1000..=-998 => "that of a process the kubelet or runtime protects (system daemons)".to_owned(),
        _ => "not a value the kubelet sets: the workload changed it".to_owned(),
    };
    match (qos, expected) {
        (Some(q), Some((e, f))) if (e - adj).abs() > 1 => format!(
            "oom_score_adj {adj}, where the kubelet would have set {f} for this {q} pod: something else (the workload or the runtime) changed it"
        ),
        _ => format!("oom_score_adj {adj}, {what}"),
    }
}

/// The memory-backed volumes (`emptyDir` with `medium: Memory`) a
/// container mounts: (volume, sizeLimit, mount path).
fn memory_volumes<'p>(pod: &'p Pod, container: &str) -> Vec<(&'p str, Option<String>, &'p str)> {
    let spec = k8s::spec(pod);
    let Some(c) = spec.containers.iter().find(|c| c.name == container) else {
        return Vec::new();
    };
    let mut v: Vec<_> = c
        .volume_mounts
        .iter()
        .flatten()
        .filter_map(|m| {
            let v = spec.volumes.iter().flatten().find(|v| v.name == m.name)?;
            let e = v.empty_dir.as_ref()?;
            (e.medium.as_deref() == Some("Memory")).then(|| {
                (
                    v.name.as_str(),
                    e.size_limit.as_ref().map(|q| q.0.clone()),
                    m.mount_path.as_str(),
                )
            })
        })
        .collect();
    // The largest first: a tmpfs holds at most its sizeLimit, so the
    // shared memory of a kill is mostly in the largest (or unlimited) one.
    v.sort_by_key(|(_, size, _)| {
        std::cmp::Reverse(
            size.as_deref()
                .map(|q| k8s::quantity(&Quantity(q.to_owned())).unwrap_or(0.0) as u64)
                .unwrap_or(u64::MAX),
        )
    });
    v
}

/// The memory story's settings from the thresholds.
fn story_settings(t: &Thresholds) -> memory_story::Settings {
    memory_story::Settings {
        min_points: t.story_min_points,
        sparse_gap_s: t.story_sparse_gap_s,
        leak_min_span_s: t.leak_min_span_s,
        leak_min_r2: t.leak_min_r2,
        step_min_percent: t.step_min_percent,
        step_max_s: t.step_max_s,
        near_limit_percent: t.near_limit_percent,
        plateau_min_s: t.plateau_min_s,
    }
}

/// Bytes per hour for people: `3.4 GiB/h`.
fn per_hour(b: f64) -> String {
    if b < 0.0 {
        format!("-{}/h", human_bytes((-b) as u64))
    } else {
        format!("+{}/h", human_bytes(b as u64))
    }
}

/// What a pod's exit was really about, when its `OOMKilled` label is the
/// runtime's flag from an earlier kill: the pod's own reason and
/// message, its `DisruptionTarget` condition, a deletion, the kubelet's
/// stop of the container, a node shutdown.
fn real_exit_reason(
    ctx: &Context<'_>,
    pod: &Pod,
    container: &str,
    exit: &ContainerStateTerminated,
) -> (String, bool) {
    let status = k8s::status(pod);
    let mut why = Vec::new();
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
    {
        why.push(format!(
            "the pod's DisruptionTarget condition ({}{})",
            c.reason.as_deref().unwrap_or("no reason"),
            c.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    if let Some(r) = status.reason.as_deref() {
        why.push(format!(
            "the pod's status reason {r}{}",
            status
                .message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ));
    }
    if pod.metadata.deletion_timestamp.is_some() {
        why.push("the pod was deleted".to_owned());
    }
    let events = ctx.events_for(pod);
    if let Some(ev) = events.iter().rev().find(|ev| {
        ev.reason.as_deref() == Some("Killing")
            && ev
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("Stopping container") && m.contains(container))
    }) {
        why.push(format!(
            "the kubelet's event \"{}\"",
            ev.message.as_deref().unwrap_or("")
        ));
    }
    if let Some(node) = k8s::node_name(pod)
        && let Some(ev) = ctx.node_events(node).into_iter().rev().find(|ev| {
            matches!(
                ev.reason.as_deref(),
                Some("Shutdown" | "NodeShutdown" | "Rebooted")
            ) || ev
                .message
                .as_deref()
                .is_some_and(|m| m.contains("shutdown") || m.contains("Shutdown"))
        })
    {
        why.push(format!(
            "node {node}'s event {}: {}",
            ev.reason.as_deref().unwrap_or("?"),
            ev.message.as_deref().unwrap_or("")
        ));
    }
    let code = match exit.exit_code {
        143 => "exit 143 is SIGTERM: the container was asked to stop (a delete, an eviction, a preemption or a graceful node shutdown)".to_owned(),
        0 => "exit 0: the main process finished on its own".to_owned(),
        c => format!("exit {c}: the main process's own error, not a kill"),
    };
    if why.is_empty() {
        (
            format!("{code}; nothing in the evidence says who stopped it"),
            false,
        )
    } else {
        (format!("{code}; {}", why.join("; ")), true)
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the finding's inputs, each from another source"
)]
fn kill_finding(
    ctx: &Context<'_>,
    pod: &Pod,
    container: &str,
    kind: Kind,
    k: &OomKill,
    inst: Option<&Instance<'_>>,
    recorded: usize,
    processes: u64,
) -> Finding {
    let t = &ctx.config.oom;
    let node = k8s::node_name(pod).unwrap_or("(unknown node)");
    let limit = k
        .limit_bytes
        .or(k.kernel_limit_bytes)
        .or_else(|| spec_limit(pod, container));
    let limit_s = limit_words(pod, container, limit);
    let victim = k.victim.as_ref();
    let who = victim.map_or_else(
        || "a process (the kernel report was not read, so which one is unknown)".to_owned(),
        |v| format!("process {}", process(v)),
    );
    let (pts, story) = story_of(ctx, pod, k, limit);
    let peak_point = story.peak;
    let shmem_at_kill = pts
        .iter()
        .rev()
        .find(|p| p.usage > 0)
        .map(|p| (p.shmem, p.usage))
        .or_else(|| {
            victim.map(|v| {
                (
                    v.shmem_rss_bytes,
                    v.anon_rss_bytes + v.file_rss_bytes + v.shmem_rss_bytes,
                )
            })
        });
    let shm_dominant = shmem_at_kill.is_some_and(|(s, u)| u > 0 && s * 2 >= u);
    let shm_notable =
        shmem_at_kill.is_some_and(|(s, u)| u > 0 && s * 100 > u * t.shmem_share_percent);
    let volumes = memory_volumes(pod, container);
    let status = k8s::container_statuses(pod).find(|s| s.name == container);
    let restarts = status.map_or(0, |s| s.restart_count);
    // A worker killed, after which the main process exited with an error
    // (PyTorch: "DataLoader worker (pid X) is killed by signal: Killed").
    let later_exit = inst.and_then(|i| i.exit).filter(|e| e.exit_code != 137);
    // Whether that exit came right after the kill (within the slack the
    // kubelet takes to record it).
    let exit_follows = inst
        .and_then(|i| i.finished)
        .is_some_and(|f| f >= k.time && f.since(k.time) <= secs(t.match_slack_s));
    // The main process's own words about the victim, from the exit's
    // termination message or the log tail: the line naming its pid.
    let worker_line = victim.filter(|_| later_exit.is_some()).and_then(|v| {
        let pid = format!("pid {}", v.pid);
        let message = later_exit.and_then(|e| e.message.as_deref()).unwrap_or("");
        let tail = |previous| {
            ctx.log(pod, container, previous)
                .map_or("", |l| l.text.as_str())
                .lines()
        };
        let names_pid = |l: &str| {
            l.match_indices(&pid).any(|(at, _)| {
                !l[at + pid.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            })
        };
        message
            .lines()
            .chain(tail(false))
            .chain(tail(true))
            .find(|l| names_pid(l) && l.to_ascii_lowercase().contains("killed"))
            .map(|l| l.trim().to_owned())
    });
    let group = k
        .group
        .as_ref()
        .filter(|g| g.member_count > 0 || g.kill_lines > 1);
    let group_clause = match group {
        Some(g) if g.member_count > 0 => format!(
            " and, as memory.oom.group is set, killed the {} other process{} of the container with it ({})",
            g.member_count,
            if g.member_count == 1 { "" } else { "es" },
            member_list(g)
        ),
        Some(_) => " and, as memory.oom.group is set, killed the container's whole cgroup with it (it was the only process)".to_owned(),
        None if k.oom_group_kill.is_some_and(|n| n > 0) => {
            " and, as memory.oom.group is set, killed every process in the container with it".to_owned()
        }
        None => String::new(),
    };
    let volume_s = |(name, size, path): &(&str, Option<String>, &str)| {
        format!(
            "the memory-backed volume {name} (emptyDir medium: Memory, sizeLimit {}, mounted at {path})",
            size.as_deref().unwrap_or("none")
        )
    };
    let story_s = match story.verdict {
        // Steady growth of the page cache and shared memory is files
        // kept in memory (staged data, a tmpfs), not the process leaking.
        Verdict::Leak if story.trend.is_some_and(|tr| tr.file_per_hour > tr.anon_per_hour) => {
            story.trend.map(|tr| {
                format!(
                    " Its page cache and shared memory grew steadily for {} at {} (anon {}): files kept in memory, not the process's own allocations.",
                    finding::duration(tr.to.time.since(tr.from.time)),
                    per_hour(tr.file_per_hour),
                    per_hour(tr.anon_per_hour)
                )
            })
        }
        Verdict::Leak => story.trend.map(|tr| {
            format!(
                " Memory rose steadily for {} at {} (anon {}, page cache {}): a leak, not one large load.",
                finding::duration(tr.to.time.since(tr.from.time)),
                per_hour(tr.per_hour),
                per_hour(tr.anon_per_hour),
                per_hour(tr.file_per_hour)
            )
        }),
        Verdict::Step => story.step.map(|(a, b)| {
            format!(
                " Memory jumped by {} in {} (from {} to {} at {}): a step, one large allocation, not steady growth.",
                human_bytes(b.usage - a.usage),
                finding::duration(b.time.since(a.time)),
                human_bytes(a.usage),
                human_bytes(b.usage),
                b.time
            )
        }),
        Verdict::Plateau => story.at_limit.map(|d| {
            format!(
                " Memory had sat at the limit for {} before the kill: the kernel reclaimed page cache until an allocation could not be met.",
                finding::duration(d)
            )
        }),
        Verdict::Sparse if !pts.is_empty() => Some(format!(
            " The samples of this instance ({} over {}, {} apart) are too sparse to tell a leak from a one-time jump.",
            story.points,
            finding::duration(story.span),
            finding::duration(story.interval)
        )),
        Verdict::Sparse | Verdict::Unclear => None,
    }
    .unwrap_or_default();
    let summary = match kind {
        Kind::OomNode => {
            let reason = victim
                .and_then(|v| v.oom_score_adj)
                .map(|adj| {
                    let capacity = ctx
                        .node(node)
                        .and_then(|n| n.status.as_ref())
                        .and_then(|s| s.capacity.as_ref())
                        .and_then(|c| c.get("memory"))
                        .and_then(k8s::quantity)
                        .map(|v| v as u64);
                    format!(
                        " The kernel chose it for its size and its {}.",
                        score_reason(adj, pod, container, capacity)
                    )
                })
                .unwrap_or_default();
            let below = match (
                limit,
                pts.last().map(|p| p.usage).or_else(|| {
                    victim.map(|v| v.anon_rss_bytes + v.file_rss_bytes + v.shmem_rss_bytes)
                }),
            ) {
                (Some(l), Some(u)) if u < l => format!(
                    " It was using {}, {} below its own {limit_s} limit.",
                    human_bytes(u),
                    human_bytes(l - u),
                ),
                (None, Some(u)) => format!(
                    " It was using {} and has no memory limit of its own.",
                    human_bytes(u)
                ),
                _ => String::new(),
            };
            format!(
                "Node {node} ran out of memory as a whole and the kernel killed {who} in container {container}; the container's own limit ({limit_s}) was not the cause.{below}{reason}"
            )
        }
        Kind::OomKilledWorker => match later_exit {
            // The main process exited with an error of its own soon after
            // the kill: it died of its worker's death (PyTorch raises
            // "DataLoader worker (pid N) is killed by signal: Killed.").
            Some(e) if exit_follows && !matches!(e.exit_code, 0 | 143) => format!(
                "The kernel killed {who} in container {container} at its {limit_s} memory limit; the main process lived on and then exited with code {} because of it{}{}.",
                e.exit_code,
                if worker_line.is_some() {
                    " (it reported the dead worker)"
                } else {
                    ""
                },
                if e.reason.as_deref() == Some("OOMKilled") {
                    ", an exit the runtime labelled OOMKilled from this kill"
                } else {
                    ""
                }
            ),
            Some(e) => format!(
                "The kernel killed {who} in container {container} at its {limit_s} memory limit while the container lived on; its main process later exited with code {}{}.",
                e.exit_code,
                if e.reason.as_deref() == Some("OOMKilled") {
                    format!(
                        ", which the runtime still labelled OOMKilled (a flag left by this kill, not the cause of that exit: {})",
                        real_exit_reason(ctx, pod, container, e).0
                    )
                } else {
                    String::new()
                }
            ),
            None => format!(
                "The kernel killed {who} in container {container} at its {limit_s} memory limit, but the container kept running: a worker process died, which Kubernetes does not report (no restart, no OOMKilled status)."
            ),
        },
        _ if shm_dominant || (shm_notable && !volumes.is_empty()) => {
            let (shmem, usage) = shmem_at_kill.unwrap_or((0, 0));
            let place = match volumes.first() {
                Some(v) => volume_s(v),
                None => {
                    "/dev/shm or another tmpfs (no memory-backed volume in the pod spec)".to_owned()
                }
            };
            format!(
                "Container {container} was OOM-killed at its {limit_s} memory limit with {} of its {} in shared memory, in {place}, which is charged to the pod's memory cgroup and survives container restarts; the kernel chose {who}{group_clause}.{story_s}",
                human_bytes(shmem),
                human_bytes(usage)
            )
        }
        // The OOM killer picks the process with the largest footprint,
        // not necessarily the one that allocated last; with
        // memory.oom.group it then kills every process of the cgroup.
        _ => format!(
            "Container {container} was OOM-killed at its {limit_s} memory limit: the kernel chose {who}{group_clause}.{story_s}"
        ),
    };
    let mut confidence = match (victim, k.constraint) {
        (Some(_), OomConstraint::Memcg | OomConstraint::Node) => Confidence::High,
        (Some(_), _) | (None, OomConstraint::Memcg | OomConstraint::Node) => Confidence::Medium,
        (None, _) => Confidence::Low,
    };
    let mut f = Finding::new(kind, ctx.subject(pod, Some(container)), confidence, summary)
        .fact(Fact::at("killed at", k.time.to_string(), k.time))
        .fact(Fact::new(
            "memory limit",
            match (
                k.limit_bytes.or(k.kernel_limit_bytes),
                spec_limit(pod, container),
            ) {
                (Some(c), Some(s)) if c.abs_diff(s) >= PAGE_BYTES => format!(
                    "{} (cgroup), {} (pod spec)",
                    human_bytes(c),
                    limit_words(pod, container, Some(s))
                ),
                (Some(c), _) => limit_words(pod, container, Some(c)),
                (None, Some(s)) => format!("{} (pod spec)", limit_words(pod, container, Some(s))),
                (None, None) => "none".to_owned(),
            },
        ));
    if let Some(p) = k.peak_bytes {
        f = f.fact(Fact::new("peak memory", human_bytes(p)));
    }
    if let Some(v) = victim {
        f = f.fact(Fact::at(
            "victim",
            format!(
                "{} pid {}: anon-rss {}, file-rss {}, shmem-rss {}{}",
                v.comm,
                v.pid,
                human_bytes(v.anon_rss_bytes),
                human_bytes(v.file_rss_bytes),
                human_bytes(v.shmem_rss_bytes),
                v.oom_score_adj
                    .map(|a| format!(", oom_score_adj {a}"))
                    .unwrap_or_default()
            ),
            k.time,
        ));
    }
    if let Some(g) = group {
        let list = g
            .members
            .iter()
            .map(|m| {
                format!(
                    "{} pid {} (anon-rss {}, file-rss {}, shmem-rss {})",
                    m.comm,
                    m.pid,
                    human_bytes(m.anon_rss_bytes),
                    human_bytes(m.file_rss_bytes),
                    human_bytes(m.shmem_rss_bytes)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        f = f.fact(Fact::at(
            "killed with it (memory.oom.group)",
            format!(
                "{} other process(es){}{}",
                g.member_count,
                if list.is_empty() {
                    String::new()
                } else {
                    format!(": {list}")
                },
                if g.skipped > 0 {
                    format!("; {} already exiting", g.skipped)
                } else {
                    String::new()
                }
            ),
            k.time,
        ));
    }
    if let (Some(u), Some(l)) = (k.kernel_usage_bytes, k.kernel_limit_bytes) {
        f = f.fact(Fact::at(
            "kernel report: memcg usage / limit",
            format!("{} / {}", human_bytes(u), human_bytes(l)),
            k.time,
        ));
    }
    if let (Some(first), Some(last)) = (k.window.first(), k.window.last()) {
        // At most 60 bars: each the largest usage of its share of points.
        let all: Vec<u64> = k.window.iter().map(|p| p.usage_bytes).collect();
        let usage: Vec<u64> = all
            .chunks(all.len().div_ceil(60).max(1))
            .filter_map(|c| c.iter().copied().max())
            .collect();
        f = f.fact(Fact::at(
            "memory trajectory",
            format!(
                "{}  ({} points over {}, scaled to the limit)",
                gpuscope_model::text::sparkline(&usage, limit),
                all.len(),
                finding::duration(last.time.since(first.time))
            ),
            last.time,
        ));
    }
    if !pts.is_empty() {
        f = f.fact(Fact::new(
            "memory story",
            format!(
                "{} ({} samples of this instance over {}, one every {})",
                match story.verdict {
                    Verdict::Leak => "steady rise (leak)",
                    Verdict::Step => "a step (one large rise)",
                    Verdict::Plateau => "a plateau at the limit (reclaim before the kill)",
                    Verdict::Unclear => "neither a steady rise nor a step",
                    Verdict::Sparse => "too sparse to tell",
                },
                story.points,
                finding::duration(story.span),
                finding::duration(story.interval)
            ),
        ));
    }
    let mut steps = Vec::new();
    // Growth: from the last low point before the peak to the peak, over
    // the instance's whole history.
    let growth = peak_point.and_then(|peak| {
        let low = pts
            .iter()
            .take_while(|p| p.time <= peak.time)
            .min_by_key(|p| (p.usage, std::cmp::Reverse(p.time)))?;
        (peak.time > low.time).then_some((*low, peak))
    });
    let leak = story.verdict == Verdict::Leak
        && kind != Kind::OomNode
        && !shm_dominant
        && story
            .trend
            .is_some_and(|tr| tr.anon_per_hour >= tr.file_per_hour);
    if let Some((from, to)) = growth {
        let secs_ = to.time.since(from.time).as_secs_f64();
        let rate = to.usage.saturating_sub(from.usage) as f64 / secs_;
        f = f.fact(Fact::at(
            "growth before the kill",
            format!(
                "{} -> {} in {} ({}/s)",
                human_bytes(from.usage),
                human_bytes(to.usage),
                finding::duration(to.time.since(from.time)),
                human_bytes(rate as u64)
            ),
            to.time,
        ));
        if let (Some(l), true, Some(tr)) = (limit, leak, story.trend) {
            let left = l.saturating_sub(tr.from.usage) as f64 / tr.per_hour * 3600.0;
            f = f.fact(Fact::new(
                "time to the limit at that rate",
                format!(
                    "{} from {} (growth linear, R² {:.2})",
                    finding::duration(secs(left as u64)),
                    human_bytes(tr.from.usage),
                    tr.r2
                ),
            ));
        }
    }
    if let Some(p) = peak_point {
        f = f.fact(Fact::at(
            "composition at the peak",
            format!(
                "anon {}, page cache {} (of which shmem/tmpfs {})",
                human_bytes(p.anon),
                human_bytes(p.file),
                human_bytes(p.shmem)
            ),
            p.time,
        ));
    }
    if shm_notable {
        let (shmem, usage) = shmem_at_kill.unwrap_or((0, 0));
        match volumes.first() {
            Some(v) => {
                f = f.fact(Fact::new(
                    "memory-backed volume",
                    volumes.iter().map(volume_s).collect::<Vec<_>>().join("; "),
                ));
                steps.push(format!(
                    "{} of the {} charged was in {}: files written there stay in memory and count against the container's limit, and they survive a container restart, so the restarted container starts with them. A bigger limit will not help if what is staged there grows with the data: bound it (sizeLimit below the limit, delete files once read) or stage on a disk-backed volume instead.",
                    human_bytes(shmem),
                    human_bytes(usage),
                    volume_s(v)
                ));
            }
            None => steps.push(format!(
                "Shared memory (/dev/shm or another tmpfs) held {} of the {} charged: it counts against the limit. Size the /dev/shm emptyDir (medium: Memory, sizeLimit) and include it in the limit, or keep less there (fewer DataLoader workers or a smaller prefetch_factor).",
                human_bytes(shmem),
                human_bytes(usage)
            )),
        }
    }
    if let (Some(first), Some(last)) = (k.window.first(), k.window.last()) {
        let stalled = last
            .memory_some_total_us
            .saturating_sub(first.memory_some_total_us);
        let scope = match k.pressure_scope {
            Some(PsiScope::Container) => "the container's own",
            Some(PsiScope::Node) => "the node's (no per-container pressure on this host)",
            None => "unknown scope",
        };
        f = f.fact(Fact::at(
            "memory pressure before the kill",
            format!(
                "{:.1} ms stalled over the last {}; avg10 up to {:.2}% ({scope})",
                stalled as f64 / 1000.0,
                finding::duration(last.time.since(first.time)),
                k.window
                    .iter()
                    .map(|p| p.memory_some_avg10)
                    .fold(0.0, f32::max)
            ),
            last.time,
        ));
    }
    f = f.fact(Fact::new(
        "recurrence",
        format!(
            "{recorded} OOM kill(s) recorded by the agent{}, {restarts} restart(s) of the container",
            if processes > recorded as u64 {
                format!(" ({processes} processes killed)")
            } else {
                String::new()
            }
        ),
    ));
    if let Some(e) = inst.and_then(|i| i.exit) {
        f = f.fact(exit_fact(e));
    }
    if kind == Kind::OomKilledWorker {
        f = f.fact(Fact::new(
            "container after the kill",
            match later_exit {
                Some(e) => format!(
                    "lived on: its main process exited later by itself, with code {} (an OOM kill of the main process exits 137)",
                    e.exit_code
                ),
                None => "still running (sampled after the kill with memory in use)".to_owned(),
            },
        ));
        if let Some(line) = worker_line {
            f = f.fact(Fact::new("the main process said", line));
        }
    }
    match kind {
        Kind::OomNode => steps.push(format!(
            "Find what filled node {node}: `kubectl describe node {node}` (Allocated resources: memory limits above 100 % overcommit it) and `kubectl top pods -A --sort-by=memory`; give every pod on GPU nodes memory requests equal to its limits (Guaranteed QoS), so the scheduler cannot overcommit the node and the kernel picks the pods that exceed their requests first."
        )),
        _ if leak => {
            let tr = story.trend;
            let rate = tr.map_or(0.0, |t| t.per_hour);
            let extra = limit.map_or(1u64 << 30, |l| l / 4);
            steps.push(format!(
                "Memory grew steadily at {} until the limit: that is a leak or an unbounded cache (metrics kept in a list, a growing dataset cache, tensors kept with their graph). A bigger limit only postpones the kill: at that rate {} more ({}) buys about {}. Profile the process (tracemalloc, memray, or torch.cuda.memory._record_memory_history for pinned host memory) and fix what keeps growing.",
                per_hour(rate),
                human_bytes(extra),
                if limit.is_some() { "a quarter more" } else { "one GiB" },
                if rate > 0.0 {
                    finding::duration(secs((extra as f64 / rate * 3600.0) as u64))
                } else {
                    "nothing".to_owned()
                }
            ));
        }
        _ => {
            if story.verdict == Verdict::Step
                && let Some((a, b)) = story.step
            {
                steps.push(format!(
                    "Memory jumped by {} in {} at {}: something was loaded at once (a batch, a file, a checkpoint or a dataset shard read whole). Find what the job did at that moment and bound it (smaller batches, streaming or memory-mapped loading) or size the limit for it.",
                    human_bytes(b.usage - a.usage),
                    finding::duration(b.time.since(a.time)),
                    b.time
                ));
            }
            if story.verdict == Verdict::Plateau
                && let Some(d) = story.at_limit
            {
                steps.push(format!(
                    "It ran at the limit for {} before the kill, living on reclaimed page cache (slow, under memory pressure): the working set is larger than the limit.",
                    finding::duration(d)
                ));
            }
            if let Some(p) = k.peak_bytes.or(k.kernel_usage_bytes).or(limit) {
                steps.push(format!(
                    "If this memory use is expected, raise the container's limit above its peak: resources.limits.memory: {}Mi (peak {} + {} %), and requests.memory to match.",
                    suggest_mi(p, t.limit_headroom_percent),
                    human_bytes(p),
                    t.limit_headroom_percent
                ));
            }
            let logs = match pod.metadata.namespace.as_deref() {
                Some(ns) => format!(
                    "`kubectl logs -n {ns} {} -c {container} --previous`",
                    k8s::name(pod)
                ),
                // Known by UID only: find it first.
                None => format!(
                    "the pod's previous log (find the pod by UID: `kubectl get pods -A -o custom-columns=NS:.metadata.namespace,NAME:.metadata.name,UID:.metadata.uid | grep {}`)",
                    k8s::name(pod)
                ),
            };
            steps.push(format!(
                "If it is not expected, look at what grew: {logs} for the last lines before the kill, and the memory story above."
            ));
        }
    }
    if kind == Kind::OomKilledWorker && later_exit.is_some() {
        steps.push("Size the limit for the main process plus all its workers (each DataLoader worker holds its own copy of what it touches), or use fewer workers: the main process cannot go on without a worker the kernel killed.".to_owned());
    } else if kind == Kind::OomKilledWorker {
        steps.push("Kubernetes will not restart the container for this: check the job's progress (a dead DataLoader worker raises in the main process, a dead inference worker may just stop serving), and size the limit for the main process plus all workers.".to_owned());
    }
    if victim.is_none() {
        steps.push(format!("The kernel's OOM report was not read (is /dev/kmsg mounted into the agent?): run `dmesg | grep -i -A3 oom-kill` on node {node} to see which process died."));
    }
    // Without the pod's status, main process or worker rests on the
    // samples: the agent must have kept sampling after the kill for the
    // container's absence (or its emptiness) to mean anything.
    let watched_after = ctx.agent_of(pod).is_some_and(|a| {
        let after = plus(k.time, secs(t.survived_after_s));
        a.containers.iter().any(|s| s.time >= after)
    });
    if ctx.evidence.lacks("pods") && !watched_after {
        confidence = confidence.min(Confidence::Medium);
    }
    f.confidence = confidence;
    f.next_steps = steps;
    f.cost = Some(Cost {
        gpu_hours: 0.0,
        restarts: if kind == Kind::OomKilledWorker {
            0
        } else {
            restarts.max(0) as u32
        },
    });
    f
}

fn exit_fact(e: &ContainerStateTerminated) -> Fact {
    let v = format!(
        "{}{}",
        e.exit_code,
        e.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    match e.finished_at.as_ref() {
        Some(t) => Fact::at("exit code", v, k8s::ts(t)),
        None => Fact::new("exit code", v),
    }
}

/// Whether the agent has any record of the pod's node within
/// `agent_coverage_s` of `t`.
fn agent_covers(ctx: &Context<'_>, pod: &Pod, t: Timestamp) -> bool {
    let Some(a) = ctx.agent_of(pod) else {
        return false;
    };
    let d = secs(ctx.config.oom.agent_coverage_s);
    let near = |x: Timestamp| x.since(t) <= d && t.since(x) <= d;
    a.containers.iter().any(|s| near(s.time))
        || a.node_samples.iter().any(|s| near(s.time))
        || a.gpus.iter().any(|s| near(s.time))
        || a.events.iter().any(|e| near(e.time()))
}

/// Whether the agent's kernel-log source was reported down before `t`
/// (and not back up).
fn kmsg_down(ctx: &Context<'_>, pod: &Pod, t: Timestamp) -> bool {
    ctx.agent_of(pod)
        .and_then(|a| a.source_at("kmsg", t))
        .is_some_and(|s| s.state != SourceState::Ok)
}

/// The instance's samples.
fn samples<'a>(ctx: &Context<'a>, pod: &Pod, i: &Instance<'_>) -> Vec<&'a ContainerSample> {
    i.id.map(|id| ctx.samples_of_container(pod, id))
        .unwrap_or_default()
}

/// `OOMKilled` statuses no recorded kill explains.
/// A kernel OOM kill reported on the node by another component: the
/// kubelet's `SystemOOM` event ("System OOM encountered, victim process:
/// python, pid: 4242") or node-problem-detector's `OOMKilling` (the
/// kernel's line: "Memory cgroup out of memory: Killed process 4242
/// (python) ..." for a cgroup's limit, "Out of memory: Killed process ..."
/// for the whole node).
pub(crate) struct NodeOomReport<'a> {
    /// The event.
    pub event: &'a k8s_openapi::api::core::v1::Event,
    /// When.
    pub time: Option<Timestamp>,
    /// Whether the node as a whole ran out (not a cgroup's limit).
    pub global: bool,
    /// The message, for the evidence.
    pub message: &'a str,
}

impl NodeOomReport<'_> {
    /// The report as evidence, under `name`.
    fn fact(&self, name: &str) -> Fact {
        Fact {
            name: name.into(),
            value: self.message.to_owned(),
            time: self.time,
        }
    }
}

/// Node OOM reports within the matching slack of `at` on the pod's node.
pub(crate) fn node_oom_reports<'a>(
    ctx: &Context<'a>,
    pod: &Pod,
    at: Timestamp,
) -> Vec<NodeOomReport<'a>> {
    let Some(node) = k8s::node_name(pod) else {
        return Vec::new();
    };
    let slack = secs(ctx.config.oom.match_slack_s);
    ctx.node_events(node)
        .into_iter()
        .filter_map(|e| {
            let message = e.message.as_deref().unwrap_or("");
            // Only the kernel's own wording tells a node-wide OOM ("Out of
            // memory: Killed process") from a cgroup's ("Memory cgroup out
            // of memory: ..."). The kubelet's SystemOOM is meant for victims
            // outside any container, but its parsing of the report has
            // misfiled container kills (cgroup v2 paths), so it is evidence
            // of an OOM kill at that moment, not proof of its scope.
            let global = match e.reason.as_deref() {
                Some("SystemOOM") => false,
                Some("OOMKilling") => message.starts_with("Out of memory"),
                _ => return None,
            };
            let time = k8s::event_last_time(e);
            let near = time.is_some_and(|t| t.since(at) <= slack && at.since(t) <= slack);
            near.then_some(NodeOomReport {
                event: e,
                time,
                global,
                message,
            })
        })
        .collect()
}

fn status_oom(
    ctx: &Context<'_>,
    pod: &Pod,
    i: &Instance<'_>,
    insts: &[Instance<'_>],
) -> Option<Finding> {
    let e = i.exit?;
    if e.reason.as_deref() != Some("OOMKilled") || !kills_in(ctx, pod, insts, i).is_empty() {
        return None;
    }
    if e.exit_code != 137 {
        return Some(sticky_label(ctx, pod, i, insts, e));
    }
    let t = &ctx.config.oom;
    let container = i.name;
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let node = k8s::node_name(pod).unwrap_or("NODE");
    let finished = i.finished;
    let sampled = samples(ctx, pod, i);
    let counter_moved = sampled
        .windows(2)
        .any(|w| w[1].memory.events.oom_kill > w[0].memory.events.oom_kill)
        || sampled.last().is_some_and(|s| s.memory.events.oom_kill > 0);
    let has_agent = ctx.agent_of(pod).is_some() && !ctx.evidence.lacks("agent");
    let covered = finished.is_some_and(|f| agent_covers(ctx, pod, f));
    let blind = !has_agent
        || !covered
        || (sampled.is_empty() && finished.is_some_and(|f| kmsg_down(ctx, pod, f)));
    let limit = spec_limit(pod, container);
    let limit_s = limit_words(pod, container, limit);
    let last_usage = sampled
        .last()
        .map(|s| (s.time, s.memory.usage_bytes, s.memory.limit_bytes));
    let mut facts = vec![
        exit_fact(e),
        Fact::new("memory limit (pod spec)", limit_s.clone()),
        Fact::new("restarts", i.restarts.to_string()),
    ];
    if let Some((time, u, l)) = last_usage {
        facts.push(Fact::at(
            "last sample of the container",
            format!(
                "{} used of {}",
                human_bytes(u),
                l.map_or_else(|| "no limit".to_owned(), human_bytes)
            ),
            time,
        ));
    }
    let cost = Some(Cost {
        gpu_hours: 0.0,
        restarts: i.restarts.max(0) as u32,
    });
    let reports = finished.map_or_else(Vec::new, |f| node_oom_reports(ctx, pod, f));
    if blind && let Some(r) = reports.iter().find(|r| r.global) {
        // The node's own report says the node ran out as a whole: the
        // runtime's OOMKilled is the node's OOM killer, not the limit.
        let mut f = Finding::new(
            Kind::OomNode,
            ctx.subject(pod, Some(container)),
            Confidence::Medium,
            format!(
                "Container {container} died in an OOM kill when node {node} ran out of memory as a whole (reported on the node as {}), not at its own {limit_s} limit; no agent records show which process grew.",
                r.event.reason.as_deref().unwrap_or("an OOM event")
            ),
        );
        f.evidence = facts;
        f.evidence.push(r.fact("node OOM report"));
        f = f
            .step(format!(
                "Find what filled node {node}: `kubectl describe node {node}` (Allocated resources, MemoryPressure) and `kubectl top pods -A --sort-by=memory`; pods without memory limits, or with limits far above their requests, overcommit the node."
            ))
            .step("Give this pod Guaranteed QoS (requests = limits) so the kernel prefers other victims (oom_score_adj -997 vs. up to 1000 for BestEffort).");
        f.cost = cost;
        return Some(f);
    }
    if counter_moved || blind {
        let (conf, why) = if counter_moved {
            (
                Confidence::Medium,
                "the cgroup's oom_kill counter moved, but the kernel's report of the kill was not recorded".to_owned(),
            )
        } else if !has_agent {
            (
                Confidence::Medium,
                "the runtime's status alone says so: there are no agent records of the node to show the kill, the peak or the victim".to_owned(),
            )
        } else {
            (
                Confidence::Medium,
                format!(
                    "the runtime's status alone says so: the agent's records do not cover the exit at {}",
                    finished.map_or_else(|| "?".to_owned(), |f| f.to_string())
                ),
            )
        };
        let mut f = Finding::new(
            Kind::OomKilled,
            ctx.subject(pod, Some(container)),
            conf,
            format!("Container {container} was OOM-killed at its {limit_s} memory limit ({why})."),
        );
        f.evidence = facts;
        f.evidence.push(Fact::new(
            "node evidence",
            if counter_moved {
                "oom_kill counter moved; no kernel report".to_owned()
            } else {
                "missing: no agent records for this exit".to_owned()
            },
        ));
        // node-problem-detector's copy of the kernel's line names a
        // process at that moment (not its cgroup: it may be a neighbour's).
        for r in &reports {
            f.evidence
                .push(r.fact("kernel OOM report on the node (same minute)"));
        }
        // Without samples, what a memory-backed volume held is unknown;
        // that it counts against the limit is not.
        let volumes = memory_volumes(pod, container);
        if !volumes.is_empty() {
            let names = volumes
                .iter()
                .map(|(name, size, path)| {
                    format!(
                        "{name} (emptyDir medium: Memory, sizeLimit {}, at {path})",
                        size.as_deref().unwrap_or("none")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            f.evidence
                .push(Fact::new("memory-backed volume", names.clone()));
            f = f.step(format!(
                "The container mounts memory-backed volumes ({names}): files written there are charged to the pod's memory cgroup, count against the {limit_s} limit and survive restarts. Check how much they hold (`kubectl exec ... -- df -h` on their mount paths); a bigger limit does not help if what is staged there grows with the data."
            ));
        }
        if let Some(l) = limit {
            f = f.step(format!(
                "If the use is expected, raise resources.limits.memory (and requests.memory) of {container}: the peak is unknown, so start above {}Mi and measure with the agent running.",
                suggest_mi(l, t.limit_headroom_percent)
            ));
        }
        f = f
            .step(format!(
                "Confirm which process died: `dmesg -T | grep -i -B2 -A3 oom-kill` on node {node} around {}.",
                finished.map_or_else(|| "the exit".to_owned(), |x| x.to_string())
            ))
            .step(format!(
                "`kubectl logs -n {ns} {name} -c {container} --previous` for the last lines before the kill; run the gpuscope agent on the node to record the next one (peak, growth, victim)."
            ));
        f.cost = cost;
        return Some(f);
    }
    // The agent was watching and saw no kill of this instance.
    let other = finished.and_then(|fin| {
        let a = ctx.agent_of(pod)?;
        let slack = secs(t.match_slack_s);
        a.events.iter().find_map(|ev| match ev {
            NodeEvent::OomKill(k)
                if k.time.since(fin) <= slack
                    && fin.since(k.time) <= slack
                    && k.container.container_id.as_deref() != i.id =>
            {
                Some(k)
            }
            _ => None,
        })
    });
    let other_name = |k: &OomKill| {
        let pod_name = k.container.pod_uid.as_deref().and_then(|u| {
            ctx.pods()
                .iter()
                .find(|p| k8s::uid(p) == Some(u))
                .map(k8s::pod_name)
        });
        match (
            pod_name,
            k.container.pod_uid.as_deref(),
            k.container.container_id.as_deref(),
        ) {
            (Some(p), _, _) => format!("pod {p}"),
            (None, Some(u), Some(c)) => format!(
                "another container (pod UID {u}, container {})",
                &c[..c.len().min(12)]
            ),
            _ => format!("cgroup {}", k.container.cgroup_path),
        }
    };
    let (conf, summary) = match other {
        Some(k) => (
            Confidence::Medium,
            format!(
                "Container {container}'s status says OOMKilled, but the agent saw no OOM kill in it; the exit coincided with the kernel killing {} in {}, so the label is most likely second-hand.",
                k.victim.as_ref().map_or_else(
                    || "a process".to_owned(),
                    |v| format!("{} (pid {})", v.comm, v.pid)
                ),
                other_name(k)
            ),
        ),
        None => (
            Confidence::Low,
            format!(
                "Container {container}'s status says OOMKilled, but the agent, which was watching the node, recorded no OOM kill in it{}; the label may be stale or wrong, so check before raising the limit.",
                if sampled.is_empty() {
                    " (it never sampled this container instance)"
                } else {
                    " and its oom_kill counter never moved"
                }
            ),
        ),
    };
    let mut f = Finding::new(
        Kind::OomStatusWithoutKill,
        ctx.subject(pod, Some(container)),
        conf,
        summary,
    );
    f.evidence = facts;
    f.evidence.push(Fact::new(
        "agent",
        format!(
            "watching the node around the exit; {} sample(s) of this instance; no OOM kill recorded for it",
            sampled.len()
        ),
    ));
    if let Some(k) = other {
        f = f.fact(Fact::at(
            "OOM kill nearby",
            format!(
                "{} in {} (cgroup {}, {:?})",
                k.victim.as_ref().map_or("?", |v| v.comm.as_str()),
                other_name(k),
                k.container.cgroup_path,
                k.constraint
            ),
            k.time,
        ));
    }
    f = f
        .step(format!(
            "Check the kernel log on node {node}: `dmesg -T | grep -i oom-kill` around {}; if nothing names this container's cgroup, treat the exit as an ordinary crash and read `kubectl logs -n {ns} {name} -c {container} --previous`.",
            finished.map_or_else(|| "the exit".to_owned(), |x| x.to_string())
        ));
    if let Some((_, u, Some(l))) = last_usage
        && u * 100 < l * t.near_limit_percent
    {
        f = f.step(format!(
            "Do not raise the memory limit on the strength of this status alone: the container's last measured use ({}) was well below its {} limit.",
            human_bytes(u),
            limit_words(pod, container, Some(l))
        ));
    }
    f.cost = cost;
    Some(f)
}

/// An `OOMKilled` reason on an exit that was not a kill (any code but
/// 137): containerd sets the reason once it has seen an OOM event for the
/// container's cgroup and keeps it until the container exits, so a worker
/// OOM-killed earlier labels the main process's later exit (143 from a
/// SIGTERM, 1 from its own error) as OOMKilled. The exit's real reason is
/// elsewhere: the pod's status, its DisruptionTarget condition, the
/// kubelet's stop, a node shutdown.
fn sticky_label(
    ctx: &Context<'_>,
    pod: &Pod,
    i: &Instance<'_>,
    insts: &[Instance<'_>],
    e: &ContainerStateTerminated,
) -> Finding {
    let container = i.name;
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let node = k8s::node_name(pod).unwrap_or("NODE");
    let sampled = samples(ctx, pod, i);
    let counter = sampled
        .last()
        .map(|s| s.memory.events.oom_kill)
        .filter(|&n| n > 0);
    let (real, explained) = real_exit_reason(ctx, pod, container, e);
    // The agent sampled the instance up to its end and its cgroup never
    // counted an OOM kill: no process of this container was OOM-killed,
    // so the label is not even a sticky flag from this instance.
    let watched_clean = counter.is_none()
        && !sampled.is_empty()
        && sampled.iter().all(|s| s.memory.events.oom_kill == 0)
        && i.finished.is_some_and(|f| {
            sampled
                .last()
                .is_some_and(|s| f.since(s.time) <= secs(ctx.config.oom.agent_coverage_s))
        });
    // The main process's own words that a worker died of SIGKILL, right
    // before it exited with an error of its own (PyTorch: "DataLoader
    // worker (pid N) is killed by signal: Killed."): with the runtime's
    // OOMKilled label (the cgroup saw an OOM kill) that worker was the
    // victim and this exit its consequence.
    if !watched_clean && !matches!(e.exit_code, 0 | 137 | 143) {
        let tail = |previous| {
            ctx.log(pod, container, previous)
                .map_or("", |l| l.text.as_str())
                .lines()
        };
        // The exit is the container's current state (its log is the
        // current one) or its last state (the previous log).
        let current_exit = k8s::container_statuses(pod).any(|s| {
            s.name == container
                && s.state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .is_some_and(|t| std::ptr::eq(t, e))
        });
        let said = e
            .message
            .as_deref()
            .unwrap_or("")
            .lines()
            .chain(tail(!current_exit))
            .find(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("worker (pid") && l.contains("killed by signal: killed")
            })
            .map(|l| l.trim().to_owned());
        if let Some(line) = said {
            let limit_s = limit_words(pod, container, spec_limit(pod, container));
            let mut f = Finding::new(
                Kind::OomKilledWorker,
                ctx.subject(pod, Some(container)),
                Confidence::Medium,
                format!(
                    "A worker process of container {container} was killed with SIGKILL and the main process exited with code {} because of it (\"{line}\"); the runtime labelled that exit OOMKilled, as it does once the container's cgroup saw an OOM kill, so the worker was OOM-killed at the container's {limit_s} memory limit (the kernel's report is not in the evidence).",
                    e.exit_code
                ),
            );
            f.evidence.push(exit_fact(e));
            f.evidence.push(Fact::new("the main process said", line));
            f.evidence.push(Fact::new("memory limit", limit_s));
            f = f
                .step("Size the limit for the main process plus all its workers (each DataLoader worker holds its own copy of what it touches), or use fewer workers: the main process cannot go on without a worker the kernel killed.")
                .step(format!(
                    "Confirm on node {node}: `dmesg -T | grep -i -A5 oom-kill` names the worker's pid and its RSS."
                ));
            f.cost = Some(Cost {
                gpu_hours: 0.0,
                restarts: i.restarts.max(0) as u32,
            });
            return f;
        }
    }
    let before = earlier_kill(ctx, pod, insts, i);
    let earlier = match (counter, &before) {
        (Some(n), _) => format!(
            "the agent saw {n} OOM kill(s) counted in this container instance before it exited (its kernel report was not recorded)"
        ),
        (None, Some(b)) => format!(
            "the kill in this instance is not in the evidence, but an earlier instance of the container was OOM-killed, so its processes do reach the limit: {}",
            b.value
        ),
        (None, None) => "the earlier kill itself is not in the evidence".to_owned(),
    };
    // Medium when the evidence gives this exit's real reason (or the
    // agent counted the earlier kill, or an earlier instance's kill shows
    // the limit is reached); with none, only the label and the code
    // disagree: low.
    let known = explained || counter.is_some() || watched_clean || before.is_some();
    let label = if watched_clean {
        format!(
            "the agent watched this instance to its end and its memory cgroup counted no OOM kill (oom_kill 0 in {} samples), so no process of it was OOM-killed: the label is wrong, not the cause of this exit",
            sampled.len()
        )
    } else {
        format!(
            "the runtime keeps the OOMKilled flag once any process of this container instance was OOM-killed (a worker, earlier), so the label is left from an earlier kill, not the cause of this exit ({earlier})"
        )
    };
    let mut f = Finding::new(
        Kind::OomStatusWithoutKill,
        ctx.subject(pod, Some(container)),
        if known {
            Confidence::Medium
        } else {
            Confidence::Low
        },
        format!(
            "Container {container}'s exit is labelled OOMKilled, but its exit code {} is not the SIGKILL (137) of an OOM kill: {label}. This exit: {real}.",
            e.exit_code
        ),
    );
    f.evidence.push(exit_fact(e));
    f.evidence
        .push(Fact::new("real reason for this exit", real));
    if let Some(n) = counter {
        f.evidence.push(Fact::new(
            "oom_kill counter of this instance",
            n.to_string(),
        ));
    } else if watched_clean {
        f.evidence.push(Fact::new(
            "oom_kill counter of this instance",
            format!("0 to the end ({} samples)", sampled.len()),
        ));
    }
    f.evidence.extend(before.filter(|_| !watched_clean));
    if let Some(fin) = i.finished {
        for r in node_oom_reports(ctx, pod, fin) {
            f.evidence
                .push(r.fact("kernel OOM report on the node (same minute)"));
        }
    }
    f = f.step(format!(
        "Treat the exit as what it was (code {}), not as the container running out of memory: raising the memory limit does not address it.",
        e.exit_code
    ));
    if !watched_clean {
        f = f.step(format!(
            "Find the earlier kill: `kubectl logs -n {ns} {name} -c {container} --previous` (PyTorch prints \"DataLoader worker (pid N) is killed by signal: Killed\") and `dmesg -T | grep -i oom-kill` on node {node}; a worker killed at the limit means the limit must cover the main process plus its workers."
        ));
    }
    f.cost = Some(Cost {
        gpu_hours: 0.0,
        restarts: i.restarts.max(0) as u32,
    });
    f
}

/// The newest OOM kill of the container before instance `i` began, as the
/// fact "earlier OOM kill of the container": a kill the agent recorded in
/// an earlier instance (another container ID of the same container), else
/// an earlier instance the status shows ended OOMKilled with exit 137
/// (`lastState`). The runtime keeps its OOMKilled flag per container
/// instance, so such a kill did not label `i`'s exit; it shows that the
/// container's processes reach the limit, as a worker killed unseen in
/// `i` would have.
fn earlier_kill(
    ctx: &Context<'_>,
    pod: &Pod,
    insts: &[Instance<'_>],
    i: &Instance<'_>,
) -> Option<Fact> {
    let began = i.started.or(i.finished)?;
    let single = k8s::spec(pod).containers.len() == 1;
    let short = |id: &str| id[..id.len().min(12)].to_owned();
    let recorded = ctx
        .kills_of(pod)
        .into_iter()
        .filter(|k| k.time < began && k.container.container_id.as_deref() != i.id)
        .rfind(|k| match instance_of(ctx, insts, k) {
            Some(o) => o.name == i.name,
            None => single,
        })
        .map(|k| {
            let who = k.victim.as_ref().map_or_else(
                || "a process".to_owned(),
                |v| format!("process {}", process(v)),
            );
            let id = k.container.container_id.as_deref().map(short);
            Fact::at(
                "earlier OOM kill of the container",
                format!(
                    "the kernel killed {who} at {}{}",
                    k.time,
                    id.map(|id| format!(" in instance {id}"))
                        .unwrap_or_default()
                ),
                k.time,
            )
        });
    recorded.or_else(|| {
        insts
            .iter()
            .filter(|o| o.name == i.name && o.id != i.id)
            .filter_map(|o| Some((o, o.exit?, o.finished?)))
            .filter(|(_, e, f)| {
                e.exit_code == 137 && e.reason.as_deref() == Some("OOMKilled") && *f <= began
            })
            .max_by_key(|(_, _, f)| *f)
            .map(|(o, _, f)| {
                Fact::at(
                    "earlier OOM kill of the container",
                    format!(
                        "instance {}, the container's last state, ended OOMKilled with exit 137 at {f}",
                        o.id.map_or_else(|| "?".to_owned(), short)
                    ),
                    f,
                )
            })
    })
}

/// Exit 137 (SIGKILL) that was not an OOM kill.
fn exit_137(
    ctx: &Context<'_>,
    pod: &Pod,
    i: &Instance<'_>,
    insts: &[Instance<'_>],
) -> Option<Finding> {
    let e = i.exit?;
    // ContainerStatusUnknown (137) means the kubelet lost the container
    // (a node that went away), not that anything killed it.
    if e.exit_code != 137
        || matches!(
            e.reason.as_deref(),
            Some("OOMKilled" | "ContainerStatusUnknown")
        )
    {
        return None;
    }
    if !kills_in(ctx, pod, insts, i).is_empty() {
        return None;
    }
    let sampled = samples(ctx, pod, i);
    if sampled.iter().any(|s| s.memory.events.oom_kill > 0) {
        return None; // the kill path (or the counter) says OOM
    }
    let t = &ctx.config.oom;
    let container = i.name;
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let slack = secs(t.match_slack_s);
    let fin = i.finished;
    let in_life = |time: Option<Timestamp>| match (time, i.started, fin) {
        (Some(x), Some(s), Some(f)) => plus(x, slack) >= s && x <= plus(f, slack),
        (Some(_), _, _) => true,
        _ => false,
    };
    let events = ctx.events_for(pod);
    let mentions = |m: &str| {
        m.contains(&format!("Container {container} "))
            || m.contains(&format!("container {container}"))
    };
    let liveness = events.iter().rev().find(|ev| {
        ev.reason.as_deref() == Some("Killing")
            && ev.message.as_deref().is_some_and(|m| {
                mentions(m)
                    && (m.contains("failed liveness probe") || m.contains("failed startup probe"))
            })
            && in_life(k8s::event_last_time(ev))
    });
    // A kill by a failed liveness or startup probe: this finding is the
    // exit, the `pod` family's probe_failing its cause (linked by
    // `chains`), with the probe's settings and timing.
    let unhealthy: Vec<_> = events
        .iter()
        .filter(|ev| {
            ev.reason.as_deref() == Some("Unhealthy")
                && ev.message.as_deref().is_some_and(|m| {
                    m.starts_with("Liveness probe failed") || m.starts_with("Startup probe failed")
                })
                && in_life(k8s::event_last_time(ev))
        })
        .collect();
    let grace = k8s::spec(pod)
        .termination_grace_period_seconds
        .unwrap_or(30)
        .max(0) as u64;
    let stopping = events.iter().rev().find(|ev| {
        ev.reason.as_deref() == Some("Killing")
            && ev
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("Stopping container") && m.contains(container))
            && in_life(k8s::event_last_time(ev))
    });
    let preempted = events.iter().rev().find(|ev| {
        matches!(
            ev.reason.as_deref(),
            Some("Preempted" | "Preempting" | "TaintManagerEviction")
        )
    });
    let disruption = k8s::status(pod)
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
    let watching = !sampled.is_empty()
        && ctx.agent_of(pod).is_some()
        && fin.is_some_and(|f| {
            sampled
                .last()
                .is_some_and(|s| f.since(s.time) <= secs(t.agent_coverage_s))
        });
    let oom_note = if watching {
        "the agent watched the container and recorded no OOM kill"
    } else {
        "no agent records for it, so an OOM kill the runtime missed is not ruled out"
    };
    // Where the events explain the kill, the agent only adds to it.
    let seen = if watching {
        " (the agent watched the container and recorded no OOM kill)"
    } else {
        ""
    };
    let mut facts = vec![exit_fact(e), Fact::new("restarts", i.restarts.to_string())];
    let mut steps = Vec::new();
    let (conf, summary) = if let Some(ev) = liveness {
        let probe = if ev.message.as_deref().is_some_and(|m| m.contains("startup")) {
            "startup"
        } else {
            "liveness"
        };
        facts.push(event_fact("kubelet", ev));
        for u in unhealthy.iter().rev().take(2) {
            facts.push(event_fact("probe failures", u));
        }
        steps.push(format!(
            "See why the probe fails: `kubectl describe pod -n {ns} {name}` (Events: Unhealthy) and the probe in spec.containers[{container}].{probe}Probe; a process busy on the GPU or loading a model can miss an HTTP probe: raise timeoutSeconds/failureThreshold, or use a startupProbe for the load phase."
        ));
        (
            Confidence::High,
            format!(
                "Container {container} was killed with SIGKILL (exit 137) by the kubelet because its {probe} probe failed, not by the OOM killer{seen}."
            ),
        )
    } else if let (Some(ev), Some(f)) = (stopping, fin) {
        let asked = k8s::event_last_time(ev).unwrap_or(f);
        let took = f.since(asked).as_secs();
        facts.push(event_fact("kubelet", ev));
        facts.push(Fact::new(
            "stop took",
            format!(
                "{} (terminationGracePeriodSeconds {grace})",
                finding::duration(secs(took))
            ),
        ));
        if took + t.match_slack_s.min(5) >= grace {
            steps.push(format!(
                "The process ignored or outlived SIGTERM: handle SIGTERM in the program (save a checkpoint, exit), make it PID 1's job to forward signals (exec form of the command, or tini), or raise spec.terminationGracePeriodSeconds above {grace} if a clean stop needs longer."
            ));
            (
                Confidence::High,
                format!(
                    "Container {container} did not stop within its {} grace period after the kubelet asked it to, so it was killed with SIGKILL (exit 137), not an OOM kill{seen}.",
                    finding::duration(secs(grace))
                ),
            )
        } else {
            steps.push(format!(
                "`kubectl get events -n {ns} --field-selector involvedObject.name={name}` for what stopped the pod (a deletion, a rollout, a node drain)."
            ));
            (
                Confidence::Medium,
                format!(
                    "Container {container} was being stopped by the kubelet and ended with SIGKILL (exit 137) after {}, before its {} grace period ran out: something else killed it during the stop, not an OOM kill{seen}.",
                    finding::duration(secs(took)),
                    finding::duration(secs(grace))
                ),
            )
        }
    } else if let Some(c) = disruption.as_ref() {
        facts.push(Fact::new(
            "pod condition DisruptionTarget",
            format!(
                "{}: {}",
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            ),
        ));
        if let Some(ev) = preempted {
            facts.push(event_fact("event", ev));
        }
        steps.push(format!(
            "`kubectl get events -n {ns} --field-selector involvedObject.name={name}`: the pod was disrupted ({}); give it a higher priorityClassName or a PodDisruptionBudget if it must not be.",
            c.reason.as_deref().unwrap_or("")
        ));
        (
            Confidence::High,
            format!(
                "Container {container} was killed with SIGKILL (exit 137) because the pod was disrupted ({}), not by the OOM killer.",
                c.reason.as_deref().unwrap_or("DisruptionTarget")
            ),
        )
    } else if let Some(ev) = preempted {
        facts.push(event_fact("event", ev));
        steps.push(
            "Give the job a higher priorityClassName, or run it where it cannot be preempted."
                .to_owned(),
        );
        (
            Confidence::High,
            format!(
                "Container {container} was killed with SIGKILL (exit 137) when the pod was preempted, not by the OOM killer."
            ),
        )
    } else if let Some(r) = fin
        .filter(|_| !watching)
        .map(|f| node_oom_reports(ctx, pod, f))
        .and_then(|rs| rs.into_iter().next())
    {
        // Nothing else explains the SIGKILL, and the node reported an OOM
        // kill within the same half-minute: the runtime's label missed it
        // (a node-wide OOM kill is not the container's own).
        let node = k8s::node_name(pod).unwrap_or("NODE");
        let (kind, summary) = if r.global {
            (
                Kind::OomNode,
                format!(
                    "Container {container} was killed with SIGKILL (exit 137) when node {node} ran out of memory as a whole (reported on the node as {}); the runtime did not label it OOMKilled.",
                    r.event.reason.as_deref().unwrap_or("an OOM event")
                ),
            )
        } else {
            (
                Kind::OomKilled,
                format!(
                    "Container {container} was killed with SIGKILL (exit 137) at the moment the node reported a memory-cgroup OOM kill; that report does not name the cgroup, so this container's limit is the likely but unproven cause."
                ),
            )
        };
        facts.push(r.fact("node OOM report"));
        let mut f = Finding::new(
            kind,
            ctx.subject(pod, Some(container)),
            Confidence::Low,
            summary,
        );
        if r.global {
            f.confidence = Confidence::Medium;
        }
        f.evidence = facts;
        f = f
            .step(format!(
                "Confirm on node {node}: `dmesg -T | grep -i -A5 oom-kill` around {} names the victim's cgroup (task_memcg=...).",
                r.time.map_or_else(|| "the exit".to_owned(), |t| t.to_string())
            ))
            .step(format!(
                "`kubectl describe node {node}` (MemoryPressure, Allocated resources) and `kubectl top pods -A --sort-by=memory` on that node."
            ));
        f.cost = Some(Cost {
            gpu_hours: 0.0,
            restarts: i.restarts.max(0) as u32,
        });
        return Some(f);
    } else {
        steps.push(format!(
            "Find who sent SIGKILL: `kubectl get events -n {ns} --field-selector involvedObject.name={name}` (Killing, Unhealthy, Preempted), the node's kubelet log (`journalctl -u kubelet | grep {name}`), and whether something inside the container kills its own processes (a supervisor, `kill -9`)."
        ));
        if !watching {
            steps.push(format!(
                "Rule out an OOM kill the runtime did not label: `dmesg -T | grep -i oom-kill` on node {} around {}.",
                k8s::node_name(pod).unwrap_or("NODE"),
                fin.map_or_else(|| "the exit".to_owned(), |f| f.to_string())
            ));
        }
        // The agent watching the instance to its end with no kill counted
        // proves it was not an OOM kill; only the sender is unknown.
        (
            if watching {
                Confidence::Medium
            } else {
                Confidence::Low
            },
            format!(
                "Container {container} exited with code 137 (SIGKILL) and reason {}, not OOMKilled; nothing in the evidence says who killed it ({oom_note}).",
                e.reason.as_deref().unwrap_or("none")
            ),
        )
    };
    facts.push(Fact::new(
        "OOM kill",
        if watching || conf == Confidence::Low {
            oom_note
        } else {
            "not checked (no agent records); the events above explain the exit"
        },
    ));
    let mut f = Finding::new(
        Kind::Exit137NotOom,
        ctx.subject(pod, Some(container)),
        if ctx.evidence.lacks("events") {
            conf.min(Confidence::Low)
        } else {
            conf
        },
        summary,
    );
    f.evidence = facts;
    f.next_steps = steps;
    f.cost = Some(Cost {
        gpu_hours: 0.0,
        restarts: i.restarts.max(0) as u32,
    });
    Some(f)
}

fn event_fact(name: &str, ev: &k8s_openapi::api::core::v1::Event) -> Fact {
    let v = format!(
        "{}: {}{}",
        ev.reason.as_deref().unwrap_or(""),
        ev.message.as_deref().unwrap_or(""),
        ev.count
            .filter(|c| *c > 1)
            .map(|c| format!(" (x{c})"))
            .unwrap_or_default()
    );
    match k8s::event_last_time(ev) {
        Some(t) => Fact::at(name, v, t),
        None => Fact::new(name, v),
    }
}

/// What an eviction message says.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Eviction {
    /// `memory`, `ephemeral-storage`, `pid`, … (empty: not said).
    pub resource: String,
    /// The eviction threshold.
    pub threshold: Option<String>,
    /// What was available.
    pub available: Option<String>,
    /// Per container: name, usage, request.
    pub containers: Vec<(String, String, String)>,
}

/// Parses the kubelet's eviction message.
pub(crate) fn parse_eviction(m: &str) -> Eviction {
    let word = |s: &str| {
        s.split([',', ' '])
            .next()
            .unwrap_or("")
            .trim_end_matches('.')
            .to_owned()
    };
    let find = |pat: &str| m.find(pat).map(|i| &m[i + pat.len()..]);
    let mut ev = Eviction {
        resource: find("low on resource: ").map(word).unwrap_or_default(),
        threshold: find("Threshold quantity: ").map(word),
        available: find("available: ").map(word),
        containers: Vec::new(),
    };
    for part in m.split("Container ").skip(1) {
        let name = word(part);
        let using = part.find("was using ").map(|i| word(&part[i + 10..]));
        let req = part.find("request is ").map(|i| word(&part[i + 11..]));
        if let (Some(u), Some(r)) = (using, req) {
            ev.containers.push((name, u, r));
        }
    }
    if ev.resource.is_empty() && m.contains("ephemeral local storage") {
        ev.resource = "ephemeral-storage".to_owned();
    }
    ev
}

fn evicted(ctx: &Context<'_>, pod: &Pod) -> Option<Finding> {
    let st = k8s::status(pod);
    if st.reason.as_deref() != Some("Evicted") {
        return None;
    }
    let msg = st.message.clone().unwrap_or_default();
    let ev = parse_eviction(&msg);
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let node = k8s::node_name(pod);
    // The container the message blames: the one furthest over its request.
    let blamed = ev.containers.iter().max_by(|a, b| {
        let over = |c: &(String, String, String)| {
            let q = |s: &str| {
                k8s::quantity(&k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                    s.to_owned(),
                ))
                .unwrap_or(0.0)
            };
            q(&c.1) - q(&c.2)
        };
        over(a)
            .partial_cmp(&over(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let resource = if ev.resource.is_empty() {
        "a resource".to_owned()
    } else {
        ev.resource.clone()
    };
    let summary = match blamed {
        Some((c, u, r)) => format!(
            "The kubelet evicted the pod because node {} was low on {resource}; container {c} was using {u} against a request of {r}, so the pod was among the first to go.",
            node.unwrap_or("?")
        ),
        None => format!(
            "The kubelet evicted the pod because node {} was low on {resource}.",
            node.unwrap_or("?")
        ),
    };
    let conf = if ev.resource.is_empty() {
        Confidence::Medium
    } else {
        Confidence::High
    };
    let mut f = Finding::new(
        Kind::Evicted,
        ctx.subject(pod, blamed.map(|b| b.0.as_str())),
        conf,
        summary,
    )
    .fact(Fact::new("eviction message", msg.clone()));
    if let (Some(t), Some(a)) = (&ev.threshold, &ev.available) {
        f = f.fact(Fact::new(
            format!("node {resource} available / eviction threshold"),
            format!("{a} / {t}"),
        ));
    }
    for (c, u, r) in &ev.containers {
        f = f.fact(Fact::new(
            format!("container {c} {resource} usage / request"),
            format!("{u} / {r}"),
        ));
    }
    let cond = match ev.resource.as_str() {
        "ephemeral-storage" | "nodefs.available" | "imagefs.available" => "DiskPressure",
        "pid" | "pids" => "PIDPressure",
        _ => "MemoryPressure",
    };
    if let Some(n) = node.and_then(|n| ctx.node(n))
        && let Some(c) = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == cond))
    {
        let v = format!(
            "{} ({})",
            c.status,
            c.message
                .as_deref()
                .unwrap_or(c.reason.as_deref().unwrap_or(""))
        );
        f = f.fact(match c.last_transition_time.as_ref() {
            Some(t) => Fact::at(format!("node condition {cond}"), v, k8s::ts(t)),
            None => Fact::new(format!("node condition {cond}"), v),
        });
    }
    if let Some(n) = node
        && let Some(e) = ctx
            .node_events(n)
            .into_iter()
            .rev()
            .find(|e| e.reason.as_deref() == Some("EvictionThresholdMet"))
    {
        f = f.fact(event_fact("node event", e));
    }
    let qos = k8s::status(pod).qos_class.clone().unwrap_or_default();
    if !qos.is_empty() {
        f = f.fact(Fact::new("QoS class", qos.clone()));
    }
    match ev.resource.as_str() {
        "ephemeral-storage" => {
            f = f.step(format!(
                "Write large files (checkpoints, datasets, caches such as HF_HOME) to a PersistentVolumeClaim rather than the container's writable layer or a disk emptyDir, and set resources.requests/limits.ephemeral-storage for what remains (`kubectl describe node {}` shows the disk left).",
                node.unwrap_or("NODE")
            ));
        }
        "pid" | "pids" => {
            f = f.step("Bound the number of processes and threads (DataLoader num_workers, OMP_NUM_THREADS, a runaway fork loop).");
        }
        _ => {
            let size = blamed.map_or_else(|| "its peak use".to_owned(), |b| b.1.clone());
            f = f.step(format!(
                "Set requests.memory equal to limits.memory for every container, sized above the observed use ({size}): Guaranteed pods using no more than they requested are evicted last, and the scheduler stops overcommitting the node."
            ));
            f = f.step(format!(
                "See what else filled node {}: `kubectl describe node {}` (Allocated resources) and `kubectl top pods -A --sort-by=memory`.",
                node.unwrap_or("NODE"),
                node.unwrap_or("NODE")
            ));
        }
    }
    f = f.step(format!(
        "The pod object stays Failed until deleted: `kubectl delete pod -n {ns} {name}` after reading it; its controller creates a replacement."
    ));
    f.cost = Some(Cost {
        gpu_hours: 0.0,
        restarts: 1,
    });
    Some(f)
}

/// CUDA out of memory: from the log tail, or from a full GPU right
/// before a non-zero exit (weak: many frameworks reserve nearly all GPU
/// memory up front, TensorFlow by default and JAX 75 %, so a full GPU is
/// normal for them).
fn cuda_oom(ctx: &Context<'_>, pod: &Pod, insts: &[Instance<'_>]) -> Vec<Finding> {
    let t = &ctx.config.oom;
    let mut out = Vec::new();
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    for c in &k8s::spec(pod).containers {
        let container = c.name.as_str();
        let log = logs::relevant_log(ctx, pod, container);
        let line = log.as_ref().and_then(|(l, _)| logs::cuda_oom(&l.text));
        let latest_exit = insts
            .iter()
            .filter(|i| i.name == container && i.exit.is_some())
            .max_by_key(|i| i.finished);
        // An exit older than `recent_s` is history (a running instance's
        // log has no exit and is always current).
        let old = match (&line, &log) {
            (Some(_), Some((_, e))) => e
                .as_ref()
                .is_some_and(|e| !recent(ctx, e.finished, t.recent_s)),
            _ => latest_exit.is_some_and(|i| !recent(ctx, i.finished, t.recent_s)),
        };
        if old {
            continue;
        }
        // The GPU's memory in the minutes before the exit.
        let full = latest_exit.and_then(|i| {
            let fin = i.finished?;
            let from = fin.saturating_sub(secs(t.cuda_oom_lookback_s));
            ctx.gpus_of(pod)
                .into_iter()
                .filter(|g| g.time >= from && g.time <= fin && g.memory_total_bytes > 0)
                .max_by_key(|g| g.memory_used_bytes * 10_000 / g.memory_total_bytes)
        });
        let full_pct =
            full.map(|g| g.memory_used_bytes as f64 * 100.0 / g.memory_total_bytes as f64);
        let mut f = if let Some(m) = &line {
            let exit = log.as_ref().and_then(|(_, e)| e.clone());
            let conf = if exit.is_some() {
                Confidence::High
            } else {
                Confidence::Medium
            };
            let what = m
                .tried
                .as_ref()
                .map(|tr| {
                    format!(
                        ": it tried to allocate {tr}{}{}",
                        m.total
                            .as_ref()
                            .map(|x| format!(" on a GPU of {x}"))
                            .unwrap_or_default(),
                        m.free
                            .as_ref()
                            .map(|x| format!(" with {x} free"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            let mut f = Finding::new(
                Kind::CudaOom,
                ctx.subject(pod, Some(container)),
                conf,
                format!(
                    "Container {container} ran out of GPU memory ({} reported CUDA out of memory{what}){}; this is GPU memory, not the container's memory limit.",
                    m.framework,
                    match &exit {
                        Some(e) => format!(" and exited with code {}", e.code),
                        None => " while still running".to_owned(),
                    }
                ),
            )
            .fact(Fact::new("log line", m.line.clone()));
            if let Some(e) = exit {
                f = f.fact(e.fact());
            }
            f
        } else {
            let Some(i) = latest_exit else { continue };
            let Some(e) = i.exit else { continue };
            let (Some(g), Some(pct)) = (full, full_pct) else {
                continue;
            };
            // The exit's own log tail, when there is one, is the better
            // witness: it did not say CUDA OOM, so a full GPU is not enough.
            let log_of_exit = log.as_ref().is_some_and(|(_, e)| e.is_some());
            if e.exit_code == 0
                || e.exit_code == 137
                || pct < t.cuda_oom_memory_percent as f64
                || log_of_exit
            {
                continue;
            }
            Finding::new(
                Kind::CudaOom,
                ctx.subject(pod, Some(container)),
                Confidence::Low,
                format!(
                    "Container {container} exited with code {} while its GPU's memory was {pct:.1} % full, which suggests CUDA ran out of memory; no log tail of that exit was available to confirm it, and some frameworks reserve the whole GPU anyway.",
                    e.exit_code
                ),
            )
            .fact(exit_fact(e))
            .fact(Fact::at(
                "GPU memory before the exit",
                format!(
                    "{} of {} used ({pct:.1} %) on {}",
                    human_bytes(g.memory_used_bytes),
                    human_bytes(g.memory_total_bytes),
                    g.uuid
                ),
                g.time,
            ))
        };
        if line.is_some()
            && let (Some(g), Some(pct)) = (full, full_pct)
        {
            f = f.fact(Fact::at(
                "GPU memory before the exit",
                format!(
                    "{} of {} used ({pct:.1} %)",
                    human_bytes(g.memory_used_bytes),
                    human_bytes(g.memory_total_bytes)
                ),
                g.time,
            ));
        }
        if let Some(g) = full {
            f.subject.gpu = Some(g.uuid.clone());
        } else if let [g, ..] = ctx.gpus_of(pod).as_slice()
            && ctx.gpus_of(pod).iter().all(|x| x.uuid == g.uuid)
        {
            f.subject.gpu = Some(g.uuid.clone());
        }
        if let Some(i) = latest_exit {
            f = f.fact(Fact::new("restarts", i.restarts.to_string()));
            f.cost = Some(Cost {
                gpu_hours: 0.0,
                restarts: i.restarts.max(0) as u32,
            });
        }
        f = f
            .step("Lower the memory per step: a smaller micro-batch with gradient accumulation, activation checkpointing, bf16/fp16, or sharding optimizer state and weights (FSDP, ZeRO); for inference, a smaller max batch/sequence length or gpu_memory_utilization.")
            .step("If the message shows much memory reserved but unallocated (fragmentation), set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True.")
            .step(format!(
                "`kubectl logs -n {ns} {name} -c {container} --previous` for the full message, and `nvidia-smi` on the node to see whether another process shares the GPU."
            ));
        if ctx.evidence.lacks("logs") && line.is_none() {
            f.confidence = Confidence::Low;
        }
        out.push(f);
    }
    out
}

/// Memory pressure that stayed high without a kill.
fn thrashing(ctx: &Context<'_>, pod: &Pod, insts: &[Instance<'_>]) -> Vec<Finding> {
    let t = &ctx.config.oom;
    let kills = ctx.kills_of(pod);
    let mut out = Vec::new();
    for i in insts {
        let s = samples(ctx, pod, i);
        let hot = |x: &ContainerSample| {
            x.pressure.memory.is_some_and(|m| {
                m.some.avg10 >= t.thrash_some_avg10_percent
                    || m.full
                        .is_some_and(|f| f.avg10 >= t.thrash_full_avg10_percent)
            })
        };
        // The longest run of hot samples.
        let mut best: Option<(usize, usize)> = None;
        let mut start: Option<usize> = None;
        for (n, x) in s.iter().enumerate() {
            match (hot(x), start) {
                (true, None) => start = Some(n),
                (false, Some(a)) => {
                    best = longer(&s, best, (a, n - 1));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(a) = start {
            best = longer(&s, best, (a, s.len() - 1));
        }
        let Some((a, b)) = best else { continue };
        let (first, last) = (s[a], s[b]);
        let span = last.time.since(first.time);
        if span < secs(t.thrash_min_s) {
            continue;
        }
        // A kill right after is the kill's story.
        let until = plus(last.time, secs(t.thrash_min_s));
        if kills.iter().any(|k| {
            k.container.container_id.as_deref() == i.id && k.time >= first.time && k.time <= until
        }) || i
            .exit
            .is_some_and(|e| e.reason.as_deref() == Some("OOMKilled"))
        {
            continue;
        }
        let run = &s[a..=b];
        let limit = last.memory.limit_bytes;
        let near = limit
            .is_some_and(|l| l > 0 && last.memory.usage_bytes * 100 >= l * t.near_limit_percent);
        let scope = last.pressure_scope;
        let conf = match (scope, near) {
            (PsiScope::Container, true) => Confidence::High,
            (PsiScope::Container, false) => Confidence::Medium,
            (PsiScope::Node, true) => Confidence::Low,
            (PsiScope::Node, false) => continue,
        };
        let max_some = run
            .iter()
            .filter_map(|x| x.pressure.memory.map(|m| m.some.avg10))
            .fold(0.0, f32::max);
        let max_full = run
            .iter()
            .filter_map(|x| x.pressure.memory.and_then(|m| m.full.map(|f| f.avg10)))
            .fold(0.0, f32::max);
        let stalled = match (first.pressure.memory, last.pressure.memory) {
            (Some(p), Some(q)) => Some(q.some.total_us.saturating_sub(p.some.total_us)),
            _ => None,
        };
        let container = i.name;
        let scope_s = match scope {
            PsiScope::Container => "the container's own memory pressure",
            PsiScope::Node => {
                "the node's memory pressure (this host has no per-container pressure files)"
            }
        };
        let usage_s = match limit {
            Some(l) => format!(
                "{} of its {} limit",
                human_bytes(last.memory.usage_bytes),
                limit_words(pod, container, Some(l))
            ),
            None => format!("{} (no limit)", human_bytes(last.memory.usage_bytes)),
        };
        let mut f = Finding::new(
            Kind::MemoryThrashing,
            ctx.subject(pod, Some(container)),
            conf,
            format!(
                "Container {container} spent {} stalled on memory reclaim without being killed ({scope_s} peaked at some {max_some:.0} %, full {max_full:.0} %), using {usage_s}: it is thrashing, running slower rather than failing.",
                finding::duration(span)
            ),
        )
        .fact(Fact::at(
            "memory pressure",
            format!(
                "some avg10 up to {max_some:.1} %, full avg10 up to {max_full:.1} %{} over {}",
                stalled
                    .map(|st| format!(", {:.1} s stalled", st as f64 / 1e6))
                    .unwrap_or_default(),
                finding::duration(span)
            ),
            last.time,
        ))
        .fact(Fact::new(
            "pressure_scope",
            match scope {
                PsiScope::Container => "container",
                PsiScope::Node => "node",
            },
        ))
        .fact(Fact::at("memory use", usage_s.clone(), last.time))
        .fact(Fact::at(
            "page cache",
            format!(
                "{} -> {} over the window (anon {} -> {})",
                human_bytes(first.memory.file_bytes),
                human_bytes(last.memory.file_bytes),
                human_bytes(first.memory.anon_bytes),
                human_bytes(last.memory.anon_bytes)
            ),
            last.time,
        ));
        if let Some(h) = last.memory.events.high.filter(|h| *h > 0) {
            f = f.fact(Fact::new(
                "memory.events high (throttled above memory.high)",
                h.to_string(),
            ));
        }
        if let Some(l) = limit {
            f = f.step(format!(
                "Give the container room for its working set plus page cache: raise resources.limits.memory above {}Mi (use {} + {} %), or shrink what it keeps in memory.",
                suggest_mi(last.memory.usage_bytes.max(l), t.limit_headroom_percent),
                human_bytes(last.memory.usage_bytes),
                t.limit_headroom_percent
            ));
        }
        f = f.step("If it reads a large dataset through the page cache, stream it (sharded/streaming datasets, O_DIRECT readers) or memory-map it read-only rather than copying it; cache re-reads are what it stalls on.");
        if scope == PsiScope::Node {
            f = f.step(format!(
                "The pressure figures are the node's: check the node as a whole, `kubectl top pods -A --sort-by=memory --field-selector spec.nodeName={}`.",
                k8s::node_name(pod).unwrap_or("NODE")
            ));
        }
        out.push(f);
    }
    out
}

fn longer(
    s: &[&ContainerSample],
    best: Option<(usize, usize)>,
    cand: (usize, usize),
) -> Option<(usize, usize)> {
    let len = |(a, b): (usize, usize)| s[b].time.since(s[a].time);
    match best {
        Some(b) if len(b) >= len(cand) => Some(b),
        _ => Some(cand),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{AgentRecords, Evidence};
    use crate::{Config, Context};
    use gpuscope_model::{ContainerRef, Detection, RecorderPoint};

    const T0: u64 = 1_764_150_000_000_000_000;

    fn point(s: u64, usage_mib: u64, shmem_mib: u64, psi_total: u64) -> RecorderPoint {
        RecorderPoint {
            time: Timestamp(T0 + s * 1_000_000_000),
            usage_bytes: usage_mib << 20,
            anon_bytes: (usage_mib - shmem_mib) << 20,
            file_bytes: shmem_mib << 20,
            shmem_bytes: shmem_mib << 20,
            memory_some_avg10: 1.5,
            memory_some_total_us: psi_total,
            memory_full_total_us: 0,
        }
    }

    const CID: &str = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

    fn kill(constraint: OomConstraint, victim: bool, shmem_mib: u64) -> OomKill {
        OomKill {
            time: Timestamp(T0 + 10 * 1_000_000_000),
            detected_at: Timestamp(T0 + 10 * 1_000_000_000),
            detected_by: Detection::Notification,
            container: ContainerRef {
                cgroup_path: format!("/kubepods/burstable/podp/{CID}"),
                pod_uid: Some("p".into()),
                container_id: Some(CID.into()),
                ..ContainerRef::default()
            },
            cgroup_version: None,
            limit_bytes: Some(1 << 30),
            peak_bytes: Some(1 << 30),
            oom_kill: Some(1),
            oom_group_kill: None,
            constraint,
            victim: victim.then(|| Victim {
                pid: 42,
                comm: "python3".into(),
                anon_rss_bytes: 900 << 20,
                ..Victim::default()
            }),
            group: None,
            trigger_comm: None,
            kernel_usage_bytes: None,
            kernel_limit_bytes: None,
            window: vec![
                point(0, 300, shmem_mib.min(300), 0),
                point(2, 200, shmem_mib.min(200), 100),
                point(6, 600, shmem_mib.min(600), 5_000),
                point(10, 1024, shmem_mib, 25_000),
            ],
            pressure_scope: Some(PsiScope::Container),
        }
    }

    /// A pod whose container `trainer` last terminated (OOMKilled, the
    /// kill's container ID) and runs again, or runs the same instance
    /// still (`alive`).
    fn pod(alive: bool) -> Pod {
        let last = serde_json::json!({"terminated": {
            "exitCode": 137, "reason": "OOMKilled", "containerID": format!("containerd://{CID}"),
            "startedAt": "2025-11-26T09:39:00Z", "finishedAt": "2025-11-26T09:40:11Z"}});
        let status = if alive {
            serde_json::json!({"name": "trainer", "restartCount": 0, "ready": true, "image": "i", "imageID": "",
                "containerID": format!("containerd://{CID}"),
                "state": {"running": {"startedAt": "2025-11-26T09:39:00Z"}}})
        } else {
            serde_json::json!({"name": "trainer", "restartCount": 3, "ready": true, "image": "i", "imageID": "",
                "containerID": "containerd://ffff",
                "state": {"running": {"startedAt": "2025-11-26T09:40:20Z"}}, "lastState": last})
        };
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "train-0", "namespace": "ml", "uid": "p"},
            "spec": {"nodeName": "gpu-node-1", "containers": [{"name": "trainer", "image": "i",
                "resources": {"limits": {"memory": "1Gi"}}}]},
            "status": {"phase": "Running", "containerStatuses": [status]}
        }))
        .expect("pod")
    }

    fn run_on(pod: Pod, kills: Vec<OomKill>) -> Vec<Finding> {
        let ev = Evidence {
            pods: vec![pod],
            agents: vec![AgentRecords {
                events: kills
                    .into_iter()
                    .map(|k| NodeEvent::OomKill(Box::new(k)))
                    .collect(),
                ..AgentRecords::default()
            }],
            ..Evidence::default()
        };
        let config = Config::default();
        let ctx = Context::new(&ev, &config);
        run(&ctx)
    }

    fn value<'a>(f: &'a Finding, name: &str) -> &'a str {
        &f.evidence
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name} in {f:?}"))
            .value
    }

    #[test]
    fn container_limit_kill_with_growth_and_pressure() {
        let fs = run_on(pod(false), vec![kill(OomConstraint::Memcg, true, 0)]);
        assert_eq!(fs.len(), 1, "{fs:?}");
        let f = &fs[0];
        assert_eq!(f.kind, Kind::OomKilled);
        assert_eq!(f.confidence, Confidence::High);
        assert_eq!(f.subject.container.as_deref(), Some("trainer"));
        assert!(
            f.summary.contains(&format!(
                "process python3 (pid 42: anon-rss {}, file-rss {}, shmem-rss {})",
                human_bytes(900 << 20),
                human_bytes(0),
                human_bytes(0)
            )),
            "{}",
            f.summary
        );
        assert!(
            f.summary.contains("at its 1Gi memory limit"),
            "{}",
            f.summary
        );
        // From the last low point (200 MiB at 2 s) to the peak at 10 s.
        assert_eq!(
            value(f, "growth before the kill"),
            "200 MiB -> 1 GiB in 8s (103 MiB/s)"
        );
        // The rise between the samples around the jump (200 MiB at 2 s,
        // then up at 6 s and 10 s), not from the window's first point.
        assert!(
            f.summary.contains(&format!(
                "Memory jumped by {} in 8s",
                human_bytes(824 << 20)
            )),
            "{}",
            f.summary
        );
        assert!(
            value(f, "memory pressure before the kill")
                .starts_with("25.0 ms stalled over the last 10s")
        );
        assert_eq!(
            value(f, "recurrence"),
            "1 OOM kill(s) recorded by the agent, 3 restart(s) of the container"
        );
        assert!(
            f.next_steps
                .iter()
                .any(|s| s.contains("resources.limits.memory: 1280Mi")),
            "{:?}",
            f.next_steps
        );
        assert_eq!(f.cost.map(|c| c.restarts), Some(3));
    }

    #[test]
    fn a_worker_killed_while_the_container_lives() {
        let fs = run_on(pod(true), vec![kill(OomConstraint::Memcg, true, 0)]);
        assert_eq!(fs.len(), 1, "{fs:?}");
        assert_eq!(fs[0].kind, Kind::OomKilledWorker);
        assert!(fs[0].summary.contains("kept running"), "{}", fs[0].summary);
    }

    #[test]
    fn a_worker_killed_before_the_main_process_exits_by_itself() {
        // The trainer raised on its dead worker and exited 1: the main
        // process was not the victim (that exit would be 137).
        let mut v = serde_json::to_value(pod(false)).expect("json");
        let last = &mut v["status"]["containerStatuses"][0]["lastState"]["terminated"];
        last["exitCode"] = 1.into();
        last["message"] =
            "RuntimeError: DataLoader worker (pid 42) is killed by signal: Killed.\n".into();
        let fs = run_on(
            serde_json::from_value(v).expect("pod"),
            vec![kill(OomConstraint::Memcg, true, 0)],
        );
        let w = fs
            .iter()
            .find(|f| f.kind == Kind::OomKilledWorker)
            .unwrap_or_else(|| panic!("{fs:?}"));
        assert!(fs.iter().all(|f| f.kind != Kind::OomKilled), "{fs:?}");
        assert!(
            w.summary.contains("exited with code 1 because of it"),
            "{}",
            w.summary
        );
        assert!(
            value(w, "the main process said").contains("pid 42)"),
            "{w:?}"
        );
    }

    #[test]
    fn without_the_kernel_report_the_exits_own_words_name_the_dead_worker() {
        let mut v = serde_json::to_value(pod(false)).expect("json");
        let last = &mut v["status"]["containerStatuses"][0]["lastState"]["terminated"];
        last["exitCode"] = 1.into();
        last["message"] =
            "RuntimeError: DataLoader worker (pid 7) is killed by signal: Killed.\n".into();
        let fs = run_on(serde_json::from_value(v).expect("pod"), vec![]);
        let w = fs
            .iter()
            .find(|f| f.kind == Kind::OomKilledWorker)
            .unwrap_or_else(|| panic!("{fs:?}"));
        assert_eq!(w.confidence, Confidence::Medium);
        assert!(
            value(w, "the main process said").contains("pid 7)"),
            "{w:?}"
        );
        assert!(
            fs.iter().all(|f| f.kind != Kind::OomStatusWithoutKill),
            "{fs:?}"
        );
    }

    #[test]
    fn node_wide_oom_blames_the_node_not_the_limit() {
        let fs = run_on(pod(false), vec![kill(OomConstraint::Node, true, 0)]);
        assert_eq!(fs.len(), 1, "{fs:?}");
        let f = &fs[0];
        assert_eq!(f.kind, Kind::OomNode);
        assert!(
            f.summary.contains("Node gpu-node-1 ran out of memory"),
            "{}",
            f.summary
        );
        assert!(
            f.next_steps[0].contains("kubectl describe node gpu-node-1"),
            "{:?}",
            f.next_steps
        );
    }

    #[test]
    fn shared_memory_is_called_out() {
        let fs = run_on(pod(false), vec![kill(OomConstraint::Memcg, true, 700)]);
        let f = &fs[0];
        assert!(f.summary.contains("shared memory"), "{}", f.summary);
        assert!(
            f.next_steps.iter().any(|s| s.contains("/dev/shm")),
            "{:?}",
            f.next_steps
        );
    }

    #[test]
    fn missing_kernel_report_lowers_confidence() {
        let fs = run_on(pod(false), vec![kill(OomConstraint::Unknown, false, 0)]);
        let f = &fs[0];
        assert_eq!(f.confidence, Confidence::Low);
        assert!(f.summary.contains("which one is unknown"), "{}", f.summary);
        assert!(
            f.next_steps.iter().any(|s| s.contains("dmesg")),
            "{:?}",
            f.next_steps
        );
        let fs = run_on(pod(false), vec![kill(OomConstraint::Memcg, false, 0)]);
        assert_eq!(fs[0].confidence, Confidence::Medium);
    }

    #[test]
    fn steady_growth_is_called_a_leak_and_no_limit_is_suggested() {
        let mut k = kill(OomConstraint::Memcg, true, 0);
        k.window = (0..=30)
            .map(|i| point(i * 10, 100 + i * 30, 0, 0))
            .collect();
        k.time = Timestamp(T0 + 301 * 1_000_000_000);
        let fs = run_on(pod(false), vec![k]);
        let f = &fs[0];
        assert!(
            f.next_steps.iter().any(|s| s.contains("leak")),
            "{:?}",
            f.next_steps
        );
        assert!(
            !f.next_steps
                .iter()
                .any(|s| s.contains("resources.limits.memory:")),
            "{:?}",
            f.next_steps
        );
    }

    /// A group kill as an agent before the `group` field sent it: one
    /// event per process, the chosen victim first, the chosen one again
    /// last.
    fn per_process_group_kill() -> Vec<OomKill> {
        let lines = [
            (121, "python3", 900),
            (116, "pt_data_worker", 30),
            (118, "pt_data_worker", 20),
            (121, "python3", 900),
        ];
        lines
            .iter()
            .enumerate()
            .map(|(i, (pid, comm, anon))| {
                let mut k = kill(OomConstraint::Memcg, true, 0);
                k.time = Timestamp(k.time.0 + i as u64 * 3_000_000);
                k.oom_kill = Some(i as u64 + 1);
                k.oom_group_kill = Some(1);
                k.victim = Some(Victim {
                    pid: *pid,
                    comm: (*comm).into(),
                    anon_rss_bytes: anon << 20,
                    shmem_rss_bytes: 2 << 20,
                    ..Victim::default()
                });
                k
            })
            .collect()
    }

    #[test]
    fn a_group_kill_names_the_chosen_victim_and_counts_once() {
        // Old agents: four events, one OOM.
        let fs = run_on(pod(false), per_process_group_kill());
        assert_eq!(fs.len(), 1, "{fs:?}");
        let f = &fs[0];
        assert!(
            f.summary.contains(&format!(
                "the kernel chose process python3 (pid 121: anon-rss {}",
                human_bytes(900 << 20)
            )),
            "{}",
            f.summary
        );
        assert!(
            f.summary.contains("killed the 2 other processes of the container with it (pt_data_worker (pid 116), pt_data_worker (pid 118))"),
            "{}",
            f.summary
        );
        assert!(
            value(f, "recurrence")
                .starts_with("1 OOM kill(s) recorded by the agent (3 processes killed)"),
            "{}",
            value(f, "recurrence")
        );
        assert!(
            value(f, "killed with it (memory.oom.group)").starts_with(&format!(
                "2 other process(es): pt_data_worker pid 116 (anon-rss {}",
                human_bytes(30 << 20)
            ))
        );

        // A new agent's one event says the same.
        let mut k = kill(OomConstraint::Memcg, true, 0);
        k.victim.as_mut().expect("victim").pid = 121;
        k.group = Some(OomGroup {
            cgroup_path: k.container.cgroup_path.clone(),
            members: vec![Victim {
                pid: 116,
                comm: "pt_data_worker".into(),
                ..Victim::default()
            }],
            member_count: 1,
            skipped: 0,
            kill_lines: 3,
        });
        let fs = run_on(pod(false), vec![k]);
        assert!(
            fs[0].summary.contains("chose process python3 (pid 121")
                && fs[0].summary.contains(
                    "killed the 1 other process of the container with it (pt_data_worker (pid 116))"
                ),
            "{}",
            fs[0].summary
        );
    }

    #[test]
    fn limits_are_quoted_as_the_manifest_writes_them() {
        let p = pod(false);
        assert_eq!(limit_words(&p, "trainer", Some(1 << 30)), "1Gi");
        // memory.max keeps whole pages: a page short is the same limit.
        assert_eq!(limit_words(&p, "trainer", Some((1 << 30) - 4095)), "1Gi");
        // A cgroup limit that is not the spec's is not quoted as the spec's.
        assert_eq!(limit_words(&p, "trainer", Some(2 << 30)), "2 GiB");
        assert_eq!(limit_words(&p, "trainer", None), "no");
    }

    #[test]
    fn a_node_wide_kill_says_why_the_kernel_chose_it_and_how_far_below_its_limit() {
        let mut k = kill(OomConstraint::Node, true, 0);
        k.victim.as_mut().expect("victim").oom_score_adj = Some(1000);
        k.window = vec![point(0, 300, 0, 0), point(10, 400, 0, 0)];
        let fs = run_on(pod(false), vec![k]);
        let f = &fs[0];
        assert_eq!(f.kind, Kind::OomNode);
        assert!(
            f.summary.contains(&format!(
                "It was using {}, {} below its own 1Gi limit.",
                human_bytes(400 << 20),
                human_bytes(624 << 20),
            )),
            "{}",
            f.summary
        );
        assert!(
            f.summary.contains("oom_score_adj 1000, a BestEffort pod's"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn a_status_alone_names_the_memory_backed_volumes() {
        let mut pod = pod(false);
        pod.spec = Some(
            serde_json::from_value(serde_json::json!({
                "nodeName": "gpu-node-1",
                "containers": [{"name": "trainer", "image": "i",
                    "resources": {"limits": {"memory": "1Gi"}},
                    "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}],
                "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}}]
            }))
            .expect("spec"),
        );
        let ev = Evidence {
            pods: vec![pod],
            ..Evidence::default()
        };
        let config = Config::default();
        let fs = run(&Context::new(&ev, &config));
        let f = fs
            .iter()
            .find(|f| f.kind == Kind::OomKilled)
            .expect("oom_killed from the status");
        assert_eq!(f.confidence, Confidence::Medium);
        assert_eq!(
            value(f, "memory-backed volume"),
            "dshm (emptyDir medium: Memory, sizeLimit 512Mi, at /dev/shm)"
        );
    }

    #[test]
    fn score_reasons_follow_the_kubelets_policy() {
        let p = pod(false);
        assert!(score_reason(-997, &p, "trainer", None).contains("Guaranteed"));
        assert!(score_reason(999, &p, "trainer", None).contains("Burstable"));
        assert!(score_reason(-999, &p, "trainer", None).contains("protects"));
        assert!(
            score_reason(500, &p, "trainer", None)
                .starts_with("oom_score_adj 500, a Burstable pod's")
        );
        assert!(score_reason(1500, &p, "trainer", None).contains("workload changed it"));
        // Burstable: 16 GiB requested of a 128 GiB node gives 875.
        let burstable: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"},
            "spec": {"containers": [{"name": "trainer", "image": "i",
                "resources": {"requests": {"memory": "16Gi"}, "limits": {"memory": "32Gi"}}}]},
            "status": {"qosClass": "Burstable"}
        }))
        .expect("pod");
        let r = score_reason(875, &burstable, "trainer", Some(128 << 30));
        assert!(r.contains(" = 875: the smaller the memory request"), "{r}");
        assert!(!r.contains("would have set"), "{r}");
        let r = score_reason(1000, &burstable, "trainer", Some(128 << 30));
        assert!(
            r.contains("where the kubelet would have set 1000 - 1000 × "),
            "{r}"
        );
    }

    #[test]
    fn eviction_message_is_parsed() {
        let e = parse_eviction(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 56Mi. Container trainer was using 14Gi, request is 8Gi, has larger consumption of memory. ",
        );
        assert_eq!(e.resource, "memory");
        assert_eq!(e.threshold.as_deref(), Some("100Mi"));
        assert_eq!(e.available.as_deref(), Some("56Mi"));
        assert_eq!(
            e.containers,
            vec![("trainer".into(), "14Gi".into(), "8Gi".into())]
        );
    }

    #[test]
    fn suggested_limits_round_up_to_256_mib() {
        assert_eq!(suggest_mi(1 << 30, 25), 1280);
        assert_eq!(suggest_mi(14 << 30, 25), 17920);
    }
}
