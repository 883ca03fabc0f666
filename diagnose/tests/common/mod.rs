//! The bundle cases' yardstick, shared by the bundle tests
//! (`tests/bundles.rs`, `tests/without_agent.rs`) and the scorer
//! (`cargo run -p gpuscope-diagnose --example score`): what `expected.json`
//! says, how the engine's findings are matched against it, and how one
//! answer is scored.
//!
//! A case is `tests/bundles/NAME/` with `bundle/` (what a person would
//! collect: kubectl JSON, agent JSON lines, log tails) and `expected.json`:
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
//! text its value must contain; `summary_excludes`: texts the summary must
//! not contain (a wrong story the case rules out); `caused_by`: the kinds
//! of the findings it is linked to as a consequence, exactly (`[]`: a root
//! cause). `findings: []` says the pod is healthy.
//! `gaps` lists evidence the engine must report missing.
//!
//! Scoring (what the scorer prints):
//! - **passing**: the engine gives exactly the expected findings (kind,
//!   confidence, subject) with every decisive fact, and the expected gaps.
//! - **facts**: each expected finding counts one fact for its kind on its
//!   subject, plus one per `summary_contains`, `summary_excludes`,
//!   `evidence_names` and `evidence_contains` entry, plus one for
//!   `caused_by` when given; each expected gap counts one. A fact is
//!   present when a finding of that kind on that subject (any confidence)
//!   gives it.
//! - **confident wrong answer**: a `high` finding that says something the
//!   case contradicts: a kind the case does not expect; an expected kind
//!   that names another container, GPU or node than every expected
//!   finding of that kind (not naming one is no contradiction); a fact
//!   the case names (`evidence_contains`) given with a value that lacks
//!   the expected text; or a summary telling a story the case rules out
//!   (`summary_excludes`).
//! - **without agent records**: the same case read with `agent.jsonl` and
//!   `agent-*.jsonl` removed. The Kubernetes-only answer may be less sure
//!   (a finding may match at a lower confidence than expected, never a
//!   higher one) but never confidently different: the confident-wrong
//!   rule above applies unchanged.

// Each user of this module (two test targets, one example) uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gpuscope_diagnose::bundle::Bundle;
use gpuscope_diagnose::finding::Confidence;
use gpuscope_diagnose::{Config, Finding};
use serde::Deserialize;

/// `expected.json`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// The findings the engine must give for the subject, no more, no fewer.
    pub findings: Vec<ExpectedFinding>,
    /// Evidence the engine must report missing.
    #[serde(default)]
    pub gaps: Vec<String>,
    /// Why this case exists (documentation only).
    #[serde(default)]
    pub about: String,
}

/// One expected finding.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFinding {
    /// Its kind (`oom_killed`, ...).
    pub kind: String,
    /// `low`, `medium` or `high`.
    pub confidence: String,
    /// The container it is about, when it must name one.
    #[serde(default)]
    pub container: Option<String>,
    /// The GPU UUID it is about.
    #[serde(default)]
    pub gpu: Option<String>,
    /// The node it is about.
    #[serde(default)]
    pub node: Option<String>,
    /// Texts the summary must contain.
    #[serde(default)]
    pub summary_contains: Vec<String>,
    /// Texts the summary must not contain: a wrong story the case rules
    /// out (a high finding whose summary says one is a confident wrong
    /// answer).
    #[serde(default)]
    pub summary_excludes: Vec<String>,
    /// Evidence the finding must give, by name.
    #[serde(default)]
    pub evidence_names: Vec<String>,
    /// Evidence name -> text its value must contain.
    #[serde(default)]
    pub evidence_contains: BTreeMap<String, String>,
    /// The kinds of the findings this one is linked to as a consequence,
    /// exactly (`[]`: a root cause); absent: not checked.
    #[serde(default)]
    pub caused_by: Option<Vec<String>>,
}

impl ExpectedFinding {
    fn confidence(&self) -> Result<Confidence, String> {
        serde_json::from_value(self.confidence.as_str().into())
            .map_err(|_| format!("bad confidence {:?}", self.confidence))
    }

    /// Same kind and the subject the case names (container, GPU, node).
    fn is_about(&self, f: &Finding) -> bool {
        f.kind.as_str() == self.kind
            && self
                .container
                .as_ref()
                .is_none_or(|c| f.subject.container.as_ref() == Some(c))
            && self
                .gpu
                .as_ref()
                .is_none_or(|g| f.subject.gpu.as_ref() == Some(g))
            && self
                .node
                .as_ref()
                .is_none_or(|n| f.subject.node.as_ref() == Some(n))
    }

    /// Same kind, and no subject field that names something else (a
    /// finding that does not name the GPU does not contradict one that
    /// must).
    fn does_not_contradict_subject(&self, f: &Finding) -> bool {
        let differs = |want: &Option<String>, got: &Option<String>| matches!((want, got), (Some(w), Some(g)) if w != g);
        f.kind.as_str() == self.kind
            && !differs(&self.container, &f.subject.container)
            && !differs(&self.gpu, &f.subject.gpu)
            && !differs(&self.node, &f.subject.node)
    }

    /// The decisive facts a matching finding lacks, as people would read
    /// them; `all` is the whole answer, where its causes are found.
    fn missing(&self, f: &Finding, all: &[Finding]) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(want) = &self.caused_by {
            let mut causes: Vec<String> = f
                .caused_by
                .iter()
                .map(|id| {
                    all.iter()
                        .find(|c| &c.id == id)
                        .map_or_else(|| format!("missing {id}"), |c| c.kind.to_string())
                })
                .collect();
            let mut want = want.clone();
            causes.sort();
            want.sort();
            if causes != want {
                out.push(format!(
                    "{} is caused by {causes:?}, expected {want:?}",
                    f.kind
                ));
            }
        }
        for s in &self.summary_contains {
            if !f.summary.contains(s.as_str()) {
                out.push(format!("{} summary lacks {s:?}: {}", f.kind, f.summary));
            }
        }
        for s in &self.summary_excludes {
            if f.summary.contains(s.as_str()) {
                out.push(format!("{} summary says {s:?}: {}", f.kind, f.summary));
            }
        }
        for n in &self.evidence_names {
            if !f.evidence.iter().any(|e| &e.name == n) {
                out.push(format!("{} has no evidence named {n:?}", f.kind));
            }
        }
        for (n, v) in &self.evidence_contains {
            if !f
                .evidence
                .iter()
                .any(|e| &e.name == n && e.value.contains(v.as_str()))
            {
                out.push(format!("{} has no evidence {n:?} containing {v:?}", f.kind));
            }
        }
        out
    }

    /// How many facts this finding stands for (see the module doc).
    fn fact_count(&self) -> usize {
        1 + self.summary_contains.len()
            + self.summary_excludes.len()
            + self.evidence_names.len()
            + self.evidence_contains.len()
            + usize::from(self.caused_by.is_some())
    }
}

/// The folder of the cases: `tests/bundles/`.
pub fn bundles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bundles")
}

/// Every case folder of `tests/bundles/`: every folder but the generators'
/// (`gen_*`), sorted. A case without `expected.json` or a readable bundle
/// fails, it is not skipped.
pub fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(bundles_dir())
        .expect("tests/bundles exists")
        .map(|e| e.expect("read tests/bundles").path())
        .filter(|p| p.is_dir())
        .filter(|p| !name(p).starts_with("gen_"))
        .collect();
    dirs.sort();
    dirs
}

/// A case's name: its folder's.
pub fn name(dir: &Path) -> String {
    dir.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Reads a case's `expected.json`.
pub fn expected(dir: &Path) -> Result<Expected, String> {
    let text = std::fs::read_to_string(dir.join("expected.json"))
        .map_err(|e| format!("expected.json: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("expected.json: {e}"))
}

/// What the engine answers for the bundle folder `bundle`: the subject's
/// findings (every pod's when there is no subject) and the gaps it reports.
pub fn findings_in(bundle: &Path) -> Result<(Vec<Finding>, Vec<String>), String> {
    let b = Bundle::read(bundle).map_err(|e| e.to_string())?;
    let config = Config::default();
    let findings = answer(&b, &config);
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

/// The engine's findings for a bundle read: its subject's, or every pod's
/// when it names none (what `gpuscope explain --bundle` prints).
pub fn answer(b: &Bundle, config: &Config) -> Vec<Finding> {
    match &b.subject {
        Some(s) => gpuscope_diagnose::explain(&b.evidence, config, s),
        None => gpuscope_diagnose::diagnose(&b.evidence, config),
    }
}

/// Whether a bundle file is one of the agent's records.
pub fn is_agent_file(name: &str) -> bool {
    name.ends_with(".jsonl") && (name == "agent.jsonl" || name.starts_with("agent-"))
}

/// Whether the case's bundle holds agent records.
pub fn has_agent_records(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("bundle"))
        .map(|rd| {
            rd.flatten()
                .any(|e| is_agent_file(&e.file_name().to_string_lossy()))
        })
        .unwrap_or(false)
}

/// A copy of the case's bundle without its agent records, in a temporary
/// folder that lives as long as the returned value.
pub fn without_agent(dir: &Path) -> Result<tempfile::TempDir, String> {
    fn copy(from: &Path, to: &Path, top: bool) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            let name = e.file_name();
            if top && is_agent_file(&name.to_string_lossy()) {
                continue;
            }
            if e.file_type()?.is_dir() {
                copy(&e.path(), &to.join(&name), false)?;
            } else {
                std::fs::copy(e.path(), to.join(&name))?;
            }
        }
        Ok(())
    }
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    copy(&dir.join("bundle"), tmp.path(), true).map_err(|e| format!("copy bundle: {e}"))?;
    Ok(tmp)
}

/// How strictly confidence is matched.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// The expected confidence exactly (the bundle test).
    Exact,
    /// The expected confidence or lower (the answer without agent records).
    AtMost,
}

/// The bundle test's verdict: `Ok` when the engine gives exactly the
/// expected findings with every decisive fact and the expected gaps; else
/// the first difference, as people would read it.
pub fn check(
    want: &Expected,
    got: &[Finding],
    gaps: &[String],
    strictness: Strictness,
) -> Result<(), String> {
    let show = |f: &[&Finding]| {
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
        let conf = w.confidence()?;
        let pos = unmatched.iter().position(|f| {
            w.is_about(f)
                && match strictness {
                    Strictness::Exact => f.confidence == conf,
                    Strictness::AtMost => f.confidence <= conf,
                }
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
                show(&got.iter().collect::<Vec<_>>())
            ));
        };
        let f = unmatched.remove(pos);
        if let Some(first) = w.missing(f, got).into_iter().next() {
            return Err(format!("{first}: {:?}", f.evidence));
        }
        if f.next_steps.is_empty() {
            return Err(format!("{} has no next steps", f.kind));
        }
    }
    if !unmatched.is_empty() {
        return Err(format!("unexpected findings:\n    {}", show(&unmatched)));
    }
    for g in &want.gaps {
        if !gaps.contains(g) {
            return Err(format!("expected a gap for {g}; gaps: {gaps:?}"));
        }
    }
    Ok(())
}

/// One answer scored against its case.
pub struct Score {
    /// The bundle test's verdict (`Err`: the first difference).
    pub verdict: Result<(), String>,
    /// Expected facts (see the module doc).
    pub facts: usize,
    /// Of which the answer gives.
    pub present: usize,
    /// The answer's confident wrong claims, as people would read them.
    pub confident_wrong: Vec<String>,
}

/// Scores the engine's answer `got` (with `gaps`) against `want`.
pub fn score(want: &Expected, got: &[Finding], gaps: &[String], strictness: Strictness) -> Score {
    let verdict = check(want, got, gaps, strictness);
    let mut facts = 0;
    let mut present = 0;
    // Facts: each expected finding against the best finding about the same
    // thing; one finding serves one expectation.
    let mut used = vec![false; got.len()];
    for w in &want.findings {
        facts += w.fact_count();
        let best = got
            .iter()
            .enumerate()
            .filter(|(i, f)| !used[*i] && w.is_about(f))
            .min_by_key(|(_, f)| w.missing(f, got).len());
        if let Some((i, f)) = best {
            used[i] = true;
            present += w.fact_count() - w.missing(f, got).len();
        }
    }
    facts += want.gaps.len();
    present += want.gaps.iter().filter(|g| gaps.contains(g)).count();
    let confident_wrong = got
        .iter()
        .filter(|f| f.confidence == Confidence::High)
        .filter_map(|f| contradiction(want, f))
        .collect();
    Score {
        verdict,
        facts,
        present,
        confident_wrong,
    }
}

/// Why a `high` finding contradicts the case, if it does.
fn contradiction(want: &Expected, f: &Finding) -> Option<String> {
    let same_kind: Vec<&ExpectedFinding> = want
        .findings
        .iter()
        .filter(|w| w.kind == f.kind.as_str())
        .collect();
    if same_kind.is_empty() {
        return Some(format!("{} (high), not expected: {}", f.kind, f.summary));
    }
    let about: Vec<&&ExpectedFinding> = same_kind
        .iter()
        .filter(|w| w.does_not_contradict_subject(f))
        .collect();
    if about.is_empty() {
        return Some(format!(
            "{} (high) about another subject ({}): {}",
            f.kind,
            [&f.subject.container, &f.subject.gpu, &f.subject.node]
                .iter()
                .filter_map(|s| s.as_deref())
                .collect::<Vec<_>>()
                .join(", "),
            f.summary
        ));
    }
    // Contradicted facts: the case's named fact is given, with another value.
    // Only when no expectation about this subject is met by the finding.
    let contradicted: Vec<String> = about
        .iter()
        .map(|w| {
            w.evidence_contains
                .iter()
                .filter(|(n, v)| {
                    let given: Vec<&str> = f
                        .evidence
                        .iter()
                        .filter(|e| &e.name == *n)
                        .map(|e| e.value.as_str())
                        .collect();
                    !given.is_empty() && !given.iter().any(|g| g.contains(v.as_str()))
                })
                .map(|(n, v)| format!("{n:?} is not {v:?}"))
                .chain(
                    w.summary_excludes
                        .iter()
                        .filter(|x| f.summary.contains(x.as_str()))
                        .map(|x| format!("{x:?} (ruled out by the case)")),
                )
                .collect::<Vec<_>>()
        })
        .min_by_key(Vec::len)
        .unwrap_or_default();
    if contradicted.is_empty() {
        None
    } else {
        Some(format!(
            "{} (high) states {}: {}",
            f.kind,
            contradicted.join(", "),
            f.summary
        ))
    }
}
