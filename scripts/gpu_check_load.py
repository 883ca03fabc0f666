#!/usr/bin/env python3
"""The load of scripts/gpu-check: on GPU 0, a tensor of exactly ALLOC_BYTES
kept alive, and back-to-back fp16 matmuls into preallocated outputs (no
allocator churn, so the process's GPU memory stays constant). Prints
`ready <pid>` once the allocation is made and the load has warmed up, then
runs until killed or for at most MAX_SECONDS (so it never outlives a
crashed check).

usage: gpu_check_load.py [ALLOC_BYTES] [MAX_SECONDS]
"""
import os, sys, time

import torch

alloc_bytes = int(sys.argv[1]) if len(sys.argv) > 1 else 2 << 30
max_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 240.0

if not torch.cuda.is_available():
    sys.exit("gpu_check_load: PyTorch sees no CUDA device")
dev = torch.device("cuda", 0)
torch.cuda.set_device(dev)
keep = torch.empty(alloc_bytes, dtype=torch.uint8, device=dev)  # the known-size allocation
keep.fill_(1)
n = 8192
a = torch.randn(n, n, device=dev, dtype=torch.float16)
b = torch.randn(n, n, device=dev, dtype=torch.float16)
c = torch.empty(n, n, device=dev, dtype=torch.float16)
for _ in range(20):  # warm up: cuBLAS picks its kernels and workspace now
    torch.matmul(a, b, out=c)
torch.cuda.synchronize()
print(f"ready {os.getpid()}", flush=True)
end = time.monotonic() + max_seconds
while time.monotonic() < end:
    for _ in range(50):
        torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
del keep
