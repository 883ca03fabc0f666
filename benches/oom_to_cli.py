#!/usr/bin/env python3
"""Real OOM kill -> incident printed by `gpuscope events -w` latency.

The whole path: the kernel kills memhog in a cgroup v1 memory cgroup at a
kubelet path; `gpuscope-agent run` (state dir in a tempdir, --interval 1s,
--no-gpu) notices it and streams the event; `gpuscope-aggregator` (fresh
data dir, loopback) stores it and announces it; `gpuscope events -w -o json`
prints it. Latency = the wall-clock time this script read the CLI's line
minus the kill's `time` field (the kernel report's timestamp). N kills
(default 20), each in a fresh cgroup with a 32 MiB limit. Prints each kill
and the median, p90 and max. Needs root and the v1 memory hierarchy; run it
alone (other cgroup benchmarks would see its cgroups).

usage: benches/oom_to_cli.py [N]
  (after cargo build --release -p gpuscope-agent -p gpuscope-aggregator
   -p gpuscope-cli -p gpuscope-tests)
"""
import json, os, queue, shutil, socket, statistics, subprocess, sys, tempfile, threading, time
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target/release")
AGENT, AGG, CLI, HOG = (os.path.join(REL, b) for b in
                        ("gpuscope-agent", "gpuscope-aggregator", "gpuscope", "memhog"))
MEM = "/sys/fs/cgroup/memory"
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    for f in (AGENT, AGG, CLI, HOG):
        if not os.path.exists(f):
            sys.exit(f"{f} missing: cargo build --release -p gpuscope-agent -p gpuscope-aggregator "
                     "-p gpuscope-cli -p gpuscope-tests")
    tmp = tempfile.mkdtemp(prefix="gpuscope-oom-cli-")
    url = f"http://127.0.0.1:{free_port()}"
    procs = []
    made, base = [], None
    latencies = []
    try:
        agg = subprocess.Popen([AGG, "--no-kube", "--listen", url[7:], "--data-dir", f"{tmp}/data", "--log", "warn"],
                               stderr=open(f"{tmp}/aggregator.log", "w"))
        procs.append(agg)
        agent = subprocess.Popen([AGENT, "run", "--aggregator", url, "--state-dir", f"{tmp}/state",
                                  "--interval", "1s", "--no-gpu", "--node-name", "oom-bench"],
                                 stderr=open(f"{tmp}/agent.log", "w"))
        procs.append(agent)
        deadline = time.time() + 15
        while time.time() < deadline:
            r = subprocess.run([CLI, "--aggregator", url, "nodes", "-o", "json"],
                               capture_output=True, text=True)
            if r.returncode == 0 and '"oom-bench"' in r.stdout:
                break
            time.sleep(0.2)
        else:
            sys.exit("the agent did not connect: see " + tmp)
        cli = subprocess.Popen([CLI, "--aggregator", url, "events", "-w", "-o", "json", "--since", "1s"],
                               stdout=subprocess.PIPE, text=True, bufsize=1)
        procs.append(cli)
        lines = queue.Queue()

        def reader():
            for line in cli.stdout:
                lines.put((time.time(), line))
        threading.Thread(target=reader, daemon=True).start()
        time.sleep(1.0)  # the watch is open

        pod = "1a7e3c5b-0000-4000-8000-%012x" % os.getpid()
        base = f"{MEM}/kubepods/burstable/pod{pod}"
        made = [d for d in (f"{MEM}/kubepods", f"{MEM}/kubepods/burstable", base)
                if not os.path.isdir(d)]
        os.makedirs(base, exist_ok=True)
        for i in range(N):
            cid = "%064x" % (0xc11c0000 + i)
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
                    seen, line = lines.get(timeout=max(0.01, deadline - time.time()))
                except queue.Empty:
                    break
                ev = json.loads(line)
                if ev.get("kind") == "oom_kill" and ev.get("cgroup_path") == path:
                    ms = (seen - parse_time(ev["time"])) * 1000
                    latencies.append(ms)
                    victim = ev.get("victim") or {}
                    print(f"kill {i + 1:2}: {ms:7.2f} ms  (detected_by {ev['detected_by']}, "
                          f"victim {victim.get('comm')} {victim.get('pid')}, seq {ev['seq']})",
                          flush=True)
                    break
            else:
                print(f"kill {i + 1:2}: no incident printed within 5 s", flush=True)
            os.rmdir(d)
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
        if base and os.path.isdir(base):
            for c in os.listdir(base):
                if os.path.isdir(f"{base}/{c}"):
                    os.rmdir(f"{base}/{c}")
        # The parents this script made, when no one else's cgroups are in them.
        for d in reversed(made):
            try:
                os.rmdir(d)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    if latencies:
        latencies.sort()
        print(f"kills seen: {len(latencies)}/{N}  median {statistics.median(latencies):.2f} ms  "
              f"p90 {latencies[int(0.9 * (len(latencies) - 1))]:.2f} ms  max {latencies[-1]:.2f} ms")
    if len(latencies) != N:
        sys.exit(1)


main()
