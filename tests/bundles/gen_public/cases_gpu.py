import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *

def td(**k): return dt.timedelta(**k)
def nodelist(*ns): return {"apiVersion": "v1", "kind": "List", "items": list(ns), "metadata": {"resourceVersion": ""}}

def plugin_pod(nd, name, state, last=None, restarts=0, ready=True, labels=None, ns="gpu-operator"):
    img = "nvcr.io/nvidia/k8s-device-plugin:v0.14.5-ubi8"
    c = container("nvidia-device-plugin", img, gpu=0, mem="256Mi", cpu="100m", command=["nvidia-device-plugin"])
    pp = pod(name, ns, "2026-01-01T00:00:00Z", owner("DaemonSet", "nvidia-device-plugin-daemonset", "apps/v1"), [c], nd,
             pstatus("Running", [cond("Initialized", "True", "2026-01-01T00:00:00Z"), cond("Ready", "True" if ready else "False", "2026-01-01T00:01:00Z"),
                                 cond("ContainersReady", "True" if ready else "False", "2026-01-01T00:01:00Z"), cond("PodScheduled", "True", "2026-01-01T00:00:00Z")],
                     [cstatus("nvidia-device-plugin", img, state, last, restarts=restarts, ready=ready, started=ready, cidkey=name + str(restarts))], "2026-01-01T00:00:00Z"),
             restart="Always")
    pp["metadata"]["labels"] = labels or {"app": "nvidia-device-plugin-daemonset"}
    pp["status"]["qosClass"] = "Burstable"
    return pp

# ---------------------------------------------------------------------------
# 13. kubernetes#130145: UnexpectedAdmissionError, Requested:1, Available: 0.
case = "public-k8s-130145-admission-devices-unavailable"
name = "infer-batch-28412-7rk2p"; ns = "ml"; nd = "gpu-node-4"
img = "registry.example.com/ml/infer:3.2.0"
init = container("fetch-model", "registry.example.com/ml/fetch:1.0", gpu=0, mem="1Gi", cpu="1", command=["/fetch"])
ctr = container("app", img, gpu=1, mem="64Gi", cpu="8", command=["python", "infer.py"])
amsg = "Pod Allocate failed due to requested number of devices unavailable for nvidia.com/gpu. Requested:1, Available: 0, which is unexpected"
p = pod(name, ns, "2025-02-13T06:20:00Z", owner("Job", "infer-batch-28412"), [ctr], nd,
        {"phase": "Failed", "reason": "UnexpectedAdmissionError", "message": amsg, "startTime": "2025-02-13T06:20:01Z", "qosClass": "Guaranteed"},
        init=[init], restart="Never")
ev = [event(p, "Scheduled", f"Successfully assigned {ns}/{name} to {nd}", "2025-02-13T06:20:00Z", typ="Normal", comp="default-scheduler"),
      event(p, "UnexpectedAdmissionError", "Allocate failed due to requested number of devices unavailable for nvidia.com/gpu. Requested:1, Available: 0, which is unexpected", "2025-02-13T06:20:01Z", host=nd)]
n = node(nd, gpus=8)
write(case, "The scheduler placed the Job's pod on a node that advertises 8 GPUs, but the kubelet's device manager believed all of them allocated (stale allocations left by force-deleted pods) and rejected the pod at admission: UnexpectedAdmissionError, Requested:1, Available: 0. admission_error, high, quoting the kubelet's message.",
      [{"kind": "admission_error", "confidence": "high", "summary_contains": ["Available: 0"]}],
      {"pod.json": p, "events.json": elist(ev), "node.json": n})
readme(case, "Admission rejected by the kubelet's device manager.",
       ["kubernetes/kubernetes#130145, \"Pod Allocate failed due to requested number of devices unavailable for nvidia.com/gpu. Requested:1, Available: 0, which is unexpected\" https://github.com/kubernetes/kubernetes/issues/130145"],
       ["`Status: Failed`, `Reason: UnexpectedAdmissionError`, `Message: Pod Allocate failed due to requested number of devices unavailable for nvidia.com/gpu. Requested:1, Available: 0, which is unexpected`; pods with an init container and an app container requesting GPUs; the cause found in the thread (stale `allocatedDevices` after force-deleted pods; a kubelet restart clears it)."],
       ["Pod, Job, image names, the event (the kubelet's event reason for this status), the node object with 8 GPUs allocatable."],
       "The pod never ran: the kubelet refused it at admission. Expected: `admission_error`, high, quoting `Available: 0`. Not `gpu_unschedulable` (the scheduler did place it) and not a crash.")

# ---------------------------------------------------------------------------
# 14. kubernetes#97131 (+ k8s-device-plugin#231): GPU is lost -> admission fails.
case = "public-k8s-97131-admission-gpu-lost-xid79"
name = "rojin-2q6ld"; ns = "default"; nd = "gpu-node-11"
img = "registry.example.com/lab/train:1.0"
gpu5 = "GPU-3e1d9c7a-54b2-4f1e-9a0c-7b6d5e4f3a21"
ctr = container("train", img, gpu=1, mem="32Gi", cpu="4", command=["python", "train.py"])
amsg = "Pod Allocate failed due to device plugin GetPreferredAllocation rpc failed with err: rpc error: code = Unknown desc = Unable to retrieve list of available devices: error creating nvml.Device 5: nvml: GPU is lost, which is unexpected"
p = pod(name, ns, "2020-12-08T16:02:10Z", owner("Job", "rojin"), [ctr], nd,
        {"phase": "Failed", "reason": "UnexpectedAdmissionError", "message": amsg, "startTime": "2020-12-08T16:02:11Z", "qosClass": "Guaranteed"}, restart="Never")
ev = [event(p, "Scheduled", f"Successfully assigned {ns}/{name} to {nd}", "2020-12-08T16:02:10Z", typ="Normal", comp="default-scheduler"),
      event(p, "UnexpectedAdmissionError", amsg.replace("Pod ", "", 1), "2020-12-08T16:02:11Z", host=nd)]
n = node(nd, gpus=8)
ag = sources(T("2020-12-08T00:00:00Z"))
ag.append(xid(T("2020-12-08T03:41:17Z"), gpu5, 5, 79))
ag.append({"kind": "gpu_lost", "time": fmtms(T("2020-12-08T03:41:18Z")), "gpu_index": 5, "gpu_uuid": gpu5, "holders": [], "simulated": False})
ag.append({"kind": "gpu_count_changed", "time": fmtms(T("2020-12-08T03:41:48Z")), "before": 8, "after": 7, "simulated": False})
write(case, "GPU 5 fell off the bus overnight (XID 79, NVML: GPU is lost); the device plugin still advertised 8 GPUs, and its GetPreferredAllocation now fails for every pod on the node, so this pod was rejected at admission. Chain: admission_error (high) <- gpu_lost (GPU 5, high) <- gpu_xid 79 (high). node.json and nodes.json both list the node: one node.",
      [{"kind": "admission_error", "confidence": "high", "summary_contains": ["GPU is lost"]},
       {"kind": "gpu_lost", "confidence": "high", "gpu": gpu5},
       {"kind": "gpu_xid", "confidence": "high", "gpu": gpu5, "summary_contains": ["XID 79"]}],
      {"pod.json": p, "events.json": elist(ev), "node.json": n, "nodes.json": nodelist(n), "agent-" + nd + ".jsonl": jsonl(ag)})
readme(case, "A lost GPU makes admission fail for every pod on the node: admission_error <- gpu_lost <- XID 79.",
       ["kubernetes/kubernetes#97131, \"UnexpectedAdmissionError\" https://github.com/kubernetes/kubernetes/issues/97131",
        "NVIDIA/k8s-device-plugin#231, \"Unable to retrieve list of available devices: error creating nvml.Device 3: nvml: GPU is lost, which is unexpected\" (nvidia-smi: `GPU is lost. Reboot the system to recover this GPU`) https://github.com/NVIDIA/k8s-device-plugin/issues/231",
        "NVIDIA/k8s-device-plugin#2038 (an XID 79 GPU makes GetPreferredAllocation fail for every pod on the node) https://github.com/NVIDIA/k8s-device-plugin/issues/2038"],
       ["The pod name `rojin-2q6ld`, `STATUS UnexpectedAdmissionError`, and the message `Pod Allocate failed due to device plugin GetPreferredAllocation rpc failed with err: rpc error: code = Unknown desc = Unable to retrieve list of available devices: error creating nvml.Device 5: nvml: GPU is lost, which is unexpected`."],
       ["The XID 79 and the lost-GPU event on GPU index 5 (the threads show the NVML error, not the kernel's XID line; XID 79 is what the driver logs when a GPU falls off the bus), its UUID, the GPU count 8 -> 7, the node (8 allocatable: the plugin had not marked it unhealthy), the job, image and times. The node is in both `node.json` and `nodes.json`, as when someone saves both."],
       "The pod's own status names the cause (GPU is lost); the agent's records show which GPU and when (XID 79 then NVML's GPU_IS_LOST). Mechanism 7 of the issue: one root with its consequences linked: `gpu_xid` 79 (high) -> `gpu_lost` (high, GPU 5) -> `admission_error` (high, quoting GPU is lost). Counting: the node listed twice is one node (no duplicate finding).")

# ---------------------------------------------------------------------------
# 15. gpu-operator#1065: XID 94, allocatable 7 of 8, not recovered.
case = "public-gpu-operator-1065-xid94-allocatable-7"
nd = "h100-node-02"
gpu = "GPU-9a4c2e71-0b3d-4f58-8e26-1d7c5b3a9f04"
n = node(nd, gpus=8, alloc=7)
n["status"]["capacity"].update({"cpu": "128", "ephemeral-storage": "7441183616Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "8448Mi", "memory": "2113276288Ki", "nvidia.com/gpu": "8", "pods": "110"})
n["status"]["allocatable"].update({"cpu": "128", "ephemeral-storage": "6857794809152", "hugepages-1Gi": "0", "hugepages-2Mi": "8448Mi", "memory": "2062682496Ki", "nvidia.com/gpu": "7", "pods": "110"})
pl = plugin_pod(nd, "nvidia-device-plugin-daemonset-7xk2d", {"running": {"startedAt": "2024-10-20T00:00:00Z"}})
ag = sources(T("2024-10-25T00:00:00Z"))
ag.append(xid(T("2024-10-25T02:19:08Z"), gpu, 3, 94))
t = T("2024-10-25T02:20:00Z")
while t < T("2024-10-25T02:40:00Z"):
    for i in range(8):
        u = gpu if i == 3 else f"GPU-{h(nd+str(i),8)}-{h('a'+str(i),4)}-{h('b'+str(i),4)}-{h('c'+str(i),4)}-{h('d'+str(i),12)}"
        ag.append(gsample(t, i, u, 0, 500 * MiB, 70.0))
    t += td(seconds=60)
write(case, "Node-only bundle (node.json and nodes.json both saved): GPU 3 reported XID 94 (contained ECC error) at 02:19; the device plugin marked it unhealthy and allocatable nvidia.com/gpu fell to 7 of 8, and stays there after the error is gone. gpu_unhealthy for the node naming GPU 3 (high) and gpu_xid 94 for the GPU (high); one node, not two.",
      [{"kind": "gpu_unhealthy", "confidence": "high", "node": nd, "gpu": gpu, "summary_contains": ["7 of its 8"]},
       {"kind": "gpu_xid", "confidence": "high", "gpu": gpu, "summary_contains": ["XID 94"]}],
      {"node.json": n, "nodes.json": nodelist(n), "pods.json": {"apiVersion": "v1", "kind": "List", "items": [pl], "metadata": {"resourceVersion": ""}}, "agent-" + nd + ".jsonl": jsonl(ag)})
readme(case, "An XID that makes the device plugin mark a GPU unhealthy: allocatable 7 of 8.",
       ["NVIDIA/gpu-operator#1065, \"GPU resources are not recovered even XID error is resolved\" https://github.com/NVIDIA/gpu-operator/issues/1065"],
       ["The node's `Capacity` and `Allocatable` blocks (cpu 128, ephemeral-storage, hugepages, memory 2113276288Ki / 2062682496Ki, `nvidia.com/gpu: 8` / `7`, pods 110); an 8-GPU H100 node; gpu-operator v23.9.2's `nvidia-device-plugin-daemonset`; the plugin logged an XID 94 on one GPU card."],
       ["Which GPU (index 3), its UUID and the XID's time (the plugin log's `I1025 02:19:08` gives the time of day), the node's name and labels, the agent's GPU samples (8 GPUs seen by NVML, idle), the device-plugin pod object. The same node object is saved as `node.json` and in `nodes.json`."],
       "XID 94 is not in the device plugin's skip list (13, 31, 43, 45, 68, 109), so the plugin marks the GPU unhealthy and the kubelet's allocatable drops to 7 while NVML still sees 8. Expected: `gpu_unhealthy` for the node, high, naming the GPU and saying 7 of its 8; `gpu_xid` 94 for that GPU, high. The node listed in two files is one node: two findings, not four.")

# ---------------------------------------------------------------------------
# 16. gpu-operator#250 + k8s-device-plugin#852: device plugin crash-looping, GPU pod Pending.
case = "public-gpu-operator-250-plugin-crashloop-pending"
name = "tf-notebook-747db6987b-86zts"; ns = "default"; nd = "gpu-worker-1"
img = "tensorflow/tensorflow:2.15.0-gpu"
smsg = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
ctr = container("tf-notebook", img, gpu=1, mem="16Gi", cpu="4", command=["jupyter", "notebook"])
p = pod(name, ns, "2021-08-27T22:40:00Z", owner("ReplicaSet", "tf-notebook-747db6987b", "apps/v1"), [ctr], None,
        {"conditions": [cond("PodScheduled", "False", "2021-08-27T22:40:00Z", "Unschedulable", smsg)], "phase": "Pending", "qosClass": "Guaranteed"}, restart="Always")
ev = [event(p, "FailedScheduling", smsg, "2021-08-27T22:40:00Z", "2021-08-27T23:05:12Z", 26, comp="default-scheduler")]
n = node(nd, gpus=1, product="Tesla-T4")
n["status"]["capacity"]["nvidia.com/gpu"] = "0"; n["status"]["allocatable"]["nvidia.com/gpu"] = "0"
plmsg = f"back-off 5m0s restarting failed container=nvidia-device-plugin pod=nvidia-device-plugin-daemonset-2h9rh_gpu-operator({uid('nvidia-device-plugin-daemonset-2h9rh')})"
pl = plugin_pod(nd, "nvidia-device-plugin-daemonset-2h9rh", {"waiting": {"reason": "CrashLoopBackOff", "message": plmsg}},
                term(1, "Error", "2021-08-27T23:03:50Z", "2021-08-27T23:03:50Z", "pl"), restarts=11, ready=False)
write(case, "The GPU node's device plugin crash-loops ('Failed to initialize NVML: could not load NVML library': the container runtime does not inject the driver), so the node advertises 0 nvidia.com/gpu and the notebook stays Pending on 'Insufficient nvidia.com/gpu'. The cause must be in the answer: gpu_unschedulable (high) caused by device_plugin_down on gpu-worker-1 (high, CrashLoopBackOff).",
      [{"kind": "gpu_unschedulable", "confidence": "high", "summary_contains": ["device plugin"]},
       {"kind": "device_plugin_down", "confidence": "high", "node": nd, "summary_contains": ["CrashLoopBackOff"]}],
      {"pod.json": p, "events.json": elist(ev), "nodes.json": nodelist(n), "pods.json": {"apiVersion": "v1", "kind": "List", "items": [pl], "metadata": {"resourceVersion": ""}}})
readme(case, "Pending for a GPU because the device plugin on the only GPU node is down.",
       ["NVIDIA/gpu-operator#250, \"nvidia-device-plugin-daemonset stuck in crash loop\" https://github.com/NVIDIA/gpu-operator/issues/250",
        "NVIDIA/k8s-device-plugin#852, \"gpu pod Pending\" (the scheduler's message) https://github.com/NVIDIA/k8s-device-plugin/issues/852",
        "NVIDIA/k8s-device-plugin#22 (the pod name `tf-notebook-747db6987b-86zts` and its Pending describe) https://github.com/NVIDIA/k8s-device-plugin/issues/22"],
       ["The scheduler's message `0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.` (k8s-device-plugin#852).",
        "The device plugin's failure `Failed to initialize NVML: could not load NVML library.` on a GPU node, the pod stuck in CrashLoopBackOff (gpu-operator#250).",
        "The Pending pod `tf-notebook-747db6987b-86zts` requesting `nvidia.com/gpu: 1` (k8s-device-plugin#22)."],
       ["This case joins three threads' pieces into one cluster: one GPU node (T4) advertising `nvidia.com/gpu: 0`, the device-plugin pod's object (restart count 11, last exit 1), the event counts and times, the image tag. The plugin's log is not part of the bundle (the engine reads only the subject pod's logs)."],
       "The Pending pod's cause is node-level: the only GPU node's device plugin is not running, so the node has no allocatable GPUs. Mechanism 6 of the issue: the Pending explanation must include that cause. Expected: `gpu_unschedulable`, high, whose summary points at the device plugin, and `device_plugin_down` for `gpu-worker-1`, high, saying CrashLoopBackOff.")

# ---------------------------------------------------------------------------
# 17. sglang#34260: XID 13 from the application on two different GPUs, the server restarts.
case = "public-sglang-34260-xid13-app-fault-restarts"
name = "kimi-k3-sglang-0"; ns = "inference"; nd = "b200-node-1"
img = "lmsysorg/sglang:v0.6.2-cu130"; puid = uid(name)
g4 = "GPU-1bbcbc40-1cd0-591f-c41b-bfca16d0e101"
g5 = "GPU-6f2e8a13-9c4d-4b7a-8e15-3d2c1b0a9f87"
ctr = container("sglang", img, gpu=8, mem="1800Gi", cpu="96", command=["python3", "-m", "sglang.launch_server", "--model-path", "/models/Kimi-K3", "--tp", "8"])
p = pod(name, ns, "2026-08-10T09:40:00Z", owner("StatefulSet", "kimi-k3-sglang", "apps/v1"), [ctr], nd,
        pstatus("Running", [cond("Initialized", "True", "2026-08-10T09:40:00Z"), cond("Ready", "False", "2026-08-11T00:56:33Z", "ContainersNotReady", "containers with unready status: [sglang]"),
                            cond("ContainersReady", "False", "2026-08-11T00:56:33Z", "ContainersNotReady", "containers with unready status: [sglang]"), cond("PodScheduled", "True", "2026-08-10T09:40:00Z")],
                [cstatus("sglang", img, {"running": {"startedAt": "2026-08-11T00:56:35Z"}},
                         term(131, "Error", "2026-08-10T18:11:40Z", "2026-08-11T00:56:32Z", name + "1"), restarts=2, ready=False, started=True, cidkey=name + "2")],
                "2026-08-10T09:40:00Z"), restart="Always")
hold = lambda g: [holder(ns, name, "sglang", g)]
ag = sources(T("2026-08-10T09:00:00Z"))
ag.append(xid(T("2026-08-10T17:51:25Z"), g4, 4, 13, 1, hold(g4)))
ag.append(xid(T("2026-08-11T00:56:30Z"), g5, 5, 13, 1, hold(g5)))
write(case, "An SGLang server on 8 GPUs crashed twice, 7 hours apart: each time one TP rank's kernel faulted (XID 13, 'Graphics SM Cga Exception ... CTA Not Present'), first on GPU 4 then on GPU 5, the NCCL watchdog aborted and the pod restarted. An application (kernel) fault, not bad silicon: it moved between GPUs. gpu_xid 13 with the application meaning for each GPU, high; not gpu_unhealthy.",
      [{"kind": "gpu_xid", "confidence": "high", "gpu": g5, "summary_contains": ["XID 13", "application"]},
       {"kind": "gpu_xid", "confidence": "high", "gpu": g4, "summary_contains": ["XID 13"]}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd, product="NVIDIA-B200"), "agent.jsonl": jsonl(ag)})
readme(case, "XID 13 from the application's own kernel, on two GPUs in turn.",
       ["sgl-project/sglang#34260, \"[Bug] Kimi-K3 - sglang crash\" https://github.com/sgl-project/sglang/issues/34260"],
       ["Two occurrences: 2026-08-10 17:51:25 on TP4 / GPU 4 / PCI 0000:9a:00 after about 8 h, 2026-08-11 00:56:30 on TP5 / GPU 5 / PCI 0000:bc:00 after about 7 h; the GPU UUID `GPU-1bbcbc40-1cd0-591f-c41b-bfca16d0e101` of the first; the kernel lines `NVRM: Xid (PCI:0000:9a:00): 13, Graphics SM Cga Exception on (GPC 1, TPC 3, SM 1): CTA Not Present`; the sequence (one TP rank raises a CUDA error, the NCCL watchdog calls std::terminate, SGLang sends SIGQUIT, the server exits, Kubernetes restarts the pod); the reporter's reading that the fault moving between GPUs argues against defective silicon."],
       ["The second GPU's UUID, the pod (StatefulSet, image tag, 8 GPUs, limits), the node, exit code 131 (128 + SIGQUIT) for the last exit, the agent's XID records (the agent records the XID number, GPU and holders, not the kernel's text)."],
       "XID 13 is in the device plugin's application list: the program's kernel faulted, the GPU stays healthy. Two records, two GPUs, one XID code: counted per GPU. Expected: `gpu_xid` for GPU 5 (the last exit; summary says XID 13 and that it is the application's) and for GPU 4, both high; no `gpu_unhealthy`, no `gpu_lost`. (Restart count 2 is below the crash-loop threshold.)")

# ---------------------------------------------------------------------------
# 18. LlamaFactory#7396: NCCL watchdog timeout on ALLREDUCE.
case = "public-llamafactory-7396-nccl-allreduce-timeout"
name = "sft-qwen-worker-0"; ns = "training"; nd = "gpu-node-8"
img = "hiyouga/llamafactory:0.9.2"
ctr = container("pytorch", img, gpu=8, mem="1000Gi", cpu="96", command=["llamafactory-cli", "train", "examples/train_full/qwen2_full_sft.yaml"])
p = pod(name, ns, "2025-03-20T23:30:00Z", owner("PyTorchJob", "sft-qwen", "kubeflow.org/v1"), [ctr], nd,
        pstatus("Failed", [cond("Initialized", "True", "2025-03-20T23:30:00Z"), cond("Ready", "False", "2025-03-21T02:07:15Z", "PodFailed"),
                           cond("ContainersReady", "False", "2025-03-21T02:07:15Z", "PodFailed"), cond("PodScheduled", "True", "2025-03-20T23:30:00Z")],
                [cstatus("pytorch", img, term(1, "Error", "2025-03-20T23:30:20Z", "2025-03-21T02:07:14Z", name), cidkey=name)], "2025-03-20T23:30:00Z"), restart="Never")
log = """[80746] [rank0]:[E321 02:07:08.408271257 ProcessGroupNCCL.cpp:607] [Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1580, OpType=ALLREDUCE, NumelIn=466119168, NumelOut=466119168, Timeout(ms)=600000) ran for 600060 milliseconds before timing out.
[80747] [rank4]:[E321 02:07:08.414640780 ProcessGroupNCCL.cpp:607] [Rank 4] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1580, OpType=ALLREDUCE, NumelIn=466119168, NumelOut=466119168, Timeout(ms)=600000) ran for 600067 milliseconds before timing out.
[80748] [rank0]:[E321 02:07:08.465150152 ProcessGroupNCCL.cpp:1664] [PG 1 Rank 0] Exception (either an error or timeout) detected by watchdog at work: 1580, last enqueued NCCL work: 1582, last completed NCCL work: 1579.
[80749] [rank3]:[E321 02:07:08.465224069 ProcessGroupNCCL.cpp:1664] [PG 1 Rank 3] Exception (either an error or timeout) detected by watchdog at work: 1580, last enqueued NCCL work: 1582, last completed NCCL work: 1579.
"""
write(case, "A full SFT run's ALLREDUCE (SeqNum 1580) never completed on some rank: after the default 10-minute NCCL timeout the watchdogs of ranks 0, 3 and 4 took the process down (exit 1). nccl_error, high, naming the collective (ALLREDUCE), the timeout, and the timed-out collective as evidence; the exit is its consequence: the failed pod (restartPolicy Never: one exit fails it) is container_failed caused by the NCCL error, no crash_loop.",
      [{"kind": "nccl_error", "confidence": "high", "container": "pytorch", "summary_contains": ["ALLREDUCE"], "evidence_names": ["timed-out collective"], "caused_by": []},
       {"kind": "container_failed", "confidence": "high", "container": "pytorch", "caused_by": ["nccl_error"]}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd), "logs/pytorch.log": log}, gaps=["agent"])
readme(case, "NCCL watchdog: a collective timed out.",
       ["hiyouga/LlamaFactory#7396, \"Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1580, OpType=ALLREDUCE, NumelIn=466119168, NumelOut=466119168, Timeout(ms)=600000) ran for 600004 milliseconds before timing out.\" https://github.com/hiyouga/LlamaFactory/issues/7396"],
       ["The four log lines in `logs/pytorch.log` (ranks 0, 4, 0, 3) as the thread quotes them."],
       ["That it ran as a kubeflow PyTorchJob worker pod on one 8-GPU node, the image, command, exit code 1 (torchrun's after its children abort) and the times."],
       "The log tail is the NCCL watchdog's own statement: ALLREDUCE SeqNum 1580 ran past Timeout(ms)=600000 (10 minutes). Expected: `nccl_error`, high, summary naming ALLREDUCE, evidence `timed-out collective`. The exit 1 is that error's consequence: no separate `crash_loop` (a single exit of a Never pod). Changed after the first run: the failed pod is kept as `container_failed` (high) caused by the `nccl_error`, as in every other case where one exit fails a `restartPolicy: Never` pod (the chains of docs/diagnosis.md: the kubelet does not restart it, the pod's phase is Failed and its Job sees a failed pod); the first expectation, written before the chains, left the consequence out rather than ruling it out.")

# ---------------------------------------------------------------------------
# 19. k8s-device-plugin#305: a GPU given to nginx, never used; metrics every 10 minutes.
case = "public-device-plugin-305-nginx-holds-gpu-sparse"
name = "nginx-pod"; ns = "default"; nd = "gpu-node-9"
img = "nginx:latest"; gpu = "GPU-5b7e2d90-3c1a-4f6e-8d2b-9a0c1e3f5d77"
ctr = container("nginx", img, gpu=1, mem="256Mi", cpu="250m")
ctr["resources"] = {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}
ctr["ports"] = [{"containerPort": 80, "protocol": "TCP"}]
p = pod(name, ns, "2022-05-19T02:41:38Z", [], [ctr], nd,
        pstatus("Running", [cond("Initialized", "True", "2022-05-19T02:41:38Z"), cond("Ready", "True", "2022-05-19T02:41:57Z"),
                            cond("ContainersReady", "True", "2022-05-19T02:41:57Z"), cond("PodScheduled", "True", "2022-05-19T02:41:38Z")],
                [cstatus("nginx", img, {"running": {"startedAt": "2022-05-19T02:41:56Z"}}, restarts=0, ready=True, started=True, cidkey=name)],
                "2022-05-19T02:41:38Z"), restart="Always")
p["metadata"]["labels"] = {"k8s-app": "nginx-pod"}
p["status"]["qosClass"] = "BestEffort"
hold = [holder(ns, name, "nginx", gpu)]
ag = sources(T("2022-05-19T02:40:00Z"))
t = T("2022-05-19T02:50:00Z")
while t <= T("2022-05-19T04:50:00Z"):
    ag.append(gsample(t, 0, gpu, 0, 0, 31.0, holders=hold, name="NVIDIA A10", total=24146608128))
    t += td(minutes=10)
write(case, "A test pod (nginx) requested nvidia.com/gpu: 1 and holds the GPU, but never runs anything on it: 13 NVML samples 10 minutes apart over 2 h, all at 0 % with no process and no memory. Sparse samples are still two idle hours: gpu_idle for the GPU, medium (a sample every 10 minutes, not every few seconds), not silence.",
      [{"kind": "gpu_idle", "confidence": "medium", "gpu": gpu}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd, gpus=1, product="NVIDIA-A10"), "agent.jsonl": jsonl(ag)})
readme(case, "A GPU allocated and never used, seen through sparse samples.",
       ["NVIDIA/k8s-device-plugin#305, \"Deploy a test pod,but the GPU utilization rate on the node is 0\" https://github.com/NVIDIA/k8s-device-plugin/issues/305"],
       ["The pod from the thread's `kubectl describe`: `nginx-pod`, namespace default, label `k8s-app=nginx-pod`, Start Time Thu, 19 May 2022 10:41:38 +0800 (02:41:38 UTC), container `nginx`, image `nginx:latest`, port 80/TCP, Running, Ready, Restart Count 0, Limits/Requests `nvidia.com/gpu: 1`; the node's GPU utilization stays at 0."],
       ["The node and GPU (an A10 here), the GPU's UUID, and the samples: 13 NVML samples 10 minutes apart (what a metrics export scraped sparsely gives), all 0 % utilization, 0 memory, no process, the pod as holder."],
       "nginx never opens the GPU: allocated and idle for two hours. The issue's mechanism 8: sparse samples must not read as healthy; a dozen samples over two hours, all at 0 % with no process, are two idle hours, with confidence lowered for the density. Expected: `gpu_idle` for the GPU, medium.")

# ---------------------------------------------------------------------------
# 20. akash-network/support#209: XID 79 under a running workload; the GPU is lost, the pod loops.
case = "public-akash-209-xid79-gpu-lost-running-pod"
name = "web-6d8f9c7b5-9xw2k"; ns = "lease-15732906"; nd = "node1"
img = "registry.example.com/tenant/llm-worker:1.2"; puid = uid(name)
gpu = "GPU-979426f2-893a-7cbb-c4cf-81472f89a462"
ctr = container("web", img, gpu=1, mem="64Gi", cpu="8", command=["python", "serve.py"])
p = pod(name, ns, "2024-04-08T20:00:00Z", owner("ReplicaSet", "web-6d8f9c7b5", "apps/v1"), [ctr], nd,
        pstatus("Running", [cond("Initialized", "True", "2024-04-08T20:00:00Z"), cond("Ready", "False", "2024-04-09T01:21:40Z", "ContainersNotReady", "containers with unready status: [web]"),
                            cond("ContainersReady", "False", "2024-04-09T01:21:40Z", "ContainersNotReady", "containers with unready status: [web]"), cond("PodScheduled", "True", "2024-04-08T20:00:00Z")],
                [cstatus("web", img, {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off 5m0s restarting failed container=web pod={name}_{ns}({puid})"}},
                         term(1, "Error", "2024-04-09T01:57:10Z", "2024-04-09T01:57:14Z", name + "9"), restarts=9, cidkey=name + "9")],
                "2024-04-08T20:00:00Z"), restart="Always")
hold = [holder(ns, name, "web", gpu)]
ag = sources(T("2024-04-08T17:04:05Z"))
ag.append(xid(T("2024-04-09T01:21:38Z"), gpu, 0, 79, 1, hold))
ag.append({"kind": "gpu_lost", "time": fmtms(T("2024-04-09T01:21:39Z")), "gpu_index": 0, "gpu_uuid": gpu, "holders": hold, "simulated": False})
ag.append({"kind": "gpu_count_changed", "time": fmtms(T("2024-04-09T01:22:09Z")), "before": 8, "after": 7, "simulated": False})
log = "RuntimeError: CUDA error: unknown error\n"
write(case, "GPU 0000:a1:00 (GPU-979426f2-...) fell off the bus at 01:21:38 (XID 79) under a tenant's running workload; NVML lost it, and the workload, still bound to that GPU by the kubelet, fails at every restart (CrashLoopBackOff, 9 restarts). Chain: crash_loop (high) <- gpu_lost (high) <- gpu_xid 79 (high): the fix is draining the node and a reset or reboot, not the application.",
      [{"kind": "gpu_lost", "confidence": "high", "gpu": gpu},
       {"kind": "gpu_xid", "confidence": "high", "gpu": gpu, "summary_contains": ["XID 79"]},
       {"kind": "crash_loop", "confidence": "high", "container": "web", "summary_excludes": ["application error"]}],
      {"pod.json": p, "events.json": elist([]), "node.json": node(nd, product="NVIDIA-GeForce-RTX-4090"), "agent.jsonl": jsonl(ag), "logs/web.log": log})
readme(case, "XID 79 under a running pod: the GPU is lost and the pod loops on it.",
       ["akash-network/support#209, \"pdx.nb.akash.pub - providers spewing thousands of pods; nvidia-smi `Unable to determine the device handle for GPU0000:A1:00.0: Unknown Error`\" https://github.com/akash-network/support/issues/209"],
       ["The kernel's lines: `NVRM: GPU at PCI:0000:a1:00: GPU-979426f2-893a-7cbb-c4cf-81472f89a462`, `NVRM: Xid (PCI:0000:a1:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.` at Tue Apr 9 01:21:38 2024 (the third occurrence), the driver 535.161.07 loaded at Mon Apr 8 17:04:05; `nvidia-smi`: `Unable to determine the device handle for GPU0000:A1:00.0: Unknown Error`; node1 of an 8-GPU RTX 4090 provider; a tenant's deployment (dseq 15732906) affected; the node cordoned."],
       ["The tenant's pod (names, namespace, image, restart count, exit code 1 and the one-line CUDA error of its log; the thread shows the provider's side, not the tenant's pod), the GPU's NVML index (0), the agent's records (XID 79, GPU lost, count 8 -> 7) and their sub-second times."],
       "XID 79 then NVML's GPU_IS_LOST on the pod's own GPU, then a container that fails at every start: the GPU is the root. Mechanism 7 of the issue: keep the root and link its consequences: `gpu_xid` 79 (high), `gpu_lost` (high, this GPU), `crash_loop` of container `web` (high) caused by it. Added after the first run: `summary_excludes: [\"application error\"]` on the crash loop, because the engine called the loop an application error while the pod's GPU was lost (a stricter expectation: that story is now a confident wrong answer).")

# ---------------------------------------------------------------------------
# 21. k3s#838: the kubelet evicts under node memory pressure.
case = "public-k3s-838-evicted-memory-pressure"
name = "vdc-rangeradmin-558b5fc8d-z6df7"; ns = "default"; nd = "10.72.127.182"
img = "registry.example.com/vdc/ranger-admin:2.0.0"
ctr = container("rangeradmin", img, gpu=0, mem="1Gi", cpu="500m")
ctr["resources"] = {}
emsg = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91244Ki. Container rangeradmin was using 1462308Ki, request is 0, has larger consumption of memory. "
p = pod(name, ns, "2019-09-25T14:31:37Z", owner("ReplicaSet", "vdc-rangeradmin-558b5fc8d", "apps/v1"), [ctr], nd,
        pstatus("Failed", [cond("DisruptionTarget", "True", "2019-09-25T14:41:07Z", "TerminationByKubelet", emsg),
                           cond("Initialized", "True", "2019-09-25T14:31:37Z"), cond("Ready", "False", "2019-09-25T14:41:10Z", "PodFailed"),
                           cond("ContainersReady", "False", "2019-09-25T14:41:10Z", "PodFailed"), cond("PodScheduled", "True", "2019-09-25T14:31:37Z")],
                [cstatus("rangeradmin", img, term(137, "Error", "2019-09-25T14:32:40Z", "2019-09-25T14:41:09Z", name), cidkey=name)],
                "2019-09-25T14:31:37Z", reason="Evicted", msg=emsg), restart="Always")
p["status"]["qosClass"] = "BestEffort"
n = node(nd, gpus=0, product="none", heartbeat="2019-09-25T14:43:37Z",
         conds={"MemoryPressure": {"status": "True", "reason": "KubeletHasInsufficientMemory", "message": "kubelet has insufficient memory available", "lastTransitionTime": "2019-09-25T14:38:37Z"}})
n["status"]["capacity"]["memory"] = "4041160Ki"; n["status"]["allocatable"]["memory"] = "3426760Ki"
n["spec"]["taints"] = [{"effect": "NoSchedule", "key": "node.kubernetes.io/memory-pressure", "timeAdded": "2019-09-25T14:38:37Z"}]
ev = [event(p, "Evicted", emsg, "2019-09-25T14:41:07Z", host=nd),
      event(p, "Killing", "Stopping container rangeradmin", "2019-09-25T14:41:07Z", typ="Normal", host=nd, field="spec.containers{rangeradmin}")]
nev = [{"apiVersion": "v1", "kind": "Event", "metadata": {"name": nd + ".a1", "namespace": "default", "uid": uid(nd + "a1"), "creationTimestamp": "2019-09-25T14:38:19Z"},
        "involvedObject": {"kind": "Node", "name": nd, "uid": nd}, "reason": "NodeHasInsufficientMemory", "message": f"Node {nd} status is now: NodeHasInsufficientMemory",
        "type": "Normal", "count": 1, "firstTimestamp": "2019-09-25T14:38:19Z", "lastTimestamp": "2019-09-25T14:38:19Z", "source": {"component": "kubelet", "host": nd}},
       {"apiVersion": "v1", "kind": "Event", "metadata": {"name": nd + ".a2", "namespace": "default", "uid": uid(nd + "a2"), "creationTimestamp": "2019-09-25T14:38:18Z"},
        "involvedObject": {"kind": "Node", "name": nd, "uid": nd}, "reason": "EvictionThresholdMet", "message": "Attempting to reclaim memory",
        "type": "Warning", "count": 3, "firstTimestamp": "2019-09-25T14:38:18Z", "lastTimestamp": "2019-09-25T14:40:47Z", "source": {"component": "kubelet", "host": nd}}]
write(case, "A 4 GB single node overloaded on purpose: the node reported MemoryPressure, the kubelet met its eviction threshold ('Attempting to reclaim memory') and evicted this BestEffort pod, the biggest user over its (zero) request. evicted (memory), high: the exit 137 is the eviction's kill, not an OOM kill.",
      [{"kind": "evicted", "confidence": "high", "container": "rangeradmin", "summary_contains": ["memory"]}],
      {"pod.json": p, "events.json": elist(ev + nev), "node.json": n})
readme(case, "Node-pressure eviction under memory pressure.",
       ["k3s-io/k3s#838, \"Not killing pods by default, system OOM takes over\" (the comment of 2019-09-25 reproducing it on a regular Kubernetes 1.15 node) https://github.com/k3s-io/k3s/issues/838"],
       ["The node's conditions (MemoryPressure `True` with `KubeletHasInsufficientMemory` / `kubelet has insufficient memory available`; DiskPressure, PIDPressure, Ready), the node events `NodeHasInsufficientMemory` (`Node 10.72.127.182 status is now: NodeHasInsufficientMemory`) and `EvictionThresholdMet` (x3, `Attempting to reclaim memory`), a 4GB single node, pods in Evicted state, the pod name `vdc-rangeradmin-558b5fc8d-z6df7` and its node."],
       ["The eviction message's figures (threshold 100Mi, available, the container's usage; the kubelet's wording), the pod's status fields, QoS (BestEffort), the node's exact capacity, the taint, the times."],
       "The pod's status says Evicted with the kubelet's memory message, the node carried MemoryPressure and the kubelet's eviction-threshold events. Expected: `evicted`, high, for container `rangeradmin`, saying memory; its exit 137 belongs to the eviction (no `exit_137_not_oom`, no `oom_killed`).")

# ---------------------------------------------------------------------------
# 22. gpu-operator#1065 seen from a Pending 8-GPU job: the unhealthy GPU is the cause.
case = "public-gpu-operator-1065-pending-8gpu-unhealthy"
nd = "h100-node-02"; gpu = "GPU-9a4c2e71-0b3d-4f58-8e26-1d7c5b3a9f04"
name = "pretrain-8gpu-worker-0"; ns = "training"
smsg = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
ctr = container("pytorch", "nvcr.io/nvidia/pytorch:24.09-py3", gpu=8, mem="1500Gi", cpu="120", command=["torchrun", "--nproc-per-node=8", "train.py"])
p = pod(name, ns, "2024-10-25T03:00:00Z", owner("PyTorchJob", "pretrain-8gpu", "kubeflow.org/v1"), [ctr], None,
        {"conditions": [cond("PodScheduled", "False", "2024-10-25T03:00:00Z", "Unschedulable", smsg)], "phase": "Pending", "qosClass": "Guaranteed"}, restart="OnFailure")
ev = [event(p, "FailedScheduling", smsg, "2024-10-25T03:00:00Z", "2024-10-25T03:41:12Z", 19, comp="default-scheduler")]
n = node(nd, gpus=8, alloc=7)
n["status"]["capacity"].update({"cpu": "128", "memory": "2113276288Ki", "nvidia.com/gpu": "8"})
n["status"]["allocatable"].update({"cpu": "128", "memory": "2062682496Ki", "nvidia.com/gpu": "7"})
pl = plugin_pod(nd, "nvidia-device-plugin-daemonset-7xk2d", {"running": {"startedAt": "2024-10-20T00:00:00Z"}})
ag = sources(T("2024-10-25T00:00:00Z"))
ag.append(xid(T("2024-10-25T02:19:08Z"), gpu, 3, 94))
t = T("2024-10-25T03:00:00Z")
while t < T("2024-10-25T03:41:00Z"):
    for i in range(8):
        u = gpu if i == 3 else f"GPU-{h(nd+str(i),8)}-{h('a'+str(i),4)}-{h('b'+str(i),4)}-{h('c'+str(i),4)}-{h('d'+str(i),12)}"
        ag.append(gsample(t, i, u, 0, 500 * MiB, 70.0))
    t += td(seconds=60)
write(case, "An 8-GPU PyTorchJob worker is Pending on 'Insufficient nvidia.com/gpu' on an empty 8-GPU node: the device plugin marked GPU 3 unhealthy after XID 94, so allocatable is 7. The Pending explanation must carry its cause with the node's figures (allocatable 7, requested 8): gpu_unschedulable (high, naming the unhealthy GPU) caused by gpu_unhealthy on h100-node-02 (high) caused by XID 94 on GPU 3 (high).",
      [{"kind": "gpu_unschedulable", "confidence": "high", "summary_contains": ["unhealthy", "allocatable 7"]},
       {"kind": "gpu_unhealthy", "confidence": "high", "node": nd, "gpu": gpu, "summary_contains": ["7 of its 8"]},
       {"kind": "gpu_xid", "confidence": "high", "gpu": gpu, "summary_contains": ["XID 94"]}],
      {"pod.json": p, "events.json": elist(ev), "nodes.json": nodelist(n), "pods.json": {"apiVersion": "v1", "kind": "List", "items": [pl], "metadata": {"resourceVersion": ""}}, "agent-" + nd + ".jsonl": jsonl(ag)})
readme(case, "Pending for GPUs because one GPU is unhealthy: the cause, not only the symptom.",
       ["NVIDIA/gpu-operator#1065, \"GPU resources are not recovered even XID error is resolved\" https://github.com/NVIDIA/gpu-operator/issues/1065",
        "NVIDIA/k8s-device-plugin#852 (the scheduler's message) https://github.com/NVIDIA/k8s-device-plugin/issues/852"],
       ["The node's capacity `nvidia.com/gpu: 8` and allocatable `nvidia.com/gpu: 7` on an 8-GPU H100 node, the XID 94 on one GPU reported by the device plugin (gpu-operator#1065); the scheduler's message `0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.` (k8s-device-plugin#852)."],
       ["The Pending 8-GPU PyTorchJob worker (the first thread reports only the node), the GPU's index and UUID, the agent's records as in public-gpu-operator-1065-xid94-allocatable-7, the device-plugin pod object, the times and counts."],
       "The pod needs 8 GPUs and the only node offers 7 because the device plugin marked GPU 3 unhealthy after XID 94. Mechanism 6 of the issue: the Pending explanation includes the node-level cause with per-node figures. Expected: `gpu_unschedulable`, high, saying a GPU is unhealthy and allocatable 7; `gpu_unhealthy` for the node naming GPU 3 (7 of its 8); `gpu_xid` 94 for GPU 3.")
