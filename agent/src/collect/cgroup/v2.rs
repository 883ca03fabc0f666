//! cgroup v2 container reads (`memory.current`, `memory.events`, ...).

use std::path::Path;

use super::{CgroupError, CgroupLayout, Files, Raw, read_pressure};
use crate::collect::parse::{
    parse_cpu_stat, parse_memory_events, parse_memory_stat, parse_single_u64, parse_u64_or_max,
};
use gpuscope_model::{CgroupVersion, CpuStats, MemoryEvents, MemoryStats, Pressure, PsiScope};

/// Reads one v2 cgroup; `Ok(None)` when it is gone.
///
/// Optional files (`memory.peak`, the pressure files) are read before the
/// last required ones, so a cgroup removed mid-read is still seen as gone
/// rather than as a cgroup without those files.
pub(crate) fn read(
    layout: &CgroupLayout,
    files: &mut Files,
    path: &str,
    node_psi: &Pressure,
) -> Result<Option<Raw>, CgroupError> {
    let root = &layout.memory_root;
    let mut memory = MemoryStats::default();
    let Some(usage) = files.read(root, path, "memory.current", parse_single_u64)? else {
        return Ok(None);
    };
    let Some(limit) = files.read(root, path, "memory.max", parse_u64_or_max)? else {
        return Ok(None);
    };
    memory.usage_bytes = usage;
    memory.limit_bytes = limit;
    // memory.peak exists since 5.19.
    memory.peak_bytes = files.read(root, path, "memory.peak", parse_single_u64)?;
    let own = read_pressure(files, root, path)?;
    // No memory.pressure: a kernel booted with psi=0 or without CONFIG_PSI.
    let (pressure, pressure_scope) = if own.memory.is_some() {
        (own, PsiScope::Container)
    } else {
        (*node_psi, PsiScope::Node)
    };
    let Some(cpu) = files.read(root, path, "cpu.stat", |t| {
        let mut c = CpuStats::default();
        parse_cpu_stat(t, &mut c).map(|()| c)
    })?
    else {
        return Ok(None);
    };
    let Some(()) = files.read(root, path, "memory.stat", |t| {
        parse_memory_stat(t, CgroupVersion::V2, &mut memory)
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
        cpu: Some(cpu),
        pressure,
        pressure_scope,
    }))
}

/// `memory.events`; `Ok(None)` when the cgroup is gone.
pub(crate) fn read_events(
    root: &Path,
    files: &mut Files,
    path: &str,
) -> Result<Option<MemoryEvents>, CgroupError> {
    files.read(root, path, "memory.events", |t| {
        let mut ev = MemoryEvents::default();
        parse_memory_events(t, &mut ev).map(|()| ev)
    })
}
