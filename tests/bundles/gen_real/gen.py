# Helpers for the real-* bundles: cases written from real kubelet, scheduler,
# containerd and NVIDIA output before the rules were read. Regenerate with
# `python3 tests/bundles/gen_real/casesN.py` (deterministic).
import json, hashlib, os, datetime as dt
import os
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

def h(s, n=64): return hashlib.sha256(s.encode()).hexdigest()[:n]
def uid(s):
    x = h("uid" + s, 32); return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"
def cid(s): return h("cid" + s)
def T(s): return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
def fmt(t): return t.strftime("%Y-%m-%dT%H:%M:%SZ")
def fmtms(t): return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond//1000:03d}Z"

def write(case, about, findings, files, gaps=None):
    d = os.path.join(ROOT, case)
    for name, content in files.items():
        p = os.path.join(d, "bundle", name); os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            if isinstance(content, str): f.write(content)
            else: json.dump(content, f, indent=4); f.write("\n")
    exp = {"about": about, "findings": findings}
    if gaps: exp["gaps"] = gaps
    with open(os.path.join(d, "expected.json"), "w") as f: json.dump(exp, f, indent=2); f.write("\n")

def jsonl(recs): return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in recs)

def owner(kind, name, api="batch/v1"):
    return [{"apiVersion": api, "blockOwnerDeletion": True, "controller": True, "kind": kind, "name": name, "uid": uid(kind + name)}]

SA_VOL = {"name": "kube-api-access-9fx2m", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}
SA_MOUNT = {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access-9fx2m", "readOnly": True}
TOLS = [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
        {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]

def container(name, image, gpu=1, mem="64Gi", cpu="8", command=None, mounts=(), probe=None, eph=None):
    lim = {"cpu": cpu, "memory": mem}
    if gpu: lim["nvidia.com/gpu"] = str(gpu)
    c = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
         "resources": {"limits": dict(lim), "requests": dict(lim)},
         "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
         "volumeMounts": list(mounts) + [SA_MOUNT]}
    if command: c["command"] = command
    if probe: c.update(probe)
    return c

def pod(name, ns, created, owners, containers, node, status, init=(), volumes=(), restart="Never", selector=None):
    spec = {"containers": containers, "dnsPolicy": "ClusterFirst", "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": restart,
            "schedulerName": "default-scheduler", "securityContext": {}, "serviceAccount": "default",
            "serviceAccountName": "default", "terminationGracePeriodSeconds": 30, "tolerations": TOLS,
            "volumes": list(volumes) + [SA_VOL]}
    if init: spec["initContainers"] = list(init)
    if node: spec["nodeName"] = node
    if selector: spec["nodeSelector"] = selector
    md = {"creationTimestamp": created, "labels": {}, "name": name, "namespace": ns,
          "resourceVersion": str(int(h(name, 6), 16)), "uid": uid(name)}
    if owners: md["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": status}

def cond(t, s, at, reason=None, msg=None):
    c = {"lastProbeTime": None, "lastTransitionTime": at, "status": s, "type": t}
    if reason: c["reason"] = reason
    if msg: c["message"] = msg
    return c

def cstatus(name, image, state, last=None, restarts=0, ready=False, started=False, cidkey=None):
    s = {"name": name, "image": image, "imageID": "", "lastState": last or {}, "ready": ready,
         "restartCount": restarts, "started": started, "state": state}
    if cidkey:
        s["containerID"] = "containerd://" + cid(cidkey)
        s["imageID"] = image.split(":")[0] + "@sha256:" + h("img" + image)
    return s

def term(code, reason, started, finished, key=None):
    t = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished}
    if key: t["containerID"] = "containerd://" + cid(key)
    return {"terminated": t}

def pstatus(phase, conds, cs, start, init=None, host="10.0.1.21", reason=None, msg=None):
    s = {"conditions": conds, "containerStatuses": cs, "hostIP": host, "hostIPs": [{"ip": host}],
         "phase": phase, "qosClass": "Guaranteed", "startTime": start}
    if phase != "Pending" or init is not None: s["podIP"] = "10.244.3.17"; s["podIPs"] = [{"ip": "10.244.3.17"}]
    if init is not None: s["initContainerStatuses"] = init
    if reason: s["reason"] = reason
    if msg: s["message"] = msg
    return s

def event(p, reason, msg, first, last=None, count=1, typ="Warning", comp="kubelet", host=None, field=None):
    name = p["metadata"]["name"]; ns = p["metadata"]["namespace"]
    io = {"kind": "Pod", "namespace": ns, "name": name, "uid": p["metadata"]["uid"], "apiVersion": "v1", "resourceVersion": p["metadata"]["resourceVersion"]}
    if field: io["fieldPath"] = field
    e = {"apiVersion": "v1", "kind": "Event",
         "metadata": {"name": f"{name}.{h(reason+msg+first,16)}", "namespace": ns, "uid": uid(name+reason+first),
                      "resourceVersion": str(int(h(reason+first, 6), 16)), "creationTimestamp": first},
         "involvedObject": io, "reason": reason, "message": msg, "type": typ, "count": count,
         "firstTimestamp": first, "lastTimestamp": last or first, "source": {"component": comp}, "reportingComponent": comp,
         "reportingInstance": host or ""}
    if host: e["source"]["host"] = host
    return e

def elist(items): return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}

def node(name, gpus=8, alloc=None, heartbeat="2026-11-20T10:00:00Z", runtime="containerd://1.7.24", conds=None, product="NVIDIA-H100-80GB-HBM3"):
    alloc = gpus if alloc is None else alloc
    base = [cond("MemoryPressure", "False", "2026-10-01T08:01:00Z", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "2026-10-01T08:01:00Z", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "2026-10-01T08:01:00Z", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "2026-10-01T08:01:00Z", "KubeletReady", "kubelet is posting ready status")]
    for c in base:
        del c["lastProbeTime"]; c["lastHeartbeatTime"] = heartbeat
    if conds:
        for c in base:
            if c["type"] in conds: c.update(conds[c["type"]])
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": uid(name), "resourceVersion": "2957416", "creationTimestamp": "2026-10-01T08:00:00Z",
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                    "node.kubernetes.io/instance-type": "p5.48xlarge", "nvidia.com/gpu.present": "true",
                                    "nvidia.com/gpu.product": product, "nvidia.com/gpu.count": str(gpus)}},
            "spec": {"podCIDR": "10.244.3.0/24", "providerID": f"aws:///us-east-1a/i-0{h(name,16)}"},
            "status": {"capacity": {"cpu": "192", "memory": "2097152000Ki", "pods": "110", "ephemeral-storage": "3750000000Ki", "nvidia.com/gpu": str(gpus)},
                       "allocatable": {"cpu": "191450m", "memory": "2086666240Ki", "pods": "110", "ephemeral-storage": "3455000000000", "nvidia.com/gpu": str(alloc)},
                       "conditions": base,
                       "addresses": [{"type": "InternalIP", "address": "10.0.1.21"}, {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "v1.31.4", "containerRuntimeVersion": runtime, "kernelVersion": "6.8.0-1021-aws",
                                    "osImage": "Ubuntu 22.04.5 LTS", "architecture": "amd64", "operatingSystem": "linux"}}}
