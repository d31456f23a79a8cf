#!/usr/bin/env python3
"""Rewrites a light model (weights stored as ConstantOfShape constants) into
one with seeded random initializers of the same shapes, for benchmarks and
golden tests. Deterministic: the same input and seed give the same bytes.

    target/pyenv/bin/python scripts/random_weights.py IN OUT --seed S

Each float ConstantOfShape node whose shape is an initializer becomes an
initializer, scaled by what consumes it (following Unsqueeze/Reshape/...):
Conv/Gemm/MatMul weights He-normal (normal * sqrt(2 / fan_in); a classifier
feeding Softmax normal * 0.1 * sqrt(1 / fan_in)), BatchNorm
scale and variance uniform in [0.5, 1.5] (variance positive; the scale of a
BatchNorm feeding a residual Sum/Add uniform in [0.1, 0.3]), BatchNorm mean
and bias, and other biases, normal * 0.05; Mul operands uniform [0.5, 1.5];
anything else normal * 0.05. Initializers that already hold values are kept;
the shape initializers are dropped and IR 3 files are raised to IR 4.
Write OUT under target/ (generated files are not checked in).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

PASS_THROUGH = {"Unsqueeze", "Squeeze", "Reshape", "Flatten", "Transpose", "Identity", "Cast"}


def consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    out: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for n in graph.node:
        for k, name in enumerate(n.input):
            out.setdefault(name, []).append((n, k))
    return out


def role(name: str, users, depth: int = 0) -> tuple[onnx.NodeProto | None, int]:
    """The first non-reshaping consumer of `name` and the input slot it feeds."""
    for node, k in users.get(name, []):
        if node.op_type in PASS_THROUGH and k == 0 and depth < 8:
            found = role(node.output[0], users, depth + 1)
            if found[0] is not None:
                return found
            continue
        return node, k
    return None, -1


def attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def fan_in(shape: tuple[int, ...], node: onnx.NodeProto) -> int:
    if node.op_type == "Gemm" and len(shape) == 2:
        return shape[1] if attr(node, "transB", 0) else shape[0]
    if node.op_type == "MatMul" and len(shape) >= 2:
        return shape[-2]
    return max(1, int(np.prod(shape[1:])) if len(shape) > 1 else int(np.prod(shape)))


def values(rng: np.random.RandomState, shape, node, k: int, residual: bool, head: bool) -> np.ndarray:
    op = node.op_type if node is not None else ""
    if op in ("Gemm", "MatMul") and k == 1 and head:
        # Classifier feeding Softmax: small logits keep the softmax unsaturated.
        return rng.standard_normal(shape) * 0.1 * np.sqrt(1.0 / fan_in(shape, node))
    if (op in ("Conv", "ConvTranspose", "Gemm", "MatMul") and k == 1) or (op == "MatMul" and k == 0):
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in(shape, node))
    if op == "BatchNormalization" and k == 1 and residual:
        # Last BatchNorm of a residual branch: keep the sum from blowing up.
        return rng.uniform(0.1, 0.3, shape)
    if op == "BatchNormalization" and k in (1, 4):  # scale, variance (> 0)
        return rng.uniform(0.5, 1.5, shape)
    if op in ("Mul", "Div", "PRelu"):
        return rng.uniform(0.5, 1.5, shape)
    return rng.standard_normal(shape) * 0.05


def rewrite(model: onnx.ModelProto, seed: int) -> tuple[onnx.ModelProto, int]:
    rng = np.random.RandomState(seed)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    users = consumers(g)
    keep, new_inits, replaced = [], [], 0
    for n in g.node:
        value = next((a.t for a in n.attribute if a.name == "value"), None)
        dtype = value.data_type if value is not None else onnx.TensorProto.FLOAT
        if n.op_type != "ConstantOfShape" or n.input[0] not in inits or dtype not in (
            onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE
        ):
            keep.append(n)
            continue
        shape = tuple(int(d) for d in numpy_helper.to_array(inits[n.input[0]]))
        node, k = role(n.output[0], users)
        np_dtype = np.float32 if dtype == onnx.TensorProto.FLOAT else np.float64
        residual = node is not None and any(
            u.op_type in ("Sum", "Add") for u, _ in users.get(node.output[0], [])
        )
        head = node is not None and any(
            u.op_type == "Softmax" for u, _ in users.get(node.output[0], [])
        )
        a = values(rng, shape, node, k, residual, head).astype(np_dtype)
        new_inits.append(numpy_helper.from_array(a, n.output[0]))
        replaced += 1
    del g.node[:]
    g.node.extend(keep)
    g.initializer.extend(new_inits)
    # Drop shape initializers nothing reads any more.
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    live = [t for t in g.initializer if t.name in used]
    dropped = {t.name for t in g.initializer if t.name not in used}
    del g.initializer[:]
    g.initializer.extend(live)
    # IR >= 4 lets initializers stand apart from graph inputs: list only the
    # real inputs (IR 3 files also list every initializer as an input).
    names = {t.name for t in g.initializer} | dropped
    real = [i for i in g.input if i.name not in names]
    del g.input[:]
    g.input.extend(real)
    model.ir_version = max(model.ir_version, 4)
    return model, replaced


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model, replaced = rewrite(onnx.load(str(args.input)), args.seed)
    onnx.checker.check_model(model)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(model.SerializeToString(deterministic=True))
    size = args.output.stat().st_size
    print(f"random_weights: {replaced} constants -> seeded initializers "
          f"(seed {args.seed}), {size} bytes to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
