#!/usr/bin/env python3
"""Writes the pod-* and gpu-health-* test bundles (kubectl-shaped JSON).

Usage: python3 tests/bundles/gen_pod_bundles.py tests/bundles
Each case states its expected findings next to its inputs; expected.json is written from them.
"""
import hashlib, json, os, shutil, sys

ROOT = sys.argv[1]

def h64(seed): return hashlib.sha256(seed.encode()).hexdigest()
def uid(seed):
    x = hashlib.md5(seed.encode()).hexdigest()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"
def gpu_uuid(seed):
    x = hashlib.md5(("gpu" + seed).encode()).hexdigest()
    return f"GPU-{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"

import datetime
BASE = datetime.datetime(2026, 11, 20, 10, 0, 0)
def t(m, s=0, h=10, d=20):
    return f"2026-11-{d:02d}T{h:02d}:{m:02d}:{s:02d}Z"
def at(sec):
    return (BASE + datetime.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%SZ")

IMAGE_IDS = {}
def image_id(image):
    repo = image.split(":")[0] if "@" not in image else image.split("@")[0]
    if "/" not in repo.split("/")[0] and "." not in repo.split("/")[0] and repo.count("/") == 0:
        repo = "docker.io/library/" + repo
    elif "." not in repo.split("/")[0]:
        repo = "docker.io/" + repo
    return f"{repo}@sha256:{h64(image)}"

def owner(kind, name):
    return [{"apiVersion": "batch/v1" if kind == "Job" else ("apps/v1"), "kind": kind, "name": name,
             "uid": uid(kind + name), "controller": True, "blockOwnerDeletion": True}]

def container(name, image, gpus=0, cpu="4", mem="16Gi", command=None, args=None, env=None,
              env_from=None, probes=None, mounts=None, ports=None):
    limits = {"cpu": cpu, "memory": mem}
    requests = {"cpu": cpu, "memory": mem}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
        requests["nvidia.com/gpu"] = str(gpus)
    c = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
         "resources": {"limits": limits, "requests": requests},
         "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
         "volumeMounts": (mounts or []) + [{"name": "kube-api-access-x7k2p", "readOnly": True,
                           "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}
    if command: c["command"] = command
    if args: c["args"] = args
    if env: c["env"] = env
    if env_from: c["envFrom"] = env_from
    if ports: c["ports"] = ports
    if probes: c.update(probes)
    return c

def running(since): return {"running": {"startedAt": since}}
def waiting(reason, message=None):
    w = {"reason": reason}
    if message: w["message"] = message
    return {"waiting": w}
def terminated(code, reason, started, finished, cid, signal=None, message=None):
    x = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished,
         "containerID": "containerd://" + cid}
    if signal is not None: x["signal"] = signal
    if message: x["message"] = message
    return {"terminated": x}

def cstatus(name, image, state, last=None, ready=False, restarts=0, started=None, cid_seed=None, pulled=True):
    s = {"name": name, "image": image, "imageID": image_id(image) if pulled else "",
         "lastState": last or {}, "ready": ready, "restartCount": restarts, "state": state}
    if pulled:
        s["containerID"] = "containerd://" + h64(cid_seed or (name + image + json.dumps(state)))
    if started is not None: s["started"] = started
    return s

def cond(typ, status, at, reason=None, message=None):
    c = {"type": typ, "status": status, "lastProbeTime": None, "lastTransitionTime": at}
    if reason: c["reason"] = reason
    if message: c["message"] = message
    return c

def pod(name, ns="ml", node="gpu-node-1", phase="Running", containers=(), statuses=(), created=None,
        conditions=None, owners=None, labels=None, tolerations=None, node_selector=None, volumes=None,
        restart_policy="Always", reason=None, message=None, start=None, init_statuses=None, extra_spec=None,
        pod_ip="10.244.3.17", affinity=None):
    created = created or t(0)
    spec = {"containers": list(containers), "dnsPolicy": "ClusterFirst", "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": restart_policy,
            "schedulerName": "default-scheduler", "securityContext": {},
            "serviceAccount": "default", "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": (tolerations or []) + [
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}],
            "volumes": (volumes or []) + [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}]}
    if node: spec["nodeName"] = node
    if node_selector: spec["nodeSelector"] = node_selector
    if affinity: spec["affinity"] = affinity
    if extra_spec: spec.update(extra_spec)
    meta = {"name": name, "namespace": ns, "uid": uid(ns + name), "resourceVersion": str(int(h64(name)[:6], 16)),
            "creationTimestamp": created, "labels": labels or {"app": name.rsplit("-", 2)[0]}}
    if owners: meta["ownerReferences"] = owners
    if conditions is None:
        if phase == "Running":
            ready = all(s.get("ready") for s in statuses)
            rs = "True" if ready else "False"
            conditions = [cond("PodReadyToStartContainers", "True", start or created),
                          cond("Initialized", "True", start or created),
                          cond("Ready", rs, start or created, None if ready else "ContainersNotReady",
                               None if ready else f"containers with unready status: [{','.join(s['name'] for s in statuses if not s.get('ready'))}]"),
                          cond("ContainersReady", rs, start or created, None if ready else "ContainersNotReady",
                               None if ready else f"containers with unready status: [{','.join(s['name'] for s in statuses if not s.get('ready'))}]"),
                          cond("PodScheduled", "True", created)]
        elif phase == "Pending" and node:
            conditions = [cond("PodReadyToStartContainers", "False", created), cond("Initialized", "True", created),
                          cond("Ready", "False", created, "ContainersNotReady", f"containers with unready status: [{','.join(c['name'] for c in containers)}]"),
                          cond("ContainersReady", "False", created, "ContainersNotReady", f"containers with unready status: [{','.join(c['name'] for c in containers)}]"),
                          cond("PodScheduled", "True", created)]
        else:
            conditions = []
    status = {"phase": phase, "conditions": conditions, "qosClass": "Guaranteed"}
    if node and phase != "Pending" or (node and statuses):
        status.update({"hostIP": "10.0.1.21", "hostIPs": [{"ip": "10.0.1.21"}], "podIP": pod_ip,
                       "podIPs": [{"ip": pod_ip}], "startTime": start or created})
    elif node:
        status.update({"hostIP": "10.0.1.21", "hostIPs": [{"ip": "10.0.1.21"}], "startTime": start or created})
    if statuses: status["containerStatuses"] = list(statuses)
    if init_statuses: status["initContainerStatuses"] = init_statuses
    if reason: status["reason"] = reason
    if message: status["message"] = message
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}

def event(p, reason, message, last, first=None, count=1, typ="Warning", field=None, component="kubelet", host=None):
    m = p["metadata"]
    e = {"apiVersion": "v1", "kind": "Event",
         "metadata": {"name": f"{m['name']}.{h64(reason + message + last)[:16]}", "namespace": m["namespace"],
                      "uid": uid(reason + message + last), "resourceVersion": str(int(h64(last + reason)[:6], 16)),
                      "creationTimestamp": first or last},
         "involvedObject": {"kind": "Pod", "namespace": m["namespace"], "name": m["name"], "uid": m["uid"],
                            "apiVersion": "v1", "resourceVersion": m["resourceVersion"]},
         "reason": reason, "message": message, "type": typ, "count": count,
         "firstTimestamp": first or last, "lastTimestamp": last,
         "source": {"component": component}, "reportingComponent": component, "reportingInstance": ""}
    if field: e["involvedObject"]["fieldPath"] = f"spec.containers{{{field}}}"
    if component == "kubelet":
        e["source"]["host"] = host or p["spec"].get("nodeName", "")
        e["reportingInstance"] = host or p["spec"].get("nodeName", "")
    return e

def sched_event(p, message, last, first=None, count=1):
    e = event(p, "FailedScheduling", message, last, first, count, component="default-scheduler")
    # New-style events from the scheduler: eventTime set, timestamps null.
    e["firstTimestamp"] = None
    e["lastTimestamp"] = None
    e["eventTime"] = last.replace("Z", ".412318Z")
    e["count"] = None
    e["series"] = {"count": count, "lastObservedTime": last.replace("Z", ".412318Z")} if count > 1 else None
    if e["series"] is None: del e["series"]
    e["action"] = "Scheduling"
    e["reportingInstance"] = "default-scheduler-control-plane-1"
    return e

def node(name, gpus=8, alloc=None, labels=None, taints=None, unschedulable=False, cpu="96", mem="1056561588Ki", product="NVIDIA-H100-80GB-HBM3"):
    alloc = gpus if alloc is None else alloc
    lbl = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
           "node.kubernetes.io/instance-type": "p5.48xlarge" if gpus else "m6i.4xlarge"}
    if gpus:
        lbl.update({"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": product, "nvidia.com/gpu.count": str(gpus)})
    lbl.update(labels or {})
    cap = {"cpu": cpu, "memory": mem, "pods": "110", "ephemeral-storage": "1844244328Ki"}
    al = {"cpu": str(int(cpu) - 1), "memory": "1046075828Ki", "pods": "110", "ephemeral-storage": "1699622811064"}
    if gpus or alloc:
        cap["nvidia.com/gpu"] = str(gpus)
        al["nvidia.com/gpu"] = str(alloc)
    spec = {"podCIDR": "10.244.3.0/24", "providerID": f"aws:///us-east-1a/i-{h64(name)[:17]}"}
    if taints: spec["taints"] = taints
    if unschedulable: spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": uid(name), "resourceVersion": str(int(h64(name)[:6], 16)),
                         "creationTimestamp": "2026-10-01T08:00:00Z", "labels": lbl},
            "spec": spec,
            "status": {"capacity": cap, "allocatable": al,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status",
                                       "lastHeartbeatTime": t(0), "lastTransitionTime": "2026-10-01T08:01:00Z"}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.1.21"}, {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "v1.31.4", "containerRuntimeVersion": "containerd://1.7.24",
                                    "kernelVersion": "6.8.0-1021-aws", "osImage": "Ubuntu 22.04.5 LTS",
                                    "architecture": "amd64", "operatingSystem": "linux"}}}

def pvc(name, ns, phase, storage_class="gp3", size="500Gi"):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": ns, "uid": uid("pvc" + name), "creationTimestamp": t(0),
                         "annotations": {"volume.beta.kubernetes.io/storage-provisioner": "ebs.csi.aws.com"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                     "storageClassName": storage_class, "volumeMode": "Filesystem"},
            "status": {"phase": phase}}

def plist(items):
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}

def holder(ns, podname, cont, dev):
    return {"namespace": ns, "pod": podname, "container": cont, "resource_name": "nvidia.com/gpu",
            "device_id": dev, "replica": None}

def gpu_sample(time, index, uuid_, util=97, mem_used=71_000_000_000, power=612.4, holders=(), procs=()):
    return {"kind": "gpu_sample", "time": time, "index": index, "uuid": uuid_, "parent_uuid": None,
            "name": "NVIDIA H100 80GB HBM3", "pci_bus_id": f"00000000:{0x18 + index * 0x10:02X}:00.0",
            "utilization_gpu_percent": util, "utilization_memory_percent": util // 2,
            "memory_total_bytes": 85_520_809_984, "memory_used_bytes": mem_used,
            "power_draw_watts": power, "power_limit_watts": 700.0, "temperature_celsius": 61,
            "sm_clock_mhz": 1980, "persistence_mode": True, "processes": list(procs),
            "holders": list(holders), "simulated": False}

def write(case, about, expected, pod_json, events=None, nodes=None, pods=None, pvcs=None, agent=None, meta=None):
    d = os.path.join(ROOT, case)
    if os.path.exists(d): shutil.rmtree(d)
    b = os.path.join(d, "bundle")
    os.makedirs(b)
    def dump(name, obj):
        with open(os.path.join(b, name), "w") as f:
            json.dump(obj, f, indent=4)
            f.write("\n")
    if pod_json is not None: dump("pod.json", pod_json)
    if events is not None: dump("events.json", plist(events))
    if nodes is not None: dump("nodes.json", plist(nodes) if len(nodes) != 1 else nodes[0])
    if pods is not None: dump("pods.json", plist(pods))
    if pvcs is not None: dump("pvcs.json", plist(pvcs))
    if meta is not None: dump("meta.json", meta)
    if agent is not None:
        with open(os.path.join(b, "agent.jsonl"), "w") as f:
            for line in agent:
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
    exp = {"about": about}
    exp.update(expected)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f, indent=2)
        f.write("\n")

def meta(ns, name, at):
    return {"kind": "GpuscopeBundle", "subject": {"namespace": ns, "name": name}, "collectedAt": at}

def F(kind, conf, **kw):
    d = {"kind": kind, "confidence": conf}
    d.update(kw)
    return d

# ---------------------------------------------------------------- image pulls
def pull_case(case, about, image, message, exp, secrets=None, reason="ImagePullBackOff", with_events=True, ns="ml"):
    c = container("trainer", image, gpus=1)
    extra = {"imagePullSecrets": [{"name": s} for s in secrets]} if secrets else None
    wmsg = f'Back-off pulling image "{image}"' if reason == "ImagePullBackOff" else message
    p = pod("train-resnet-7xk2q", ns=ns, phase="Pending", containers=[c], created=t(2),
            owners=owner("Job", "train-resnet"), labels={"job-name": "train-resnet", "batch.kubernetes.io/job-name": "train-resnet"},
            statuses=[cstatus("trainer", image, waiting(reason, wmsg), started=False, pulled=False)], extra_spec=extra)
    ev = None
    if with_events:
        ev = [event(p, "Scheduled", f"Successfully assigned {ns}/train-resnet-7xk2q to gpu-node-1", t(2), typ="Normal", component="default-scheduler"),
              event(p, "Pulling", f'Pulling image "{image}"', t(9, 41), t(2, 3), 6, "Normal", "trainer"),
              event(p, "Failed", f'Failed to pull image "{image}": {message}', t(9, 42), t(2, 4), 6, field="trainer"),
              event(p, "Failed", "Error: ErrImagePull", t(9, 42), t(2, 4), 6, field="trainer"),
              event(p, "BackOff", f'Back-off pulling image "{image}"', t(11, 5), t(2, 30), 31, "Normal", "trainer"),
              event(p, "Failed", "Error: ImagePullBackOff", t(11, 5), t(2, 30), 31, field="trainer")]
    write(case, about, exp, p, ev, nodes=[node("gpu-node-1")])

pull_case("pod-image-pull-tag-not-found",
          "A tag that was never pushed: containerd says NotFound; the finding names the image and says it does not exist.",
          "pytorch/pytorch:2.9.9-cuda12.4-cudnn9-runtime",
          'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/pytorch/pytorch:2.9.9-cuda12.4-cudnn9-runtime": failed to resolve reference "docker.io/pytorch/pytorch:2.9.9-cuda12.4-cudnn9-runtime": docker.io/pytorch/pytorch:2.9.9-cuda12.4-cudnn9-runtime: not found',
          {"findings": [F("image_pull", "high", container="trainer", summary_contains=["does not exist", "pytorch/pytorch:2.9.9"], evidence_names=["pull error", "failed pulls"])]})

pull_case("pod-image-pull-unauthorized",
          "A private NGC image pulled without imagePullSecrets: 401 Unauthorized, high confidence, says there are no pull secrets.",
          "nvcr.io/acme-research/llm-trainer:2026.11",
          'rpc error: code = Unknown desc = failed to pull and unpack image "nvcr.io/acme-research/llm-trainer:2026.11": failed to resolve reference "nvcr.io/acme-research/llm-trainer:2026.11": failed to authorize: failed to fetch oauth token: unexpected status from GET request to https://nvcr.io/proxy_auth?scope=repository%3Aacme-research%2Fllm-trainer%3Apull: 401 Unauthorized',
          {"findings": [F("image_pull", "high", container="trainer", summary_contains=["credentials", "imagePullSecrets: none"])]})

pull_case("pod-image-pull-dockerhub-ambiguous",
          "Docker Hub's 'pull access denied ... may require authorization' is the same answer for a typo and a private repo: medium confidence, both named.",
          "acmeresearch/trainer:v3",
          'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/acmeresearch/trainer:v3": failed to resolve reference "docker.io/acmeresearch/trainer:v3": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed',
          {"findings": [F("image_pull", "medium", container="trainer", summary_contains=["does not exist", "private"])]},
          secrets=["dockerhub-readonly"])

pull_case("pod-image-pull-rate-limit",
          "Docker Hub's anonymous pull limit: toomanyrequests, high confidence.",
          "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04",
          'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04": failed to copy: httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/nvidia/cuda/manifests/sha256:3b1f2e...: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit',
          {"findings": [F("image_pull", "high", container="trainer", summary_contains=["rate-limited"])]})

pull_case("pod-image-pull-registry-unreachable",
          "An internal registry the node cannot resolve: DNS failure, high confidence, next step checks DNS from the node.",
          "registry.internal.acme.io/ml/trainer:1.4.2",
          'rpc error: code = Unknown desc = failed to pull and unpack image "registry.internal.acme.io/ml/trainer:1.4.2": failed to resolve reference "registry.internal.acme.io/ml/trainer:1.4.2": failed to do request: Head "https://registry.internal.acme.io/v2/ml/trainer/manifests/1.4.2": dial tcp: lookup registry.internal.acme.io on 10.96.0.10:53: no such host',
          {"findings": [F("image_pull", "high", container="trainer", summary_contains=["cannot reach registry registry.internal.acme.io", "DNS"])]})

pull_case("pod-image-pull-no-events",
          "ImagePullBackOff with no events collected: the pull error is unknown, so a low-confidence finding that says the events are missing.",
          "ghcr.io/acme/trainer:sha-4f2a9c1", "", 
          {"findings": [F("image_pull", "low", container="trainer", summary_contains=["not in the evidence", "no events"])], "gaps": ["events"]},
          with_events=False)

# ---------------------------------------------------------------- crash loops
def crash_case(case, about, code, reason, run_s, exp, restarts=6, command=None, signal=None, image="ghcr.io/acme/trainer:1.8.0",
               owners=None, gpus=1, probes=None, extra_events=(), cname="trainer", podname="train-bert-0", term_message=None):
    c = container(cname, image, gpus=gpus, command=command, probes=probes)
    fin = at(760)
    st = at(760 - run_s)
    cid = h64(case)
    last = terminated(code, reason, st, fin, cid, signal, term_message)
    p = pod(podname, containers=[c], created=t(0), start=t(0),
            owners=owners or owner("Job", "train-bert"),
            labels={"job-name": "train-bert"},
            statuses=[cstatus(cname, image, waiting("CrashLoopBackOff", f"back-off 5m0s restarting failed container={cname} pod={podname}_ml({uid('ml' + podname)})"),
                              last, False, restarts, False, cid_seed=case)],
            restart_policy="Always" if owners else "OnFailure")
    ev = [event(p, "Pulled", f'Container image "{image}" already present on machine', at(760 - run_s), t(0, 30), restarts + 1, "Normal", cname),
          event(p, "Started", f"Started container {cname}", at(760 - run_s), t(0, 31), restarts + 1, "Normal", cname),
          event(p, "BackOff", "Back-off restarting failed container " + cname + f" in pod {podname}_ml({uid('ml' + podname)})", t(13, 1), t(1, 10), 28, field=cname)]
    ev += [e(p) for e in extra_events]
    write(case, about, exp, p, ev, nodes=[node("gpu-node-1")])

crash_case("pod-crash-loop-exit-1", "A trainer that fails at start with exit 1: application error, the log says why.",
           1, "Error", 14, {"findings": [F("crash_loop", "high", container="trainer", summary_contains=["code 1", "application error"], evidence_names=["exit code", "restarts", "last run", "back-off events"])]})
crash_case("pod-crash-loop-exit-127", "A typo in the command ('pyhton'): exit 127 means command not found.",
           127, "Error", 0, {"findings": [F("crash_loop", "high", container="trainer", summary_contains=["code 127", "command not found"])]},
           command=["/bin/sh", "-c", "pyhton train.py --config /etc/train/config.yaml"])
crash_case("pod-crash-loop-exit-126", "An entrypoint script without the executable bit: exit 126.",
           126, "Error", 0, {"findings": [F("crash_loop", "high", container="trainer", summary_contains=["code 126", "not executable"])]},
           command=["/bin/sh", "-c", "/opt/train/entrypoint.sh"])
crash_case("pod-crash-loop-exit-134", "A CUDA abort (SIGABRT, exit 134) after 3 minutes of training.",
           134, "Error", 185, {"findings": [F("crash_loop", "high", container="trainer", summary_contains=["code 134", "SIGABRT"])]}, restarts=4)
crash_case("pod-crash-loop-exit-139", "A segfault in a native extension (exit 139).",
           139, "Error", 42, {"findings": [F("crash_loop", "high", container="trainer", summary_contains=["code 139", "SIGSEGV"])]}, restarts=9)
crash_case("pod-crash-loop-completed", "An inference server Deployment whose command returns at once with exit 0: a loop of Completed, the program exits when it should keep running.",
           0, "Completed", 1, {"findings": [F("crash_loop", "high", container="server", summary_contains=["code 0", "keep running"])]},
           owners=owner("ReplicaSet", "llm-server-6b9f7c5d8"), cname="server", podname="llm-server-6b9f7c5d8-q2w7x", gpus=1,
           command=["python", "-m", "server.warmup"])

# Exit 143 from liveness kills, in CrashLoopBackOff: both the crash loop and the probe.
liveness = {"livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 10,
                              "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}}
crash_case("pod-crash-loop-exit-143-liveness",
           "A server killed by its liveness probe (HTTP 500) that handles SIGTERM: exit 143 in CrashLoopBackOff; the crash loop and the probe are both findings.",
           143, "Error", 70, {"findings": [F("crash_loop", "high", container="server", summary_contains=["code 143", "SIGTERM", "liveness or startup probe failed"], caused_by=["probe_failing"]),
                                           F("probe_failing", "high", container="server", summary_contains=["liveness", "500"], caused_by=[])]},
           owners=owner("ReplicaSet", "embed-api-5d7c9b8f4"), cname="server", podname="embed-api-5d7c9b8f4-hx2mz", probes=liveness,
           extra_events=[lambda p: event(p, "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500", t(12, 39), t(1, 5), 21, field="server"),
                         lambda p: event(p, "Killing", "Container server failed liveness probe, will be restarted", t(12, 39), t(1, 25), 7, "Normal", "server")])

# A Job pod (restartPolicy Never) that failed once with exit 2.
c = container("preprocess", "ghcr.io/acme/tokenize:0.3.1", cpu="8", mem="32Gi", args=["--shards", "256", "--out", "s3://acme-data/tok"])
p = pod("tokenize-shards-9gk4m", containers=[c], phase="Failed", node="cpu-node-3", restart_policy="Never", owners=owner("Job", "tokenize-shards"),
        labels={"job-name": "tokenize-shards"}, created=t(0), start=t(0),
        statuses=[cstatus("preprocess", "ghcr.io/acme/tokenize:0.3.1", terminated(2, "Error", t(0, 12), t(0, 14), h64("tok")), ready=False, started=False, cid_seed="tok")],
        conditions=[cond("Ready", "False", t(0, 14), "PodFailed"), cond("PodScheduled", "True", t(0))])
write("pod-job-failed-exit-2", "A Job pod with restartPolicy Never that exited 2 (bad arguments): one crash, not a loop; the finding says the pod failed. Mechanism: under restartPolicy Never one failed exit fails the pod; that is container_failed, not crash_loop.",
      {"findings": [F("container_failed", "high", container="preprocess", summary_contains=["code 2", "pod failed", "one exit, not a crash loop", "Job/tokenize-shards"])]}, p, [])

# ---------------------------------------------------------------- pending
def pending_pod(name, gpus=0, cpu="16", mem="128Gi", node_selector=None, tolerations=None, volumes=None, conditions=None, created=None,
                image="ghcr.io/acme/trainer:1.8.0", owners=None, mounts=None, extra_spec=None):
    c = container("trainer", image, gpus=gpus, cpu=cpu, mem=mem, mounts=mounts)
    return pod(name, node=None, phase="Pending", containers=[c], created=created or t(0), conditions=conditions or [],
               node_selector=node_selector, tolerations=tolerations, volumes=volumes, owners=owners or owner("Job", name.rsplit("-", 1)[0]),
               labels={"job-name": name.rsplit("-", 1)[0]}, extra_spec=extra_spec)

def unsched_cond(msg, at):
    return [cond("PodScheduled", "False", at, "Unschedulable", msg)]

msg = "0/5 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient memory, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/5 nodes are available: 2 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling."
p = pending_pod("embed-corpus-x8v2d", cpu="16", mem="900Gi", node_selector={"node-pool": "highmem"}, conditions=unsched_cond(msg, t(0, 1)))
write("pod-pending-insufficient-memory",
      "0/5 nodes: control-plane taint, affinity, and 2 nodes with too little memory: the nodes that matched lack memory, so pending_resources is the one finding; the other clauses are evidence.",
      {"findings": [F("pending_resources", "high", summary_contains=["2 lack memory", "memory 900Gi"], evidence_names=["scheduler message", "nodes excluded: Insufficient memory", "nodes excluded: node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"])]},
      p, [sched_event(p, msg, t(14, 2), t(0, 1), 17)])

msg = "0/6 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: present}, 3 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/6 nodes are available: 6 Preemption is not helpful for scheduling."
p = pending_pod("eval-suite-2m9qd", cpu="8", mem="64Gi", node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, conditions=unsched_cond(msg, t(0, 1)))
write("pod-pending-taint",
      "A pod that selects GPU nodes but lacks the toleration for their nvidia.com/gpu taint: pending_taint (not affinity: the affinity clause counts the CPU nodes).",
      {"findings": [F("pending_taint", "high", summary_contains=["nvidia.com/gpu: present"])]}, p, [sched_event(p, msg, t(20), t(0, 1), 9)])

msg = "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
p = pending_pod("finetune-llama-k2l9s", gpus=0, cpu="8", mem="64Gi", node_selector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}, conditions=unsched_cond(msg, t(0, 1)))
write("pod-pending-node-selector",
      "A GKE node selector on an EKS cluster: no node matches; pending_affinity names the selector.",
      {"findings": [F("pending_affinity", "high", summary_contains=["4 of 4", "cloud.google.com/gke-accelerator=nvidia-h100-80gb"], evidence_names=["nodeSelector"])]},
      p, [sched_event(p, msg, t(7), t(0, 1), 5)])

msg = "0/4 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
p = pending_pod("train-gpt-data-0", cpu="8", mem="64Gi", volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "train-data"}}],
                mounts=[{"name": "data", "mountPath": "/data"}], conditions=unsched_cond(msg, t(0, 1)))
write("pod-pending-unbound-pvc",
      "A claim whose storage class cannot provision: the pod is unschedulable with unbound immediate PVCs; the finding cites the PVC's Pending phase.",
      {"findings": [F("pending_pvc", "high", summary_contains=["\"train-data\" is Pending"], evidence_names=["PVC train-data", "PVC train-data storageClassName"])]},
      p, [sched_event(p, msg, t(4), t(0, 1), 3)], pvcs=[pvc("train-data", "ml", "Pending", "fast-nvme")])

msg = "0/4 nodes are available: 4 Insufficient cpu. preemption: 0/4 nodes are available: 4 No preemption victims found for incoming pod."
p = pending_pod("feature-extract-5ttw2", cpu="120", mem="64Gi", conditions=unsched_cond(msg, t(0, 1)), created=t(0))
write("pod-pending-events-expired",
      "Pending for hours: the FailedScheduling event has expired (empty event list), the PodScheduled condition carries the message; still high confidence, the source says so.",
      {"findings": [F("pending_resources", "high", summary_contains=["4 lack cpu", "cpu 120"], evidence_names=["source"])]},
      p, [], meta=meta("ml", "feature-extract-5ttw2", "2026-11-20T13:05:00Z"))

p = pending_pod("sweep-trial-17-zq8fx", cpu="4", mem="16Gi", created=t(0))
write("pod-pending-no-evidence",
      "Only pod.json: Pending for 20 minutes with no condition and no events: a low-confidence pending finding naming what is missing.",
      {"findings": [F("pending", "low", summary_contains=["20m", "no events"])], "gaps": ["events", "node", "agent"]},
      p, None, meta=meta("ml", "sweep-trial-17-zq8fx", t(20)))

p = pending_pod("sweep-trial-18-m2kd9", cpu="4", mem="16Gi", created=t(0, 5))
write("pod-pending-just-created",
      "Created 20 s before the bundle: the scheduler has not answered yet; not a finding.",
      {"findings": []}, p, [], meta=meta("ml", "sweep-trial-18-m2kd9", t(0, 25)))

# ---------------------------------------------------------------- config and mounts
env = [{"name": "MODEL_ID", "valueFrom": {"configMapKeyRef": {"name": "serving-config", "key": "model_id"}}},
       {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-credentials", "key": "HF_TOKEN"}}}]
c = container("server", "ghcr.io/acme/vllm-serve:0.6.3", gpus=1, env=env)
p = pod("llm-serve-7c9d8f6b5-4kq8z", containers=[c], phase="Pending", created=t(0), owners=owner("ReplicaSet", "llm-serve-7c9d8f6b5"),
        statuses=[cstatus("server", "ghcr.io/acme/vllm-serve:0.6.3", waiting("CreateContainerConfigError", 'configmap "serving-config" not found'), started=False, pulled=False)])
write("pod-config-missing-configmap", "An env var from a ConfigMap that was never created: CreateContainerConfigError names it.",
      {"findings": [F("config_missing", "high", container="server", summary_contains=["ConfigMap \"serving-config\" does not exist"], evidence_names=["referenced by"])]},
      p, [event(p, "Failed", 'Error: configmap "serving-config" not found', t(6), t(0, 8), 27, field="server")], nodes=[node("gpu-node-1")])

c = container("server", "ghcr.io/acme/vllm-serve:0.6.3", gpus=1, env=env)
p = pod("llm-serve-7c9d8f6b5-9wz2v", containers=[c], phase="Pending", created=t(0), owners=owner("ReplicaSet", "llm-serve-7c9d8f6b5"),
        statuses=[cstatus("server", "ghcr.io/acme/vllm-serve:0.6.3", waiting("CreateContainerConfigError", "couldn't find key HF_TOKEN in Secret ml/hf-credentials"), started=False, pulled=False)])
write("pod-config-missing-secret-key", "The Secret exists but lacks the key an env var reads (events expired; the waiting message is enough).",
      {"findings": [F("config_missing", "high", container="server", summary_contains=["key \"HF_TOKEN\" is missing from Secret ml/hf-credentials"], evidence_names=["key", "referenced by"])]},
      p, [])

c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=8, mounts=[{"name": "train-config", "mountPath": "/etc/train"}])
p = pod("train-llama-master-0", containers=[c], phase="Pending", created=t(0), owners=owner("PyTorchJob", "train-llama"),
        volumes=[{"name": "train-config", "configMap": {"name": "train-llama-config", "defaultMode": 420}}],
        statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0", waiting("ContainerCreating"), started=False, pulled=False)])
write("pod-mount-failed-configmap-volume", "A ConfigMap volume whose ConfigMap is missing: FailedMount repeats, the pod stays ContainerCreating.",
      {"findings": [F("mount_failed", "high", summary_contains=["train-llama-config", "does not exist"])]},
      p, [event(p, "FailedMount", 'MountVolume.SetUp failed for volume "train-config" : configmap "train-llama-config" not found', t(8, 10), t(0, 2), 12)],
      nodes=[node("gpu-node-1")])

c = container("trainer", "nvcr.io/nvidia/pytorch:24.10-py3", gpus=1)
p = pod("nb-alice-0", containers=[c], phase="Pending", created=t(0), node="gpu-node-4", owners=owner("StatefulSet", "nb-alice"),
        statuses=[cstatus("trainer", "nvcr.io/nvidia/pytorch:24.10-py3", waiting("ContainerCreating"), started=False, pulled=False)])
sandbox = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to create containerd task: failed to create shim task: OCI runtime create failed: '
           'runc create failed: unable to start container process: error during container init: error running hook #0: error running hook: exit status 1, '
           'stdout: , stderr: Auto-detected mode as \'legacy\'\nnvidia-container-cli: initialization error: nvml error: driver not loaded: unknown')
write("pod-sandbox-nvidia-driver", "The NVIDIA runtime hook cannot initialise NVML (driver not loaded on the node): FailedCreatePodSandBox; the finding says GPU driver.",
      {"findings": [F("mount_failed", "high", node="gpu-node-4", summary_contains=["driver"])]},
      p, [event(p, "FailedCreatePodSandBox", sandbox, t(5), t(0, 3), 22, host="gpu-node-4")])

c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=0, cpu="2", mem="8Gi")
p = pod("dataloader-bench-2x7qp", containers=[c], phase="Pending", created=t(0), node="cpu-node-2", owners=owner("Job", "dataloader-bench"),
        statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0", waiting("ContainerCreating"), started=False, pulled=False)])
cni = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "' + h64("sb") +
       '": plugin type="calico" failed (add): error getting ClusterInformation: connection is unauthorized: Unauthorized')
write("pod-sandbox-cni", "Calico cannot set up the pod network: FailedCreatePodSandBox; CNI named.",
      {"findings": [F("mount_failed", "high", summary_contains=["pod network", "CNI"])]},
      p, [event(p, "FailedCreatePodSandBox", cni, t(3), t(0, 2), 14, host="cpu-node-2")])

# ---------------------------------------------------------------- probes
probes = {"livenessProbe": {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"}, "initialDelaySeconds": 30,
                            "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
          "readinessProbe": {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"}, "periodSeconds": 5,
                             "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}}
c = container("server", "vllm/vllm-openai:v0.6.3", gpus=1, probes=probes, ports=[{"containerPort": 8000, "name": "http", "protocol": "TCP"}])
cid = h64("probe-model-load")
p = pod("llama-70b-serve-6f8b9d7c4-p9x2k", containers=[c], created=t(0), start=t(0), owners=owner("ReplicaSet", "llama-70b-serve-6f8b9d7c4"),
        statuses=[cstatus("server", "vllm/vllm-openai:v0.6.3", running(t(2, 5)),
                          terminated(143, "Error", t(1, 3), t(2, 3), cid), False, 2, True, cid_seed="probe2")])
ev = [event(p, "Unhealthy", 'Readiness probe failed: Get "http://10.244.3.17:8000/health": dial tcp 10.244.3.17:8000: connect: connection refused', t(2, 50), t(0, 12), 30, field="server"),
      event(p, "Unhealthy", 'Liveness probe failed: Get "http://10.244.3.17:8000/health": dial tcp 10.244.3.17:8000: connect: connection refused', t(2, 45), t(0, 40), 8, field="server"),
      event(p, "Killing", "Container server failed liveness probe, will be restarted", t(2, 1), t(1, 1), 2, "Normal", "server")]
write("pod-probe-liveness-kills-model-load",
      "A 70B model takes minutes to load but the liveness probe acts after 60 s: each run lasts about as long as the probe allows; suggest a startupProbe. Running again (2 restarts): no crash-loop finding.",
      {"findings": [F("probe_failing", "high", container="server", summary_contains=["liveness", "longer to start"], evidence_names=["probe settings", "last run", "probe kills"])]}, p, ev)

c = container("api", "ghcr.io/acme/rerank-api:2.1.0", gpus=1, probes={"readinessProbe": probes["readinessProbe"]})
p = pod("rerank-api-58d4f7b9c-tq4lm", containers=[c], created=t(0), start=t(0), owners=owner("ReplicaSet", "rerank-api-58d4f7b9c"),
        statuses=[cstatus("api", "ghcr.io/acme/rerank-api:2.1.0", running(t(0, 20)), None, False, 0, True, cid_seed="rerank")])
write("pod-probe-readiness-only", "Readiness fails with HTTP 503 (a dependency is down): not Ready, no restarts.",
      {"findings": [F("probe_failing", "high", container="api", summary_contains=["readiness", "not restarted"])]},
      p, [event(p, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", t(30), t(0, 25), 352, field="api")])

# ---------------------------------------------------------------- healthy and unexplained
c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=1)
cid = h64("healthy-old-restart")
p = pod("train-vit-worker-3", containers=[c], created="2026-11-19T22:00:00Z", start="2026-11-19T22:00:00Z", owners=owner("PyTorchJob", "train-vit"),
        statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0", running("2026-11-19T22:14:10Z"),
                          terminated(1, "Error", "2026-11-19T22:00:05Z", "2026-11-19T22:14:02Z", cid), True, 1, True, cid_seed="healthy-old")])
write("pod-healthy-restarted-once-long-ago", "Restarted once 12 hours ago after exit 1 and running since: not a finding.",
      {"findings": []}, p, [], meta=meta("ml", "train-vit-worker-3", t(15)))

c = container("eval", "ghcr.io/acme/eval:0.9.2", gpus=1)
p = pod("nightly-eval-29571840-8zk4w", containers=[c], phase="Succeeded", created=t(0), start=t(0), restart_policy="Never",
        owners=owner("Job", "nightly-eval-29571840"), labels={"job-name": "nightly-eval-29571840"},
        statuses=[cstatus("eval", "ghcr.io/acme/eval:0.9.2", terminated(0, "Completed", t(0, 20), t(41, 3), h64("eval")), None, False, 0, False, cid_seed="eval")],
        conditions=[cond("Ready", "False", t(41, 3), "PodCompleted"), cond("PodScheduled", "True", t(0))])
write("pod-healthy-job-succeeded", "A Job pod that completed with exit 0: not a finding.",
      {"findings": []}, p, [event(p, "Completed", "Job completed", t(41, 4), typ="Normal", component="job-controller")], nodes=[node("gpu-node-1")])

c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=1)
p = pod("train-t5-launcher-ff9k2", containers=[c], created=t(0), start=t(0), owners=owner("Job", "train-t5"),
        statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0", waiting("CreateContainerError", "context deadline exceeded"), None, False, 0, False, pulled=True, cid_seed="cce")],
        phase="Pending")
write("pod-unexplained-create-container-error",
      "CreateContainerError 'context deadline exceeded' (a slow or overloaded runtime): no rule explains it; a low-confidence finding naming the missing evidence.",
      {"findings": [F("insufficient_evidence", "low", container="trainer", summary_contains=["CreateContainerError"])]}, p, None)

c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=8)
p = pod("train-llama-worker-5", containers=[c], phase="Failed", node="gpu-node-7", created=t(0), start=t(0), owners=owner("PyTorchJob", "train-llama"),
        statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0", terminated(0, "Completed", t(0, 30), t(40, 12), h64("shutdown")), None, False, 0, False, cid_seed="shutdown")],
        conditions=[cond("Ready", "False", t(40, 12), "PodFailed"), cond("PodScheduled", "True", t(0))],
        reason="Terminated", message="Pod was terminated in response to imminent node shutdown.")
write("pod-failed-node-shutdown",
      "Phase Failed with reason Terminated (graceful node shutdown) and a container that checkpointed and exited 0: no rule explains more; a low-confidence insufficient_evidence that quotes the reason.",
      {"findings": [F("insufficient_evidence", "low", summary_contains=["Terminated", "node shutdown"])], "gaps": ["events", "agent"]}, p, None)

print("pod bundles written")

# ================================================================ GPU health
def agent_holder_pod(name, node_name, gpus=1, ns="ml", owners_=None, image="ghcr.io/acme/trainer:1.8.0", phase="Running", created=None):
    c = container("trainer", image, gpus=gpus, cpu="16", mem="128Gi")
    return pod(name, ns=ns, node=node_name, containers=[c], created=created or "2026-11-20T08:00:00Z", start=created or "2026-11-20T08:00:00Z",
               owners=owners_ or owner("PyTorchJob", name.rsplit("-", 2)[0]), phase=phase,
               statuses=[cstatus("trainer", image, running(created or "2026-11-20T08:00:20Z"), None, True, 0, True, cid_seed=name)] if phase == "Running" else [])

def ms(m, s=0, h=10):
    return f"2026-11-20T{h:02d}:{m:02d}:{s:02d}.{int(h64(str((h, m, s)))[:3], 16) % 1000:03d}Z"

def xid(time, g, index, x, count, holders=()):
    return {"kind": "xid", "time": time, "gpu_uuid": g, "gpu_index": index, "xid": x, "count": count, "holders": list(holders), "simulated": False}

# XID 79 + lost GPU + count change.
p = agent_holder_pod("train-llama-worker-2", "gpu-node-7", gpus=8)
g3 = gpu_uuid("n7-3")
hs = [holder("ml", "train-llama-worker-2", "trainer", g3)]
write("gpu-health-xid-79-gpu-lost",
      "XID 79 then NVML_ERROR_GPU_IS_LOST on the pod's GPU and the NVML count drops 8 -> 7; the device plugin withdrew it (allocatable 7). A chain: the XID 79 is the root, the lost GPU its consequence (citing the XID too), and the gpu_unhealthy naming the GPU follows from both.",
      {"findings": [F("gpu_xid", "high", gpu=g3, container="trainer", summary_contains=["XID 79", "NVML lost the GPU after it"], caused_by=[]),
                    F("gpu_lost", "high", gpu=g3, container="trainer", summary_contains=[g3, "fell off the bus"], evidence_names=["lost", "xid", "NVML GPU count"], caused_by=["gpu_xid"]),
                    F("gpu_unhealthy", "high", node="gpu-node-7", gpu=g3, summary_contains=["7 of its 8"], caused_by=["gpu_lost", "gpu_xid"])]},
      p, [], nodes=[node("gpu-node-7", 8, 7)],
      agent=[xid(ms(41, 7), g3, 3, 79, 1, hs),
             {"kind": "gpu_lost", "time": ms(41, 9), "gpu_index": 3, "gpu_uuid": g3, "holders": hs, "simulated": False},
             {"kind": "gpu_count_changed", "time": ms(41, 39), "before": 8, "after": 7, "simulated": False}])

# XID 13: the application's fault.
p = agent_holder_pod("finetune-mistral-0", "gpu-node-2", gpus=1, owners_=owner("Job", "finetune-mistral"))
g0 = gpu_uuid("n2-0")
hs = [holder("ml", "finetune-mistral-0", "trainer", g0)]
write("gpu-health-xid-13-app",
      "XID 13 (graphics engine exception) on the pod's GPU: an application fault; high confidence, next steps point at the program, not the hardware.",
      {"findings": [F("gpu_xid", "high", gpu=g0, container="trainer", summary_contains=["XID 13", "application"])]},
      p, [], nodes=[node("gpu-node-2")],
      agent=[gpu_sample(ms(20), 0, g0, holders=hs), xid(ms(20, 14), g0, 0, 13, 1, hs), gpu_sample(ms(20, 30), 0, g0, util=96, holders=hs)])

# XID 48 followed by 45, allocatable drops.
p = agent_holder_pod("train-sdxl-worker-1", "gpu-node-3", gpus=2)
g5 = gpu_uuid("n3-5")
hs = [holder("ml", "train-sdxl-worker-1", "trainer", g5)]
write("gpu-health-xid-48-ecc",
      "A double-bit ECC error (XID 48) and the cleanup XID 45 after it; the device plugin marked the GPU unhealthy (allocatable 7 of 8). One gpu_xid for 48 (45 is its evidence) and a gpu_unhealthy naming the GPU.",
      {"findings": [F("gpu_xid", "high", gpu=g5, summary_contains=["XID 48", "double-bit ECC"], evidence_names=["followed by"]),
                    F("gpu_unhealthy", "high", node="gpu-node-3", gpu=g5, summary_contains=["XID 48"])]},
      p, [], nodes=[node("gpu-node-3", 8, 7)],
      agent=[xid(ms(33, 2), g5, 5, 48, 1, hs), xid(ms(33, 3), g5, 5, 45, 1, hs)])

# An XID gpuscope does not know, without holders.
p = agent_holder_pod("infer-batch-4", "gpu-node-8", gpus=1, owners_=owner("Job", "infer-batch"))
g1 = gpu_uuid("n8-1")
write("gpu-health-xid-unknown",
      "An XID outside gpuscope's table, on a GPU no pod held: a medium-confidence node finding that points at NVIDIA's XID catalogue.",
      {"findings": [F("gpu_xid", "medium", node="gpu-node-8", gpu=g1, summary_contains=["XID 8", "catalogue"])]},
      p, [], nodes=[node("gpu-node-8")], agent=[xid(ms(12, 40), g1, 1, 8, 2), xid(ms(14, 1), g1, 1, 8, 3)])

# Allocatable below what NVML sees, no event names the GPU.
p = agent_holder_pod("pretrain-olmo-worker-0", "gpu-node-9", gpus=4)
samples = [gpu_sample(ms(50, s), i, gpu_uuid(f"n9-{i}"), util=88 + i, power=520.0 + i) for s in (0, 15) for i in range(8)]
write("gpu-health-unhealthy-no-xid",
      "The node offers 7 GPUs while NVML sees 8 and no XID or lost-GPU event names one (the XID predates the agent): medium confidence, says which counts disagree.",
      {"findings": [F("gpu_unhealthy", "medium", node="gpu-node-9", summary_contains=["7 of its 8", "NVML sees 8"])]},
      p, [], nodes=[node("gpu-node-9", 8, 7)], agent=samples)

def plugin_pod(name, node_name, ns="gpu-operator", labels=None, state=None, last=None, ready=True, restarts=0, phase="Running"):
    c = container("nvidia-device-plugin", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0", cpu="100m", mem="128Mi",
                  command=["nvidia-device-plugin"])
    st = cstatus("nvidia-device-plugin", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0", state or running("2026-11-19T06:00:00Z"),
                 last, ready, restarts, ready, cid_seed=name)
    return pod(name, ns=ns, node=node_name, containers=[c], created="2026-11-19T06:00:00Z", start="2026-11-19T06:00:00Z",
               owners=[{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "nvidia-device-plugin-daemonset", "uid": uid("ds"), "controller": True, "blockOwnerDeletion": True}],
               labels=labels or {"app": "nvidia-device-plugin-daemonset", "controller-revision-hash": "6f9d8c7b5", "pod-template-generation": "3"},
               statuses=[st], phase=phase, tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
               extra_spec={"priorityClassName": "system-node-critical"})

# Device plugin crash-looping + admission error on its node.
c = container("trainer", "ghcr.io/acme/sd-train:3.2", gpus=1)
p = pod("train-sd-0", node="gpu-node-2", containers=[c], phase="Failed", created=t(30), start=t(30, 1), owners=owner("Job", "train-sd"),
        reason="UnexpectedAdmissionError", message="Allocate failed due to can't allocate unhealthy devices nvidia.com/gpu, which is unexpected", conditions=[])
pp = plugin_pod("nvidia-device-plugin-daemonset-7k2xq", "gpu-node-2", ready=False, restarts=14,
                state=waiting("CrashLoopBackOff", "back-off 5m0s restarting failed container=nvidia-device-plugin pod=nvidia-device-plugin-daemonset-7k2xq_gpu-operator(" + uid("gpu-operatornvidia-device-plugin-daemonset-7k2xq") + ")"),
                last=terminated(1, "Error", t(27, 2), t(27, 3), h64("dp-last")))
write("gpu-health-plugin-crashloop-admission",
      "The device plugin on gpu-node-2 crash-loops (allocatable 0); a Job pod bound there is rejected with UnexpectedAdmissionError. Two findings for the pod: the node's device_plugin_down, the root, and admission_error, its consequence (no gpu_unhealthy: the plugin being down explains the 0).",
      {"findings": [F("admission_error", "high", summary_contains=["unhealthy"], evidence_names=["reason", "device-plugin pod"], caused_by=["device_plugin_down"]),
                    F("device_plugin_down", "high", node="gpu-node-2", summary_contains=["CrashLoopBackOff", "14 restarts"], caused_by=[])]},
      p, [event(p, "UnexpectedAdmissionError", "Allocate failed due to can't allocate unhealthy devices nvidia.com/gpu, which is unexpected", t(30, 1))],
      nodes=[node("gpu-node-2", 8, 0)], pods=[pp])

c = container("trainer", "ghcr.io/acme/sd-train:3.2", gpus=1)
msg = "Allocate failed due to requested number of devices unavailable for nvidia.com/gpu. Requested: 1, Available: 0, which is unexpected"
p = pod("train-sd-1", node="gpu-node-3", containers=[c], phase="Failed", created=t(30), start=t(30, 1), owners=owner("Job", "train-sd"),
        reason="UnexpectedAdmissionError", message=msg, conditions=[])
pp = plugin_pod("nvidia-device-plugin-daemonset-q8w4z", "gpu-node-3", restarts=1, state=running(t(29, 40)),
                last=terminated(2, "Error", "2026-11-19T06:00:10Z", t(29, 38), h64("dp-q8")))
write("gpu-health-admission-devices-unavailable",
      "The device plugin restarted 20 s before the pod arrived and the kubelet found no device available: admission_error, with the plugin's restart as evidence; the plugin is Ready again, so no device_plugin_down.",
      {"findings": [F("admission_error", "high", summary_contains=["no free GPU", "Requested: 1, Available: 0"])]},
      p, [event(p, "UnexpectedAdmissionError", msg, t(30, 1))], nodes=[node("gpu-node-3")], pods=[pp])

# GPU scheduling: cluster full.
cp = node("cp-1", gpus=0, labels={"node-role.kubernetes.io/control-plane": ""}, taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
n1 = node("gpu-node-1"); n2 = node("gpu-node-2")
holders_pods = [agent_holder_pod(f"train-llama-worker-{i}", "gpu-node-1", gpus=4, owners_=owner("PyTorchJob", "train-llama")) for i in range(2)]
holders_pods += [agent_holder_pod(f"sweep-lr-{i}-x{i}k", "gpu-node-2", gpus=2, owners_=owner("Job", f"sweep-lr-{i}")) for i in range(2)]
holders_pods += [agent_holder_pod("nb-alice-0", "gpu-node-2", gpus=2, owners_=owner("StatefulSet", "nb-alice"))]
holders_pods += [agent_holder_pod("old-eval-7", "gpu-node-2", gpus=2, owners_=owner("Job", "old-eval"), phase="Succeeded")]
msg = "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
p = pending_pod("train-qwen-worker-0", gpus=4, cpu="32", mem="256Gi", conditions=unsched_cond(msg, t(5)), created=t(5), owners=owner("PyTorchJob", "train-qwen"))
write("gpu-health-unschedulable-cluster-full",
      "A 4-GPU pod with 2 GPUs free on the best node: the cluster is full; names the largest holder; a Succeeded pod's GPUs are not counted; no pending_resources finding for the same message.",
      {"findings": [F("gpu_unschedulable", "high", summary_contains=["no node has 4 free", "14 of the cluster's 16", "PyTorchJob/train-llama with 8"], evidence_names=["GPU holders", "node gpu-node-2", "requested nvidia.com/gpu"])]},
      p, [sched_event(p, msg, t(25), t(5), 11)], nodes=[cp, n1, n2], pods=holders_pods)

# GPU scheduling: the free node carries a taint.
n3 = node("gpu-node-3", taints=[{"key": "dedicated", "value": "research", "effect": "NoSchedule"}])
msg = "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint {dedicated: research}. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
p = pending_pod("distill-bert-0", gpus=2, cpu="16", mem="64Gi", conditions=unsched_cond(msg, t(5)), created=t(5), owners=owner("Job", "distill-bert"),
                tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
full = [agent_holder_pod("train-llama-worker-0", "gpu-node-1", gpus=8, owners_=owner("PyTorchJob", "train-llama"))]
write("gpu-health-unschedulable-taint",
      "GPUs are free on gpu-node-3 but it is tainted dedicated=research and the pod does not tolerate it: the finding names the node and the taint.",
      {"findings": [F("gpu_unschedulable", "high", summary_contains=["gpu-node-3", "taint dedicated=research:NoSchedule not tolerated"])]},
      p, [sched_event(p, msg, t(9), t(5), 4)], nodes=[n1, n3], pods=full)

msg = "0/12 nodes are available: 4 node(s) didn't match Pod's node affinity/selector, 8 Insufficient nvidia.com/gpu. preemption: 0/12 nodes are available: 4 Preemption is not helpful for scheduling, 8 No preemption victims found for incoming pod."
p = pending_pod("train-mixtral-worker-3", gpus=8, cpu="96", mem="1000Gi", conditions=unsched_cond(msg, t(5)), created=t(5), owners=owner("PyTorchJob", "train-mixtral"))
write("gpu-health-unschedulable-no-nodes",
      "Insufficient nvidia.com/gpu with no node or pod list in the bundle: medium confidence, says the node list is missing; the affinity clause is evidence, not a second finding.",
      {"findings": [F("gpu_unschedulable", "medium", summary_contains=["8 nodes lack 8 free nvidia.com/gpu", "node list is not in the evidence"], evidence_names=["nodes excluded: node(s) didn't match Pod's node affinity/selector"])], "gaps": ["node"]},
      p, [sched_event(p, msg, t(45), t(5), 30)])

# Healthy GPU pod with a Ready device plugin and busy GPU samples.
p = agent_holder_pod("train-gemma-worker-0", "gpu-node-4", gpus=1, owners_=owner("PyTorchJob", "train-gemma"))
g = gpu_uuid("n4-0")
hs = [holder("ml", "train-gemma-worker-0", "trainer", g)]
procs = [{"pid": 48211, "used_memory_bytes": 70_900_000_000, "sm_util_percent": 94, "mem_util_percent": 47,
          "cgroup_path": f"/kubepods.slice/kubepods-pod{uid('mltrain-gemma-worker-0').replace('-', '_')}.slice/cri-containerd-{h64('train-gemma-worker-0')}.scope",
          "pod_uid": uid("mltrain-gemma-worker-0"), "container_id": h64("train-gemma-worker-0"), "qos": "guaranteed", "runtime": "containerd", "driver": "systemd"}]
samples = [gpu_sample(ms(10, s), 0, g, util=93 + (s // 15) % 5, power=640.0 + s, holders=hs, procs=procs) for s in (0, 15, 30, 45)]
pp = plugin_pod("nvidia-device-plugin-4xk9p", "gpu-node-4", ns="kube-system",
                labels={"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/instance": "nvdp"})
write("gpu-health-healthy-gpu-pod",
      "A running GPU pod, its GPU busy, the device plugin Running and Ready, allocatable = capacity: no finding.",
      {"findings": []}, p, [], nodes=[node("gpu-node-4")], pods=[pp], agent=samples)

# Plugin pods on two nodes, none on a third GPU node (no subject: whole-cluster diagnosis).
nodes = [node("gpu-node-1"), node("gpu-node-2"),
         node("gpu-node-5", gpus=0, labels={"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8"})]
pps = [plugin_pod("nvidia-device-plugin-daemonset-2bq7n", "gpu-node-1"), plugin_pod("nvidia-device-plugin-daemonset-m5t8r", "gpu-node-2")]
write("gpu-health-plugin-missing-on-node",
      "Cluster bundle (no subject pod): device-plugin pods run on gpu-node-1 and -2 but not on GPU node gpu-node-5, which advertises no nvidia.com/gpu: medium-confidence device_plugin_down for gpu-node-5 only.",
      {"findings": [F("device_plugin_down", "medium", node="gpu-node-5", summary_contains=["gpu-node-5", "does not select"])]},
      None, [], nodes=nodes, pods=pps)

print("gpu-health bundles written")
