//! The latest diagnosis of the whole cluster, reduced to what the
//! Prometheus exporter shows: findings by kind and namespace, and idle
//! GPU-hours by namespace and owner.
//!
//! Diagnosing every pod costs tens of milliseconds per thousand pods
//! (benches/diagnose), too much for every scrape; [`findings_loop`] runs
//! it every interval on a blocking thread and keeps the latest result, so
//! a scrape reads a few hundred numbers. It runs only when the aggregator
//! watches Kubernetes (without pod objects there is nothing to diagnose
//! by namespace).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpuscope_diagnose::Kind;
use tokio::sync::watch;

use crate::evidence::Assembler;
use crate::sync::lock;

/// One diagnosis of every pod, counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingCounts {
    /// Findings by (kind, namespace; empty for node and GPU findings).
    pub by_kind: BTreeMap<(&'static str, String), u64>,
    /// GPU-hours of idle and memory-idle GPUs by (namespace, owner
    /// `Kind/name`; empty when the pod has none).
    pub idle_gpu_hours: BTreeMap<(String, String), f64>,
    /// When the diagnosis ran, Unix seconds.
    pub at_unix_seconds: f64,
    /// How long it took, seconds.
    pub took_seconds: f64,
}

impl FindingCounts {
    /// Counts `findings`.
    pub fn of(
        findings: &[gpuscope_diagnose::Finding],
        at_unix_seconds: f64,
        took: Duration,
    ) -> Self {
        let mut c = FindingCounts {
            at_unix_seconds,
            took_seconds: took.as_secs_f64(),
            ..Self::default()
        };
        for f in findings {
            let ns = f.subject.namespace.clone().unwrap_or_default();
            if matches!(f.kind, Kind::GpuIdle | Kind::GpuMemoryIdle) {
                let owner = f.subject.owner.clone().unwrap_or_default();
                *c.idle_gpu_hours.entry((ns.clone(), owner)).or_default() +=
                    f.cost.as_ref().map_or(0.0, |c| c.gpu_hours);
            }
            *c.by_kind.entry((f.kind.as_str(), ns)).or_default() += 1;
        }
        c
    }
}

/// The latest [`FindingCounts`], shared with the exporter.
pub type Latest = Arc<Mutex<Option<FindingCounts>>>;

/// Diagnoses every pod every `interval` (the first time after one
/// interval, so that the watchers have listed) until `shutdown`; with
/// `otlp`, logs each finding the previous diagnosis did not have (the
/// first diagnosis: every finding).
pub async fn findings_loop(
    assembler: Arc<Assembler>,
    config: Arc<gpuscope_diagnose::Config>,
    latest: Latest,
    interval: Duration,
    otlp: Option<crate::export::otlp::Logs>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen = std::collections::HashSet::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = crate::sync::stopped(&mut shutdown) => return,
        }
        let started = Instant::now();
        let ev = match assembler.diagnose(None).await {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "Diagnosing the cluster for the metrics failed.");
                continue;
            }
        };
        let config = config.clone();
        let findings =
            match tokio::task::spawn_blocking(move || gpuscope_diagnose::diagnose(&ev, &config))
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "The metrics' diagnosis task failed.");
                    continue;
                }
            };
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        *lock(&latest) = Some(FindingCounts::of(&findings, at, started.elapsed()));
        if let Some(logs) = &otlp {
            logs.new_findings(&findings, &mut seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuscope_diagnose::{Confidence, Cost, Finding, Subject};

    #[test]
    fn idle_hours_add_up_per_namespace_and_owner() {
        let subject = |ns: &str, owner: &str| Subject {
            namespace: Some(ns.into()),
            owner: Some(owner.into()),
            ..Subject::default()
        };
        let idle = |ns, owner, hours| Finding {
            cost: Some(Cost {
                gpu_hours: hours,
                restarts: 0,
            }),
            ..Finding::new(Kind::GpuIdle, subject(ns, owner), Confidence::High, "idle")
        };
        let f = [
            idle("ml", "Job/a", 1.5),
            idle("ml", "Job/a", 0.5),
            idle("ml", "Job/b", 2.0),
            Finding::new(
                Kind::OomKilled,
                subject("ml", "Job/a"),
                Confidence::High,
                "oom",
            ),
        ];
        let c = FindingCounts::of(&f, 1.0, Duration::from_millis(3));
        assert_eq!(c.idle_gpu_hours[&("ml".into(), "Job/a".into())], 2.0);
        assert_eq!(c.idle_gpu_hours[&("ml".into(), "Job/b".into())], 2.0);
        assert_eq!(c.by_kind[&("gpu_idle", "ml".into())], 3);
        assert_eq!(c.by_kind[&("oom_killed", "ml".into())], 1);
    }
}
