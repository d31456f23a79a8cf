#!/usr/bin/env bash
# Verified inference on a local 4-validator network (one process, each
# validator also a staked executor, loopback TCP, storage in
# target/jobs-bench):
# publishes models/mlp.onnx, then
#   - latency: J jobs one at a time (k replicas), submit -> final and
#     submit -> verified receipt p50/p99, and the median block time;
#   - throughput: jobs offered at R/s for D s from M requesters over the 4
#     nodes' APIs, every receipt verified: verified jobs/s and p50/p99
#     under load (latency counted from each job's due time);
#   - the same model's plain execution time (Session::run, as
#     `glassbox exec`) and Receipt::verify's time on one receipt.
# Prints a markdown table beside the goals (p50 <= exec + 2 block times,
# 500 verified jobs/s, receipt check <= 1 ms).
#
# Usage: bash scripts/bench_jobs.sh [OPTIONS]
#   --jobs J          latency-run jobs (default 50; 0 skips the run)
#   --rate R          offered jobs/s of the throughput run (default 500; 0 skips)
#   --duration D      seconds of submission (default 10)
#   --requesters M    funded requester accounts (default 64)
#   --replicas K      executors per job (default 3)
#   --threads T       the network's runtime worker threads (default 2)
#   --exec-runs N     plain runs timed (default 2000)
#   --verify-runs N   receipt verifications timed (default 200)
#   --model FILE --input FILE   (default models/mlp.onnx, models/mlp.input.json)
#   --data-dir DIR    the network's storage (default target/jobs-bench, wiped first)
#   --verify-inline   verify each receipt as it arrives, under load (default:
#                     after the run, so the client does not take the
#                     network's cores; only verified jobs count either way)
# GLASSBOX_LOG=info shows the nodes' logs (default warn).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -q -p glassbox-node --bench jobs -- "$@"
