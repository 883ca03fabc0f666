import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *

T0 = T  # parse "YYYY-mm-ddTHH:MM:SSZ"
def td(**k): return dt.timedelta(**k)

# ---------------------------------------------------------------------------
# 1. Azure/AKS#5434: four OOM kills in one container, no group kill, pod lives on.
case = "public-aks-5434-flink-worker-kills-no-group"
name = "flink-taskmanager-6f9c7d8b45-8kq2v"; ns = "flink"; nd = "aks-flink-19626538-vmss0000q2"
img = "flink:1.18.1-scala_2.12-java11"; puid = uid(name); c = cid(name)
ctr = container("taskmanager", img, gpu=0, mem="5Gi", cpu="2", command=["/docker-entrypoint.sh", "taskmanager"])
ctr["resources"] = {"limits": {"memory": "5Gi"}, "requests": {"cpu": "2", "memory": "5Gi"}}
p = pod(name, ns, "2025-11-10T08:00:00Z", owner("ReplicaSet", "flink-taskmanager-6f9c7d8b45", "apps/v1"), [ctr], nd,
        pstatus("Running", [cond("Initialized", "True", "2025-11-10T08:00:00Z"), cond("Ready", "True", "2025-11-10T08:00:41Z"),
                            cond("ContainersReady", "True", "2025-11-10T08:00:41Z"), cond("PodScheduled", "True", "2025-11-10T08:00:00Z")],
                [cstatus("taskmanager", img, {"running": {"startedAt": "2025-11-10T08:00:40Z"}}, restarts=0, ready=True, started=True, cidkey=name)],
                "2025-11-10T08:00:00Z"), restart="Always")
p["status"]["qosClass"] = "Burstable"
lines = [
    "Memory cgroup out of memory: Killed process 19023 (bash) total-vm:15884kB, anon-rss:4480kB, file-rss:5632kB, shmem-rss:0kB, UID:9999 pgtables:72kB oom_score_adj:921",
    "Memory cgroup out of memory: Killed process 19024 (python) total-vm:1448016kB, anon-rss:350452kB, file-rss:67832kB, shmem-rss:0kB, UID:9999 pgtables:1208kB oom_score_adj:921",
    "Memory cgroup out of memory: Killed process 20649 (Flink-RocksDBSt) total-vm:6490924kB, anon-rss:4861148kB, file-rss:26308kB, shmem-rss:0kB, UID:9999 pgtables:10912kB oom_score_adj:921",
]
vics = [victim(19023, "bash", 15884, 4480, 5632, 0, 9999, 72, 921), victim(19024, "python", 1448016, 350452, 67832, 0, 9999, 1208, 921),
        victim(20649, "Flink-RocksDBSt", 6490924, 4861148, 26308, 0, 9999, 10912, 921)]
tk = T0("2025-11-11T09:41:07Z")
node_ev = []
for i, l in enumerate(lines):
    at = fmt(tk + td(seconds=i))
    node_ev.append({"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{nd}.{h(l,16)}", "namespace": "default", "uid": uid(l), "creationTimestamp": at},
                    "involvedObject": {"kind": "Node", "name": nd, "uid": nd}, "reason": "OOMKilling", "message": l, "type": "Warning", "count": 1,
                    "firstTimestamp": at, "lastTimestamp": at, "source": {"component": "kernel-monitor", "host": nd}, "reportingComponent": "kernel-monitor", "reportingInstance": nd})
ref = cref(puid, c, "burstable")
lim = 5 * GiB
ag = sources(tk - td(hours=2), nvml=False)
t = tk - td(minutes=10)
while t < tk:
    frac = (t - (tk - td(minutes=10))).total_seconds() / 600
    anon = int((3.9 + 1.0 * frac) * GiB)
    ag.append(csample(t, ref, anon + 120 * MiB, lim, anon, 120 * MiB, cpu_us=int(frac * 6e8), mpsi=20 * frac))
    t += td(seconds=10)
for i, v in enumerate(vics):
    ag.append(oomkill(tk + td(seconds=i), ref, lim, v, oom_kill=i + 1, group=0, trigger="Flink-RocksDBSt", usage=lim))
t = tk + td(seconds=10)
while t < tk + td(minutes=10):
    ag.append(csample(t, ref, 420 * MiB, lim, 300 * MiB, 120 * MiB, oom_kill=3, cpu_us=int(7e8), mpsi=0.0))
    t += td(seconds=10)
write(case, "Flink TaskManager (Burstable, oom_score_adj 921) on AKS 1.32 without memory.oom.group: at its 5Gi limit the kernel killed processes one OOM at a time (bash, python, Flink-RocksDBSt) and the container's main process lived on, so Kubernetes shows no restart. oom_killed_worker, high, naming the process that held the memory (Flink-RocksDBSt, 4.6 GiB anon of the 5 GiB charge) rather than the small helpers killed with it.",
      [{"kind": "oom_killed_worker", "confidence": "high", "container": "taskmanager", "summary_contains": ["Flink-RocksDBSt"]}],
      {"pod.json": p, "events.json": elist(node_ev), "node.json": node(nd, gpus=0, product="none"), "agent.jsonl": jsonl(ag)})
readme(case, "Processes OOM-killed one by one inside a container that lives on (no group kill).",
       ["Azure/AKS#5434, \"[BUG] Previously upgraded cluster to 1.32, however memory.oom.group is not enabled.\" https://github.com/Azure/AKS/issues/5434"],
       ["The node-problem-detector `OOMKilling` event messages in `events.json` (three of the four lines quoted in the thread; the fourth, for `tee`, is cut off in the thread and left out).",
        "The victims in `agent.jsonl` (pid, comm, total-vm, anon-rss, file-rss, shmem-rss, UID, pgtables, oom_score_adj) are those lines' numbers.",
        "Node name `aks-flink-19626538-vmss0000q2`."],
       ["The pod (a Flink TaskManager Deployment pod, namespace, image, 5Gi memory request and limit with a CPU request only, hence Burstable), chosen so that oom_score_adj 921 is what the kubelet computes on a ~63 GiB node.",
        "The agent's container samples (growth to the limit, and the container still running afterwards with ~300 MiB anon) and the times; the thread gives only '22m ago'.",
        "The node object (gen_real's `node()` with no GPUs)."],
       "Three separate kills (oom_kill counter 1, 2, 3; oom_group_kill 0) and samples of the same container after them: the container lived on, which is `oom_killed_worker` (a process killed at the limit while the container lived on), high, because the kernel's report names every victim. The decisive fact is the process that holds the memory: Flink-RocksDBSt (RocksDB state backend, 4.6 GiB anon of 5 GiB); bash and python are collateral. Without agent records the node-problem-detector events still name the victims (medium at most).")

# ---------------------------------------------------------------------------
# 2. kubernetes#140716: OOMKilled with exit 143 on a drain, no OOM.
case = "public-k8s-140716-oomkilled-143-drain"
name = "checkout-api-7d4b9c6f5-m2x8r"; ns = "shop"; nd = "ip-10-0-12-34.ec2.internal"
img = "registry.example.com/shop/checkout-api:4.12.0"; puid = uid(name); c = cid(name)
ctr = container("api", img, gpu=0, mem="2Gi", cpu="1", command=["/app/checkout-api"])
started, finished = "2026-07-18T22:03:11Z", "2026-07-19T09:14:52Z"
dmsg = "Eviction API: evicting"
p = pod(name, ns, "2026-07-18T22:03:00Z", owner("ReplicaSet", "checkout-api-7d4b9c6f5", "apps/v1"), [ctr], nd,
        pstatus("Failed", [cond("DisruptionTarget", "True", "2026-07-19T09:14:21Z", "EvictionByEvictionAPI", dmsg),
                           cond("Initialized", "True", "2026-07-18T22:03:00Z"), cond("Ready", "False", "2026-07-19T09:14:53Z", "PodFailed"),
                           cond("ContainersReady", "False", "2026-07-19T09:14:53Z", "PodFailed"), cond("PodScheduled", "True", "2026-07-18T22:03:00Z")],
                [cstatus("api", img, term(143, "OOMKilled", started, finished, name), cidkey=name)], "2026-07-18T22:03:00Z"), restart="Always")
ev = [event(p, "Killing", "Stopping container api", "2026-07-19T09:14:21Z", typ="Normal", host=nd, field="spec.containers{api}")]
ref = cref(puid, c)
ag = sources(T0("2026-07-19T08:00:00Z"), nvml=False)
t = T0("2026-07-19T08:44:50Z")
while t <= T0("2026-07-19T09:14:50Z"):
    ag.append(csample(t, ref, 780 * MiB, 2 * GiB, 610 * MiB, 170 * MiB, cpu_us=int((t - T0("2026-07-19T08:44:50Z")).total_seconds() * 2e5)))
    t += td(seconds=10)
write(case, "A node drain evicted the pod (DisruptionTarget: EvictionByEvictionAPI); the container exited 143 (SIGTERM, graceful) and containerd labelled it OOMKilled although the agent watched the container to the end at 780 MiB of 2 GiB with its oom_kill counter at 0. oom_status_without_kill, medium: the label is wrong, the exit is the eviction's SIGTERM.",
      [{"kind": "oom_status_without_kill", "confidence": "medium", "container": "api", "summary_contains": ["143", "evict"],
        "evidence_contains": {"exit code": "143 (OOMKilled)"}}],
      {"pod.json": p, "events.json": elist(ev), "node.json": node(nd, gpus=0, product="none"), "agent.jsonl": jsonl(ag)})
readme(case, "`OOMKilled` with exit code 143 after a drain: the label lies.",
       ["kubernetes/kubernetes#140716, \"Pods evicted/drained are reported as terminated.reason=OOMKilled with exitCode 143 (no memory pressure)\" https://github.com/kubernetes/kubernetes/issues/140716",
        "kubernetes/kops#18040 (the original report) https://github.com/kubernetes/kops/issues/18040",
        "kubernetes/kubernetes#140718 (the proposed kubelet fix, which states the mechanism: the runtime derives OOMKilled from the cgroup's cumulative oom_kill counter) https://github.com/kubernetes/kubernetes/pull/140718"],
       ["`containerStatuses[*].state.terminated.reason = \"OOMKilled\"` and `exitCode = 143` on pods terminated via node drain / eviction, with no evidence of memory pressure (memory well under the request, zero OOM events in cAdvisor, per the kOps report)."],
       ["Every object: pod name, image, limits, times, the `DisruptionTarget` condition with reason `EvictionByEvictionAPI` (what the eviction API sets on the pod), the kubelet's `Killing` event.",
        "The agent's samples: 780 MiB of 2 GiB for the last 30 minutes, oom_kill 0 (the thread says memory was well under the request and cAdvisor saw zero OOM events)."],
       "Exit 143 is SIGTERM: the kernel's OOM killer sends SIGKILL (137), so this exit was not an OOM kill. The agent watched the instance until it stopped and its oom_kill counter never moved, and the pod carries the drain's DisruptionTarget condition. Expected: `oom_status_without_kill` for container `api`, medium (the doc's ceiling for that kind), whose summary gives the 143 and the eviction as the real reason for this exit.")

# ---------------------------------------------------------------------------
# 3. kubernetes#131530: OOMKilled with exit code 0, phase Succeeded.
case = "public-k8s-131530-oomkilled-exit0-succeeded"
name = "batch-exporter-5f7c8d9b6-q7wzl"; ns = "default"; nd = "node-3"
img = "registry.example.com/batch/exporter:1.4.2"; puid = uid(name)
init = container("init-config", "busybox:1.36", gpu=0, mem="64Mi", cpu="100m", command=["sh", "-c", "cp /src/* /config/"])
ctr = container("exporter", img, gpu=0, mem="1Gi", cpu="500m", command=["/usr/local/bin/export-batch"])
p = pod(name, ns, "2025-04-29T05:43:20Z", owner("ReplicaSet", "batch-exporter-5f7c8d9b6", "apps/v1"), [ctr], nd,
        pstatus("Succeeded", [cond("Initialized", "True", "2025-04-29T05:43:31Z", "PodCompleted"), cond("Ready", "False", "2025-04-29T06:10:52Z", "PodCompleted"),
                              cond("ContainersReady", "False", "2025-04-29T06:10:52Z", "PodCompleted"), cond("PodScheduled", "True", "2025-04-29T05:43:20Z")],
                [cstatus("exporter", img, term(0, "OOMKilled", "2025-04-29T05:43:32Z", "2025-04-29T06:10:51Z", name), cidkey=name)],
                "2025-04-29T05:43:20Z",
                init=[cstatus("init-config", "busybox:1.36", term(0, "Completed", "2025-04-29T05:43:25Z", "2025-04-29T05:43:30Z", name + "i"), cidkey=name + "i")]),
        init=[init], restart="Always")
write(case, "The main container exited 0 (it finished by itself) yet containerd labelled it OOMKilled and the pod is Succeeded: the runtime's sticky flag from a kill of another process in the container earlier in its life. No node evidence: oom_status_without_kill, low, the exit code 0 quoted.",
      [{"kind": "oom_status_without_kill", "confidence": "low", "container": "exporter", "summary_contains": ["code 0"],
        "evidence_contains": {"exit code": "0 (OOMKilled)"}}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd, gpus=0, product="none")}, gaps=["agent"])
readme(case, "`OOMKilled` with exit code 0 and phase Succeeded.",
       ["kubernetes/kubernetes#131530, \"OOM killed status pod become successed phase\" https://github.com/kubernetes/kubernetes/issues/131530"],
       ["The container state: `Terminated`, `Reason: OOMKilled`, `Exit Code: 0`, `Started: Tue, 29 Apr 2025 13:43:32 +0800`, `Finished: Tue, 29 Apr 2025 14:10:51 +0800` (here in UTC), `Restart Count: 0`; `phase: Succeeded`; one init container and one main container; Kubernetes v1.28.2."],
       ["Pod, container and image names, limits, the init container's command, the node; no events (the thread shows none) and no agent records (the thread has no kernel log)."],
       "An exit code of 0 is the main process ending by itself; the OOM killer's SIGKILL would give 137. containerd sets OOMKilled from the container cgroup's OOM events, which an earlier kill of another process (a child) leaves set. With no node evidence the engine can only say the label and the exit disagree: `oom_status_without_kill`, low, quoting `0 (OOMKilled)` and saying the code (0) in the summary. Not `oom_killed`, not a crash.")

# ---------------------------------------------------------------------------
# 4. kubernetes#133839: node-wide OOM picks the pod far below its limit (oom_score_adj 515).
case = "public-k8s-133839-node-oom-score-adj"
nd = "mem-node-1"; ns = "analytics"
def burst_pod(name, req, lim_, restarts, state, last=None):
    ctr = container("worker", "registry.example.com/analytics/worker:2.1.0", gpu=0, mem=lim_, cpu="8", command=["java", "-jar", "/app/worker.jar"])
    ctr["resources"] = {"limits": {"memory": lim_}, "requests": {"cpu": "8", "memory": req}}
    pp = pod(name, ns, "2025-09-01T06:00:00Z", owner("StatefulSet", name.rsplit("-", 1)[0], "apps/v1"), [ctr], nd,
             pstatus("Running", [cond("Initialized", "True", "2025-09-01T06:00:00Z"), cond("Ready", "True", "2025-09-02T03:12:30Z"),
                                 cond("ContainersReady", "True", "2025-09-02T03:12:30Z"), cond("PodScheduled", "True", "2025-09-01T06:00:00Z")],
                     [cstatus("worker", "registry.example.com/analytics/worker:2.1.0", state, last, restarts=restarts, ready=True, started=True, cidkey=name + str(restarts))],
                     "2025-09-01T06:00:00Z"), restart="Always")
    pp["status"]["qosClass"] = "Burstable"
    return pp
p1 = burst_pod("pod-1-0", "62Gi", "100Gi", 1, {"running": {"startedAt": "2025-09-02T03:12:29Z"}},
               term(137, "OOMKilled", "2025-09-01T06:00:10Z", "2025-09-02T03:12:27Z", "pod-1-00"))
p2 = burst_pod("pod-2-0", "66Gi", "100Gi", 0, {"running": {"startedAt": "2025-09-01T06:00:10Z"}})
n = node(nd, gpus=0, product="none")
n["status"]["capacity"]["memory"] = "134000000Ki"; n["status"]["allocatable"]["memory"] = "133000000Ki"
tk = T0("2025-09-02T03:12:26Z")
r1 = cref(uid("pod-1-0"), cid("pod-1-00"), "burstable"); r2 = cref(uid("pod-2-0"), cid("pod-2-00"), "burstable")
ag = sources(tk - td(hours=1), nvml=False)
t = tk - td(minutes=15)
while t < tk:
    ag.append(csample(t, r1, 28 * GiB + 300 * MiB, 100 * GiB, 28 * GiB, 300 * MiB, cpu_us=1))
    frac = (t - (tk - td(minutes=15))).total_seconds() / 900
    a2 = int((96 + 4 * frac) * GiB) - 400 * MiB
    ag.append(csample(t, r2, a2 + 400 * MiB, 100 * GiB, a2, 400 * MiB, cpu_us=1))
    ag.append({"kind": "node_sample", "time": fmtms(t), "boot_id": "5d0f1c2e-7a43-4b8e-9f61-2c3d4e5f6a7b", "kernel_release": "6.8.0-1015-aws",
               "cgroup_mode": "v2", "mem_total_bytes": 134000000 * KiB, "mem_available_bytes": int((1.0 - frac) * 3 * GiB) + 200 * MiB,
               "pressure": {"memory": psi(30 * frac), "cpu": psi(), "io": psi()}})
    t += td(seconds=15)
ag.append(oomkill(tk, r1, 100 * GiB, victim(41877, "java", 31457280, 28 * 1024 * 1024, 10240, 0, 1000, 58000, 515),
                  constraint="node", oom_kill=1, trigger="java"))
write(case, "The node (128 GiB) ran out of memory as a whole: pod-2 had grown to its 100Gi limit, but the kernel killed pod-1's java (28 GiB, far below its own 100Gi limit) because the kubelet gave pod-1 the higher oom_score_adj (515 for a 62Gi request vs 484 for pod-2's 66Gi). oom_node, high, for pod-1's worker, saying why it was chosen (oom_score_adj 515) and that it was far below its limit.",
      [{"kind": "oom_node", "confidence": "high", "container": "worker", "summary_contains": ["oom_score_adj", "515"]}],
      {"pod.json": p1, "pods.json": {"apiVersion": "v1", "kind": "List", "items": [p1, p2], "metadata": {"resourceVersion": ""}},
       "events.json": elist([]), "node.json": n, "agent.jsonl": jsonl(ag)})
readme(case, "Node-wide OOM: the victim is chosen by oom_score_adj, not by who is over its request.",
       ["kubernetes/kubernetes#133839, \"Dynamic update oom_score_adj for burstable Pods\" https://github.com/kubernetes/kubernetes/issues/133839",
        "kubernetes/kubernetes#111356 (the kubelet's Burstable formula `min(max(2, 1000 - (1000 * memoryRequestBytes) / machineMemoryCapacityBytes), 999)`) https://github.com/kubernetes/kubernetes/issues/111356"],
       ["The scenario's figures: node memory 128Gi; pod-1 request 62Gi, limit 100Gi, oom_score_adj 515; pod-2 request 66Gi, limit 100Gi, oom_score_adj 484; pod-1 using 28Gi and pod-2 100Gi when a global OOM kills pod-1."],
       ["Pod, container and process names, the node's exact capacity (134000000Ki, ~127.8 GiB, so that the formula gives exactly 515 and 484), the kernel's `Killed process` figures (anon-rss 28 GiB, oom_score_adj 515), the node and container samples before the kill, the container's restart."],
       "`CONSTRAINT_NONE`: the node ran out, not pod-1's cgroup. The decisive facts are why the kernel chose pod-1's process (its oom_score_adj, 515, set from its memory request) and that it was far below its own 100Gi limit (28 GiB), while the neighbour pod-2 sat at its limit. Expected: `oom_node` for container `worker` of pod-1, high, summary naming oom_score_adj 515.")

# ---------------------------------------------------------------------------
# 5. kubernetes#117793 (comment): group kill since 1.28 kills the whole model server.
case = "public-k8s-117793-group-kill-model-server"
name = "query-engine-3"; ns = "engine"; nd = "mem-node-7"
img = "registry.example.com/engine/query-engine:8.4.0"; puid = uid(name)
ctr = container("engine", img, gpu=0, mem="96Gi", cpu="16", command=["/opt/engine/coordinator"])
tk = T0("2024-04-10T14:22:31Z")
p = pod(name, ns, "2024-04-08T09:00:00Z", owner("StatefulSet", "query-engine", "apps/v1"), [ctr], nd,
        pstatus("Running", [cond("Initialized", "True", "2024-04-08T09:00:00Z"), cond("Ready", "False", "2024-04-10T14:22:33Z", "ContainersNotReady", "containers with unready status: [engine]"),
                            cond("ContainersReady", "False", "2024-04-10T14:22:33Z", "ContainersNotReady", "containers with unready status: [engine]"), cond("PodScheduled", "True", "2024-04-08T09:00:00Z")],
                [cstatus("engine", img, {"running": {"startedAt": "2024-04-10T14:22:34Z"}},
                         term(137, "OOMKilled", "2024-04-08T09:00:12Z", "2024-04-10T14:22:32Z", name + "0"), restarts=1, ready=False, started=True, cidkey=name + "1")],
                "2024-04-08T09:00:00Z"), restart="Always")
ref = cref(puid, cid(name + "0"))
lim = 96 * GiB
ag = sources(tk - td(hours=1), nvml=False)
t = tk - td(minutes=20)
while t < tk:
    frac = (t - (tk - td(minutes=20))).total_seconds() / 1200
    anon = int((88 + 7.7 * frac) * GiB)
    ag.append(csample(t, ref, anon + 200 * MiB, lim, anon, 200 * MiB, cpu_us=int(frac * 1e10)))
    t += td(seconds=10)
win = [wpoint(tk - td(seconds=60 - i), int((95.5 + 0.5 * i / 60) * GiB), int((95.3 + 0.5 * i / 60) * GiB), 200 * MiB, some=5.0 + i / 3) for i in range(60)]
ag.append(oomkill(tk, ref, lim, victim(30412, "model-proc", 23068672, 19 * 1024 * 1024 + 512 * 1024, 8192, 0, 1000, 39000, 999),
                  oom_kill=14, group=1, trigger="model-proc", usage=lim, window=win, peak=lim))
t = tk + td(seconds=5)
ref2 = cref(puid, cid(name + "1"))
while t < tk + td(minutes=3):
    ag.append(csample(t, ref2, 600 * MiB, lim, 450 * MiB, 150 * MiB, cpu_us=1))
    t += td(seconds=10)
write(case, "Kubernetes 1.28 on cgroup v2 sets memory.oom.group=1: when the coordinator's container reached its 96Gi limit the kernel chose one model process (model-proc, pid 30412, 19.5 GiB anon) and then killed all 14 processes of the container (oom_group_kill 1), so the whole engine restarted. oom_killed, high, naming the chosen victim and the group kill.",
      [{"kind": "oom_killed", "confidence": "high", "container": "engine", "summary_contains": ["model-proc (pid 30412", "memory.oom.group"],
        "evidence_contains": {"exit code": "137 (OOMKilled)"}}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd, gpus=0, product="none"), "agent.jsonl": jsonl(ag)})
readme(case, "Group OOM kill (memory.oom.group = 1): one process chosen, every process killed.",
       ["kubernetes/kubernetes#117793, \"use the cgroup aware OOM killer if available\" (merged for 1.28), the comment of 2024-04-16 describing the outage after upgrading to 1.28 https://github.com/kubernetes/kubernetes/pull/117793",
        "kubernetes/kubernetes#117070 (the feature request quoting the kernel's memory.oom.group documentation) https://github.com/kubernetes/kubernetes/issues/117070"],
       ["The workload's shape: one pod runs a coordinator and one process per data model; before 1.28 an OOM killed one model process and the coordinator rescheduled it, after 1.28 the whole pod's processes are killed together."],
       ["Every object and figure: names, the 96Gi limit, 14 processes, the chosen victim `model-proc` (pid 30412, 19.5 GiB anon, oom_score_adj 999), the counters (oom_kill 14, oom_group_kill 1), the recorder window and the restarted instance's samples."],
       "With memory.oom.group set, the `oom-kill:` summary and the first `Killed process` line name the process the kernel chose; the other 13 are killed because of the group setting. The decisive facts: the chosen victim (model-proc, pid 30412), that the whole container was killed because of memory.oom.group (so the restart is of the whole engine, which is what changed in 1.28), and exit 137 (OOMKilled). Expected: `oom_killed`, high, for container `engine`.")

# ---------------------------------------------------------------------------
# 6. pytorch#8976 / kraken#266: a DataLoader worker killed at the limit; the Job's
# pod (restartPolicy Never) fails with exit 1; the termination message is the log tail.
case = "public-pytorch-8976-dataloader-worker-killed-job"
name = "train-htr-8m2kd"; ns = "research"; nd = "gpu-node-2"
img = "registry.example.com/research/kraken-train:4.3.13"; puid = uid(name); c = cid(name)
ctr = container("train", img, gpu=1, mem="32Gi", cpu="8", command=["ketos", "train", "--workers", "8", "-f", "binary", "/data/dataset.arrow"])
ctr["terminationMessagePolicy"] = "FallbackToLogsOnError"
msg = """  File "/usr/local/lib/python3.10/site-packages/torch/utils/data/dataloader.py", line 1133, in _try_get_data
    data = self._data_queue.get(timeout=timeout)
  File "/usr/local/lib/python3.10/queue.py", line 180, in get
    self.not_empty.wait(remaining)
  File "/usr/local/lib/python3.10/threading.py", line 324, in wait
    gotit = waiter.acquire(True, timeout)
  File "/usr/local/lib/python3.10/site-packages/torch/utils/data/_utils/signal_handling.py", line 66, in handler
    _error_if_any_worker_fails()
RuntimeError: DataLoader worker (pid 22048) is killed by signal: Killed.
"""
tk = T0("2026-03-02T23:23:41Z")
st = {"terminated": {"exitCode": 1, "reason": "OOMKilled", "message": msg, "startedAt": "2026-03-02T21:05:12Z", "finishedAt": "2026-03-02T23:23:43Z",
                     "containerID": "containerd://" + c}}
p = pod(name, ns, "2026-03-02T21:05:00Z", owner("Job", "train-htr"), [ctr], nd,
        pstatus("Failed", [cond("Initialized", "True", "2026-03-02T21:05:00Z"), cond("Ready", "False", "2026-03-02T23:23:44Z", "PodFailed"),
                           cond("ContainersReady", "False", "2026-03-02T23:23:44Z", "PodFailed"), cond("PodScheduled", "True", "2026-03-02T21:05:00Z")],
                [cstatus("train", img, st, cidkey=name)], "2026-03-02T21:05:00Z"), restart="Never")
ref = cref(puid, c)
lim = 32 * GiB
ag = sources(T0("2026-03-02T21:00:00Z"))
t = tk - td(minutes=10)
while t < tk:
    frac = (t - (tk - td(minutes=10))).total_seconds() / 600
    anon = int((27 + 4.8 * frac) * GiB)
    ag.append(csample(t, ref, anon + 200 * MiB, lim, anon, 200 * MiB, shmem=1 * GiB, cpu_us=int(frac * 4.8e9), mpsi=15 * frac))
    t += td(seconds=5)
win = [wpoint(tk - td(seconds=60 - i), int((31.4 + 0.6 * i / 60) * GiB), int((31.2 + 0.6 * i / 60) * GiB), 200 * MiB, 1 * GiB, some=10 + i / 4) for i in range(60)]
ag.append(oomkill(tk, ref, lim, victim(22048, "pt_data_worker", 9437184, 3407872, 90112, 262144, 1000, 7800, 0),
                  oom_kill=1, group=0, trigger="python", usage=lim, window=win, peak=lim))
t = tk + td(seconds=1)
ag.append(csample(t, ref, 29 * GiB, lim, int(27.8 * GiB), 200 * MiB, shmem=1 * GiB, oom_kill=1, cpu_us=int(5e9)))
write(case, "Job pod (restartPolicy Never) on a cgroup v2 node without group kill: at the 32Gi limit the kernel killed DataLoader worker pid 22048 (pt_data_worker); the trainer caught SIGCHLD and raised 'DataLoader worker (pid 22048) is killed by signal: Killed.', exiting 1 (containerd still labels the exit OOMKilled: the cgroup saw an OOM kill). The log tail is gone; with FallbackToLogsOnError the termination message holds it. oom_killed_worker, high, naming the worker and its pid (the log's pid); the single exit 1 of a Never pod is its consequence, not a crash loop.",
      [{"kind": "oom_killed_worker", "confidence": "high", "container": "train", "summary_contains": ["pt_data_worker", "22048"]}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd), "agent.jsonl": jsonl(ag)})
readme(case, "A DataLoader worker OOM-killed; the trainer exits 1; the only log is the termination message.",
       ["pytorch/pytorch#8976, \"RuntimeError: DataLoader worker is killed by signal: Killed.\" https://github.com/pytorch/pytorch/issues/8976",
        "mittagessen/kraken#266, \"RuntimeError: DataLoader worker (pid 22048) is killed by signal: Killed.\" (closed: \"It was a resource limit on the cluster\") https://github.com/mittagessen/kraken/issues/266",
        "FoNDUE-HTR/Documentation#13 (the same failure's traceback through dataloader.py `_try_get_data`) https://github.com/FoNDUE-HTR/Documentation/issues/13"],
       ["The error line `RuntimeError: DataLoader worker (pid 22048) is killed by signal: Killed.` and the pid 22048.",
        "The traceback's shape (`_try_get_data`, `signal_handling.py ... handler`, `_error_if_any_worker_fails()`); the file paths and line numbers are adapted to a python3.10 image."],
       ["The exit's reason `OOMKilled` with exit code 1: containerd's label when the container's cgroup saw an OOM kill during its life, whatever the exit code.",
        "That it ran as a Kubernetes Job with restartPolicy Never and `terminationMessagePolicy: FallbackToLogsOnError` (the termination message carries the log tail; no `logs/` file is in the bundle).",
        "The image, command (`ketos train`), 32Gi limit, times and the agent's records: the kernel's kill of `pt_data_worker` pid 22048 (anon 3.25 GiB, shmem 256 MiB), a container sample a second later with memory still in use (the trainer alive), then the exit."],
       "The kernel killed one worker (oom_kill 1, oom_group_kill 0) and the container lived on for two seconds: that is `oom_killed_worker`, high (the kernel report names the process). The decisive fact is the link between the log's pid and the kernel's victim: pt_data_worker, pid 22048. The exit 1 that failed the Job is that kill's consequence; a single exit of a Never pod is not a crash loop, so no `crash_loop` finding.")
amend(case, *failed_once("train", "oom_killed_worker", "the Job's pod failed once with the trainer's exit 1: the consequence of the worker's kill, which the trainer raised on."))

# ---------------------------------------------------------------------------
# 7. pytorch#5902: DataLoader workers' memory grows for hours (copy-on-read), then OOM.
case = "public-pytorch-5902-dataloader-leak-hours"
name = "train-parquet-4wq9z"; ns = "research"; nd = "gpu-node-5"
img = "registry.example.com/research/parquet-train:0.3.1"; puid = uid(name); c = cid(name)
ctr = container("trainer", img, gpu=1, mem="60Gi", cpu="16", command=["python", "train.py", "--num-workers", "8"])
t_start = T0("2026-05-04T08:00:00Z")
rate = 24 * GiB / 3600  # bytes per second: 5 GB -> 17 GB in 30 minutes
lim = 60 * GiB
t_kill = t_start + td(seconds=int((lim - 5 * GiB - 300 * MiB) / rate))
p = pod(name, ns, "2026-05-04T07:59:30Z", owner("Job", "train-parquet"), [ctr], nd,
        pstatus("Failed", [cond("Initialized", "True", "2026-05-04T07:59:30Z"), cond("Ready", "False", fmt(t_kill + td(seconds=2)), "PodFailed"),
                           cond("ContainersReady", "False", fmt(t_kill + td(seconds=2)), "PodFailed"), cond("PodScheduled", "True", "2026-05-04T07:59:30Z")],
                [cstatus("trainer", img, term(137, "OOMKilled", "2026-05-04T07:59:58Z", fmt(t_kill + td(seconds=1)), name), cidkey=name)],
                "2026-05-04T07:59:30Z"), restart="Never")
ref = cref(puid, c)
ag = sources(t_start - td(minutes=5))
t = t_start
while t < t_kill:
    grown = int((t - t_start).total_seconds() * rate)
    anon = 5 * GiB + grown
    if anon + 300 * MiB > lim: break
    ag.append(csample(t, ref, anon + 300 * MiB, lim, anon, 300 * MiB, cpu_us=int((t - t_start).total_seconds() * 1.2e7), mpsi=0.5))
    t += td(seconds=30)
win = []
for i in range(300):
    tt = t_kill - td(seconds=300 - i)
    anon = min(5 * GiB + int((tt - t_start).total_seconds() * rate), lim - 300 * MiB)
    win.append(wpoint(tt, anon + 300 * MiB, anon, 300 * MiB, some=min(40.0, i / 5)))
ag.append(oomkill(t_kill, ref, lim, victim(118, "pt_data_worker", 23068672, 6763520, 81920, 0, 1000, 14000, 0),
                  oom_kill=9, group=1, trigger="pt_data_worker", usage=lim, window=win, peak=lim))
write(case, "DataLoader with 8 workers over a pandas DataFrame: the workers' pages are copied on read (CPython refcounts), so anonymous memory rose steadily at ~22 GiB/h (5 GB to 17 GB in 30 minutes, as the thread measured) for 2h25m until the 60Gi limit, while the main process stayed flat; the kernel group-killed the container. oom_killed, high, told as a leak with its rate and the time to the limit (a bigger limit only postpones it).",
      [{"kind": "oom_killed", "confidence": "high", "container": "trainer", "summary_contains": ["leak"],
        "evidence_names": ["time to the limit at that rate"], "evidence_contains": {"exit code": "137 (OOMKilled)"}}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd), "agent.jsonl": jsonl(ag)})
readme(case, "A steady rise over hours (a leak), not a spike.",
       ["pytorch/pytorch#5902, \"DataLoader uses 3x more memory when num_workers > 0\" https://github.com/pytorch/pytorch/issues/5902"],
       ["The mechanism and the figures: with `num_workers > 0` main memory rises slowly from 5GB to 17GB over 30 minutes while the python process's own RSS stays flat at 5GB; with real data sets of 50GB it ends in an OOM after a while even with 60GB of memory."],
       ["That it ran in a Kubernetes Job pod with a 60Gi limit; the agent's 30-second samples (anonymous memory rising at 24 GB/h from 5 GiB, page cache flat at 300 MiB) for 2h25m, the 5-minute recorder window and the group kill (victim a `pt_data_worker`, oom_kill 9 = main + 8 workers, oom_group_kill 1)."],
       "Growth at a constant rate over 2h25m, anon rising and page cache flat, is a leak (here copy-on-read of the dataset in every worker), not a load step. Mechanism 2 of the issue: say which in the summary (\"leak\"), give the rate and the time to the limit (a bigger limit only postpones the kill). Expected: `oom_killed`, high, summary saying leak, evidence `time to the limit at that rate`, exit 137 (OOMKilled). The recorder window alone (5 minutes at the limit) cannot tell; the samples of the whole instance can.")
amend(case, *failed_once("trainer", "oom_killed", "the Job's pod failed once: the consequence of the OOM kill."))

# ---------------------------------------------------------------------------
# 8. kubernetes/website#36453: a memory-backed emptyDir fills the container's limit.
case = "public-k8s-website-36453-memory-emptydir-fluentbit"
name = "log-shipper-0"; ns = "logging"; nd = "node-2"
img = "fluent/fluent-bit:2.0.5"; puid = uid(name)
mounts = [{"mountPath": "/logs", "name": "empty-dir-volume"}]
ctr = container("fluentbit", img, gpu=0, mem="100Mi", cpu="100m", mounts=mounts)
ctr["resources"] = {"limits": {"cpu": "100m", "memory": "100Mi"}, "requests": {"cpu": "50m", "memory": "50Mi"}}
vols = [{"name": "empty-dir-volume", "emptyDir": {"medium": "Memory", "sizeLimit": "200Gi"}}]
tk = T0("2022-08-31T10:14:05Z")
p = pod(name, ns, "2022-08-31T09:00:00Z", owner("StatefulSet", "log-shipper", "apps/v1"), [ctr], nd,
        pstatus("Running", [cond("Initialized", "True", "2022-08-31T09:00:00Z"), cond("Ready", "True", "2022-08-31T10:14:09Z"),
                            cond("ContainersReady", "True", "2022-08-31T10:14:09Z"), cond("PodScheduled", "True", "2022-08-31T09:00:00Z")],
                [cstatus("fluentbit", img, {"running": {"startedAt": "2022-08-31T10:14:08Z"}},
                         term(137, "OOMKilled", "2022-08-31T09:00:05Z", "2022-08-31T10:14:06Z", name + "0"), restarts=1, ready=True, started=True, cidkey=name + "1")],
                "2022-08-31T09:00:00Z"), volumes=vols, restart="Always")
p["status"]["qosClass"] = "Burstable"
ref = cref(puid, cid(name + "0"), "burstable")
lim = 100 * MiB
ag = sources(T0("2022-08-31T09:00:00Z"), nvml=False)
t = T0("2022-08-31T09:00:10Z")
while t < tk:
    frac = (t - T0("2022-08-31T09:00:10Z")).total_seconds() / (tk - T0("2022-08-31T09:00:10Z")).total_seconds()
    sh = int(84 * MiB * frac)
    ag.append(csample(t, ref, 14 * MiB + sh + 1 * MiB, lim, 14 * MiB, sh + 1 * MiB, shmem=sh, cpu_us=int(frac * 3e8)))
    t += td(seconds=30)
win = [wpoint(tk - td(seconds=60 - i), lim - 200 * KiB, 14 * MiB, lim - 14 * MiB, 84 * MiB + 500 * KiB, some=12.0) for i in range(60)]
ag.append(oomkill(tk, ref, lim, victim(7712, "fluent-bit", 180224, 14336, 9216, 0, 0, 212, 984),
                  oom_kill=1, group=1, trigger="flb-pipeline", usage=lim, window=win, peak=lim))
ref2 = cref(puid, cid(name + "1"), "burstable")
t = tk + td(seconds=10)
while t < tk + td(minutes=2):
    ag.append(csample(t, ref2, 12 * MiB, lim, 11 * MiB, 1 * MiB, cpu_us=1))
    t += td(seconds=30)
write(case, "fluent-bit staged logs in an emptyDir with medium: Memory (sizeLimit 200Gi) mounted at /logs: the tmpfs pages are charged to the container that wrote them, so with a 100Mi limit the killed instance held 84 MiB of shmem and 14 MiB of its own; the restarted instance's samples no longer show it. oom_killed, high, naming the memory-backed volume and its sizeLimit (200Gi, far above the 100Mi limit it can never reach).",
      [{"kind": "oom_killed", "confidence": "high", "container": "fluentbit", "summary_contains": ["shared memory", "empty-dir-volume", "200Gi"]}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd, gpus=0, product="none"), "agent.jsonl": jsonl(ag)})
readme(case, "A memory-backed emptyDir (tmpfs) is charged to the writer's memory limit; the kill shows shmem.",
       ["kubernetes/website#36453, \"Unclear / misleading docs on attribution of memory that containers write to `emptyDir` volumes\" https://github.com/kubernetes/website/issues/36453",
        "kubernetes/website#36494 (\"`emptyDir.medium: Memory` ... the container that writes the data gets OOMKilled once it reaches only its own limit\") https://github.com/kubernetes/website/issues/36494"],
       ["The container `fluentbit` with limits cpu 100m / memory 100Mi and requests cpu 50m / memory 50Mi, mounting `/logs` from an EmptyDir volume with `Medium: Memory`, `SizeLimit: 200Gi` (from the thread's `kubectl describe`)."],
       ["The volume name: the thread shows `empty_dir_volume`, which is not a valid volume name (DNS label); it is `empty-dir-volume` here.",
        "The kill (the thread is about how the charge is attributed, not about one kill): the agent's samples with shmem growing to 84 MiB in the killed instance, the kernel report (fluent-bit, 14 MiB anon), the restart, and the new instance at 12 MiB. Image tag, names and times."],
       "tmpfs pages written to a `medium: Memory` emptyDir are charged to the memory cgroup of the container that wrote them and stay charged across its restart; they show as shmem in the killed instance's samples and not in the new one's. Expected: `oom_killed`, high, whose summary says the charge was shared memory and names the volume (`empty-dir-volume`) and its sizeLimit (200Gi, useless against a 100Mi limit). A bigger limit helps only if the staging does not grow with the data.")

# ---------------------------------------------------------------------------
# 9. pytorch/xla#5115: flat at 1.8 GB, then a step at a checkpoint save -> SIGKILL.
case = "public-pytorch-xla-5115-checkpoint-save-step"
name = "train-300m-0-x7kq2"; ns = "research"; nd = "cpu-node-3"
img = "registry.example.com/research/xla-train:2.0"; puid = uid(name); c = cid(name)
ctr = container("trainer", img, gpu=0, mem="12Gi", cpu="8", command=["python", "train.py", "--checkpoint-every", "100"])
tk = T0("2023-06-03T14:31:07Z")
p = pod(name, ns, "2023-06-03T13:58:00Z", owner("Job", "train-300m"), [ctr], nd,
        pstatus("Failed", [cond("Initialized", "True", "2023-06-03T13:58:00Z"), cond("Ready", "False", "2023-06-03T14:31:09Z", "PodFailed"),
                           cond("ContainersReady", "False", "2023-06-03T14:31:09Z", "PodFailed"), cond("PodScheduled", "True", "2023-06-03T13:58:00Z")],
                [cstatus("trainer", img, term(137, "OOMKilled", "2023-06-03T13:58:05Z", "2023-06-03T14:31:08Z", name), cidkey=name)], "2023-06-03T13:58:00Z"), restart="Never")
ref = cref(puid, c)
lim = 12 * GiB
ag = sources(T0("2023-06-03T13:58:00Z"), nvml=False)
t = T0("2023-06-03T13:58:30Z")
while t < tk - td(seconds=20):
    ag.append(csample(t, ref, int(1.8 * GiB) + 150 * MiB, lim, int(1.8 * GiB), 150 * MiB, cpu_us=int((t - T0("2023-06-03T13:58:30Z")).total_seconds() * 7e6)))
    t += td(seconds=30)
win = []
for i in range(120):
    tt = tk - td(seconds=120 - i)
    if i < 117: anon = int(1.8 * GiB)
    else: anon = int(1.8 * GiB) + int((i - 116) / 3 * (lim - 150 * MiB - int(1.8 * GiB)))
    win.append(wpoint(tt, anon + 150 * MiB, anon, 150 * MiB, some=0.0 if i < 117 else 30.0))
ag.append(oomkill(tk, ref, lim, victim(61, "python", 16777216, 12 * 1024 * 1024 - 160 * 1024, 10240, 0, 0, 24000, -997),
                  oom_kill=1, group=1, trigger="python", usage=lim, window=win, peak=lim))
write(case, "Memory flat at 1.8 GiB for 32 minutes, then a checkpoint save (a 3.5 GB state serialised with extra copies) took the trainer to its 12Gi limit in 3 s and the kernel killed it. A step, not a leak: oom_killed, high, whose summary gives the jump (about +10 GiB in 3 s) and does not call it a leak; the fix is the save (stream or shard it), not a limit sized for a leak.",
      [{"kind": "oom_killed", "confidence": "high", "container": "trainer", "summary_contains": ["GiB in"], "summary_excludes": ["leak"],
        "evidence_contains": {"exit code": "137 (OOMKilled)"}}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd, gpus=0, product="none"), "agent.jsonl": jsonl(ag)})
readme(case, "A step (a checkpoint save), not a leak.",
       ["pytorch/xla#5115, \"CPU memory spikes way more than needed during xm.save\" https://github.com/pytorch/xla/issues/5115",
        "pytorch/xla#5096 (the same run: the SIGKILL is sporadic, after some checkpoints, around the 1 GB checkpoint size; \"most common reason for SIGKILL is running out of the RAM\") https://github.com/pytorch/xla/issues/5096"],
       ["The figures: a 3.5 GB checkpoint (300M parameters x 4 bytes x 3 copies), the CPU side at 1.8 GB going into the checkpoint, 12 GB capacity, the memory spiking beyond capacity on the second or third checkpoint and a SIGKILL; no leak without checkpointing."],
       ["That it ran in a Kubernetes Job pod with a 12Gi limit (the thread ran on a TPU VM); the agent's 30-second samples flat at 1.8 GiB, the recorder window with the 3-second rise, the kernel's report and the times."],
       "Flat for half an hour, then the largest rise in the shortest time (about +10 GiB in 3 s) at the limit: a step. Mechanism 2 of the issue: the summary says which (the jump, `GiB in` as in \"+20 GiB in 2 s\") and must not call it a leak (`summary_excludes: leak`); the next steps point at what was loaded or written at once. Expected: `oom_killed`, high, exit 137 (OOMKilled).")
amend(case, *failed_once("trainer", "oom_killed", "the Job's pod failed once: the consequence of the OOM kill."))
