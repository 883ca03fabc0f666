//! Containers that keep crashing, with the meaning of their exit code.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Event, Pod};

use super::{container_events, last_line, spec_container};
use crate::finding::human;
use crate::finding::{Confidence, Cost, Fact, Finding, Kind};
use crate::k8s::{event_count, message, reason_is, waiting};
use crate::{Context, k8s};

/// What an exit code means, in one phrase.
fn exit_meaning(t: &ContainerStateTerminated) -> String {
    let msg = t.message.as_deref().unwrap_or("").to_ascii_lowercase();
    let reason = t.reason.as_deref().unwrap_or("");
    if matches!(reason, "StartError" | "ContainerCannotRun") {
        if msg.contains("executable file not found") || msg.contains("no such file or directory") {
            return "the runtime could not start it: the command is not in the image or on PATH"
                .into();
        }
        if msg.contains("permission denied") {
            return "the runtime could not start it: the command is not executable (permission denied)".into();
        }
        return "the runtime could not start the container's command".into();
    }
    match t.exit_code {
        0 => "the program finished successfully, but restartPolicy Always starts it again: it exits when it should keep running (a one-shot command under a Deployment, or a main process that returns or daemonises)".into(),
        1 => "application error: the program failed; its log says why".into(),
        2 => "misuse of a shell builtin or bad command-line arguments".into(),
        126 => "the command is not executable (permission or not a binary for this architecture)".into(),
        127 => "command not found: the command or entrypoint names a program that is not in the image or on PATH".into(),
        134 => "SIGABRT: the program aborted (a failed assertion, std::abort, or a CUDA or driver abort)".into(),
        139 => "SIGSEGV: a segmentation fault in native code (a C/C++/CUDA extension, or a library or driver mismatch)".into(),
        143 => "SIGTERM: it was asked to stop (a liveness or startup probe, a preStop hook, or a drain) and exited on the signal".into(),
        255 => "exit 255: a generic failure (an uncaught error or exit(-1))".into(),
        c if c > 128 && c < 160 => format!("killed by signal {} ({})", c - 128, signal_name(c - 128)),
        c => format!("application-defined exit code {c}; its log says why"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// Whether a termination belongs to the `oom` family (137 / OOMKilled).
fn owned_by_oom(t: &ContainerStateTerminated) -> bool {
    t.exit_code == 137 || t.reason.as_deref() == Some("OOMKilled")
}

pub(super) fn crash_loop(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    let th = &ctx.config.pod;
    let restart_policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let failed_pod = k8s::phase(pod) == "Failed";
    let mut out = Vec::new();
    for cs in k8s::container_statuses(pod) {
        let state = cs.state.as_ref();
        let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let restarts = cs.restart_count.max(0) as u32;
        let in_back_off = waiting(cs).is_some_and(|(r, _)| r == "CrashLoopBackOff");
        // Which termination to read, and how sure the loop is.
        let (term, confidence, how) = if in_back_off {
            match last {
                Some(t) => (Some(t), Confidence::High, Loop::BackOff),
                None => (None, Confidence::Low, Loop::BackOff),
            }
        } else if state.and_then(|s| s.running.as_ref()).is_some()
            && restarts >= th.crash_loop_min_restarts
            && let Some(t) = last
            && t.exit_code != 0
            && t.finished_at
                .as_ref()
                .is_some_and(|f| ctx.now.since(k8s::ts(f)).as_secs() <= th.crash_loop_recent_secs)
        {
            (Some(t), Confidence::Medium, Loop::RunningAgain)
        } else if failed_pod
            && let Some(t) = state.and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            (Some(t), Confidence::High, Loop::PodFailed)
        } else {
            continue;
        };
        // The log tail already names why it exited (CUDA out of memory, an
        // NCCL error, missing files), or the driver reported an XID on its
        // GPU as it died: that finding says it with evidence.
        if term.is_some_and(owned_by_oom)
            || crate::rules::logs::explains_exit(ctx, pod, &cs.name)
            || term.and_then(|t| t.finished_at.as_ref()).is_some_and(|f| {
                crate::rules::gpu_health::explains_exit(ctx, pod, &cs.name, k8s::ts(f))
            })
        {
            continue;
        }
        let c = &cs.name;
        let summary = match (term, how) {
            (None, _) => format!(
                "Container {c} is in CrashLoopBackOff after {restarts} restarts, but its last exit (code, reason, time) is not recorded in the pod status{}.",
                if ctx.evidence.lacks("logs") {
                    " and no log tail was collected"
                } else {
                    ""
                }
            ),
            (Some(t), Loop::PodFailed) => format!(
                "Container {c} exited with code {}{} and the pod failed (restartPolicy {restart_policy}): {}.",
                t.exit_code,
                ran_for(t),
                exit_meaning(t)
            ),
            (Some(t), Loop::RunningAgain) => format!(
                "Container {c} keeps crashing: it has restarted {restarts} times, the last exit {} ago with code {}{}: {}.",
                t.finished_at
                    .as_ref()
                    .map(|f| human(ctx.now.since(k8s::ts(f))))
                    .unwrap_or_default(),
                t.exit_code,
                ran_for(t),
                exit_meaning(t)
            ),
            (Some(t), Loop::BackOff) => format!(
                "Container {c} is in CrashLoopBackOff after {restarts} restarts: its last run exited with code {}{}: {}.",
                t.exit_code,
                ran_for(t),
                exit_meaning(t)
            ),
        };
        let mut f = Finding::new(
            Kind::CrashLoop,
            ctx.subject(pod, Some(c)),
            confidence,
            summary,
        )
        .fact(Fact::new("restarts", restarts.to_string()));
        f.cost = Some(Cost {
            gpu_hours: 0.0,
            restarts,
        });
        if let Some(t) = term {
            let when = t.finished_at.as_ref().map(k8s::ts);
            let code = t.exit_code.to_string();
            f = f.fact(match when {
                Some(w) => Fact::at("exit code", code, w),
                None => Fact::new("exit code", code),
            });
            if let Some(r) = &t.reason {
                f = f.fact(Fact::new("reason", r.clone()));
            }
            if let Some(s) = t.signal {
                f = f.fact(Fact::new("signal", s.to_string()));
            }
            if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
                f = f.fact(Fact::new("termination message", last_line(m)));
            }
            if let (Some(s), Some(e)) = (&t.started_at, &t.finished_at) {
                f = f.fact(Fact::at(
                    "last run",
                    human(k8s::ts(e).since(k8s::ts(s))),
                    k8s::ts(s),
                ));
            }
        }
        if let Some(e) = container_events(events, c)
            .into_iter()
            .rev()
            .find(|e| reason_is(e, "BackOff") && message(e).contains("restarting failed container"))
        {
            f = f.fact(Fact::at(
                "back-off events",
                event_count(e).to_string(),
                k8s::event_last_time(e).unwrap_or(ctx.now),
            ));
        }
        if let Some(log) = ctx.log(pod, c, true)
            && let Some(line) = log.text.lines().rev().find(|l| !l.trim().is_empty())
        {
            f = f.fact(Fact::new("last log line", line.trim().to_owned()));
        }
        let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
        f = f.step(format!("kubectl logs {name} -n {ns} -c {c} --previous"));
        match term.map(|t| t.exit_code) {
            Some(0) => {
                f = f.step("Run one-shot work as a Job (restartPolicy OnFailure/Never), or keep the main process in the foreground (no `&`, no daemon mode).");
            }
            Some(126 | 127) | Some(128) => {
                f = f.step(format!(
                    "Check command/args in the manifest against the image: kubectl run dbg -n {ns} --rm -it --image={} --command -- sh -c 'ls -l $(which CMD)'",
                    spec_container(pod, c)
                        .and_then(|c| c.image.clone())
                        .unwrap_or_else(|| "IMAGE".into())
                ));
            }
            Some(134 | 139) => {
                f = f.step("Check that the CUDA, framework and driver versions match (nvidia-smi on the node vs the image's CUDA); set PYTHONFAULTHANDLER=1 to get the crashing stack in the log.");
            }
            Some(143) => {
                f = f.step(format!(
                    "kubectl get events -n {ns} --field-selector involvedObject.name={name}   # a Killing/Unhealthy event says whether a probe stopped it"
                ));
            }
            _ => {}
        }
        out.push(f);
    }
    out
}

/// How a crash loop was recognised.
#[derive(Clone, Copy)]
enum Loop {
    /// Waiting in `CrashLoopBackOff`.
    BackOff,
    /// Running again, with many recent restarts.
    RunningAgain,
    /// The pod failed (restartPolicy Never/OnFailure) with a non-zero exit.
    PodFailed,
}

fn ran_for(t: &ContainerStateTerminated) -> String {
    match (&t.started_at, &t.finished_at) {
        (Some(s), Some(e)) => format!(" after running {}", human(k8s::ts(e).since(k8s::ts(s)))),
        _ => String::new(),
    }
}
