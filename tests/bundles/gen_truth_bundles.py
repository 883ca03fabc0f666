#!/usr/bin/env python3
"""Writes the bundles of the "last words, chains and causes" cases
(kubectl-shaped JSON), with the helpers of gen_pod_bundles.py.

Usage: python3 tests/bundles/gen_truth_bundles.py tests/bundles
Each case's expectations were written from the mechanism (what the kubelet,
the scheduler, the device plugin and the driver do) before the engine was
run on it; expected.json is written from them.
"""
import os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
_src = open(os.path.join(HERE, "gen_pod_bundles.py")).read()
# The shared helpers: everything before the first case.
exec(_src[:_src.index("# ---------------------------------------------------------------- image pulls")])


def ms(m, s=0, h=10):
    return f"2026-11-20T{h:02d}:{m:02d}:{s:02d}.{int(h64(str((h, m, s)))[:3], 16) % 1000:03d}Z"


def xid(time, g, index, x, count, holders=()):
    return {"kind": "xid", "time": time, "gpu_uuid": g, "gpu_index": index, "xid": x, "count": count,
            "holders": list(holders), "simulated": False}


def plugin_pod(name, node_name, state=None, last=None, ready=True, restarts=0):
    c = container("nvidia-device-plugin", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0", cpu="100m", mem="128Mi",
                  command=["nvidia-device-plugin"])
    st = cstatus("nvidia-device-plugin", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
                 state or running("2026-11-19T06:00:00Z"), last, ready, restarts, ready, cid_seed=name)
    return pod(name, ns="gpu-operator", node=node_name, containers=[c], created="2026-11-19T06:00:00Z",
               start="2026-11-19T06:00:00Z",
               owners=[{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "nvidia-device-plugin-daemonset",
                        "uid": uid("ds"), "controller": True, "blockOwnerDeletion": True}],
               labels={"app": "nvidia-device-plugin-daemonset", "controller-revision-hash": "6f9d8c7b5",
                       "pod-template-generation": "3"},
               statuses=[st], tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
               extra_spec={"priorityClassName": "system-node-critical"})


# ------------------------------------------------- chains: probe -> 137 -> loop
# A 70B model server needs ~4 minutes to load; its liveness probe gives it
# 30 + 3 x 10 = 60 s and there is no startup probe. The kubelet kills it
# each time the probe has failed three times: SIGTERM, which the loader
# does not handle, then SIGKILL 30 s later (terminationGracePeriodSeconds):
# exit 137 with reason Error, never OOMKilled. Then CrashLoopBackOff.
probes = {"livenessProbe": {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"},
                            "initialDelaySeconds": 30, "periodSeconds": 10, "timeoutSeconds": 1,
                            "successThreshold": 1, "failureThreshold": 3}}
c = container("server", "vllm/vllm-openai:v0.6.3", gpus=4, cpu="16", mem="256Gi",
              args=["--model", "/models/llama-3.1-70b-instruct", "--tensor-parallel-size", "4"], probes=probes)
cid = h64("slow-start-5")
p = pod("llm-70b-7c9d8f6b5-k2x8w", ns="inference", containers=[c], created=t(0), start=t(0, 5),
        owners=owner("ReplicaSet", "llm-70b-7c9d8f6b5"),
        statuses=[cstatus("server", "vllm/vllm-openai:v0.6.3",
                          waiting("CrashLoopBackOff", "back-off 2m40s restarting failed container=server pod=llm-70b-7c9d8f6b5-k2x8w_inference(" + uid("inferencellm-70b-7c9d8f6b5-k2x8w") + ")"),
                          terminated(137, "Error", t(20, 0), t(21, 31), cid), ready=False, restarts=5, started=False)])
fp = "server"
ev = [event(p, "Unhealthy", 'Liveness probe failed: Get "http://10.244.3.17:8000/health": dial tcp 10.244.3.17:8000: connect: connection refused',
            t(21, 1), first=t(0, 45), count=15, field=fp),
      event(p, "Killing", "Container server failed liveness probe, will be restarted", t(21, 1), first=t(1, 5), count=5,
            typ="Normal", field=fp),
      event(p, "BackOff", "Back-off restarting failed container server in pod llm-70b-7c9d8f6b5-k2x8w_inference(" + p["metadata"]["uid"] + ")",
            t(21, 40), first=t(5, 0), count=9, field=fp)]
write("chain-liveness-slow-start-137",
      "A model server that needs minutes to load, a liveness probe that allows 60 s and no startup probe: the kubelet kills it each time (SIGTERM, ignored, then SIGKILL after the 30 s grace period: exit 137, reason Error) and it crash-loops. One chain: the probe is the root cause (it needs longer to start than the probe waits; the run lasts the probe's budget plus the grace period), the exit 137 that is not an OOM kill its consequence, the crash loop the exit's consequence. No agent records.",
      {"findings": [F("probe_failing", "high", container="server",
                      summary_contains=["liveness", "needs longer to start than the probe waits"],
                      evidence_contains={"probe kills": "5", "probe settings": "acts after 60s"}, caused_by=[]),
                    F("exit_137_not_oom", "high", container="server",
                      summary_contains=["exit 137", "liveness probe failed", "not by the OOM killer"], caused_by=["probe_failing"]),
                    F("crash_loop", "high", container="server",
                      summary_contains=["CrashLoopBackOff", "5 restarts", "code 137"], caused_by=["exit_137_not_oom"])],
       "gaps": ["agent"]},
      p, ev, nodes=[node("gpu-node-1")], meta=meta("inference", "llm-70b-7c9d8f6b5-k2x8w", t(21, 45)))

# ------------------------------------------------- chains: XID 13 -> loop
# The application's own kernel faults: the driver logs XID 13 (graphics
# engine exception) on the container's GPU and the CUDA call fails, the
# program exits 1; it does so on every restart. No log tail was collected.
g = gpu_uuid("xid13-loop")
c = container("trainer", "ghcr.io/acme/custom-kernels:0.4.1", gpus=1, cpu="8", mem="64Gi",
              command=["python", "train.py"], args=["--fused-attention"])
p = pod("attn-bench-0-m4k9s", containers=[c], created=t(0), start=t(0, 2), owners=owner("Job", "attn-bench"),
        restart_policy="OnFailure",
        statuses=[cstatus("trainer", "ghcr.io/acme/custom-kernels:0.4.1",
                          waiting("CrashLoopBackOff", "back-off 1m20s restarting failed container=trainer pod=attn-bench-0-m4k9s_ml(" + uid("mlattn-bench-0-m4k9s") + ")"),
                          terminated(1, "Error", t(14, 2), t(14, 51), h64("xid13-4")), ready=False, restarts=4, started=False)])
hs = [holder("ml", "attn-bench-0-m4k9s", "trainer", g)]
agent = [gpu_sample(ms(14, 20), 0, g, util=99, holders=hs),
         xid(ms(14, 50), g, 0, 13, 5, hs),
         gpu_sample(ms(14, 55), 0, g, util=0, mem_used=600_000_000, power=72.0, holders=hs)]
for m_ in (3, 6, 10):
    agent.insert(0, xid(ms(m_, 40), g, 0, 13, m_ // 3, hs))
write("chain-xid13-crash-loop",
      "A custom CUDA kernel faults at every start: the driver reports XID 13 on the container's GPU a second before each exit 1, and the container crash-loops (restartPolicy OnFailure). One chain: gpu_xid (XID 13, the application's fault, counted per code over the period: 4 reports, not the agent's counter) is the root, the crash loop its consequence.",
      {"findings": [F("gpu_xid", "high", container="trainer", gpu=g, summary_contains=["XID 13", "4 times", "application"],
                      evidence_contains={"count": "4 (XID 13 on this GPU"}, caused_by=[]),
                    F("crash_loop", "high", container="trainer", gpu=g,
                      summary_contains=["Job/attn-bench (GPU 0, " + g + ")", "CrashLoopBackOff", "code 1"],
                      caused_by=["gpu_xid"])]},
      p, [], nodes=[node("gpu-node-1")], agent=agent, meta=meta("ml", "attn-bench-0-m4k9s", t(15, 0)))

# ------------------------------------------------- last words: termination message
# terminationMessagePolicy FallbackToLogsOnError: the kubelet copies the
# log's tail into lastState.terminated.message when the container fails.
# Nobody collected `kubectl logs --previous`; the message is all there is.
tb = ("Traceback (most recent call last):\n"
      "  File \"/app/serve.py\", line 41, in <module>\n"
      "    model = AutoModelForCausalLM.from_pretrained(args.model)\n"
      "  File \"/usr/local/lib/python3.11/site-packages/transformers/modeling_utils.py\", line 3221, in from_pretrained\n"
      "    raise EnvironmentError(\n"
      "OSError: /models/llama-3-8b-instruct does not appear to have a file named config.json. Checkout 'https://huggingface.co//models/llama-3-8b-instruct/tree/None' for available files.\n")
c = container("server", "ghcr.io/acme/hf-serve:2.1", gpus=1, cpu="8", mem="32Gi",
              command=["python", "/app/serve.py"], args=["--model", "/models/llama-3-8b-instruct"],
              mounts=[{"name": "models", "mountPath": "/models", "readOnly": True}])
c["terminationMessagePolicy"] = "FallbackToLogsOnError"
p = pod("hf-serve-6b8d9c7f4-r7t2m", ns="inference", containers=[c], created=t(0), start=t(0, 3),
        owners=owner("ReplicaSet", "hf-serve-6b8d9c7f4"),
        volumes=[{"name": "models", "persistentVolumeClaim": {"claimName": "model-store"}}],
        statuses=[cstatus("server", "ghcr.io/acme/hf-serve:2.1",
                          waiting("CrashLoopBackOff", "back-off 5m0s restarting failed container=server pod=hf-serve-6b8d9c7f4-r7t2m_inference(" + uid("inferencehf-serve-6b8d9c7f4-r7t2m") + ")"),
                          terminated(1, "Error", t(31, 10), t(31, 19), h64("hf-7"), message=tb), ready=False, restarts=7,
                          started=False)])
write("logs-termination-message-model-missing",
      "The model server cannot find config.json under /models/llama-3-8b-instruct (on the PVC model-store) and exits 1 at every start; no log file was collected, but terminationMessagePolicy FallbackToLogsOnError put the log's tail in lastState.terminated.message. The log rules read that message as the log tail: model_files_missing, high (path and exit), saying where the line was read; the crash loop is its consequence.",
      {"findings": [F("model_files_missing", "high", container="server",
                      summary_contains=["/models/llama-3-8b-instruct/config.json", "model-store"],
                      evidence_contains={"read from": "termination message", "missing path": "/models/llama-3-8b-instruct/config.json"},
                      caused_by=[]),
                    F("crash_loop", "high", container="server", summary_contains=["CrashLoopBackOff", "7 restarts"],
                      caused_by=["model_files_missing"])],
       "gaps": ["agent"]},
      p, [], nodes=[node("gpu-node-1")], meta=meta("inference", "hf-serve-6b8d9c7f4-r7t2m", t(32, 0)))

# CUDA out of memory, read from the termination message of a Job's pod.
tb = ("  File \"/app/train.py\", line 188, in training_step\n"
      "    loss.backward()\n"
      "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which 1.21 GiB is free. Process 4121 has 77.88 GiB memory in use. Of the allocated memory 74.02 GiB is allocated by PyTorch, and 2.31 GiB is reserved by PyTorch but unallocated.\n")
c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=1, cpu="16", mem="128Gi",
              command=["python", "/app/train.py"], args=["--micro-batch", "32"])
c["terminationMessagePolicy"] = "FallbackToLogsOnError"
p = pod("sft-mistral-0-w8q4n", containers=[c], created=t(0), start=t(0, 4), owners=owner("Job", "sft-mistral"),
        restart_policy="Never", phase="Failed",
        conditions=[cond("PodReadyToStartContainers", "False", t(9, 2)), cond("Initialized", "True", t(0, 4)),
                    cond("Ready", "False", t(9, 2), "PodFailed"), cond("ContainersReady", "False", t(9, 2), "PodFailed"),
                    cond("PodScheduled", "True", t(0))],
        statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0",
                          terminated(1, "Error", t(0, 20), t(9, 1), h64("sft-m"), message=tb), ready=False, restarts=0,
                          started=False)])
write("oom-cuda-termination-message",
      "A fine-tuning Job's pod (restartPolicy Never) ran out of GPU memory in backward() and exited 1; no log file, but FallbackToLogsOnError kept the traceback in state.terminated.message. cuda_oom, high, from the message (tried 4.00 GiB with 1.21 GiB free); the single exit that failed the pod is container_failed, its consequence, not a crash loop.",
      {"findings": [F("cuda_oom", "high", container="trainer", summary_contains=["4.00 GiB", "GPU memory"], caused_by=[]),
                    F("container_failed", "high", container="trainer",
                      summary_contains=["code 1", "one exit, not a crash loop", "Job/sft-mistral"], caused_by=["cuda_oom"])]},
      p, [], nodes=[node("gpu-node-1")], meta=meta("ml", "sft-mistral-0-w8q4n", t(10, 0)))

# ------------------------------------------------- exit 127: the command
# A shell runs the command; the program's name has a typo, so sh prints
# "not found" and exits 127, on every restart.
c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=1, command=["/bin/sh", "-c"],
              args=["pyhton train.py --epochs 3"])
p = pod("train-typo-5f6d7c8b9-q2w3e", containers=[c], created=t(0), start=t(0, 2),
        owners=owner("ReplicaSet", "train-typo-5f6d7c8b9"),
        statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0",
                          waiting("CrashLoopBackOff", "back-off 2m40s restarting failed container=trainer pod=train-typo-5f6d7c8b9-q2w3e_ml(" + uid("mltrain-typo-5f6d7c8b9-q2w3e") + ")"),
                          terminated(127, "Error", t(6, 10), t(6, 10), h64("typo-5")), ready=False, restarts=5,
                          started=False)])
write("pod-crash-loop-exit-127-command",
      "Exit 127 from /bin/sh -c 'pyhton train.py --epochs 3': the shell could not find the program. The crash loop names exit 127's meaning and quotes the command and args as the manifest writes them, so the typo is visible.",
      {"findings": [F("crash_loop", "high", container="trainer",
                      summary_contains=["code 127", "command not found", "pyhton train.py --epochs 3"],
                      evidence_contains={"command": "args [\"pyhton train.py --epochs 3\"]"}, caused_by=[])],
       "gaps": ["agent"]},
      p, [], nodes=[node("gpu-node-1")], meta=meta("ml", "train-typo-5f6d7c8b9-q2w3e", t(7, 0)))

# ------------------------------------------------- SIGTERM: node shutdown
# Graceful node shutdown: the kubelet marks the pod Failed with reason
# Terminated and the message below, adds DisruptionTarget
# (TerminationByKubelet), and sends SIGTERM; the trainer exits 143.
c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=8, cpu="96", mem="1000Gi",
              command=["torchrun", "--nproc-per-node", "8", "train.py"])
shut = "Pod was terminated in response to imminent node shutdown."
p = pod("pretrain-7b-0-z9x8c", containers=[c], created=t(0, h=6), start=t(0, 5, h=6), owners=owner("Job", "pretrain-7b"),
        restart_policy="Never", phase="Failed", reason="Terminated", message=shut,
        conditions=[cond("DisruptionTarget", "True", t(12, 0), "TerminationByKubelet", shut),
                    cond("PodReadyToStartContainers", "False", t(12, 31)), cond("Initialized", "True", t(0, 5, h=6)),
                    cond("Ready", "False", t(12, 31), "PodFailed"), cond("ContainersReady", "False", t(12, 31), "PodFailed"),
                    cond("PodScheduled", "True", t(0, h=6))],
        statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0",
                          terminated(143, "Error", t(0, 30, h=6), t(12, 14), h64("pre7b")), ready=False, restarts=0,
                          started=False)])
write("pod-job-exit-143-node-shutdown",
      "A pretraining Job's pod (restartPolicy Never) exited 143 once: SIGTERM from the kubelet during a graceful node shutdown, as the pod's status (reason Terminated, its message) and its DisruptionTarget condition (TerminationByKubelet) say. container_failed, not a crash loop, naming who sent the SIGTERM; no liveness probe or OOM is involved.",
      {"findings": [F("container_failed", "high", container="trainer",
                      summary_contains=["code 143", "graceful node shutdown", "one exit, not a crash loop", "Job/pretrain-7b"],
                      evidence_contains={"pod condition DisruptionTarget": "TerminationByKubelet", "pod status": "imminent node shutdown"},
                      caused_by=[])]},
      p, [], nodes=[node("gpu-node-1")], meta=meta("ml", "pretrain-7b-0-z9x8c", t(13, 0)))

# ------------------------------------------------- Pending: the device plugin
# The only GPU node with room has a crash-looping device plugin, so the
# kubelet advertises 0 allocatable GPUs there; the other GPU node is full.
# The scheduler says only "Insufficient nvidia.com/gpu"; the cause is on
# a node the pod is not bound to.
c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=2, cpu="16", mem="128Gi")
msg = "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
p = pod("finetune-qwen-0-h7j6k", node=None, phase="Pending", containers=[c], created=t(40), owners=owner("Job", "finetune-qwen"),
        conditions=[cond("PodScheduled", "False", t(40, 1), "Unschedulable", msg)])
cp = node("cp-1", gpus=0, labels={"node-role.kubernetes.io/control-plane": ""},
          taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
n1 = node("gpu-node-1", 8, 0)
n2 = node("gpu-node-2", 8, 8)
holders_pods = []
for i in range(2):
    hc = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=4, cpu="16", mem="128Gi")
    holders_pods.append(pod(f"train-llama-worker-{i}", node="gpu-node-2", containers=[hc], created="2026-11-20T08:00:00Z",
                            start="2026-11-20T08:00:00Z", owners=owner("PyTorchJob", "train-llama"),
                            statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0", running("2026-11-20T08:00:20Z"),
                                              None, True, 0, True, cid_seed=f"tlw{i}")]))
dp_down = plugin_pod("nvidia-device-plugin-daemonset-7k2lp", "gpu-node-1",
                     state=waiting("CrashLoopBackOff", "back-off 5m0s restarting failed container=nvidia-device-plugin"),
                     last=terminated(1, "Error", t(35, 0), t(35, 2), h64("dp-7k")), ready=False, restarts=11)
dp_up = plugin_pod("nvidia-device-plugin-daemonset-m3n4b", "gpu-node-2")
write("gpu-health-pending-plugin-down-elsewhere",
      "A Pending pod asking for 2 GPUs: the scheduler says 'Insufficient nvidia.com/gpu' on both GPU nodes. gpu-node-2 is full (8 of 8 requested); gpu-node-1 has 8 GPUs but advertises 0 because its device plugin crash-loops. Explaining the pod must include that node-level cause, linked: gpu_unschedulable with the per-node figures (allocatable, requested, free), caused by the device plugin down on gpu-node-1 (a node nothing else excludes the pod from); the full node gets no cause. The pod is bound to no node, so without the link the plugin would not be shown.",
      {"findings": [F("gpu_unschedulable", "high", summary_contains=["no node has 2 free nvidia.com/gpu", "gpu-node-1 has 8, offers 0"],
                      evidence_contains={"node gpu-node-1": "0 allocatable (capacity 8), 0 requested, 0 free",
                                "node gpu-node-2": "8 allocatable, 8 requested, 0 free"},
                      caused_by=["device_plugin_down"]),
                    F("device_plugin_down", "high", node="gpu-node-1", summary_contains=["CrashLoopBackOff"], caused_by=[])]},
      p, [sched_event(p, msg, t(44, 1), first=t(40, 1), count=9)], nodes=[cp, n1, n2],
      pods=holders_pods + [dp_down, dp_up], meta=meta("ml", "finetune-qwen-0-h7j6k", t(45, 0)))

# ------------------------------------------------- Pending: a plugin down, GPUs still counted
# The device plugin on gpu-node-1 is Running but not Ready (its health
# check fails while it stays registered with the kubelet), so the node
# still advertises all 8 GPUs, every one requested by a running job; so is
# gpu-node-2. The scheduler's "Insufficient nvidia.com/gpu" is the cluster
# being full: the plugin is a finding of its own, not the cause.
def holders_on(node_name, job, seed):
    out = []
    for i in range(2):
        hc = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=4, cpu="16", mem="128Gi")
        out.append(pod(f"{job}-worker-{i}", node=node_name, containers=[hc], created="2026-11-20T08:00:00Z",
                       start="2026-11-20T08:00:00Z", owners=owner("PyTorchJob", job),
                       statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0", running("2026-11-20T08:00:20Z"),
                                         None, True, 0, True, cid_seed=f"{seed}{i}")]))
    return out


c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=2, cpu="16", mem="128Gi")
p = pod("finetune-qwen-1-r5t6y", node=None, phase="Pending", containers=[c], created=t(40), owners=owner("Job", "finetune-qwen-1"),
        conditions=[cond("PodScheduled", "False", t(40, 1), "Unschedulable", msg)])
dp_unready = plugin_pod("nvidia-device-plugin-daemonset-7k2lq", "gpu-node-1", ready=False)
write("gpu-health-pending-plugin-unready-allocatable-intact",
      "A Pending pod asking for 2 GPUs, 'Insufficient nvidia.com/gpu' on both GPU nodes. The device plugin on gpu-node-1 is Running but not Ready, yet gpu-node-1 still advertises 8 allocatable of capacity 8 (the plugin stays registered), all requested by a running job, as on gpu-node-2: the scheduler counts every GPU and the cluster is full. gpu_unschedulable is a root of its own, not a consequence of device_plugin_down, which is reported for the node on its own (a cluster bundle: every pod and node is diagnosed) and says the node still advertises its GPUs rather than that the kubelet cannot allocate them.",
      {"findings": [F("gpu_unschedulable", "high", summary_contains=["no node has 2 free nvidia.com/gpu"],
                      evidence_contains={"node gpu-node-1": "8 allocatable, 8 requested, 0 free",
                                         "node gpu-node-2": "8 allocatable, 8 requested, 0 free"},
                      caused_by=[]),
                    F("device_plugin_down", "high", node="gpu-node-1",
                      summary_contains=["not ready", "still advertises all 8 GPUs (allocatable 8 of capacity 8)"],
                      summary_excludes=["cannot allocate GPUs there"], caused_by=[])]},
      None, [sched_event(p, msg, t(44, 1), first=t(40, 1), count=9)], nodes=[cp, node("gpu-node-1", 8, 8), n2],
      pods=[p] + holders_on("gpu-node-1", "train-gemma", "tgw") + holders_on("gpu-node-2", "train-llama", "tlw")
      + [dp_unready, dp_up])

# ------------------------------------------------- Pending: the event cut short
# A shared cluster: 13 pairs of CPU nodes tainted for other teams, the
# control plane, and 3 GPU nodes with 6 of 8 GPUs requested each. The
# scheduler sorts its clauses as strings, so "3 Insufficient
# nvidia.com/gpu" comes last; the events API keeps 1 kB of an event's
# note (1021 bytes and "..."), which cuts that clause off the
# FailedScheduling event. The PodScheduled condition holds the whole text.
teams = [f"team-{n}" for n in ("audio", "biology", "chemistry", "databases", "economics", "forecasting", "genomics",
                               "hydrology", "imaging", "journalism", "kinetics", "linguistics", "materials")]
clauses = sorted(["1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"]
                 + [f"2 node(s) had untolerated taint {{workload.acme.io/dedicated-team: {tm}}}" for tm in teams]
                 + ["3 Insufficient nvidia.com/gpu"])
n_nodes = 1 + 2 * len(teams) + 3
whole = (f"0/{n_nodes} nodes are available: {', '.join(clauses)}. preemption: 0/{n_nodes} nodes are available: "
         f"3 No preemption victims found for incoming pod, {n_nodes - 3} Preemption is not helpful for scheduling.")
assert len(whole) > 1024
cut = whole[:1021] + "..."
assert "Insufficient nvidia.com/gpu" not in cut
c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=4, cpu="16", mem="128Gi")
p = pod("pretrain-mixtral-0-q8w7e", node=None, phase="Pending", containers=[c], created=t(30),
        owners=owner("Job", "pretrain-mixtral"), conditions=[cond("PodScheduled", "False", t(30, 1), "Unschedulable", whole)])
team_nodes = [node(f"cpu-{tm}-{i}", gpus=0, taints=[{"key": "workload.acme.io/dedicated-team", "value": tm,
                                                    "effect": "NoSchedule"}])
              for tm in teams for i in (1, 2)]
gpu_nodes = [node(f"gpu-node-{i}", 8, 8) for i in (1, 2, 3)]
holders = []
for i in (1, 2, 3):
    hc = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=6, cpu="16", mem="128Gi")
    holders.append(pod(f"train-phi-{i}", node=f"gpu-node-{i}", containers=[hc], created="2026-11-20T08:00:00Z",
                       start="2026-11-20T08:00:00Z", owners=owner("Job", f"train-phi-{i}"),
                       statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0", running("2026-11-20T08:00:20Z"),
                                         None, True, 0, True, cid_seed=f"phi{i}")]))
write("pod-pending-event-cut-short",
      "A Pending pod asking for 4 GPUs in a shared cluster of 30 nodes. The scheduler's message lists 14 taint clauses before '3 Insufficient nvidia.com/gpu' (it sorts its clauses as strings) and runs past the events API's 1 kB: the FailedScheduling event ends in '...' before the GPU clause, and its clauses account for 27 of the 30 nodes. The PodScheduled condition holds the same text whole. The engine reads the condition, which parses, and finds the real cause: no GPU node has 4 free GPUs (6 of 8 requested on each), not the taints of the other teams' nodes.",
      {"findings": [F("gpu_unschedulable", "high", summary_contains=["no node has 4 free nvidia.com/gpu"],
                      summary_excludes=["taint"],
                      evidence_contains={"source": "PodScheduled condition (the FailedScheduling event, 12 times",
                                         "node gpu-node-1": "8 allocatable, 6 requested, 2 free"},
                      caused_by=[])]},
      p, [sched_event(p, cut, t(44, 1), first=t(30, 1), count=12)], nodes=[cp] + team_nodes + gpu_nodes, pods=holders,
      meta=meta("ml", "pretrain-mixtral-0-q8w7e", t(45, 0)))

# ------------------------------------------------- one object, two files
# node.json and nodes.json both hold gpu-node-4 (the same UID): one node,
# so its GPUs are counted once in the per-node figures.
c = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=4, cpu="16", mem="128Gi")
msg = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
p = pod("eval-suite-0-p0o9i", node=None, phase="Pending", containers=[c], created=t(20), owners=owner("Job", "eval-suite"),
        conditions=[cond("PodScheduled", "False", t(20, 1), "Unschedulable", msg)])
n4 = node("gpu-node-4", 8, 8)
hc = container("trainer", "ghcr.io/acme/trainer:1.8.0", gpus=6, cpu="16", mem="128Gi")
holder_pod = pod("train-gemma-0", node="gpu-node-4", containers=[hc], created="2026-11-20T08:00:00Z",
                 start="2026-11-20T08:00:00Z", owners=owner("Job", "train-gemma"),
                 statuses=[cstatus("trainer", "ghcr.io/acme/trainer:1.8.0", running("2026-11-20T08:00:20Z"), None, True, 0,
                                   True, cid_seed="tg0")])
write("bundle-node-in-two-files",
      "The same node in node.json and nodes.json (one UID): it is one node. The pending pod asks for 4 GPUs; gpu-node-4 has 8, 6 requested, 2 free; counted twice it would read 16 allocatable and look like room.",
      {"findings": [F("gpu_unschedulable", "high", summary_contains=["no node has 4 free nvidia.com/gpu", "6 of the cluster's 8"],
                      evidence_contains={"node gpu-node-4": "8 allocatable, 6 requested, 2 free"}, caused_by=[])]},
      p, [sched_event(p, msg, t(24, 1), first=t(20, 1), count=5)], nodes=[n4], pods=[holder_pod],
      meta=meta("ml", "eval-suite-0-p0o9i", t(25, 0)))
with open(os.path.join(ROOT, "bundle-node-in-two-files", "bundle", "node.json"), "w") as f:
    json.dump(n4, f, indent=4)
    f.write("\n")


# ------------------------------------------------- sparse samples
# Samples scraped every 10 minutes (an exporter, not the agent's 1-30 s):
# 13 samples over two hours, all at 0 % with no process and 300 MiB used
# (the driver only). That is two idle hours, said with medium confidence
# (a burst of work between two samples would not show), with the
# sampling interval printed.
def idle_pod(name, started):
    c = container("notebook", "jupyter/pytorch-notebook:cuda12-2024-10-07", gpus=1, cpu="8", mem="64Gi")
    return pod(name, containers=[c], created=started, start=started, owners=owner("StatefulSet", name.rsplit("-", 1)[0]),
               statuses=[cstatus("notebook", "jupyter/pytorch-notebook:cuda12-2024-10-07", running(started), None, True, 0,
                                 True, cid_seed=name)])
p = idle_pod("nb-bob-0", t(0, h=7))
g = gpu_uuid("sparse-idle")
hs = [holder("ml", "nb-bob-0", "notebook", g)]
agent = [gpu_sample(f"2026-11-20T{8 + (m // 60):02d}:{m % 60:02d}:00.000Z", 0, g, util=0,
                    mem_used=300 * 1024 * 1024, power=68.0, holders=hs) for m in range(0, 121, 10)]
write("gpu-use-idle-sparse-samples",
      "A notebook's GPU sampled every 10 minutes (a metrics scrape): 13 samples over two hours, all 0 % with no process. Judged by the samples there are, that is two idle hours (2.0 GPU-hours), medium confidence because the samples are sparse, and the evidence prints the sampling interval; the sentence names the GPU by index and UUID. Judged by the agent's 120 s gap rule alone it read as nothing at all.",
      {"findings": [F("gpu_idle", "medium", container="notebook", gpu=g, summary_contains=["GPU 0 (" + g, "for 2h,", "2.0 GPU-hours"],
                      evidence_contains={"GPU " + g[:12]: "13 samples, about every 10m"}, caused_by=[])]},
      p, [], nodes=[node("gpu-node-1")], agent=agent, meta=meta("ml", "nb-bob-0", "2026-11-20T10:00:30Z"))

# Two samples a minute apart: too little to judge GPU use; said as a gap.
p = idle_pod("nb-carol-0", t(0, h=7))
g = gpu_uuid("too-few")
hs = [holder("ml", "nb-carol-0", "notebook", g)]
agent = [gpu_sample("2026-11-20T09:59:00.000Z", 0, g, util=0, mem_used=300 * 1024 * 1024, power=68.0, holders=hs),
         gpu_sample("2026-11-20T10:00:00.000Z", 0, g, util=0, mem_used=300 * 1024 * 1024, power=68.0, holders=hs)]
write("gpu-use-too-few-samples-gap",
      "Two GPU samples a minute apart of a pod that has held its GPU for three hours: nothing can be said about its GPU use, and the engine says so as a gpu_use gap instead of reading the silence as health.",
      {"findings": [], "gaps": ["gpu_use"]},
      p, [], nodes=[node("gpu-node-1")], agent=agent, meta=meta("ml", "nb-carol-0", "2026-11-20T10:00:30Z"))

# ------------------------------------------------- Pending: per-node figures
# 900Gi of memory asked; two worker nodes of ~997.6 GiB allocatable each
# already hold 256Gi and 200Gi of requests: neither has 900Gi free. The
# finding quotes the request as written and the per-node arithmetic.
c = container("embed", "ghcr.io/acme/embed:0.9", cpu="16", mem="900Gi")
msg = "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient memory. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
p = pod("embed-big-0-t5r4e", node=None, phase="Pending", containers=[c], created=t(50), owners=owner("Job", "embed-big"),
        conditions=[cond("PodScheduled", "False", t(50, 1), "Unschedulable", msg)])
cp = node("cp-1", gpus=0, labels={"node-role.kubernetes.io/control-plane": ""},
          taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
others = []
for nn, mem in (("worker-1", "256Gi"), ("worker-2", "200Gi")):
    oc = container("main", "ghcr.io/acme/etl:2.0", cpu="8", mem=mem)
    others.append(pod(f"etl-{nn}", node=nn, containers=[oc], created="2026-11-20T08:00:00Z", start="2026-11-20T08:00:00Z",
                      owners=owner("Job", f"etl-{nn}"),
                      statuses=[cstatus("main", "ghcr.io/acme/etl:2.0", running("2026-11-20T08:00:20Z"), None, True, 0, True,
                                        cid_seed=nn)]))
write("pod-pending-memory-per-node",
      "A pod asks for 900Gi of memory; the two worker nodes (997.6 GiB allocatable each) already hold 256Gi and 200Gi of requests, so neither has room. pending_resources quotes the request as the manifest writes it and gives, per node, the blocking resource's allocatable, requested and free.",
      {"findings": [F("pending_resources", "high", summary_contains=["2 lack memory", "memory 900Gi"],
                      evidence_contains={"node worker-1 memory": "allocatable 997.6 GiB, requested 256 GiB, free 741.6 GiB",
                                "node worker-2 memory": "allocatable 997.6 GiB, requested 200 GiB, free 797.6 GiB"},
                      caused_by=[])]},
      p, [sched_event(p, msg, t(54, 1), first=t(50, 1), count=5)], nodes=[cp, node("worker-1", gpus=0), node("worker-2", gpus=0)],
      pods=others, meta=meta("ml", "embed-big-0-t5r4e", t(55, 0)))

print("truth bundles written")
