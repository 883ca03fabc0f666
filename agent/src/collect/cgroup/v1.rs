//! cgroup v1 container reads (`memory.usage_in_bytes`,
//! `memory.oom_control`, `cpuacct.usage`, ...).

use std::path::Path;

use super::{CgroupError, CgroupLayout, Files, Raw, read_pressure};
use crate::collect::parse::{
    parse_memory_stat, parse_oom_control, parse_single_u64, parse_u64_or_max,
};
use gpuscope_model::{CgroupVersion, CpuStats, MemoryEvents, MemoryStats, Pressure, PsiScope};

/// Reads one v1 memory cgroup (plus its cpuacct and unified twins);
/// `Ok(None)` when the memory cgroup is gone.
pub(crate) fn read(
    layout: &CgroupLayout,
    files: &mut Files,
    path: &str,
    node_psi: &Pressure,
) -> Result<Option<Raw>, CgroupError> {
    let root = &layout.memory_root;
    let mut memory = MemoryStats::default();
    let Some(usage) = files.read(root, path, "memory.usage_in_bytes", parse_single_u64)? else {
        return Ok(None);
    };
    let Some(limit) = files.read(root, path, "memory.limit_in_bytes", parse_u64_or_max)? else {
        return Ok(None);
    };
    let Some(peak) = files.read(root, path, "memory.max_usage_in_bytes", parse_single_u64)? else {
        return Ok(None);
    };
    memory.usage_bytes = usage;
    memory.limit_bytes = limit;
    memory.peak_bytes = Some(peak);

    // The cpuacct cgroup of the same path may not exist (a path created
    // only in the memory hierarchy): then no CPU figures.
    let cpu = match &layout.cpu_root {
        Some(cpu_root) => files
            .read(cpu_root, path, "cpuacct.usage", parse_single_u64)?
            .map(|ns| CpuStats {
                usage_us: ns / 1000,
                nr_throttled: None,
                throttled_us: None,
            }),
        None => None,
    };

    // Per-cgroup PSI from the unified hierarchy when the same path exists
    // there (hybrid hosts), else the node's.
    let own = match &layout.unified_root {
        Some(unified) => Some(read_pressure(files, unified, path)?),
        None => None,
    };
    let (pressure, pressure_scope) = match own {
        Some(p) if p.memory.is_some() => (p, PsiScope::Container),
        _ => (*node_psi, PsiScope::Node),
    };

    let Some(()) = files.read(root, path, "memory.stat", |t| {
        parse_memory_stat(t, CgroupVersion::V1, &mut memory)
    })?
    else {
        return Ok(None);
    };
    let Some(events) = read_events(root, files, path)? else {
        return Ok(None);
    };
    memory.events = events;
    Ok(Some(Raw {
        memory,
        cpu,
        pressure,
        pressure_scope,
    }))
}

/// `memory.oom_control` and `memory.failcnt`; `Ok(None)` when the cgroup
/// is gone.
pub(crate) fn read_events(
    root: &Path,
    files: &mut Files,
    path: &str,
) -> Result<Option<MemoryEvents>, CgroupError> {
    let mut ev = MemoryEvents::default();
    let Some(()) = files.read(root, path, "memory.oom_control", |t| {
        parse_oom_control(t, &mut ev)
    })?
    else {
        return Ok(None);
    };
    let Some(failcnt) = files.read(root, path, "memory.failcnt", parse_single_u64)? else {
        return Ok(None);
    };
    ev.failcnt = Some(failcnt);
    Ok(Some(ev))
}
