#!/usr/bin/env python3
"""Real OOM kill -> `gpuscope-agent watch` output latency.

Runs `gpuscope-agent watch -o jsonl`, then N times (default 20) starts
memhog in a fresh cgroup v1 memory cgroup at a kubelet path with a 32 MiB
limit, so the kernel kills it. For each kill, latency = the wall-clock time
this script read the event's line minus the kill's time from the kernel
report (`time`, from the /dev/kmsg record's timestamp). Prints each kill
and the median, p90 and max. Needs root and the v1 memory hierarchy.

usage: benches/oom_latency.py [N]   (after cargo build --release)
"""
import json, subprocess, sys

from oomkill import lines_of, release_bin, report, time_kills

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def main():
    agent = subprocess.Popen([release_bin("gpuscope-agent"), "watch", "-o", "jsonl", "--samples"],
                             stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        lines = lines_of(agent)
        while json.loads(lines.get(timeout=10)[1]).get("kind") != "node_sample":
            pass
        latencies = time_kills(lines, N, 0xbe7c0000, "event")
    finally:
        agent.kill()
    report(latencies, N)


main()
