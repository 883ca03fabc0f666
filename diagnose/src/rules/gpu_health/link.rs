//! GPUs whose PCIe link is degraded: narrower or slower than the GPU and
//! slot support, or retransmitting often.
//!
//! A GPU trains its PCIe link at the widest width and highest generation
//! both ends support. A link that comes up narrower (x8 instead of x16) has
//! a bad riser, cable or slot, and stays so until the link retrains; host
//! <-> GPU copies (data loading, checkpoints, NCCL traffic that crosses the
//! host) run at a fraction of their speed. The generation, though, drops on
//! purpose when the GPU idles (power saving), so it counts only while the
//! GPU works. Replays are the link layer's retransmissions after a bad
//! packet: a few are normal, a steady rate means a marginal link, the step
//! before the GPU falls off the bus (XID 79).

use super::HealthSeries;
use crate::Context;
use crate::finding::{Fact, Finding, Kind, duration};

pub(super) fn gpu_link_degraded(ctx: &Context<'_>, series: &[HealthSeries<'_>]) -> Vec<Finding> {
    let th = &ctx.config.gpu_health;
    let mut out = Vec::new();
    for s in series {
        let newest = s.newest();
        let Some(now) = newest.health.as_ref() else {
            continue;
        };
        let mut problems = Vec::new();
        // Narrower than it can run, in every sample of the window: a link
        // that retrained once is not a degraded link.
        let narrow = s.samples.iter().all(|g| {
            g.health.as_ref().is_some_and(|h| {
                matches!((h.pcie_link_width, h.pcie_link_width_max), (Some(w), Some(m)) if w < m)
            })
        });
        if let (true, Some(w), Some(m)) = (narrow, now.pcie_link_width, now.pcie_link_width_max) {
            problems.push(format!("its PCIe link runs x{w} of x{m}"));
        }
        // Slower than it can run while the GPU works.
        let busy_slow = s.samples.iter().any(|g| {
            g.utilization_gpu_percent.is_some_and(|u| u > th.pcie_gen_busy_percent)
                && g.health.as_ref().is_some_and(|h| {
                    matches!((h.pcie_link_gen, h.pcie_link_gen_max), (Some(c), Some(m)) if c < m)
                })
        });
        let busy_full = s.samples.iter().any(|g| {
            g.utilization_gpu_percent.is_some_and(|u| u > th.pcie_gen_busy_percent)
                && g.health.as_ref().is_some_and(|h| {
                    matches!((h.pcie_link_gen, h.pcie_link_gen_max), (Some(c), Some(m)) if c >= m)
                })
        });
        if busy_slow
            && !busy_full
            && let (Some(c), Some(m)) = (now.pcie_link_gen, now.pcie_link_gen_max)
        {
            problems.push(format!(
                "its PCIe link runs at generation {c} of {m} while the GPU works"
            ));
        }
        let oldest = &s.samples[0];
        let span = newest.time.since(oldest.time);
        let replays = match (
            oldest.health.as_ref().and_then(|h| h.pcie_replays),
            now.pcie_replays,
        ) {
            (Some(a), Some(b)) if b > a && span.as_secs() >= 60 => Some(b - a),
            _ => None,
        };
        let rate = replays.map(|n| f64::from(n) * 60.0 / span.as_secs_f64());
        if let (Some(n), Some(r)) = (replays, rate)
            && r > th.pcie_replays_per_min
        {
            problems.push(format!(
                "it retransmitted {n} PCIe packets (replays) in {}, {r:.0} a minute",
                duration(span)
            ));
        }
        if problems.is_empty() {
            continue;
        }
        let summary = format!(
            "{} has a degraded PCIe link: {}. Copies between host and GPU (data loading, checkpoints) run slower; a link that keeps replaying is the step before the GPU falls off the bus (XID 79). Pods on it: {}.",
            s.named(),
            problems.join("; "),
            s.holders()
        );
        let mut facts = Vec::new();
        if let (Some(w), Some(m)) = (now.pcie_link_width, now.pcie_link_width_max) {
            facts.push(Fact::at("PCIe width", format!("x{w} of x{m}"), newest.time));
        }
        if let (Some(c), Some(m)) = (now.pcie_link_gen, now.pcie_link_gen_max) {
            facts.push(Fact::at(
                "PCIe generation",
                format!("{c} of {m}"),
                newest.time,
            ));
        }
        if let Some(r) = rate {
            facts.push(Fact::new("PCIe replays a minute", format!("{r:.1}")));
        }
        let node = s.node.as_deref().unwrap_or("NODE");
        let steps = [
            format!(
                "On node {node}: nvidia-smi -q -d PCIE -i {}; lspci -vv -s {} | grep -i lnksta",
                s.uuid, newest.pci_bus_id
            ),
            format!(
                "kubectl drain {node} --ignore-daemonsets, then reseat the GPU or its riser or cable"
            ),
        ];
        out.extend(s.findings(ctx, Kind::GpuLinkDegraded, &summary, &facts, &steps));
    }
    out
}
