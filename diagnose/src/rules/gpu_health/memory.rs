//! GPU memory that is failing: uncorrectable ECC errors, row remaps
//! pending or failed.
//!
//! On Ampere and later GPUs an uncorrectable (double-bit) ECC error in HBM
//! makes the driver remap the failing row to a spare one; the remap takes
//! effect at the next GPU reset, and until then NVML reports it pending
//! (`nvidia-smi -q -d ROW_REMAPPER`: "Pending: Yes"). When no spare row is
//! left the remap fails and the GPU must be replaced. The work that hit the
//! error died with XID 48 or 94/95; new work may hit the row again until the
//! reset. GPUs before Ampere retire the failing page instead, pending
//! until the driver reloads. Corrected errors and rows remapped long ago
//! are the GPU's history:
//! a counter that is non-zero but stable over the window is not a finding.

use gpuscope_model::GpuHealth;

use super::HealthSeries;
use crate::Context;
use crate::finding::{Fact, Finding, Kind, duration};

pub(super) fn gpu_memory_errors(ctx: &Context<'_>, series: &[HealthSeries<'_>]) -> Vec<Finding> {
    let window = duration(std::time::Duration::from_secs(
        ctx.config.gpu_health.health_window_secs,
    ));
    let mut out = Vec::new();
    for s in series {
        let newest = s.newest();
        let Some(now) = newest.health.as_ref() else {
            continue;
        };
        let oldest = s.samples[0].health.as_ref();
        let rise = |get: fn(&GpuHealth) -> Option<u64>| match (oldest.and_then(get), get(now)) {
            (Some(a), Some(b)) if b > a => Some(b - a),
            _ => None,
        };
        let uncorrected =
            rise(|h| h.ecc_uncorrected_volatile).or_else(|| rise(|h| h.ecc_uncorrected_aggregate));
        let failed = now.remap_failed == Some(true);
        let pending = now.remap_pending == Some(true);
        let retiring = now.retired_pages_pending == Some(true);
        let what = if failed {
            "a row remap failed: no spare memory row is left, so the GPU needs replacing"
        } else if pending {
            "a row remap is pending: the failing memory row is replaced only at the next GPU reset, and until then work on this GPU can hit it again"
        } else if retiring {
            "a page retirement is pending: the failing memory page is taken out of use only when the driver reloads (GPU reset), and until then work on this GPU can hit it again"
        } else if uncorrected.is_some() {
            "uncorrectable ECC errors are rising: its memory is failing"
        } else {
            continue;
        };
        let mut summary = format!("{} has failing memory: {what}", s.named());
        if let Some(n) = uncorrected {
            summary.push_str(&format!(
                " ({n} uncorrectable ECC error{} in the last {window})",
                if n == 1 { "" } else { "s" }
            ));
        }
        summary.push_str(&format!(". Pods on it: {}.", s.holders()));
        let mut facts = Vec::new();
        if let Some(n) = uncorrected {
            facts.push(Fact::new(
                "uncorrectable ECC errors in the window",
                n.to_string(),
            ));
        }
        for (name, v) in [
            (
                "uncorrectable ECC errors since the driver loaded",
                now.ecc_uncorrected_volatile,
            ),
            (
                "corrected ECC errors since the driver loaded",
                now.ecc_corrected_volatile,
            ),
            (
                "uncorrectable ECC errors over the GPU's life",
                now.ecc_uncorrected_aggregate,
            ),
        ] {
            if let Some(v) = v {
                facts.push(Fact::new(name, v.to_string()));
            }
        }
        for (name, v) in [
            (
                "rows remapped (uncorrectable)",
                now.remapped_rows_uncorrected,
            ),
            ("rows remapped (correctable)", now.remapped_rows_corrected),
            ("pages retired (double-bit)", now.retired_pages_dbe),
            ("pages retired (single-bit)", now.retired_pages_sbe),
        ] {
            if let Some(v) = v {
                facts.push(Fact::new(name, v.to_string()));
            }
        }
        for (name, v) in [
            ("remap pending", now.remap_pending),
            ("remap failed", now.remap_failed),
            ("page retirement pending", now.retired_pages_pending),
        ] {
            if let Some(v) = v {
                facts.push(Fact::at(name, if v { "yes" } else { "no" }, newest.time));
            }
        }
        let node = s.node.as_deref().unwrap_or("NODE");
        let fix = if failed {
            format!(
                "Replace the GPU {}: open a hardware ticket with the nvidia-bug-report.sh output",
                s.uuid
            )
        } else {
            format!(
                "Reset the GPU once it is drained (nvidia-smi -r -i {}) or reboot the node, then check that Pending is No",
                s.uuid
            )
        };
        let steps = [
            format!(
                "On node {node}: nvidia-smi -q -d ECC,ROW_REMAPPER -i {}",
                s.uuid
            ),
            format!("kubectl drain {node} --ignore-daemonsets (the pods on it restart elsewhere)"),
            fix,
        ];
        out.extend(s.findings(ctx, Kind::GpuMemoryErrors, &summary, &facts, &steps));
    }
    out
}
