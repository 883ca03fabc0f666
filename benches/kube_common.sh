# Shared by benches/kube_scale.sh and benches/kube_list.sh (sourced): the
# scale API server, the readiness probe and small measurements. Expects
# BIN (the release binaries), TMP, KPORT and TCK to be set.

# A process's user + system CPU seconds (/proc/PID/stat).
cpu_s() { awk -v k="$TCK" '{printf "%.2f", ($14 + $15) / k}' "/proc/$1/stat"; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# Starts the scale API server with NODES nodes and CHURN pod lifecycle
# steps per second per 1,000 nodes; sets KUBE (its PID) and SAMPLE_NS /
# SAMPLE_POD (a pod it serves).
start_kube() { # NODES CHURN
    "$BIN/scale_kube" --nodes "$1" --listen 127.0.0.1:$KPORT --churn-per-1000-nodes "$2" \
        > "$TMP/kube.out" 2> "$TMP/kube.err" &
    KUBE=$!
    for _ in $(seq 300); do
        grep -q '^sample pod' "$TMP/kube.out" 2>/dev/null && break
        sleep 0.1
    done
    read -r _ _ SAMPLE_NS SAMPLE_POD < <(grep '^sample pod' "$TMP/kube.out")
}

# Ready: an Explain of the sample pod through the aggregator at URL names
# no gap of a watcher (pods, node, events, pvcs: syncing or failing).
kube_ready() { # URL
    "$BIN/gpuscope" --aggregator "$1" -o json explain "$SAMPLE_POD" -n "$SAMPLE_NS" 2>/dev/null |
        python3 -c 'import json, sys
gaps = json.load(sys.stdin).get("gaps", [])
sys.exit(1 if [g for g in gaps if g.get("what") in ("pods", "node", "events", "pvcs")] else 0)' 2>/dev/null
}
