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
import shutil, socket, subprocess, sys, tempfile, time

from oomkill import lines_of, release_bin, report, time_kills

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    agent_bin, agg_bin, cli_bin = (release_bin(b) for b in
                                   ("gpuscope-agent", "gpuscope-aggregator", "gpuscope"))
    tmp = tempfile.mkdtemp(prefix="gpuscope-oom-cli-")
    url = f"http://127.0.0.1:{free_port()}"
    procs = []
    try:
        procs.append(subprocess.Popen(
            [agg_bin, "--no-kube", "--listen", url[7:], "--data-dir", f"{tmp}/data", "--log", "warn"],
            stderr=open(f"{tmp}/aggregator.log", "w")))
        procs.append(subprocess.Popen(
            [agent_bin, "run", "--aggregator", url, "--state-dir", f"{tmp}/state",
             "--interval", "1s", "--no-gpu", "--node-name", "oom-bench"],
            stderr=open(f"{tmp}/agent.log", "w")))
        deadline = time.time() + 15
        while time.time() < deadline:
            r = subprocess.run([cli_bin, "--aggregator", url, "nodes", "-o", "json"],
                               capture_output=True, text=True)
            if r.returncode == 0 and '"oom-bench"' in r.stdout:
                break
            time.sleep(0.2)
        else:
            sys.exit("the agent did not connect: see " + tmp)
        cli = subprocess.Popen([cli_bin, "--aggregator", url, "events", "-w", "-o", "json", "--since", "1s"],
                               stdout=subprocess.PIPE, text=True, bufsize=1)
        procs.append(cli)
        lines = lines_of(cli)
        time.sleep(1.0)  # the watch is open
        latencies = time_kills(lines, N, 0xc11c0000, "incident printed")
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    report(latencies, N)


main()
