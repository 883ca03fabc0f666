#!/usr/bin/env bash
# The aggregator's Kubernetes side at cluster scale: the aggregator watching
# the scale API server (tests' `scale_kube`: N GPU nodes, N x 15 pods, N
# PVCs, pod churn with its events, node status reports; the real list/watch
# protocol, paged lists), with `ingest_load`'s agent load of
# `benches/ingest.sh scale` (N nodes x (8 GPUs + 32 containers) at 1 Hz,
# OOMS OOM kills first; the simulated nodes are the API server's nodes, and
# their pods' UIDs are the API server's pods', so the joins are exercised).
#
# usage: benches/kube_scale.sh [NODES ...]     (default: 1000 5000 12500)
#
# For each N, two runs against fresh aggregators of the same binary:
#   kube     --kube-server: time from start to ready (every watcher's first
#            list complete: an Explain of a Kubernetes pod without a
#            Kubernetes gap, polled every 2 s), then SCALE_SECONDS (default
#            90) of steady state: VmRSS and CPU cores every 10 s (medians
#            printed), VmHWM (the peak, start-up included); then
#            explain_rpc (N_RPC rounds, default 30) on the Query-only
#            listener (--query-listen) under the load.
#   no-kube  --no-kube, the same agent load, sampled over the same span
#            after start (from the kube run's ready time): VmRSS.
# Memory per watched pod = (median VmRSS with kube - median VmRSS without)
# / pods. The API server's own RSS and CPU are printed beside (another
# process). The load average of the machine is printed at each step: the
# runs share the machine's cores.
#
# Then (BURST, default 10000; 0: none) that many pods are deleted at once
# under the load: the time until the aggregator has them, VmRSS, and the
# generator's progress (its acks) before and after.
#
# READY_ONLY=1 stops each size at ready (with the CPU-seconds each process
# used until then): for comparing start-up alone.
#
# AGGREGATOR=PATH runs another aggregator binary; AGG_FLAGS adds flags to
# both of its runs (kube and no-kube); NO_BUILD=1 skips the
# build; CHURN (default 2) pod lifecycle steps per second per 1,000 nodes;
# READY_LIMIT (default 900) seconds to wait for ready.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
AGGREGATOR=${AGGREGATOR:-$BIN/gpuscope-aggregator}
SCALE_SECONDS=${SCALE_SECONDS:-90}
OOMS=${OOMS:-3000}
N_RPC=${N_RPC:-30}
CHURN=${CHURN:-2}
READY_LIMIT=${READY_LIMIT:-900}
BURST=${BURST:-10000}
PORT=${PORT:-17571}
KPORT=$((PORT + 5))
URL=http://127.0.0.1:$PORT
QURL=http://127.0.0.1:$((PORT + 1))
TCK=$(getconf CLK_TCK)
SIZES=("$@")
read -r -a AGG_FLAGS <<< "${AGG_FLAGS:-}"
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 5000 12500)

[ -n "${NO_BUILD:-}" ] || (cd "$ROOT" && cargo build --release -q -p gpuscope-aggregator -p gpuscope-cli \
    -p gpuscope-benches -p gpuscope-tests --bins)
echo "aggregator: $AGGREGATOR"

TMP=$(mktemp -d)
AGG= KUBE= GEN=
cleanup() {
    for p in $GEN $AGG $KUBE; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# shellcheck source=kube_common.sh
. "$ROOT/benches/kube_common.sh"

start_aggregator() { # FLAGS...
    rm -rf "$TMP/data"
    # As in benches/ingest.sh: one generator stands in for every node.
    GPUSCOPE_MAX_STREAMS_PER_PEER=1000000 GPUSCOPE_QUERY_RATE=1000000 GPUSCOPE_QUERY_BURST=1000000 \
    "$AGGREGATOR" --listen 127.0.0.1:$PORT --query-listen 127.0.0.1:$((PORT + 1)) \
        --data-dir "$TMP/data" --log warn "${AGG_FLAGS[@]}" "$@" 2> "$TMP/agg.log" &
    AGG=$!
    T0=$(date +%s.%N)
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
        sleep 0.1
    done
    echo "aggregator did not start:"; cat "$TMP/agg.log"; exit 1
}

stop() { # PID
    kill "$1" 2>/dev/null; wait "$1" 2>/dev/null || true
}

start_load() { # NODES SECONDS
    "$BIN/ingest_load" --aggregator $URL --nodes "$1" --rate 1 --connections 16 --duration "$2" \
        --ooms "$OOMS" --pods-out "$TMP/pods" --prefix gpu-node --event-interval 600 --progress 10 \
        > "$TMP/load.out" 2>&1 &
    GEN=$!
}

# Samples VmRSS and cores every 10 s for SECONDS; prints each line, leaves
# the medians in RSS_MED (kB) and CORES_MED.
steady() { # SECONDS
    local c_prev w_prev c w t=0 rss cores
    : > "$TMP/rss" ; : > "$TMP/cores"
    c_prev=$(cpu_ticks "$AGG"); w_prev=$(date +%s.%N)
    while [ $t -lt "$1" ]; do
        sleep 10; t=$((t + 10))
        kill -0 "$AGG" || { echo "aggregator died"; tail -20 "$TMP/agg.log"; exit 1; }
        c=$(cpu_ticks "$AGG"); w=$(date +%s.%N)
        rss=$(status_kb "$AGG" VmRSS)
        cores=$(awk -v c=$((c - c_prev)) -v k="$TCK" -v w="$w" -v wp="$w_prev" 'BEGIN { printf "%.3f", c / k / (w - wp) }')
        echo "$rss" >> "$TMP/rss"; echo "$cores" >> "$TMP/cores"
        awk -v t=$t -v rss="$rss" -v hwm="$(status_kb "$AGG" VmHWM)" -v cores="$cores" \
            -v krss="$(status_kb "$KUBE" VmRSS 2>/dev/null || echo 0)" -v load="$(load)" -v gen="$(tail -n 1 "$TMP/load.out")" 'BEGIN {
            printf "  t=%4ds VmRSS %8.1f MiB  VmHWM %8.1f MiB  CPU %s cores | API server VmRSS %.0f MiB | load %s | %s\n",
                t, rss / 1024, hwm / 1024, cores, krss / 1024, load, gen }'
        c_prev=$c; w_prev=$w
    done
    RSS_MED=$(median < "$TMP/rss"); CORES_MED=$(median < "$TMP/cores")
}

# BURST pods deleted at once (namespaces deleted) under the load: the time
# until the aggregator has the last deletion (an Explain of that pod says it
# was deleted), the generator's acks before and after, VmRSS before and
# after, VmHWM.
burst_run() {
    local before out ns pod t0 applied=
    before=$(status_kb "$AGG" VmRSS)
    echo "-- burst: $BURST pods deleted at once; before: VmRSS $before kB; generator: $(tail -n 1 "$TMP/load.out")"
    out=$(curl -s -X POST "http://127.0.0.1:$KPORT/_scale/delete-pods?namespace=&count=$BURST")
    t0=$(date +%s.%N)
    read -r ns pod < <(python3 -c 'import json, sys; print(*json.loads(sys.argv[1])["last"])' "$out")
    for _ in $(seq 300); do
        if "$BIN/gpuscope" --aggregator $URL -o json explain "$pod" -n "$ns" 2>/dev/null | grep -q 'was deleted'; then
            applied=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }')
            break
        fi
        sleep 1
    done
    sleep 10
    echo "burst: $out; applied after ${applied:-(not within 300)} s; 10 s later VmRSS $(status_kb "$AGG" VmRSS) kB, VmHWM $(status_kb "$AGG" VmHWM) kB; generator: $(tail -n 1 "$TMP/load.out")"
}

run_size() { # NODES
    local n=$1 pods ready_s=
    pods=$((n * 15))
    echo "== $n nodes, $pods pods, $n PVCs, churn $CHURN pod steps/s per 1,000 nodes; agents: $n x (8 GPUs + 32 containers) at 1 Hz, $OOMS OOM kills; load $(load)"
    start_kube "$n" "$CHURN"
    echo "-- kube: aggregator --kube-server http://127.0.0.1:$KPORT --auth none (sample pod $SAMPLE_NS/$SAMPLE_POD)"
    start_aggregator --kube-server "http://127.0.0.1:$KPORT" --auth none
    start_load "$n" $((READY_LIMIT + SCALE_SECONDS + 120))
    local limit=$((READY_LIMIT / 2))
    for _ in $(seq $limit); do
        kill -0 "$AGG" || { echo "aggregator died"; tail -20 "$TMP/agg.log"; exit 1; }
        if kube_ready $URL; then
            ready_s=$(awk -v t0="$T0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }')
            break
        fi
        sleep 2
    done
    if [ -z "$ready_s" ]; then
        echo "not ready within $READY_LIMIT s: VmRSS $(status_kb "$AGG" VmRSS) kB VmHWM $(status_kb "$AGG" VmHWM) kB"
        stop "$GEN"; GEN=; stop "$AGG"; AGG=; stop "$KUBE"; KUBE=
        return
    fi
    echo "ready (every watcher listed) $ready_s s after start; VmRSS $(status_kb "$AGG" VmRSS) kB VmHWM $(status_kb "$AGG" VmHWM) kB; CPU-s so far: aggregator $(cpu_s "$AGG"), API server $(cpu_s "$KUBE"), generator $(cpu_s "$GEN"); load $(load); generator: $(tail -n 1 "$TMP/load.out")"
    if [ -n "${READY_ONLY:-}" ]; then
        echo "RESULT nodes=$n pods=$pods ready=${ready_s}s"
        stop "$GEN"; GEN=; stop "$AGG"; AGG=; stop "$KUBE"; KUBE=
        return
    fi
    steady "$SCALE_SECONDS"
    local kube_rss=$RSS_MED kube_cores=$CORES_MED
    echo "-- explain_rpc on the Query-only listener under the load ($N_RPC rounds; load $(load))"
    "$BIN/explain_rpc" --aggregator "$QURL" --pods "$TMP/pods" -n "$N_RPC" | tee "$TMP/rpc.out" || echo "explain_rpc failed"
    local hwm
    hwm=$(status_kb "$AGG" VmHWM)
    [ "$BURST" -gt 0 ] && burst_run
    echo "API server: $(curl -s http://127.0.0.1:$KPORT/_scale/stats)"
    stop "$GEN"; GEN=; stop "$AGG"; AGG=; stop "$KUBE"; KUBE=

    echo "-- no-kube: aggregator --no-kube, the same agent load, ${SCALE_SECONDS} s"
    start_aggregator --no-kube
    # Sampled at the same time after start as the kube run was (its ready
    # time): the history rings fill for their first minutes, so an earlier
    # sample would count that growth against the pods.
    local wait_s
    wait_s=$(awk -v r="$ready_s" 'BEGIN { printf "%d", (r < 20) ? 20 : r + 0.5 }')
    start_load "$n" $((wait_s + SCALE_SECONDS + 60))
    sleep "$wait_s"
    steady "$SCALE_SECONDS"
    local base_rss=$RSS_MED
    stop "$GEN"; GEN=; stop "$AGG"; AGG=
    awk -v n="$n" -v p="$pods" -v r="$ready_s" -v k="$kube_rss" -v h="$hwm" -v c="$kube_cores" -v b="$base_rss" \
        -v e="$(awk '/^Explain\(pod UID\)/ {for (i = 1; i <= NF; i++) if ($i == "p99") print $(i + 1)}' "$TMP/rpc.out")" 'BEGIN {
        printf "RESULT nodes=%d pods=%d ready=%.1fs rss_steady=%.0fMiB rss_peak=%.0fMiB cpu_steady=%.2fcores explain_p99=%sms rss_no_kube=%.0fMiB per_pod=%.1fkB\n",
            n, p, r, k / 1024, h / 1024, c, e, b / 1024, (k - b) / p }'
}

for n in "${SIZES[@]}"; do run_size "$n"; done
