"""Convolutions and windows with a symbolic image size on the c backend: the batch N and
the height and width H, W are symbols, one compiled module serves every size up to the
maxima, checked against the xla backend (forward and gradients); a stride whose output
size is not a polynomial of the symbols stays refused at trace time, naming the case."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G
from mlframework.core.symbolic import evaluate
from mlframework.graph.errors import ShapeError
from symbolic_support import compare_with_xla

RNG = np.random.default_rng(3)
KERNEL = (RNG.normal(size=(4, 2, 3, 3)) / 3).astype(np.float32)
BIAS = RNG.normal(size=(1, 4, 1, 1)).astype(np.float32)
WIDE = (RNG.normal(size=(24, 2, 3, 3)) / 3).astype(np.float32)  # O > 16: 64-channel panels
MAXIMA = {"N": 3, "H": 12, "W": 12}
# (N, H, W): the smallest image, odd sizes, a wide one (the kernel gradient's window is
# then W >= 8: the runtime's kv path) and the maxima
IMAGES = ((1, 1, 1), (2, 5, 7), (1, 3, 12), (3, 12, 12))
SPEC = {"x": "N, 2, H, W"}
SAME = ((1, 1), (1, 1))
POOL_PADDING = ((0, 0), (0, 0), (1, 1), (1, 1))


def _image(size):
    return [RNG.normal(size=(size[0], 2, *size[1:])).astype(np.float32)]


def _check(fn, tol=1e-5):
    compare_with_xla(fn, SPEC, _image, tol=tol, maxima=MAXIMA, sizes=IMAGES)


def _conv(x, kernel=KERNEL):
    return G.relu(G.conv_general(x, kernel, padding=SAME) + BIAS)


def test_same_conv_with_an_epilogue():
    _check(_conv)


def test_conv_with_many_output_channels():
    _check(lambda x: G.conv_general(x, WIDE, padding=SAME))


def test_dilated_conv():  # rhs_dilation: im2col + GEMM on the run-time pixel count
    _check(lambda x: G.conv_general(x, KERNEL, padding=((2, 2), (2, 2)), rhs_dilation=(2, 2)))


def test_conv_gradients_with_respect_to_input_and_kernel():
    def fn(x):
        k = G.const(KERNEL)
        return tuple(G.grad(G.reduce_sum(G.tanh(_conv(x, k)) * 0.5), [x, k]))
    _check(fn, tol=1e-4)


@pytest.mark.parametrize("op", ["reduce_window_max", "reduce_window_sum"])
def test_pooling_forward_and_gradient(op):
    def pool(x):
        return getattr(G, op)(x, (1, 1, 3, 3), (1, 1, 1, 1), POOL_PADDING)

    def fn(x):
        return pool(x), G.grad(G.reduce_sum(pool(x) * x), x)[0]
    _check(fn)


def test_the_gemm_paths_take_the_run_time_sizes():
    """The convolutions call the runtime's vectorized conv with sym_H, sym_W (no scalar
    loop nest), and the input gradient does too."""
    def fn(x):
        return G.grad(G.reduce_sum(_conv(x)), x)[0]
    graph = G.Exec(None, fn, symbolic=SPEC, maxima=MAXIMA).graph(*_image((1, 3, 3)))
    src = mlf.backends.new("c").compile(graph).source
    assert "mlf_conv2d(sym_N, 2, sym_H, sym_W, 4, 3, 3, 1, 1, sym_H + 2, sym_W + 2" in src
    assert "mlf_conv2d(sym_N, 4, sym_H, sym_W, 2, 3, 3, 1, 1," in src
    assert "direct loop nest" not in src


@pytest.mark.parametrize("fn, what", [
    (lambda x: G.conv_general(x, KERNEL, (2, 2), SAME), "conv_general with stride 2"),
    (lambda x: G.reduce_window_max(x, (1, 1, 2, 2), (1, 1, 2, 2), ((0, 0), (0, 0), (0, 1),
                                                                   (0, 1))),
     "reduce_window_max with stride 2"),
], ids=["strided_conv", "pool_stride_window"])
def test_a_stride_over_a_symbolic_size_is_refused_naming_it(fn, what):
    """floor((H + lo + hi - window) / stride) + 1 is no polynomial of H for a stride > 1
    (the Dim algebra has no floor division): refused while tracing, naming the op, as a
    NotImplementedError that is a ShapeError too."""
    with pytest.raises(NotImplementedError, match=f"{what} over the symbolic size H .* "
                                                  "not a polynomial in H") as refused:
        G.Exec(None, fn, symbolic=SPEC, maxima=MAXIMA).graph(*_image((1, 4, 4)))
    assert isinstance(refused.value, ShapeError)


WORK_C = r"""
#include <stdio.h>
#include "mlf_runtime.h"
#include "mlf_gemm.h"
#include "mlf_kernels.h"
/* reads "d N C O KH KW hp wp" (direct conv) or "i O C KH KW ho wo" (im2col) lines and
 * prints the bytes of workspace the runtime's own functions ask for */
int main(void) {
  char kind;
  long a[7];
  while (scanf(" %c %ld %ld %ld %ld %ld %ld", &kind, a, a + 1, a + 2, a + 3, a + 4, a + 5)
         == 7) {
    if (kind == 'd' && scanf("%ld", a + 6) == 1)
      printf("%ld\n", 4 * mlf_conv2d_work_floats(a[0], a[1], a[2], a[3], a[4], a[5], a[6]));
    else
      printf("%ld\n", 4 * mlf_conv2d_im2col_work_floats(a[0], a[1], a[2], a[3], a[4], a[5]));
  }
  return 0;
}
"""


def test_the_workspace_covers_the_runtime_at_every_size(tmp_path):
    """Each convolution's workspace polynomial against the runtime's own work functions
    (runtime_c/mlf_conv.h, compiled here) over a grid of sizes crossing the runtime's
    path switches: few channels or 64-channel panels (O <= 16, wo <= 64), the kv rows
    (wo < 16 with a kernel of width >= 8: the kernel gradient), the GEMM's packing."""
    from aot.build.pipeline import compile_program
    from aot.passes.layouts import conv_fast, conv_geometry, conv_im2col
    from aot.program.program import from_graph
    from aot.resources import runtime_dir

    def fn(x):
        k, kw = G.const(KERNEL), G.const(WIDE)
        y = G.conv_general(x, k, padding=SAME) * G.reduce_sum(
            G.conv_general(x, kw, padding=SAME)) + G.conv_general(
            x, k, padding=((2, 2), (2, 2)), rhs_dilation=(2, 2))
        return tuple(G.grad(G.reduce_sum(G.tanh(y)), [x, k, kw]))
    maxima = {"N": 2, "H": 4, "W": 80}
    graph = G.Exec(None, fn, symbolic=SPEC, maxima=maxima).graph(*_image((1, 3, 3)))
    result = compile_program(from_graph(graph), build_lib=False)
    program = result.program
    exe = tmp_path / "work"
    src = tmp_path / "work.c"
    src.write_text(WORK_C)
    subprocess.run(["gcc", "-O0", "-std=gnu99", f"-I{runtime_dir()}", str(src), "-lm", "-o",
                    str(exe)], check=True, capture_output=True, text=True)
    points = [{"N": n, "H": h, "W": w} for n in (1, 2) for h in (1, 4)
              for w in (1, 7, 15, 16, 17, 63, 64, 65, 80)]
    lines, bounds = [], []
    kinds = set()
    for k in result.kernels:
        if k.kind != "conv" or k.contraction is None:
            continue
        v = program.values[k.contraction]
        for p in points:
            if conv_fast(program, v):
                g = {key: evaluate(d, p) for key, d in conv_geometry(program, v).items()}
                lines.append("d " + " ".join(str(g[x]) for x in
                                             ("n", "c", "o", "kh", "kw", "hp", "wp")))
                kinds.add(("fast", g["o"] <= 16 and g["wo"] <= 64, g["wo"] < 16 and g["kw"] >= 8))
            elif conv_im2col(program, v):
                w = program.values[v.inputs[1]].shape
                lines.append("i " + " ".join(str(evaluate(d, p)) for d in (
                    w[0], w[1], w[2], w[3], *v.shape[2:])))
                kinds.add(("im2col",))
            else:
                continue
            bounds.append(evaluate(k.scratch_bytes, p))
    assert {("im2col",), ("fast", True, True), ("fast", True, False),
            ("fast", False, False)} <= kinds  # every runtime path is met
    out = subprocess.run([str(exe)], input="\n".join(lines), capture_output=True, text=True,
                         check=True).stdout.split()
    assert len(out) == len(bounds)
    for line, bound, need in zip(lines, bounds, map(int, out)):
        assert bound >= need, (line, bound, need)


@pytest.mark.parametrize("openmp", [["-fopenmp"], []], ids=["openmp", "serial"])
def test_the_generated_c_compiles_without_warnings(openmp, tmp_path):
    """Forward and backward (the pooling's select_and_scatter_add, both conv gradients,
    the padded window rows, im2col) over N, H, W under -Wall -Wextra -Werror."""
    from aot.resources import runtime_dir

    def fn(x):
        k = G.const(KERNEL)
        y = G.reduce_window_max(_conv(x, k), (1, 1, 3, 3), (1, 1, 1, 1), POOL_PADDING)
        y = y + G.reduce_window_sum(x, (1, 1, 3, 3), (1, 1, 1, 1), POOL_PADDING)[:, :1]
        y = y + G.conv_general(x, KERNEL, padding=((2, 2), (2, 2)), rhs_dilation=(2, 2))
        return tuple(G.grad(G.reduce_sum(G.tanh(y)), [x, k]))
    graph = G.Exec(None, fn, symbolic=SPEC, maxima=MAXIMA).graph(*_image((1, 3, 3)))
    source = mlf.backends.new("c").compile(graph).source
    assert "select_and_scatter" in source and "input padded to" in source
    path = tmp_path / "model.c"
    path.write_text(source)
    proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "model.o"), "-std=gnu99", "-O2",
                           "-Wall", "-Wextra", "-Werror", *openmp,
                           f"-I{runtime_dir()}", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
