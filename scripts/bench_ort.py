#!/usr/bin/env python3
"""Times onnxruntime on an ONNX model with the given .npy inputs (the same
files glassbox and tract read). Prints one JSON line with load and run times
in ms.

    python scripts/bench_ort.py MODEL.onnx REPEAT THREADS INPUT.npy...
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    path, repeat, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    arrays = [np.load(p) for p in sys.argv[4:]]
    t0 = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    feed = {i.name: a for i, a in zip(sess.get_inputs(), arrays)}
    times = []
    for _ in range(max(repeat, 1)):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps({"load_ms": load_ms, "run_median_ms": times[len(times) // 2], "run_min_ms": times[0]}))


if __name__ == "__main__":
    main()
