#!/usr/bin/env bash
# The long consensus simulation: 4 validators on Commonware's deterministic
# runtime with production view retention, a steady transfer load, crashes
# and restarts from storage and partitions, through VIEWS views (20,000 by
# default; CI runs a short version of the same test). It fails on a safety
# violation, a journal that is not pruned, or a panic in the engine (such
# as `unable to prune journal`).
#
#   bash scripts/long_sim.sh [VIEWS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

views="${1:-20000}"
start=$(date +%s)
GLASSBOX_SIM_VIEWS="$views" cargo test -p glassbox-node --test simulation \
  consensus_runs_through_many_views_under_load_and_faults_without_a_journal_panic \
  -- --exact --nocapture
echo "long_sim: $views views in $(( $(date +%s) - start )) s (build included)"
