import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *

def td(**k): return dt.timedelta(**k)
RUNC = lambda created, ready_at, cname: [cond("Initialized", "True", created), cond("Ready", "False", ready_at, "ContainersNotReady", f"containers with unready status: [{cname}]"),
                                         cond("ContainersReady", "False", ready_at, "ContainersNotReady", f"containers with unready status: [{cname}]"), cond("PodScheduled", "True", created)]

# ---------------------------------------------------------------------------
# 9. lightspeed-stack#226: args without an entrypoint -> StartError 128.
case = "public-lightspeed-226-starterror-args-only"
name = "lightspeed-core-85b57d9576-bdz6c"; ns = "llm"; nd = "gpu1"
img = "quay.io/lightspeed-core/lightspeed-stack:dev-20250708-8e24e8b"
ctr = container("lightspeed-core", img, gpu=0, mem="2Gi", cpu="1")
ctr["args"] = ["-c", "/app-config/lightspeed-stack.yaml"]
ctr["ports"] = [{"containerPort": 8080, "protocol": "TCP"}]
smsg = 'failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: exec: "-c": executable file not found in $PATH'
st = cstatus("lightspeed-core", img, {"waiting": {"reason": "RunContainerError", "message": smsg}},
             {"terminated": {"exitCode": 128, "reason": "StartError", "message": smsg, "startedAt": "1970-01-01T00:00:00Z", "finishedAt": "2025-07-11T09:12:44Z",
                             "containerID": "containerd://25280844c1537e7b26aaeedf32266e1ba73bea765992b35cb178e97a5fdca04f"}}, restarts=1, cidkey=name)
st["containerID"] = "containerd://25280844c1537e7b26aaeedf32266e1ba73bea765992b35cb178e97a5fdca04f"
st["imageID"] = "quay.io/lightspeed-core/lightspeed-stack@sha256:0a98cefa03c377018157fe601b19a3ce01a10fc020ff6095180372d5bd442dd5"
p = pod(name, ns, "2025-07-11T09:12:40Z", owner("ReplicaSet", "lightspeed-core-85b57d9576", "apps/v1"), [ctr], nd,
        pstatus("Running", RUNC("2025-07-11T09:12:40Z", "2025-07-11T09:12:40Z", "lightspeed-core"), [st], "2025-07-11T09:12:40Z"), restart="Always")
f = "spec.containers{lightspeed-core}"
ev = [event(p, "Scheduled", f"Successfully assigned {ns}/{name} to {nd}", "2025-07-11T09:12:40Z", typ="Normal", comp="default-scheduler"),
      event(p, "Pulled", f"Container image \"{img}\" already present on machine", "2025-07-11T09:12:41Z", "2025-07-11T09:12:50Z", 2, "Normal", host=nd, field=f),
      event(p, "Created", "Created container lightspeed-core", "2025-07-11T09:12:41Z", "2025-07-11T09:12:50Z", 2, "Normal", host=nd, field=f),
      event(p, "Failed", "Error: " + smsg, "2025-07-11T09:12:42Z", "2025-07-11T09:12:51Z", 2, host=nd, field=f)]
write(case, "The Deployment gives only args (-c /app-config/lightspeed-stack.yaml) and the image has no ENTRYPOINT, so runc tries to exec \"-c\": StartError, exit 128, RunContainerError. crash_loop (the container cannot start), high, quoting runc's 'executable file not found' and the args, so the missing command is visible.",
      [{"kind": "crash_loop", "confidence": "high", "container": "lightspeed-core", "summary_contains": ["executable file not found", "-c /app-config/lightspeed-stack.yaml"]}],
      {"pod.json": p, "events.json": elist(ev)})
readme(case, "`args` without `command`: runc execs the first argument.",
       ["lightspeed-core/lightspeed-stack#226, \"CMD in Dockerfile overrides execution when using Kubernetes args\" https://github.com/lightspeed-core/lightspeed-stack/issues/226"],
       ["From the thread's `kubectl describe`: container name, Container ID, Image, Image ID, Port 8080/TCP, `Args: -c /app-config/lightspeed-stack.yaml`, `State: Waiting, Reason: RunContainerError`, `Last State: Terminated, Reason: StartError`, the message `failed to create containerd task: ... exec: \"-c\": executable file not found in $PATH`, `Exit Code: 128`; the pod name, namespace `llm`, node `gpu1`."],
       ["The pod's JSON around those fields (owner, limits, conditions, times, restart count 1), the events' times and counts (the thread's `Events:` shows Scheduled and Pulled lines; Created and Failed are what the kubelet prints for a StartError)."],
       "runc's `exec: \"-c\": executable file not found in $PATH` with `args` and no `command` says the image's ENTRYPOINT is missing and the first arg is being run. Expected: `crash_loop`, high, whose summary quotes runc's reason and the container's args (`-c /app-config/lightspeed-stack.yaml`), so the fix (add `command`) is visible.")

# ---------------------------------------------------------------------------
# 10. OpenSandbox#1268: a script path typo -> exit 127.
case = "public-opensandbox-1268-exit127-script-not-found"
name = "code-interpreter-6c8d7f9b4-h5n2p"; ns = "sandbox"; nd = "worker-2"
img = "opensandbox/code-interpreter:v1.1.0"
ctr = container("code-interpreter", img, gpu=0, mem="4Gi", cpu="2", command=["/opensandbox/bootstrap.sh"])
ctr["env"] = [{"name": "ENTRYPOINT", "value": "/opt/opensandbox/code-interpreter.sh"}]
tl = T("2026-07-09T03:09:41Z")
p = pod(name, ns, "2026-07-09T03:01:50Z", owner("ReplicaSet", "code-interpreter-6c8d7f9b4", "apps/v1"), [ctr], nd,
        pstatus("Running", RUNC("2026-07-09T03:01:50Z", "2026-07-09T03:01:50Z", "code-interpreter"),
                [cstatus("code-interpreter", img, {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off 5m0s restarting failed container=code-interpreter pod={name}_{ns}({uid(name)})"}},
                         term(127, "Error", "2026-07-09T03:09:40Z", fmt(tl), name), restarts=6, cidkey=name)], "2026-07-09T03:01:50Z"), restart="Always")
f = "spec.containers{code-interpreter}"
ev = [event(p, "BackOff", "Back-off restarting failed container code-interpreter in pod " + f"{name}_{ns}({uid(name)})", "2026-07-09T03:02:10Z", "2026-07-09T03:12:02Z", 40, host=nd, field=f)]
log = """2026-07-09T03:01:57.228593303Z starting OpenSandbox Execd daemon at /opt/opensandbox/execd.
2026-07-09T03:01:57.229685805Z /opensandbox/bootstrap.sh: 233: /opt/opensandbox/code-interpreter.sh: not found
"""
write(case, "The bootstrap script execs /opt/opensandbox/code-interpreter.sh, which is not where the image keeps it (/opt/code-interpreter/code-interpreter.sh): sh prints 'not found' and exits 127, six times. crash_loop, high: exit 127 = command not found, quoting the missing path and the container's command.",
      [{"kind": "crash_loop", "confidence": "high", "container": "code-interpreter", "summary_contains": ["127", "/opt/opensandbox/code-interpreter.sh"]}],
      {"pod.json": p, "events.json": elist(ev), "logs/code-interpreter.log": log})
readme(case, "Exit 127: a path typo in the entrypoint.",
       ["opensandbox-group/OpenSandbox#1268, \"k8s运行时官网code-interpreter执行报错\" https://github.com/opensandbox-group/OpenSandbox/issues/1268"],
       ["The two log lines (`starting OpenSandbox Execd daemon at /opt/opensandbox/execd.` and `/opensandbox/bootstrap.sh: 233: /opt/opensandbox/code-interpreter.sh: not found`) with their timestamps; the image version v1.1.0; the fix named in the thread (the entrypoint is `/opt/code-interpreter/code-interpreter.sh`)."],
       ["Exit code 127 (what `sh` returns for a command not found); the pod object, the restart count and back-off event, how the entrypoint is passed (an `ENTRYPOINT` env var here)."],
       "`sh: ...: not found` and exit 127 are a command that does not exist at that path. Expected: `crash_loop`, high, summary giving 127 and the missing path; the command/args quoted so the typo is visible.")

# ---------------------------------------------------------------------------
# 11. llm-d-inference-sim#45: liveness probe on a path the server does not serve (404).
case = "public-llm-d-45-liveness-404-restarts"
name = "vllm-standalone-3b-vllm-llama-3-3b-instruct-57c8d4996c-qtr8b"; ns = "llm-d"; nd = "worker-1"
img = "ghcr.io/llm-d/llm-d-inference-sim:v0.1.1"
probe = {"livenessProbe": {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"}, "initialDelaySeconds": 15, "periodSeconds": 10, "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 1},
         "readinessProbe": {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"}, "periodSeconds": 5, "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 1}}
ctr = container("vllm-standalone-3b-vllm-llama-3-3b-instruct", img, gpu=0, mem="1Gi", cpu="1", probe=probe, command=["/app/llm-d-inference-sim", "--port", "8000", "--model", "meta-llama/Llama-3.2-3B-Instruct"])
cn = ctr["name"]
p = pod(name, ns, "2025-06-03T10:00:00Z", owner("ReplicaSet", "vllm-standalone-3b-vllm-llama-3-3b-instruct-57c8d4996c", "apps/v1"), [ctr], nd,
        pstatus("Running", RUNC("2025-06-03T10:00:00Z", "2025-06-03T10:00:00Z", cn),
                [cstatus(cn, img, {"running": {"startedAt": "2025-06-03T10:18:02Z"}}, term(2, "Error", "2025-06-03T10:15:10Z", "2025-06-03T10:15:52Z", name + "5"),
                         restarts=6, ready=False, started=True, cidkey=name + "6")], "2025-06-03T10:00:00Z"), restart="Always")
f = "spec.containers{" + cn + "}"
ev = [event(p, "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 404", "2025-06-03T10:00:35Z", "2025-06-03T10:18:32Z", 21, host=nd, field=f),
      event(p, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 404", "2025-06-03T10:00:10Z", "2025-06-03T10:18:40Z", 160, host=nd, field=f),
      event(p, "Killing", f"Container {cn} failed liveness probe, will be restarted", "2025-06-03T10:00:55Z", "2025-06-03T10:15:52Z", 6, "Normal", host=nd, field=f),
      event(p, "Pulling", f"Pulling image \"{img}\"", "2025-06-03T10:00:01Z", "2025-06-03T10:15:53Z", 7, "Normal", host=nd, field=f),
      event(p, "Started", f"Started container {cn}", "2025-06-03T10:00:05Z", "2025-06-03T10:18:02Z", 7, "Normal", host=nd, field=f)]
write(case, "The liveness probe asks /health, which this simulator answers with 404: every probe fails from the start and the kubelet restarts the container every ~50 s (6 restarts). probe_failing, high, with the 404: the path is wrong, the server is not slow.",
      [{"kind": "probe_failing", "confidence": "high", "container": cn, "summary_contains": ["404"], "summary_excludes": ["needs longer to start"]}],
      {"pod.json": p, "events.json": elist(ev)})
readme(case, "A liveness probe that can never pass (HTTP 404) restarts a healthy server.",
       ["llm-d/llm-d-inference-sim#45, \"Bug: Lack of 'Liveness Probe' is causing the `pod` to be considered `not ready` and results in multiple restarts\" https://github.com/llm-d/llm-d-inference-sim/issues/45"],
       ["Pod name, `0/1 Running 6 (118s ago) 20m`, the image `ghcr.io/llm-d/llm-d-inference-sim:v0.1.1`, the events `Liveness probe failed: HTTP probe failed with statuscode: 404` (x3 over the window shown) and `Container vllm-standalone-3b-vllm-llama-3-3b-instruct failed liveness probe, will be restarted`."],
       ["The probe's path and timing (`/health` on 8000), the readiness events, the counts over 20 minutes, the last exit (code 2, reason Error: the simulator's exit on SIGTERM is not in the thread), namespace, node, times."],
       "Every liveness probe gets 404 from a server that is up (it answers HTTP), so the probe's path is wrong; raising initialDelaySeconds would not help. Expected: `probe_failing`, high, quoting the 404. Added after the first run: `summary_excludes: [\"needs longer to start\"]`, because the engine's summary told the slow-start story for a server that answers 404; the case now counts that story as a confident wrong answer (a stricter expectation, not a weaker one).")

# ---------------------------------------------------------------------------
# 12. kserve#5062: liveness initialDelaySeconds 120 kills a large model still loading.
case = "public-kserve-5062-liveness-kills-vllm-load"
name = "llama-70b-predictor-5d9c8b7f6-z4t8k"; ns = "kserve"; nd = "gpu-node-3"
img = "vllm/vllm-openai:v0.8.5"; puid = uid(name)
probe = {"livenessProbe": {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"}, "initialDelaySeconds": 120, "periodSeconds": 10, "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 10},
         "readinessProbe": {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"}, "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 10}}
ctr = container("main", img, gpu=4, mem="320Gi", cpu="32", probe=probe, command=["vllm", "serve", "/mnt/models", "--tensor-parallel-size", "4", "--port", "8000"])
tk = T("2026-02-12T11:27:41Z")
p = pod(name, ns, "2026-02-12T11:09:00Z", owner("ReplicaSet", "llama-70b-predictor-5d9c8b7f6", "apps/v1"), [ctr], nd,
        pstatus("Running", RUNC("2026-02-12T11:09:00Z", "2026-02-12T11:09:00Z", "main"),
                [cstatus("main", img, {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off 2m40s restarting failed container=main pod={name}_{ns}({puid})"}},
                         term(137, "Error", "2026-02-12T11:24:49Z", fmt(tk), name + "3"), restarts=4, cidkey=name + "3")], "2026-02-12T11:09:00Z"), restart="Always")
f = "spec.containers{main}"
ev = [event(p, "Unhealthy", "Liveness probe failed: Get \"http://10.244.3.17:8000/health\": dial tcp 10.244.3.17:8000: connect: connection refused", "2026-02-12T11:11:10Z", "2026-02-12T11:27:11Z", 12, host=nd, field=f),
      event(p, "Unhealthy", "Readiness probe failed: Get \"http://10.244.3.17:8000/health\": dial tcp 10.244.3.17:8000: connect: connection refused", "2026-02-12T11:09:20Z", "2026-02-12T11:27:21Z", 60, host=nd, field=f),
      event(p, "Killing", "Container main failed liveness probe, will be restarted", "2026-02-12T11:11:11Z", "2026-02-12T11:27:11Z", 4, "Normal", host=nd, field=f),
      event(p, "BackOff", f"Back-off restarting failed container main in pod {name}_{ns}({puid})", "2026-02-12T11:16:00Z", "2026-02-12T11:29:40Z", 9, host=nd, field=f)]
log = """INFO 02-12 11:24:58 [__init__.py:239] Automatically detected platform cuda.
INFO 02-12 11:25:04 [api_server.py:1043] vLLM API server version 0.8.5
INFO 02-12 11:25:31 [config.py:717] This model supports multiple tasks: {'generate'}. Defaulting to 'generate'.
INFO 02-12 11:25:31 [config.py:1770] Defaulting to use mp for distributed inference
INFO 02-12 11:25:46 [loader.py:458] Loading weights took 0.00 seconds
Loading safetensors checkpoint shards:   0% Completed | 0/30 [00:00<?, ?it/s]
Loading safetensors checkpoint shards:  23% Completed | 7/30 [00:31<01:43,  4.50s/it]
Loading safetensors checkpoint shards:  47% Completed | 14/30 [01:04<01:13,  4.59s/it]
"""
ref = cref(puid, cid(name + "3"))
ag = sources(T("2026-02-12T11:00:00Z"))
t = T("2026-02-12T11:24:55Z")
while t < tk:
    frac = (t - T("2026-02-12T11:24:55Z")).total_seconds() / 166
    anon = int((4 + 60 * frac) * GiB)
    ag.append(csample(t, ref, anon + 40 * GiB, 320 * GiB, anon, 40 * GiB, cpu_us=int(frac * 3e8)))
    t += td(seconds=5)
write(case, "vLLM serving a 70B model on 4 GPUs: loading the 30 checkpoint shards takes over two minutes, but the liveness probe starts at 120 s and kills the container after three refused connections (exit 137 from SIGKILL after the grace period, not an OOM: the agent saw 104 GiB of 320Gi and no kill). The loop is the probe's doing. Chain: probe_failing (root: the server needs longer to start; a startupProbe fixes it) <- exit_137_not_oom <- crash_loop.",
      [{"kind": "probe_failing", "confidence": "high", "container": "main", "summary_contains": ["liveness"]},
       {"kind": "exit_137_not_oom", "confidence": "high", "container": "main"},
       {"kind": "crash_loop", "confidence": "high", "container": "main"}],
      {"pod.json": p, "events.json": elist(ev), "node.json": node(nd), "agent.jsonl": jsonl(ag), "logs/main.log": log})
readme(case, "A liveness probe's initialDelaySeconds shorter than the model's load time: CrashLoopBackOff <- 137 not OOM <- liveness.",
       ["kserve/kserve#5062, \"Add startupProbe to vLLM main containers and remove initialDelaySeconds from liveness/readiness probes\" https://github.com/kserve/kserve/issues/5062",
        "kserve/kserve#5063 (the fix: \"Large models that need longer than the initial delay get killed and enter CrashLoopBackOff\") https://github.com/kserve/kserve/pull/5063"],
       ["The mechanism and the probe settings: vLLM main containers with liveness `initialDelaySeconds: 120`; large models that need more than 120 s get killed and restarted by the liveness probe before they finish loading and enter CrashLoopBackOff; the fix is a startupProbe (`failureThreshold: 60`, `periodSeconds: 10`)."],
       ["Everything concrete: the 70B model on 4 GPUs, the pod, the kubelet's events (in the kubelet's usual wording), the vLLM log tail (in vLLM 0.8's format, not from the thread), exit 137, the agent's memory samples during the load."],
       "Probe events say the kubelet killed the container for failed liveness while the log shows the model still loading; exit 137 is the SIGKILL after the grace period, and the agent saw no OOM kill. The issue's mechanism 7 asks for one root cause with its consequences linked: `probe_failing` (root, high, says liveness), `exit_137_not_oom` (high) and `crash_loop` (high). This case expects the chain; with today's one-finding-per-failure rule only `probe_failing` would appear.")

# ---------------------------------------------------------------------------
# 13. luksa/kubernetes-in-action#22: a script without the exec bit -> exit 126.
case = "public-kia-22-exit126-script-not-executable"
name = "fortune"; ns = "default"; nd = "gke-kubia-default-pool-b46381f1-zwko"
img = "luksa/fortune"; puid = uid(name)
vol = [{"name": "html", "emptyDir": {}}]
gen = container("html-generator", img, gpu=0, mem="64Mi", cpu="100m", mounts=[{"mountPath": "/var/htdocs", "name": "html"}])
gen["resources"] = {}
web = container("web-server", "nginx:alpine", gpu=0, mem="64Mi", cpu="100m", mounts=[{"mountPath": "/usr/share/nginx/html", "name": "html", "readOnly": True}])
web["resources"] = {}; web["ports"] = [{"containerPort": 80, "protocol": "TCP"}]
tl = T("2020-03-12T10:14:31Z")
p = pod(name, ns, "2020-03-12T10:02:00Z", [], [gen, web], nd,
        pstatus("Running", [cond("Initialized", "True", "2020-03-12T10:02:00Z"), cond("Ready", "False", "2020-03-12T10:02:00Z", "ContainersNotReady", "containers with unready status: [html-generator]"),
                            cond("ContainersReady", "False", "2020-03-12T10:02:00Z", "ContainersNotReady", "containers with unready status: [html-generator]"), cond("PodScheduled", "True", "2020-03-12T10:02:00Z")],
                [cstatus("html-generator", img, {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off 5m0s restarting failed container=html-generator pod={name}_{ns}({puid})"}},
                         term(126, "Error", "2020-03-12T10:14:30Z", fmt(tl), name + "g"), restarts=7, cidkey=name + "g"),
                 cstatus("web-server", "nginx:alpine", {"running": {"startedAt": "2020-03-12T10:02:09Z"}}, restarts=0, ready=True, started=True, cidkey=name + "w")],
                "2020-03-12T10:02:00Z"), volumes=vol, restart="Always")
p["status"]["qosClass"] = "BestEffort"
f = "spec.containers{html-generator}"
ev = [event(p, "BackOff", f"Back-off restarting failed container html-generator in pod {name}_{ns}({puid})", "2020-03-12T10:02:40Z", "2020-03-12T10:16:02Z", 55, host=nd, field=f)]
write(case, "The image's ENTRYPOINT runs /bin/fortuneloop.sh through /bin/sh, and the script was added without the exec bit: '/bin/sh: 1: /bin/fortuneloop.sh: Permission denied', exit 126, 7 restarts; the pod's other container (nginx) runs. crash_loop for html-generator, high: 126 = found but not executable, naming the script.",
      [{"kind": "crash_loop", "confidence": "high", "container": "html-generator", "summary_contains": ["126", "/bin/fortuneloop.sh"]}],
      {"pod.json": p, "events.json": elist(ev), "logs/html-generator.log": "/bin/sh: 1: /bin/fortuneloop.sh: Permission denied\n"})
readme(case, "Exit 126: the entrypoint script is not executable.",
       ["luksa/kubernetes-in-action#22, \"Chapter 6 permission error with sh script\" https://github.com/luksa/kubernetes-in-action/issues/22",
        "luksa/kubernetes-in-action#15 (\"The script file is copied w/o 'x' perms\") https://github.com/luksa/kubernetes-in-action/pull/15"],
       ["The pod `fortune` with container `html-generator`, in CrashLoopBackOff on GKE; its log `/bin/sh: 1: /bin/fortuneloop.sh: Permission denied`; the Dockerfile's `ENTRYPOINT /bin/fortuneloop.sh` (shell form) and the fix `RUN chmod +x /bin/fortuneloop.sh`."],
       ["Exit code 126 (what `sh` returns for a file it cannot execute), the restart count, the second container `web-server` (nginx, as in the book's fortune pod) and the shared `html` emptyDir, node name, times, the back-off event."],
       "`Permission denied` from sh with exit 126: the command exists and is not executable. Expected: `crash_loop` for `html-generator`, high, summary giving 126 and the script's path (the command quoted so the cause is visible); the healthy `web-server` gives nothing.")
