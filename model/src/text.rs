//! How samples and events read for people: humanised units, aligned
//! tables, the one-line forms of events and the GPU table. The agent
//! (`snapshot`, `watch`) and the CLI (`events`, `oom`, `gpus`) print the
//! same lines from here, and the diagnosis engine quotes sizes with
//! [`human_bytes`].

use std::fmt::Write as _;

use crate::{ContainerRef, Event, GpuHolder, GpuSample, OomKill};

/// Formats a byte count for people: `31.8 GiB`, `512 B`; a size that is
/// whole at one decimal prints without it (`16 GiB`, not `16.0 GiB`), as a
/// manifest's `16Gi` reads.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let tenths = (value * 10.0).round();
    if unit == 0 {
        format!("{bytes} B")
    } else if tenths % 10.0 == 0.0 {
        format!("{} {}", tenths / 10.0, UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Short name of a container for tables: `pod <uid8>/<id12>` or its path.
pub fn short_name(c: &ContainerRef) -> String {
    match (&c.pod_uid, &c.container_id) {
        (Some(pod), Some(id)) => format!("{}/{}", short(pod, 8), short(id, 12)),
        (Some(pod), None) => format!("{}/-", short(pod, 8)),
        _ => c.cgroup_path.clone(),
    }
}

fn short(s: &str, n: usize) -> &str {
    s.get(..n).unwrap_or(s)
}

/// Renders rows as an aligned table, the first row being the header.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `num` as a percentage of `den` (`-` without a positive `den`).
pub fn percent(num: u64, den: Option<u64>) -> String {
    match den {
        Some(d) if d > 0 => format!("{:.0}%", num as f64 * 100.0 / d as f64),
        _ => "-".to_owned(),
    }
}

/// [`human_bytes`] of a size that may be absent (`-`).
pub fn opt_bytes(b: Option<u64>) -> String {
    b.map_or_else(|| "-".to_owned(), human_bytes)
}

/// One `watch -o table` line for an event.
pub fn event_line(e: &Event) -> String {
    match e {
        Event::OomKill(k) => oom_line(k, &short_name(&k.container)),
        Event::KmsgOverrun { time, lost } => {
            format!("{time}  kmsg_overrun  {lost} kernel log record(s) lost before they were read")
        }
        Event::Xid {
            time,
            gpu_uuid,
            gpu_index,
            xid,
            count,
            holders,
            simulated,
            kernel,
        } => format!(
            "{time}  xid  GPU {} {gpu_uuid}  XID {xid} (#{count} on this GPU){}{}{}",
            gpu_index.map_or_else(|| "?".to_owned(), |i| i.to_string()),
            held_by(holders),
            kernel.as_ref().map_or_else(String::new, |k| format!(
                "  kernel: {}{}{}",
                k.message,
                k.pid
                    .map(|p| format!(
                        " (pid {p}{}{})",
                        k.process
                            .as_deref()
                            .map(|n| format!(" {n}"))
                            .unwrap_or_default(),
                        k.container
                            .as_ref()
                            .and_then(|c| c.pod_uid.as_deref())
                            .map(|u| format!(", pod UID {u}"))
                            .unwrap_or_default()
                    ))
                    .unwrap_or_default(),
                if k.before_agent_start {
                    ", before the agent started"
                } else {
                    ""
                }
            )),
            sim(*simulated)
        ),
        Event::GpuLost {
            time,
            gpu_index,
            gpu_uuid,
            holders,
            simulated,
        } => format!(
            "{time}  gpu_lost  GPU {gpu_index} {}  fell off the bus (NVML_ERROR_GPU_IS_LOST){}{}",
            gpu_uuid.as_deref().unwrap_or("(uuid unknown)"),
            held_by(holders),
            sim(*simulated)
        ),
        Event::GpuCountChanged {
            time,
            before,
            after,
            simulated,
        } => format!(
            "{time}  gpu_count_changed  NVML sees {after} GPU(s), was {before}{}",
            sim(*simulated)
        ),
        Event::GpuHealthChange {
            time,
            gpu_uuid,
            gpu_index,
            change,
            holders,
            simulated,
        } => format!(
            "{time}  gpu_health_change  GPU {} {gpu_uuid}  {}{}{}",
            gpu_index.map_or_else(|| "?".to_owned(), |i| i.to_string()),
            change.describe(),
            held_by(holders),
            sim(*simulated)
        ),
        Event::SwitchXid { time, line } => format!(
            "{time}  switch_xid  NVSwitch {} ({})  SXid {}{}: {}{}",
            line.device,
            line.switch_pci_bus_id,
            line.sxid,
            line.severity
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            line.message,
            if line.before_agent_start {
                "  [before the agent started]"
            } else {
                ""
            }
        ),
        Event::Source { time, status } => format!(
            "{time}  source  {} {}{}",
            status.source,
            name(status.state),
            status
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
    }
}

fn held_by(holders: &[GpuHolder]) -> String {
    if holders.is_empty() {
        return String::new();
    }
    let pods: Vec<String> = holders.iter().map(GpuHolder::label).collect();
    format!("  held by {}", pods.join(", "))
}

/// `  [simulated]` after a reading from the fake NVML, else nothing.
pub fn sim(simulated: bool) -> &'static str {
    if simulated { "  [simulated]" } else { "" }
}

/// One OOM kill as [`event_line`] prints it, its container shown as
/// `container` (the caller's name for it: [`short_name`], or the names
/// Kubernetes gives it).
pub fn oom_line(k: &OomKill, container: &str) -> String {
    let victim = k.victim.as_ref().map_or_else(
        || "victim unknown (no kernel report)".to_owned(),
        |v| {
            format!(
                "victim {} (pid {}) anon-rss {} file-rss {} shmem-rss {}",
                v.comm,
                v.pid,
                human_bytes(v.anon_rss_bytes),
                human_bytes(v.file_rss_bytes),
                human_bytes(v.shmem_rss_bytes)
            )
        },
    );
    // A memory.oom.group kill: the chosen victim above, then the others.
    let group = k.group.as_ref().map_or_else(String::new, |g| {
        let names: Vec<String> = g
            .members
            .iter()
            .map(|m| format!("{} ({})", m.comm, m.pid))
            .collect();
        format!(
            " + group kill of {} other process(es){}",
            g.member_count,
            if names.is_empty() {
                String::new()
            } else {
                format!(": {}", names.join(", "))
            }
        )
    });
    format!(
        "{}  oom_kill  {}  {}{group}  limit {}  constraint {}  kills {}  via {}  window {} points",
        k.time,
        container,
        victim,
        opt_bytes(k.limit_bytes.or(k.kernel_limit_bytes)),
        name(k.constraint),
        k.oom_kill.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        name(k.detected_by),
        k.window.len(),
    )
}

/// The GPU table: one row per GPU or MIG instance, then one per process.
pub fn gpu_table(gpus: &[GpuSample]) -> String {
    let mut rows = vec![
        [
            "GPU",
            "UUID",
            "NAME",
            "UTIL",
            "MEM_USED",
            "MEM_TOTAL",
            "POWER",
            "TEMP",
            "HELD_BY",
            "PROCESSES",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for g in gpus {
        let held: Vec<String> = g.holders.iter().map(GpuHolder::label).collect();
        let procs: Vec<String> = g
            .processes
            .iter()
            .map(|p| {
                let owner = p
                    .container
                    .as_ref()
                    .map_or_else(|| "host".to_owned(), short_name);
                format!("{} {} {}", p.pid, opt_bytes(p.used_memory_bytes), owner)
            })
            .collect();
        rows.push(vec![
            if g.parent_uuid.is_some() {
                format!("{}/mig", g.index)
            } else {
                g.index.to_string()
            },
            g.uuid.clone(),
            format!("{}{}", g.name, sim(g.simulated)),
            g.utilization_gpu_percent
                .map_or_else(|| "-".to_owned(), |u| format!("{u}%")),
            human_bytes(g.memory_used_bytes),
            human_bytes(g.memory_total_bytes),
            g.power_draw_watts
                .map_or_else(|| "-".to_owned(), |w| format!("{w:.0} W")),
            g.temperature_celsius
                .map_or_else(|| "-".to_owned(), |t| format!("{t} C")),
            if held.is_empty() {
                "-".to_owned()
            } else {
                held.join(",")
            },
            if procs.is_empty() {
                "-".to_owned()
            } else {
                procs.join("; ")
            },
        ]);
    }
    table(&rows)
}

/// A sparkline of `values`, scaled from 0 to `max` (or to the largest
/// value when `max` is `None`).
pub fn sparkline(values: &[u64], max: Option<u64>) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let top = max
        .or_else(|| values.iter().copied().max())
        .unwrap_or(1)
        .max(1);
    values
        .iter()
        .map(|&v| BARS[((v.min(top) * 7 + top / 2) / top) as usize])
        .collect()
}

/// An enum's name as JSON spells it (`memcg`, `notification`), so tables
/// and JSON say the same word.
pub fn name<T: serde::Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_kill_names_the_chosen_victim_then_the_others() {
        let line = oom_line(&crate::testing::group_kill(), "ml/trainer-0/trainer");
        assert!(
            line.contains(
                "victim python3 (pid 8048) anon-rss 63.6 MiB file-rss 0 B shmem-rss 0 B + group kill of 1 other process(es): pt_data_worker (8051)"
            ),
            "{line}"
        );
        let mut single = crate::testing::group_kill();
        single.group = None;
        assert!(!oom_line(&single, "c").contains("group kill"));
    }

    #[test]
    fn sparkline_scales_to_the_limit() {
        assert_eq!(sparkline(&[0, 32, 64], Some(64)), "▁▅█");
        assert_eq!(sparkline(&[1, 2], None), "▅█");
        assert_eq!(sparkline(&[], Some(1)), "");
    }

    #[test]
    fn bytes_are_humanised() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(67_108_864), "64 MiB");
        assert_eq!(human_bytes(16 << 30), "16 GiB");
        assert_eq!(human_bytes((16 << 30) + (1 << 20)), "16 GiB");
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
        assert_eq!(human_bytes(1023 << 20), "1023 MiB");
        assert_eq!(human_bytes(34_144_990_003), "31.8 GiB");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(&[
            vec!["A".into(), "LONGER".into(), "C".into()],
            vec!["wide-cell".into(), "x".into(), "y".into()],
        ]);
        assert_eq!(t, "A          LONGER  C\nwide-cell  x       y\n");
    }
}
