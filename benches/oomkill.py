"""What the OOM latency benchmarks share: kill memhog N times in fresh
cgroup v1 memory cgroups at a kubelet path (32 MiB limit), time each kill
from the kernel report's timestamp to the moment a watched process printed
its event, and report the median, p90 and max.

Used by benches/oom_latency.py (agent `watch`) and benches/oom_to_cli.py
(agent `run` -> aggregator -> `gpuscope events -w`).
"""
import json, os, queue, statistics, subprocess, sys, threading, time
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEM = "/sys/fs/cgroup/memory"


def release_bin(name):
    """target/release/NAME, or exit naming the build that makes it."""
    path = os.path.join(ROOT, "target/release", name)
    if not os.path.exists(path):
        sys.exit(f"{path} missing: cargo build --release --workspace")
    return path


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def lines_of(proc):
    """A queue of (time read, line) for each line `proc` prints."""
    lines = queue.Queue()

    def reader():
        for line in proc.stdout:
            lines.put((time.time(), line))
    threading.Thread(target=reader, daemon=True).start()
    return lines


def time_kills(lines, n, cid_base, what):
    """Kills memhog `n` times, each in a new container cgroup of one scratch
    pod; returns the latencies (ms) of the kills whose `oom_kill` line
    (JSON, with the kill's `cgroup_path` and kernel `time`) came within 5 s.
    Removes every cgroup it made."""
    hog = release_bin("memhog")
    pod = "1a7e3c5b-0000-4000-8000-%012x" % os.getpid()
    base = f"{MEM}/kubepods/burstable/pod{pod}"
    made = [d for d in (f"{MEM}/kubepods", f"{MEM}/kubepods/burstable", base)
            if not os.path.isdir(d)]
    os.makedirs(base, exist_ok=True)
    latencies = []
    try:
        for i in range(n):
            path = f"/kubepods/burstable/pod{pod}/{'%064x' % (cid_base + i)}"
            d = MEM + path
            os.mkdir(d)
            with open(f"{d}/memory.limit_in_bytes", "w") as f:
                f.write(str(32 << 20))
            # Let the agent scan it and register its notifier.
            time.sleep(1.3)
            subprocess.run(["sh", "-c", f"echo $$ > {d}/cgroup.procs; exec {hog} 128"],
                           stdout=subprocess.DEVNULL)
            deadline = time.time() + 5
            while time.time() < deadline:
                try:
                    seen, line = lines.get(timeout=max(0.01, deadline - time.time()))
                except queue.Empty:
                    break
                ev = json.loads(line)
                if ev.get("kind") == "oom_kill" and ev.get("cgroup_path") == path:
                    ms = (seen - parse_time(ev["time"])) * 1000
                    latencies.append(ms)
                    victim = ev.get("victim") or {}
                    seq = f", seq {ev['seq']}" if "seq" in ev else ""
                    print(f"kill {i + 1:2}: {ms:7.2f} ms  (detected_by {ev['detected_by']}, "
                          f"victim {victim.get('comm')} {victim.get('pid')}{seq})", flush=True)
                    break
            else:
                print(f"kill {i + 1:2}: no {what} within 5 s", flush=True)
            os.rmdir(d)
    finally:
        for c in os.listdir(base):
            if os.path.isdir(f"{base}/{c}"):
                os.rmdir(f"{base}/{c}")
        # The parents made here, when no one else's cgroups are in them.
        for d in reversed(made):
            try:
                os.rmdir(d)
            except OSError:
                pass
    return latencies


def report(latencies, n):
    """Prints the median, p90 and max; exits 1 unless every kill was seen."""
    if latencies:
        latencies = sorted(latencies)
        print(f"kills seen: {len(latencies)}/{n}  median {statistics.median(latencies):.2f} ms  "
              f"p90 {latencies[int(0.9 * (len(latencies) - 1))]:.2f} ms  max {latencies[-1]:.2f} ms")
    if len(latencies) != n:
        sys.exit(1)
