#!/usr/bin/env bash
# Resident memory and CPU of `gpuscope-agent watch -o jsonl` with 0, 1 and
# 8 GPUs, 8 GPUs without the NVLink reads (`--no-gpu-nvlink`), 8 without
# any health counters (`--no-gpu-health`) and 8 without the stuck-task
# scans (`--stuck-scan-interval 0`), and 200 containers, each configuration
# run in turn for DURATION seconds
# (default 120; VmRSS and VmHWM printed every 30 s; CPU is the process's
# utime + stime over the run, in % of one core). The GPUs are gpuscope's
# fake NVML (tests/fake-nvml) with a generated scenario: per GPU three
# compute processes (real `sleep` processes inside three of the 200
# containers, so /proc attribution resolves them; one of the three comes and
# goes), 18 NVLink links (an H100 SXM's) whose replay and CRC counters rise
# on two links, and a series that changes every 2 s. 0 GPUs is `--no-gpu`.
# PodResources points at a missing socket (reported unavailable, as on a
# node without a kubelet). 200 cgroup v1 memory cgroups at kubelet paths
# (plus cpuacct and unified twins) are created and removed, as in rss.sh.
# Every other container runs one `sleep` too, so that each of the 200 has
# a task for the stuck-task scan to read: all 200 are idle, so all are
# "flat" and scanned every 10 s, the scan's worst case.
# Goal: flat in GPU count (8 GPUs at most 512 kB above 1 GPU, i.e. < 64 kB
# per GPU) and VmRSS <= 16 MiB in every configuration; the health reads,
# and the stuck-task scans, each add at most 10 % to the agent's CPU with
# 8 GPUs (the NVLink reads are measured on their own too: 8 GPUs with them
# against 8 without, the same run).
#
#   cargo build --release -p gpuscope-agent -p gpuscope-fake-nvml
#   benches/gpu_rss.sh [DURATION]                       (needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-120}
agent=target/release/gpuscope-agent
lib=$PWD/target/release/libgpuscope_fake_nvml.so
[ -x "$agent" ] && [ -f "$lib" ] || {
    echo "build first: cargo build --release -p gpuscope-agent -p gpuscope-fake-nvml" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || { echo "needs root (creates cgroups)" >&2; exit 1; }
mem=/sys/fs/cgroup/memory cpu=/sys/fs/cgroup/cpuacct uni=/sys/fs/cgroup/unified
[ -d $mem ] || { echo "needs the cgroup v1 memory hierarchy at $mem" >&2; exit 1; }
tmp=$(mktemp -d)
pod=$(printf 'b3a5e7c1-0000-4000-8000-%012x' $$)
dirs=() ids=() sleepers=()
for i in $(seq 1 200); do
    id=$(printf '%064x' $((0xcafe0000 + i)))
    ids+=("$id")
    for r in $mem $cpu $uni; do
        [ -d $r ] || continue
        d=$r/kubepods/burstable/pod$pod/$id
        mkdir -p "$d"; dirs+=("$d")
    done
done
cleanup() {
    kill ${agent_pid:-} 2>/dev/null || true
    for p in "${sleepers[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for d in "${dirs[@]}"; do rmdir "$d" 2>/dev/null || true; done
    for r in $mem $cpu $uni; do
        rmdir $r/kubepods/burstable/pod$pod $r/kubepods/burstable $r/kubepods 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
# 24 GPU processes (3 per GPU, 8 GPUs), each in its own container (every
# 8th one), in the memory cgroup the agent attributes by.
for k in $(seq 0 23); do
    sleep infinity &
    p=$!
    sleepers+=("$p")
    echo "$p" > "$mem/kubepods/burstable/pod$pod/${ids[$((k * 8))]}/cgroup.procs"
done
# One task in each of the other containers (not GPU processes).
for k in $(seq 0 199); do
    [ $((k % 8)) = 0 ] && [ $k -lt 192 ] && continue
    sleep infinity &
    p=$!
    sleepers+=("$p")
    echo "$p" > "$mem/kubepods/burstable/pod$pod/${ids[$k]}/cgroup.procs"
done

# scenario N: N GPUs, processes sleepers[3i..3i+2] on GPU i.
scenario() {
    python3 - "$1" "$duration" "${sleepers[@]}" <<'EOF'
import json, math, sys
n, duration, pids = int(sys.argv[1]), float(sys.argv[2]), [int(p) for p in sys.argv[3:]]
GiB = 1 << 30
gpus = []
for i in range(n):
    a, b, c = pids[3 * i:3 * i + 3]
    series = []
    t = 0.0
    while t <= duration + 60:
        w = math.sin(t / 20 + i)
        series.append({"t": t, "util_gpu": int(60 + 35 * w), "util_mem": int(30 + 20 * w),
                       "memory_used_bytes": int((20 + 4 * w) * GiB), "power_mw": int(400000 + 200000 * w),
                       "temp_c": int(55 + 10 * w), "sm_clock_mhz": 1980 if w > -0.5 else 1410,
                       "nvlink_replay": [int(t / 10), 0, 0, 3], "nvlink_crc_flit": [int(t), 0, 0, 0, 7]})
        t += 2
    gpus.append({
        "uuid": "GPU-%08x-0000-4000-8000-00000000%04x" % (0xbe7c0000 + i, i),
        "pci_bus_id": "00000000:%02X:00.0" % (0x19 + 0x10 * i),
        "memory_total_bytes": 80 * GiB, "persistence_mode": True, "nvlinks": 18,
        "series": series,
        "processes": [
            {"pid": a, "used_memory_bytes": 16 * GiB, "sm_util": 80, "mem_util": 30},
            {"pid": b, "used_memory_bytes": 4 * GiB, "sm_util": 10, "mem_util": 2},
            {"pid": c, "used_memory_bytes": 1 * GiB, "from": duration / 3, "until": 2 * duration / 3},
        ],
        "xids": [{"t": duration / 2, "xid": 31}] if i == 0 else [],
    })
print(json.dumps({"driver_version": "550.54.15", "gpus": gpus}))
EOF
}

kb() { awk -v k="$2" '$1 == k":" {print $2}' /proc/$1/status; }
# utime + stime of a process, in clock ticks (fields 14 and 15 of stat,
# counted after the command name's closing parenthesis).
ticks() { sed 's/.*) //' /proc/$1/stat | awk '{print $12 + $13}'; }
declare -A rss hwm cpu
for cfg in 0 1 8 8-no-nvlink 8-no-health 8-no-stuck; do
    n=${cfg%%-*}
    if [ $n = 0 ]; then
        flags=(--no-gpu)
    else
        scenario $n > "$tmp/gpus$n.json"
        flags=(--nvml-lib "$lib" --pod-resources-socket "$tmp/no-kubelet.sock")
        case $cfg in
            *-no-nvlink) flags+=(--no-gpu-nvlink) ;;
            *-no-health) flags+=(--no-gpu-health) ;;
            *-no-stuck) flags+=(--stuck-scan-interval 0) ;;
        esac
    fi
    export GPUSCOPE_FAKE_NVML_SCENARIO=$tmp/gpus$n.json
    # What the agent sees (also checks the scenario and the attribution).
    "$agent" snapshot -o json "${flags[@]}" 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
gpus = s.get("gpus") or []
procs = [p for g in gpus for p in g.get("processes", [])]
attributed = sum(1 for p in procs if p.get("container_id"))
containers = len(s["containers"])
print(f"{sys.argv[1]} GPU(s): the agent sees {containers} containers, {len(gpus)} GPUs, "
      f"{attributed}/{len(procs)} GPU processes attributed to containers")
' $cfg
    "$agent" watch -o jsonl "${flags[@]}" > /dev/null 2> "$tmp/agent$cfg.err" &
    agent_pid=$!
    sleep 5  # start-up (NVML load, first discovery) is not steady state
    t0=$(ticks $agent_pid)
    start=$SECONDS end=$((SECONDS + duration)) next=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        [ -e /proc/$agent_pid/status ] || { echo "the agent exited early:" >&2; cat "$tmp/agent$cfg.err" >&2; exit 1; }
        if [ $SECONDS -ge $next ]; then
            echo "  $((SECONDS - start))s: VmRSS $(kb $agent_pid VmRSS) kB, VmHWM $(kb $agent_pid VmHWM) kB"
            next=$((next + 30))
        fi
        sleep 1
    done
    cpu[$cfg]=$(python3 -c "import os,sys; print(f'{($(ticks $agent_pid) - $t0) / os.sysconf(\"SC_CLK_TCK\") / ($SECONDS - $start) * 100:.2f}')")
    rss[$cfg]=$(kb $agent_pid VmRSS) hwm[$cfg]=$(kb $agent_pid VmHWM)
    kill $agent_pid; wait $agent_pid 2>/dev/null || true
    agent_pid=
done

echo "after ${duration}s with 200 containers:"
python3 - "$duration" "${rss[0]}" "${hwm[0]}" "${rss[1]}" "${hwm[1]}" "${rss[8]}" "${hwm[8]}" \
    "${rss[8-no-health]}" "${hwm[8-no-health]}" "${rss[8-no-nvlink]}" "${hwm[8-no-nvlink]}" \
    "${cpu[0]}" "${cpu[1]}" "${cpu[8]}" "${cpu[8-no-health]}" "${cpu[8-no-nvlink]}" \
    "${rss[8-no-stuck]}" "${hwm[8-no-stuck]}" "${cpu[8-no-stuck]}" <<'EOF'
import sys
d = sys.argv[1]
r0, h0, r1, h1, r8, h8, rn, hn, rl, hl = map(int, sys.argv[2:12])
c0, c1, c8, cn, cl = map(float, sys.argv[12:17])
rs, hs, cs = int(sys.argv[17]), int(sys.argv[18]), float(sys.argv[19])
print("  | GPUs | VmRSS kB | VmHWM kB | CPU % of a core |")
print("  | ---: | ---: | ---: | ---: |")
for n, r, h, c in ((0, r0, h0, c0), (1, r1, h1, c1), (8, r8, h8, c8), ("8, --no-gpu-nvlink", rl, hl, cl),
                   ("8, --no-gpu-health", rn, hn, cn), ("8, --stuck-scan-interval 0", rs, hs, cs)):
    print(f"  | {n} | {r} | {h} | {c:.2f} |")
added = (c8 - cn) / cn * 100 if cn else float("nan")
print(f"  health reads with 8 GPUs: CPU {c8:.2f} % vs {cn:.2f} % without ({added:+.1f} %, goal <= +10 %); VmRSS {r8 - rn:+d} kB")
added = (c8 - cl) / cl * 100 if cl else float("nan")
print(f"  NVLink reads with 8 GPUs: CPU {c8:.2f} % vs {cl:.2f} % without ({added:+.1f} %); VmRSS {r8 - rl:+d} kB")
added = (c8 - cs) / cs * 100 if cs else float("nan")
print(f"  stuck-task scans (200 flat containers): CPU {c8:.2f} % vs {cs:.2f} % without ({added:+.1f} %, goal <= +10 %); VmRSS {r8 - rs:+d} kB")
slope = (r8 - r1) / 7
flat = r8 - r1 <= 512
small = max(r0, r1, r8) <= 16 * 1024
print(f"  GPU source fixed cost (1 GPU - 0): {r1 - r0:+d} kB; per GPU (8 - 1) / 7: {slope:+.0f} kB")
print(f"  flat in GPU count (8 GPUs <= 1 GPU + 512 kB): {'yes' if flat else 'NO'}")
print(f"  VmRSS <= 16 MiB in every configuration: {'yes' if small else 'NO'} (max {max(r0, r1, r8)} kB)")
print(f"  (peak VmHWM <= 16 MiB: {'yes' if max(h0, h1, h8) <= 16 * 1024 else 'no'}, max {max(h0, h1, h8)} kB)")
print(f"goal: {'MET' if flat and small else 'MISSED'}")
EOF
