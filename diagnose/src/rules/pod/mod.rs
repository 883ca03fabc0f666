//! Everyday pod failures: images that cannot be pulled, containers that
//! keep crashing (with the meaning of their exit code), pods that stay
//! Pending (resources, node selectors and affinity, taints, volume
//! claims), missing ConfigMaps and Secrets, volumes and sandboxes that
//! cannot be set up, failing probes, and failed pods the evidence cannot
//! explain.
//!
//! Written from what the kubelet and the scheduler record:
//! - the container's `state.waiting.reason` (`ErrImagePull`,
//!   `ImagePullBackOff`, `CrashLoopBackOff`, `CreateContainerConfigError`,
//!   `ContainerCreating`) and `lastState.terminated` (exit code, signal,
//!   reason, start and finish times);
//! - the scheduler's `FailedScheduling` event, or, once events have expired
//!   (an hour by default, kube-apiserver `--event-ttl`), the `PodScheduled`
//!   condition, which carries the same message;
//! - the kubelet's events (`Failed`, `BackOff`, `FailedMount`,
//!   `FailedCreatePodSandBox`, `Unhealthy`, `Killing`).
//!
//! Every rule works from pod status alone and lowers its confidence (or
//! says which evidence is absent) when the events are gone.
//!
//! Ownership, so that one failure gives one finding:
//! - exit code 137 and the `OOMKilled` reason belong to the `oom` family:
//!   no crash-loop finding is made for them;
//! - a `FailedScheduling` message that names `Insufficient nvidia.com/...`
//!   belongs to `gpu_health` (`gpu_unschedulable`), which cites the other
//!   reasons of the same message as evidence: this family makes no pending
//!   finding for it. The GPU shortage is the primary finding because the
//!   scheduler reports a node under the first filter it fails, and
//!   resource fit runs after taints and affinity: the nodes counted under
//!   `Insufficient nvidia.com/gpu` are the ones the pod was meant for;
//! - kubelet admission rejections (`UnexpectedAdmissionError`,
//!   `OutOf<resource>`, `NodeAffinity`) belong to `gpu_health`
//!   (`admission_error`), evictions to `oom`.

mod config_missing;
mod crash_loop;
mod image_pull;
mod insufficient_evidence;
mod mount;
mod pending;
mod probe;

use k8s_openapi::api::core::v1::{Container, Event, Pod};
use serde::{Deserialize, Serialize};

use config_missing::config_missing;
use crash_loop::crash_loop;
use image_pull::image_pull;
use insufficient_evidence::insufficient_evidence;
use mount::mount_failed;
use pending::pending;
use probe::probe_failing;

use crate::Context;
use crate::finding::Finding;

/// Thresholds of the everyday pod failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// A Pending pod with neither a scheduling event nor a `PodScheduled`
    /// condition is a finding only once it has been Pending this long.
    /// Default 60 s: the scheduler binds or reports a failure within
    /// seconds; a minute leaves room for a busy scheduling queue.
    pub pending_grace_secs: u64,
    /// A container that is Running again between restarts counts as
    /// crash-looping when it has restarted at least this many times…
    /// Default 3: one or two restarts happen to healthy pods (a node
    /// reboot, a dependency that came up late).
    pub crash_loop_min_restarts: u32,
    /// …and its last exit is at most this old. Default 600 s: the
    /// kubelet's restart back-off caps at 5 minutes, so a looping container
    /// exits again within about 5 minutes plus its own run time.
    pub crash_loop_recent_secs: u64,
    /// A container waiting in `ContainerCreating` with no event that says
    /// why is reported (as missing evidence) after this long. Default
    /// 600 s: ML images of 10 to 20 GB can take minutes to pull.
    pub creating_grace_secs: u64,
    /// Probe failures (summed event counts) below this are not a finding
    /// unless the kubelet killed the container. Default 3: the kubelet's
    /// default `failureThreshold`, the point at which a probe acts.
    pub probe_min_failures: u32,
    /// A running container with a readiness or startup probe that has not
    /// been ready for this long, with no probe event to show, is reported
    /// with low confidence. Default 300 s: longer than most model loads
    /// that finish, short enough to matter.
    pub not_ready_grace_secs: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            pending_grace_secs: 60,
            crash_loop_min_restarts: 3,
            crash_loop_recent_secs: 600,
            creating_grace_secs: 600,
            probe_min_failures: 3,
            not_ready_grace_secs: 300,
        }
    }
}

/// Every finding of this family.
pub(crate) fn run(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for pod in ctx.subjects() {
        let events = ctx.events_for(pod);
        out.extend(image_pull(ctx, pod, &events));
        out.extend(crash_loop(ctx, pod, &events));
        out.extend(pending(ctx, pod, &events));
        out.extend(config_missing(ctx, pod, &events));
        out.extend(mount_failed(ctx, pod, &events));
        out.extend(probe_failing(ctx, pod, &events));
        out.extend(insufficient_evidence(ctx, pod, &events));
    }
    out
}

// ---------------------------------------------------------------------
// Small shared helpers.

/// The spec of a container (app or init) by name.
fn spec_container<'p>(pod: &'p Pod, name: &str) -> Option<&'p Container> {
    let s = pod.spec.as_ref()?;
    s.containers
        .iter()
        .chain(s.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// Events whose `fieldPath` names the container (`spec.containers{x}`).
fn container_events<'a>(events: &[&'a Event], container: &str) -> Vec<&'a Event> {
    let want = format!("{{{container}}}");
    events
        .iter()
        .copied()
        .filter(|e| {
            e.involved_object
                .field_path
                .as_deref()
                .is_some_and(|p| p.ends_with(&want))
        })
        .collect()
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_owned()
}
