#!/usr/bin/env python3
"""Writes the ONNX backend conformance data the Rust harness reads.

Run with the venv from scripts/setup-python.sh:

    target/pyenv/bin/python scripts/gen_conformance.py [--out target/onnx-tests]

Layout (the standard ONNX backend-test layout, plus a meta.json per case):

    node/<name>/model.onnx
    node/<name>/meta.json                      {"rtol": .., "atol": ..}
    node/<name>/test_data_set_N/input_I.pb     TensorProto
    node/<name>/test_data_set_N/output_I.pb    TensorProto
    node-skipped.json                          cases with non-tensor values
    light/<name>/model.onnx, meta.json, test_data_set_0/{input_0,output_0}.pb

Node cases come from onnx.backend.test.case.node.collect_testcases() (the
wheel ships no node data); numpy's global RNG is seeded first so the data is
the same on every machine. Light models come from the wheel's
onnx/backend/test/data/light, with the input generated exactly as onnx's own
runner does (Runner.generate_dummy_data). A stamp keyed on the onnx version
and this script makes reruns instant.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import warnings
from pathlib import Path

from importlib.metadata import version

ROOT = Path(__file__).resolve().parent.parent
STAMP = ".stamp"


def stamp_text() -> str:
    script = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return f"onnx={version('onnx')} numpy={version('numpy')} script={script}\n"


def is_plain_tensor_type(vi) -> bool:
    return vi.type.HasField("tensor_type")


def tensor_bytes(value, name: str) -> bytes | None:
    """Serialized TensorProto for a plain tensor value, else None."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        return value.SerializeToString()
    if isinstance(value, np.ndarray) or np.isscalar(value):
        return numpy_helper.from_array(np.asarray(value), name).SerializeToString()
    return None


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, sort_keys=True) + "\n")


def gen_node(out: Path) -> tuple[int, list[dict]]:
    # Many case generators draw from numpy's global RNG (and a few from
    # `random`): seed both so the data is reproducible.
    import numpy as np
    from onnx.backend.test.case import node as node_cases

    np.random.seed(0)
    random.seed(0)
    with warnings.catch_warnings():
        # Some generators overflow or divide by zero on purpose.
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases()
    written = 0
    skipped: list[dict] = []
    seen: set[str] = set()
    for case in cases:
        if case.name in seen:
            skipped.append({"name": case.name, "reason": "duplicate case name"})
            continue
        seen.add(case.name)
        model = case.model
        reason = None
        if model is None or not case.data_sets:
            reason = "no model or data"
        else:
            g = model.graph
            bad = [vi.name for vi in list(g.input) + list(g.output)
                   if not is_plain_tensor_type(vi)]
            if bad:
                reason = f"non-tensor graph values: {', '.join(bad)}"
        sets: list[tuple[list[bytes], list[bytes]]] = []
        if reason is None:
            g = model.graph
            for inputs, outputs in case.data_sets:
                if len(inputs) > len(g.input) or len(outputs) > len(g.output):
                    reason = "more values than graph inputs/outputs"
                    break
                ins = [tensor_bytes(v, g.input[i].name) for i, v in enumerate(inputs)]
                outs = [tensor_bytes(v, g.output[i].name) for i, v in enumerate(outputs)]
                if any(b is None for b in ins + outs):
                    reason = "non-tensor input or output value"
                    break
                sets.append((ins, outs))
        if reason is not None:
            skipped.append({"name": case.name, "reason": reason})
            continue
        d = out / "node" / case.name
        d.mkdir(parents=True)
        (d / "model.onnx").write_bytes(model.SerializeToString())
        write_json(d / "meta.json", {"rtol": float(case.rtol), "atol": float(case.atol)})
        for n, (ins, outs) in enumerate(sets):
            sd = d / f"test_data_set_{n}"
            sd.mkdir()
            for i, b in enumerate(ins):
                (sd / f"input_{i}.pb").write_bytes(b)
            for i, b in enumerate(outs):
                (sd / f"output_{i}.pb").write_bytes(b)
        written += 1
    write_json(out / "node-skipped.json", skipped)
    return written, skipped


def gen_light(out: Path) -> int:
    import onnx
    from onnx import numpy_helper
    from onnx.backend.test.case import model as model_cases
    from onnx.backend.test.runner import Runner

    onnx_dir = Path(onnx.__file__).resolve().parent
    written = 0
    for case in model_cases.collect_testcases():
        if case.kind != "real" or not (case.url or "").startswith(
            "onnx/backend/test/data/light/"
        ):
            continue
        src = onnx_dir.parent / case.url
        name = case.model_name
        expected = src.with_name(f"light_{name}_output_0.pb")
        model = onnx.load(str(src))
        d = out / "light" / name
        sd = d / "test_data_set_0"
        sd.mkdir(parents=True)
        shutil.copyfile(src, d / "model.onnx")
        inits = {i.name for i in model.graph.initializer}
        n_input = 0
        for x in model.graph.input:
            if x.name in inits:
                continue
            value = Runner.generate_dummy_data(x, seed=0, name=name, random=False)
            (sd / f"input_{n_input}.pb").write_bytes(
                numpy_helper.from_array(value).SerializeToString()
            )
            n_input += 1
        shutil.copyfile(expected, sd / "output_0.pb")
        write_json(d / "meta.json", {"rtol": float(case.rtol), "atol": float(case.atol)})
        written += 1
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "target" / "onnx-tests"),
                    help="output directory (default: %(default)s)")
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = ap.parse_args()
    out = Path(args.out)
    want = stamp_text()
    stamp = out / STAMP
    if not args.force and stamp.is_file() and stamp.read_text() == want:
        summary = json.loads((out / "summary.json").read_text())
        print(f"gen_conformance: cached in {out}: {summary['line']}")
        return 0

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    nodes, skipped = gen_node(tmp)
    lights = gen_light(tmp)
    line = (f"{nodes} node cases ({len(skipped)} skipped: non-tensor values), "
            f"{lights} light models, onnx {version('onnx')}")
    write_json(tmp / "summary.json", {"node": nodes, "node_skipped": len(skipped),
                                      "light": lights, "line": line})
    (tmp / STAMP).write_text(want)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    print(f"gen_conformance: wrote {out}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
