#!/usr/bin/env python3
"""Medians of `cargo bench --bench nvml` per collection and per GPU, from
criterion's target/criterion/nvml_<N>gpu/*/new/estimates.json, and the
agent's share of the NVML collection: agent_nvml - wrapper_calls (the same
nvml-wrapper calls into the fake without the agent's code).

usage: benches/nvml_per_gpu.py   (after cargo bench -p gpuscope-benches --bench nvml)
"""
import json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIT = os.path.join(ROOT, "target", "criterion")
BENCHES = ("agent_nvml", "agent_nvml_no_health", "wrapper_calls", "round_no_kubelet", "round_fake_kubelet")


def median_us(gpus, bench):
    p = os.path.join(CRIT, f"nvml_{gpus}gpu", bench, "new", "estimates.json")
    if not os.path.exists(p):
        return None
    return json.load(open(p))["median"]["point_estimate"] / 1e3


m = {(n, b): median_us(n, b) for n in (1, 8) for b in BENCHES}
if any(v is None for v in m.values()):
    sys.exit("no results: run cargo bench -p gpuscope-benches --bench nvml first")
print(f"{'median, µs':22} {'1 GPU':>9} {'8 GPUs':>9} {'per GPU (8)':>12} {'marginal/GPU':>13}")
rows = [(b, m[(1, b)], m[(8, b)]) for b in BENCHES]
rows.append(("agent share", m[(1, "agent_nvml")] - m[(1, "wrapper_calls")],
             m[(8, "agent_nvml")] - m[(8, "wrapper_calls")]))
for name, one, eight in rows:
    print(f"{name:22} {one:9.1f} {eight:9.1f} {eight / 8:12.1f} {(eight - one) / 7:13.1f}")
for n in (1, 8):
    with_h, without = m[(n, "agent_nvml")], m[(n, "agent_nvml_no_health")]
    print(f"health reads, {n} GPU(s): +{with_h - without:.1f} µs per collection, "
          f"{100 * (with_h - without) / without:+.1f} % of the NVML collection without them")
