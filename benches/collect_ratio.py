#!/usr/bin/env python3
"""Medians of `cargo bench --bench collect` (agent cycle vs floor) and
their ratio, per tree, from criterion's target/criterion/*/*/new/estimates.json.
Goal: agent <= 1.5x floor.

usage: benches/collect_ratio.py   (after cargo bench -p gpuscope-benches --bench collect)
"""
import json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIT = os.path.join(ROOT, "target", "criterion")


def median_ms(tree, bench):
    p = os.path.join(CRIT, tree, bench, "new", "estimates.json")
    if not os.path.exists(p):
        return None
    return json.load(open(p))["median"]["point_estimate"] / 1e6


failed = False
for tree in ("fixture_v2", "real_v1"):
    a, f = median_ms(tree, "agent"), median_ms(tree, "floor")
    if a is None or f is None:
        print(f"{tree:10}  no results (skipped?)")
        continue
    r = a / f
    ok = r <= 1.5
    failed |= not ok
    print(f"{tree:10}  agent {a:7.3f} ms  floor {f:7.3f} ms  ratio {r:4.2f}x  "
          f"(goal <= 1.5x: {'met' if ok else 'MISSED'})")
    s = median_ms(tree, "floor_read_to_end")
    if s is not None:
        print(f"{'':10}  diagnostic: floor read with File::read_to_end {s:7.3f} ms "
              f"({s / f:4.2f}x floor)")
    d = median_ms(tree, "discover_only")
    if d is not None:
        print(f"{'':10}  diagnostic: discover alone {d:7.3f} ms")
sys.exit(1 if failed else 0)
