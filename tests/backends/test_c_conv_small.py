"""Few-channel C convolutions (runtime_c/mlf_conv_small.h) against jax at precision=highest.

Covers both register-tile forms: vectors along the output row (forward LeNet shapes,
input gradients; those with at most 256 output pixels run mlf_conv_oc.h instead) and
vectors along kw (narrow outputs with wide kernels: weight gradients), on odd sizes and
paddings, at 1 and 2 threads (separate processes, since MLF_NUM_THREADS is read when an
executable is built).
"""
from __future__ import annotations

import pytest
from thread_runs import worst_errors

# (N, C, H, W, O, KH, KW, padding)
CASES = [
    (3, 1, 28, 28, 6, 5, 5, ((2, 2), (2, 2))),     # LeNet conv1
    (5, 6, 14, 14, 16, 5, 5, ((0, 0), (0, 0))),    # LeNet conv2
    (4, 16, 10, 10, 6, 5, 5, ((4, 4), (4, 4))),    # conv2 input gradient
    (6, 64, 14, 14, 16, 10, 10, ((0, 0), (0, 0))),  # conv2 weight gradient (kv path)
    (1, 64, 28, 28, 6, 28, 28, ((2, 2), (2, 2))),   # conv1 weight gradient (kv path)
    (2, 3, 13, 11, 5, 9, 8, ((1, 2), (0, 3))),     # kv path, odd sizes and paddings
    (3, 5, 17, 21, 13, 9, 17, ((3, 0), (2, 1))),   # kv path, two kw chunks, 6+ columns
    (2, 7, 9, 40, 11, 3, 4, ((1, 0), (2, 3))),     # row path, three row vectors
]

SCRIPT = r"""
import json, sys
import jax, numpy as np
from jax import lax
import mlframework as mlf
from mlframework import graph as G
jax.config.update("jax_enable_x64", False)
worst = []
backend = mlf.backends.new("c")
for n, c, h, w, o, kh, kw, pad in json.loads(sys.argv[1]):
    rng = np.random.default_rng(n * 1000 + c * 10 + o)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    k = rng.standard_normal((o, c, kh, kw)).astype(np.float32)
    pad = tuple(tuple(p) for p in pad)
    fn = G.Exec(backend, lambda a, b: G.conv_general(a, b, padding=pad))
    got = np.asarray(fn(x, k).numpy())
    want = np.asarray(lax.conv_general_dilated(x, k, (1, 1), pad,
                                               precision=lax.Precision.HIGHEST))
    scale = np.sqrt(c * kh * kw)
    worst.append(float(np.max(np.abs(got - want)) / scale) if got.shape == want.shape else 1e9)
print(json.dumps(worst))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_few_channel_convs_match_jax(threads):
    worst = worst_errors(SCRIPT, CASES, threads)
    assert max(worst) < 1e-5, list(zip(CASES, worst))
