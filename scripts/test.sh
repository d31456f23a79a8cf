#!/usr/bin/env bash
# The project's test command: prepares the Python tools, the ONNX
# conformance data and the real models with their onnxruntime reference
# outputs (all cached), then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-python.sh
target/pyenv/bin/python scripts/gen_conformance.py
# Real packaged models (magika, silero-vad from PyPI) and a BERT-layout
# encoder, with onnxruntime references (crates/runtime/tests/real_models.rs).
# After gen_conformance.py, which replaces target/onnx-tests when it changes.
target/pyenv/bin/python scripts/real_models.py
# A light model with seeded random (non-constant) weights, for the golden
# trace roots (crates/runtime/tests/golden.rs).
golden_model=target/onnx-tests/random/squeezenet-seed0.onnx
if [ ! -f "$golden_model" ]; then
  mkdir -p target/onnx-tests/random
  target/pyenv/bin/python scripts/random_weights.py \
    target/onnx-tests/light/squeezenet/model.onnx "$golden_model.tmp" --seed 0 >/dev/null
  mv "$golden_model.tmp" "$golden_model"
fi
cargo test --workspace "$@"
