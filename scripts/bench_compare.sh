#!/usr/bin/env bash
# Prints a table: glassbox beside onnxruntime and tract on the same models and
# inputs, measured in the same run, single-thread and all-threads, as ratios
# of medians, plus each runtime's peak memory.
#
#   bash scripts/bench_compare.sh [REPEAT]        (default REPEAT=10)
#
# Models: resnet50 and squeezenet from the ONNX wheel's light models with
# seeded random weights (scripts/random_weights.py), magika (the trained model
# inside the `magika` wheel from PyPI), bert (a BERT-layout encoder, hidden
# 256, 4 layers, seeded random weights: scripts/make_bert.py --seed 0, into
# target/bench/bert.onnx), the repo's mnist-cnn, and any NAME=PATH.onnx pairs
# in $BENCH_EXTRA. Symbolic dims whose name contains "seq" are bound to
# $BENCH_SEQ, default 128, other symbolic dims to 1 (bert: batch 1, seq 128).
# Every runtime reads the same .npy inputs: floats get the pattern
# ((i * 7919 + 13) % 2000) / 1000 - 1, integers (token ids, bytes, masks)
# (i * 7919 + 13) % 2, valid for any vocabulary.
#
# glassbox is the runtime alone (crates/runtime/benches/exec.rs, the
# same Session as `glassbox exec`, trace hashing included); onnxruntime comes
# from its PyPI wheel (in target/benchenv), tract from crates.io (bench/,
# outside the workspace; it runs single-threaded). Peak memory is the max RSS
# of the timing process at 1 thread (GNU time), so it includes the Python
# interpreter for onnxruntime.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPEAT="${1:-10}"
THREADS_ALL="$(nproc)"
SEQ="${BENCH_SEQ:-128}"
MAGIKA_VERSION=0.6.2

scripts/setup-python.sh
target/pyenv/bin/python scripts/gen_conformance.py >/dev/null
if [ ! -x target/benchenv/bin/python ]; then
  python3 -m venv target/benchenv
fi
target/benchenv/bin/pip install -q -r scripts/requirements-bench.txt

mkdir -p target/onnx-tests/random target/bench
for m in squeezenet resnet50; do
  out="target/onnx-tests/random/${m}-seed0.onnx"
  [ -f "$out" ] || target/pyenv/bin/python scripts/random_weights.py \
    "target/onnx-tests/light/${m}/model.onnx" "$out" --seed 0 >/dev/null
done
# magika's model, from its wheel (no install: only the .onnx file is used).
if [ ! -f target/bench/magika.onnx ]; then
  if target/benchenv/bin/pip download -q "magika==${MAGIKA_VERSION}" --no-deps -d target/bench/wheels; then
    target/benchenv/bin/python - "$MAGIKA_VERSION" <<'PY' || echo "magika: could not extract the model" >&2
import glob, sys, zipfile
whl = glob.glob(f"target/bench/wheels/magika-{sys.argv[1]}-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    data = z.read("magika/models/standard_v3_3/model.onnx")
open("target/bench/magika.onnx", "wb").write(data)
PY
  else
    echo "magika: PyPI unreachable, skipping it" >&2
  fi
fi

# The BERT-layout encoder (rewritten when make_bert.py changes).
if [ ! -f target/bench/bert.onnx ] || [ scripts/make_bert.py -nt target/bench/bert.onnx ]; then
  target/pyenv/bin/python scripts/make_bert.py target/bench/bert.onnx --seed 0 >/dev/null
fi

GB="$(cargo bench --no-run -p glassbox-runtime --bench exec 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n 1)"
[ -x "$GB" ] || { echo "bench_compare: could not build the exec bench" >&2; exit 1; }
cargo build --release -q --manifest-path bench/Cargo.toml
TRACT=bench/target/release/glassbox-bench-tract

MODELS=("squeezenet=target/onnx-tests/random/squeezenet-seed0.onnx"
        "resnet50=target/onnx-tests/random/resnet50-seed0.onnx")
[ -f target/bench/magika.onnx ] && MODELS+=("magika=target/bench/magika.onnx")
MODELS+=("bert=target/bench/bert.onnx")
MODELS+=("mnist-cnn=models/mnist-cnn.onnx")
for e in ${BENCH_EXTRA:-}; do MODELS+=("$e"); done

json_field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d$1)"; }
# Runs a command; prints its median run time in ms ("nan" if it failed) and
# its max RSS in KiB ("-" without GNU time).
timed() {
  local tf out peak=- med=nan
  tf="$(mktemp)"
  if [ -x /usr/bin/time ]; then
    out="$(/usr/bin/time -f '%M' -o "$tf" "$@" 2>>target/bench/errors.log)" || out=""
    peak="$(tail -1 "$tf")"
  else
    out="$("$@" 2>>target/bench/errors.log)" || out=""
  fi
  rm -f "$tf"
  [ -n "$out" ] && med="$(echo "$out" | json_field "['run_median_ms']")"
  echo "$med $peak"
}

: >target/bench/errors.log
printf '%-12s %3s %11s %9s %9s %8s %9s %7s %7s %7s %8s\n' \
  model thr glassbox_ms ort_ms tract_ms gb/ort gb/tract gb_MiB ort_MiB trc_MiB gb/ortMB
for entry in "${MODELS[@]}"; do
  name="${entry%%=*}"; model="${entry#*=}"
  # The shared inputs, one .npy per graph input.
  dir="target/bench/inputs/${name}"
  mkdir -p "$dir"
  target/pyenv/bin/python - "$model" "$dir" "$SEQ" <<'PY'
import sys, numpy as np, onnx
m = onnx.load(sys.argv[1], load_external_data=False)
inits = {i.name for i in m.graph.initializer}
types = {1: np.float32, 11: np.float64, 7: np.int64, 6: np.int32, 9: np.bool_}
for k, x in enumerate(i for i in m.graph.input if i.name not in inits):
    t = x.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else
             (int(sys.argv[3]) if "seq" in d.dim_param.lower() else 1) for d in t.shape.dim]
    n = int(np.prod(shape))
    p = (np.arange(n, dtype=np.int64) * 7919 + 13)
    if t.elem_type in (1, 11):
        data = ((p % 2000).astype(np.float64) / 1000.0 - 1.0).astype(types[t.elem_type])
    else:
        data = (p % 2).astype(types[t.elem_type])
    np.save(f"{sys.argv[2]}/input_{k}.npy", data.reshape(shape))
PY
  inputs=("$dir"/input_*.npy)
  for thr in 1 "$THREADS_ALL"; do
    read -r gb gb_peak < <(timed $GB "$model" "$REPEAT" "$thr" "${inputs[@]}")
    read -r ort ort_peak < <(timed target/benchenv/bin/python scripts/bench_ort.py "$model" "$REPEAT" "$thr" "${inputs[@]}")
    if [ "$thr" = 1 ]; then
      read -r tract tract_peak < <(timed $TRACT "$model" "$REPEAT" "${inputs[@]}")
    else
      tract=nan; tract_peak=-
    fi
    python3 - "$name" "$thr" "$gb" "$ort" "$tract" "$gb_peak" "$ort_peak" "$tract_peak" <<'PY'
import sys
name, thr, gb, ort, tract, *peaks = sys.argv[1:]
gb, ort, tract = float(gb), float(ort), float(tract)
r = lambda a, b: f"{a / b:.2f}x" if a == a and b == b and b > 0 else "-"
t = lambda v, w: f"{v:{w}.2f}" if v == v else f"{'-':>{w}}"
mib = [int(p) / 1024 if p.isdigit() else float("nan") for p in peaks]
m = lambda v: f"{v:7.0f}" if v == v else f"{'-':>7}"
print(f"{name:<12} {thr:>3} {t(gb, 11)} {t(ort, 9)} {t(tract, 9)} {r(gb, ort):>8} {r(gb, tract):>9}"
      f" {m(mib[0])} {m(mib[1])} {m(mib[2])} {r(mib[0], mib[1]) if thr == '1' else '-':>8}")
PY
  done
done
echo "(times: medians of $REPEAT runs; ratios: glassbox / peer, below 1.00x glassbox is faster;"
echo " peak memory: max RSS of the timing process; failures, if any, in target/bench/errors.log)"
