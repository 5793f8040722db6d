"""mlframework.models.onnx.export: graph functions and model(ctx, x) functions written
as ONNX (opset 17), checked by onnx.checker (full_check) and run in ONNX Runtime
against the xla backend."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import mlframework as mlf
from mlframework import graph as G
from mlframework import ml
from mlframework.models import onnx as mlf_onnx

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RNG = np.random.default_rng(3)
X = RNG.standard_normal((3, 4)).astype(np.float32)
Y = RNG.standard_normal((3, 4)).astype(np.float32)
W = RNG.standard_normal((4, 5)).astype(np.float32)
IMG = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
K = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
POS = np.abs(X) + 0.5

# (name, function, example inputs): every primitive and composite with an ONNX form
CASES = [
    ("unary", lambda x: G.exp(x) + G.log(G.abs(x) + 1) + G.sqrt(G.abs(x)) + G.tanh(x)
     + G.sin(x) + G.cos(x) + G.floor(x) + G.ceil(x) + G.round(x) + G.erf(x) + G.sign(x)
     + G.neg(x) + G.expm1(x) + G.log1p(G.abs(x)) + G.rsqrt(G.abs(x) + 1), [X]),
    ("binary", lambda x, y: x + y - x * y / (G.abs(y) + 1) + G.max(x, y) + G.min(x, y)
     + G.pow(G.abs(x) + 1, y) + G.rem(x, G.abs(y) + 1), [X, Y]),
    ("compare_select", lambda x, y: G.where(G.logical_or(G.lt(x, y), G.eq(x, y)), x,
                                            G.where(G.logical_and(G.ge(x, 0), G.ne(y, 0)), y,
                                                    G.zeros_like(x))), [X, Y]),
    ("activations", lambda x: G.relu(x) + G.sigmoid(x) + G.gelu(x) + G.silu(x)
     + G.softplus(x) + G.leaky_relu(x) + G.clip(x, -0.5, 0.5), [X]),
    ("softmax", lambda x: G.softmax(x) + G.log_softmax(x, 0) + G.logsumexp(x, 1, True), [X]),
    ("reductions", lambda x: (G.reduce_sum(x, [1]), G.reduce_max(x, [0]), G.mean(x),
                              G.variance(x, [1]), G.reduce_prod(x, [1]), G.reduce_min(x)), [X]),
    ("arg", lambda x: (G.argmax(x, 1), G.argmin(x, 0)), [X]),
    ("logic_reductions", lambda x: (G.reduce_and(G.gt(x, -1), [1]),
                                    G.reduce_or(G.gt(x, 1), [0])), [X]),
    ("matmul", lambda x, w: G.matmul(x, w), [X, W]),
    ("einsum", lambda x, y: G.einsum("ij,kj->ik", x, y), [X, Y]),
    ("batched_dot", lambda a: G.einsum("bij,bkj->bik", a, a), [IMG[0]]),
    ("shapes", lambda x: G.concatenate([G.transpose(G.reshape(x, (2, 6)), (1, 0)),
                                        G.reshape(x, (6, 2))], 0), [X]),
    ("movement", lambda x: (G.reverse(x, [1]), G.pad(x, [(1, 0, 0), (0, 2, 0)], 1.5),
                            G.slice(x, [0, 1], [3, 4], [2, 2]), G.broadcast_to(x[0], (2, 4)),
                            G.expand_dims(x, 0), G.flatten(x)), [X]),
    ("cumsum_iota", lambda x: G.cumsum(x, 1) + G.cumsum(x, 0, reverse=True)
     + G.convert(G.iota(np.int32, (3, 4), 1), np.float32), [X]),
    ("convert", lambda x: G.convert(G.convert(x * 3, np.int32), np.float32), [X]),
    ("conv", lambda x, k: G.conv_general(x, k, (1, 1), [(1, 1), (1, 1)]), [IMG, K]),
    ("conv_strided_dilated", lambda x, k: G.conv_general(x, k, (2, 1), [(0, 1), (2, 2)], None,
                                                          (1, 2)), [IMG, K]),
    ("conv_nhwc_hwio", lambda x, k: G.conv_general(
        x, k, padding=[(1, 1), (0, 1)], dimension_numbers=("NHWC", "HWIO", "NHWC")),
     [IMG.transpose(0, 2, 3, 1), K.transpose(2, 3, 1, 0)]),
    ("dot_widened", lambda x, w: G.dot_general(x, w, (1,), (0,), preferred_element_type=np.float64),
     [X, W]),
    ("pool", lambda x: (G.reduce_window_max(x, (1, 1, 2, 2), (1, 1, 2, 2)),
                        G.reduce_window_sum(x, (1, 1, 3, 3), (1, 1, 1, 1),
                                            [(0, 0), (0, 0), (1, 1), (1, 1)])), [IMG]),
    ("is_finite", lambda x: G.where(G.is_finite(G.log(x)), x, G.zeros_like(x)), [X]),
    ("positive", lambda x: G.sqrt(x) * G.log(x), [POS]),
]


def _check(model: onnx.ModelProto, fn, inputs, ctx=None):
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: x for i, x in zip(session.get_inputs(), inputs)})
    backend = mlf.backends.new("xla")
    if ctx is None:
        want = G.Exec(backend, fn)(*inputs)
    else:
        want = ml.ContextExec(backend, ctx, fn)(*inputs)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = w.numpy()
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,fn,inputs", CASES, ids=[c[0] for c in CASES])
def test_exported_function_runs_in_onnxruntime(name, fn, inputs, tmp_path):
    path = tmp_path / f"{name}.onnx"
    model = mlf_onnx.export(fn, inputs, path)
    assert onnx.load(path) == model
    _check(model, fn, inputs)


@pytest.mark.parametrize("example,shape", [("digits_mlp", (5, 64)), ("digits_cnn", (5, 1, 8, 8))])
def test_exported_context_model_holds_its_variables(example, shape):
    sys.path.insert(0, str(EXAMPLES))
    module = __import__(example)
    ctx = ml.Context(seed=0)
    x = RNG.standard_normal(shape).astype(np.float32)
    ml.ContextExec(mlf.backends.new("xla"), ctx, module.model)(x)  # creates the variables
    model = mlf_onnx.export(module.model, [x], ctx=ctx)
    initializer_bytes = sum(np.prod(t.dims) for t in model.graph.initializer)
    assert initializer_bytes >= sum(v.numpy().size for v in ctx.trainable_variables())
    _check(model, module.model, [x], ctx)


def test_a_primitive_without_onnx_form_names_the_node():
    with pytest.raises(mlf_onnx.OnnxExportError, match=r"graph node #\d+ sort .*has no ONNX "
                                                       r"form"):
        mlf_onnx.export(lambda x: G.sort(x), [X])
