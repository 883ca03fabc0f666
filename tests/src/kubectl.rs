//! The real kubectl as a second client of the fake API server: pointed at
//! the fake only, with an empty kubeconfig and a fresh cache and home.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::fake_kube::FakeKube;

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The real kubectl pointed at the fake only: empty kubeconfig, fresh
/// cache and home.
pub struct Kubectl {
    bin: PathBuf,
    server: String,
    home: tempfile::TempDir,
}

impl Kubectl {
    /// `None` without kubectl on PATH: a loud skip, or a failure under `CI`
    /// ([`crate::require`]).
    pub fn new(fake: &FakeKube) -> Option<Kubectl> {
        let bin = find_in_path("kubectl");
        if !crate::require("kubectl on PATH", bin.is_some()) {
            return None;
        }
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(home.path().join("kubeconfig"), "").expect("empty kubeconfig");
        Some(Kubectl {
            bin: bin?,
            server: fake.url(),
            home,
        })
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let home = self.home.path();
        let out = Command::new(&self.bin)
            .args(["--server", &self.server, "--request-timeout", "10s"])
            .arg("--kubeconfig")
            .arg(home.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(home.join("cache"))
            .args(args)
            .env("HOME", home)
            .env("KUBECONFIG", home.join("kubeconfig"))
            .output()
            .expect("run kubectl");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// Runs kubectl, expects success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "kubectl {args:?} failed:\n{stderr}");
        stdout
    }

    /// Runs kubectl, expects success, parses stdout as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}\n{stdout}"))
    }
}
