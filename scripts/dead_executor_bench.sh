#!/usr/bin/env bash
# Job latency with a dead executor (issue #27 item 9, docs/jobs.md
# "Liveness").
#
#   bash scripts/dead_executor_bench.sh [--jobs N] [--dir D]
#
# Writes a 4-validator network (`glassbox dev --init-only`; every
# validator also runs a staked executor), runs each validator as its own
# `glassbox node` process, publishes models/mlp.onnx and runs N
# 3-replica jobs one after another (default 30): the healthy latency.
# Then it kills validator 3 (its executor with it) with SIGKILL and runs
# N more jobs through validator 0, restarts validator 3 and times how
# long its executor takes to be drawable again (its heartbeat lands). It
# prints one JSON line with the p50, p90 and max submit-to-final latency
# (ms) of both phases, as `glassbox infer --json` reports it, their p50
# ratio (issue goal: <= 2), the executors paused after the second phase
# and the restart-to-resumed time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=30 dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "dead_executor_bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
dir="${dir:-target/dead-executor-bench}"
port=18765

cargo build -q --release -p glassbox-cli
bin=target/release/glassbox
node="http://127.0.0.1:$port"

pids=()
start() {
  "$bin" node --config "$dir/validator-$1/node.toml" >> "$dir/validator-$1.log" 2>&1 &
  pids[$1]=$!
}
stop_all() {
  for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
}
trap stop_all EXIT

rm -rf "$dir"
"$bin" dev --init-only --validators 4 --data-dir "$dir" --http "127.0.0.1:$port" > /dev/null
for i in 0 1 2 3; do start "$i"; done
for _ in $(seq 1 600); do
  curl -sf --max-time 1 "$node/health" > /dev/null && break
  sleep 0.1
done
"$bin" model publish --node "$node" --key "$dir/dev.key" --name bench-mlp --version 1.0.0 \
  --license MIT models/mlp.onnx > /dev/null

# Runs N jobs and prints their latencies (ms), one per line.
phase() {
  for _ in $(seq 1 "$jobs"); do
    "$bin" infer --node "$node" --key "$dir/dev.key" --replicas 3 --json \
      bench-mlp@1.0.0 --input models/mlp.input.json |
      python3 -c "import json,sys; print(json.load(sys.stdin)['latency_ms'])"
  done
}
healthy="$(phase)"
kill -9 "${pids[3]}"
wait "${pids[3]}" 2> /dev/null || true
dead="$(phase)"
paused_count() {
  curl -s --max-time 2 "$node/v1/executors" |
    python3 -c "import json,sys; print(sum(e.get('paused_height') is not None for e in json.load(sys.stdin)['items']))"
}
paused="$(paused_count)"
t0="$(date +%s%3N)"
start 3
resumed=""
for _ in $(seq 1 1200); do
  if [ "$(paused_count)" = 0 ]; then resumed=$(( $(date +%s%3N) - t0 )); break; fi
  sleep 0.05
done
if [ -z "$resumed" ]; then
  echo "dead_executor_bench.sh: validator 3's executor was not resumed within 60 s" >&2
  exit 1
fi

python3 - "$healthy" "$dead" "$paused" "$resumed" << 'EOF'
import json, sys
def stats(text):
    xs = sorted(int(x) for x in text.split())
    at = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
    return {"p50": at(0.5), "p90": at(0.9), "max": xs[-1]}
h, d = stats(sys.argv[1]), stats(sys.argv[2])
print(json.dumps({"jobs": len(sys.argv[1].split()), "healthy_ms": h, "one_dead_ms": d,
                  "p50_ratio": round(d["p50"] / h["p50"], 2),
                  "paused_after": int(sys.argv[3]), "resumed_ms": int(sys.argv[4])}))
EOF
