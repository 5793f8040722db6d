"""The C backend's kernels side by side with NumPy (OpenBLAS) and jax.jit (issue 3).

    .venv/bin/python -m pytest benchmarks/test_c_kernels.py --benchmark-only

Read as ratios of medians within one run (see benchmarks/README.md, "C backend").
Thread count: MLF_NUM_THREADS for ours, OMP/OPENBLAS threads for NumPy.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G

RNG = np.random.default_rng(0)


def _c(fn, *arrays):
    exe = G.Exec(mlf.backends.new("c"), fn)
    exe(*arrays)  # compile once, outside the timing
    return lambda: exe(*arrays)


def _jit(fn, *arrays):
    f = jax.jit(fn)
    dev = [jnp.asarray(a) for a in arrays]
    jax.block_until_ready(f(*dev))
    return lambda: jax.block_until_ready(f(*dev))


GEMMS = [(n, n, n) for n in (128, 256, 512, 1024, 2048)] + [(128, 784, 512), (128, 512, 10)]


@pytest.mark.parametrize("m,k,n", GEMMS, ids=[f"{m}x{k}x{n}" for m, k, n in GEMMS])
@pytest.mark.parametrize("who", ["c", "numpy"])
def test_gemm(benchmark, who, m, k, n):
    a = RNG.standard_normal((m, k)).astype(np.float32)
    b = RNG.standard_normal((k, n)).astype(np.float32)
    fn = _c(lambda a, b: a @ b, a, b) if who == "c" else (lambda: a @ b)
    benchmark.group = f"gemm {m}x{k}x{n}"
    benchmark(fn)


@pytest.mark.parametrize("who", ["c", "jax"])
def test_fused_elementwise(benchmark, who):
    x = RNG.standard_normal(2 ** 24).astype(np.float32)
    a, b = np.float32(1.5), np.float32(0.25)
    benchmark.group = "tanh(a*x+b)*sigmoid(x) 2^24"
    if who == "c":
        benchmark(_c(lambda x, a, b: G.tanh(a * x + b) * G.logistic(x), x, a, b))
    else:
        benchmark(_jit(lambda x, a, b: jnp.tanh(a * x + b) * jax.nn.sigmoid(x), x, a, b))


@pytest.mark.parametrize("who", ["c", "jax"])
@pytest.mark.parametrize("kind", ["softmax", "layernorm"])
def test_row_kernels(benchmark, who, kind):
    x = RNG.standard_normal((16384, 1024)).astype(np.float32)
    benchmark.group = f"{kind} 16384x1024"
    if kind == "softmax":
        ours, ref = (lambda x: G.softmax(x)), (lambda x: jax.nn.softmax(x, -1))
    else:
        def ours(x):
            m = G.mean(x, -1, keepdims=True)
            return (x - m) * G.rsqrt(G.mean(G.square(x - m), -1, keepdims=True) + 1e-5)

        def ref(x):
            m = x.mean(-1, keepdims=True)
            return (x - m) * jax.lax.rsqrt(jnp.square(x - m).mean(-1, keepdims=True) + 1e-5)
    benchmark(_c(ours, x) if who == "c" else _jit(ref, x))


@pytest.mark.parametrize("who", ["c", "jax"])
@pytest.mark.parametrize("batch", [1, 8])
def test_conv3x3(benchmark, who, batch):
    x = RNG.standard_normal((batch, 64, 56, 56)).astype(np.float32)
    w = RNG.standard_normal((64, 64, 3, 3)).astype(np.float32)
    benchmark.group = f"conv3x3 64ch 56x56 batch {batch}"
    if who == "c":
        benchmark(_c(lambda x, w: G.conv_general(x, w, padding=((1, 1), (1, 1))), x, w))
    else:
        benchmark(_jit(lambda x, w: jax.lax.conv_general_dilated(
            x, w, (1, 1), ((1, 1), (1, 1)), precision=jax.lax.Precision.HIGHEST), x, w))


def _mlp_step(backend_name):
    sizes = [784, 512, 512, 10]
    params = [(RNG.standard_normal((i, o)).astype(np.float32) * 0.05, np.zeros(o, np.float32))
              for i, o in zip(sizes, sizes[1:])]
    x = RNG.standard_normal((128, 784)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[RNG.integers(0, 10, 128)]

    def loss(flat, x, y):
        h = x
        for n in range(3):
            h = h @ flat[2 * n] + flat[2 * n + 1]
            if n < 2:
                h = G.relu(h)
        return G.mean(-G.reduce_sum(y * G.log_softmax(h), -1))

    def step(flat, x, y):
        value = loss(flat, x, y)
        grads = G.grad(value, flat)
        return [p - 0.01 * g for p, g in zip(flat, grads)], value

    flat = [a for pair in params for a in pair]
    exe = G.Exec(mlf.backends.new(backend_name), step)
    exe(flat, x, y)
    return lambda: [t.numpy() for t in exe(flat, x, y)[0]]


@pytest.mark.parametrize("who", ["c", "xla"])
def test_mlp_train_step(benchmark, who):
    benchmark.group = "MLP 784-512-512-10 train step, batch 128"
    benchmark(_mlp_step(who))
