#!/usr/bin/env bash
# Restart time of a validator against the length of its chain (issue #27,
# docs/operations.md "Snapshots").
#
#   bash scripts/restart_bench.sh [--blocks N] [--validators V] [--dir D]
#
# Runs `glassbox dev` (V validators in one process, default 1: the fastest
# block producer, ~240 empty blocks/s on 2 cores) until N blocks are
# finalized (default 100000; an existing D at or past N is reused), kills
# it with SIGKILL, and restarts it twice on the same data:
#   snapshot: as a node restarts (newest state snapshot + the tail);
#   genesis:  with the snapshots moved away (every block replayed: the
#             restart before snapshots).
# For each it times, from the process start, the API's first answer, the
# end of the restart replay (`ready`) and the first block finalized past
# the old tip, and prints one JSON line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

blocks=100000 validators=1 dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --blocks) blocks="$2"; shift 2 ;;
    --validators) validators="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "restart_bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
dir="${dir:-target/restart-bench-$validators-$blocks}"
port=18645
url="http://127.0.0.1:$port/v1/status"

cargo build -q --release -p glassbox-cli
bin=target/release/glassbox

now_ms() { date +%s%3N; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])" 2>/dev/null; }
height() { curl -s --max-time 1 "$url" | field finalized_height || true; }

pid=""
start() {
  "$bin" dev --validators "$validators" --data-dir "$dir" --http "127.0.0.1:$port" \
    > "$dir.log" 2>&1 &
  pid=$!
}
stop() {
  kill -9 "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
}
trap stop EXIT

# Grow the chain to N blocks.
start
while :; do
  h="$(height)"
  if [ -n "$h" ] && [ "$h" -ge "$blocks" ]; then break; fi
  if ! kill -0 "$pid" 2> /dev/null; then
    echo "restart_bench.sh: glassbox dev exited; see $dir.log" >&2
    exit 1
  fi
  sleep 1
done
sleep 2
tip="$(height)"
stop

# One restart: prints {"api_ms","ready_ms","first_block_ms","restored_from"}
# and leaves the last height seen in $dir.tip.
restart() {
  local t0 api="" ready="" first="" s h last="$1"
  t0="$(now_ms)"
  start
  while [ -z "$first" ]; do
    s="$(curl -s --max-time 1 "$url" || true)"
    if [ -n "$s" ]; then
      [ -z "$api" ] && api=$(( $(now_ms) - t0 ))
      if [ -z "$ready" ] && [ "$(echo "$s" | field ready)" = "True" ]; then
        ready=$(( $(now_ms) - t0 ))
      fi
      h="$(echo "$s" | field finalized_height)"
      if [ -n "$ready" ] && [ -n "$h" ] && [ "$h" -gt "$last" ]; then
        first=$(( $(now_ms) - t0 ))
      fi
    fi
    if [ $(( $(now_ms) - t0 )) -gt 1800000 ]; then
      echo "restart_bench.sh: no new block within 30 minutes" >&2
      exit 1
    fi
    sleep 0.02
  done
  sleep 1
  height > "$dir.tip"
  local from
  from="$(sed 's/\x1b\[[0-9;]*m//g' "$dir.log" | grep -o 'started from a state snapshot height=[0-9]*' | grep -o '[0-9]*$' | head -1 || true)"
  stop
  echo "{\"api_ms\":$api,\"ready_ms\":$ready,\"first_block_ms\":$first,\"restored_from\":${from:-0}}"
}

snap="$(restart "$tip")"
aside="$dir.snapshots-aside"
rm -rf "$aside"
mkdir -p "$aside"
for p in "$dir"/storage/*-snapshots; do
  [ -e "$p" ] && mv "$p" "$aside/"
done
gen="$(restart "$(cat "$dir.tip")")"
mv "$aside"/* "$dir/storage/" 2> /dev/null || true
rm -rf "$aside"
echo "{\"blocks\":$tip,\"validators\":$validators,\"snapshot\":$snap,\"genesis\":$gen}"
