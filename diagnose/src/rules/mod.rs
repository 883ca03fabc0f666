//! The rules, one module per family. Each family exports `run(ctx)`,
//! returning every finding it supports, and its `Thresholds`.
//!
//! One failure, one root cause: exit code 137 and the `OOMKilled` reason
//! belong to `oom`; GPU scheduling and admission to `gpu_health`; the log
//! tail's CUDA out-of-memory to `oom`, its NCCL errors and missing files to
//! `logs`. What follows from a cause (the crash loop after the exit that
//! ends each run, the exit a probe's kill causes, the lost GPU after its
//! XID 79, the Pending pod behind a device plugin that is down) is kept as
//! a finding of its own and linked to the cause by [`chains`], which runs
//! after every family.
//!
//! Arrows between families run one way: `pod` and `oom` consult `logs`
//! and `gpu_health`, never the reverse; `chains` reads them all.
//! What several families read lives below them all: the accessors over
//! Kubernetes objects and events in [`crate::k8s`], the wording of
//! durations in [`crate::finding`], and the scheduler's message, node
//! filters and per-node figures in [`scheduling`].

use crate::Context;
use crate::finding::Finding;

pub(crate) mod chains;
pub(crate) mod gpu_health;
pub(crate) mod gpu_use;
pub(crate) mod logs;
pub(crate) mod memory_story;
pub(crate) mod odd_rank;
pub(crate) mod oom;
pub(crate) mod pod;
pub(crate) mod scheduling;
pub(crate) mod stuck_io;

/// What the rules could not judge for lack of evidence, beyond the
/// evidence's own gaps: what led to an OOM kill ([`oom::gaps`]), GPU use
/// and training progress ([`gpu_use::gaps`]), the health of a pod's GPUs
/// ([`gpu_health::gaps`]).
pub(crate) fn gaps(ctx: &Context<'_>) -> Vec<crate::Gap> {
    let families: [fn(&Context<'_>) -> Vec<crate::Gap>; 3] =
        [oom::gaps, gpu_use::gaps, gpu_health::gaps];
    families.iter().flat_map(|f| f(ctx)).collect()
}

/// Runs every family, then gives each finding its id and links
/// consequences to their causes ([`chains`]).
pub(crate) fn run(ctx: &Context<'_>) -> Vec<Finding> {
    let families: [fn(&Context<'_>) -> Vec<Finding>; 6] = [
        oom::run,
        gpu_use::run,
        gpu_health::run,
        pod::run,
        logs::run,
        stuck_io::run,
    ];
    let mut findings: Vec<Finding> = families.iter().flat_map(|f| f(ctx)).collect();
    // Reclaim counters join (or stand in for) the pressure-based thrashing
    // finding; a stuck rank is named in its job's stuck and wedged findings.
    stuck_io::thrashing(ctx, &mut findings);
    stuck_io::annotate(ctx, &mut findings);
    chains::link(ctx, &mut findings);
    findings
}
