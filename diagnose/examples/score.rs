//! The bundle corpus's figures: cases passing, facts covered and
//! confident wrong answers, with and without the agent's records.
//!
//! `cargo run -p gpuscope-diagnose --example score [-- PREFIX] [-- -v]`
//!
//! Every case of `tests/bundles/` (or those whose name starts with PREFIX)
//! is explained twice: as collected, and with `agent.jsonl` /
//! `agent-*.jsonl` removed. The definitions are in `tests/common/mod.rs`:
//! passing is the bundle test's verdict (without agent records a finding
//! may match at a lower confidence than expected); facts are the expected
//! findings' kinds and decisive texts and the expected gaps; a confident
//! wrong answer is a `high` finding that the case contradicts. `-v` prints
//! why each failing case fails and the engine's whole answer to it.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Score, Strictness, case_dirs, name};

struct Row {
    name: String,
    with: Score,
    without: Score,
    /// The engine's answer with agent records, as `kind (confidence): summary`.
    answer: Vec<String>,
}

fn run(dir: &std::path::Path) -> Result<Row, String> {
    let want = common::expected(dir)?;
    let (got, gaps) = common::findings_in(&dir.join("bundle"))?;
    let with = common::score(&want, &got, &gaps, Strictness::Exact);
    let answer = got
        .iter()
        .map(|f| format!("{} ({:?}): {}", f.kind, f.confidence, f.summary))
        .collect();
    let tmp = common::without_agent(dir)?;
    let (got, gaps) = common::findings_in(tmp.path())?;
    let without = common::score(&want, &got, &gaps, Strictness::AtMost);
    Ok(Row {
        name: name(dir),
        with,
        without,
        answer,
    })
}

fn percent(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.0} %", 100.0 * n as f64 / of as f64)
    }
}

fn totals(label: &str, rows: &[&Row]) {
    let pass = |f: fn(&Row) -> &Score| rows.iter().filter(|r| f(r).verdict.is_ok()).count();
    let facts = |f: fn(&Row) -> &Score| {
        let (p, t) = rows
            .iter()
            .fold((0, 0), |(p, t), r| (p + f(r).present, t + f(r).facts));
        format!("{p}/{t} ({})", percent(p, t))
    };
    let wrong = |f: fn(&Row) -> &Score| {
        let cases = rows
            .iter()
            .filter(|r| !f(r).confident_wrong.is_empty())
            .count();
        let n: usize = rows.iter().map(|r| f(r).confident_wrong.len()).sum();
        format!("{n} in {cases} cases")
    };
    println!("{label} ({} cases)", rows.len());
    println!(
        "  with agent records:    passing {}/{}, facts {}, confident wrong {}",
        pass(|r| &r.with),
        rows.len(),
        facts(|r| &r.with),
        wrong(|r| &r.with)
    );
    println!(
        "  without agent records: passing {}/{}, facts {}, confident wrong {}",
        pass(|r| &r.without),
        rows.len(),
        facts(|r| &r.without),
        wrong(|r| &r.without)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let prefix = args
        .iter()
        .find(|a| *a != "-v")
        .cloned()
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut unreadable = Vec::new();
    for dir in case_dirs() {
        if !name(&dir).starts_with(&prefix) {
            continue;
        }
        match run(&dir) {
            Ok(r) => rows.push(r),
            Err(e) => unreadable.push(format!("{}: {e}", name(&dir))),
        }
    }
    println!(
        "{:<52} {:>6} {:>7} {:>5} | {:>6} {:>7} {:>5}",
        "case", "pass", "facts", "wrong", "pass", "facts", "wrong"
    );
    println!("{:<52} {:^21} | {:^21}", "", "with agent", "without agent");
    for r in &rows {
        let cells = |s: &Score| {
            format!(
                "{:>6} {:>7} {:>5}",
                if s.verdict.is_ok() { "yes" } else { "no" },
                format!("{}/{}", s.present, s.facts),
                s.confident_wrong.len()
            )
        };
        println!("{:<52} {} | {}", r.name, cells(&r.with), cells(&r.without));
    }
    println!();
    let all: Vec<&Row> = rows.iter().collect();
    totals("all cases", &all);
    let public: Vec<&Row> = rows
        .iter()
        .filter(|r| r.name.starts_with("public-"))
        .collect();
    if !public.is_empty() && public.len() != rows.len() {
        totals(
            "public-* cases (reconstructed from public threads)",
            &public,
        );
    }
    if verbose {
        println!();
        for r in &rows {
            if let Err(e) = &r.with.verdict {
                println!("{} (with agent): {e}", r.name);
                for a in &r.answer {
                    println!("    answer: {a}");
                }
            }
            for w in &r.with.confident_wrong {
                println!("{} (with agent) confident wrong: {w}", r.name);
            }
            for w in &r.without.confident_wrong {
                println!("{} (without agent) confident wrong: {w}", r.name);
            }
        }
    }
    for u in &unreadable {
        println!("unreadable case: {u}");
    }
    if !unreadable.is_empty() {
        std::process::exit(1);
    }
}
