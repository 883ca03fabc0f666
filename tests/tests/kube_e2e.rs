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

#[test]
fn explain_names_the_oom_killed_pod_by_namespace_and_name() {
    if !require("root and the cgroup v1 memory hierarchy", have_v1_memory()) {
        return;
    }
    let (uid, id) = ids(41);
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
    let aggregator_args = [
        "--listen",
        &listen,
        "--kube-server",
        &kube.url(),
        "--record-diagnosis-after",
        "1s",
    ];
    let aggregator = spawn("gpuscope-aggregator", &aggregator_args, |c| {
        c.arg("--data-dir")
            .arg(&data)
            .stderr(std::fs::File::create(&aggregator_log).expect("aggregator log"));
    });
    let state = dir.path().join("state");
    let nvml = fake_nvml_lib();
    let sock = dir.path().join("no-kubelet.sock");
    let _agent = spawn(
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
        "the aggregator to know the pod's container",
        || explain(port, "json").0.then_some(()),
    );
    // Give the agent a few samples of the container before the kill.
    std::thread::sleep(Duration::from_millis(800));

    // Watching from before the kill (no past incidents: only the watch
    // stream can deliver it): the incident as it is stored, named.
    let watcher = Command::new(workspace_bin("gpuscope"))
        .args(["--aggregator", &format!("http://127.0.0.1:{port}")])
        .args(["-o", "json", "events", "-w", "--since", "0s"])
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
    std::thread::sleep(Duration::from_secs(1));

    let out = Command::new("sh")
        .args(["-c", &format!("{}; exec {MEMHOG} 256", cg.enter())])
        .stdout(Stdio::null())
        .output()
        .expect("run memhog");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "the kernel must SIGKILL memhog"
    );
    kube.apply(pod(&uid, restarted_after_oom(&id)));

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
    wait_until(Duration::from_secs(20), "a recorded diagnosis", || {
        let log = std::fs::read_to_string(&aggregator_log).ok()?;
        log.contains("Recorded a diagnosis.").then_some(())
    });
    assert!(
        kube.delete("Pod", Some("ml"), "trainer-0"),
        "delete the pod"
    );
    drop(aggregator);
    let _aggregator = spawn("gpuscope-aggregator", &aggregator_args, |c| {
        c.arg("--data-dir").arg(&data);
    });
    let explained = wait_until(Duration::from_secs(20), "explain after the restart", || {
        let (ok, out) = explain(port, "json");
        ok.then(|| serde_json::from_str::<Value>(&out).expect("explain -o json"))
    });
    let recorded = &explained["recorded"][0];
    assert_eq!(recorded["pod_namespace"], "ml", "{explained}");
    assert_eq!(recorded["pod_name"], "trainer-0", "{explained}");
    assert_eq!(recorded["pod_uid"], uid.as_str(), "{explained}");
    let oom = recorded["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["kind"] == "oom_killed"))
        .unwrap_or_else(|| panic!("the recorded oom_killed finding: {explained}"));
    assert_eq!(oom["subject"]["container"], "trainer", "{oom}");
    assert_eq!(oom["subject"]["owner"], "Job/train", "{oom}");
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
    drop(cg);
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
