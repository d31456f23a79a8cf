#!/usr/bin/env python3
"""Writes the small sample models checked into models/ (seeded, reproducible).

    target/pyenv/bin/python scripts/make_models.py [--out models]

models/mnist-cnn.onnx    Conv(1->8,3x3,pad 1) Relu MaxPool2 Conv(8->16,3x3)
                         Relu MaxPool2 Flatten Gemm(576->10) Softmax; opset 17;
                         input `image` float32 [1,1,28,28], output `probs` [1,10]
models/mnist-cnn.input.{json,npy}   a seeded 1x1x28x28 image (values k/256)
models/mlp.onnx          MatMul Add Relu MatMul Add -> Sigmoid (`y`) and
                         Tanh (`z`); input `x` float32 [4,16]
models/mlp.input.{json,npy}         a seeded 4x16 input
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
OPSET = 17


def he(rng: np.random.RandomState, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def small(rng: np.random.RandomState, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.1).astype(np.float32)


def save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString(deterministic=True))


def save_input(a: np.ndarray, stem: Path) -> None:
    stem.with_suffix(".input.json").write_text(json.dumps(a.tolist()) + "\n")
    np.save(stem.with_suffix(".input.npy"), a, allow_pickle=False)


def mnist_cnn(out: Path) -> None:
    rng = np.random.RandomState(0)
    w1 = he(rng, (8, 1, 3, 3), 1 * 9)
    b1 = small(rng, (8,))
    w2 = he(rng, (16, 8, 3, 3), 8 * 9)
    b2 = small(rng, (16,))
    w3 = he(rng, (10, 16 * 6 * 6), 16 * 6 * 6)
    b3 = small(rng, (10,))
    inits = [
        numpy_helper.from_array(a, n)
        for a, n in [(w1, "conv1.w"), (b1, "conv1.b"), (w2, "conv2.w"), (b2, "conv2.b"),
                     (w3, "fc.w"), (b3, "fc.b")]
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv1.w", "conv1.b"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], name="conv2",
                         kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "mnist-cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="glassbox-make_models")
    model.ir_version = 8
    save(model, out / "mnist-cnn.onnx")
    image = (rng.randint(0, 256, size=(1, 1, 28, 28)) / 256.0).astype(np.float32)
    save_input(image, out / "mnist-cnn")


def mlp(out: Path) -> None:
    rng = np.random.RandomState(0)
    w1 = he(rng, (16, 32), 16)
    b1 = small(rng, (32,))
    w2 = he(rng, (32, 8), 32)
    b2 = small(rng, (8,))
    inits = [numpy_helper.from_array(a, n)
             for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="matmul1"),
        helper.make_node("Add", ["h1", "b1"], ["a1"], name="add1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu"),
        helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="matmul2"),
        helper.make_node("Add", ["h2", "b2"], ["logits"], name="add2"),
        helper.make_node("Sigmoid", ["logits"], ["y"], name="sigmoid"),
        helper.make_node("Tanh", ["logits"], ["z"], name="tanh"),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 8])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="glassbox-make_models")
    model.ir_version = 8
    save(model, out / "mlp.onnx")
    x = (rng.randint(-128, 128, size=(4, 16)) / 64.0).astype(np.float32)
    save_input(x, out / "mlp")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "models"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mnist_cnn(out)
    mlp(out)
    print(f"make_models: wrote mnist-cnn and mlp into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
