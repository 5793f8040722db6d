"""Strided and kernel-dilated C convolutions (im2col + GEMM, runtime_c/mlf_conv.h) against
jax at precision=highest, with a fused epilogue, batches and asymmetric padding."""
from __future__ import annotations

import numpy as np
import pytest
from jax import lax

import mlframework as mlf
from mlframework import graph as G

# (x shape, w shape, strides, padding, kernel dilation); outputs of more than 256 pixels
# (smaller ones with O <= 64 run mlf_conv_oc.h, tests/backends/test_c_conv_oc.py)
CASES = [
    ((2, 3, 35, 33), (5, 3, 3, 3), (2, 2), ((1, 1), (1, 0)), (1, 1)),   # odd sizes, batch 2
    ((1, 8, 34, 34), (16, 8, 1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1)),  # a 1x1 shortcut
    ((3, 4, 30, 40), (20, 4, 3, 2), (1, 3), ((2, 0), (0, 3)), (2, 1)),  # dilated, one-sided
    ((1, 2, 7, 7), (70, 2, 3, 3), (2, 1), ((1, 1), (1, 1)), (1, 2)),   # O past one panel
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}/s{c[2]}" for c in CASES])
def test_strided_conv_runs_as_im2col_gemm_and_matches_jax(case):
    xs, ws, strides, padding, dilation = case
    rng = np.random.default_rng(len(xs) + ws[0])
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    backend = mlf.backends.new("c")
    fn = lambda x, w: G.relu(G.conv_general(x, w, strides, padding, (1, 1), dilation) + 0.25)  # noqa: E731
    exe = backend.compile(G.Exec(backend, fn).graph(x, w))
    assert "mlf_conv2d_im2col(" in exe.source
    want = lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                    precision=lax.Precision.HIGHEST)
    np.testing.assert_allclose(exe.run([x, w])[0], np.maximum(np.asarray(want) + 0.25, 0),
                               rtol=1e-5, atol=1e-5)
