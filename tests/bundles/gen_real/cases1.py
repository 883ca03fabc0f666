import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen import *

# 1. NGC tag that does not exist (CRI-O node: containers/image wording)
img = "nvcr.io/nvidia/pytorch:24.13-py3"
p = pod("finetune-bert-5k8wq", "ml", "2026-11-20T10:02:00Z", owner("Job", "finetune-bert"),
        [container("trainer", img, command=["python", "train.py"])], "gpu-node-2",
        pstatus("Pending", [cond("PodReadyToStartContainers", "True", "2026-11-20T10:02:02Z"), cond("Initialized", "True", "2026-11-20T10:02:00Z"),
                            cond("Ready", "False", "2026-11-20T10:02:00Z", "ContainersNotReady", "containers with unready status: [trainer]"),
                            cond("ContainersReady", "False", "2026-11-20T10:02:00Z", "ContainersNotReady", "containers with unready status: [trainer]"),
                            cond("PodScheduled", "True", "2026-11-20T10:02:00Z")],
                [cstatus("trainer", img, {"waiting": {"reason": "ImagePullBackOff", "message": f"Back-off pulling image \"{img}\""}})],
                "2026-11-20T10:02:00Z", init=None), restart="OnFailure")
f = "spec.containers{trainer}"
ev = [event(p, "Scheduled", "Successfully assigned ml/finetune-bert-5k8wq to gpu-node-2", "2026-11-20T10:02:00Z", typ="Normal", comp="default-scheduler"),
      event(p, "Pulling", f"Pulling image \"{img}\"", "2026-11-20T10:02:03Z", "2026-11-20T10:08:51Z", 6, "Normal", host="gpu-node-2", field=f),
      event(p, "Failed", f"Failed to pull image \"{img}\": rpc error: code = Unknown desc = reading manifest 24.13-py3 in nvcr.io/nvidia/pytorch: manifest unknown: manifest unknown", "2026-11-20T10:02:04Z", "2026-11-20T10:08:52Z", 6, host="gpu-node-2", field=f),
      event(p, "Failed", "Error: ErrImagePull", "2026-11-20T10:02:04Z", "2026-11-20T10:08:52Z", 6, host="gpu-node-2", field=f),
      event(p, "BackOff", f"Back-off pulling image \"{img}\"", "2026-11-20T10:02:05Z", "2026-11-20T10:11:30Z", 41, "Normal", host="gpu-node-2", field=f),
      event(p, "Failed", "Error: ImagePullBackOff", "2026-11-20T10:02:05Z", "2026-11-20T10:11:30Z", 41, host="gpu-node-2", field=f)]
write("real-image-pull-ngc-manifest-unknown",
      "NGC has no pytorch 24.13 (release months run 01-12): CRI-O (containers/image) says 'reading manifest 24.13-py3 in nvcr.io/nvidia/pytorch: manifest unknown'. The repository answered and the tag is missing: image_pull, not found, high (nvcr.io is not Docker Hub's ambiguous 'pull access denied').",
      [{"kind": "image_pull", "confidence": "high", "container": "trainer", "summary_contains": ["24.13-py3"]}],
      {"pod.json": p, "events.json": elist(ev), "nodes.json": node("gpu-node-2", runtime="cri-o://1.30.4")})

# 2. ECR without credentials
img = "123456789012.dkr.ecr.us-west-2.amazonaws.com/ml-platform/trainer:2.3.0"
p = pod("train-resnet-x8r2m", "ml", "2026-11-20T10:02:00Z", owner("Job", "train-resnet"),
        [container("trainer", img, command=["python", "train.py"])], "gpu-node-1",
        pstatus("Pending", [cond("Initialized", "True", "2026-11-20T10:02:00Z"),
                            cond("Ready", "False", "2026-11-20T10:02:00Z", "ContainersNotReady", "containers with unready status: [trainer]"),
                            cond("PodScheduled", "True", "2026-11-20T10:02:00Z")],
                [cstatus("trainer", img, {"waiting": {"reason": "ImagePullBackOff", "message": f"Back-off pulling image \"{img}\""}})],
                "2026-11-20T10:02:00Z"), restart="OnFailure")
msg = (f"Failed to pull image \"{img}\": rpc error: code = Unknown desc = failed to pull and unpack image \"{img}\": "
       f"failed to resolve reference \"{img}\": pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials")
ev = [event(p, "Scheduled", "Successfully assigned ml/train-resnet-x8r2m to gpu-node-1", "2026-11-20T10:02:00Z", typ="Normal", comp="default-scheduler"),
      event(p, "Pulling", f"Pulling image \"{img}\"", "2026-11-20T10:02:03Z", "2026-11-20T10:07:40Z", 5, "Normal", host="gpu-node-1", field="spec.containers{trainer}"),
      event(p, "Failed", msg, "2026-11-20T10:02:03Z", "2026-11-20T10:07:40Z", 5, host="gpu-node-1", field="spec.containers{trainer}"),
      event(p, "Failed", "Error: ErrImagePull", "2026-11-20T10:02:03Z", "2026-11-20T10:07:40Z", 5, host="gpu-node-1", field="spec.containers{trainer}"),
      event(p, "BackOff", f"Back-off pulling image \"{img}\"", "2026-11-20T10:02:04Z", "2026-11-20T10:10:12Z", 34, "Normal", host="gpu-node-1", field="spec.containers{trainer}"),
      event(p, "Failed", "Error: ImagePullBackOff", "2026-11-20T10:02:04Z", "2026-11-20T10:10:12Z", 34, host="gpu-node-1", field="spec.containers{trainer}")]
write("real-image-pull-ecr-no-credentials",
      "Private ECR image, and the node sent no credentials (the kubelet's ECR credential provider is not configured or the node role lacks ecr:GetAuthorizationToken): containerd says 'pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials'. The trailing reason settles Docker Hub's ambiguity: this is authorization, high.",
      [{"kind": "image_pull", "confidence": "high", "container": "trainer", "summary_contains": ["credentials"]}],
      {"pod.json": p, "events.json": elist(ev), "nodes.json": node("gpu-node-1")})

# 3. Pending: GPU shortage + selector, preemption not helpful
msg = ("0/12 nodes are available: 4 Insufficient nvidia.com/gpu, 8 node(s) didn't match Pod's node affinity/selector. "
       "preemption: 0/12 nodes are available: 4 No preemption victims found for incoming pod, 8 Preemption is not helpful for scheduling.")
p = pod("pretrain-70b-worker-3", "ml", "2026-11-20T09:15:00Z", owner("PyTorchJob", "pretrain-70b", "kubeflow.org/v1"),
        [container("pytorch", "nvcr.io/nvidia/pytorch:24.10-py3", gpu=8, mem="1500Gi", cpu="180", command=["torchrun", "train.py"])], None,
        {"conditions": [cond("PodScheduled", "False", "2026-11-20T09:15:00Z", "Unschedulable", msg)], "phase": "Pending", "qosClass": "Guaranteed"},
        selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, restart="OnFailure")
ev = [event(p, "FailedScheduling", msg, "2026-11-20T09:15:00Z", "2026-11-20T10:14:31Z", 48, comp="default-scheduler")]
write("real-pending-gpu-insufficient-preemption",
      "8-GPU worker pinned to H100 nodes: the 4 H100 nodes are full, the other 8 do not match the selector, and preemption cannot help (no lower-priority victims). The GPU shortage is the cause (the selector only narrows the pool): one gpu_unschedulable from the scheduler's message, no pending_affinity beside it. Medium, not high as first written: the bundle has no node list, and this kind's answer (where GPUs are free, who holds them, why the pod does not fit there) is exactly the piece missing - the doc's definition of medium.",
      [{"kind": "gpu_unschedulable", "confidence": "medium", "summary_contains": ["nvidia.com/gpu", "node list"]}],
      {"pod.json": p, "events.json": elist(ev)})

# 4. Eviction for ephemeral-storage
emsg = "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 2Gi. Container trainer was using 45Gi, request is 0, has larger consumption of ephemeral-storage. "
img = "registry.example.com/ml/llm-train:2.4.1-cu124"
p = pod("train-mistral-0-q9z7t", "ml", "2026-11-20T07:58:00Z", owner("Job", "train-mistral"),
        [container("trainer", img, command=["python", "train.py"])], "gpu-node-4",
        pstatus("Failed", [cond("DisruptionTarget", "True", "2026-11-20T09:41:12Z", "TerminationByKubelet", emsg),
                           cond("PodReadyToStartContainers", "False", "2026-11-20T09:41:15Z"),
                           cond("Initialized", "True", "2026-11-20T07:58:00Z"),
                           cond("Ready", "False", "2026-11-20T09:41:15Z", "PodFailed"),
                           cond("ContainersReady", "False", "2026-11-20T09:41:15Z", "PodFailed"),
                           cond("PodScheduled", "True", "2026-11-20T07:58:00Z")],
                [cstatus("trainer", img, term(137, "Error", "2026-11-20T07:58:31Z", "2026-11-20T09:41:14Z", "evict"), cidkey="evict")],
                "2026-11-20T07:58:00Z", reason="Evicted", msg=emsg), restart="Never")
ev = [event(p, "Evicted", emsg, "2026-11-20T09:41:12Z", host="gpu-node-4"),
      event(p, "Killing", "Stopping container trainer", "2026-11-20T09:41:12Z", typ="Normal", host="gpu-node-4", field="spec.containers{trainer}")]
n = node("gpu-node-4", heartbeat="2026-11-20T09:45:00Z", conds={"DiskPressure": {"status": "True", "reason": "KubeletHasDiskPressure", "message": "kubelet has disk pressure", "lastTransitionTime": "2026-11-20T09:40:55Z"}})
n["spec"]["taints"] = [{"effect": "NoSchedule", "key": "node.kubernetes.io/disk-pressure", "timeAdded": "2026-11-20T09:40:55Z"}]
write("real-evicted-ephemeral-storage",
      "The trainer wrote 45Gi of checkpoints to its writable layer (no emptyDir, no ephemeral-storage request); the node's nodefs fell under the 10Gi hard threshold and the kubelet evicted the pod with the biggest consumer. evicted (disk, not memory), high; the container's exit 137 is that eviction, not an OOM and not an unexplained SIGKILL. The failed pod is kept as the consequence of the eviction.",
      [{"kind": "evicted", "confidence": "high", "container": "trainer", "summary_contains": ["ephemeral-storage", "45Gi"]},
       {"kind": "container_failed", "confidence": "high", "container": "trainer", "summary_contains": ["code 137"], "caused_by": ["evicted"]}],
      {"pod.json": p, "events.json": elist(ev), "node.json": n})

# 5. DDP rank crash: illegal memory access + XID 31
img = "nvcr.io/nvidia/pytorch:24.10-py3"
gpu = "GPU-7f3c2a91-5be4-8c1d-20e6-4d9a0b7c1e55"
name = "train-llama-worker-1"
p = pod(name, "ml", "2026-11-20T08:00:00Z", owner("PyTorchJob", "train-llama", "kubeflow.org/v1"),
        [container("pytorch", img, gpu=1, mem="120Gi", command=["torchrun", "--nnodes=4", "--nproc-per-node=1", "train.py"])], "gpu-node-6",
        pstatus("Failed", [cond("PodReadyToStartContainers", "False", "2026-11-20T10:32:20Z"), cond("Initialized", "True", "2026-11-20T08:00:00Z"),
                           cond("Ready", "False", "2026-11-20T10:32:19Z", "PodFailed"), cond("ContainersReady", "False", "2026-11-20T10:32:19Z", "PodFailed"),
                           cond("PodScheduled", "True", "2026-11-20T08:00:00Z")],
                [cstatus("pytorch", img, term(1, "Error", "2026-11-20T08:00:41Z", "2026-11-20T10:32:18Z", name), cidkey=name)],
                "2026-11-20T08:00:00Z"), restart="Never")
holder = [{"namespace": "ml", "pod": name, "container": "pytorch", "resource_name": "nvidia.com/gpu", "device_id": gpu, "replica": None}]
agent = [{"kind": "source", "time": "2026-11-20T08:00:00.000Z", "source": "kmsg", "state": "ok", "reason": None},
         {"kind": "xid", "time": "2026-11-20T10:32:17.204Z", "gpu_uuid": gpu, "gpu_index": 2, "xid": 31, "count": 1, "holders": holder, "simulated": False}]
log = """[rank1]:[E1120 10:32:17.611482000 ProcessGroupNCCL.cpp:1595] [PG ID 0 PG GUID 0(default_pg) Rank 1] Process group watchdog thread terminated with exception: CUDA error: an illegal memory access was encountered
[rank1]: CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.
[rank1]: For debugging consider passing CUDA_LAUNCH_BLOCKING=1
[rank1]: Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.
[rank1]: Traceback (most recent call last):
[rank1]:   File "/workspace/train.py", line 241, in <module>
[rank1]:     main()
[rank1]:   File "/workspace/train.py", line 212, in main
[rank1]:     loss.backward()
[rank1]:   File "/usr/local/lib/python3.10/dist-packages/torch/_tensor.py", line 581, in backward
[rank1]:     torch.autograd.backward(
[rank1]: RuntimeError: CUDA error: an illegal memory access was encountered
[rank1]: CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.
[rank1]: For debugging consider passing CUDA_LAUNCH_BLOCKING=1
E1120 10:32:18.114000 1 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: 1) local_rank: 0 (pid: 57) of binary: /usr/bin/python
Traceback (most recent call last):
  File "/usr/local/bin/torchrun", line 8, in <module>
    sys.exit(main())
torch.distributed.elastic.multiprocessing.errors.ChildFailedError: 
============================================================
train.py FAILED
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-20_10:32:18
  host      : train-llama-worker-1
  rank      : 1 (local_rank: 0)
  exitcode  : 1 (pid: 57)
============================================================
"""
write("real-ddp-illegal-memory-access-xid31",
      "A DDP rank died with 'CUDA error: an illegal memory access was encountered' (exit 1), and the driver logged XID 31 (MMU fault) on its GPU a second before: the program touched memory it did not own - an application (or kernel/library) bug, the GPU is healthy. One finding: gpu_xid with the application meaning, high. The NCCL watchdog line only relays the CUDA error, so no nccl_error; the exit is explained, so no crash_loop. The rank's pod failed once (restartPolicy Never): container_failed, caused by the XID 31.",
      [{"kind": "gpu_xid", "confidence": "high", "container": "pytorch", "gpu": gpu, "summary_contains": ["XID 31"], "caused_by": []},
       {"kind": "container_failed", "confidence": "high", "container": "pytorch", "summary_contains": ["code 1"], "caused_by": ["gpu_xid"]}],
      {"pod.json": p, "events.json": elist([]), "node.json": node("gpu-node-6"), "agent.jsonl": jsonl(agent), "logs/pytorch.log": log})
