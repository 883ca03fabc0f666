//! `--help` of every command of the agent, the aggregator and the CLI,
//! compared with the checked-in text in
//! `tests/snapshots/`: a change of interface is a visible diff. Run with
//! `GPUSCOPE_UPDATE_SNAPSHOTS=1` to rewrite them after an intended change
//! (refused when `CI` is set).

use std::path::PathBuf;
use std::process::Command;

use gpuscope_tests::{updating_snapshots, workspace_bin};

fn check(bin: &str, args: &[&str], name: &str) {
    let mut cmd = Command::new(workspace_bin(bin));
    cmd.args(args).env("COLUMNS", "100");
    // clap prints the current value of each flag's variable: clear them.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("GPUSCOPE_")) {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("run agent");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).expect("utf-8");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("snapshots")
        .join(name);
    if updating_snapshots() {
        std::fs::write(&path, &got).expect("write snapshot");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (GPUSCOPE_UPDATE_SNAPSHOTS=1 creates it)",
            path.display()
        )
    });
    assert_eq!(
        got,
        want,
        "`{bin} {}` changed; if intended, rerun with GPUSCOPE_UPDATE_SNAPSHOTS=1 and commit the diff",
        args.join(" ")
    );
}

#[test]
fn agent_help() {
    check("gpuscope-agent", &["--help"], "agent-help.txt");
}

#[test]
fn snapshot_help() {
    check(
        "gpuscope-agent",
        &["snapshot", "--help"],
        "agent-snapshot-help.txt",
    );
}

#[test]
fn watch_help() {
    check(
        "gpuscope-agent",
        &["watch", "--help"],
        "agent-watch-help.txt",
    );
}

#[test]
fn run_help() {
    check("gpuscope-agent", &["run", "--help"], "agent-run-help.txt");
}

#[test]
fn aggregator_help() {
    check("gpuscope-aggregator", &["--help"], "aggregator-help.txt");
}

#[test]
fn cli_help() {
    check("gpuscope", &["--help"], "gpuscope-help.txt");
}

#[test]
fn cli_explain_help() {
    check(
        "gpuscope",
        &["explain", "--help"],
        "gpuscope-explain-help.txt",
    );
}

#[test]
fn cli_diagnose_help() {
    check(
        "gpuscope",
        &["diagnose", "--help"],
        "gpuscope-diagnose-help",
    );
}

#[test]
fn cli_idle_help() {
    check("gpuscope", &["idle", "--help"], "gpuscope-idle-help");
}
