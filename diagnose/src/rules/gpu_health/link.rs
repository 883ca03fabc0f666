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
//!
//! NVLink, the GPU-to-GPU link (to a peer or an NVSwitch), is several
//! links per GPU (18 on an H100 SXM) that carry peer-to-peer copies and
//! NCCL's collectives between the GPUs of a node. Each link checks every
//! flow-control digit and data packet with a CRC; a failed check makes the
//! sender replay the packet, and a link that keeps failing retrains
//! (recovery), stalling its traffic meanwhile. A link that goes down takes
//! its share of the bandwidth with it: NCCL spreads traffic over the
//! links that remain or, with none, falls back to PCIe through the host,
//! and every rank of a collective waits for the slowest. On a board
//! without NVLink in use (a PCIe card without a bridge) every link reads
//! down at every sample: that is the design, not a fault, so only a link
//! seen going down, or one down while the GPU's other links are up, counts.

use gpuscope_model::{GpuSample, NvLinkStatus};

use super::HealthSeries;
use crate::Context;
use crate::finding::{Confidence, Fact, Finding, Kind, duration};

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

/// What one GPU's NVLink links did over the window.
struct NvlinkStory {
    /// Links down now that were up earlier in the window.
    went_down: Vec<u32>,
    /// Links down in every sample while most of the GPU's links are up.
    down_beside_up: Vec<u32>,
    /// Per link with errors rising above a threshold: what rose.
    errors: Vec<(u32, String)>,
    /// How many links the GPU reports, and how many are up now.
    links: usize,
    up: usize,
}

/// The NVLink links of a sample (empty when it has none).
fn links_of(g: &GpuSample) -> &[NvLinkStatus] {
    g.health.as_ref().map_or(&[], |h| h.nvlinks.as_slice())
}

fn nvlink_story(ctx: &Context<'_>, s: &HealthSeries<'_>) -> Option<NvlinkStory> {
    let th = &ctx.config.gpu_health;
    let with_links: Vec<&GpuSample> = s
        .samples
        .iter()
        .copied()
        .filter(|g| !links_of(g).is_empty())
        .collect();
    let (first, newest) = (with_links.first()?, with_links.last()?);
    let now = links_of(newest);
    let up = now.iter().filter(|l| l.active).count();
    let mut story = NvlinkStory {
        went_down: Vec::new(),
        down_beside_up: Vec::new(),
        errors: Vec::new(),
        links: now.len(),
        up,
    };
    for l in now.iter().filter(|l| !l.active) {
        let was_up = with_links
            .iter()
            .any(|g| links_of(g).iter().any(|o| o.link == l.link && o.active));
        if was_up {
            story.went_down.push(l.link);
        } else if up * 2 > now.len() {
            story.down_beside_up.push(l.link);
        }
    }
    let span = newest.time.since(first.time);
    if span.as_secs() >= 60 {
        for l in now {
            let Some(old) = links_of(first).iter().find(|o| o.link == l.link) else {
                continue;
            };
            let rose = |a: Option<u64>, b: Option<u64>| match (a, b) {
                (Some(a), Some(b)) if b > a => b - a,
                _ => 0,
            };
            let crc = rose(old.crc_flit_errors, l.crc_flit_errors)
                + rose(old.crc_data_errors, l.crc_data_errors);
            let replays = rose(old.replay_errors, l.replay_errors);
            let recoveries = rose(old.recovery_errors, l.recovery_errors);
            let mut what = Vec::new();
            let crc_rate = crc as f64 / span.as_secs_f64();
            if crc_rate >= th.nvlink_crc_per_sec {
                what.push(format!("{crc} CRC errors ({crc_rate:.0} a second)"));
            }
            if replays + recoveries > th.nvlink_replay_recovery_max {
                what.push(format!("{replays} replays and {recoveries} recoveries"));
            }
            if !what.is_empty() {
                story.errors.push((
                    l.link,
                    format!("link {}: {} in {}", l.link, what.join(", "), duration(span)),
                ));
            }
        }
    }
    Some(story)
}

/// GPUs with an NVLink link down or counting errors fast.
pub(super) fn gpu_nvlink_degraded(ctx: &Context<'_>, series: &[HealthSeries<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in series {
        let Some(story) = nvlink_story(ctx, s) else {
            continue;
        };
        let mut problems = Vec::new();
        let list = |links: &[u32]| {
            links
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !story.went_down.is_empty() {
            problems.push(format!(
                "NVLink {} went down within the window",
                list(&story.went_down)
            ));
        }
        if !story.down_beside_up.is_empty() {
            problems.push(format!(
                "NVLink {} down while its other links are up",
                list(&story.down_beside_up)
            ));
        }
        problems.extend(story.errors.iter().map(|(_, e)| e.clone()));
        if problems.is_empty() {
            continue;
        }
        // Seen going down, or errors counted over the window: the
        // readings show it. Down for the whole window beside links that
        // are up: a link that never trained, or one the board leaves
        // unused; check before acting.
        let confidence = if story.went_down.is_empty() && story.errors.is_empty() {
            Confidence::Medium
        } else {
            Confidence::High
        };
        let summary = format!(
            "{} has a degraded NVLink: {}. {} of its {} links are up; NCCL spreads collectives over the links that remain (or falls back to PCIe), so every rank of the job waits for this GPU's slower transfers. Pods on it: {}.",
            s.named(),
            problems.join("; "),
            story.up,
            story.links,
            s.holders()
        );
        let newest = s.newest();
        let mut facts = vec![Fact::at(
            "NVLink links up",
            format!("{} of {}", story.up, story.links),
            newest.time,
        )];
        let down: Vec<u32> = story
            .went_down
            .iter()
            .chain(&story.down_beside_up)
            .copied()
            .collect();
        if !down.is_empty() {
            facts.push(Fact::at("NVLink links down", list(&down), newest.time));
        }
        for (_, e) in &story.errors {
            facts.push(Fact::new("NVLink errors", e.clone()));
        }
        let node = s.node.as_deref().unwrap_or("NODE");
        let steps = [
            format!(
                "On node {node}: nvidia-smi nvlink -s -i {0}; nvidia-smi nvlink -e -i {0}",
                newest.index
            ),
            format!(
                "kubectl drain {node} --ignore-daemonsets, then reset the GPU (nvidia-smi -r -i {}); a link that stays down or keeps counting errors needs the GPU, its NVLink bridge or the baseboard serviced",
                newest.index
            ),
        ];
        out.extend(s.findings_with(
            ctx,
            Kind::GpuNvlinkDegraded,
            confidence,
            &summary,
            &facts,
            &steps,
        ));
    }
    out
}
