//! gpuscope's node agent: reads every container's cgroup memory, OOM
//! counters and pressure, the kernel's OOM reports, and streams them.
//!
//! Data flows one way: `collect` (sources) -> `model` (samples and events)
//! -> `recorder` / `pipeline` -> `output` or the wire.

pub mod collect;
pub mod model;
