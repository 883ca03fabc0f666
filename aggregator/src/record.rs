//! Recorded diagnoses: when an incident names a pod (an OOM kill of one
//! of its containers, an XID or a lost GPU it held), the pod is diagnosed
//! a little later — once the kubelet has reported the termination and the
//! Kubernetes watch has seen it — and the findings are stored beside the
//! incidents ([`crate::store`]). The story of a run survives the deletion
//! of its pod (a finished Job's pods are garbage-collected) and the
//! aggregator's restart (history is in memory only); `Explain` of a pod
//! Kubernetes no longer has returns them. With `--kube-events` the
//! findings are also published as Events on the pod
//! ([`crate::kube::publish`]), and with OTLP export as log records
//! ([`crate::export::otlp`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use gpuscope_proto::v1::{GpuHolder, Incident, RecordedDiagnosis, node_event::Kind as EventKind};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::query::Diagnosis;

/// Diagnoses waiting for their time, at most; more are dropped, counted
/// and logged (a node-wide OOM killing hundreds of containers at once).
pub const MAX_PENDING: usize = 4096;

/// After a diagnosis that took t, the next waits `PACE` × t.
const PACE: u32 = 4;

/// A pod an incident named, as the incident named it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Named {
    /// An OOM-killed container's pod, by UID.
    Uid(String),
    /// A GPU holder, by namespace and name.
    Name { namespace: String, pod: String },
}

/// One diagnosis to make.
#[derive(Debug)]
struct Pending {
    due: Instant,
    pod: Named,
    node: String,
    boot: String,
    seq: u64,
}

/// The pods an incident names, each once.
fn named(incident: &Incident) -> Vec<Named> {
    let holders = |h: &[GpuHolder]| {
        let mut out: Vec<Named> = Vec::new();
        for h in h.iter().filter(|h| !h.pod.is_empty()) {
            let n = Named::Name {
                namespace: h.namespace.clone(),
                pod: h.pod.clone(),
            };
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out
    };
    let Some(event) = incident.event.as_ref() else {
        return Vec::new();
    };
    match &event.kind {
        Some(EventKind::OomKill(_)) => crate::store::pod_of(event)
            .map(|uid| Named::Uid(uid.to_owned()))
            .into_iter()
            .collect(),
        Some(EventKind::Xid(x)) => holders(&x.holders),
        Some(EventKind::GpuLost(l)) => holders(&l.holders),
        _ => Vec::new(),
    }
}

/// Diagnoses each pod an incident names `after` the incident was stored,
/// and stores what was found, until shutdown.
pub(crate) async fn record_loop(
    diagnosis: Diagnosis,
    mut incidents: broadcast::Receiver<Arc<Incident>>,
    after: Duration,
    otlp: Option<crate::export::otlp::Logs>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut dropped: u64 = 0;
    // Paced: after a diagnosis that took t, the next waits 4t, so that a
    // burst (a node-wide OOM, thousands of kills replayed at once) costs
    // at most a fifth of a core, not the ingest's time.
    let mut not_before = Instant::now();
    loop {
        let next_due = pending.front().map(|p| p.due.max(not_before));
        tokio::select! {
            n = incidents.recv() => match n {
                Ok(incident) => {
                    for pod in named(&incident) {
                        if pending.len() >= MAX_PENDING {
                            dropped += 1;
                            // Logged at 1, 2, 4, 8...: a burst is one line, not thousands.
                            if dropped.is_power_of_two() {
                                tracing::warn!(dropped, max = MAX_PENDING, "Too many diagnoses waiting; incidents' diagnoses are not recorded.");
                            }
                            continue;
                        }
                        let event = incident.event.as_ref();
                        pending.push_back(Pending {
                            due: Instant::now() + after,
                            pod,
                            node: incident.node_name.clone(),
                            boot: incident.boot_id.clone(),
                            seq: event.map_or(0, |e| e.seq),
                        });
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "Diagnosis recorder fell behind; those incidents' diagnoses are not recorded.");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = sleep_until(next_due), if next_due.is_some() => {
                if let Some(p) = pending.pop_front() {
                    let start = Instant::now();
                    record(&diagnosis, p, otlp.as_ref()).await;
                    not_before = Instant::now() + start.elapsed() * PACE;
                }
            }
            _ = crate::sync::stopped(&mut shutdown) => return,
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Diagnoses one pod and stores the findings; logs what fails.
async fn record(diagnosis: &Diagnosis, p: Pending, otlp: Option<&crate::export::otlp::Logs>) {
    let (namespace, pod) = match &p.pod {
        Named::Uid(uid) => ("", uid.as_str()),
        Named::Name { namespace, pod } => (namespace.as_str(), pod.as_str()),
    };
    let recorded = async {
        // A pod deleted since is found as its deletion showed it.
        let Some(target) = diagnosis.assembler.resolve(namespace, pod).await? else {
            return Ok(None);
        };
        let (findings, ev) = diagnosis.explain(&target).await?;
        if findings.is_empty() {
            return Ok(None);
        }
        let (pod_namespace, pod_name, container_names) = match &target.pod {
            Some(p) => {
                let id = crate::kube::join::identity(p);
                (
                    id.namespace,
                    id.name,
                    crate::kube::join::container_names(p).into_iter().collect(),
                )
            }
            None => match &p.pod {
                Named::Name { namespace, pod } => {
                    (namespace.clone(), pod.clone(), Default::default())
                }
                Named::Uid(_) => Default::default(),
            },
        };
        let d = RecordedDiagnosis {
            pod_namespace,
            pod_name,
            pod_uid: target.uid.clone().unwrap_or_default(),
            recorded_unix_nanos: crate::clock::now_unix_nanos(),
            node_name: p.node.clone(),
            boot_id: p.boot.clone(),
            seq: p.seq,
            findings: findings.iter().map(Into::into).collect(),
            gaps: ev.gaps.iter().map(Into::into).collect(),
            container_names,
        };
        let n = d.findings.len();
        let pod_uid = d.pod_uid.clone();
        diagnosis.assembler.record(d).await?;
        // As log records, to an OpenTelemetry collector (--otlp-endpoint).
        if let Some(logs) = otlp {
            for f in &findings {
                logs.finding(
                    f,
                    crate::export::otlp::FindingSource::Incident {
                        node: &p.node,
                        pod_uid: &pod_uid,
                    },
                );
            }
        }
        // Where people already look: Events on the pod (--kube-events).
        let publisher = diagnosis.assembler.kube().and_then(|k| k.publisher());
        if let (Some(publisher), Some(pod)) = (publisher, &target.pod) {
            publisher.publish(pod, &findings).await;
        }
        Ok::<_, crate::error::Error>(Some(n))
    };
    match recorded.await {
        Ok(Some(findings)) => {
            tracing::info!(pod = ?p.pod, node = %p.node, seq = p.seq, findings, "Recorded a diagnosis.")
        }
        Ok(None) => {
            tracing::debug!(pod = ?p.pod, node = %p.node, seq = p.seq, "Nothing to record.")
        }
        Err(e) => {
            tracing::error!(pod = ?p.pod, node = %p.node, seq = p.seq, error = %e, "Recording a diagnosis failed.")
        }
    }
}

#[cfg(test)]
mod tests {
    use gpuscope_proto::v1::{ContainerRef, NodeEvent, OomKill, Xid};

    use super::*;

    fn incident(kind: EventKind) -> Incident {
        Incident {
            node_name: "n".into(),
            boot_id: "b".into(),
            event: Some(NodeEvent {
                seq: 3,
                time_unix_nanos: 1,
                kind: Some(kind),
            }),
            ..Incident::default()
        }
    }

    fn holder(ns: &str, pod: &str) -> GpuHolder {
        GpuHolder {
            namespace: ns.into(),
            pod: pod.into(),
            ..GpuHolder::default()
        }
    }

    #[test]
    fn an_oom_kill_names_its_pod_by_uid_and_an_xid_each_holder_once() {
        let oom = incident(EventKind::OomKill(OomKill {
            container: Some(ContainerRef {
                pod_uid: "u-1".into(),
                ..ContainerRef::default()
            }),
            ..OomKill::default()
        }));
        assert_eq!(named(&oom), vec![Named::Uid("u-1".into())]);
        let node_wide = incident(EventKind::OomKill(OomKill::default()));
        assert!(named(&node_wide).is_empty());
        let xid = incident(EventKind::Xid(Xid {
            holders: vec![holder("ml", "a"), holder("ml", "b"), holder("ml", "a")],
            ..Xid::default()
        }));
        assert_eq!(
            named(&xid),
            vec![
                Named::Name {
                    namespace: "ml".into(),
                    pod: "a".into()
                },
                Named::Name {
                    namespace: "ml".into(),
                    pod: "b".into()
                }
            ]
        );
    }
}
