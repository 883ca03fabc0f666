//! Real OOM kills in real cgroup v1 memory cgroups at kubelet-style paths,
//! seen by `gpuscope-agent watch`. Needs root and the v1 memory hierarchy
//! (fails under CI without them, skips loudly elsewhere).

use std::process::{Command, Stdio};
use std::time::Duration;

use gpuscope_tests::{
    Agent, CgroupGuard, Driver, V1_MEMORY, have_v1_memory, ids, is_kill_of, is_sample_of,
    kubelet_path, require,
};

const MEMHOG: &str = env!("CARGO_BIN_EXE_memhog");
const LIMIT: u64 = 64 << 20;

fn pid_of(stdout: &[u8]) -> u32 {
    String::from_utf8_lossy(stdout)
        .lines()
        .find_map(|l| l.strip_prefix("memhog pid="))
        .and_then(|p| p.trim().parse().ok())
        .expect("memhog printed its pid")
}

/// Waits until the agent is sampling `path`, so its notifier is set.
fn wait_sampled(agent: &mut Agent, path: &str) {
    assert!(
        agent
            .wait_for(Duration::from_secs(10), |v| is_sample_of(v, path))
            .is_some(),
        "agent never sampled {path}; last lines:\n{}",
        agent.tail()
    );
}

fn assert_kill(
    kill: &serde_json::Value,
    pod: &str,
    id: &str,
    path: &str,
    victim_pid: u32,
    limit: u64,
) {
    assert_eq!(kill["pod_uid"], pod, "{kill}");
    assert_eq!(kill["container_id"], id, "{kill}");
    assert_eq!(kill["cgroup_path"], path, "{kill}");
    assert_eq!(kill["constraint"], "memcg", "{kill}");
    assert_eq!(kill["victim"]["pid"], victim_pid, "{kill}");
    assert_eq!(kill["victim"]["comm"], "memhog", "{kill}");
    let anon = kill["victim"]["anon_rss_bytes"].as_u64().expect("anon rss");
    assert!(
        anon > limit / 2 && anon <= limit,
        "victim anon-rss {anon} should be most of the {limit} limit: {kill}"
    );
    assert_eq!(kill["kernel_limit_bytes"], limit, "{kill}");
}

fn main_process_killed(driver: Driver, tag: u32) {
    if !require("root and the cgroup v1 memory hierarchy", have_v1_memory()) {
        return;
    }
    let (pod, id) = ids(tag);
    let path = kubelet_path(driver, &pod, &id);
    let cg = CgroupGuard::create(V1_MEMORY.as_ref(), &path).expect("create cgroup");
    cg.set_v1_limit(LIMIT).expect("limit");
    let mut agent = Agent::watch(&["--interval", "200ms"]);
    wait_sampled(&mut agent, &path);

    let out = Command::new("sh")
        .args(["-c", &format!("{}; exec {MEMHOG} 256", cg.enter())])
        .stderr(Stdio::inherit())
        .output()
        .expect("run memhog");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "the kernel must SIGKILL memhog: {:?}",
        out.status
    );
    let victim = pid_of(&out.stdout);

    let kill = agent.expect_line(
        Duration::from_secs(5),
        &format!("no oom_kill event for {path}"),
        |v| is_kill_of(v, &path),
    );
    assert_kill(&kill, &pod, &id, &path, victim, LIMIT);
    assert_eq!(kill["oom_kill"], 1, "{kill}");
    assert_eq!(kill["limit_bytes"], LIMIT, "{kill}");
    assert_eq!(kill["cgroup_version"], "v1", "{kill}");
    // The eventfd and the kernel log race (both within a millisecond of
    // the kill); `v1_eventfd_alone_reports_the_kill` checks the eventfd.
    assert!(
        kill["detected_by"] == "notification" || kill["detected_by"] == "kernel_report",
        "{kill}"
    );
    let window = kill["window"].as_array().expect("window");
    assert!(
        !window.is_empty(),
        "recorder window must hold the samples before the kill"
    );

    // Exactly one event for one kill, from an agent that kept working
    // through the window and after it (a dead agent prints nothing).
    let more: Vec<_> = agent
        .drain_for(Duration::from_millis(1500))
        .into_iter()
        .filter(|v| is_kill_of(v, &path))
        .collect();
    assert!(more.is_empty(), "one kill, one event; also got {more:?}");
    let mut late_kills = Vec::new();
    agent.expect_line(
        Duration::from_secs(10),
        "no node sample after the window: the agent stopped working",
        |v| {
            if is_kill_of(v, &path) {
                late_kills.push(v.clone());
            }
            v["kind"] == "node_sample"
        },
    );
    assert!(
        late_kills.is_empty(),
        "one kill, one event; also got {late_kills:?}"
    );
    agent.assert_running();
}

#[test]
fn main_process_killed_cgroupfs_driver() {
    main_process_killed(Driver::Cgroupfs, 1);
}

#[test]
fn main_process_killed_systemd_driver() {
    main_process_killed(Driver::Systemd, 2);
}

/// Without the kernel log, and with a 10 s scan, only the v1 eventfd on
/// `memory.oom_control` can report the kill promptly.
#[test]
fn v1_eventfd_alone_reports_the_kill() {
    if !require("root and the cgroup v1 memory hierarchy", have_v1_memory()) {
        return;
    }
    let (pod, id) = ids(5);
    let path = kubelet_path(Driver::Cgroupfs, &pod, &id);
    let cg = CgroupGuard::create(V1_MEMORY.as_ref(), &path).expect("create cgroup");
    cg.set_v1_limit(LIMIT).expect("limit");
    let mut agent = Agent::watch(&["--interval", "10s", "--kmsg", "/nonexistent-kmsg"]);
    wait_sampled(&mut agent, &path);
    let out = Command::new("sh")
        .args(["-c", &format!("{}; exec {MEMHOG} 256", cg.enter())])
        .output()
        .expect("run memhog");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9)
    );
    // The deadline only guards against a hang; `detected_by` says which
    // path saw the kill (a scan would have said so, at its next round).
    let kill = agent.expect_line(
        Duration::from_secs(30),
        &format!("no oom_kill event for {path}"),
        |v| is_kill_of(v, &path),
    );
    assert_eq!(kill["detected_by"], "notification", "{kill}");
    assert_eq!(kill["oom_kill"], 1, "{kill}");
    assert_eq!(kill["pod_uid"], pod.as_str());
    assert_eq!(kill["limit_bytes"], LIMIT);
    assert!(kill["victim"].is_null(), "no kernel log, no victim: {kill}");
}

/// A worker process is killed while the container's main process lives
/// on: no container status change, but still an event.
#[test]
fn child_killed_while_main_process_lives() {
    if !require("root and the cgroup v1 memory hierarchy", have_v1_memory()) {
        return;
    }
    let (pod, id) = ids(3);
    let path = kubelet_path(Driver::Cgroupfs, &pod, &id);
    let cg = CgroupGuard::create(V1_MEMORY.as_ref(), &path).expect("create cgroup");
    cg.set_v1_limit(LIMIT).expect("limit");
    let mut agent = Agent::watch(&["--interval", "200ms"]);
    wait_sampled(&mut agent, &path);

    // The main process (sh) runs memhog as a child, then reports and lives.
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "{}; {MEMHOG} 256; echo child-status=$?; echo main-alive=$$",
                cg.enter()
            ),
        ])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "main process must survive: {stdout}");
    assert!(
        stdout.contains("child-status=137"),
        "child SIGKILLed: {stdout}"
    );
    let victim = pid_of(&out.stdout);
    let main_pid: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("main-alive="))
        .and_then(|p| p.parse().ok())
        .expect("main pid");
    assert_ne!(victim, main_pid);

    let kill = agent.expect_line(
        Duration::from_secs(5),
        &format!("no oom_kill event for {path}"),
        |v| is_kill_of(v, &path),
    );
    assert_kill(&kill, &pod, &id, &path, victim, LIMIT);
}

/// A container that appears and is killed between two scans of the agent
/// (never sampled while it lived): reported from the kernel's OOM report.
#[test]
fn container_created_and_killed_between_two_scans() {
    if !require("root and the cgroup v1 memory hierarchy", have_v1_memory()) {
        return;
    }
    let (pod, id) = ids(4);
    let path = kubelet_path(Driver::Systemd, &pod, &id);
    let limit = 16 << 20;
    // A scan finds every container, then samples each: a sample of this
    // one, there before the agent, says the first scan's search is over.
    let (early_pod, early_id) = ids(6);
    let early = kubelet_path(Driver::Systemd, &early_pod, &early_id);
    let _early = CgroupGuard::create(V1_MEMORY.as_ref(), &early).expect("create cgroup");
    // A slow scan (10 s): the next one comes long after the kill.
    let mut agent = Agent::watch(&["--interval", "10s"]);
    wait_sampled(&mut agent, &early);

    let cg = CgroupGuard::create(V1_MEMORY.as_ref(), &path).expect("create cgroup");
    cg.set_v1_limit(limit).expect("limit");
    let out = Command::new("sh")
        .args(["-c", &format!("{}; exec {MEMHOG} 64", cg.enter())])
        .output()
        .expect("run memhog");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "{:?}",
        out.status
    );
    let victim = pid_of(&out.stdout);

    let mut sampled = Vec::new();
    let kill = agent.expect_line(
        Duration::from_secs(30),
        &format!("no oom_kill event for {path}"),
        |v| {
            if is_sample_of(v, &path) {
                sampled.push(v.clone());
            }
            is_kill_of(v, &path)
        },
    );
    assert_eq!(kill["detected_by"], "kernel_report", "{kill}");
    assert!(
        sampled.is_empty(),
        "the agent scanned the container before reporting its kill, so it did \
         not live between two scans (the case under test): {sampled:?}"
    );
    assert_kill(&kill, &pod, &id, &path, victim, limit);
    assert_eq!(
        kill["oom_kill"], 1,
        "the cgroup still exists, so its counter was read: {kill}"
    );
}
