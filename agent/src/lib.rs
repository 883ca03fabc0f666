//! gpuscope's node agent, the daemon: reads every container's cgroup
//! memory, OOM counters and pressure, the kernel's OOM reports, the GPUs
//! through NVML and the kubelet's device assignments, and ships them.
//!
//! Data flows one way: `collect` (one module per source) -> the
//! observation types of `gpuscope_model` (samples and events) -> `notify`
//! / `pipeline` (one event per kill, joined with its kernel report and
//! `recorder` window) -> `output` (`snapshot`, `watch`) or `ship` (the
//! durable queue and the stream to the aggregator). `runtime` runs the
//! collectors; `cli` is the binary's flags.

pub mod cli;
pub mod collect;
pub mod health;
pub mod notify;
pub mod output;
pub mod pipeline;
pub mod recorder;
pub mod runtime;
pub mod ship;
