//! What the previous container's log tail says: NCCL errors and model or
//! data files that were not there. The CUDA out-of-memory patterns live
//! here too ([`cuda_oom`]), so that one list is matched everywhere, but
//! the finding for them is `oom`'s (`CudaOom`).
//!
//! The tail is read through [`relevant_log`], which adds the termination
//! message the kubelet kept in the exit's status: the same error is found
//! whether a log file was collected or not. When a tail names why the
//! container exited, the crash loop that follows is kept as the
//! consequence of this finding ([`crate::rules::chains`]).

use std::borrow::Cow;

use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, Pod, Volume};
use serde::{Deserialize, Serialize};

use crate::Context;
use crate::evidence::LogTail;
use crate::finding::{Confidence, Fact, Finding, Kind};
use crate::k8s;

/// Thresholds of this family.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// How many matching log lines to quote as evidence. Default 3: the
    /// first line names the cause, the next ones its context (rank,
    /// collective, path); more would bury the sentence.
    pub quoted_lines: usize,
    /// Log tails of exits older than this are history, seconds. Default
    /// 86400 (a day), as for the memory rules: an error before a restart
    /// last week, followed by a clean run, needs no action.
    pub recent_s: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            quoted_lines: 3,
            recent_s: 86_400,
        }
    }
}

/// Every finding of this family.
pub(crate) fn run(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for pod in ctx.subjects() {
        for c in &k8s::spec(pod).containers {
            let Some((log, exit)) = relevant_log(ctx, pod, &c.name) else {
                continue;
            };
            if stale(ctx, pod, &c.name, exit.as_ref()) {
                continue;
            }
            let source = source_fact(ctx, pod, &c.name);
            if let Some(f) = nccl_error(ctx, pod, &c.name, &log, exit.as_ref()) {
                out.push(f.fact_opt(source.clone()));
            }
            if let Some(f) = model_files_missing(ctx, pod, c, &log, exit.as_ref()) {
                out.push(f.fact_opt(source));
            }
        }
    }
    out
}

/// Whether the exit a log tail belongs to is history: older than
/// `recent_s`, unless the container is backing off from it right now (a
/// CrashLoopBackOff is current whatever the age of its last exit).
fn stale(ctx: &Context<'_>, pod: &Pod, container: &str, exit: Option<&Exit>) -> bool {
    let backing_off = k8s::container_statuses(pod)
        .find(|s| s.name == container)
        .and_then(|s| s.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
        == Some("CrashLoopBackOff");
    !backing_off
        && exit.and_then(|e| e.finished).is_some_and(|f| {
            ctx.now.since(f) > std::time::Duration::from_secs(ctx.config.logs.recent_s)
        })
}

/// How a container instance ended, for the evidence.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    /// Exit code.
    pub code: i32,
    /// The runtime's reason (`Error`, `OOMKilled`, `Completed`).
    pub reason: Option<String>,
    /// When it ended.
    pub finished: Option<gpuscope_model::Timestamp>,
}

impl Exit {
    /// `exit code 1 (Error) at TIME`.
    pub fn fact(&self) -> Fact {
        let v = format!(
            "{}{}",
            self.code,
            self.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        match self.finished {
            Some(t) => Fact::at("exit code", v, t),
            None => Fact::new("exit code", v),
        }
    }
}

/// The last words of the container's last end, as a log tail: the
/// previous instance's log when it restarted, the current one's when it
/// has terminated (restartPolicy Never) or is still running — and the
/// termination message the kubelet kept in that exit's status
/// (`terminated.message`). With `terminationMessagePolicy:
/// FallbackToLogsOnError` that message *is* the log's tail (its last 80
/// lines, at most 2 KiB) when the program failed, so a bundle or a cluster
/// whose logs are gone (the node replaced, the pod deleted) still shows
/// the error; with the default `File` policy it holds what the program
/// wrote to `/dev/termination-log`. Every rule that reads log tails reads
/// them through here, so the message counts as much as a log file.
///
/// Returns the tail and the matching exit (`None` for a running
/// instance).
pub(crate) fn relevant_log<'a>(
    ctx: &Context<'a>,
    pod: &'a Pod,
    container: &str,
) -> Option<(Cow<'a, LogTail>, Option<Exit>)> {
    let status = k8s::container_statuses(pod).find(|s| s.name == container);
    let exit_of = |t: &ContainerStateTerminated| Exit {
        code: t.exit_code,
        reason: t.reason.clone(),
        finished: t.finished_at.as_ref().map(k8s::ts),
    };
    let last = status
        .and_then(|s| s.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let current = status
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let with_message = |log: Option<&'a LogTail>, t: &'a ContainerStateTerminated| {
        let msg = t
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty());
        match (log, msg) {
            (Some(l), Some(m)) if !l.text.contains(m) => Some(Cow::Owned(LogTail {
                text: format!("{}\n{m}", l.text),
                ..l.clone()
            })),
            (Some(l), _) => Some(Cow::Borrowed(l)),
            (None, Some(m)) => Some(Cow::Owned(LogTail {
                namespace: k8s::namespace(pod).to_owned(),
                pod: k8s::name(pod).to_owned(),
                container: container.to_owned(),
                previous: current.is_none(),
                text: m.to_owned(),
            })),
            (None, None) => None,
        }
    };
    if let Some(t) = current
        && let Some(l) = with_message(
            ctx.log(pod, container, false)
                .or_else(|| ctx.log(pod, container, true)),
            t,
        )
    {
        return Some((l, Some(exit_of(t))));
    }
    if let Some(t) = last
        && let Some(l) = with_message(ctx.log(pod, container, true), t)
    {
        return Some((l, Some(exit_of(t))));
    }
    ctx.log(pod, container, false)
        .map(|l| (Cow::Borrowed(l), None))
}

/// Whether the last words of the container's last exit came from its
/// termination message alone (no log file in the evidence): said in the
/// evidence, so a reader knows where the quoted line was read.
pub(crate) fn from_termination_message(ctx: &Context<'_>, pod: &Pod, container: &str) -> bool {
    let status = k8s::container_statuses(pod).find(|s| s.name == container);
    let terminated = status.and_then(|s| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .or_else(|| s.last_state.as_ref()?.terminated.as_ref())
    });
    terminated.is_some_and(|t| t.message.as_deref().is_some_and(|m| !m.trim().is_empty()))
        && ctx.log(pod, container, true).is_none()
        && ctx.log(pod, container, false).is_none()
}

/// The fact that says a quoted line was read from the termination message.
pub(crate) fn source_fact(ctx: &Context<'_>, pod: &Pod, container: &str) -> Option<Fact> {
    from_termination_message(ctx, pod, container).then(|| {
        let policy = k8s::spec(pod)
            .containers
            .iter()
            .find(|c| c.name == container)
            .and_then(|c| c.termination_message_policy.clone())
            .unwrap_or_else(|| "File".to_owned());
        Fact::new(
            "read from",
            format!(
                "the container status's termination message (terminationMessagePolicy {policy}); no log file was collected"
            ),
        )
    })
}

/// A CUDA out-of-memory report found in a log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CudaOomLine {
    /// The line, trimmed.
    pub line: String,
    /// Which framework's wording matched.
    pub framework: &'static str,
    /// `Tried to allocate 2.00 GiB`, when the message says.
    pub tried: Option<String>,
    /// The GPU's total capacity, as printed.
    pub total: Option<String>,
    /// Free memory at the time, as printed.
    pub free: Option<String>,
}

/// The wordings of GPU memory exhaustion, with the framework that prints
/// each. Matched case-sensitively, as the frameworks print them.
const CUDA_OOM: [(&str, &str); 9] = [
    ("CUDA out of memory", "PyTorch"),
    ("CUDA error: out of memory", "CUDA"),
    ("cudaErrorMemoryAllocation", "CUDA"),
    ("Cuda failure 'out of memory'", "NCCL"),
    ("CUBLAS_STATUS_ALLOC_FAILED", "cuBLAS"),
    (
        "RESOURCE_EXHAUSTED: Out of memory while trying to allocate",
        "XLA/JAX",
    ),
    ("OOM when allocating tensor", "TensorFlow"),
    ("No available memory for the cache blocks", "vLLM"),
    ("CUDA_ERROR_OUT_OF_MEMORY", "CUDA"),
];

/// The last CUDA out-of-memory report in a log, if any.
pub(crate) fn cuda_oom(text: &str) -> Option<CudaOomLine> {
    let (line, framework) = text.lines().rev().find_map(|l| {
        CUDA_OOM
            .iter()
            .find(|(p, _)| l.contains(p))
            .map(|(_, f)| (l.trim(), *f))
    })?;
    Some(CudaOomLine {
        line: clip(line),
        framework,
        tried: after(line, "Tried to allocate ")
            .or_else(|| after(line, "trying to allocate "))
            .map(size_prefix),
        total: between(line, "; ", " total capacity")
            .map(str::to_owned)
            .or_else(|| after(line, "total capacity of ").map(size_prefix)),
        free: between(line, "; ", " free;")
            .map(str::to_owned)
            .or_else(|| between(line, " of which ", " is free").map(str::to_owned)),
    })
}

/// An NCCL failure found in a log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NcclLine {
    /// The lines that matched (first the most telling), trimmed.
    pub lines: Vec<String>,
    /// What happened, for the sentence.
    pub what: NcclWhat,
    /// Whether an error (not only a warning) was printed.
    pub strong: bool,
    /// The rank that printed it, when the line says (`[Rank 3]`, `[rank3]:`).
    pub rank: Option<String>,
    /// The collective that timed out: op, sequence number, timeout ms,
    /// ran for ms.
    pub timeout: Option<(String, String, String, String)>,
    /// The log mentions /dev/shm (NCCL's shared-memory transport).
    pub shm: bool,
}

/// The kind of NCCL failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NcclWhat {
    /// The watchdog's collective timeout.
    Timeout,
    /// A peer went away (`ncclRemoteError`, connection closed).
    PeerGone,
    /// `ncclSystemError` / unhandled system error (network, shm, sockets).
    System,
    /// `ncclInternalError`, unhandled CUDA error, other errors.
    Other,
    /// Only `NCCL WARN` lines.
    Warning,
}

const NCCL_STRONG: [&str; 11] = [
    "Watchdog caught collective operation timeout",
    "ncclSystemError",
    "ncclInternalError",
    "ncclRemoteError",
    "ncclUnhandledCudaError",
    "ncclInvalidUsage",
    "NCCL error in:",
    "NCCL communicator was aborted",
    "Connection closed by remote peer",
    "unhandled system error",
    "DistBackendError: NCCL",
];

/// The NCCL failure in a log, if any.
pub(crate) fn nccl(text: &str) -> Option<NcclLine> {
    let strong: Vec<&str> = text
        .lines()
        .filter(|l| NCCL_STRONG.iter().any(|p| l.contains(p)))
        .collect();
    let warns: Vec<&str> = text.lines().filter(|l| l.contains("NCCL WARN")).collect();
    if strong.is_empty() && warns.is_empty() {
        return None;
    }
    let all = || strong.iter().chain(warns.iter());
    let has = |p: &str| all().any(|l| l.contains(p));
    let what = if has("Watchdog caught collective operation timeout") || has("Timeout(ms)=") {
        NcclWhat::Timeout
    } else if has("ncclRemoteError") || has("Connection closed by remote peer") {
        NcclWhat::PeerGone
    } else if has("ncclSystemError") || has("unhandled system error") {
        NcclWhat::System
    } else if !strong.is_empty() {
        NcclWhat::Other
    } else {
        NcclWhat::Warning
    };
    let timeout = all().find_map(|l| {
        let op = between(l, "OpType=", ",")?;
        let seq = between(l, "SeqNum=", ",").unwrap_or("?");
        let ms = between(l, "Timeout(ms)=", ")").unwrap_or("?");
        let ran = between(l, "ran for ", " milliseconds").unwrap_or("?");
        Some((op.to_owned(), seq.to_owned(), ms.to_owned(), ran.to_owned()))
    });
    let rank = all().find_map(|l| {
        between(l, "[Rank ", "]")
            .or_else(|| between(l, "[rank", "]"))
            .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_owned)
    });
    // The most telling line first: the timeout or error over warnings.
    let mut lines: Vec<String> = Vec::new();
    let key = |l: &&str| {
        !(l.contains("Watchdog caught")
            || l.contains("ncclRemoteError")
            || l.contains("ncclSystemError"))
    };
    let mut s = strong.clone();
    s.sort_by_key(key);
    // One line per pattern: the watchdog repeats its message three times.
    let mut used: Vec<&str> = Vec::new();
    for l in s.iter().chain(warns.iter()) {
        let pat = NCCL_STRONG
            .iter()
            .find(|p| l.contains(*p))
            .copied()
            .unwrap_or("NCCL WARN");
        let c = clip(l.trim());
        if !used.contains(&pat) && !lines.contains(&c) {
            used.push(pat);
            lines.push(c);
        }
    }
    Some(NcclLine {
        lines,
        what,
        strong: !strong.is_empty(),
        rank,
        timeout,
        shm: text.lines().any(|l| {
            (l.contains("/dev/shm") || l.contains("posix_fallocate")) && l.contains("NCCL")
        }),
    })
}

/// A file the program could not find (or read) at load time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MissingFile {
    /// The line, trimmed.
    pub line: String,
    /// The path (or model directory) named, when the line names one.
    pub path: Option<String>,
    /// What the loader said was wrong.
    pub problem: &'static str,
}

/// The last missing-file report in a log, if any (the last is the one
/// that ended the program; earlier ones may have been handled).
pub(crate) fn missing_file(text: &str) -> Option<MissingFile> {
    for l in text.lines().rev() {
        let t = l.trim();
        let quoted = |after_: &str| -> Option<String> {
            let rest = after(t, after_)?;
            let q = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            rest[1..].split(q).next().map(str::to_owned)
        };
        if t.contains("No such file or directory") {
            // FileNotFoundError: [Errno 2] No such file or directory: '/x'
            let path = quoted("No such file or directory: ");
            if path.is_some() || t.contains("Error") {
                return Some(MissingFile {
                    line: clip(t),
                    path,
                    problem: "no such file or directory",
                });
            }
        }
        // transformers: `/models/x does not appear to have a file named
        // config.json`, or (offline, Hub unreachable) `... it looks like
        // /models/x is not the path to a directory containing a file named
        // config.json.`
        for marker in [
            " does not appear to have a file named ",
            " is not the path to a directory containing a file named ",
        ] {
            if let Some(path) = dir_and_file(t, marker) {
                return Some(MissingFile {
                    line: clip(t),
                    path: Some(path),
                    problem: "the model directory lacks a file the loader needs",
                });
            }
        }
        if t.contains("Can't load tokenizer for") || t.contains("Can't load the configuration of") {
            return Some(MissingFile {
                line: clip(t),
                path: quoted("Can't load tokenizer for ")
                    .or_else(|| quoted("Can't load the configuration of ")),
                problem: "the tokenizer or configuration files are not at that path",
            });
        }
        if t.contains("Incorrect path_or_model_id") {
            return Some(MissingFile {
                line: clip(t),
                path: quoted("Incorrect path_or_model_id: "),
                problem: "the model path does not exist",
            });
        }
        if t.contains("HFValidationError") && t.contains("Repo id must") {
            // A local path that does not exist is taken for a Hub repo id.
            let path = t
                .rsplit(": ")
                .next()
                .map(|s| s.trim_end_matches('.').trim_matches('\'').to_owned())
                .filter(|s| s.starts_with('/'));
            return Some(MissingFile {
                line: clip(t),
                path,
                problem: "the model path does not exist, so it was taken for a Hugging Face repo id",
            });
        }
        if t.contains("SafetensorError") && t.contains("deserializing header") {
            return Some(MissingFile {
                line: clip(t),
                path: None,
                problem: "a .safetensors file is truncated or is not the real file (a Git LFS pointer or a partial download)",
            });
        }
    }
    None
}

fn nccl_error(
    ctx: &Context<'_>,
    pod: &Pod,
    container: &str,
    log: &LogTail,
    exit: Option<&Exit>,
) -> Option<Finding> {
    let n = nccl(&log.text)?;
    // Warnings in a running container's log are not a failure.
    if !n.strong && exit.is_none() {
        return None;
    }
    // A CUDA out-of-memory is the cause when NCCL fails on it: the oom
    // family's finding says so.
    if cuda_oom(&log.text).is_some() {
        return None;
    }
    let rank = n
        .rank
        .as_deref()
        .map(|r| format!(" (rank {r})"))
        .unwrap_or_default();
    let summary = match (n.what, &n.timeout) {
        (NcclWhat::Timeout, Some((op, seq, ms, ran))) => format!(
            "NCCL collective {op} #{seq} in container {container}{rank} timed out after {ran} ms (timeout {ms} ms): another rank stopped participating (hung, crashed or was killed), and this one is most likely a victim, not the cause."
        ),
        (NcclWhat::Timeout, None) => format!(
            "An NCCL collective in container {container}{rank} timed out: another rank stopped participating, and this one is most likely a victim, not the cause."
        ),
        (NcclWhat::PeerGone, _) => format!(
            "NCCL in container {container}{rank} lost a peer (remote error / connection closed): another rank of the job died first."
        ),
        (NcclWhat::System, _) if n.shm => format!(
            "NCCL in container {container}{rank} failed with a system error on its shared-memory transport: /dev/shm is most likely too small."
        ),
        (NcclWhat::System, _) => format!(
            "NCCL in container {container}{rank} failed with a system error (network, sockets or shared memory between ranks)."
        ),
        (NcclWhat::Other, _) => format!("NCCL in container {container}{rank} reported an error."),
        (NcclWhat::Warning, _) => format!(
            "NCCL in container {container}{rank} printed warnings; they may or may not be why it stopped."
        ),
    };
    let mut conf = if n.strong {
        Confidence::High
    } else {
        Confidence::Low
    };
    if n.strong && exit.is_none() {
        // Still running: the error may have been recovered from.
        conf = Confidence::Medium;
    }
    let mut f = Finding::new(
        Kind::NcclError,
        ctx.subject(pod, Some(container)),
        conf,
        summary,
    );
    for l in n.lines.iter().take(ctx.config.logs.quoted_lines) {
        f = f.fact(Fact::new("log line", l.clone()));
    }
    if let Some((op, seq, ms, ran)) = &n.timeout {
        f = f.fact(Fact::new(
            "timed-out collective",
            format!("{op} SeqNum={seq}, timeout {ms} ms, ran for {ran} ms"),
        ));
    }
    if let Some(e) = exit {
        f = f.fact(e.fact());
    }
    let ns = k8s::namespace(pod);
    let name = k8s::name(pod);
    // Who else is in the job, and who failed first.
    let owner = k8s::owner(pod);
    let peers: Vec<&Pod> = ctx
        .pods()
        .iter()
        .filter(|p| owner.is_some() && k8s::owner(p) == owner && k8s::name(p) != name)
        .collect();
    if let Some(o) = &owner {
        f = f.fact(Fact::new(
            "other pods of the job in the evidence",
            if peers.is_empty() {
                format!("none ({o})")
            } else {
                peers
                    .iter()
                    .map(|p| {
                        let restarts: i32 =
                            k8s::container_statuses(p).map(|c| c.restart_count).sum();
                        format!("{} ({}, {restarts} restarts)", k8s::name(p), k8s::phase(p))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ));
    }
    match n.what {
        NcclWhat::System if n.shm || !has_shm_volume(pod) => {
            f = f.step(format!(
                "Give the pod a real /dev/shm (the runtime's default is 64 MiB): volumes: [{{name: dshm, emptyDir: {{medium: Memory, sizeLimit: 16Gi}}}}] and volumeMounts: [{{name: dshm, mountPath: /dev/shm}}] in {container}; it counts against the memory limit."
            ));
        }
        NcclWhat::Timeout | NcclWhat::PeerGone => {
            let sel = match owner.as_deref().and_then(|o| o.split_once('/')) {
                Some(("Job", n)) => format!(" -l batch.kubernetes.io/job-name={n}"),
                Some((_, n)) => format!(" -l training.kubeflow.org/job-name={n}"),
                None => String::new(),
            };
            f = f.step(format!(
                "Find the rank that failed first: `kubectl get pods -n {ns}{sel} -o wide` and `kubectl logs -n {ns} POD --previous` for each rank with restarts or an earlier exit (OOMKilled, an XID, a CUDA error)."
            ));
        }
        _ => {}
    }
    f = f.step(format!(
        "Re-run with NCCL_DEBUG=INFO (and NCCL_DEBUG_SUBSYS=INIT,NET) in {container}'s env to see which transport and peer failed; `kubectl logs -n {ns} {name} -c {container} --previous` for the full tail."
    ));
    if n.what == NcclWhat::Timeout {
        f = f.step("If a rank legitimately pauses longer (checkpointing, evaluation on rank 0), raise the timeout in init_process_group(timeout=timedelta(minutes=N)); keep TORCH_NCCL_ASYNC_ERROR_HANDLING=1 so that a real hang fails the job instead of holding the GPUs.");
    }
    if ctx.evidence.lacks("events") || ctx.evidence.lacks("pods") {
        f.confidence = f.confidence.min(Confidence::Medium);
    }
    Some(f)
}

fn has_shm_volume(pod: &Pod) -> bool {
    let spec = k8s::spec(pod);
    spec.containers.iter().any(|c| {
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path.trim_end_matches('/') == "/dev/shm")
    })
}

fn model_files_missing(
    ctx: &Context<'_>,
    pod: &Pod,
    c: &Container,
    log: &LogTail,
    exit: Option<&Exit>,
) -> Option<Finding> {
    let m = missing_file(&log.text)?;
    // A running, ready container got past whatever it could not find.
    let ready = k8s::container_statuses(pod)
        .find(|s| s.name == c.name)
        .is_some_and(|s| s.ready);
    if exit.is_none() && ready {
        return None;
    }
    let spec = k8s::spec(pod);
    let volumes = spec.volumes.clone().unwrap_or_default();
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    let container = c.name.as_str();
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    let mount = m.path.as_deref().and_then(|p| {
        mounts
            .iter()
            .filter(|mt| under(p, &mt.mount_path))
            .max_by_key(|mt| mt.mount_path.len())
    });
    let where_ = match (&m.path, mount) {
        (Some(p), Some(mt)) => {
            let v = volumes.iter().find(|v| v.name == mt.name);
            format!(
                "{p} is on volume {} ({}) mounted at {}",
                mt.name,
                v.map_or_else(|| "not declared in the pod".to_owned(), describe_volume),
                mt.mount_path
            )
        }
        (Some(p), None) => {
            format!("{p} is under no volume mount, so it would have to be in the image itself")
        }
        (None, _) => "the log names no path".to_owned(),
    };
    let summary = format!(
        "Container {container} could not load its model or data files ({}): {where_}.",
        m.problem
    );
    let conf = match (&m.path, exit) {
        (Some(_), Some(_)) => Confidence::High,
        (Some(_), None) | (None, Some(_)) => Confidence::Medium,
        (None, None) => Confidence::Low,
    };
    let mut f = Finding::new(
        Kind::ModelFilesMissing,
        ctx.subject(pod, Some(container)),
        conf,
        summary,
    )
    .fact(Fact::new("log line", m.line.clone()));
    if let Some(p) = &m.path {
        f = f.fact(Fact::new("missing path", p.clone()));
    }
    if let Some(e) = exit {
        f = f.fact(e.fact());
    }
    f = f.fact(Fact::new(
        "volume mounts",
        if mounts.is_empty() {
            "none".to_owned()
        } else {
            mounts
                .iter()
                .map(|mt| {
                    let v = volumes.iter().find(|v| v.name == mt.name);
                    format!(
                        "{} <- {} ({}){}{}",
                        mt.mount_path,
                        mt.name,
                        v.map_or_else(|| "undeclared".to_owned(), describe_volume),
                        mt.sub_path
                            .as_deref()
                            .map(|s| format!(", subPath {s}"))
                            .unwrap_or_default(),
                        if mt.read_only == Some(true) {
                            ", read-only"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
    ));
    let target = m.path.as_deref().unwrap_or("the model path");
    match mount.and_then(|mt| volumes.iter().find(|v| v.name == mt.name)) {
        Some(v) if v.persistent_volume_claim.is_some() => {
            let claim = v
                .persistent_volume_claim
                .as_ref()
                .map(|p| p.claim_name.clone())
                .unwrap_or_default();
            f = f.step(format!(
                "Check what the claim {claim} holds: `kubectl debug -n {ns} {name} -it --image=busybox --target={container} -- ls -la {}` (or mount the claim in a throw-away pod); the download may have gone to another directory or another claim.",
                parent(target)
            ));
        }
        Some(v) if v.empty_dir.is_some() => {
            f = f.step(format!(
                "An emptyDir starts empty on every new pod: fill it before {container} starts (an init container that downloads the model into it), or use a PersistentVolumeClaim that already holds it."
            ));
        }
        Some(v) if v.host_path.is_some() => {
            f = f.step(format!(
                "A hostPath is the node's own directory: check the file exists on node {} (`ls -la {}` there), or pin the pod to nodes that have it.",
                k8s::node_name(pod).unwrap_or("NODE"),
                v.host_path.as_ref().map(|h| h.path.as_str()).unwrap_or("")
            ));
        }
        Some(_) => {
            f = f.step(format!(
                "Check the volume's contents: `kubectl debug -n {ns} {name} -it --image=busybox --target={container} -- ls -la {}`.",
                parent(target)
            ));
        }
        None if m.path.is_some() => {
            f = f.step(format!(
                "Mount the volume that holds the model at {} (spec.containers[{container}].volumeMounts), or fix the path in the command/args/env; the image does not contain it.",
                parent(target)
            ));
        }
        None => {}
    }
    f = f.step(format!(
        "`kubectl logs -n {ns} {name} -c {container} --previous` shows the full traceback, and the path the program was given."
    ));
    if m.problem.contains("safetensors") {
        f = f.step("Compare the file's size with the model card's; a file of ~130 bytes is a Git LFS pointer (clone with git lfs, or use huggingface-cli download).");
    }
    Some(f)
}

/// `emptyDir (medium Memory)`, `PVC models`, `hostPath /data`, …
pub(crate) fn describe_volume(v: &Volume) -> String {
    if let Some(p) = &v.persistent_volume_claim {
        format!("PVC {}", p.claim_name)
    } else if let Some(e) = &v.empty_dir {
        match e.medium.as_deref() {
            Some(m) if !m.is_empty() => format!("emptyDir, medium {m}"),
            _ => "emptyDir".to_owned(),
        }
    } else if let Some(h) = &v.host_path {
        format!("hostPath {}", h.path)
    } else if let Some(c) = &v.config_map {
        format!("configMap {}", c.name)
    } else if let Some(s) = &v.secret {
        format!("secret {}", s.secret_name.as_deref().unwrap_or(""))
    } else if let Some(n) = &v.nfs {
        format!("nfs {}:{}", n.server, n.path)
    } else if let Some(c) = &v.csi {
        format!("csi {}", c.driver)
    } else if v.projected.is_some() {
        "projected".to_owned()
    } else if v.ephemeral.is_some() {
        "generic ephemeral volume".to_owned()
    } else {
        "other".to_owned()
    }
}

fn under(path: &str, mount: &str) -> bool {
    let m = mount.trim_end_matches('/');
    m.is_empty() || path == m || path.starts_with(&format!("{m}/"))
}

fn parent(p: &str) -> &str {
    match p.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((d, f)) if f.contains('.') => d,
        _ => p,
    }
}

/// The text after `pat`, if present.
fn after<'t>(s: &'t str, pat: &str) -> Option<&'t str> {
    s.find(pat).map(|i| &s[i + pat.len()..])
}

/// The text between `a` and the next `b` after it.
fn between<'t>(s: &'t str, a: &str, b: &str) -> Option<&'t str> {
    let rest = after(s, a)?;
    // `; 79.15 GiB total capacity`: take the last `a` before `b`.
    let end = rest.find(b)?;
    let seg = &rest[..end];
    Some(seg.rsplit(a).next().unwrap_or(seg).trim())
}

/// `2.00 GiB (GPU 0; ...` -> `2.00 GiB`.
fn size_prefix(s: &str) -> String {
    s.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(['.', ',', ';'])
        .to_owned()
}

/// A log line, cut to a readable length.
fn clip(s: &str) -> String {
    const MAX: usize = 400;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `DIR/FILE` from a line `... DIR<marker>FILE ...` (the word before the
/// marker, the word after it).
fn dir_and_file(line: &str, marker: &str) -> Option<String> {
    let i = line.find(marker)?;
    let dir = line[..i]
        .rsplit(' ')
        .next()
        .unwrap_or("")
        .trim_matches('\'');
    let file = line[i + marker.len()..]
        .split(|c: char| c.is_whitespace() || c == ',')
        .next()
        .unwrap_or("")
        .trim_end_matches('.');
    Some(format!("{}/{file}", dir.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_cuda_oom_old_and_new_wording() {
        let old = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity; 76.20 GiB already allocated; 1.02 GiB free; 77.50 GiB reserved in total by PyTorch)";
        let m = cuda_oom(old).expect("match");
        assert_eq!(m.framework, "PyTorch");
        assert_eq!(m.tried.as_deref(), Some("2.00 GiB"));
        assert_eq!(m.total.as_deref(), Some("79.15 GiB"));
        assert_eq!(m.free.as_deref(), Some("1.02 GiB"));
        let new = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB. GPU 0 has a total capacity of 79.10 GiB of which 412.00 MiB is free. Process 3345 has 78.68 GiB memory in use.";
        let m = cuda_oom(new).expect("match");
        assert_eq!(m.tried.as_deref(), Some("1.50 GiB"));
        assert_eq!(m.total.as_deref(), Some("79.10 GiB"));
        assert_eq!(m.free.as_deref(), Some("412.00 MiB"));
    }

    #[test]
    fn other_frameworks_cuda_oom() {
        for (l, fw) in [
            ("RuntimeError: CUDA error: out of memory", "CUDA"),
            (
                "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4294967296 bytes.",
                "XLA/JAX",
            ),
            (
                "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with shape[8192,8192]",
                "TensorFlow",
            ),
            ("cudaErrorMemoryAllocation: out of memory", "CUDA"),
        ] {
            assert_eq!(cuda_oom(l).map(|m| m.framework), Some(fw), "{l}");
        }
        assert!(cuda_oom("INFO epoch 3 loss 1.2\nmemory ok").is_none());
    }

    #[test]
    fn nccl_watchdog_timeout_is_parsed() {
        let t = "[rank3]:[E1126 09:44:22.123 ProcessGroupNCCL.cpp:616] [Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=48213, OpType=ALLREDUCE, NumelIn=262144, NumelOut=262144, Timeout(ms)=600000) ran for 600023 milliseconds before timing out.";
        let n = nccl(t).expect("match");
        assert_eq!(n.what, NcclWhat::Timeout);
        assert!(n.strong);
        assert_eq!(n.rank.as_deref(), Some("3"));
        assert_eq!(
            n.timeout,
            Some((
                "ALLREDUCE".into(),
                "48213".into(),
                "600000".into(),
                "600023".into()
            ))
        );
    }

    #[test]
    fn nccl_warnings_alone_are_weak() {
        let n = nccl("node-1:88:120 [0] NCCL INFO Channel 00\nnode-1:88:120 [0] NCCL WARN NET/IB : Got async event").expect("match");
        assert!(!n.strong);
        assert_eq!(n.what, NcclWhat::Warning);
        let n = nccl("torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1970, unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.20.5\nncclSystemError: System call (e.g. socket, malloc) or external library call failed or device error.").expect("match");
        assert_eq!(n.what, NcclWhat::System);
    }

    #[test]
    fn missing_files_name_their_path() {
        let m = missing_file(
            "FileNotFoundError: [Errno 2] No such file or directory: '/models/llama/config.json'",
        )
        .expect("m");
        assert_eq!(m.path.as_deref(), Some("/models/llama/config.json"));
        let m = missing_file("OSError: /models/llama does not appear to have a file named config.json. Checkout 'https://huggingface.co//models/llama/tree/None' for available files.").expect("m");
        assert_eq!(m.path.as_deref(), Some("/models/llama/config.json"));
        let m = missing_file("OSError: Can't load tokenizer for '/models/llama'. If you were trying to load it from 'https://huggingface.co/models', make sure you don't have a local directory with the same name.").expect("m");
        assert_eq!(m.path.as_deref(), Some("/models/llama"));
        let m = missing_file("OSError: We couldn't connect to 'https://huggingface.co' to load this file, couldn't find it in the cached files and it looks like /models/mistral-7b is not the path to a directory containing a file named config.json.").expect("m");
        assert_eq!(m.path.as_deref(), Some("/models/mistral-7b/config.json"));
        // The last report is the fatal one.
        let m = missing_file("FileNotFoundError: [Errno 2] No such file or directory: '/a'\nhandled\nFileNotFoundError: [Errno 2] No such file or directory: '/b'").expect("m");
        assert_eq!(m.path.as_deref(), Some("/b"));
        assert!(
            missing_file("bash: /opt/conda/etc/profile.d/conda.sh: No such file or directory")
                .is_none()
        );
        let m = missing_file(
            "safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge",
        )
        .expect("m");
        assert!(m.path.is_none());
        assert!(missing_file("loading weights from /models/llama").is_none());
    }

    #[test]
    fn paths_under_mounts() {
        assert!(under("/models/llama/config.json", "/models"));
        assert!(under("/models/llama/config.json", "/models/"));
        assert!(!under("/models2/x", "/models"));
        assert_eq!(parent("/models/llama/config.json"), "/models/llama");
        assert_eq!(parent("/models/llama"), "/models/llama");
    }
}
