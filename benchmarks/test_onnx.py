"""Imported ONNX models side by side with ONNX Runtime (issue 11).

    .venv/bin/python -m pytest benchmarks/test_onnx.py --benchmark-only -s

The ResNet-shaped CNN of tests/models/onnx (3x16x16 images) and all-MiniLM-L6-v2 at
sequence length 128, batch 1 and 16, both made by torch.onnx.export: run by the xla and
c backends (G.Exec on the imported model), by the library `aotc export` writes for the
ONNX file (single-threaded, through cffi), and by ONNX Runtime on 1 and 2 intra-op
threads. Every row first checks its outputs against ONNX Runtime (1e-4). Targets for
the exported C: the CNN at least 1.0x ONNX Runtime's speed at batch 1 (1 thread),
MiniLM at least 0.8x; read as ratios of medians within one run.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import mlframework as mlf
from aot.export import export_model
from aot.tools.verify import ExportedLibrary
from mlframework import graph as G
from mlframework.models import onnx as mlf_onnx

ort = pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models" / "onnx"))
import torch_models  # noqa: E402  the PyTorch-made models of the ONNX tests

SEQ = 128
WHO = ("xla", "c", "aotc", "onnxruntime-1", "onnxruntime-2")


def _inputs(model: str, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if model == "cnn":
        return {"x": rng.standard_normal((batch, 3, 16, 16)).astype(np.float32)}
    ids = rng.integers(0, 30522, (batch, SEQ)).astype(np.int64)
    return dict(zip(torch_models.MINILM_INPUTS, [ids, np.ones_like(ids), np.zeros_like(ids)]))


def _session(path, threads: int):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx-bench")
    return {m: torch_models.model_file(root, m) for m in ("cnn", "minilm")}


CASES = [(who, model, batch) for model in ("cnn", "minilm") for batch in (1, 16) for who in WHO]


@pytest.mark.parametrize("who,model,batch", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_latency(benchmark, files, tmp_path, who, model, batch):
    path = files[model]
    feed = _inputs(model, batch)
    arrays = list(feed.values())
    want = _session(path, 1).run(None, feed)[0]
    benchmark.group = f"{model} batch {batch}"
    if who.startswith("onnxruntime"):
        session = _session(path, int(who[-1]))
        benchmark(session.run, None, feed)
        return
    if who == "aotc":
        specs = [f"{n}:{x.dtype}[{','.join(map(str, x.shape))}]" for n, x in feed.items()]
        lib = ExportedLibrary(export_model(str(path), specs, tmp_path / "lib",
                                           name=f"{model}{batch}", weights="blob").out_dir)
        np.testing.assert_allclose(lib.run(*arrays)[0], want, rtol=1e-4, atol=1e-4)
        benchmark(lib.run, *arrays)
        return
    exe = G.Exec(mlf.backends.new(who),
                 mlf_onnx.load_model(path, {n: x.shape for n, x in feed.items()}))
    np.testing.assert_allclose(exe(*arrays).numpy(), want, rtol=1e-4, atol=1e-4)
    benchmark(lambda: exe(*arrays).numpy())
