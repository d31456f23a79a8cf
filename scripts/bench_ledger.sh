#!/usr/bin/env bash
# Ledger + consensus throughput on a local 4-validator network (one
# process, authenticated p2p over loopback TCP, real storage): finalized
# transactions per second, block time and submit-to-finalized latency at a
# few offered loads. Usage: bash scripts/bench_ledger.sh [RATE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p glassbox-node --example throughput
rates=("$@")
[ ${#rates[@]} -eq 0 ] && rates=(1000 3000 5000)
for rate in "${rates[@]}"; do
  echo
  echo "## offered ${rate} tx/s for 8 s"
  ./target/release/examples/throughput $((rate * 8)) "$rate" 4
done
