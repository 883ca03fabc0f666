//! The agent's own output: the `snapshot -o table` view, the `watch
//! --samples` lines and JSON lines. The forms it shares with the CLI
//! (event lines, the GPU table, humanised units) are in
//! [`gpuscope_model::text`].

use std::fmt::Write as _;
use std::io::{self, Write};

use gpuscope_model::text::{
    gpu_table, human_bytes, name, opt_bytes, percent, short_name, sim, table,
};
use gpuscope_model::{CgroupMode, ContainerSample, GpuSample, NodeSample, SourceState};

use crate::runtime::Snapshot;

/// The `snapshot -o table` view.
pub fn snapshot_table(s: &Snapshot) -> String {
    let mut out = String::new();
    if let Some(n) = &s.node {
        out.push_str(&node_line(n));
        out.push('\n');
    }
    let mut rows = vec![
        [
            "CONTAINER",
            "QOS",
            "CGROUP",
            "MEMORY",
            "LIMIT",
            "USE",
            "PEAK",
            "ANON",
            "FILE",
            "SHMEM",
            "OOM_KILLS",
            "MEM_PSI10",
            "PSI",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let mut containers: Vec<&ContainerSample> = s.containers.iter().collect();
    containers.sort_by(|a, b| a.container.cgroup_path.cmp(&b.container.cgroup_path));
    for c in containers {
        let m = &c.memory;
        rows.push(vec![
            short_name(&c.container),
            c.container.qos.map_or_else(|| "-".to_owned(), name),
            name(c.cgroup_version),
            human_bytes(m.usage_bytes),
            opt_bytes(m.limit_bytes),
            percent(m.usage_bytes, m.limit_bytes),
            opt_bytes(m.peak_bytes),
            human_bytes(m.anon_bytes),
            human_bytes(m.file_bytes),
            human_bytes(m.shmem_bytes),
            m.events.oom_kill.to_string(),
            c.pressure
                .memory
                .map_or_else(|| "-".to_owned(), |p| format!("{:.2}", p.some.avg10)),
            name(c.pressure_scope),
        ]);
    }
    out.push_str(&table(&rows));
    if !s.gpus.is_empty() {
        out.push('\n');
        out.push_str(&gpu_table(&s.gpus));
    }
    for src in &s.sources {
        if src.state != SourceState::Ok {
            let _ = writeln!(
                out,
                "source {}: {}: {}",
                src.source,
                name(src.state),
                src.reason.as_deref().unwrap_or("")
            );
        }
    }
    out
}

fn node_line(n: &NodeSample) -> String {
    let psi = n
        .pressure
        .memory
        .map_or_else(|| "-".to_owned(), |p| format!("{:.2}", p.some.avg10));
    let mode = match n.cgroup_mode {
        Some(CgroupMode::V1) => "v1",
        Some(CgroupMode::V2) => "v2",
        Some(CgroupMode::Hybrid) => "hybrid (v1 memory, v2 pressure)",
        None => "none found",
    };
    format!(
        "node boot {}  kernel {}  cgroup {mode}  memory {} available of {}  memory PSI some avg10 {psi}",
        n.boot_id,
        n.kernel_release,
        human_bytes(n.mem_available_bytes),
        human_bytes(n.mem_total_bytes),
    )
}

/// One `watch --samples -o table` line for a GPU sample.
pub fn gpu_line(g: &GpuSample) -> String {
    format!(
        "{}  gpu  {} {}  util {}  memory {} of {}  processes {}{}",
        g.time,
        g.index,
        g.uuid,
        g.utilization_gpu_percent
            .map_or_else(|| "-".to_owned(), |u| format!("{u}%")),
        human_bytes(g.memory_used_bytes),
        human_bytes(g.memory_total_bytes),
        g.processes.len(),
        sim(g.simulated)
    )
}

/// One `watch --samples -o table` line for a container sample.
pub fn sample_line(s: &ContainerSample) -> String {
    format!(
        "{}  sample  {}  memory {} of {}  oom_kills {}",
        s.time,
        short_name(&s.container),
        human_bytes(s.memory.usage_bytes),
        opt_bytes(s.memory.limit_bytes),
        s.memory.events.oom_kill
    )
}

/// Writes `value` as one JSON line.
pub fn json_line<T: serde::Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    out.flush()
}
