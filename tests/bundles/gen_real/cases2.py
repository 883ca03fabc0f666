import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen import *
RUN_CONDS = lambda at, ready: [cond("PodReadyToStartContainers", "True", "2026-11-20T08:00:02Z"), cond("Initialized", "True", "2026-11-20T08:00:00Z"),
      cond("Ready", "True" if ready else "False", at, None if ready else "ContainersNotReady", None if ready else "containers with unready status: [trainer]"),
      cond("ContainersReady", "True" if ready else "False", at, None if ready else "ContainersNotReady", None if ready else "containers with unready status: [trainer]"),
      cond("PodScheduled", "True", "2026-11-20T08:00:00Z")]

# 6. CUDA OOM crash loop
img = "registry.example.com/ml/sft:0.9.2"
name = "sft-qwen-7b-0-h2b9d"
p = pod(name, "ml", "2026-11-20T09:30:00Z", owner("Job", "sft-qwen-7b"),
        [container("trainer", img, mem="96Gi", command=["python", "sft.py", "--per-device-batch-size", "16"])], "gpu-node-3",
        pstatus("Running", RUN_CONDS("2026-11-20T10:20:11Z", False),
                [cstatus("trainer", img, {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off 5m0s restarting failed container=trainer pod={name}_ml({uid(name)})"}},
                         last=term(1, "Error", "2026-11-20T10:19:02Z", "2026-11-20T10:20:10Z", name + "6"), restarts=6, cidkey=name + "6")],
                "2026-11-20T09:30:00Z"), restart="OnFailure")
ev = [event(p, "BackOff", "Back-off restarting failed container trainer in pod " + f"{name}_ml({uid(name)})", "2026-11-20T09:34:40Z", "2026-11-20T10:24:55Z", 58, host="gpu-node-3", field="spec.containers{trainer}"),
      event(p, "Pulled", f"Container image \"{img}\" already present on machine", "2026-11-20T09:31:02Z", "2026-11-20T10:19:01Z", 7, "Normal", host="gpu-node-3", field="spec.containers{trainer}"),
      event(p, "Started", "Started container trainer", "2026-11-20T09:31:02Z", "2026-11-20T10:19:02Z", 7, "Normal", host="gpu-node-3", field="spec.containers{trainer}")]
log = """Loading checkpoint shards: 100%|##########| 4/4 [00:41<00:00, 10.32s/it]
  0%|          | 0/3125 [00:00<?, ?it/s]Traceback (most recent call last):
  File "/app/sft.py", line 188, in <module>
    trainer.train()
  File "/usr/local/lib/python3.11/site-packages/transformers/trainer.py", line 2052, in train
    return inner_training_loop(
  File "/usr/local/lib/python3.11/site-packages/torch/nn/functional.py", line 3104, in cross_entropy
    return torch._C._nn.cross_entropy_loss(input, target, weight, _Reduction.get_enum(reduction), ignore_index, label_smoothing)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 12.81 MiB is free. Process 2817 has 79.17 GiB memory in use. Of the allocated memory 77.52 GiB is allocated by PyTorch, and 1.02 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)
  0%|          | 0/3125 [00:03<?, ?it/s]
"""
write("real-cuda-oom-crash-loop",
      "SFT with per-device batch 16 runs out of GPU memory on the first step, every restart (exit 1, CrashLoopBackOff, 6 restarts). The log tail is PyTorch's own torch.OutOfMemoryError: cuda_oom, high, is the root cause. The crash loop is kept as its consequence, linked to it (caused_by).",
      [{"kind": "cuda_oom", "confidence": "high", "container": "trainer",
        "summary_contains": ["tried to allocate 20.00 MiB", "with 12.81 MiB free", "exited with code 1",
                             "not the container's memory limit"],
        "evidence_names": ["log line"],
        "evidence_contains": {"exit code": "1 (Error)", "restarts": "6"}},
       {"kind": "crash_loop", "confidence": "high", "container": "trainer",
        "summary_contains": ["CrashLoopBackOff", "6 restarts"],
        "caused_by": ["cuda_oom"]}],
      {"pod.json": p, "events.json": elist(ev), "node.json": node("gpu-node-3"), "logs/trainer.log": log})

# 7. Init container (model download) crash loop
img = "vllm/vllm-openai:v0.6.4"
name = "vllm-llama3-70b-5d8c7b9f4-ztq6w"
init = {"name": "fetch-model", "image": "amazon/aws-cli:2.17.0", "imagePullPolicy": "IfNotPresent",
        "command": ["aws", "s3", "sync", "s3://acme-ml-models/llama-3-70b-instruct/", "/models/llama-3-70b-instruct/"],
        "resources": {"limits": {"cpu": "2", "memory": "4Gi"}, "requests": {"cpu": "2", "memory": "4Gi"}},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        "volumeMounts": [{"mountPath": "/models", "name": "models"}, SA_MOUNT]}
vols = [{"name": "models", "emptyDir": {"sizeLimit": "200Gi"}}]
p = pod(name, "serving", "2026-11-20T09:50:00Z", owner("ReplicaSet", "vllm-llama3-70b-5d8c7b9f4", "apps/v1"),
        [container("vllm", img, gpu=4, mem="256Gi", cpu="32", mounts=[{"mountPath": "/models", "name": "models"}],
                   command=["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "/models/llama-3-70b-instruct", "--tensor-parallel-size", "4"])],
        "gpu-node-5",
        pstatus("Pending", [cond("PodReadyToStartContainers", "True", "2026-11-20T09:50:03Z"),
                            cond("Initialized", "False", "2026-11-20T09:50:00Z", "ContainersNotInitialized", "containers with incomplete status: [fetch-model]"),
                            cond("Ready", "False", "2026-11-20T09:50:00Z", "ContainersNotReady", "containers with unready status: [vllm]"),
                            cond("ContainersReady", "False", "2026-11-20T09:50:00Z", "ContainersNotReady", "containers with unready status: [vllm]"),
                            cond("PodScheduled", "True", "2026-11-20T09:50:00Z")],
                [cstatus("vllm", img, {"waiting": {"reason": "PodInitializing"}})], "2026-11-20T09:50:00Z",
                init=[cstatus("fetch-model", "amazon/aws-cli:2.17.0", {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off 2m40s restarting failed container=fetch-model pod={name}_serving({uid(name)})"}},
                              last=term(1, "Error", "2026-11-20T09:56:20Z", "2026-11-20T09:56:23Z", name + "i4"), restarts=4, cidkey=name + "i4")]),
        init=[init], volumes=vols, restart="Always")
ev = [event(p, "Scheduled", f"Successfully assigned serving/{name} to gpu-node-5", "2026-11-20T09:50:00Z", typ="Normal", comp="default-scheduler"),
      event(p, "Started", "Started container fetch-model", "2026-11-20T09:50:03Z", "2026-11-20T09:56:20Z", 5, "Normal", host="gpu-node-5", field="spec.initContainers{fetch-model}"),
      event(p, "BackOff", f"Back-off restarting failed container fetch-model in pod {name}_serving({uid(name)})", "2026-11-20T09:50:08Z", "2026-11-20T09:58:10Z", 21, host="gpu-node-5", field="spec.initContainers{fetch-model}")]
log = "fatal error: An error occurred (AccessDenied) when calling the ListObjectsV2 operation: User: arn:aws:sts::123456789012:assumed-role/eks-gpu-node-role/i-0a1b2c3d4e5f67890 is not authorized to perform: s3:ListBucket on resource: \"arn:aws:s3:::acme-ml-models\" because no identity-based policy allows the s3:ListBucket action\n"
write("real-init-model-download-crash-loop",
      "The fetch-model init container cannot list the model bucket (the pod runs with the node role, not an IRSA role) and exits 1 every time: Init:CrashLoopBackOff, the vLLM container never starts. crash_loop for fetch-model, high (status + back-off events + the log's AccessDenied); nothing for vllm, which only waits on it.",
      [{"kind": "crash_loop", "confidence": "high", "container": "fetch-model",
        "summary_contains": ["CrashLoopBackOff after 4 restarts", "exited with code 1"],
        "evidence_contains": {"back-off events": "21", "last log line": "(AccessDenied)"}}],
      {"pod.json": p, "events.json": elist(ev), "node.json": node("gpu-node-5"), "logs/fetch-model.log": log})

# 8. Multi-Attach of an RWO EBS volume after the old node died
name = "trainer-0"; pv = "pvc-7d0b5c7e-4e0a-4f51-9a8e-3b1f0c2d9e61"
img = "registry.example.com/ml/llm-train:2.4.1-cu124"
vols = [{"name": "checkpoints", "persistentVolumeClaim": {"claimName": "checkpoints-trainer-0"}}]
p = pod(name, "ml", "2026-11-20T09:52:10Z", owner("StatefulSet", "trainer", "apps/v1"),
        [container("trainer", img, mounts=[{"mountPath": "/checkpoints", "name": "checkpoints"}], command=["python", "train.py", "--resume"])], "gpu-node-5",
        pstatus("Pending", [cond("PodReadyToStartContainers", "False", "2026-11-20T09:52:10Z"), cond("Initialized", "True", "2026-11-20T09:52:10Z"),
                            cond("Ready", "False", "2026-11-20T09:52:10Z", "ContainersNotReady", "containers with unready status: [trainer]"),
                            cond("ContainersReady", "False", "2026-11-20T09:52:10Z", "ContainersNotReady", "containers with unready status: [trainer]"),
                            cond("PodScheduled", "True", "2026-11-20T09:52:10Z")],
                [cstatus("trainer", img, {"waiting": {"reason": "ContainerCreating"}})], "2026-11-20T09:52:10Z"),
        volumes=vols, restart="Always")
ev = [event(p, "Scheduled", f"Successfully assigned ml/{name} to gpu-node-5", "2026-11-20T09:52:10Z", typ="Normal", comp="default-scheduler"),
      event(p, "FailedAttachVolume", f"Multi-Attach error for volume \"{pv}\" Volume is already exclusively attached to one node and can't be attached to another", "2026-11-20T09:52:10Z", comp="attachdetach-controller"),
      event(p, "FailedMount", "Unable to attach or mount volumes: unmounted volumes=[checkpoints], unattached volumes=[checkpoints kube-api-access-9fx2m], failed to process volumes=[]: timed out waiting for the condition", "2026-11-20T09:54:13Z", "2026-11-20T10:14:42Z", 10, host="gpu-node-5")]
pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
       "metadata": {"name": "checkpoints-trainer-0", "namespace": "ml", "uid": pv[4:], "resourceVersion": "771203", "creationTimestamp": "2026-11-02T12:00:00Z",
                    "labels": {"app": "trainer"}, "annotations": {"pv.kubernetes.io/bind-completed": "yes", "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com"}},
       "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Ti"}}, "storageClassName": "gp3", "volumeMode": "Filesystem", "volumeName": pv},
       "status": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "2Ti"}, "phase": "Bound"}}
write("real-mount-multi-attach-rwo",
      "StatefulSet pod rescheduled from a node that went NotReady; its ReadWriteOnce EBS volume is still attached there, so the attach/detach controller refuses to attach it to gpu-node-5 (Multi-Attach error) and the kubelet times out. mount_failed, high, naming the volume; the PVC itself is Bound, so no pending_pvc.",
      [{"kind": "mount_failed", "confidence": "high", "summary_contains": [pv]}],
      {"pod.json": p, "events.json": elist(ev), "node.json": node("gpu-node-5"), "pvcs.json": {"apiVersion": "v1", "items": [pvc], "kind": "List", "metadata": {"resourceVersion": ""}}})

# 9. CreateContainerError: containerd snapshot missing
name = "eval-harness-7xw2p"; img = "registry.example.com/ml/eval:1.4.0"
emsg = "failed to create containerd container: failed to create prepare snapshot dir: stat /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/4127: no such file or directory"
p = pod(name, "ml", "2026-11-20T09:40:00Z", owner("Job", "eval-harness"),
        [container("eval", img, command=["python", "-m", "lm_eval"])], "gpu-node-8",
        pstatus("Pending", [cond("PodReadyToStartContainers", "True", "2026-11-20T09:40:03Z"), cond("Initialized", "True", "2026-11-20T09:40:00Z"),
                            cond("Ready", "False", "2026-11-20T09:40:00Z", "ContainersNotReady", "containers with unready status: [eval]"),
                            cond("ContainersReady", "False", "2026-11-20T09:40:00Z", "ContainersNotReady", "containers with unready status: [eval]"),
                            cond("PodScheduled", "True", "2026-11-20T09:40:00Z")],
                [cstatus("eval", img, {"waiting": {"reason": "CreateContainerError", "message": emsg}})], "2026-11-20T09:40:00Z"), restart="Never")
ev = [event(p, "Scheduled", f"Successfully assigned ml/{name} to gpu-node-8", "2026-11-20T09:40:00Z", typ="Normal", comp="default-scheduler"),
      event(p, "Pulled", f"Container image \"{img}\" already present on machine", "2026-11-20T09:40:03Z", "2026-11-20T10:05:40Z", 112, "Normal", host="gpu-node-8", field="spec.containers{eval}"),
      event(p, "Failed", "Error: " + emsg, "2026-11-20T09:40:03Z", "2026-11-20T10:05:40Z", 112, host="gpu-node-8", field="spec.containers{eval}")]
write("real-create-container-error-snapshot-missing",
      "containerd's overlayfs snapshot of the image is gone on gpu-node-8 (a disk cleanup or a crash mid-unpack corrupted its metadata): every create fails with 'failed to prepare snapshot dir ... no such file or directory'. No kind covers a broken runtime store; the honest answer is the low-confidence finding that quotes the runtime's own words so the reader sees the node-side cause.",
      [{"kind": "insufficient_evidence", "confidence": "low", "container": "eval", "summary_contains": ["no such file or directory"]}],
      {"pod.json": p, "events.json": elist(ev), "node.json": node("gpu-node-8")})
