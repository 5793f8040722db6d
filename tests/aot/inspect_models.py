"""Graph functions for the `aotc inspect` page tests: known source lines, a GEMM large
enough to need scratch, and a multiplication by one that simplify removes."""
from __future__ import annotations

import numpy as np

from mlframework import graph as G

RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((64, 96)).astype(np.float32)
W2 = RNG.standard_normal((96, 10)).astype(np.float32)


def mlp(x):
    h = G.dot_general(x, G.const(W1), [1], [0])  # the first GEMM
    h = G.max(h * 1.0, G.const(0.0))             # simplify drops the * 1.0
    logits = G.dot_general(h, G.const(W2), [1], [0])
    return G.softmax(logits, axis=-1)
