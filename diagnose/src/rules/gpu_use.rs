//! GPU use: GPUs allocated and idle, GPU memory held with nothing
//! running, training that stopped making progress, NCCL collectives
//! spinning on a dead peer, and GPUs starved by their input pipeline.
//!
//! All of these read NVML samples of the GPUs the kubelet gave the pod
//! (PodResources holders, or a process of the pod on the GPU) and, where
//! the question needs it, the pod's container samples (CPU usage, CPU
//! throttling, I/O pressure). A rule speaks only about a window its
//! samples cover: a window covered in part gives Low confidence and
//! says how much was seen.
//!
//! Coverage is judged by the samples there are. Bundles come from
//! `gpuscope bundle` (exact points and 30 s points), `watch --samples`
//! (1 s), or metrics scraped every 15-60 s (or minutes apart): a series'
//! own cadence — the median interval between its samples — says what a
//! missed sample is. A gap is a hole in the coverage (the agent or the
//! scraper was down) only when it is longer than `max_sample_gap_s` and
//! than `gap_interval_factor` times that cadence: a dozen samples over two
//! hours, all at 0 % with no process, are two idle hours. Sparse samples
//! lower the confidence (a burst of work between two samples minutes
//! apart would not show), every finding prints the sampling interval, and
//! where the samples cannot support a judgement the engine says so as a
//! gap ([`gaps`]) instead of reading the silence as healthy.

use std::collections::BTreeMap;
use std::time::Duration;

use gpuscope_model::text::human_bytes;
use gpuscope_model::{ContainerSample, GpuSample, PsiScope, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use crate::Context;
use crate::evidence::Gap;
use crate::finding::{Confidence, Cost, Fact, Finding, Kind, duration};
use crate::k8s;
use crate::rules::odd_rank;

/// Thresholds of this family.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// How long a GPU must show no use before it is called idle, seconds.
    /// Default 1800 (30 min): long enough that checkpoint writes, data
    /// downloads, evaluation on the CPU and scheduler gaps between steps
    /// (minutes) are not mistaken for idleness, short enough to catch a
    /// forgotten notebook within the hour.
    pub idle_window_s: u64,
    /// Utilization at or below which a sample counts as doing nothing,
    /// percent. Default 1: NVML reports 0 on an idle GPU; 1 absorbs the
    /// rounding of a monitoring probe's own kernel.
    pub idle_util_percent: u32,
    /// GPU memory in use from which the GPU counts as "held" even when
    /// NVML lists no process (process lists can be empty under MIG or
    /// without permission), bytes. Default 1 GiB: a bare driver uses a
    /// few hundred MiB; a CUDA context with a model loaded uses more.
    pub held_memory_bytes: u64,
    /// Below this much covered time, no GPU-use finding is made at all,
    /// seconds. Default 300: fewer than a few minutes of samples say
    /// nothing about a pattern.
    pub min_coverage_s: u64,
    /// Share of a window the samples must cover for full confidence,
    /// percent. Default 90: allows for sampling jitter and a missed poll.
    pub coverage_percent: u64,
    /// Samples further apart than this leave a hole in the coverage,
    /// seconds, unless the series' own cadence is slower (see
    /// `gap_interval_factor`). Default 120: the agent samples GPUs every
    /// few seconds.
    pub max_sample_gap_s: u64,
    /// A gap is a hole only when it is also longer than this many times
    /// the series' median sampling interval. Default 3: a scrape every
    /// 15-60 s or every few minutes misses one or two points now and then
    /// (jitter, a slow target); three intervals without a point is an
    /// outage.
    pub gap_interval_factor: f64,
    /// Samples at most this far apart (median) are dense enough for full
    /// confidence, seconds. Default 60: the slowest common metrics scrape;
    /// samples further apart could miss minutes of work between them, so
    /// confidence is at most medium.
    pub dense_interval_s: u64,
    /// Fewer samples than this in a judged stretch give low confidence at
    /// most. Default 6: with fewer points one odd sample decides the
    /// verdict.
    pub min_samples: usize,
    /// How long GPU and CPU must be flat for a run to be stuck, seconds.
    /// Default 600 (10 min): a training step, an evaluation or a
    /// checkpoint rarely leaves both GPU and CPU silent that long, while
    /// the default NCCL watchdog timeout (10-30 min) may not have fired.
    pub stuck_window_s: u64,
    /// Utilization at or below which the GPU counts as flat for a stuck
    /// run, percent. Default 5.
    pub stuck_util_percent: u32,
    /// Container CPU at or below which it counts as flat, cores. Default
    /// 0.1: a deadlocked Python process's remaining threads (heartbeats,
    /// the NCCL watchdog) use a few percent of a core.
    pub stuck_cpu_cores: f64,
    /// Utilization that counts as real work earlier, percent. Default 50.
    pub active_util_percent: u32,
    /// How much earlier work (samples at or above `active_util_percent`)
    /// a run must have shown before going flat, seconds. Default 300:
    /// a run that never worked is not "stuck", it never started.
    pub active_min_s: u64,
    /// How far back to look for that earlier work, seconds. Default 7200.
    pub active_lookback_s: u64,
    /// Window of the NCCL wedge test, seconds. Default 600: a collective
    /// that waits that long is beyond any normal imbalance between ranks.
    pub wedge_window_s: u64,
    /// Utilization at or above which a GPU is "pinned", percent. Default
    /// 95: NCCL's spin-waiting kernels keep a GPU reported busy.
    pub wedge_util_percent: u32,
    /// Power draw below this share of the power limit means the SMs are
    /// not computing, percent. Default 30: real compute at full
    /// utilization draws well over half the limit on data-centre GPUs;
    /// a spinning kernel draws near idle.
    pub wedge_power_percent: f64,
    /// The same, in watts, when the power limit is unknown. Default 100:
    /// an H100 idles near 70 W and computes at 300-700 W.
    pub wedge_power_watts: f64,
    /// Memory used may move at most this much for the GPU to count as
    /// "nothing changing", bytes. Default 256 MiB.
    pub wedge_memory_flat_bytes: u64,
    /// Window of the input-bound test, seconds. Default 600.
    pub input_window_s: u64,
    /// Median utilization below which the GPU is underused, percent.
    /// Default 40: a healthy training loop keeps a GPU well above half busy.
    pub input_util_percent: u32,
    /// Container CPU at or above this share of its CPU limit counts as
    /// saturated, percent. Default 90.
    pub input_cpu_percent: f64,
    /// Share of CFS periods throttled above which the container is
    /// starved of CPU, percent. Default 25 (periods of 100 ms assumed,
    /// the kernel's default `cpu.cfs_period_us`).
    pub input_throttled_percent: f64,
    /// Median I/O pressure (`some` avg10) at or above which the container
    /// waits on storage, percent. Default 20.
    pub input_io_some_percent: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            idle_window_s: 1800,
            idle_util_percent: 1,
            held_memory_bytes: 1 << 30,
            min_coverage_s: 300,
            coverage_percent: 90,
            max_sample_gap_s: 120,
            gap_interval_factor: 3.0,
            dense_interval_s: 60,
            min_samples: 6,
            stuck_window_s: 600,
            stuck_util_percent: 5,
            stuck_cpu_cores: 0.1,
            active_util_percent: 50,
            active_min_s: 300,
            active_lookback_s: 7200,
            wedge_window_s: 600,
            wedge_util_percent: 95,
            wedge_power_percent: 30.0,
            wedge_power_watts: 100.0,
            wedge_memory_flat_bytes: 256 << 20,
            input_window_s: 600,
            input_util_percent: 40,
            input_cpu_percent: 90.0,
            input_throttled_percent: 25.0,
            input_io_some_percent: 20.0,
        }
    }
}

/// Every finding of this family.
pub(crate) fn run(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for pod in ctx.subjects() {
        if k8s::phase(pod) != "Running" {
            continue;
        }
        let gpus = by_gpu(ctx.gpus_of(pod));
        if gpus.is_empty() {
            continue;
        }
        let stuck = training_stuck(ctx, pod, &gpus);
        let wedged = nccl_wedge(ctx, pod, &gpus);
        // A stuck run also holds idle GPU memory: the stuck finding is
        // the better account of it.
        let stuck = stuck.filter(|_| wedged.is_none());
        let stuck = stuck.map(|f| odd_rank::name_odd_rank(ctx, pod, &gpus, f));
        let wedged = wedged.map(|f| odd_rank::name_odd_rank(ctx, pod, &gpus, f));
        out.extend(
            idle(ctx, pod, &gpus)
                .into_iter()
                .filter(|f| !(stuck.is_some() && f.kind == Kind::GpuMemoryIdle)),
        );
        out.extend(stuck);
        out.extend(wedged);
        out.extend(input_bound(ctx, pod, &gpus));
    }
    out
}

/// What the GPU-use rules could not judge for lack of samples, said as
/// gaps rather than read as health: a Running pod holding GPUs on a node
/// the agents' records do not cover, or whose GPUs the agent's samples do
/// not show, or show too sparsely or too briefly (less than
/// `min_coverage_s` covered) to judge (`gpu_use`); and a pod whose GPUs
/// are in use but underused (as [`input_bound`] asks) while its
/// containers were not sampled over the last `input_window_s`, so that
/// an input pipeline starving them (CPU saturated, I/O pressure) cannot
/// be told from a slow step (`training_progress`). A stuck run without
/// container samples is still reported, at Low, saying its CPU is
/// unknown.
pub(crate) fn gaps(ctx: &Context<'_>) -> Vec<Gap> {
    let t = &ctx.config.gpu_use;
    let mut out = Vec::new();
    for pod in ctx.subjects() {
        if k8s::phase(pod) != "Running" || k8s::gpu_request(pod) == 0 {
            continue;
        }
        let name = k8s::pod_name(pod);
        // No agent records at all: the `agent` gap already says so.
        let Some(a) = ctx.agent_of(pod) else {
            if !ctx.evidence.agents.is_empty() {
                out.push(Gap::new(
                    "gpu_use",
                    format!(
                        "{name}: the agents' records do not cover its node {}, so its GPU use was not judged",
                        k8s::node_name(pod).unwrap_or("(unknown)")
                    ),
                ));
            }
            continue;
        };
        if a.gpus.is_empty() {
            continue;
        }
        let gpus = by_gpu(ctx.gpus_of(pod));
        if gpus.is_empty() {
            out.push(Gap::new(
                "gpu_use",
                format!(
                    "{name}: the agent's GPU samples name none of its GPUs (no PodResources holder, no process of it), so its GPU use was not judged"
                ),
            ));
            continue;
        }
        let judged = gpus.values().any(|s| {
            s.len() >= 2 && covered(s, |g| g.time, hole_after(t, s)) >= secs(t.min_coverage_s)
        });
        if !judged {
            let all: Vec<&GpuSample> = gpus.values().flatten().copied().collect();
            let span = match (
                all.iter().map(|g| g.time).min(),
                all.iter().map(|g| g.time).max(),
            ) {
                (Some(a), Some(b)) => duration(b.since(a)),
                _ => "no time".to_owned(),
            };
            out.push(Gap::new(
                "gpu_use",
                format!(
                    "{name}: {} over {span} of its GPUs cover less than the {} a judgement of GPU use needs; idle, stuck or starved GPUs would not show",
                    sampling(&all),
                    duration(secs(t.min_coverage_s))
                ),
            ));
            continue;
        }
        // Underused GPUs: whether the input pipeline starves them rests
        // on the containers' CPU and pressure.
        let from = ctx.now.saturating_sub(secs(t.input_window_s));
        let sampled = ctx
            .samples_of(pod)
            .iter()
            .any(|s| s.time >= from && s.cpu.is_some());
        if let Some((_, med)) = underused(ctx, pod, &gpus).filter(|_| !sampled) {
            out.push(Gap::new(
                "training_progress",
                format!(
                    "{name}: its GPUs ran at a median {med:.0} % over the last {}, below the {} % a healthy loop keeps, but its containers were not sampled then (no CPU, no pressure), so whether the input pipeline starves them was not judged",
                    duration(secs(t.input_window_s)),
                    t.input_util_percent
                ),
            ));
        }
    }
    out
}

type Series<'a> = BTreeMap<String, Vec<&'a GpuSample>>;

fn by_gpu(v: Vec<&GpuSample>) -> Series<'_> {
    let mut m: Series<'_> = BTreeMap::new();
    for g in v {
        m.entry(g.uuid.clone()).or_default().push(g);
    }
    m
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Time covered by samples (oldest first): the sum of the intervals
/// between neighbours no further apart than `max_gap`.
fn covered<T>(v: &[T], time: impl Fn(&T) -> Timestamp, max_gap: Duration) -> Duration {
    v.windows(2)
        .map(|w| time(&w[1]).since(time(&w[0])))
        .filter(|d| *d <= max_gap)
        .sum()
}

/// The median interval between neighbouring samples (oldest first).
fn cadence<T>(v: &[T], time: impl Fn(&T) -> Timestamp) -> Option<Duration> {
    let mut gaps: Vec<Duration> = v
        .windows(2)
        .map(|w| time(&w[1]).since(time(&w[0])))
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    Some(gaps[gaps.len() / 2])
}

/// The longest gap that is still sampling, not a hole, for this series:
/// `max_sample_gap_s`, or `gap_interval_factor` times its cadence when
/// that is longer.
fn hole_after(t: &Thresholds, s: &[&GpuSample]) -> Duration {
    let own = cadence(s, |g| g.time).map_or(Duration::ZERO, |c| c.mul_f64(t.gap_interval_factor));
    secs(t.max_sample_gap_s).max(own)
}

/// `12 samples, about every 10 min` for the evidence.
fn sampling(s: &[&GpuSample]) -> String {
    match cadence(s, |g| g.time) {
        Some(c) => format!("{} samples, about every {}", s.len(), duration(c)),
        None => format!("{} sample", s.len()),
    }
}

/// How sure a verdict from these samples can be: low with fewer than
/// `min_samples`, medium when they are further apart than
/// `dense_interval_s`, else high.
fn density(t: &Thresholds, s: &[&GpuSample]) -> Confidence {
    if s.len() < t.min_samples {
        Confidence::Low
    } else if cadence(s, |g| g.time).is_some_and(|c| c > secs(t.dense_interval_s)) {
        Confidence::Medium
    } else {
        Confidence::High
    }
}

/// The samples of the last `window` before `now`.
fn last<'a>(v: &[&'a GpuSample], now: Timestamp, window: Duration) -> Vec<&'a GpuSample> {
    let from = now.saturating_sub(window);
    v.iter()
        .copied()
        .filter(|g| g.time >= from && g.time <= now)
        .collect()
}

/// This pod's processes on the GPU (all of them when the pod is the
/// GPU's only holder, since processes may lack a container identity).
fn pod_processes(pod: &Pod, g: &GpuSample) -> usize {
    let shared = g
        .holders
        .iter()
        .any(|h| h.pod != k8s::name(pod) || h.namespace != k8s::namespace(pod));
    if shared {
        g.processes
            .iter()
            .filter(|p| p.container.as_ref().and_then(|c| c.pod_uid.as_deref()) == k8s::uid(pod))
            .count()
    } else {
        g.processes.len()
    }
}

fn util(g: &GpuSample) -> u32 {
    g.utilization_gpu_percent.unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Some(v[v.len() / 2])
}

/// The container names the kubelet gave the GPU to.
fn holder_container(pod: &Pod, s: &[&GpuSample]) -> Option<String> {
    let mut names: Vec<&str> = s
        .iter()
        .flat_map(|g| g.holders.iter())
        .filter(|h| h.pod == k8s::name(pod) && h.namespace == k8s::namespace(pod))
        .map(|h| h.container.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [one] => Some((*one).to_owned()),
        _ => {
            let spec = k8s::spec(pod);
            let gpu_ones: Vec<_> = spec
                .containers
                .iter()
                .filter(|c| {
                    k8s::resource(c.resources.as_ref(), k8s::NVIDIA_GPU, true).unwrap_or(0.0) > 0.0
                })
                .collect();
            (gpu_ones.len() == 1).then(|| gpu_ones[0].name.clone())
        }
    }
}

/// A streak: the newest run of samples that all satisfy `pred`, going
/// back from the newest; returns (start, the samples).
fn streak<'a>(v: &[&'a GpuSample], pred: impl Fn(&GpuSample) -> bool) -> Vec<&'a GpuSample> {
    let n = v.iter().rev().take_while(|g| pred(g)).count();
    v[v.len() - n..].to_vec()
}

/// GpuIdle and GpuMemoryIdle.
fn idle(ctx: &Context<'_>, pod: &Pod, gpus: &Series<'_>) -> Vec<Finding> {
    let t = &ctx.config.gpu_use;
    let gap = secs(t.max_sample_gap_s);
    let window = secs(t.idle_window_s);
    let now = ctx.now;
    let started = k8s::status(pod).start_time.as_ref().map(k8s::ts);
    // A pod younger than the window may still be loading its model or
    // data: it is not judged yet.
    if started.is_some_and(|s| now.since(s) < window) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut f_stale_note: Option<Timestamp> = None;
    for kind in [Kind::GpuIdle, Kind::GpuMemoryIdle] {
        // (uuid, streak, covered, name)
        let mut hits: Vec<(String, Vec<&GpuSample>, Duration)> = Vec::new();
        for (uuid, s) in gpus {
            let s: Vec<&GpuSample> = s.iter().copied().filter(|g| g.time <= now).collect();
            let held = |g: &GpuSample| {
                pod_processes(pod, g) > 0 || g.memory_used_bytes >= t.held_memory_bytes
            };
            let quiet = |g: &GpuSample| util(g) <= t.idle_util_percent;
            let st = match kind {
                Kind::GpuIdle => streak(&s, |g| {
                    quiet(g)
                        && pod_processes(pod, g) == 0
                        && g.memory_used_bytes < t.held_memory_bytes
                }),
                _ => streak(&s, |g| quiet(g) && held(g)),
            };
            if st.len() < 2 {
                continue;
            }
            let gap = hole_after(t, &s);
            let cov = covered(&st, |g| g.time, gap);
            if cov < secs(t.min_coverage_s) {
                continue;
            }
            // Shorter than the window: worth a (Low) finding only when the
            // samples begin there; a busy sample just before means the GPU
            // has not been idle long enough.
            let long = cov.as_secs() * 100 >= window.as_secs() * t.coverage_percent;
            let busy_just_before = s
                .iter()
                .any(|g| g.time < st[0].time && st[0].time.since(g.time) <= gap);
            if long || !busy_just_before {
                hits.push((uuid.clone(), st, cov));
            }
        }
        if hits.is_empty() {
            continue;
        }
        let full = hits
            .iter()
            .all(|(_, _, cov)| cov.as_secs() * 100 >= window.as_secs() * t.coverage_percent);
        let n = hits.len();
        let total_hours: f64 = hits.iter().map(|(_, _, c)| c.as_secs_f64() / 3600.0).sum();
        let longest = hits.iter().map(|(_, _, c)| *c).max().unwrap_or_default();
        let since = hits
            .iter()
            .map(|(_, st, _)| st[0].time)
            .min()
            .unwrap_or(now);
        let g0 = hits[0].1[hits[0].1.len() - 1];
        let all_s: Vec<&GpuSample> = gpus.values().flatten().copied().collect();
        let container = holder_container(pod, &all_s);
        let mut subject = ctx.subject(pod, container.as_deref());
        if n == 1 {
            subject.gpu = Some(hits[0].0.clone());
        }
        // The GPU as people find it: its index on the node (what
        // nvidia-smi and CUDA_VISIBLE_DEVICES say) and its UUID.
        let which = if n == 1 {
            format!("GPU {} ({}, {})", g0.index, hits[0].0, g0.name)
        } else {
            format!("{n} GPUs ({})", g0.name)
        };
        // Was it busy before the streak? Then the job may be done.
        let busy_before = hits.iter().any(|(uuid, st, _)| {
            gpus.get(uuid).is_some_and(|s| {
                s.iter()
                    .any(|g| g.time < st[0].time && util(g) >= t.active_util_percent)
            })
        });
        let covered_s = if full {
            format!("for {}", duration(longest))
        } else {
            format!(
                "for the {} the samples cover (the {} window needs more)",
                duration(longest),
                duration(window)
            )
        };
        let summary = match kind {
            Kind::GpuIdle => format!(
                "{which} allocated to this pod ran no process {covered_s}, since {since}: {total_hours:.1} GPU-hours allocated and unused{}.",
                if busy_before {
                    "; it was busy before, so the job may have finished while its container did not exit"
                } else {
                    ""
                }
            ),
            _ => format!(
                "{which} allocated to this pod hold {} of memory but computed nothing (utilization ≤ {} %) {covered_s}, since {since}: {total_hours:.1} GPU-hours held and unused, typical of an idle notebook or a server with no traffic.",
                human_bytes(g0.memory_used_bytes),
                t.idle_util_percent
            ),
        };
        // Samples that stopped well before "now" describe the past.
        let newest = gpus.values().flatten().map(|g| g.time).max().unwrap_or(now);
        let gap = gpus.values().map(|s| hole_after(t, s)).max().unwrap_or(gap);
        let stale = now.since(newest) > gap;
        let dense = hits
            .iter()
            .map(|(_, st, _)| density(t, st))
            .min()
            .unwrap_or(Confidence::Low);
        if stale {
            f_stale_note = Some(newest);
        }
        let conf = if !full || stale || ctx.evidence.lacks("agent") {
            Confidence::Low
        } else if kind == Kind::GpuMemoryIdle {
            Confidence::High
        } else if started.is_some_and(|s| s > since) {
            Confidence::Medium
        } else {
            Confidence::High
        };
        let mut f = Finding::new(kind, subject, conf.min(dense), summary);
        if let Some(t) = f_stale_note.take() {
            f = f.fact(Fact::at(
                "GPU samples end",
                format!("{} before the snapshot", duration(now.since(t))),
                t,
            ));
        }
        for (uuid, st, cov) in &hits {
            let l = st[st.len() - 1];
            f = f.fact(Fact::at(
                format!("GPU {}", short(uuid)),
                format!(
                    "utilization max {} % over {} ({}), {} process(es), {} of {} memory used",
                    st.iter().map(|g| util(g)).max().unwrap_or(0),
                    duration(*cov),
                    sampling(st),
                    pod_processes(pod, l),
                    human_bytes(l.memory_used_bytes),
                    human_bytes(l.memory_total_bytes)
                ),
                l.time,
            ));
        }
        f = f.fact(Fact::new(
            "GPU-hours",
            format!("{total_hours:.2} ({n} GPU(s) x idle time)"),
        ));
        if !full {
            f = f.fact(Fact::new(
                "coverage",
                format!(
                    "samples cover {} of the {} window",
                    duration(longest),
                    duration(window)
                ),
            ));
        }
        let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
        let owner = k8s::owner(pod);
        f = match kind {
            Kind::GpuIdle => f
                .step(format!(
                    "`kubectl logs -n {ns} {name}` and `kubectl exec -n {ns} {name} -- nvidia-smi`: if the work is done, let the program exit (a finished script followed by `sleep infinity`, or a sidecar keeping the pod alive), or delete the {}.",
                    owner.as_deref().unwrap_or("pod")
                ))
                .step("If it waits for something (data, a peer, a lock), fix that; if it was never going to use the GPU, remove the nvidia.com/gpu request."),
            _ => f
                .step(format!(
                    "If this is a notebook or dev pod, stop it when not in use (`kubectl delete pod -n {ns} {name}`, or scale its owner to 0), or give it a culling policy (JupyterHub cull_idle, Kubeflow notebook culling)."
                ))
                .step("For a server with little traffic, share the GPU (MIG or time-slicing) or scale it to zero when idle."),
        };
        f.cost = Some(Cost {
            gpu_hours: total_hours,
            restarts: 0,
        });
        out.push(f);
    }
    out
}

fn short(uuid: &str) -> &str {
    &uuid[..uuid.len().min(12)]
}

/// Container CPU use over a time range, cores (summed over the pod's
/// containers), and how many container samples backed it.
fn cpu_cores(ctx: &Context<'_>, pod: &Pod, from: Timestamp, to: Timestamp) -> Option<f64> {
    let samples = ctx.samples_of(pod);
    let mut by: BTreeMap<&str, Vec<&ContainerSample>> = BTreeMap::new();
    for s in samples
        .into_iter()
        .filter(|s| s.time >= from && s.time <= to)
    {
        if s.cpu.is_some() {
            by.entry(
                s.container
                    .container_id
                    .as_deref()
                    .unwrap_or(&s.container.cgroup_path),
            )
            .or_default()
            .push(s);
        }
    }
    let mut total = None;
    for v in by.values() {
        if let (Some(a), Some(b)) = (v.first(), v.last()) {
            let dt = b.time.since(a.time).as_secs_f64();
            if dt <= 0.0 {
                continue;
            }
            let du = b
                .cpu
                .map_or(0, |c| c.usage_us)
                .saturating_sub(a.cpu.map_or(0, |c| c.usage_us));
            *total.get_or_insert(0.0) += du as f64 / 1e6 / dt;
        }
    }
    total
}

fn training_stuck(ctx: &Context<'_>, pod: &Pod, gpus: &Series<'_>) -> Option<Finding> {
    let t = &ctx.config.gpu_use;
    let now = ctx.now;
    let window = secs(t.stuck_window_s);
    let gap = secs(t.max_sample_gap_s);
    let mut flat_since: Option<Timestamp> = None;
    let mut active_until: Option<Timestamp> = None;
    let mut held_mem = 0u64;
    for s in gpus.values() {
        let w = last(s, now, window);
        let gap = gap.max(hole_after(t, s));
        if covered(&w, |g| g.time, gap).as_secs() * 100 < window.as_secs() * t.coverage_percent {
            return None;
        }
        if w.iter().any(|g| util(g) > t.stuck_util_percent) {
            return None;
        }
        // The process still holds the GPU: not finished.
        let l = w.last()?;
        if pod_processes(pod, l) == 0 && l.memory_used_bytes < t.held_memory_bytes {
            return None;
        }
        held_mem += l.memory_used_bytes;
        let flat = streak(s, |g| util(g) <= t.stuck_util_percent);
        let start = flat.first()?.time;
        flat_since = Some(flat_since.map_or(start, |x| x.min(start)));
        // Earlier real work.
        let from = start.saturating_sub(secs(t.active_lookback_s));
        let active: Vec<&GpuSample> = s
            .iter()
            .copied()
            .filter(|g| g.time >= from && g.time < start && util(g) >= t.active_util_percent)
            .collect();
        if covered(&active, |g| g.time, gap) < secs(t.active_min_s) {
            return None;
        }
        let until = active.last()?.time;
        active_until = Some(active_until.map_or(until, |x| x.max(until)));
    }
    let since = flat_since?;
    let cpu = cpu_cores(ctx, pod, now.saturating_sub(window), now);
    if cpu.is_some_and(|c| c > t.stuck_cpu_cores) {
        return None; // the CPU is working: a CPU phase, not a hang
    }
    let flat_for = now.since(since);
    let n = gpus.len();
    let all: Vec<&GpuSample> = gpus.values().flatten().copied().collect();
    let container = holder_container(pod, &all);
    let mut subject = ctx.subject(pod, container.as_deref());
    if n == 1 {
        subject.gpu = gpus.keys().next().cloned();
    }
    let conf = match cpu {
        Some(_) if !ctx.evidence.lacks("agent") => Confidence::High,
        _ => Confidence::Low,
    };
    let cpu_s = match cpu {
        Some(c) => format!("container CPU at {c:.2} cores"),
        None => "container CPU unknown (no container samples)".to_owned(),
    };
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let hours = n as f64 * flat_for.as_secs_f64() / 3600.0;
    let mut f = Finding::new(
        Kind::TrainingStuck,
        subject,
        conf,
        format!(
            "Training in this pod stopped making progress {} ago: its {n} GPU(s) went flat (utilization ≤ {} %) after working, with {cpu_s}, while the process still holds {} of GPU memory; a hang (deadlock, a dead DataLoader worker, or waiting on a dead peer), not a finished job.",
            duration(flat_for),
            t.stuck_util_percent,
            human_bytes(held_mem)
        ),
    )
    .fact(Fact::at("flat since", since.to_string(), since))
    .fact(Fact::new("container CPU over the last window", cpu.map_or_else(|| "unknown".to_owned(), |c| format!("{c:.3} cores"))));
    if let Some(u) = active_until {
        f = f.fact(Fact::at(
            "last busy sample",
            format!("utilization ≥ {} % until then", t.active_util_percent),
            u,
        ));
    }
    f = f
        .fact(Fact::new("GPU memory still held", human_bytes(held_mem)))
        .fact(Fact::new("GPU-hours since it stopped", format!("{hours:.2}")))
        .step(format!(
            "See where it waits: `kubectl exec -n {ns} {name} -- py-spy dump --pid 1` (all threads, incl. DataLoader workers; add --native for NCCL/CUDA frames)."
        ))
        .step(format!(
            "`kubectl logs -n {ns} {name} --tail=50` for the last step logged; check the job's other ranks for one that died or restarted."
        ))
        .step("Make hangs fail instead of holding GPUs: a timeout in init_process_group, TORCH_NCCL_ASYNC_ERROR_HANDLING=1, and DataLoader(timeout=...).");
    f.cost = Some(Cost {
        gpu_hours: hours,
        restarts: 0,
    });
    Some(f)
}

/// Whether a pod's GPUs show the NCCL wedge (for the stuck-in-I/O rules,
/// which count the ranks of a job that wait on another).
pub(crate) fn nccl_wedged(ctx: &Context<'_>, pod: &Pod) -> bool {
    let gpus = by_gpu(ctx.gpus_of(pod));
    !gpus.is_empty() && nccl_wedge(ctx, pod, &gpus).is_some()
}

fn nccl_wedge(ctx: &Context<'_>, pod: &Pod, gpus: &Series<'_>) -> Option<Finding> {
    let t = &ctx.config.gpu_use;
    let now = ctx.now;
    let window = secs(t.wedge_window_s);
    let gap = secs(t.max_sample_gap_s);
    let low_power = |g: &GpuSample| match (g.power_draw_watts, g.power_limit_watts) {
        (Some(p), Some(l)) if l > 0.0 => p < l * t.wedge_power_percent / 100.0,
        (Some(p), _) => p < t.wedge_power_watts,
        _ => false,
    };
    let mut wedged: Vec<(&String, Vec<&GpuSample>)> = Vec::new();
    for (uuid, s) in gpus {
        let w = last(s, now, window);
        let gap = gap.max(hole_after(t, s));
        if w.len() < 2
            || covered(&w, |g| g.time, gap).as_secs() * 100 < window.as_secs() * t.coverage_percent
        {
            continue;
        }
        let pinned = w
            .iter()
            .all(|g| util(g) >= t.wedge_util_percent && low_power(g));
        let lo = w.iter().map(|g| g.memory_used_bytes).min().unwrap_or(0);
        let hi = w.iter().map(|g| g.memory_used_bytes).max().unwrap_or(0);
        if pinned && hi - lo <= t.wedge_memory_flat_bytes {
            let st = streak(s, |g| util(g) >= t.wedge_util_percent && low_power(g));
            wedged.push((uuid, st));
        }
    }
    if wedged.is_empty() {
        return None;
    }
    let n = wedged.len();
    let all: Vec<&GpuSample> = gpus.values().flatten().copied().collect();
    let container = holder_container(pod, &all);
    let mut subject = ctx.subject(pod, container.as_deref());
    if n == 1 {
        subject.gpu = Some(wedged[0].0.clone());
    }
    let since = wedged.iter().map(|(_, s)| s[0].time).min().unwrap_or(now);
    let for_ = now.since(since);
    let l = wedged[0].1[wedged[0].1.len() - 1];
    let power = l
        .power_draw_watts
        .map(|p| {
            format!(
                "{p:.0} W{}",
                l.power_limit_watts
                    .map(|x| format!(" of a {x:.0} W limit"))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let conf = if n == gpus.len() {
        Confidence::High
    } else {
        Confidence::Medium
    };
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let hours = n as f64 * for_.as_secs_f64() / 3600.0;
    let mut f = Finding::new(
        Kind::NcclWedge,
        subject,
        conf,
        format!(
            "{n} of the pod's {} GPU(s) have shown ~100 % utilization at near-idle power ({power}) with nothing changing for {}: NCCL kernels spin-waiting on a peer that never arrives, not computing.",
            gpus.len(),
            duration(for_)
        ),
    );
    for (uuid, s) in &wedged {
        let last = s[s.len() - 1];
        f = f.fact(Fact::at(
            format!("GPU {}", short(uuid)),
            format!(
                "utilization {}-{} %, power {:.0}-{:.0} W, memory used {} (flat) over {}",
                s.iter().map(|g| util(g)).min().unwrap_or(0),
                s.iter().map(|g| util(g)).max().unwrap_or(0),
                s.iter()
                    .filter_map(|g| g.power_draw_watts)
                    .fold(f64::INFINITY, f64::min),
                s.iter()
                    .filter_map(|g| g.power_draw_watts)
                    .fold(0.0, f64::max),
                human_bytes(last.memory_used_bytes),
                duration(last.time.since(s[0].time))
            ),
            last.time,
        ));
    }
    f = f
        .fact(Fact::at("wedged since", since.to_string(), since))
        .fact(Fact::new("GPU-hours since", format!("{hours:.2}")))
        .step(format!(
            "Find the rank that is not in the collective: `kubectl exec -n {ns} {name} -- py-spy dump --pid 1` here and in the job's other pods; the odd one out (in a different op, dead, or restarted) is the cause."
        ))
        .step("Re-run with NCCL_DEBUG=INFO to see the communicator and peers; set a timeout in init_process_group(timeout=...) and TORCH_NCCL_ASYNC_ERROR_HANDLING=1 so a wedge fails the job instead of holding the GPUs.");
    f.cost = Some(Cost {
        gpu_hours: hours,
        restarts: 0,
    });
    Some(f)
}

/// The GPU samples of the input-bound window and their median
/// utilization, when the pod's GPUs are in use (a process of the pod on
/// each sample) but underused: above idle, below `input_util_percent`.
fn underused<'a>(
    ctx: &Context<'_>,
    pod: &Pod,
    gpus: &Series<'a>,
) -> Option<(Vec<&'a GpuSample>, f64)> {
    let t = &ctx.config.gpu_use;
    let window = secs(t.input_window_s);
    let w: Vec<&GpuSample> = gpus
        .values()
        .flat_map(|s| last(s, ctx.now, window))
        .collect();
    if w.is_empty() || !w.iter().all(|g| pod_processes(pod, g) > 0) {
        return None;
    }
    let med = median(w.iter().map(|g| f64::from(util(g))).collect())?;
    (med < f64::from(t.input_util_percent) && med > f64::from(t.idle_util_percent))
        .then_some((w, med))
}

fn input_bound(ctx: &Context<'_>, pod: &Pod, gpus: &Series<'_>) -> Option<Finding> {
    let t = &ctx.config.gpu_use;
    let now = ctx.now;
    let window = secs(t.input_window_s);
    let gap = secs(t.max_sample_gap_s);
    let (w, med) = underused(ctx, pod, gpus)?;
    let gpu_cov = gpus
        .values()
        .map(|s| covered(&last(s, now, window), |g| g.time, gap.max(hole_after(t, s))))
        .min()
        .unwrap_or_default();
    if gpu_cov < secs(t.min_coverage_s) {
        return None;
    }
    // The container that holds the GPU, and its samples.
    let container = holder_container(pod, &w);
    let spec = k8s::spec(pod);
    let status = k8s::container_statuses(pod).find(|s| {
        container.as_deref().is_none_or(|c| s.name == c)
            && s.state.as_ref().is_some_and(|x| x.running.is_some())
    });
    let id = status.and_then(|s| s.container_id.as_deref())?;
    let from = now.saturating_sub(window);
    let cs: Vec<&ContainerSample> = ctx
        .samples_of_container(pod, id)
        .into_iter()
        .filter(|s| s.time >= from && s.time <= now)
        .collect();
    let (a, b) = (cs.first()?, cs.last()?);
    let dt = b.time.since(a.time).as_secs_f64();
    if dt <= 0.0 {
        return None;
    }
    let cname = status.map(|s| s.name.clone());
    let cpu_limit = spec
        .containers
        .iter()
        .find(|c| Some(&c.name) == cname.as_ref())
        .and_then(|c| k8s::resource(c.resources.as_ref(), "cpu", true));
    let cores = match (a.cpu, b.cpu) {
        (Some(x), Some(y)) => Some(y.usage_us.saturating_sub(x.usage_us) as f64 / 1e6 / dt),
        _ => None,
    };
    let throttled = match (
        a.cpu.and_then(|c| c.nr_throttled),
        b.cpu.and_then(|c| c.nr_throttled),
    ) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x) as f64 * 100.0 / (dt / 0.1)),
        _ => None,
    };
    let io = median(
        cs.iter()
            .filter_map(|s| s.pressure.io.map(|p| f64::from(p.some.avg10)))
            .collect(),
    );
    let cpu_sat = matches!((cores, cpu_limit), (Some(c), Some(l)) if l > 0.0 && c * 100.0 >= l * t.input_cpu_percent);
    let thr = throttled.is_some_and(|x| x >= t.input_throttled_percent);
    let io_hi = io.is_some_and(|x| x >= f64::from(t.input_io_some_percent));
    if !(cpu_sat || thr || io_hi) {
        return None;
    }
    let scope = b.pressure_scope;
    let mut reasons = Vec::new();
    if cpu_sat || thr {
        reasons.push(format!(
            "its CPU is saturated ({:.1} of {} cores{})",
            cores.unwrap_or(0.0),
            cpu_limit.map_or_else(|| "unlimited".to_owned(), |l| format!("{l:.1}")),
            throttled
                .filter(|_| thr)
                .map(|x| format!(", throttled in {x:.0} % of periods"))
                .unwrap_or_default()
        ));
    }
    if io_hi {
        reasons.push(format!(
            "it waits on I/O (io pressure some {:.0} %{})",
            io.unwrap_or(0.0),
            if scope == PsiScope::Node {
                ", the node's figure"
            } else {
                ""
            }
        ));
    }
    let full = gpu_cov.as_secs() * 100 >= window.as_secs() * t.coverage_percent;
    let conf = if !full {
        Confidence::Low
    } else if cpu_sat || thr || scope == PsiScope::Container {
        Confidence::High
    } else {
        Confidence::Medium
    };
    let mut subject = ctx.subject(pod, cname.as_deref());
    if gpus.len() == 1 {
        subject.gpu = gpus.keys().next().cloned();
    }
    let hours = gpus.len() as f64 * gpu_cov.as_secs_f64() / 3600.0 * (1.0 - med / 100.0);
    let mut f = Finding::new(
        Kind::InputBound,
        subject,
        conf,
        format!(
            "The GPU waits for input: median utilization {med:.0} % over the last {} while {}.",
            duration(gpu_cov),
            reasons.join(" and ")
        ),
    )
    .fact(Fact::at(
        "median GPU utilization",
        format!("{med:.0} % ({} samples)", w.len()),
        b.time,
    ));
    if let Some(c) = cores {
        f = f.fact(Fact::at(
            "container CPU",
            format!(
                "{c:.2} cores{}",
                cpu_limit
                    .map(|l| format!(" of a {l:.1}-core limit"))
                    .unwrap_or_default()
            ),
            b.time,
        ));
    }
    if let Some(x) = throttled {
        f = f.fact(Fact::at(
            "CPU throttled periods",
            format!("{x:.0} %"),
            b.time,
        ));
    }
    if let Some(x) = io {
        f = f.fact(Fact::at(
            "I/O pressure (some avg10, median)",
            format!(
                "{x:.1} % ({} scope)",
                if scope == PsiScope::Node {
                    "node"
                } else {
                    "container"
                }
            ),
            b.time,
        ));
    }
    if cpu_sat || thr {
        f = f
            .step(format!(
                "Raise the container's CPU (resources.limits.cpu above {}, or drop the CPU limit and keep the request) so the data pipeline keeps up with the GPU.",
                cpu_limit.map_or_else(|| "its use".to_owned(), |l| format!("{l:.0}"))
            ))
            .step("Move work off the critical path: more DataLoader workers (num_workers ≈ cores), pin_memory=True, persistent_workers=True, decode/augment on the GPU (DALI, torchvision.io.decode_jpeg on cuda).");
    }
    if io_hi {
        f = f.step("Read faster: stage the dataset on local NVMe (an emptyDir or local PV) instead of network storage, use larger sequential shards (WebDataset, TFRecord), and prefetch (prefetch_factor).");
    }
    f.cost = Some(Cost {
        gpu_hours: hours,
        restarts: 0,
    });
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_samples_cover_by_their_own_cadence() {
        let t = Thresholds::default();
        let g = |s: u64| GpuSample {
            time: Timestamp(s * 1_000_000_000),
            index: 0,
            uuid: "GPU-0".into(),
            parent_uuid: None,
            name: "NVIDIA H100 80GB HBM3".into(),
            pci_bus_id: String::new(),
            utilization_gpu_percent: Some(0),
            utilization_memory_percent: Some(0),
            memory_total_bytes: 80 << 30,
            memory_used_bytes: 0,
            power_draw_watts: None,
            power_limit_watts: None,
            temperature_celsius: None,
            sm_clock_mhz: None,
            persistence_mode: None,
            processes: Vec::new(),
            holders: Vec::new(),
            simulated: false,
            health: None,
        };
        // A dozen samples ten minutes apart: two hours covered, medium.
        let sparse: Vec<GpuSample> = (0..12).map(|i| g(i * 600)).collect();
        let sparse: Vec<&GpuSample> = sparse.iter().collect();
        let gap = hole_after(&t, &sparse);
        assert_eq!(covered(&sparse, |g| g.time, gap), secs(11 * 600));
        assert_eq!(density(&t, &sparse), Confidence::Medium);
        assert_eq!(sampling(&sparse), "12 samples, about every 10m");
        // Dense samples with an outage: the outage is a hole.
        let mut dense: Vec<GpuSample> = (0..60).map(|i| g(i * 5)).collect();
        dense.extend((0..60).map(|i| g(3600 + i * 5)));
        let dense: Vec<&GpuSample> = dense.iter().collect();
        let gap = hole_after(&t, &dense);
        assert_eq!(gap, secs(120));
        assert_eq!(covered(&dense, |g| g.time, gap), secs(2 * 59 * 5));
        assert_eq!(density(&t, &dense), Confidence::High);
    }

    #[test]
    fn coverage_skips_holes() {
        let ts = [0u64, 10, 20, 500, 510].map(|s| Timestamp(s * 1_000_000_000));
        assert_eq!(covered(&ts, |t| *t, secs(120)), secs(30));
    }
}
