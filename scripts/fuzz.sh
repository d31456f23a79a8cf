#!/usr/bin/env bash
# Fuzzes every decoder of untrusted bytes (issue #27 item 7; ARCHITECTURE.md
# "Tests, tools and measurements") with cargo-fuzz and libFuzzer: one target
# per format in fuzz/fuzz_targets/, each seeded from its checked-in corpus
# fuzz/corpus/<target>/ (new inputs go to target/fuzz-corpus/<target>/,
# crashes to fuzz/artifacts/<target>/). Each target runs until N
# executions (default 10^7) or S seconds (--max-secs, default no limit),
# with a 2 GiB RSS limit, a 512 MiB limit per allocation and a 10 s limit
# per input, J targets at once; prints one JSON line per target
# {"target","execs","secs","execs_per_s","corpus","status"} and exits
# non-zero on a crash, hang or limit hit. Installs the nightly toolchain
# and cargo-fuzz when missing. CI only replays the corpora
# (crates/node/tests/fuzz_corpus.rs, part of `bash scripts/test.sh`).
#
#   bash scripts/fuzz.sh [--runs N] [--max-secs S] [--jobs J] [TARGET...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=10000000 max_secs=0 jobs=1 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --max-secs) max_secs="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

CARGO_FUZZ_VERSION=0.13.1
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# One build of every target first, so the timings below are runs only.
cargo +nightly fuzz build -O -a >/dev/null

run_one() {
  local t="$1" log work start status=ok
  work="target/fuzz-corpus/$t"
  log="target/fuzz-logs/$t.log"
  mkdir -p "$work" "$(dirname "$log")"
  start=$(date +%s)
  if ! cargo +nightly fuzz run -O -a "$t" "$work" "fuzz/corpus/$t" -- \
      -runs="$runs" -max_total_time="$max_secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
      -print_final_stats=1 > "$log" 2>&1; then
    status=failed
  fi
  local secs=$(( $(date +%s) - start ))
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  local corpus
  corpus=$(find "$work" -type f | wc -l)
  printf '{"target":"%s","execs":%s,"secs":%s,"execs_per_s":%s,"corpus":%s,"status":"%s","log":"%s"}\n' \
    "$t" "${execs:-0}" "$secs" "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "$corpus" "$status" "$log"
  [ "$status" = ok ]
}

status=0
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit "$status"
