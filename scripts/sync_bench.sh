#!/usr/bin/env bash
# State sync of a new validator against chain length (issue #27,
# docs/operations.md "State sync").
#
#   bash scripts/sync_bench.sh [--blocks N] [--dir D]
#
# Writes a 4-validator network (`glassbox dev --init-only`), runs each
# validator as its own `glassbox node` process until N blocks are
# finalized (default 100000), then kills validator 3 with SIGKILL, wipes
# its storage (a new machine with the same key) and starts it again. It
# times, from that start, the node's first API answer, its readiness
# (state synced from a peer's snapshot), and the moment it finalizes a
# block at or past the height the others had when it started (it
# follows the chain), and prints one JSON line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

blocks=100000 dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --blocks) blocks="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "sync_bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
dir="${dir:-target/sync-bench-$blocks}"
port=18745

cargo build -q --release -p glassbox-cli
bin=target/release/glassbox

now_ms() { date +%s%3N; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])" 2>/dev/null; }
status() { curl -s --max-time 1 "http://127.0.0.1:$((port + $1))/v1/status" || true; }
height() { status "$1" | field finalized_height || true; }

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

if [ ! -f "$dir/genesis.json" ]; then
  rm -rf "$dir"
  "$bin" dev --init-only --validators 4 --data-dir "$dir" --http "127.0.0.1:$port" > /dev/null
fi
for i in 0 1 2 3; do start "$i"; done
while :; do
  h="$(height 0)"
  if [ -n "$h" ] && [ "$h" -ge "$blocks" ]; then break; fi
  for i in 0 1 2 3; do
    if ! kill -0 "${pids[$i]}" 2> /dev/null; then
      echo "sync_bench.sh: validator $i exited; see $dir/validator-$i.log" >&2
      exit 1
    fi
  done
  sleep 2
done

# A new machine with validator 3's key.
kill -9 "${pids[3]}"
wait "${pids[3]}" 2> /dev/null || true
rm -rf "$dir/validator-3/storage" "$dir/validator-3/blobs" "$dir/validator-3/tensors"
tip="$(height 0)"
t0="$(now_ms)"
start 3
api="" ready="" follow=""
while [ -z "$follow" ]; do
  s="$(status 3)"
  if [ -n "$s" ]; then
    [ -z "$api" ] && api=$(( $(now_ms) - t0 ))
    if [ -z "$ready" ] && [ "$(echo "$s" | field ready)" = "True" ]; then
      ready=$(( $(now_ms) - t0 ))
    fi
    h="$(echo "$s" | field finalized_height)"
    if [ -n "$ready" ] && [ -n "$h" ] && [ "$h" -ge "$tip" ]; then
      follow=$(( $(now_ms) - t0 ))
    fi
  fi
  if [ $(( $(now_ms) - t0 )) -gt 1800000 ]; then
    echo "sync_bench.sh: validator 3 did not follow within 30 minutes" >&2
    exit 1
  fi
  sleep 0.05
done
from="$(sed 's/\x1b\[[0-9;]*m//g' "$dir/validator-3.log" | grep "started from a peer's state snapshot" | grep -o 'height=[0-9]*' | tail -1 | grep -o '[0-9]*' || echo 0)"
echo "{\"blocks\":$tip,\"api_ms\":$api,\"ready_ms\":$ready,\"follow_ms\":$follow,\"synced_from\":${from:-0}}"
