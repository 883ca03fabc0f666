//! Helpers for tests that load the fake NVML through the real `nvml-wrapper`.
//!
//! NVML is process-global and the scenario comes from an environment
//! variable, so each scenario test runs its body in a child process: the test
//! binary re-executes itself with `--exact <test>` and the scenario in the
//! child's environment only ([`isolated`]). Nothing here mutates this
//! process's environment, so cargo's parallel test threads stay independent.

pub mod elf;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Set in a child to the name of the test whose body it must run.
const CHILD_ENV: &str = "GPUSCOPE_FAKE_NVML_TEST_CHILD";
/// The variable the fake reads its scenario path from.
pub const SCENARIO_ENV: &str = "GPUSCOPE_FAKE_NVML_SCENARIO";
/// Overrides where the built fake is looked for.
const LIB_ENV: &str = "GPUSCOPE_FAKE_NVML_LIB";

/// The built fake, found from this test binary
/// (`<target>/<profile>/deps/through_nvml_wrapper-*`): cargo builds the
/// package's library (`cdylib` + `rlib`) before its integration tests, into
/// the same `deps/` directory; `cargo build` also copies it up to
/// `<target>/<profile>/`, tried second. `GPUSCOPE_FAKE_NVML_LIB` overrides both.
pub fn fake_lib() -> PathBuf {
    const NAME: &str = "libgpuscope_fake_nvml.so";
    if let Some(path) = std::env::var_os(LIB_ENV) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("path of the test binary");
    let deps = exe
        .parent()
        .expect("test binary in <target>/<profile>/deps");
    let candidates = [deps.join(NAME), deps.parent().unwrap_or(deps).join(NAME)];
    candidates
        .iter()
        .find(|lib| lib.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{NAME} not found in {candidates:?}: build it with \
                 `cargo build -p gpuscope-fake-nvml` or set {LIB_ENV}"
            )
        })
}

/// A scenario file shipped in `tests/fake-nvml/scenarios/`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// Runs `body` in a child process whose `GPUSCOPE_FAKE_NVML_SCENARIO` is
/// `scenario` (unset for `None`: the built-in default).
///
/// `test` must be the calling test's name. In the parent this spawns the
/// child, asserts that it ran exactly that one test and passed, and returns
/// its output (for assertions on what the library printed); in the child it
/// runs `body` and returns `None`.
pub fn isolated(test: &str, scenario: Option<&Path>, body: impl FnOnce()) -> Option<Output> {
    if std::env::var(CHILD_ENV).as_deref() == Ok(test) {
        body();
        return None;
    }
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut child = Command::new(exe);
    child
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, test);
    match scenario {
        Some(path) => child.env(SCENARIO_ENV, path),
        None => child.env_remove(SCENARIO_ENV),
    };
    let output = child.output().expect("spawn the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child for {test} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    Some(output)
}
