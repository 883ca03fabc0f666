#!/usr/bin/env bash
# Resident memory of `gpuscope-agent watch` watching 200 containers, side by
# side with Debian's prometheus-node-exporter on the same machine, after
# DURATION seconds (default 600 = 10 minutes). node_exporter is scraped every
# second (it allocates per scrape). 200 cgroup v1 memory cgroups at kubelet
# paths (plus their cpuacct twins for CPU and unified twins for PSI) are
# created and removed.
#
#   benches/rss.sh [DURATION]        (after cargo build --release; needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-600}
agent=target/release/gpuscope-agent
[ -x "$agent" ] || { echo "build first: cargo build --release -p gpuscope-agent" >&2; exit 1; }
command -v prometheus-node-exporter >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >/dev/null
}
mem=/sys/fs/cgroup/memory cpu=/sys/fs/cgroup/cpuacct uni=/sys/fs/cgroup/unified
pod=$(printf 'b3a5e7c1-0000-4000-8000-%012x' $$)
dirs=()
for i in $(seq 1 200); do
    id=$(printf '%064x' $((0xcafe0000 + i)))
    for r in $mem $cpu $uni; do
        d=$r/kubepods/burstable/pod$pod/$id
        mkdir -p "$d"; dirs+=("$d")
    done
done
cleanup() {
    kill ${agent_pid:-} ${ne_pid:-} 2>/dev/null || true
    for d in "${dirs[@]}"; do rmdir "$d" 2>/dev/null || true; done
    # Parents too, when empty (other users' cgroups keep theirs).
    for r in $mem $cpu $uni; do
        rmdir $r/kubepods/burstable/pod$pod $r/kubepods/burstable $r/kubepods 2>/dev/null || true
    done
}
trap cleanup EXIT
seen=$("$agent" snapshot -o json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["containers"]))')
echo "the agent sees $seen containers (200 made here)"
"$agent" watch -o jsonl > /dev/null &
agent_pid=$!
prometheus-node-exporter --web.listen-address=127.0.0.1:19100 --log.level=error 2>/dev/null &
ne_pid=$!
sleep 2
rss() { awk '/^VmRSS/ {print $2}' /proc/$1/status; }
start=$SECONDS end=$((SECONDS + duration)) next=$((SECONDS + 60))
while [ $SECONDS -lt $end ]; do
    python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:19100/metrics").read()' 2>/dev/null || true
    for p in $agent_pid $ne_pid; do
        [ -e /proc/$p/status ] || { echo "process $p exited early" >&2; exit 1; }
    done
    if [ $SECONDS -ge $next ]; then
        echo "  $((SECONDS - start))s: agent $(rss $agent_pid) kB, node_exporter $(rss $ne_pid) kB"
        next=$((next + 60))
    fi
    sleep 1
done
a=$(rss $agent_pid); n=$(rss $ne_pid)
echo "after ${duration}s with 200 containers:"
echo "  gpuscope-agent watch      VmRSS ${a} kB"
echo "  prometheus-node-exporter  VmRSS ${n} kB"
python3 -c "print(f'  ratio agent / node_exporter = {$a / $n:.2f}')"
