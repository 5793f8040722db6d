"""aotc export: trained MLP and CNN checkpoints and a several-input, several-output
graph exported and called from a C program compiled against NAME.h, checked
against the XLA backend; sanitizers, threads, weights modes,
error codes, the manifest."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import export_support as es
from aot.tools.verify import ExportedLibrary, compare, random_inputs, reference_outputs, verify
from mlframework import graph as G

TOL = 1e-5


def multi_io(a, b, scale):
    """Three inputs, five outputs: computed, an input passed through, a duplicate, a constant."""
    h = G.tanh(a @ b) * scale
    total = G.reduce_sum(h, axes=[1])
    return {"h": h, "total": total, "a_again": a, "total_again": total,
            "ones": G.const(np.ones((3,), np.float32))}


def strided(x):
    """A ResNet's downsampling: a padded 3x3 max pool, then a stride-2 conv (im2col + GEMM)."""
    w = G.const(np.random.default_rng(3).standard_normal((6, 3, 3, 3)).astype(np.float32))
    h = G.reduce_window_max(x, (1, 1, 3, 3), (1, 1, 2, 2), ((0, 0), (0, 0), (1, 1), (1, 1)))
    return G.relu(G.conv_general(h, w, (2, 2), ((1, 1), (1, 1))))


def layouts(x, w, a, b, m):
    """An NHWC/HWIO convolution, an int8 product accumulated in int32 (its sums pass 127),
    and linear algebra: a Cholesky factor, a triangular solve and a pivoted solve."""
    spd = G.matmul(m, G.transpose(m)) + G.const(4 * np.eye(4, dtype=np.float32))
    low = G.cholesky(spd)
    return {"conv": G.relu(G.conv_general(x, w, padding=[(1, 1), (1, 1)],
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))),
            "dot": G.dot_general(a, b, (1,), (0,), preferred_element_type=np.int32),
            "cholesky": low, "triangular_solve": G.triangular_solve(low, m, True, True, True),
            "solve": G.solve(m + G.const(3 * np.eye(4, dtype=np.float32)), m)}


_RNN_W = np.random.default_rng(4).standard_normal((16, 16)).astype(np.float32) * 0.3
_RNN_U = np.random.default_rng(5).standard_normal((8, 16)).astype(np.float32) * 0.3


def scan_rnn(h0, xs):
    """A tanh RNN over the 12 steps of xs written with G.scan, its state switched by a
    cond in every step: the loop, its body and the branches are sub-programs in C."""
    def step(h, x):
        h = G.tanh(h @ G.const(_RNN_W) + x @ G.const(_RNN_U))
        h = G.cond(G.reduce_sum(h) > 0, lambda v: v * 0.5, lambda v: v, h)
        return h, G.reduce_sum(h, axes=[1])
    h, ys = G.scan(step, h0, xs)
    return {"h": h, "ys": ys}


def special(x):
    """Newer elementwise, bit and cumulative ops, fused and in their own kernels."""
    bits = G.shift_right_logical(G.bitcast_convert_type(x, "int32"), 16)
    return {"smooth": G.atan(x) + G.cbrt(x) * G.exp2(x) - G.lgamma(G.abs(x) + 0.5),
            "bits": G.convert(G.bitwise_xor(G.population_count(bits), G.count_leading_zeros(bits)),
                              "float32"),
            "scans": G.cumlogsumexp(x, 1) + G.cummax(x, 0, reverse=True)}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return es.shared_root(tmp_path_factory)


@pytest.fixture(scope="module")
def mlp(root):
    ckpt = es.checkpoint(root, "digits_mlp")
    return es.export(root, "mlp", str(es.EXAMPLES / "digits_mlp.py") + ":model",
                     ["x:float32[4,64]"], checkpoint=ckpt, name="mlp")


@pytest.fixture(scope="module")
def cnn(root):
    ckpt = es.checkpoint(root, "digits_cnn")
    return es.export(root, "cnn", str(es.EXAMPLES / "digits_cnn.py") + ":model",
                     ["x:float32[4,1,8,8]"], checkpoint=ckpt, name="cnn")


@pytest.fixture(scope="module")
def mlp_bf16(root):
    """Batch 1 with bfloat16 weight storage (aot/passes/weight_packing.py): the streamed path."""
    ckpt = es.checkpoint(root, "digits_mlp")
    return es.export(root, "mlp-bf16-1", str(es.EXAMPLES / "digits_mlp.py") + ":model",
                     ["x:float32[1,64]"], checkpoint=ckpt, name="mlpbf",
                     weight_storage="bfloat16")


@pytest.fixture(scope="module")
def mlp_int8(root):
    """Batch 8 with int8 weights: the widened path (runtime_c/mlf_gemm_i8.h, M > 6)."""
    ckpt = es.checkpoint(root, "digits_mlp")
    return es.export(root, "mlp-int8-8", str(es.EXAMPLES / "digits_mlp.py") + ":model",
                     ["x:float32[8,64]"], checkpoint=ckpt, name="mlpi8", quantize="int8-weights")


@pytest.fixture(scope="module")
def cnn_int8(root):
    """Convolution weights widened from int8 in the kernels' scratch."""
    ckpt = es.checkpoint(root, "digits_cnn")
    return es.export(root, "cnn-int8", str(es.EXAMPLES / "digits_cnn.py") + ":model",
                     ["x:float32[4,1,8,8]"], checkpoint=ckpt, name="cnni8",
                     quantize="int8-weights")


@pytest.fixture(scope="module")
def multi(root):
    return es.export(root, "multi", f"{__file__}:multi_io",
                     ["a:float32[5,7]", "b:float32[7,3]", "scale:float32[]"], name="multi")


@pytest.fixture(scope="module")
def strided_conv(root):
    return es.export(root, "strided", f"{__file__}:strided", ["x:float32[2,3,11,10]"],
                     name="strided")


@pytest.fixture(scope="module")
def layout_model(root):
    return es.export(root, "layouts", f"{__file__}:layouts",
                     ["x:float32[2,6,6,3]", "w:float32[3,3,3,4]", "a:int8[4,16]",
                      "b:int8[16,5]", "m:float32[4,4]"], name="layouts")


@pytest.fixture(scope="module")
def rnn(root):
    return es.export(root, "scan-rnn", f"{__file__}:scan_rnn",
                     ["h0:float32[3,16]", "xs:float32[12,3,8]"], name="rnn")


@pytest.fixture(scope="module")
def special_ops(root):
    return es.export(root, "special", f"{__file__}:special", ["x:float32[6,5]"], name="special")


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _driver(folder, tmp_path, **kw):
    return es.build_driver(folder, ["gcc"], tmp_path / "driver", **kw)


@pytest.mark.parametrize("which", ["mlp", "cnn", "multi", "strided_conv", "layout_model",
                                   "rnn", "special_ops"])
def test_c_program_matches_xla(which, request, tmp_path):
    folder = request.getfixturevalue(which)
    m = _manifest(folder)
    exe = _driver(folder, tmp_path)
    for seed in range(2):
        inputs = random_inputs(m["inputs"], seed)
        got, out = es.run_driver(exe, folder, inputs, m)
        want = reference_outputs(m, inputs)
        assert max(compare(got, want, [o["name"] for o in m["outputs"]]).values()) <= TOL
        assert f"ok {m['name']}" in out


def test_multi_io_interface(multi):
    m = _manifest(multi)
    # a dict's outputs come in key order, as pytrees flatten them
    assert [o["name"] for o in m["outputs"]] == ["a_again", "h", "ones", "total", "total_again"]
    header = (multi / "multi.h").read_text()
    assert ("int multi_run(const float* a, const float* b, const float* scale, float* a_again, "
            "float* h, float* ones, float* total, float* total_again, void* workspace);"
            in header)
    a, b = np.arange(35, dtype=np.float32).reshape(5, 7) / 35, np.ones((7, 3), np.float32)
    a_again, h, ones, total, total_again = ExportedLibrary(multi).run(a, b, np.float32(2))
    np.testing.assert_allclose(h, np.tanh(a @ b) * 2, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(a_again, a)
    np.testing.assert_array_equal(total_again, total)
    np.testing.assert_array_equal(ones, np.ones(3, np.float32))


@pytest.mark.parametrize("which", ["mlp", "cnn", "multi", "filemode", "mlp_bf16"])
def test_aotc_verify_every_example(which, request, capsys):
    from aot.tools.cli import main
    folder = request.getfixturevalue(which)
    assert main(["verify", str(folder), "--tolerance", str(TOL)]) == 0
    assert "ok (tolerance" in capsys.readouterr().out


def test_verify_fails_above_tolerance(mlp, cnn, capsys):
    from aot.tools.cli import main
    report = verify(mlp, tolerance=-1.0, trials=1)
    assert not report.ok and "FAIL" in str(report)
    assert main(["verify", str(cnn), "--tolerance", "1e-12"]) == 1  # float rounding differs
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("openmp", [["-fopenmp"], []], ids=["openmp", "serial"])
@pytest.mark.parametrize("which", ["cnn", "multi", "mlp_bf16", "rnn", "layout_model"])
def test_exported_c_compiles_without_warnings(which, openmp, request, tmp_path):
    folder = request.getfixturevalue(which)
    name = _manifest(folder)["name"]
    proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "x.o"), "-std=gnu99", "-O2",
                           "-Wall", "-Wextra", "-Werror", *openmp,
                           f"-I{folder / 'runtime'}",
                           str(folder / f"{name}.c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("which", ["cnn", "multi", "mlp_bf16", "strided_conv", "layout_model",
                                   "rnn"])
def test_sanitizers_run_clean(which, request, tmp_path):
    folder = request.getfixturevalue(which)
    m = _manifest(folder)
    exe = _driver(folder, tmp_path, link="sources",
                  flags=["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                         "-fno-sanitize-recover=all", "-O1"])
    env = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS":
           "halt_on_error=1:print_stacktrace=1", "PATH": "/usr/bin:/bin"}
    inputs = ExportedLibrary(folder).inputs_like(3)
    got, out = es.run_driver(exe, folder, inputs, m, env=env)
    assert "runtime error" not in out and "AddressSanitizer" not in out
    got_static, _ = es.run_driver(exe, folder, inputs, m, mode="static", env=env)
    for x, y in zip(got, got_static):
        np.testing.assert_array_equal(x, y)


def test_two_threads_with_own_workspaces_agree(cnn, tmp_path):
    m = _manifest(cnn)
    exe = _driver(cnn, tmp_path, link="shared")
    _, out = es.run_driver(exe, cnn, ExportedLibrary(cnn).inputs_like(1), m, mode="threads")
    assert "thread mismatches: 0" in out


def test_library_needs_only_libc_and_libm(mlp):
    needed = subprocess.run(["readelf", "-d", str(mlp / "libmlp.so")], capture_output=True,
                            text=True).stdout
    libs = {line.split("[")[1].split("]")[0] for line in needed.splitlines() if "NEEDED" in line}
    assert libs <= {"libc.so.6", "libm.so.6"}, libs
    symbols = subprocess.run(["nm", "-D", "--undefined-only", str(mlp / "libmlp.so")],
                             capture_output=True, text=True).stdout
    assert "malloc" not in symbols and "gomp" not in symbols.lower()


def test_header_documents_the_interface(cnn):
    header = (cnn / "cnn.h").read_text()
    m = _manifest(cnn)
    for needle in [f"#define CNN_ARENA_BYTES {m['arena_bytes']}",
                   "#define CNN_X_SHAPE { 4, 1, 8, 8 }",
                   '#define CNN_X_DTYPE "float32"', "#define CNN_OUTPUT_SIZE 40",
                   "CNN_ERR_NULL = 1", "CNN_ERR_ALIGNMENT = 2", "CNN_ERR_WEIGHTS = 3",
                   "NOT thread-safe", "const cnn_info_t* cnn_info(void);",
                   "int cnn_run(const float* x, float* output, void* workspace);"]:
        assert needle in header, needle
    source = (cnn / "cnn.c").read_text()
    assert "examples/digits_cnn.py:21)" in source  # the user's source line per fused node


def test_error_codes(mlp):
    lib = ExportedLibrary(mlp)
    ffi, run = lib.ffi, lib._run
    x, y = np.zeros((4, 64), np.float32), np.zeros((4, 10), np.float32)
    ws = lib.workspace
    assert run(ffi.NULL, lib._ptr(y), lib._ptr(ws)) == 1
    assert run(lib._ptr(x), ffi.NULL, lib._ptr(ws)) == 1
    misaligned = ffi.cast("void*", ws.ctypes.data + 8)
    assert run(lib._ptr(x), lib._ptr(y), misaligned) == 2
    assert run(lib._ptr(x), lib._ptr(y), ffi.NULL) == 0  # the static workspace
    assert "NULL" in ffi.string(lib.lib.mlp_strerror(1)).decode()


def test_manifest_counts_flops_and_bytes(mlp):
    m = _manifest(mlp)
    assert m["tool"] == "aotc" and m["source_hash"] and m["tool_version"]
    assert m["inputs"] == [{"name": "x", "dtype": "float32", "shape": [4, 64]}]
    assert m["outputs"] == [{"name": "output", "dtype": "float32", "shape": [4, 10]}]
    dots = [k for k in m["kernels"] if k["kind"] == "dot"]
    # one FLOP per element per op: the bias add, and relu's gt, max and select (relu is
    # select(x > 0, x, max(x, 0)) for JAX's gradient at 0 and NaN); the logits: bias only
    epilogue = [4 * 4 * 128, 4 * 4 * 64, 4 * 10]
    assert [k["flops"] - e for k, e in zip(dots, epilogue)] == [
        2 * 4 * 64 * 128, 2 * 4 * 128 * 64, 2 * 4 * 64 * 10]  # 2*M*N*K
    assert all(k["bytes"] > 0 and k["sources"] for k in m["kernels"])


@pytest.fixture(scope="module")
def big(root):
    """A model with 52 MB of weights, exported with --weights blob (timed)."""
    def build(path):
        from aot.export import export_model
        started = time.perf_counter()
        export_model(big_model, ["x:float32[1,1024]"], path, name="big", weights="blob")
        (path / "seconds").write_text(str(time.perf_counter() - started))
    return es.cached(root, "export-big", build)


_BIG = None


def big_model(x):
    global _BIG
    if _BIG is None:
        _BIG = np.random.default_rng(0).standard_normal((1024, 12800)).astype(np.float32) * 0.01
    return G.reduce_sum(G.tanh(x @ _BIG), axes=[1])


def test_blob_weights_50mb_compile_fast(big):
    assert (big / "big_weights.bin").stat().st_size >= 50 * 2**20
    assert float((big / "seconds").read_text()) < 30.0  # trace, passes, C compile, link
    assert "incbin" in (big / "big_weights.S").read_text()
    x = np.random.default_rng(0).standard_normal((1, 1024)).astype(np.float32)
    want = np.tanh(x.astype(np.float64) @ _weights().astype(np.float64)).sum(1)
    np.testing.assert_allclose(ExportedLibrary(big).run(x)[0], want, rtol=1e-4)


def _weights():
    return np.random.default_rng(0).standard_normal((1024, 12800)).astype(np.float32) * 0.01


@pytest.fixture(scope="module")
def filemode(root):
    ckpt = es.checkpoint(root, "digits_mlp")
    return es.export(root, "mlp-file", str(es.EXAMPLES / "digits_mlp.py") + ":model",
                     ["x:float32[4,64]"], checkpoint=ckpt, name="mlpf", weights="file")


@pytest.mark.parametrize("example", ["digits_mlp", "digits_cnn"])
def test_library_code_stays_under_200_kb(root, example):
    """The issue's size budget for libNAME.so apart from the weights (--weights file)."""
    folder = es.export(root, f"{example}-file", str(es.EXAMPLES / f"{example}.py") + ":model",
                       ["x:float32[1,64]" if example == "digits_mlp" else "x:float32[1,1,8,8]"],
                       checkpoint=es.checkpoint(root, example), name="sized", weights="file")
    assert (folder / "libsized.so").stat().st_size < 200_000


def test_file_weights_checked_at_load(filemode, mlp, tmp_path):
    m = _manifest(filemode)
    exe = _driver(filemode, tmp_path)
    inputs = ExportedLibrary(filemode).inputs_like(0)
    got, _ = es.run_driver(exe, filemode, inputs, m)
    np.testing.assert_array_equal(got[0], ExportedLibrary(mlp).run(*inputs)[0])
    assert "#define MLPF_WEIGHTS_CRC32 0x" in (filemode / "mlpf.h").read_text()
    bad = tmp_path / "bad.bin"
    data = bytearray((filemode / "mlpf_weights.bin").read_bytes())
    data[100] ^= 1
    bad.write_bytes(bytes(data))
    for path in (bad, tmp_path / "missing.bin"):
        with pytest.raises(AssertionError, match="weights missing or not matching"):
            es.run_driver(exe, filemode, inputs, m, env={"WEIGHTS": str(path)})
    short = tmp_path / "short.bin"
    short.write_bytes(bytes(data[:-64]))
    with pytest.raises(AssertionError, match="exited 5"):
        es.run_driver(exe, filemode, inputs, m, env={"WEIGHTS": str(short)})


def test_makefile_rebuilds_the_libraries(mlp, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(mlp, copy, ignore=shutil.ignore_patterns("*.o", "*.so", "*.a", ".done"))
    result = subprocess.run(["make", "-s", "-C", str(copy), "CC=cc", "ARCH="],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (copy / "libmlp.so").exists() and (copy / "libmlp.a").exists()


def test_demo_exports_and_runs_the_c_program(root, tmp_path):
    """The end of `make demo`: export the trained MLP and run examples/c/digits_demo.c."""
    (tmp_path / "checkpoints").symlink_to(es.checkpoint(root, "digits_mlp"))
    result = subprocess.run([sys.executable, str(es.EXAMPLES / "export_demo.py"), "--out",
                             str(tmp_path)], capture_output=True, text=True, cwd=es.ROOT)
    assert result.returncode == 0, result.stderr
    assert "image   0: predicted" in result.stdout
    accuracy = float(result.stdout.split("test images: ")[1].split("%")[0])
    assert accuracy > 85.0  # two epochs of training


def test_openmp_is_opt_in(root, tmp_path):
    from aot.export import export_model
    folder = tmp_path / "threaded"
    export_model(multi_io, ["a:float32[5,7]", "b:float32[7,3]", "scale:float32[]"], folder,
                 name="threaded", openmp=True)
    needed = subprocess.run(["readelf", "-d", str(folder / "libthreaded.so")],
                            capture_output=True, text=True).stdout
    assert "libgomp" in needed and "-fopenmp" in (folder / "Makefile").read_text()
    assert "kernels run on OpenMP threads" in (folder / "threaded.h").read_text()
