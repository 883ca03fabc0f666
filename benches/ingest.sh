#!/usr/bin/env bash
# Aggregator ingest and `gpuscope explain` at scale, with benches'
# `ingest_load` speaking the real protocol over loopback.
#
# usage: benches/ingest.sh [max|scale|memory|all]
#
#   max    as fast as possible for MAX_SECONDS (default 20), protocol 1 (every
#          sample names its container) and protocol 2 (stream-local ids, the
#          agent's), one after the other against fresh aggregators of the same
#          binary: container-samples per aggregator CPU-second (utime+stime
#          from /proc/PID/stat).
#   memory the cost of full history rings: MEM_NODES (default 250) nodes
#          send FILL (default 3900: the default 5 min of 1 s points and 1 h of
#          15 s points) back-dated reports 1 s apart, then the same with 90;
#          for VALUES busy and noise; VmRSS per node for each. With scale in
#          the same run (all), projects NODES nodes with full rings: scale's
#          VmRSS after 90 s plus NODES x the per-node difference.
#   scale  NODES (default 12500) x (8 GPUs + 32 containers) at 1 Hz for
#          SCALE_SECONDS (default 90) with OOMS (default 3000) OOM kills
#          (300-point windows) sent first and one source event per node every
#          10 min: aggregator VmRSS/VmHWM and CPU cores every 10 s; then, with
#          the load still running, on the main listener and then on the
#          Query-only one (--query-listen), N_EXPLAIN (default 200) runs of
#          `gpuscope explain POD_UID` (whole process: the Explain RPC) and N_RPC
#          (default 30) rounds of explain_rpc (in-process times of Explain,
#          and of the pod-filtered ListIncidents and ListContainers); and
#          SCRAPES (default 3) scrapes of the Prometheus endpoint
#          (--metrics-listen, with METRICS_FLAGS): each one's time, bytes and
#          series, and the CPU time of the aggregator's `metrics` thread (the
#          render) beside the whole aggregator's CPU over the 10 s before it
#          (ingest of the same load), and the ingest CPU during the scrape.
#   all    max, scale, memory.
#
# The aggregator runs with its default flags plus AGG_FLAGS; the generator
# with --values VALUES (default busy; see benches/src/bin/ingest_load.rs).
# Each run starts a fresh aggregator (--data-dir in a tempdir, 127.0.0.1)
# and stops it at the end. AGGREGATOR=PATH runs another aggregator binary
# (e.g. a baseline built from another commit) with this tree's generator,
# CLI and explain_rpc; NO_BUILD=1 skips the build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
AGGREGATOR=${AGGREGATOR:-$BIN/gpuscope-aggregator}
MODE=${1:-all}
VALUES=${VALUES:-busy}
MEM_NODES=${MEM_NODES:-250}
FILL=${FILL:-3900}
read -r -a AGG_FLAGS <<< "${AGG_FLAGS:-}"
NODES=${NODES:-12500}
SCALE_SECONDS=${SCALE_SECONDS:-90}
MAX_SECONDS=${MAX_SECONDS:-20}
OOMS=${OOMS:-3000}
N_EXPLAIN=${N_EXPLAIN:-200}
PORT=${PORT:-17471}
SCRAPES=${SCRAPES:-3}
read -r -a METRICS_FLAGS <<< "${METRICS_FLAGS:-}"
MURL=http://127.0.0.1:$((PORT + 2))/metrics
# The aggregator's default (16 MiB): `gpuscope explain` is one Explain RPC
# now, not ListIncidents of every OOM kill (~45 MB for 3000 kills).
MAX_MESSAGE_BYTES=${MAX_MESSAGE_BYTES:-16777216}
URL=http://127.0.0.1:$PORT
QURL=http://127.0.0.1:$((PORT + 1))
TCK=$(getconf CLK_TCK)

[ -n "${NO_BUILD:-}" ] || (cd "$ROOT" && cargo build --release -q -p gpuscope-aggregator -p gpuscope-cli -p gpuscope-benches --bins)
echo "aggregator: $AGGREGATOR"

TMP=$(mktemp -d)
AGG=
cleanup() {
    [ -n "$AGG" ] && kill "$AGG" 2>/dev/null && wait "$AGG" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

start_aggregator() { # [MORE FLAGS]
    rm -rf "$TMP/data"
    # Every simulated node streams from 127.0.0.1, and explain_rpc asks as
    # fast as it can: the per-peer stream and per-caller query limits
    # (docs/limits.md) are lifted, as for one generator standing in for
    # thousands of machines they must be (by environment: a baseline
    # aggregator from before the limits ignores it).
    GPUSCOPE_MAX_STREAMS_PER_PEER=1000000 GPUSCOPE_QUERY_RATE=1000000 GPUSCOPE_QUERY_BURST=1000000 \
    "$AGGREGATOR" --no-kube --listen 127.0.0.1:$PORT --data-dir "$TMP/data" \
        --log warn "${AGG_FLAGS[@]}" "$@" 2>"$TMP/agg.log" &
    AGG=$!
    for _ in $(seq 50); do
        (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
        sleep 0.1
    done
    echo "aggregator did not start:"; cat "$TMP/agg.log"; exit 1
}

stop_aggregator() {
    kill "$AGG"; wait "$AGG" 2>/dev/null || true; AGG=
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

max_run() {
    local p
    for p in 1 2; do max_protocol $p; done
}

max_protocol() { # PROTOCOL
    echo "== max: protocol $1, as fast as possible, ${MAX_SECONDS} s, 200 nodes x (8 GPUs + 32 containers), 4 connections, --values $VALUES"
    start_aggregator
    local c0 w0 c1 w1
    c0=$(cpu_ticks "$AGG"); w0=$(date +%s.%N)
    "$BIN/ingest_load" --aggregator $URL --nodes 200 --rate 0 --connections 4 \
        --duration "$MAX_SECONDS" --progress 5 --protocol "$1" --values "$VALUES" | tee "$TMP/max.out"
    c1=$(cpu_ticks "$AGG"); w1=$(date +%s.%N)
    local samples
    samples=$(sed -n 's/^RESULT.* container_samples=\([0-9]*\) .*/\1/p' "$TMP/max.out")
    awk -v s="$samples" -v c=$((c1 - c0)) -v t="$TCK" -v w0="$w0" -v w1="$w1" 'BEGIN {
        cpu = c / t; wall = w1 - w0
        printf "aggregator: %.2f CPU-s over %.1f s wall (%.2f cores); %d container-samples -> %.0f container-samples per CPU-second\n",
            cpu, wall, cpu / wall, s, s / cpu }'
    echo "aggregator VmHWM $(status_kb "$AGG" VmHWM) kB"
    stop_aggregator
}

SCALE_RSS_KB=
scale_run() {
    echo "== scale: $NODES nodes x (8 GPUs + 32 containers) at 1 Hz, ${SCALE_SECONDS} s, --values $VALUES, $OOMS OOM kills first, aggregator flags: ${AGG_FLAGS[*]:-(defaults)}"
    start_aggregator --max-message-bytes "$MAX_MESSAGE_BYTES" --query-listen 127.0.0.1:$((PORT + 1)) \
        --metrics-listen 127.0.0.1:$((PORT + 2)) "${METRICS_FLAGS[@]}"
    "$BIN/ingest_load" --aggregator $URL --nodes "$NODES" --rate 1 --connections 16 --values "$VALUES" \
        --duration "$SCALE_SECONDS" --ooms "$OOMS" --pods-out "$TMP/pods" \
        --event-interval 600 --progress 10 > "$TMP/scale.out" 2>&1 &
    local gen=$! t=0 c_prev w_prev c w
    c_prev=$(cpu_ticks "$AGG"); w_prev=$(date +%s.%N)
    local explained=0 scraped=0 last_cores=0
    while kill -0 $gen 2>/dev/null; do
        sleep 10; t=$((t + 10))
        kill -0 "$AGG" || { echo "aggregator died"; cat "$TMP/agg.log"; exit 1; }
        c=$(cpu_ticks "$AGG"); w=$(date +%s.%N)
        awk -v t=$t -v c=$((c - c_prev)) -v k="$TCK" -v w="$w" -v wp="$w_prev" \
            -v rss="$(status_kb "$AGG" VmRSS)" -v hwm="$(status_kb "$AGG" VmHWM)" \
            -v gen="$(tail -n 1 "$TMP/scale.out")" 'BEGIN {
            printf "t=%4ds aggregator VmRSS %8.1f MiB  VmHWM %8.1f MiB  CPU %.2f cores | %s\n",
                t, rss / 1024, hwm / 1024, c / k / (w - wp), gen }'
        last_cores=$(awk -v c=$((c - c_prev)) -v k="$TCK" -v w="$w" -v wp="$w_prev" 'BEGIN { printf "%.3f", c / k / (w - wp) }')
        c_prev=$c; w_prev=$w
        if [ $scraped = 0 ] && [ "$SCRAPES" -gt 0 ] && [ $t -ge $((SCALE_SECONDS / 3)) ]; then
            scraped=1
            scrape_runs "$last_cores" || echo "scrapes failed"
            c_prev=$(cpu_ticks "$AGG"); w_prev=$(date +%s.%N)
        fi
        if [ $explained = 0 ] && [ "$N_EXPLAIN" -gt 0 ] && [ $t -ge $((SCALE_SECONDS * 2 / 3)) ]; then
            explained=1
            explain_runs "$URL" "the main listener (Ingest and Query)" || echo "explain runs failed"
            explain_runs "$QURL" "the Query-only listener (--query-listen)" || echo "explain runs failed"
        fi
    done
    wait $gen || { cat "$TMP/scale.out"; exit 1; }
    grep RESULT "$TMP/scale.out"
    SCALE_RSS_KB=$(status_kb "$AGG" VmRSS)
    echo "aggregator at the end: VmRSS $SCALE_RSS_KB kB VmHWM $(status_kb "$AGG" VmHWM) kB; nodes known: $("$BIN/gpuscope" --aggregator $URL nodes | tail -n +2 | wc -l)"
    stop_aggregator
}

fill_rss() { # VALUES FILL -> VmRSS kB after MEM_NODES nodes sent FILL reports
    start_aggregator
    "$BIN/ingest_load" --aggregator $URL --nodes "$MEM_NODES" --rate 1 --connections 4 \
        --duration 1 --fill "$2" --values "$1" --progress 1000 > "$TMP/fill.out" 2>&1 \
        || { cat "$TMP/fill.out" >&2; exit 1; }
    status_kb "$AGG" VmRSS
    stop_aggregator
}

memory_run() {
    local v full short per
    for v in busy noise; do
        echo "== memory: $MEM_NODES nodes x (8 GPUs + 32 containers), $FILL vs 90 reports 1 s apart, --values $v, aggregator flags: ${AGG_FLAGS[*]:-(defaults)}"
        full=$(fill_rss $v "$FILL"); short=$(fill_rss $v 90)
        per=$(awk -v f="$full" -v s="$short" -v n="$MEM_NODES" 'BEGIN { printf "%.1f", (f - s) / n }')
        echo "VmRSS $full kB after $FILL reports, $short kB after 90: full rings add $per kB per node"
        if [ -n "$SCALE_RSS_KB" ]; then
            awk -v r="$SCALE_RSS_KB" -v p="$per" -v n="$NODES" -v v="$v" 'BEGIN {
                printf "projected %d nodes with full rings (--values %s): %.0f MiB (scale run %.0f MiB + %d x %.1f kB)\n",
                    n, v, (r + n * p) / 1024, r / 1024, n, p }'
        fi
    done
}

thread_ticks() { # PID NAME -> utime+stime of the named thread
    local t
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm")" = "$2" ] && awk '{print $14 + $15}' "$t/stat" && return
    done
    echo 0
}

scrape_runs() { # INGEST_CORES (the aggregator's cores over the 10 s before)
    echo "-- $SCRAPES scrapes of $MURL ${METRICS_FLAGS[*]:-} under the load (aggregator at $1 cores over the 10 s before the first)"
    local i m0 m1 a0 a1 out
    for i in $(seq "$SCRAPES"); do
        m0=$(thread_ticks "$AGG" metrics); a0=$(cpu_ticks "$AGG")
        out=$(curl -s -o "$TMP/scrape.txt" -w '%{time_total} %{size_download}' "$MURL")
        m1=$(thread_ticks "$AGG" metrics); a1=$(cpu_ticks "$AGG")
        awk -v o="$out" -v m=$((m1 - m0)) -v a=$((a1 - a0)) -v k="$TCK" -v ing="$1" \
            -v series="$(grep -vc '^#' "$TMP/scrape.txt")" 'BEGIN {
            split(o, x, " "); wall = x[1]; cpu = m / k; all = a / k
            printf "scrape: %.2f s, %.1f MB, %d samples; metrics thread %.2f CPU-s; whole aggregator %.2f CPU-s during it (ingest alone at %.2f cores would be %.2f CPU-s)\n",
                wall, x[2] / 1e6, series, cpu, all, ing, ing * wall }'
    done
    echo "render time of the scrape before the last (the exporter's own gauge): $(awk '/^gpuscope_exporter_last_scrape_duration_seconds/ {print $2}' "$TMP/scrape.txt") s"
    echo "generator's last progress line: $(tail -n 1 "$TMP/scale.out")"
    grep -o '^[a-zA-Z_]*' "$TMP/scrape.txt" | sort | uniq -c | sort -rn | head -12
    m0=$(thread_ticks "$AGG" metrics)
    out=$(curl -s -o "$TMP/scrape.txt" -w '%{time_total} %{size_download}' "$MURL?shard=0&shards=8")
    m1=$(thread_ticks "$AGG" metrics)
    awk -v o="$out" -v m=$((m1 - m0)) -v k="$TCK" 'BEGIN { split(o, x, " ");
        printf "one of 8 shards (?shard=0&shards=8): %.2f s, %.1f MB; metrics thread %.2f CPU-s\n", x[1], x[2] / 1e6, m / k }'
}

explain_runs() { # URL WHAT
    echo "-- explain under load, on $2: $N_EXPLAIN x 'gpuscope explain POD_UID' (whole process, the Explain RPC), pods with stored OOM kills"
    python3 - "$BIN/gpuscope" "$1" "$TMP/pods" "$N_EXPLAIN" <<'EOF'
import subprocess, sys, time
cli, url, pods, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pods = [l.split()[0] for l in open(pods)]
ts = []
named = 0
for k in range(n):
    pod = pods[(k * 7919) % len(pods)]
    t = time.perf_counter()
    r = subprocess.run([cli, "--aggregator", url, "explain", pod], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ts.append((time.perf_counter() - t) * 1000)
    if r.returncode != 0:
        sys.exit(f"explain {pod} failed: {r.stdout.decode()[:300]}")
    named += b"OOM-killed" in r.stdout
ts.sort()
q = lambda f: ts[round((len(ts) - 1) * f)]
print(f"gpuscope explain (process) n={n} p50 {q(0.5):.2f} ms  p90 {q(0.9):.2f} ms  p99 {q(0.99):.2f} ms  max {ts[-1]:.2f} ms; {named} answers with an OOM-killed finding")
t = time.perf_counter()
for _ in range(20):
    subprocess.run([cli, "--version"], stdout=subprocess.DEVNULL)
print(f"gpuscope --version (process start only): {(time.perf_counter() - t) / 20 * 1000:.2f} ms mean")
EOF
    "$BIN/explain_rpc" --aggregator "$1" --pods "$TMP/pods" -n "${N_RPC:-30}"
}

case $MODE in
    max) max_run ;;
    scale) scale_run ;;
    memory) memory_run ;;
    all) max_run; scale_run; memory_run ;;
    *) echo "usage: $0 [max|scale|memory|all]"; exit 2 ;;
esac
