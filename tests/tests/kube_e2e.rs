//! The live path end to end: a fake Kubernetes API server (speaking the
//! real list/watch protocol) read by the aggregator's real kube-rs
//! watchers, a real agent with the fake NVML streaming to it, a real OOM
//! kill in a real memory cgroup at the kubelet's path for the pod, and
//! `gpuscope explain POD -n NS` naming the pod by namespace and name.
//! Needs root and the cgroup v1 memory hierarchy (fails under CI without
//! them, skips loudly elsewhere).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gpuscope_tests::fake_kube::FakeKube;
use gpuscope_tests::{
    CgroupGuard, Driver, KillOnDrop, V1_MEMORY, fake_nvml_lib, free_port, have_v1_memory, ids,
    kubelet_path, require, workspace_bin,
};
use serde_json::{Value, json};

const MEMHOG: &str = env!("CARGO_BIN_EXE_memhog");
const LIMIT: u64 = 64 << 20;
const NODE: &str = "gpu-node-e2e";

fn pod(uid: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "trainer-0",
            "namespace": "ml",
            "uid": uid,
            "creationTimestamp": "2026-11-26T10:00:00Z",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "0b7c9a52-1f3e-4f7a-9d0e-6a1b2c3d4e5f", "controller": true}]
        },
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "OnFailure",
            "containers": [{
                "name": "trainer",
                "image": "ghcr.io/example/trainer:1.4",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}
            }]
        },
        "status": status
    })
}

fn running(id: &str) -> Value {
    json!({
        "phase": "Running",
        "containerStatuses": [{
            "name": "trainer", "image": "ghcr.io/example/trainer:1.4", "imageID": "",
            "containerID": format!("containerd://{id}"),
            "ready": true, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-11-26T10:00:05Z"}}
        }]
    })
}

/// What the kubelet reports after the runtime saw the container OOM-killed
/// and restarted it.
fn restarted_after_oom(id: &str) -> Value {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    json!({
        "phase": "Running",
        "containerStatuses": [{
            "name": "trainer", "image": "ghcr.io/example/trainer:1.4", "imageID": "",
            "containerID": format!("containerd://{}", "f".repeat(64)),
            "ready": true, "started": true, "restartCount": 1,
            "state": {"running": {"startedAt": now}},
            "lastState": {"terminated": {
                "exitCode": 137, "reason": "OOMKilled",
                "startedAt": "2026-11-26T10:00:05Z", "finishedAt": now,
                "containerID": format!("containerd://{id}")
            }}
        }]
    })
}

/// What the kubelet reports when a `restartPolicy: Never` pod's only
/// container was OOM-killed: the pod failed.
fn failed_after_oom(id: &str) -> Value {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    json!({
        "phase": "Failed",
        "containerStatuses": [{
            "name": "trainer", "image": "ghcr.io/example/trainer:1.4", "imageID": "",
            "containerID": format!("containerd://{id}"),
            "ready": false, "started": false, "restartCount": 0,
            "state": {"terminated": {
                "exitCode": 137, "reason": "OOMKilled",
                "startedAt": "2026-11-26T10:00:05Z", "finishedAt": now,
                "containerID": format!("containerd://{id}")
            }}
        }]
    })
}

fn spawn(bin: &str, args: &[&str], extra: impl FnOnce(&mut Command)) -> KillOnDrop {
    let mut c = Command::new(workspace_bin(bin));
    c.args(args).stdout(Stdio::null());
    extra(&mut c);
    KillOnDrop(c.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}")))
}

/// Runs `gpuscope --aggregator ... ARGS`: (success, stdout and stderr).
fn gpuscope(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(workspace_bin("gpuscope"))
        .args(["--aggregator", &format!("http://127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("run gpuscope");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn explain(port: u16, format: &str) -> (bool, String) {
    gpuscope(port, &["-o", format, "explain", "trainer-0", "-n", "ml"])
}

/// The live path, started: a fake API server holding node `NODE` and pod
/// `ml/trainer-0` (its container running in a real memory cgroup at its
/// kubelet path), the aggregator watching it (its log in a file), and an
/// agent with the fake NVML streaming to it.
struct Live {
    uid: String,
    id: String,
    cg: CgroupGuard,
    kube: FakeKube,
    port: u16,
    aggregator_args: Vec<String>,
    aggregator_log: std::path::PathBuf,
    data: std::path::PathBuf,
    aggregator: KillOnDrop,
    _agent: KillOnDrop,
    _dir: tempfile::TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// One live path at a time: each agent sees every kubelet cgroup of the
/// host, the other test's too.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Live {
    /// Starts it with the pod's IDs from `seed`, recording diagnoses
    /// `record_after` an incident; `None` without root and cgroup v1.
    fn start(seed: u32, record_after: &str) -> Option<Live> {
        if !require("root and the cgroup v1 memory hierarchy", have_v1_memory()) {
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (uid, id) = ids(seed);
        let path = kubelet_path(Driver::Cgroupfs, &uid, &id);
        let cg = CgroupGuard::create(V1_MEMORY.as_ref(), &path).expect("create cgroup");
        cg.set_v1_limit(LIMIT).expect("limit");

        let kube = FakeKube::start();
        kube.apply(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
            "status": {"capacity": {"memory": "64Gi"}, "allocatable": {"memory": "62Gi"}}}),
        );
        kube.apply(pod(&uid, running(&id)));

        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let data = dir.path().join("data");
        let aggregator_log = dir.path().join("aggregator.log");
        let aggregator_args: Vec<String> = [
            "--listen",
            &listen,
            "--kube-server",
            &kube.url(),
            "--auth",
            "none",
            "--record-diagnosis-after",
            record_after,
        ]
        .map(str::to_owned)
        .to_vec();
        let aggregator = spawn_aggregator(&aggregator_args, &data, Some(&aggregator_log));
        let state = dir.path().join("state");
        let nvml = fake_nvml_lib();
        let sock = dir.path().join("no-kubelet.sock");
        let agent = spawn(
            "gpuscope-agent",
            &[
                "run",
                "--aggregator",
                &format!("http://{listen}"),
                "--node-name",
                NODE,
                "--interval",
                "200ms",
                "--report-interval",
                "200ms",
            ],
            |c| {
                c.arg("--state-dir")
                    .arg(&state)
                    .arg("--nvml-lib")
                    .arg(&nvml)
                    .arg("--pod-resources-socket")
                    .arg(&sock);
            },
        );
        wait_until(
            Duration::from_secs(20),
            "the aggregator to know the pod",
            || explain(port, "json").0.then_some(()),
        );
        // The agent has sampled the container (and so watches it for a
        // kill) once the aggregator lists it from the agent's report.
        wait_until(
            Duration::from_secs(20),
            "the agent's report of the pod's container",
            || {
                let (ok, out) = gpuscope(port, &["-o", "json", "pods"]);
                (ok && out.contains(&id)).then_some(())
            },
        );
        Some(Live {
            uid,
            id,
            cg,
            kube,
            port,
            aggregator_args,
            aggregator_log,
            data,
            aggregator,
            _agent: agent,
            _dir: dir,
            _serial: serial,
        })
    }

    /// Runs memhog in the container's cgroup until the kernel kills it.
    fn oom_kill(&self) {
        let out = Command::new("sh")
            .args(["-c", &format!("{}; exec {MEMHOG} 256", self.cg.enter())])
            .stdout(Stdio::null())
            .output()
            .expect("run memhog");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "the kernel must SIGKILL memhog"
        );
    }

    /// Waits for the aggregator to log that it recorded a diagnosis.
    fn wait_recorded(&self) {
        wait_until(Duration::from_secs(20), "a recorded diagnosis", || {
            let log = std::fs::read_to_string(&self.aggregator_log).ok()?;
            log.contains("Recorded a diagnosis.").then_some(())
        });
    }

    /// Kills the aggregator (SIGKILL) and starts it again on its data.
    fn restart_aggregator(&mut self) {
        let _ = self.aggregator.0.kill();
        let _ = self.aggregator.0.wait();
        self.aggregator = spawn_aggregator(&self.aggregator_args, &self.data, None);
    }

    /// `explain trainer-0 -n ml -o json` once it answers.
    fn explained(&self) -> Value {
        wait_until(Duration::from_secs(20), "explain to answer", || {
            let (ok, out) = explain(self.port, "json");
            ok.then(|| serde_json::from_str::<Value>(&out).expect("explain -o json"))
        })
    }
}

fn spawn_aggregator(
    args: &[String],
    data: &std::path::Path,
    log: Option<&std::path::Path>,
) -> KillOnDrop {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn("gpuscope-aggregator", &args, |c| {
        c.arg("--data-dir").arg(data);
        if let Some(log) = log {
            c.stderr(std::fs::File::create(log).expect("aggregator log"));
        }
    })
}

/// The recorded diagnosis of trainer-0 in an explain answer, with its
/// `oom_killed` finding.
fn recorded_oom(explained: &Value, uid: &str) -> Value {
    let recorded = &explained["recorded"][0];
    assert_eq!(recorded["pod_namespace"], "ml", "{explained}");
    assert_eq!(recorded["pod_name"], "trainer-0", "{explained}");
    assert_eq!(recorded["pod_uid"], uid, "{explained}");
    let oom = recorded["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["kind"] == "oom_killed"))
        .unwrap_or_else(|| panic!("the recorded oom_killed finding: {explained}"))
        .clone();
    assert_eq!(oom["subject"]["container"], "trainer", "{oom}");
    assert_eq!(oom["subject"]["owner"], "Job/train", "{oom}");
    oom
}

#[test]
fn explain_names_the_oom_killed_pod_by_namespace_and_name() {
    let Some(mut live) = Live::start(41, "1s") else {
        return;
    };
    let (port, uid, id) = (live.port, live.uid.clone(), live.id.clone());
    // Watching from before the kill: the incident as it is stored, named.
    // `events -w` subscribes, then lists the past incidents: here the
    // agent's report that its PodResources socket is missing, stored
    // first. Its first line says it is subscribed, and a kill after that
    // line reaches it through the watch stream alone.
    wait_until(
        Duration::from_secs(20),
        "the agent's first incident (a source status)",
        || {
            let (ok, out) = gpuscope(port, &["-o", "json", "events", "--since", "1h"]);
            (ok && out.contains(r#""kind":"source""#)).then_some(())
        },
    );
    let watcher = Command::new(workspace_bin("gpuscope"))
        .args(["--aggregator", &format!("http://127.0.0.1:{port}")])
        .args(["-o", "json", "events", "-w", "--since", "1h"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gpuscope events -w");
    let mut watcher = KillOnDrop(watcher);
    let watched = std::io::BufReader::new(watcher.0.stdout.take().expect("piped stdout"));
    let (lines, watched_lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(watched).map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let first = watched_lines
        .recv_timeout(Duration::from_secs(20))
        .expect("`events -w` printed the past incidents it listed after subscribing");
    assert!(
        !first.contains("\"oom_kill\""),
        "no kill before the kill: {first}"
    );

    live.oom_kill();
    live.kube.apply(pod(&uid, restarted_after_oom(&id)));

    let findings = wait_until(Duration::from_secs(20), "an oom_killed finding", || {
        let (ok, out) = explain(port, "json");
        let v: Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
        let f = v["findings"]
            .as_array()?
            .iter()
            .find(|f| f["kind"] == "oom_killed")?
            .clone();
        Some(f)
    });
    assert_eq!(findings["subject"]["namespace"], "ml", "{findings}");
    assert_eq!(findings["subject"]["pod"], "trainer-0", "{findings}");
    assert_eq!(findings["subject"]["container"], "trainer", "{findings}");
    assert_eq!(findings["subject"]["owner"], "Job/train", "{findings}");
    assert_eq!(findings["confidence"], "high", "{findings}");
    assert!(
        findings["summary"]
            .as_str()
            .unwrap_or("")
            .contains("memhog"),
        "the victim process is named: {findings}"
    );

    let (ok, table) = explain(port, "table");
    assert!(ok, "{table}");
    assert!(table.contains("ml/trainer-0"), "{table}");
    assert!(table.contains("oom_killed"), "{table}");

    // `gpuscope pods`, `oom` and `events` name the container by the pod
    // object too; the JSON keeps the UID and container ID beside them.
    let (ok, pods) = gpuscope(port, &["pods"]);
    assert!(ok && pods.contains("ml/trainer-0/trainer"), "{pods}");
    let (ok, oom) = gpuscope(port, &["oom"]);
    assert!(ok && oom.contains("ml/trainer-0/trainer"), "{oom}");
    assert!(oom.contains("memhog"), "{oom}");
    // --pod by name: the pod object's UID; another name: nothing.
    let (ok, mine) = gpuscope(port, &["oom", "--pod", "trainer-0", "-n", "ml"]);
    assert!(ok && mine.contains("ml/trainer-0/trainer"), "{mine}");
    let (ok, other) = gpuscope(port, &["oom", "--pod", "ml/trainer-1"]);
    assert!(ok && !other.contains("memhog"), "{other}");
    let (ok, events) = gpuscope(port, &["events"]);
    assert!(
        ok && events.contains("oom_kill  ml/trainer-0/trainer"),
        "{events}"
    );
    let (ok, json) = gpuscope(port, &["-o", "json", "oom"]);
    assert!(ok, "{json}");
    let v: Value = serde_json::from_str(&json).expect("oom -o json");
    let kill = &v["incidents"][0];
    assert_eq!(kill["pod_namespace"], "ml", "{kill}");
    assert_eq!(kill["pod_name"], "trainer-0", "{kill}");
    assert_eq!(kill["container_name"], "trainer", "{kill}");
    assert_eq!(kill["pod_uid"], uid.as_str(), "{kill}");
    assert_eq!(kill["container_id"], id.as_str(), "{kill}");

    let line = std::iter::from_fn(|| watched_lines.recv_timeout(Duration::from_secs(20)).ok())
        .find(|l| l.contains("\"oom_kill\""))
        .expect("`events -w` printed the kill within 20 s");
    let v: Value = serde_json::from_str(&line).expect("events -w -o json line");
    assert_eq!(v["pod_name"], "trainer-0", "{line}");
    assert_eq!(v["container_name"], "trainer", "{line}");
    drop(watcher);

    // The diagnosis recorded a second after the kill outlives the pod and
    // the aggregator: the Job's pod is deleted, the aggregator killed and
    // restarted, and `explain trainer-0 -n ml` still tells the story.
    live.wait_recorded();
    assert!(
        live.kube.delete("Pod", Some("ml"), "trainer-0"),
        "delete the pod"
    );
    live.restart_aggregator();
    recorded_oom(&live.explained(), &uid);
    let (ok, table) = explain(port, "table");
    assert!(
        ok && table.contains("recorded") && table.contains("oom_killed"),
        "{table}"
    );
    let (ok, oom) = gpuscope(port, &["oom"]);
    assert!(
        ok && oom.contains("ml/trainer-0/trainer"),
        "named from the record: {oom}"
    );
    let (ok, oom) = gpuscope(port, &["oom", "--pod", "ml/trainer-0"]);
    assert!(
        ok && oom.contains("ml/trainer-0/trainer"),
        "found by name through the record: {oom}"
    );
}

#[test]
fn a_pod_deleted_after_it_failed_is_explained_from_its_last_state() {
    // A Job's pod (restartPolicy Never) fails with its container
    // OOM-killed and is deleted at once (ttlSecondsAfterFinished: 0),
    // before the diagnosis due 5 s after the kill: `explain` now and the
    // diagnosis recorded then use the pod as its deletion showed it.
    let Some(mut live) = Live::start(42, "5s") else {
        return;
    };
    live.oom_kill();
    live.kube.apply(pod(&live.uid, failed_after_oom(&live.id)));
    assert!(
        live.kube.delete("Pod", Some("ml"), "trainer-0"),
        "delete the pod"
    );
    live.wait_recorded();
    let explained = live.explained();
    assert!(
        explained["recorded"].is_null(),
        "the last state answers; no recorded diagnosis beside it: {explained}"
    );
    let gaps = explained["gaps"].to_string();
    assert!(
        gaps.contains("was deleted from Kubernetes"),
        "explain says the pod is gone: {explained}"
    );
    let now = explained["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["kind"] == "oom_killed"))
        .unwrap_or_else(|| panic!("an oom_killed finding now: {explained}"));
    assert_eq!(now["subject"]["container"], "trainer", "{now}");
    assert_eq!(now["subject"]["owner"], "Job/train", "{now}");
    assert!(
        now["evidence"].to_string().contains("137 (OOMKilled)"),
        "the kubelet's last word: {now}"
    );

    // The restarted aggregator has forgotten the deletion, not the record.
    live.restart_aggregator();
    let explained = live.explained();
    let oom = recorded_oom(&explained, &live.uid);
    assert!(
        oom["evidence"].to_string().contains("137 (OOMKilled)"),
        "the record was made from the last state: {oom}"
    );
}

fn wait_until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
