#!/usr/bin/env bash
# The adversary campaign (issue #25; docs/disputes.md, "Threat model and
# properties"): seeded adversarial jobs through real signed transactions,
# admission and apply_block on the ledger with a synthetic model's referee.
# Adversaries hold 1 to 4 of 5 executors, lie with a shared wrong trace
# (wrong outputs, a failure claimed where the run works, or on the one
# input in five where an operator fails, outputs or a revived failed
# trace), pre-empt pending results with silent challenges, stay silent or
# flood openings in games; honest parties always play. After every block the
# supply must be conserved; at the end of each job P1 (an honest party
# took part: the honest result is final) and P2 (no honest executor lost
# stake, every honest challenger got its bond back). Prints one JSON line
# {"jobs", "games", "seeds", "first_seed", "violations", "jobs_per_s"}
# and exits non-zero on any violation, naming the seed and job. CI runs a
# short version of the same test.
#
#   bash scripts/adversary.sh [--jobs N] [--seeds M] [--seed S]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=10000 seeds=100 seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "adversary.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
GLASSBOX_ADV_JOBS="$jobs" GLASSBOX_ADV_SEEDS="$seeds" GLASSBOX_ADV_SEED="$seed" \
  cargo test -q -p glassbox-ledger --test disputes adversary_campaign -- --exact --nocapture 2>&1 \
  | grep -v -E '^(running |test |test result|\.*$)'
