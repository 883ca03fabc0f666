//! The diagnosis engine's cost: explaining one pod of a bundle as the
//! number of neighbour pods grows (it should not grow with them: only the
//! subject is judged), against diagnosing every pod of the same evidence
//! (which must).
//!
//! The evidence is a real bundle from `tests/bundles/` (a crash-looping
//! GPU pod with its events and node) with N copies of its pod, renamed, as
//! neighbours on other nodes.

use std::path::Path;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gpuscope_diagnose::bundle::Bundle;
use gpuscope_diagnose::{Config, Evidence, PodKey};

fn evidence(neighbours: usize) -> (Evidence, PodKey) {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bundles/pod-crash-loop-exit-1/bundle");
    let b = Bundle::read(&dir).expect("the bundle reads");
    let subject = b.subject.clone().expect("the bundle names its pod");
    let mut ev = b.evidence;
    ev.now = ev.now.or_else(|| ev.newest_time());
    let template = ev.pods[0].clone();
    for i in 0..neighbours {
        let mut p = template.clone();
        p.metadata.name = Some(format!("neighbour-{i}"));
        p.metadata.uid = Some(format!("00000000-0000-4000-8000-{i:012}"));
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = Some(format!("node-{}", i % 500));
        }
        ev.pods.push(p);
    }
    (ev, subject)
}

fn bench(c: &mut Criterion) {
    let config = Config::default();
    let mut g = c.benchmark_group("diagnose");
    g.sample_size(20);
    for n in [10usize, 1_000, 10_000] {
        let (ev, subject) = evidence(n);
        g.bench_with_input(BenchmarkId::new("explain_one_pod", n), &n, |b, _| {
            b.iter(|| gpuscope_diagnose::explain(&ev, &config, &subject));
        });
        if n <= 1_000 {
            g.bench_with_input(BenchmarkId::new("diagnose_all_pods", n), &n, |b, _| {
                b.iter(|| gpuscope_diagnose::diagnose(&ev, &config));
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
