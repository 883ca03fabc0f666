//! Findings for people and for scripts: the one renderer behind
//! `explain`, `explain --bundle`, `diagnose` and `idle`.

use std::collections::BTreeMap;

use gpuscope_diagnose::wire::confidence_str;
use gpuscope_diagnose::{Finding, Gap, Kind};
use gpuscope_model::Timestamp;
use gpuscope_model::text::table;

use super::print_json;
use crate::Format;

/// The JSON document `explain` and `diagnose` print.
#[derive(serde::Serialize)]
struct Report<'a> {
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "<[Gap]>::is_empty")]
    gaps: &'a [Gap],
    #[serde(skip_serializing_if = "<[Recorded]>::is_empty")]
    recorded: &'a [Recorded],
}

/// A diagnosis the aggregator recorded after an incident, while Kubernetes
/// still had the pod.
#[derive(Debug, serde::Serialize)]
pub struct Recorded {
    /// When it was made.
    pub recorded_at: Timestamp,
    /// The pod's namespace then (empty: not known to Kubernetes).
    pub pod_namespace: String,
    /// The pod's name then.
    pub pod_name: String,
    /// The pod's UID.
    pub pod_uid: String,
    /// The node of the incident that caused it.
    pub node: String,
    /// That incident's sequence number in its node's boot.
    pub seq: u64,
    /// What was found.
    pub findings: Vec<Finding>,
    /// What was missing then.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
}

/// Where a finding points: `namespace/pod container`, or the node/GPU.
fn subject(f: &Finding) -> String {
    let s = &f.subject;
    let mut out = match (&s.namespace, &s.pod) {
        (Some(ns), Some(p)) => format!("{ns}/{p}"),
        (None, Some(p)) => p.clone(),
        _ => s
            .node
            .clone()
            .map(|n| format!("node {n}"))
            .unwrap_or_default(),
    };
    if let Some(c) = &s.container {
        out.push_str(&format!(" [{c}]"));
    }
    if let Some(g) = &s.gpu {
        out.push_str(&format!(" gpu {}", &g[..g.len().min(12)]));
    }
    out
}

/// Prints the gaps: what the findings could not see.
fn print_gaps(gaps: &[Gap]) {
    if gaps.is_empty() {
        return;
    }
    println!("\nevidence not available (findings may be less certain):");
    for g in gaps {
        println!("  - {}: {}", g.what, g.why);
    }
}

/// Prints the findings about one pod in full: each sentence, its
/// evidence aligned, its next steps.
pub fn print_explained(
    title: &str,
    findings: &[Finding],
    gaps: &[Gap],
    recorded: &[Recorded],
    out: Format,
) -> anyhow::Result<()> {
    if out == Format::Json {
        return print_json(&Report {
            findings,
            gaps,
            recorded,
        });
    }
    println!("{title}");
    if findings.is_empty() {
        println!("\nNo problem found.");
    }
    print_findings(findings);
    print_gaps(gaps);
    for r in recorded {
        let pod = if r.pod_name.is_empty() {
            format!("pod {}", r.pod_uid)
        } else {
            format!("pod {}/{} (UID {})", r.pod_namespace, r.pod_name, r.pod_uid)
        };
        println!(
            "\n--- recorded {} ({}), after incident #{} on node {}, while Kubernetes still had {pod}:",
            r.recorded_at,
            crate::render::ago(r.recorded_at),
            r.seq,
            r.node
        );
        print_findings(&r.findings);
        print_gaps(&r.gaps);
    }
    Ok(())
}

/// How deep each finding sits in its chain: 0 for a root cause (or a
/// finding whose causes are not in the list), 1 for what it caused, …
/// The engine lists each root followed by its consequences.
fn depths(findings: &[Finding]) -> Vec<usize> {
    let mut depth: Vec<Option<usize>> = vec![None; findings.len()];
    fn of(i: usize, findings: &[Finding], depth: &mut [Option<usize>], guard: usize) -> usize {
        if let Some(d) = depth[i] {
            return d;
        }
        let parent = findings[i]
            .caused_by
            .iter()
            .find_map(|c| findings.iter().position(|f| &f.id == c));
        let d = match parent {
            Some(p) if guard < findings.len() => 1 + of(p, findings, depth, guard + 1),
            _ => 0,
        };
        depth[i] = Some(d);
        d
    }
    (0..findings.len())
        .map(|i| of(i, findings, &mut depth, 0))
        .collect()
}

/// Each finding: its sentence, its evidence aligned, its next steps; a
/// consequence indented under its cause.
fn print_findings(findings: &[Finding]) {
    let depths = depths(findings);
    for (f, depth) in findings.iter().zip(depths) {
        let caused = if depth == 0 {
            String::new()
        } else {
            let causes: Vec<String> = f
                .caused_by
                .iter()
                .filter_map(|c| findings.iter().find(|x| &x.id == c))
                .map(|c| c.kind.to_string())
                .collect();
            format!("  <- caused by {}", causes.join(", "))
        };
        let pad = "    ".repeat(depth);
        println!(
            "\n{pad}[{}] {} {}{caused}\n{pad}  {}",
            confidence_str(f.confidence),
            f.kind,
            subject(f),
            f.summary
        );
        let width = f
            .evidence
            .iter()
            .map(|e| e.name.chars().count())
            .max()
            .unwrap_or(0)
            .min(28);
        for e in &f.evidence {
            let when = e
                .time
                .map(|t| t.to_string())
                .filter(|t| !e.value.contains(t.as_str()))
                .map(|t| format!("  ({t})"))
                .unwrap_or_default();
            println!("{pad}    {:<width$}  {}{when}", e.name, e.value);
        }
        if !f.next_steps.is_empty() {
            println!("{pad}  next steps:");
            for s in &f.next_steps {
                println!("{pad}    - {s}");
            }
        }
    }
}

/// Prints findings as a ranked table (most costly first), one line each.
pub fn print_ranked(findings: &[Finding], gaps: &[Gap], out: Format) -> anyhow::Result<()> {
    if out == Format::Json {
        return print_json(&Report {
            findings,
            gaps,
            recorded: &[],
        });
    }
    if findings.is_empty() {
        println!("No problem found.");
        print_gaps(gaps);
        return Ok(());
    }
    let mut rows = vec![vec![
        "KIND".into(),
        "CONFIDENCE".into(),
        "SUBJECT".into(),
        "GPU-H".into(),
        "RESTARTS".into(),
        "SUMMARY".into(),
    ]];
    for (f, depth) in findings.iter().zip(depths(findings)) {
        let cost = f.cost.unwrap_or_default();
        rows.push(vec![
            if depth == 0 {
                f.kind.to_string()
            } else {
                format!("{}<- {}", "  ".repeat(depth), f.kind)
            },
            confidence_str(f.confidence).into(),
            subject(f),
            if cost.gpu_hours > 0.0 {
                format!("{:.1}", cost.gpu_hours)
            } else {
                "-".into()
            },
            if cost.restarts > 0 {
                cost.restarts.to_string()
            } else {
                "-".into()
            },
            f.summary.clone(),
        ]);
    }
    print!("{}", table(&rows));
    println!("\n`gpuscope explain POD -n NAMESPACE` shows the evidence and next steps.");
    print_gaps(gaps);
    Ok(())
}

/// Prints idle GPUs with their owners, and the GPU-hours wasted per
/// namespace and owner.
pub fn print_idle(findings: &[Finding], gaps: &[Gap], out: Format) -> anyhow::Result<()> {
    let idle: Vec<Finding> = findings
        .iter()
        .filter(|f| matches!(f.kind, Kind::GpuIdle | Kind::GpuMemoryIdle))
        .cloned()
        .collect();
    if out == Format::Json {
        return print_json(&Report {
            findings: &idle,
            gaps,
            recorded: &[],
        });
    }
    if idle.is_empty() {
        println!("No idle GPU found.");
        print_gaps(gaps);
        return Ok(());
    }
    let mut rows = vec![vec![
        "NODE".into(),
        "GPU".into(),
        "POD".into(),
        "OWNER".into(),
        "KIND".into(),
        "GPU-H WASTED".into(),
    ]];
    let mut per_owner: BTreeMap<(String, String), f64> = BTreeMap::new();
    for f in &idle {
        let s = &f.subject;
        let hours = f.cost.unwrap_or_default().gpu_hours;
        let ns = s.namespace.clone().unwrap_or_else(|| "-".into());
        let owner = s.owner.clone().unwrap_or_else(|| "-".into());
        *per_owner.entry((ns.clone(), owner.clone())).or_default() += hours;
        rows.push(vec![
            s.node.clone().unwrap_or_else(|| "-".into()),
            s.gpu.clone().unwrap_or_else(|| "-".into()),
            s.pod
                .as_ref()
                .map_or_else(|| "-".into(), |p| format!("{ns}/{p}")),
            owner,
            f.kind.to_string(),
            format!("{hours:.1}"),
        ]);
    }
    print!("{}", table(&rows));
    let mut totals = vec![vec![
        "NAMESPACE".into(),
        "OWNER".into(),
        "GPU-H WASTED".into(),
    ]];
    let mut by_cost: Vec<_> = per_owner.into_iter().collect();
    by_cost.sort_by(|a, b| b.1.total_cmp(&a.1));
    for ((ns, owner), h) in by_cost {
        totals.push(vec![ns, owner, format!("{h:.1}")]);
    }
    println!();
    print!("{}", table(&totals));
    print_gaps(gaps);
    Ok(())
}

#[cfg(test)]
mod tests {
    use gpuscope_diagnose::{Confidence, Subject};

    use super::*;

    #[test]
    fn consequences_sit_under_their_causes() {
        let f = |id: &str, causes: &[&str]| {
            let mut f = Finding::new(Kind::CrashLoop, Subject::default(), Confidence::High, "");
            f.id = id.into();
            f.caused_by = causes.iter().map(|c| (*c).to_owned()).collect();
            f
        };
        let v = [
            f("probe", &[]),
            f("exit", &["probe"]),
            f("loop", &["exit"]),
            f("other", &["gone"]),
        ];
        assert_eq!(depths(&v), [0, 1, 2, 0]);
    }
}
