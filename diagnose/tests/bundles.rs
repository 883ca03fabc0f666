//! Runs the engine over every bundle in `tests/bundles/` and compares its
//! findings with the bundle's `expected.json`.
//!
//! Layout: `tests/bundles/NAME/bundle/` is the bundle exactly as a person
//! would assemble it (kubectl JSON, agent JSON lines, log tails);
//! `tests/bundles/NAME/expected.json` lists the findings the engine must
//! produce for the subject pod, no more and no fewer:
//!
//! ```json
//! {"findings": [{"kind": "oom_killed", "confidence": "high",
//!                "container": "trainer", "summary_contains": ["2 GiB"],
//!                "evidence_names": ["victim"],
//!                "evidence_contains": {"exit code": "137 (OOMKilled)"}}],
//!  "gaps": ["agent"]}
//! ```
//!
//! `summary_contains`: texts the summary must contain; `evidence_names`:
//! facts the finding must give; `evidence_contains`: a fact's name and a
//! text its value must contain.
//!
//! `findings: []` says the pod is healthy: any finding fails the test.
//! `gaps` (optional) lists evidence the engine must report missing.
//! The format and the matching live in `tests/common/mod.rs`, which the
//! scorer (`cargo run -p gpuscope-diagnose --example score`) shares.
//!
//! Every folder but the generators' (`gen_*`) is a case: one without
//! `expected.json`, or whose bundle cannot be read, fails.

use std::path::{Path, PathBuf};

mod common;

use common::{Strictness, bundles_dir, case_dirs, name};
use gpuscope_diagnose::Config;
use gpuscope_diagnose::bundle::Bundle;

/// The bundle test's verdict for one case (the matching lives in
/// `common`, shared with the scorer).
fn check(dir: &Path) -> Result<(), String> {
    let want = common::expected(dir)?;
    let (got, gaps) = common::findings_in(&dir.join("bundle"))?;
    common::check(&want, &got, &gaps, Strictness::Exact)
}

#[test]
fn every_bundle_gives_its_expected_findings() {
    let dirs = case_dirs();
    let mut failures = Vec::new();
    for d in &dirs {
        if let Err(e) = check(d) {
            failures.push(format!("{}: {e}", name(d)));
        }
    }
    println!("{} bundles checked", dirs.len());
    assert!(
        dirs.len() >= 40,
        "only {} bundles found in {}",
        dirs.len(),
        bundles_dir().display()
    );
    assert!(
        failures.is_empty(),
        "{} of {} bundles failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[test]
fn bundles_round_trip_through_the_writer() {
    // What `gpuscope bundle` writes, `explain --bundle` reads back to the
    // same findings: every field of every finding.
    let dirs = case_dirs();
    let mut failures = Vec::new();
    for dir in &dirs {
        let b = match Bundle::read(&dir.join("bundle")) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{}: unreadable bundle: {e}", name(dir)));
                continue;
            }
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut b2 = b.clone();
        // Fix "now" so that both reads agree on it.
        b2.evidence.now = b2.evidence.now.or_else(|| b.evidence.newest_time());
        b2.write(tmp.path()).expect("write");
        let back = match Bundle::read(tmp.path()) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!(
                    "{}: the written bundle is unreadable: {e}",
                    name(dir)
                ));
                continue;
            }
        };
        let config = Config::default();
        let run = |b: &Bundle| {
            serde_json::to_value(common::answer(b, &config)).expect("findings as JSON")
        };
        let (before, after) = (run(&b2), run(&back));
        if before != after {
            failures.push(format!(
                "{}: findings differ after the round trip\n--- before\n{before:#}\n--- after\n{after:#}",
                name(dir)
            ));
        }
    }
    assert!(dirs.len() >= 40, "only {} bundles found", dirs.len());
    assert!(
        failures.is_empty(),
        "{} of {} bundles failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[test]
fn public_cases_cite_their_source() {
    // A `public-*` case is reconstructed from a public thread: its README
    // names the thread and separates what is quoted from what was rebuilt.
    let public: Vec<PathBuf> = case_dirs()
        .into_iter()
        .filter(|d| name(d).starts_with("public-"))
        .collect();
    let mut failures = Vec::new();
    for d in &public {
        let text = std::fs::read_to_string(d.join("README.md")).unwrap_or_default();
        for section in [
            "## Source",
            "## From the thread",
            "## Reconstructed",
            "## Expectation",
        ] {
            if !text.contains(section) {
                failures.push(format!("{}: README.md lacks {section:?}", name(d)));
            }
        }
        if !text.contains("https://github.com/") {
            failures.push(format!("{}: README.md cites no thread", name(d)));
        }
    }
    assert!(public.len() >= 20, "only {} public cases", public.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
