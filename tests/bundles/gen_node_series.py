#!/usr/bin/env python3
"""Writes the `oom-*`, `gpu-use-*` and `logs-*` test bundles.

Each case is a folder `tests/bundles/CASE/` with `bundle/` (what a person
would collect: `kubectl get pod -o json` > pod.json, `kubectl get events -o
json` > events.json, `kubectl get node -o json` > node.json, `gpuscope-agent
watch -o jsonl --samples` > agent.jsonl, `kubectl logs --previous` >
logs/CONTAINER.log) and `expected.json`.

The agent series are long (hours of GPU samples), so they are generated
here rather than typed; the output is deterministic (no clock, no random
state beyond a fixed seed) and committed. Re-run after editing:

    python3 tests/bundles/gen_node_series.py

Times: every case ends at NOW (2025-11-26T10:00:00Z) unless it says
otherwise; bundles carry no meta.json, so "now" is the newest time in them.
"""

import hashlib
import json
import os
import random
import shutil
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = int(datetime(2025, 11, 26, 10, 0, 0, tzinfo=timezone.utc).timestamp())
GiB = 1 << 30
MiB = 1 << 20
H100 = "NVIDIA H100 80GB HBM3"
H100_TOTAL = 85520809984  # 79.65 GiB as NVML reports it
KERNEL = "6.1.0-28-cloud-amd64"
BOOT = "4c1e0a52-8f3d-4b7a-9d2e-6a1f3c5b7e90"


def h(seed, n=64):
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def uid(seed):
    x = h("uid" + seed, 32)
    return f"{x[:8]}-{x[8:12]}-4{x[13:16]}-a{x[17:20]}-{x[20:32]}"


def gpu_uuid(seed):
    x = h("gpu" + seed, 32)
    return f"GPU-{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"


def kts(t):
    """Kubernetes time (seconds)."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ats(t):
    """Agent time (milliseconds)."""
    d = datetime.fromtimestamp(round(t, 3), timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


# --- Kubernetes objects -------------------------------------------------


def owner_ref(kind, name):
    api = {
        "Job": "batch/v1",
        "PyTorchJob": "kubeflow.org/v1",
        "StatefulSet": "apps/v1",
        "ReplicaSet": "apps/v1",
        "Notebook": "kubeflow.org/v1",
    }[kind]
    return {
        "apiVersion": api,
        "blockOwnerDeletion": True,
        "controller": True,
        "kind": kind,
        "name": name,
        "uid": uid(kind + name),
    }


def container_spec(name, image, limits=None, requests=None, mounts=None, env=None, command=None, probes=None):
    c = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": (mounts or [])
        + [
            {
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "name": "kube-api-access-x7k2p",
                "readOnly": True,
            }
        ],
    }
    if limits:
        c["resources"]["limits"] = limits
    if requests or limits:
        c["resources"]["requests"] = requests or dict(limits)
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if command:
        c["command"] = command
    if probes:
        c.update(probes)
    return c


def api_access_volume():
    return {
        "name": "kube-api-access-x7k2p",
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
            ],
        },
    }


def running(started):
    return {"running": {"startedAt": kts(started)}}


def terminated(cid, started, finished, code, reason):
    return {
        "terminated": {
            "containerID": f"containerd://{cid}",
            "exitCode": code,
            "finishedAt": kts(finished),
            "reason": reason,
            "startedAt": kts(started),
        }
    }


def cstatus(name, image, cid, state, last=None, restarts=0, ready=True):
    s = {
        "containerID": f"containerd://{cid}",
        "image": image,
        "imageID": image.split(":")[0] + "@sha256:" + h("img" + image),
        "lastState": last or {},
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "started": "running" in state,
        "state": state,
    }
    return s


def pod(
    name,
    ns,
    node,
    owner,
    containers,
    statuses,
    created,
    phase="Running",
    volumes=None,
    qos="Burstable",
    restart_policy=None,
    grace=30,
    labels=None,
    status_extra=None,
    meta_extra=None,
    conditions=None,
):
    p_uid = uid(ns + "/" + name)
    ready = "True" if phase == "Running" and all(s["ready"] for s in statuses) else "False"
    conds = conditions or [
        {"lastProbeTime": None, "lastTransitionTime": kts(created + 2), "status": "True", "type": "PodReadyToStartContainers"},
        {"lastProbeTime": None, "lastTransitionTime": kts(created + 1), "status": "True", "type": "Initialized"},
        {"lastProbeTime": None, "lastTransitionTime": kts(created + 40), "status": ready, "type": "Ready"},
        {"lastProbeTime": None, "lastTransitionTime": kts(created + 40), "status": ready, "type": "ContainersReady"},
        {"lastProbeTime": None, "lastTransitionTime": kts(created), "status": "True", "type": "PodScheduled"},
    ]
    p = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "creationTimestamp": kts(created),
            "labels": labels or {},
            "name": name,
            "namespace": ns,
            "ownerReferences": [owner_ref(*owner)] if owner else [],
            "resourceVersion": str(int(h("rv" + name, 6), 16)),
            "uid": p_uid,
        },
        "spec": {
            "containers": containers,
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "nodeName": node,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": restart_policy or ("OnFailure" if owner and owner[0] in ("Job", "PyTorchJob") else "Always"),
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": "default",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": grace,
            "tolerations": [
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"},
            ],
            "volumes": (volumes or []) + [api_access_volume()],
        },
        "status": {
            "conditions": conds,
            "containerStatuses": statuses,
            "hostIP": "10.0.12.31",
            "hostIPs": [{"ip": "10.0.12.31"}],
            "phase": phase,
            "podIP": "10.244.3.17",
            "podIPs": [{"ip": "10.244.3.17"}],
            "qosClass": qos,
            "startTime": kts(created),
        },
    }
    if status_extra:
        p["status"].update(status_extra)
    if meta_extra:
        p["metadata"].update(meta_extra)
    return p


def event(p, reason, message, first, last=None, count=1, typ="Warning", container=None, component="kubelet"):
    last = last or first
    md = p["metadata"]
    e = {
        "apiVersion": "v1",
        "count": count,
        "eventTime": None,
        "firstTimestamp": kts(first),
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": md["name"],
            "namespace": md["namespace"],
            "resourceVersion": md["resourceVersion"],
            "uid": md["uid"],
        },
        "kind": "Event",
        "lastTimestamp": kts(last),
        "message": message,
        "metadata": {
            "creationTimestamp": kts(first),
            "name": f"{md['name']}.{h('ev' + reason + message + str(first), 16)}",
            "namespace": md["namespace"],
            "resourceVersion": str(int(h("evrv" + message, 6), 16)),
            "uid": uid("ev" + reason + message + str(first)),
        },
        "reason": reason,
        "reportingComponent": component,
        "reportingInstance": p["spec"]["nodeName"] if component == "kubelet" else "",
        "source": {"component": component, "host": p["spec"]["nodeName"]} if component == "kubelet" else {"component": component},
        "type": typ,
    }
    if container:
        e["involvedObject"]["fieldPath"] = f"spec.containers{{{container}}}"
    return e


def node_event(node, reason, message, first, last=None, count=1, typ="Warning"):
    return {
        "apiVersion": "v1",
        "count": count,
        "eventTime": None,
        "firstTimestamp": kts(first),
        "involvedObject": {"kind": "Node", "name": node, "uid": node},
        "kind": "Event",
        "lastTimestamp": kts(last or first),
        "message": message,
        "metadata": {
            "creationTimestamp": kts(first),
            "name": f"{node}.{h('nev' + reason + str(first), 16)}",
            "namespace": "default",
            "resourceVersion": str(int(h("nevrv" + message, 6), 16)),
            "uid": uid("nev" + reason + str(first)),
        },
        "reason": reason,
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "source": {"component": "kubelet", "host": node},
        "type": typ,
    }


def event_list(items):
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def node_obj(name, gpus=8, mem_pressure=None, created=NOW - 40 * 86400):
    cond = lambda typ, status, reason, msg, t: {
        "lastHeartbeatTime": kts(NOW - 20),
        "lastTransitionTime": kts(t),
        "message": msg,
        "reason": reason,
        "status": status,
        "type": typ,
    }
    mp = mem_pressure or ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", created + 60)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "creationTimestamp": kts(created),
            "labels": {
                "kubernetes.io/hostname": name,
                "node.kubernetes.io/instance-type": "p5.48xlarge",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "nvidia.com/gpu.count": str(gpus),
            },
            "name": name,
            "resourceVersion": "88120431",
            "uid": uid("node" + name),
        },
        "spec": {
            "podCIDR": "10.244.3.0/24",
            "taints": [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "value": "present"}],
        },
        "status": {
            "addresses": [{"address": "10.0.12.31", "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
            "allocatable": {"cpu": "191", "ephemeral-storage": "3340000000000", "memory": "2021187216Ki", "nvidia.com/gpu": str(gpus), "pods": "110"},
            "capacity": {"cpu": "192", "ephemeral-storage": "3624000000Ki", "memory": "2097152000Ki", "nvidia.com/gpu": str(gpus), "pods": "110"},
            "conditions": [
                cond("MemoryPressure", *mp),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", created + 60),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", created + 60),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status", created + 60),
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": BOOT,
                "containerRuntimeVersion": "containerd://1.7.22",
                "kernelVersion": KERNEL,
                "kubeProxyVersion": "v1.30.5",
                "kubeletVersion": "v1.30.5",
                "machineID": h("machine" + name, 32),
                "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.5 LTS",
                "systemUUID": uid("sys" + name),
            },
        },
    }


# --- Agent records ----------------------------------------------------


def cref(pod_uid, cid, qos="burstable", v1=False):
    if v1:
        return {
            "cgroup_path": f"/kubepods/{qos}/pod{pod_uid}/{cid}" if qos != "guaranteed" else f"/kubepods/pod{pod_uid}/{cid}",
            "pod_uid": pod_uid,
            "container_id": cid,
            "qos": qos,
            "runtime": "unknown",
            "driver": "cgroupfs",
        }
    u = pod_uid.replace("-", "_")
    if qos == "guaranteed":
        path = f"/kubepods.slice/kubepods-pod{u}.slice/cri-containerd-{cid}.scope"
    else:
        path = f"/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice/cri-containerd-{cid}.scope"
    return {"cgroup_path": path, "pod_uid": pod_uid, "container_id": cid, "qos": qos, "runtime": "containerd", "driver": "systemd"}


def psi(avg10=0.0, total=0, full10=0.0, full_total=0, with_full=True):
    p = {"some": {"avg10": round(avg10, 2), "avg60": round(avg10 * 0.8, 2), "avg300": round(avg10 * 0.4, 2), "total_us": int(total)}}
    p["full"] = {"avg10": round(full10, 2), "avg60": round(full10 * 0.8, 2), "avg300": round(full10 * 0.4, 2), "total_us": int(full_total)} if with_full else None
    return p


def container_sample(t, ref, usage, limit, anon, file, shmem=0, oom_kill=0, cpu_us=0, throttled=0, throttled_us=0,
                     mem_psi=None, cpu_psi=None, io_psi=None, scope="container", v1=False, reclaim=None, stuck=None):
    """`reclaim`: the memory.stat reclaim counters; `stuck`: threads the agent reports stuck in D (only written when
    given, as the agent writes them)."""
    events = (
        {"oom": None, "oom_kill": oom_kill, "oom_group_kill": None, "max": None, "high": None, "under_oom": False, "failcnt": 0}
        if v1
        else {"oom": oom_kill, "oom_kill": oom_kill, "oom_group_kill": 0, "max": oom_kill * 12, "high": 0, "under_oom": None, "failcnt": None}
    )
    s = {"kind": "container_sample", "time": ats(t)}
    s.update(ref)
    s.update(
        {
            "cgroup_version": "v1" if v1 else "v2",
            "memory": {
                "usage_bytes": int(usage),
                "limit_bytes": limit,
                "peak_bytes": None if v1 else int(usage),
                "anon_bytes": int(anon),
                "file_bytes": int(file),
                "shmem_bytes": int(shmem),
                "events": events,
            },
            "cpu": {"usage_us": int(cpu_us), "nr_throttled": None if v1 else int(throttled), "throttled_us": None if v1 else int(throttled_us)},
            "pressure": {"memory": mem_psi or psi(), "cpu": cpu_psi or psi(), "io": io_psi or psi()},
            "pressure_scope": scope,
        }
    )
    if reclaim is not None:
        s["memory"]["reclaim"] = reclaim
    if stuck:
        s["stuck"] = stuck
    return s


def stuck_task(pid, comm, since, wchan, wait, stack, file=None, fstype=None):
    """A thread the agent reports stuck in uninterruptible sleep (`since`: when it first saw it asleep; `file`,
    `fstype`: the file its blocked read works on and that file's filesystem)."""
    t = {"pid": pid, "comm": comm, "since": ats(since), "wchan": wchan, "wait": wait, "stack": stack}
    if file:
        t["file"] = file
        t["fstype"] = fstype
    return t


def node_sample(t, avail=1800 * GiB, mem_psi=None, mode="v2"):
    return {
        "kind": "node_sample",
        "time": ats(t),
        "boot_id": BOOT,
        "kernel_release": KERNEL,
        "cgroup_mode": mode,
        "mem_total_bytes": 2000 * GiB,
        "mem_available_bytes": int(avail),
        "pressure": {"memory": mem_psi or psi(), "cpu": psi(3.1, 1_000_000), "io": psi(0.4, 200_000)},
    }


def holder(p, container, uuid_):
    md = p["metadata"]
    return {"namespace": md["namespace"], "pod": md["name"], "container": container, "resource_name": "nvidia.com/gpu", "device_id": uuid_, "replica": None}


def gpu_sample(t, index, uuid_, util, used, power, holders, procs, mem_util=None, temp=None, clock=1980, health=None):
    d = {
        "kind": "gpu_sample",
        "time": ats(t),
        "index": index,
        "uuid": uuid_,
        "parent_uuid": None,
        "name": H100,
        "pci_bus_id": f"00000000:{0x18 + index * 0x10:02X}:00.0",
        "utilization_gpu_percent": int(util),
        "utilization_memory_percent": int(mem_util if mem_util is not None else util * 0.4),
        "memory_total_bytes": H100_TOTAL,
        "memory_used_bytes": int(used),
        "power_draw_watts": round(power, 1),
        "power_limit_watts": 700.0,
        "temperature_celsius": temp if temp is not None else int(32 + util * 0.35),
        "sm_clock_mhz": clock if util > 0 else 345,
        "persistence_mode": True,
        "processes": procs,
        "holders": holders,
        "simulated": False,
    }
    if health is not None:
        d["health"] = health
    return d


def gpu_health(reasons=(), ecc_cor=0, ecc_unc=0, ecc_cor_life=None, ecc_unc_life=None, remap_cor=0, remap_unc=0,
               pending=False, failed=False, gen=5, width=16, replays=0, retired=None):
    """The agent's `health` of an H100 SXM (max SM clock 1980 MHz, PCIe Gen5 x16, slowdown 87 °C, shutdown 92 °C);
    `retired`: (single-bit pages, double-bit pages, pending) of a GPU before Ampere, which has no row remapper."""
    if retired is not None:
        sbe, dbe, retiring = retired
        d = gpu_health(reasons, ecc_cor, ecc_unc, ecc_cor_life, ecc_unc_life, gen=3, replays=replays)
        for k in ("remapped_rows_corrected", "remapped_rows_uncorrected", "remap_pending", "remap_failed"):
            del d[k]
        d.update({"sm_clock_max_mhz": 1530, "pcie_link_gen_max": 3, "temperature_slowdown_celsius": 84,
                  "temperature_shutdown_celsius": 87, "retired_pages_sbe": sbe, "retired_pages_dbe": dbe,
                  "retired_pages_pending": retiring})
        return d
    return {
        "throttle_reasons": list(reasons),
        "sm_clock_max_mhz": 1980,
        "ecc_corrected_volatile": ecc_cor,
        "ecc_uncorrected_volatile": ecc_unc,
        "ecc_corrected_aggregate": ecc_cor if ecc_cor_life is None else ecc_cor_life,
        "ecc_uncorrected_aggregate": ecc_unc if ecc_unc_life is None else ecc_unc_life,
        "remapped_rows_corrected": remap_cor,
        "remapped_rows_uncorrected": remap_unc,
        "remap_pending": pending,
        "remap_failed": failed,
        "pcie_link_gen": gen,
        "pcie_link_gen_max": 5,
        "pcie_link_width": width,
        "pcie_link_width_max": 16,
        "pcie_replays": replays,
        "temperature_slowdown_celsius": 87,
        "temperature_shutdown_celsius": 92,
    }


def gproc(pid, used, ref):
    d = {"pid": pid, "used_memory_bytes": int(used), "sm_util_percent": None, "mem_util_percent": None}
    if ref:
        d.update(ref)
    return d


def source(t, name, state="ok", reason=None):
    return {"kind": "source", "time": ats(t), "source": name, "state": state, "reason": reason}


def oom_kill(t, ref, limit, window, victim, constraint="memcg", peak=None, v1=False, trigger=None, kernel_usage=None, detected_by="notification", oom_kill_count=1):
    k = {"kind": "oom_kill", "time": ats(t), "detected_at": ats(t + 0.004), "detected_by": detected_by}
    k.update(ref)
    k.update(
        {
            "cgroup_version": "v1" if v1 else "v2",
            "limit_bytes": limit,
            "peak_bytes": peak if peak is not None else limit,
            "oom_kill": oom_kill_count,
            "oom_group_kill": None if v1 else (1 if constraint == "memcg" else 0),
            "constraint": constraint,
            "victim": victim,
            "trigger_comm": trigger or (victim["comm"] if victim else None),
            "kernel_usage_bytes": kernel_usage if kernel_usage is not None else limit,
            "kernel_limit_bytes": limit,
            "window": window,
            "pressure_scope": "node" if v1 else "container",
        }
    )
    return k


def victim(pid, comm, anon, file=60 * MiB, shmem=0, vm=None):
    return {
        "pid": pid,
        "comm": comm,
        "total_vm_bytes": int(vm or (anon + file + shmem) * 1.6),
        "anon_rss_bytes": int(anon),
        "file_rss_bytes": int(file),
        "shmem_rss_bytes": int(shmem),
        "uid": 1000,
        "pgtables_bytes": int(anon / 512),
        "oom_score_adj": 984,
    }


def rpoint(t, usage, anon, file, shmem, avg10, some_total, full_total=0):
    return {
        "time": ats(t),
        "usage_bytes": int(usage),
        "anon_bytes": int(anon),
        "file_bytes": int(file),
        "shmem_bytes": int(shmem),
        "memory_some_avg10": round(avg10, 2),
        "memory_some_total_us": int(some_total),
        "memory_full_total_us": int(full_total),
    }


# --- Writing ------------------------------------------------------------

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def write(name, about, expected, pod_obj=None, events=None, nodes=None, agent=None, logs=None, extra_pods=None, collected_at=None,
          indent=4, agent_node=None):
    """`indent` is that of expected.json only: the expectations completed after the engine first ran (a consequence
    kept and linked to its cause with caused_by) were checked in written with indent 2, and are written so here.
    `agent_node`: the agent records are that node's (`agent-NODE.jsonl`), not the subject pod's node's."""
    d = os.path.join(HERE, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    b = os.path.join(d, "bundle")
    os.makedirs(b)
    dump = lambda path, obj: open(path, "w").write(json.dumps(obj, indent=4) + "\n")
    if pod_obj:
        dump(os.path.join(b, "pod.json"), pod_obj)
    if extra_pods:
        dump(os.path.join(b, "pods.json"), {"apiVersion": "v1", "items": extra_pods, "kind": "List", "metadata": {"resourceVersion": ""}})
    if events is not None:
        dump(os.path.join(b, "events.json"), event_list(events))
    if nodes:
        dump(os.path.join(b, "node.json"), nodes[0] if len(nodes) == 1 else {"apiVersion": "v1", "items": nodes, "kind": "List", "metadata": {"resourceVersion": ""}})
    if agent is not None:
        with open(os.path.join(b, f"agent-{agent_node}.jsonl" if agent_node else "agent.jsonl"), "w") as f:
            for line in agent:
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
    if collected_at is not None:
        md = pod_obj["metadata"]
        dump(os.path.join(b, "meta.json"), {"kind": "GpuscopeBundle", "subject": {"namespace": md["namespace"], "name": md["name"]},
                                            "collectedAt": ats(collected_at)})
    for c, text in (logs or {}).items():
        os.makedirs(os.path.join(b, "logs"), exist_ok=True)
        open(os.path.join(b, "logs", c), "w").write(text)
    e = {"about": about}
    e.update(expected)
    open(os.path.join(d, "expected.json"), "w").write(json.dumps(e, indent=indent) + "\n")


def series(start, end, step):
    t = start
    while t <= end + 1e-9:
        yield t
        t += step


NODE = "gpu-node-07"
TRAIN_IMG = "registry.example.com/ml/llm-train:2.4.1-cu124"
SERVE_IMG = "registry.example.com/ml/vllm-serve:0.6.3"
NB_IMG = "quay.io/jupyter/pytorch-notebook:cuda12-2024-11-18"


def train_pod(name, ns="ml-research", owner=("Job", "finetune-llama-8b"), mem="32Gi", cpu="8", gpus=1, statuses=None,
              created=NOW - 3 * 3600, mounts=None, volumes=None, phase="Running", **kw):
    limits = {"cpu": cpu, "memory": mem, "nvidia.com/gpu": str(gpus)}
    c = container_spec("trainer", TRAIN_IMG, limits=limits, mounts=mounts,
                       command=["torchrun", "--nproc-per-node=1", "train.py", "--config", "/config/run.yaml"])
    return pod(name, ns, NODE, owner, [c], statuses, created, phase=phase, volumes=volumes, qos="Guaranteed", **kw)


# --- OOM cases ------------------------------------------------------------


def oom_kill_case(name, about, expected, window, victim_, limit=32 * GiB, v1=False, constraint="memcg", restarts=2,
                  extra_agent=None, events=None, reason="OOMKilled", code=137, node_avail=None, peak=None, indent=4):
    p_uid_seed = "ml-research/" + name
    cid_old, cid_new = h(name + "old"), h(name + "new")
    kill_t = NOW - 600
    started_old = kill_t - 3000
    st = cstatus("trainer", TRAIN_IMG, cid_new, running(kill_t + 12),
                 last=terminated(cid_old, started_old, kill_t + 1, code, reason), restarts=restarts)
    p = train_pod(f"{name}-0-x8k2q", statuses=[st], created=NOW - 4 * 3600, mem=f"{limit // GiB}Gi")
    p_uid = p["metadata"]["uid"]
    qos = "guaranteed"
    ref_old, ref_new = cref(p_uid, cid_old, qos, v1), cref(p_uid, cid_new, qos, v1)
    agent = [source(NOW - 4 * 3600, s) for s in ("cgroup", "kmsg", "psi", "node", "nvml", "pod_resources")]
    agent.append(oom_kill(kill_t, ref_old, limit, window, victim_, constraint=constraint, v1=v1, peak=peak, kernel_usage=peak))
    # Node samples every 30 s; the new instance sampled after its start.
    for t in series(NOW - 1800, NOW, 30):
        agent.append(node_sample(t, avail=node_avail(t) if node_avail else 1500 * GiB, mode="v1" if v1 else "v2"))
    for t in series(kill_t + 15, NOW, 10):
        u = 4 * GiB + (t - kill_t) * 2 * MiB
        agent.append(container_sample(t, ref_new, u, limit, u * 0.9, u * 0.1, cpu_us=(t - kill_t) * 6e6, v1=v1,
                                      scope="node" if v1 else "container"))
    agent += extra_agent or []
    write(name, about, expected, p, events if events is not None else [
        event(p, "Pulled", f'Container image "{TRAIN_IMG}" already present on machine', kill_t + 11, typ="Normal", container="trainer"),
        event(p, "Created", "Created container trainer", kill_t + 11, typ="Normal", container="trainer"),
        event(p, "Started", "Started container trainer", kill_t + 12, typ="Normal", container="trainer"),
    ], [node_obj(NODE)], agent, indent=indent)


def window_growth(end, start_usage, end_usage, seconds=120, step=1.0, shmem_frac=0.0, psi_peak=18.0, jump_at=None):
    pts = []
    n = int(seconds / step)
    some_total = 0
    for i in range(n + 1):
        t = end - seconds + i * step
        frac = i / n
        if jump_at is not None:
            u = start_usage if frac < jump_at else end_usage - (1 - frac) * 0.02 * end_usage
        else:
            u = start_usage + (end_usage - start_usage) * frac
        shm = u * shmem_frac
        avg10 = psi_peak * frac ** 4
        some_total += avg10 * step * 10_000
        pts.append(rpoint(t, u, u - shm - 300 * MiB, 300 * MiB + shm, shm, avg10, some_total, some_total * 0.6))
    return pts


@case
def oom_killed_jump():
    kill_t = NOW - 600
    w = window_growth(kill_t, 18 * GiB, 32 * GiB, seconds=300, jump_at=0.8)
    oom_kill_case(
        "oom-killed-jump",
        "Container limit kill (cgroup v2, kernel report read): the trainer jumped from 18 to 32 GiB in the last minute "
        "(loading a large eval set at once); not steady growth, so a limit of peak + 25 % is suggested.",
        {"findings": [{"kind": "oom_killed", "confidence": "high", "container": "trainer",
                       "summary_contains": ["python3 (pid 48213", "at its 32Gi memory limit"],
                       "evidence_names": ["growth before the kill", "composition at the peak", "memory pressure before the kill", "victim", "recurrence"]}]},
        w, victim(48213, "python3", 31.2 * GiB, 180 * MiB))


@case
def oom_killed_leak():
    kill_t = NOW - 600
    w = window_growth(kill_t, 22 * GiB, 32 * GiB, seconds=300, psi_peak=6.0)
    oom_kill_case(
        "oom-killed-leak",
        "Container limit kill after memory grew linearly (34 MiB/s for the whole 5-min recorder window): a leak; "
        "the next step says so instead of suggesting a bigger limit. "
        "Chains: the consequence is kept and linked to its cause. The restarts are the consequence of the OOM kills.",
        {"findings": [{"kind": "oom_killed", "confidence": "high", "container": "trainer",
                       "evidence_names": ["time to the limit at that rate"]},
                      {"kind": "crash_loop", "confidence": "medium", "container": "trainer",
                       "summary_contains": ["code 137"], "caused_by": ["oom_killed"]}]},
        w, victim(48213, "python3", 31.5 * GiB), restarts=4, indent=2)


@case
def oom_shm_dominated():
    kill_t = NOW - 600
    w = window_growth(kill_t, 6 * GiB, 16 * GiB, seconds=180, shmem_frac=0.7)
    oom_kill_case(
        "oom-shm-dominated",
        "Container limit kill where 70 % of the charge was shmem: DataLoader workers passing batches through a "
        "memory-backed /dev/shm emptyDir, which counts against the 16 GiB limit.",
        {"findings": [{"kind": "oom_killed", "confidence": "high", "container": "trainer",
                       "summary_contains": ["shared memory", "at its 16Gi memory limit"]}]},
        w, victim(48213, "pt_main_thread", 4.1 * GiB, 90 * MiB, 10.9 * GiB), limit=16 * GiB)


@case
def oom_node():
    kill_t = NOW - 600
    w = window_growth(kill_t, 20 * GiB, 21 * GiB, seconds=120, psi_peak=45.0)
    oom_kill_case(
        "oom-node",
        "The node ran out of memory (CONSTRAINT_NONE): the trainer was far below its 64 GiB limit when the kernel "
        "killed it; the node's MemAvailable fell to near zero first.",
        {"findings": [{"kind": "oom_node", "confidence": "high", "container": "trainer",
                       "summary_contains": ["ran out of memory as a whole", "own limit (64Gi)", "below its own 64Gi limit"]}]},
        w, victim(48213, "python3", 20.6 * GiB), limit=64 * GiB, constraint="node", peak=21 * GiB,
        node_avail=lambda t: 400 * MiB if abs(t - kill_t) < 90 else 300 * GiB)


@case
def oom_worker_killed():
    name = "oom-worker-killed"
    cid = h(name + "cur")
    started = NOW - 2 * 3600
    kill_t = NOW - 900
    st = cstatus("trainer", TRAIN_IMG, cid, running(started), restarts=0)
    p = train_pod(f"{name}-0-m2x7c", statuses=[st], created=started - 20, mem="24Gi")
    ref = cref(p["metadata"]["uid"], cid, "guaranteed", v1=True)
    agent = [source(started, s) for s in ("cgroup", "kmsg", "psi", "node")]
    w = window_growth(kill_t, 18 * GiB, 24 * GiB, seconds=120, psi_peak=9.0)
    agent.append(oom_kill(kill_t, ref, 24 * GiB, w, victim(51877, "pt_data_worker", 5.8 * GiB), v1=True, trigger="pt_data_worker"))
    for t in series(NOW - 1800, NOW, 10):
        after = t > kill_t
        u = (17.5 * GiB if after else 18 * GiB + max(0, (t - (kill_t - 120))) / 120 * 6 * GiB)
        agent.append(container_sample(t, ref, min(u, 24 * GiB), 24 * GiB, u * 0.95, u * 0.05, oom_kill=1 if after else 0,
                                      cpu_us=(t - started) * 7e6, v1=True, scope="node"))
    write(name,
          "cgroup v1 node: the kernel killed a DataLoader worker (pt_data_worker) at the 24 GiB limit; the trainer "
          "container kept running (sampled with 17.5 GiB in use afterwards), restartCount 0: Kubernetes shows nothing.",
          {"findings": [{"kind": "oom_killed_worker", "confidence": "high", "container": "trainer",
                         "summary_contains": ["pt_data_worker", "at its 24Gi memory limit", "kept running"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def oom_evicted():
    name = "oom-evicted"
    cid = h(name)
    started = NOW - 5400
    ev_t = NOW - 1200
    st = cstatus("trainer", TRAIN_IMG, cid,
                 {"terminated": {"containerID": f"containerd://{cid}", "exitCode": 137, "finishedAt": kts(ev_t + 31),
                                 "reason": "Error", "startedAt": kts(started)}}, restarts=0, ready=False)
    msg = ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 56Mi. Container trainer was using "
           "14Gi, request is 8Gi, has larger consumption of memory. ")
    c = container_spec("trainer", TRAIN_IMG, limits={"cpu": "8", "memory": "24Gi", "nvidia.com/gpu": "1"},
                       requests={"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"})
    p = pod(f"{name}-7f9c4", "ml-research", NODE, ("Job", "embed-corpus"), [c], [st], started - 30, phase="Failed",
            status_extra={"reason": "Evicted", "message": msg},
            conditions=[
                {"lastProbeTime": None, "lastTransitionTime": kts(ev_t), "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 56Mi. ",
                 "reason": "TerminationByKubelet", "status": "True", "type": "DisruptionTarget"},
                {"lastProbeTime": None, "lastTransitionTime": kts(ev_t + 31), "status": "False", "type": "Ready"},
                {"lastProbeTime": None, "lastTransitionTime": kts(started - 30), "status": "True", "type": "PodScheduled"},
            ])
    events = [
        event(p, "Evicted", msg, ev_t, container=None),
        event(p, "Killing", "Stopping container trainer", ev_t, typ="Normal", container="trainer"),
        node_event(NODE, "EvictionThresholdMet", "Attempting to reclaim memory", ev_t - 5),
    ]
    n = node_obj(NODE, mem_pressure=("True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available", ev_t - 5))
    write(name,
          "Kubelet eviction for node memory pressure: the pod's status says Evicted with the container's usage (14Gi) "
          "against its request (8Gi); the node's MemoryPressure condition is True. The exit 137 of the container is the "
          "eviction, so no exit_137_not_oom. The failed pod (one exit) is kept as the consequence of the eviction.",
          {"findings": [{"kind": "evicted", "confidence": "high", "container": "trainer",
                         "summary_contains": ["14Gi", "8Gi", "memory"],
                         "evidence_names": ["node condition MemoryPressure", "eviction message"]},
                        {"kind": "container_failed", "confidence": "high", "container": "trainer",
                         "summary_contains": ["code 137"], "caused_by": ["evicted"]}],
           "gaps": ["agent"]},
          p, events, [n], None, indent=2)


def status_only_pod(name, reason="OOMKilled", code=137, finished=NOW - 900, restarts=3, mem="16Gi"):
    cid_old, cid_new = h(name + "old"), h(name + "new")
    st = cstatus("trainer", TRAIN_IMG, cid_new, running(finished + 11),
                 last=terminated(cid_old, finished - 2400, finished, code, reason), restarts=restarts)
    p = train_pod(f"{name}-0-q7w2d", statuses=[st], created=NOW - 5 * 3600, mem=mem)
    return p, cid_old, cid_new


@case
def oom_status_no_agent():
    name = "oom-status-no-agent"
    p, _, _ = status_only_pod(name)
    write(name,
          "OOMKilled in lastState and no agent records at all: the status alone explains the exit (Medium), and the "
          "finding says the node evidence (peak, victim, growth) is missing. "
          "Chains: the consequence is kept and linked to its cause. The restarts are the consequence of the OOM kill.",
          {"findings": [{"kind": "oom_killed", "confidence": "medium", "container": "trainer",
                         "summary_contains": ["at its 16Gi memory limit", "no agent records"]},
                        {"kind": "crash_loop", "confidence": "medium", "container": "trainer",
                         "summary_contains": ["code 137"], "caused_by": ["oom_killed"]}],
           "gaps": ["agent"]},
          p, [event(p, "BackOff", "Back-off restarting failed container trainer in pod " + p["metadata"]["name"] + "_ml-research(" + p["metadata"]["uid"] + ")",
                    NOW - 900, count=1, container="trainer")], [node_obj(NODE)], None, indent=2)


def watched_agent(p, cid_old, cid_new, finished, usage_old=3 * GiB, limit=16 * GiB, extra=None):
    p_uid = p["metadata"]["uid"]
    ref_old, ref_new = cref(p_uid, cid_old, "guaranteed"), cref(p_uid, cid_new, "guaranteed")
    agent = [source(finished - 2400, s) for s in ("cgroup", "kmsg", "psi", "node", "nvml")]
    for t in series(finished - 1800, finished - 1, 10):
        agent.append(container_sample(t, ref_old, usage_old, limit, usage_old * 0.8, usage_old * 0.2, cpu_us=(t - finished + 2400) * 5e6))
    for t in series(finished + 12, NOW, 10):
        agent.append(container_sample(t, ref_new, usage_old, limit, usage_old * 0.8, usage_old * 0.2, cpu_us=(t - finished) * 5e6))
    for t in series(finished - 1800, NOW, 30):
        agent.append(node_sample(t))
    return agent + (extra or [])


@case
def oom_status_without_kill():
    name = "oom-status-without-kill"
    fin = NOW - 900
    p, co, cn = status_only_pod(name, finished=fin)
    write(name,
          "OOMKilled in lastState while the agent watched the container to its end: it used 3 GiB of 16 GiB, its "
          "oom_kill counter never moved, no kernel report: the label is not backed by a kill (Low).",
          {"findings": [{"kind": "oom_status_without_kill", "confidence": "low", "container": "trainer",
                         "summary_contains": ["recorded no OOM kill in it", "oom_kill counter never moved"],
                         "evidence_contains": {"exit code": "137 (OOMKilled)",
                                               "last sample of the container": "3 GiB used of 16 GiB",
                                               "agent": "no OOM kill recorded for it"}}]},
          p, [], [node_obj(NODE)], watched_agent(p, co, cn, fin))


@case
def oom_status_second_hand():
    name = "oom-status-second-hand"
    fin = NOW - 900
    p, co, cn = status_only_pod(name, finished=fin)
    other_uid = uid("ml-research/other")
    other = cref(other_uid, h("other-container"), "burstable")
    k = oom_kill(fin - 1, other, 8 * GiB, window_growth(fin - 1, 6 * GiB, 8 * GiB, seconds=60), victim(60321, "java", 7.8 * GiB))
    write(name,
          "OOMKilled in lastState, no kill in this container while the agent watched; the kernel killed a process of "
          "another pod's cgroup one second before the exit: a second-hand label (Medium).",
          {"findings": [{"kind": "oom_status_without_kill", "confidence": "medium", "container": "trainer",
                         "summary_contains": ["second-hand", "java (pid 60321)"]}]},
          p, [], [node_obj(NODE)], watched_agent(p, co, cn, fin, extra=[k]))


@case
def oom_restarted_long_ago():
    name = "oom-restarted-long-ago"
    p, _, _ = status_only_pod(name, finished=NOW - 4 * 86400, restarts=1)
    p["metadata"]["creationTimestamp"] = kts(NOW - 5 * 86400)
    p["status"]["startTime"] = kts(NOW - 5 * 86400)
    write(name,
          "A pod that was OOMKilled once four days ago and has run cleanly since: old history, not a current problem "
          "(no finding).",
          {"findings": []},
          p, [], [node_obj(NODE)], None, collected_at=NOW)


@case
def oom_exit137_liveness():
    name = "oom-exit137-liveness"
    fin = NOW - 700
    cid_old, cid_new = h(name + "old"), h(name + "new")
    probes = {"livenessProbe": {"failureThreshold": 3, "httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"},
                                "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1}}
    c = container_spec("server", SERVE_IMG, limits={"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"}, probes=probes)
    st = cstatus("server", SERVE_IMG, cid_new, running(fin + 2),
                 last=terminated(cid_old, fin - 1800, fin, 137, "Error"), restarts=5)
    p = pod("llm-serve-6d8f7b9c5-2kq8n", "inference", NODE, ("ReplicaSet", "llm-serve-6d8f7b9c5"), [c], [st], NOW - 6 * 3600, qos="Guaranteed")
    events = [
        event(p, "Unhealthy", "Liveness probe failed: Get \"http://10.244.3.17:8000/health\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
              fin - 31, fin - 11, count=3, container="server"),
        event(p, "Killing", "Container server failed liveness probe, will be restarted", fin - 10, typ="Normal", container="server"),
    ]
    p_uid = p["metadata"]["uid"]
    r_old, r_new = cref(p_uid, cid_old, "guaranteed"), cref(p_uid, cid_new, "guaranteed")
    agent = [source(fin - 1800, s) for s in ("cgroup", "kmsg", "psi", "node")]
    for t in series(fin - 600, fin - 1, 10):
        agent.append(container_sample(t, r_old, 41 * GiB, 64 * GiB, 39 * GiB, 2 * GiB, cpu_us=t * 1e5))
    for t in series(fin + 5, NOW, 10):
        agent.append(container_sample(t, r_new, 40 * GiB, 64 * GiB, 38 * GiB, 2 * GiB, cpu_us=t * 1e5))
    write(name,
          "Exit 137 with reason Error: the kubelet killed the server after three liveness-probe timeouts (Killing event "
          "'failed liveness probe'); the agent watched the container, no OOM kill, 41 of 64 GiB used. "
          "The probe finding owns a probe kill and says the 137 is not an OOM kill. "
          "Chains: the consequence is kept and linked to its cause. The exit 137 is kept as the consequence of the probe "
          "(probe <- exit 137 that is not an OOM kill).",
          {"findings": [{"kind": "probe_failing", "confidence": "high", "container": "server",
                         "summary_contains": ["liveness probe"],
                         "evidence_names": ["last exit", "probe kills"], "caused_by": []},
                        {"kind": "exit_137_not_oom", "confidence": "high", "container": "server",
                         "summary_contains": ["liveness probe failed", "not by the OOM killer"], "caused_by": ["probe_failing"]}]},
          p, events, [node_obj(NODE)], agent, indent=2)


@case
def oom_exit137_grace():
    name = "oom-exit137-grace"
    stop = NOW - 300
    cid = h(name)
    st = cstatus("trainer", TRAIN_IMG, cid,
                 {"terminated": {"containerID": f"containerd://{cid}", "exitCode": 137, "finishedAt": kts(stop + 30),
                                 "reason": "Error", "startedAt": kts(stop - 7200)}}, restarts=0, ready=False)
    p = train_pod(f"{name}-0-b7k2l", statuses=[st], created=stop - 7300, phase="Failed", restart_policy="Never",
                  meta_extra={"deletionTimestamp": kts(stop + 30), "deletionGracePeriodSeconds": 30})
    events = [event(p, "Killing", "Stopping container trainer", stop, typ="Normal", container="trainer")]
    write(name,
          "The Job was deleted; the kubelet sent SIGTERM ('Stopping container trainer') and the trainer, which ignores "
          "SIGTERM, was SIGKILLed 30 s later, exactly the grace period: exit 137, not OOM. "
          "The Job pod failed once: container_failed, the consequence of the SIGKILL after the grace period.",
          {"findings": [{"kind": "exit_137_not_oom", "confidence": "high", "container": "trainer",
                         "summary_contains": ["grace period"]},
                        {"kind": "container_failed", "confidence": "high", "container": "trainer",
                         "summary_contains": ["code 137", "one exit, not a crash loop"], "caused_by": ["exit_137_not_oom"]}],
           "gaps": ["agent"]},
          p, events, [node_obj(NODE)], None, indent=2)


@case
def oom_exit137_unexplained():
    name = "oom-exit137-unexplained"
    p, _, _ = status_only_pod(name, reason="Error", code=137, restarts=2)
    write(name,
          "Exit 137 with reason Error, no events explaining it and no agent records: a SIGKILL from outside, cause "
          "unknown, OOM not ruled out (Low).",
          {"findings": [{"kind": "exit_137_not_oom", "confidence": "low", "container": "trainer",
                         "summary_contains": ["not ruled out"]}],
           "gaps": ["agent"]},
          p, [], [node_obj(NODE)], None)


def gpu_pod_with_exit(name, code, fin, log=None, used_before=79.2 * GiB, restarts=3):
    cid_old, cid_new = h(name + "old"), h(name + "new")
    st = cstatus("trainer", TRAIN_IMG, cid_new, running(fin + 20),
                 last=terminated(cid_old, fin - 900, fin, code, "Error"), restarts=restarts)
    p = train_pod(f"{name}-0-d4r8t", statuses=[st], created=NOW - 3 * 3600, mem="64Gi")
    p_uid = p["metadata"]["uid"]
    g = gpu_uuid(name)
    r_old, r_new = cref(p_uid, cid_old, "guaranteed"), cref(p_uid, cid_new, "guaranteed")
    agent = [source(fin - 1000, s) for s in ("cgroup", "kmsg", "psi", "node", "nvml", "pod_resources")]
    for t in series(fin - 600, NOW, 5):
        if t < fin - 2:
            used = 40 * GiB + (used_before - 40 * GiB) * min(1, (t - (fin - 600)) / 500)
            procs, util, power = [gproc(71234, used - 600 * MiB, r_old)], 97, 610
        elif t < fin + 25:
            used, procs, util, power = 600 * MiB, [], 0, 72
        else:
            used = min(used_before, 30 * GiB + (t - fin) * 60 * MiB)
            procs, util, power = [gproc(71990, used - 600 * MiB, r_new)], 95, 590
        agent.append(gpu_sample(t, 0, g, util, used, power, [holder(p, "trainer", g)], procs))
    for t in series(fin - 600, NOW, 10):
        ref = r_old if t < fin else r_new
        if fin <= t < fin + 25:
            continue
        agent.append(container_sample(t, ref, 22 * GiB, 64 * GiB, 20 * GiB, 2 * GiB, cpu_us=t * 2e5))
    return p, agent, g


CUDA_OOM_LOG = """[rank0]:   File "/workspace/train.py", line 412, in train_step
[rank0]:     loss = model(**batch).loss
[rank0]:   File "/usr/local/lib/python3.11/site-packages/torch/nn/modules/module.py", line 1736, in _wrapped_call_impl
[rank0]:     return self._call_impl(*args, **kwargs)
[rank0]:   File "/usr/local/lib/python3.11/site-packages/transformers/models/llama/modeling_llama.py", line 1190, in forward
[rank0]:     logits = logits.float()
[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 7.83 GiB. GPU 0 has a total capacity of 79.10 GiB of which 3.12 GiB is free. Process 71234 has 75.97 GiB memory in use. Of the allocated memory 70.88 GiB is allocated by PyTorch, and 4.42 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)
E1126 09:45:02.118000 1 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: 1) local_rank: 0 (pid: 71234) of binary: /usr/bin/python3
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train.py FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2025-11-26_09:45:02
  host      : finetune-llama-8b-0-d4r8t
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 71234)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


@case
def oom_cuda_log():
    name = "oom-cuda-log"
    fin = NOW - 900
    p, agent, g = gpu_pod_with_exit(name, 1, fin)
    write(name,
          "torchrun exited 1 after torch.OutOfMemoryError (tried to allocate 7.83 GiB with 3.12 GiB free) on an H100: "
          "GPU memory, not the container limit; the GPU was 99 % full before the exit.",
          {"findings": [{"kind": "cuda_oom", "confidence": "high", "container": "trainer", "gpu": g,
                         "summary_contains": ["7.83 GiB", "exited with code 1"],
                         "evidence_names": ["log line", "exit code", "GPU memory before the exit"]}]},
          p, [], [node_obj(NODE)], agent, logs={"trainer.log": CUDA_OOM_LOG})


@case
def oom_cuda_gpu_memory_only():
    name = "oom-cuda-gpu-memory-only"
    fin = NOW - 900
    p, agent, g = gpu_pod_with_exit(name, 1, fin, used_before=79.5 * GiB)
    write(name,
          "Exit 1 with no log tail in the bundle, while the pod's GPU was 99.8 % full right before the exit: suggests "
          "CUDA OOM, but only from GPU memory (Low: frameworks may reserve the whole GPU).",
          {"findings": [{"kind": "cuda_oom", "confidence": "low", "container": "trainer", "gpu": g,
                         "summary_contains": ["no log tail of that exit"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def oom_thrashing():
    name = "oom-thrashing"
    cid = h(name)
    started = NOW - 3 * 3600
    st = cstatus("trainer", TRAIN_IMG, cid, running(started), restarts=0)
    p = train_pod(f"{name}-0-h3n9v", statuses=[st], created=started - 15, mem="16Gi", cpu="8")
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    limit = 16 * GiB
    agent = [source(started, s) for s in ("cgroup", "kmsg", "psi", "node")]
    some_total = full_total = 0
    for t in series(NOW - 1500, NOW, 5):
        hot = t >= NOW - 600
        progress = (t - (NOW - 600)) / 600 if hot else 0.0
        anon = 11.5 * GiB + progress * 3.0 * GiB
        file = 4.3 * GiB - progress * 3.0 * GiB
        some = 38.0 + 6 * ((t // 5) % 3) if hot else 1.2
        full = 11.0 if hot else 0.2
        some_total += some * 5 * 10_000
        full_total += full * 5 * 10_000
        agent.append(container_sample(t, ref, anon + file, limit, anon, file, cpu_us=(t - started) * 3e6,
                                      mem_psi=psi(some, some_total, full, full_total),
                                      io_psi=psi(25.0 if hot else 1.0, some_total / 2)))
    write(name,
          "Memory PSI of the container's own cgroup at some 38-50 % / full 11 % for 10 minutes, usage at 15.8 of 16 GiB "
          "with page cache shrinking from 4.3 to 1.3 GiB, no OOM kill: thrashing.",
          {"findings": [{"kind": "memory_thrashing", "confidence": "high", "container": "trainer",
                         "summary_contains": ["using 15.8 GiB of its 16Gi limit"],
                         "evidence_names": ["memory pressure", "pressure_scope", "page cache"]}]},
          p, [], [node_obj(NODE)], agent)


# --- GPU use --------------------------------------------------------------


def gpu_case_pod(name, ns="ml-research", owner=("Job", "finetune-llama-8b"), gpus=1, started=NOW - 3 * 3600,
                 container="trainer", image=TRAIN_IMG, cpu="8", mem="64Gi", qos="Guaranteed", labels=None):
    cid = h(name)
    c = container_spec(container, image, limits={"cpu": cpu, "memory": mem, "nvidia.com/gpu": str(gpus)})
    st = cstatus(container, image, cid, running(started + 10), restarts=0)
    p = pod(name, ns, NODE, owner, [c], [st], started, qos=qos, labels=labels)
    return p, cid


def gpu_series(p, container, uuids, start, end, step, fn, ref):
    """fn(t, i) -> (util, used, power, has_process)"""
    out = []
    for t in series(start, end, step):
        for i, g in enumerate(uuids):
            util, used, power, proc = fn(t, i)
            procs = [gproc(88000 + i, used - 520 * MiB, ref)] if proc else []
            out.append(gpu_sample(t, i, g, util, used, power, [holder(p, container, g)], procs))
    return out


@case
def gpu_use_idle():
    name = "gpu-use-idle-2h"
    p, cid = gpu_case_pod("bert-sweep-17-7xk2m", owner=("Job", "bert-sweep-17"), started=NOW - 3 * 3600)
    g = gpu_uuid(name)
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    agent = [source(NOW - 3 * 3600, s) for s in ("cgroup", "nvml", "pod_resources")]
    agent += gpu_series(p, "trainer", [g], NOW - 2 * 3600, NOW, 30, lambda t, i: (0, 512 * MiB, 69.5, False), ref)
    for t in series(NOW - 2 * 3600, NOW, 60):
        agent.append(container_sample(t, ref, 300 * MiB, 64 * GiB, 200 * MiB, 100 * MiB, cpu_us=t * 1000))
    write(name,
          "A Job's pod holds one H100 (PodResources) and has run no process on it for the 2 hours of samples: GPU idle, "
          "2 GPU-hours wasted.",
          {"findings": [{"kind": "gpu_idle", "confidence": "high", "container": "trainer", "gpu": g,
                         "summary_contains": ["2.0 GPU-hours"], "evidence_names": ["GPU-hours"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_use_idle_short():
    name = "gpu-use-idle-short-window"
    p, cid = gpu_case_pod("bert-sweep-18-p2m4z", owner=("Job", "bert-sweep-18"), started=NOW - 3 * 3600)
    g = gpu_uuid(name)
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    agent = [source(NOW - 12 * 60, s) for s in ("cgroup", "nvml", "pod_resources")]
    agent += gpu_series(p, "trainer", [g], NOW - 12 * 60, NOW, 10, lambda t, i: (0, 512 * MiB, 69.5, False), ref)
    write(name,
          "The same idle GPU, but the agent was started 12 minutes ago: the samples cover 12 of the 30 minutes the rule "
          "needs, so the finding is Low and says how much was seen.",
          {"findings": [{"kind": "gpu_idle", "confidence": "low", "gpu": g, "evidence_names": ["coverage"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_use_finished_not_exited():
    name = "gpu-use-finished-not-exited"
    p, cid = gpu_case_pod("eval-harness-4-9bq2w", owner=("Job", "eval-harness-4"), started=NOW - 3 * 3600)
    g = gpu_uuid(name)
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    done = NOW - 50 * 60
    agent = [source(NOW - 3 * 3600, s) for s in ("cgroup", "nvml", "pod_resources")]
    agent += gpu_series(p, "trainer", [g], NOW - 2 * 3600, NOW, 30,
                        lambda t, i: (93, 52 * GiB, 540, True) if t < done else (0, 512 * MiB, 70, False), ref)
    write(name,
          "The GPU was busy (93 %) until 50 minutes ago, then the process exited but the container did not (the script "
          "ends in `sleep infinity`): GPU idle for 50 min, and the summary says the job may have finished.",
          {"findings": [{"kind": "gpu_idle", "confidence": "high", "gpu": g, "summary_contains": ["may have finished"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_use_notebook():
    name = "gpu-use-notebook-memory-idle"
    p, cid = gpu_case_pod("jupyter-alice-0", ns="team-nlp", owner=("StatefulSet", "jupyter-alice"), started=NOW - 26 * 3600,
                          container="notebook", image=NB_IMG, cpu="4", mem="32Gi", qos="Guaranteed",
                          labels={"app": "jupyter-alice", "notebook-name": "jupyter-alice"})
    g = gpu_uuid(name)
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    agent = [source(NOW - 4 * 3600, s) for s in ("cgroup", "nvml", "pod_resources")]
    agent += gpu_series(p, "notebook", [g], NOW - 4 * 3600, NOW, 30,
                        lambda t, i: (0, 21.4 * GiB, 74.2, True), ref)
    write(name,
          "A Jupyter notebook's kernel holds 21 GiB of an H100 and has computed nothing for the 4 hours of samples: GPU "
          "memory held idle, ~4 GPU-hours.",
          {"findings": [{"kind": "gpu_memory_idle", "confidence": "high", "container": "notebook", "gpu": g,
                         "summary_contains": ["notebook"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_use_stuck():
    name = "gpu-use-stuck"
    p, cid = gpu_case_pod("llama-pretrain-worker-3", owner=("PyTorchJob", "llama-pretrain"), started=NOW - 5 * 3600,
                          labels={"training.kubeflow.org/job-name": "llama-pretrain", "training.kubeflow.org/replica-index": "3",
                                  "training.kubeflow.org/replica-type": "worker"})
    g = gpu_uuid(name)
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    hang = NOW - 16 * 60
    agent = [source(NOW - 5 * 3600, s) for s in ("cgroup", "kmsg", "psi", "nvml", "pod_resources")]
    rnd = random.Random(7)
    agent += gpu_series(p, "trainer", [g], NOW - 60 * 60, NOW, 20,
                        lambda t, i: (rnd.randint(88, 99), 71.3 * GiB, rnd.randint(560, 640), True) if t < hang
                        else (0, 71.3 * GiB, 112, True), ref)
    cpu = 0
    for t in series(NOW - 60 * 60, NOW, 20):
        cpu += (10 * 2.4e6) if t < hang else (10 * 0.01e6)
        agent.append(container_sample(t, ref, 38 * GiB, 64 * GiB, 34 * GiB, 4 * GiB, cpu_us=cpu))
    write(name,
          "A PyTorchJob worker trained at ~95 % for 45 minutes, then GPU utilization and the container's CPU both went "
          "to ~0 for 16 minutes while the process still holds 71 GiB of GPU memory: a hang, not a finished job.",
          {"findings": [{"kind": "training_stuck", "confidence": "high", "container": "trainer", "gpu": g,
                         "evidence_names": ["flat since", "last busy sample"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_use_nccl_wedge():
    name = "gpu-use-nccl-wedge"
    p, cid = gpu_case_pod("llama-pretrain-worker-5", owner=("PyTorchJob", "llama-pretrain"), gpus=2, started=NOW - 5 * 3600,
                          labels={"training.kubeflow.org/job-name": "llama-pretrain", "training.kubeflow.org/replica-type": "worker"})
    gs = [gpu_uuid(name + "a"), gpu_uuid(name + "b")]
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    wedge = NOW - 25 * 60
    agent = [source(NOW - 5 * 3600, s) for s in ("cgroup", "kmsg", "psi", "nvml", "pod_resources")]
    rnd = random.Random(11)
    agent += gpu_series(p, "trainer", gs, NOW - 60 * 60, NOW, 20,
                        lambda t, i: (rnd.randint(90, 99), 74.1 * GiB + rnd.randint(0, 900) * MiB, rnd.randint(520, 660), True) if t < wedge
                        else (100, 74.6 * GiB, 118 + rnd.random() * 6, True), ref)
    cpu = 0
    for t in series(NOW - 60 * 60, NOW, 20):
        cpu += 10 * (3.1e6 if t < wedge else 2.0e6)
        agent.append(container_sample(t, ref, 40 * GiB, 64 * GiB, 36 * GiB, 4 * GiB, cpu_us=cpu))
    write(name,
          "Both GPUs of a PyTorchJob worker report 100 % utilization at ~120 W of 700 W, memory flat, for 25 minutes: "
          "NCCL kernels spinning on a peer that left the collective.",
          {"findings": [{"kind": "nccl_wedge", "confidence": "high", "container": "trainer",
                         "summary_contains": ["2 of the pod's 2 GPU(s)"]}]},
          p, [], [node_obj(NODE)], agent)


def underused_gpu(name, pod_name, job, seed, sources):
    """A vision training pod (4-CPU limit) whose one GPU ran at a median ~20 % with its process on it for 30 minutes:
    (pod, GPU UUID, container ref, agent records)."""
    p, cid = gpu_case_pod(pod_name, owner=("Job", job), cpu="4", mem="48Gi", started=NOW - 2 * 3600)
    g = gpu_uuid(name)
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    rnd = random.Random(seed)
    agent = sources + gpu_series(p, "trainer", [g], NOW - 30 * 60, NOW, 10,
                                 lambda t, i: (rnd.choice([0, 5, 12, 38, 61, 22, 18, 30, 9, 27]), 31 * GiB,
                                               rnd.randint(150, 330), True), ref)
    return p, g, ref, agent


@case
def gpu_use_input_bound():
    name = "gpu-use-input-bound"
    p, g, ref, agent = underused_gpu(name, "vit-train-2-x9c4d", "vit-train-2", 3,
                                     [source(NOW - 2 * 3600, s) for s in ("cgroup", "psi", "nvml", "pod_resources")])
    cpu = thr = thr_us = 0
    for t in series(NOW - 30 * 60, NOW, 10):
        cpu += 10 * 3.96e6
        thr += 62
        thr_us += 10 * 0.9e6
        agent.append(container_sample(t, ref, 29 * GiB, 48 * GiB, 25 * GiB, 4 * GiB, cpu_us=cpu, throttled=thr, throttled_us=thr_us,
                                      cpu_psi=psi(71.0, cpu / 2, 40.0, cpu / 4)))
    write(name,
          "A vision training job with a 4-CPU limit decodes JPEGs in 8 DataLoader workers: the container uses 3.96 of 4 "
          "cores and is throttled in most CFS periods while the GPU's median utilization is ~20 %.",
          {"findings": [{"kind": "input_bound", "confidence": "high", "container": "trainer", "gpu": g,
                         "evidence_names": ["median GPU utilization", "container CPU", "CPU throttled periods"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_use_healthy():
    name = "gpu-use-healthy-busy"
    p, cid = gpu_case_pod("llama-pretrain-worker-0", owner=("PyTorchJob", "llama-pretrain"), gpus=2, started=NOW - 5 * 3600,
                          labels={"training.kubeflow.org/job-name": "llama-pretrain", "training.kubeflow.org/replica-type": "master"})
    gs = [gpu_uuid(name + "a"), gpu_uuid(name + "b")]
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    agent = [source(NOW - 5 * 3600, s) for s in ("cgroup", "kmsg", "psi", "nvml", "pod_resources")]
    rnd = random.Random(5)
    # Busy, with a 3-minute checkpoint pause (utilization 0, CPU busy writing).
    ck = (NOW - 40 * 60, NOW - 37 * 60)
    agent += gpu_series(p, "trainer", gs, NOW - 60 * 60, NOW, 20,
                        lambda t, i: (0, 74 * GiB, 130, True) if ck[0] <= t < ck[1]
                        else (rnd.randint(86, 100), 74 * GiB + rnd.randint(0, 1500) * MiB, rnd.randint(480, 690), True), ref)
    cpu = 0
    for t in series(NOW - 60 * 60, NOW, 20):
        cpu += 10 * 2.8e6
        agent.append(container_sample(t, ref, 41 * GiB, 64 * GiB, 33 * GiB, 8 * GiB, cpu_us=cpu, throttled=0,
                                      mem_psi=psi(0.3, t), io_psi=psi(2.0 if not ck[0] <= t < ck[1] else 35.0, t)))
    for t in series(NOW - 60 * 60, NOW, 30):
        agent.append(node_sample(t))
    write(name,
          "A healthy PyTorchJob rank: both GPUs 86-100 % at 480-690 W, with one 3-minute checkpoint pause; CPU well "
          "below its limit, no memory pressure: no finding.",
          {"findings": []},
          p, [], [node_obj(NODE)], agent)


# Sparse evidence must not read as healthy: where the agent's records
# cannot support a judgement, the engine says so as a gap.

@case
def gpu_use_starved_unsampled_gap():
    name = "gpu-use-starved-unsampled-gap"
    sources = [source(NOW - 2 * 3600, "cgroup", "unavailable",
                      "/sys/fs/cgroup/kubepods.slice: no such file or directory (the node's kubelet uses the cgroupfs driver)")]
    sources += [source(NOW - 2 * 3600, s) for s in ("kmsg", "nvml", "pod_resources")]
    p, _, _, agent = underused_gpu(name, "vit-train-3-k2m8q", "vit-train-3", 7, sources)
    write(name,
          "The GPU of a training pod runs at a median ~20 % with its process on it for 30 minutes, as in "
          "gpu-use-input-bound, but the agent's cgroup source could not find the pod's cgroups: no container "
          "samples, so no CPU and no pressure. Whether the input pipeline starves the GPU cannot be judged; the engine "
          "says so as a training_progress gap instead of reading the pod as healthy.",
          {"findings": [], "gaps": ["training_progress"]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_health_node_not_covered_gap():
    name = "gpu-health-node-not-covered-gap"
    p, cid = gpu_case_pod("llama-pretrain-worker-3", owner=("PyTorchJob", "llama-pretrain"), gpus=2, started=NOW - 5 * 3600)
    other = "gpu-node-08"
    agent = [source(NOW - 5 * 3600, s) for s in ("cgroup", "kmsg", "psi", "nvml", "pod_resources")]
    for t in series(NOW - 30 * 60, NOW, 30):
        agent.append(node_sample(t))
    write(name,
          "A GPU pod on gpu-node-07 while the bundle holds the agent records of gpu-node-08 only (the agent is not "
          "running on gpu-node-07, or its records were not collected). Nothing is wrong in what the evidence shows, "
          "but XIDs, lost GPUs and the pod's GPU use on gpu-node-07 would not show: gpu_health and gpu_use gaps, no "
          "finding, never a silent all-clear.",
          {"findings": [], "gaps": ["gpu_health", "gpu_use"]},
          p, [], [node_obj(NODE), node_obj(other)], agent, agent_node=other)


@case
def gpu_health_kmsg_unavailable_gap():
    name = "gpu-health-kmsg-unavailable-gap"
    p, cid = gpu_case_pod("llama-pretrain-worker-4", owner=("PyTorchJob", "llama-pretrain"), gpus=2, started=NOW - 5 * 3600)
    gs = [gpu_uuid(name + "a"), gpu_uuid(name + "b")]
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    agent = [source(NOW - 5 * 3600, "kmsg", "unavailable", "/dev/kmsg: permission denied; the agent lacks CAP_SYSLOG")]
    agent += [source(NOW - 5 * 3600, s) for s in ("cgroup", "psi", "nvml", "pod_resources")]
    rnd = random.Random(9)
    agent += gpu_series(p, "trainer", gs, NOW - 60 * 60, NOW, 20,
                        lambda t, i: (rnd.randint(86, 100), 74 * GiB + rnd.randint(0, 1500) * MiB, rnd.randint(480, 690), True), ref)
    cpu = 0
    for t in series(NOW - 60 * 60, NOW, 20):
        cpu += 20 * 2.8e6
        agent.append(container_sample(t, ref, 41 * GiB, 64 * GiB, 33 * GiB, 8 * GiB, cpu_us=cpu, throttled=0,
                                      mem_psi=psi(0.3, t), io_psi=psi(2.0, t)))
    write(name,
          "A busy PyTorchJob rank (both GPUs 86-100 %), on a node whose agent could not read the kernel log "
          "(/dev/kmsg: permission denied): its GPU use is judged healthy, but an XID on its GPUs would not show, so the "
          "engine reports a gpu_health gap rather than a clean bill of GPU health.",
          {"findings": [], "gaps": ["gpu_health"]},
          p, [], [node_obj(NODE)], agent)


# --- GPU health counters ----------------------------------------------------
# The agent's NVML health counters on each GPU sample (throttle reasons,
# ECC, remapped rows, PCIe), judged over the last 30 minutes.

def health_case(name, pod_name, fn, step=20, gpus=2, seed=11):
    """A busy PyTorchJob rank holding `gpus` H100s for the last hour; fn(t, i) -> (util, power, temp, clock, health)."""
    p, cid = gpu_case_pod(pod_name, owner=("PyTorchJob", "llama-pretrain"), gpus=gpus, started=NOW - 5 * 3600,
                          labels={"training.kubeflow.org/job-name": "llama-pretrain", "training.kubeflow.org/replica-type": "worker"})
    gs = [gpu_uuid(name + "abcdefgh"[i]) for i in range(gpus)]
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    agent = [source(NOW - 5 * 3600, s) for s in ("cgroup", "kmsg", "psi", "nvml", "pod_resources")]
    rnd = random.Random(seed)
    for t in series(NOW - 60 * 60, NOW, step):
        for i, g in enumerate(gs):
            util, power, temp, clock, health = fn(t, i, rnd)
            used = 74 * GiB + rnd.randint(0, 1500) * MiB
            procs = [gproc(88000 + i, used - 520 * MiB, ref)]
            agent.append(gpu_sample(t, i, g, util, used, power, [holder(p, "trainer", g)], procs, temp=temp, clock=clock,
                                    health=health))
    cpu = 0
    for t in series(NOW - 60 * 60, NOW, step):
        cpu += step * 2.8e6
        agent.append(container_sample(t, ref, 41 * GiB, 64 * GiB, 33 * GiB, 8 * GiB, cpu_us=cpu, throttled=0,
                                      mem_psi=psi(0.3, t), io_psi=psi(2.0, t)))
    return p, gs, agent


@case
def gpu_health_throttled_power_brake():
    name = "gpu-health-throttled-power-brake"
    brake = NOW - 12 * 60

    def fn(t, i, rnd):
        util = rnd.randint(90, 100)
        if i == 1 and t >= brake:
            # HW power brake asserted by the system: clocks halved, power falls with them.
            return util, rnd.randint(300, 340), 61, 990, gpu_health(["hw_slowdown", "hw_power_brake"])
        # A busy H100 at its power limit: SW power cap, the normal state, not a finding.
        return util, rnd.randint(660, 700), 64, 1755, gpu_health(["sw_power_cap"] if util > 95 else [])
    p, gs, agent = health_case(name, "llama-pretrain-worker-5", fn)
    write(name,
          "Rank 5 of a PyTorchJob holds two H100s, both 90-100 % busy. For the last 12 minutes NVML reports GPU 1's "
          "clocks held down by HW slowdown and HW power brake (SM 990 of 1980 MHz) at 61 °C, well below its slowdown "
          "threshold: the brake comes from the system's power supply or BMC, not heat. GPU 0 is at its power limit "
          "(sw_power_cap), the normal state of a busy H100: no finding for it. One gpu_throttled for GPU 1 naming the "
          "pod and the clock lost.",
          {"findings": [{"kind": "gpu_throttled", "confidence": "high", "container": "trainer", "gpu": gs[1],
                         "summary_contains": ["hw_power_brake", "990 MHz", "50 % lost", "still is", "ml-research/llama-pretrain-worker-5"],
                         "evidence_names": ["clock event reasons", "throttled for", "maximum SM clock"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_health_remap_pending():
    name = "gpu-health-remap-pending"
    hit = NOW - 9 * 60

    def fn(t, i, rnd):
        util = rnd.randint(88, 100)
        if i == 0 and t >= hit:
            return util, rnd.randint(560, 690), 66, 1755, gpu_health(ecc_cor=4, ecc_unc=2, ecc_cor_life=311, ecc_unc_life=2,
                                                                     remap_cor=1, remap_unc=1, pending=True)
        if i == 0:
            return util, rnd.randint(560, 690), 66, 1755, gpu_health(ecc_cor=4, ecc_cor_life=311, remap_cor=1)
        return util, rnd.randint(560, 690), 64, 1755, gpu_health()
    p, gs, agent = health_case(name, "llama-pretrain-worker-6", fn, seed=12)
    # The driver's report of the same error: XID 94 (contained), the rank's process survived.
    agent.append({"kind": "xid", "time": ats(hit - 3), "gpu_uuid": gs[0], "gpu_index": 0, "xid": 94, "count": 1,
                  "holders": [holder(p, "trainer", gs[0])], "simulated": False})
    write(name,
          "Nine minutes ago GPU 0 of a PyTorchJob rank had two uncorrectable ECC errors (the driver's XID 94: "
          "contained); the driver remapped the row, and the remap is pending until the GPU is reset. Its corrected "
          "errors (311 over its life, one row remapped for them long ago) are stable history. One gpu_memory_errors "
          "(drain and reset), and the XID linked to it as its consequence.",
          {"findings": [{"kind": "gpu_memory_errors", "confidence": "high", "container": "trainer", "gpu": gs[0],
                         "summary_contains": ["row remap is pending", "2 uncorrectable ECC errors"],
                         "evidence_names": ["remap pending", "uncorrectable ECC errors in the window"]},
                        {"kind": "gpu_xid", "confidence": "high", "container": "trainer", "gpu": gs[0], "summary_contains": ["XID 94"],
                         "caused_by": ["gpu_memory_errors"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_health_page_retirement_pending():
    name = "gpu-health-v100-page-retirement-pending"
    hit = NOW - 14 * 60

    def fn(t, i, rnd):
        util = rnd.randint(85, 100)
        if i == 1 and t >= hit:
            return util, rnd.randint(230, 290), 61, 1530, gpu_health(ecc_cor=9, ecc_unc=1, ecc_cor_life=40, ecc_unc_life=1,
                                                                     replays=0, retired=(1, 1, True))
        return util, rnd.randint(230, 290), 61, 1530, gpu_health(ecc_cor=9 if i == 1 else 0, ecc_cor_life=40 if i == 1 else 0,
                                                                 replays=0, retired=(1 if i == 1 else 0, 0, False))
    p, gs, agent = health_case(name, "resnet-train-worker-2", fn, seed=15)
    write(name,
          "A V100 node (before Ampere: pages are retired, no row remapper). 14 minutes ago GPU 1 had a double-bit ECC "
          "error: the driver retired the page, pending until the driver reloads. The single-bit page retired long ago "
          "is history. One gpu_memory_errors: drain and reset.",
          {"findings": [{"kind": "gpu_memory_errors", "confidence": "high", "container": "trainer", "gpu": gs[1],
                         "summary_contains": ["page retirement is pending", "1 uncorrectable ECC error"],
                         "evidence_names": ["page retirement pending", "pages retired (double-bit)"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_health_pcie_x8_replays():
    name = "gpu-health-pcie-x8-replays"
    replays = {"n": 40}

    def fn(t, i, rnd):
        util = rnd.randint(70, 95)
        if i == 0:
            # Trained at x8 (a bad riser) and replaying ~20 a minute.
            replays["n"] += rnd.randint(4, 9)
            return util, rnd.randint(450, 650), 63, 1755, gpu_health(gen=5, width=8, replays=replays["n"])
        return util, rnd.randint(450, 650), 63, 1755, gpu_health(replays=3)
    p, gs, agent = health_case(name, "llama-pretrain-worker-7", fn, seed=13)
    write(name,
          "GPU 0 of a PyTorchJob rank trained its PCIe link at x8 of x16 (a bad riser or slot) and replays about 20 "
          "packets a minute; GPU 1 beside it runs x16 with 3 replays since the driver loaded, stable. One "
          "gpu_link_degraded for GPU 0.",
          {"findings": [{"kind": "gpu_link_degraded", "confidence": "high", "container": "trainer", "gpu": gs[0],
                         "summary_contains": ["x8 of x16", "replays"],
                         "evidence_names": ["PCIe width", "PCIe replays a minute"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_health_counters_stable():
    name = "gpu-health-counters-nonzero-stable"
    ck = (NOW - 25 * 60, NOW - 22 * 60)

    def fn(t, i, rnd):
        # Old history on both GPUs: corrected errors, rows remapped long ago, an
        # uncorrectable error contained since the driver loaded, a few replays.
        h = dict(ecc_cor=17 + i, ecc_unc=1 - i, ecc_cor_life=1234, ecc_unc_life=3, remap_cor=2, remap_unc=1 - i, replays=3)
        if ck[0] <= t < ck[1]:
            # Checkpoint pause: idle, clocks and the PCIe link drop to save power.
            return 0, 95, 41, 345, gpu_health(["idle"], gen=1, **h)
        util = rnd.randint(86, 100)
        reasons = ["sw_power_cap"] if util > 96 else []
        if i == 1 and rnd.random() < 0.05:
            reasons = ["hw_slowdown"]  # a short pulse: one sample now and then
        return util, rnd.randint(480, 700), 65, 1755, gpu_health(reasons, **h)
    p, gs, agent = health_case(name, "llama-pretrain-worker-8", fn, seed=14)
    write(name,
          "A healthy PyTorchJob rank whose GPUs carry non-zero but stable counters: corrected ECC errors (1 234 over "
          "their life), rows remapped long ago, an uncorrectable error contained before the window, 3 PCIe replays; "
          "SW power cap when at the power limit, an occasional one-sample HW slowdown pulse, and PCIe Gen1 with idle "
          "clocks during a 3-minute checkpoint pause. Nothing rose, nothing is pending, the link is x16 Gen5 while "
          "busy: no finding.",
          {"findings": []},
          p, [], [node_obj(NODE)], agent)


def nvlinks(down=(), crc=None, replay=None, recovery=None, links=18):
    """An H100 SXM's 18 NVLink links as the agent reads them: `down` the links inactive; `crc`, `replay`,
    `recovery`: {link: count} (flit CRC errors, replays, recoveries since the driver loaded; 0 elsewhere)."""
    crc, replay, recovery = crc or {}, replay or {}, recovery or {}
    # The agent asks only links that are up for their counters.
    return [{"link": k, "active": False} if k in down else
            {"link": k, "active": True, "crc_flit_errors": crc.get(k, 0), "crc_data_errors": 0,
             "replay_errors": replay.get(k, 0), "recovery_errors": recovery.get(k, 0)} for k in range(links)]


def with_links(health, links):
    health["nvlinks"] = links
    return health


def health_change(t, index, uuid_, p, change, **detail):
    d = {"kind": "gpu_health_change", "time": ats(t), "gpu_uuid": uuid_, "gpu_index": index, "change": change,
         "holders": [holder(p, "trainer", uuid_)], "simulated": False}
    d.update(detail)
    return d


@case
def gpu_health_nvlink_down():
    name = "gpu-health-nvlink-down"
    down_at = NOW - 12 * 60

    def fn(t, i, rnd):
        util = rnd.randint(80, 97)
        # Both GPUs carry old, stable CRC counts on a link; GPU 0 loses link 7 twelve minutes ago.
        down = (7,) if i == 0 and t >= down_at else ()
        return util, rnd.randint(480, 690), 64, 1755, with_links(gpu_health(), nvlinks(down, crc={3: 12}))
    p, gs, agent = health_case(name, "llama-pretrain-worker-9", fn, seed=15)
    t_ev = min(t for t in series(NOW - 60 * 60, NOW, 20) if t >= down_at)
    agent.append(health_change(t_ev, 0, gs[0], p, "nvlink_down", link=7))
    # The driver's report of the failed link: XID 74 (NVLink error), from NVML's event.
    agent.append({"kind": "xid", "time": ats(down_at + 1), "gpu_uuid": gs[0], "gpu_index": 0, "xid": 74, "count": 1,
                  "holders": [holder(p, "trainer", gs[0])], "simulated": False})
    write(name,
          "GPU 0 of a PyTorchJob rank lost NVLink 7 twelve minutes ago (it was up before; the driver reported XID 74 and "
          "the agent recorded the gpu_health_change event); its other 17 links and all 18 of GPU 1 are up, with 12 old "
          "CRC errors on link 3 of both that never rise. One gpu_nvlink_degraded for GPU 0, high, and the XID 74 linked "
          "to it as its consequence.",
          {"findings": [{"kind": "gpu_nvlink_degraded", "confidence": "high", "container": "trainer", "gpu": gs[0],
                         "summary_contains": ["NVLink 7 went down", "17 of its 18 links are up"],
                         "evidence_names": ["NVLink links up", "NVLink links down"]},
                        {"kind": "gpu_xid", "confidence": "high", "container": "trainer", "gpu": gs[0],
                         "summary_contains": ["XID 74"], "caused_by": ["gpu_nvlink_degraded"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_health_nvlink_replays_rising():
    name = "gpu-health-nvlink-replays-rising"
    n = {"replay": 40, "recovery": 2, "crc": 900}

    def fn(t, i, rnd):
        util = rnd.randint(80, 97)
        if i == 1:
            # Link 11 of GPU 1 keeps replaying and now and then retrains; its CRC count rises with it (a few a
            # second, well under the 100 a second that matters alone).
            n["replay"] += rnd.randint(1, 4)
            n["crc"] += rnd.randint(20, 60)
            if rnd.random() < 0.1:
                n["recovery"] += 1
            links = nvlinks(crc={11: n["crc"]}, replay={11: n["replay"]}, recovery={11: n["recovery"]})
        else:
            links = nvlinks(replay={4: 1})
        return util, rnd.randint(480, 690), 64, 1755, with_links(gpu_health(), links)
    p, gs, agent = health_case(name, "llama-pretrain-worker-10", fn, seed=16)
    write(name,
          "NVLink 11 of GPU 1 replays a few packets a minute and retrains now and then, all links up; GPU 0 has one "
          "replay on link 4 since the driver loaded, stable. One gpu_nvlink_degraded for GPU 1 naming link 11's replays "
          "and recoveries (its CRC rate alone is under the 100 a second that matters).",
          {"findings": [{"kind": "gpu_nvlink_degraded", "confidence": "high", "container": "trainer", "gpu": gs[1],
                         "summary_contains": ["link 11", "replays", "recoveries"],
                         "evidence_names": ["NVLink links up", "NVLink errors"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_health_nvlink_stable():
    name = "gpu-health-nvlink-counters-nonzero-stable"

    def fn(t, i, rnd):
        util = rnd.randint(82, 99)
        # Old CRC errors, a replay and a recovery from long ago, on both GPUs: history, not rising.
        links = nvlinks(crc={0: 4410 + i, 9: 73}, replay={0: 6, 13: 1}, recovery={0: 1})
        return util, rnd.randint(480, 700), 65, 1755, with_links(gpu_health(["sw_power_cap"] if util > 96 else []), links)
    p, gs, agent = health_case(name, "llama-pretrain-worker-11", fn, seed=17)
    write(name,
          "A healthy PyTorchJob rank on an HGX H100: all 18 NVLink links of both GPUs up the whole hour, with CRC errors "
          "(4 410 on link 0), replays and a recovery counted since the driver loaded that never rise. No finding.",
          {"findings": []},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_health_nvlink_unused():
    name = "gpu-health-nvlink-unused-pcie"

    def fn(t, i, rnd):
        util = rnd.randint(82, 99)
        # H100 PCIe cards without an NVLink bridge: NVML lists the links, every one inactive, at every sample.
        return util, rnd.randint(250, 340), 61, 1755, with_links(gpu_health(), nvlinks(down=range(18)))
    p, gs, agent = health_case(name, "llama-pretrain-worker-12", fn, seed=18)
    write(name,
          "Two PCIe H100 cards without an NVLink bridge: every NVLink link reads inactive at every sample, as the board "
          "is built (NCCL goes over PCIe). Not a degraded link: no finding.",
          {"findings": []},
          p, [], [node_obj(NODE)], agent)


def rank_case(name, pod_name, since, seed, fn):
    """A 4-GPU PyTorchJob worker, busy for the last hour until `since`; after it fn(t, i, rnd) -> (util, power, used,
    clock, health) of GPU i. Returns the pod, the GPU UUIDs and the agent records (the container's CPU drops at
    `since`, as ranks waiting in NCCL use less)."""
    p, cid = gpu_case_pod(pod_name, owner=("PyTorchJob", "llama-pretrain"), gpus=4, started=NOW - 5 * 3600,
                          labels={"training.kubeflow.org/job-name": "llama-pretrain", "training.kubeflow.org/replica-type": "worker"})
    gs = [gpu_uuid(name + "abcd"[i]) for i in range(4)]
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    agent = [source(NOW - 5 * 3600, s) for s in ("cgroup", "kmsg", "psi", "nvml", "pod_resources")]
    rnd = random.Random(seed)
    for t in series(NOW - 60 * 60, NOW, 20):
        for i, g in enumerate(gs):
            if t < since:
                # Before: busy, with the health fn gives for that time.
                util, power, used, clock = rnd.randint(90, 99), rnd.randint(520, 660), 74.1 * GiB + rnd.randint(0, 900) * MiB, 1755
                health = fn(t, i, rnd)[4]
            else:
                util, power, used, clock, health = fn(t, i, rnd)
            agent.append(gpu_sample(t, i, g, util, used, power, [holder(p, "trainer", g)],
                                    [gproc(88000 + i, used - 520 * MiB, ref)], clock=clock, health=health))
    cpu = 0
    for t in series(NOW - 60 * 60, NOW, 20):
        cpu += 10 * (3.1e6 if t < since else 2.0e6)
        agent.append(container_sample(t, ref, 40 * GiB, 64 * GiB, 36 * GiB, 4 * GiB, cpu_us=cpu))
    return p, gs, agent


@case
def gpu_use_nccl_wedge_odd_rank():
    name = "gpu-use-nccl-wedge-odd-rank-nvlink"
    wedge = NOW - 25 * 60

    def fn(t, i, rnd):
        links = with_links(gpu_health(), nvlinks((5,) if i == 2 and t >= wedge - 20 else ()))
        if i == 2:
            # The rank whose NVLink 5 went down: its process waits on the copy that never completes, its GPU idles.
            return 0, 96 + rnd.random() * 3, 74.6 * GiB, 1755, links
        # The other ranks: NCCL kernels spinning on the collective GPU 2 never joins.
        return 100, 118 + rnd.random() * 6, 74.6 * GiB, 1755, links
    p, gs, agent = rank_case(name, "llama-pretrain-worker-13", wedge, 19, fn)
    t_ev = min(t for t in series(NOW - 60 * 60, NOW, 20) if t >= wedge - 20)
    agent.append(health_change(t_ev, 2, gs[2], p, "nvlink_down", link=5))
    write(name,
          "Three of the four GPUs of a PyTorchJob worker spin at 100 % utilization and ~120 W for 25 minutes (NCCL "
          "waiting on a peer); the fourth, GPU 2, lost NVLink 5 just before and idles at 0 %: it is the rank that is "
          "different. nccl_wedge (medium: 3 of 4 GPUs) naming GPU 2 and why, caused by the gpu_nvlink_degraded of GPU 2.",
          {"findings": [{"kind": "nccl_wedge", "confidence": "medium", "container": "trainer",
                         "summary_contains": ["3 of the pod's 4 GPU(s)", "The rank that is different", "(index 2)",
                                              "NVLink links are down", "left the others'"],
                         "evidence_names": ["different GPU " + gs[2] + " (index 2)"],
                         "caused_by": ["gpu_nvlink_degraded"]},
                        {"kind": "gpu_nvlink_degraded", "confidence": "high", "container": "trainer", "gpu": gs[2],
                         "summary_contains": ["NVLink 5 went down"]}]},
          p, [], [node_obj(NODE)], agent)


@case
def gpu_use_nccl_wedge_odd_rank_throttled():
    name = "gpu-use-nccl-wait-odd-rank-throttled"

    brake = NOW - 20 * 60

    def fn(t, i, rnd):
        if i == 1 and t >= brake:
            # The board's power brake holds GPU 1 at half clock: it computes, slowly.
            return 100, rnd.randint(300, 340), 74.6 * GiB, 990, gpu_health(["hw_power_brake"])
        # The other ranks finish each step early and wait in NCCL for GPU 1's share.
        return 100, 120 + rnd.random() * 8, 74.6 * GiB, 1755, gpu_health()
    p, gs, agent = rank_case(name, "llama-pretrain-worker-14", brake, 23, fn)
    write(name,
          "For 20 minutes the power brake has held GPU 1 of a 4-GPU PyTorchJob worker at half clock (990 of 1980 MHz); "
          "the other three ranks finish each step early and wait for it in NCCL at 100 % utilization and ~125 W. "
          "nccl_wedge (medium: 3 of 4 GPUs) naming GPU 1 as the rank that is different, caused by its gpu_throttled.",
          {"findings": [{"kind": "nccl_wedge", "confidence": "medium", "container": "trainer",
                         "summary_contains": ["3 of the pod's 4 GPU(s)", "The rank that is different", "(index 1)",
                                              "hw_power_brake"],
                         "caused_by": ["gpu_throttled"]},
                        {"kind": "gpu_throttled", "confidence": "high", "container": "trainer", "gpu": gs[1],
                         "summary_contains": ["hw_power_brake"]}]},
          p, [], [node_obj(NODE)], agent)


# --- Logs -----------------------------------------------------------------

NCCL_TIMEOUT_LOG = """[rank5]:[I1126 09:28:14.902 ProcessGroupNCCL.cpp:2047] [PG 0 Rank 5] ProcessGroupNCCL broadcast unique ID through store took 0.92 ms
step 48210 | loss 1.8312 | lr 2.41e-04 | tok/s 412883
step 48211 | loss 1.8297 | lr 2.41e-04 | tok/s 413120
step 48212 | loss 1.8305 | lr 2.41e-04 | tok/s 412551
[rank5]:[E1126 09:40:02.517 ProcessGroupNCCL.cpp:616] [Rank 5] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=48213, OpType=ALLREDUCE, NumelIn=262144, NumelOut=262144, Timeout(ms)=600000) ran for 600023 milliseconds before timing out.
[rank5]:[E1126 09:40:02.518 ProcessGroupNCCL.cpp:1785] [PG 0 Rank 5] Exception (either an error or timeout) detected by watchdog at work: 48213, last enqueued NCCL work: 48213, last completed NCCL work: 48212.
[rank5]:[E1126 09:40:02.518 ProcessGroupNCCL.cpp:630] [Rank 5] Some NCCL operations have failed or timed out. Due to the asynchronous nature of CUDA kernels, subsequent GPU operations might run on corrupted/incomplete data.
[rank5]:[E1126 09:40:02.518 ProcessGroupNCCL.cpp:636] [Rank 5] To avoid data inconsistency, we are taking the entire process down.
[rank5]:[E1126 09:40:02.601 ProcessGroupNCCL.cpp:1595] [PG 0 Rank 5] Process group watchdog thread terminated with exception: [Rank 5] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=48213, OpType=ALLREDUCE, NumelIn=262144, NumelOut=262144, Timeout(ms)=600000) ran for 600023 milliseconds before timing out.
terminate called after throwing an instance of 'c10::DistBackendError'
  what():  [PG 0 Rank 5] Process group watchdog thread terminated with exception: [Rank 5] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=48213, OpType=ALLREDUCE, NumelIn=262144, NumelOut=262144, Timeout(ms)=600000) ran for 600023 milliseconds before timing out.
"""


@case
def logs_nccl_timeout():
    name = "logs-nccl-timeout"
    fin = NOW - 1150
    cid_old, cid_new = h(name + "old"), h(name + "new")
    labels = {"training.kubeflow.org/job-name": "llama-pretrain", "training.kubeflow.org/replica-type": "worker",
              "training.kubeflow.org/replica-index": "5"}
    c = container_spec("pytorch", TRAIN_IMG, limits={"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": "1"},
                       env={"NCCL_DEBUG": "WARN", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"})
    st = cstatus("pytorch", TRAIN_IMG, cid_new, running(fin + 15),
                 last=terminated(cid_old, fin - 3 * 3600, fin, 134, "Error"), restarts=1)
    p = pod("llama-pretrain-worker-5", "ml-research", NODE, ("PyTorchJob", "llama-pretrain"), [c], [st], NOW - 4 * 3600,
            qos="Guaranteed", labels=labels, restart_policy="OnFailure")
    write(name,
          "A PyTorchJob worker (rank 5) aborted with SIGABRT (134) after the NCCL watchdog's 10-minute ALLREDUCE "
          "timeout: another rank stopped participating; this one is a victim.",
          {"findings": [{"kind": "nccl_error", "confidence": "high", "container": "pytorch",
                         "summary_contains": ["ALLREDUCE", "600023 ms", "rank 5"],
                         "evidence_names": ["timed-out collective", "exit code"]}],
           "gaps": ["agent"]},
          p, [event(p, "BackOff", "Back-off restarting failed container pytorch in pod llama-pretrain-worker-5_ml-research(" + p["metadata"]["uid"] + ")", fin + 1, container="pytorch")],
          [node_obj(NODE)], None, logs={"pytorch.log": NCCL_TIMEOUT_LOG})


NCCL_SHM_LOG = """NCCL version 2.21.5+cuda12.4
gpu-node-07:412:498 [0] NCCL INFO Channel 00/02 :    0   1
gpu-node-07:412:498 [0] include/alloc.h:125 NCCL WARN Error: failed to extend /dev/shm/nccl-Sd9ffE to 9637892 bytes
gpu-node-07:412:498 [0] include/alloc.h:132 NCCL WARN Error while creating shared memory segment /dev/shm/nccl-Sd9ffE (size 9637888)
gpu-node-07:412:498 [0] NCCL INFO transport/shm.cc:114 -> 2
Traceback (most recent call last):
  File "/workspace/train.py", line 88, in <module>
    dist.barrier()
torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/NCCLUtils.hpp:317, unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.21.5
ncclSystemError: System call (e.g. socket, malloc) or external library call failed or device error.
Last error:
Error while creating shared memory segment /dev/shm/nccl-Sd9ffE (size 9637888)
"""


@case
def logs_nccl_shm():
    name = "logs-nccl-shm"
    fin = NOW - 300
    cid_old, cid_new = h(name + "old"), h(name + "new")
    c = container_spec("trainer", TRAIN_IMG, limits={"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "2"},
                       command=["torchrun", "--nproc-per-node=2", "train.py"])
    st = cstatus("trainer", TRAIN_IMG, cid_new,
                 {"waiting": {"message": "back-off 2m40s restarting failed container=trainer", "reason": "CrashLoopBackOff"}},
                 last=terminated(cid_old, fin - 40, fin, 1, "Error"), restarts=4, ready=False)
    p = pod("ddp-smoke-test-5kq8p", "ml-research", NODE, ("Job", "ddp-smoke-test"), [c], [st], NOW - 1800, qos="Guaranteed",
            restart_policy="OnFailure")
    write(name,
          "Two local ranks cannot set up NCCL's shared-memory transport because /dev/shm is the runtime's 64 MiB "
          "default (no memory emptyDir mounted there): ncclSystemError, exit 1, crash-looping. "
          "Chains: the consequence is kept and linked to its cause. The crash loop is caused by the NCCL error.",
          {"findings": [{"kind": "nccl_error", "confidence": "high", "container": "trainer",
                         "summary_contains": ["/dev/shm"]},
                        {"kind": "crash_loop", "confidence": "high", "container": "trainer",
                         "summary_contains": ["CrashLoopBackOff"], "caused_by": ["nccl_error"]}],
           "gaps": ["agent"]},
          p, [], [node_obj(NODE)], None, logs={"trainer.log": NCCL_SHM_LOG}, indent=2)


MISSING_CONFIG_LOG = """INFO 11-26 09:52:10 api_server.py:528] vLLM API server version 0.6.3
INFO 11-26 09:52:10 api_server.py:529] args: Namespace(model='/models/llama-3.1-8b-instruct', served_model_name=['llama'], tensor_parallel_size=1, gpu_memory_utilization=0.9)
Traceback (most recent call last):
  File "/usr/local/lib/python3.12/site-packages/transformers/utils/hub.py", line 402, in cached_file
    resolved_file = hf_hub_download(
  File "/usr/local/lib/python3.12/site-packages/transformers/configuration_utils.py", line 689, in _get_config_dict
    resolved_config_file = cached_file(
FileNotFoundError: [Errno 2] No such file or directory: '/models/llama-3.1-8b-instruct/config.json'
"""


@case
def logs_model_missing_pvc():
    name = "logs-model-missing-pvc"
    fin = NOW - 200
    cid_old, cid_new = h(name + "old"), h(name + "new")
    mounts = [{"mountPath": "/models", "name": "models", "readOnly": True}, {"mountPath": "/dev/shm", "name": "dshm"}]
    vols = [{"name": "models", "persistentVolumeClaim": {"claimName": "model-store"}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
    c = container_spec("vllm", SERVE_IMG, limits={"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": "1"}, mounts=mounts,
                       command=["vllm", "serve", "/models/llama-3.1-8b-instruct", "--served-model-name", "llama"])
    st = cstatus("vllm", SERVE_IMG, cid_new,
                 {"waiting": {"message": "back-off 5m0s restarting failed container=vllm", "reason": "CrashLoopBackOff"}},
                 last=terminated(cid_old, fin - 25, fin, 1, "Error"), restarts=7, ready=False)
    p = pod("llama-serve-5c7d9f8b6-wq2lx", "inference", NODE, ("ReplicaSet", "llama-serve-5c7d9f8b6"), [c], [st],
            NOW - 3600, volumes=vols, qos="Guaranteed")
    write(name,
          "vLLM cannot find /models/llama-3.1-8b-instruct/config.json: the path is on the read-only PVC model-store "
          "mounted at /models, which does not hold that model. "
          "Chains: the consequence is kept and linked to its cause. The crash loop is caused by the missing model files.",
          {"findings": [{"kind": "model_files_missing", "confidence": "high", "container": "vllm",
                         "summary_contains": ["/models/llama-3.1-8b-instruct/config.json", "PVC model-store"],
                         "evidence_names": ["missing path", "volume mounts"]},
                        {"kind": "crash_loop", "confidence": "high", "container": "vllm",
                         "summary_contains": ["CrashLoopBackOff", "code 1"], "caused_by": ["model_files_missing"]}],
           "gaps": ["agent"]},
          p, [], [node_obj(NODE)], None, logs={"vllm.log": MISSING_CONFIG_LOG}, indent=2)


MISSING_DATA_LOG = """2025-11-26 09:55:41,118 INFO loading dataset shards from /data/tokenized/train-*.bin
Traceback (most recent call last):
  File "/workspace/train.py", line 61, in <module>
    ds = ShardedDataset("/data/tokenized", split="train")
  File "/workspace/data.py", line 24, in __init__
    with open(self.index_path) as f:
FileNotFoundError: [Errno 2] No such file or directory: '/data/tokenized/index.json'
"""


@case
def logs_model_missing_unmounted():
    name = "logs-data-missing-not-mounted"
    fin = NOW - 120
    cid = h(name)
    mounts = [{"mountPath": "/checkpoints", "name": "ckpt"}]
    vols = [{"name": "ckpt", "persistentVolumeClaim": {"claimName": "gpt-ckpt"}}]
    c = container_spec("trainer", TRAIN_IMG, limits={"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"}, mounts=mounts)
    st = cstatus("trainer", TRAIN_IMG, cid,
                 {"terminated": {"containerID": f"containerd://{cid}", "exitCode": 1, "finishedAt": kts(fin),
                                 "reason": "Error", "startedAt": kts(fin - 14)}}, restarts=0, ready=False)
    p = pod("gpt-small-pretrain-r8d2k", "ml-research", NODE, ("Job", "gpt-small-pretrain"), [c], [st], fin - 60,
            phase="Failed", volumes=vols, qos="Guaranteed", restart_policy="Never")
    write(name,
          "The training script reads /data/tokenized/index.json, but the pod mounts only /checkpoints: /data exists "
          "only in the image, which does not contain the dataset (the data volume was left out of the Job). "
          "The Job pod (restartPolicy Never) failed once: container_failed (not a crash loop), caused by the missing files.",
          {"findings": [{"kind": "model_files_missing", "confidence": "high", "container": "trainer",
                         "summary_contains": ["under no volume mount"]},
                        {"kind": "container_failed", "confidence": "high", "container": "trainer",
                         "summary_contains": ["code 1", "one exit, not a crash loop", "Job/gpt-small-pretrain"],
                         "caused_by": ["model_files_missing"]}],
           "gaps": ["agent"]},
          p, [], [node_obj(NODE)], None, logs={"trainer.current.log": MISSING_DATA_LOG}, indent=2)



# --- Processes stuck in I/O wait -------------------------------------------

# An NFS read as a 6.1 kernel sleeps in it: the page wait of the read path,
# below the NFS client's read_iter (frames as /proc/PID/stack prints them).
NFS_READ_STACK = [
    "folio_wait_bit_common+0x12a/0x360",
    "filemap_get_pages+0x5f4/0x730",
    "filemap_read+0xd9/0x350",
    "nfs_file_read+0x7c/0xd0 [nfs]",
    "vfs_read+0x1d5/0x2d0",
    "ksys_read+0x6b/0xf0",
    "do_syscall_64+0x58/0xc0",
    "entry_SYSCALL_64_after_hwframe+0x64/0xce",
]

# A read on a FUSE mount whose daemon does not answer, as the agent's FUSE
# test (agent/tests/stuck_fuse.rs) read it on a 6.18 kernel: FUSE's read
# leaves no frame of its own; the blocked read's file (on a fuse.* mount)
# says FUSE.
FUSE_READ_STACK = [
    "folio_wait_bit_common+0x167/0x370",
    "filemap_get_pages+0x751/0x770",
    "filemap_read+0x111/0x400",
    "vfs_read+0x2a4/0x3d0",
    "ksys_read+0x6f/0xf0",
    "do_syscall_64+0x71/0x290",
    "entry_SYSCALL_64_after_hwframe+0x76/0x7e",
]


@case
def stuck_io_nfs_rank():
    name = "stuck-io-nfs-rank"
    hang = NOW - 14 * 60 - 20
    job = ("PyTorchJob", "llama-pretrain")
    pods = []
    agent = [source(NOW - 5 * 3600, s) for s in ("cgroup", "kmsg", "psi", "nvml", "pod_resources")]
    for r in range(8):
        p, cid = gpu_case_pod(f"llama-pretrain-worker-{r}", owner=job, started=NOW - 5 * 3600,
                              labels={"training.kubeflow.org/job-name": "llama-pretrain",
                                      "training.kubeflow.org/replica-index": str(r),
                                      "training.kubeflow.org/replica-type": "worker"})
        g = gpu_uuid(name + str(r))
        ref = cref(p["metadata"]["uid"], cid, "guaranteed")
        rnd = random.Random(100 + r)
        if r == 2:
            g2 = g
            # Its GPU goes flat: the rank launches nothing while it waits.
            fn = lambda t, i, rnd=rnd: ((rnd.randint(88, 99), 71.3 * GiB, rnd.randint(560, 640), True) if t < hang
                                        else (0, 71.3 * GiB, 112, True))
        else:
            # The others spin in the next all-reduce, waiting for rank 2.
            fn = lambda t, i, rnd=rnd: ((rnd.randint(88, 99), 71.3 * GiB, rnd.randint(560, 640), True) if t < hang
                                        else (100, 71.6 * GiB, 117 + rnd.random() * 5, True))
        agent += gpu_series(p, "trainer", [g], NOW - 60 * 60, NOW, 20, fn, ref)
        cpu = 0
        for t in series(NOW - 60 * 60, NOW, 20):
            busy = t < hang
            cpu += 20 * (2.4e6 if busy else (0.01e6 if r == 2 else 1.0e6))
            stuck = None
            # The agent scans flat containers every 10 s and reports a thread
            # 30 s after it first saw it asleep without running.
            first_seen = hang + 10
            if r == 2 and t >= first_seen + 30:
                stuck = [stuck_task(88123, "pt_data_worker", first_seen, "folio_wait_bit_common", "nfs", NFS_READ_STACK,
                                    "/mnt/datasets/redpajama/shard-01873.jsonl.zst", "nfs4")]
            agent.append(container_sample(t, ref, 38 * GiB, 64 * GiB, 34 * GiB, 4 * GiB, cpu_us=cpu, stuck=stuck))
        pods.append(p)
    subject = pods[2]
    write(name,
          "Rank 2 of an 8-worker PyTorchJob (one H100 each, one node) has a DataLoader worker asleep in an NFS read for 14 "
          "minutes without running; its GPU went flat, and the other 7 ranks' GPUs spin at 100 % and idle power in the "
          "next all-reduce. The stuck read is the cause; the stuck training of rank 2 is linked to it and names it.",
          {"findings": [
              {"kind": "process_stuck_io", "confidence": "high", "container": "trainer",
               "summary_contains": ["NFS", "pt_data_worker", "14m", "7 of 8 ranks wait in NCCL", "rank 2 (this pod)"],
               "evidence_names": ["stuck since", "kernel stack"],
               "evidence_contains": {"waits on": "an NFS call", "file": "shard-01873.jsonl.zst (nfs4)"}, "caused_by": []},
              {"kind": "training_stuck", "confidence": "high", "container": "trainer", "gpu": g2,
               "summary_contains": ["7 of 8 ranks wait in NCCL, rank 2 (this pod)"],
               "evidence_names": ["the rank that is different"], "caused_by": ["process_stuck_io"]},
          ]},
          subject, [], [node_obj(NODE)], agent, extra_pods=pods[:2] + pods[3:])


@case
def stuck_io_fuse():
    name = "stuck-io-fuse-gcsfuse"
    p, cid = gpu_case_pod("shard-tokenize-0-7hk2p", owner=("Job", "shard-tokenize"), started=NOW - 2 * 3600)
    g = gpu_uuid(name)
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    agent = [source(NOW - 2 * 3600, s) for s in ("cgroup", "kmsg", "psi", "nvml", "pod_resources")]
    hang = NOW - 25 * 60
    agent += gpu_series(p, "trainer", [g], NOW - 40 * 60, NOW, 30,
                        lambda t, i: (61, 20 * GiB, 300, True) if t < hang else (0, 20 * GiB, 75, True), ref)
    cpu = 0
    for t in series(NOW - 40 * 60, NOW, 30):
        cpu += 30 * (3.0e6 if t < hang else 0.005e6)
        stuck = ([stuck_task(4242, "python3", hang + 5, "folio_wait_bit_common", "fuse", FUSE_READ_STACK,
                             "/gcs/raw-text/part-00417.parquet", "fuse.gcsfuse")] if t >= hang + 40 else None)
        agent.append(container_sample(t, ref, 12 * GiB, 64 * GiB, 10 * GiB, 2 * GiB, cpu_us=cpu, stuck=stuck))
    write(name,
          "A tokenizing Job reads its shards through a gcsfuse mount; the FUSE daemon stopped answering and the main "
          "process has been asleep in a read for 25 minutes. No other rank: the stuck read is the finding, and the "
          "stuck run is linked to it.",
          {"findings": [
              {"kind": "process_stuck_io", "confidence": "high", "container": "trainer",
               "summary_contains": ["a FUSE request", "python3 (pid 4242)"],
               "evidence_contains": {"file": "fuse.gcsfuse"}, "caused_by": []},
              {"kind": "training_stuck", "confidence": "high", "container": "trainer", "gpu": g,
               "caused_by": ["process_stuck_io"]},
          ]},
          p, [], [node_obj(NODE)], agent)


@case
def stuck_io_brief_healthy():
    name = "stuck-io-brief-d-healthy"
    p, cid = gpu_case_pod("llama-pretrain-worker-6", owner=("PyTorchJob", "llama-pretrain"), started=NOW - 5 * 3600,
                          labels={"training.kubeflow.org/job-name": "llama-pretrain",
                                  "training.kubeflow.org/replica-index": "6"})
    g = gpu_uuid(name)
    ref = cref(p["metadata"]["uid"], cid, "guaranteed")
    agent = [source(NOW - 5 * 3600, s) for s in ("cgroup", "kmsg", "psi", "nvml", "pod_resources")]
    rnd = random.Random(66)
    agent += gpu_series(p, "trainer", [g], NOW - 60 * 60, NOW, 20,
                        lambda t, i: (rnd.randint(88, 99), 71.3 * GiB, rnd.randint(560, 640), True), ref)
    blip = NOW - 30 * 60
    cpu = 0
    for t in series(NOW - 60 * 60, NOW, 20):
        cpu += 20 * 2.4e6
        stuck = None
        # An NFS server failover 30 minutes ago: a reader slept 70 s, then ran on.
        if blip + 40 <= t <= blip + 70:
            stuck = [stuck_task(88130, "pt_data_worker", blip, "folio_wait_bit_common", "nfs", NFS_READ_STACK)]
        # A checkpoint write asleep 50 s as of the last sample: past the agent's 30 s, short of the rule's 120 s.
        if t >= NOW - 20:
            stuck = [stuck_task(88001, "python3", NOW - 50, "io_schedule", "block_io",
                                ["io_schedule+0x46/0x70", "folio_wait_bit_common+0x13e/0x350",
                                 "folio_wait_writeback+0x2b/0x80", "__filemap_fdatawait_range+0x8b/0xf0"])]
        agent.append(container_sample(t, ref, 38 * GiB, 64 * GiB, 34 * GiB, 4 * GiB, cpu_us=cpu, stuck=stuck))
    write(name,
          "A busy worker whose data loader slept 70 s in an NFS read during a server failover half an hour ago and ran on, "
          "and whose checkpoint write has waited 50 s on the disk as of the last sample: neither is stuck (the first "
          "recovered, the second is shorter than the kernel's 120 s hung-task mark): no finding.",
          {"findings": []},
          p, [], [node_obj(NODE)], agent)


@case
def thrashing_reclaim_v1():
    name = "oom-thrashing-reclaim-v1"
    p = train_pod("embed-index-build-4-x2v8k", owner=("Job", "embed-index-build-4"), mem="16Gi",
                  statuses=[cstatus("trainer", TRAIN_IMG, h(name), running(NOW - 2 * 3600), restarts=0)])
    ref = cref(p["metadata"]["uid"], h(name), "guaranteed", v1=True)
    agent = [source(NOW - 2 * 3600, s) for s in ("cgroup", "kmsg", "psi")]
    maj = 120_000
    for t in series(NOW - 30 * 60, NOW, 15):
        maj += 15 * 310
        agent.append(container_sample(t, ref, 15.6 * GiB, 16 * GiB, 15.1 * GiB, 0.5 * GiB, cpu_us=t * 2e6,
                                      mem_psi=psi(2.0, t * 10), scope="node", v1=True,
                                      reclaim={"pgmajfault": maj}))
    write(name,
          "A cgroup v1 container at 97 % of its 16 GiB limit whose page cache is squeezed to 0.5 GiB: major faults run "
          "at ~310/s for the last 30 minutes (memory.stat total_pgmajfault), while the node's pressure stays low and "
          "the container has no pressure file of its own. Likely thrashing, at low confidence.",
          {"findings": [{"kind": "memory_thrashing", "confidence": "low", "container": "trainer",
                         "summary_contains": ["major faults 310/s"], "evidence_names": ["reclaim", "memory use"]}]},
          p, [], [node_obj(NODE)], agent)

if __name__ == "__main__":
    for fn in CASES:
        fn()
    print(f"wrote {len(CASES)} cases")
