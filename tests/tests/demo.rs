//! `gpuscope demo` end to end: aggregator, agent, a real OOM kill in a
//! scratch cgroup, and the explanation printed. Needs root and a memory
//! cgroup controller (fails under CI without them, skips loudly elsewhere).

use std::process::Command;

use gpuscope_tests::{have_v1_memory, require, workspace_bin};

#[test]
fn demo_explains_a_real_oom_kill() {
    if !require("root and the cgroup v1 memory hierarchy", have_v1_memory()) {
        return;
    }
    let out = Command::new(workspace_bin("gpuscope"))
        .arg("demo")
        .output()
        .expect("run gpuscope demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "workload ended: killed by SIGKILL (exit 137)",
        "was OOM-killed at its 128 MiB memory limit: the kernel chose process python3",
        "[high] oom_killed",
        "[high] gpu_unschedulable",
        "[simulated]",
        "scratch cgroup and",
    ] {
        assert!(
            stdout.contains(want),
            "demo output lacks {want:?}:\n{stdout}"
        );
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("memory limit") && l.ends_with("128 MiB")),
        "explain names the 128 MiB limit:\n{stdout}"
    );
    // The scratch cgroup is gone.
    let pod_line = stdout
        .lines()
        .find(|l| l.starts_with("=== scratch container cgroup "))
        .expect("scratch line");
    let path = pod_line
        .trim_start_matches("=== scratch container cgroup ")
        .split(' ')
        .next()
        .expect("path");
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/memory")
            .join(path.trim_start_matches('/'))
            .exists(),
        "{path} left behind"
    );
}
