//! Every bundle case read without the agent's records (`agent.jsonl`,
//! `agent-*.jsonl` removed): what a person sees with Kubernetes alone.
//! The answer may be less sure than with the agent, never confidently
//! different: no `high` finding of a kind the case does not expect, about
//! another subject, or stating a fact the case contradicts (the rule in
//! `tests/common/mod.rs`; the scorer prints the same figures).

mod common;

use common::{Strictness, case_dirs, name};

#[test]
fn without_agent_records_no_confident_wrong_answer() {
    let dirs = case_dirs();
    let mut failures = Vec::new();
    let mut stripped = 0;
    for dir in &dirs {
        let result = (|| {
            let want = common::expected(dir)?;
            let tmp = common::without_agent(dir)?;
            let (got, gaps) = common::findings_in(tmp.path())?;
            Ok::<_, String>(common::score(&want, &got, &gaps, Strictness::AtMost))
        })();
        if common::has_agent_records(dir) {
            stripped += 1;
        }
        match result {
            Ok(s) if s.confident_wrong.is_empty() => {}
            Ok(s) => failures.push(format!(
                "{}:\n    {}",
                name(dir),
                s.confident_wrong.join("\n    ")
            )),
            Err(e) => failures.push(format!("{}: {e}", name(dir))),
        }
    }
    println!(
        "{} cases read without agent records ({} had some)",
        dirs.len(),
        stripped
    );
    assert!(stripped >= 20, "only {stripped} cases hold agent records");
    assert!(
        failures.is_empty(),
        "{} of {} cases give a confident wrong answer without agent records:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}
