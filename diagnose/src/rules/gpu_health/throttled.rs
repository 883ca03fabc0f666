//! GPUs whose clocks a hardware slowdown, a power brake or a thermal limit
//! held down.
//!
//! NVML says why clocks are below their maximum (`clock event reasons`,
//! formerly throttle reasons). HW slowdown cuts clocks by half or more when
//! the board's slowdown pin is asserted (over-temperature or an external
//! power brake from the system's power supply or BMC); HW and SW thermal
//! slowdown follow the GPU's temperature thresholds. The work on the GPU
//! runs slower in proportion, and in a data-parallel or pipelined job every
//! rank waits for the slowest one at each collective: one throttled GPU
//! slows the whole run.
//!
//! Each sample covers the time until the next one (at most two minutes, so
//! a gap in the samples does not count as throttled time).

use std::collections::BTreeSet;
use std::time::Duration;

use gpuscope_model::{GpuSample, ThrottleReason};

use super::HealthSeries;
use crate::Context;
use crate::finding::{Fact, Finding, Kind, duration};

/// The longest time one sample is taken to cover.
const MAX_COVER: Duration = Duration::from_secs(120);

pub(super) fn gpu_throttled(ctx: &Context<'_>, series: &[HealthSeries<'_>]) -> Vec<Finding> {
    let th = &ctx.config.gpu_health;
    let bad = |g: &GpuSample| -> Vec<ThrottleReason> {
        g.health
            .as_ref()
            .and_then(|h| h.throttle_reasons.as_ref())
            .map(|r| {
                r.iter()
                    .copied()
                    .filter(|r| th.throttle_reasons.contains(r))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for s in series {
        let mut throttled = Duration::ZERO;
        let mut reasons = BTreeSet::new();
        let mut clocks = Vec::new();
        let mut hottest = None;
        let mut first = None;
        for (k, g) in s.samples.iter().enumerate() {
            let now = bad(g);
            if now.is_empty() {
                continue;
            }
            first.get_or_insert(g.time);
            reasons.extend(now.iter().map(|r| r.as_str()));
            clocks.extend(g.sm_clock_mhz);
            hottest = hottest.max(g.temperature_celsius);
            if let Some(next) = s.samples.get(k + 1) {
                throttled += next.time.since(g.time).min(MAX_COVER);
            }
        }
        if throttled.as_secs() < th.throttle_min_secs {
            continue;
        }
        let newest = s.newest();
        let ongoing = !bad(newest).is_empty();
        let health = newest.health.as_ref();
        let max = health.and_then(|h| h.sm_clock_max_mhz);
        clocks.sort_unstable();
        let median = clocks.get(clocks.len() / 2).copied();
        let lost = match (median, max) {
            (Some(m), Some(x)) if x > 0 && m < x => Some(100 - m * 100 / x),
            _ => None,
        };
        let reasons: Vec<&str> = reasons.into_iter().collect();
        let window = duration(Duration::from_secs(th.health_window_secs));
        let clock = match (median, max, lost) {
            (Some(m), Some(x), Some(l)) => {
                format!(": SM clock {m} MHz against its maximum {x} MHz, {l} % lost")
            }
            (Some(m), _, _) => format!(": SM clock {m} MHz"),
            _ => String::new(),
        };
        let summary = format!(
            "{} had its clocks held down by {} for {} of the last {window}{clock}{}. The work of {} runs that much slower, and in a data-parallel job every rank waits for this one at each collective.",
            s.named(),
            reasons.join(" and "),
            duration(throttled),
            if ongoing {
                ", and still is"
            } else {
                "; not now"
            },
            s.holders(),
        );
        let mut facts = vec![
            Fact::new("clock event reasons", reasons.join(", ")),
            Fact::new("throttled for", duration(throttled)),
        ];
        if let Some(t) = first {
            facts.push(Fact::at("throttled since", "first sample with a reason", t));
        }
        if let Some(m) = median {
            facts.push(Fact::new(
                "median SM clock while throttled",
                format!("{m} MHz"),
            ));
        }
        if let Some(x) = max {
            facts.push(Fact::new("maximum SM clock", format!("{x} MHz")));
        }
        if let Some(t) = hottest {
            let limit = health
                .and_then(|h| h.temperature_slowdown_celsius)
                .map(|l| format!(" (slowdown threshold {l} °C)"))
                .unwrap_or_default();
            facts.push(Fact::new(
                "hottest while throttled",
                format!("{t} °C{limit}"),
            ));
        }
        let node = s.node.as_deref().unwrap_or("NODE");
        let cause_step = if reasons.contains(&"hw_power_brake") {
            format!(
                "The power brake comes from outside the GPU: check node {node}'s power supplies and its BMC event log"
            )
        } else if reasons.iter().any(|r| r.contains("thermal")) {
            format!(
                "Check node {node}'s cooling: fans, airflow, inlet temperature; compare the GPU's temperature with its neighbours'"
            )
        } else {
            format!(
                "Check node {node}'s power supplies, BMC event log and cooling: HW slowdown is asserted by either"
            )
        };
        let mut steps = vec![
            format!(
                "On node {node}: nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER -i {}",
                s.uuid
            ),
            cause_step,
        ];
        if ongoing {
            steps.push(format!("If it persists: kubectl cordon {node}, and move the job to GPUs that run at full clock"));
        }
        out.extend(s.findings(ctx, Kind::GpuThrottled, &summary, &facts, &steps));
    }
    out
}
