"""`pack_weights`: the pair-panel (bfloat16) and GEMM-panel (float32) layouts, which
constants the pass packs, constant weights packed once on the c backend, and exports
with `--weight-storage bfloat16` that compute exactly the float32 model with rounded
weights (batch 1 streams the packed weights, batch 8 widens them for the GEMM)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import export_support as es
import mlframework as mlf
from aot.passes.simplify import simplify
from aot.passes.weight_packing import gemm_panels, pack_weights, pair_panels
from aot.program.program import from_graph
from aot.tools.verify import ExportedLibrary, verify
from mlframework import graph as G
from mlframework.core import shapes
from mlframework.core.dtypes import DType

RNG = np.random.default_rng(3)


def _unpack(packed: np.ndarray, n: int) -> np.ndarray:
    """The layout as runtime_c/mlf_gemm_bf16.h reads it: W[p, j] at flat position
    ((j // 32) * K + p) * 32 + 2 * (j % 16) + (j % 32) // 16."""
    k, np_ = packed.shape
    p, j = np.meshgrid(np.arange(k), np.arange(np_), indexing="ij")
    pos = (j // 32 * k + p) * 32 + 2 * (j % 16) + (j % 32) // 16
    return packed.astype(np.float32).reshape(-1)[pos][:, :n]


@pytest.mark.parametrize("n", [10, 32, 45, 96])
def test_pair_panels_hold_every_column_rounded(n):
    w = RNG.standard_normal((7, n)).astype(np.float32)
    packed = pair_panels(w)
    assert packed.dtype == DType.BFLOAT16.numpy and packed.shape == (7, -(-n // 32) * 32)
    rounded = w.astype(DType.BFLOAT16.numpy).astype(np.float32)
    np.testing.assert_array_equal(_unpack(packed, n), rounded)
    np.testing.assert_array_equal(_unpack(packed, packed.shape[1])[:, n:], 0)


def test_only_dense_weights_read_by_dots_are_packed():
    graph = G.Graph("packing")
    with G.tracing(graph):
        x = G.parameter(shapes.make(np.float32, 2, 64))
        dense = G.const(RNG.standard_normal((64, 40)).astype(np.float32))
        shared = G.const(RNG.standard_normal((64, 40)).astype(np.float32))  # also summed
        small = G.const(RNG.standard_normal((40, 10)).astype(np.float32))   # 400 < 1024
        graph.outputs = [(x @ dense) @ small, x @ shared + G.reduce_sum(shared)]
    program = simplify(from_graph(graph))
    packed = pack_weights(program, "bfloat16")
    assert [vid for vid, v in packed.values.items() if "packing" in v.attrs] == [dense.id]
    w = packed.values[dense.id]
    assert (w.dtype, w.shape, w.attrs["columns"]) == (DType.BFLOAT16, (64, 64), 40)
    assert not any("packing" in v.attrs
                   for v in pack_weights(program, "bfloat16", variables=set()).values.values())
    panels = pack_weights(program, "float32")  # 2 rows too: B streamed in panel order
    assert [vid for vid, v in panels.values.items() if "packing" in v.attrs] == [dense.id]
    w = panels.values[dense.id]
    assert (w.dtype, w.shape, w.attrs["packing"]) == (DType.FLOAT32, (64, 64), "panels")
    with pytest.raises(ValueError, match="pack_weights requires storage"):
        pack_weights(program, "int4")


def test_named_parameters_are_packed_when_only_dots_read_them():
    """A decoder's weights are parameters: those named and read only as dense weights
    become bfloat16 pair-panel parameters whatever their size; the caller stores them."""
    graph = G.Graph("parameters")
    with G.tracing(graph):
        x = G.parameter(shapes.make(np.float32, 1, 16))
        small = G.parameter(shapes.make(np.float32, 16, 40))   # 640 elements
        summed = G.parameter(shapes.make(np.float32, 16, 40))  # also read by a reduce
        unnamed = G.parameter(shapes.make(np.float32, 40, 8))
        graph.outputs = [(x @ small) @ unnamed, x @ summed + G.reduce_sum(summed)]
    program = simplify(from_graph(graph))
    packed = pack_weights(program, "bfloat16", params=[1, 2])
    assert [vid for vid, v in packed.values.items() if "packing" in v.attrs] == [small.id]
    w = packed.values[small.id]
    assert (w.op, w.dtype, w.shape, w.attrs["columns"]) == \
        (program.values[small.id].op, DType.BFLOAT16, (16, 64), 40)
    assert packed.params == program.params
    with pytest.raises(ValueError, match="bfloat16 storage only"):
        pack_weights(program, "float32", params=[1])


@pytest.mark.parametrize("n", [40, 64, 130])
def test_gemm_panels_hold_64_columns_of_every_row(n):
    w = RNG.standard_normal((5, n)).astype(np.float32)
    panels = gemm_panels(w)
    count = -(-n // 64)
    assert panels.shape == (count * 5, 64)
    whole = np.concatenate([panels[p * 5:(p + 1) * 5] for p in range(count)], axis=1)
    np.testing.assert_array_equal(whole[:, :n], w)
    np.testing.assert_array_equal(whole[:, n:], 0)


def test_c_backend_packs_constant_weights_once():
    """x @ W + b with a constant W of 8+ rows: packed at compile time, same numbers."""
    w = RNG.standard_normal((300, 70)).astype(np.float32)
    b = RNG.standard_normal(70).astype(np.float32)
    x = RNG.standard_normal((50, 300)).astype(np.float32)
    exe = G.Exec(mlf.backends.new("c"), lambda x: G.relu(x @ G.const(w) + G.const(b)))
    got = exe(x).numpy()
    source = next(iter(exe._cache.values()))[0].source
    assert "mlf_sgemm_panels(50, 70, 300" in source
    want = np.maximum(x.astype(np.float64) @ w + b, 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return es.shared_root(tmp_path_factory)


@pytest.mark.parametrize("batch", [1, 8])
def test_export_computes_the_model_with_rounded_weights(root, batch):
    ckpt = es.checkpoint(root, "digits_mlp")
    fn = str(es.EXAMPLES / "digits_mlp.py") + ":model"
    kw = dict(checkpoint=ckpt, name="mlpbf")
    packed = es.export(root, f"mlp-bf16-{batch}", fn, [f"x:float32[{batch},64]"],
                       weight_storage="bfloat16", **kw)
    plain = es.export(root, f"mlp-f32-{batch}", fn, [f"x:float32[{batch},64]"], **kw)
    m = json.loads((packed / "manifest.json").read_text())
    assert m["weight_storage"] == "bfloat16"
    assert m["packed_weights"] == ["hidden1/dense/weights", "hidden2/dense/weights"]
    assert "mlf_sgemm_bf16p" in (packed / "mlpbf.c").read_text()
    assert m["weights_bytes"] < 0.6 * json.loads((plain / "manifest.json").read_text())[
        "weights_bytes"]
    report = verify(packed)  # the reference rounds the packed variables the same way
    assert report.ok, str(report)
    x = RNG.standard_normal((batch, 64)).astype(np.float32)
    (rounded,), (exact,) = ExportedLibrary(packed).run(x), ExportedLibrary(plain).run(x)
    assert 1e-6 < np.abs(rounded - exact).max() < 3e-2 * max(1.0, np.abs(exact).max())


def test_cli_exports_and_inspects_with_bfloat16_storage(root, tmp_path, capsys):
    from aot.tools.cli import main
    ckpt = str(es.checkpoint(root, "digits_mlp"))
    fn = str(es.EXAMPLES / "digits_mlp.py") + ":model"
    args = [fn, "--input", "x:float32[1,64]", "--checkpoint", ckpt,
            "--weight-storage", "bfloat16"]
    assert main(["inspect", *args]) == 0
    text = capsys.readouterr().out
    assert "after pass: pack_weights" in text and "mlf_sgemm_bf16p" in text
    assert main(["export", *args, "--no-build", "-o", str(tmp_path / "out")]) == 0
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["weight_storage"] == "bfloat16" and len(m["packed_weights"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["export", *args[:-1], "int8", "-o", str(tmp_path / "bad")])
    assert e.value.code == 2
