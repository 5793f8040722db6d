"""A plain graph over two symbolic sizes for the aot and c backend tests: `attention`
over a batch and a sequence, and its NumPy reference."""
from __future__ import annotations

import numpy as np

from mlframework import graph as G

D, H = 32, 4
_RNG = np.random.default_rng(1)
WQ, WK, WV, WO = ((_RNG.normal(size=(D, D)) / np.sqrt(D)).astype(np.float32) for _ in range(4))


def attention(x):
    """Causal 4-head self-attention over x [B, S, 32] (B and S may be symbolic)."""
    b, s = x.shape[0], x.shape[1]

    def heads(t):
        return G.transpose(G.reshape(t, (b, s, H, D // H)), (0, 2, 1, 3))
    q, k, v = heads(x @ WQ), heads(x @ WK), heads(x @ WV)
    scores = G.matmul(q, G.transpose(k, (0, 1, 3, 2))) * (1.0 / np.sqrt(D // H))
    causal = G.iota("int32", (s, s), 1) <= G.iota("int32", (s, s), 0)
    p = G.softmax(G.where(causal, scores, -1e9), axis=-1)
    return G.reshape(G.transpose(G.matmul(p, v), (0, 2, 1, 3)), (b, s, D)) @ WO


def attention_reference(x):
    """`attention` in NumPy (float64)."""
    b, s, _ = x.shape
    heads = lambda t: t.reshape(b, s, H, D // H).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = heads(x @ WQ), heads(x @ WK), heads(x @ WV)
    scores = np.where(np.tril(np.ones((s, s), bool)), q @ k.transpose(0, 1, 3, 2) /
                      np.sqrt(D // H), -1e9)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return ((e / e.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(b, s, D) @ WO
