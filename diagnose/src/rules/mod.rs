//! The rules, one module per family. Each family exports `run(ctx)`,
//! returning every finding it supports, and its `Thresholds`.
//!
//! Ownership, so that one failure gives one finding: exit code 137 and
//! the `OOMKilled` reason belong to `oom` (never to `pod`'s crash-loop
//! rule); GPU scheduling and admission belong to `gpu_health`; the log
//! tail's CUDA out-of-memory belongs to `oom`, its NCCL errors and missing
//! files to `logs`. So the `pod` family's crash-loop rule must skip a
//! container for which [`logs::explains_exit`] is true (its log tail shows
//! CUDA out of memory, an NCCL error or missing model files): that
//! container's exit is explained, with the evidence, by `oom` or `logs`;
//! likewise for [`gpu_health::explains_exit`] (the driver reported an XID
//! on the container's GPU, or lost it, as the container exited).
//!
//! Arrows between families run one way: `pod` and `oom` consult `logs`
//! and `gpu_health` (whose exits they must not claim), never the reverse.
//! What several families read lives below them all: the accessors over
//! Kubernetes objects and events in [`crate::k8s`], the wording of
//! durations in [`crate::finding`], and the scheduler's message in
//! [`scheduling`].

use crate::Context;
use crate::finding::Finding;

pub(crate) mod gpu_health;
pub(crate) mod gpu_use;
pub(crate) mod logs;
pub(crate) mod memory_story;
pub(crate) mod oom;
pub(crate) mod pod;
pub(crate) mod scheduling;

/// Runs every family.
pub(crate) fn run(ctx: &Context<'_>) -> Vec<Finding> {
    let families: [fn(&Context<'_>) -> Vec<Finding>; 5] =
        [oom::run, gpu_use::run, gpu_health::run, pod::run, logs::run];
    families.iter().flat_map(|f| f(ctx)).collect()
}
