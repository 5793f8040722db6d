"""`aotc export --quantize int8-weights`: weight-only int8 post-training quantization of
dense layers (aot/passes/weight_packing.py, runtime_c/mlf_gemm_i8.h), checked against an
independent NumPy quantization, the float model's accuracy, and `aotc verify`'s
quantization-aware reference; `--quantize int8` (int8 activations) is refused as not built."""
from __future__ import annotations

import numpy as np
import pytest

import export_support as es
from aot.export import export_model
from aot.export.signature import UsageError
from aot.passes.weight_packing import pack_weights
from aot.program.program import from_graph
from aot.tools import cli
from aot.tools.verify import ExportedLibrary, verify
from mlframework import graph as G
from mlframework.ml import datasets


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return es.shared_root(tmp_path_factory)


def _test_set():
    return datasets.load_digits(seed=0)[1]


def _trained(root, example):
    """The example trained to convergence (10 epochs, ~97% test accuracy): the other
    tests' one- and two-epoch checkpoints sit at 86-90%, with test images on the
    decision boundary, where any rounding of the weights moves a few of them."""
    return es.cached(root, f"ckpt-{example}-10",
                     lambda p: es.train_checkpoint(example, p, 10))


def _digits(root, example, shape, quantize):
    x, _ = _test_set()
    key = f"{example}-{quantize or 'float'}-{len(x)}"
    return es.export(root, key, str(es.EXAMPLES / f"{example}.py") + ":model",
                     [f"x:float32[{len(x)},{shape}]"], checkpoint=_trained(root, example),
                     name=key.replace("-", "_"), quantize=quantize)


def test_scales_and_values_match_an_independent_numpy_quantization():
    w = np.random.default_rng(0).standard_normal((96, 40)).astype(np.float32)
    w[:, 3] = 0.0  # an all-zero column keeps scale 1 and zeros
    w[5, 7] = 9.0  # an outlier sets its column's scale alone
    x = np.ones((2, 96), np.float32)
    program = from_graph(G.Exec(None, lambda x: x @ G.const(w)).graph(x))
    packed = pack_weights(program, "int8")
    value = next(v for v in packed.values.values() if v.attrs.get("packing") == "int8_columns")
    raw = np.asarray(value.attrs["value"])
    scales = raw[:4 * 40].view(np.float32)
    q = raw[4 * 40:].reshape(96, 40)
    want_scales = np.array([np.abs(w[:, n]).max() / 127 if np.any(w[:, n]) else 1.0
                            for n in range(40)], np.float32)
    np.testing.assert_allclose(scales, want_scales, rtol=1e-7)
    want_q = np.array([[round(float(w[k, n] / want_scales[n])) for n in range(40)]
                       for k in range(96)])
    np.testing.assert_array_equal(q, want_q)
    assert q.dtype == np.int8 and np.abs(q).max() == 127 and not q[:, 3].any()


def test_conv_weights_are_scaled_per_output_channel():
    w = np.random.default_rng(1).standard_normal((5, 3, 3, 3)).astype(np.float32)
    w[2] *= 40.0
    x = np.ones((1, 3, 6, 6), np.float32)
    program = from_graph(G.Exec(None, lambda x: G.conv_general(x, G.const(w))).graph(x))
    value = next(v for v in pack_weights(program, "int8").values.values()
                 if v.attrs.get("packing") == "int8_channels")
    want_scales = np.abs(w).reshape(5, -1).max(axis=1) / 127
    np.testing.assert_allclose(value.attrs["scales"], want_scales, rtol=1e-7)
    np.testing.assert_array_equal(value.attrs["value"],
                                  np.rint(w / want_scales[:, None, None, None]))
    half = next(v for v in pack_weights(program, "float16").values.values()
                if v.attrs.get("packing") == "float16")
    assert half.attrs["value"].dtype == np.float16 and half.shape == (5, 3, 3, 3)


@pytest.mark.parametrize("example,shape", [("digits_mlp", "64"), ("digits_cnn", "1,8,8")])
def test_digits_accuracy_drops_at_most_half_a_point(root, example, shape):
    x, y = _test_set()
    x = x.reshape(len(x), *map(int, shape.split(",")))
    accuracy = {}
    for quantize in (None, "int8-weights"):
        lib = ExportedLibrary(_digits(root, example, shape, quantize))
        assert bool(lib.manifest["quantized_weights"]) == bool(quantize)
        accuracy[quantize] = float(np.mean(np.argmax(lib.run(x)[0], -1) == y))
    assert accuracy[None] > 0.95 and accuracy["int8-weights"] >= accuracy[None] - 0.005, \
        accuracy


def test_quantized_export_is_smaller_and_verifies_against_its_reference(root):
    folder = _digits(root, "digits_mlp", "64", "int8-weights")
    m = ExportedLibrary(folder).manifest
    float_m = ExportedLibrary(_digits(root, "digits_mlp", "64", None)).manifest
    assert m["quantize"] == "int8-weights"
    assert m["quantized_weights"] == {"hidden1/dense/weights": 1, "hidden2/dense/weights": 1}
    assert m["weights_bytes"] < 0.5 * float_m["weights_bytes"]
    report = verify(folder)
    assert report.ok, str(report)
    assert 0 < report.unchecked["output vs float model"] < 0.2
    assert "the quantization's error, not checked" in str(report)


def test_cnn_quantizes_its_convolutions_and_stores_them_as_float16(root, tmp_path):
    m = ExportedLibrary(_digits(root, "digits_cnn", "1,8,8", "int8-weights")).manifest
    axes = m["quantized_weights"]
    assert {n for n, a in axes.items() if a == 0} == {"block0/conv/weights", "block1/conv/weights"}
    ckpt = es.checkpoint(root, "digits_cnn")
    art = export_model(str(es.EXAMPLES / "digits_cnn.py") + ":model", ["x:float32[4,1,8,8]"],
                       tmp_path / "h", checkpoint=ckpt, name="h", weight_storage="float16")
    assert set(art.manifest["float16_weights"]) == {n for n, a in axes.items() if a == 0}
    assert "mlf_load_f16(" in (art.out_dir / "h.c").read_text()
    report = verify(art.out_dir)
    assert report.ok, str(report)


def test_batch_one_streams_the_int8_weights(tmp_path, root):
    """M <= 6 reads Q in place (the 64-column register blocks and the tail)."""
    ckpt = es.checkpoint(root, "digits_mlp")
    art = export_model(str(es.EXAMPLES / "digits_mlp.py") + ":model", ["x:float32[1,64]"],
                       tmp_path / "m1", checkpoint=ckpt, name="m1", quantize="int8-weights")
    assert "mlf_sgemm_i8w(1, 128, 64" in (art.out_dir / "m1.c").read_text()
    assert verify(art.out_dir).ok


def test_full_int8_and_conflicting_options_are_refused(tmp_path, capsys):
    args = ["export", str(es.EXAMPLES / "digits_mlp.py") + ":model", "--input",
            "x:float32[1,64]", "-o", str(tmp_path / "q")]
    assert cli.main(args + ["--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert "not implemented" in err and "--quantize int8-weights" in err
    assert cli.main(args + ["--quantize", "int8-weights", "--weight-storage", "bfloat16"]) == 2
    assert "choose one" in capsys.readouterr().err
    with pytest.raises(UsageError, match="--calibration is for --quantize int8"):
        export_model(str(es.EXAMPLES / "digits_mlp.py") + ":model", ["x:float32[1,64]"],
                     tmp_path / "c", quantize="int8-weights", calibration="data.npz")
