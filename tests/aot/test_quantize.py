"""`aotc export --quantize int8-weights` (weight-only int8 post-training quantization of
dense layers, convolutions and embedding tables: aot/passes/weight_packing.py,
runtime_c/mlf_gemm_i8.h) and `--quantize int8` (int8 activations calibrated on sample
data, int32 sums: aot/passes/quantization.py, runtime_c/mlf_gemm_s8.h), checked against
independent NumPy quantizations and int64 products, the float model's accuracy, and
`aotc verify`'s quantization-aware references."""
from __future__ import annotations

import json
import subprocess
import sys

import cffi
import numpy as np
import pytest

import export_support as es
from aot.build.compiler import RUNTIME
from aot.export import export_model
from aot.export.calibration import static_inputs
from aot.export.signature import UsageError, parse_input
from aot.export.trace import load_context
from aot.passes.quantization import calibration_points, quantize_int8
from aot.passes.simplify import simplify
from aot.passes.weight_packing import pack_weights, s8_conv_rows, s8_panels
from aot.program.program import from_graph
from aot.tools import cli
from aot.tools.inspection import inspect_model
from aot.tools.verify import ExportedLibrary, verify
from mlframework import graph as G
from mlframework.graph.gen_optypes import Op
from mlframework.ml import datasets

RNG = np.random.default_rng(13)
SHAPES = {"digits_mlp": "64", "digits_cnn": "1,8,8"}


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


def _calibration(root, example):
    """256 training images as --calibration FILE.npz."""
    def write(path):
        x = datasets.load_digits(seed=0)[0][0][:256]
        dims = map(int, SHAPES[example].split(","))
        np.savez(path / "calibration.npz", x=x.reshape(len(x), *dims))
    return es.cached(root, f"calibration-{example}", write) / "calibration.npz"


def _digits(root, example, shape, quantize, batch=None):
    batch = batch or len(_test_set()[0])
    key = f"{example}-{quantize or 'float'}-{batch}"
    calibration = _calibration(root, example) if quantize == "int8" else None
    return es.export(root, key, str(es.EXAMPLES / f"{example}.py") + ":model",
                     [f"x:float32[{batch},{shape}]"], checkpoint=_trained(root, example),
                     name=key.replace("-", "_"), quantize=quantize, calibration=calibration)


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
    for quantize in (None, "int8-weights", "int8"):
        lib = ExportedLibrary(_digits(root, example, shape, quantize))
        assert bool(lib.manifest["quantized_weights"]) == bool(quantize)
        accuracy[quantize] = float(np.mean(np.argmax(lib.run(x)[0], -1) == y))
    assert accuracy[None] > 0.95, accuracy
    assert accuracy["int8-weights"] >= accuracy[None] - 0.005, accuracy
    assert accuracy["int8"] >= accuracy[None] - 0.005, accuracy
    c = (_digits(root, example, shape, "int8") / f"{example}_int8_360.c").read_text()
    dense, convs = {"digits_mlp": (3, 0), "digits_cnn": (2, 2)}[example]
    # each convolution quantizes its float input itself: no int8 activation buffer
    assert c.count("mlf_gemm_s8(") == dense and c.count("mlf_conv2d_s8_f32(") == convs


def _symbolic_int8(root, example, shape):
    """The full-int8 export of `example` with a symbolic batch N up to the test set's size,
    calibrated on the same file as the static one (`_digits`)."""
    return es.export(root, f"{example}-int8-symbolic", str(es.EXAMPLES / f"{example}.py")
                     + ":model", [f"x:float32[N,{shape}]"], checkpoint=_trained(root, example),
                     name=f"{example}_int8_n", quantize="int8",
                     calibration=_calibration(root, example), maxima={"N": len(_test_set()[0])})


@pytest.mark.parametrize("example,shape", [("digits_mlp", "64"), ("digits_cnn", "1,8,8")])
def test_symbolic_batch_full_int8_equals_the_static_export(root, example, shape):
    """One symbolic-batch full-int8 library gives the static full-int8 export's outputs
    (the same activation scales, the int8 kernels on the runtime row count) at batch 1,
    7, 64 and the maximum, and the test set's accuracy stays within half a point of the
    float model's."""
    x, y = _test_set()
    x = x.reshape(len(x), *map(int, shape.split(",")))
    lib = ExportedLibrary(_symbolic_int8(root, example, shape))
    static = ExportedLibrary(_digits(root, example, shape, "int8"))
    assert lib.manifest["activation_scales"] == static.manifest["activation_scales"]
    want, = static.run(x)
    for n in (1, 7, 64, len(x)):
        out, = lib.run(x[:n])
        np.testing.assert_allclose(out, want[:n], rtol=0, atol=1e-6)
    c = (_symbolic_int8(root, example, shape) / f"{example}_int8_n.c").read_text()
    dense, convs = {"digits_mlp": (3, 0), "digits_cnn": (2, 2)}[example]
    assert c.count("mlf_gemm_s8(sym_N,") == dense and c.count("mlf_conv2d_s8_f32(sym_N,") == convs
    float_lib = ExportedLibrary(_digits(root, example, shape, None))
    accuracy = float(np.mean(np.argmax(lib.run(x)[0], -1) == y))
    assert accuracy >= float(np.mean(np.argmax(float_lib.run(x)[0], -1) == y)) - 0.005


def test_symbolic_full_int8_verifies_and_inspects_with_its_symbol(root):
    folder = _symbolic_int8(root, "digits_mlp", "64")
    report = verify(folder, trials=1)
    assert report.ok and list(report.max_diff) == ["output vs int8 numpy"], report
    text = inspect_model(str(es.EXAMPLES / "digits_mlp.py") + ":model", ["x:float32[N,64]"],
                         checkpoint=_trained(root, "digits_mlp"), maxima={"N": len(_test_set()[0])},
                         quantize="int8", calibration=_calibration(root, "digits_mlp")).text()
    assert "N in [1, 360]" in text and "mlf_gemm_s8(sym_N, 128, 64," in text


def test_symbolic_full_int8_runs_clean_under_the_sanitizers(root, tmp_path):
    """The symbolic full-int8 CNN (int8 im2col and VNNI GEMM on the runtime row count)
    under ASan and UBSan at batch 1, 7, 64 and the maximum, each with a workspace of
    exactly NAME_ARENA_BYTES_FOR(n); its checksums are the library's."""
    folder = _symbolic_int8(root, "digits_cnn", "1,8,8")
    src = tmp_path / "sanitized.c"
    top = len(_test_set()[0])
    src.write_text(es.symbolic_sanitized("digits_cnn_int8_n", ["N"], [[1], [7], [64], [top]]))
    out = es.run_sanitized(src, folder, ["digits_cnn_int8_n.c", "digits_cnn_int8_n_weights.c"],
                           tmp_path / "sanitized", ["-march=native"])
    lines = out.split()
    assert lines[0::2] == ["1", "7", "64", str(top)]
    lib = ExportedLibrary(folder)
    for n, checksum in zip((1, 7, 64, top), lines[1::2]):
        i = np.arange(n * 64)
        x = (((i * 7919) % 113) / np.float32(57.0) - 1).astype(np.float32).reshape(n, 1, 8, 8)
        assert abs(float(lib.run(x)[0].astype(np.float64).sum()) - float(checksum)) < 1e-3


def sequences(ctx, inputs):
    """x [N, S, 4] and y [M, 2], two batches: the sum over S of two dense layers on x
    ([N, 3]) and one dense layer on y ([M, 3])."""
    from mlframework.ml import layers
    x, y = inputs
    h = layers.dense(ctx / "a", x, 6, activation="relu")
    return G.reduce_sum(layers.dense(ctx / "b", h, 3), axes=1), layers.dense(ctx / "c", y, 3)


def test_full_int8_calibrates_a_sequence_length_and_two_batch_symbols(tmp_path):
    """`--calibration` binds S to the arrays' sequence axis and both batches N and M to
    one batch: the scales are max |x| / 127 over every sample and position (NumPy, from
    the context's weights), and the symbolic library verifies against its int8 reference."""
    import mlframework as mlf
    from mlframework.ml import Context, ContextExec
    ctx = Context(seed=0)
    ContextExec(mlf.backends.new("xla"), ctx, sequences)(
        (np.zeros((1, 2, 4), np.float32), np.zeros((1, 2), np.float32)))
    x, y = (RNG.normal(size=s).astype(np.float32) for s in ((10, 12, 4), (10, 2)))
    np.savez(tmp_path / "c.npz", x=x, y=y)
    art = export_model(sequences, ["x:float32[N,S,4]", "y:float32[M,2]"], tmp_path / "e",
                       ctx=ctx, name="seq", quantize="int8", calibration=tmp_path / "c.npz",
                       maxima={"N": 8, "S": 16, "M": 4})
    w = {v.name: v.numpy().astype(np.float64) for v in ctx.at_root().variables()}
    h = np.maximum(x @ w["a/dense/weights"] + w["a/dense/biases"], 0)
    want = {"a/dense/weights": x, "b/dense/weights": h, "c/dense/weights": y}
    scales = art.manifest["activation_scales"]
    assert set(scales) == set(want)
    for name, acts in want.items():
        np.testing.assert_allclose(scales[name], np.abs(acts).max() / 127, rtol=1e-5)
    report = verify(art.out_dir, fn=sequences, ctx=ctx)
    assert report.ok and set(report.max_diff) == {"output0 vs int8 numpy",
                                                  "output1 vs int8 numpy"}, str(report)
    assert min(report.unchecked.values()) > 0  # the int8 model is not the float one


def test_calibration_binds_every_symbol_from_the_arrays():
    x, y = np.zeros((10, 12, 8), np.float32), np.zeros((10, 3), np.float32)
    specs = [parse_input("x:float32[N,S,8]"), parse_input("y:float32[M,3]")]
    bound = static_inputs(specs, [x, y], {"N": 8, "S": 16, "M": 32})
    assert [tuple(i.spec.dims) for i in bound] == [(8, 12, 8), (8, 3)]  # one batch, S = 12
    with pytest.raises(UsageError, match=r"S = 12 in the arrays of x, outside \[1, 6\]"):
        static_inputs(specs, [x, y], {"N": 8, "S": 6, "M": 32})
    mask = [parse_input("x:float32[N,S,8]"), parse_input("mask:float32[N,S]")]
    with pytest.raises(UsageError, match=r"agree on the size of S .*got x \[10, 12, 8\] for "
                       r"float32\[N, S, 8\], mask \[10, 11\] for float32\[N, S\]"):
        static_inputs(mask, [x, np.zeros((10, 11), np.float32)], {"N": 8, "S": 16})


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


def test_conflicting_options_are_refused(tmp_path, capsys):
    args = ["export", str(es.EXAMPLES / "digits_mlp.py") + ":model", "--input",
            "x:float32[1,64]", "-o", str(tmp_path / "q")]
    assert cli.main(args + ["--quantize", "int8-weights", "--weight-storage", "bfloat16"]) == 2
    assert "choose one" in capsys.readouterr().err
    with pytest.raises(UsageError, match="--calibration is for --quantize int8"):
        export_model(str(es.EXAMPLES / "digits_mlp.py") + ":model", ["x:float32[1,64]"],
                     tmp_path / "c", quantize="int8-weights", calibration="data.npz")


def test_full_int8_needs_calibration_data_named_after_the_inputs(root, tmp_path, capsys):
    args = ["export", str(es.EXAMPLES / "digits_mlp.py") + ":model", "--input",
            "x:float32[1,64]", "--checkpoint", str(es.checkpoint(root, "digits_mlp")),
            "-o", str(tmp_path / "q"), "--quantize", "int8"]
    assert cli.main(args) == 2
    assert "--quantize int8 needs --calibration FILE.npz" in capsys.readouterr().err
    np.savez(tmp_path / "wrong.npz", images=np.zeros((4, 64), np.float32))
    assert cli.main(args + ["--calibration", str(tmp_path / "wrong.npz")]) == 2
    err = capsys.readouterr().err
    assert "one array per model input, named after it (x)" in err and "x missing" in err \
        and "images not inputs" in err
    np.savez(tmp_path / "shape.npz", x=np.zeros((4, 65), np.float32))
    assert cli.main(args + ["--calibration", str(tmp_path / "shape.npz")]) == 2
    assert "array 'x' must be [samples, 64]" in capsys.readouterr().err
    (tmp_path / "text.npz").write_text("not a zip")
    assert cli.main(args + ["--calibration", str(tmp_path / "text.npz")]) == 2
    assert "not a readable .npz file" in capsys.readouterr().err


# ---- the int8 x int8 -> int32 kernel (runtime_c/mlf_gemm_s8.h) ----

KERNEL = r"""
#include "mlf_conv_s8.h"
void threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}
int vnni(void) {
#ifdef MLF_S8_VNNI
  return MLF_S8_VNNI;
#else
  return 0;
#endif
}
void gemm(long M, long N, long K, const void* A, long lda, const void* P, void* C) {
  mlf_gemm_s8(M, N, K, (const int8_t*)A, lda, (const int8_t*)P, (int32_t*)C, N);
}
void conv(long N, long C, long H, long W, long O, long KH, long KW, long sh, long sw, long dh,
          long dw, long ph, long pw, long ho, long wo, const void* x, const void* P, void* out,
          void* work) {
  mlf_conv2d_s8(N, C, H, W, O, KH, KW, sh, sw, dh, dw, ph, pw, ho, wo, (const int8_t*)x,
                (const int8_t*)P, (int32_t*)out, (uint8_t*)work);
}
void convf(long N, long C, long H, long W, long O, long KH, long KW, long sh, long sw, long dh,
           long dw, long ph, long pw, long ho, long wo, const void* x, float inv, const void* P,
           void* out, void* work) {
  mlf_conv2d_s8_f32(N, C, H, W, O, KH, KW, sh, sw, dh, dw, ph, pw, ho, wo, (const float*)x, inv,
                    (const int8_t*)P, (int32_t*)out, (uint8_t*)work);
}
long conv_work(long N, long C, long H, long W, long O, long KH, long KW, long sh, long sw,
               long dh, long dw, long ph, long pw, long ho, long wo) {
  return mlf_conv2d_s8_work_bytes(N, C, H, W, O, KH, KW, sh, sw, dh, dw, ph, pw, ho, wo);
}
"""


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """The kernel built for this machine (-march=native: AVX-512 VNNI where it has it),
    with its 256-bit path (-DMLF_S8_YMM: AVX-VNNI's code, with the EVEX instruction),
    with the portable loop forced (-DMLF_NO_VNNI), and with OpenMP (run on 2 threads), as
    cffi libraries."""
    folder = tmp_path_factory.mktemp("s8")
    (folder / "k.c").write_text(KERNEL)
    ffi = cffi.FFI()
    ffi.cdef("void threads(int); int vnni(void); "
             "void gemm(long, long, long, const void*, long, const void*, void*); "
             "void conv(long, long, long, long, long, long, long, long, long, long, "
             "long, long, long, long, long, const void*, const void*, void*, void*); "
             "void convf(long, long, long, long, long, long, long, long, long, long, long, "
             "long, long, long, long, const void*, float, const void*, void*, void*); "
             "long conv_work(long, long, long, long, long, long, long, long, long, long, "
             "long, long, long, long, long);")
    libs = {}
    for path, flags in (("vnni", []), ("ymm", ["-DMLF_S8_YMM"]),
                        ("portable", ["-DMLF_NO_VNNI"]), ("openmp", ["-fopenmp"])):
        out = folder / f"{path}.so"
        subprocess.run(["gcc", "-O2", "-march=native", "-Wall", "-Wextra", "-Werror", "-shared",
                        "-fPIC", *flags, f"-I{RUNTIME}", str(folder / "k.c"), "-o", str(out)],
                       check=True, capture_output=True, text=True)
        libs[path] = ffi.dlopen(str(out))
    return ffi, libs


def _has_vnni() -> bool:
    return sys.platform == "linux" and "avx512_vnni" in open("/proc/cpuinfo").read()


@pytest.mark.parametrize("m,n,k", [(1, 10, 64), (5, 130, 33), (64, 512, 784), (3, 64, 1),
                                   (9, 1, 7)])
def test_int8_products_are_exact_int32_on_both_paths(kernels, m, n, k):
    """Tails in every direction (rows past a 4-row tile, columns past a 64-column panel,
    K not a multiple of 4), extreme values included: the int32 sums equal NumPy's int64
    product of the same int8 data, on the VNNI paths and the portable loop alike."""
    ffi, libs = kernels
    assert libs["portable"].vnni() == 0
    assert (libs["vnni"].vnni(), libs["ymm"].vnni()) == ((512, 256) if _has_vnni() else (0, 0))
    a = RNG.integers(-128, 128, (m, k)).astype(np.int8)
    b = RNG.integers(-127, 128, (k, n)).astype(np.int8)
    a[0, 0], b[0, 0] = -128, -127
    want = a.astype(np.int64) @ b.astype(np.int64)
    packed = s8_panels(b)
    for lib in libs.values():
        c = np.full((m, n), 7, np.int32)
        lib.gemm(m, n, k, ffi.from_buffer(a), k, ffi.from_buffer(packed), ffi.from_buffer(c))
        np.testing.assert_array_equal(c, want)


def test_avx_vnni_targets_compile_the_256_bit_path(tmp_path):
    """An -mavxvnni target (no AVX-512) gets the VEX-encoded vpdpbusd of the 256-bit path,
    which the tests above run with its EVEX twin on an AVX-512 VNNI host."""
    (tmp_path / "k.c").write_text(KERNEL)
    subprocess.run(["gcc", "-O2", "-mavx2", "-mavxvnni", "-Wall", "-Wextra", "-Werror", "-c",
                    f"-I{RUNTIME}", str(tmp_path / "k.c"), "-o", str(tmp_path / "k.o")],
                   check=True, capture_output=True, text=True)
    code = subprocess.run(["objdump", "-d", str(tmp_path / "k.o")], check=True,
                          capture_output=True, text=True).stdout
    assert "{vex} vpdpbusd" in code and "zmm" not in code


CONVS = [  # n, c, h, w, o, kh, kw, sh, sw, dh, dw, ph, pw
    (2, 3, 9, 8, 5, 3, 2, 2, 1, 1, 2, 1, 2),        # strides 2, dilation 2, uneven padding
    (2, 1, 28, 28, 6, 5, 5, 1, 1, 1, 1, 2, 2),      # LeNet's first: K = 25 (a partial group)
    (3, 6, 14, 14, 16, 5, 5, 1, 1, 1, 1, 0, 0),     # LeNet's second: 6 + 6 + 4 channels
    (1, 4, 11, 13, 13, 3, 3, 1, 2, 1, 1, 1, 1),     # a column stride: the unrolling's loop
    (3, 8, 20, 20, 16, 5, 5, 1, 1, 1, 1, 2, 2),     # threads take whole images
    (1, 8, 20, 20, 16, 5, 5, 1, 1, 1, 1, 2, 2),     # one image: threads share its pixels
    (1, 2, 4, 5, 70, 1, 1, 1, 1, 1, 1, 0, 0)]      # 1x1, more channels than pixels


@pytest.mark.parametrize("n,c,h,w,o,kh,kw,sh,sw,dh,dw,ph,pw", CONVS)
def test_int8_convolution_is_exact_on_both_paths(kernels, n, c, h, w, o, kh, kw, sh, sw, dh, dw,
                                                 ph, pw):
    """Extreme values included, the int32 result equals an int64 NumPy convolution written
    out tap by tap, on every path (VNNI 512 and 256, portable, OpenMP on 2 threads); so
    does the convolution of float32 x that it quantizes itself (round(x * inv), ties to
    even, clamped to [-127, 127], NaN to 0) with NumPy's rounding of the same floats."""
    ffi, libs = kernels
    xf = (RNG.standard_normal((n, c, h, w)) * 60).astype(np.float32)
    xf.reshape(-1)[:6] = [np.nan, np.inf, -np.inf, 2.5 / 1.5, -0.5 / 1.5, 1e30]
    inv = np.float32(1.5)
    q = np.clip(np.rint(xf * inv), -127, 127)
    x = RNG.integers(-128, 128, (n, c, h, w)).astype(np.int8)
    wt = RNG.integers(-127, 128, (o, c, kh, kw)).astype(np.int8)
    x[0, 0, 0, 0], wt[0, 0, 0, 0] = -128, -127
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1

    def reference(x):
        xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        want = np.zeros((n, o, ho, wo), np.int64)
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, :, i * dh:i * dh + (ho - 1) * sh + 1:sh,
                           j * dw:j * dw + (wo - 1) * sw + 1:sw]
                want += np.einsum("nchw,oc->nohw", patch, wt[:, :, i, j].astype(np.int64))
        return want

    want, want_f = reference(x), reference(np.where(np.isnan(q), 0, q))
    packed = s8_conv_rows(wt)
    libs["openmp"].threads(2)
    for lib in libs.values():
        work = np.zeros(lib.conv_work(n, c, h, w, o, kh, kw, sh, sw, dh, dw, ph, pw, ho, wo),
                        np.uint8)
        out = np.full((n, o, ho, wo), 7, np.int32)
        lib.conv(n, c, h, w, o, kh, kw, sh, sw, dh, dw, ph, pw, ho, wo, ffi.from_buffer(x),
                 ffi.from_buffer(packed), ffi.from_buffer(out), ffi.from_buffer(work))
        np.testing.assert_array_equal(out, want)
        out = np.full((n, o, ho, wo), 7, np.int32)
        lib.convf(n, c, h, w, o, kh, kw, sh, sw, dh, dw, ph, pw, ho, wo, ffi.from_buffer(xf),
                  inv, ffi.from_buffer(packed), ffi.from_buffer(out), ffi.from_buffer(work))
        np.testing.assert_array_equal(out, want_f)


def test_s8_panels_refuse_a_depth_whose_sums_could_overflow():
    with pytest.raises(ValueError, match="could overflow their int32 sums"):
        s8_panels(np.zeros((70000, 1), np.int8))
    with pytest.raises(ValueError, match="K = C \\* KH \\* KW = 70000 could overflow"):
        s8_conv_rows(np.zeros((1, 7000, 10, 1), np.int8))


# ---- full int8: the rewrite, its scales, verify ----

def test_full_int8_scales_match_an_independent_numpy_computation(root):
    """The activation scales are max |x| / 127 over the calibration data at each dense
    layer's input (computed here from the checkpoint's weights in NumPy), the weights
    are quantized per output column, and each product is int8 x int8 -> int32."""
    folder = _digits(root, "digits_mlp", "64", "int8", batch=1)
    m = json.loads((folder / "manifest.json").read_text())
    ctx = load_context(_trained(root, "digits_mlp"))
    w = {v.name: v.numpy().astype(np.float64) for v in ctx.at_root().variables()}
    x = np.load(_calibration(root, "digits_mlp"))["x"].astype(np.float64)
    h1 = np.maximum(x @ w["hidden1/dense/weights"] + w["hidden1/dense/biases"], 0)
    h2 = np.maximum(h1 @ w["hidden2/dense/weights"] + w["hidden2/dense/biases"], 0)
    want = {"hidden1/dense/weights": x, "hidden2/dense/weights": h1, "logits/dense/weights": h2}
    assert set(m["activation_scales"]) == set(want)
    for name, acts in want.items():
        np.testing.assert_allclose(m["activation_scales"][name], np.abs(acts).max() / 127,
                                   rtol=1e-5)
    assert m["quantize"] == "int8" and m["quantized_weights"] == dict.fromkeys(want, 1)

    wt = RNG.standard_normal((64, 24)).astype(np.float32)
    wt[:, 5] *= 30
    program = simplify(from_graph(G.Exec(None, lambda x: x @ G.const(wt)).graph(
        np.ones((2, 64), np.float32))))
    for v in program.values.values():
        v.scope = "w" if v.op is Op.CONSTANT else v.scope  # names as a checkpoint's variable
    (name, readers), = calibration_points(program).items()
    rewritten = quantize_int8(program, {name: 0.05})
    weights = next(v for v in rewritten.values.values() if v.dtype.value == "int8"
                   and v.op is Op.CONSTANT)
    col = np.abs(wt).max(axis=0) / 127
    np.testing.assert_allclose(weights.attrs["scales"], col, rtol=1e-7)
    np.testing.assert_array_equal(weights.attrs["value"], np.rint(wt / col))
    dot = next(v for v in rewritten.values.values() if v.op is Op.DOT_GENERAL)
    assert dot.dtype.value == "int32" and dot.attrs["preferred_element_type"].value == "int32"
    assert program.values[readers[0]].op is Op.PARAMETER
    with pytest.raises(ValueError, match="not weights of dense layers"):
        quantize_int8(program, {"nothing": 1.0})


@pytest.mark.parametrize("example", ["digits_mlp", "digits_cnn"])
def test_full_int8_verifies_against_its_numpy_reference(root, example):
    folder = _digits(root, example, SHAPES[example], "int8", batch=3)
    report = verify(folder)
    assert report.ok and set(report.max_diff) == {"output vs int8 numpy"}, str(report)
    assert report.max_diff["output vs int8 numpy"] < 1e-5
    assert report.unchecked["output vs float model"] > 1e-3
    assert "max |c - int8 numpy|" in str(report) and "not checked" in str(report)


def test_full_int8_export_runs_clean_under_sanitizers(root, tmp_path):
    """The int8 CNN (quantize loops, both int8 kernels, the VNNI path: -march=native)
    built from its sources with ASan and UBSan, run on the zero image and a ramp."""
    folder = _digits(root, "digits_cnn", SHAPES["digits_cnn"], "int8", batch=3)
    src = tmp_path / "int8_asan.c"
    src.write_text(SANITIZED.replace("NAME", "digits_cnn_int8_3").replace(
        "PREFIX", "DIGITS_CNN_INT8_3"))
    out = es.run_sanitized(src, folder, ["digits_cnn_int8_3.c", "digits_cnn_int8_3_weights.c"],
                           tmp_path / "int8_asan", flags=["-march=native"])
    lib = ExportedLibrary(folder)
    x = np.stack([np.zeros((1, 8, 8)), np.arange(64).reshape(1, 8, 8) / 64,
                  np.ones((1, 8, 8))]).astype(np.float32)
    want = lib.run(x)[0]
    got = np.array([float(t) for t in out.split()], np.float32).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


SANITIZED = r"""
#include <stdio.h>
#include "NAME.h"
static unsigned char ws[PREFIX_ARENA_BYTES] __attribute__((aligned(PREFIX_WORKSPACE_ALIGN)));
int main(void) {
  float x[3 * 64], y[3 * 10];
  for (int i = 0; i < 64; i++) { x[i] = 0.0f; x[64 + i] = i / 64.0f; x[128 + i] = 1.0f; }
  int status = NAME_run(x, y, ws);
  if (status) return status;
  for (int i = 0; i < 30; i++) printf("%.9g\n", y[i]);
  return 0;
}
"""


# ---- embeddings ----

def bag_of_words(ctx, ids):
    """[batch, 6] int32 ids -> [batch, 6, 32]: an embedding table of 50 rows, plus one."""
    from mlframework.ml import layers
    return layers.embedding(ctx / "embed", ids, 50, 32) + 1.0


def test_embedding_tables_are_int8_rows_with_a_scale_each(tmp_path):
    import mlframework as mlf
    from mlframework.ml import Context, ContextExec
    ctx = Context(seed=0)
    ids = RNG.integers(0, 50, (4, 6)).astype(np.int32)
    ContextExec(mlf.backends.new("xla"), ctx, bag_of_words)(ids)  # creates the table
    spec = "ids:int32[4,6]"
    art = export_model(bag_of_words, [spec], tmp_path / "e", ctx=ctx, name="bag",
                       quantize="int8-weights")
    table = ctx.get_variable("embed/embedding/table").value.numpy()
    assert art.manifest["quantized_weights"] == {"embed/embedding/table": 0}
    assert art.manifest["weights_bytes"] < table.nbytes / 2
    scales = np.abs(table).max(axis=1) / 127
    rows = np.rint(table / scales[:, None]) * scales[:, None]
    got = ExportedLibrary(art.out_dir).run(ids)[0]
    np.testing.assert_allclose(got, rows[ids] + 1.0, rtol=1e-6, atol=1e-6)
    assert "gather int8[4, 6, 32]" in (art.out_dir / "bag.c").read_text()  # the int8 rows
    report = verify(art.out_dir, fn=bag_of_words, ctx=ctx)
    assert report.ok and report.unchecked["output vs float model"] > 0, str(report)
