//! `gpuscope explain POD`: why a pod's container was OOM-killed, from the
//! node's evidence (the kill, its kernel report, the flight recorder).
//!
//! The explanation is a finding: one sentence, the evidence as numbers
//! with times, the next steps, and a confidence that drops when evidence
//! is missing (no kernel report: the victim is unknown).

use gpuscope_agent::model::{Event, OomConstraint, OomKill, PsiScope, RecorderPoint, Timestamp};
use gpuscope_agent::output::{human_bytes, sparkline};
use gpuscope_proto::v1 as pb;

use super::{Client, IncidentJson, incident, print_json};
use crate::Format;
use crate::render::ago;

/// One finding, in the JSON shape `explain -o json` prints.
#[derive(Debug, serde::Serialize)]
pub struct Finding {
    /// What was found (`oom_killed`, `oom_killed_worker`, `oom_node`).
    pub kind: &'static str,
    /// One plain sentence.
    pub summary: String,
    /// `high`, `medium` or `low`.
    pub confidence: &'static str,
    /// The numbers that prove it.
    pub evidence: Vec<Evidence>,
    /// What to run or change next.
    pub next_steps: Vec<String>,
}

/// One number of evidence.
#[derive(Debug, serde::Serialize)]
pub struct Evidence {
    /// What it is.
    pub name: String,
    /// Its value, for people.
    pub value: String,
    /// When it was true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
}

fn ev(name: &str, value: String, time: Option<Timestamp>) -> Evidence {
    Evidence {
        name: name.to_owned(),
        value,
        time,
    }
}

/// Growth before the kill: from the last low point to the peak.
struct Growth {
    from: RecorderPoint,
    to: RecorderPoint,
}

impl Growth {
    fn of(window: &[RecorderPoint]) -> Option<Self> {
        let peak = window.iter().max_by_key(|p| p.usage_bytes)?;
        let before: Vec<&RecorderPoint> =
            window.iter().take_while(|p| p.time <= peak.time).collect();
        let low = before
            .iter()
            .min_by_key(|p| (p.usage_bytes, std::cmp::Reverse(p.time)))?;
        Some(Self {
            from: **low,
            to: *peak,
        })
    }

    fn seconds(&self) -> f64 {
        self.to.time.since(self.from.time).as_secs_f64()
    }

    fn bytes_per_second(&self) -> Option<f64> {
        let s = self.seconds();
        (s > 0.0).then(|| self.to.usage_bytes.saturating_sub(self.from.usage_bytes) as f64 / s)
    }
}

/// Builds the finding for one OOM kill. `survived`: the container was
/// still sampled after the kill. `recurrences`: kills of the same
/// container recorded in the store.
pub fn finding(node: &str, k: &OomKill, survived: Option<bool>, recurrences: usize) -> Finding {
    let container = k
        .container
        .container_id
        .as_deref()
        .map_or("?", |c| &c[..c.len().min(12)]);
    let limit = k.limit_bytes.or(k.kernel_limit_bytes);
    let victim = k.victim.as_ref();
    let who = victim.map_or_else(
        || "a process (the kernel report was not read, so which one is unknown)".to_owned(),
        |v| {
            format!(
                "process {} (pid {}, {} anonymous memory)",
                v.comm,
                v.pid,
                human_bytes(v.anon_rss_bytes)
            )
        },
    );
    let (kind, summary) = match (k.constraint, survived) {
        (OomConstraint::Node, _) => (
            "oom_node",
            format!(
                "The node {node} ran out of memory and the kernel killed {who} in container {container}; the container's own limit ({}) was not the cause.",
                limit.map_or_else(|| "none".to_owned(), human_bytes)
            ),
        ),
        (_, Some(true)) => (
            "oom_killed_worker",
            format!(
                "The kernel killed {who} in container {container} at its {} memory limit, but the container kept running: a worker process died, which Kubernetes does not report (no restart, no OOMKilled status).",
                limit.map_or_else(|| "?".to_owned(), human_bytes)
            ),
        ),
        _ => (
            "oom_killed",
            format!(
                "Container {container} was OOM-killed: {who} pushed it to its {} memory limit.",
                limit.map_or_else(|| "?".to_owned(), human_bytes)
            ),
        ),
    };
    let mut evidence = vec![
        ev("killed at", k.time.to_string(), Some(k.time)),
        ev("node", node.to_owned(), None),
        ev(
            "memory limit",
            limit.map_or_else(|| "none".to_owned(), human_bytes),
            None,
        ),
    ];
    if let Some(p) = k.peak_bytes {
        evidence.push(ev("peak memory", human_bytes(p), None));
    }
    if let Some(v) = victim {
        evidence.push(ev(
            "victim",
            format!(
                "{} pid {}: anon-rss {}, file-rss {}, shmem-rss {}",
                v.comm,
                v.pid,
                human_bytes(v.anon_rss_bytes),
                human_bytes(v.file_rss_bytes),
                human_bytes(v.shmem_rss_bytes)
            ),
            Some(k.time),
        ));
    }
    if let (Some(u), Some(l)) = (k.kernel_usage_bytes, k.kernel_limit_bytes) {
        evidence.push(ev(
            "kernel report: memcg usage / limit",
            format!("{} / {}", human_bytes(u), human_bytes(l)),
            Some(k.time),
        ));
    }
    let growth = Growth::of(&k.window);
    let mut next_steps = Vec::new();
    if let Some(g) = &growth {
        if let Some(rate) = g.bytes_per_second() {
            evidence.push(ev(
                "growth before the kill",
                format!(
                    "{} -> {} in {:.1} s ({}/s)",
                    human_bytes(g.from.usage_bytes),
                    human_bytes(g.to.usage_bytes),
                    g.seconds(),
                    human_bytes(rate as u64)
                ),
                Some(g.to.time),
            ));
        }
        let p = g.to;
        evidence.push(ev(
            "composition at the peak",
            format!(
                "anon {}, page cache {} (of which shmem/tmpfs {})",
                human_bytes(p.anon_bytes),
                human_bytes(p.file_bytes),
                human_bytes(p.shmem_bytes)
            ),
            Some(p.time),
        ));
        if p.usage_bytes > 0 && p.shmem_bytes * 4 > p.usage_bytes {
            next_steps.push(format!(
                "Shared memory (/dev/shm or another tmpfs) held {} of the {} charged: it counts against the limit. Size the /dev/shm emptyDir (medium: Memory, sizeLimit) and include it in the limit, or reduce what is kept there (e.g. DataLoader workers' shared tensors).",
                human_bytes(p.shmem_bytes),
                human_bytes(p.usage_bytes)
            ));
        }
    }
    if let (Some(first), Some(last)) = (k.window.first(), k.window.last()) {
        let stalled = last
            .memory_some_total_us
            .saturating_sub(first.memory_some_total_us);
        let scope = match k.pressure_scope {
            Some(PsiScope::Container) => "the container",
            Some(PsiScope::Node) => "the node (no per-container pressure on this host)",
            None => "unknown scope",
        };
        evidence.push(ev(
            "memory pressure before the kill",
            format!(
                "{:.1} ms stalled over the last {:.0} s; avg10 up to {:.2}% ({scope})",
                stalled as f64 / 1000.0,
                last.time.since(first.time).as_secs_f64(),
                k.window
                    .iter()
                    .map(|p| p.memory_some_avg10)
                    .fold(0.0, f32::max)
            ),
            Some(last.time),
        ));
    }
    if recurrences > 1 {
        evidence.push(ev(
            "OOM kills of this container recorded",
            recurrences.to_string(),
            None,
        ));
    }
    match survived {
        Some(true) => evidence.push(ev(
            "container after the kill",
            "still running (sampled after the kill)".into(),
            None,
        )),
        Some(false) => evidence.push(ev(
            "container after the kill",
            "exited (not sampled since, or its cgroup left nearly empty)".into(),
            None,
        )),
        None => {}
    }
    match k.constraint {
        OomConstraint::Node => next_steps.push(format!(
            "Find what filled node {node}: `kubectl describe node {node}` (Allocated resources) and `kubectl top pods -A --sort-by=memory`; pods without memory limits or with limits above their requests overcommit the node."
        )),
        _ => {
            if let Some(p) = k.peak_bytes.or(limit) {
                let suggest = (p as f64 * 1.25 / f64::from(256u32 << 20)).ceil() as u64 * 256;
                next_steps.push(format!(
                    "If this memory use is expected, raise the container's limit above its peak: resources.limits.memory: {suggest}Mi (peak {} + 25 %).",
                    human_bytes(p)
                ));
            }
            next_steps.push(
                "If it is not expected, look at what grew: `kubectl logs --previous` for the last lines before the kill, and the growth rate above (steady growth suggests a leak or an unbounded cache; a jump suggests one large batch or load).".to_owned(),
            );
        }
    }
    let confidence = match (victim, k.constraint) {
        (Some(_), OomConstraint::Memcg | OomConstraint::Node) => "high",
        (Some(_), _) | (None, OomConstraint::Memcg | OomConstraint::Node) => "medium",
        (None, _) => "low",
    };
    if victim.is_none() {
        next_steps.push("The kernel's OOM report was not read (is /dev/kmsg mounted into the agent?): run `dmesg | grep -i -A3 oom-kill` on the node to see which process died.".to_owned());
    }
    Finding {
        kind,
        summary,
        confidence,
        evidence,
        next_steps,
    }
}

/// Explains the newest OOM kill of the pod whose UID is or starts with
/// `pod`.
pub async fn explain(
    client: &mut Client,
    pod: &str,
    namespace: Option<&str>,
    out: Format,
) -> anyhow::Result<()> {
    if namespace.is_some() {
        eprintln!(
            "gpuscope: pods are known by UID until the aggregator watches Kubernetes; --namespace is ignored"
        );
    }
    // A full UID is looked up through the aggregator's pod index; a
    // prefix needs every OOM kill.
    let list = |pod_uid: String| pb::ListIncidentsRequest {
        filter: Some(pb::IncidentFilter {
            node_name: String::new(),
            pod_uid,
            kinds: vec![pb::IncidentKind::OomKill as i32],
        }),
        since_unix_nanos: 0,
        until_unix_nanos: 0,
        limit: 10_000,
    };
    let mut all = client
        .list_incidents(list(pod.to_owned()))
        .await?
        .into_inner();
    if all.incidents.is_empty() {
        all = client
            .list_incidents(list(String::new()))
            .await?
            .into_inner();
    }
    let kills: Vec<(IncidentJson, OomKill)> = all
        .incidents
        .into_iter()
        .filter_map(incident)
        .filter_map(|i| match &i.event {
            Event::OomKill(k) => {
                let k = (**k).clone();
                k.container
                    .pod_uid
                    .as_deref()
                    .is_some_and(|u| u.starts_with(pod))
                    .then_some((i, k))
            }
            _ => None,
        })
        .collect();
    let mut uids: Vec<&str> = kills
        .iter()
        .filter_map(|(_, k)| k.container.pod_uid.as_deref())
        .collect();
    uids.sort_unstable();
    uids.dedup();
    if uids.len() > 1 {
        anyhow::bail!("{pod} matches {} pods: {}", uids.len(), uids.join(", "));
    }
    let Some((inc, kill)) = kills.first() else {
        let msg = format!("No OOM kill recorded for pod {pod}.");
        if out == Format::Json {
            return print_json(&serde_json::json!({ "findings": [], "note": msg }));
        }
        println!("{msg}");
        return Ok(());
    };
    let recurrences = kills
        .iter()
        .filter(|(_, k)| k.container.cgroup_path == kill.container.cgroup_path)
        .count();
    let survived = survived(client, &inc.node, kill).await;
    let f = finding(&inc.node, kill, survived, recurrences);
    if out == Format::Json {
        return print_json(&serde_json::json!({ "findings": [f] }));
    }
    println!(
        "pod {} container {} on node {}: OOM-killed {} ({})",
        kill.container.pod_uid.as_deref().unwrap_or("?"),
        kill.container
            .container_id
            .as_deref()
            .unwrap_or(&kill.container.cgroup_path),
        inc.node,
        ago(kill.time),
        kill.time
    );
    println!("\n{}\n", f.summary);
    let width = f.evidence.iter().map(|e| e.name.len()).max().unwrap_or(0);
    for e in &f.evidence {
        println!("  {:<width$}  {}", e.name, e.value);
    }
    if !kill.window.is_empty() {
        let usage: Vec<u64> = kill.window.iter().map(|p| p.usage_bytes).collect();
        let span = kill
            .window
            .last()
            .map_or(0.0, |l| l.time.since(kill.window[0].time).as_secs_f64());
        println!(
            "\n  memory  {}  ({} points over {:.0} s, scaled to the limit)",
            sparkline(&usage, kill.limit_bytes.or(kill.kernel_limit_bytes)),
            usage.len(),
            span
        );
    }
    println!("\nconfidence: {}\nnext steps:", f.confidence);
    for s in &f.next_steps {
        println!("  - {s}");
    }
    Ok(())
}

/// Whether the killed container lived on: still sampled two seconds after
/// the kill with memory in use (a worker died, the main process did not).
/// `Some(false)`: not sampled since, or its cgroup was left nearly empty.
/// `None`: too soon to tell, or the aggregator no longer knows it.
async fn survived(client: &mut Client, node: &str, kill: &OomKill) -> Option<bool> {
    let after = kill.time.as_nanos() + 2_000_000_000;
    if Timestamp::now().as_nanos() < after {
        return None;
    }
    let list = client
        .list_containers(pb::ListContainersRequest {
            node_name: node.to_owned(),
            pod_uid: kill.container.pod_uid.clone().unwrap_or_default(),
        })
        .await
        .ok()?
        .into_inner();
    let Some(c) = list.containers.iter().find(|c| {
        c.latest
            .as_ref()
            .and_then(|l| l.container.as_ref())
            .is_some_and(|r| r.cgroup_path == kill.container.cgroup_path)
    }) else {
        return Some(false);
    };
    let in_use = c
        .latest
        .as_ref()
        .and_then(|l| l.memory.as_ref())
        .map_or(0, |m| m.usage_bytes);
    // An exited container's cgroup keeps a few hundred KiB of kernel
    // memory until it is removed; a living process holds more.
    Some(c.last_seen_unix_nanos > after && in_use >= 4 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuscope_agent::model::{ContainerRef, Detection, Victim};

    fn point(s: u64, usage_mib: u64, shmem_mib: u64, psi_total: u64) -> RecorderPoint {
        RecorderPoint {
            time: Timestamp(1_764_150_000_000_000_000 + s * 1_000_000_000),
            usage_bytes: usage_mib << 20,
            anon_bytes: (usage_mib - shmem_mib) << 20,
            file_bytes: shmem_mib << 20,
            shmem_bytes: shmem_mib << 20,
            memory_some_avg10: 1.5,
            memory_some_total_us: psi_total,
            memory_full_total_us: 0,
        }
    }

    fn kill(constraint: OomConstraint, victim: bool, shmem_mib: u64) -> OomKill {
        OomKill {
            time: Timestamp(1_764_150_000_000_000_000 + 10 * 1_000_000_000),
            detected_at: Timestamp(1_764_150_000_000_000_000 + 10 * 1_000_000_000),
            detected_by: Detection::Notification,
            container: ContainerRef {
                cgroup_path: "/kubepods/burstable/podp/c".into(),
                pod_uid: Some("p".into()),
                container_id: Some("abcdef0123456789".into()),
                ..ContainerRef::default()
            },
            cgroup_version: None,
            limit_bytes: Some(1 << 30),
            peak_bytes: Some(1 << 30),
            oom_kill: Some(1),
            oom_group_kill: None,
            constraint,
            victim: victim.then(|| Victim {
                pid: 42,
                comm: "python3".into(),
                anon_rss_bytes: 900 << 20,
                ..Victim::default()
            }),
            trigger_comm: None,
            kernel_usage_bytes: None,
            kernel_limit_bytes: None,
            window: vec![
                point(0, 300, shmem_mib.min(300), 0),
                point(2, 200, shmem_mib.min(200), 100),
                point(6, 600, shmem_mib.min(600), 5_000),
                point(10, 1024, shmem_mib, 25_000),
            ],
            pressure_scope: Some(PsiScope::Container),
        }
    }

    fn value<'a>(f: &'a Finding, name: &str) -> &'a str {
        &f.evidence
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name} in {f:?}"))
            .value
    }

    #[test]
    fn container_limit_kill_with_growth_and_pressure() {
        let f = finding(
            "gpu-node-1",
            &kill(OomConstraint::Memcg, true, 0),
            Some(false),
            3,
        );
        assert_eq!(f.kind, "oom_killed");
        assert_eq!(f.confidence, "high");
        assert!(
            f.summary
                .contains("process python3 (pid 42, 900.0 MiB anonymous memory)"),
            "{}",
            f.summary
        );
        assert!(f.summary.contains("1.0 GiB memory limit"), "{}", f.summary);
        // From the last low point (200 MiB at 2 s) to the peak at 10 s.
        assert_eq!(
            value(&f, "growth before the kill"),
            "200.0 MiB -> 1.0 GiB in 8.0 s (103.0 MiB/s)"
        );
        assert!(
            value(&f, "memory pressure before the kill")
                .starts_with("25.0 ms stalled over the last 10 s")
        );
        assert_eq!(value(&f, "OOM kills of this container recorded"), "3");
        assert!(
            f.next_steps[0].contains("resources.limits.memory: 1280Mi"),
            "{:?}",
            f.next_steps
        );
    }

    #[test]
    fn a_worker_killed_while_the_container_lives() {
        let f = finding("n", &kill(OomConstraint::Memcg, true, 0), Some(true), 1);
        assert_eq!(f.kind, "oom_killed_worker");
        assert!(f.summary.contains("kept running"), "{}", f.summary);
    }

    #[test]
    fn node_wide_oom_blames_the_node_not_the_limit() {
        let f = finding("gpu-node-1", &kill(OomConstraint::Node, true, 0), None, 1);
        assert_eq!(f.kind, "oom_node");
        assert!(
            f.summary.contains("The node gpu-node-1 ran out of memory"),
            "{}",
            f.summary
        );
        assert!(
            f.next_steps[0].contains("kubectl describe node gpu-node-1"),
            "{:?}",
            f.next_steps
        );
    }

    #[test]
    fn shared_memory_is_called_out() {
        let f = finding("n", &kill(OomConstraint::Memcg, true, 700), Some(false), 1);
        assert!(
            f.next_steps.iter().any(|s| s.contains("/dev/shm")),
            "{:?}",
            f.next_steps
        );
    }

    #[test]
    fn missing_kernel_report_lowers_confidence() {
        let f = finding("n", &kill(OomConstraint::Unknown, false, 0), None, 1);
        assert_eq!(f.confidence, "low");
        assert!(f.summary.contains("which one is unknown"), "{}", f.summary);
        assert!(
            f.next_steps.iter().any(|s| s.contains("dmesg")),
            "{:?}",
            f.next_steps
        );
        let f = finding("n", &kill(OomConstraint::Memcg, false, 0), None, 1);
        assert_eq!(f.confidence, "medium");
    }
}
