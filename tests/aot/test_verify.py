"""aotc verify: correct exports pass at every batch size and weight storage, and the
reference rounds exactly the weights the export stores rounded (issue 10: prepacked float32
panels of products with more than 6 rows used to be rounded to bfloat16 in the reference)."""
from __future__ import annotations

import json
import shutil

import ml_dtypes
import numpy as np
import pytest

import export_support as es
from aot.tools.verify import ExportedLibrary, rounded_weights, verify
from mlframework.ml import checkpoints

MLP = str(es.EXAMPLES / "digits_mlp.py") + ":model"
DENSE = ["hidden1/dense/weights", "hidden2/dense/weights"]  # logits' 64x10 is too small to pack


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return es.shared_root(tmp_path_factory)


def _export(root, storage: str, batch: int):
    return es.export(root, f"verify-{storage}-{batch}", MLP, [f"x:float32[{batch},64]"],
                     checkpoint=es.checkpoint(root, "digits_mlp"), name="mlpv",
                     weight_storage=storage)


def _numpy_mlp(root, x: np.ndarray, rounded: list[str]) -> np.ndarray:
    """digits_mlp.model in float64 NumPy on the checkpoint's weights, `rounded` ones
    rounded to bfloat16 first."""
    ckpt = checkpoints.Checkpointer(es.checkpoint(root, "digits_mlp")).latest()
    _, arrays = checkpoints.read(ckpt)

    def w(name):
        a = arrays[name].astype(np.float32)
        if name in rounded:
            a = a.astype(ml_dtypes.bfloat16).astype(np.float32)
        return a.astype(np.float64)
    h = np.maximum(x @ w("hidden1/dense/weights") + w("hidden1/dense/biases"), 0)
    h = np.maximum(h @ w("hidden2/dense/weights") + w("hidden2/dense/biases"), 0)
    return h @ w("logits/dense/weights") + w("logits/dense/biases")


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_correct_exports_pass_verify(root, storage, batch):
    folder = _export(root, storage, batch)
    m = json.loads((folder / "manifest.json").read_text())
    assert m["packed_weights"] == DENSE  # prepacked panels (float32) or pair panels (bf16)
    assert m["rounded_weights"] == (DENSE if storage == "bfloat16" else [])
    report = verify(folder)
    assert report.ok, str(report)
    assert report.max_diff["output"] < 1e-5
    x = np.random.default_rng(batch).standard_normal((batch, 64)).astype(np.float32)
    (got,) = ExportedLibrary(folder).run(x)
    want = _numpy_mlp(root, x.astype(np.float64), m["rounded_weights"])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _copy_with_manifest(folder, tmp_path, edit):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    m = json.loads((copy / "manifest.json").read_text())
    edit(m)
    (copy / "manifest.json").write_text(json.dumps(m))
    return copy


def test_verify_fails_when_its_reference_rounds_the_wrong_weights(root, tmp_path):
    """verify is sensitive to the rounding: a reference rounding float32 weights, or not
    rounding bfloat16 ones, differs by far more than the tolerance."""
    f32 = _copy_with_manifest(_export(root, "float32", 64), tmp_path / "a",
                              lambda m: m.update(rounded_weights=DENSE))
    bf16 = _copy_with_manifest(_export(root, "bfloat16", 7), tmp_path / "b",
                               lambda m: m.update(rounded_weights=[]))
    for folder in (f32, bf16):
        report = verify(folder)
        assert not report.ok and report.max_diff["output"] > 1e-4, str(report)


@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_manifests_without_rounded_weights_verify_as_their_storage_implies(root, tmp_path,
                                                                           storage):
    old = _copy_with_manifest(_export(root, storage, 7), tmp_path,
                              lambda m: m.pop("rounded_weights"))
    m = json.loads((old / "manifest.json").read_text())
    assert rounded_weights(m) == (DENSE if storage == "bfloat16" else [])
    assert verify(old).ok
