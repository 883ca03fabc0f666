//! Any bytes as the contents of `memory.events`, `memory.oom_control`,
//! `memory.stat` (v1 and v2), `cpu.stat` and a single-value file.
#![no_main]

use gpuscope_agent::collect::parse;
use gpuscope_model::{CgroupVersion, CpuStats, MemoryEvents, MemoryStats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse::parse_memory_events(data, &mut MemoryEvents::default());
    let _ = parse::parse_oom_control(data, &mut MemoryEvents::default());
    let _ = parse::parse_memory_stat(data, CgroupVersion::V1, &mut MemoryStats::default());
    let _ = parse::parse_memory_stat(data, CgroupVersion::V2, &mut MemoryStats::default());
    let _ = parse::parse_cpu_stat(data, &mut CpuStats::default());
    let _ = parse::parse_u64_or_max(data);
});
