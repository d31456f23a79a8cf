#!/usr/bin/env bash
# The fault campaign across processes (issue #27; docs/operations.md
# "Fault campaign"): four `glassbox node` validators and an executor-only
# full node under a steady load of 1- and 3-replica jobs, while seeded
# faults SIGKILL and restart one node, two at once (no quorum until they
# return), or a node whose storage is wiped, or SIGSTOP one or two for
# seconds. Checks that no two nodes finalize different
# blocks at a height, no node's finalized height goes back, finalization
# resumes within 30 s of the nodes' return, and every job ends Final or
# Failed with its escrow settled. Prints one JSON line {"jobs_submitted",
# "jobs_final", "jobs_failed", "faults_injected", "violations",
# "max_stall_ms", "max_recovery_ms", ...} and exits non-zero on a
# violation. CI runs two minutes of it (crates/cli/tests/chaos.rs).
#
#   bash scripts/chaos.sh [--minutes M] [--seed S] [--logs DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

minutes=30 seed=1 logs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --logs) logs="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "chaos.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

export GLASSBOX_CHAOS_SECS=$(( minutes * 60 )) GLASSBOX_CHAOS_SEED="$seed"
if [ -n "$logs" ]; then export GLASSBOX_CHAOS_LOGS="$logs"; fi
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
status=0
cargo test -q -p glassbox-cli --test chaos -- --nocapture --test-threads 1 > "$out" 2>&1 || status=$?
grep -E '^\{"' "$out" || true
if [ "$status" -ne 0 ]; then
  sed -n '/panicked/,$p' "$out" >&2
fi
exit "$status"
