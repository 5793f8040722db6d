"""ONNX models quantized in the QDQ form (QuantizeLinear / DequantizeLinear pairs, written by
`onnxruntime.quantization.quantize_static`) on the int8 kernels of `--quantize int8`
(aot/passes/qdq.py), checked against ONNX Runtime running the same QDQ model and against
`aotc verify`'s NumPy evaluation of the int8 program.

ONNX Runtime fuses the pairs into integer kernels (QLinearMatMul, QLinearConv) that
requantize each int32 sum in one step; the export dequantizes it to float32, adds the
bias and quantizes that. The two round the same real numbers, so an output may differ
where a value lands within an ulp of a rounding midpoint: QUANTA below is the stated
tolerance, in steps of the output's own scale, with at least 95% of the outputs identical
(measured here: 96.9% to 100%, never more than one step apart).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

import export_support as es
import mlframework as mlf
from aot.export import export_model
from aot.export.trace import load_context
from aot.tools import cli
from aot.tools.verify import ExportedLibrary, quantized_reference, verify
from mlframework import graph as G
from mlframework.ml import datasets
from mlframework.models import onnx as mlf_onnx

BATCH = 16
SHAPES = {"mlp": (64,), "mlp_raw": (64,), "cnn": (1, 8, 8)}
QUANTA, SAME = 2, 0.95
RNG = np.random.default_rng(13)
# quantize_static's options: the kernels' own form, ONNX Runtime's default (asymmetric
# int8 activations), uint8 activations, and uint8 weights too (zero point 128)
MODES = {
    "symmetric": {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8,
                  "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True}},
    "default": {},
    "uint8": {"activation_type": QuantType.QUInt8},
    "u8u8": {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QUInt8},
}


class _Images(CalibrationDataReader):
    def __init__(self, images):
        self.batches = iter([{"x": images[i:i + BATCH]} for i in range(0, len(images), BATCH)])

    def get_next(self):
        return next(self.batches, None)


def _images(shape, count, train=True):
    (x, _), (xt, _) = datasets.load_digits(seed=0)
    x = (x if train else xt)[:count]
    return x.reshape(count, *shape).astype(np.float32)


def _torch_cnn(path):
    """conv 3x3 (padding 1) + relu + max pool, conv 3x3 + relu, a dense head: Conv with
    biases and Gemm with transB=1, as torch.onnx.export writes them."""
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 32),
                          nn.ReLU(), nn.Linear(32, 10)).eval()
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(BATCH, 1, 8, 8),), str(path), input_names=["x"],
                          output_names=["y"], dynamo=False, opset_version=17)


def _float_model(root, name):
    """The float ONNX model: the digits MLP (trained) written by mlframework's exporter
    and constant-folded by ONNX Runtime's pre-processing ("mlp_raw": not, so its weights
    are computed by Transpose and Reshape nodes), or the torch CNN."""
    def build(path):
        if name == "cnn":
            _torch_cnn(path / "model.onnx")
            return
        sys.path.insert(0, str(es.EXAMPLES))
        module = __import__("digits_mlp")
        ctx = load_context(es.checkpoint(root, "digits_mlp"))
        mlf_onnx.export(module.model, [np.zeros((BATCH, 64), np.float32)], path / "raw.onnx",
                        ctx=ctx, input_names=["x"])
        quant_pre_process(str(path / "raw.onnx"), str(path / "model.onnx"))
    folder = es.cached(root, f"qdq-float-{name.removesuffix('_raw')}", build)
    return folder / ("raw.onnx" if name.endswith("_raw") else "model.onnx")



def _qdq_model(root, name, mode):
    def build(path):
        quantize_static(str(_float_model(root, name)), str(path / "model.onnx"),
                        _Images(_images(SHAPES[name], 128)), quant_format=QuantFormat.QDQ,
                        per_channel=True, **MODES[mode])
    return es.cached(root, f"qdq-{name}-{mode}", build) / "model.onnx"


def _export(root, name, mode):
    path = _qdq_model(root, name, mode)
    return es.export(root, f"qdq-{name}-{mode}", str(path), [], name=f"q{name}")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return es.shared_root(tmp_path_factory)


def _onnxruntime(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _output_scale(path) -> float:
    """The scale of the DequantizeLinear writing the model's output."""
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = model.graph.output[0].name
    node, = [n for n in model.graph.node if out in n.output]
    while node.op_type == "Identity":
        node, = [n for n in model.graph.node if node.input[0] in n.output]
    assert node.op_type == "DequantizeLinear"
    return float(inits[node.input[1]])


def _assert_quanta(got, want, scale):
    diff = np.abs(np.asarray(got, np.float64) - want)
    assert diff.max() <= QUANTA * scale * (1 + 1e-6), (diff.max(), scale)
    assert np.mean(diff == 0) >= SAME, np.mean(diff == 0)


def _inputs(name):
    """Test images, then random ones (many beyond the calibrated range: saturation)."""
    images = _images(SHAPES[name], 2 * BATCH, train=False)
    return [images[:BATCH], images[BATCH:],
            RNG.standard_normal((BATCH, *SHAPES[name])).astype(np.float32) * 2]


# (model, int8 dense layers, int8 convolutions)
COUNTS = [("mlp", 3, 0), ("cnn", 2, 2)]


@pytest.mark.parametrize("name,dense,convs", COUNTS)
def test_symmetric_qdq_model_runs_on_the_int8_kernels(root, name, dense, convs):
    folder = _export(root, name, "symmetric")
    lib = ExportedLibrary(folder)
    products = lib.manifest["qdq_products"]
    assert [p["path"] for p in products] == ["int8"] * (dense + convs), products
    assert all(p["activations"] == "int8" and p["zero_point"] == 0 for p in products)
    assert len(lib.manifest["quantized_weights"]) == dense + convs
    c = (folder / f"q{name}.c").read_text()
    assert c.count("mlf_gemm_s8(") == dense and c.count("mlf_conv2d_s8(") == convs
    path = _qdq_model(root, name, "symmetric")
    scale = _output_scale(path)
    for x in _inputs(name):
        got = lib.run(x)[0]
        np.testing.assert_allclose(got, quantized_reference(lib.manifest, [x])[0],
                                   rtol=1e-6, atol=1e-6)
        _assert_quanta(got, _onnxruntime(path, x), scale)
    report = verify(folder)
    out = lib.manifest["outputs"][0]["name"]
    assert report.ok and set(report.max_diff) == {f"{out} vs int8 numpy"}, str(report)
    assert any(k.endswith("vs onnxruntime") for k in report.unchecked), str(report)


@pytest.mark.parametrize("mode,activations", [("default", "int8"), ("uint8", "uint8"),
                                             ("u8u8", "uint8")])
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_asymmetric_activations_map_exactly_with_a_zero_point_correction(root, name, mode,
                                                                         activations):
    """ONNX Runtime's default QDQ model (int8 activations with zero points), a uint8 one
    and one with uint8 weights too (zero point 128: q - 128 is their int8): their products
    run on the same kernels, the activations' zero point folded into a per-column (per
    output pixel for a padded convolution) int32 correction, and give ONNX Runtime's
    numbers."""
    folder = _export(root, name, mode)
    lib = ExportedLibrary(folder)
    products = lib.manifest["qdq_products"]
    assert {p["path"] for p in products} == {"int8"}, products
    assert {p["activations"] for p in products} == {activations}
    if mode == "default":  # relu outputs: [0, max] is [-128, 127] with zero point -128
        assert {p["zero_point"] for p in products} == {-128}, products
    path = _qdq_model(root, name, mode)
    for x in _inputs(name):
        got = lib.run(x)[0]
        np.testing.assert_allclose(got, quantized_reference(lib.manifest, [x])[0],
                                   rtol=1e-6, atol=1e-6)
        _assert_quanta(got, _onnxruntime(path, x), _output_scale(path))
    assert verify(folder).ok


def test_generated_c_compiles_without_warnings(root, tmp_path):
    """The uint8 CNN: the shift into int8, both int8 kernels, the zero point's
    corrections (with -march=native: the VNNI path); a real compile."""
    folder = _export(root, "cnn", "uint8")
    proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "qcnn.o"), "-std=gnu99", "-O3",
                           "-march=native", "-Wall", "-Wextra", "-Werror",
                           f"-I{folder / 'runtime'}",
                           str(folder / "qcnn.c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_weights_computed_at_run_time_keep_the_float_path_and_say_so(root, capsys):
    """Without ONNX Runtime's pre-processing the MLP's weights are Transpose and Reshape
    outputs, which quantize_static quantizes per tensor at run time like activations: not
    constants the int8 kernels could hold, so the products stay float, and say so."""
    folder = _export(root, "mlp_raw", "symmetric")
    lib = ExportedLibrary(folder)
    products = lib.manifest["qdq_products"]
    assert len(products) == 3 and all(
        p["path"] == "float" and "weights are not a constant" in p["reason"]
        for p in products), products
    assert "mlf_gemm_s8(" not in (folder / "qmlp_raw.c").read_text()
    path = _qdq_model(root, "mlp_raw", "symmetric")
    for x in _inputs("mlp"):
        _assert_quanta(lib.run(x)[0], _onnxruntime(path, x), _output_scale(path))
    report = verify(folder)  # against xla and ONNX Runtime, rounding apart as above
    assert report.max_diff["output vs onnxruntime"] <= QUANTA * _output_scale(path), report
    assert cli.main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "QDQ products: 0 on the int8 kernels, 3 on the float DequantizeLinear path" in out
    assert "float: the weights are not a constant dequantized from int8 or uint8" in out


def test_inspect_lists_the_mapped_products(root, capsys):
    assert cli.main(["inspect", str(_qdq_model(root, "cnn", "default"))]) == 0
    out = capsys.readouterr().out
    assert "after pass: map_qdq" in out and "QDQ products: 4 on the int8 kernels, 0 on" in out
    assert "int8 x int8 -> int32, int8 activations, zero point -128" in out


@pytest.mark.parametrize("backend", ["xla", "c"])
@pytest.mark.parametrize("name,mode", [("mlp", "symmetric"), ("cnn", "default"),
                                       ("cnn", "uint8")])
def test_imported_qdq_model_on_both_backends(root, backend, name, mode):
    path = _qdq_model(root, name, mode)
    exe = G.Exec(mlf.backends.new(backend), mlf_onnx.load_model(str(path)))
    for x in _inputs(name):
        _assert_quanta(exe(x).numpy(), _onnxruntime(path, x), _output_scale(path))


# ---- single products written by hand: every geometry, zero point and refusal ----

def _product_model(op, x_shape, w_q, w_scale, w_axis, x_scale, x_zero, w_zero=None, **attrs):
    """x -> QuantizeLinear -> DequantizeLinear -> op(., DequantizeLinear(w_q)) -> y."""
    inits = [numpy_helper.from_array(np.array(x_scale, np.float32), "xs"),
             numpy_helper.from_array(x_zero, "xz"), numpy_helper.from_array(w_q, "wq"),
             numpy_helper.from_array(np.asarray(w_scale, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(np.shape(w_scale), np.int8)
                                     if w_zero is None else w_zero, "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=w_axis),
             helper.make_node(op, ["xd", "wd"], ["y"], **attrs)]
    graph = helper.make_graph(nodes, "product", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, x_shape)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


ZEROS = [np.int8(0), np.int8(37), np.int8(-128), np.uint8(200), np.uint8(0)]
CONV_W = RNG.integers(-127, 128, (6, 3, 3, 3)).astype(np.int8)
DENSE_W = RNG.integers(-127, 128, (40, 24)).astype(np.int8)
CASES = {
    "conv": lambda z: _product_model("Conv", [2, 3, 9, 11], CONV_W, RNG.uniform(0.01, 0.05, 6),
                                     0, 0.02, z, strides=[2, 1], dilations=[1, 2],
                                     pads=[2, 0, 1, 3]),
    "matmul": lambda z: _product_model("MatMul", [5, 40], DENSE_W, RNG.uniform(0.01, 0.05, 24),
                                       1, 0.03, z),
    "gemm_transposed": lambda z: _product_model("Gemm", [5, 40], DENSE_W.T.copy(),
                                                RNG.uniform(0.01, 0.05, 24), 0, 0.03, z,
                                                transB=1),
    "per_tensor_weights": lambda z: _product_model("MatMul", [5, 40], DENSE_W, 0.02, 1, 0.03, z),
    "uint8_weights": lambda z: _product_model(
        "MatMul", [5, 40], (DENSE_W.astype(np.int16) + 128).astype(np.uint8),
        RNG.uniform(0.01, 0.05, 24), 1, 0.03, z, w_zero=np.full(24, 128, np.uint8)),
}


@pytest.mark.parametrize("zero", ZEROS, ids=lambda z: f"{z.dtype}{z}")
@pytest.mark.parametrize("case", list(CASES))
def test_one_product_matches_onnxruntime_on_the_c_backend(tmp_path, case, zero):
    """The int32 sums with a zero point's correction are exact, so the float32 outputs
    (no output QuantizeLinear here) agree with ONNX Runtime's integer kernels to float32
    rounding; the manifest shows the product on the int8 kernels."""
    model = CASES[case](zero)
    x_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = RNG.standard_normal(x_shape).astype(np.float32) * 2
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = G.Exec(mlf.backends.new("c"), mlf_onnx.load_model(model))(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    onnx.save(model, tmp_path / "m.onnx")
    art = export_model(str(tmp_path / "m.onnx"), [], tmp_path / "out", name="m", build=False)
    (product,) = art.manifest["qdq_products"]
    assert product["path"] == "int8" and product["activations"] == zero.dtype.name
    assert product["zero_point"] == int(zero), product


@pytest.mark.parametrize("what,model,reason", [
    ("scales per input channel",
     lambda: _product_model("MatMul", [5, 40], DENSE_W, RNG.uniform(0.01, 0.05, 40), 0, 0.03,
                            np.int8(0)), "not one per output channel"),
    ("weight zero points",
     lambda: _product_model("MatMul", [5, 40], DENSE_W, RNG.uniform(0.01, 0.05, 24), 1, 0.03,
                            np.int8(0), w_zero=np.full(24, 100, np.int8)),
     "int8 weights minus their zero points do not fit int8"),
    ("uint8 weights",
     lambda: _product_model("MatMul", [5, 40], DENSE_W.view(np.uint8),
                            RNG.uniform(0.01, 0.05, 24), 1, 0.03, np.int8(0),
                            w_zero=np.zeros(24, np.uint8)),
     "uint8 weights minus their zero points do not fit int8"),
    ("sums that could overflow int32",
     lambda: _product_model("MatMul", [1, 65800], np.ones((65800, 1), np.int8), [0.01], 1,
                            0.03, np.int8(0)), "could overflow int32"),
    ("a batched product",
     lambda: _product_model("MatMul", [2, 5, 40], np.stack([DENSE_W, DENSE_W]),
                            0.02, 1, 0.03, np.int8(0)), "not a dense layer"),
])
def test_what_the_kernels_cannot_run_keeps_the_float_path(tmp_path, what, model, reason):
    """Against ONNX Runtime's own float path (its graph optimizations off: its integer
    kernels refuse scales per input channel too)."""
    model = model()
    x_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = RNG.standard_normal(x_shape).astype(np.float32)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    onnx.save(model, tmp_path / "m.onnx")
    art = export_model(str(tmp_path / "m.onnx"), [], tmp_path / "out", name="m")
    (product,) = art.manifest["qdq_products"]
    assert product["path"] == "float" and reason in product["reason"], product
    got = ExportedLibrary(art.out_dir).run(x)[0]
    # float32 sums in another order than ORT's: 65800 terms differ by ~2e-5 relative; the
    # int8 path would differ by the activations' quantization, ~1e-2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())



def _written_qdq(x):
    """The QDQ pattern written by hand as graph ops (no ONNX): x quantized with scale 0.03
    and zero point 5, times DENSE_W dequantized with a scale per column."""
    q = G.convert(G.clip(G.round(x / 0.03) + 5.0, -128.0, 127.0), "int8")
    dq = G.convert(G.convert(q, "int32") - 5, "float32") * 0.03
    w = G.convert(G.convert(G.const(DENSE_W), "int32"), "float32") * G.const(COLUMN_SCALES)
    return G.matmul(dq, w)


COLUMN_SCALES = RNG.uniform(0.01, 0.05, (1, 24)).astype(np.float32)


def _written_reference(x):
    q = np.clip(np.rint(x.astype(np.float64) / np.float32(0.03)) + 5, -128, 127) - 5
    return (q @ DENSE_W.astype(np.float64)) * (np.float32(0.03) * COLUMN_SCALES)


@pytest.mark.parametrize("symbolic", [False, True])
def test_the_pattern_is_matched_in_any_graph_and_a_symbolic_batch_stays_float(symbolic):
    """map_qdq reads the program, not ONNX: the same pattern written as graph ops maps
    onto the int8 kernels (the c backend), except with a symbolic batch (int8 products of
    a symbolic batch are not built), where it stays float; both give the NumPy values."""
    from aot.passes.qdq import map_qdq
    from aot.passes.simplify import simplify
    from aot.program.program import from_graph
    axes, maxima = ({"x": "N, 40"}, {"N": 8}) if symbolic else (None, None)
    graph = G.Exec(None, _written_qdq, symbolic=axes, maxima=maxima).graph(
        np.zeros((5, 40), np.float32))
    (product,) = map_qdq(simplify(from_graph(graph)))[1]
    assert product["path"] == ("float" if symbolic else "int8"), product
    assert symbolic == ("symbolic" in product.get("reason", "")), product
    exe = mlf.backends.new("c").compile(graph)
    assert ("mlf_gemm_s8(" in exe.source) != symbolic
    for n in (1, 3, 8) if symbolic else (5,):
        x = RNG.standard_normal((n, 40)).astype(np.float32)
        got, = exe.run([x])
        np.testing.assert_allclose(got, _written_reference(x), rtol=1e-5, atol=1e-5)
