import os, sys, math; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen import *
import datetime as dt
RUN_CONDS = lambda at, ready: [cond("PodReadyToStartContainers", "True", "2026-11-20T08:00:02Z"), cond("Initialized", "True", "2026-11-20T08:00:00Z"),
      cond("Ready", "True" if ready else "False", at, None if ready else "ContainersNotReady", None if ready else "containers with unready status: [trainer]"),
      cond("ContainersReady", "True" if ready else "False", at, None if ready else "ContainersNotReady", None if ready else "containers with unready status: [trainer]"),
      cond("PodScheduled", "True", "2026-11-20T08:00:00Z")]

GiB = 1 << 30
def psi(v=0.0, tot=0): return {"some": {"avg10": v, "avg60": v, "avg300": v, "total_us": tot}, "full": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total_us": 0}}
def cref(puid, c):
    return {"cgroup_path": f"/kubepods.slice/kubepods-pod{puid.replace('-', '_')}.slice/cri-containerd-{c}.scope",
            "pod_uid": puid, "container_id": c, "qos": "guaranteed", "runtime": "containerd", "driver": "systemd"}
def csample(t, puid, c, usage, limit, anon, file, cpu_us, shmem=0, mpsi=0.0):
    r = {"kind": "container_sample", "time": fmtms(t)}; r.update(cref(puid, c))
    r.update({"cgroup_version": "v2", "memory": {"usage_bytes": usage, "limit_bytes": limit, "peak_bytes": None, "anon_bytes": anon, "file_bytes": file, "shmem_bytes": shmem,
              "events": {"oom": 0, "oom_kill": 0, "oom_group_kill": 0, "max": 0, "high": 0, "under_oom": None, "failcnt": None}},
              "cpu": {"usage_us": cpu_us, "nr_throttled": 0, "throttled_us": 0},
              "pressure": {"memory": psi(mpsi), "cpu": psi(), "io": psi()}, "pressure_scope": "container"})
    return r
def gsample(t, idx, u, util, used, power, procs, holders):
    return {"kind": "gpu_sample", "time": fmtms(t), "index": idx, "uuid": u, "parent_uuid": None, "name": "NVIDIA H100 80GB HBM3",
            "pci_bus_id": f"00000000:{0x18 + 0x10*idx:02X}:00.0", "utilization_gpu_percent": util, "utilization_memory_percent": util // 2,
            "memory_total_bytes": 85520809984, "memory_used_bytes": used, "power_draw_watts": power, "power_limit_watts": 700.0,
            "temperature_celsius": 40 + util // 3, "sm_clock_mhz": 1980 if util else 345, "persistence_mode": True, "processes": procs, "holders": holders, "simulated": False}
SRC = lambda t: [{"kind": "source", "time": t, "source": s, "state": "ok", "reason": None} for s in ("cgroup", "kmsg", "psi", "node", "nvml")]

# 10. Healthy vLLM
name = "vllm-llama3-8b-7c9f6d5b8-x2k4p"; img = "vllm/vllm-openai:v0.6.4"; puid = uid(name); c = cid(name)
gpu = "GPU-1c9e7a42-83d0-4b6f-a5e2-90d7f3b8c614"
probe = {"readinessProbe": {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"}, "periodSeconds": 10, "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 1},
         "livenessProbe": {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"}, "initialDelaySeconds": 300, "periodSeconds": 20, "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 5}}
p = pod(name, "serving", "2026-11-20T07:10:00Z", owner("ReplicaSet", "vllm-llama3-8b-7c9f6d5b8", "apps/v1"),
        [container("vllm", img, mem="32Gi", cpu="8", probe=probe, command=["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "meta-llama/Meta-Llama-3-8B-Instruct", "--gpu-memory-utilization", "0.9"])],
        "gpu-node-2",
        pstatus("Running", [cond("PodReadyToStartContainers", "True", "2026-11-20T07:10:03Z"), cond("Initialized", "True", "2026-11-20T07:10:00Z"),
                            cond("Ready", "True", "2026-11-20T07:12:31Z"), cond("ContainersReady", "True", "2026-11-20T07:12:31Z"), cond("PodScheduled", "True", "2026-11-20T07:10:00Z")],
                [cstatus("vllm", img, {"running": {"startedAt": "2026-11-20T07:10:04Z"}}, restarts=0, ready=True, started=True, cidkey=name)],
                "2026-11-20T07:10:00Z"), restart="Always")
p["metadata"]["labels"] = {"app": "vllm-llama3-8b", "pod-template-hash": "7c9f6d5b8"}
ev = [event(p, "Unhealthy", "Readiness probe failed: Get \"http://10.244.3.17:8000/health\": dial tcp 10.244.3.17:8000: connect: connection refused", "2026-11-20T07:10:15Z", "2026-11-20T07:12:21Z", 13, host="gpu-node-2", field="spec.containers{vllm}")]
t0 = T("2026-11-20T09:30:00Z"); agent = SRC("2026-11-20T07:00:00.000Z")
holders = [{"namespace": "serving", "pod": name, "container": "vllm", "resource_name": "nvidia.com/gpu", "device_id": gpu, "replica": None}]
cpu = 7_200_000_000
for i in range(46):
    t = t0 + dt.timedelta(seconds=60 * i)
    util = 60 + (i * 37) % 31
    used = 77_000_000_000 + (i % 3) * 10_000_000
    proc = [dict({"pid": 212, "used_memory_bytes": used - 600_000_000, "sm_util_percent": util, "mem_util_percent": util // 2}, **cref(puid, c))]
    agent.append(gsample(t, 0, gpu, util, used, 330.0 + util * 3.1, proc, holders))
    cpu += 60_000_000 + (i % 5) * 4_000_000
    agent.append(csample(t, puid, c, 6 * GiB + (i % 4) * 50_000_000, 32 * GiB, 5 * GiB + (i % 4) * 50_000_000, GiB, cpu))
write("real-healthy-vllm-serving",
      "A vLLM server that has been Ready for hours: GPU 60-90 % busy at 420-620 W, memory held at 90 % by design (--gpu-memory-utilization 0.9), CPU about a core. The readiness failures while the model loaded are two hours old and stopped once it was up. Healthy: no finding.",
      [], {"pod.json": p, "events.json": elist(ev), "node.json": node("gpu-node-2"), "agent.jsonl": jsonl(agent)})

# 11. Job that completed hours ago, after two early failures
name = "preprocess-shards-0-4kq2n"; img = "registry.example.com/ml/preprocess:3.1.0"; gpu = "GPU-5a0f4c2e-9d71-43b8-b6e0-1f2a3c4d5e6f"
p = pod(name, "ml", "2026-11-20T03:00:00Z", owner("Job", "preprocess-shards"),
        [container("preprocess", img, command=["python", "tokenize_shards.py"])], "gpu-node-7",
        pstatus("Succeeded", [cond("PodReadyToStartContainers", "False", "2026-11-20T05:02:41Z"), cond("Initialized", "True", "2026-11-20T03:00:00Z", "PodCompleted"),
                              cond("Ready", "False", "2026-11-20T05:02:41Z", "PodCompleted"), cond("ContainersReady", "False", "2026-11-20T05:02:41Z", "PodCompleted"),
                              cond("PodScheduled", "True", "2026-11-20T03:00:00Z")],
                [cstatus("preprocess", img, term(0, "Completed", "2026-11-20T03:02:10Z", "2026-11-20T05:02:40Z", name + "2"),
                         last=term(1, "Error", "2026-11-20T03:01:20Z", "2026-11-20T03:01:41Z", name + "1"), restarts=2, cidkey=name + "2")],
                "2026-11-20T03:00:00Z"), restart="OnFailure")
t0 = T("2026-11-20T09:30:00Z"); agent = SRC("2026-11-20T02:00:00.000Z")
for i in range(41):
    agent.append(gsample(t0 + dt.timedelta(seconds=60 * i), 1, gpu, 0, 524_288_000, 69.5, [], []))
write("real-healthy-job-completed-hours-ago",
      "A Job pod that failed twice at start (exit 1, three minutes in), then ran two hours and exited 0 at 05:02; it is Succeeded and holds nothing. The GPU it used sits idle with no holder, which is not this pod's waste. No finding: the early exits are history of a run that finished.",
      [], {"pod.json": p, "events.json": elist([]), "node.json": node("gpu-node-7"), "agent.jsonl": jsonl(agent)})

# 12. Node: allocatable 7 of 8 after XID 79
gpu = "GPU-b83e1d7a-2c64-4f90-8a1b-6e5d4c3b2a19"
agent = SRC("2026-11-20T00:00:00.000Z") + [
    {"kind": "xid", "time": "2026-11-20T03:12:44.318Z", "gpu_uuid": gpu, "gpu_index": 5, "xid": 79, "count": 1, "holders": [], "simulated": False},
    {"kind": "gpu_count_changed", "time": "2026-11-20T03:13:14.002Z", "before": 8, "after": 7, "simulated": False}]
n = node("gpu-node-3", alloc=7, heartbeat="2026-11-20T10:00:00Z")
write("real-node-xid79-allocatable-7",
      "Node-only bundle (kubectl get nodes + the agent's incidents): at 03:12 GPU 5 logged XID 79 (fell off the bus) while idle, NVML's count went 8 -> 7, and the device plugin reports it unhealthy so allocatable is 7 of capacity 8. gpu_lost for the GPU (XID 79 is its evidence) and gpu_unhealthy for the node naming it, both high; no pod is affected. Chains: the consequence is kept and linked to its cause. The XID 79 is the root, gpu_lost its consequence.",
      [{"kind": "gpu_lost", "confidence": "high", "gpu": gpu, "summary_contains": [gpu], "caused_by": ["gpu_xid"]},
       {"kind": "gpu_unhealthy", "confidence": "high", "node": "gpu-node-3", "gpu": gpu, "summary_contains": ["7 of its 8"]},
       {"kind": "gpu_xid", "confidence": "high", "gpu": gpu, "summary_contains": ["XID 79"], "caused_by": []}],
      {"nodes.json": elist([n]), "agent-gpu-node-3.jsonl": jsonl(agent)})

# 13. cgroup v2 group OOM kill; victim is a DataLoader worker, the whole container died
name = "train-vit-h-0-p7c4x"; img = "registry.example.com/ml/vision-train:5.0.2"; puid = uid(name)
c1, c2 = cid(name + "1"), cid(name + "2"); lim = 64 * GiB
p = pod(name, "ml", "2026-11-20T09:05:00Z", owner("Job", "train-vit-h"),
        [container("trainer", img, mem="64Gi", cpu="16", command=["python", "train.py", "--workers", "12"])], "gpu-node-1",
        pstatus("Running", RUN_CONDS("2026-11-20T11:02:12Z", True),
                [cstatus("trainer", img, {"running": {"startedAt": "2026-11-20T11:02:11Z"}}, last=term(137, "OOMKilled", "2026-11-20T09:05:20Z", "2026-11-20T11:02:05Z", name + "1"),
                         restarts=1, ready=True, started=True, cidkey=name + "2")], "2026-11-20T09:05:00Z"), restart="OnFailure")
kill = T("2026-11-20T11:02:04Z") + dt.timedelta(milliseconds=912)
agent = SRC("2026-11-20T09:00:00.000Z"); cpu = 0
for i in range(12):   # samples every 10 s before the kill, last one 2 s before
    t = kill - dt.timedelta(seconds=112 - 10 * i)
    anon = int((52 + i * 0.9) * GiB); cpu += 150_000_000
    agent.append(csample(t, puid, c1, anon + 5 * GiB, lim, anon, 5 * GiB, cpu, shmem=3 * GiB, mpsi=0.5 * i))
window = []
for i in range(31):
    t = kill - dt.timedelta(seconds=30 - i); anon = int((61.0 + i * (lim / GiB - 61.0 - 0.2) / 30 - 5.0) * GiB)
    window.append({"time": fmtms(t), "usage_bytes": min(anon + 5 * GiB, lim), "anon_bytes": anon, "file_bytes": 5 * GiB - i * 30_000_000, "shmem_bytes": 3 * GiB,
                   "memory_some_avg10": 5.0 + i, "memory_some_total_us": 1000 * i * i, "memory_full_total_us": 400 * i * i})
k = {"kind": "oom_kill", "time": fmtms(kill), "detected_at": fmtms(kill + dt.timedelta(milliseconds=3)), "detected_by": "notification"}
k.update(cref(puid, c1))
k.update({"cgroup_version": "v2", "limit_bytes": lim, "peak_bytes": lim, "oom_kill": 1, "oom_group_kill": 1, "constraint": "memcg",
          "victim": {"pid": 4187, "comm": "pt_data_worker", "total_vm_bytes": 21_474_836_480, "anon_rss_bytes": 7_516_192_768, "file_rss_bytes": 94_371_840,
                     "shmem_rss_bytes": 1_073_741_824, "uid": 1000, "pgtables_bytes": 18_874_368, "oom_score_adj": 999},
          "trigger_comm": "python", "kernel_usage_bytes": lim, "kernel_limit_bytes": lim, "window": window, "pressure_scope": "container"})
agent.append(k)
cpu = 0
for i in range(8):   # the restarted container
    t = T("2026-11-20T11:02:15Z") + dt.timedelta(seconds=10 * i); cpu += 400_000_000
    anon = int((4 + 2.5 * i) * GiB)
    agent.append(csample(t, puid, c2, anon + GiB, lim, anon, GiB, cpu))
write("real-oom-group-kill-dataloader-victim",
      "cgroup v2 node, Kubernetes >= 1.28 with containerd: memory.oom.group=1, so when the trainer hit its 64 GiB limit the kernel chose a DataLoader worker (pt_data_worker) as the victim and then killed every task in the cgroup (oom_group_kill 1). The container died (OOMKilled, exit 137, restarted at 11:02:11); the samples after the kill are the NEW container. oom_killed, high - not oom_killed_worker: nothing of the old container lived on.",
      [{"kind": "oom_killed", "confidence": "high", "container": "trainer",
        "summary_contains": ["at its 64Gi memory limit", "pt_data_worker (pid 4187: anon-rss 7 GiB",
                             "memory.oom.group is set"],
        "evidence_contains": {"exit code": "137 (OOMKilled)",
                              "kernel report: memcg usage / limit": "64 GiB / 64 GiB"}}],
      {"pod.json": p, "events.json": elist([]), "node.json": node("gpu-node-1"), "agent.jsonl": jsonl(agent)})

# 14. NFS dataset volume: mount.nfs timed out
name = "train-sd-xl-0-b5n8r"; img = "registry.example.com/ml/diffusion:1.2.0"
vols = [{"name": "datasets", "nfs": {"server": "10.0.3.15", "path": "/exports/datasets", "readOnly": True}}]
p = pod(name, "ml", "2026-11-20T09:30:00Z", owner("Job", "train-sd-xl"),
        [container("trainer", img, mounts=[{"mountPath": "/data", "name": "datasets", "readOnly": True}], command=["accelerate", "launch", "train.py"])], "gpu-node-4",
        pstatus("Pending", [cond("PodReadyToStartContainers", "False", "2026-11-20T09:30:00Z"), cond("Initialized", "True", "2026-11-20T09:30:00Z"),
                            cond("Ready", "False", "2026-11-20T09:30:00Z", "ContainersNotReady", "containers with unready status: [trainer]"),
                            cond("ContainersReady", "False", "2026-11-20T09:30:00Z", "ContainersNotReady", "containers with unready status: [trainer]"),
                            cond("PodScheduled", "True", "2026-11-20T09:30:00Z")],
                [cstatus("trainer", img, {"waiting": {"reason": "ContainerCreating"}})], "2026-11-20T09:30:00Z"), volumes=vols, restart="OnFailure")
m = (f"MountVolume.SetUp failed for volume \"datasets\" : mount failed: exit status 32\nMounting command: mount\nMounting arguments: -t nfs -o ro 10.0.3.15:/exports/datasets "
     f"/var/lib/kubelet/pods/{uid(name)}/volumes/kubernetes.io~nfs/datasets\nOutput: mount.nfs: Connection timed out\n")
ev = [event(p, "Scheduled", f"Successfully assigned ml/{name} to gpu-node-4", "2026-11-20T09:30:00Z", typ="Normal", comp="default-scheduler"),
      event(p, "FailedMount", m, "2026-11-20T09:32:03Z", "2026-11-20T10:12:20Z", 19, host="gpu-node-4"),
      event(p, "FailedMount", "Unable to attach or mount volumes: unmounted volumes=[datasets], unattached volumes=[], failed to process volumes=[]: timed out waiting for the condition", "2026-11-20T09:32:03Z", "2026-11-20T10:11:58Z", 18, host="gpu-node-4")]
write("real-mount-nfs-timeout",
      "The dataset NFS server (10.0.3.15) does not answer from gpu-node-4 (security group / export / server down): mount.nfs times out, exit 32, and the pod stays ContainerCreating. mount_failed, high, naming the volume and quoting mount.nfs.",
      [{"kind": "mount_failed", "confidence": "high", "summary_contains": ["datasets", "Connection timed out"]}],
      {"pod.json": p, "events.json": elist(ev), "node.json": node("gpu-node-4")})
