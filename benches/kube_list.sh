#!/usr/bin/env bash
# The aggregator's start-up list at cluster scale, two binaries side by
# side: each run starts the scale API server (tests' `scale_kube`: N GPU
# nodes, N x 15 pods of 5-10 kB of JSON with managedFields, N PVCs,
# streaming lists) and an aggregator against it (no agent load), and
# measures, from the aggregator's start to ready (every watcher's first
# list complete: an Explain of a Kubernetes pod names no Kubernetes gap,
# polled every 0.5 s):
#   wall  seconds;
#   cpu   the aggregator's user + system CPU seconds (/proc/PID/stat),
#         which a busy shared machine does not inflate as it does wall
#         time;
#   api   the API server's CPU seconds over the same time.
# Runs alternate between the binaries (A, B, A, B, ...) so that both see
# the same machine; the medians of each are printed, and B's CPU as a
# fraction of A's.
#
# usage: benches/kube_list.sh [NODES]        (default 12500)
#
# A=PATH and B=PATH are the two aggregator binaries (default B: this
# tree's release build; A: B unless given); RUNS (default 3) runs of
# each; CHURN (default 0) pod lifecycle steps per second per 1,000 nodes
# during the list; NO_BUILD=1 skips the build; READY_LIMIT (default 600)
# seconds to wait.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
B=${B:-$BIN/gpuscope-aggregator}
A=${A:-$B}
RUNS=${RUNS:-3}
CHURN=${CHURN:-0}
READY_LIMIT=${READY_LIMIT:-600}
PORT=${PORT:-17591}
KPORT=$((PORT + 5))
URL=http://127.0.0.1:$PORT
TCK=$(getconf CLK_TCK)
NODES=${1:-12500}

[ -n "${NO_BUILD:-}" ] || (cd "$ROOT" && cargo build --release -q -p gpuscope-aggregator -p gpuscope-cli \
    -p gpuscope-tests --bins)

TMP=$(mktemp -d)
AGG= KUBE=
cleanup() {
    for p in $AGG $KUBE; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=kube_common.sh
. "$ROOT/benches/kube_common.sh"

# One run of aggregator binary $1 labelled $2: appends "wall cpu api" to
# $TMP/$2.
run() {
    local bin=$1 label=$2 t0 k0 wall cpu api
    start_kube "$NODES" "$CHURN"
    rm -rf "$TMP/data"
    k0=$(cpu_s "$KUBE")
    "$bin" --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --log warn \
        --kube-server "http://127.0.0.1:$KPORT" --auth none 2> "$TMP/agg.log" &
    AGG=$!
    t0=$(date +%s.%N)
    for _ in $(seq $((READY_LIMIT * 2))); do
        kill -0 "$AGG" 2>/dev/null || { echo "aggregator died:"; tail -20 "$TMP/agg.log"; exit 1; }
        if kube_ready $URL; then
            wall=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }')
            cpu=$(cpu_s "$AGG")
            api=$(awk -v a="$(cpu_s "$KUBE")" -v b="$k0" 'BEGIN { printf "%.2f", a - b }')
            break
        fi
        sleep 0.5
    done
    [ -n "${wall:-}" ] || { echo "$label: not ready within $READY_LIMIT s"; exit 1; }
    printf '%s run: ready %6.1f s wall, aggregator %7.2f CPU s, API server %7.2f CPU s, VmHWM %s kB (load %s)\n' \
        "$label" "$wall" "$cpu" "$api" "$(awk '$1 == "VmHWM:" {print $2}' "/proc/$AGG/status")" "$(cut -d' ' -f1 /proc/loadavg)"
    echo "$wall $cpu $api" >> "$TMP/$label"
    kill "$AGG"; wait "$AGG" 2>/dev/null || true; AGG=
    kill "$KUBE"; wait "$KUBE" 2>/dev/null || true; KUBE=
}

echo "== $NODES nodes, $((NODES * 15)) pods, $NODES PVCs, churn $CHURN; A: $A; B: $B; $RUNS runs each"
for _ in $(seq "$RUNS"); do
    run "$A" A
    run "$B" B
done
col() { awk -v c="$2" '{print $c}' "$TMP/$1" | median; }
for l in A B; do
    printf 'RESULT %s nodes=%d ready_wall=%ss cpu=%ss api_cpu=%ss (medians of %d)\n' \
        "$l" "$NODES" "$(col $l 1)" "$(col $l 2)" "$(col $l 3)" "$RUNS"
done
awk -v a="$(col A 2)" -v b="$(col B 2)" 'BEGIN { printf "RATIO B/A aggregator CPU to ready: %.2f\n", b / a }'
