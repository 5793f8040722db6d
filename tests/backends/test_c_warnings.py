"""The c backend's generated C, compiled for real (`gcc -c`, not -fsyntax-only) at -O3 with
-Wall -Wextra -Werror: gcc's middle-end warnings (-Waggressive-loop-optimizations,
-Warray-bounds, -Wstringop-overflow, -Wmaybe-uninitialized...) only come out of code
generation, after constant propagation has put the baked-in shapes into the loops.

A few translation units, each one graph of many ops at shapes that are multiples of
16, 32, 64 (constant bounds gcc folds into the runtime's blocked loops) and odd ones;
float32 and the other dtypes. One gcc run per unit, with the backend's own flags.
"""
from __future__ import annotations

import subprocess

import ml_dtypes
import numpy as np
import pytest

from aot.build import compiler as aot_build
from aot.build.pipeline import compile_program
from aot.program.program import from_graph
from mlframework import graph as G
from mlframework.ml import layers

RNG = np.random.default_rng(0)
BF16 = np.dtype(ml_dtypes.bfloat16)


def _values(shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return RNG.random(shape) < 0.5
    if dtype.kind in "iu":
        return RNG.integers(0, 5, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


# attention (runtime_c/mlf_attention.h): GPT-2's head size 64 over 128 keys (four key
# blocks; the whole-vector channel loop of mlf_att_update), 32 keys (one whole block:
# mlf_att_scores's four-key loop), and odd sizes
ATTENTION_SHAPES = [((1, 4, 128, 64), True), ((2, 3, 32, 16), False), ((1, 2, 45, 19), True)]


def _attention(*qkv):
    return [layers.scaled_dot_product_attention(*qkv[3 * n:3 * n + 3], causal=causal)
            for n, (_, causal) in enumerate(ATTENTION_SHAPES)]


def _float32(x64, y64, x45, y45, img16, img9, k3, idx, pairs):
    # a gather from a column: the start along its extent-1 axis drops out of the index
    outs = [G.gather(G.slice(x45, (0, 0), (45, 1)), pairs, [], [0, 1], [0, 1], (1, 1))]
    for x, y in ((x64, y64), (x45, y45)):
        n = x.shape[0]
        outs += [G.tanh(x) + G.exp(y) * G.erf(x), G.lgamma(x) + G.atan2(x, y),
                 G.rem(x, y), G.softmax(x), G.reduce_sum(x, 1), G.reduce_max(x, 0),
                 G.argmax(x, 1), G.argmin(x, 0), G.cumsum(x, 1), G.cumlogsumexp(x, 0),
                 G.sort(x, 1), G.argsort(x, 0), x @ y, G.relu(G.dot_general(x, y, [1], [1]) + 1),
                 (x - G.mean(x, -1, keepdims=True)) * G.rsqrt(G.variance(x, -1, keepdims=True)
                                                              + 1e-5),
                 G.transpose(x, (1, 0)), G.pad(x, [(1, 2, 0), (0, 1, 1)], 0),
                 G.reverse(x, 0), G.slice(x, (1, 0), (n, n), (2, 1)),
                 G.gather(x, idx, [1], [0], [0], (1, n)),
                 G.scatter_add(x, idx, G.slice(y, (0, 0), (3, n)), [1], [0], [0])]
    for img in (img16, img9):
        y = G.relu(G.conv_general(img, k3, padding=[(1, 1), (1, 1)]))
        outs += [G.reduce_window_max(y, (1, 1, 2, 2), (1, 1, 2, 2)),
                 G.reduce_window_sum(img, (1, 1, 3, 3), (1, 1, 1, 1), [(0, 0), (0, 0), (1, 1),
                                                                      (1, 1)]),
                 G.conv_general(img, k3, window_strides=[2, 2])]
    return outs


def _other_dtypes(h, b, i8, i32, j32, p, q, empty):
    outs = [G.transpose(empty, (1, 0, 2)), G.reshape(empty, (0, 6)),  # kernels writing nothing
            G.sort(empty, 2), G.argsort(empty, 0)]
    for x in (h, b):  # float16, bfloat16
        outs += [G.tanh(x) * x, G.reduce_sum(x, 1), G.argmax(x, 0), G.softmax(x), x @ x,
                 G.convert(x, np.float32), G.cumsum(x, 1)]
    outs += [G.convert(i8, np.int32) @ i32, G.dot_general(i8, i8, [1], [0],
                                                          preferred_element_type=np.int32)]
    for x, y in ((i8, G.convert(i32, np.int8)), (i32, j32)):  # integers
        outs += [x + y * x, G.rem(x, y + 1), G.shift_left(x, y), G.shift_right_arithmetic(x, y),
                 G.population_count(x) + G.count_leading_zeros(y), G.bitwise_xor(x, y),
                 G.argmax(x, 1), G.argmin(x, 0), G.reduce_max(x, 1), G.cummax(x, 0),
                 G.sort(x, 1), G.reduce_window_max(x, (2, 2), (2, 2))]
    outs += [G.logical_xor(p, q), G.reduce_and(p, 1), G.reduce_or(q, 0), G.select(p, i32, j32)]
    return outs


UNITS = {
    "attention": (_attention, [_values(s, np.float32) for s, _ in ATTENTION_SHAPES
                               for _ in range(3)]),
    "float32": (_float32, [_values((64, 64), np.float32), _values((64, 64), np.float32),
                           _values((45, 45), np.float32), _values((45, 45), np.float32),
                           _values((2, 3, 16, 16), np.float32), _values((1, 3, 9, 9), np.float32),
                           _values((8, 3, 3, 3), np.float32),
                           RNG.integers(0, 45, (3, 1)).astype(np.int32),
                           RNG.integers(0, 45, (3, 2)).astype(np.int32)]),
    "dtypes": (_other_dtypes, [_values((32, 32), np.float16), _values((32, 32), BF16),
                               _values((32, 32), np.int8), _values((32, 32), np.int32),
                               _values((32, 32), np.int32), _values((32, 32), np.bool_),
                               _values((32, 32), np.bool_), _values((3, 0, 2), np.float32)]),
}


@pytest.mark.parametrize("unit", list(UNITS))
def test_generated_c_compiles_without_warnings_at_O3(unit, tmp_path):
    fn, arrays = UNITS[unit]
    source = compile_program(from_graph(G.Exec(None, fn).graph(*arrays)), build_lib=False).source
    if unit == "attention":
        assert source.count("mlf_att_update(") >= len(ATTENTION_SHAPES)  # all three fused
    path = tmp_path / f"{unit}.c"
    path.write_text(source)
    proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / f"{unit}.o"), "-Wall", "-Wextra",
                           "-Werror", *aot_build.FLAGS, "-fopenmp", f"-I{aot_build.RUNTIME}",
                           str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
