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
import json, os, statistics, subprocess, sys, threading, time, queue
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = os.path.join(ROOT, "target/release/gpuscope-agent")
HOG = os.path.join(ROOT, "target/release/memhog")
MEM = "/sys/fs/cgroup/memory"
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def main():
    for f in (AGENT, HOG):
        if not os.path.exists(f):
            sys.exit(f"{f} missing: cargo build --release -p gpuscope-agent -p gpuscope-tests")
    agent = subprocess.Popen([AGENT, "watch", "-o", "jsonl", "--samples"],
                             stdout=subprocess.PIPE, text=True, bufsize=1)
    lines = queue.Queue()

    def reader():
        for line in agent.stdout:
            lines.put((time.time(), line))
    threading.Thread(target=reader, daemon=True).start()
    while json.loads(lines.get(timeout=10)[1]).get("kind") != "node_sample":
        pass
    pod = "1a7e3c5b-0000-4000-8000-%012x" % os.getpid()
    base = f"{MEM}/kubepods/burstable/pod{pod}"
    made = [d for d in (f"{MEM}/kubepods", f"{MEM}/kubepods/burstable", base)
            if not os.path.isdir(d)]
    os.makedirs(base, exist_ok=True)
    latencies = []
    try:
        for i in range(N):
            cid = "%064x" % (0xbe7c0000 + i)
            path = f"/kubepods/burstable/pod{pod}/{cid}"
            d = MEM + path
            os.mkdir(d)
            with open(f"{d}/memory.limit_in_bytes", "w") as f:
                f.write(str(32 << 20))
            # Let the agent scan it and register its notifier.
            time.sleep(1.3)
            subprocess.run(["sh", "-c", f"echo $$ > {d}/cgroup.procs; exec {HOG} 128"],
                           stdout=subprocess.DEVNULL)
            deadline = time.time() + 5
            while time.time() < deadline:
                try:
                    seen, line = lines.get(timeout=deadline - time.time())
                except queue.Empty:
                    break
                ev = json.loads(line)
                if ev.get("kind") == "oom_kill" and ev.get("cgroup_path") == path:
                    ms = (seen - parse_time(ev["time"])) * 1000
                    latencies.append(ms)
                    victim = ev.get("victim") or {}
                    print(f"kill {i + 1:2}: {ms:7.2f} ms  (detected_by {ev['detected_by']}, "
                          f"victim {victim.get('comm')} {victim.get('pid')})")
                    break
            else:
                print(f"kill {i + 1:2}: no event within 5 s")
            os.rmdir(d)
    finally:
        agent.kill()
        for c in os.listdir(base):
            if os.path.isdir(f"{base}/{c}"):
                os.rmdir(f"{base}/{c}")
        # The parents this script made, when no one else's cgroups are in them.
        for d in reversed(made):
            try:
                os.rmdir(d)
            except OSError:
                pass
    if latencies:
        latencies.sort()
        print(f"kills seen: {len(latencies)}/{N}  median {statistics.median(latencies):.2f} ms  "
              f"p90 {latencies[int(0.9 * (len(latencies) - 1))]:.2f} ms  max {latencies[-1]:.2f} ms")
    if len(latencies) != N:
        sys.exit(1)


main()
