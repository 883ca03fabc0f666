//! Findings as Kubernetes Events on the pods they are about
//! (`--kube-events`), where `kubectl describe pod`, Lens, k9s and Argo CD
//! already look.
//!
//! Each finding of a recorded diagnosis ([`crate::record`]) becomes an
//! `events.k8s.io/v1` Event regarding the pod: type `Warning`, a reason per
//! kind ([`reason`], e.g. `GpuscopeOOMKilled`), the finding's one sentence
//! as the note, action `Diagnosed`, reporting controller `gpuscope`. They go
//! through kube-runtime's [`Recorder`], which turns the same reason on the
//! same pod within six minutes into one Event whose `series.count` rises
//! (a merge patch), as the kubelet's recorder does. Like the kubelet's
//! spam filter, each pod also has a token bucket ([`BURST`] events, then
//! one per [`REFILL`]); events beyond it are dropped, counted and logged
//! at each power of two. `insufficient_evidence` is not published: it
//! says that gpuscope knows too little, not something about the pod.
//!
//! The aggregator's own event watcher skips these Events
//! ([`is_own`]), so they never become evidence for the next diagnosis.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::kube::Client;
use ::kube::Resource;
use ::kube::runtime::events::{Event, EventType, Recorder, Reporter};
use gpuscope_diagnose::{Finding, Kind};
use k8s_openapi::api::core::v1::Pod;

use crate::sync::lock;

/// The reporting controller of gpuscope's Events.
pub const CONTROLLER: &str = "gpuscope";

/// Events a pod may get at once.
pub const BURST: u32 = 25;

/// After the burst, one more event per pod per this long (the kubelet's
/// spam filter: 25, then one per 5 minutes).
pub const REFILL: Duration = Duration::from_secs(300);

/// Largest note the Events API accepts, bytes.
const MAX_NOTE: usize = 1024;

/// Whether a core v1 Event was published by gpuscope (its reporting
/// component, which the API server fills from `reportingController`).
pub fn is_own(e: &k8s_openapi::api::core::v1::Event) -> bool {
    e.reporting_component.as_deref() == Some(CONTROLLER)
}

/// The Event reason for a finding kind; `None` for kinds not published.
pub fn reason(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::OomKilled => "GpuscopeOOMKilled",
        Kind::OomKilledWorker => "GpuscopeOOMKilledWorker",
        Kind::OomNode => "GpuscopeNodeOOM",
        Kind::Evicted => "GpuscopeEvicted",
        Kind::OomStatusWithoutKill => "GpuscopeOOMStatusWithoutKill",
        Kind::Exit137NotOom => "GpuscopeExit137NotOOM",
        Kind::CudaOom => "GpuscopeCUDAOOM",
        Kind::MemoryThrashing => "GpuscopeMemoryThrashing",
        Kind::GpuIdle => "GpuscopeGPUIdle",
        Kind::GpuMemoryIdle => "GpuscopeGPUMemoryIdle",
        Kind::TrainingStuck => "GpuscopeTrainingStuck",
        Kind::NcclWedge => "GpuscopeNCCLWedge",
        Kind::InputBound => "GpuscopeInputBound",
        Kind::NcclError => "GpuscopeNCCLError",
        Kind::StuckInIo => "GpuscopeProcessStuckIO",
        Kind::GpuXid => "GpuscopeGPUXid",
        Kind::GpuLost => "GpuscopeGPULost",
        Kind::GpuUnhealthy => "GpuscopeGPUUnhealthy",
        Kind::DevicePluginDown => "GpuscopeDevicePluginDown",
        Kind::GpuThrottled => "GpuscopeGPUThrottled",
        Kind::GpuMemoryErrors => "GpuscopeGPUMemoryErrors",
        Kind::GpuLinkDegraded => "GpuscopeGPULinkDegraded",
        Kind::GpuNvlinkDegraded => "GpuscopeGPUNVLinkDegraded",
        Kind::GpuUnschedulable => "GpuscopeGPUUnschedulable",
        Kind::AdmissionError => "GpuscopeAdmissionError",
        Kind::ImagePull => "GpuscopeImagePull",
        Kind::CrashLoop => "GpuscopeCrashLoop",
        Kind::ContainerFailed => "GpuscopeContainerFailed",
        Kind::PendingResources => "GpuscopePendingResources",
        Kind::PendingAffinity => "GpuscopePendingAffinity",
        Kind::PendingTaint => "GpuscopePendingTaint",
        Kind::PendingPvc => "GpuscopePendingPVC",
        Kind::Pending => "GpuscopePending",
        Kind::ConfigMissing => "GpuscopeConfigMissing",
        Kind::MountFailed => "GpuscopeMountFailed",
        Kind::ModelFilesMissing => "GpuscopeModelFilesMissing",
        Kind::ProbeFailing => "GpuscopeProbeFailing",
        Kind::InsufficientEvidence => return None,
    })
}

/// A per-pod token bucket.
#[derive(Debug)]
struct Bucket {
    tokens: u32,
    refilled: Instant,
}

/// Publishes findings as Events, rate-limited per pod.
pub struct Publisher {
    recorder: Recorder,
    /// Buckets by pod UID (namespace/name when it has none).
    buckets: Mutex<HashMap<String, Bucket>>,
    burst: u32,
    refill: Duration,
    /// Events dropped by the rate limit.
    dropped: Mutex<u64>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("burst", &self.burst)
            .field("refill", &self.refill)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher through `client`, reporting as `gpuscope` from this
    /// host (the aggregator's pod name in a cluster).
    pub fn new(client: Client) -> Self {
        Self::with_limits(client, BURST, REFILL)
    }

    /// A publisher with another rate limit (tests).
    pub fn with_limits(client: Client, burst: u32, refill: Duration) -> Self {
        Self {
            recorder: Recorder::new(client, Reporter::from(CONTROLLER)),
            buckets: Mutex::new(HashMap::new()),
            burst,
            refill,
            dropped: Mutex::new(0),
        }
    }

    /// Takes a token of `pod`'s bucket; false when it is empty.
    fn allow(&self, pod: &str) -> bool {
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        // Buckets full again are forgotten: the map holds recent pods only.
        let (burst, refill) = (self.burst, self.refill);
        buckets
            .retain(|_, b| now.duration_since(b.refilled) < refill * (burst - b.tokens.min(burst)));
        let b = buckets.entry(pod.to_owned()).or_insert(Bucket {
            tokens: burst,
            refilled: now,
        });
        let earned = (now.duration_since(b.refilled).as_secs_f64() / refill.as_secs_f64()) as u32;
        if earned > 0 {
            b.tokens = (b.tokens + earned).min(burst);
            b.refilled = now;
        }
        if b.tokens == 0 {
            return false;
        }
        b.tokens -= 1;
        true
    }

    /// Publishes each finding about `pod` (kinds with a [`reason`]) as a
    /// Warning Event on it. Returns how many were published; failures are
    /// logged, never returned: an Event is a courtesy, the diagnosis is
    /// stored either way.
    pub async fn publish(&self, pod: &Pod, findings: &[Finding]) -> usize {
        let reference = pod.object_ref(&());
        let who = reference
            .uid
            .clone()
            .unwrap_or_else(|| format!("{:?}/{:?}", reference.namespace, reference.name));
        let mut published = 0;
        for f in findings {
            let Some(reason) = reason(f.kind) else {
                continue;
            };
            if !self.allow(&who) {
                let mut dropped = lock(&self.dropped);
                *dropped += 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped = *dropped, pod = ?reference.name, burst = self.burst, "Kubernetes Events rate-limited; findings not published as Events.");
                }
                continue;
            }
            let event = Event {
                type_: EventType::Warning,
                reason: reason.to_owned(),
                note: Some(truncate(&f.summary, MAX_NOTE)),
                action: "Diagnosed".to_owned(),
                secondary: None,
            };
            match self.recorder.publish(&event, &reference).await {
                Ok(()) => published += 1,
                Err(e) => {
                    tracing::warn!(pod = ?reference.name, namespace = ?reference.namespace, reason, error = %e, "Publishing a Kubernetes Event failed.")
                }
            }
        }
        published
    }
}

/// `s` cut to at most `max` bytes at a character boundary, with an
/// ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_but_insufficient_evidence_has_a_distinct_reason() {
        let mut seen = std::collections::HashSet::new();
        for kind in Kind::ALL {
            match reason(kind) {
                Some(r) => {
                    assert!(r.starts_with("Gpuscope") && r.len() <= 128, "{r}");
                    assert!(seen.insert(r), "{r} used twice");
                }
                None => assert_eq!(kind, Kind::InsufficientEvidence),
            }
        }
        assert_eq!(reason(Kind::OomKilled), Some("GpuscopeOOMKilled"));
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        let long = "é".repeat(600);
        let cut = truncate(&long, MAX_NOTE);
        assert!(cut.len() <= MAX_NOTE && cut.ends_with('…'), "{}", cut.len());
        assert_eq!(truncate("short", MAX_NOTE), "short");
    }
}
