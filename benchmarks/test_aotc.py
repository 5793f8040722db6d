"""aotc exports side by side with ONNX Runtime (issue 5).

    .venv/bin/python -m pytest benchmarks/test_aotc.py --benchmark-only -s

* latency, batch 1 and 64, on 1 and 2 threads: MLP 784-512-512-10 and LeNet-5
  (28x28) exported with `aotc export` (2 threads: `--openmp`, libgomp's default
  settings) and called from Python through cffi (preallocated arrays, one
  foreign call), against the same models and weights written with the onnx
  helper and run by ONNX Runtime with as many intra-op threads; batch 1 also
  with `--weight-storage bfloat16` and `float16`, batch 1 and 64 with `--quantize
  int8-weights` (each checked against ONNX Runtime on the model with its weights
  stored the same way; timed against the float32 model, the same bytes) and `--quantize
  int8` (int8 activations calibrated on digits images scaled to 28x28, checked against
  `aotc verify`'s NumPy int8 reference), and ONNX Runtime's own int8 models
  (`onnxruntime.quantization.quantize_dynamic`: int8 weights and dynamically quantized
  activations; `quantize_static`: per-channel int8 weights and int8 activations
  calibrated on the same images, QDQ form, the peer of a full int8 export), and that
  QDQ model itself exported by `aotc export` (aotc-qdq: the MLP at batch 1, its products
  on the int8 kernels with the model's own scales, aot/passes/qdq.py);
* cold start: a C program linked against libNAME.a, from process start to
  its first result, against `python -c` importing onnxruntime, loading the
  model and running it once (both timed as whole processes from here);
* size: libNAME.so of a `--weights file` export (so, apart from the weights).

Read as ratios of medians within one run (benchmarks/README.md, "aotc").
"""
from __future__ import annotations

import itertools
import subprocess
import sys
import time

import ml_dtypes
import numpy as np
import pytest

import mlframework as mlf
from bench_models import lenet, mlp
from aot.export import export_model
from aot.passes.weight_packing import dequantized
from aot.tools.verify import ExportedLibrary, quantized_reference
from mlframework.ml import Context, ContextExec, datasets

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnxruntime.quantization import (CalibrationDataReader, QuantType,  # noqa: E402
                                      quantize_dynamic, quantize_static)


MODELS = {"mlp": (mlp, (784,)), "lenet": (lenet, (1, 28, 28))}
# how the export stores its weights: export_model's options, and the batch sizes timed
STORAGES = {"float32": ({}, (1, 64)), "bfloat16": ({"weight_storage": "bfloat16"}, (1,)),
            "float16": ({"weight_storage": "float16"}, (1,)),
            "int8-weights": ({"quantize": "int8-weights"}, (1, 64)),
            "int8": ({"quantize": "int8"}, (1, 64))}  # with calibration=, set in `setup`


def _calibration_images(name, count=256):
    """Digits training images (8x8, in [0, 1]) scaled to 28x28 by nearest neighbours:
    [count, *MODELS[name][1]]."""
    x = datasets.load_digits(seed=0, images=True)[0][0][:count].reshape(count, 8, 8)
    rows = np.arange(28) * 8 // 28
    return x[:, rows][:, :, rows].reshape(count, *MODELS[name][1]).astype(np.float32)


class _Images(CalibrationDataReader):
    def __init__(self, images, batch):
        self.batches = iter([{"x": images[i:i + batch]}
                             for i in range(0, len(images) - batch + 1, batch)])

    def get_next(self):
        return next(self.batches, None)


def _context(name):
    fn, dims = MODELS[name]
    ctx = Context(seed=0)
    ContextExec(mlf.backends.new("xla"), ctx, fn)(np.zeros((1, *dims), np.float32))
    return ctx, {v.name: v.numpy() for v in ctx.at_root().variables()}


def _onnx_model(name, weights, batch):
    w = weights
    inits, nodes = [], []

    def init(key, array):
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), key))
        return key

    def dense(x, scope, relu):
        y = f"{scope}_out"
        nodes.append(helper.make_node("Gemm", [x, init(f"{scope}_w", w[f"{scope}/dense/weights"]),
                                               init(f"{scope}_b", w[f"{scope}/dense/biases"])],
                                      [y]))
        if relu:
            nodes.append(helper.make_node("Relu", [y], [y + "_r"]))
            return y + "_r"
        return y

    def conv(x, scope, pads):
        y = f"{scope}_out"
        nodes.append(helper.make_node("Conv", [x, init(f"{scope}_w", w[f"{scope}/conv/weights"]),
                                               init(f"{scope}_b", w[f"{scope}/conv/biases"])],
                                      [y], pads=pads))
        nodes.append(helper.make_node("Relu", [y], [y + "_r"]))
        nodes.append(helper.make_node("MaxPool", [y + "_r"], [y + "_p"], kernel_shape=[2, 2],
                                      strides=[2, 2]))
        return y + "_p"

    dims = MODELS[name][1]
    if name == "mlp":
        h = dense(dense("x", "hidden1", True), "hidden2", True)
    else:
        h = conv(conv("x", "conv1", [2, 2, 2, 2]), "conv2", [0, 0, 0, 0])
        nodes.append(helper.make_node("Flatten", [h], ["flat"], axis=1))
        h = dense(dense("flat", "fc1", True), "fc2", True)
    out = dense(h, "logits", False)
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *dims])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _session(model_bytes, threads=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("aotc-bench")
    out = {}
    for name in MODELS:
        ctx, weights = _context(name)
        calibration = root / f"{name}_calibration.npz"
        np.savez(calibration, x=_calibration_images(name))
        for batch in (1, 64):
            dims = MODELS[name][1]
            onnx_path = root / f"{name}{batch}.onnx"
            onnx.save(_onnx_model(name, weights, batch), onnx_path)
            quantize_dynamic(onnx_path, root / f"{name}{batch}_int8.onnx",
                             weight_type=QuantType.QInt8)
            out[name, batch, "onnx int8"] = root / f"{name}{batch}_int8.onnx"
            quantize_static(onnx_path, root / f"{name}{batch}_static.onnx",
                            _Images(_calibration_images(name), batch), per_channel=True)
            out[name, batch, "onnx int8 static"] = root / f"{name}{batch}_static.onnx"
            for threads in (1, 2) if (name, batch) in QDQ else ():
                folder = root / f"{name}{batch}_{threads}_qdq"
                export_model(str(out[name, batch, "onnx int8 static"]), [], folder,
                             name=f"q{name}{batch}", weights="blob", openmp=threads > 1)
                out[name, batch, threads, "qdq"] = (folder, onnx_path)
            for threads, (storage, (options, batches)) in itertools.product(
                    (1, 2), STORAGES.items()):
                if batch not in batches:
                    continue
                folder = root / f"{name}{batch}_{threads}_{storage}"
                export_model(MODELS[name][0], [f"x:float32[{batch},{','.join(map(str, dims))}]"],
                             folder, ctx=ctx, name=f"{name}{batch}", weights="blob",
                             openmp=threads > 1, **options,
                             **({"calibration": calibration} if storage == "int8" else {}))
                out[name, batch, threads, storage] = (folder, onnx_path)
        small = root / f"{name}_file"
        export_model(MODELS[name][0], [f"x:float32[1,{','.join(map(str, MODELS[name][1]))}]"],
                     small, ctx=ctx, name=f"{name}f", weights="file")
        out[name, "file"] = small
        out[name, "weights"] = weights
        out[name, "ctx"] = ctx
    return out


QDQ = {("mlp", 1)}  # ONNX Runtime's quantize_static model itself exported (aotc-qdq rows)
LATENCY = [(who, model, batch, threads, storage)
           for who, model, batch, threads in itertools.product(
               ("aotc", "onnxruntime", "onnxruntime-int8", "onnxruntime-int8-static"), MODELS,
               (1, 64), (1, 2))
           for storage in ([s for s, (_, batches) in STORAGES.items() if batch in batches]
                           if who == "aotc" else ("float32",))] + [
    ("aotc-qdq", model, batch, threads, "qdq") for model, batch in sorted(QDQ)
    for threads in (1, 2)]


def _as_stored(manifest: dict, weights: dict) -> dict:
    """The checkpoint's weights as the export stores them (what its library computes with)."""
    out = dict(weights)
    for names, half in ((manifest["rounded_weights"], ml_dtypes.bfloat16),
                        (manifest["float16_weights"], np.float16)):
        for k in names:
            out[k] = weights[k].astype(half).astype(np.float32)
    for k, axis in manifest["quantized_weights"].items():
        out[k] = dequantized(weights[k], axis)
    return out


@pytest.mark.parametrize("who,model,batch,threads,storage", LATENCY,
                         ids=["-".join(map(str, c)) for c in LATENCY])
def test_latency(benchmark, setup, who, model, batch, threads, storage):
    """ONNX Runtime is timed on the float32 model, and on its dynamically and statically
    quantized int8 models. An aotc row is checked against ONNX Runtime on the same model
    with the weights stored as the export stores them (held as float32 there); a full
    int8 row against `aotc verify`'s NumPy evaluation of its int8 program, and so is an
    aotc-qdq row: the export of ONNX Runtime's QDQ model (onnxruntime-int8-static's),
    every product on the int8 kernels (aot/passes/qdq.py)."""
    folder, onnx_path = setup[model, batch, threads, storage]
    x = np.random.default_rng(0).standard_normal((batch, *MODELS[model][1])).astype(np.float32)
    benchmark.group = f"latency {model} batch {batch}, {threads} thread(s)"
    sess = _session(str(onnx_path), threads)
    if who == "onnxruntime-int8":
        sess = _session(str(setup[model, batch, "onnx int8"]), threads)
    if who == "onnxruntime-int8-static":
        sess = _session(str(setup[model, batch, "onnx int8 static"]), threads)
    if who in ("aotc", "aotc-qdq"):
        lib = ExportedLibrary(folder)
        if who == "aotc-qdq":
            assert {p["path"] for p in lib.manifest["qdq_products"]} == {"int8"}
            want = quantized_reference(lib.manifest, [x])[0]
        elif storage == "int8":
            want = quantized_reference(lib.manifest, [x], MODELS[model][0],
                                       setup[model, "ctx"])[0]
        else:
            stored = _as_stored(lib.manifest, setup[model, "weights"])
            want = _session(_onnx_model(model, stored, batch).SerializeToString(),
                            threads).run(None, {"x": x})[0]
        y = np.empty((batch, 10), np.float32)
        run, px, py, pw = lib._run, lib._ptr(x), lib._ptr(y), lib._ptr(lib.workspace)
        assert run(px, py, pw) == 0
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)  # the same model
        benchmark(run, px, py, pw)
    else:
        feed = {"x": x}
        benchmark(sess.run, None, feed)


COLD_MAIN = r"""
#include <stdio.h>
#include "{name}.h"
static float x[{P}_X_SIZE], y[{P}_OUTPUT_SIZE];
int main(void) {{
  for (int i = 0; i < {P}_X_SIZE; i++) x[i] = (float)(i % 7) * 0.1f;
  int status = {name}_run(x, y, NULL);
  printf("%d %f\n", status, y[0]);
  return status;
}}
"""


def _process_seconds(cmd, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@pytest.mark.parametrize("model", ["mlp", "lenet"])
@pytest.mark.parametrize("who", ["aotc", "onnxruntime"])
def test_cold_start(benchmark, setup, tmp_path, who, model):
    folder, onnx_path = setup[model, 1, 1, "float32"]
    name = f"{model}1"
    benchmark.group = f"cold start {model} (process start to first result)"
    if who == "aotc":
        src = tmp_path / "cold.c"
        src.write_text(COLD_MAIN.format(name=name, P=name.upper()))
        exe = tmp_path / "cold"
        subprocess.run(["cc", "-O2", f"-I{folder}", str(src), str(folder / f"lib{name}.a"),
                        "-lm", "-o", str(exe)], check=True)
        cmd = [str(exe)]
    else:
        cmd = [sys.executable, "-c",
               "import numpy as np, onnxruntime as ort\n"
               f"s = ort.InferenceSession({str(onnx_path)!r}, "
               "providers=['CPUExecutionProvider'])\n"
               f"print(s.run(None, {{'x': np.zeros((1, {', '.join(map(str, MODELS[model][1]))}),"
               " np.float32)})[0][0, 0])"]
    benchmark.extra_info["median_process_seconds"] = _process_seconds(cmd, 3)
    benchmark.pedantic(subprocess.run, args=(cmd,), kwargs={"check": True,
                                                            "capture_output": True},
                       rounds=10, iterations=1)


@pytest.mark.parametrize("model", ["mlp", "lenet"])
def test_library_size(benchmark, setup, model):
    """libNAME.so of a --weights file export: code only (weights live in the .bin)."""
    folder = setup[model, "file"]
    so = folder / f"lib{model}f.so"
    size = so.stat().st_size
    benchmark.group = "libNAME.so size apart from weights"
    benchmark.extra_info["so_bytes"] = size
    benchmark.extra_info["weights_bytes"] = (folder / f"{model}f_weights.bin").stat().st_size
    print(f"\n{so.name}: {size / 1024:.1f} KiB without weights")
    benchmark(lambda: so.stat().st_size)
