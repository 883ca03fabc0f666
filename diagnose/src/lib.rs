//! gpuscope's diagnosis engine.
//!
//! Pure functions from an [`Evidence`] snapshot (Kubernetes objects as the
//! API server returns them, the agents' samples and events, log tails) to
//! [`Finding`]s: a kind, a subject, one plain sentence, the numbers that
//! prove it, what to do next and how sure the engine is. The aggregator
//! runs it over its live state; `gpuscope explain --bundle` runs it over a
//! folder of `kubectl -o json` outputs and agent JSON lines ([`bundle`]).
//!
//! Each rule is written from the mechanism (what the kernel, kubelet,
//! container runtime and driver do) and lowers its confidence when the
//! evidence that would prove it is absent, rather than guessing.

pub mod bundle;
pub mod config;
pub mod context;
pub mod evidence;
pub mod finding;
pub mod k8s;
mod rules;
pub mod wire;

pub use config::Config;
pub use context::Context;
pub use evidence::{AgentRecords, Evidence, Gap, LogTail};
pub use finding::{Confidence, Cost, Fact, Finding, Kind, Subject};

/// A pod named by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PodKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Every finding the evidence supports: root causes most costly first,
/// each followed by the findings it caused (see [`Finding::caused_by`]).
pub fn diagnose(evidence: &Evidence, config: &Config) -> Vec<Finding> {
    ranked(rules::run(&Context::new(evidence, config)))
}

/// What the rules could not judge, beyond `evidence.gaps`: a pod holding
/// GPUs whose samples are missing, too sparse or too short to judge its
/// GPU use. `pod`: only that pod's (as [`explain`] judges it); `None`:
/// every pod's. Printed with the evidence's gaps, so that a silence is
/// not read as health.
pub fn rule_gaps(evidence: &Evidence, config: &Config, pod: Option<&PodKey>) -> Vec<Gap> {
    match pod {
        Some(p) => rules::gaps(&Context::focused(evidence, config, p)),
        None => rules::gaps(&Context::new(evidence, config)),
    }
}

/// Most costly first, then each root cause followed by its consequences.
fn ranked(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| {
        b.rank_key()
            .partial_cmp(&a.rank_key())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.id.cmp(&b.id))
    });
    rules::chains::chain_order(findings)
}

/// The findings that explain one pod: those about the pod itself, those
/// about its node or its GPUs that bear on it (an XID on a GPU it holds,
/// a device plugin down on its node), and every finding that caused one
/// of those, wherever it is (the device plugin down on the GPU nodes a
/// Pending pod could use). Only this pod is judged; the others in the
/// evidence are its neighbours.
pub fn explain(evidence: &Evidence, config: &Config, pod: &PodKey) -> Vec<Finding> {
    let target = evidence
        .pods
        .iter()
        .find(|p| k8s::namespace(p) == pod.namespace && k8s::name(p) == pod.name);
    let node = target.and_then(k8s::node_name);
    let all = rules::run(&Context::focused(evidence, config, pod));
    let mut keep: Vec<bool> = all
        .iter()
        .map(|f| {
            let s = &f.subject;
            match (&s.pod, &s.namespace) {
                (Some(p), ns) => {
                    *p == pod.name && ns.as_deref().unwrap_or("default") == pod.namespace
                }
                (None, _) => node.is_some() && s.node.as_deref() == node,
            }
        })
        .collect();
    // The causes of what is kept, transitively.
    loop {
        let wanted: Vec<&str> = all
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .flat_map(|(f, _)| f.caused_by.iter().map(String::as_str))
            .collect();
        let mut grew = false;
        for (f, k) in all.iter().zip(keep.iter_mut()) {
            if !*k && wanted.contains(&f.id.as_str()) {
                *k = true;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    let mut kept: Vec<Finding> = all
        .into_iter()
        .zip(keep)
        .filter_map(|(f, k)| k.then_some(f))
        .collect();
    let ids: Vec<String> = kept.iter().map(|f| f.id.clone()).collect();
    for f in &mut kept {
        f.caused_by.retain(|c| ids.contains(c));
    }
    ranked(kept)
}
