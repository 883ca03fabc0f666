//! Containers that keep crashing, with the meaning of their exit code,
//! and containers whose single failure failed their pod.
//!
//! The kubelet restarts a container after each exit under `restartPolicy:
//! Always` (and `OnFailure` for a non-zero exit), backing off up to five
//! minutes: that is a crash loop. Under `restartPolicy: Never` (a Job's
//! pods) one failed exit fails the pod: `container_failed`, not a loop.
//!
//! Exit 143 is SIGTERM: someone asked the process to stop, and the
//! question is who. Kubernetes keeps the answer in several places, read
//! in this order: the pod's `DisruptionTarget` condition (the scheduler's
//! preemption, the taint manager, the Eviction API, the pod garbage
//! collector, the kubelet), the pod's `status.reason`/`message` (a
//! graceful node shutdown sets `Terminated` and "Pod was terminated in
//! response to imminent node shutdown."; an eviction `Evicted`), the
//! node's events (the kubelet's `Shutdown`, `Rebooted`; the cluster
//! autoscaler's `ScaleDown`), and the pod's `Killing` events (a probe, or
//! "Stopping container" for a deletion or rollout).
//!
//! The exit a crash loop comes from is told, with its evidence, by the
//! finding that owns it (an OOM kill, a probe, a log tail, an XID); the
//! crash loop is kept as its consequence ([`crate::rules::chains`]).

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Event, Pod};

use super::{container_events, last_line, spec_container};
use crate::finding::duration;
use crate::finding::{Confidence, Cost, Fact, Finding, Kind};
use crate::k8s::{event_count, message, reason_is, waiting};
use crate::rules::gpu_health;
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
    if reason == "OOMKilled" {
        return format!(
            "the runtime labelled the exit OOMKilled (exit {}): a process of the container was killed at its memory limit",
            t.exit_code
        );
    }
    match t.exit_code {
        137 => "SIGKILL: killed from outside (the OOM killer, or the kubelet after a failed probe or an unanswered stop)".into(),
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
        } else if waiting(cs).is_some_and(|(r, _)| r == "RunContainerError")
            && let Some(t) = last.filter(|t| start_failed(t))
        {
            // The runtime could not start the command: every retry fails
            // the same way, and the kubelet backs off between them.
            (Some(t), Confidence::High, Loop::CannotStart)
        } else if failed_pod
            // Under restartPolicy Always the kubelet restarts every exit:
            // a Failed pod was ended from outside (an eviction, a node
            // shutdown), and the finding that tells that owns it.
            && restart_policy != "Always"
            && let Some(t) = state.and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            (Some(t), Confidence::High, Loop::PodFailed)
        } else {
            continue;
        };
        let c = &cs.name;
        // The kubelet itself stopped the last run after a failed liveness
        // or startup probe: the probe finding tells the restarts, and the
        // exit code is only how the program ended when it was stopped.
        let probe_kill = term.is_some_and(|t| probe_killed(ctx, pod, c, events, t));
        if probe_kill && how == Loop::RunningAgain {
            continue;
        }
        // A GPU the container holds was lost before this exit and is not
        // back: the run failed on the lost GPU, not on its own.
        let lost_gpu = term
            .and_then(|t| t.finished_at.as_ref())
            .and_then(|f| gpu_health::lost_before_exit(ctx, pod, c, k8s::ts(f)));
        // The program's last words: the termination message, else the
        // log tail's last line.
        let last_words: Option<String> = term
            .and_then(|t| t.message.as_deref())
            .filter(|m| !m.trim().is_empty())
            .map(last_line)
            .or_else(|| {
                ctx.log(pod, c, true).and_then(|l| {
                    l.text
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .map(|l| l.trim().to_owned())
                })
            });
        let stop = term
            .filter(|t| t.exit_code == 143)
            .map(|t| sigterm_cause(ctx, pod, c, events, t));
        let meaning = |t: &ContainerStateTerminated| {
            if let Some((gpu, index, at)) = &lost_gpu {
                return format!(
                    "its GPU {} was lost at {at} (it fell off the bus) and is not back, and the kubelet gives every restart the same GPU: each run fails on the lost GPU{}, not on a fault of its own",
                    index.map_or_else(|| gpu.clone(), |i| format!("{i} ({gpu})")),
                    last_words
                        .as_deref()
                        .map(|w| format!(" (`{}`)", clip(w)))
                        .unwrap_or_default()
                );
            }
            if probe_kill && !matches!(t.exit_code, 137 | 143) {
                return format!(
                    "the kubelet stopped it because its liveness or startup probe failed; exit code {} is how the program ended when asked to stop",
                    t.exit_code
                );
            }
            if start_failed(t) {
                return start_error(pod, c, t);
            }
            match (&stop, t.exit_code) {
            (Some(Some(s)), _) => format!("SIGTERM: {}", s.0),
            (Some(None), _) => "SIGTERM: it was asked to stop and exited on the signal; nothing in the evidence says who asked (a probe, a deletion, a drain or eviction, a node shutdown)".to_owned(),
            (_, 126 | 127) => format!(
                "{}{}; the container runs {}",
                exit_meaning(t),
                last_words
                    .as_deref()
                    .and_then(shell_error)
                    .map(|(path, why)| format!("; its last words name {path}: {why}"))
                    .unwrap_or_default(),
                command_line(pod, c)
            ),
            (_, code) if code != 0 && code < 128 && last_words.as_deref().is_some_and(cuda_error) => format!(
                "the program failed on a CUDA error (`{}`): a GPU or driver fault as often as a bug in the program; the node's kernel log (XIDs) tells which",
                clip(last_words.as_deref().unwrap_or_default())
            ),
            _ => exit_meaning(t),
        }
        };
        // The container, and whose pod it is: the owner is what people
        // look up and fix (`Container trainer of Job/train-llama`).
        // With one GPU, the GPU too (index and UUID), as the agent saw the
        // kubelet give it to the pod.
        let gpu = {
            let mut seen: Vec<(u32, &str)> = ctx
                .gpus_of(pod)
                .iter()
                .map(|g| (g.index, g.uuid.as_str()))
                .collect();
            seen.sort_unstable();
            seen.dedup();
            (seen.len() == 1).then(|| seen[0])
        };
        let who = format!(
            "Container {c}{}{}",
            k8s::owner(pod)
                .map(|o| format!(" of {o}"))
                .unwrap_or_default(),
            gpu.map(|(i, u)| format!(" (GPU {i}, {u})"))
                .unwrap_or_default()
        );
        let summary = match (term, how) {
            (None, _) => format!(
                "{who} is in CrashLoopBackOff after {restarts} restarts, but its last exit (code, reason, time) is not recorded in the pod status{}.",
                if ctx.evidence.lacks("logs") {
                    " and no log tail was collected"
                } else {
                    ""
                }
            ),
            (Some(t), Loop::PodFailed) => format!(
                "{who} exited with code {}{} and the pod failed (restartPolicy {restart_policy}: one exit, not a crash loop): {}.",
                t.exit_code,
                ran_for(t),
                meaning(t)
            ),
            (Some(t), Loop::RunningAgain) => format!(
                "{who} keeps crashing: it has restarted {restarts} times, the last exit {} ago with code {}{}: {}.",
                t.finished_at
                    .as_ref()
                    .map(|f| duration(ctx.now.since(k8s::ts(f))))
                    .unwrap_or_default(),
                t.exit_code,
                ran_for(t),
                meaning(t)
            ),
            (Some(t), Loop::CannotStart) => format!(
                "{who} cannot start: the runtime failed to start it ({}, exit code {}) and the kubelet keeps retrying ({} restarts): {}.",
                t.reason.as_deref().unwrap_or("StartError"),
                t.exit_code,
                restarts,
                meaning(t)
            ),
            (Some(t), Loop::BackOff) => format!(
                "{who} is in CrashLoopBackOff after {restarts} restarts: its last run exited with code {}{}: {}.",
                t.exit_code,
                ran_for(t),
                meaning(t)
            ),
        };
        let kind = match how {
            Loop::PodFailed => Kind::ContainerFailed,
            Loop::BackOff | Loop::RunningAgain | Loop::CannotStart => Kind::CrashLoop,
        };
        let mut subject = ctx.subject(pod, Some(c));
        subject.gpu = gpu.map(|(_, u)| u.to_owned());
        let mut f = Finding::new(kind, subject, confidence, summary)
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
            if matches!(t.exit_code, 126 | 127)
                || matches!(
                    t.reason.as_deref(),
                    Some("StartError" | "ContainerCannotRun")
                )
            {
                f = f.fact(Fact::new("command", command_line(pod, c)));
            }
            if let Some(Some((_, facts))) = &stop {
                for x in facts {
                    f = f.fact(x.clone());
                }
            }
            if let (Some(s), Some(e)) = (&t.started_at, &t.finished_at) {
                f = f.fact(Fact::at(
                    "last run",
                    duration(k8s::ts(e).since(k8s::ts(s))),
                    k8s::ts(s),
                ));
            }
        }
        if term.is_none()
            && let Some((_, m)) = waiting(cs).filter(|(_, m)| !m.is_empty())
        {
            f = f.fact(Fact::new("waiting message", last_line(m)));
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
        if how == Loop::PodFailed {
            let st = k8s::status(pod);
            if let Some(r) = st.reason.as_deref().or(st.message.as_deref()) {
                f = f.fact(Fact::new(
                    "pod status",
                    format!(
                        "{r}{}",
                        st.message
                            .as_deref()
                            .filter(|m| Some(*m) != st.reason.as_deref())
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ),
                ));
            }
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
            Some(143) if matches!(stop, Some(None)) => {
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
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loop {
    /// Waiting in `CrashLoopBackOff`.
    BackOff,
    /// Running again, with many recent restarts.
    RunningAgain,
    /// The pod failed (restartPolicy Never/OnFailure) with a non-zero exit.
    PodFailed,
    /// The runtime could not start the command (`StartError`, waiting in
    /// `RunContainerError`): every retry fails the same way.
    CannotStart,
}

/// Whether the runtime could not start the container's command at all.
fn start_failed(t: &ContainerStateTerminated) -> bool {
    matches!(
        t.reason.as_deref(),
        Some("StartError" | "ContainerCannotRun")
    )
}

/// What the runtime said when it could not start the command, quoted,
/// with the command and args as the manifest writes them. With `args`
/// and no `command`, Kubernetes keeps the image's ENTRYPOINT and replaces
/// its CMD; an image without an ENTRYPOINT then runs the first argument
/// as the program.
fn start_error(pod: &Pod, c: &str, t: &ContainerStateTerminated) -> String {
    let msg = t.message.as_deref().unwrap_or("");
    let said = msg
        .find("exec: ")
        .or_else(|| {
            msg.find("exec ")
                .filter(|_| msg.contains("exec format error"))
        })
        .map(|i| &msg[i..])
        .or_else(|| {
            msg.rsplit_once("unable to start container process: ")
                .map(|(_, r)| r)
        })
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .or_else(|| (!msg.trim().is_empty()).then(|| last_line(msg)));
    let spec = spec_container(pod, c);
    let first_arg = spec
        .filter(|s| s.command.is_none())
        .and_then(|s| s.args.as_ref())
        .and_then(|a| a.first());
    let args_as_program = first_arg.is_some_and(|a| msg.contains(&format!("exec: {a:?}")));
    format!(
        "{}{}; the container runs {}{}",
        exit_meaning(t),
        said.map(|s| format!(" (the runtime: `{}`)", clip(&s)))
            .unwrap_or_default(),
        command_line(pod, c),
        if args_as_program {
            format!(
                ": the manifest sets args but no command, and the image has no ENTRYPOINT, so the runtime ran the first argument ({:?}) as the program; set `command` to the program that takes these args",
                first_arg.map(String::as_str).unwrap_or_default()
            )
        } else {
            String::new()
        }
    )
}

/// The path a shell or the runtime could not run, and why, from a line
/// such as `/bin/sh: 1: /app/run.sh: Permission denied` (dash),
/// `bash: train: command not found`, `/entry.sh: 12: /opt/x.sh: not found`
/// or `exec /app/run.sh: no such file or directory`.
fn shell_error(line: &str) -> Option<(String, String)> {
    const WHY: [&str; 5] = [
        "Permission denied",
        "command not found",
        "not found",
        "No such file or directory",
        "exec format error",
    ];
    let lower = line.to_ascii_lowercase();
    let why = WHY.iter().find(|w| {
        lower
            .trim_end()
            .ends_with(&format!(": {}", w.to_ascii_lowercase()))
    })?;
    let parts: Vec<&str> = line.trim_end().split(": ").collect();
    let path = parts.get(parts.len().checked_sub(2)?)?.trim();
    let path = path.strip_prefix("exec ").unwrap_or(path);
    // A timestamp or a prefix before the path (`2026-...Z /x.sh`).
    let path = path.rsplit(' ').next().unwrap_or(path).trim_matches('"');
    (!path.is_empty()).then(|| (path.to_owned(), (*why).to_owned()))
}

/// Whether a line is a CUDA runtime error other than running out of
/// memory (that one is `cuda_oom`'s).
fn cuda_error(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    (l.contains("cuda error") || l.contains("cudaerror") || l.contains("cuda_error"))
        && !l.contains("out of memory")
}

/// A quoted line, cut to a readable length.
fn clip(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

/// Whether the kubelet stopped the run that ended in `t` after a failed
/// liveness or startup probe: its `Killing` event ("failed liveness
/// probe, will be restarted") within the grace period (and the clocks'
/// slack) before the exit.
fn probe_killed(
    ctx: &Context<'_>,
    pod: &Pod,
    container: &str,
    events: &[&Event],
    t: &ContainerStateTerminated,
) -> bool {
    let Some(fin) = t.finished_at.as_ref().map(k8s::ts) else {
        return false;
    };
    let slack = std::time::Duration::from_secs(ctx.config.oom.match_slack_s);
    let grace = std::time::Duration::from_secs(
        k8s::spec(pod)
            .termination_grace_period_seconds
            .unwrap_or(30)
            .max(0) as u64,
    );
    container_events(events, container).into_iter().any(|e| {
        reason_is(e, "Killing")
            && (message(e).contains("failed liveness probe")
                || message(e).contains("failed startup probe"))
            && k8s::event_last_time(e)
                .is_some_and(|at| at.saturating_sub(slack) <= fin && fin.since(at) <= grace + slack)
    })
}

fn ran_for(t: &ContainerStateTerminated) -> String {
    match (&t.started_at, &t.finished_at) {
        (Some(s), Some(e)) => format!(" after running {}", duration(k8s::ts(e).since(k8s::ts(s)))),
        _ => String::new(),
    }
}

/// `` `python train.py --epochs 3` (command ["python"], args [...]) `` as
/// the manifest writes it, so a typo in the program's name is visible; or
/// the image's own entrypoint when the manifest sets neither.
fn command_line(pod: &Pod, container: &str) -> String {
    let Some(c) = spec_container(pod, container) else {
        return "a command the pod spec does not show".to_owned();
    };
    let quote = |v: &[String]| {
        v.iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (c.command.as_deref(), c.args.as_deref()) {
        (None, None) => format!(
            "the image's own ENTRYPOINT/CMD (image {}; the manifest sets no command or args)",
            c.image.as_deref().unwrap_or("unknown")
        ),
        (cmd, args) => {
            let all: Vec<&str> = cmd
                .into_iter()
                .flatten()
                .chain(args.into_iter().flatten())
                .map(String::as_str)
                .collect();
            let mut parts = Vec::new();
            if let Some(cmd) = cmd {
                parts.push(format!("command [{}]", quote(cmd)));
            }
            if let Some(args) = args {
                parts.push(format!("args [{}]", quote(args)));
            }
            format!("`{}` ({})", all.join(" "), parts.join(", "))
        }
    }
}

/// Who sent the SIGTERM that ended a container with exit 143, from the
/// places Kubernetes keeps it (see the module's documentation): a phrase
/// for the sentence and the facts that show it. `None`: nothing in the
/// evidence says.
fn sigterm_cause(
    ctx: &Context<'_>,
    pod: &Pod,
    container: &str,
    events: &[&Event],
    t: &ContainerStateTerminated,
) -> Option<(String, Vec<Fact>)> {
    let st = k8s::status(pod);
    let fin = t.finished_at.as_ref().map(k8s::ts);
    let slack = std::time::Duration::from_secs(ctx.config.oom.match_slack_s);
    let grace = std::time::Duration::from_secs(
        k8s::spec(pod)
            .termination_grace_period_seconds
            .unwrap_or(30)
            .max(0) as u64,
    );
    // An event that can have asked for this stop: before the exit, by at
    // most the grace period (and the clocks' slack).
    let near = |e: &Event| match (k8s::event_last_time(e), fin) {
        (Some(at), Some(f)) => at.saturating_sub(slack) <= f && f.since(at) <= grace + slack,
        _ => true,
    };
    let mut facts = Vec::new();
    let condition = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
    if let Some(c) = condition {
        let reason = c.reason.as_deref().unwrap_or("");
        facts.push(Fact::new(
            "pod condition DisruptionTarget",
            format!("{reason}: {}", c.message.as_deref().unwrap_or("")),
        ));
    }
    let pod_reason = st.reason.as_deref().unwrap_or("");
    let pod_message = st.message.as_deref().unwrap_or("");
    if !pod_reason.is_empty() || !pod_message.is_empty() {
        facts.push(Fact::new(
            "pod status",
            format!("{pod_reason}: {pod_message}")
                .trim_matches([':', ' '])
                .to_owned(),
        ));
    }
    let node_event = k8s::node_name(pod).and_then(|n| {
        ctx.node_events(n).into_iter().rev().find(|e| {
            matches!(
                e.reason.as_deref(),
                Some("Shutdown" | "NodeShutdown" | "Rebooted" | "ScaleDown")
            ) && near(e)
        })
    });
    if let Some(e) = node_event {
        facts.push(crate::k8s::event_fact(
            &format!("node event {}", e.reason.as_deref().unwrap_or("")),
            e,
        ));
    }
    let killing = super::container_events(events, container)
        .into_iter()
        .rev()
        .find(|e| reason_is(e, "Killing") && near(e));
    let preempted = events
        .iter()
        .rev()
        .find(|e| matches!(e.reason.as_deref(), Some("Preempted" | "Preempting")) && near(e));
    for e in killing.into_iter().chain(preempted.copied()) {
        facts.push(crate::k8s::event_fact(
            &format!("event {}", e.reason.as_deref().unwrap_or("")),
            e,
        ));
    }
    let shutdown_text = |m: &str| m.to_ascii_lowercase().contains("shutdown");
    let phrase = if let Some(c) = condition {
        match c.reason.as_deref().unwrap_or("") {
            "PreemptionByScheduler" | "PreemptionByKubeScheduler" => {
                "the scheduler preempted the pod to make room for a higher-priority one".to_owned()
            }
            "DeletionByTaintManager" => {
                "the node got a NoExecute taint the pod does not tolerate, and the taint manager deleted it".to_owned()
            }
            "EvictionByEvictionAPI" => {
                "the pod was evicted through the Eviction API (a node drain, the cluster autoscaler or a descheduler)".to_owned()
            }
            "DeletionByPodGC" => {
                "the pod garbage collector deleted it (its node is gone or out of service)".to_owned()
            }
            "TerminationByKubelet" if shutdown_text(pod_message) || node_event.is_some() => {
                "the kubelet stopped it for a graceful node shutdown".to_owned()
            }
            "TerminationByKubelet" => {
                "the kubelet terminated the pod (node-pressure eviction or a graceful node shutdown)".to_owned()
            }
            r => format!("the pod was disrupted ({r})"),
        }
    } else if shutdown_text(pod_message)
        || node_event
            .is_some_and(|e| matches!(e.reason.as_deref(), Some("Shutdown" | "NodeShutdown")))
    {
        "the kubelet stopped it for a graceful node shutdown".to_owned()
    } else if pod_reason == "Evicted" {
        format!("the kubelet evicted the pod ({pod_message})")
    } else if pod_reason == "DeadlineExceeded" {
        "the pod ran past its activeDeadlineSeconds and the kubelet stopped it".to_owned()
    } else if let Some(e) = node_event {
        format!(
            "the node reported {} ({})",
            e.reason.as_deref().unwrap_or(""),
            message(e)
        )
    } else if let Some(e) = preempted {
        format!("the pod was preempted ({})", message(e))
    } else if let Some(e) = killing {
        let m = message(e);
        if m.contains("liveness probe") || m.contains("startup probe") {
            "the kubelet stopped it because its liveness or startup probe failed".to_owned()
        } else {
            format!(
                "the kubelet stopped it ({m}): the pod was deleted, or replaced by a rollout{}",
                if pod.metadata.deletion_timestamp.is_some() {
                    "; the pod is being deleted"
                } else {
                    ""
                }
            )
        }
    } else if pod.metadata.deletion_timestamp.is_some() {
        "the pod was deleted, and the kubelet stopped its containers".to_owned()
    } else {
        return None;
    };
    Some((phrase, facts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_names_the_path_it_could_not_run() {
        let cases = [
            (
                "/bin/sh: 1: /bin/run.sh: Permission denied",
                ("/bin/run.sh", "Permission denied"),
            ),
            (
                "2026-07-09T03:01:57.2Z /entry.sh: 233: /opt/app/x.sh: not found",
                ("/opt/app/x.sh", "not found"),
            ),
            (
                "bash: trian: command not found",
                ("trian", "command not found"),
            ),
            (
                "exec /app/run: no such file or directory",
                ("/app/run", "No such file or directory"),
            ),
        ];
        for (line, (path, why)) in cases {
            assert_eq!(
                shell_error(line),
                Some((path.to_owned(), why.to_owned())),
                "{line}"
            );
        }
        assert_eq!(shell_error("Traceback (most recent call last):"), None);
    }

    #[test]
    fn cuda_errors_other_than_out_of_memory() {
        assert!(cuda_error("RuntimeError: CUDA error: unknown error"));
        assert!(!cuda_error("RuntimeError: CUDA error: out of memory"));
        assert!(!cuda_error("ValueError: bad config"));
    }
}
