#!/usr/bin/env bash
# Prints a table: glassbox beside onnxruntime and tract on the same models and
# input, measured in the same run, single-thread and all-threads, as ratios.
#
#   bash scripts/bench_compare.sh [REPEAT]        (default REPEAT=10)
#
# Models: resnet50 and squeezenet from the ONNX wheel's light models with
# seeded random weights (scripts/random_weights.py), plus the repo's mnist-cnn.
# onnxruntime comes from its PyPI wheel (in target/benchenv), tract from
# crates.io (bench/, outside the workspace). Peak memory is the max RSS of
# the process, from /usr/bin/time when available.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPEAT="${1:-10}"
THREADS_ALL="$(nproc)"

scripts/setup-python.sh
target/pyenv/bin/python scripts/gen_conformance.py >/dev/null
if [ ! -x target/benchenv/bin/python ]; then
  python3 -m venv target/benchenv
fi
target/benchenv/bin/pip install -q -r scripts/requirements-bench.txt

mkdir -p target/onnx-tests/random
for m in squeezenet resnet50; do
  out="target/onnx-tests/random/${m}-seed0.onnx"
  [ -f "$out" ] || target/pyenv/bin/python scripts/random_weights.py \
    "target/onnx-tests/light/${m}/model.onnx" "$out" --seed 0 >/dev/null
done

cargo build --release -q -p glassbox-cli
cargo build --release -q --manifest-path bench/Cargo.toml
GB=target/release/glassbox
TRACT=bench/target/release/glassbox-bench-tract

json_field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d$1)"; }
peak_kb() {  # prints the max RSS in KiB of a command, or "-" without GNU time
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1
  else
    echo "-"
  fi
}

printf '%-22s %3s %12s %12s %12s %10s %10s %10s\n' model thr glassbox_ms ort_ms tract_ms gb/ort gb/tract gb_peak_MiB
for m in squeezenet resnet50 mnist-cnn; do
  if [ "$m" = mnist-cnn ]; then model=models/mnist-cnn.onnx; else model="target/onnx-tests/random/${m}-seed0.onnx"; fi
  for thr in 1 "$THREADS_ALL"; do
    # The shared input pattern (the same formula tract and onnxruntime use).
    inp="target/onnx-tests/random/${m}.pattern.npy"
    if [ ! -f "$inp" ]; then
      target/pyenv/bin/python - "$model" "$inp" <<'PY'
import sys, numpy as np, onnx
m = onnx.load(sys.argv[1], load_external_data=False)
inits = {i.name for i in m.graph.initializer}
x = [i for i in m.graph.input if i.name not in inits][0]
shape = [d.dim_value for d in x.type.tensor_type.shape.dim]
n = int(np.prod(shape))
data = ((np.arange(n, dtype=np.int64) * 7919 + 13) % 2000).astype(np.float32) / 1000.0 - 1.0
np.save(sys.argv[2], data.reshape(shape))
PY
    fi
    gb="$($GB exec "$model" --input "$inp" --repeat "$REPEAT" --threads "$thr" --json | json_field "['timing_ms']['run_median']")"
    ort="$(target/benchenv/bin/python scripts/bench_ort.py "$model" "$REPEAT" "$thr" | json_field "['run_median_ms']")"
    if [ "$thr" = 1 ]; then
      tract="$($TRACT "$model" "$REPEAT" | json_field "['run_median_ms']")"
    else
      tract="nan"  # tract runs single-threaded
    fi
    peak="$(peak_kb $GB exec "$model" --input "$inp" --threads "$thr")"
    python3 - "$m" "$thr" "$gb" "$ort" "$tract" "$peak" <<'PY'
import sys
m, thr, gb, ort, tract, peak = sys.argv[1:]
gb, ort, tract = float(gb), float(ort), float(tract)
r = lambda a, b: f"{a / b:.2f}x" if b == b and b > 0 else "-"
peak = f"{int(peak) / 1024:.0f}" if peak.isdigit() else "-"
t = f"{tract:12.2f}" if tract == tract else f"{'-':>12}"
print(f"{m:<22} {thr:>3} {gb:12.2f} {ort:12.2f} {t} {r(gb, ort):>10} {r(gb, tract):>10} {peak:>10}")
PY
  done
done
echo "(ratios: glassbox time / peer time; below 1.00x glassbox is faster)"
