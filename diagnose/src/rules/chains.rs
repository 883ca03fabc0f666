//! Chains: one root cause per failure, and its consequences kept as
//! findings linked to it (`caused_by`), instead of dropped.
//!
//! Each link is a step that Kubernetes, the runtime or the driver really
//! takes, in that order:
//! - **an exit -> the crash loop (or the failed pod).** The kubelet
//!   restarts a container after each exit, with a back-off; whatever ended
//!   the run causes the loop: an OOM kill, a SIGKILL that was not one,
//!   CUDA out of memory, an NCCL error or missing model files named by the
//!   log tail, a worker OOM-killed just before the main process exited
//!   with an error of its own, an XID on the container's GPU as it died, a
//!   GPU it holds that was lost before the exit and is not back (the
//!   kubelet gives the restarted container the same devices, so every run
//!   fails on it), or the kubelet itself after failed liveness or startup
//!   probes;
//! - **a probe -> the exit.** A failed liveness (or startup) probe makes
//!   the kubelet send SIGTERM, then SIGKILL after the grace period: exit
//!   137 that is not an OOM kill (or 143 when the program handled SIGTERM);
//! - **XID 79 -> the lost GPU.** The driver logs XID 79 when the GPU falls
//!   off the bus; NVML then answers `GPU_IS_LOST` or stops counting it;
//! - **failing memory -> its XIDs.** An uncorrectable error in a failing
//!   memory row or page is what the driver reports as XID 48 (double-bit
//!   ECC), 63/64 (row remap or page retirement recorded / failed), 92 (high
//!   single-bit rate) or 94/95 (contained / uncontained ECC error), so
//!   those XIDs on a GPU with `gpu_memory_errors` are linked to it;
//! - **a degraded PCIe link -> XID 79.** A link that is narrowed or keeps
//!   replaying is the usual step before the GPU falls off the bus;
//! - **a degraded NVLink -> XID 74.** The driver reports an NVLink link
//!   that failed (down, or errors past what replay recovers) as XID 74;
//!   the link's state and counters are the fault to act on;
//! - **the rank that is different -> the wedge or the stuck run.** In
//!   data-parallel training every rank meets the others at each
//!   collective, so one slow or stalled rank holds them all: the fault on
//!   the GPU a wedge or stuck finding names as different (clocks held down
//!   by `gpu_throttled`, `gpu_nvlink_degraded`, `gpu_link_degraded`,
//!   `gpu_memory_errors`, an XID) is linked as its cause;
//! - **a process stuck in I/O -> the stuck training and its job's NCCL
//!   wedge.** A rank asleep in the kernel on a read that never completes
//!   launches no more work (its GPU goes flat: training stuck), and every
//!   other rank of the job waits for it in the next collective, its GPUs
//!   spinning (NCCL wedge); linked for the same pod or pods of the same
//!   controller;
//! - **an XID or a lost GPU -> the GPU marked unhealthy.** NVIDIA's device
//!   plugin marks a GPU unhealthy on every XID outside its skip list (the
//!   application's XIDs) and the kubelet lowers the node's allocatable;
//! - **a device plugin down, an unhealthy GPU -> a pod that gets no GPU.**
//!   With the plugin gone the kubelet sets allocatable to 0; with a GPU
//!   unhealthy it counts one fewer. The scheduler then reports
//!   `Insufficient nvidia.com/gpu` (linked for the nodes the pod could
//!   otherwise use: no taint, selector or affinity excludes it, and whose
//!   allocatable is below capacity, as only then does the scheduler count
//!   fewer GPUs there), and the
//!   kubelet's device manager rejects a pod it cannot allocate for
//!   (`UnexpectedAdmissionError`, linked for the pod's own node).
//!
//! Ids are assigned here, once every family has run, from the kind and
//! the subject, so the same evidence gives the same ids.

use std::collections::HashMap;

use crate::finding::{Finding, Kind};
use crate::rules::{gpu_health, scheduling};
use crate::{Context, k8s};

/// Gives every finding its id and links consequences to their causes.
pub(crate) fn link(ctx: &Context<'_>, findings: &mut [Finding]) {
    assign_ids(findings);
    let mut links: Vec<(usize, usize)> = Vec::new();
    for (i, f) in findings.iter().enumerate() {
        match f.kind {
            Kind::CrashLoop | Kind::ContainerFailed => {
                links.extend(exit_cause(ctx, findings, f).map(|c| (i, c)));
            }
            Kind::Exit137NotOom => {
                links.extend(
                    position(findings, |c| {
                        c.kind == Kind::ProbeFailing && same_container(c, f) && probe_killed(c)
                    })
                    .map(|c| (i, c)),
                );
            }
            Kind::GpuXid => {
                let xid = fact(f, "xid").and_then(|v| {
                    v.split(|c: char| !c.is_ascii_digit())
                        .next()
                        .and_then(|d| d.parse::<u64>().ok())
                });
                let cause = match xid {
                    Some(48 | 63 | 64 | 92 | 94 | 95) => Some(Kind::GpuMemoryErrors),
                    Some(79) => Some(Kind::GpuLinkDegraded),
                    Some(74) => Some(Kind::GpuNvlinkDegraded),
                    _ => None,
                };
                if let Some(kind) = cause {
                    links.extend(
                        position(findings, |c| c.kind == kind && c.subject == f.subject)
                            .map(|c| (i, c)),
                    );
                }
            }
            Kind::TrainingStuck | Kind::NcclWedge => {
                links.extend(
                    position(findings, |c| c.kind == Kind::StuckInIo && same_job(c, f))
                        .map(|c| (i, c)),
                );
                links.extend(odd_rank_causes(findings, f).map(|c| (i, c)));
            }
            Kind::GpuLost => {
                links.extend(
                    position(findings, |c| {
                        c.kind == Kind::GpuXid
                            && c.subject == f.subject
                            && fact(c, "xid").is_some_and(|v| v.starts_with("79"))
                    })
                    .map(|c| (i, c)),
                );
            }
            Kind::GpuUnhealthy => {
                for (c, cause) in findings.iter().enumerate() {
                    let on_gpu = match &f.subject.gpu {
                        Some(g) => cause.subject.gpu.as_ref() == Some(g),
                        None => cause.subject.pod.is_none(),
                    };
                    if matches!(cause.kind, Kind::GpuXid | Kind::GpuLost)
                        && cause.subject.node == f.subject.node
                        && on_gpu
                        && !app_xid(ctx, cause)
                    {
                        links.push((i, c));
                    }
                }
            }
            Kind::GpuUnschedulable => {
                let pod = pod_of(ctx, f);
                for (c, cause) in findings.iter().enumerate() {
                    if matches!(cause.kind, Kind::DevicePluginDown | Kind::GpuUnhealthy)
                        && cause.subject.pod.is_none()
                        && cause.subject.node.as_deref().is_some_and(|n| {
                            gpus_withheld(ctx, n)
                                && pod.zip(ctx.node(n)).is_none_or(|(p, node)| {
                                    scheduling::exclusions(p, node).is_empty()
                                })
                        })
                    {
                        links.push((i, c));
                    }
                }
            }
            Kind::AdmissionError => {
                for (c, cause) in findings.iter().enumerate() {
                    if matches!(
                        cause.kind,
                        Kind::DevicePluginDown | Kind::GpuUnhealthy | Kind::GpuLost
                    ) && cause.subject.pod.is_none()
                        && cause.subject.node.is_some()
                        && cause.subject.node == f.subject.node
                    {
                        links.push((i, c));
                    }
                }
            }
            _ => {}
        }
    }
    for (effect, cause) in links {
        if effect == cause {
            continue;
        }
        let id = findings[cause].id.clone();
        if !findings[effect].caused_by.contains(&id) {
            findings[effect].caused_by.push(id);
        }
    }
}

/// The findings about the GPU a stuck or wedged run names as the rank
/// that is different (its `different GPU UUID (index N)` facts, see
/// [`crate::rules::odd_rank`]) in the same pod: that GPU's slowdown,
/// NVLink or PCIe fault, failing memory or XID is why the other ranks wait.
fn odd_rank_causes<'a>(
    findings: &'a [Finding],
    f: &'a Finding,
) -> impl Iterator<Item = usize> + 'a {
    const CAUSES: [Kind; 5] = [
        Kind::GpuThrottled,
        Kind::GpuNvlinkDegraded,
        Kind::GpuLinkDegraded,
        Kind::GpuMemoryErrors,
        Kind::GpuXid,
    ];
    let odd: Vec<&str> = f
        .evidence
        .iter()
        .filter_map(|e| e.name.strip_prefix("different GPU "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    findings.iter().enumerate().filter_map(move |(c, cause)| {
        let on_odd = cause
            .subject
            .gpu
            .as_deref()
            .is_some_and(|g| odd.contains(&g));
        let same_pod =
            cause.subject.pod == f.subject.pod && cause.subject.namespace == f.subject.namespace;
        (CAUSES.contains(&cause.kind) && on_odd && same_pod).then_some(c)
    })
}

/// Whether the node withholds GPUs from the scheduler
/// ([`k8s::gpus_withheld`]). Only then can a device plugin that is down,
/// or a GPU it marked unhealthy, be why a pod finds no GPU there: while
/// allocatable is intact (a plugin pod not Ready but still registered, a
/// node status not yet updated) the scheduler still counts every GPU, and
/// the cause of Pending lies elsewhere. Without the node object it cannot
/// be told, and the link stands.
fn gpus_withheld(ctx: &Context<'_>, node: &str) -> bool {
    ctx.node(node).is_none_or(k8s::gpus_withheld)
}

/// `KIND:NAMESPACE/POD[:CONTAINER][:GPU]` or `KIND:NODE[:GPU]`, with `#2`,
/// `#3`… where two findings would share one.
fn assign_ids(findings: &mut [Finding]) {
    let mut seen: HashMap<String, u32> = HashMap::new();
    for f in findings.iter_mut() {
        let s = &f.subject;
        let mut id = f.kind.as_str().to_owned();
        match (&s.namespace, &s.pod, &s.node) {
            (ns, Some(p), _) => {
                id.push(':');
                if let Some(ns) = ns {
                    id.push_str(ns);
                    id.push('/');
                }
                id.push_str(p);
            }
            (_, None, Some(n)) => {
                id.push(':');
                id.push_str(n);
            }
            _ => {}
        }
        for part in [&s.container, &s.gpu].into_iter().flatten() {
            id.push(':');
            id.push_str(part);
        }
        let n = seen.entry(id.clone()).or_default();
        *n += 1;
        f.id = if *n == 1 { id } else { format!("{id}#{n}") };
    }
}

/// Which finding ended the run a crash loop (or a failed pod) is about:
/// the immediate cause, so that a probe's kill links through the exit it
/// caused.
fn exit_cause(ctx: &Context<'_>, findings: &[Finding], f: &Finding) -> Option<usize> {
    let code = fact(f, "exit code").map(|v| v.split_whitespace().next().unwrap_or(v).to_owned());
    // An `OOMKilled` label on an exit other than 137 is the runtime's
    // sticky flag from an earlier kill of a process in the container (the
    // OOM family says so); the label alone stands for SIGKILL only when the
    // exit code is unknown.
    let oom_label = fact(f, "reason") == Some("OOMKilled");
    let sigkill = code.as_deref().map_or(oom_label, |c| c == "137");
    let exit_time = f
        .evidence
        .iter()
        .find(|e| e.name == "exit code")
        .and_then(|e| e.time);
    // The order is the order of immediacy.
    const ORDER: [Kind; 12] = [
        Kind::OomKilled,
        Kind::OomNode,
        Kind::OomStatusWithoutKill,
        Kind::Exit137NotOom,
        Kind::CudaOom,
        Kind::NcclError,
        Kind::ModelFilesMissing,
        Kind::OomKilledWorker,
        Kind::GpuXid,
        Kind::GpuLost,
        Kind::Evicted,
        Kind::ProbeFailing,
    ];
    for kind in ORDER {
        let found = position(findings, |c| {
            c.kind == kind
                && same_container(c, f)
                && match kind {
                    Kind::OomKilled | Kind::OomNode | Kind::OomStatusWithoutKill => sigkill,
                    Kind::Exit137NotOom => code.as_deref() == Some("137"),
                    Kind::GpuXid | Kind::GpuLost => {
                        pod_of(ctx, f).zip(exit_time).is_some_and(|(p, t)| {
                            let c = f.subject.container.as_deref().unwrap_or("");
                            gpu_health::explains_exit(ctx, p, c, t)
                                // A lost GPU stays lost: every later run of
                                // the container that holds it fails on it.
                                || (kind == Kind::GpuLost
                                    && gpu_health::lost_before_exit(ctx, p, c, t).is_some())
                        })
                    }
                    Kind::ProbeFailing => probe_killed(c),
                    // A worker killed at the limit just before the main
                    // process exited by itself (PyTorch raises when a
                    // DataLoader worker dies); a SIGKILL or SIGTERM exit
                    // has a cause of its own.
                    Kind::OomKilledWorker => {
                        let killed = c
                            .evidence
                            .iter()
                            .find(|e| e.name == "killed at")
                            .and_then(|e| e.time);
                        !matches!(code.as_deref(), Some("137" | "143" | "0"))
                            && match killed {
                                Some(k) => exit_time.is_some_and(|x| {
                                    k.0 <= x.0
                                        && x.since(k).as_secs() <= ctx.config.oom.match_slack_s
                                }),
                                // No kernel report: the exit's own words
                                // name the dead worker.
                                None => fact(c, "the main process said").is_some(),
                            }
                    }
                    _ => true,
                }
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

fn position(findings: &[Finding], pred: impl Fn(&Finding) -> bool) -> Option<usize> {
    findings.iter().position(pred)
}

/// Whether two findings are about the same container of the same pod.
fn same_container(a: &Finding, b: &Finding) -> bool {
    let (x, y) = (&a.subject, &b.subject);
    x.pod.is_some() && x.pod == y.pod && x.namespace == y.namespace && x.container == y.container
}

/// Whether two findings are about the same pod, or pods of the same
/// controller (the ranks of one job) in one namespace.
fn same_job(a: &Finding, b: &Finding) -> bool {
    let (x, y) = (&a.subject, &b.subject);
    x.pod.is_some()
        && x.namespace == y.namespace
        && (x.pod == y.pod || (x.owner.is_some() && x.owner == y.owner))
}

/// The value of a finding's first fact named `name`.
fn fact<'f>(f: &'f Finding, name: &str) -> Option<&'f str> {
    f.evidence
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.value.as_str())
}

/// Whether a probe finding says the kubelet killed the container.
fn probe_killed(f: &Finding) -> bool {
    fact(f, "probe kills").is_some_and(|n| n != "0")
}

/// Whether an XID finding is one the device plugin skips (the
/// application's), so it cannot have made the GPU unhealthy.
fn app_xid(ctx: &Context<'_>, f: &Finding) -> bool {
    f.kind == Kind::GpuXid
        && fact(f, "xid")
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|x| ctx.config.gpu_health.app_xids.contains(&x))
}

/// The pod a finding is about, when the evidence holds it.
pub(crate) fn pod_of<'a>(
    ctx: &Context<'a>,
    f: &Finding,
) -> Option<&'a k8s_openapi::api::core::v1::Pod> {
    let (ns, name) = (f.subject.namespace.as_deref()?, f.subject.pod.as_deref()?);
    ctx.pods()
        .iter()
        .find(|p| k8s::namespace(p) == ns && k8s::name(p) == name)
}

/// Orders findings for people and scripts: each root cause in rank order,
/// followed at once by its consequences (depth first), so a chain reads
/// top-down. A finding whose causes are not in the list is a root.
pub(crate) fn chain_order(ranked: Vec<Finding>) -> Vec<Finding> {
    let ids: HashMap<&str, usize> = ranked
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id.as_str(), i))
        .collect();
    // The first cause present is where a consequence is printed.
    let parent: Vec<Option<usize>> = ranked
        .iter()
        .map(|f| {
            f.caused_by
                .iter()
                .find_map(|c| ids.get(c.as_str()).copied())
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); ranked.len()];
    for (i, p) in parent.iter().enumerate() {
        if let Some(p) = p {
            children[*p].push(i);
        }
    }
    let mut order = Vec::with_capacity(ranked.len());
    let mut placed = vec![false; ranked.len()];
    fn visit(i: usize, children: &[Vec<usize>], placed: &mut [bool], order: &mut Vec<usize>) {
        if std::mem::replace(&mut placed[i], true) {
            return;
        }
        order.push(i);
        for &c in &children[i] {
            visit(c, children, placed, order);
        }
    }
    for (i, p) in parent.iter().enumerate() {
        if p.is_none() {
            visit(i, &children, &mut placed, &mut order);
        }
    }
    // A cycle (none is built, but the list may come from elsewhere).
    for i in 0..ranked.len() {
        visit(i, &children, &mut placed, &mut order);
    }
    let mut slots: Vec<Option<Finding>> = ranked.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Confidence, Subject};

    fn finding(kind: Kind, container: &str) -> Finding {
        Finding::new(
            kind,
            Subject {
                namespace: Some("ml".into()),
                pod: Some("server-0".into()),
                container: Some(container.into()),
                ..Subject::default()
            },
            Confidence::High,
            "",
        )
    }

    #[test]
    fn ids_are_unique_and_read_as_kind_and_subject() {
        let mut v = vec![
            finding(Kind::CrashLoop, "a"),
            finding(Kind::CrashLoop, "a"),
            finding(Kind::CrashLoop, "b"),
        ];
        assign_ids(&mut v);
        let ids: Vec<&str> = v.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "crash_loop:ml/server-0:a",
                "crash_loop:ml/server-0:a#2",
                "crash_loop:ml/server-0:b"
            ]
        );
    }

    #[test]
    fn each_root_is_followed_by_its_consequences() {
        let mut v = vec![
            finding(Kind::CrashLoop, "s"),
            finding(Kind::ImagePull, "t"),
            finding(Kind::ProbeFailing, "s"),
            finding(Kind::Exit137NotOom, "s"),
        ];
        assign_ids(&mut v);
        v[0].caused_by = vec![v[3].id.clone()];
        v[3].caused_by = vec![v[2].id.clone()];
        let kinds: Vec<Kind> = chain_order(v).into_iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::ImagePull,
                Kind::ProbeFailing,
                Kind::Exit137NotOom,
                Kind::CrashLoop
            ]
        );
    }
}
