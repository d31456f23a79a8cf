#!/usr/bin/env bash
# The project's test command: prepares the Python tools and the ONNX
# conformance data (both cached), then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-python.sh
target/pyenv/bin/python scripts/gen_conformance.py
cargo test --workspace "$@"
