//! Everyday pod failures: images that cannot be pulled, containers that
//! keep crashing (with the meaning of their exit code), pods that stay
//! Pending (resources, node selectors and affinity, taints, volume
//! claims), missing ConfigMaps and Secrets, volumes and sandboxes that
//! cannot be set up, failing probes, and failed pods the evidence cannot
//! explain.
//!
//! Written from what the kubelet and the scheduler record:
//! - the container's `state.waiting.reason` (`ErrImagePull`,
//!   `ImagePullBackOff`, `CrashLoopBackOff`, `CreateContainerConfigError`,
//!   `ContainerCreating`) and `lastState.terminated` (exit code, signal,
//!   reason, start and finish times);
//! - the scheduler's `FailedScheduling` event, or, once events have expired
//!   (an hour by default, kube-apiserver `--event-ttl`), the `PodScheduled`
//!   condition, which carries the same message;
//! - the kubelet's events (`Failed`, `BackOff`, `FailedMount`,
//!   `FailedCreatePodSandBox`, `Unhealthy`, `Killing`).
//!
//! Every rule works from pod status alone and lowers its confidence (or
//! says which evidence is absent) when the events are gone.
//!
//! Ownership, so that one failure gives one finding:
//! - exit code 137 and the `OOMKilled` reason belong to the `oom` family:
//!   no crash-loop finding is made for them;
//! - a `FailedScheduling` message that names `Insufficient nvidia.com/...`
//!   belongs to `gpu_health` (`gpu_unschedulable`), which cites the other
//!   reasons of the same message as evidence: this family makes no pending
//!   finding for it. The GPU shortage is the primary finding because the
//!   scheduler reports a node under the first filter it fails, and
//!   resource fit runs after taints and affinity: the nodes counted under
//!   `Insufficient nvidia.com/gpu` are the ones the pod was meant for;
//! - kubelet admission rejections (`UnexpectedAdmissionError`,
//!   `OutOf<resource>`, `NodeAffinity`) belong to `gpu_health`
//!   (`admission_error`), evictions to `oom`.

use std::collections::BTreeMap;
use std::time::Duration;

use gpuscope_agent::model::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerStateTerminated, ContainerStatus, Event, Pod, Probe,
};
use serde::{Deserialize, Serialize};

use crate::finding::{Confidence, Cost, Fact, Finding, Kind};
use crate::{Context, k8s};

/// Thresholds of the everyday pod failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// A Pending pod with neither a scheduling event nor a `PodScheduled`
    /// condition is a finding only once it has been Pending this long.
    /// Default 60 s: the scheduler binds or reports a failure within
    /// seconds; a minute leaves room for a busy scheduling queue.
    pub pending_grace_secs: u64,
    /// A container that is Running again between restarts counts as
    /// crash-looping when it has restarted at least this many times…
    /// Default 3: one or two restarts happen to healthy pods (a node
    /// reboot, a dependency that came up late).
    pub crash_loop_min_restarts: u32,
    /// …and its last exit is at most this old. Default 600 s: the
    /// kubelet's restart back-off caps at 5 minutes, so a looping container
    /// exits again within about 5 minutes plus its own run time.
    pub crash_loop_recent_secs: u64,
    /// A container waiting in `ContainerCreating` with no event that says
    /// why is reported (as missing evidence) after this long. Default
    /// 600 s: ML images of 10 to 20 GB can take minutes to pull.
    pub creating_grace_secs: u64,
    /// Probe failures (summed event counts) below this are not a finding
    /// unless the kubelet killed the container. Default 3: the kubelet's
    /// default `failureThreshold`, the point at which a probe acts.
    pub probe_min_failures: u32,
    /// A running container with a readiness or startup probe that has not
    /// been ready for this long, with no probe event to show, is reported
    /// with low confidence. Default 300 s: longer than most model loads
    /// that finish, short enough to matter.
    pub not_ready_grace_secs: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            pending_grace_secs: 60,
            crash_loop_min_restarts: 3,
            crash_loop_recent_secs: 600,
            creating_grace_secs: 600,
            probe_min_failures: 3,
            not_ready_grace_secs: 300,
        }
    }
}

/// Every finding of this family.
pub(crate) fn run(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for pod in ctx.pods() {
        let events = ctx.events_for(pod);
        out.extend(image_pull(ctx, pod, &events));
        out.extend(crash_loop(ctx, pod, &events));
        out.extend(pending(ctx, pod, &events));
        out.extend(config_missing(ctx, pod, &events));
        out.extend(mount_failed(ctx, pod, &events));
        out.extend(probe_failing(ctx, pod, &events));
        out.extend(insufficient_evidence(ctx, pod, &events));
    }
    out
}

// ---------------------------------------------------------------------
// Image pulls.

/// Waiting reasons the kubelet sets when an image cannot be pulled.
const PULL_REASONS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
    "SignatureValidationFailed",
];

/// Why a pull failed, from the runtime's error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullCause {
    /// The name or tag does not exist (`not found`, `manifest unknown`).
    NotFound,
    /// Docker Hub's answer for both a missing repository and a private one.
    NotFoundOrDenied,
    /// 401/403: missing or wrong credentials.
    Unauthorized,
    /// 429 / `toomanyrequests`.
    RateLimited,
    /// DNS, TCP or TLS failure on the way to the registry.
    Unreachable,
    /// Not a valid image reference.
    InvalidName,
    /// `imagePullPolicy: Never` and the image is not on the node.
    NeverPull,
    /// The error text is missing or unknown.
    Unknown,
}

fn classify_pull(reason: &str, text: &str) -> PullCause {
    let t = text.to_ascii_lowercase();
    let has = |s: &str| t.contains(s);
    if reason == "InvalidImageName" {
        PullCause::InvalidName
    } else if reason == "ErrImageNeverPull" {
        PullCause::NeverPull
    } else if has("toomanyrequests") || has("429 too many requests") || has("rate limit") {
        PullCause::RateLimited
    } else if has("pull access denied") && has("may require authorization") {
        PullCause::NotFoundOrDenied
    } else if has("401 unauthorized")
        || has("403 forbidden")
        || has("unauthorized:")
        || has("authentication required")
        || has("no basic auth credentials")
        || has("denied:")
    {
        PullCause::Unauthorized
    } else if has("not found") || has("manifest unknown") || has("name unknown") {
        PullCause::NotFound
    } else if has("no such host")
        || has("i/o timeout")
        || has("connection refused")
        || has("network is unreachable")
        || has("tls handshake timeout")
        || has("x509:")
        || has("context deadline exceeded")
        || has("dial tcp")
        || has("connection reset")
    {
        PullCause::Unreachable
    } else {
        PullCause::Unknown
    }
}

/// The registry host of an image reference (`docker.io` when none).
fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// The repository of an image reference, without tag or digest.
fn repository_of(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => no_digest,
    }
}

fn image_pull(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    for cs in k8s::container_statuses(pod) {
        let Some((reason, wmsg)) = waiting(cs) else {
            continue;
        };
        if !PULL_REASONS.contains(&reason) {
            continue;
        }
        let cevents = container_events(events, &cs.name);
        let pull_error = cevents
            .iter()
            .rev()
            .find(|e| reason_is(e, "Failed") && message(e).contains("Failed to pull image"))
            .copied();
        let text = pull_error.map_or(wmsg, message);
        let image = spec_container(pod, &cs.name)
            .and_then(|c| c.image.clone())
            .unwrap_or_else(|| cs.image.clone());
        let secrets: Vec<String> = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .map(|v| v.iter().map(|r| r.name.clone()).collect())
            .unwrap_or_default();
        let secrets_text = if secrets.is_empty() {
            "none".to_owned()
        } else {
            secrets.join(", ")
        };
        let cause = classify_pull(reason, text);
        let registry = registry_of(&image);
        let repo = repository_of(&image);
        let c = &cs.name;
        let (confidence, summary) = match cause {
            PullCause::NotFound => (
                Confidence::High,
                format!(
                    "Container {c} cannot start: image \"{image}\" does not exist in {registry} (the name or tag is wrong, or it was never pushed)."
                ),
            ),
            PullCause::NotFoundOrDenied => (
                Confidence::Medium,
                format!(
                    "Container {c} cannot start: {registry} refused image \"{image}\" with \"pull access denied\", which it answers both for a repository that does not exist and for a private one pulled without credentials (imagePullSecrets: {secrets_text})."
                ),
            ),
            PullCause::Unauthorized => (
                Confidence::High,
                format!(
                    "Container {c} cannot start: {registry} refused to serve image \"{image}\" without valid credentials (imagePullSecrets: {secrets_text})."
                ),
            ),
            PullCause::RateLimited => (
                Confidence::High,
                format!(
                    "Container {c} cannot start: {registry} rate-limited the pull of image \"{image}\" (too many pulls from this node's address)."
                ),
            ),
            PullCause::Unreachable => (
                Confidence::High,
                format!(
                    "Container {c} cannot start: the node cannot reach registry {registry} to pull image \"{image}\" ({}).",
                    unreachable_detail(text)
                ),
            ),
            PullCause::InvalidName => (
                Confidence::High,
                format!("Container {c} cannot start: \"{image}\" is not a valid image reference."),
            ),
            PullCause::NeverPull => (
                Confidence::High,
                format!(
                    "Container {c} cannot start: image \"{image}\" is not on the node and its imagePullPolicy is Never."
                ),
            ),
            PullCause::Unknown if text.is_empty() || text.starts_with("Back-off pulling image") => {
                (
                    Confidence::Low,
                    format!(
                        "Container {c} cannot start: image \"{image}\" cannot be pulled ({reason}), and the registry's error is not in the evidence{}.",
                        if ctx.evidence.lacks("events") {
                            " (no events in the bundle)"
                        } else {
                            " (its Failed event has expired or was not collected)"
                        }
                    ),
                )
            }
            PullCause::Unknown => (
                Confidence::Medium,
                format!(
                    "Container {c} cannot start: image \"{image}\" cannot be pulled ({reason}) for a reason gpuscope does not recognise."
                ),
            ),
        };
        let mut f = Finding::new(
            Kind::ImagePull,
            ctx.subject(pod, Some(c)),
            confidence,
            summary,
        )
        .fact(Fact::new("waiting reason", reason))
        .fact(Fact::new("image", image.clone()))
        .fact(Fact::new("imagePullSecrets", secrets_text.clone()));
        if let Some(e) = pull_error {
            f = f.fact(event_fact("pull error", e));
            f = f.fact(Fact::new("failed pulls", event_count(e).to_string()));
        } else if !text.is_empty() {
            f = f.fact(Fact::new("waiting message", text));
        }
        if let Some(e) = cevents
            .iter()
            .rev()
            .find(|e| reason_is(e, "BackOff") && message(e).contains("Back-off pulling"))
        {
            f = f.fact(event_fact("back-off", e));
        }
        let inspect = format!("crane ls {repo}   # or: docker manifest inspect {image}");
        let ns = k8s::namespace(pod);
        let steps: Vec<String> = match cause {
            PullCause::NotFound | PullCause::InvalidName => vec![
                inspect,
                format!("Fix spec.containers[{c}].image in the manifest to a name and tag that exist."),
            ],
            PullCause::NotFoundOrDenied => vec![
                inspect,
                "If the repository is private, create a pull secret and list it under imagePullSecrets (or on the ServiceAccount); otherwise fix the name or tag.".to_owned(),
                format!("kubectl create secret docker-registry regcred -n {ns} --docker-server={registry} --docker-username=USER --docker-password=TOKEN"),
            ],
            PullCause::Unauthorized => vec![
                format!("kubectl get secret {} -n {ns} -o jsonpath='{{.data.\\.dockerconfigjson}}' | base64 -d   # check it names {registry}", secrets.first().map_or("regcred", String::as_str)),
                format!("kubectl create secret docker-registry regcred -n {ns} --docker-server={registry} --docker-username=USER --docker-password=TOKEN, then add `imagePullSecrets: [{{name: regcred}}]` to the pod spec or its ServiceAccount."),
            ],
            PullCause::RateLimited => vec![
                format!("Authenticate pulls from {registry} (an imagePullSecret for an account with a higher limit) or pull through a registry mirror / pull-through cache."),
                "Set imagePullPolicy: IfNotPresent and pin tags so that nodes reuse cached images.".to_owned(),
            ],
            PullCause::Unreachable => vec![
                format!("kubectl debug node/{} -it --image=busybox -- nslookup {registry}", k8s::node_name(pod).unwrap_or("NODE")),
                "Check the node's DNS, HTTP(S)_PROXY/NO_PROXY in the container runtime's config, firewall rules, and the registry's CA certificate; or use a reachable mirror.".to_owned(),
            ],
            PullCause::NeverPull => vec![
                format!("Set imagePullPolicy: IfNotPresent, or pre-load {image} on the node (crictl pull {image})."),
            ],
            PullCause::Unknown => vec![
                format!("kubectl describe pod {} -n {ns}   # the Events section names the pull error", k8s::name(pod)),
                inspect,
            ],
        };
        for s in steps {
            f = f.step(s);
        }
        out.push(f);
    }
    out
}

fn unreachable_detail(text: &str) -> &'static str {
    let t = text.to_ascii_lowercase();
    if t.contains("no such host") {
        "DNS lookup of the registry failed"
    } else if t.contains("x509:") {
        "the registry's TLS certificate is not trusted"
    } else if t.contains("connection refused") {
        "connection refused"
    } else {
        "the connection timed out: DNS, proxy or firewall"
    }
}

// ---------------------------------------------------------------------
// Crash loops.

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

fn crash_loop(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
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
        // NCCL error, missing files): that finding says it with evidence.
        if term.is_some_and(owned_by_oom) || crate::rules::logs::explains_exit(ctx, pod, &cs.name) {
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

// ---------------------------------------------------------------------
// Pending: the scheduler's message, parsed once for both families.

/// Why the scheduler excluded some nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReasonClass {
    /// `Insufficient <resource>`, `Too many pods`, no free ports.
    Resource(String),
    /// An untolerated taint.
    Taint,
    /// The pod's node selector or node affinity.
    NodeAffinity,
    /// Inter-pod affinity, anti-affinity or topology spread.
    PodAffinity,
    /// Volumes: unbound or missing claims, no matching volume, volume
    /// node affinity.
    Volume,
    /// Nodes cordoned (`spec.unschedulable`).
    Cordoned,
    /// Anything else.
    Other,
}

/// One `N node(s) …` clause of a scheduling failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reason {
    /// How many nodes it excluded (0 when the clause has no count).
    pub nodes: u32,
    /// The clause, as the scheduler wrote it.
    pub text: String,
    /// Its class.
    pub class: ReasonClass,
}

/// The scheduler's verdict on a pod that it could not place.
#[derive(Debug, Clone)]
pub(crate) struct Scheduling {
    /// The message, as written (without the preemption part).
    pub message: String,
    /// When it was last said.
    pub time: Option<Timestamp>,
    /// `FailedScheduling` event (with its count) or `PodScheduled`
    /// condition (`None`).
    pub event_count: Option<u32>,
    /// Nodes considered (`0/N nodes are available`).
    pub total: Option<u32>,
    /// The clauses.
    pub reasons: Vec<Reason>,
}

impl Scheduling {
    /// The GPU resources (`nvidia.com/...`) some nodes lack.
    pub(crate) fn gpu_shortage(&self) -> Option<&Reason> {
        self.reasons
            .iter()
            .find(|r| matches!(&r.class, ReasonClass::Resource(n) if n.starts_with("nvidia.com/")))
    }

    /// Nodes excluded for reasons of a class.
    pub(crate) fn count(&self, f: impl Fn(&ReasonClass) -> bool) -> u32 {
        self.reasons
            .iter()
            .filter(|r| f(&r.class))
            .map(|r| r.nodes)
            .sum()
    }

    /// Where the message came from, for people.
    pub(crate) fn source(&self) -> String {
        match self.event_count {
            Some(n) => format!("FailedScheduling event ({n} times)"),
            None => "PodScheduled condition (no FailedScheduling event: events expire after 1 h)"
                .to_owned(),
        }
    }

    /// Facts: the message, its source, and one per clause.
    pub(crate) fn facts(&self) -> Vec<Fact> {
        let mut v = vec![
            match self.time {
                Some(t) => Fact::at("scheduler message", self.message.clone(), t),
                None => Fact::new("scheduler message", self.message.clone()),
            },
            Fact::new("source", self.source()),
        ];
        for r in self.reasons.iter().filter(|r| r.nodes > 0) {
            let of = self.total.map(|t| format!(" of {t}")).unwrap_or_default();
            v.push(Fact::new(
                format!("nodes excluded: {}", clause_name(&r.text)),
                format!("{}{of}", r.nodes),
            ));
        }
        v
    }
}

/// A clause without its count (`2 Insufficient memory` -> `Insufficient memory`).
fn clause_name(text: &str) -> &str {
    text.split_once(' ')
        .filter(|(n, _)| n.parse::<u32>().is_ok())
        .map_or(text, |(_, rest)| rest)
}

/// The scheduler's failure for an unbound Pending pod: its latest
/// `FailedScheduling` event, else the `PodScheduled=False` condition's
/// message (which survives the event's expiry).
pub(crate) fn scheduling_failure(ctx: &Context<'_>, pod: &Pod) -> Option<Scheduling> {
    if k8s::phase(pod) != "Pending" || k8s::node_name(pod).is_some() {
        return None;
    }
    let event = ctx
        .events_for(pod)
        .into_iter()
        .rev()
        .find(|e| reason_is(e, "FailedScheduling"));
    let (msg, time, count) = match event {
        Some(e) => (
            message(e).to_owned(),
            k8s::event_last_time(e),
            Some(event_count(e)),
        ),
        None => {
            let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })?;
            (
                c.message.clone().unwrap_or_default(),
                c.last_transition_time.as_ref().map(k8s::ts),
                None,
            )
        }
    };
    let (total, reasons) = parse_scheduling_message(&msg);
    let message = msg
        .split(" preemption:")
        .next()
        .unwrap_or(&msg)
        .trim()
        .to_owned();
    Some(Scheduling {
        message,
        time,
        event_count: count,
        total,
        reasons,
    })
}

/// Parses `0/5 nodes are available: 1 Insufficient cpu, 2 node(s) had
/// untolerated taint {k: v}, ... preemption: ...` into the node total and
/// the clauses; messages without counts (`pod has unbound immediate
/// PersistentVolumeClaims`) give one clause with a count of 0.
pub(crate) fn parse_scheduling_message(msg: &str) -> (Option<u32>, Vec<Reason>) {
    let main = msg.split(" preemption:").next().unwrap_or(msg).trim();
    let (total, rest) = match main.split_once(" nodes are available:") {
        Some((head, rest)) => (
            head.rsplit('/').next().and_then(|n| n.trim().parse().ok()),
            rest,
        ),
        None => (None, main),
    };
    let rest = rest.trim().trim_end_matches('.');
    // Split on ", " before a count; a taint's text may hold ", " itself.
    let mut clauses: Vec<String> = Vec::new();
    for piece in rest.split(", ") {
        let starts_with_count = piece
            .split_once(' ')
            .is_some_and(|(n, _)| n.parse::<u32>().is_ok());
        match clauses.last_mut() {
            Some(last) if !starts_with_count => {
                last.push_str(", ");
                last.push_str(piece);
            }
            _ => clauses.push(piece.to_owned()),
        }
    }
    let reasons = clauses
        .into_iter()
        .filter(|c| !c.is_empty())
        .flat_map(|c| {
            // `pod has unbound immediate PersistentVolumeClaims. ...`
            c.split(". ")
                .map(|s| s.trim().trim_end_matches('.').to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .map(|text| {
            let (nodes, body) = match text.split_once(' ') {
                Some((n, b)) if n.parse::<u32>().is_ok() => (n.parse().unwrap_or(0), b.to_owned()),
                _ => (0, text.clone()),
            };
            Reason {
                nodes,
                class: classify_clause(&body),
                text,
            }
        })
        .collect();
    (total, reasons)
}

fn classify_clause(body: &str) -> ReasonClass {
    let b = body.to_ascii_lowercase();
    if let Some(r) = body.strip_prefix("Insufficient ") {
        ReasonClass::Resource(r.trim().to_owned())
    } else if b.contains("too many pods") {
        ReasonClass::Resource("pods".into())
    } else if b.contains("free ports") {
        ReasonClass::Resource("host ports".into())
    } else if b.contains("taint") {
        ReasonClass::Taint
    } else if b.contains("persistentvolumeclaim")
        || b.contains("persistent volume")
        || b.contains("volume node affinity")
        || b.contains("volume")
    {
        ReasonClass::Volume
    } else if b.contains("node affinity") || b.contains("node selector") {
        ReasonClass::NodeAffinity
    } else if b.contains("pod affinity")
        || b.contains("anti-affinity")
        || b.contains("topology spread")
    {
        ReasonClass::PodAffinity
    } else if b.contains("unschedulable") {
        ReasonClass::Cordoned
    } else {
        ReasonClass::Other
    }
}

/// Whether a taint clause names only control-plane taints (which a
/// workload is never meant to tolerate: those nodes are not candidates).
fn control_plane_taint(text: &str) -> bool {
    text.contains("node-role.kubernetes.io/control-plane")
        || text.contains("node-role.kubernetes.io/master")
}

fn pending(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    if k8s::phase(pod) != "Pending" || k8s::node_name(pod).is_some() {
        return Vec::new();
    }
    let Some(s) = scheduling_failure(ctx, pod) else {
        return pending_unexplained(ctx, pod, events).into_iter().collect();
    };
    if s.gpu_shortage().is_some() {
        // gpu_health's gpu_unschedulable is the finding (see module docs).
        return Vec::new();
    }
    let resources = s.count(|c| matches!(c, ReasonClass::Resource(_)));
    let affinity = s.count(|c| *c == ReasonClass::NodeAffinity);
    let pod_affinity = s.count(|c| *c == ReasonClass::PodAffinity);
    let workload_taints: u32 = s
        .reasons
        .iter()
        .filter(|r| r.class == ReasonClass::Taint && !control_plane_taint(&r.text))
        .map(|r| r.nodes)
        .sum();
    let taints = s.count(|c| *c == ReasonClass::Taint);
    let volume = s.reasons.iter().any(|r| r.class == ReasonClass::Volume);
    let total = s.total.map(|t| format!(" of {t}")).unwrap_or_default();
    let subject = ctx.subject(pod, None);
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    // The primary reason. The scheduler counts each node under the first
    // filter it fails, in the order taints, node affinity, resources,
    // volumes, pod affinity: nodes counted under a resource passed taints
    // and affinity, so they are the nodes the pod was meant for.
    let mut f = if volume {
        pending_pvc(ctx, pod, &s)
    } else if resources > 0 {
        let lacks: Vec<String> = s
            .reasons
            .iter()
            .filter_map(|r| match &r.class {
                ReasonClass::Resource(n) => Some(format!("{} lack {n}", r.nodes)),
                _ => None,
            })
            .collect();
        Finding::new(
            Kind::PendingResources,
            subject,
            Confidence::High,
            format!(
                "Pod {name} cannot be scheduled: the nodes that match it have no room ({}{total} nodes); it requests {}.",
                lacks.join(", "),
                requests_text(pod)
            ),
        )
        .step("kubectl describe nodes | grep -A 8 'Allocated resources'")
        .step("Lower the pod's requests, free capacity, or add nodes (check the cluster autoscaler's node groups).")
    } else if workload_taints > 0 || (taints > 0 && affinity == 0) {
        // Control-plane taints are named only when they are all there is.
        let (n, which): (u32, Vec<&str>) = if workload_taints > 0 {
            (
                workload_taints,
                s.reasons
                    .iter()
                    .filter(|r| r.class == ReasonClass::Taint && !control_plane_taint(&r.text))
                    .map(|r| clause_name(&r.text))
                    .collect(),
            )
        } else {
            (
                taints,
                s.reasons
                    .iter()
                    .filter(|r| r.class == ReasonClass::Taint)
                    .map(|r| clause_name(&r.text))
                    .collect(),
            )
        };
        Finding::new(
            Kind::PendingTaint,
            subject,
            Confidence::High,
            format!(
                "Pod {name} cannot be scheduled: {n}{total} nodes carry taints it does not tolerate ({}).",
                which.join("; ")
            ),
        )
        .step("kubectl get nodes -o custom-columns=NAME:.metadata.name,TAINTS:.spec.taints")
        .step("Add a matching toleration to the pod spec, e.g. `tolerations: [{key: KEY, operator: Exists, effect: NoSchedule}]`, or remove the taint if it is stale (kubectl taint nodes NODE KEY-).")
    } else if affinity > 0 || pod_affinity > 0 {
        pending_affinity(ctx, pod, &s, affinity, pod_affinity)
    } else {
        let cordoned = s.count(|c| *c == ReasonClass::Cordoned);
        let summary = if cordoned > 0 {
            format!(
                "Pod {name} cannot be scheduled: {cordoned}{total} nodes are cordoned (unschedulable)."
            )
        } else {
            format!(
                "Pod {name} cannot be scheduled for a reason gpuscope does not classify: {}",
                s.message
            )
        };
        Finding::new(Kind::Pending, subject, Confidence::Medium, summary)
            .step(format!("kubectl describe pod {name} -n {ns}"))
            .step("kubectl get nodes   # SchedulingDisabled marks cordoned nodes; kubectl uncordon NODE")
    };
    for fact in s.facts() {
        f = f.fact(fact);
    }
    if let Some(e) = events
        .iter()
        .rev()
        .find(|e| reason_is(e, "TriggeredScaleUp"))
    {
        f.confidence = f.confidence.min(Confidence::Medium);
        f = f.fact(event_fact("cluster-autoscaler", e));
        f.summary
            .push_str(" The cluster autoscaler has triggered a scale-up, which may resolve it.");
    } else if let Some(e) = events
        .iter()
        .rev()
        .find(|e| reason_is(e, "NotTriggerScaleUp"))
    {
        f = f.fact(event_fact("cluster-autoscaler", e));
    }
    vec![f]
}

fn pending_pvc(ctx: &Context<'_>, pod: &Pod, s: &Scheduling) -> Finding {
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let claims: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.clone())
        })
        .collect();
    let missing = quoted_after(&s.message, "persistentvolumeclaim \"");
    let mut states: Vec<(String, String, Option<String>)> = Vec::new();
    for c in &claims {
        let (phase, class) = match ctx.pvc(ns, c) {
            Some(p) => (
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_else(|| "Unknown".into()),
                p.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
            ),
            None if missing.as_deref() == Some(c.as_str()) => ("not found".into(), None),
            None => ("not in the evidence".into(), None),
        };
        states.push((c.clone(), phase, class));
    }
    let lower = s.message.to_ascii_lowercase();
    let why = if let Some(m) = &missing {
        format!("PersistentVolumeClaim \"{m}\" does not exist in namespace {ns}")
    } else if lower.contains("unbound immediate") {
        let unbound: Vec<String> = states
            .iter()
            .filter(|(_, p, _)| p != "Bound")
            .map(|(c, p, _)| format!("\"{c}\" is {p}"))
            .collect();
        if unbound.is_empty() {
            "a PersistentVolumeClaim it mounts is not bound to a volume".to_owned()
        } else {
            format!(
                "a PersistentVolumeClaim it mounts is not bound to a volume ({})",
                unbound.join(", ")
            )
        }
    } else if lower.contains("didn't find available persistent volumes") {
        "no PersistentVolume matches its claim (size, access mode, storage class or zone)"
            .to_owned()
    } else if lower.contains("volume node affinity conflict") {
        "its volume is pinned to a zone or node where the pod cannot run (volume node affinity conflict)".to_owned()
    } else {
        format!("a volume cannot be provided ({})", s.message)
    };
    let mut f = Finding::new(
        Kind::PendingPvc,
        ctx.subject(pod, None),
        Confidence::High,
        format!("Pod {name} cannot be scheduled: {why}."),
    );
    for (c, phase, class) in &states {
        f = f.fact(Fact::new(format!("PVC {c}"), phase.clone()));
        if let Some(class) = class {
            f = f.fact(Fact::new(
                format!("PVC {c} storageClassName"),
                class.clone(),
            ));
        }
    }
    let claim = missing
        .clone()
        .or_else(|| {
            states
                .iter()
                .find(|(_, p, _)| p != "Bound")
                .map(|(c, _, _)| c.clone())
        })
        .or_else(|| claims.first().cloned())
        .unwrap_or_else(|| "CLAIM".into());
    if missing.is_some() {
        f = f.step(format!(
            "kubectl get pvc -n {ns}   # create the claim, or fix claimName in the pod's volumes"
        ));
    } else {
        f = f.step(format!(
            "kubectl describe pvc {claim} -n {ns}   # its events say why the provisioner did not bind it"
        ));
        f = f.step("kubectl get storageclass   # is there a default class, and is its provisioner running?");
    }
    f
}

fn pending_affinity(
    ctx: &Context<'_>,
    pod: &Pod,
    s: &Scheduling,
    affinity: u32,
    pod_affinity: u32,
) -> Finding {
    let name = k8s::name(pod);
    let total = s.total.map(|t| format!(" of {t}")).unwrap_or_default();
    let selector: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    let summary = if affinity > 0 {
        format!(
            "Pod {name} cannot be scheduled: {affinity}{total} nodes do not match its node selector or node affinity{}.",
            if selector.is_empty() {
                String::new()
            } else {
                format!(" (nodeSelector {})", selector.join(", "))
            }
        )
    } else {
        format!(
            "Pod {name} cannot be scheduled: {pod_affinity}{total} nodes fail its pod affinity, anti-affinity or topology spread rules."
        )
    };
    let mut f = Finding::new(
        Kind::PendingAffinity,
        ctx.subject(pod, None),
        Confidence::High,
        summary,
    );
    if !selector.is_empty() {
        f = f.fact(Fact::new("nodeSelector", selector.join(", ")));
        f = f.step(format!(
            "kubectl get nodes -l {}   # no output: no node carries these labels",
            selector.join(",")
        ));
    }
    f.step("kubectl get nodes --show-labels   # then fix the selector/affinity, or label the intended nodes (kubectl label node NODE KEY=VALUE)")
}

/// A Pending pod with no scheduler verdict: either too young, held by a
/// scheduling gate, waiting for a scheduler that is not running, or the
/// verdict is simply not in the evidence.
fn pending_unexplained(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Option<Finding> {
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let spec = pod.spec.as_ref();
    let gates: Vec<String> = spec
        .and_then(|s| s.scheduling_gates.as_ref())
        .map(|g| g.iter().map(|g| g.name.clone()).collect())
        .unwrap_or_default();
    if !gates.is_empty() {
        return Some(
            Finding::new(
                Kind::Pending,
                ctx.subject(pod, None),
                Confidence::Medium,
                format!(
                    "Pod {name} is held back from scheduling by scheduling gates ({}): a queue or controller must admit it first.",
                    gates.join(", ")
                ),
            )
            .fact(Fact::new("schedulingGates", gates.join(", ")))
            .step("kubectl get workloads -A   # when the gate is Kueue's: is the queue's ClusterQueue out of quota?")
            .step(format!("kubectl get pod {name} -n {ns} -o jsonpath='{{.spec.schedulingGates}}'")),
        );
    }
    let created = pod.metadata.creation_timestamp.as_ref().map(k8s::ts)?;
    let age = ctx.now.since(created);
    if age.as_secs() < ctx.config.pod.pending_grace_secs {
        return None;
    }
    let scheduler = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("default-scheduler");
    let mut absent = Vec::new();
    if ctx.evidence.lacks("events") {
        absent.push("no events in the evidence");
    } else if !events.iter().any(|e| reason_is(e, "FailedScheduling")) {
        absent.push("no FailedScheduling event (events expire after 1 h)");
    }
    absent.push("no PodScheduled condition");
    let (confidence, summary) = if scheduler != "default-scheduler" {
        (
            Confidence::Medium,
            format!(
                "Pod {name} has been Pending for {} without any scheduling verdict; it names scheduler \"{scheduler}\", which may not be running.",
                human(age)
            ),
        )
    } else {
        (
            Confidence::Low,
            format!(
                "Pod {name} has been Pending for {} and the evidence does not say why ({}).",
                human(age),
                absent.join(", ")
            ),
        )
    };
    Some(
        Finding::new(Kind::Pending, ctx.subject(pod, None), confidence, summary)
            .fact(Fact::at("created", human(age) + " ago", created))
            .fact(Fact::new("schedulerName", scheduler))
            .fact(Fact::new("missing evidence", absent.join(", ")))
            .step(format!("kubectl describe pod {name} -n {ns}"))
            .step(format!(
                "kubectl get events -n {ns} --field-selector involvedObject.name={name} -o json > events.json"
            )),
    )
}

fn requests_text(pod: &Pod) -> String {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        if let Some(r) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) {
            for (k, q) in r {
                if let Some(v) = k8s::quantity(q) {
                    *sums.entry(k.clone()).or_default() += v;
                }
            }
        }
    }
    if sums.is_empty() {
        return "no resources".to_owned();
    }
    sums.iter()
        .map(|(k, v)| match k.as_str() {
            "memory" | "ephemeral-storage" => format!("{} {k}", bytes(*v)),
            "cpu" => format!("{} cpu", trim_float(*v)),
            _ => format!("{} {k}", trim_float(*v)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn bytes(v: f64) -> String {
    const GI: f64 = 1024.0 * 1024.0 * 1024.0;
    if v >= GI {
        format!("{} GiB", trim_float((v / GI * 10.0).round() / 10.0))
    } else {
        format!("{} MiB", trim_float((v / 1024.0 / 1024.0).round()))
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

// ---------------------------------------------------------------------
// CreateContainerConfigError.

/// The object a config error names: kind, name, key.
fn missing_object(msg: &str) -> Option<(&'static str, String, Option<String>)> {
    if let Some(rest) = msg.split("couldn't find key ").nth(1) {
        let (key, rest) = rest.split_once(" in ")?;
        let (kind, obj) = rest.split_once(' ')?;
        let obj = obj.trim().trim_end_matches('.');
        let obj = obj.rsplit('/').next().unwrap_or(obj).to_owned();
        let kind = if kind.eq_ignore_ascii_case("secret") {
            "Secret"
        } else {
            "ConfigMap"
        };
        return Some((kind, obj, Some(key.to_owned())));
    }
    if let Some(n) = quoted_after(msg, "configmap \"")
        && msg.contains("not found")
    {
        return Some(("ConfigMap", n, None));
    }
    if let Some(n) = quoted_after(msg, "secret \"")
        && msg.contains("not found")
    {
        return Some(("Secret", n, None));
    }
    None
}

/// Where the pod's containers reference a ConfigMap or Secret.
fn references(pod: &Pod, kind: &str, obj: &str, key: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
    }) {
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            let hit = match kind {
                "ConfigMap" => from
                    .config_map_key_ref
                    .as_ref()
                    .is_some_and(|r| r.name == obj && key.is_none_or(|k| r.key == k)),
                _ => from
                    .secret_key_ref
                    .as_ref()
                    .is_some_and(|r| r.name == obj && key.is_none_or(|k| r.key == k)),
            };
            if hit {
                out.push(format!("env {} of container {}", e.name, c.name));
            }
        }
        for e in c.env_from.iter().flatten() {
            let hit = match kind {
                "ConfigMap" => e.config_map_ref.as_ref().is_some_and(|r| r.name == obj),
                _ => e.secret_ref.as_ref().is_some_and(|r| r.name == obj),
            };
            if hit && key.is_none() {
                out.push(format!("envFrom of container {}", c.name));
            }
        }
    }
    out
}

fn config_missing(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    for cs in k8s::container_statuses(pod) {
        let Some((reason, wmsg)) = waiting(cs) else {
            continue;
        };
        if reason != "CreateContainerConfigError" {
            continue;
        }
        let c = &cs.name;
        let event = container_events(events, c)
            .into_iter()
            .rev()
            .find(|e| reason_is(e, "Failed") && message(e).starts_with("Error: "));
        let text = if wmsg.is_empty() {
            event.map_or("", |e| message(e).trim_start_matches("Error: "))
        } else {
            wmsg
        };
        let mut f = match missing_object(text) {
            Some((kind, obj, key)) => {
                let what = match &key {
                    Some(k) => format!("key \"{k}\" is missing from {kind} {ns}/{obj}"),
                    None => format!("{kind} \"{obj}\" does not exist in namespace {ns}"),
                };
                let lower = kind.to_ascii_lowercase();
                let mut f = Finding::new(
                    Kind::ConfigMissing,
                    ctx.subject(pod, Some(c)),
                    Confidence::High,
                    format!("Container {c} cannot be created: {what}."),
                )
                .fact(Fact::new("kind", kind))
                .fact(Fact::new("name", obj.clone()));
                if let Some(k) = &key {
                    f = f.fact(Fact::new("key", k.clone()));
                }
                for r in references(pod, kind, &obj, key.as_deref()) {
                    f = f.fact(Fact::new("referenced by", r));
                }
                f = f.step(match &key {
                    Some(_) if kind == "Secret" => format!(
                        "kubectl get secret {obj} -n {ns} -o jsonpath='{{.data}}'   # the keys it has"
                    ),
                    Some(_) => format!(
                        "kubectl get configmap {obj} -n {ns} -o jsonpath='{{.data}}'   # the keys it has"
                    ),
                    None => format!("kubectl get {lower} -n {ns}   # is it named differently, or in another namespace?"),
                });
                f.step(format!(
                    "Create the {kind} (kubectl create {lower} {obj} -n {ns} ...) or fix the reference in the pod spec; mark it `optional: true` if the container can start without it."
                ))
            }
            None if text.is_empty() => Finding::new(
                Kind::ConfigMissing,
                ctx.subject(pod, Some(c)),
                Confidence::Low,
                format!(
                    "Container {c} cannot be created (CreateContainerConfigError), and the message naming the missing object is not in the evidence."
                ),
            )
            .step(format!("kubectl describe pod {name} -n {ns}")),
            None => Finding::new(
                Kind::ConfigMissing,
                ctx.subject(pod, Some(c)),
                Confidence::Medium,
                format!(
                    "Container {c} cannot be created: the kubelet cannot build its configuration ({text})."
                ),
            )
            .step(format!("kubectl get pod {name} -n {ns} -o yaml   # compare the spec with the message")),
        };
        f = f.fact(Fact::new("waiting reason", reason));
        if !text.is_empty() {
            f = f.fact(match event {
                Some(e) => event_fact("message", e),
                None => Fact::new("message", text),
            });
        }
        out.push(f);
    }
    out
}

// ---------------------------------------------------------------------
// Volumes and sandboxes.

const MOUNT_REASONS: [&str; 4] = [
    "FailedMount",
    "FailedAttachVolume",
    "FailedMapVolume",
    "FailedCreatePodSandBox",
];

/// Whether the pod's containers have not all started yet.
fn not_started(pod: &Pod) -> bool {
    let statuses: Vec<&ContainerStatus> = k8s::container_statuses(pod).collect();
    k8s::phase(pod) == "Pending"
        || statuses.is_empty()
        || statuses.iter().any(|cs| {
            waiting(cs).is_some_and(|(r, _)| r == "ContainerCreating" || r == "PodInitializing")
        })
}

fn mount_failed(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    if !not_started(pod) || k8s::node_name(pod).is_none() {
        return Vec::new();
    }
    let failures: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| MOUNT_REASONS.iter().any(|r| reason_is(e, r)))
        .collect();
    // The most specific message: a generic timeout only when nothing
    // else is said.
    let Some(primary) = failures
        .iter()
        .rev()
        .find(|e| !is_generic_mount_timeout(message(e)))
        .or(failures.last())
        .copied()
    else {
        return Vec::new();
    };
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let node = k8s::node_name(pod).unwrap_or("NODE");
    let msg = message(primary);
    let lower = msg.to_ascii_lowercase();
    let reason = primary.reason.as_deref().unwrap_or("");
    let volume = quoted_after(msg, "for volume \"");
    let mut steps: Vec<String> = Vec::new();
    let (confidence, why) = if lower.contains("nvidia-container-cli")
        || lower.contains("nvml error")
        || lower.contains("nvidia-container-runtime")
        || lower.contains("no runtime for \"nvidia\"")
    {
        steps.push(format!(
            "kubectl debug node/{node} -it --image=ubuntu -- chroot /host nvidia-smi   # is the driver loaded?"
        ));
        steps.push("kubectl get pods -n gpu-operator -o wide   # the driver and container-toolkit pods of this node".into());
        (
            Confidence::High,
            format!(
                "the NVIDIA container runtime could not set up the GPU on node {node}: the GPU driver is not loaded or does not match the toolkit"
            ),
        )
    } else if reason == "FailedCreatePodSandBox" {
        steps.push(format!(
            "kubectl get pods -n kube-system -o wide --field-selector spec.nodeName={node}   # is the CNI pod (calico, cilium, aws-node...) of this node running?"
        ));
        steps.push("On the node: journalctl -u containerd -u kubelet --since -15m".into());
        (
            Confidence::High,
            if lower.contains("network") || lower.contains("cni") || lower.contains("plugin type") {
                format!(
                    "the pod network could not be set up on node {node} (the CNI plugin failed)"
                )
            } else {
                format!("the container runtime could not create the pod sandbox on node {node}")
            },
        )
    } else if lower.contains("multi-attach error") {
        steps.push("kubectl get volumeattachment   # which node still holds it".into());
        steps.push("Delete the old pod that uses the volume (or wait for it to terminate); ReadWriteOnce volumes attach to one node at a time.".into());
        (
            Confidence::High,
            format!(
                "volume {} is still attached to another node (Multi-Attach error)",
                volume.as_deref().unwrap_or("(unnamed)")
            ),
        )
    } else if let Some((kind, obj, _)) = missing_object(msg) {
        steps.push(format!(
            "kubectl get {} {obj} -n {ns}",
            kind.to_ascii_lowercase()
        ));
        steps.push(format!(
            "Create the {kind}, fix the volume's name in the pod spec, or mark the volume `optional: true`."
        ));
        (
            Confidence::High,
            format!(
                "volume {} needs {kind} \"{obj}\", which does not exist in namespace {ns}",
                volume.as_deref().unwrap_or("(unnamed)")
            ),
        )
    } else if is_generic_mount_timeout(msg) {
        steps.push(format!(
            "kubectl get pvc -n {ns}; kubectl get volumeattachment   # is the volume bound and attached?"
        ));
        steps.push("kubectl logs -n kube-system -l app=ebs-csi-controller --tail=50   # the CSI driver's controller (name varies by driver)".into());
        (
            Confidence::Medium,
            format!(
                "its volumes were not attached or mounted in time ({}); the cause is in the storage driver's logs",
                unmounted(msg)
            ),
        )
    } else {
        steps.push(format!("kubectl describe pod {name} -n {ns}"));
        steps.push(format!(
            "On node {node}: journalctl -u kubelet --since -15m | grep -i mount"
        ));
        (
            Confidence::High,
            format!(
                "{} failed: {}",
                volume.as_deref().map_or_else(
                    || "setting up its volumes".to_owned(),
                    |v| format!("volume {v}")
                ),
                last_line(msg)
            ),
        )
    };
    let mut f = Finding::new(
        Kind::MountFailed,
        ctx.subject(pod, None),
        confidence,
        format!("Pod {name} cannot start: {why}."),
    )
    .fact(event_fact(reason, primary))
    .fact(Fact::new("failures", event_count(primary).to_string()));
    for e in failures
        .iter()
        .filter(|e| !std::ptr::eq(**e, primary))
        .rev()
        .take(2)
    {
        f = f.fact(event_fact(e.reason.as_deref().unwrap_or("event"), e));
    }
    for s in steps {
        f = f.step(s);
    }
    vec![f]
}

fn is_generic_mount_timeout(msg: &str) -> bool {
    msg.contains("Unable to attach or mount volumes")
        || msg.contains("timed out waiting for the condition")
}

/// `unmounted volumes=[data], unattached volumes=[...]` -> `unmounted: data`.
fn unmounted(msg: &str) -> String {
    msg.split("unmounted volumes=[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .map_or_else(|| "timed out".to_owned(), |v| format!("unmounted: {v}"))
}

// ---------------------------------------------------------------------
// Probes.

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

fn probe_failing(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
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
        // start (load a model) than the probe waits.
        let too_early = kind == ProbeKind::Liveness
            && c.startup_probe.is_none()
            && kill_count > 0
            && matches!((budget, last_run), (Some(b), Some(r)) if r.as_secs() <= b + 2 * probe.and_then(|p| p.period_seconds).unwrap_or(10).max(1) as u64);
        let summary = match kind {
            ProbeKind::Readiness => format!(
                "The readiness probe of container {cn} has failed {count} times ({detail}): the pod is not Ready and gets no Service traffic, but it is not restarted."
            ),
            _ if too_early => format!(
                "The {} probe of container {cn} failed {count} times and the kubelet restarted it {restarts} times; each run lasted about {}, no longer than the probe allows ({}s): the program needs longer to start than the probe waits.",
                kind.name(),
                last_run.map(human).unwrap_or_default(),
                budget.unwrap_or(0)
            ),
            _ => format!(
                "The {} probe of container {cn} failed {count} times ({detail}) and the kubelet restarted it {restarts} times.",
                kind.name()
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
                    "initialDelaySeconds {}, periodSeconds {}, timeoutSeconds {}, failureThreshold {} (acts after {}s)",
                    p.initial_delay_seconds.unwrap_or(0),
                    p.period_seconds.unwrap_or(10),
                    p.timeout_seconds.unwrap_or(1),
                    p.failure_threshold.unwrap_or(3),
                    probe_budget(p)
                ),
            ));
        }
        if let Some(r) = last_run {
            f = f.fact(Fact::new("last run", human(r)));
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
                human(up),
                if ctx.evidence.lacks("events") {
                    " (no events collected)"
                } else {
                    ""
                }
            ),
        )
        .fact(Fact::at("running since", human(up), started))
        .fact(Fact::new("ready", "false"))
        .step(format!("kubectl describe pod {name} -n {ns}   # Events: Unhealthy"))
        .step(format!(
            "kubectl exec {name} -n {ns} -c {} -- curl -sv localhost:PORT/PATH   # call the probe's endpoint yourself",
            c.name
        )),
    )
}

// ---------------------------------------------------------------------
// What the evidence cannot explain.

/// Waiting reasons some rule of this family explains.
const EXPLAINED_WAITING: [&str; 9] = [
    "ContainerCreating",
    "PodInitializing",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];

/// Pod status reasons other families own (evictions: `oom`; kubelet
/// admission: `gpu_health`).
fn reason_owned_elsewhere(reason: &str) -> bool {
    reason == "Evicted"
        || reason == "UnexpectedAdmissionError"
        || reason == "NodeAffinity"
        || reason.starts_with("OutOf")
}

fn insufficient_evidence(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let missing = missing_evidence(ctx);
    for cs in k8s::container_statuses(pod) {
        let Some((reason, msg)) = waiting(cs) else {
            continue;
        };
        if reason == "ContainerCreating" {
            if let Some(f) = stuck_creating(ctx, pod, cs, events) {
                out.push(f);
            }
            continue;
        }
        if EXPLAINED_WAITING.contains(&reason) || PULL_REASONS.contains(&reason) {
            continue;
        }
        out.push(
            Finding::new(
                Kind::InsufficientEvidence,
                ctx.subject(pod, Some(&cs.name)),
                Confidence::Low,
                format!(
                    "Container {} is waiting with reason {reason}, which gpuscope does not explain{}.",
                    cs.name,
                    if msg.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", last_line(msg))
                    }
                ),
            )
            .fact(Fact::new("waiting reason", reason))
            .fact(Fact::new("missing evidence", missing.clone()))
            .step(format!("kubectl describe pod {name} -n {ns}")),
        );
    }
    let status = pod.status.as_ref();
    let phase = k8s::phase(pod);
    let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    let smsg = status.and_then(|s| s.message.as_deref()).unwrap_or("");
    if phase == "Failed" && !reason_owned_elsewhere(reason) {
        let terminated: Vec<&ContainerStateTerminated> = k8s::container_statuses(pod)
            .filter_map(|cs| cs.state.as_ref()?.terminated.as_ref())
            .collect();
        // A non-zero exit is explained (crash_loop here, 137 by oom).
        if !terminated.iter().any(|t| t.exit_code != 0) {
            let summary = if reason.is_empty() {
                format!(
                    "Pod {name} failed, but no container records a failing exit and the pod gives no reason; missing: {missing}."
                )
            } else {
                format!(
                    "Pod {name} failed with reason {reason} ({smsg}); gpuscope has no rule that explains it further."
                )
            };
            let mut f = Finding::new(
                Kind::InsufficientEvidence,
                ctx.subject(pod, None),
                Confidence::Low,
                summary,
            )
            .fact(Fact::new("phase", phase))
            .fact(Fact::new("missing evidence", missing.clone()));
            if !reason.is_empty() {
                f = f.fact(Fact::new("reason", reason));
            }
            out.push(
                f.step(format!("kubectl describe pod {name} -n {ns}"))
                    .step(format!(
                        "kubectl logs {name} -n {ns} --all-containers --previous"
                    )),
            );
        }
    } else if phase == "Unknown" && pod.status.is_some() {
        out.push(
            Finding::new(
                Kind::InsufficientEvidence,
                ctx.subject(pod, None),
                Confidence::Low,
                format!(
                    "Pod {name} is in phase Unknown: its node{} stopped reporting to the API server; missing: {missing}.",
                    k8s::node_name(pod).map(|n| format!(" {n}")).unwrap_or_default()
                ),
            )
            .fact(Fact::new("phase", "Unknown"))
            .step(format!(
                "kubectl describe node {}   # Conditions: Ready=Unknown, and when the kubelet last posted status",
                k8s::node_name(pod).unwrap_or("NODE")
            )),
        );
    }
    out
}

/// A container in `ContainerCreating` for long, with no event saying why
/// (no mount or sandbox failure, no image pull in progress).
fn stuck_creating(
    ctx: &Context<'_>,
    pod: &Pod,
    cs: &ContainerStatus,
    events: &[&Event],
) -> Option<Finding> {
    let explained = events.iter().any(|e| {
        MOUNT_REASONS.iter().any(|r| reason_is(e, r))
            || reason_is(e, "Pulling")
            || reason_is(e, "Failed")
    });
    if explained {
        return None;
    }
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(k8s::ts)?;
    let age = ctx.now.since(since);
    if age.as_secs() < ctx.config.pod.creating_grace_secs {
        return None;
    }
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    Some(
        Finding::new(
            Kind::InsufficientEvidence,
            ctx.subject(pod, Some(&cs.name)),
            Confidence::Low,
            format!(
                "Container {} has been in ContainerCreating for {} and no event says why (a large image pull, a volume or the pod sandbox); missing: {}.",
                cs.name,
                human(age),
                missing_evidence(ctx)
            ),
        )
        .fact(Fact::at("waiting since", human(age), since))
        .step(format!("kubectl describe pod {name} -n {ns}   # Events: Pulling, FailedMount, FailedCreatePodSandBox"))
        .step(format!(
            "kubectl get events -n {ns} --field-selector involvedObject.name={name} -o json > events.json"
        )),
    )
}

/// The kinds of evidence recorded as missing, for people.
fn missing_evidence(ctx: &Context<'_>) -> String {
    let v: Vec<&str> = ["events", "logs", "agent", "node"]
        .into_iter()
        .filter(|w| ctx.evidence.lacks(w))
        .collect();
    if v.is_empty() {
        "nothing recorded as missing; the events may have expired".to_owned()
    } else {
        v.join(", ")
    }
}

// ---------------------------------------------------------------------
// Small shared helpers.

/// A container's waiting reason and message.
pub(crate) fn waiting(cs: &ContainerStatus) -> Option<(&str, &str)> {
    let w = cs.state.as_ref()?.waiting.as_ref()?;
    Some((
        w.reason.as_deref().unwrap_or(""),
        w.message.as_deref().unwrap_or(""),
    ))
}

/// The spec of a container (app or init) by name.
fn spec_container<'p>(pod: &'p Pod, name: &str) -> Option<&'p Container> {
    let s = pod.spec.as_ref()?;
    s.containers
        .iter()
        .chain(s.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// Events whose `fieldPath` names the container (`spec.containers{x}`).
fn container_events<'a>(events: &[&'a Event], container: &str) -> Vec<&'a Event> {
    let want = format!("{{{container}}}");
    events
        .iter()
        .copied()
        .filter(|e| {
            e.involved_object
                .field_path
                .as_deref()
                .is_some_and(|p| p.ends_with(&want))
        })
        .collect()
}

pub(crate) fn reason_is(e: &Event, reason: &str) -> bool {
    e.reason.as_deref() == Some(reason)
}

pub(crate) fn message(e: &Event) -> &str {
    e.message.as_deref().unwrap_or("")
}

/// How many times an event happened (`count`, or `series.count` for new
/// style events; at least 1).
pub(crate) fn event_count(e: &Event) -> u32 {
    e.count
        .or_else(|| e.series.as_ref().and_then(|s| s.count))
        .unwrap_or(1)
        .max(1) as u32
}

/// An event's message as a fact at its last time.
pub(crate) fn event_fact(name: &str, e: &Event) -> Fact {
    let value = message(e).to_owned();
    match k8s::event_last_time(e) {
        Some(t) => Fact::at(name, value, t),
        None => Fact::new(name, value),
    }
}

/// The text between `prefix` and the next `"`.
pub(crate) fn quoted_after(text: &str, prefix: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find(&prefix.to_ascii_lowercase())? + prefix.len();
    let rest = &text[at..];
    let rest = rest.strip_prefix('\\').unwrap_or(rest);
    Some(rest.split(['"', '\\']).next()?.to_owned())
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_owned()
}

/// A duration for people: `45s`, `12m`, `3h5m`, `2d4h`.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduling_messages_parse_into_counted_clauses() {
        let (total, r) = parse_scheduling_message(
            "0/5 nodes are available: 1 Insufficient cpu, 2 Insufficient memory, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.",
        );
        assert_eq!(total, Some(5));
        let got: Vec<(u32, ReasonClass)> = r.iter().map(|r| (r.nodes, r.class.clone())).collect();
        assert_eq!(
            got,
            vec![
                (1, ReasonClass::Resource("cpu".into())),
                (2, ReasonClass::Resource("memory".into())),
                (2, ReasonClass::Taint),
                (3, ReasonClass::NodeAffinity),
            ]
        );
    }

    #[test]
    fn unbound_claims_and_missing_claims_are_volume_reasons() {
        let (total, r) = parse_scheduling_message(
            "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
        );
        assert_eq!(total, Some(3));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].class, ReasonClass::Volume);
        let (_, r) = parse_scheduling_message("persistentvolumeclaim \"data\" not found");
        assert_eq!(r[0].class, ReasonClass::Volume);
        assert_eq!(
            quoted_after(
                "persistentvolumeclaim \"data\" not found",
                "persistentvolumeclaim \""
            ),
            Some("data".into())
        );
    }

    #[test]
    fn pull_errors_are_classified() {
        let c = |s: &str| classify_pull("ErrImagePull", s);
        assert_eq!(
            c(
                "failed to resolve reference \"docker.io/library/pytorch:9.9\": docker.io/library/pytorch:9.9: not found"
            ),
            PullCause::NotFound
        );
        assert_eq!(
            c(
                "pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"
            ),
            PullCause::NotFoundOrDenied
        );
        assert_eq!(
            c("unexpected status: 401 Unauthorized"),
            PullCause::Unauthorized
        );
        assert_eq!(
            c("toomanyrequests: You have reached your pull rate limit"),
            PullCause::RateLimited
        );
        assert_eq!(
            c("dial tcp: lookup registry.example.com on 10.96.0.10:53: no such host"),
            PullCause::Unreachable
        );
        assert_eq!(registry_of("nvcr.io/nvidia/pytorch:24.01-py3"), "nvcr.io");
        assert_eq!(registry_of("pytorch/pytorch:2.1"), "docker.io");
        assert_eq!(
            repository_of("nvcr.io/nvidia/pytorch:24.01-py3"),
            "nvcr.io/nvidia/pytorch"
        );
        assert_eq!(repository_of("localhost:5000/x"), "localhost:5000/x");
    }

    #[test]
    fn config_errors_name_the_object_and_key() {
        assert_eq!(
            missing_object("configmap \"model-config\" not found"),
            Some(("ConfigMap", "model-config".into(), None))
        );
        assert_eq!(
            missing_object("couldn't find key HF_TOKEN in Secret ml/hf-credentials"),
            Some(("Secret", "hf-credentials".into(), Some("HF_TOKEN".into())))
        );
    }
}
