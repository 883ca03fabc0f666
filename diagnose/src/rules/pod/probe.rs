//! Failing liveness, readiness and startup probes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Event, Pod, Probe};

use super::container_events;
use crate::finding::duration;
use crate::finding::{Confidence, Cost, Fact, Finding, Kind};
use crate::k8s::{event_count, event_fact, message, reason_is};
use crate::{Context, k8s};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ProbeKind {
    Readiness,
    Liveness,
    Startup,
}

impl ProbeKind {
    fn name(self) -> &'static str {
        match self {
            Self::Readiness => "readiness",
            Self::Liveness => "liveness",
            Self::Startup => "startup",
        }
    }

    fn of(c: &Container, k: Self) -> Option<&Probe> {
        match k {
            Self::Readiness => c.readiness_probe.as_ref(),
            Self::Liveness => c.liveness_probe.as_ref(),
            Self::Startup => c.startup_probe.as_ref(),
        }
    }
}

/// Seconds a probe lets a container fail before it acts:
/// `initialDelaySeconds + periodSeconds * failureThreshold` (defaults 0,
/// 10, 3).
fn probe_budget(p: &Probe) -> u64 {
    let delay = p.initial_delay_seconds.unwrap_or(0).max(0) as u64;
    let period = p.period_seconds.unwrap_or(10).max(1) as u64;
    let fails = p.failure_threshold.unwrap_or(3).max(1) as u64;
    delay + period * fails
}

pub(super) fn probe_failing(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    let th = &ctx.config.pod;
    let mut out = Vec::new();
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    for c in &spec.containers {
        let cs = k8s::container_statuses(pod).find(|s| s.name == c.name);
        let cevents = container_events(events, &c.name);
        let mut fails: BTreeMap<ProbeKind, (u32, &Event)> = BTreeMap::new();
        for e in cevents.iter().filter(|e| reason_is(e, "Unhealthy")) {
            let m = message(e);
            let kind = if m.starts_with("Liveness") {
                ProbeKind::Liveness
            } else if m.starts_with("Startup") {
                ProbeKind::Startup
            } else if m.starts_with("Readiness") {
                ProbeKind::Readiness
            } else {
                continue;
            };
            let entry = fails.entry(kind).or_insert((0, e));
            entry.0 += event_count(e);
            entry.1 = e;
        }
        let kills: Vec<&Event> = cevents
            .iter()
            .copied()
            .filter(|e| {
                reason_is(e, "Killing")
                    && (message(e).contains("failed liveness probe")
                        || message(e).contains("failed startup probe"))
            })
            .collect();
        let kill_count: u32 = kills.iter().map(|e| event_count(e)).sum();
        let ready = cs.is_some_and(|s| s.ready);
        let restarts = cs.map_or(0, |s| s.restart_count.max(0) as u32);
        let total: u32 = fails.values().map(|(n, _)| n).sum();
        if fails.is_empty() {
            if let Some(f) = not_ready_without_events(ctx, pod, c, cs) {
                out.push(f);
            }
            continue;
        }
        if kill_count == 0 && total < th.probe_min_failures {
            continue;
        }
        let Some((&kind, &(count, last))) = fails.iter().next_back() else {
            continue;
        };
        // Readiness alone on a container that is Ready again: recovered.
        if kind == ProbeKind::Readiness && ready {
            continue;
        }
        let detail = message(last)
            .split_once(": ")
            .map_or(message(last), |(_, d)| d)
            .trim();
        let cn = &c.name;
        let probe = ProbeKind::of(c, kind);
        let budget = probe.map(probe_budget);
        let last_run = cs
            .and_then(|s| s.last_state.as_ref())
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| {
                Some(k8s::ts(t.finished_at.as_ref()?).since(k8s::ts(t.started_at.as_ref()?)))
            });
        // A liveness probe that kills the container about when its budget
        // runs out, with no startup probe: the program needs longer to
        // start (load a model) than the probe waits. The kill asks with
        // SIGTERM and waits up to the grace period (the probe's own
        // `terminationGracePeriodSeconds`, else the pod's) before SIGKILL,
        // so a run that ended in SIGKILL (137) lasts the budget plus that
        // stop; one that handled SIGTERM, the budget.
        let grace = probe
            .and_then(|p| p.termination_grace_period_seconds)
            .or(k8s::spec(pod).termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64;
        // A probe answered with an HTTP status means the server was up: it
        // started, then failed, which is not a slow start.
        let answered = message(last).contains("statuscode");
        let stop = match cs
            .and_then(|s| s.last_state.as_ref())
            .and_then(|s| s.terminated.as_ref())
        {
            Some(t) if t.exit_code == 137 => grace,
            _ => 0,
        };
        let too_early = kind == ProbeKind::Liveness
            && c.startup_probe.is_none()
            && kill_count > 0
            && !answered
            && matches!((budget, last_run), (Some(b), Some(r)) if r.as_secs() <= b + stop + 2 * probe.and_then(|p| p.period_seconds).unwrap_or(10).max(1) as u64);
        let summary = match kind {
            ProbeKind::Readiness => format!(
                "The readiness probe of container {cn} has failed {count} times ({detail}): the pod is not Ready and gets no Service traffic, but it is not restarted."
            ),
            _ if too_early => format!(
                "The {} probe of container {cn} failed {count} times and the kubelet restarted it {restarts} times; each run lasted about {}, no longer than the probe allows ({}): the program needs longer to start than the probe waits.",
                kind.name(),
                last_run.map(duration).unwrap_or_default(),
                duration(Duration::from_secs(budget.unwrap_or(0)))
            ),
            _ => format!(
                "The {} probe of container {cn} failed {count} times ({detail}) and the kubelet restarted it {restarts} times{}.",
                kind.name(),
                answered_status(detail)
                    .map(|code| http_story(code, probe))
                    .unwrap_or_default()
            ),
        };
        let mut f = Finding::new(
            Kind::ProbeFailing,
            ctx.subject(pod, Some(cn)),
            Confidence::High,
            summary,
        )
        .fact(event_fact(&format!("{} probe", kind.name()), last))
        .fact(Fact::new("probe failures", total.to_string()))
        .fact(Fact::new("ready", ready.to_string()))
        .fact(Fact::new("restarts", restarts.to_string()));
        if kill_count > 0 {
            f = f.fact(Fact::new("probe kills", kill_count.to_string()));
        }
        if let Some(p) = probe {
            f = f.fact(Fact::new(
                "probe settings",
                format!(
                    "initialDelaySeconds {}, periodSeconds {}, timeoutSeconds {}, failureThreshold {} (acts after {})",
                    p.initial_delay_seconds.unwrap_or(0),
                    p.period_seconds.unwrap_or(10),
                    p.timeout_seconds.unwrap_or(1),
                    p.failure_threshold.unwrap_or(3),
                    duration(Duration::from_secs(probe_budget(p)))
                ),
            ));
        }
        if let Some(r) = last_run {
            f = f.fact(Fact::new("last run", duration(r)));
        }
        // A probe kill is a SIGKILL after the grace period: exit 137 that
        // looks like an OOM kill. This finding owns it (the `oom` family's
        // exit_137_not_oom stands aside when a probe kill explains it).
        if kill_count > 0
            && let Some(t) = cs
                .and_then(|s| s.last_state.as_ref())
                .and_then(|s| s.terminated.as_ref())
                .filter(|t| t.exit_code == 137 && t.reason.as_deref() != Some("OOMKilled"))
        {
            f = f.fact(Fact::new(
                "last exit",
                format!(
                    "137 ({}): SIGKILL from the kubelet after the failed probe, not an OOM kill",
                    t.reason.as_deref().unwrap_or("no reason")
                ),
            ));
        }
        if restarts > 0 {
            f.cost = Some(Cost {
                gpu_hours: 0.0,
                restarts,
            });
        }
        if too_early {
            f = f.step("Add a startupProbe that allows the model to load, e.g. `startupProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10, failureThreshold: 60}` (10 minutes); the liveness probe starts only after it succeeds.");
        }
        let lower = detail.to_ascii_lowercase();
        if lower.contains("connection refused") {
            f = f.step("Nothing listens on the probed port yet (or at all): check the probe's port against the port the program binds, and that it binds 0.0.0.0, not 127.0.0.1.");
        } else if lower.contains("timeout") || lower.contains("deadline exceeded") {
            f = f.step("The endpoint answers too slowly: raise timeoutSeconds (default 1 s), or make the health handler cheap (not sharing a busy GPU worker thread).");
        } else if lower.contains("statuscode") {
            f = f.step(format!(
                "kubectl logs {name} -n {ns} -c {cn}   # the program's own reason for reporting unhealthy"
            ));
        }
        f = f.step(format!(
            "kubectl describe pod {name} -n {ns}   # Events: Unhealthy and Killing"
        ));
        out.push(f);
    }
    out
}

/// A running container with a readiness (or startup) probe that has not
/// been ready for long, and no probe event to say why.
fn not_ready_without_events(
    ctx: &Context<'_>,
    pod: &Pod,
    c: &Container,
    cs: Option<&ContainerStatus>,
) -> Option<Finding> {
    let cs = cs?;
    if cs.ready || (c.readiness_probe.is_none() && c.startup_probe.is_none()) {
        return None;
    }
    let started = cs
        .state
        .as_ref()?
        .running
        .as_ref()?
        .started_at
        .as_ref()
        .map(k8s::ts)?;
    let up = ctx.now.since(started);
    if up.as_secs() < ctx.config.pod.not_ready_grace_secs {
        return None;
    }
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let which = if cs.started == Some(false) && c.startup_probe.is_some() {
        "startup"
    } else {
        "readiness"
    };
    Some(
        Finding::new(
            Kind::ProbeFailing,
            ctx.subject(pod, Some(&c.name)),
            Confidence::Low,
            format!(
                "Container {} has been running for {} without becoming ready: its {which} probe is probably failing, but no probe event is in the evidence{}.",
                c.name,
                duration(up),
                if ctx.evidence.lacks("events") {
                    " (no events collected)"
                } else {
                    ""
                }
            ),
        )
        .fact(Fact::at("running since", duration(up), started))
        .fact(Fact::new("ready", "false"))
        .step(format!("kubectl describe pod {name} -n {ns}   # Events: Unhealthy"))
        .step(format!(
            "kubectl exec {name} -n {ns} -c {} -- curl -sv localhost:PORT/PATH   # call the probe's endpoint yourself",
            c.name
        )),
    )
}

/// The HTTP status a probe was answered with (`... statuscode: 404`).
fn answered_status(detail: &str) -> Option<u16> {
    let (_, rest) = detail.split_once("statuscode")?;
    rest.trim_start_matches([':', ' '])
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// What an HTTP answer says: the server is up (it answered), so it is not
/// slow to start; 404 means the probe asks for a path the server does not
/// serve, another status that the program reports itself unhealthy.
fn http_story(code: u16, probe: Option<&Probe>) -> String {
    let target = probe
        .and_then(|p| p.http_get.as_ref())
        .map(|h| {
            format!(
                " {} on port {}",
                h.path.as_deref().unwrap_or("/"),
                match &h.port {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) =>
                        i.to_string(),
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) =>
                        s.clone(),
                }
            )
        })
        .unwrap_or_default();
    match code {
        404 => format!(
            ": the server is up (it answers HTTP), but not at the probed path{target} (404 Not Found): the probe's path or port is wrong, and waiting longer would not help"
        ),
        400..=499 => format!(
            ": the server is up (it answers HTTP) and refuses the probe's request{target} ({code}): check the path, port and any authentication the endpoint wants"
        ),
        _ => format!(
            ": the server is up (it answers HTTP) and reports itself unhealthy{target} ({code}); its log says why"
        ),
    }
}
