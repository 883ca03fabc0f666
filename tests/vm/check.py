#!/usr/bin/env python3
"""Check the agent's JSONL from the QEMU cgroup v2 OOM test (tests/vm/run.sh).

Stdlib only. Exit 0 and print PASS when the agent reported the kill as
expected; else print FAIL with every reason and exit 1.

The guest console (already stripped of CRs and escape sequences) is read
too, for the harness's own evidence: the hog's exit status, the container
cgroup's memory.events and memory.pressure. A failure there is reported as
a harness failure, since the agent cannot be judged without a real kill.
"""

import argparse
import json
import re
import sys


def section(lines, name):
    """Lines between `=== NAME-BEGIN` and `=== NAME-END`, or None."""
    try:
        start = lines.index(f"=== {name}-BEGIN")
        end = lines.index(f"=== {name}-END", start + 1)
    except ValueError:
        return None
    return lines[start + 1 : end]


def marker_value(lines, prefix):
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def harness_checks(console):
    """Evidence that the guest really OOM-killed the hog in a v2 memcg."""
    problems = []
    facts = {}
    for line in console:
        if line.startswith("=== HARNESS-ERROR"):
            problems.append(line[4:])
    controllers = marker_value(console, "=== GUEST container controllers:")
    if controllers is None or "memory" not in controllers.split():
        problems.append(f"memory controller not active in the container cgroup (cgroup.controllers: {controllers!r})")
    hog = marker_value(console, "=== HOG-EXIT")
    facts["hog_exit"] = hog
    if hog != "137":
        problems.append(f"hog exit status {hog!r}, want 137 (SIGKILL by the OOM killer)")
    events = section(console, "MEMORY-EVENTS")
    counters = {}
    for line in events or []:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counters[parts[0]] = int(parts[1])
    facts["memory_events"] = counters
    if counters.get("oom_kill") != 1:
        problems.append(f"container memory.events oom_kill = {counters.get('oom_kill')!r}, want 1")
    pressure_total = None
    for line in section(console, "MEMORY-PRESSURE") or []:
        m = re.match(r"some .*\btotal=(\d+)", line)
        if m:
            pressure_total = int(m.group(1))
    facts["memory_pressure_some_total_us"] = pressure_total
    return problems, facts


def agent_checks(records, bad_lines, args, notify_only):
    problems = []
    for lineno, text, err in bad_lines:
        problems.append(f"out.jsonl line {lineno} is not a JSON object ({err}): {text[:200]!r}")
    ooms = [r for r in records if r.get("kind") == "oom_kill"]
    ours = [r for r in ooms if r.get("pod_uid") == args.pod_uid]
    if len(ooms) != 1 or len(ours) != 1:
        problems.append(
            f"want exactly 1 oom_kill line with pod_uid {args.pod_uid}, got {len(ours)} "
            f"(oom_kill lines in total: {len(ooms)}; pod_uids: {[r.get('pod_uid') for r in ooms]})"
        )
    if len(ours) != 1:
        return problems
    ev = ours[0]

    def expect(field, got, want):
        if got != want:
            problems.append(f"{field} = {got!r}, want {want!r}")

    expect("container_id", ev.get("container_id"), args.container_id)
    if notify_only:
        # Without the kernel log only the memory.events notification can
        # have reported it, and nothing can name the victim.
        expect("detected_by", ev.get("detected_by"), "notification")
        expect("constraint", ev.get("constraint"), "unknown")
        expect("victim", ev.get("victim"), None)
        expect("oom_kill", ev.get("oom_kill"), 1)
    expect("cgroup_version", ev.get("cgroup_version"), "v2")
    expect("limit_bytes", ev.get("limit_bytes"), args.limit_bytes)
    if not notify_only:
        expect("constraint", ev.get("constraint"), "memcg")
    oom_kill = ev.get("oom_kill")
    if not isinstance(oom_kill, int) or isinstance(oom_kill, bool) or oom_kill < 1:
        problems.append(f"oom_kill = {oom_kill!r}, want an integer >= 1")
    victim = ev.get("victim")
    if not notify_only:
        expect("victim.comm", victim.get("comm") if isinstance(victim, dict) else victim, "hog")

    window = ev.get("window")
    if not isinstance(window, list) or not window:
        problems.append(f"window = {window!r:.200}, want a non-empty list of recorder points")
    else:
        bad = [i for i, p in enumerate(window)
               if not isinstance(p, dict) or not isinstance(p.get("memory_some_total_us"), int)]
        if bad:
            problems.append(f"window points {bad[:10]} lack an integer memory_some_total_us")
        else:
            last = window[-1]["memory_some_total_us"]
            if not last > 0:
                problems.append(
                    f"no memory pressure in the event: window[-1].memory_some_total_us = {last}, "
                    "want > 0 (the read at the kill must show the stall that led to it)"
                )
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the agent's JSONL (between the OUT markers)")
    ap.add_argument("--notify-out", required=True,
                    help="JSONL of the second agent, run without the kernel log (OUT2 markers)")
    ap.add_argument("--console", required=True, help="the guest console, as plain text")
    ap.add_argument("--pod-uid", required=True)
    ap.add_argument("--container-id", required=True)
    ap.add_argument("--limit-bytes", required=True, type=int)
    args = ap.parse_args()

    with open(args.console, encoding="utf-8", errors="replace") as f:
        console = [line.rstrip("\r\n") for line in f]
    def load(path):
        records, bad_lines = [], []
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                text = line.strip()
                if not text:
                    continue
                try:
                    obj = json.loads(text)
                    if not isinstance(obj, dict):
                        raise ValueError(f"a JSON {type(obj).__name__}")
                    records.append(obj)
                except ValueError as e:
                    bad_lines.append((lineno, text, e))
        return records, bad_lines

    records, bad_lines = load(args.out)
    notify_records, notify_bad = load(args.notify_out)
    harness, facts = harness_checks(console)
    agent = agent_checks(records, bad_lines, args, notify_only=False)
    agent += [f"agent without kmsg: {p}"
              for p in agent_checks(notify_records, notify_bad, args, notify_only=True)]

    kinds = {}
    for r in records:
        kinds[r.get("kind")] = kinds.get(r.get("kind"), 0) + 1
    print(f"vm-test: guest: hog exit {facts['hog_exit']}, memory.events {facts['memory_events']}, "
          f"memory.pressure some total {facts['memory_pressure_some_total_us']} us")
    print(f"vm-test: agent: {len(records)} JSON lines, kinds {kinds}")
    if harness:
        print("vm-test: FAIL (harness: the guest did not produce the expected OOM kill, so the agent "
              "cannot be judged):")
        for p in harness:
            print(f"  - {p}")
    if agent:
        print("vm-test: FAIL (agent output):")
        for p in agent:
            print(f"  - {p}")
        agent_log = section(console, "AGENT-LOG")
        if agent_log:
            print("vm-test: last lines of the agent's stderr:")
            for line in agent_log[-20:]:
                print(f"  | {line}")
    if harness or agent:
        return 1
    print("vm-test: PASS: the agent reported the hog's cgroup v2 OOM kill "
          f"(pod {args.pod_uid}, limit {args.limit_bytes}, victim hog, constraint memcg), "
          "and an agent without the kernel log reported it through memory.events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
