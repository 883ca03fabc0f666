#!/usr/bin/env python3
"""Instructions (valgrind callgrind, Ir) of one agent NVML collection
(`NvmlSource::collect()`) through the fake NVML, split between the fake
library and the agent's side (the agent's code, nvml-wrapper, Rust's std,
libc), per GPU, for 1 and 8 GPUs.

Each scenario runs twice under callgrind, with K1 and K2 collections after
the first (which initialises NVML); the difference divided by K2 - K1 is
one collection, without start-up and init. The fake's share is the
inclusive cost of every call from outside into libgpuscope_fake_nvml.so
(libc work it does included); the rest is split by the source file of
each instruction (inlined code counts where it was written).

usage: cargo build --release -p gpuscope-fake-nvml && \
       cargo bench -p gpuscope-benches --bench nvml --no-run && \
       python3 benches/nvml_callgrind.py [K1 K2]
With GPUSCOPE_BENCH_NVML_NO_HEALTH=1 in the environment the collections
leave the GPU health counters out (the agent before them): run both and
compare TOTAL for what the health reads cost. With
GPUSCOPE_BENCH_NVML_NO_NVLINK=1 they read the health counters but not
NVLink (each GPU of the scenario has 18 links, read every 10th
collection): compare with a plain run for what the NVLink reads cost.
"""
import glob, os, re, subprocess, sys, tempfile
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K1, K2 = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (100, 600)
FAKE = "libgpuscope_fake_nvml.so"


def bench_binary():
    cands = [p for p in glob.glob(os.path.join(ROOT, "target/release/deps/nvml-*"))
             if os.access(p, os.X_OK) and not p.endswith(".d")]
    if not cands:
        sys.exit("build first: cargo bench -p gpuscope-benches --bench nvml --no-run")
    return max(cands, key=os.path.getmtime)


def bucket(ob, fl):
    if FAKE in ob:
        return "fake (self)"
    if "libc.so" in ob or "libm.so" in ob:
        return "libc"
    if "ld-linux" in ob:
        return "ld.so"
    if "agent/src/" in fl:
        return "agent code"
    if "nvml-wrapper" in fl:
        return "nvml-wrapper"
    if fl.startswith("/rustc/") or "/library/" in fl:
        return "Rust std/core/alloc"
    if fl.startswith("/"):
        return "other crates"
    return "unknown"


def parse(path):
    """Self cost per bucket, and inclusive cost of calls into the fake and
    of the fake's calls out (to subtract from libc/ld.so)."""
    names = defaultdict(dict)
    selfc = defaultdict(int)
    into_fake = 0
    fake_out = defaultdict(int)
    ob = fl = fi = ""
    cob = None
    in_call = False
    total = 0
    spec = re.compile(r"^(ob|fl|fi|fe|fn|cob|cfi|cfl|cfn)=(?:\((\d+)\))?\s*(.*)$")
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = spec.match(line)
        if m:
            kind, ident, name = m.groups()
            space = {"cob": "ob", "cfi": "fl", "cfl": "fl", "fi": "fl", "fe": "fl", "cfn": "fn"}.get(kind, kind)
            if ident is not None:
                if name:
                    names[space][ident] = name
                name = names[space].get(ident, name)
            if kind == "ob":
                ob = name
            elif kind == "fl":
                fl = fi = name
            elif kind in ("fi", "fe"):
                fi = name
            elif kind == "fn":
                fi = fl
            elif kind == "cob":
                cob = name
            continue
        if line.startswith("calls="):
            in_call = True
            continue
        if not line or not (line[0].isdigit() or line[0] in "+-*"):
            continue
        parts = line.split()
        cost = int(parts[1]) if len(parts) > 1 else 0
        if in_call:
            callee = cob if cob is not None else ob
            if FAKE in callee and FAKE not in ob:
                into_fake += cost
            if FAKE in ob and FAKE not in callee:
                fake_out[bucket(callee, "")] += cost
            in_call = False
            cob = None
            continue
        selfc[bucket(ob, fi)] += cost
        total += cost
    return total, selfc, into_fake, fake_out


def split(path):
    total, selfc, into_fake, fake_out = parse(path)
    out = dict(selfc)
    out.pop("fake (self)", None)
    for b, c in fake_out.items():
        out[b] = out.get(b, 0) - c
    out["FAKE (inclusive)"] = into_fake
    out["TOTAL"] = total
    return out


def main():
    exe = bench_binary()
    with tempfile.TemporaryDirectory() as d:
        runs = {}
        for k in (K1, K2):
            env = dict(os.environ,
                       GPUSCOPE_BENCH_NVML_PROFILE=str(k),
                       GPUSCOPE_BENCH_NVML_WRAP=f"valgrind -q --tool=callgrind --callgrind-out-file={d}/cg.{k}.{{gpus}}")
            subprocess.run([exe], env=env, check=True, cwd=ROOT)
            for n in (1, 8):
                runs[(k, n)] = split(f"{d}/cg.{k}.{n}")
    print(f"callgrind Ir of one NvmlSource::collect() (difference of {K2} and {K1} collections)")
    keys = ["TOTAL", "FAKE (inclusive)", "agent code", "nvml-wrapper", "Rust std/core/alloc",
            "libc", "ld.so", "other crates", "unknown"]
    print(f"{'':22} {'1 GPU':>10} {'8 GPUs':>10} {'per GPU (8)':>12} {'marginal/GPU':>13}")
    per = {}
    for key in keys:
        v = [(runs[(K2, n)].get(key, 0) - runs[(K1, n)].get(key, 0)) / (K2 - K1) for n in (1, 8)]
        per[key] = v
        print(f"{key:22} {v[0]:10.0f} {v[1]:10.0f} {v[1] / 8:12.0f} {(v[1] - v[0]) / 7:13.0f}")
    agent = [per["TOTAL"][i] - per["FAKE (inclusive)"][i] for i in (0, 1)]
    print(f"{'agent side (TOTAL-FAKE)':22} {agent[0]:10.0f} {agent[1]:10.0f} {agent[1] / 8:12.0f} "
          f"{(agent[1] - agent[0]) / 7:13.0f}")
    print(f"agent's share of the instructions: {agent[0] / per['TOTAL'][0]:.0%} (1 GPU), "
          f"{agent[1] / per['TOTAL'][1]:.0%} (8 GPUs)")


main()
