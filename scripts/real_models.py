#!/usr/bin/env python3
"""Prepares real, packaged ONNX models with onnxruntime reference outputs.

Run with the venv from scripts/setup-python.sh, after gen_conformance.py
(which replaces target/onnx-tests wholesale when its own data changes):

    target/pyenv/bin/python scripts/real_models.py [--out target/onnx-tests/real]

Writes one case per model in the ONNX backend-test layout that
crates/runtime/tests/real_models.rs reads:

    <name>/model.onnx
    <name>/meta.json                   rtol, atol (and why, when not the
                                       ONNX backend-test defaults), source,
                                       sha256 of model.onnx, inputs
    <name>/test_data_set_0/input_I.pb  TensorProto, in graph-input order
    <name>/test_data_set_0/output_I.pb TensorProto, in graph-output order
    <name>/SKIPPED                     instead of all that, with the reason,
                                       when the model's package could not be
                                       downloaded (PyPI unreachable)

Models:

  magika           magika==0.6.2 wheel from PyPI (`pip download --no-deps`, not
                   installed), magika/models/standard_v3_3/model.onnx; input
                   `bytes` int32 [2, 2048]: the features magika extracts from
                   two deterministic buffers (a short Python source file and a
                   ~6 KiB PDF-like file): the first 1024 bytes of the first
                   4096 after lstrip, padded at the end with 256, then the last
                   1024 bytes of the last 4096 before rstrip, padded at the
                   start with 256 (Magika._extract_features_from_seekable)
  silero-vad       silero-vad==6.2.3 wheel, silero_vad/data/silero_vad.onnx;
                   inputs `input` float [2, 576] (the 64-sample context the
                   package's OnnxWrapper prepends plus one 512-sample chunk at
                   16 kHz, two deterministic speech-like signals), `state`
                   float [2, 2, 128] zeros, `sr` int64 scalar 16000
  silero-vad-op18  the same wheel's silero_vad_op18_ifless.onnx, same inputs
  bert             scripts/make_bert.py --seed 0 (hidden 256, 4 layers);
                   input_ids, attention_mask, token_type_ids int64 [1, 128]:
                   deterministic ids starting with [CLS]=101, 100 real tokens
                   then 28 padding positions (mask 0, id 0), two segments

Reference outputs come from onnxruntime on CPU with all graph optimizations
disabled (ORT_DISABLE_ALL), one intra-op and one inter-op thread, sequential
execution. Wheels are cached in target/downloads (--downloads). A stamp
keyed on this script, make_bert.py and the onnx, numpy and onnxruntime
versions makes reruns instant; a run that skipped a model is not stamped, so
the next one tries PyPI again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STAMP = ".stamp"
DOWNLOADS = ROOT / "target" / "downloads"  # --downloads
MAGIKA_VERSION = "0.6.2"
SILERO_VERSION = "6.2.3"
# ONNX backend-test defaults (onnx.backend.test.case.model rtol/atol).
RTOL, ATOL = 1e-3, 1e-7
# sha256 of each extracted model file: a changed upload fails loudly here
# instead of silently changing the golden trace roots.
SHA256 = {
    "magika": "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
    "silero-vad": "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
    "silero-vad-op18": "7671cd04b004e9076da0d4a7b1a5aec36adf161c39230c1cb94a4fd5db6bbd28",
}


def stamp_text() -> str:
    h = hashlib.sha256()
    for script in ("real_models.py", "make_bert.py"):
        h.update((ROOT / "scripts" / script).read_bytes())
    return (f"onnx={version('onnx')} numpy={version('numpy')} "
            f"onnxruntime={version('onnxruntime')} magika={MAGIKA_VERSION} "
            f"silero-vad={SILERO_VERSION} scripts={h.hexdigest()}\n")


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


class Unavailable(Exception):
    """The model's package could not be fetched (the case is skipped)."""


def wheel_member(package: str, pinned: str, member: str) -> bytes:
    """A file from the PyPI wheel of `package==pinned`, downloaded (not
    installed) into target/downloads once."""
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    stem = package.replace("-", "_")

    def find() -> Path | None:
        found = sorted(DOWNLOADS.glob(f"{stem}-{pinned}-*.whl"))
        return found[0] if found else None

    whl = find()
    if whl is None:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--disable-pip-version-check", "--no-input", "--only-binary=:all:",
               f"{package}=={pinned}", "-d", str(DOWNLOADS)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        whl = find()
        if r.returncode != 0 or whl is None:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise Unavailable(f"`pip download {package}=={pinned}` failed "
                              f"(is PyPI reachable?): {tail[0]}")
    with zipfile.ZipFile(whl) as z:
        return z.read(member)


def checked(name: str, data: bytes) -> bytes:
    got = hashlib.sha256(data).hexdigest()
    if got != SHA256[name]:
        raise SystemExit(f"real_models: {name}: model sha256 {got}, expected {SHA256[name]}")
    return data


# --- inputs -----------------------------------------------------------------

def magika_features(content: bytes, beg_size: int = 1024, end_size: int = 1024,
                    block_size: int = 4096, padding: int = 256) -> list[int]:
    """magika 0.6.2's Magika._extract_features_from_seekable (standard_v3_3
    config: beg 1024, mid 0, end 1024, block 4096, padding token 256)."""
    n = min(block_size, len(content))
    beg = list(content[:n].lstrip()[:beg_size])
    beg += [padding] * (beg_size - len(beg))
    end = content[len(content) - n:].rstrip()
    end = list(end[max(0, len(end) - end_size):])
    end = [padding] * (end_size - len(end)) + end
    return beg + end


def magika_buffers() -> list[bytes]:
    py = (b"#!/usr/bin/env python3\n"
          b'"""Counts words in the files given on the command line."""\n\n'
          b"import sys\nfrom collections import Counter\n\n\n"
          b"def count(path: str) -> Counter:\n"
          b"    with open(path, encoding='utf-8') as f:\n"
          b"        return Counter(w.lower() for line in f for w in line.split())\n\n\n"
          b"def main() -> int:\n"
          b"    total = Counter()\n"
          b"    for path in sys.argv[1:]:\n"
          b"        total.update(count(path))\n"
          b"    for word, n in total.most_common(10):\n"
          b"        print(f'{n:8d} {word}')\n"
          b"    return 0\n\n\n"
          b"if __name__ == '__main__':\n"
          b"    sys.exit(main())\n")
    objs = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
            b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
            b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n",
            b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n"]
    lines = b"".join(b"BT /F1 11 Tf 72 %d Td (Line %d of a deterministic test page.) Tj ET\n"
                     % (720 - 14 * i, i) for i in range(100))
    objs.append(b"4 0 obj\n<< /Length %d >>\nstream\n%sendstream\nendobj\n" % (len(lines), lines))
    objs.append(b"5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n")
    body = b"".join(objs)
    offsets, pos = [], 0
    for o in objs:
        offsets.append(pos)
        pos += len(o)
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % len(objs)
    xref += b"".join(b"%010d 00000 n \n" % off for off in offsets[1:])
    pdf = body + xref + (b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
                         % (len(objs), len(body)))
    return [py, pdf]


def speech_like(n: int, seed: int) -> np.ndarray:
    """A deterministic voiced-speech-like signal: a 120-200 Hz harmonic
    series with formant-ish weights under a syllable envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    f0 = 120.0 + 80.0 * seed
    x = sum(np.sin(2 * np.pi * f0 * k * t + k) / k * (1.5 if 3 <= k <= 5 else 1.0)
            for k in range(1, 12))
    env = 0.5 * (1 - np.cos(2 * np.pi * 4.0 * t + seed))
    x = 0.3 * env * x / 3.0 + 0.01 * rng.standard_normal(n)
    return x.astype(np.float32)


def bert_inputs() -> dict[str, np.ndarray]:
    seq, real = 128, 100
    ids = np.zeros((1, seq), np.int64)
    ids[0, :real] = (np.arange(real, dtype=np.int64) * 7919 + 1013) % 7000 + 999
    ids[0, 0], ids[0, 50], ids[0, real - 1] = 101, 102, 102  # [CLS] .. [SEP] .. [SEP]
    mask = np.zeros((1, seq), np.int64)
    mask[0, :real] = 1
    types = np.zeros((1, seq), np.int64)
    types[0, 51:real] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


# --- cases ------------------------------------------------------------------

def reference(model: bytes, feeds: dict[str, np.ndarray]) -> tuple[list, list]:
    """(graph inputs, onnxruntime outputs), in graph order."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # no warnings about silero's unused initializers
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    if sorted(names) != sorted(feeds):
        raise SystemExit(f"real_models: graph inputs {names}, prepared {sorted(feeds)}")
    outs = sess.run(None, feeds)
    return ([(n, feeds[n]) for n in names],
            [(o.name, v) for o, v in zip(sess.get_outputs(), outs)])


def write_case(d: Path, model: bytes, feeds: dict[str, np.ndarray], meta: dict) -> str:
    from onnx import numpy_helper

    inputs, outputs = reference(model, feeds)
    sd = d / "test_data_set_0"
    sd.mkdir(parents=True)
    (d / "model.onnx").write_bytes(model)
    for i, (n, a) in enumerate(inputs):
        (sd / f"input_{i}.pb").write_bytes(numpy_helper.from_array(a, n).SerializeToString())
    for i, (n, a) in enumerate(outputs):
        (sd / f"output_{i}.pb").write_bytes(numpy_helper.from_array(a, n).SerializeToString())
    meta = dict(meta, sha256=hashlib.sha256(model).hexdigest(),
                inputs={n: f"{a.dtype} {list(a.shape)}" for n, a in inputs},
                outputs={n: f"{a.dtype} {list(a.shape)}" for n, a in outputs},
                reference=f"onnxruntime {version('onnxruntime')} CPU, ORT_DISABLE_ALL, 1 thread")
    meta.setdefault("rtol", RTOL)
    meta.setdefault("atol", ATOL)
    write_json(d / "meta.json", meta)
    return ", ".join(f"{n} {list(a.shape)}" for n, a in outputs)


def case_magika(d: Path) -> str:
    model = checked("magika", wheel_member(
        "magika", MAGIKA_VERSION, "magika/models/standard_v3_3/model.onnx"))
    x = np.array([magika_features(b) for b in magika_buffers()], np.int32)
    return write_case(d, model, {"bytes": x}, {
        "source": f"PyPI magika=={MAGIKA_VERSION}: magika/models/standard_v3_3/model.onnx",
        "input_note": "features of a short Python file and a ~6 KiB PDF-like buffer"})


def case_silero(d: Path, name: str, member: str) -> str:
    model = checked(name, wheel_member("silero-vad", SILERO_VERSION, member))
    x = np.stack([speech_like(576, 0), speech_like(576, 1)])
    feeds = {"input": x, "state": np.zeros((2, 2, 128), np.float32),
             "sr": np.array(16000, np.int64)}
    return write_case(d, model, feeds, {
        "source": f"PyPI silero-vad=={SILERO_VERSION}: {member}",
        "input_note": "batch 2: 64 context + 512 new samples at 16 kHz, zero state"})


def case_bert(d: Path) -> str:
    tmp = d.with_name(d.name + ".onnx")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_bert.py"), str(tmp),
                    "--seed", "0"], check=True, stdout=subprocess.DEVNULL)
    model = tmp.read_bytes()
    tmp.unlink()
    return write_case(d, model, bert_inputs(), {
        "source": "scripts/make_bert.py --seed 0",
        "input_note": "batch 1, seq 128: 100 tokens then 28 padding positions"})


CASES = {
    "magika": case_magika,
    "silero-vad": lambda d: case_silero(d, "silero-vad", "silero_vad/data/silero_vad.onnx"),
    "silero-vad-op18": lambda d: case_silero(
        d, "silero-vad-op18", "silero_vad/data/silero_vad_op18_ifless.onnx"),
    "bert": case_bert,
}


def main() -> int:
    global DOWNLOADS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "target" / "onnx-tests" / "real"),
                    help="output directory (default: %(default)s)")
    ap.add_argument("--downloads", default=str(DOWNLOADS),
                    help="wheel cache directory (default: %(default)s)")
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = ap.parse_args()
    DOWNLOADS = Path(args.downloads)
    out = Path(args.out)
    want = stamp_text()
    stamp = out / STAMP
    if not args.force and stamp.is_file() and stamp.read_text() == want:
        print(f"real_models: cached in {out}")
        return 0

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    skipped = 0
    for name, make in CASES.items():
        d = tmp / name
        try:
            line = make(d)
            print(f"real_models: {name}: {line}")
        except Unavailable as e:
            if d.exists():
                shutil.rmtree(d)
            d.mkdir()
            (d / "SKIPPED").write_text(f"{e}\n")
            print(f"real_models: {name}: SKIPPED: {e}", file=sys.stderr)
            skipped += 1
    # A run that skipped models is not cached: the next one retries PyPI.
    if skipped == 0:
        (tmp / STAMP).write_text(want)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    print(f"real_models: wrote {out}" + (f" ({skipped} skipped)" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
