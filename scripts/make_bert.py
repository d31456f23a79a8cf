#!/usr/bin/env python3
"""Writes a BERT-layout transformer encoder with seeded random weights.

    target/pyenv/bin/python scripts/make_bert.py OUT.onnx [--seed 0]
        [--hidden 256] [--heads 4] [--intermediate 1024] [--layers 4]
        [--vocab 8000] [--max-positions 512] [--no-token-type-ids] [--no-pooler]

The graph is what a PyTorch export of a Hugging Face `BertModel` looks like
(opset 17, built node by node with onnx.helper, no PyTorch needed):

  inputs   input_ids, attention_mask, token_type_ids: int64 [batch, seq]
           (`batch` and `seq` are symbolic dims)
  embed    Gather(word) + Gather(position, Slice of a [1, max_positions]
           position-id table up to Shape(input_ids)[1]) + Gather(token type),
           LayerNormalization (eps 1e-12)
  mask     (1 - Cast<float>(Unsqueeze(attention_mask, [1, 2]))) * -10000,
           an additive [batch, 1, 1, seq] mask
  layer    (x --layers) self-attention: MatMul+Add for Q, K, V; Reshape to
           [batch, seq, heads, head_dim]; Transpose; MatMul(Q, K^T);
           Div by sqrt(head_dim); Add mask; Softmax; MatMul V; Transpose;
           Reshape; output MatMul+Add; residual Add; LayerNormalization;
           FFN MatMul+Add, GELU in the exact erf form PyTorch exports
           (x * 0.5 * (1 + Erf(x / sqrt(2)))), MatMul+Add; residual Add;
           LayerNormalization
  outputs  last_hidden_state float [batch, seq, hidden]; pooler_output
           float [batch, hidden] = Tanh(Gemm(Gather(last_hidden_state, 0,
           axis 1))) unless --no-pooler

Weights follow BERT's initialisation scale: matrices and embeddings are
normal * 0.02; biases are normal * 0.02 and LayerNorm scales 1 + normal * 0.1
(instead of BERT's exact 0 and 1, so that every parameter matters). The RNG is
numpy's PCG64 seeded with --seed, and the model is serialized
deterministically: the same arguments give the same bytes. The model passes
onnx.checker.check_model(full_check=True).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17


class Builder:
    """Accumulates nodes and initializers with unique, readable names."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.counts: dict[str, int] = {}

    def node(self, op: str, inputs: list[str], name: str, n_out: int = 1, **attrs) -> list[str]:
        outs = [name] if n_out == 1 else [f"{name}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=f"/{name}/{op}", **attrs))
        return outs

    def one(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        return self.node(op, inputs, name, **attrs)[0]

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def normal(self, name: str, shape: tuple[int, ...], scale: float, mean: float = 0.0) -> str:
        a = (mean + self.rng.standard_normal(shape) * scale).astype(np.float32)
        return self.const(name, a)

    def linear(self, x: str, prefix: str, n_in: int, n_out: int) -> str:
        """x @ W + b with W [n_in, n_out] (the exported layout of nn.Linear)."""
        w = self.normal(f"{prefix}.weight", (n_in, n_out), 0.02)
        b = self.normal(f"{prefix}.bias", (n_out,), 0.02)
        y = self.one("MatMul", [x, w], f"{prefix}/MatMul")
        return self.one("Add", [b, y], f"{prefix}/Add")

    def layer_norm(self, x: str, prefix: str, hidden: int) -> str:
        g = self.normal(f"{prefix}.weight", (hidden,), 0.1, mean=1.0)
        b = self.normal(f"{prefix}.bias", (hidden,), 0.02)
        return self.one("LayerNormalization", [x, g, b], f"{prefix}/LayerNormalization",
                        axis=-1, epsilon=1e-12)


def build(args: argparse.Namespace) -> onnx.ModelProto:
    rng = np.random.default_rng(args.seed)
    h, heads, inter = args.hidden, args.heads, args.intermediate
    if h % heads:
        raise SystemExit(f"--hidden {h} is not a multiple of --heads {heads}")
    dh = h // heads
    b = Builder(rng)

    # Shared constants.
    one_f = b.const("const.one", np.array(1.0, np.float32))
    neg_big = b.const("const.neg10000", np.array(-10000.0, np.float32))
    sqrt_dh = b.const("const.sqrt_head_dim", np.array(math.sqrt(dh), np.float32))
    sqrt2 = b.const("const.sqrt2", np.array(math.sqrt(2.0), np.float32))
    half = b.const("const.half", np.array(0.5, np.float32))
    split_heads = b.const("const.split_heads", np.array([0, 0, heads, dh], np.int64))
    merge_heads = b.const("const.merge_heads", np.array([0, 0, h], np.int64))
    axes_12 = b.const("const.axes_1_2", np.array([1, 2], np.int64))
    axes_0 = b.const("const.axes_0", np.array([0], np.int64))
    idx_1 = b.const("const.index_1", np.array(1, np.int64))
    zero_1d = b.const("const.zero_1d", np.array([0], np.int64))
    one_1d = b.const("const.one_1d", np.array([1], np.int64))

    # Embeddings.
    word = b.normal("embeddings.word_embeddings.weight", (args.vocab, h), 0.02)
    pos = b.normal("embeddings.position_embeddings.weight", (args.max_positions, h), 0.02)
    pos_ids = b.const("embeddings.position_ids",
                      np.arange(args.max_positions, dtype=np.int64)[None, :])
    x = b.one("Gather", [word, "input_ids"], "embeddings/word_embeddings/Gather")
    shape = b.one("Shape", ["input_ids"], "embeddings/Shape")
    seq = b.one("Gather", [shape, idx_1], "embeddings/Gather_seq", axis=0)
    seq_1d = b.one("Unsqueeze", [seq, axes_0], "embeddings/Unsqueeze_seq")
    ids = b.one("Slice", [pos_ids, zero_1d, seq_1d, one_1d], "embeddings/Slice_position_ids")
    p = b.one("Gather", [pos, ids], "embeddings/position_embeddings/Gather")
    x = b.one("Add", [x, p], "embeddings/Add_position")
    if args.token_type_ids:
        tt = b.normal("embeddings.token_type_embeddings.weight", (2, h), 0.02)
        t = b.one("Gather", [tt, "token_type_ids"], "embeddings/token_type_embeddings/Gather")
        x = b.one("Add", [x, t], "embeddings/Add_token_type")
    x = b.layer_norm(x, "embeddings.LayerNorm", h)

    # Additive attention mask [batch, 1, 1, seq].
    m = b.one("Unsqueeze", ["attention_mask", axes_12], "mask/Unsqueeze")
    m = b.one("Cast", [m], "mask/Cast", to=TensorProto.FLOAT)
    m = b.one("Sub", [one_f, m], "mask/Sub")
    mask = b.one("Mul", [m, neg_big], "mask/Mul")

    for i in range(args.layers):
        pre = f"encoder.layer.{i}"

        def heads_of(name: str, key: bool = False) -> str:
            y = b.linear(x, f"{pre}.attention.self.{name}", h, h)
            y = b.one("Reshape", [y, split_heads], f"{pre}.attention.self.{name}/Reshape")
            perm = [0, 2, 3, 1] if key else [0, 2, 1, 3]
            return b.one("Transpose", [y], f"{pre}.attention.self.{name}/Transpose", perm=perm)

        q, k, v = heads_of("query"), heads_of("key", key=True), heads_of("value")
        s = b.one("MatMul", [q, k], f"{pre}.attention.self/MatMul_scores")
        s = b.one("Div", [s, sqrt_dh], f"{pre}.attention.self/Div")
        s = b.one("Add", [s, mask], f"{pre}.attention.self/Add_mask")
        s = b.one("Softmax", [s], f"{pre}.attention.self/Softmax", axis=-1)
        c = b.one("MatMul", [s, v], f"{pre}.attention.self/MatMul_context")
        c = b.one("Transpose", [c], f"{pre}.attention.self/Transpose_context", perm=[0, 2, 1, 3])
        c = b.one("Reshape", [c, merge_heads], f"{pre}.attention.self/Reshape_context")
        a = b.linear(c, f"{pre}.attention.output.dense", h, h)
        a = b.one("Add", [a, x], f"{pre}.attention.output/Add_residual")
        x = b.layer_norm(a, f"{pre}.attention.output.LayerNorm", h)

        f = b.linear(x, f"{pre}.intermediate.dense", h, inter)
        g = b.one("Div", [f, sqrt2], f"{pre}.intermediate/gelu/Div")
        g = b.one("Erf", [g], f"{pre}.intermediate/gelu/Erf")
        g = b.one("Add", [g, one_f], f"{pre}.intermediate/gelu/Add")
        g = b.one("Mul", [f, g], f"{pre}.intermediate/gelu/Mul")
        g = b.one("Mul", [g, half], f"{pre}.intermediate/gelu/Mul_half")
        o = b.linear(g, f"{pre}.output.dense", inter, h)
        o = b.one("Add", [o, x], f"{pre}.output/Add_residual")
        x = b.layer_norm(o, f"{pre}.output.LayerNorm", h)

    x = b.one("Identity", [x], "last_hidden_state")
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                             ["batch", "seq", h])]
    if args.pooler:
        first = b.one("Gather", [x, b.const("const.index_0", np.array(0, np.int64))],
                      "pooler/Gather_first", axis=1)
        w = b.normal("pooler.dense.weight", (h, h), 0.02)  # [out, in], as nn.Linear
        bias = b.normal("pooler.dense.bias", (h,), 0.02)
        y = b.one("Gemm", [first, w, bias], "pooler/dense/Gemm", alpha=1.0, beta=1.0, transB=1)
        b.one("Tanh", [y], "pooler_output")
        outputs.append(helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT,
                                                     ["batch", h]))

    int_input = lambda n: helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
    inputs = [int_input("input_ids"), int_input("attention_mask")]
    if args.token_type_ids:
        inputs.append(int_input("token_type_ids"))
    graph = helper.make_graph(b.nodes, "bert", inputs, outputs, initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="glassbox make_bert.py")
    doc = (f"BERT-layout encoder, seeded random weights: seed {args.seed}, hidden {h}, "
           f"heads {heads}, intermediate {inter}, layers {args.layers}, vocab {args.vocab}, "
           f"max positions {args.max_positions}")
    model.doc_string = doc
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="output .onnx path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--max-positions", type=int, default=512)
    ap.add_argument("--no-token-type-ids", dest="token_type_ids", action="store_false",
                    help="no token_type_ids input (and no token type embeddings)")
    ap.add_argument("--no-pooler", dest="pooler", action="store_false",
                    help="no pooler_output")
    args = ap.parse_args()
    model = build(args)
    onnx.checker.check_model(model, full_check=True)
    Path(args.out).write_bytes(model.SerializeToString(deterministic=True))
    print(f"make_bert: wrote {args.out}: {model.doc_string}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
