//! Helpers of gpuscope's end-to-end tests: real memory cgroups at
//! kubelet-style paths, the agent as a child process, and the rule for
//! tests that need root or kernel features (fail in CI, skip loudly
//! elsewhere).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The v1 memory hierarchy of this machine.
pub const V1_MEMORY: &str = "/sys/fs/cgroup/memory";

/// Returns `true` when the test may run. When it cannot, fails under CI
/// (`CI` set) and prints a loud skip notice otherwise.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "this test needs {what}, which this CI machine lacks"
    );
    eprintln!("SKIPPED: this test needs {what} (it fails instead of skipping when CI is set)");
    false
}

/// Whether `GPUSCOPE_UPDATE_SNAPSHOTS` asks the snapshot tests to rewrite
/// their snapshots instead of comparing with them. Fails under CI (`CI`
/// set): there a rewritten snapshot would make the test pass unchecked.
pub fn updating_snapshots() -> bool {
    let update = std::env::var_os("GPUSCOPE_UPDATE_SNAPSHOTS").is_some();
    assert!(
        !(update && std::env::var_os("CI").is_some()),
        "GPUSCOPE_UPDATE_SNAPSHOTS rewrites snapshots instead of checking them; refused under CI"
    );
    update
}

/// Whether this process can create v1 memory cgroups.
pub fn have_v1_memory() -> bool {
    Path::new(V1_MEMORY).join("memory.limit_in_bytes").exists() && nix_is_root()
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A random-enough pod UID and 64-hex container ID for one test.
pub fn ids(tag: u32) -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{:016x}{:08x}{:08x}", nanos as u64, std::process::id(), tag);
    let pod = format!(
        "{}-{}-{}-{}-{}",
        &seed[0..8],
        &seed[8..12],
        &seed[12..16],
        &seed[16..20],
        &format!("{seed}{seed}")[20..32]
    );
    let id = format!("{seed}{seed}")[..64].to_owned();
    (pod, id)
}

/// The kubelet's two naming schemes.
#[derive(Debug, Clone, Copy)]
pub enum Driver {
    /// `kubepods/burstable/pod<uid>/<id>`.
    Cgroupfs,
    /// `kubepods.slice/.../kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope`.
    Systemd,
}

/// The cgroup path (relative, leading `/`) of a burstable container.
pub fn kubelet_path(driver: Driver, pod_uid: &str, id: &str) -> String {
    match driver {
        Driver::Cgroupfs => format!("/kubepods/burstable/pod{pod_uid}/{id}"),
        Driver::Systemd => format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
            pod_uid.replace('-', "_")
        ),
    }
}

/// A memory cgroup made for a test, removed (children first, only what
/// this guard created) when dropped.
pub struct CgroupGuard {
    created: Vec<PathBuf>,
    /// Absolute directory of the leaf cgroup.
    pub dir: PathBuf,
}

impl CgroupGuard {
    /// Creates `rel` (and missing parents) under `root`.
    pub fn create(root: &Path, rel: &str) -> std::io::Result<Self> {
        let mut created = Vec::new();
        let mut dir = root.to_path_buf();
        for part in rel.trim_start_matches('/').split('/') {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir)?;
                created.push(dir.clone());
            }
        }
        Ok(Self { created, dir })
    }

    /// Writes a v1 memory limit.
    pub fn set_v1_limit(&self, bytes: u64) -> std::io::Result<()> {
        std::fs::write(self.dir.join("memory.limit_in_bytes"), bytes.to_string())
    }

    /// The `sh -c` prefix that moves the shell into this cgroup.
    pub fn enter(&self) -> String {
        format!("echo $$ > {}/cgroup.procs", self.dir.display())
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            // A cgroup with live tasks cannot be removed: kill them first.
            if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(dir).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The agent binary, built beside the test executable.
pub fn agent_bin() -> PathBuf {
    workspace_bin("gpuscope-agent")
}

/// `gpuscope-agent snapshot -o json` with extra args and environment.
pub fn snapshot(extra: &[&str], envs: &[(&str, &str)]) -> serde_json::Value {
    let out = Command::new(agent_bin())
        .args(["snapshot", "-o", "json"])
        .args(extra)
        .envs(envs.iter().copied())
        .output()
        .expect("run snapshot");
    assert!(
        out.status.success(),
        "snapshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("snapshot prints JSON")
}

/// A child process killed and reaped when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A binary (or library) of the workspace built beside the test executable.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (cargo build --workspace, or cargo test --workspace)",
        bin.display()
    );
    bin
}

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The fake `libnvidia-ml.so` built beside the test executable.
pub fn fake_nvml_lib() -> PathBuf {
    workspace_bin("libgpuscope_fake_nvml.so")
}

/// The source status named `source` in a snapshot or a list of lines.
pub fn source_of<'a>(
    sources: &'a serde_json::Value,
    source: &str,
) -> Option<&'a serde_json::Value> {
    sources.as_array()?.iter().find(|s| s["source"] == source)
}

/// A running `gpuscope-agent watch -o jsonl`, killed when dropped.
pub struct Agent {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far (for failure messages).
    pub seen: Vec<String>,
}

impl Agent {
    /// Starts `gpuscope-agent watch -o jsonl --samples` with extra args.
    pub fn watch(extra: &[&str]) -> Self {
        Self::watch_with(extra, &[])
    }

    /// Like [`Agent::watch`], with extra environment variables.
    pub fn watch_with(extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(agent_bin())
            .args(["watch", "-o", "jsonl", "--samples", "--log", "info"])
            .args(extra)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn agent");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to `timeout` for a JSON line for which `pred` holds.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            let value: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("agent printed a line that is not JSON ({e}): {line}"));
            self.seen.push(line);
            if pred(&value) {
                return Some(value);
            }
        }
        None
    }

    /// Like [`Agent::wait_for`], but a line that never comes fails the
    /// test, naming `what` and showing the last lines seen.
    pub fn expect_line(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.wait_for(timeout, pred)
            .unwrap_or_else(|| panic!("{what} within {timeout:?}; last lines:\n{}", self.tail()))
    }

    /// Collects every line for `d`.
    pub fn drain_for(&mut self, d: Duration) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        self.wait_for(d, |v| {
            out.push(v.clone());
            false
        });
        out
    }

    /// Fails the test if the agent process has exited: after a quiet
    /// window, "no second event" means something only from a live agent.
    pub fn assert_running(&mut self) {
        match self.child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => panic!("the agent exited ({status}); last lines:\n{}", self.tail()),
            Err(e) => panic!("cannot check on the agent process: {e}"),
        }
    }

    /// The last lines seen, for assertion messages.
    pub fn tail(&self) -> String {
        let n = self.seen.len().saturating_sub(20);
        self.seen[n..].join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a JSON line is an `oom_kill` event for `cgroup_path`.
pub fn is_kill_of(v: &serde_json::Value, cgroup_path: &str) -> bool {
    v["kind"] == "oom_kill" && v["cgroup_path"] == cgroup_path
}

/// Whether a JSON line is a sample of `cgroup_path`.
pub fn is_sample_of(v: &serde_json::Value, cgroup_path: &str) -> bool {
    v["kind"] == "container_sample" && v["cgroup_path"] == cgroup_path
}

/// A fake cgroup v2 root in a tempdir, with kubelet containers whose files
/// look like the kernel's (contents from the 6.1 VM capture).
pub struct V2Tree {
    dir: tempfile::TempDir,
}

impl V2Tree {
    /// An empty v2 root with the memory controller.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .expect("write");
        Self { dir }
    }

    /// The root, for `--cgroup-root`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a container at `rel` with `oom_kill` kills counted so far.
    pub fn add(&self, rel: &str, oom_kill: u64) -> PathBuf {
        let d = self.dir.path().join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(&d).expect("mkdir");
        let files = [
            ("memory.current", "1048576\n".to_owned()),
            ("memory.max", "33554432\n".to_owned()),
            ("memory.peak", "2097152\n".to_owned()),
            ("memory.stat", "anon 786432\nfile 262144\nshmem 0\n".to_owned()),
            ("memory.events", memory_events(oom_kill)),
            (
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=6251\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=6251\n".to_owned(),
            ),
            (
                "cpu.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=10\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n".to_owned(),
            ),
            (
                "io.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n".to_owned(),
            ),
            ("cpu.stat", "usage_usec 1000\nuser_usec 800\nsystem_usec 200\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n".to_owned()),
        ];
        for (name, text) in files {
            std::fs::write(d.join(name), text).expect("write");
        }
        d
    }
}

impl Default for V2Tree {
    fn default() -> Self {
        Self::new()
    }
}

/// A v2 `memory.events` with `oom_kill` kills.
pub fn memory_events(oom_kill: u64) -> String {
    format!(
        "low 0\nhigh 0\nmax {}\noom {oom_kill}\noom_kill {oom_kill}\noom_group_kill 0\n",
        oom_kill * 35
    )
}
pub mod fake_kube;
pub mod fake_pod_resources;
pub mod kubectl;
pub mod otlp;
