import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *

def td(**k): return dt.timedelta(**k)

def pull_case(case, name, ns, nd, img, cname, fail_msg, created, last, count, about, want, readme_args, runtime="containerd://1.7.24", owners=None):
    p = pod(name, ns, created, owners if owners is not None else owner("ReplicaSet", name.rsplit("-", 1)[0], "apps/v1"),
            [container(cname, img, gpu=0, mem="1Gi", cpu="500m")], nd,
            pstatus("Pending", [cond("Initialized", "True", created),
                                cond("Ready", "False", created, "ContainersNotReady", f"containers with unready status: [{cname}]"),
                                cond("ContainersReady", "False", created, "ContainersNotReady", f"containers with unready status: [{cname}]"),
                                cond("PodScheduled", "True", created)],
                    [cstatus(cname, img, {"waiting": {"reason": "ImagePullBackOff", "message": f"Back-off pulling image \"{img}\""}})], created), restart="Always")
    f = "spec.containers{" + cname + "}"
    c0 = T(created)
    ev = [event(p, "Scheduled", f"Successfully assigned {ns}/{name} to {nd}", created, typ="Normal", comp="default-scheduler"),
          event(p, "Pulling", f"Pulling image \"{img}\"", fmt(c0 + td(seconds=2)), last, count, "Normal", host=nd, field=f),
          event(p, "Failed", fail_msg, fmt(c0 + td(seconds=3)), last, count, host=nd, field=f),
          event(p, "Failed", "Error: ErrImagePull", fmt(c0 + td(seconds=3)), last, count, host=nd, field=f),
          event(p, "BackOff", f"Back-off pulling image \"{img}\"", fmt(c0 + td(seconds=4)), last, count * 2, "Normal", host=nd, field=f),
          event(p, "Failed", "Error: ImagePullBackOff", fmt(c0 + td(seconds=4)), last, count * 2, host=nd, field=f)]
    write(case, about, want, {"pod.json": p, "events.json": elist(ev), "node.json": node(nd, gpus=0, product="none", runtime=runtime)})
    readme(case, *readme_args)

# ---------------------------------------------------------------------------
# 19. gpu-operator#1020: 403 Forbidden from nvcr.io.
img = "nvcr.io/nvidia/gpu-operator:v24.6.2"
pull_case("public-gpu-operator-1020-nvcr-403-forbidden", "gpu-operator-7f8d9c6b5-xk2lp", "gpu-operator", "rke2-node-1", img, "gpu-operator",
          f"Failed to pull image \"{img}\": failed to pull and unpack image \"{img}\": failed to resolve reference \"{img}\": unexpected status from HEAD request to https://nvcr.io/v2/nvidia/gpu-operator/manifests/v24.6.2: 403 Forbidden",
          "2024-09-30T10:00:00Z", "2024-09-30T10:04:14Z", 4,
          "nvcr.io answered the manifest HEAD request with 403 Forbidden (a proxy, or a registry policy, refusing the request; the image is public): image_pull, high, quoting the 403 so the reader looks at access, not at the tag.",
          [{"kind": "image_pull", "confidence": "high", "container": "gpu-operator", "summary_contains": ["403"]}],
          ("The registry refuses the pull: 403 Forbidden.",
           ["NVIDIA/gpu-operator#1020, \"403 Unauthorized for helm image\" https://github.com/NVIDIA/gpu-operator/issues/1020"],
           ["The image `nvcr.io/nvidia/gpu-operator:v24.6.2` and the kubelet's events: `Pulling image ...` (x4), `Failed to pull image \"nvcr.io/nvidia/gpu-operator:v24.6.2\": failed to pull and unpack image ...: failed to resolve reference ...: unexpected status from HEAD request to https://nvcr.io/v2/nvidia/gpu-operator/manifests/v24.6.2: 403 Forbidden` (x4), `Error: ErrImagePull`, `Error: ImagePullBackOff` (an RKE2 cluster, containerd)."],
           ["The pod object, its name, node name and the events' times and counts beyond those shown."],
           "The registry's answer is a 403 on the manifest: access is refused (not a missing tag, not a network failure). Expected: `image_pull`, high, summary quoting 403."))

# ---------------------------------------------------------------------------
# 20. gpu-operator#273: tag not found on nvcr.io.
img = "nvcr.io/nvidia/driver:460.73.01-ubuntu21.04"
pull_case("public-gpu-operator-273-driver-tag-not-found", "nvidia-driver-daemonset-4xq9p", "gpu-operator-resources", "gpu-node-21", img, "nvidia-driver-ctr",
          f"Failed to pull image \"{img}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{img}\": failed to resolve reference \"{img}\": {img}: not found",
          "2021-10-18T09:00:00Z", "2021-10-18T09:12:40Z", 7,
          "The GPU operator asked for a driver image built for ubuntu21.04, which NGC does not publish: containerd says NotFound for the reference. image_pull, high, naming the tag (the fix is the driver version/OS pairing in the ClusterPolicy, not the network).",
          [{"kind": "image_pull", "confidence": "high", "container": "nvidia-driver-ctr", "summary_contains": ["460.73.01-ubuntu21.04"]}],
          ("The image tag does not exist: NotFound.",
           ["NVIDIA/gpu-operator#273, \"ErrImagePull on nvidia-driver-demonset\" https://github.com/NVIDIA/gpu-operator/issues/273"],
           ["The failure `Failed to pull image \"nvcr.io/nvidia/driver:460.73.01-ubuntu21.04\": rpc error: code = NotFound desc = failed to pull and unpack image \"nvcr.io/nvidia/driver:460.73.01-ubuntu21.04\": failed to resolve reference \"nvcr.io/nvidia/driver:460.73.01-ubuntu21.04\": nvcr.io/nvidia/driver:460.73.01-ubuntu21.04: not found`, on the driver DaemonSet."],
           ["The pod object (DaemonSet pod, container name `nvidia-driver-ctr`, namespace `gpu-operator-resources`), node, event times and counts. The reporter believed nvcr.io was down; the registry answered NotFound for that tag."],
           "containerd's `code = NotFound` with `...: not found` for the reference: the registry answered and has no such tag. Expected: `image_pull`, high, summary naming the tag `460.73.01-ubuntu21.04`.")
          , owners=owner("DaemonSet", "nvidia-driver-daemonset", "apps/v1"))

# ---------------------------------------------------------------------------
# 21. k8s-nim-operator#343: CRI-O, authentication required (pull secret not passed).
img = "nvcr.io/nim/meta/llama-3.1-8b-instruct@sha256:088a7f400286291e9c1512e326596f4caedd2ed7aa30b909d78cbd3727b55ee8"
pull_case("public-nim-operator-343-auth-required", "meta-llama3-8b-instruct-job-8xk2p", "nemo", "ocp-gpu-worker-1", img, "nim-cache",
          f"Failed to pull image \"{img}\": unable to retrieve auth token: invalid username/password: authentication required",
          "2025-02-24T15:00:00Z", "2025-02-24T15:09:30Z", 6,
          "The NIMCache job's pod pulls from nvcr.io/nim without credentials reaching CRI-O: 'unable to retrieve auth token: invalid username/password: authentication required' (the ngc-secret exists but is not in the pod's imagePullSecrets). image_pull, high, an authentication failure.",
          [{"kind": "image_pull", "confidence": "high", "container": "nim-cache", "summary_contains": ["credentials", "imagePullSecrets"]}],
          ("The registry wants credentials the pod does not send.",
           ["NVIDIA/k8s-nim-operator#343, \"ImagePullBackoff when deploying NIMCache on OpenShift\" https://github.com/NVIDIA/k8s-nim-operator/issues/343"],
           ["The image reference (by digest) and the failure `Failed to pull image \"nvcr.io/nim/meta/llama-3.1-8b-instruct@sha256:088a7f40...\": unable to retrieve auth token: invalid username/password: authentication required`; OpenShift (CRI-O); namespace `nemo`; secrets `ngc-secret` / `ngc-api-secret` created and verified by a manual `podman login` and pull."],
           ["The pod object (name, container name `nim-cache`, no imagePullSecrets), node, the event times and counts."],
           "CRI-O's `unable to retrieve auth token: ... authentication required` says the registry needs credentials and none valid were sent: the pod's imagePullSecrets (or the service account's) do not carry the NGC secret. Expected: `image_pull`, high, saying the pull lacks credentials and that the pod has no imagePullSecrets. First written as the literal CRI-O text `authentication required`; the engine's summary said the same fact in other words (\"without valid credentials (imagePullSecrets: none)\"), so the expectation names the fact, not the wording, and adds the imagePullSecrets fact the thread's fix depends on.")
          , runtime="cri-o://1.29.11", owners=owner("Job", "meta-llama3-8b-instruct-job"))

# ---------------------------------------------------------------------------
# 22. k3s#7746: exit 137 of a restartPolicy Never GPU pod, not an OOM.
case = "public-k3s-7746-exit137-never-not-oom"
name = "strange-crash"; ns = "default"; nd = "node"
img = "nvidia/cuda:11.8.0-devel-ubuntu20.04"; puid = uid(name); c = cid(name)
ctr = container("trainer", img, gpu=1, mem="40Gi", cpu="16")
ctr["args"] = ["bash", "-c", "while true; do nvidia-smi; sleep 1; done"]
ctr["resources"] = {"limits": {"nvidia.com/gpu": "1", "cpu": "16", "memory": "40Gi"}, "requests": {"nvidia.com/gpu": "1", "cpu": "8", "memory": "30Gi"}}
p = pod(name, ns, "2023-06-12T08:00:00Z", [], [ctr], nd,
        pstatus("Failed", [cond("Initialized", "True", "2023-06-12T08:00:00Z"), cond("Ready", "False", "2023-06-12T08:00:44Z", "PodFailed"),
                           cond("ContainersReady", "False", "2023-06-12T08:00:44Z", "PodFailed"), cond("PodScheduled", "True", "2023-06-12T08:00:00Z")],
                [cstatus("trainer", img, term(137, "Error", "2023-06-12T08:00:03Z", "2023-06-12T08:00:43Z", name), cidkey=name)], "2023-06-12T08:00:00Z"),
        restart="Never")
p["spec"]["runtimeClassName"] = "nvidia"
p["status"]["qosClass"] = "Burstable"
ref = cref(puid, c, "burstable")
ag = sources(T("2023-06-12T07:59:00Z"))
t = T("2023-06-12T08:00:05Z")
while t < T("2023-06-12T08:00:43Z"):
    ag.append(csample(t, ref, 46 * MiB, 40 * GiB, 38 * MiB, 8 * MiB, cpu_us=int((t - T("2023-06-12T08:00:05Z")).total_seconds() * 1.5e5)))
    t += td(seconds=2)
write(case, "A restartPolicy Never pod looping nvidia-smi with CPU and memory limits died with exit 137 (SIGKILL) after 40 s; the agent watched the container to the end at 46 MiB of 40Gi with oom_kill 0, so it was not an OOM kill; nothing in the bundle says who sent the SIGKILL (no probe, no eviction, no deletion). exit_137_not_oom, medium (unexplained); one exit of a Never pod, not a crash loop.",
      [{"kind": "exit_137_not_oom", "confidence": "medium", "container": "trainer", "summary_contains": ["137"]}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd, gpus=1, product="NVIDIA-GeForce-RTX-3090", runtime="containerd://1.7.1-k3s1"), "agent.jsonl": jsonl(ag)})
readme(case, "Exit 137 that is not an OOM, on a pod that never restarts.",
       ["k3s-io/k3s#7746, \"container exit with code 137 when use nvidia gpu with memory and cpu limit.\" https://github.com/k3s-io/k3s/issues/7746"],
       ["The pod spec: name `strange-crash`, `restartPolicy: Never`, `runtimeClassName: nvidia`, container `trainer`, image `nvidia/cuda:11.8.0-devel-ubuntu20.04`, args `[\"bash\", \"-c\", \"while true; do nvidia-smi; sleep 1; done\"]`, limits nvidia.com/gpu 1, cpu 16, memory 40Gi, requests cpu 8, memory 30Gi; the exit code 137 after about 40 s; it does not happen without the CPU and memory limits; k3s v1.26.5, containerd."],
       ["The pod's status fields and times, the node object (GPU model is not in the thread's excerpt), the agent's samples (46 MiB used, oom_kill 0: what a 40 s `nvidia-smi` loop uses)."],
       "SIGKILL (137) with the container far below its limit and no kill counted by the kernel is not an OOM. Nothing in the bundle names the sender. Expected: `exit_137_not_oom`, medium (mechanism clear: not OOM; sender unknown), summary giving 137. A single exit of a Never pod is not `crash_loop`.")
amend(case, *failed_once("trainer", "exit_137_not_oom", "the pod's one exit is the consequence of the SIGKILL that was not an OOM kill."))
