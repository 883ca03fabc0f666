//! Exporters: what the aggregator knows, in the formats other systems
//! read. [`prometheus`] renders the text exposition format (0.0.4) from a
//! copy of the state, [`findings`] keeps the latest diagnosis of the whole
//! cluster for it (findings by kind, idle GPU-hours), and [`serve`] serves
//! it over HTTP on a thread of its own. [`otlp`] pushes the same metrics,
//! read by the same walk, and every new incident and finding as a log
//! record, to an OpenTelemetry collector.
//!
//! # Where the series are served, and why the aggregator
//!
//! dcgm-exporter and node_exporter are scraped on every node. gpuscope's
//! series are served by the aggregator instead, for three reasons:
//!
//! - **Names.** A container's `namespace`, `pod` and `container` come from
//!   the pod objects the aggregator watches; an agent knows a cgroup's pod
//!   UID and container ID, and names only its GPUs' holders (from the
//!   kubelet). Served by the agent, container series would carry UIDs.
//! - **What only the aggregator knows**: findings, idle GPU-hours by
//!   owner, incidents counted once however often they were resent, the
//!   nodes' capacity and device-plugin pods, and whether each agent is
//!   connected at all (an agent that is down cannot say so itself).
//! - **No new listener on the nodes**: the agent runs privileged with the
//!   host's PID namespace; it opens no port, and needs no Service,
//!   NetworkPolicy or scrape job per node.
//!
//! The cost is one large target. At 12,500 nodes × (8 GPUs + 32
//! containers) one scrape is measured in README's Performance section;
//! `?shard=I&shards=N` splits the nodes among N scrape jobs (a node's
//! series are all in shard `fnv1a(node) % N`; cluster-wide series in
//! shard 0), and `--metrics-containers gpu|none` bounds the largest part,
//! the per-container series (docs/metrics.md, "Cardinality").

pub mod findings;
pub mod otlp;
pub mod prometheus;
pub mod serve;

use std::sync::Arc;

use crate::kube::{NodeView, PodView};

/// What the exporters read of Kubernetes: every pod (for names), every
/// node, and the GPU device-plugin pods; empty without Kubernetes.
#[derive(Debug, Default)]
pub(crate) struct KubeInputs {
    pub pods: Vec<Arc<PodView>>,
    pub nodes: Vec<Arc<NodeView>>,
    pub device_plugins: Vec<Arc<PodView>>,
}

impl KubeInputs {
    /// A copy of what `kube` holds now.
    pub(crate) fn of(kube: Option<&crate::kube::Kube>) -> Self {
        let Some(k) = kube else {
            return Self::default();
        };
        Self {
            pods: k.pods(),
            nodes: k.nodes(),
            device_plugins: crate::kube::PodIndex::marked_pods(k, crate::kube::Mark::DevicePlugin),
        }
    }
}
