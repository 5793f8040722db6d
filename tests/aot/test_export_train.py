"""aotc export --train: the Trainer's train step as C updating a caller-owned state
buffer; 100 steps from C give the xla Trainer's loss curve."""
from __future__ import annotations

import json

import numpy as np
import pytest

import export_support as es
from aot.export.trace import load_context
from aot.tools.verify import ExportedLibrary, verify
from mlframework.ml import datasets, losses, optimizers, train

BATCH = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = es.shared_root(tmp_path_factory)
    ckpt = es.checkpoint(root, "digits_mlp")
    from aot.export import TrainSpec
    folder = es.export(root, "mlp-train", str(es.EXAMPLES / "digits_mlp.py") + ":model",
                       [f"x:float32[{BATCH},64]"], checkpoint=ckpt, name="mlpt",
                       train=TrainSpec([f"y:int32[{BATCH}]"], optimizer="adam:0.001"))
    return folder, ckpt


def _batches(steps: int):
    (x, y), _ = datasets.load_digits(seed=0)
    for s in range(steps):
        i = (s * BATCH) % (len(x) - BATCH)
        yield x[i:i + BATCH].astype(np.float32), y[i:i + BATCH].astype(np.int32)


def test_100_steps_match_the_xla_trainer(trained):
    import sys
    folder, ckpt = trained
    lib = ExportedLibrary(folder)
    state = lib.train_state()
    sys.path.insert(0, str(es.EXAMPLES))
    import digits_mlp
    import mlframework as mlf
    trainer = train.Trainer(mlf.backends.new("xla"), load_context(ckpt), digits_mlp.model,
                            losses.sparse_categorical_cross_entropy_logits, optimizers.Adam(1e-3))
    c_losses, xla_losses = [], []
    for x, y in _batches(100):
        c_losses.append(lib.train_step(state, x, y))
        xla_losses.append(float(trainer.train_step(x, y)["loss"].numpy()))
    c_losses, xla_losses = np.array(c_losses), np.array(xla_losses)
    np.testing.assert_allclose(c_losses, xla_losses, rtol=1e-4)
    assert c_losses[-20:].mean() < c_losses[:20].mean()  # it learns
    # the state's weights are the trainer's weights
    m = json.loads((folder / "manifest.json").read_text())
    entry = next(s for s in m["train"]["state"] if s["name"] == "logits/dense/weights")
    w = state[entry["offset"]:entry["offset"] + 64 * 10 * 4].view(np.float32).reshape(64, 10)
    want = trainer.ctx.at_root()._store.variables["logits/dense/weights"].numpy()
    np.testing.assert_allclose(w, want, rtol=1e-3, atol=1e-5)


def test_the_train_exports_inference_passes_verify(trained):
    """At batch 32 its products read prepacked float32 panels, which verify used to round
    to bfloat16 in its reference (a false failure of 0.0054)."""
    folder, _ = trained
    m = json.loads((folder / "manifest.json").read_text())
    assert m["packed_weights"] and m["rounded_weights"] == []
    report = verify(folder)
    assert report.ok, str(report)


def test_train_header_and_state(trained):
    folder, _ = trained
    header = (folder / "mlpt.h").read_text()
    assert "int mlpt_train_step(void* state, const float* x, const int32_t* y, float* loss, " \
           "void* workspace);" in header
    assert "#define MLPT_STATE_BYTES" in header and "int mlpt_train_init(void* state);" in header
    lib = ExportedLibrary(folder)
    a, b = lib.train_state(), lib.train_state()
    np.testing.assert_array_equal(a, b)
    x, y = next(_batches(1))
    assert lib.train_step(a, x, y) == lib.train_step(b, x, y)  # deterministic
    assert not np.array_equal(a, lib.train_state())  # the state was updated in place


def test_cnn_train_step_with_batch_norm_dropout_and_adamw(tmp_path_factory):
    """Batch-norm statistics, dropout's RNG state and weight decay all live in the state."""
    import sys
    import mlframework as mlf
    from aot.export import TrainSpec
    root = es.shared_root(tmp_path_factory)
    ckpt = es.checkpoint(root, "digits_cnn")
    folder = es.export(root, "cnn-train", str(es.EXAMPLES / "digits_cnn.py") + ":model",
                       ["x:float32[16,1,8,8]"], checkpoint=ckpt, name="cnnt",
                       train=TrainSpec(["y:int32[16]"], optimizer="adamw:0.002"))
    sys.path.insert(0, str(es.EXAMPLES))
    import digits_cnn
    lib = ExportedLibrary(folder)
    state = lib.train_state()
    trainer = train.Trainer(mlf.backends.new("xla"), load_context(ckpt), digits_cnn.model,
                            losses.sparse_categorical_cross_entropy_logits,
                            optimizers.AdamW(2e-3))
    (x, y), _ = datasets.load_digits(seed=0, images=True)
    c_losses, xla_losses = [], []
    for s in range(30):
        i = s * 16
        xb, yb = x[i:i + 16].astype(np.float32), y[i:i + 16].astype(np.int32)
        c_losses.append(lib.train_step(state, xb, yb))
        xla_losses.append(float(trainer.train_step(xb, yb)["loss"].numpy()))
    np.testing.assert_allclose(c_losses, xla_losses, rtol=1e-4)
