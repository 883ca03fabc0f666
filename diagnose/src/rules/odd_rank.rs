//! Which rank is different when a multi-GPU run is stuck or wedged.
//!
//! In data-parallel training every rank (one process per GPU) meets the
//! others at each collective. When the run stops, the ranks that wait look
//! alike (NCCL kernels spinning at full utilization and near-idle power,
//! or all flat), and the cause is usually the one rank that does not: the
//! GPU whose clocks a hardware slowdown or power brake held down, the one
//! the driver reported an XID on, the one that lost an NVLink link, or the
//! one whose utilization left the others' pattern (0 % while they spin).
//! This module names that GPU in the stuck and wedge findings of
//! `gpu_use`, from the same samples and the agent's XID events, over the
//! finding's own window. It speaks only when some but not all of the pod's
//! GPUs differ: with every GPU alike there is no odd one out.

use std::collections::BTreeMap;
use std::time::Duration;

use gpuscope_model::{Event as NodeEvent, GpuSample, Timestamp};
use k8s_openapi::api::core::v1::Pod;

use crate::Context;
use crate::finding::{Fact, Finding};

/// Utilization points between a GPU's median and the other GPUs' median
/// over the window above which its pattern differs: 50, half the scale,
/// so that a rank at 0 % among ranks spinning at 100 % differs, and ranks
/// that merely work at different speeds do not.
const UTIL_APART: f64 = 50.0;

/// What sets one GPU apart, in words, per GPU UUID (only GPUs that differ).
fn differences(
    ctx: &Context<'_>,
    pod: &Pod,
    gpus: &BTreeMap<String, Vec<&GpuSample>>,
    since: Timestamp,
) -> BTreeMap<String, Vec<String>> {
    let reasons = &ctx.config.gpu_health.throttle_reasons;
    fn window<'a>(s: &[&'a GpuSample], since: Timestamp) -> Vec<&'a GpuSample> {
        s.iter().copied().filter(|g| g.time >= since).collect()
    }
    let median_util = |s: &[&GpuSample]| -> Option<f64> {
        let mut v: Vec<f64> = s
            .iter()
            .filter_map(|g| g.utilization_gpu_percent.map(f64::from))
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let xids: Vec<(&str, u64)> = ctx
        .agent_of(pod)
        .map(|a| {
            a.events
                .iter()
                .filter_map(|e| match e {
                    NodeEvent::Xid {
                        time,
                        gpu_uuid,
                        xid,
                        ..
                    } if *time >= since => Some((gpu_uuid.as_str(), *xid)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for (uuid, s) in gpus {
        let w = window(s, since);
        let mut why = Vec::new();
        let mut held: Vec<&str> = w
            .iter()
            .filter_map(|g| g.health.as_ref()?.throttle_reasons.as_ref())
            .flatten()
            .filter(|r| reasons.contains(r))
            .map(|r| r.as_str())
            .collect();
        held.sort_unstable();
        held.dedup();
        if !held.is_empty() {
            why.push(format!("its clocks were held down ({})", held.join(", ")));
        }
        let mut x: Vec<u64> = xids
            .iter()
            .filter(|(u, _)| u == uuid)
            .map(|(_, x)| *x)
            .collect();
        x.sort_unstable();
        x.dedup();
        let x: Vec<String> = x.iter().map(u64::to_string).collect();
        if !x.is_empty() {
            why.push(format!("the driver reported XID {} on it", x.join(", ")));
        }
        let down = w
            .last()
            .and_then(|g| g.health.as_ref())
            .map(|h| h.nvlinks.iter().filter(|l| !l.active).count())
            .unwrap_or(0);
        let had_links_up = w
            .first()
            .and_then(|g| g.health.as_ref())
            .is_some_and(|h| h.nvlinks.iter().any(|l| l.active));
        if down > 0 && had_links_up {
            why.push(format!("{down} of its NVLink links are down"));
        }
        let others: Vec<&GpuSample> = gpus
            .iter()
            .filter(|(u, _)| *u != uuid)
            .flat_map(|(_, s)| window(s, since))
            .collect();
        if let (Some(mine), Some(theirs)) = (median_util(&w), median_util(&others))
            && (mine - theirs).abs() > UTIL_APART
        {
            why.push(format!(
                "its utilization ({mine:.0} %) left the others' ({theirs:.0} %)"
            ));
        }
        if !why.is_empty() {
            out.insert(uuid.clone(), why);
        }
    }
    out
}

/// `f` (a stuck or wedge finding), naming the GPU or GPUs of the pod that
/// differ from the others when some but not all do: a sentence in the
/// summary and a fact per GPU. Judged over the GPU-health window
/// (`gpu_health.health_window_secs`), which reaches back past the moment
/// the run stopped, where the odd rank's XID or slowdown began.
pub(crate) fn name_odd_rank(
    ctx: &Context<'_>,
    pod: &Pod,
    gpus: &BTreeMap<String, Vec<&GpuSample>>,
    mut f: Finding,
) -> Finding {
    if gpus.len() < 2 {
        return f;
    }
    let window = Duration::from_secs(ctx.config.gpu_health.health_window_secs);
    let since = ctx.now.saturating_sub(window);
    let odd = differences(ctx, pod, gpus, since);
    if odd.is_empty() || odd.len() == gpus.len() {
        return f;
    }
    let index = |uuid: &str| {
        gpus.get(uuid).and_then(|s| s.last()).map_or_else(
            || uuid.to_owned(),
            |g| format!("{} (index {})", uuid, g.index),
        )
    };
    let told: Vec<String> = odd
        .iter()
        .map(|(uuid, why)| format!("{}: {}", index(uuid), why.join("; ")))
        .collect();
    f.summary.push_str(&format!(
        " The rank that is different: {}; the others wait for it at each collective.",
        told.join(". ")
    ));
    for (uuid, why) in &odd {
        f = f.fact(Fact::new(
            format!("different GPU {}", index(uuid)),
            why.join("; "),
        ));
    }
    f
}
