#!/usr/bin/env bash
# Creates (idempotently) the Python venv at target/pyenv with the pinned tools
# from scripts/requirements.txt. Reinstalls only when the requirements change.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/pyenv"
req="$root/scripts/requirements.txt"
stamp="$venv/.requirements.stamp"

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup-python: creating venv at target/pyenv" >&2
    if ! python3 -m venv "$venv"; then
        echo "setup-python: error: 'python3 -m venv' failed (install python3-venv?)" >&2
        exit 1
    fi
fi

echo "setup-python: installing $(grep -v '^#' "$req" | xargs)" >&2
rm -f "$stamp"
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$req"; then
    echo "setup-python: error: pip install -r scripts/requirements.txt failed" \
        "(is the package index reachable?)" >&2
    exit 1
fi
echo "$want" >"$stamp"
