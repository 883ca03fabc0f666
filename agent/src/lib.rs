//! gpuscope's node agent: reads every container's cgroup memory, OOM
//! counters and pressure, and the kernel's OOM reports.
//!
//! Data flows one way: `collect` (one module per kernel source) ->
//! `model` (samples and events) -> `notify` / `pipeline` (one event per
//! kill, joined with its kernel report and `recorder` window) ->
//! `output` or the wire (`wire`).

pub mod cli;
pub mod collect;
pub mod model;
pub mod notify;
pub mod output;
pub mod pipeline;
pub mod recorder;
pub mod runtime;
pub mod ship;
pub mod wire;
