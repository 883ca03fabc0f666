//! `gpuscope demo`: the whole path on this machine with no setup.
//!
//! Starts an aggregator (temporary data directory) and an agent (the real
//! NVML when the driver is installed, else gpuscope's fake, labelled
//! simulated), makes a scratch kubelet-style container cgroup with a
//! 128 MiB limit, runs a Python workload there that grows until the kernel
//! OOM-kills it, and prints what `gpuscope explain` and `gpuscope gpus`
//! say. Then, since this machine has no Kubernetes, it explains an
//! embedded offline bundle (a pending 2-GPU pod, as kubectl printed it) to
//! show the Kubernetes side of the diagnosis. Everything it created is
//! removed at the end, also on error.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gpuscope_proto::v1 as pb;

use crate::Format;
use crate::cmd::{self, Client};

const LIMIT: u64 = 128 << 20;

/// `tests/bundles/gpu-health-unschedulable-taint/bundle/`, embedded.
const EXAMPLE_BUNDLE: [(&str, &str); 4] = [
    (
        "pod.json",
        include_str!("../../tests/bundles/gpu-health-unschedulable-taint/bundle/pod.json"),
    ),
    (
        "events.json",
        include_str!("../../tests/bundles/gpu-health-unschedulable-taint/bundle/events.json"),
    ),
    (
        "nodes.json",
        include_str!("../../tests/bundles/gpu-health-unschedulable-taint/bundle/nodes.json"),
    ),
    (
        "pods.json",
        include_str!("../../tests/bundles/gpu-health-unschedulable-taint/bundle/pods.json"),
    ),
];

/// Kills and reaps a child process when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The scratch container cgroup(s): the memory cgroup, and on a hybrid
/// host its twin in the unified hierarchy (for per-container pressure).
struct Scratch {
    created: Vec<PathBuf>,
    memory: PathBuf,
    unified: Option<PathBuf>,
    pod_uid: String,
    cgroup_path: String,
}

impl Scratch {
    /// Makes the cgroup, or says why it cannot.
    fn create(tag: u32) -> Result<Self, String> {
        let root = Path::new("/sys/fs/cgroup");
        let is_root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        });
        if !is_root {
            return Err("not running as root, so no scratch memory cgroup can be made".into());
        }
        let pod_uid = format!("de30de30-0000-4000-8000-{:012x}", tag);
        let id = format!("{:064x}", 0xde30_0000_u64 + u64::from(tag));
        let v1 = root.join("memory/memory.limit_in_bytes").exists();
        let v2 = std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"));
        let (base, rel, limit_file) = if v1 {
            (
                root.join("memory"),
                format!("kubepods/burstable/pod{pod_uid}/{id}"),
                "memory.limit_in_bytes",
            )
        } else if v2 {
            (
                root.to_path_buf(),
                format!(
                    "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
                    pod_uid.replace('-', "_")
                ),
                "memory.max",
            )
        } else {
            return Err("no memory cgroup controller under /sys/fs/cgroup".into());
        };
        let mut s = Self {
            created: Vec::new(),
            memory: PathBuf::new(),
            unified: None,
            pod_uid,
            cgroup_path: format!("/{rel}"),
        };
        s.memory = s
            .mkdirs(&base, &rel, v2)
            .map_err(|e| format!("creating {}: {e}", base.join(&rel).display()))?;
        std::fs::write(s.memory.join(limit_file), LIMIT.to_string())
            .map_err(|e| format!("setting the limit of {}: {e}", s.memory.display()))?;
        let unified = root.join("unified");
        if v1 && unified.join("cgroup.procs").exists() {
            s.unified = s.mkdirs(&unified, &rel, false).ok();
        }
        Ok(s)
    }

    fn mkdirs(&mut self, base: &Path, rel: &str, enable_memory: bool) -> std::io::Result<PathBuf> {
        let mut dir = base.to_path_buf();
        for part in rel.split('/') {
            if enable_memory {
                // cgroup v2: each level must hand the controller down.
                let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+memory");
            }
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir)?;
                self.created.push(dir.clone());
            }
        }
        Ok(dir)
    }

    /// `sh -c` text that moves the shell into the cgroup(s).
    fn enter(&self) -> String {
        let mut s = format!("echo $$ > {}/cgroup.procs", self.memory.display());
        if let Some(u) = &self.unified {
            s.push_str(&format!(" && echo $$ > {}/cgroup.procs", u.display()));
        }
        s
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            let deadline = Instant::now() + Duration::from_secs(3);
            while std::fs::remove_dir(dir).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A binary built beside this one.
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating gpuscope")?;
    let dir = exe.parent().context("gpuscope has no directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{name} is not next to gpuscope in {}: build the workspace (cargo build --release --workspace)",
            dir.display()
        );
    }
    Ok(path)
}

/// Waits until `f` yields, polling every 100 ms, up to `within`.
async fn wait_for<T, F>(within: Duration, what: &str, mut f: impl FnMut() -> F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const WORKLOAD: &str = r#"
import sys, time
print("workload: a training step that keeps 4 MiB more every 50 ms", flush=True)
held = []
while True:
    held.append(b"\x01" * (4 << 20))
    time.sleep(0.05)
"#;

/// Runs the demo.
pub async fn run() -> anyhow::Result<()> {
    let aggregator_bin = sibling("gpuscope-aggregator")?;
    let agent_bin = sibling("gpuscope-agent")?;
    let tmp = TempDir(std::env::temp_dir().join(format!("gpuscope-demo-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0).with_context(|| format!("creating {}", tmp.0.display()))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");

    println!(
        "=== starting gpuscope-aggregator on {url} (data in {})",
        tmp.0.display()
    );
    let _aggregator = Proc(
        Command::new(&aggregator_bin)
            .args([
                "--no-kube",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(tmp.0.join("data"))
            .args(["--log", "error"])
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", aggregator_bin.display()))?,
    );
    let mut client: Client = wait_for(Duration::from_secs(10), "the aggregator", || async {
        cmd::connect(&cmd::Target::Url(url.clone()), &Default::default(), true)
            .await
            .ok()
    })
    .await?;

    let real_nvml = [
        "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
        "/usr/lib64/libnvidia-ml.so.1",
        "/usr/lib/libnvidia-ml.so.1",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    let mut agent = Command::new(&agent_bin);
    agent
        .args([
            "run",
            "--aggregator",
            &url,
            "--interval",
            "250ms",
            "--report-interval",
            "250ms",
            "--log",
            "error",
        ])
        .arg("--state-dir")
        .arg(tmp.0.join("state"));
    if real_nvml {
        println!("=== NVML: the system's libnvidia-ml.so.1");
    } else {
        let fake = sibling("libgpuscope_fake_nvml.so")?;
        println!(
            "=== NVML: no NVIDIA driver here; gpuscope's fake NVML stands in (one idle H100): GPU readings are [simulated]"
        );
        agent.arg("--nvml-lib").arg(fake);
    }
    let scratch = Scratch::create(std::process::id());
    if let Ok(s) = &scratch {
        println!(
            "=== scratch container cgroup {} (limit {} MiB)",
            s.cgroup_path,
            LIMIT >> 20
        );
    }
    println!("=== starting gpuscope-agent run");
    let _agent = Proc(
        agent
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", agent_bin.display()))?,
    );
    wait_for(Duration::from_secs(15), "the agent's first report", || {
        let mut c = client.clone();
        async move {
            let nodes = c
                .list_nodes(pb::ListNodesRequest {})
                .await
                .ok()?
                .into_inner()
                .nodes;
            nodes
                .iter()
                .any(|n| n.connected && n.latest.is_some())
                .then_some(())
        }
    })
    .await?;

    match &scratch {
        Ok(s) => {
            let path = s.cgroup_path.clone();
            wait_for(
                Duration::from_secs(15),
                "the agent to sample the scratch container",
                || {
                    let (mut c, path) = (client.clone(), path.clone());
                    async move {
                        let list = c
                            .list_containers(pb::ListContainersRequest {
                                ..Default::default()
                            })
                            .await
                            .ok()?
                            .into_inner();
                        list.containers
                            .iter()
                            .any(|c| {
                                c.latest
                                    .as_ref()
                                    .and_then(|l| l.container.as_ref())
                                    .is_some_and(|r| r.cgroup_path == path)
                            })
                            .then_some(())
                    }
                },
            )
            .await?;
            // Let the recorder see the container quiet for a moment.
            tokio::time::sleep(Duration::from_millis(800)).await;
            println!("=== running the workload in pod {}", s.pod_uid);
            let status = Command::new("sh")
                .args([
                    "-c",
                    &format!("{} && exec python3 -c '{WORKLOAD}'", s.enter()),
                ])
                .status()
                .context("running python3")?;
            println!(
                "=== workload ended: {}",
                match std::os::unix::process::ExitStatusExt::signal(&status) {
                    Some(9) => "killed by SIGKILL (exit 137)".to_owned(),
                    _ => format!("{status}"),
                }
            );
            let pod = s.pod_uid.clone();
            wait_for(Duration::from_secs(15), "the OOM incident", || {
                let (mut c, pod) = (client.clone(), pod.clone());
                async move {
                    let list = c
                        .list_incidents(pb::ListIncidentsRequest {
                            filter: Some(pb::IncidentFilter {
                                node_name: String::new(),
                                pod_uid: pod,
                                kinds: vec![pb::IncidentKind::OomKill as i32],
                                ..Default::default()
                            }),
                            since_unix_nanos: 0,
                            until_unix_nanos: 0,
                            limit: 1,
                        })
                        .await
                        .ok()?
                        .into_inner();
                    (!list.incidents.is_empty()).then_some(())
                }
            })
            .await?;
            // Let the agent sample the container after the kill, so
            // explain can tell whether it lived on.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            println!("\n=== gpuscope explain {}\n", s.pod_uid);
            cmd::explain(&mut client, &s.pod_uid, None, Format::Table).await?;
        }
        Err(why) => println!("=== no OOM kill shown: {why}"),
    }
    println!("\n=== gpuscope gpus\n");
    cmd::gpus(&mut client, None, Format::Table).await?;
    let bundle = tmp.0.join("bundle");
    std::fs::create_dir_all(&bundle)?;
    for (name, text) in EXAMPLE_BUNDLE {
        std::fs::write(bundle.join(name), text)?;
    }
    println!(
        "\n=== gpuscope explain --bundle (an embedded example, kubectl output of a pending 2-GPU pod in another cluster)\n"
    );
    cmd::explain_bundle(
        &bundle,
        None,
        None,
        &gpuscope_diagnose::Config::default(),
        Format::Table,
    )?;
    println!(
        "\n=== done; the aggregator, the agent, the scratch cgroup and {} are removed",
        tmp.0.display()
    );
    Ok(())
}
