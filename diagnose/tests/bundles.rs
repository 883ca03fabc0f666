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
//!
//! Every folder but the generators' (`gen_*`) is a case: one without
//! `expected.json`, or whose bundle cannot be read, fails.
//!
//! Per finding, besides `kind` and `confidence`, all optional:
//! `container`, `gpu`, `node` (the subject), `summary_contains`,
//! `evidence_names`, `evidence_contains`, and `caused_by` (the kinds of
//! the findings it is linked to as a consequence, exactly; `[]` says it
//! is a root cause).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gpuscope_diagnose::bundle::Bundle;
use gpuscope_diagnose::{Config, Finding};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    findings: Vec<ExpectedFinding>,
    #[serde(default)]
    gaps: Vec<String>,
    /// Why this case exists (documentation only).
    #[serde(default)]
    #[allow(dead_code)]
    about: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedFinding {
    kind: String,
    confidence: String,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    gpu: Option<String>,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    summary_contains: Vec<String>,
    #[serde(default)]
    evidence_names: Vec<String>,
    /// Evidence name -> text its value must contain.
    #[serde(default)]
    evidence_contains: BTreeMap<String, String>,
    /// Kinds of the findings this one is a consequence of, exactly.
    #[serde(default)]
    caused_by: Option<Vec<String>>,
}

fn bundles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bundles")
}

/// Every case folder of `tests/bundles/`: every folder but the generators'
/// (`gen_*`). A case without `expected.json` or a readable bundle fails
/// its test, not skipped.
fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(bundles_dir())
        .expect("tests/bundles exists")
        .map(|e| e.expect("read tests/bundles").path())
        .filter(|p| p.is_dir())
        .filter(|p| !name(p).starts_with("gen_"))
        .collect();
    dirs.sort();
    dirs
}

fn name(dir: &Path) -> String {
    dir.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn findings_of(dir: &Path) -> Result<(Vec<Finding>, Vec<String>), String> {
    let b = Bundle::read(&dir.join("bundle")).map_err(|e| e.to_string())?;
    let config = Config::default();
    let findings = match &b.subject {
        Some(s) => gpuscope_diagnose::explain(&b.evidence, &config, s),
        None => gpuscope_diagnose::diagnose(&b.evidence, &config),
    };
    let gaps = b
        .evidence
        .gaps
        .iter()
        .chain(&gpuscope_diagnose::rule_gaps(
            &b.evidence,
            &config,
            b.subject.as_ref(),
        ))
        .map(|g| g.what.clone())
        .collect();
    Ok((findings, gaps))
}

fn check(dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join("expected.json"))
        .map_err(|e| format!("expected.json: {e}"))?;
    let want: Expected = serde_json::from_str(&text).map_err(|e| format!("expected.json: {e}"))?;
    let (got, gaps) = findings_of(dir)?;
    let show = |f: &[Finding]| {
        f.iter()
            .map(|f| {
                format!(
                    "{} ({:?}) <- {:?}: {}",
                    f.kind, f.confidence, f.caused_by, f.summary
                )
            })
            .collect::<Vec<_>>()
            .join("\n    ")
    };
    let mut unmatched: Vec<&Finding> = got.iter().collect();
    for w in &want.findings {
        let pos = unmatched.iter().position(|f| {
            f.kind.as_str() == w.kind
                && serde_json::to_value(f.confidence).ok() == Some(w.confidence.as_str().into())
                && w.container
                    .as_ref()
                    .is_none_or(|c| f.subject.container.as_ref() == Some(c))
                && w.gpu
                    .as_ref()
                    .is_none_or(|g| f.subject.gpu.as_ref() == Some(g))
                && w.node
                    .as_ref()
                    .is_none_or(|n| f.subject.node.as_ref() == Some(n))
        });
        let Some(pos) = pos else {
            return Err(format!(
                "expected a {} finding with {} confidence{}; got:\n    {}",
                w.kind,
                w.confidence,
                w.container
                    .as_ref()
                    .map(|c| format!(" for container {c}"))
                    .unwrap_or_default(),
                show(&got)
            ));
        };
        let f = unmatched.remove(pos);
        for s in &w.summary_contains {
            if !f.summary.contains(s.as_str()) {
                return Err(format!("{} summary lacks {s:?}: {}", f.kind, f.summary));
            }
        }
        for n in &w.evidence_names {
            if !f.evidence.iter().any(|e| &e.name == n) {
                return Err(format!(
                    "{} has no evidence named {n:?}: {:?}",
                    f.kind, f.evidence
                ));
            }
        }
        for (n, v) in &w.evidence_contains {
            if !f
                .evidence
                .iter()
                .any(|e| &e.name == n && e.value.contains(v.as_str()))
            {
                return Err(format!(
                    "{} has no evidence {n:?} containing {v:?}: {:?}",
                    f.kind, f.evidence
                ));
            }
        }
        if let Some(want) = &w.caused_by {
            let mut causes: Vec<String> = f
                .caused_by
                .iter()
                .map(|id| {
                    got.iter()
                        .find(|c| &c.id == id)
                        .map_or_else(|| format!("missing {id}"), |c| c.kind.to_string())
                })
                .collect();
            let mut want = want.clone();
            causes.sort();
            want.sort();
            if causes != want {
                return Err(format!(
                    "{} is caused by {causes:?}, expected {want:?}",
                    f.kind
                ));
            }
        }
        if f.next_steps.is_empty() {
            return Err(format!("{} has no next steps", f.kind));
        }
    }
    if !unmatched.is_empty() {
        let extra: Vec<Finding> = unmatched.into_iter().cloned().collect();
        return Err(format!("unexpected findings:\n    {}", show(&extra)));
    }
    for g in &want.gaps {
        if !gaps.contains(g) {
            return Err(format!("expected a gap for {g}; gaps: {gaps:?}"));
        }
    }
    Ok(())
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
            let findings = match &b.subject {
                Some(s) => gpuscope_diagnose::explain(&b.evidence, &config, s),
                None => gpuscope_diagnose::diagnose(&b.evidence, &config),
            };
            serde_json::to_value(findings).expect("findings as JSON")
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
