//! Thresholds and windows of the rules. Every default is documented with
//! the reason it was chosen; each family of rules owns its part.

use serde::{Deserialize, Serialize};

pub use crate::rules::gpu_health::Thresholds as GpuHealth;
pub use crate::rules::gpu_use::Thresholds as GpuUse;
pub use crate::rules::logs::Thresholds as Logs;
pub use crate::rules::oom::Thresholds as Oom;
pub use crate::rules::pod::Thresholds as Pod;
pub use crate::rules::stuck_io::Thresholds as StuckIo;

/// All thresholds. `Config::default()` is what the CLI and the
/// aggregator use unless told otherwise; a JSON file of the same shape
/// (any subset of fields) overrides it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Memory: OOM kills, evictions, exit 137, thrashing.
    pub oom: Oom,
    /// GPU use: idle, stuck, wedged, input-bound.
    pub gpu_use: GpuUse,
    /// GPUs and the device plugin.
    pub gpu_health: GpuHealth,
    /// Everyday pod failures.
    pub pod: Pod,
    /// Log tails.
    pub logs: Logs,
    /// Processes stuck in I/O wait; thrashing from reclaim counters.
    pub stuck_io: StuckIo,
}
