//! The agent binary against fake cgroup v2 trees and missing or broken
//! sources: the v2 notification path, and bad input that must degrade one
//! source with a message naming what failed while the rest keeps working.

use std::process::Command;
use std::time::Duration;

use gpuscope_tests::{
    Agent, Driver, V2Tree, agent_bin, ids, is_kill_of, is_sample_of, kubelet_path, memory_events,
};

#[test]
fn v2_counter_bump_is_one_event_by_notification() {
    let tree = V2Tree::new();
    let (pod, id) = ids(10);
    let path = kubelet_path(Driver::Systemd, &pod, &id);
    let dir = tree.add(&path, 2);
    let root = tree.root().to_str().expect("utf-8");
    // A 10 s interval: only the notifier can report within the test.
    let mut agent = Agent::watch(&[
        "--cgroup-root",
        root,
        "--kmsg",
        "/nonexistent",
        "--interval",
        "10s",
    ]);
    assert!(
        agent
            .wait_for(Duration::from_secs(5), |v| is_sample_of(v, &path))
            .is_some(),
        "{}",
        agent.tail()
    );
    // Let the notifier registration follow the first sample.
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(dir.join("memory.events"), memory_events(3)).expect("write");
    let kill = agent.expect_line(Duration::from_secs(3), "no event", |v| is_kill_of(v, &path));
    assert_eq!(kill["detected_by"], "notification", "{kill}");
    assert_eq!(
        kill["oom_kill"], 3,
        "baseline 2 was not a kill; 3 is: {kill}"
    );
    assert_eq!(kill["pod_uid"], pod.as_str());
    assert_eq!(kill["container_id"], id.as_str());
    assert_eq!(kill["cgroup_version"], "v2");
    assert_eq!(kill["limit_bytes"], 33_554_432);
    assert_eq!(kill["constraint"], "unknown", "no kernel report was read");
    assert!(kill["victim"].is_null());
    assert_eq!(kill["window"][0]["memory_some_total_us"], 6251);
    let more: Vec<_> = agent
        .drain_for(Duration::from_millis(500))
        .into_iter()
        .filter(|v| is_kill_of(v, &path))
        .collect();
    assert!(more.is_empty(), "{more:?}");
    // The quiet window meant something only if the agent still watches:
    // the next bump is the next event.
    std::fs::write(dir.join("memory.events"), memory_events(4)).expect("write");
    let next = agent.expect_line(
        Duration::from_secs(5),
        "no event for a later kill: the agent stopped watching",
        |v| is_kill_of(v, &path),
    );
    assert_eq!(next["oom_kill"], 4, "{next}");
    agent.assert_running();
}

#[test]
fn malformed_cgroup_file_degrades_the_source_and_names_the_file() {
    let tree = V2Tree::new();
    let (pod, id) = ids(11);
    let good = kubelet_path(Driver::Cgroupfs, &pod, &id);
    let bad = kubelet_path(Driver::Cgroupfs, &pod, &"b".repeat(64));
    tree.add(&good, 0);
    let bad_dir = tree.add(&bad, 0);
    std::fs::write(bad_dir.join("memory.events"), "oom_kill lots\n").expect("write");
    let out = Command::new(agent_bin())
        .args(["snapshot", "-o", "json", "--cgroup-root"])
        .arg(tree.root())
        .output()
        .expect("snapshot");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let containers = snap["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "the good container is still read");
    assert_eq!(containers[0]["cgroup_path"], good.as_str());
    let cgroup = snap["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["source"] == "cgroup")
        .expect("cgroup source")
        .clone();
    assert_eq!(cgroup["state"], "degraded", "{cgroup}");
    let reason = cgroup["reason"].as_str().expect("reason");
    assert!(
        reason.contains(&format!("{}/memory.events", bad_dir.display())),
        "{reason}"
    );
}

#[test]
fn missing_sources_are_reported_and_the_agent_keeps_running() {
    let mut agent = Agent::watch(&[
        "--cgroup-root",
        "/nonexistent-root",
        "--kmsg",
        "/nonexistent-kmsg",
    ]);
    let mut kmsg = None;
    let mut cgroup = None;
    agent.wait_for(Duration::from_secs(5), |v| {
        if v["kind"] == "source" && v["source"] == "kmsg" {
            kmsg = Some(v.clone());
        }
        if v["kind"] == "source" && v["source"] == "cgroup" {
            cgroup = Some(v.clone());
        }
        kmsg.is_some() && cgroup.is_some()
    });
    let kmsg = kmsg.unwrap_or_else(|| panic!("no kmsg status: {}", agent.tail()));
    assert_eq!(kmsg["state"], "unavailable");
    assert!(
        kmsg["reason"]
            .as_str()
            .is_some_and(|r| r.contains("/nonexistent-kmsg")),
        "{kmsg}"
    );
    let cgroup = cgroup.unwrap_or_else(|| panic!("no cgroup status: {}", agent.tail()));
    assert_eq!(cgroup["state"], "unavailable");
    assert!(
        cgroup["reason"]
            .as_str()
            .is_some_and(|r| r.contains("/nonexistent-root")),
        "{cgroup}"
    );
    // The node source still works, round after round.
    for _ in 0..2 {
        assert!(
            agent
                .wait_for(Duration::from_secs(3), |v| v["kind"] == "node_sample")
                .is_some(),
            "node samples stopped: {}",
            agent.tail()
        );
    }
}
