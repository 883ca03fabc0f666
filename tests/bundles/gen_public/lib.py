# Helpers for the public-* bundles: cases reconstructed from public issue
# threads (each case's README cites its thread and says what is verbatim).
# Regenerate with `python3 tests/bundles/gen_public/cases_oom.py` (and
# cases_pod.py, cases_gpu.py); deterministic.
import os, sys, json, datetime as dt
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gen_real"))
from gen import *  # noqa: F401,F403  (pod, node, event, ... shared with gen_real)

GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10

def ms(s):  # "2026-11-20T10:00:00Z" (+ optional .fff) -> RFC 3339 with ms
    if "." in s: return s
    return s[:-1] + ".000Z"

def psi(v=0.0, tot=0):
    return {"some": {"avg10": v, "avg60": v, "avg300": v, "total_us": tot}, "full": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total_us": 0}}

def cref(puid, c, qos="guaranteed"):
    u = puid.replace("-", "_")
    if qos == "guaranteed":
        path = f"/kubepods.slice/kubepods-pod{u}.slice/cri-containerd-{c}.scope"
    else:
        path = f"/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice/cri-containerd-{c}.scope"
    return {"cgroup_path": path, "pod_uid": puid, "container_id": c, "qos": qos, "runtime": "containerd", "driver": "systemd"}

def csample(t, ref, usage, limit, anon, file, shmem=0, oom_kill=0, group=0, cpu_us=0, mpsi=0.0):
    r = {"kind": "container_sample", "time": fmtms(t)}; r.update(ref)
    r.update({"cgroup_version": "v2", "memory": {"usage_bytes": usage, "limit_bytes": limit, "peak_bytes": None, "anon_bytes": anon, "file_bytes": file, "shmem_bytes": shmem,
              "events": {"oom": oom_kill and 1, "oom_kill": oom_kill, "oom_group_kill": group, "max": 0, "high": 0, "under_oom": None, "failcnt": None}},
              "cpu": {"usage_us": cpu_us, "nr_throttled": 0, "throttled_us": 0},
              "pressure": {"memory": psi(mpsi), "cpu": psi(), "io": psi()}, "pressure_scope": "container"})
    return r

def victim(pid, comm, total_vm_kb, anon_kb, file_kb, shmem_kb, uid_=None, pgtables_kb=None, adj=None):
    return {"pid": pid, "comm": comm, "total_vm_bytes": total_vm_kb * KiB, "anon_rss_bytes": anon_kb * KiB, "file_rss_bytes": file_kb * KiB,
            "shmem_rss_bytes": shmem_kb * KiB, "uid": uid_, "pgtables_bytes": None if pgtables_kb is None else pgtables_kb * KiB, "oom_score_adj": adj}

def oomkill(t, ref, limit, vic, constraint="memcg", oom_kill=1, group=0, trigger=None, usage=None, window=(), peak=None, by="notification"):
    r = {"kind": "oom_kill", "time": fmtms(t), "detected_at": fmtms(t + dt.timedelta(milliseconds=4)), "detected_by": by}
    r.update(ref)
    r.update({"cgroup_version": "v2", "limit_bytes": limit, "peak_bytes": peak, "oom_kill": oom_kill, "oom_group_kill": group,
              "constraint": constraint, "victim": vic, "trigger_comm": trigger,
              "kernel_usage_bytes": usage, "kernel_limit_bytes": limit if constraint == "memcg" else None,
              "window": list(window), "pressure_scope": "container" if window else None})
    return r

def wpoint(t, usage, anon, file, shmem=0, some=0.0, tot=0):
    return {"time": fmtms(t), "usage_bytes": usage, "anon_bytes": anon, "file_bytes": file, "shmem_bytes": shmem,
            "memory_some_avg10": some, "memory_some_total_us": tot, "memory_full_total_us": tot // 3}

def xid(t, gpu, idx, code, count=1, holders=()):
    return {"kind": "xid", "time": fmtms(t), "gpu_uuid": gpu, "gpu_index": idx, "xid": code, "count": count, "holders": list(holders), "simulated": False}

def holder(ns, podname, container, gpu):
    return {"namespace": ns, "pod": podname, "container": container, "resource_name": "nvidia.com/gpu", "device_id": gpu, "replica": None}

def gsample(t, idx, u, util, used, power, procs=(), holders=(), name="NVIDIA H100 80GB HBM3", total=85520809984):
    return {"kind": "gpu_sample", "time": fmtms(t), "index": idx, "uuid": u, "parent_uuid": None, "name": name,
            "pci_bus_id": f"00000000:{0x18 + 0x10*idx:02X}:00.0", "utilization_gpu_percent": util, "utilization_memory_percent": util // 2,
            "memory_total_bytes": total, "memory_used_bytes": used, "power_draw_watts": power, "power_limit_watts": 700.0,
            "temperature_celsius": 40 + util // 3, "sm_clock_mhz": 1980 if util else 345, "persistence_mode": True,
            "processes": list(procs), "holders": list(holders), "simulated": False}

def sources(t, nvml=True):
    names = ("cgroup", "kmsg", "psi", "node") + (("nvml",) if nvml else ())
    return [{"kind": "source", "time": fmtms(t), "source": s, "state": "ok", "reason": None} for s in names]

def readme(case, title, sources_, verbatim, reconstructed, reasoning):
    d = os.path.join(ROOT, case)
    os.makedirs(d, exist_ok=True)
    out = [f"# {case}", "", title, "", "## Source", ""]
    out += [f"- {s}" for s in sources_]
    out += ["", "## From the thread (text in backticks is verbatim)", ""]
    out += [f"- {v}" for v in verbatim]
    out += ["", "## Reconstructed (not in the thread)", ""]
    out += [f"- {r}" for r in reconstructed]
    out += ["", "## Expectation (written before running the engine)", "", reasoning, ""]
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("\n".join(out))

def amend(case, findings, why):
    """An expectation completed after the engine first ran: `findings` are
    added to the case's expected.json and `why` to its README under its own
    heading, so the first expectation stays readable beside the change."""
    d = os.path.join(ROOT, case)
    p = os.path.join(d, "expected.json")
    with open(p) as f:
        exp = json.load(f)
    exp["findings"] += findings
    with open(p, "w") as f:
        json.dump(exp, f, indent=2); f.write("\n")
    with open(os.path.join(d, "README.md"), "a") as f:
        f.write("\n## Changed after the engine ran\n\n" + why + "\n")

FAILED_ONCE = ("The pod's phase is Failed, and a failure's consequences are kept as findings linked to its cause "
               "(docs/diagnosis.md, Chains), as in the corpus's other cases of a pod that failed once; it is not a "
               "crash loop, which the expectation still rules out.")

def failed_once(container, cause, story):
    """The `container_failed` consequence of a pod that failed once, and why."""
    return ([{"kind": "container_failed", "confidence": "high", "container": container, "caused_by": [cause]}],
            f"The expectation gains `container_failed`, high, linked to `{cause}`: {story} {FAILED_ONCE}")
