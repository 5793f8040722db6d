"""Fused attention on the c backend (aot/passes/attention.py, runtime_c/mlf_attention.h)
against a float64 NumPy softmax(q k^T * scale + mask) v: causal and padding masks (given
at run time), an additive mask, grouped key/value heads, head sizes from 1 to 80 (odd
ones included), batches and many heads, sequences that are not multiples of the 32-row
and 32-key blocks, more keys than queries (the causal offset), rows whose every key is
masked; at 1 and 2 threads (separate processes: MLF_NUM_THREADS is read when an
executable is built). Every case checks that the fused kernel is in the generated C;
the cases where it must not fire check that it is not, and still match."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from thread_runs import worst_errors

import mlframework as mlf
from aot.build import compiler as aot_build
from mlframework import graph as G
from mlframework.ml import layers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "aot"))
from attention_support import D, attention, attention_reference  # noqa: E402

# (batch, heads, kv_heads, q_len, kv_len, head size, mask): mask is "causal", "padding",
# "both", "additive" or "none"
CASES = [
    (1, 4, 4, 128, 128, 64, "causal"),       # the GPT-2-shaped benchmark's attention
    (2, 3, 3, 33, 33, 17, "causal"),         # odd head size, one row past a block
    (1, 12, 12, 77, 77, 80, "both"),         # many heads, 5 vectors of 16 channels
    (3, 2, 1, 5, 70, 3, "padding"),          # multi-query, keys past two blocks
    (2, 4, 2, 40, 100, 32, "causal"),        # causal with an offset (kv_len > q_len)
    (1, 2, 2, 1, 1, 1, "none"),              # one query, one key, head size 1
    (2, 2, 2, 65, 31, 8, "additive"),        # additive float mask, keys below a block
    (1, 1, 1, 130, 130, 64, "none"),         # no mask, rows past four blocks
]

SCRIPT = r"""
import json, sys
import numpy as np
import mlframework as mlf
from mlframework import graph as G
from mlframework.ml import layers
backend = mlf.backends.new("c")
worst = []
for b, h, hkv, sq, skv, d, mask in json.loads(sys.argv[1]):
    rng = np.random.default_rng(sq * 131 + skv * 7 + d)
    q = rng.standard_normal((b, h, sq, d)).astype(np.float32)
    k = rng.standard_normal((b, hkv, skv, d)).astype(np.float32)
    v = rng.standard_normal((b, hkv, skv, d)).astype(np.float32)
    keep = rng.random((b, 1, 1, skv)) > 0.3
    keep[0, ..., :] = False  # the first sequence is all padding: the mean of v
    bias = (rng.standard_normal((b, 1, sq, skv)) * 2).astype(np.float32)
    allowed = np.ones((b, 1, sq, skv), bool)
    if mask in ("causal", "both"):
        allowed &= np.tril(np.ones((sq, skv), bool), skv - sq)
    if mask in ("padding", "both"):
        allowed &= keep
    if mask == "additive":
        fn = lambda q, k, v, m: G.reshape(G.dot_general(G.softmax(
            G.dot_general(G.reshape(q, (b, hkv, h // hkv, sq, d)), k, [4], [3], [0, 1], [0, 1])
            * (1 / np.sqrt(d)) + G.reshape(m, (b, 1, 1, sq, skv)), axis=-1),
            v, [4], [2], [0, 1], [0, 1]), (b, h, sq, d))
        extra = bias
    else:
        fn = lambda q, k, v, m: layers.scaled_dot_product_attention(
            q, k, v, m if mask in ("padding", "both") else None,
            causal=mask in ("causal", "both"))
        extra = keep
    exe = backend.compile(G.Exec(backend, fn).graph(q, k, v, extra))
    assert "mlf_att_update(" in exe.source, exe.source
    got = exe.run([q, k, v, extra])[0]
    g = h // hkv
    kk, vv = np.repeat(k, g, 1).astype(np.float64), np.repeat(v, g, 1).astype(np.float64)
    s = q.astype(np.float64) @ kk.transpose(0, 1, 3, 2) / np.sqrt(d)
    if mask == "additive":
        s = s + bias
    s = np.where(allowed, s, np.finfo(np.float32).min)
    p = np.exp(s - s.max(-1, keepdims=True))
    want = (p / p.sum(-1, keepdims=True)) @ vv
    worst.append(float(np.max(np.abs(got - want))))
print(json.dumps(worst))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_fused_attention_matches_numpy(threads):
    worst = worst_errors(SCRIPT, CASES, threads)
    assert max(worst) < 2e-5, list(zip(CASES, worst))


def _sdpa(q, k, v):
    return layers.scaled_dot_product_attention(q, k, v, causal=True)


def _also_probs(q, k, v):  # the probabilities are an output: they need their buffer
    s = G.dot_general(q, k, [3], [3], [0, 1], [0, 1]) * 0.5
    p = G.softmax(s, axis=-1)
    return G.dot_general(p, v, [3], [2], [0, 1], [0, 1]), p


def _transposed_scores(q, k, v):  # rows over the keys, softmax over the queries
    s = G.transpose(G.dot_general(q, k, [3], [3], [0, 1], [0, 1]), (0, 1, 3, 2))
    return G.dot_general(G.softmax(s, axis=-1), v, [3], [2], [0, 1], [0, 1])


def _softmax_not_last(q, k, v):  # a softmax over the queries is not attention's
    p = G.softmax(G.dot_general(q, k, [3], [3], [0, 1], [0, 1]), axis=-2)
    return G.dot_general(p, v, [3], [2], [0, 1], [0, 1])


def _reference(fn, q, k, v):
    return [np.asarray(o.numpy()) for o in
            _as_list(G.Exec(mlf.backends.new("xla"), fn)(q, k, v))]


def _as_list(out):
    return list(out) if isinstance(out, tuple | list) else [out]


@pytest.mark.parametrize("fn,dtype", [(_sdpa, np.float64), (_sdpa, np.float16),
                                      (_also_probs, np.float32),
                                      (_transposed_scores, np.float32),
                                      (_softmax_not_last, np.float32)],
                         ids=["float64", "float16", "probs-read", "transposed-scores",
                              "softmax-over-queries"])
def test_not_fused_where_it_must_not(fn, dtype):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 9, 5)).astype(dtype) for _ in range(3))
    backend = mlf.backends.new("c")
    exe = backend.compile(G.Exec(backend, fn).graph(q, k, v))
    assert "mlf_att_update(" not in exe.source
    got = [np.asarray(o) for o in exe.run([q, k, v])]
    tol = 2e-2 if dtype == np.float16 else 1e-5
    for g, w in zip(got, _reference(fn, q, k, v)):
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=tol, atol=tol)


def test_symbolic_shapes_keep_the_unfused_path():
    """attention_support's graph (G.matmul with k transposed, a -1e9 fill) fuses when its
    shapes are static and keeps the three kernels with batch and sequence symbolic."""
    backend = mlf.backends.new("c")
    x = np.random.default_rng(1).standard_normal((3, 37, D)).astype(np.float32)
    symbolic = backend.compile(G.Exec(None, attention, symbolic={"x": f"B, S, {D}"},
                                      maxima={"B": 4, "S": 64}).graph(np.zeros((1, 1, D),
                                                                               np.float32)))
    static = backend.compile(G.Exec(None, attention).graph(x))
    assert "mlf_att_update(" not in symbolic.source
    assert "mlf_att_update(" in static.source
    for exe in (symbolic, static):
        np.testing.assert_allclose(exe.run([x])[0], attention_reference(x), atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 2, 45, 19), (1, 4, 128, 64)])  # odd; GPT-2-shaped
@pytest.mark.parametrize("openmp", [["-fopenmp"], []], ids=["openmp", "serial"])
def test_fused_kernel_compiles_without_warnings_at_O3(openmp, shape, tmp_path):
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    backend = mlf.backends.new("c")
    source = backend.compile(G.Exec(backend, _sdpa).graph(q, k, v)).source
    assert "mlf_att_update(" in source
    path = tmp_path / "k.c"
    path.write_text(source)
    proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "k.o"), "-Wall", "-Wextra",
                           "-Werror", *aot_build.FLAGS, *openmp, f"-I{aot_build.RUNTIME}",
                           str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
