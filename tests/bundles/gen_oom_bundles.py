#!/usr/bin/env python3
"""Writes the oom-* bundles of the OOM mechanisms (group kills, the memory
story over an instance's whole life, memory-backed volumes, sticky
OOMKilled labels, node-wide victims).

Usage: python3 tests/bundles/gen_oom_bundles.py tests/bundles

Each case is built from the mechanism it exercises and states what a
person must read in the answer (expected.json) next to its inputs; the
expectations were written before the engine was run on them. Kernel
lines quoted in a case follow the real 6.1 output in
agent/tests/fixtures/kmsg/cgroup-v2-group-oom-kill-6.1-vm.txt.
"""
import datetime
import hashlib
import json
import os
import shutil
import sys

ROOT = sys.argv[1]
GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10


def h64(seed):
    return hashlib.sha256(seed.encode()).hexdigest()


def uid(seed):
    x = hashlib.md5(seed.encode()).hexdigest()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"


BASE = datetime.datetime(2026, 11, 21, 0, 0, 0)


def at(sec, ms=0):
    t = BASE + datetime.timedelta(seconds=sec, milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def at_s(sec):
    return (BASE + datetime.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Case:
    def __init__(self, name, qos="burstable"):
        self.name = name
        self.pod_name = f"{name}-0"
        self.ns = "ml"
        self.uid = uid(name)
        self.qos = qos
        self.old_id = h64(name + "old")
        self.new_id = h64(name + "new")
        self.node = "gpu-node-3"
        self.lines = [{"kind": "source", "time": at(0), "source": "cgroup", "state": "ok", "reason": None}]

    def cgroup(self, cid):
        u = self.uid.replace("-", "_")
        q = self.qos
        slice_ = "kubepods.slice" if q == "guaranteed" else f"kubepods.slice/kubepods-{q}.slice"
        pod = f"kubepods-pod{u}.slice" if q == "guaranteed" else f"kubepods-{q}-pod{u}.slice"
        return f"/{slice_}/{pod}/cri-containerd-{cid}.scope"

    def ref(self, cid):
        return {
            "cgroup_path": self.cgroup(cid),
            "pod_uid": self.uid,
            "container_id": cid,
            "qos": self.qos,
            "runtime": "containerd",
            "driver": "systemd",
        }

    def sample(self, sec, cid, usage, anon, file, shmem, limit, oom_kill=0, group=0, psi=0.0):
        d = {"kind": "container_sample", "time": at(sec)}
        d.update(self.ref(cid))
        d.update({
            "cgroup_version": "v2",
            "memory": {
                "usage_bytes": usage, "limit_bytes": limit, "peak_bytes": None,
                "anon_bytes": anon, "file_bytes": file, "shmem_bytes": shmem,
                "events": {"oom": oom_kill and 1, "oom_kill": oom_kill, "oom_group_kill": group, "max": 0, "high": 0},
            },
            "cpu": {"usage_us": int(sec * 4e6), "throttled_us": 0},
            "pressure": {"memory": {"some": {"avg10": psi, "avg60": psi, "avg300": psi, "total_us": 0},
                                     "full": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total_us": 0}}},
            "pressure_scope": "container",
        })
        self.lines.append(d)

    def kill(self, sec, cid, limit, victim, window, oom_kill=1, group=None, oom_group_kill=1,
             constraint="memcg", ms=0):
        d = {"kind": "oom_kill", "time": at(sec, ms), "detected_at": at(sec, ms + 4), "detected_by": "notification"}
        d.update(self.ref(cid))
        d.update({
            "cgroup_version": "v2", "limit_bytes": limit, "peak_bytes": limit,
            "oom_kill": oom_kill, "oom_group_kill": oom_group_kill, "constraint": constraint,
            "victim": victim, "trigger_comm": victim["comm"] if victim else None,
            "kernel_usage_bytes": limit if constraint == "memcg" else None,
            "kernel_limit_bytes": limit if constraint == "memcg" else None,
            "window": window, "pressure_scope": "container",
        })
        if group is not None:
            d["group"] = group
        self.lines.append(d)

    def pod(self, containers, status_extra=None, volumes=(), restart="Always", last=None, state=None,
            restarts=1, qos_class="Burstable", conditions=None, pod_status=None):
        spec = {
            "nodeName": self.node, "restartPolicy": restart,
            "containers": containers,
            "volumes": list(volumes),
        }
        cs = {
            "name": containers[0]["name"], "image": containers[0]["image"], "imageID": "",
            "ready": state is not None and "running" in state, "restartCount": restarts,
            "containerID": f"containerd://{self.new_id}",
            "state": state or {"running": {"startedAt": at_s(0)}},
        }
        if last:
            cs["lastState"] = {"terminated": last}
        status = {"phase": "Running", "qosClass": qos_class, "containerStatuses": [cs],
                  "conditions": conditions or []}
        if pod_status:
            status.update(pod_status)
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.pod_name, "namespace": self.ns, "uid": self.uid,
                         "creationTimestamp": at_s(0),
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": self.name,
                                              "uid": uid(self.name + "job"), "controller": True}]},
            "spec": spec, "status": status,
        }

    def node_obj(self, mem_bytes):
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node, "uid": uid(self.node)},
                "status": {"capacity": {"cpu": "64", "memory": f"{mem_bytes // KIB}Ki", "nvidia.com/gpu": "8", "pods": "110"},
                           "allocatable": {"cpu": "63", "memory": f"{(mem_bytes - 4 * GIB) // KIB}Ki", "nvidia.com/gpu": "8", "pods": "110"},
                           "conditions": [{"type": "Ready", "status": "True"}]}}

    def write(self, pod, expected, node=None, events=None, readme=None, agent=True):
        d = os.path.join(ROOT, self.name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "bundle"))
        with open(os.path.join(d, "bundle", "pod.json"), "w") as f:
            json.dump(pod, f, indent=1)
        if node:
            with open(os.path.join(d, "bundle", "node.json"), "w") as f:
                json.dump(node, f, indent=1)
        if events is not None:
            with open(os.path.join(d, "bundle", "events.json"), "w") as f:
                json.dump({"apiVersion": "v1", "kind": "List", "items": events}, f, indent=1)
        if agent:
            with open(os.path.join(d, "bundle", "agent.jsonl"), "w") as f:
                for line in self.lines:
                    f.write(json.dumps(line, separators=(",", ":")) + "\n")
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(expected, f, indent=2)
            f.write("\n")


def point(sec, usage, anon, file, shmem, psi_total=0, avg10=0.0, ms=0):
    return {"time": at(sec, ms), "usage_bytes": usage, "anon_bytes": anon, "file_bytes": file,
            "shmem_bytes": shmem, "memory_some_avg10": avg10, "memory_some_total_us": psi_total,
            "memory_full_total_us": psi_total // 4}


def victim(pid, comm, anon, file, shmem, adj):
    return {"pid": pid, "comm": comm, "total_vm_bytes": anon + file + shmem + 4 * GIB,
            "anon_rss_bytes": anon, "file_rss_bytes": file, "shmem_rss_bytes": shmem,
            "uid": 1000, "pgtables_bytes": anon // 512, "oom_score_adj": adj}


def trainer(limit, request, volume_mounts=()):
    return {"name": "trainer", "image": "registry.example.com/ml/train:3.1",
            "resources": {"limits": {"memory": limit, "nvidia.com/gpu": "1"},
                          "requests": {"memory": request, "nvidia.com/gpu": "1"}},
            "volumeMounts": list(volume_mounts)}


def last_oom(c, start, end, code=137, reason="OOMKilled"):
    return {"containerID": f"containerd://{c.old_id}", "exitCode": code, "reason": reason,
            "startedAt": at_s(start), "finishedAt": at_s(end)}


def lone_group(c, kill_lines):
    """The group of a memory.oom.group kill whose victim was the cgroup's only process."""
    return {"cgroup_path": c.cgroup(c.old_id), "members": [], "member_count": 0, "skipped": 0,
            "kill_lines": kill_lines}


def restarted_guaranteed(c, memory, kill_at):
    """A Guaranteed pod running again 12 s after the OOM kill of its first instance."""
    return c.pod([trainer(memory, memory)], last=last_oom(c, 0, kill_at + 1),
                 state={"running": {"startedAt": at_s(kill_at + 12)}}, restarts=1, qos_class="Guaranteed")


def event(c, sec, reason, message, kind="Pod", name=None, etype="Normal"):
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{name or c.pod_name}.{sec}", "namespace": c.ns},
            "involvedObject": {"kind": kind, "name": name or c.pod_name, "namespace": c.ns if kind == "Pod" else None,
                               "uid": c.uid if kind == "Pod" else uid(name or "")},
            "reason": reason, "message": message, "type": etype, "count": 1,
            "firstTimestamp": at_s(sec), "lastTimestamp": at_s(sec)}


# --------------------------------------------------------------------------
# Mechanism 1: a memory.oom.group kill. The kernel chose pt_main_thread (the
# largest); the group then killed five more processes and the chosen one
# again: seven `Killed process` lines, oom_kill +7, oom_group_kill +1.
MEMBERS = [(3840, "pt_data_worker", 1900, 2), (3841, "pt_data_worker", 1850, 2),
           (3842, "pt_data_worker", 1875, 2), (3843, "pt_data_worker", 1820, 2),
           (3790, "sh", 0, 0)]
CHOSEN = victim(3811, "pt_main_thread", 52 * GIB + 300 * MIB, 40 * MIB, 1536 * MIB, 938)


def member(pid, comm, anon_mib, shmem_mib):
    return victim(pid, comm, anon_mib * MIB, 12 * MIB, shmem_mib * MIB, 938)


def group_case(name, per_process):
    c = Case(name)
    limit = 64 * GIB
    kill_at = 3 * 3600
    # The instance: 30 s points (the aggregator's coarse tier) over three
    # hours of epoch-shaped use that ends at the limit (no leak, no step:
    # the kill is the decisive fact).
    for i in range(0, kill_at, 30):
        phase = (i % 1800) / 1800
        usage = int((40 + 20 * phase) * GIB)
        c.sample(i, c.old_id, usage, usage - 3 * GIB, 3 * GIB, 1536 * MIB, limit)
    window = [point(kill_at - 60 + s, 63 * GIB + s * 16 * MIB, 60 * GIB + s * 16 * MIB, 3 * GIB, 1536 * MIB,
                    psi_total=s * 20_000, avg10=min(40.0, s * 1.0)) for s in range(61)]
    if per_process:
        # An agent before the group field: one event per Killed process line,
        # each joined to one line, the last one a DataLoader worker.
        lines = [CHOSEN] + [member(*m) for m in MEMBERS] + [CHOSEN]
        lines = lines[:-1]  # the chosen one's second line raced the counter
        for n, v in enumerate(lines):
            c.kill(kill_at, c.old_id, limit, v, window, oom_kill=n + 1, ms=n * 3)
    else:
        c.kill(kill_at, c.old_id, limit, CHOSEN, window, oom_kill=7,
               group={"cgroup_path": c.cgroup(c.old_id),
                      "members": [member(*m) for m in MEMBERS],
                      "member_count": len(MEMBERS), "skipped": 0, "kill_lines": 7})
    for i in range(kill_at + 12, kill_at + 600, 10):
        c.sample(i, c.new_id, 8 * GIB, 7 * GIB, GIB, 0, limit)
    pod = c.pod([trainer("64Gi", "32Gi")], last=last_oom(c, 0, kill_at + 1),
                state={"running": {"startedAt": at_s(kill_at + 11)}}, restarts=1)
    return c, pod


c, pod = group_case("oom-group-kill-chosen-victim", per_process=False)
c.write(pod, node=c.node_obj(512 * GIB), expected={
    "about": "cgroup v2, memory.oom.group=1 (kubelet >= 1.28): the kernel chose pt_main_thread (52.3 GiB anon) and killed the five other processes of the container with it. The agent's one event carries the chosen victim and the group. The finding names the chosen victim with its RSS split, and the other members as a count and a list.",
    "findings": [{
        "kind": "oom_killed", "confidence": "high", "container": "trainer",
        "summary_contains": ["at its 64Gi memory limit",
                             "the kernel chose process pt_main_thread (pid 3811: anon-rss 52.3 GiB",
                             "shmem-rss 1.5 GiB",
                             "killed the 5 other processes of the container with it",
                             "pt_data_worker (pid 3840)", "sh (pid 3790)"],
        "evidence_names": ["victim", "killed with it (memory.oom.group)", "memory story", "recurrence"],
    }],
})

c, pod = group_case("oom-group-kill-old-agent-per-process", per_process=True)
c.write(pod, node=c.node_obj(512 * GIB), expected={
    "about": "The same group kill as oom-group-kill-chosen-victim, recorded by an agent that sent one oom_kill event per Killed process line (six events, the last a DataLoader worker). The chosen victim is the first event's, not the last; the six events are one OOM kill, its members counted once.",
    "findings": [{
        "kind": "oom_killed", "confidence": "high", "container": "trainer",
        "summary_contains": ["the kernel chose process pt_main_thread (pid 3811",
                             "killed the 5 other processes of the container with it"],
        "evidence_names": ["killed with it (memory.oom.group)"],
    }],
})

# --------------------------------------------------------------------------
# Mechanism 2a: a leak over hours. Anonymous memory rises steadily from
# 6 GiB for 5.5 h while the page cache stays at 2 GiB; the recorder window
# (the last five minutes) sits at the limit and alone shows nothing.
c = Case("oom-leak-over-hours")
limit = 64 * GIB
kill_at = int(5.5 * 3600) + 900
rate = (61 - 6) * GIB / (5.5 * 3600)  # bytes per second until the limit
for i in range(0, kill_at - 300, 60):
    anon = int(6 * GIB + rate * i) if i < 5.5 * 3600 else 61 * GIB
    c.sample(i, c.old_id, anon + 2 * GIB, anon, 2 * GIB, 0, limit)
window = [point(kill_at - 300 + s, 63 * GIB + s * MIB, 61 * GIB + s * MIB, 2 * GIB, 0,
                psi_total=s * 9_000, avg10=12.0) for s in range(0, 301, 2)]
c.kill(kill_at, c.old_id, limit, victim(7012, "python3", 61 * GIB + 300 * MIB, 80 * MIB, 0, 968), window,
       oom_kill=2, group=lone_group(c, 2))
for i in range(kill_at + 15, kill_at + 300, 30):
    c.sample(i, c.new_id, 8 * GIB, 6 * GIB, 2 * GIB, 0, limit)
pod = c.pod([trainer("64Gi", "32Gi")], last=last_oom(c, 0, kill_at + 1),
            state={"running": {"startedAt": at_s(kill_at + 12)}}, restarts=3)
c.write(pod, node=c.node_obj(1024 * GIB), expected={
    "about": "A leak: over 5.5 h the instance's anonymous memory rose in a straight line (~10.2 GiB/h) while the page cache stayed flat, until the limit. The flight-recorder window alone sits at the limit; the story comes from the instance's whole history (one point a minute). The summary says leak and the rate per hour, anon rising and page cache flat; the time-to-limit fact is there.",
    "findings": [{
        "kind": "oom_killed", "confidence": "high", "container": "trainer",
        "summary_contains": ["rose steadily for 5h28m", "GiB/h", "page cache +0 B/h", "a leak"],
        "evidence_names": ["memory story", "time to the limit at that rate", "growth before the kill"],
    }, {
        "kind": "crash_loop", "confidence": "medium", "container": "trainer",
        "summary_contains": ["code 137"], "caused_by": ["oom_killed"],
    }],
})

# --------------------------------------------------------------------------
# Mechanism 2b: a step. Flat at 12.3 GiB for 40 minutes, then +19.6 GiB
# within two seconds (a shard read whole) three minutes before the kill.
c = Case("oom-step-load", qos="guaranteed")
limit = 32 * GIB
kill_at = 3000
jump = kill_at - 180
for i in range(0, kill_at - 300, 10):
    c.sample(i, c.old_id, 12 * GIB + 300 * MIB, 11 * GIB + 300 * MIB, GIB, 0, limit)
window = []
for s in range(kill_at - 300, kill_at + 1):
    if s < jump:
        u = 12 * GIB + 300 * MIB
    elif s == jump:
        u = 12 * GIB + 300 * MIB + 9800 * MIB
    else:
        u = 31 * GIB + 920 * MIB
    window.append(point(s, u, u - GIB, GIB, 0, psi_total=max(0, s - jump) * 5_000, avg10=8.0 if s > jump else 0.0))
c.kill(kill_at, c.old_id, limit, victim(5120, "python", 30 * GIB + 800 * MIB, 100 * MIB, 0, -997), window,
       oom_kill=1, oom_group_kill=1, group=lone_group(c, 2))
pod = restarted_guaranteed(c, "32Gi", kill_at)
c.write(pod, node=c.node_obj(512 * GIB), expected={
    "about": "A step: the instance sat at 12.3 GiB for 45 minutes, then its memory rose by 19.6 GiB in 2 s (one shard loaded whole) and it was killed three minutes later at the limit. The step is measured between the samples around it, not from the window's minimum; the summary says step, not leak.",
    "findings": [{
        "kind": "oom_killed", "confidence": "high", "container": "trainer",
        "summary_contains": ["at its 32Gi memory limit", "Memory jumped by 19.6 GiB in 2s", "a step"],
        "evidence_names": ["memory story"],
    }],
})

# --------------------------------------------------------------------------
# The user's units: a manifest that writes its limit in decimal units
# (`30G`, 30 x 10^9 bytes, as many charts do). The kubelet writes those
# bytes to memory.max, which the kernel keeps in whole pages (29999996928
# bytes); the person reads `30G` in the manifest and 27.9 GiB in every tool
# that reports memory, and needs both to see that they are the same limit.
# The instance sat at 20 GiB, loaded 7.9 GiB at once and was killed five
# minutes later at the limit.
c = Case("oom-limit-written-decimal", qos="guaranteed")
limit = 30_000_000_000 // 4096 * 4096
kill_at = 1800
for i in range(0, kill_at - 120, 10):
    u = 20 * GIB if i < 1500 else limit - 64 * MIB
    c.sample(i, c.old_id, u, u - GIB, GIB, 0, limit)
window = [point(kill_at - 120 + s, limit - 64 * MIB, limit - GIB - 64 * MIB, GIB, 0,
                psi_total=s * 8_000, avg10=15.0) for s in range(121)]
c.kill(kill_at, c.old_id, limit, victim(4410, "python", 26 * GIB + 700 * MIB, 60 * MIB, 0, -997), window,
       oom_kill=1, group=lone_group(c, 1))
pod = restarted_guaranteed(c, "30G", kill_at)
c.write(pod, node=c.node_obj(512 * GIB), expected={
    "about": "A limit the manifest writes in decimal units (30G = 30 x 10^9 bytes, 27.9 GiB; memory.max keeps it in whole pages). The summary quotes the limit as the manifest writes it, with the bytes beside it because they read differently (30G (27.9 GiB)), so the person finds the number in the manifest and in their memory graphs.",
    "findings": [{
        "kind": "oom_killed", "confidence": "high", "container": "trainer",
        "summary_contains": ["at its 30G (27.9 GiB) memory limit", "python (pid 4410"],
        "evidence_contains": {"memory limit": "30G (27.9 GiB)"},
    }],
})

# --------------------------------------------------------------------------
# Sparse evidence is not a story. What led to a kill is read from the
# killed instance's memory over its life; where the agent kept too little
# of it, the engine says so as a gap (memory_story) instead of guessing or
# staying silent.
#

def story_gap_case(name, pid, anon, kill_at, usage_gib, about, summary_contains, extra=None, sources=None):
    """A Guaranteed trainer killed at its 32Gi limit (the kernel's report, no recorder window), with samples of the
    killed instance every five minutes at `usage_gib`; the engine must report a memory_story gap."""
    c = Case(name, qos="guaranteed")
    if sources:
        c.lines = sources
    for n, gib in enumerate(usage_gib):
        c.sample(n * 300, c.old_id, gib * GIB, (gib - 1) * GIB, GIB, 0, 32 * GIB)
    c.kill(kill_at, c.old_id, 32 * GIB, victim(pid, "python3", anon, 50 * MIB, 0, -997), [],
           oom_kill=1, group=lone_group(c, 1))
    finding = {"kind": "oom_killed", "confidence": "high", "container": "trainer",
               "summary_contains": ["at its 32Gi memory limit"] + summary_contains}
    finding.update(extra or {})
    c.write(restarted_guaranteed(c, "32Gi", kill_at), node=c.node_obj(512 * GIB), expected={
        "about": about, "findings": [finding], "gaps": ["memory_story"]})


# (a) Samples five minutes apart going up and down (an agent run with a
# long sampling interval) and no flight-recorder window with the kill:
# neither a line (a leak) nor a jump between neighbours (a step) can be
# read from them.
story_gap_case(
    "oom-memory-story-sparse-gap", 7301, 30 * GIB + 600 * MIB, 3600, [20, 24, 22, 26, 23, 27, 25, 29, 26, 30, 28, 31],
    "A container-limit kill the kernel reported (victim, limit), but the agent kept only twelve samples of the instance, five minutes apart, going up and down, and no recorder window: not enough to tell a leak from a step or a plateau. The kill is still reported (high: the kernel's own report); the summary says the samples are too sparse, and the engine reports a memory_story gap instead of leaving the question out.",
    ["too sparse to tell"],
    extra={"summary_excludes": ["a leak, not one large load", "a step, one large allocation"]})

# (b) The kernel log was read but the cgroup source could not find the
# pod's cgroups (a cgroupfs layout the agent was not configured for): the
# kill is known from the kernel's report alone, nothing of the memory
# before it.
story_gap_case(
    "oom-memory-story-unsampled-gap", 7302, 31 * GIB + 200 * MIB, 2400, [],
    "A container-limit kill known from the kernel's report alone: the agent's cgroup source could not find the pod's cgroups, so it has no samples of the instance and no recorder window. The kill is reported (high: victim and limit are the kernel's); what led to it is a memory_story gap, not a silence.",
    ["python3 (pid 7302"],
    sources=[{"kind": "source", "time": at(0), "source": "cgroup", "state": "unavailable",
              "reason": "/sys/fs/cgroup/kubepods.slice: no such file or directory (the node's kubelet uses the cgroupfs driver)"},
             {"kind": "source", "time": at(0), "source": "kmsg", "state": "ok", "reason": None}])

# --------------------------------------------------------------------------
# Mechanism 3: staging in a memory-backed emptyDir. The killed instance's
# samples show shmem growing with the staged files (38 GiB) while anon
# stays at 22 GiB; the restarted instance shows no shmem (the tmpfs pages
# stay charged to the pod, not to the new container's cgroup).
c = Case("oom-tmpfs-staging")
limit = 64 * GIB
kill_at = 2400
for i in range(0, kill_at - 120, 10):
    sh = int(min(40 * GIB, 40 * GIB * i / (kill_at - 120)))
    c.sample(i, c.old_id, 22 * GIB + sh + GIB, 22 * GIB, sh + GIB, sh, limit)
window = [point(kill_at - 120 + s, 63 * GIB + 900 * MIB, 22 * GIB + 100 * MIB, 41 * GIB + 800 * MIB,
                40 * GIB + 700 * MIB, psi_total=s * 3_000, avg10=6.0) for s in range(121)]
c.kill(kill_at, c.old_id, limit, victim(6100, "python3", 21 * GIB + 700 * MIB, 60 * MIB, 38 * GIB + 200 * MIB, 968),
       window, oom_kill=2, group={"cgroup_path": c.cgroup(c.old_id), "members": [
           victim(6120, "stager", 300 * MIB, 20 * MIB, 0, 968)], "member_count": 1, "skipped": 0, "kill_lines": 3})
for i in range(kill_at + 12, kill_at + 300, 10):
    c.sample(i, c.new_id, 9 * GIB, 8 * GIB, GIB, 0, limit)
mounts = [{"name": "staging", "mountPath": "/staging"}, {"name": "dshm", "mountPath": "/dev/shm"}]
volumes = [{"name": "staging", "emptyDir": {"medium": "Memory", "sizeLimit": "48Gi"}},
           {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}]
pod = c.pod([trainer("64Gi", "32Gi", mounts)], volumes=volumes, last=last_oom(c, 0, kill_at + 1),
            state={"running": {"startedAt": at_s(kill_at + 11)}}, restarts=1)
c.write(pod, node=c.node_obj(1024 * GIB), expected={
    "about": "The job stages its shards in an emptyDir with medium: Memory (sizeLimit 48Gi) mounted at /staging: the files are charged to the pod's memory cgroup, survive container restarts and show as shmem in the killed instance's samples (40.7 GiB at the kill) and as the victim's shmem-rss, not in the restarted instance. The finding names the volume and its sizeLimit and says that the staged data counts against the limit.",
    "findings": [{
        "kind": "oom_killed", "confidence": "high", "container": "trainer",
        "summary_contains": ["in shared memory",
                             "the memory-backed volume staging (emptyDir medium: Memory, sizeLimit 48Gi, mounted at /staging)",
                             "survives container restarts", "shmem-rss 38.2 GiB"],
        "evidence_names": ["memory-backed volume", "composition at the peak"],
    }],
})

# --------------------------------------------------------------------------
# Mechanism 4: an OOMKilled reason on exit 143. A DataLoader worker was
# OOM-killed earlier (the container lived on); later the pod was evicted
# through the Eviction API (a node drain): SIGTERM, exit 143, and containerd
# still labelled the exit OOMKilled.
def evicted_pod(c, exit_at, state, **kw):
    """The trainer's pod failed by an eviction through the Eviction API at `exit_at` (a node drain): its
    DisruptionTarget condition and the kubelet's stop event."""
    pod = c.pod([trainer("48Gi", "24Gi")], state=state,
                conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                             "message": "Eviction API: evicting", "lastTransitionTime": at_s(exit_at - 30)}],
                pod_status={"phase": "Failed"}, **kw)
    return pod, [event(c, exit_at - 30, "Killing", "Stopping container trainer")]


def sticky_case(name, with_agent, kill_at=1800, exit_at=4000, every=10):
    c = Case(name)
    limit = 48 * GIB
    for i in range(0, exit_at - 5, every):
        u = 40 * GIB if i < kill_at else 33 * GIB
        c.sample(i, c.old_id, u, u - 2 * GIB, 2 * GIB, 0, limit, oom_kill=0 if i < kill_at else 1)
    window = [point(kill_at - 30 + s, 47 * GIB + 900 * MIB, 46 * GIB, 2 * GIB, 0, psi_total=s * 4_000, avg10=9.0)
              for s in range(31)]
    c.kill(kill_at, c.old_id, limit, victim(8821, "pt_data_worker", 7 * GIB + 300 * MIB, 30 * MIB, 0, 979),
           window, oom_kill=1, oom_group_kill=0)
    pod, events = evicted_pod(c, exit_at, {"terminated": last_oom(c, 0, exit_at, code=143)},
                              last=None, restart="Never", restarts=0)
    return c, pod, events


c, pod, events = sticky_case("oom-status-sticky-143-agent", True)
c.write(pod, events=events, node=c.node_obj(512 * GIB), expected={
    "about": "Exit 143 labelled OOMKilled: a DataLoader worker was OOM-killed 37 minutes earlier (the agent saw it; the container lived on), and containerd kept the OOMKilled flag until the container exited. This exit was SIGTERM from an eviction through the Eviction API (DisruptionTarget condition). The worker's kill, saying the later exit's label comes from it and what the exit really was; and the failed pod, whose root cause is the eviction (not the earlier kill: the label is sticky, the exit is SIGTERM).",
    "findings": [{
        "kind": "oom_killed_worker", "confidence": "high", "container": "trainer",
        "summary_contains": ["pt_data_worker (pid 8821", "at its 48Gi memory limit", "exited with code 143",
                             "which the runtime still labelled OOMKilled",
                             "exit 143 is SIGTERM", "EvictionByEvictionAPI"],
    }, {
        "kind": "container_failed", "confidence": "high", "container": "trainer",
        "summary_contains": ["code 143", "Eviction API"], "caused_by": [],
    }],
})

c, pod, events = sticky_case("oom-status-sticky-143-no-agent", False)
c.write(pod, events=events, node=c.node_obj(512 * GIB), agent=False, expected={
    "about": "The same exit without the agent's records: exit 143 with reason OOMKilled is not an OOM kill of the main process (that is SIGKILL, 137); the label is the runtime's sticky flag from an earlier kill of a process in the container, and the exit's real reason is the eviction (DisruptionTarget). Medium: the earlier kill itself is not in the evidence; never a confident oom_killed. The failed pod is a root of its own: the eviction, not an OOM.",
    "findings": [{
        "kind": "oom_status_without_kill", "confidence": "medium", "container": "trainer",
        "summary_contains": ["exit code 143 is not the SIGKILL (137) of an OOM kill",
                             "left from an earlier kill", "EvictionByEvictionAPI"],
        "evidence_names": ["real reason for this exit"],
    }, {
        "kind": "container_failed", "confidence": "high", "container": "trainer",
        "summary_contains": ["code 143", "Eviction API"], "caused_by": [],
    }],
    "gaps": ["agent"],
})

# The same worker kill 30 hours before the eviction (a long pretraining
# run; the agent kept a sample every ten minutes): the kill is older than
# a day, but the exit it labelled is not, so it still explains the label.
c, pod, events = sticky_case("oom-status-sticky-143-kill-days-earlier", True, kill_at=1800,
                             exit_at=1800 + 30 * 3600, every=600)
c.write(pod, events=events, node=c.node_obj(512 * GIB), expected={
    "about": "Exit 143 labelled OOMKilled after an eviction, where the DataLoader worker's OOM kill that left the flag happened 30 hours earlier in the same container instance (the agent recorded it with the instance's container ID). A kill older than a day is history, except for the exit it labelled: the worker's kill is reported and names the later exit's label and real reason, as when the kill is recent.",
    "findings": [{
        "kind": "oom_killed_worker", "confidence": "high", "container": "trainer",
        "summary_contains": ["pt_data_worker (pid 8821", "exited with code 143",
                             "which the runtime still labelled OOMKilled", "EvictionByEvictionAPI"],
    }, {
        "kind": "container_failed", "confidence": "high", "container": "trainer",
        "summary_contains": ["code 143", "Eviction API"], "caused_by": [],
    }],
})

# An earlier instance's kill: the Job (restartPolicy OnFailure) was
# OOM-killed once (exit 137, lastState); the restarted instance was then
# evicted (exit 143), and containerd labelled that exit OOMKilled too: a
# worker of the new instance was killed at the same limit, which the
# status does not show (no agent on the node). The flag is per instance,
# so the earlier kill did not set it, but it shows the limit is reached.
c = Case("oom-status-sticky-143-earlier-instance")
first_kill, evicted_at = 1800, 5200
c.new_id = h64(c.name + "second")
pod, events = evicted_pod(
    c, evicted_at, {"terminated": {"containerID": f"containerd://{c.new_id}", "exitCode": 143, "reason": "OOMKilled",
                                   "startedAt": at_s(first_kill + 12), "finishedAt": at_s(evicted_at)}},
    restart="OnFailure", restarts=1, last=last_oom(c, 0, first_kill))
c.write(pod, events=events, node=c.node_obj(512 * GIB), agent=False, expected={
    "about": "Two instances of one Job container, no agent: the first ended OOMKilled with exit 137 (a kill at the 48Gi limit), the second was evicted (DisruptionTarget) and exited 143, also labelled OOMKilled. The second exit is not an OOM kill; its label is the runtime's flag from a kill inside that instance, which the evidence does not show, and the finding names the earlier instance's kill, which shows the container's processes reach the limit. The first exit is an oom_killed from the status alone; the failed pod's root is the eviction.",
    "findings": [{
        "kind": "oom_status_without_kill", "confidence": "medium", "container": "trainer",
        "summary_contains": ["exit code 143 is not the SIGKILL (137) of an OOM kill",
                             "an earlier instance of the container was OOM-killed",
                             "ended OOMKilled with exit 137", "EvictionByEvictionAPI"],
        "evidence_names": ["earlier OOM kill of the container", "real reason for this exit"],
    }, {
        "kind": "oom_killed", "confidence": "medium", "container": "trainer",
    }, {
        "kind": "container_failed", "confidence": "high", "container": "trainer",
        "summary_contains": ["code 143", "Eviction API"], "caused_by": [],
    }],
    "gaps": ["agent"],
})

# --------------------------------------------------------------------------
# Mechanism 1, node-wide: the node (256 GiB) ran out; the kernel chose the
# Burstable trainer (request 8Gi: oom_score_adj 1000 - 1000*8/256 = 969)
# while it used 11.3 GiB of its own 48 GiB limit.
c = Case("oom-node-burstable-victim")
limit = 48 * GIB
kill_at = 1200
for i in range(0, kill_at - 60, 10):
    c.sample(i, c.old_id, 11 * GIB + 300 * MIB, 10 * GIB + 300 * MIB, GIB, 0, limit)
window = [point(kill_at - 60 + s, 11 * GIB + 300 * MIB, 10 * GIB + 300 * MIB, GIB, 0,
                psi_total=s * 30_000, avg10=30.0) for s in range(61)]
c.kill(kill_at, c.old_id, limit, victim(9300, "python3", 10 * GIB + 250 * MIB, 40 * MIB, 0, 969), window,
       oom_kill=1, oom_group_kill=0, constraint="node")
pod = c.pod([trainer("48Gi", "8Gi")], last=last_oom(c, 0, kill_at + 1),
            state={"running": {"startedAt": at_s(kill_at + 12)}}, restarts=1)
c.write(pod, node=c.node_obj(256 * GIB), expected={
    "about": "Node-wide OOM (CONSTRAINT_NONE): the trainer was killed while using 11.3 GiB of its own 48 GiB limit. The kernel chose it for its oom_score_adj 969, which the kubelet derives from its small request (8Gi of a 256 GiB node: 1000 - 1000*8/256 = 969). The finding blames the node, names the victim, why it was chosen and how far below its limit it was.",
    "findings": [{
        "kind": "oom_node", "confidence": "high", "container": "trainer",
        "summary_contains": ["ran out of memory as a whole", "process python3 (pid 9300",
                             "It was using 11.3 GiB", "below its own 48Gi limit", "oom_score_adj 969",
                             "1000 - 1000 × 8Gi / 256 GiB = 969"],
    }],
})
