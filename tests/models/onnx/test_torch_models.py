"""PyTorch-made models (torch.onnx.export) imported and run on both backends and as an
exported C library, each against ONNX Runtime (1e-4); fine-tuning an imported model."""
from __future__ import annotations

import numpy as np
import pytest
import torch_models

from aot.export import export_model
from aot.tools.verify import ExportedLibrary
from mlframework import graph as G
from mlframework import ml
from mlframework.models import onnx as mlf_onnx

NAMES = ("mlp", "cnn", "encoder")


def _input(name: str, batch: int | None = None) -> np.ndarray:
    shape = torch_models.SHAPES[name]
    shape = (batch or shape[0],) + shape[1:]
    return np.random.default_rng(7).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_imported_model_matches_onnxruntime(backend, onnx_root, name):
    path = torch_models.model_file(onnx_root, name)
    x = _input(name, batch=4)  # the dynamic batch fixed at import by x's shape
    model = mlf_onnx.load_model(path, input_shapes={"x": x.shape})
    got = G.Exec(backend, model)(x).numpy()
    want = torch_models.onnxruntime(path, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_exported_c_library_matches_onnxruntime(onnx_root, tmp_path, name):
    path = torch_models.model_file(onnx_root, name)
    x = _input(name)
    art = export_model(str(path), [f"x:float32{list(x.shape)}".replace(" ", "")],
                       tmp_path / name, name=name)
    assert art.manifest["function"] == str(path.resolve())
    got = ExportedLibrary(art.out_dir).run(x)[0]
    np.testing.assert_allclose(got, torch_models.onnxruntime(path, x), rtol=1e-4, atol=1e-4)


def test_initializers_as_variables_fine_tune_with_the_trainer(onnx_root):
    import mlframework as mlf
    from mlframework.ml import losses, optimizers, train
    path = torch_models.model_file(onnx_root, "mlp")
    x = _input("mlp", batch=8)
    labels = np.arange(8, dtype=np.int32) % 5
    model = mlf_onnx.load_model(path, input_shapes={"x": x.shape})
    ctx = ml.Context(seed=0)

    def loss(y, probs):  # the model ends in Softmax: the loss of its log-probabilities
        return losses.sparse_categorical_cross_entropy_logits(y, G.log(probs))

    trainer = train.Trainer(mlf.backends.new("xla"), ctx, model.model, loss,
                            optimizers.Adam(1e-2))
    first = float(trainer.train_step(x, labels)["loss"].numpy())
    for _ in range(20):
        last = float(trainer.train_step(x, labels)["loss"].numpy())
    initial = {n: v for n, v in model.initializers.items() if v.dtype.kind == "f"}
    assert {v.name for v in ctx.trainable_variables()} >= set(initial)
    assert last < 0.5 * first
    changed = [n for n in initial if not np.allclose(ctx.get_variable(n).numpy(), initial[n])]
    assert set(changed) == set(initial)  # every weight and bias was fine-tuned


def test_aotc_export_verify_and_inspect_an_onnx_file(onnx_root, tmp_path, capsys):
    from aot.tools.cli import main
    path = str(torch_models.model_file(onnx_root, "mlp"))
    out = str(tmp_path / "mlp")
    assert main(["export", path, "--input", "x:float32[2,20]", "--name", "mlp", "-o", out]) == 0
    assert main(["verify", out, "--tolerance", "1e-4"]) == 0
    report = capsys.readouterr().out
    assert "max |c - xla|" in report and "max |c - onnxruntime|" in report
    assert main(["inspect", path, "--input", "x:float32[2,20]"]) == 0
    assert "mlp.onnx" in capsys.readouterr().out
