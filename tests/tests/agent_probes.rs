//! The agent's probes, what the kubelet reads (`run --health-listen`),
//! through the real binary over HTTP: live once it collects; ready only
//! while the stream to the aggregator is open (not before the aggregator
//! starts, again after it starts, not after it stops); and never ready
//! without a cgroup tree, with the reason in the body.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gpuscope_tests::{V2Tree, free_port, workspace_bin};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(cgroup_root: &Path, state: &Path, aggregator: u16, health: u16) -> KillOnDrop {
    KillOnDrop(
        Command::new(workspace_bin("gpuscope-agent"))
            .args([
                "run",
                "--aggregator",
                &format!("http://127.0.0.1:{aggregator}"),
            ])
            .args(["--health-listen", &format!("127.0.0.1:{health}")])
            .arg("--state-dir")
            .arg(state)
            .arg("--cgroup-root")
            .arg(cgroup_root)
            .args([
                "--no-gpu",
                "--kmsg",
                "/nonexistent-kmsg",
                "--interval",
                "200ms",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn aggregator(port: u16, data: &Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(workspace_bin("gpuscope-aggregator"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--no-kube"])
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `GET path` on the probe port: (status code, body as JSON, or as a
/// string when it is not JSON); `None` while the port is not listening.
fn get(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1)?;
    let body = body.trim();
    let json = serde_json::from_str(body).unwrap_or_else(|_| serde_json::Value::from(body));
    Some((code, json))
}

/// Waits until `path` answers `code`; returns the body. Fails after 20 s
/// with the last answer.
fn until(port: u16, path: &str, code: u16) -> serde_json::Value {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(20) {
        last = get(port, path);
        if let Some((c, body)) = &last
            && *c == code
        {
            return body.clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{path} never answered {code}; last: {last:?}");
}

#[test]
fn ready_follows_the_stream_and_live_follows_collection() {
    let dir = tempfile::tempdir().unwrap();
    let tree = V2Tree::new();
    tree.add("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1111_2222.slice/cri-containerd-abc.scope", 0);
    let (agg_port, health) = (free_port(), free_port());
    let _agent = agent(tree.root(), &dir.path().join("state"), agg_port, health);

    // Collecting, no aggregator yet: live, not ready, and it says why.
    let live = until(health, "/livez", 200);
    assert_eq!(live["live"], true, "{live}");
    let body = until(health, "/readyz", 503);
    assert_eq!(body["collecting"], true, "{body}");
    assert_eq!(body["aggregator_connected"], false, "{body}");
    assert_eq!(body["cgroup"], "ok", "{body}");

    // The aggregator starts: ready once the stream is open.
    let mut agg = aggregator(agg_port, &dir.path().join("data"));
    let body = until(health, "/readyz", 200);
    assert_eq!(body["aggregator_connected"], true, "{body}");

    // It goes away: not ready again, still live (collection goes on).
    let _ = agg.0.kill();
    let _ = agg.0.wait();
    let body = until(health, "/readyz", 503);
    assert_eq!(body["aggregator_connected"], false, "{body}");
    assert_eq!(get(health, "/livez").unwrap().0, 200);
    assert_eq!(get(health, "/metrics-or-anything").unwrap().0, 404);
}

#[test]
fn never_ready_without_a_cgroup_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (agg_port, health) = (free_port(), free_port());
    let _agg = aggregator(agg_port, &dir.path().join("data"));
    let missing = dir.path().join("no-cgroups-here");
    let _agent = agent(&missing, &dir.path().join("state"), agg_port, health);
    let body = until(health, "/readyz", 503);
    // Wait for the stream, so that only the cgroup tree keeps it unready.
    let start = Instant::now();
    let mut body = body;
    while body["aggregator_connected"] != true && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        body = get(health, "/readyz").unwrap().1;
    }
    assert_eq!(body["aggregator_connected"], true, "{body}");
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["cgroup"], "unavailable", "{body}");
    let reason = body["cgroup_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no-cgroups-here"), "{body}");
    assert_eq!(until(health, "/livez", 200)["live"], true);
}
