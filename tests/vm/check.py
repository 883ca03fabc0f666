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


# The group-kill container's pod (tests/vm/run.sh GROUP_POD_UID).
GROUP_POD_UID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"


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


def counters_of(console, name):
    """The `memory.events` counters printed in section NAME."""
    counters = {}
    for line in section(console, name) or []:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counters[parts[0]] = int(parts[1])
    return counters


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
    group = counters_of(console, "MEMORY-EVENTS-GROUP")
    facts["group_memory_events"] = group
    if group.get("oom_group_kill") != 1 or group.get("oom_kill", 0) < 3:
        problems.append(f"group container memory.events {group!r}: want oom_group_kill 1 and oom_kill >= 3 "
                        "(the hog, the shell, the sleeps)")
    gexit = marker_value(console, "=== GROUP-EXIT")
    if gexit != "137":
        problems.append(f"group shell exit status {gexit!r}, want 137 (killed with its group)")
    # The test must be able to tell the chosen victim from the last
    # process killed: the group's last Killed process line is a sleep.
    dmesg = section(console, "DMESG-OOM") or []
    group_cg = "pod" + GROUP_POD_UID.replace("-", "_")
    after = [i for i, l in enumerate(dmesg) if "memory.oom.group set" in l and group_cg in l]
    if not after:
        problems.append(f"no 'Tasks in ... memory.oom.group set' line for the group container ({group_cg})")
    else:
        block = []
        for l in dmesg[after[0] + 1:]:
            if "invoked oom-killer" in l:
                break
            block.append(l)
        tail = [l for l in block if "Killed process" in l]
        last = re.search(r"Killed process \d+ \((.*?)\)", tail[-1]) if tail else None
        facts["group_last_killed"] = last.group(1) if last else None
        if not last or last.group(1) == "hog":
            problems.append(f"the group's last Killed process line is {facts['group_last_killed']!r}: "
                            "the chosen victim (hog) must not be the last one killed for this test to mean anything")
    shm = counters_of(console, "MEMORY-EVENTS-SHM")
    facts["shm_memory_events"] = shm
    if shm.get("oom_kill", 0) < 1:
        problems.append(f"tmpfs container memory.events {shm!r}: want oom_kill >= 1")
    facts["shm_stat"] = marker_value(console, "=== SHM-STAT")
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
    others = {args.group_pod_uid, args.shm_pod_uid}
    strangers = [r.get("pod_uid") for r in ooms if r.get("pod_uid") not in others | {args.pod_uid}]
    if len(ours) != 1 or strangers:
        problems.append(
            f"want exactly 1 oom_kill line with pod_uid {args.pod_uid} and none of other pods, got {len(ours)} "
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


def group_checks(records, console, args):
    """The memory.oom.group kill: one event naming the victim the kernel
    chose (the hog, the summary's task=), not the last process killed, with
    the other members; the tmpfs kill: shared memory in the victim's
    shmem-rss and in the cgroup's stat."""
    problems = []
    ooms = [r for r in records if r.get("kind") == "oom_kill"]
    group = [r for r in ooms if r.get("pod_uid") == args.group_pod_uid]
    if len(group) != 1:
        problems.append(f"want exactly 1 oom_kill line for the group kill (pod_uid {args.group_pod_uid}), "
                        f"got {len(group)}: one OOM event, however many processes died")
    else:
        ev = group[0]
        victim = ev.get("victim") or {}
        if victim.get("comm") != "hog":
            problems.append(f"group kill victim {victim.get('comm')!r}, want 'hog' (the kernel's chosen victim)")
        g = ev.get("group")
        if not isinstance(g, dict):
            problems.append(f"group kill event has no group: {g!r}")
        else:
            comms = sorted(m.get("comm") for m in g.get("members", []))
            if g.get("member_count") != len(g.get("members", [])) or "sh" not in comms or comms.count("sleep") < 2:
                problems.append(f"group members {comms} (member_count {g.get('member_count')}), "
                                "want the shell and both sleeps")
            if any(m.get("pid") == victim.get("pid") for m in g.get("members", [])):
                problems.append("the chosen victim is listed among the other members")
            counters = counters_of(console, "MEMORY-EVENTS-GROUP")
            if g.get("kill_lines") != counters.get("oom_kill"):
                problems.append(f"group kill_lines {g.get('kill_lines')}, want the cgroup's oom_kill "
                                f"{counters.get('oom_kill')} (one per Killed process line)")
            if ev.get("oom_kill") != counters.get("oom_kill"):
                problems.append(f"group event oom_kill {ev.get('oom_kill')}, want {counters.get('oom_kill')}")
    shm = [r for r in ooms if r.get("pod_uid") == args.shm_pod_uid]
    if len(shm) != 1:
        problems.append(f"want exactly 1 oom_kill line for the tmpfs kill (pod_uid {args.shm_pod_uid}), got {len(shm)}")
    else:
        ev = shm[0]
        victim = ev.get("victim") or {}
        if victim.get("comm") != "hog" or (victim.get("shmem_rss_bytes") or 0) < 8 << 20:
            problems.append(f"tmpfs kill victim {victim.get('comm')!r} shmem_rss_bytes "
                            f"{victim.get('shmem_rss_bytes')!r}, want hog with >= 8 MiB (12 MiB mapped)")
        window = ev.get("window") or []
        top = max((p.get("shmem_bytes") or 0 for p in window if isinstance(p, dict)), default=0)
        if top < 8 << 20:
            problems.append(f"tmpfs kill window shmem_bytes at most {top}, want >= 8 MiB")
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
    ap.add_argument("--group-pod-uid", required=True, help="pod of the memory.oom.group kill")
    ap.add_argument("--shm-pod-uid", required=True, help="pod of the tmpfs kill")
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
    agent += group_checks(records, console, args)
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
          "and an agent without the kernel log reported it through memory.events; "
          "the memory.oom.group kill was one event naming the chosen victim (hog) and the shell and "
          "sleeps killed with it, and the tmpfs kill showed shared memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
