#!/usr/bin/env bash
# Ledger + consensus throughput on a local 4-validator network (one
# process, authenticated p2p over loopback TCP, real storage): finalized
# transactions per second, block time and submit-to-finalized latency at a
# few offered loads. Usage: bash scripts/bench_ledger.sh [RATE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(cargo bench --no-run -p glassbox-node --bench throughput 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n 1)"
[ -x "$BIN" ] || { echo "bench_ledger: could not build the throughput bench" >&2; exit 1; }
rates=("$@")
[ ${#rates[@]} -eq 0 ] && rates=(1000 3000 5000)
for rate in "${rates[@]}"; do
  echo
  echo "## offered ${rate} tx/s for 8 s"
  "$BIN" $((rate * 8)) "$rate" 4
done
