"""aotc export of a small CNN over a symbolic image size: `--input x:float32[N,1,H,W]
--max N=8 --max H=32 --max W=32` gives ONE library whose convolutions and pooling take
N, H and W at run time. Checked against the xla backend at several sizes, compiled with
-Wall -Wextra -Werror, and run under ASan/UBSan with each workspace exactly
NAME_ARENA_BYTES_FOR(N, H, W)."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

import export_support as es
import mlframework as mlf
from mlframework import graph as G
from aot.tools.verify import ExportedLibrary

RNG = np.random.default_rng(5)
K1 = (RNG.normal(size=(4, 1, 3, 3)) / 3).astype(np.float32)
B1 = RNG.normal(size=(1, 4, 1, 1)).astype(np.float32) / 4
K2 = (RNG.normal(size=(8, 4, 3, 3)) / 6).astype(np.float32)
DENSE = (RNG.normal(size=(8, 3)) / 3).astype(np.float32)
SAME = ((1, 1), (1, 1))
MAXIMA = {"N": 8, "H": 32, "W": 32}
SIZES = ((1, 1, 1), (2, 7, 5), (1, 32, 3), (3, 16, 29), (8, 32, 32))


def cnn(x):
    """[N, 1, H, W] -> [N, 3]: conv 3x3 + bias + relu, 3x3 max pooling (stride 1, padded),
    conv 3x3 + relu, the mean over the image, a dense layer."""
    h = G.relu(G.conv_general(x, K1, padding=SAME) + B1)
    h = G.reduce_window_max(h, (1, 1, 3, 3), (1, 1, 1, 1), ((0, 0), (0, 0), (1, 1), (1, 1)))
    h = G.relu(G.conv_general(h, K2, padding=SAME))
    return G.mean(h, axes=(2, 3)) @ DENSE


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return es.export(es.shared_root(tmp_path_factory), "cnn-image-symbolic", cnn,
                     ["x:float32[N,1,H,W]"], name="cnnhw", maxima=MAXIMA)


def _input(n, h, w):
    i = np.arange(n * h * w)  # as the sanitized driver fills it
    return (((i * 7919) % 113) / np.float32(57.0) - 1).astype(np.float32).reshape(n, 1, h, w)


def test_one_library_matches_xla_at_every_image_size(folder):
    lib = ExportedLibrary(folder)
    assert lib.manifest["symbols"] == MAXIMA
    on_xla = G.Exec(mlf.backends.new("xla"), cnn)
    for n, h, w in SIZES:
        x = RNG.normal(size=(n, 1, h, w)).astype(np.float32)
        out, = lib.run(x)
        assert out.shape == (n, 3)
        np.testing.assert_allclose(out, np.asarray(on_xla(x).numpy()), atol=1e-5, rtol=1e-5)
    source = (folder / "cnnhw.c").read_text()
    assert "mlf_conv2d(sym_N, 4, sym_H, sym_W, 8, 3, 3, 1, 1, sym_H + 2, sym_W + 2" in source
    # the pooling's padded rows (no bounds test per tap), their extents at run time
    assert "input padded to [sym_N, 4, sym_H + 2, sym_W + 2] with the identity" in source


@pytest.mark.parametrize("openmp", [["-fopenmp"], []], ids=["openmp", "serial"])
def test_exported_c_compiles_without_warnings(folder, openmp, tmp_path):
    proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "x.o"), "-std=gnu99", "-O2",
                           "-Wall", "-Wextra", "-Werror", *openmp,
                           f"-I{folder / 'runtime'}",
                           str(folder / "cnnhw.c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_sanitizers_run_clean_at_every_size(folder, tmp_path):
    src = tmp_path / "sanitized.c"
    src.write_text(es.symbolic_sanitized("cnnhw", ["N", "H", "W"], SIZES))
    sources = [f.name for f in sorted(folder.glob("cnnhw*.c"))]
    lines = es.run_sanitized(src, folder, sources, tmp_path / "sanitized").splitlines()
    assert [tuple(map(int, line.split()[:3])) for line in lines] == list(SIZES)
    sums = [line.split()[3] for line in lines]
    lib = ExportedLibrary(folder)
    for size, checksum in zip(SIZES, sums):  # the library agrees
        assert abs(float(lib.run(_input(*size))[0].astype(np.float64).sum())
                   - float(checksum)) < 1e-3


def small_model(ctx, x):
    """[N, 1, H, W] -> [N, 3] with context variables: two 'same' convs, a mean, dense."""
    from mlframework.ml import layers
    x = G.relu(layers.conv2d(ctx / "c1", x, 4, 3, padding="same"))
    x = G.relu(layers.conv2d(ctx / "c2", x, 8, 3, padding="same"))
    return layers.dense(ctx / "out", G.mean(x, axes=(2, 3)), 3)


@pytest.mark.parametrize("storage", [{"weight_storage": "float16"},
                                     {"quantize": "int8-weights"}], ids=["float16", "int8"])
def test_stored_conv_weights_widen_past_the_largest_workspace(storage, tmp_path):
    """float16 and int8 conv weights are widened into the kernel's scratch after the
    convolution's workspace at the maxima: the library equals the as-stored reference,
    and runs clean under ASan/UBSan with each workspace NAME_ARENA_BYTES_FOR(N, H, W)."""
    from mlframework.ml import Context, ContextExec
    from aot.export import export_model
    from aot.tools.verify import reference_outputs
    ctx = Context(seed=0)
    ContextExec(mlf.backends.new("xla"), ctx, small_model)(np.zeros((1, 1, 5, 5), np.float32))
    folder = export_model(small_model, ["x:float32[N,1,H,W]"], tmp_path / "e", name="cnnq",
                          ctx=ctx, maxima=MAXIMA, **storage).out_dir
    lib = ExportedLibrary(folder)
    for size in SIZES[:3]:
        x = _input(*size)
        want, = reference_outputs(lib.manifest, [x], fn=small_model, ctx=ctx)
        np.testing.assert_allclose(lib.run(x)[0], want, atol=1e-5, rtol=1e-5)
    assert "bw[i] = " in (folder / "cnnq.c").read_text()  # the widened weights
    src = tmp_path / "sanitized.c"
    src.write_text(es.symbolic_sanitized("cnnq", ["N", "H", "W"], SIZES))
    sources = [f.name for f in sorted(folder.glob("cnnq*.c"))]
    assert len(es.run_sanitized(src, folder, sources, tmp_path / "sanitized").splitlines()) \
        == len(SIZES)
